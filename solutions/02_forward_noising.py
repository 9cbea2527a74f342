"""Worked solution of notebook 02's exercise: q_sample written by hand."""
import torch


def noisy_image(x0: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, shape (B, 1, 28, 28)."""
    ab = alpha_bar[t].view(-1, 1, 1, 1)              # (B,) -> (B, 1, 1, 1): one value per image, broadcast over pixels
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise  # (B, 1, 28, 28)


ANSWER = noisy_image   # what the notebook's check cell passes to dl.exercises.check("02", ...)
