"""Worked solution of notebook 08's exercise: the guided noise prediction from two calls of one network."""
import torch


def guided_noise(model, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
    """eps_uncond + w (eps_cond - eps_uncond): w = 0 unconditional, w = 1 conditional, w > 1 guided."""
    eps_cond = model(x_t, t, y)                                          # (B, 1, 28, 28) towards the labels y
    eps_uncond = model(x_t, t, torch.full_like(y, model.null_label))     # (B, 1, 28, 28) the null label: no label
    return eps_uncond + w * (eps_cond - eps_uncond)


ANSWER = guided_noise   # what the notebook's check cell passes to dl.exercises.check("08", ...)
