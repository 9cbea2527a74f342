"""Turn a training checkpoint into a shipped weights file (arch, schedule, EMA weights; no optimizer state).

    python benchmarks/export_weights.py runs/unet/last.pt diffusion_lib/weights/unet.pt
"""
from __future__ import annotations

import argparse
import os
import sys

from diffusion_lib.pretrained import export_for_sampling


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint written by `python -m diffusion_lib train`")
    p.add_argument("out", help="where to write the shipped file")
    args = p.parse_args(argv)
    path = export_for_sampling(args.checkpoint, args.out)
    os.chmod(path, 0o644)                  # save_checkpoint's temporary file is private; package data is not
    print(f"wrote {path} ({path.stat().st_size / 2 ** 20:.2f} MiB, from {os.path.getsize(args.checkpoint) / 2 ** 20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
