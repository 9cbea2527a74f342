"""Host<->device copies and reads per step on a (emulated) GPU: a DDPM step, a DDIM step and a training step.

    python benchmarks/device_syncs.py                 # the library found on PYTHONPATH
    PYTHONPATH=/path/to/other/checkout python benchmarks/device_syncs.py   # another version of it

Runs under the CUDA emulation of tests/cuda_emulation.py (no GPU needed): the network and the data are "moved" to
cuda, each step is counted, and the steady per-step counts are printed (the median over the steps after the first,
which sets things up). h2d: host-to-device copies; d2h: values read back to the host (each waits for the GPU).
A step with both at 0 queues its work and returns, so the GPU never waits for Python.
"""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # this checkout's emulation
from cuda_emulation import EmulatedCuda  # noqa: E402

import diffusion_lib as dl  # noqa: E402


def per_step(cuda: EmulatedCuda, steps) -> dict:
    """Median h2d and d2h over the steps of an iterator, skipping the first."""
    counts, last = [], cuda.snapshot()
    for _ in steps:
        now = cuda.snapshot()
        counts.append({k: now[k] - last[k] for k in ("h2d", "d2h")})
        last = now
    counts = counts[1:] or counts
    return {k: statistics.median(c[k] for c in counts) for k in ("h2d", "d2h")}


def generator(seed: int) -> torch.Generator:
    """A CPU generator where the library draws seeded noise on the CPU (what the course asks for); a CUDA one for a
    version of the library that refuses it."""
    return torch.Generator().manual_seed(seed)


def main() -> None:
    print(f"diffusion_lib from {Path(dl.__file__).parent.parent.name}/, torch {torch.__version__}, emulated CUDA")
    rows = []
    with EmulatedCuda() as cuda:
        model = dl.UNet(base=16).to("cuda").eval()
        schedule = dl.make_schedule("linear", 1000)
        x_T = torch.randn((8, 1, 28, 28), generator=torch.Generator().manual_seed(0)).to("cuda")

        def draw(seed):
            try:
                g = generator(seed)
                next(iter(dl.samplers.ddpm_sample_progressive(model, x_T, schedule, generator=g)))
                return g
            except RuntimeError:          # this version draws on x's device: give it what it needs
                return torch.Generator(device="cuda").manual_seed(seed)

        g = draw(0)
        steps = iter(dl.samplers.ddpm_sample_progressive(model, x_T, schedule, generator=g))
        rows.append(("DDPM step", per_step(cuda, (next(steps) for _ in range(20)))))
        steps = iter(dl.samplers.ddim_sample_progressive(model, x_T, schedule, num_steps=20, eta=0.0))
        rows.append(("DDIM step (eta = 0)", per_step(cuda, steps)))
        steps = iter(dl.samplers.ddim_sample_progressive(model, x_T, schedule, num_steps=20, eta=1.0, generator=draw(1)))
        rows.append(("DDIM step (eta = 1)", per_step(cuda, (s for s, _ in zip(steps, range(19))))))

        images = torch.rand((256, 1, 28, 28), generator=torch.Generator().manual_seed(0)) * 2 - 1
        config = dl.TrainConfig(backbone="unet", backbone_kwargs={"base": 16}, steps=20, batch_size=16,
                                checkpoint_every=1000)
        marks = []
        dl.train(config, images, device="cuda", progress=False, callback=lambda trainer: marks.append(cuda.snapshot()))
        diffs = [{k: b[k] - a[k] for k in ("h2d", "d2h")} for a, b in zip(marks, marks[1:])]
        rows.append(("training step (train())", {k: statistics.median(d[k] for d in diffs) for k in ("h2d", "d2h")}))
    print(f"{'step':<26}{'h2d copies':>12}{'d2h reads':>12}")
    for name, c in rows:
        print(f"{name:<26}{c['h2d']:>12g}{c['d2h']:>12g}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
