"""Does channels_last or torch.compile make a training step faster on this CPU? Side by side, in one run.

    python benchmarks/step_variants.py --threads 2                       # the shipped U-Net, batch 128
    python benchmarks/step_variants.py --threads 1 --variants plain channels_last --rounds 5

Each variant trains the same network (the shipped unconditional U-Net's architecture, fresh weights, seed 0) on
the same random batch: the noise-prediction loss, backward, an AdamW step, in fp32 and under bf16 autocast.
The variants take turns, round after round (a few seconds each), so that the machine's drift, which is larger
than most of these differences, falls on all of them alike; the table gives each variant's median images/s
over the rounds and its ratio to the plain step of the same precision measured in the same rounds.

    plain           the course's training step as train() runs it
    channels_last   model and batch in torch.channels_last memory format
    compile         torch.compile(model) (inductor; on CPU it needs a C++ compiler, and fuses the GroupNorm,
                    SiLU and additions around each convolution: "fused normalisation")

A number, not a test: it prints the machine (CPU model, flags, threads, torch) with the table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from run import machine, table, training_step  # noqa: E402

from diffusion_lib.backbones import build_backbone  # noqa: E402
from diffusion_lib.pretrained import load_pretrained  # noqa: E402

VARIANTS = ("plain", "channels_last", "compile")


def make_step(variant: str, precision: str, batch_size: int):
    """A zero-argument training step of the shipped U-Net's architecture in `variant` and `precision`."""
    torch.manual_seed(0)
    arch = load_pretrained("unet").arch
    model = build_backbone(arch["name"], **arch["kwargs"])
    x0 = torch.rand(batch_size, 1, 28, 28) * 2 - 1
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x0 = x0.contiguous(memory_format=torch.channels_last)
    network = torch.compile(model) if variant == "compile" else model
    return training_step(network, model.parameters(), x0, precision)


def images_per_second(step, batch_size: int, seconds: float) -> float:
    steps, start = 0, time.monotonic()
    while steps < 2 or time.monotonic() - start < seconds:
        step()
        steps += 1
    return steps * batch_size / (time.monotonic() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3, help="turns of every variant (the median is reported)")
    p.add_argument("--seconds", type=float, default=4.0, help="timed seconds per variant per round")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.rounds < 1 or args.seconds <= 0 or args.threads < 1:
        p.error("--batch-size, --rounds and --threads must be >= 1 and --seconds > 0")
    torch.set_num_threads(args.threads)
    print(f"Machine: {machine()}\nCommand: python {' '.join(sys.argv)}", flush=True)
    settings = [(v, prec) for prec in args.precisions for v in args.variants]
    steps, warmup = {}, {}
    for setting in settings:                 # build and warm up every variant first (compile happens here)
        start = time.monotonic()
        try:
            steps[setting] = make_step(*setting, args.batch_size)
            steps[setting]()
            steps[setting]()
        except Exception as e:               # noqa: BLE001 (torch.compile's failures vary by machine): report, go on
            print(f"{setting[0]}, {setting[1]}: does not run here ({type(e).__name__}: {str(e).splitlines()[0]})")
            steps.pop(setting, None)
            continue
        warmup[setting] = time.monotonic() - start
        print(f"{setting[0]}, {setting[1]}: ready after {warmup[setting]:.1f} s", flush=True)
    rates = {s: [] for s in steps}
    for r in range(args.rounds):
        for setting, step in steps.items():
            rates[setting].append(images_per_second(step, args.batch_size, args.seconds))
        print(f"round {r + 1}: " + ", ".join(f"{v} {prec} {rates[(v, prec)][-1]:.0f}" for v, prec in steps), flush=True)
    rows = []
    for (variant, precision), values in rates.items():
        plain = rates.get(("plain", precision))
        ratio = statistics.median(a / b for a, b in zip(values, plain)) if plain else None
        rows.append([variant, precision, f"{statistics.median(values):,.0f}",
                     f"{min(values):,.0f}-{max(values):,.0f}", "" if ratio is None else f"{ratio:.2f}",
                     f"{warmup[(variant, precision)]:.0f}"])
    print()
    print(table(["variant", "precision", "images/s (median)", "range over rounds",
                 "ratio to plain (median of the rounds' ratios)", "warm-up s"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
