"""Where tensors live: CUDA if present, then Apple's MPS, then the CPU.

Library functions never call this behind your back: they follow the device of their inputs.
Notebooks and the command line call default_device() once and move the model and data there.
"""
from __future__ import annotations

import functools
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
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index is not None and device.index >= torch.cuda.device_count())):
        raise ValueError(f"{what}: this machine has {torch.cuda.device_count()} CUDA devices; {fix}")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{what}: Apple's MPS is not available on this machine; {fix}")
    if device.type not in ("cpu", "cuda", "mps", *also):
        raise ValueError(f"{what} is not one of cpu, cuda, cuda:N or mps; {fix}")
    return device


def fast_precision(device: torch.device | str) -> str:
    """The precision to train and time in on `device`: "bf16" (bfloat16 autocast) where the hardware computes in
    bfloat16 natively, "fp32" where bfloat16 would be emulated and slower:

        CPU    bf16 with AVX512-BF16 or AMX instructions (recent Intel Xeons, such as the course's machine)
        CUDA   bf16 with compute capability >= 8 (A100, L4, H100, RTX 30xx and later); a T4 (Colab's free GPU) is 7.5
        other  fp32
    """
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp32"
    if device.type == "cpu":
        return "bf16" if _cpu_has_bf16() else "fp32"
    return "fp32"


@functools.lru_cache(maxsize=None)
def _cpu_has_bf16() -> bool:
    """Whether the CPU has AVX512-BF16 or AMX-BF16 (read from /proc/cpuinfo's flags; False where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def synchronize(device: torch.device | str) -> None:
    """Wait until the GPU (CUDA or MPS) has finished the work queued on `device`; nothing to wait for on a CPU.

    GPU calls return before the work is done, so a timing must call this before it reads the clock.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# ----------------------------------------------------------------------------- checks that wait for nothing
# A range check of a tensor on a GPU, bool(((t < 0) | (t > T - 1)).any()), waits until the GPU has caught up and reads
# the answer back: done at every step, it keeps the GPU idle while Python waits. Timesteps and labels that the library
# builds itself, from numbers it has already checked, carry the range they are known to lie in, and the checks skip
# them. The mark belongs to that tensor object only: anything computed from it is checked again.

def mark_known_range(x: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """Mark x as holding integers in [low, high] (the caller has checked it); returns x."""
    x._known_range = (int(low), int(high))
    return x


def known_within(x: torch.Tensor, low: int, high: int) -> bool:
    """Whether x carries a mark saying that its entries lie in [low, high]."""
    known = getattr(x, "_known_range", None)
    return known is not None and low <= known[0] and known[1] <= high


def moved(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """x on `device` (a copy when it is elsewhere), with x's mark if it has one: a move changes no value."""
    y = x.to(device)
    known = getattr(x, "_known_range", None)
    return mark_known_range(y, *known) if known is not None and y is not x else y
