"""Notebook 01's exercise: alpha_bar_t = prod_{s <= t} (1 - beta_s) from the schedule's variances beta_t."""
from __future__ import annotations

import torch

from ..schedules import cosine_beta_schedule, linear_beta_schedule, make_schedule


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
            f"{name}: alpha_bar[0] should be 1 - beta[0] = {expected[0].item():.6g}, got {got[0].item():.6g}")
        wrong = ~torch.isclose(got, expected, rtol=1e-4, atol=1e-12)
        if wrong.any():
            t = int(wrong.nonzero()[0])
            raise AssertionError(f"{name}: alpha_bar[{t}] should be {expected[t].item():.6g}, got {got[t].item():.6g}. "
                                 "alpha_bar is a product, not a sum: alpha_bar[t] multiplies alpha[s] = 1 - beta[s] "
                                 "for s = 0 .. t "
                                 "(torch.cumprod(1 - beta, dim=0)).")


# A plausible mistake: 1 - sum of betas, the first-order approximation of the product (right only while betas are tiny).
def WRONG_EXAMPLE(beta):
    return 1 - torch.cumsum(beta, dim=0)


# ----------------------------------------------------------------------------- experiment "01-zero-snr"

def _lin_zero_terminal_snr(sqrt_alpha_bar: torch.Tensor) -> torch.Tensor:
    """Lin et al. (2024), Algorithm 1: shift sqrt(alpha_bar) so its last value is 0, rescale so its first is kept."""
    s = sqrt_alpha_bar.to(torch.float64)
    return ((s - s[-1]) * s[0] / (s[0] - s[-1])) ** 2


def check_zero_snr(alpha_bar) -> str:
    """The learner's zero-terminal-SNR version of the linear schedule's alpha_bar, shape (T,).

    Checked for what the fix is for, not for one formula: alpha_bar_T = 0 (no digit left at t = T), alpha_bar_1
    unchanged, falling at every step, and nowhere above the original. Returns where the log-SNR moved.
    """
    if alpha_bar is None:
        raise NotImplementedError
    original = make_schedule("linear").alpha_bar.to(torch.float64)                 # (T,)
    assert isinstance(alpha_bar, torch.Tensor), f"pass a torch.Tensor of shape (1000,), got {type(alpha_bar).__name__}"
    assert alpha_bar.shape == original.shape, (f"expected one alpha_bar per timestep, shape {tuple(original.shape)}; "
                                               f"got {tuple(alpha_bar.shape)}")
    got = alpha_bar.detach().to(torch.float64)
    assert torch.isfinite(got).all(), "alpha_bar has NaN or infinite entries"
    if torch.allclose(got, _lin_zero_terminal_snr(original.sqrt()).sqrt(), rtol=1e-4, atol=1e-6):
        raise AssertionError("these are the rescaled sqrt(alpha_bar_t): square them to get alpha_bar_t.")
    assert abs(float(got[-1])) < 1e-9, (
        f"alpha_bar at t = T (index -1) is {float(got[-1]):.3g}: the fix must make it exactly 0, so that x_T holds "
        "nothing of x_0. Subtract the last value of sqrt(alpha_bar) from all of them.")
    assert torch.isclose(got[0], original[0], rtol=1e-5), (
        f"alpha_bar at t = 1 (index 0) moved from {float(original[0]):.6f} to {float(got[0]):.6f}: after the shift, "
        "rescale sqrt(alpha_bar) so that its first value is the original's (multiply by "
        "sqrt(alpha_bar_1) / (sqrt(alpha_bar_1) - sqrt(alpha_bar_T))).")
    assert bool((got[1:] < got[:-1]).all()), ("alpha_bar must fall at every step (every beta_t > 0), yours "
                                               "rises somewhere")
    assert bool((got <= original * (1 + 1e-6) + 1e-12).all()), (
        "alpha_bar lies above the original somewhere: the fix removes signal, it never adds any")
    log_snr_old = (original / (1 - original)).log()
    log_snr_new = (got[:-1] / (1 - got[:-1])).log()
    moved = (log_snr_new - log_snr_old[:-1]).abs()
    first = int((moved > 0.1).nonzero()[0]) if bool((moved > 0.1).any()) else None
    where = (f"log-SNR moves by more than 0.1 only from t = {first + 1} on (code index {first}); "
             if first is not None else "log-SNR moves by less than 0.1 before the last step; ")
    return where + (f"just before the end, at t = T - 1, it is {float(log_snr_new[-1]):.1f} instead of "
                    f"{float(log_snr_old[-2]):.1f}, and at t = T it is minus infinity (SNR 0).")


# A plausible mistake: the shift without the rescaling (alpha_bar_T = 0, but alpha_bar_1 moves too).
_sqrt_alpha_bar = make_schedule("linear").sqrt_alpha_bar.to(torch.float64)
WRONG_ZERO_SNR = ((_sqrt_alpha_bar - _sqrt_alpha_bar[-1]) ** 2).to(torch.float32)
