"""Turn a training checkpoint into a shipped weights file (arch, schedule, EMA weights; no optimizer state).

    python benchmarks/export_weights.py runs/unet/last.pt diffusion_lib/weights/unet.pt
    python benchmarks/export_weights.py runs/names_masked/last.pt diffusion_lib/weights/masked_names.pt   # token models too
"""
from __future__ import annotations

import argparse
import os
import sys

from diffusion_lib.checkpoints import load_checkpoint
from diffusion_lib.masked_training import export_token_model, is_token_checkpoint
from diffusion_lib.pretrained import export_for_sampling


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint written by `python -m diffusion_lib train`")
    p.add_argument("out", help="where to write the shipped file")
    args = p.parse_args(argv)
    export = export_token_model if is_token_checkpoint(load_checkpoint(args.checkpoint)) else export_for_sampling
    path = export(args.checkpoint, args.out)
    os.chmod(path, 0o644)                  # save_checkpoint's temporary file is private; package data is not
    print(f"wrote {path} ({path.stat().st_size / 2 ** 20:.2f} MiB, from {os.path.getsize(args.checkpoint) / 2 ** 20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
