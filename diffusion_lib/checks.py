"""Checks of the public functions' arguments, written once: numbers as numbers, integers (numpy's too),
timesteps in range, tensors of matching shapes.

Each check raises a ValueError whose message says what is wrong and, after "; ", how to fix it. They read
no tensor values off a GPU except where a range must be known (timesteps, which the schedules index with).
"""
from __future__ import annotations

import math
import numbers

import torch

from .device import known_within


def _span(lower, upper, lower_open: bool, upper_open: bool) -> str:
    if lower is None and upper is None:
        return ""
    if upper is None:
        return f" {'>' if lower_open else '>='} {lower:g}"
    if lower is None:
        return f" {'<' if upper_open else '<='} {upper:g}"
    return f" lie in {'(' if lower_open else '['}{lower:g}, {upper:g}{')' if upper_open else ']'}"


def check_number(value, name: str, lower: float | None = None, upper: float | None = None, lower_open: bool = False,
                 upper_open: bool = False, hint: str = "") -> float:
    """value as a float, if it is a finite real number (a Python or numpy number, or a 0-dim tensor; not a bool or
    a string) in the range; else a ValueError naming `name`, the range and `hint`."""
    span = _span(lower, upper, lower_open, upper_open)       # " lie in [a, b]", " >= a", ...
    where = span.replace(" lie in", " in")                     # "a number in [a, b]"
    hint = f" ({hint})" if hint else ""
    is_tensor = (isinstance(value, torch.Tensor) and value.ndim == 0
                 and (value.dtype.is_floating_point or value.dtype in (torch.int32, torch.int64)))
    if isinstance(value, str):
        raise ValueError(f"{name} must be a number{where}{hint}, got the string {value!r}; pass a number, "
                         f"e.g. {value.strip()} without quotes")
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or is_tensor):
        raise ValueError(f"{name} must be a number{where}{hint}, got {value!r} ({type(value).__name__}); "
                         f"pass a number, e.g. {name.split()[-1]}={lower if lower is not None else 0:g}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number{where}{hint}, got {number}; pass a finite number")
    if ((lower is not None and (number < lower or (lower_open and number == lower)))
            or (upper is not None and (number > upper or (upper_open and number == upper)))):
        raise ValueError(f"{name} must{span if ' lie in' in span else ' be' + span}{hint}, got {number:g}; "
                         f"pass a number{where}")
    return number


def check_integer(value, name: str, lower: int | None = None, upper: int | None = None, hint: str = "") -> int:
    """value as an int, if it is an integer (Python's or numpy's; not a bool, a float or a string) in
    [lower, upper]; else a ValueError naming `name` and the range."""
    span = _span(lower, upper, False, False).replace(" lie in", " in")
    hint = f" ({hint})" if hint else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer{span}{hint}, got {value!r} ({type(value).__name__}); "
                         "pass an int" + (", e.g. int(value)" if isinstance(value, numbers.Real) else ""))
    value = int(value)
    if (lower is not None and value < lower) or (upper is not None and value > upper):
        raise ValueError(f"{name} must be an integer{span}{hint}, got {value}; pass one{span}")
    return value


def check_timesteps(t: torch.Tensor, T: int, what: str = "this schedule") -> None:
    """Raise a ValueError unless t is an integer tensor with every entry in [0, T-1]."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"timesteps must be a (B,) tensor of integers (torch.long), got {type(t).__name__}; "
                         "use torch.full((B,), t, dtype=torch.long)")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"timesteps must be an integer tensor (torch.long), got dtype {t.dtype}; "
                         "use torch.full((B,), t, dtype=torch.long)")
    if t.numel() and not known_within(t, 0, T - 1) and bool(((t < 0) | (t > T - 1)).any()):   # one device sync, unless
        # t carries the mark of timesteps the library built itself (device.mark_known_range); min and max: the message
        raise ValueError(f"timestep out of range: got values in [{int(t.min())}, {int(t.max())}], "
                         f"but {what} has T = {T}, so t must lie in [0, {T - 1}]")


def check_step_timestep(t, T: int, name: str = "t") -> int:
    """A sampler step's timestep: an integer in [-1, T-1] (-1: the clean image), as an int."""
    return check_integer(t, f"timestep {name}", -1, T - 1, hint="-1: the clean image; T - 1: pure noise")


def check_same_shape(a: torch.Tensor, b, name_a: str, name_b: str) -> None:
    """Raise a ValueError unless b is a tensor of a's shape (no broadcasting at a public boundary)."""
    if not isinstance(b, torch.Tensor) or b.shape != a.shape:
        shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {shape}; "
                         f"pass {name_b} of shape {tuple(a.shape)}")
