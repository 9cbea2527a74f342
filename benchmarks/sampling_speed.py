"""Seconds for 64 digits with DDIM 20 and the shipped U-Net, and for one forward pass of 64: a quick timing.

    python benchmarks/sampling_speed.py --threads 2
    PYTHONPATH=/path/to/another/checkout python benchmarks/sampling_speed.py --threads 2   # another tree, same venv

Run it alternately on two checkouts (say, before and after a change) in one sitting to compare them side by side:
the machine's speed drifts between sittings far more than a small change moves it. Prints the diffusion_lib it used.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        p.error("--threads and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    dl = importlib.import_module("diffusion_lib")
    pretrained = importlib.import_module("diffusion_lib.pretrained")
    samplers = importlib.import_module("diffusion_lib.samplers")
    model, schedule = pretrained.load_pretrained("unet"), pretrained.pretrained_schedule("unet")
    x_T = samplers.sample_noise(64, generator=torch.Generator().manual_seed(0))
    samplers.final(samplers.ddim_sample_progressive(model, x_T, schedule, 2))          # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        samplers.final(samplers.ddim_sample_progressive(model, x_T, schedule, 20))
        best = min(best, time.perf_counter() - start)
    t = torch.full((64,), 500)
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(20):
            model(x_T, t)
        forward = (time.perf_counter() - start) / 20
    print(f"{dl.__file__}: DDIM 20, 64 images: {best:.3f} s (best of {args.repeats}); one forward of 64: "
          f"{1000 * forward:.1f} ms; torch {torch.__version__}, {args.threads} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
