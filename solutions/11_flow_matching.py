"""Worked solution of notebook 11's exercise: the best velocity E[eps - x_0 | x_s] for Gaussian data N(mean, v I)."""
import torch


def gaussian_velocity(x_s: torch.Tensor, s: float, mean: torch.Tensor, variance: float) -> torch.Tensor:
    """u*(x_s) = E[u] + Cov(u, x_s) / Var(x_s) (x_s - E[x_s]) for u = eps - x_0 and x_s = (1 - s) x_0 + s eps:
    everything is Gaussian, so the best guess of u is linear in x_s (per coordinate)."""
    m = mean[:, None, None]                                    # (2, 1, 1): broadcasts over the points' channels
    mean_u = -m                                                # E[eps - x_0] = 0 - mean
    mean_x = (1 - s) * m                                       # E[x_s]
    cov = s - (1 - s) * variance                               # Cov(eps - x_0, (1 - s) x_0 + s eps) per coordinate
    var = (1 - s) ** 2 * variance + s ** 2                     # Var(x_s) per coordinate
    return mean_u + cov / var * (x_s - mean_x)


ANSWER = gaussian_velocity   # what the notebook's check cell passes to dl.exercises.check("11", ...)
