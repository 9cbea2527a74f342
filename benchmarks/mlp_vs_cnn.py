"""The seed blog's MLP-vs-CNN experiment under one budget, plus changes to the MLPs; results for notebook 09.

    OMP_NUM_THREADS=1 python benchmarks/mlp_vs_cnn.py --threads 1

Every run of diffusion_lib.experiments.MLP_VS_CNN_RUNS trains with the blog's recipe (AdamW lr 1e-3,
batch 128, eps-prediction, linear schedule T = 1000, fp32, no gradient clipping) for the same number of
optimizer steps (--steps, default 1000, so 128,000 training images, 2.1 epochs); a run with a wall-clock
cap (the ConvNet, 5 minutes) stops earlier and says so. Then, for the raw weights (the blog has no EMA):

  - loss at fixed timesteps on the first --loss-images MNIST test images (same noise at every t)
  - --n DDIM samples (50 steps, eta = 0, x_T from seed 0) scored with diffusion_lib.metrics, and the std
    of x_t and of the predicted x_0 at every step of those chains
  - 25 DDPM samples (1000 steps, the blog's sampler), and x0_pred of one test digit at a few t

The record goes to diffusion_lib/weights/mlp_vs_cnn.json and the pictures (uint8) to mlp_vs_cnn.pt,
after every run, so an interrupted script keeps what it finished; --run NAME (repeatable) reruns some runs and keeps
the others (each run records its own command). Prints one line per run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from diffusion_lib.backbones import count_parameters
from diffusion_lib.data import load_mnist
from diffusion_lib.measure.experiments import (MLP_VS_CNN_RUNS, RESULTS_IMAGES, RESULTS_JSON, blog_config, block_means,
                                       chain_magnitudes, one_step_x0, to_uint8)
from diffusion_lib.measure.inspection import git_commit, loss_by_timestep, machine_description
from diffusion_lib.measure.metrics import (CLASSIFIER_PATH, classifier_features, load_classifier, reference_scores,
                                   score_samples)
from diffusion_lib.samplers import ddpm_sample_progressive, final, sample_noise
from diffusion_lib.schedules import make_schedule
from diffusion_lib.training import train

TIMESTEPS = [0, 10, 25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999]
ONE_STEP_T = [50, 250, 500, 750, 999]
CHAIN_RUNS = ["SmolMLP", "ChunkyMLP", "U-Net", "SmolMLP + skip"]   # whose chain images are kept for the slider


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps of every run (default 1000)")
    p.add_argument("--run", action="append", help="a run's name, e.g. --run 'SmolMLP + skip'; repeat for several "
                                                   "(default: all, in order); the other runs in --json are kept")
    p.add_argument("--n", type=int, default=500, help="DDIM samples scored per run (default 500)")
    p.add_argument("--n-slow", type=int, default=32, help="DDIM samples scored for capped runs (default 32)")
    p.add_argument("--loss-images", type=int, default=500, help="test images of the loss by timestep")
    p.add_argument("--ddpm", type=int, default=25, help="DDPM samples per run (0: none; capped runs: none)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=str(RESULTS_JSON))
    p.add_argument("--images", default=str(RESULTS_IMAGES))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    runs = MLP_VS_CNN_RUNS
    if args.run:
        wanted = args.run
        unknown = set(wanted) - {r.name for r in runs}
        if unknown:
            p.error(f"unknown runs {sorted(unknown)}; choose from {[r.name for r in runs]}")
        runs = [r for r in runs if r.name in wanted]

    images, _ = load_mnist(train=True)
    test_images, _ = load_mnist(train=False)
    schedule = make_schedule("linear", 1000)
    classifier = load_classifier()
    reference_features = classifier_features(test_images, classifier)
    reference = reference_scores(classifier, n=args.n)
    reference["data_std"] = float(images.std())
    reference_slow = reference_scores(classifier, n=args.n_slow)
    digit = test_images[:1]
    x_T = sample_noise(args.n, generator=torch.Generator().manual_seed(0))    # the same start for every run

    record = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/mlp_vs_cnn.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine_description("cpu"), "commit": git_commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "torch": torch.__version__,
        "budget": {"steps": args.steps, "batch_size": 128, "images": 128 * args.steps,
                   "epochs": round(128 * args.steps / images.shape[0], 2), "threads": args.threads,
                   "caps": {r.name: r.max_minutes for r in runs if r.max_minutes}},
        "recipe": "AdamW (weight decay 0.01), lr 1e-3, batch 128, MSE on eps, linear betas 1e-4..0.02, T = 1000, fp32, "
                  "no gradient clipping; samples and losses from the raw weights (no EMA)",
        "sampler": {"ddim_steps": 50, "eta": 0.0, "n": args.n, "n_capped": args.n_slow, "seed": 0, "ddpm_n": args.ddpm},
        "timesteps": TIMESTEPS, "one_step_t": ONE_STEP_T,
        "classifier_sha256": hashlib.sha256(CLASSIFIER_PATH.read_bytes()).hexdigest(),
        "reference": reference, "reference_capped": reference_slow, "runs": {},
    }
    pictures = {}
    json_path, images_path = Path(args.json), Path(args.images)
    if json_path.exists() and args.run:     # re-running some runs: keep the others
        old = json.loads(json_path.read_text())
        record["runs"] = {k: v for k, v in old["runs"].items() if k not in {r.name for r in runs}}
        record["budget"]["caps"] = {**old["budget"]["caps"], **record["budget"]["caps"]}
        if images_path.exists():
            pictures = {k: v for k, v in torch.load(images_path, weights_only=True).items() if k in record["runs"]}

    total = time.monotonic()
    for run in runs:
        config = blog_config(run, args.steps)
        start = time.monotonic()
        result = train(config, images, progress=False)
        train_seconds = time.monotonic() - start
        model = result.model.eval()                       # raw weights: the blog keeps no EMA
        capped = result.step < args.steps

        start = time.monotonic()
        n = args.n_slow if capped else args.n
        loss_images = test_images[:64 if capped else args.loss_images]
        lbt = loss_by_timestep(model, loss_images, schedule, TIMESTEPS)
        chain = chain_magnitudes(model, x_T[:n], schedule, num_steps=50)
        scores = score_samples(chain.samples, classifier, reference_features)
        one_step = one_step_x0(model, digit, schedule, ONE_STEP_T)[:, 0]       # (len(ONE_STEP_T), 1, 28, 28)
        pics = {"ddim": to_uint8(chain.samples[:64]), "one_step": to_uint8(one_step)}
        ddpm_std = None
        if args.ddpm and not capped:
            ddpm = final(ddpm_sample_progressive(model, x_T[:args.ddpm], schedule,
                                                 generator=torch.Generator().manual_seed(1)))
            pics["ddpm"] = to_uint8(ddpm)
            ddpm_std = float(ddpm.std())
        if run.name in CHAIN_RUNS:
            pics["chain_x_t"], pics["chain_x0_pred"] = to_uint8(chain.x_t), to_uint8(chain.x0_pred)
        eval_seconds = time.monotonic() - start

        losses = result.history["loss"]
        tail = losses[-100:]
        record["runs"][run.name] = {
            "command": record["command"], "date": record["date"],
            "backbone": run.backbone, "backbone_kwargs": run.backbone_kwargs, "lr": run.lr, "note": run.note,
            "parameters": count_parameters(model), "steps": result.step, "images": 128 * result.step,
            "capped_minutes": run.max_minutes if capped else None,
            "train_seconds": round(train_seconds, 1), "eval_seconds": round(eval_seconds, 1),
            "images_per_second": round(128 * result.step / train_seconds, 1),
            "final_loss": round(sum(tail) / len(tail), 5), "loss_curve": block_means(result.history),
            "loss_by_timestep": [round(float(v), 5) for v in lbt], "loss_images": loss_images.shape[0],
            "scores": scores, "chain": chain.numbers(), "ddpm_sample_std": ddpm_std,
        }
        pictures[run.name] = pics
        record["commands"] = sorted({r["command"] for r in record["runs"].values()})
        record["total_seconds"] = round(sum(r["train_seconds"] + r["eval_seconds"] for r in record["runs"].values()), 1)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(record, indent=1) + "\n")
        torch.save(pictures, images_path)
        print(f"{run.name:<20} {result.step:>5} steps in {train_seconds / 60:5.1f} min ({128 * result.step / train_seconds:6.0f} "
              f"img/s), eval {eval_seconds / 60:4.1f} min | loss {record['runs'][run.name]['final_loss']:.4f}, "
              f"L(999) {lbt[-1]:.4f} | n {scores['n']} confident {scores['confident_share']:.3f} "
              f"Frechet {scores['frechet_distance']:.1f} classes {scores['effective_classes']:.2f} "
              f"sample std {chain.samples.std():.3g}", flush=True)
    print(f"wrote {json_path} and {images_path} ({(time.monotonic() - total) / 60:.1f} min in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
