"""From scratch on this machine: how many minutes of training until the samples are digits.

    python benchmarks/time_to_digits.py                       # 10 minutes, scored every 2 (about 15 min in all)
    python benchmarks/time_to_digits.py --minutes 4 --every 2 --n 100 --out runs/ttd_short

Trains with the project's own command line (`python -m diffusion_lib train ...`, the recipe below),
stopping every EVERY minutes of wall time; after each stop it scores the checkpoint with the course's
metric and then lets the run continue (a resumed run continues exactly: same data order, optimizer,
learning-rate schedule and EMA). The minutes counted are the wall time of the training commands
(start-up and loading MNIST included), not the scoring in between.

The recipe is what reached digits fastest on a 2-core CPU: the small U-Net (base 16, 162k parameters),
class-conditional with label dropout so that classifier-free guidance can sharpen the samples,
batch 64, AdamW with lr 3e-3, 100 warm-up steps and a cosine decay to 0 at step STEPS, bf16 autocast,
EMA 0.999 with warm-up. Scores: N samples, DDIM 50 steps (eta 0), labels 0..9 in turn, at the guidance
weights W (w = 0 is the unconditional model, w = 1 the conditional one).

Not a test: the numbers depend on the machine and on what else runs on it (the load average is printed).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from evaluate import evaluate, load_network  # noqa: E402
from run import machine, table  # noqa: E402

from diffusion_lib.checkpoints import load_checkpoint  # noqa: E402
from diffusion_lib.measure.metrics import load_classifier, mnist_test_features  # noqa: E402

TARGET = 0.8     # confident share that counts as "digits" (real MNIST test digits: 0.972)


def train_command(args) -> list[str]:
    return [sys.executable, "-m", "diffusion_lib", "train", "--backbone", "unet", "--base", "16", "--conditional",
            "--batch-size", "64", "--lr", "3e-3", "--warmup", "100", "--lr-decay", "cosine", "--steps", str(args.steps),
            "--ema-decay", "0.999", "--precision", "bf16", "--threads", str(args.threads),
            "--checkpoint-every", "400", "--minutes", str(args.every), "--out", args.out]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="training wall time in all")
    p.add_argument("--every", type=float, default=2.0, help="score the checkpoint after every this many minutes")
    p.add_argument("--steps", type=int, default=2400, help="the cosine learning rate reaches 0 here (and training stops)")
    p.add_argument("--n", type=int, default=200, help="samples per score")
    p.add_argument("--w", type=float, nargs="*", default=[0.0, 3.0], help="guidance weights to score")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for training and scoring")
    p.add_argument("--out", default="runs/time_to_digits")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    if args.every <= 0 or args.minutes <= 0:
        p.error("--minutes and --every must be positive")
    if (Path(args.out) / "last.pt").exists():
        p.error(f"{args.out}/last.pt exists: this benchmark starts from scratch; pass another --out or delete it")
    torch.set_num_threads(args.threads)

    command = train_command(args)
    print(f"Machine: {machine()}\nTraining command, repeated until {args.minutes:g} min (it resumes each time):\n    "
          + " ".join(command[1:]) + "\n", flush=True)
    classifier = load_classifier()
    reference = mnist_test_features(classifier)

    rows, minutes, step = [], 0.0, 0
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    while minutes < args.minutes - 1e-6 and step < args.steps:
        start = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        minutes += (time.monotonic() - start) / 60
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-3000:])
            raise SystemExit(f"training failed (exit {done.returncode}); command: {' '.join(command)}")
        step = load_checkpoint(Path(args.out) / "last.pt")["step"]
        loss = re.search(r"last 100 steps ([0-9.]+)", done.stdout)
        model, schedule, _ = load_network(str(Path(args.out) / "last.pt"))       # eps: ddim, evaluate's default
        for w in args.w:
            s = evaluate(model, schedule, classifier, reference, n=args.n, steps=50, w=w)
            rows.append({"minutes": round(minutes, 2), "step": step, "images": step * 64, "w": w,
                         "loss_last_100": float(loss.group(1)) if loss else None,
                         **{k: s[k] for k in ("n", "guided_accuracy", "confident_share", "frechet_distance")}})
            r = rows[-1]
            print(f"{r['minutes']:5.1f} min  step {step:5d}  w={w:g}  guided accuracy {r['guided_accuracy']:.3f}  "
                  f"confident share {r['confident_share']:.3f}  Frechet {r['frechet_distance']:.1f}", flush=True)

    print("\n## Time to digits from scratch\n")
    print(table(["training minutes", "step", "images seen", "w", "confident share", "guided accuracy",
                 f"Frechet distance (n={args.n})"],
                [[f"{r['minutes']:.1f}", r["step"], f"{r['images']:,}", f"{r['w']:g}", f"{r['confident_share']:.3f}",
                  f"{r['guided_accuracy']:.3f}", f"{r['frechet_distance']:.1f}"] for r in rows]))
    for w in args.w:
        hit = next((r for r in rows if r["w"] == w and r["confident_share"] >= TARGET), None)
        print(f"\nw = {w:g}: " + (f"confident share >= {TARGET} after {hit['minutes']:.1f} min of training "
                                   f"(step {hit['step']})" if hit else f"confident share < {TARGET} throughout"))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "train_command":
                                               " ".join(command[1:]), "machine": machine(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
