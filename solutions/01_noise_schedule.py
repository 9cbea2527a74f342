"""Worked solution of notebook 01's exercise (alpha_bar_t from beta_t) and of its experiment (zero terminal SNR)."""
import torch

import diffusion_lib as dl


def alpha_bar_from_beta(beta: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), shape (T,)."""
    alpha = 1 - beta                      # alpha[t] = 1 - beta[t], (T,)
    return torch.cumprod(alpha, dim=0)    # alpha_bar[t] = alpha[0] * alpha[1] * ... * alpha[t], (T,)


ANSWER = alpha_bar_from_beta   # what the notebook's check cell passes to dl.exercises.check("01", ...)


def zero_terminal_snr(sqrt_alpha_bar: torch.Tensor) -> torch.Tensor:
    """Lin et al. (2024), Algorithm 1: shift sqrt(alpha_bar_t) so that it ends at 0 (t = T), and rescale it so that
    it still starts at sqrt(alpha_bar_1); returns the new alpha_bar_t, shape (T,)."""
    s = sqrt_alpha_bar.to(torch.float64)                  # (T,): index 0 is t = 1, index -1 is t = T
    s = (s - s[-1]) * s[0] / (s[0] - s[-1])              # now s[-1] = 0 and s[0] as before
    return s ** 2


# The notebook's experiment cell computes this from the linear schedule and passes it to
# dl.exercises.check("01-zero-snr", ...).
EXPERIMENTS = {"01-zero-snr": lambda: zero_terminal_snr(dl.make_schedule("linear").sqrt_alpha_bar)}
