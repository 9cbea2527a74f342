"""Worked solution of notebook 10's exercise: the best noise prediction E[eps | x_t] for Gaussian data N(mean, s^2 I)."""
import torch


def gaussian_eps(x_t: torch.Tensor, alpha_bar: float, mean: torch.Tensor, variance: float) -> torch.Tensor:
    """eps*(x_t) = -sqrt(1 - alpha_bar) grad log q_t(x_t), with q_t = N(sqrt(alpha_bar) mean, (alpha_bar s^2 + 1 - alpha_bar) I)."""
    m_t = alpha_bar ** 0.5 * mean[:, None, None]                 # (2, 1, 1): the signal shrinks by sqrt(alpha_bar)
    v_t = alpha_bar * variance + (1 - alpha_bar)                 # the data's variance shrunk, plus the noise's
    score = -(x_t - m_t) / v_t                                   # grad log N(x; m_t, v_t I), (B, 2, 1, 1)
    return -(1 - alpha_bar) ** 0.5 * score                       # eps* = -sqrt(1 - alpha_bar) * score


ANSWER = gaussian_eps   # what the notebook's check cell passes to dl.exercises.check("10", ...)
