"""Budgets: how much work the notebooks and the command line do, in one place.

Set DIFFUSION_LIB_QUICK=1 for quick mode (CI, a first look): tiny training runs and short
sampling chains, so every notebook runs in seconds. Notebooks read their budget from
`budget()` and never branch on the mode themselves.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

QUICK_ENV = "DIFFUSION_LIB_QUICK"


def quick_mode() -> bool:
    """True when $DIFFUSION_LIB_QUICK is set to anything but '', '0', 'false' or 'no'."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class Budget:
    mode: str                # "full" or "quick"
    train_steps: int         # optimizer steps of a training run in a notebook
    batch_size: int          # training batch size
    n_samples: int           # images in a sample grid
    ddim_steps: int          # steps of the default DDIM sampler
    ddpm_images: int         # images pushed through a full 1000-step DDPM chain
    metric_samples: int      # generated images scored by the quality metric
    sweep_samples: int       # images per point of a sweep (steps, eta, guidance weight, network evaluations)
    toy_train_steps: int     # optimizer steps of the 2-D toy's point network (notebook 10)
    toy_points: int          # 2-D points drawn, measured or sampled in the toy (notebook 10)


FULL = Budget(mode="full", train_steps=3000, batch_size=128, n_samples=64, ddim_steps=50, ddpm_images=16,
              metric_samples=500, sweep_samples=200, toy_train_steps=3000, toy_points=2000)
QUICK = Budget(mode="quick", train_steps=30, batch_size=32, n_samples=16, ddim_steps=10, ddpm_images=4,
               metric_samples=50, sweep_samples=20, toy_train_steps=100, toy_points=200)


def budget() -> Budget:
    """The budget in force: QUICK if quick_mode(), else FULL."""
    return QUICK if quick_mode() else FULL
