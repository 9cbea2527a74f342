"""Worked solution of notebook 09's exercise: the error of the predicted clean image caused by an error in eps."""
import torch


def x0_error(eps_error: torch.Tensor, t: torch.Tensor, schedule) -> torch.Tensor:
    """x0_pred(eps + eps_error) - x0_pred(eps) = -sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t) * eps_error.

    From x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t): x_t and the true eps cancel in the
    difference, and what is left is the error scaled by sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t) (about 157 at
    t = 999 on the linear schedule), with a minus sign.
    """
    alpha_bar = schedule.alpha_bar[t].reshape(-1, 1, 1, 1)            # (B, 1, 1, 1): one alpha_bar_t per image
    return -(1 - alpha_bar).sqrt() / alpha_bar.sqrt() * eps_error     # (B, 1, 28, 28)


ANSWER = x0_error   # what the notebook's check cell passes to dl.exercises.check("09", ...)
