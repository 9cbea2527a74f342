"""Notebook 09's exercise: how an error in the predicted noise becomes an error in the predicted clean image.

    x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)
    eps_pred = eps + delta   =>   x0_pred - x_0 = -sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t) * delta
"""
from __future__ import annotations

import torch

from ..forward import predict_x0_from_eps, q_sample
from . import call_with_broadcast_hint
from ..schedules import extract, make_schedule


def _inputs(seed: int, shape=(1, 28, 28)):
    g = torch.Generator().manual_seed(seed)
    t = torch.tensor([0, 10, 250, 500, 750, 999])
    x0 = torch.rand((t.shape[0], *shape), generator=g) * 2 - 1
    eps = torch.randn((t.shape[0], *shape), generator=g)
    delta = 0.1 * torch.randn((t.shape[0], *shape), generator=g)
    return x0, t, eps, delta


def _slips(delta, t, schedule) -> list[tuple[torch.Tensor, str]]:
    """Answers that come from a known slip, with the hint for each."""
    ab = extract(schedule.alpha_bar, t, delta.shape)
    a = extract(schedule.alpha, t, delta.shape)
    return [
        ((1 - ab).sqrt() / ab.sqrt() * delta, "mind the sign: x0_pred subtracts sqrt(1 - alpha_bar_t) eps_pred, so too "
                                              "much predicted noise gives too little x_0"),
        (-ab.sqrt() / (1 - ab).sqrt() * delta, "the ratio is upside down: eps_pred is multiplied by sqrt(1 - alpha_bar_t) "
                                               "and the whole is divided by sqrt(alpha_bar_t)"),
        (-(1 - ab) / ab * delta, "take square roots: the coefficients of q_sample are sqrt(alpha_bar_t) and "
                                 "sqrt(1 - alpha_bar_t)"),
        (-(1 - a).sqrt() / a.sqrt() * delta, "use alpha_bar_t = schedule.alpha_bar[t] (the product of all alphas up "
                                             "to t), not the one-step alpha_t"),
        (-(1 - ab).sqrt() * delta, "divide by sqrt(alpha_bar_t) too: x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) "
                                   "/ sqrt(alpha_bar_t)"),
    ]


def check(answer) -> None:
    """answer(eps_error, t, schedule) must return x0_pred(eps + eps_error) - x0_pred(eps), shape of eps_error."""
    for seed, name in [(0, "linear"), (1, "cosine")]:
        schedule = make_schedule(name, 1000)
        x0, t, eps, delta = _inputs(seed)
        x_t = q_sample(x0, t, schedule, eps)
        expected = predict_x0_from_eps(x_t, t, eps + delta, schedule) - predict_x0_from_eps(x_t, t, eps, schedule)
        got = call_with_broadcast_hint(answer, delta.clone(), t.clone(), schedule)
        assert isinstance(got, torch.Tensor), f"return a torch.Tensor, got {type(got).__name__}"
        assert got.shape == delta.shape, (f"return one error per pixel, shape {tuple(delta.shape)} like eps_error; "
                                          f"got {tuple(got.shape)}")
        if not torch.allclose(got, expected, rtol=1e-3, atol=1e-5):
            hint = next((h for value, h in _slips(delta, t, schedule) if torch.allclose(got, value, rtol=1e-3, atol=1e-5)),
                        "write x0_pred for eps_pred = eps + eps_error and for eps_pred = eps, and subtract: x_t and eps "
                        "cancel, and what is left is a factor (depending on t) times eps_error")
            worst = int((got - expected).flatten(1).abs().amax(1).argmax())
            raise AssertionError(f"{name} schedule, t = {int(t[worst])}: the error of x0_pred differs from "
                                 f"x0_pred(eps + eps_error) - x0_pred(eps). Hint: {hint}.")


# A plausible mistake: the amplification written without its minus sign.
def WRONG_EXAMPLE(eps_error, t, schedule):
    alpha_bar = schedule.alpha_bar[t].reshape(-1, 1, 1, 1)
    return (1 - alpha_bar).sqrt() / alpha_bar.sqrt() * eps_error
