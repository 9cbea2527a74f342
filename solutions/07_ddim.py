"""Worked solution of notebook 07's exercise: one DDIM update with eta, by hand."""
import torch


def ddim_update(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float, eta: float,
                noise: torch.Tensor) -> torch.Tensor:
    """x_prev = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps + sigma_t noise."""
    x0_pred = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t ** 0.5            # Eq. 12, "predicted x_0"
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5  # Eq. 16
    direction = (1 - alpha_bar_prev - sigma ** 2) ** 0.5 * eps                      # "direction pointing to x_t"
    return alpha_bar_prev ** 0.5 * x0_pred + direction + sigma * noise               # (B, 1, 28, 28)


ANSWER = ddim_update   # what the notebook's check cell passes to dl.exercises.check("07", ...)
