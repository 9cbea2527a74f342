"""Notebook 07's exercise: one DDIM update with stochasticity eta, written by hand; and its experiment, the error of
DDIM inversion against the number of steps."""
from __future__ import annotations

import torch

from . import call_answer, known_mistake
from ..samplers import alpha_bar_at, ddim_step, ddim_timesteps, timestep_pairs
from ..schedules import make_schedule

ETAS = (0.0, 0.5, 1.0)


def _sigma(ab_t, ab_prev, eta):
    return eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)) ** 0.5


def _candidates(x_t, eps, ab_t, ab_prev, eta, noise):
    x0 = (x_t - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5
    s = _sigma(ab_t, ab_prev, eta)
    return [
        (ab_prev ** 0.5 * x0 + (1 - ab_prev) ** 0.5 * eps + s * noise,
         f"with eta = {eta} the direction towards x_t is sqrt(1 - alpha_bar_prev - sigma_t^2) eps: the fresh noise "
         "sigma_t z takes part of the variance 1 - alpha_bar_prev, the direction keeps the rest."),
        (ab_prev ** 0.5 * x0 + max(1 - ab_prev - s ** 2, 0) ** 0.5 * eps,
         "you left out the fresh noise sigma_t z (it matters as soon as eta > 0)."),
        (ab_prev * x0 + max(1 - ab_prev - s ** 2, 0) ** 0.5 * eps + s * noise,
         "the predicted x_0 is weighted by sqrt(alpha_bar_prev), not alpha_bar_prev."),
    ]


def check(answer) -> None:
    """answer(x_t, eps, alpha_bar_t, alpha_bar_prev, eta, noise) must match dl.samplers.ddim_step on a 5-step grid."""
    schedule = make_schedule("linear")
    g = torch.Generator().manual_seed(7)
    for eta in ETAS:
        for t, t_prev in timestep_pairs(ddim_timesteps(5, schedule.T)):
            ab_t, ab_prev = alpha_bar_at(schedule, t), alpha_bar_at(schedule, t_prev)
            x_t = torch.randn((3, 1, 28, 28), generator=g)
            eps = torch.randn(x_t.shape, generator=g)
            noise = torch.randn(x_t.shape, generator=g)
            expected, _ = ddim_step(x_t, eps, t, t_prev, schedule, noise, eta=eta)
            where = f"(eta = {eta}, step t = {t} -> {t_prev}, alpha_bar_t = {ab_t:.4g}, alpha_bar_prev = {ab_prev:.4g})"
            got = call_answer(answer, (x_t.clone(), eps.clone(), ab_t, ab_prev, eta, noise.clone()), where,
                              "the alpha_bars and eta are plain floats: use ** 0.5 (or math.sqrt), not .sqrt().", x_t.shape)
            if torch.allclose(got, expected, atol=1e-5):
                continue
            hint = known_mistake(got, _candidates(x_t, eps, ab_t, ab_prev, eta, noise), atol=1e-5)
            if hint:
                raise AssertionError(f"{where}: {hint}")
            raise AssertionError(f"{where}: your x_prev differs from sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev "
                                 f"- sigma_t^2) eps + sigma_t z by up to {float((got - expected).abs().max()):.3g}.")


# A plausible mistake: the eta = 0 direction coefficient sqrt(1 - alpha_bar_prev) kept for every eta.
def WRONG_EXAMPLE(x_t, eps, alpha_bar_t, alpha_bar_prev, eta, noise):
    x0_pred = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t ** 0.5
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5
    return alpha_bar_prev ** 0.5 * x0_pred + (1 - alpha_bar_prev) ** 0.5 * eps + sigma * noise


# ----------------------------------------------------------------------------- experiment "07-inversion"

def check_inversion(measured) -> str:
    """{"steps": [S, ...], "errors": [...]}: the round-trip error of DDIM inversion (encode with S steps, decode with
    the same S, mean |decoded - original| per pixel) for increasing S.

    Checked: the shapes, and the direction: more steps, a smaller error (the inversion approximates each step of one
    ODE, and the approximation improves as the steps shrink). Returns how the error fell, and any step counts where it
    rose instead (worth a look: the trend is not guaranteed to be monotone).
    """
    if measured is None:
        raise NotImplementedError
    assert isinstance(measured, dict), f"pass a dict with keys 'steps' and 'errors', got {type(measured).__name__}"
    steps, errors = measured.get("steps"), measured.get("errors")
    if errors is None or (hasattr(errors, "__len__") and len(errors) == 0):
        raise NotImplementedError
    steps = [int(s) for s in steps]
    assert len(steps) >= 3 and steps == sorted(set(steps)) and steps[0] >= 1, (
        f"'steps' must be at least three increasing numbers of DDIM steps, got {steps}")
    e = torch.as_tensor(errors, dtype=torch.float64).detach().flatten()
    assert e.numel() == len(steps), f"{e.numel()} errors for {len(steps)} step counts: one error per step count"
    assert torch.isfinite(e).all() and bool((e >= 0).all()), "every error must be a finite, non-negative number"
    assert e[-1] < e[0], (
        f"the error with {steps[-1]} steps ({float(e[-1]):.4f}) is not below the error with {steps[0]} "
        f"({float(e[0]):.4f}). Encode and decode with the same number of steps each time (ddim_encode(..., S) then "
        "ddim_images(..., S)), and compare the decoded images with the originals.")
    assert e[-1] < 0.5, (f"with {steps[-1]} steps the decoded digits are off by {float(e[-1]):.3f} per pixel on "
                         "average (pixels span 2): decode the last state of the encoding, encoding.x_t[-1]")
    rises = [f"{a} -> {b}" for a, b, ea, eb in zip(steps, steps[1:], e.tolist(), e[1:].tolist()) if eb > ea]
    return (f"the error falls from {float(e[0]):.4f} ({steps[0]} steps) to {float(e[-1]):.4f} ({steps[-1]} steps)"
            + (f"; it rises from {', '.join(rises)} steps: why might it?" if rises else ", at every step count"))


# A measurement in the wrong direction: an error that grows with the number of steps.
WRONG_INVERSION = {"steps": [2, 5, 10, 20], "errors": [0.31, 0.45, 0.52, 0.58]}
