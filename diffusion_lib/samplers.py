"""Reverse-process samplers, written as plain functions over an explicit list of timestep pairs.

A sampler walks pairs (t, t_prev) from t = T-1 down to the clean image; t_prev = -1 stands for the
clean image itself (alpha_bar = 1). For example, DDIM with 5 steps on T = 1000:

    ddim_timesteps(5, 1000)               -> [999, 749, 500, 250, 0]
    timestep_pairs([999, 749, 500, 250, 0]) -> [(999, 749), (749, 500), (500, 250), (250, 0), (0, -1)]

and DDPM walks all T pairs (999, 998), ..., (1, 0), (0, -1).

Each *_progressive function is a generator that yields a SamplerStep after every update, with
x_t, the predicted clean image x0_pred and the new state x_prev, so a slider can scrub through a
chain that was run once. `final` runs a generator to the end and returns the image.

eps_model is any callable (x_t, t) -> predicted noise: a backbone, or guidance.cfg_eps_model(...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from .forward import check_image_batch, predict_x0_from_eps
from .schedules import Schedule, extract

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DDPM_VARIANCES = ("beta_tilde", "beta")


@dataclass
class SamplerStep:
    t: int                  # the timestep just denoised
    t_prev: int             # the timestep reached (-1: the clean image)
    x_t: torch.Tensor       # (B, C, H, W) the state at t
    x0_pred: torch.Tensor   # (B, C, H, W) the model's estimate of the clean image from x_t
    x_prev: torch.Tensor    # (B, C, H, W) the state at t_prev


def ddpm_timesteps(T: int) -> list[int]:
    """Every timestep, T-1 down to 0."""
    return list(range(T - 1, -1, -1))


def ddim_timesteps(num_steps: int, T: int) -> list[int]:
    """num_steps timesteps evenly spaced from T-1 down to 0 (both ends included when num_steps >= 2)."""
    if not isinstance(num_steps, int) or not 1 <= num_steps <= T:
        raise ValueError(f"the number of sampling steps must be an integer in [1, T] = [1, {T}], got {num_steps!r}")
    if num_steps == 1:
        return [T - 1]
    grid = torch.linspace(T - 1, 0, num_steps, dtype=torch.float64).round().long().tolist()
    return grid  # spacing (T-1)/(S-1) >= 1 keeps the rounded values distinct


def timestep_pairs(timesteps: list[int]) -> list[tuple[int, int]]:
    """[(t_0, t_1), (t_1, t_2), ..., (t_last, -1)] from a decreasing list of timesteps."""
    return list(zip(timesteps, [*timesteps[1:], -1]))


def alpha_bar_at(schedule: Schedule, t: int) -> float:
    """alpha_bar_t as a float, with alpha_bar_{-1} = 1 (the clean image)."""
    return 1.0 if t < 0 else float(schedule.alpha_bar[t])


def _randn(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _batch_t(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


# ----------------------------------------------------------------------------- DDPM

def ddpm_step(x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, schedule: Schedule,
              variance: str = "beta_tilde", noise: torch.Tensor | None = None) -> torch.Tensor:
    """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, Eq. 11 / Algorithm 2):

        x_{t-1} = 1 / sqrt(alpha_t) * (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) + sigma_t z

    with sigma_t^2 = beta_tilde_t (default) or beta_t; noise z is None (no noise) at the last step.
    """
    if variance not in DDPM_VARIANCES:
        raise ValueError(f"unknown DDPM variance {variance!r}; choose one of {DDPM_VARIANCES}")
    mean = (x_t - extract(schedule.beta, t, x_t.shape) / extract(schedule.sqrt_one_minus_alpha_bar, t, x_t.shape) * eps) \
        / extract(schedule.alpha, t, x_t.shape).sqrt()
    if noise is None:
        return mean
    sigma2 = extract(schedule.beta_tilde if variance == "beta_tilde" else schedule.beta, t, x_t.shape)
    return mean + sigma2.sqrt() * noise


def ddpm_sample_progressive(eps_model: EpsModel, x_T: torch.Tensor, schedule: Schedule, variance: str = "beta_tilde",
                            generator: torch.Generator | None = None, progress: bool = False) -> Iterator[SamplerStep]:
    """Ancestral sampling over all T steps from x_T; no noise is added at the final step t = 0."""
    check_image_batch(x_T, "x_T")
    if variance not in DDPM_VARIANCES:
        raise ValueError(f"unknown DDPM variance {variance!r}; choose one of {DDPM_VARIANCES}")
    x = x_T
    for t, t_prev in tqdm(timestep_pairs(ddpm_timesteps(schedule.T)), desc="DDPM", disable=not progress):
        tt = _batch_t(x, t)
        with torch.no_grad():
            eps = eps_model(x, tt)
        noise = _randn(x, generator) if t_prev >= 0 else None
        x_prev = ddpm_step(x, eps, tt, schedule, variance, noise)
        yield SamplerStep(t, t_prev, x, predict_x0_from_eps(x, tt, eps, schedule), x_prev)
        x = x_prev


# ----------------------------------------------------------------------------- DDIM

def ddim_sigma(alpha_bar_t: float, alpha_bar_prev: float, eta: float) -> float:
    """sigma_t(eta) = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
    (Song et al. 2021, Eq. 16). eta = 0: deterministic DDIM; eta = 1 on the full grid: DDPM's beta_tilde."""
    if eta == 0:
        return 0.0  # deterministic; also avoids 0 / 0 when inversion starts from the clean image (alpha_bar_t = 1)
    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float, eta: float,
              noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update x_t -> x_{t_prev} (Song et al. 2021, Eq. 12):

        x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
        x_prev  = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps + sigma_t z

    Returns (x_prev, x0_pred).
    """
    x0_pred = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t ** 0.5
    sigma = ddim_sigma(alpha_bar_t, alpha_bar_prev, eta)
    direction = max(1 - alpha_bar_prev - sigma ** 2, 0.0) ** 0.5 * eps
    x_prev = alpha_bar_prev ** 0.5 * x0_pred + direction
    if noise is not None and sigma > 0:
        x_prev = x_prev + sigma * noise
    return x_prev, x0_pred


def check_eta(eta: float) -> None:
    """Raise a ValueError unless eta is a finite number in [0, 1]."""
    import math
    try:
        value = float(eta)
    except (TypeError, ValueError):
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"eta must be a finite number in [0, 1] (0: deterministic DDIM, 1: DDPM-like noise), got {eta}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: DDPM-like noise), got {eta}")


def ddim_sample_progressive(eps_model: EpsModel, x_T: torch.Tensor, schedule: Schedule, num_steps: int = 50,
                            eta: float = 0.0, generator: torch.Generator | None = None,
                            progress: bool = False) -> Iterator[SamplerStep]:
    """DDIM over num_steps timesteps from T-1 to the clean image, with stochasticity eta in [0, 1]."""
    check_image_batch(x_T, "x_T")
    check_eta(eta)
    x = x_T
    for t, t_prev in tqdm(timestep_pairs(ddim_timesteps(num_steps, schedule.T)), desc="DDIM", disable=not progress):
        tt = _batch_t(x, t)
        with torch.no_grad():
            eps = eps_model(x, tt)
        # A fresh z is drawn at every step but the last, whatever eta is, so that the noise stream
        # lines up with DDPM's and DDIM(eta=1) on the full grid reproduces DDPM draw for draw.
        noise = _randn(x, generator) if t_prev >= 0 else None
        x_prev, x0_pred = ddim_step(x, eps, alpha_bar_at(schedule, t), alpha_bar_at(schedule, t_prev), eta, noise)
        yield SamplerStep(t, t_prev, x, x0_pred, x_prev)
        x = x_prev


def ddim_invert_progressive(eps_model: EpsModel, x0: torch.Tensor, schedule: Schedule, num_steps: int = 50,
                            progress: bool = False) -> Iterator[SamplerStep]:
    """Deterministic DDIM encoding: run the eta = 0 update backwards, clean image -> x_{T-1}.

    Each step moves from level t_prev to t with the noise predicted at t:
    x_t = sqrt(alpha_bar_t) x0_pred + sqrt(1 - alpha_bar_t) eps. Yields steps with x_t the new
    (noisier) state and x_prev the state it came from, so the encoded noise is the LAST step's x_t
    (`list(...)[-1].x_t`), not what `final(...)` returns (that is the state one step before).
    """
    check_image_batch(x0, "x0")
    x = x0
    for t, t_prev in reversed(timestep_pairs(ddim_timesteps(num_steps, schedule.T))):
        tt = _batch_t(x, t)
        with torch.no_grad():
            eps = eps_model(x, tt)
        x_t, x0_pred = ddim_step(x, eps, alpha_bar_at(schedule, t_prev), alpha_bar_at(schedule, t), eta=0.0)
        yield SamplerStep(t, t_prev, x_t, x0_pred, x)
        x = x_t


# ----------------------------------------------------------------------------- speed

PRECISIONS = ("fp32", "bf16")


def with_precision(eps_model: EpsModel, precision: str = "fp32") -> EpsModel:
    """The same eps_model, its network run under bfloat16 autocast when precision == "bf16" (sampling on a CPU
    with AVX512-BF16 took 1.5 to 2.8 times less time, see benchmarks/RESULTS.md). The noise estimate comes back as
    float32, so the sampler's own arithmetic stays in float32. precision == "fp32" returns eps_model unchanged."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp32":
        return eps_model

    def run(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return eps_model(x, t).float()
    return run


# ----------------------------------------------------------------------------- running a chain

def final(steps: Iterator[SamplerStep]) -> torch.Tensor:
    """Run a progressive sampler to the end and return its last state (the sample)."""
    last = None
    for last in steps:
        pass
    if last is None:
        raise ValueError("the sampler produced no step")
    return last.x_prev


@dataclass
class Trajectory:
    """A recorded chain, on the CPU: timesteps (K,), x_t (K, B, C, H, W), x0_pred (K, B, C, H, W), sample (B, C, H, W)."""
    timesteps: list[int]
    x_t: torch.Tensor
    x0_pred: torch.Tensor
    sample: torch.Tensor


def record(steps: Iterator[SamplerStep], every: int = 1) -> Trajectory:
    """Run a progressive sampler, keeping every `every`-th step (and always the last) for scrubbing."""
    ts, xs, x0s, last = [], [], [], None
    for i, step in enumerate(steps):
        last = step
        if i % every == 0 or step.t_prev < 0:
            ts.append(step.t)
            xs.append(step.x_t.detach().cpu())
            x0s.append(step.x0_pred.detach().cpu())
    if last is None:
        raise ValueError("the sampler produced no step")
    return Trajectory(ts, torch.stack(xs), torch.stack(x0s), last.x_prev.detach().cpu())


def sample_noise(n: int, shape=(1, 28, 28), generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """x_T ~ N(0, I) of shape (n, *shape), drawn from generator (a seeded torch.Generator on `device`)."""
    return torch.randn((n, *shape), generator=generator, device=device)
