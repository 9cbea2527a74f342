"""Which training recipe gives the best unguided digits per CPU-minute? A study, not a test.

    python benchmarks/recipes.py --minutes 10 --out ../runs/recipes                 # every row, 10 minutes each
    python benchmarks/recipes.py --minutes 10 --rows eps v v+min_snr --out ../runs/recipes

Each row trains an unconditional U-Net from scratch for the same wall-clock budget (--minutes) on this
machine, one torch thread, then scores its EMA weights with the course's metric: 500 samples from seed 0,
DDIM 50 steps, eta 0 (as the model cards). The rows change one thing at a time from the base recipe
(`BASE`: the U-Net of base 16, batch 64, AdamW lr 3e-3 with 100 warm-up steps and a cosine decay, bf16
autocast, EMA 0.999, eps-prediction, no loss weighting, linear schedule): the objective (eps / x0 / v, and
flow matching, whose velocity network is scored with flow Euler 50 instead of DDIM), the weighting (min-SNR-5),
the schedule (linear / cosine), the width and the EMA decay.

The cosine decay needs a step count: each row's is its own throughput, measured on its first 50 steps,
times the budget, so every row ends its learning rate at about the budget's end; training stops at the
budget in any case (TrainConfig.max_minutes). The table reports the steps reached, the images per second,
the mean loss of the last 100 steps (each objective's own loss: not comparable across objectives), the
scores, and the machine with its load average (other work on the machine slows every row).

Rows already in OUT/results.json are kept and not run again, so an interrupted study resumes row by row
(a row interrupted mid-way starts again). Checkpoints go to OUT/<row>/last.pt.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from evaluate import evaluate  # noqa: E402
from run import machine, table  # noqa: E402

from diffusion_lib.checkpoints import load_model  # noqa: E402
from diffusion_lib.data import load_mnist  # noqa: E402
from diffusion_lib.measure.metrics import load_classifier, mnist_test_features  # noqa: E402
from diffusion_lib.schedules import make_schedule  # noqa: E402
from diffusion_lib.training import TrainConfig, Trainer, train  # noqa: E402

BASE = dict(backbone="unet", backbone_kwargs={"base": 16}, batch_size=64, lr=3e-3, warmup_steps=100,
            lr_decay="cosine", ema_decay=0.999, precision="bf16", checkpoint_every=500)

# name -> what differs from BASE
ROWS = {
    "eps": {},
    "x0": {"objective": "x0"},
    "v": {"objective": "v"},
    "eps+min_snr": {"loss_weighting": "min_snr"},
    "v+min_snr": {"objective": "v", "loss_weighting": "min_snr"},
    "eps, cosine": {"schedule": "cosine"},
    "v, cosine": {"objective": "v", "schedule": "cosine"},
    "eps, EMA 0.9995": {"ema_decay": 0.9995},
    "eps, shipped width (1, 2, 8)": {"backbone_kwargs": {"base": 16, "mults": [1, 2, 8]}},
    "flow": {"objective": "flow"},      # scored with flow Euler 50 (a velocity network has no DDIM)
}


def config_for(name: str, steps: int, minutes: float) -> TrainConfig:
    return TrainConfig(**{**BASE, **ROWS[name], "steps": steps, "max_minutes": minutes})


def steps_per_second(name: str, images: torch.Tensor, probe_steps: int = 50) -> float:
    """This row's training speed on this machine now: optimizer steps per second over probe_steps steps
    (after 5 warm-up steps), in a throwaway Trainer."""
    trainer = Trainer(config_for(name, steps=10**6, minutes=1.0))
    for _ in range(5):
        trainer.train_step(images[trainer.batch_indices(images.shape[0])])
    start = time.monotonic()
    for _ in range(probe_steps):
        trainer.train_step(images[trainer.batch_indices(images.shape[0])])
    return probe_steps / (time.monotonic() - start)


def run_row(name: str, args, images, classifier, reference) -> dict:
    rate = steps_per_second(name, images)
    steps = max(200, int(rate * 60 * args.minutes))
    config = config_for(name, steps, args.minutes)
    out = Path(args.out) / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    start = time.monotonic()
    result = train(config, images, out_dir=out, resume=False, progress=False)
    minutes = (time.monotonic() - start) / 60
    model = load_model(out / "last.pt")
    schedule = make_schedule(config.schedule, config.T)
    scores = evaluate(model, schedule, classifier, reference, n=args.n, steps=50,
                      sampler="flow-euler" if config.objective == "flow" else "ddim")
    losses = result.history["loss"][-100:]
    return {"row": name, "changes": ROWS[name], "config": dataclasses.asdict(config), "probe_steps_per_s": round(rate, 2),
            "steps": result.step, "train_minutes": round(minutes, 2),
            "images_per_s": round(result.step * config.batch_size / (60 * minutes), 1),
            "loss_last_100": round(sum(losses) / len(losses), 5), "load_average": os.getloadavg(),
            **{k: scores[k] for k in ("n", "confident_share", "frechet_distance", "effective_classes")}}


def markdown(record: dict) -> str:
    rows = record["rows"]
    return table(["recipe (change from the base)", "steps", "images/s", "loss (last 100)", "confident share",
                  f"Fréchet distance (n = {rows[0]['n'] if rows else '?'})"],
                 [[r["row"], f"{r['steps']:,}", f"{r['images_per_s']:.0f}", f"{r['loss_last_100']:.4f}",
                   f"{r['confident_share']:.3f}", f"{r['frechet_distance']:.1f}"] for r in rows])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="training wall time of every row")
    p.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--n", type=int, default=500, help="samples scored per row")
    p.add_argument("--out", required=True, help="folder for the checkpoints and results.json (outside the repository)")
    args = p.parse_args(argv)
    if not args.minutes > 0 or args.n < 1:
        p.error("--minutes must be > 0 and --n >= 1")
    torch.set_num_threads(1)
    results_path = Path(args.out) / "results.json"
    record = json.loads(results_path.read_text()) if results_path.exists() else {"rows": []}
    record.update(command="python benchmarks/recipes.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  base=BASE, machine=machine())
    done = {r["row"] for r in record["rows"] if r["config"]["max_minutes"] == args.minutes}
    images, _ = load_mnist(train=True)
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    print(f"Machine: {machine()}\n{len(args.rows)} rows of {args.minutes:g} min; base recipe {BASE}", flush=True)
    for name in args.rows:
        if name in done:
            print(f"{name}: already in {results_path}, kept", flush=True)
            continue
        row = run_row(name, args, images, classifier, reference)
        record["rows"] = [r for r in record["rows"] if r["row"] != name] + [row]
        results_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = results_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, results_path)
        print(f"{name}: {row['steps']} steps in {row['train_minutes']:.1f} min ({row['images_per_s']:.0f} img/s), "
              f"loss {row['loss_last_100']:.4f}, confident share {row['confident_share']:.3f}, "
              f"Frechet {row['frechet_distance']:.1f}", flush=True)
    print("\n" + markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
