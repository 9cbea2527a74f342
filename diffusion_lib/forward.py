"""The forward (noising) process q and its posterior.

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)                           Ho et al. Eq. 2
    q(x_t | x_0)     = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)                 Ho et al. Eq. 4
    q(x_{t-1} | x_t, x_0) = N(mu_tilde_t, beta_tilde_t I)                            Ho et al. Eq. 6-7
    mu_tilde_t = sqrt(alpha_bar_prev) beta_t / (1 - alpha_bar_t) x_0
               + sqrt(alpha_t) (1 - alpha_bar_prev) / (1 - alpha_bar_t) x_t

Images are (B, C, H, W) in [-1, 1]; t is a (B,) long tensor of code timesteps in [0, T-1]
(see schedules.py for the index convention), or a Python int meaning that timestep for every image.
"""
from __future__ import annotations

import torch

from .device import mark_known_range
from .schedules import Schedule, checked_timesteps, extract


def check_image_batch(x: torch.Tensor, name: str = "x") -> None:
    """Raise a ValueError unless x is a float batch of images (B, C, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch of images with shape (B, C, H, W), got shape {tuple(x.shape)}; "
                         "add a batch dimension with x.unsqueeze(0) for a single image")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point tensor scaled to [-1, 1], got dtype {x.dtype}")


def as_timesteps(t, x: torch.Tensor) -> torch.Tensor:
    """t as a (B,) long tensor on x's device: a Python int is broadcast to the whole batch, a tensor is kept."""
    if isinstance(t, bool) or not isinstance(t, (int, torch.Tensor)):
        raise TypeError(f"t must be a Python int or a (B,) tensor of integer timesteps, got {type(t).__name__}; "
                        "for one timestep per image use torch.full((B,), t, dtype=torch.long)")
    if isinstance(t, int):
        return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    return t


def _check(x: torch.Tensor, t, schedule: Schedule, name: str = "x") -> torch.Tensor:
    """Check x and t; returns t as a (B,) tensor on x's device (a Python int t broadcast to the batch), marked as
    checked so that the extracts after it read nothing back from a GPU."""
    check_image_batch(x, name)
    if isinstance(t, int) and not isinstance(t, bool):
        schedule.check_timesteps(torch.tensor([t]))                   # on the CPU: no GPU sync
        return mark_known_range(as_timesteps(t, x), t, t)
    t = as_timesteps(t, x)
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must have shape (B,) = ({x.shape[0]},), one timestep per image, got {tuple(t.shape)}")
    t = checked_timesteps(t, schedule.T)                               # on t's device: free where t is on the CPU
    if t.device != x.device:                                           # e.g. CPU timesteps for images on a GPU
        t = mark_known_range(t.to(x.device), 0, schedule.T - 1)
    return t


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if not isinstance(b, torch.Tensor) or b.shape != a.shape:
        shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {shape}")


def q_sample(x0: torch.Tensor, t: torch.Tensor | int, schedule: Schedule, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x_0) in closed form: sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.

    t: a (B,) long tensor, or a Python int for the same timestep for every image.
    """
    t = _check(x0, t, schedule, "x0")
    if noise is None:
        noise = torch.randn_like(x0)
    _check_same_shape(x0, noise, "x0", "noise")
    return extract(schedule.sqrt_alpha_bar, t, x0.shape) * x0 + extract(schedule.sqrt_one_minus_alpha_bar, t, x0.shape) * noise


def q_step(x_prev: torch.Tensor, t: torch.Tensor | int, schedule: Schedule, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x_{t-1}), one step: sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps.

    For t = 0, x_prev is the clean image x_0. Applying q_step for t = 0, 1, ..., k gives a sample
    with the same distribution as q_sample(x_0, k).
    """
    t = _check(x_prev, t, schedule, "x_prev")
    if noise is None:
        noise = torch.randn_like(x_prev)
    _check_same_shape(x_prev, noise, "x_prev", "noise")
    return extract(schedule.alpha, t, x_prev.shape).sqrt() * x_prev + extract(schedule.beta, t, x_prev.shape).sqrt() * noise


def q_posterior_mean_variance(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int, schedule: Schedule):
    """Mean mu_tilde_t (B, C, H, W) and variance beta_tilde_t (B, 1, 1, 1) of q(x_{t-1} | x_t, x_0)."""
    t = _check(x_t, t, schedule, "x_t")
    _check_same_shape(x_t, x0, "x_t", "x0")
    mean = extract(schedule.posterior_coef_x0, t, x_t.shape) * x0 + extract(schedule.posterior_coef_xt, t, x_t.shape) * x_t
    variance = extract(schedule.beta_tilde, t, x_t.shape)
    return mean, variance


def predict_x0_from_eps(x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """Invert q_sample for x_0 given the noise: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    t = _check(x_t, t, schedule, "x_t")
    _check_same_shape(x_t, eps, "x_t", "eps")
    return (x_t - extract(schedule.sqrt_one_minus_alpha_bar, t, x_t.shape) * eps) / extract(schedule.sqrt_alpha_bar, t, x_t.shape)


def predict_eps_from_x0(x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The noise that takes x_0 to x_t: eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)."""
    t = _check(x_t, t, schedule, "x_t")
    _check_same_shape(x_t, x0, "x_t", "x0")
    return (x_t - extract(schedule.sqrt_alpha_bar, t, x_t.shape) * x0) / extract(schedule.sqrt_one_minus_alpha_bar, t, x_t.shape)
