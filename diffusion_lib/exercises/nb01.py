"""Notebook 01's exercise: alpha_bar_t = prod_{s <= t} (1 - beta_s) from the schedule's variances beta_t."""
from __future__ import annotations

import torch

from ..schedules import cosine_beta_schedule, linear_beta_schedule


def check(answer) -> None:
    """answer(beta) must return alpha_bar for the linear and the cosine schedule, and for a short custom one."""
    cases = {"linear": linear_beta_schedule(1000), "cosine": cosine_beta_schedule(1000),
             "a 5-step schedule": torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)}
    for name, beta in cases.items():
        expected = torch.cumprod(1 - beta, dim=0)
        got = answer(beta.clone())
        assert isinstance(got, torch.Tensor), f"return a torch.Tensor, got {type(got).__name__}"
        assert got.shape == beta.shape, (f"{name}: expected shape {tuple(beta.shape)} (one alpha_bar_t per timestep), "
                                         f"got {tuple(got.shape)}")
        got = got.to(torch.float64)
        assert torch.allclose(got[:1], expected[:1], rtol=1e-5), (
            f"{name}: alpha_bar_0 should be 1 - beta_0 = {expected[0].item():.6g}, got {got[0].item():.6g}")
        wrong = ~torch.isclose(got, expected, rtol=1e-4, atol=1e-12)
        if wrong.any():
            t = int(wrong.nonzero()[0])
            raise AssertionError(f"{name}: alpha_bar_{t} should be {expected[t].item():.6g}, got {got[t].item():.6g}. "
                                 "alpha_bar_t is a product, not a sum: multiply alpha_s = 1 - beta_s for s = 0 .. t "
                                 "(torch.cumprod(1 - beta, dim=0)).")


# A plausible mistake: 1 - sum of betas, the first-order approximation of the product (right only while betas are tiny).
def WRONG_EXAMPLE(beta):
    return 1 - torch.cumsum(beta, dim=0)
