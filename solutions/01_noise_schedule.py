"""Worked solution of notebook 01's exercise: alpha_bar_t from beta_t."""
import torch


def alpha_bar_from_beta(beta: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), shape (T,)."""
    alpha = 1 - beta                      # alpha_t = 1 - beta_t, (T,)
    return torch.cumprod(alpha, dim=0)    # alpha_bar_t = alpha_0 * alpha_1 * ... * alpha_t, (T,)


ANSWER = alpha_bar_from_beta   # what the notebook's check cell passes to dl.exercises.check("01", ...)
