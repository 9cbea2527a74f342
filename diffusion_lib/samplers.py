"""Reverse-process samplers: plain functions over an explicit list of timestep pairs, one loop for all.

A sampler walks pairs (t, t_prev) from t = T-1 down to the clean image; in code, t_prev = -1 stands for
the clean image itself (alpha_bar = 1). For example, DDIM with 5 steps on T = 1000:

    ddim_timesteps(5, 1000)                 -> [999, 749, 500, 250, 0]
    timestep_pairs([999, 749, 500, 250, 0]) -> [(999, 749), (749, 500), (500, 250), (250, 0), (0, -1)]

and DDPM walks all T pairs (999, 998), ..., (1, 0), (0, -1). The deterministic samplers can also walk the grid of
Karras et al. 2022 (grid="karras"), evenly spaced in sigma^(1/7) and rounded to the schedule's timesteps:

    karras_timesteps(5, linear schedule with T = 1000) -> [999, 843, 593, 142, 0]

One step convention. Every reverse step is a function

    step(x_t, eps, t, t_prev, schedule, noise) -> (x_prev, x0_pred)

of the state x_t at timestep t, the network's noise estimate eps = eps_theta(x_t, t), and a draw z ~ N(0, I)
(`noise`, None at the last step); it returns the state at t_prev and the clean image x0_pred that eps
implies. `ddpm_step` and `ddim_step` are the DDPM family's, `heun_step` and `flow_euler_step` (whose "eps" is a
flow-matching network's velocity) follow the same convention; settings such as DDIM's eta are keyword arguments
(functools.partial(ddim_step, eta=0.5) is a step).

One loop. `_walk` evaluates the network and applies a step for each pair, yielding a SamplerStep after every
update (x_t, x0_pred and the new state), so a slider can scrub through a chain that was run once; `final`
runs it to the end and returns the sample, `record` keeps the chain. The public samplers only choose the
pairs and the step:

    ddpm_sample_progressive   all T pairs, ddpm_step                      (Ho et al. 2020, Algorithm 2)
    ddim_sample_progressive   num_steps pairs, ddim_step with eta          (Song et al. 2021)
    ddim_invert_progressive   the DDIM pairs walked upwards, eta = 0       (deterministic encoding)
    heun_sample_progressive   the DDIM pairs (or grid="karras"), heun_step (Karras et al. 2022, Algorithm 1)
    flow_euler_/flow_heun_sample_progressive   a flow-matching network's velocity, Euler or Heun steps in s
    flow_sde_sample_progressive   the same network, the reverse SDE in s (DDPM's step on the straight path)
    meanflow_sample_progressive   a MeanFlow network's average velocity over each pair, flow_euler_step
                                  (one step: the whole interval from noise to image; notebook 12)

DDIM walks another grid when given one (timesteps=...): flow_matched_timesteps(num_steps, schedule) is the grid
on which DDIM takes flow Euler's steps (in xbar = x_s / (1 - s), sigma = s / (1 - s), a flow Euler step is a
DDIM step, exactly; tests/test_samplers.py proves it).

Adding a sampler is one small step function in this file, plugged into the same loop. The second-order
solver here shows how. `heun_step` (below) is a step like the others with one more keyword, the network,
which it calls once more to correct DDIM's Euler step; its sampler only chooses the pairs and the step:

    def heun_sample_progressive(eps_model, x_T, schedule, num_steps=10, progress=False):
        step = functools.partial(heun_step, eps_model=eps_model)
        pairs = timestep_pairs(ddim_timesteps(num_steps, schedule.T))
        return _walk(eps_model, x_T, pairs, schedule, step, draw_noise=False, progress=progress, desc="Heun")

Why this is Heun's method: in the variables xbar = x / sqrt(alpha_bar) and sigma = sqrt((1 - alpha_bar) / alpha_bar)
the probability-flow ODE reads d xbar / d sigma = eps(x, t), and the DDIM update with eta = 0 is exactly one
Euler step of it, xbar_prev = xbar_t + (sigma_prev - sigma_t) eps (Song et al. 2021, Sec. 4.3; Karras et al.
2022, Algorithm 1 is Heun's method on the same ODE). Averaging the slopes at both ends gives second order.

eps_model is any callable (x_t, t) -> predicted noise: a backbone, objectives.eps_model_for(...) for a
network trained with another objective (checkpoints.load_model does this), or guidance.cfg_eps_model(...).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from .checks import check_integer, check_number, check_same_shape, check_step_timestep
from .forward import check_image_batch, predict_eps_from_x0, predict_x0_from_eps, q_posterior_mean_variance
from .device import mark_known_range
from .objectives import carry_marks, check_model
from .schedules import Schedule, extract

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Step = Callable[..., "tuple[torch.Tensor, torch.Tensor]"]   # (x_t, eps, t, t_prev, schedule, noise) -> (x_prev, x0_pred)
DDPM_VARIANCES = ("beta_tilde", "beta")


@dataclass
class SamplerStep:
    """One update of a chain, in the direction the chain walks (down for sampling, up for inversion)."""
    t: int                  # the timestep of the state the update started from (-1: the clean image)
    t_next: int             # the timestep it reached: t_prev when sampling (-1: the clean image), higher when inverting
    x_t: torch.Tensor       # (B, C, H, W) the state at t
    x0_pred: torch.Tensor   # (B, C, H, W) the clean image implied by the noise estimate used in this update
    x_next: torch.Tensor    # (B, C, H, W) the state at t_next


def ddpm_timesteps(T: int) -> list[int]:
    """Every timestep, T-1 down to 0."""
    return list(range(T - 1, -1, -1))


def ddim_timesteps(num_steps: int, T: int) -> list[int]:
    """num_steps timesteps evenly spaced from T-1 down to 0 (both ends included when num_steps >= 2)."""
    num_steps = _check_num_steps(num_steps, T)
    if num_steps == 1:
        return [T - 1]
    grid = torch.linspace(T - 1, 0, num_steps, dtype=torch.float64).round().long().tolist()
    return grid  # spacing (T-1)/(S-1) >= 1 keeps the rounded values distinct


def _check_num_steps(num_steps, T: int) -> int:
    return check_integer(num_steps, "the number of sampling steps", 1, T, hint=f"T = {T}")


def check_grid(timesteps: Sequence[int], T: int) -> list[int]:
    """The timesteps as a list of ints, or a ValueError unless they strictly decrease within [0, T-1]."""
    grid = [int(t) for t in timesteps]
    if not grid or any(t != u for t, u in zip(grid, timesteps)) or not all(0 <= t <= T - 1 for t in grid) \
            or any(a <= b for a, b in zip(grid, grid[1:])):
        raise ValueError(f"a timestep grid must be a non-empty, strictly decreasing list of integer timesteps in "
                         f"[0, T-1] = [0, {T - 1}], got {list(timesteps)!r}")
    return grid


def schedule_sigmas(schedule: Schedule) -> torch.Tensor:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) for t = 0..T-1, shape (T,), float64: the noise level of the
    rescaled state xbar_t = x_t / sqrt(alpha_bar_t) = x0 + sigma_t eps (notebook 10), in which the
    probability-flow ODE reads d xbar / d sigma = eps*. The DDPM family's schedule, as sigma (not DDIM's sigma_t(eta))."""
    alpha_bar = schedule.alpha_bar.double()
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def karras_sigmas(num_steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, Eq. 5: num_steps noise levels evenly spaced in sigma^(1/rho), float64 (num_steps,),

        sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,   i = 0..N-1,

    from sigma_max down to sigma_min. rho = 7 is the paper's choice: the steps shrink towards the clean end,
    where the slope of the ODE changes fastest; rho = 1 is evenly spaced in sigma. One level (N = 1): sigma_max."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"the number of sampling steps must be a positive integer, got {num_steps!r}")
    if not 0 < sigma_min < sigma_max or not rho > 0:
        raise ValueError(f"need 0 < sigma_min < sigma_max and rho > 0, got sigma_min = {sigma_min}, "
                         f"sigma_max = {sigma_max}, rho = {rho}")
    if num_steps == 1:
        return torch.tensor([float(sigma_max)], dtype=torch.float64)
    i = torch.arange(num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + i / (num_steps - 1) * (lo - hi)) ** rho


def karras_timesteps(num_steps: int, schedule: Schedule, rho: float = 7.0) -> list[int]:
    """The Karras grid on the schedule's own timesteps: for each level of karras_sigmas(num_steps, sigma_0, sigma_{T-1},
    rho), the timestep t whose schedule_sigmas(schedule)[t] is nearest to it in log sigma. The ends are exact
    (T-1 and 0). A level can round to the same timestep as the one before it only where the grid is finer than the
    schedule (on the linear schedule, T = 1000: from 79 steps on, near t = 0); such duplicates are dropped, so
    the grid then has fewer than num_steps timesteps. Decreasing, like ddim_timesteps; walk it with timestep_pairs.

        karras_timesteps(5, linear schedule, T = 1000) -> [999, 843, 593, 142, 0]
        ddim_timesteps(5, 1000)                        -> [999, 749, 500, 250, 0]
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not 1 <= num_steps <= schedule.T:
        raise ValueError(f"the number of sampling steps must be an integer in [1, T] = [1, {schedule.T}], "
                         f"got {num_steps!r}")
    log_sigma = schedule_sigmas(schedule).log()                                                # (T,)
    targets = karras_sigmas(num_steps, float(log_sigma[0].exp()), float(log_sigma[-1].exp()), rho).log()  # (N,)
    nearest = (log_sigma[None, :] - targets[:, None]).abs().argmin(dim=1).tolist()           # (N,) timesteps
    return [t for k, t in enumerate(nearest) if k == 0 or t != nearest[k - 1]]


def uniform_timesteps(num_steps: int, schedule: Schedule) -> list[int]:
    """DDIM's grid, evenly spaced in t: ddim_timesteps(num_steps, schedule.T)."""
    return ddim_timesteps(num_steps, schedule.T)


# The grids a deterministic sampler can walk, by name: (num_steps, schedule) -> decreasing timesteps.
GRIDS = {"uniform": uniform_timesteps, "karras": karras_timesteps}


def grid_timesteps(grid: str, num_steps: int, schedule: Schedule) -> list[int]:
    """The timesteps of the grid named `grid` ("uniform": DDIM's, "karras": karras_timesteps with rho = 7)."""
    if grid not in GRIDS:
        raise ValueError(f"unknown timestep grid {grid!r}; choose one of {tuple(GRIDS)}")
    return GRIDS[grid](num_steps, schedule)


def _sampler_grid(num_steps: int, schedule: Schedule, grid: str, timesteps: Sequence[int] | None) -> list[int]:
    """The timesteps a deterministic sampler walks: an explicit list (checked), or the named grid of num_steps."""
    if timesteps is None:
        return grid_timesteps(grid, num_steps, schedule)
    if grid != "uniform":
        raise ValueError(f"give either timesteps=[...] or grid={grid!r}, not both: the grid names a list of timesteps")
    return check_grid(timesteps, schedule.T)


def timestep_pairs(timesteps: Sequence[int]) -> list[tuple[int, int]]:
    """[(t_0, t_1), (t_1, t_2), ..., (t_last, -1)] from a decreasing list of timesteps."""
    return list(zip(timesteps, [*timesteps[1:], -1]))


def alpha_bar_at(schedule: Schedule, t: int) -> float:
    """alpha_bar_t as a float, with 1 for t = -1 (the clean image)."""
    t = check_integer(t, "timestep t", hint="-1: the clean image")
    if not -1 <= t <= schedule.T - 1:
        raise ValueError(f"timestep {t} is outside [-1, T-1] = [-1, {schedule.T - 1}] (-1: the clean image); "
                         f"pass t in [-1, {schedule.T - 1}]")
    return 1.0 if t < 0 else float(schedule.alpha_bar[t])


def _check_start(x: torch.Tensor, name: str) -> None:
    """The starting state of a chain: a float batch of images (B, C, H, W) with finite entries."""
    check_image_batch(x, name)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} has NaN or infinite entries; start from finite values, e.g. "
                         "sample_noise(n, generator=...) for pure noise")


def _check_step_inputs(x_t: torch.Tensor, eps: torch.Tensor, noise, name: str = "eps") -> None:
    """A step's inputs: the network's output and the noise z have the state's shape (no silent broadcasting)."""
    check_image_batch(x_t, "x_t")
    check_same_shape(x_t, eps, "x_t", name)
    if noise is not None:
        check_same_shape(x_t, noise, "x_t", "noise")


def _randn(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """z ~ N(0, I) shaped like x, on x's device, drawn where the generator is: a seeded CPU generator gives the same z
    on every device, so a GPU run shows the pictures of a CPU run. Without a generator: torch's on x's device."""
    where = generator.device if generator is not None else x.device
    z = torch.randn(x.shape, generator=generator, device=where, dtype=x.dtype)
    return z if where == x.device else z.to(x.device, non_blocking=True)


def _batch_t(x: torch.Tensor, t: int) -> torch.Tensor:
    """(B,) timesteps t on x's device, marked as checked: t is one of the sampler's own, checked, timesteps."""
    return mark_known_range(torch.full((x.shape[0],), t, dtype=torch.long, device=x.device), t, t)


# ----------------------------------------------------------------------------- DDPM

def ddpm_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, schedule: Schedule,
              noise: torch.Tensor | None = None, variance: str = "beta_tilde") -> tuple[torch.Tensor, torch.Tensor]:
    """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, Algorithm 2), written as what it is: a draw from
    the posterior q(x_{t-1} | x_t, x_0) (Ho et al. 2020, Eq. 7; notebook 06) at the predicted clean image,

        x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)           forward.predict_x0_from_eps
        x_{t-1} = mu_tilde_t(x_t, x0_pred) + sigma_t z                           forward.q_posterior_mean_variance

    with sigma_t^2 = beta_tilde_t (default) or beta_t. Algebraically this mean is Ho et al.'s Eq. 11,
    1 / sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps); it is also the eta = 1 DDIM step on the full
    grid (tests/test_samplers.py proves both). noise z is None at the last step (t = 0): x_prev = x0_pred.
    """
    if variance not in DDPM_VARIANCES:
        raise ValueError(f"unknown DDPM variance {variance!r}; choose one of {DDPM_VARIANCES}")
    t, t_prev = check_step_timestep(t, schedule.T), check_step_timestep(t_prev, schedule.T, "t_prev")
    _check_step_inputs(x_t, eps, noise)
    if t_prev != t - 1:
        raise ValueError(f"DDPM steps one timestep at a time (t_prev = t - 1), got t = {t}, t_prev = {t_prev}; "
                         "for fewer steps use ddim_step")
    tt = _batch_t(x_t, t)
    x0_pred = predict_x0_from_eps(x_t, tt, eps, schedule)
    mean, beta_tilde = q_posterior_mean_variance(x0_pred, x_t, tt, schedule)
    if noise is None:
        return mean, x0_pred
    sigma2 = beta_tilde if variance == "beta_tilde" else extract(schedule.beta, tt, x_t.shape)
    return mean + sigma2.sqrt() * noise, x0_pred


def ddpm_sample_progressive(eps_model: EpsModel, x_T: torch.Tensor, schedule: Schedule, variance: str = "beta_tilde",
                            generator: torch.Generator | None = None, progress: bool = False) -> Iterator[SamplerStep]:
    """Ancestral sampling over all T steps from x_T; no noise is added at the final step t = 0."""
    _check_start(x_T, "x_T")
    check_model(eps_model, "eps", "DDPM sampling", schedule)
    if variance not in DDPM_VARIANCES:
        raise ValueError(f"unknown DDPM variance {variance!r}; choose one of {DDPM_VARIANCES}")
    step = functools.partial(ddpm_step, variance=variance)
    return _walk(eps_model, x_T, timestep_pairs(ddpm_timesteps(schedule.T)), schedule, step, generator,
                 progress=progress, desc="DDPM")


# ----------------------------------------------------------------------------- DDIM

def ddim_sigma(alpha_bar_t: float, alpha_bar_prev: float, eta: float) -> float:
    """sigma_t(eta) = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
    (Song et al. 2021, Eq. 16). eta = 0: deterministic DDIM; eta = 1 on the full grid: DDPM's beta_tilde."""
    if eta == 0:
        return 0.0  # deterministic; also avoids 0 / 0 when inversion starts from the clean image (alpha_bar_t = 1)
    if alpha_bar_t >= 1:
        raise ValueError("eta > 0 needs a noisy starting state (alpha_bar_t < 1); from the clean image (t = -1) "
                         "only the deterministic update exists: use eta = 0")
    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5


def check_eta(eta: float) -> float:
    """eta as a float, if it is a finite number in [0, 1]; else a ValueError. Beyond 1, sigma_t would exceed the
    noise that x_prev has room for (1 - alpha_bar_prev - sigma_t^2 < 0)."""
    return check_number(eta, "eta", 0, 1, hint="0: deterministic DDIM, 1: DDPM-like noise")


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, schedule: Schedule,
              noise: torch.Tensor | None = None, eta: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update x_t -> x_{t_prev} (Song et al. 2021, Eq. 12):

        x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
        x_prev  = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps + sigma_t z

    with sigma_t = ddim_sigma(alpha_bar_t, alpha_bar_prev, eta). With eta = 0 nothing in it assumes t_prev < t:
    the same update walks up the grid (ddim_invert_progressive).
    """
    eta = check_eta(eta)
    _check_step_inputs(x_t, eps, noise)
    alpha_bar_t, alpha_bar_prev = alpha_bar_at(schedule, t), alpha_bar_at(schedule, t_prev)
    x0_pred = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t ** 0.5
    sigma = ddim_sigma(alpha_bar_t, alpha_bar_prev, eta)
    direction = max(1 - alpha_bar_prev - sigma ** 2, 0.0) ** 0.5 * eps   # >= 0 for eta <= 1; max() guards rounding
    x_prev = alpha_bar_prev ** 0.5 * x0_pred + direction
    if noise is not None and sigma > 0:
        x_prev = x_prev + sigma * noise
    return x_prev, x0_pred


def ddim_sample_progressive(eps_model: EpsModel, x_T: torch.Tensor, schedule: Schedule, num_steps: int = 50,
                            eta: float = 0.0, generator: torch.Generator | None = None,
                            progress: bool = False, timesteps: Sequence[int] | None = None,
                            grid: str = "uniform") -> Iterator[SamplerStep]:
    """DDIM over num_steps timesteps from T-1 to the clean image, with stochasticity eta in [0, 1].

    grid: the timesteps of num_steps, "uniform" (ddim_timesteps, evenly spaced in t) or "karras" (karras_timesteps,
    evenly spaced in sigma^(1/7)). timesteps: another grid to walk instead, e.g. flow_matched_timesteps (then
    num_steps and grid are not used): a strictly decreasing list of code timesteps in [0, T-1].
    A fresh z is drawn at every step but the last, whatever eta is, so that the noise stream lines up
    with DDPM's and DDIM(eta = 1) on the full grid reproduces DDPM draw for draw.
    """
    _check_start(x_T, "x_T")
    check_model(eps_model, "eps", "DDIM sampling", schedule)
    eta = check_eta(eta)
    pairs = timestep_pairs(_sampler_grid(num_steps, schedule, grid, timesteps))
    return _walk(eps_model, x_T, pairs, schedule, functools.partial(ddim_step, eta=eta), generator,
                 progress=progress, desc="DDIM")


def ddim_invert_progressive(eps_model: EpsModel, x0: torch.Tensor, schedule: Schedule, num_steps: int = 50,
                            progress: bool = False) -> Iterator[SamplerStep]:
    """Deterministic DDIM encoding: the eta = 0 update walked up the DDIM grid, clean image -> x_{T-1}.

    The pairs are those of ddim_sample_progressive, reversed: (-1, 0), (0, t_1), ..., (t_k, T-1). Each update
    moves the state at t to t_next > t. It needs eps at the state it starts from, at level t; the network is
    evaluated at the level it moves to, t_next, instead (at t = -1, the clean image, it has no level at all):
    the usual approximation of DDIM inversion, exact only in the limit of small steps. The steps' fields mean
    what they mean in sampling (x_t: the state at t, x_next: the state reached), so `final(...)` (or
    ddim_invert) returns the encoded noise.
    """
    _check_start(x0, "x0")
    check_model(eps_model, "eps", "DDIM inversion", schedule)
    pairs = [(t_prev, t) for t, t_prev in reversed(timestep_pairs(ddim_timesteps(num_steps, schedule.T)))]
    return _walk(eps_model, x0, pairs, schedule, ddim_step, draw_noise=False, eps_at_next=True,
                 progress=progress, desc="DDIM inversion")


def ddim_invert(eps_model: EpsModel, x0: torch.Tensor, schedule: Schedule, num_steps: int = 50,
                progress: bool = False) -> torch.Tensor:
    """The encoded noise x_{T-1} (B, C, H, W) of clean images x0: the end of ddim_invert_progressive."""
    return final(ddim_invert_progressive(eps_model, x0, schedule, num_steps, progress=progress))


# ----------------------------------------------------------------------------- a second-order solver

def heun_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, schedule: Schedule,
              noise: torch.Tensor | None = None, *, eps_model: EpsModel, euler_step: Step = ddim_step
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Heun's method (Karras et al. 2022, Algorithm 1, without churn): the Euler step (DDIM with
    eta = 0; flow_euler_step for a flow), then the same step with the mean of the network's outputs at both
    ends. The last step, into the clean image (t_prev = -1), is Euler's: the network has no input level there.
    Returns the corrected state and the x0_pred of the Euler step; `noise` is unused."""
    x_euler, x0_pred = euler_step(x_t, eps, t, t_prev, schedule)
    if t_prev < 0:
        return x_euler, x0_pred
    eps_prev = eps_model(x_euler, _batch_t(x_t, t_prev))
    return euler_step(x_t, (eps + eps_prev) / 2, t, t_prev, schedule)[0], x0_pred


def heun_sample_progressive(eps_model: EpsModel, x_T: torch.Tensor, schedule: Schedule, num_steps: int = 10,
                            progress: bool = False, grid: str = "uniform",
                            timesteps: Sequence[int] | None = None) -> Iterator[SamplerStep]:
    """Deterministic sampling with Heun's method over a grid of num_steps timesteps, DDIM's by default
    (grid="karras": karras_timesteps, the grid Karras et al. pair it with; timesteps=: an explicit grid, as for
    ddim_sample_progressive): 2 num_steps - 1 network evaluations (heun_nfe), against num_steps for DDIM."""
    _check_start(x_T, "x_T")
    check_model(eps_model, "eps", "Heun sampling", schedule)
    step = functools.partial(heun_step, eps_model=eps_model)
    pairs = timestep_pairs(_sampler_grid(num_steps, schedule, grid, timesteps))
    return _walk(eps_model, x_T, pairs, schedule, step, draw_noise=False, progress=progress, desc="Heun")


def heun_nfe(num_steps: int) -> int:
    """Network evaluations of heun_sample_progressive with num_steps steps: two per step but the last."""
    return 2 * num_steps - 1


# ----------------------------------------------------------------------------- flow matching

def flow_timesteps(num_steps: int, T: int) -> list[int]:
    """num_steps timesteps whose flow times s = (t + 1) / T are evenly spaced from 1 down to 1 / num_steps:
    with the clean image (t = -1, s = 0) after them, every step covers the same ds = 1 / num_steps."""
    num_steps = _check_num_steps(num_steps, T)
    return [round(T * (1 - k / num_steps)) - 1 for k in range(num_steps)]


def flow_matched_timesteps(num_steps: int, schedule: Schedule) -> list[int]:
    """The DDPM grid matched to flow Euler's: for each flow time s of flow_timesteps(num_steps, T), the timestep of
    `schedule` whose noise level is nearest (in log-SNR) to the flow's, sigma = s / (1 - s), i.e. log-SNR
    2 log((1 - s) / s); s = 1 (pure noise) takes T-1. DDIM on this grid takes the steps flow Euler takes (exactly
    where the levels match: tests/test_samplers.py), so it separates the grid from the objective."""
    flow_grid = flow_timesteps(num_steps, schedule.T)
    grid = [schedule.T - 1]
    for t in flow_grid[1:]:
        s = _flow_s(t, schedule.T)
        target = 2 * math.log((1 - s) / s)
        grid.append(int((schedule.log_snr.double() - target).abs().argmin()))
    if any(a <= b for a, b in zip(grid, grid[1:])):
        raise ValueError(f"{num_steps} flow steps are too fine for this schedule: two of them match the same "
                         f"timestep ({grid}); use fewer steps")
    return grid


def _flow_s(t: int, T: int) -> float:
    return (t + 1) / T


def flow_euler_update(x_s: torch.Tensor, u: torch.Tensor, s: float, s_prev: float) -> torch.Tensor:
    """x_{s_prev} = x_s + (s_prev - s) u: one Euler step of dx/ds = u, at any two flow times."""
    return x_s + (s_prev - s) * u


def flow_euler_step(x_t: torch.Tensor, u: torch.Tensor, t: int, t_prev: int, schedule: Schedule,
                    noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler step of the flow dx/ds = u from s = (t + 1) / T to s_prev = (t_prev + 1) / T:
    x_prev = x_s + (s_prev - s) u, and x0_pred = x_s - s u (the clean end of the straight line through x_s).
    `u` is the velocity network's output (in the slot where the DDPM family's steps take eps); only
    schedule.T is used; `noise` is unused."""
    t, t_prev = check_step_timestep(t, schedule.T), check_step_timestep(t_prev, schedule.T, "t_prev")
    _check_step_inputs(x_t, u, None, "u")
    s, s_prev = _flow_s(t, schedule.T), _flow_s(t_prev, schedule.T)
    return flow_euler_update(x_t, u, s, s_prev), x_t - s * u


def flow_sde_update(x_s: torch.Tensor, u: torch.Tensor, s: float, s_prev: float,
                    noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the reverse SDE on the straight path, from s to s_prev < s, as DDPM takes it:

        x0_pred  = x_s - s u                      eps_pred = x_s + (1 - s) u
        r        = sigma_prev / sigma,  sigma = s / (1 - s)     (r = 0 from pure noise, s = 1)
        x_prev   = (1 - s_prev) x0_pred + s_prev (r eps_pred + sqrt(1 - r^2) z)

    In xbar = x_s / (1 - s) this is DDPM's posterior step at x0_pred (DDIM with eta = 1): mean xbar +
    (sigma_prev^2 / sigma - sigma) eps_pred, noise sigma_prev sqrt(1 - r^2) z. For a small step h = s - s_prev it
    is x_prev = x_s - h (u + eps_pred / (1 - s)) + sqrt(2 s h / (1 - s)) z: the drift u - (s / (1 - s)) grad log p_s
    with score -eps_pred / s, which adds to the ODE's velocity u the same score term again (the DDPM correction of
    notebook 10: the score enters with twice the probability-flow ODE's weight), and the matching noise. With
    z = None it returns the mean. Returns (x_prev, x0_pred)."""
    if s_prev > s:
        raise ValueError(f"the reverse SDE steps towards the data: s_prev = {s_prev} must not exceed s = {s}")
    x0_pred = x_s - s * u
    if s_prev <= 0:
        return x0_pred, x0_pred
    eps_pred = x_s + (1 - s) * u
    r = 0.0 if s >= 1 else (s_prev * (1 - s)) / (s * (1 - s_prev))
    x_prev = (1 - s_prev) * x0_pred + s_prev * r * eps_pred
    if noise is not None:
        x_prev = x_prev + s_prev * (1 - r ** 2) ** 0.5 * noise
    return x_prev, x0_pred


def flow_sde_step(x_t: torch.Tensor, u: torch.Tensor, t: int, t_prev: int, schedule: Schedule,
                  noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """flow_sde_update from s = (t + 1) / T to s_prev = (t_prev + 1) / T with the draw `noise` (None at the
    last step); `u` is the velocity network's output; only schedule.T is used."""
    t, t_prev = check_step_timestep(t, schedule.T), check_step_timestep(t_prev, schedule.T, "t_prev")
    _check_step_inputs(x_t, u, noise, "u")
    return flow_sde_update(x_t, u, _flow_s(t, schedule.T), _flow_s(t_prev, schedule.T), noise)


def flow_euler_sample_progressive(velocity_model: EpsModel, x_1: torch.Tensor, schedule: Schedule,
                                  num_steps: int = 20, progress: bool = False) -> Iterator[SamplerStep]:
    """Sample a flow-matching network: Euler steps from pure noise x_1 (s = 1) to the clean image (s = 0) over
    flow_timesteps(num_steps, T); num_steps network evaluations."""
    _check_start(x_1, "x_1")
    check_model(velocity_model, "velocity", "flow Euler sampling", schedule)
    pairs = timestep_pairs(flow_timesteps(num_steps, schedule.T))
    return _walk(velocity_model, x_1, pairs, schedule, flow_euler_step, draw_noise=False, progress=progress,
                 desc="flow Euler")


def flow_heun_sample_progressive(velocity_model: EpsModel, x_1: torch.Tensor, schedule: Schedule,
                                 num_steps: int = 10, progress: bool = False) -> Iterator[SamplerStep]:
    """Heun's method on the flow over flow_timesteps(num_steps, T): 2 num_steps - 1 network evaluations."""
    _check_start(x_1, "x_1")
    check_model(velocity_model, "velocity", "flow Heun sampling", schedule)
    step = functools.partial(heun_step, eps_model=velocity_model, euler_step=flow_euler_step)
    pairs = timestep_pairs(flow_timesteps(num_steps, schedule.T))
    return _walk(velocity_model, x_1, pairs, schedule, step, draw_noise=False, progress=progress, desc="flow Heun")


def meanflow_sample_progressive(u_model, x_1: torch.Tensor, schedule: Schedule, num_steps: int = 1,
                                progress: bool = False) -> Iterator[SamplerStep]:
    """Sample a MeanFlow network u(z, t, r), the average velocity over [r, t], over flow_timesteps(num_steps, T):
    each pair (t, t_prev) is one flow_euler_step with u = u_model(x, t, r=t_prev),

        x_prev = x_s - (s - s_prev) u(x_s, s_prev, s),

    exact for the exact average velocity (it is the integral of the velocity over the step). num_steps network
    evaluations; one step goes from pure noise to the image. x0_pred is x_s - s u, the clean end of the line."""
    _check_start(x_1, "x_1")
    check_model(u_model, "average_velocity", "MeanFlow sampling", schedule)
    pairs = timestep_pairs(flow_timesteps(num_steps, schedule.T))
    return _walk(u_model, x_1, pairs, schedule, flow_euler_step, draw_noise=False, progress=progress,
                 desc="MeanFlow", interval=True)


def flow_sde_sample_progressive(velocity_model: EpsModel, x_1: torch.Tensor, schedule: Schedule, num_steps: int = 50,
                                generator: torch.Generator | None = None,
                                progress: bool = False) -> Iterator[SamplerStep]:
    """Stochastic sampling of a flow-matching network: flow_sde_step over flow_timesteps(num_steps, T), a fresh
    z ~ N(0, I) from `generator` at every step but the last; num_steps network evaluations."""
    _check_start(x_1, "x_1")
    check_model(velocity_model, "velocity", "flow SDE sampling", schedule)
    pairs = timestep_pairs(flow_timesteps(num_steps, schedule.T))
    return _walk(velocity_model, x_1, pairs, schedule, flow_sde_step, generator, progress=progress, desc="flow SDE")


# ----------------------------------------------------------------------------- the one loop

def _walk(eps_model: EpsModel, x: torch.Tensor, pairs: Sequence[tuple[int, int]], schedule: Schedule, step: Step,
          generator: torch.Generator | None = None, draw_noise: bool = True, eps_at_next: bool = False,
          progress: bool = False, desc: str = "", interval: bool = False) -> Iterator[SamplerStep]:
    """Walk the timestep pairs (t, t_next) from state x: eps = eps_model(x, t) (at t_next if eps_at_next;
    eps_model(x, t, r=t_next) if interval, MeanFlow's average velocity over the pair),
    z ~ N(0, I) from `generator` unless t_next = -1 or draw_noise is False, x_next = step(x, eps, t, t_next,
    schedule, z)[0]; yield a SamplerStep after each update. The network runs without gradients."""
    on_cpu = x.device.type == "cpu"
    bad = []     # on a GPU: one flag per step, left on the device and read once, at the end of the chain
    for i, (t, t_next) in enumerate(tqdm(pairs, desc=desc, disable=not progress)):
        with torch.no_grad():
            if interval:
                eps = eps_model(x, _batch_t(x, t), r=_batch_t(x, t_next))
            else:
                eps = eps_model(x, _batch_t(x, t_next if eps_at_next else t))
            noise = _randn(x, generator) if draw_noise and t_next >= 0 else None
            x_next, x0_pred = step(x, eps, t, t_next, schedule, noise)
            finite = _sum_is_finite(x_next)
        if on_cpu:
            if not finite and not bool(torch.isfinite(x_next).all()):   # the sum alone may have overflowed
                _not_finite(i, pairs, eps, desc)
        else:
            bad.append(~finite)
        yield SamplerStep(t, t_next, x, x0_pred, x_next)
        x = x_next
    if bad and bool(torch.stack(bad).any()):
        _not_finite(int(torch.stack(bad).int().argmax()), pairs, None, desc)


def _sum_is_finite(x: torch.Tensor) -> torch.Tensor:
    """A 0-dim bool tensor, False when x holds a NaN or an infinity: a NaN or an infinity in any entry makes the sum
    NaN or infinite. Five to fifteen times cheaper per step than torch.isfinite(x).all() on a batch of digits (no
    boolean copy of the batch); it also says False when finite entries sum beyond float32's range (about 3e38),
    which a working chain never reaches (on the CPU the chain then checks every entry before it stops)."""
    return torch.isfinite(x.sum())


class NotFiniteError(ValueError):
    """A chain whose state became NaN or infinite: it stops at that step (the message names the step and t)."""


def _not_finite(i: int, pairs, eps: torch.Tensor | None, desc: str) -> None:
    """Stop a chain whose state became NaN or infinite at step i, naming the step and its timesteps."""
    t, t_next = pairs[i]
    cause = ("the network returned NaN or infinite values" if eps is not None and not bool(torch.isfinite(eps).all())
             else "the update overflowed" if eps is not None else "NaN or infinite values appeared")
    raise NotFiniteError(f"{desc or 'the sampler'} stopped at step {i + 1} of {len(pairs)} (t = {t} -> {t_next}): "
                         f"{cause}; check the network and its inputs (a guidance weight far beyond 10, weights that "
                         "diverged in training, a bf16 overflow)")


# ----------------------------------------------------------------------------- speed

PRECISIONS = ("fp32", "bf16")


def with_precision(eps_model: EpsModel, precision: str = "fp32") -> EpsModel:
    """The same eps_model, its network run under bfloat16 autocast when precision == "bf16" (faster on CPUs
    with AVX512-BF16: see the README's benchmark tables). The noise estimate comes back as float32, so the
    sampler's own arithmetic stays in float32. precision == "fp32" returns eps_model unchanged."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp32":
        return eps_model

    def run(x: torch.Tensor, t: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return eps_model(x, t, *args, **kwargs).float()
    return carry_marks(run, eps_model)


# ----------------------------------------------------------------------------- running a chain

def final(steps: Iterator[SamplerStep]) -> torch.Tensor:
    """Run a progressive sampler to the end and return its last state (the sample, or the encoded noise)."""
    last = None
    for last in steps:
        pass
    if last is None:
        raise ValueError("the sampler produced no step")
    return last.x_next


@dataclass
class Trajectory:
    """A recorded chain, ON THE CPU whatever device the chain ran on (for sliders and plots): timesteps (K,), the
    states x_t (K, B, C, H, W) at them, the x0_pred (K, B, C, H, W) of the updates that started there, and the state
    the chain ended in (B, C, H, W). To go on from .sample on a GPU, move it there (sweeps' functions do it)."""
    timesteps: list[int]
    x_t: torch.Tensor
    x0_pred: torch.Tensor
    sample: torch.Tensor


def record(steps: Iterator[SamplerStep], every: int = 1) -> Trajectory:
    """Run a progressive sampler, keeping every `every`-th step (and always the last) for scrubbing."""
    every = check_integer(every, "every", 1, hint="keep every every-th step")
    kept, last, i = [], None, -1
    for i, last in enumerate(steps):
        if i % every == 0:
            kept.append(last)
    if last is None:
        raise ValueError("the sampler produced no step")
    if i % every != 0:
        kept.append(last)
    return Trajectory([s.t for s in kept], torch.stack([s.x_t.detach().cpu() for s in kept]),
                      torch.stack([s.x0_pred.detach().cpu() for s in kept]), last.x_next.detach().cpu())


def sample_noise(n: int, shape=(1, 28, 28), generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """x_T ~ N(0, I) of shape (n, *shape) on `device`, drawn from generator on the generator's own device (without
    one: torch's global generator of `device`). A seeded CPU generator, torch.Generator().manual_seed(k), gives the
    same x_T on every device, hence the same pictures on a GPU as in the committed notebooks."""
    n = check_integer(n, "the number of images n", 1)
    where = generator.device if generator is not None else device
    return torch.randn((n, *shape), generator=generator, device=where).to(device)


# ----------------------------------------------------------------------------- clipping the predicted clean image

def clipped_x0_eps_model(eps_model: EpsModel, schedule: Schedule, bound: float = 1.0) -> EpsModel:
    """eps_model with the clean image it implies clipped to [-bound, bound] (Ho et al.'s "clip_denoised"):

        x0_hat = clip((x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), -bound, bound)
        eps'   = (x_t - sqrt(alpha_bar_t) x0_hat) / sqrt(1 - alpha_bar_t)

    so that any sampler of this module steps from the clipped x0_hat. Where the implied image is inside the bound,
    eps' = eps. It matters where sqrt(alpha_bar_{T-1}) is tiny: the cosine schedule's alpha_bar_{T-1} is 2.4e-9
    (its last beta is clipped at 0.999), so the first DDIM step divides the network's error in eps by 4.9e-5
    and, unclipped, starts the chain from an "image" of size hundreds. Extra arguments (a label y) are passed on.
    """
    bound = check_number(bound, "bound", 0, lower_open=True, hint="images in [-1, 1] have bound 1")
    check_model(eps_model, "eps", "clipping the implied clean image (clipped_x0_eps_model)", schedule)

    def clipped(x_t: torch.Tensor, t: torch.Tensor, *args) -> torch.Tensor:
        eps = eps_model(x_t, t, *args)
        x0_hat = predict_x0_from_eps(x_t, t, eps, schedule).clamp(-bound, bound)
        return predict_eps_from_x0(x_t, t, x0_hat, schedule)

    return carry_marks(clipped, eps_model)
