"""Notebook 06's exercise: one DDPM reverse step x_t -> x_{t-1}, written by hand from beta."""
from __future__ import annotations

import torch

from . import call_answer, known_mistake
from ..samplers import ddpm_step
from ..schedules import make_schedule

TIMESTEPS = (999, 600, 50, 1, 0)   # from pure noise to the last, noise-free step


def _candidates(x_t, eps, t, schedule, noise):
    """Plausible mistakes, each with its hint, computed from the schedule."""
    beta, alpha, ab = (float(v[t]) for v in (schedule.beta, schedule.alpha, schedule.alpha_bar))
    sigma = float(schedule.beta_tilde[t]) ** 0.5
    mean = (x_t - beta / (1 - ab) ** 0.5 * eps) / alpha ** 0.5
    z = noise if t > 0 else torch.zeros_like(noise)
    return [
        ((x_t - beta / (1 - ab) * eps) / alpha ** 0.5 + sigma * z,
         "the noise's coefficient is beta_t / sqrt(1 - alpha_bar_t): you forgot the square root."),
        ((x_t - beta / (1 - ab) ** 0.5 * eps) / ab ** 0.5 + sigma * z,
         "divide by sqrt(alpha_t) = sqrt(1 - beta_t), one step's signal factor, not by sqrt(alpha_bar_t)."),
        (mean + beta ** 0.5 * z,
         "you used sigma_t^2 = beta_t. That is a valid choice (section 4), but this exercise asks for the posterior "
         "variance beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), where alpha_bar_{t-1} is the "
         "entry before alpha_bar[t], and 1 (the clean image) at index t = 0."),
        (mean + sigma * noise if t > 0 else mean + beta ** 0.5 * noise,
         "at t = 0 the step returns the mean only: no noise is added at the last step."),
        (mean, "you added no noise: x_{t-1} = mean + sigma_t z for every t > 0."),
    ]


def check(answer) -> None:
    """answer(x_t, eps, t, beta, noise) must match dl.samplers.ddpm_step (variance beta_tilde) at every t tested."""
    schedule = make_schedule("linear")
    g = torch.Generator().manual_seed(6)
    for t in TIMESTEPS:
        x_t = torch.randn((4, 1, 28, 28), generator=g)                   # (4, 1, 28, 28)
        eps = torch.randn(x_t.shape, generator=g)
        noise = torch.randn(x_t.shape, generator=g)
        expected, _ = ddpm_step(x_t, eps, t, t - 1, schedule, noise if t > 0 else None)
        got = call_answer(answer, (x_t.clone(), eps.clone(), t, schedule.beta.clone(), noise.clone()), f"(at t = {t})",
                          "t is a plain int; alpha_bar = torch.cumprod(1 - beta, 0); alpha_bar_{t-1} is alpha_bar[t - 1], "
                          "or 1 (the clean image) at index t = 0.", x_t.shape)
        if torch.allclose(got, expected, atol=1e-4):
            continue
        hint = known_mistake(got, _candidates(x_t, eps, t, schedule, noise), atol=1e-4)
        if hint:
            raise AssertionError(f"at t = {t}: {hint}")
        raise AssertionError(f"at t = {t} your x_(t-1) differs from 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) "
                             f"eps) + sqrt(beta_tilde_t) z by up to {float((got - expected).abs().max()):.3g}.")


# A plausible mistake: beta_t / (1 - alpha_bar_t) in front of eps, without the square root.
def WRONG_EXAMPLE(x_t, eps, t, beta, noise):
    alpha_bar = torch.cumprod(1 - beta, 0)
    alpha_bar_prev = alpha_bar[t - 1] if t > 0 else torch.tensor(1.0)
    mean = (x_t - beta[t] / (1 - alpha_bar[t]) * eps) / (1 - beta[t]).sqrt()
    if t == 0:
        return mean
    return mean + (beta[t] * (1 - alpha_bar_prev) / (1 - alpha_bar[t])).sqrt() * noise
