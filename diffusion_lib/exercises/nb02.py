"""Notebook 02's exercise: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, written by hand."""
from __future__ import annotations

import torch

from . import call_answer
from ..forward import q_sample
from ..schedules import make_schedule


def check(answer) -> None:
    """answer(x0, t, alpha_bar, noise) must match dl.q_sample on a batch with mixed timesteps."""
    schedule = make_schedule("linear")
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand((5, 1, 28, 28), generator=g) * 2 - 1                   # (5, 1, 28, 28) in [-1, 1]
    t = torch.tensor([0, 10, 250, 600, schedule.T - 1])                    # (5,) mixed timesteps
    noise = torch.randn(x0.shape, generator=g)
    expected = q_sample(x0, t, schedule, noise=noise)
    got = call_answer(answer, (x0.clone(), t.clone(), schedule.alpha_bar.clone(), noise.clone()),   # most often a
                      "(one noisy image per clean one)", "alpha_bar[t] has shape (B,) = (5,); reshape it to "   # broadcasting error
                      "(B, 1, 1, 1) with .view(-1, 1, 1, 1) so it multiplies each image.", x0.shape,
                      "alpha_bar[t] has shape (B,); reshape it to (B, 1, 1, 1).")
    if not torch.allclose(got, expected, atol=1e-5):
        ab = schedule.alpha_bar[t].view(-1, 1, 1, 1)
        if torch.allclose(got, ab * x0 + (1 - ab) * noise, atol=1e-5):
            raise AssertionError("close: the coefficients are the square roots, sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t), "
                                 "so that their squares (the variances) sum to one.")
        worst = int((got - expected).abs().flatten(1).amax(1).argmax())
        raise AssertionError(f"x_t differs from sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, most for the image "
                             f"at t = {int(t[worst])}. Use alpha_bar[t] (one value per image), not alpha_bar itself.")


# A plausible mistake: the variances alpha_bar_t and 1 - alpha_bar_t used as coefficients (no square roots).
def WRONG_EXAMPLE(x0, t, alpha_bar, noise):
    ab = alpha_bar[t].view(-1, 1, 1, 1)
    return ab * x0 + (1 - ab) * noise
