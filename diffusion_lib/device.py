"""Where tensors live: CUDA if present, then Apple's MPS, then the CPU.

Library functions never call this behind your back: they follow the device of their inputs.
Notebooks and the command line call default_device() once and move the model and data there.
"""
from __future__ import annotations

import os

import torch

DEVICE_ENV = "DIFFUSION_LIB_DEVICE"   # e.g. DIFFUSION_LIB_DEVICE=cpu forces the CPU


def default_device() -> torch.device:
    """$DIFFUSION_LIB_DEVICE if set, else cuda, then mps, then cpu."""
    forced = os.environ.get(DEVICE_ENV)
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def synchronize(device: torch.device | str) -> None:
    """Wait until the GPU (CUDA or MPS) has finished the work queued on `device`; nothing to wait for on a CPU.

    GPU calls return before the work is done, so a timing must call this before it reads the clock.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
