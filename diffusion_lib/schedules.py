"""Noise schedules: the variances beta_t and every quantity derived from them.

Notation (one name per symbol, used everywhere in the library):

    T                    number of diffusion steps; code timesteps are t = 0 .. T-1
    beta[t]              variance added at step t                       (Ho et al. 2020, Eq. 2)
    alpha[t]             1 - beta[t]
    alpha_bar[t]         prod_{s<=t} alpha[s]                           (Ho et al. 2020, Eq. 4)
    alpha_bar_prev[t]    alpha_bar[t-1], with alpha_bar_prev[0] = 1 (the clean image)
    snr[t]               alpha_bar[t] / (1 - alpha_bar[t]), signal-to-noise ratio
    beta_tilde[t]        posterior variance beta[t] (1 - alpha_bar_prev[t]) / (1 - alpha_bar[t])  (Eq. 7)
    posterior_coef_x0[t] sqrt(alpha_bar_prev[t]) beta[t] / (1 - alpha_bar[t])        the posterior mean (Eq. 7) is
    posterior_coef_xt[t] sqrt(alpha[t]) (1 - alpha_bar_prev[t]) / (1 - alpha_bar[t])  coef_x0 x_0 + coef_xt x_t

Code timestep t is the paper's t + 1: x_0 in code is the clean image and the first noisy
state is produced by beta[0]. Everything is computed in float64 and stored in float32.
"""
from __future__ import annotations

import functools
import math
import numbers
import weakref
from dataclasses import dataclass, fields

import torch

from .checks import check_timesteps
from .device import known_within, mark_known_range

# The defaults of Ho et al. (2020): T = 1000 steps, betas linear from 1e-4 to 0.02.
DEFAULT_T = 1000
DEFAULT_BETA_START = 1e-4
DEFAULT_BETA_END = 0.02
# Nichol & Dhariwal (2021): offset s = 0.008 and betas clipped at 0.999.
COSINE_S = 0.008
COSINE_MAX_BETA = 0.999


def linear_beta_schedule(T: int = DEFAULT_T, beta_start: float = DEFAULT_BETA_START,
                         beta_end: float = DEFAULT_BETA_END) -> torch.Tensor:
    """beta_t linear in t from beta_start to beta_end (Ho et al. 2020, Sec. 4), float64, shape (T,)."""
    T = _check_T(T)
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_alpha_bar(t: torch.Tensor, T: int, s: float = COSINE_S) -> torch.Tensor:
    """alpha_bar(t) = f(t) / f(0) with f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2)  (Nichol & Dhariwal, Eq. 17)."""
    f = torch.cos(((t / T) + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f / f0


def cosine_beta_schedule(T: int = DEFAULT_T, s: float = COSINE_S,
                         max_beta: float = COSINE_MAX_BETA) -> torch.Tensor:
    """beta_t = 1 - alpha_bar(t+1) / alpha_bar(t), clipped at max_beta (Nichol & Dhariwal 2021), float64, shape (T,)."""
    T = _check_T(T)
    steps = torch.arange(T + 1, dtype=torch.float64)
    alpha_bar = cosine_alpha_bar(steps, T, s)
    beta = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return beta.clamp(max=max_beta)


BETA_SCHEDULES = {"linear": linear_beta_schedule, "cosine": cosine_beta_schedule}


@dataclass(frozen=True)
class Schedule:
    """All per-timestep quantities of one noise schedule, each a float32 tensor of shape (T,)."""

    name: str
    T: int
    beta: torch.Tensor
    alpha: torch.Tensor
    alpha_bar: torch.Tensor
    alpha_bar_prev: torch.Tensor
    sqrt_alpha_bar: torch.Tensor
    sqrt_one_minus_alpha_bar: torch.Tensor
    snr: torch.Tensor
    log_snr: torch.Tensor
    beta_tilde: torch.Tensor
    posterior_coef_x0: torch.Tensor
    posterior_coef_xt: torch.Tensor

    def check_timesteps(self, t: torch.Tensor) -> None:
        """Raise a ValueError unless every entry of t is an integer timestep in [0, T-1]."""
        _check_timestep_values(t, self.T)

    def as_dict(self) -> dict:
        """The tensors by name (what notebook 01 plots)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}


class UnderflowError(ValueError):
    """A schedule whose float32 alpha_bar falls below the smallest normal float32 number."""


def schedule_from_betas(beta: torch.Tensor, name: str = "custom") -> Schedule:
    """Derive every quantity from beta (float64 in, float32 out)."""
    beta = beta.to(torch.float64)
    if beta.ndim != 1 or beta.numel() < 1:
        raise ValueError(f"beta must be a 1-D tensor with at least one entry, got shape {tuple(beta.shape)}")
    if not bool(((beta > 0) & (beta < 1)).all()):
        raise ValueError("every beta_t must lie strictly between 0 and 1")
    alpha = 1 - beta
    alpha_bar = torch.cumprod(alpha, dim=0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    snr = alpha_bar / (1 - alpha_bar)
    beta_tilde = beta * (1 - alpha_bar_prev) / (1 - alpha_bar)
    # The posterior coefficients divide by 1 - alpha_bar, which float32 alpha_bar (about 1 - 1e-4 at
    # t = 0) would give with 3-4 digits lost: they are computed here, in float64, once.
    q = dict(beta=beta, alpha=alpha, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev,
             sqrt_alpha_bar=alpha_bar.sqrt(), sqrt_one_minus_alpha_bar=(1 - alpha_bar).sqrt(),
             snr=snr, log_snr=snr.log(), beta_tilde=beta_tilde,
             posterior_coef_x0=alpha_bar_prev.sqrt() * beta / (1 - alpha_bar),
             posterior_coef_xt=alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar))
    q = {k: v.to(torch.float32) for k, v in q.items()}
    _check_representable(q["alpha_bar"], name)
    return Schedule(name=name, T=beta.numel(), **q)


def make_schedule(name: str = "linear", T: int = DEFAULT_T) -> Schedule:
    """The named schedule ("linear", the default of Ho et al., or "cosine") with T steps."""
    if name not in BETA_SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(BETA_SCHEDULES)}")
    try:
        return schedule_from_betas(BETA_SCHEDULES[name](T), name=name)
    except UnderflowError as e:
        raise UnderflowError(f"{e} (the {name} schedule stays representable up to T = {longest_schedule(name)})") from None


# Why refuse rather than clamp: at T = 20000 the linear schedule's alpha_bar reaches 1e-87, far below float32's
# smallest normal number (1.2e-38); stored in float32 it becomes 0 (or a subnormal with few digits), and
# x0_pred = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) divides by 0. Clamping alpha_bar would quietly break
# alpha_bar = prod(1 - beta) that every formula relies on, so such a schedule is refused at construction.
def _check_representable(alpha_bar: torch.Tensor, name: str) -> None:
    small = alpha_bar < torch.finfo(torch.float32).tiny
    if bool(small.any()):
        first = int(small.nonzero()[0])
        raise UnderflowError(f"the {name} schedule with T = {alpha_bar.numel()} is not representable in float32: "
                             f"alpha_bar_t falls below {torch.finfo(torch.float32).tiny:.2g}, the smallest normal "
                             f"float32, from t = {first} on ({int(small.sum())} timesteps), so it is stored as 0 or "
                             "with its digits lost, and sampling divides by sqrt(alpha_bar_t); use fewer steps T, "
                             "or the cosine schedule")


@functools.lru_cache(maxsize=None)
def longest_schedule(name: str) -> int:
    """The largest T for which make_schedule(name, T) is representable in float32 (bisection over T)."""
    def fits(T: int) -> bool:
        alpha_bar = torch.cumprod(1 - BETA_SCHEDULES[name](T), dim=0).to(torch.float32)
        return bool((alpha_bar >= torch.finfo(torch.float32).tiny).all())
    lo, hi = 1, 2
    while fits(hi):
        lo, hi = hi, 2 * hi
        if hi > 10**7:     # the cosine schedule never underflows
            return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def extract(values: torch.Tensor, t: torch.Tensor, x_shape) -> torch.Tensor:
    """Gather values[t] for a batch of timesteps and reshape to (B, 1, 1, 1) so it broadcasts over x.

    values: (T,) per-timestep scalars;  t: (B,) long in [0, T-1];  returns (B, 1, ..., 1) with len(x_shape) dims,
    on t's device (the schedule is copied there once per device, see on_device).
    Negative t is refused (Python's indexing would silently read values[T + t]).
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a (B,) tensor of timesteps, got {type(t).__name__}; "
                        "use torch.full((B,), t, dtype=torch.long)")
    _check_timestep_values(t, values.shape[0])
    out = on_device(values, t.device)[t]
    return out.reshape(t.shape[0], *([1] * (len(x_shape) - 1)))


# The schedule lives on the CPU; a GPU step needs it on the GPU. Copying it at every extract is one blocking copy per
# coefficient per step, so each schedule tensor is copied to a device once and the copy kept as long as the tensor.
_DEVICE_COPIES: dict = {}


def on_device(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """values on `device`: values itself where it already is, else a copy made at the first call for that device
    and kept while values lives. For the schedule's tensors, which are never changed in place."""
    device = torch.device(device)
    if values.device == device:
        return values
    key = (id(values), str(device))
    kept = _DEVICE_COPIES.get(key)
    if kept is not None and kept[0]() is values:
        return kept[1]
    copy = values.to(device)
    _DEVICE_COPIES[key] = (weakref.ref(values, lambda _, key=key: _DEVICE_COPIES.pop(key, None)), copy)
    return copy


def checked_timesteps(t: torch.Tensor, T: int, what: str = "this schedule") -> torch.Tensor:
    """t after _check_timestep_values, marked as checked (device.mark_known_range), so that the extracts and the
    network that use it read nothing back from a GPU. A view of t is marked, not t itself: changing t later is seen."""
    if known_within(t, 0, T - 1):
        return t
    _check_timestep_values(t, T, what)
    return mark_known_range(t.view(t.shape), 0, T - 1)


def _check_timestep_values(t: torch.Tensor, T: int, what: str = "this schedule") -> None:
    """Raise a ValueError unless t is an integer tensor with every entry in [0, T-1] (checks.check_timesteps). A tensor
    marked as known to lie there (device.mark_known_range: timesteps the library built from checked numbers) is not
    read again."""
    check_timesteps(t, T, what)


def _check_T(T: int) -> int:
    """T as an int (numpy integers welcome), if it is a positive integer."""
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise ValueError(f"T must be a positive integer number of steps, got {T!r}; pass an int >= 1 (Ho et al. use 1000)")
    return int(T)
