"""Where tensors live: CUDA if present, then Apple's MPS, then the CPU.

Library functions never call this behind your back: they follow the device of their inputs.
Notebooks and the command line call default_device() once and move the model and data there.
"""
from __future__ import annotations

import os

import torch

DEVICE_ENV = "DIFFUSION_LIB_DEVICE"   # e.g. DIFFUSION_LIB_DEVICE=cpu forces the CPU


def default_device() -> torch.device:
    """$DIFFUSION_LIB_DEVICE if set (checked: a device this machine has), else cuda, then mps, then cpu."""
    forced = os.environ.get(DEVICE_ENV)
    if forced:
        return check_device(forced, f"{DEVICE_ENV}={forced}", f"set {DEVICE_ENV} to cpu, or unset it to take the best "
                            "available", also=("meta",))     # meta: shapes without data, for tests
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(device: torch.device | str, what: str | None = None, fix: str = "use cpu", also=()) -> torch.device:
    """`device` as a torch.device, if it is cpu, cuda, cuda:N or mps (or a type in `also`) and this machine has it;
    else a ValueError naming `what` (default: the device) and `fix`."""
    what = what or repr(str(device))
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{what} is not a device (cpu, cuda, cuda:N or mps); {fix}") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"{what}: this machine has {torch.cuda.device_count()} CUDA devices; {fix}")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{what}: Apple's MPS is not available on this machine; {fix}")
    if device.type not in ("cpu", "cuda", "mps", *also):
        raise ValueError(f"{what} is not one of cpu, cuda, cuda:N or mps; {fix}")
    return device


def synchronize(device: torch.device | str) -> None:
    """Wait until the GPU (CUDA or MPS) has finished the work queued on `device`; nothing to wait for on a CPU.

    GPU calls return before the work is done, so a timing must call this before it reads the clock.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
