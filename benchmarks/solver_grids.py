"""Heun against DDIM on a fair grid: the shipped U-Net at (at most) 5, 10 and 20 network evaluations, each solver on
DDIM's grid (evenly spaced in t) and on the grid of Karras et al. 2022 (evenly spaced in sigma^(1/7)), scored with the
course's metric (confident share and Frechet distance, notebook 07). Notebook 10 reads the rows.

    python benchmarks/solver_grids.py --threads 1                  # 500 images, seed 0: writes the file notebook 10 reads
    python benchmarks/solver_grids.py --n 100 --json /tmp/grids.json   # a quick look

Every setting starts from the same n noises, drawn as benchmarks/evaluate.py draws them (seed 0: the model card's), so the
uniform-grid DDIM rows repeat the card's. Prints a table and one JSON line per row; writes the rows (the format of the
model cards' json, with a "grid" field) to --json, by default diffusion_lib/weights/unet_solver_grids.json.
Not a test: the seconds depend on the machine and on what else runs on it (the load average is recorded).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from diffusion_lib.measure.metrics import load_classifier, mnist_test_features
from diffusion_lib.measure.sweeps import NFE_SAMPLERS, format_rows, nfe_sweep
from diffusion_lib.pretrained import WEIGHTS_DIR, load_pretrained, pretrained_schedule
from diffusion_lib.samplers import GRIDS, sample_noise

DEFAULT_JSON = WEIGHTS_DIR / "unet_solver_grids.json"
NFES = (5, 10, 20)
CLI_NAMES = {"DDIM": "ddim", "Heun": "heun"}      # the sweeps' names -> the command line's (the cards' rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="images per setting (default 500, as the model card)")
    p.add_argument("--nfe", type=int, nargs="+", default=list(NFES), help="network-evaluation budgets (default 5 10 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noises (default 0, the model card's)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the rows (default: %(default)s)")
    args = p.parse_args(argv)
    if args.n < 1 or any(n < 1 for n in args.nfe) or (args.threads is not None and args.threads < 1):
        print("error: --n, --nfe and --threads must be integers >= 1", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    model, schedule = load_pretrained("unet"), pretrained_schedule("unet")
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    x_T = sample_noise(args.n, model.image_shape, generator=torch.Generator().manual_seed(args.seed))
    start = time.monotonic()
    rows = []
    for grid in GRIDS:
        grid_rows, _ = nfe_sweep(model, x_T, schedule, args.nfe, classifier, reference, grid=grid, progress=False)
        budgets = [n for _ in NFE_SAMPLERS for n in args.nfe]      # nfe_sweep's row order: samplers x budgets
        for r, budget in zip(grid_rows, budgets):
            row = {"sampler": CLI_NAMES[r["sampler"]], "grid": grid, "budget": budget, "steps": r["steps"], "nfe": r["nfe"],
                   "seed": args.seed, "n": args.n, "confident_share": r["confident_share"],
                   "frechet_distance": r["frechet_distance"], "sampling_seconds": round(r["seconds"], 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    rows.sort(key=lambda r: (r["budget"], r["sampler"], r["grid"] != "uniform"))   # side by side at each budget
    print(format_rows(rows, ["budget", "sampler", "grid", "steps", "nfe", "n", "confident_share", "frechet_distance",
                             "sampling_seconds"]))
    load = "load average %.1f %.1f %.1f" % os.getloadavg()
    print(f"{time.monotonic() - start:.0f} s in all, {torch.get_num_threads()} threads, {load}")
    out = Path(args.json)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"model": "unet", "command": "python benchmarks/solver_grids.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "machine_load": load, "scores": rows}, indent=1) + "\n")
    os.replace(tmp, out)                                      # atomically: never a half-written file
    return 0


if __name__ == "__main__":
    sys.exit(main())
