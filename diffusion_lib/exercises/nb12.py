"""Notebook 12's exercise: two MeanFlow steps from noise to data, with the average velocity of Gaussian data."""
from __future__ import annotations

import torch

from . import call_answer, known_mistake

MEAN, STD = 0.3, 0.5     # the data: N(MEAN, STD^2) in every coordinate


def _m(s):
    return (1 - s) * MEAN


def _std(s):
    return ((1 - s) ** 2 * STD ** 2 + s ** 2) ** 0.5


def _velocity(z, s):
    return -MEAN + (-(1 - s) * STD ** 2 + s) / _std(s) * (z - _m(s)) / _std(s)


def average_velocity(z: torch.Tensor, s, r) -> torch.Tensor:
    """The exact u(z, r, s) of the data N(MEAN, STD^2 I) on the straight path: the chord of the ODE path through z
    at s down to r, (z - z_r) / (s - r) with z_r = m_r + std_r (z - m_s) / std_s, and the velocity itself where
    r = s. Flow times 0 <= r <= s <= 1: floats, or (B,) tensors, one per point (differentiable in s, r and z, so
    torch.func.jvp can take its total derivative)."""
    s = torch.as_tensor(s, dtype=z.dtype, device=z.device)
    r = torch.as_tensor(r, dtype=z.dtype, device=z.device)
    if bool((r < 0).any() or (r > s).any() or (s > 1).any()):
        raise ValueError("need 0 <= r <= s <= 1 (the interval runs from s down to r)")
    s, r = s.reshape(-1, *([1] * (z.ndim - 1))), r.reshape(-1, *([1] * (z.ndim - 1)))
    empty = r == s
    z_r = _m(r) + _std(r) * (z - _m(s)) / _std(s)
    chord = (z - z_r) / torch.where(empty, torch.ones_like(s), s - r)
    return torch.where(empty, _velocity(z, s), chord)


def velocity(z: torch.Tensor, s, y=None) -> torch.Tensor:
    """The exact velocity of the data N(MEAN, STD^2 I) at flow times s: a perfect teacher (MeanFlow.with_teacher takes
    (z, s, y) -> v; y is ignored)."""
    return average_velocity(z, s, s)


def as_network(T: int):
    """The exact average velocity as a MeanFlow network is called, (z, t, y, r) in code timesteps: s = (t + 1) / T
    and r the same (MeanFlow.loss calls it so)."""
    def network(z, t, y=None, r=None):
        return average_velocity(z, (t + 1) / T, (r + 1) / T)
    return network


def _candidates(x_1):
    """Plausible mistakes, each with its hint."""
    u = average_velocity
    half_instant = x_1 - 0.5 * _velocity(x_1, 1.0)
    return [
        (half_instant - 0.5 * _velocity(half_instant, 0.5),
         "that is two Euler steps of the instantaneous velocity (r = s): ask for the average over each step, "
         "u(z, s, r) with r the end of the step."),
        ((lambda z: z - 1.0 * u(z, 0.5, 0.0))(x_1 - 1.0 * u(x_1, 1.0, 0.5)),
         "each step moves by (s - r) u, here 1/2 u, not by u."),
        ((lambda z: z + 0.5 * u(z, 0.5, 0.0))(x_1 + 0.5 * u(x_1, 1.0, 0.5)),
         "the velocity points from the data to the noise: go down in s, x_r = x_s - (s - r) u."),
    ]


def check(answer) -> None:
    """answer(u_model, x_1) -> x_0: two steps s = 1 -> 1/2 -> 0, each x_r = x_s - (s - r) u_model(x_s, s, r).
    With the exact average velocity of Gaussian data, that lands on the ODE's end MEAN + STD x_1 exactly."""
    g = torch.Generator().manual_seed(12)
    x_1 = torch.randn((8, 2, 1, 1), generator=g, dtype=torch.float64)
    calls = []

    def u_model(z, s, r):
        calls.append((float(s), float(r)))
        return average_velocity(z, s, r)

    got = call_answer(answer, (u_model, x_1.clone()), "(with the exact average velocity)",
                      "u_model(z, s, r) takes the state z and two floats, the flow time s and the end r <= s "
                      "of the interval.", x_1.shape)
    expected = MEAN + STD * x_1
    if torch.allclose(got, expected, rtol=1e-9, atol=1e-12) and len(calls) == 2:
        return
    if torch.allclose(got, expected, rtol=1e-9, atol=1e-12):
        raise AssertionError(f"right end, but with {len(calls)} call(s) of u_model ({calls}): one step over the whole "
                             "interval is exact too, for the exact u; the exercise asks for two steps (s = 1 -> 1/2 -> 0), "
                             "as a trained network would use to correct its first one.")
    hint = known_mistake(got, _candidates(x_1), rtol=1e-9, atol=1e-12)
    if hint:
        raise AssertionError(hint)
    raise AssertionError(f"your x_0 differs from the ODE's end MEAN + STD x_1 by up to "
                         f"{float((got - expected).abs().max()):.3g}; u_model was called with (s, r) = {calls}.")


# A plausible mistake: two Euler steps of the instantaneous velocity.
def WRONG_EXAMPLE(u_model, x_1):
    x = x_1 - 0.5 * u_model(x_1, 1.0, 1.0)
    return x - 0.5 * u_model(x, 0.5, 0.5)
