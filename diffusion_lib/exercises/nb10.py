"""Notebook 10's exercise: the best noise prediction for Gaussian data, from its noised density and its score."""
from __future__ import annotations

import torch

from . import call_answer, known_mistake
from ..schedules import make_schedule
from ..toy import GaussianMixture, as_points, q_t_score

TIMESTEPS = (250, 999, 600, 40, 0)   # a middle noise level first: its mistakes show most clearly
MEAN, VARIANCE = (0.4, -0.3), 0.05        # the data: N(mean, variance I) in 2-D


def _candidates(x_t, ab, mean, variance):
    """Plausible mistakes, each with its hint."""
    C = ab * variance + 1 - ab
    return [
        (-(x_t - ab ** 0.5 * mean) / C,
         "that is the score grad log q_t itself; the noise prediction is eps* = -sqrt(1 - alpha_bar) times the score."),
        ((x_t - ab ** 0.5 * mean) / C,
         "that is minus the score: eps* = -sqrt(1 - alpha_bar) * score, and the score points towards the mean."),
        ((1 - ab) ** 0.5 * (x_t - mean) / C,
         "q_t's mean is sqrt(alpha_bar) * mean: the forward process shrinks the signal before adding noise."),
        ((1 - ab) ** 0.5 * (x_t - ab ** 0.5 * mean) / variance,
         "q_t's variance is alpha_bar * variance + (1 - alpha_bar), the data's variance shrunk plus the noise's."),
        ((1 - ab) ** 0.5 * (x_t - ab ** 0.5 * mean) / (ab ** 0.5 * variance + 1 - ab),
         "the data's variance is scaled by alpha_bar (the square of the signal factor sqrt(alpha_bar)), not by "
         "sqrt(alpha_bar)."),
    ]


def check(answer) -> None:
    """answer(x_t, alpha_bar, mean, variance) must equal -sqrt(1 - alpha_bar) grad log q_t(x_t) of dl.toy for data
    N(mean, variance I), at five noise levels, from almost clean to pure noise."""
    schedule = make_schedule("linear")
    g = torch.Generator().manual_seed(10)
    mean = torch.tensor(MEAN, dtype=torch.float64)
    one = GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None],
                          VARIANCE * torch.eye(2, dtype=torch.float64)[None])
    for t in TIMESTEPS:
        ab = float(schedule.alpha_bar[t])
        x_t = as_points(torch.randn((6, 2), generator=g, dtype=torch.float64))        # (6, 2, 1, 1)
        expected = -(1 - ab) ** 0.5 * q_t_score(one, x_t, ab)
        where = f"(alpha_bar = {ab:.4g})"
        got = call_answer(answer, (x_t.clone(), ab, mean.clone(), VARIANCE), where,
                          "alpha_bar and variance are floats, mean is a (2,) tensor: reshape it to (2, 1, 1) "
                          "(mean[:, None, None]) to broadcast over points of shape (B, 2, 1, 1).", x_t.shape,
                          "reshape the (2,) mean to (2, 1, 1) so that it lines up with the 2 channels")
        if torch.allclose(got, expected, rtol=1e-6, atol=1e-9):
            continue
        hint = known_mistake(got, _candidates(x_t, ab, mean[:, None, None], VARIANCE), rtol=1e-6, atol=1e-9)
        if hint:
            raise AssertionError(f"{where}: {hint}")
        raise AssertionError(f"{where}: your eps* differs from sqrt(1 - alpha_bar) (x_t - sqrt(alpha_bar) mean) / "
                             f"(alpha_bar variance + 1 - alpha_bar) by up to {float((got - expected).abs().max()):.3g}.")


# A plausible mistake: the data's mean used as the mean of q_t, without the signal factor sqrt(alpha_bar).
def WRONG_EXAMPLE(x_t, alpha_bar, mean, variance):
    return (1 - alpha_bar) ** 0.5 * (x_t - mean[:, None, None]) / (alpha_bar * variance + 1 - alpha_bar)
