"""Scaling curves: held-out loss against training compute for three architectures at three sizes each.

    OMP_NUM_THREADS=1 python benchmarks/scaling.py --steps 300 --batch-size 64

Every run trains one network with flow matching on MNIST pixels through diffusion_lib's own training loop (the
same recipe for all: AdamW lr 1e-3, warm-up over a tenth of the run (at most 50 steps), batch --batch-size, EMA not
used for the loss) and measures
its loss on held-out test images at a few points along the way (--evals, as fractions of the run; the same test
images, timesteps and noise for every run, so the points are comparable). Training compute at a point =
FLOPs of one training step's forward and backward pass per image (torch.utils.flop_counter.FlopCounterMode, fp32)
x images seen. The architectures:

    mlp    the seed blog's MLP family: three hidden layers of equal width (SmolMLP is width 512)
    unet   the course's U-Net at three base widths
    dit    the diffusion transformer on pixels, patch 4 (49 tokens), three widths and depths

At the end of each architecture's largest run, --n samples (flow Euler, 20 steps, EMA weights) are scored with
the course metric. The record (with every point, the machine and the load) goes to
diffusion_lib/weights/scaling.json after every run, so an interrupted grid keeps what it finished; --run NAME
(repeatable) reruns some runs and keeps the others. Not a test: the numbers depend on the machine's load.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_lib.backbones import build_backbone, count_parameters
from diffusion_lib.data import load_mnist
from diffusion_lib.measure.inspection import git_commit, machine_description
from diffusion_lib.objectives import objective_loss
from diffusion_lib.pretrained import WEIGHTS_DIR
from diffusion_lib.schedules import make_schedule
from diffusion_lib.training import TrainConfig, Trainer

RESULTS = WEIGHTS_DIR / "scaling.json"
# (run name, architecture, backbone, kwargs): three sizes per architecture, smallest first
GRID = [
    ("MLP 128", "mlp", "mlp", {"hidden": [128, 128, 128]}),
    ("MLP 512", "mlp", "mlp", {"hidden": [512, 512, 512]}),
    ("MLP 1024", "mlp", "mlp", {"hidden": [1024, 1024, 1024]}),
    ("U-Net 8", "unet", "unet", {"base": 8}),
    ("U-Net 16", "unet", "unet", {"base": 16}),
    ("U-Net 24", "unet", "unet", {"base": 24}),
    ("DiT 32x2", "dit", "dit", {"patch": 4, "width": 32, "depth": 2, "heads": 2}),
    ("DiT 64x3", "dit", "dit", {"patch": 4, "width": 64, "depth": 3, "heads": 4}),
    ("DiT 96x4", "dit", "dit", {"patch": 4, "width": 96, "depth": 4, "heads": 4}),
]


def training_flops_per_image(model, schedule, batch_size: int = 8) -> float:
    """FLOPs of one training step's forward and backward pass per image (flow-matching loss), fp32."""
    x0 = torch.rand(batch_size, *model.image_shape) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        objective_loss(model, x0, schedule, "flow").backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch_size


def held_out_loss(model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule, batch: int = 256) -> float:
    """Mean flow-matching loss of `model` on fixed test images, timesteps and noise."""
    model.eval()
    with torch.no_grad():
        losses = [objective_loss(model, x0[i:i + batch], schedule, "flow", t[i:i + batch], noise[i:i + batch],
                                 reduction="none") for i in range(0, x0.shape[0], batch)]
    model.train()
    return float(torch.cat(losses).mean())


def plot_only(json_path: Path, png: Path) -> int:
    """Draw a record's curves (benchmarks/README.md's picture) and print its table in markdown."""
    import matplotlib
    matplotlib.use("Agg")
    from diffusion_lib.pictures.scaling_curves import plot_scaling_curves
    record = json.loads(json_path.read_text())
    plot_scaling_curves(record).savefig(png, dpi=100)
    print("| run | parameters | MFLOP per image (train step) | held-out loss at each evaluation | training FLOPs at the "
          "end | seconds |\n|---|---|---|---|---|---|")
    for name, run in record["runs"].items():
        losses = " / ".join(f"{q['test_loss']:.3f}" for q in run["points"])
        print(f"| {name} | {run['parameters']:,} | {run['flops_per_image'] / 1e6:.1f} | {losses} | "
              f"{run['points'][-1]['flops']:.2e} | {run['train_seconds']:.0f} |")
    print(f"wrote {png}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="optimizer steps of every run (default 300)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--evals", type=float, nargs="+", default=[0.0625, 0.125, 0.25, 0.5, 1.0],
                   help="where the held-out loss is measured, as fractions of the run")
    p.add_argument("--test-images", type=int, default=512, help="held-out images of the loss (default 512)")
    p.add_argument("--n", type=int, default=200, help="samples scored at the end of each largest run (0: none)")
    p.add_argument("--run", action="append", help="a run's name (repeatable); default: the whole grid")
    p.add_argument("--json", default=str(RESULTS))
    p.add_argument("--plot", metavar="PNG", help="only draw the curves of --json to this PNG (and print the table)")
    args = p.parse_args(argv)
    if args.plot:
        return plot_only(Path(args.json), Path(args.plot))
    torch.set_num_threads(1)
    # the smallest size of every architecture first, then the middle ones, then the largest: a grid stopped early
    # still has all three architectures
    order = sorted(range(len(GRID)), key=lambda i: ([g[1] for g in GRID[:i + 1]].count(GRID[i][1]), i))
    grid = [GRID[i] for i in order if not args.run or GRID[i][0] in args.run]
    if args.run and len(grid) != len(args.run):
        p.error(f"unknown runs in {args.run}; choose from {[g[0] for g in GRID]}")

    images, _ = load_mnist(train=True)
    test_images, _ = load_mnist(train=False)
    schedule = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(1234)
    x_test = test_images[:args.test_images]
    t_test = torch.randint(0, schedule.T, (x_test.shape[0],), generator=g)
    noise_test = torch.randn(x_test.shape, generator=g)
    eval_steps = sorted({max(1, round(f * args.steps)) for f in args.evals})
    warmup = max(1, min(50, args.steps // 10))
    largest = {arch: name for name, arch, _, _ in GRID}          # the last (largest) run of each architecture

    json_path = Path(args.json)
    record = {"command": "OMP_NUM_THREADS=1 python benchmarks/scaling.py " + shlex.join(sys.argv[1:] if argv is None else argv),
              "machine": machine_description("cpu"), "commit": git_commit(),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "torch": torch.__version__,
              "recipe": f"flow matching on MNIST pixels, AdamW lr 1e-3 (weight decay 0.01), {warmup} warm-up steps, "
                        f"batch {args.batch_size}, gradient clipping 1.0, fp32, {args.steps} steps per run",
              "steps": args.steps, "batch_size": args.batch_size, "eval_steps": eval_steps,
              "test_images": x_test.shape[0], "runs": {}}
    if json_path.exists() and args.run:
        record["runs"] = {k: v for k, v in json.loads(json_path.read_text())["runs"].items() if k not in args.run}

    classifier = reference = None
    total = time.monotonic()
    for name, arch, backbone, kwargs in grid:
        config = TrainConfig(backbone=backbone, backbone_kwargs=kwargs, objective="flow", steps=args.steps,
                             batch_size=args.batch_size, lr=1e-3, warmup_steps=warmup, seed=0)
        trainer = Trainer(config)
        flops = training_flops_per_image(trainer.model, schedule)
        points, start, load_start = [], time.monotonic(), os.getloadavg()[0]
        while trainer.step < args.steps:
            idx = trainer.batch_indices(images.shape[0])
            trainer.train_step(images[idx])
            if trainer.step in eval_steps:
                loss = held_out_loss(trainer.model, x_test, t_test, noise_test, schedule)
                points.append({"step": trainer.step, "images": trainer.step * args.batch_size,
                               "flops": flops * trainer.step * args.batch_size, "test_loss": round(loss, 5),
                               "seconds": round(time.monotonic() - start, 1)})
        seconds = time.monotonic() - start
        run = {"architecture": arch, "backbone": backbone, "backbone_kwargs": kwargs,
               "parameters": count_parameters(trainer.model), "flops_per_image": flops, "points": points,
               "train_seconds": round(seconds, 1), "load_average": [round(load_start, 1), round(os.getloadavg()[0], 1)],
               "train_loss_last_50": round(sum(trainer.history["loss"][-50:]) / 50, 5)}
        if args.n and name == largest[arch]:
            from diffusion_lib.measure.metrics import load_classifier, mnist_test_features, score_samples
            from diffusion_lib.samplers import final, flow_euler_sample_progressive, sample_noise
            if classifier is None:
                classifier = load_classifier()
                reference = mnist_test_features(classifier)
            ema = build_backbone(backbone, **kwargs)
            ema.load_state_dict(trainer.ema.module.state_dict())
            ema.eval()
            x_1 = sample_noise(args.n, ema.image_shape, generator=torch.Generator().manual_seed(0))
            samples = final(flow_euler_sample_progressive(ema, x_1, schedule, 20))
            s = score_samples(samples, classifier, reference)
            run["quality"] = {"sampler": "flow-euler", "steps": 20, "n": args.n, "weights": "EMA",
                              "confident_share": s["confident_share"], "frechet_distance": s["frechet_distance"]}
        record["runs"][name] = run
        record["total_seconds"] = round(sum(r["train_seconds"] for r in record["runs"].values()), 1)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"{name:<10} {count_parameters(trainer.model):>9,} params {flops / 1e6:8.1f} MFLOP/image  "
              f"{seconds / 60:5.1f} min  test loss " + " ".join(f"{q['test_loss']:.4f}" for q in points)
              + (f"  | confident {run['quality']['confident_share']:.3f} Frechet {run['quality']['frechet_distance']:.1f}"
                 if "quality" in run else ""), flush=True)
    print(f"wrote {json_path} ({(time.monotonic() - total) / 60:.1f} min in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
