"""Worked solution of notebook 05's exercise: the noise-prediction loss, from the equation."""
import torch


def my_loss(model, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule) -> torch.Tensor:
    """Mean of (eps - eps_theta(x_t, t))^2 with x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    alpha_bar = schedule.alpha_bar[t].reshape(-1, 1, 1, 1)            # (B, 1, 1, 1): one alpha_bar_t per image
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps        # (B, 1, 28, 28)
    return ((eps - model(x_t, t)) ** 2).mean()                        # a scalar: mean over images and pixels


ANSWER = my_loss   # what the notebook's check cell passes to dl.exercises.check("05", ...)
