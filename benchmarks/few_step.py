"""Few-step students of the shipped flow U-Nets (notebook 12): reflow's pairs and the reflow student.

    # 1. the pairs: N noises (seed 1, drawn on the CPU) and the teacher's ODE end from each
    python benchmarks/few_step.py pairs --teacher unet_flow_cond --n 30000 --heun-steps 10 --out runs/nb12/pairs.pt
    # 2. the student: flow matching on those pairs, from the teacher's weights (an unconditional network)
    python benchmarks/few_step.py reflow --pairs runs/nb12/pairs.pt --steps 6000 --out runs/nb12/reflow

A class-conditional teacher is run at w = 1 (its conditional velocity, no guidance) with a label that the noise
decides (objectives.noise_labels: uniform over the digits, and a function of the noise, so the pairing stays a
map noise -> image that an unconditional student can learn). The ends are clipped to [-1, 1], the images' range.
The MeanFlow model needs no pairs; it trains from the command line (its card has the command):

    python -m diffusion_lib train --objective meanflow --base 16 --backbone-kwargs '{"mults": [1, 2, 8], "interval": true}' \\
        --init-from unet_flow ...
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from diffusion_lib.checkpoints import model_from_checkpoint, save_checkpoint, load_checkpoint
from diffusion_lib.objectives import noise_labels, reflow_pairs
from diffusion_lib.samplers import with_precision
from diffusion_lib.schedules import make_schedule
from diffusion_lib.training import TrainConfig, teacher_checkpoint, train

NOISE_SEED = 1      # not the evaluation's seed 0: the student never sees the noises it is scored on


def make_pairs(teacher: str, n: int, heun_steps: int, out: Path, minutes: float | None = None,
               chunk: int = 1000) -> dict:
    """Noises (seed NOISE_SEED) and the teacher's ODE ends, made `chunk` at a time and saved after each chunk
    (so a student can start from what is there); with `minutes`, it stops after the chunk that passes them."""
    checkpoint = teacher_checkpoint(teacher)
    network = model_from_checkpoint(checkpoint)
    model = with_precision(network, "bf16")       # bfloat16 autocast: the speed the shipped models are sampled at
    schedule = make_schedule(checkpoint["schedule"]["name"], checkpoint["schedule"]["T"])
    noise = torch.randn((n, *network.image_shape), generator=torch.Generator().manual_seed(NOISE_SEED))
    labels = noise_labels(noise, network.num_classes) if network.num_classes is not None else None
    start, ends = time.monotonic(), []
    for i in range(0, n, chunk):
        ends.append(reflow_pairs(model, noise[i:i + chunk], schedule, heun_steps,
                                 y=None if labels is None else labels[i:i + chunk], batch_size=500, progress=False))
        done, seconds = i + ends[-1].shape[0], time.monotonic() - start
        record = {"teacher": teacher, "n": done, "heun_steps": heun_steps, "nfe_per_pair": 2 * heun_steps - 1,
                  "seed": NOISE_SEED, "precision": "bf16", "labels": "noise_labels" if labels is not None else None,
                  "seconds": round(seconds, 1), "seconds_per_1000": round(1000 * seconds / done, 2),
                  "threads": torch.get_num_threads()}
        save_checkpoint({"arch": checkpoint["arch"], "pairs": record, "noise": noise[:done],
                         "ends": torch.cat(ends).clamp(-1, 1),
                         "labels": None if labels is None else labels[:done]}, out)
        print(json.dumps(record), flush=True)
        if minutes is not None and seconds > 60 * minutes:
            break
    return record


def describe(record: dict) -> str:
    return (f"{record['n']} pairs: noise seed {record['seed']}, the ODE end of {record['teacher']} by flow Heun "
            f"{record['heun_steps']} steps" + (", labels noise_labels, w = 1" if record["labels"] else "")
            + ", clipped to [-1, 1]")


def train_reflow(pairs_path: Path, out: Path, steps: int, lr: float, batch_size: int, warmup: int,
                 max_minutes: float | None) -> None:
    pairs = load_checkpoint(pairs_path)
    record = pairs["pairs"]
    kwargs = {k: v for k, v in pairs["arch"]["kwargs"].items() if k != "num_classes"}
    config = TrainConfig(backbone="unet", backbone_kwargs=kwargs, objective="flow", steps=steps,
                         max_minutes=max_minutes, batch_size=batch_size, lr=lr, warmup_steps=warmup,
                         lr_decay="cosine", ema_decay=0.999, precision="bf16", init_from=record["teacher"],
                         pairs=describe(record), checkpoint_every=250)
    start = time.monotonic()
    result = train(config, pairs["ends"], noise=pairs["noise"], out_dir=out)
    print(json.dumps({"step": result.step, "minutes": round((time.monotonic() - start) / 60, 1),
                      "last_100_loss": sum(result.history["loss"][-100:]) / max(1, len(result.history["loss"][-100:]))}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pairs", help="noises and the teacher's ODE ends from them")
    a.add_argument("--teacher", default="unet_flow_cond", help="a shipped flow model or a checkpoint")
    a.add_argument("--n", type=int, default=30000)
    a.add_argument("--heun-steps", type=int, default=10)
    a.add_argument("--minutes", type=float, help="stop after the chunk of 1,000 pairs that passes this wall time")
    a.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("reflow", help="train the student on the pairs, from the teacher's weights")
    b.add_argument("--pairs", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--steps", type=int, default=6000)
    b.add_argument("--lr", type=float, default=5e-4)
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--warmup", type=int, default=100)
    b.add_argument("--minutes", type=float, help="stop training after this wall time (a checkpoint is written then)")
    for q in (a, b):
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "pairs":
        make_pairs(args.teacher, args.n, args.heun_steps, args.out, args.minutes)
    else:
        train_reflow(args.pairs, args.out, args.steps, args.lr, args.batch_size, args.warmup, args.minutes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
