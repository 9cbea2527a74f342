"""Notebook 11's control: does the flow U-Net's lead come from its grid? The shipped noise-prediction `unet` under
DDIM on the flow-matched grid, from the same noises as the model cards' rows.

    python benchmarks/flow_grid_control.py                      # 500 images, NFE 5 10 20, writes the json below
    python benchmarks/flow_grid_control.py --n 100 --nfe 5 --json /tmp/control.json

Flow Euler with N steps evaluates the network at the flow times s = 1, 1 - 1/N, ..., 1/N. In xbar = x_s / (1 - s),
sigma = s / (1 - s) each of its steps is a DDIM step (notebook 11, section 5), so DDIM over the timesteps of the
linear schedule nearest to those noise levels (samplers.flow_matched_timesteps) takes the flow's steps with the
noise-prediction network. For each NFE this prints and stores two rows from the same starting noises, drawn as
benchmarks/evaluate.py draws them (seed 0, the first n of one batch of noise): DDIM on its own even grid (the
model card's row, reproduced) and DDIM on the flow-matched grid. Scores: diffusion_lib.metrics.score_samples (the
course's classifier: confident share and Frechet distance to the test set). A number, not a test.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from diffusion_lib.measure.metrics import load_classifier, mnist_test_features, score_samples
from diffusion_lib.pretrained import WEIGHTS_DIR, load_pretrained, pretrained_schedule
from diffusion_lib.samplers import (ddim_sample_progressive, ddim_timesteps, final, flow_matched_timesteps,
                                    sample_noise)

sys.path.insert(0, str(Path(__file__).parent))
from run import machine  # noqa: E402

OUT = WEIGHTS_DIR / "unet_flow_grid.json"     # read by notebook 11 (shipped with the package, like the cards' json)


def ddim_on(model, x_T, schedule, timesteps, batch_size=250):
    return torch.cat([final(ddim_sample_progressive(model, x_T[i:i + batch_size], schedule, timesteps=timesteps))
                      for i in range(0, x_T.shape[0], batch_size)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=str(OUT))
    args = p.parse_args(argv)
    if args.n < 2 or any(n < 1 or n > 100 for n in args.nfe):
        print("error: --n must be >= 2 and every --nfe in [1, 100]", file=sys.stderr)
        return 2
    model, schedule = load_pretrained("unet"), pretrained_schedule("unet")
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    x_T = sample_noise(args.n, model.image_shape, generator=torch.Generator().manual_seed(args.seed))
    rows = []
    for nfe in args.nfe:
        for grid_name, grid in (("even", ddim_timesteps(nfe, schedule.T)),
                                ("flow-matched", flow_matched_timesteps(nfe, schedule))):
            start = time.monotonic()
            images = ddim_on(model, x_T, schedule, grid)
            seconds = time.monotonic() - start
            row = {"sampler": "ddim", "grid": grid_name, "timesteps": grid, "steps": nfe, "nfe": nfe, "eta": 0.0,
                   "seed": args.seed, **score_samples(images, classifier, reference),
                   "sampling_seconds": round(seconds, 1)}
            print(json.dumps({k: v for k, v in row.items() if k not in ("timesteps", "class_histogram")}), flush=True)
            rows.append(row)
    with open(args.json, "w") as f:
        json.dump({"model": "unet", "command": " ".join(["python benchmarks/flow_grid_control.py", *(argv or sys.argv[1:])]),
                   "machine": machine(), "scores": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
