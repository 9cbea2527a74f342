"""Notebook 11's exercise: the best flow-matching velocity for Gaussian data, by regression on the straight path."""
from __future__ import annotations

import torch

from . import call_answer, known_mistake
from ..toy import GaussianMixture, as_points, exact_velocity

FLOW_TIMES = (0.5, 0.9, 0.2, 1.0, 0.0)   # the middle first: its mistakes show most clearly; then both ends
MEAN, VARIANCE = (0.4, -0.3), 0.05        # the data: N(mean, variance I) in 2-D


def _candidates(x, s, mean, variance):
    """Plausible mistakes, each with its hint."""
    C = (1 - s) ** 2 * variance + s ** 2
    return [
        ((s - (1 - s) * variance) / C * (x - (1 - s) * mean),
         "that is the regression of eps - x_0 on x_s without its mean: E[eps - x_0] = -mean is added to it."),
        (-mean + (s - (1 - s) * variance) / C * (x - mean),
         "x_s's mean is (1 - s) * mean: the straight path shrinks the data towards 0 as s grows."),
        (-mean + (s + (1 - s) * variance) / C * (x - (1 - s) * mean),
         "Cov(eps - x_0, x_s) = s - (1 - s) variance: the x_0 term enters the velocity with a minus sign."),
        (-mean + (s - (1 - s) * variance) / ((1 - s) * variance + s) * (x - (1 - s) * mean),
         "Var(x_s) = (1 - s)^2 variance + s^2: the factors multiply x_0 and eps, so they enter squared."),
        (mean + (s - (1 - s) * variance) / C * (x - (1 - s) * mean),
         "the velocity is eps - x_0, pointing from the data to the noise: its mean is -mean."),
    ]


def check(answer) -> None:
    """answer(x_s, s, mean, variance) must equal E[eps - x_0 | x_s] of dl.toy.exact_velocity for data
    N(mean, variance I), at five flow times from the data (s = 0) to pure noise (s = 1)."""
    g = torch.Generator().manual_seed(11)
    mean = torch.tensor(MEAN, dtype=torch.float64)
    one = GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None],
                          VARIANCE * torch.eye(2, dtype=torch.float64)[None])
    for s in FLOW_TIMES:
        x = as_points(torch.randn((6, 2), generator=g, dtype=torch.float64))          # (6, 2, 1, 1)
        expected = exact_velocity(one, x, s)
        where = f"(s = {s:g})"
        got = call_answer(answer, (x.clone(), s, mean.clone(), VARIANCE), where,
                          "s and variance are floats, mean is a (2,) tensor: reshape it to (2, 1, 1) "
                          "(mean[:, None, None]) to broadcast over points of shape (B, 2, 1, 1).", x.shape,
                          "reshape the (2,) mean to (2, 1, 1) so that it lines up with the 2 channels")
        if torch.allclose(got, expected, rtol=1e-6, atol=1e-9):
            continue
        hint = known_mistake(got, _candidates(x, s, mean[:, None, None], VARIANCE), rtol=1e-6, atol=1e-9)
        if hint:
            raise AssertionError(f"{where}: {hint}")
        raise AssertionError(f"{where}: your u* differs from -mean + (s - (1 - s) variance) / ((1 - s)^2 variance "
                             f"+ s^2) (x_s - (1 - s) mean) by up to {float((got - expected).abs().max()):.3g}.")


# A plausible mistake: the data's mean used as the mean of x_s, without the factor (1 - s).
def WRONG_EXAMPLE(x_s, s, mean, variance):
    m = mean[:, None, None]
    return -m + (s - (1 - s) * variance) / ((1 - s) ** 2 * variance + s ** 2) * (x_s - m)
