"""Worked solution of notebook 06's exercise: one DDPM reverse step by hand."""
import torch


def reverse_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, beta: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) + sqrt(beta_tilde_t) noise; no noise at t = 0."""
    alpha = 1 - beta                                             # (T,)
    alpha_bar = torch.cumprod(alpha, dim=0)                      # (T,)
    alpha_bar_prev = alpha_bar[t - 1] if t > 0 else torch.tensor(1.0)   # index 0 is the last step: the clean image
    mean = (x_t - beta[t] / (1 - alpha_bar[t]).sqrt() * eps) / alpha[t].sqrt()   # (B, 1, 28, 28)
    if t == 0:
        return mean                                              # the last step adds no noise
    beta_tilde = beta[t] * (1 - alpha_bar_prev) / (1 - alpha_bar[t])
    return mean + beta_tilde.sqrt() * noise


ANSWER = reverse_step   # what the notebook's check cell passes to dl.exercises.check("06", ...)
