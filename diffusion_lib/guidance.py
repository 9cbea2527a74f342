"""Classifier-free guidance (Ho & Salimans 2022).

One network is trained both with labels and, with probability p (label dropout), with the null
label. At sampling time both predictions are combined with a guidance weight w >= 0:

    eps_guided = eps_uncond + w * (eps_cond - eps_uncond)

w = 0 is the unconditional model, w = 1 the conditional one, w > 1 pushes further towards the label.
The combination is linear in the network's output, so the same function guides a flow-matching
network's velocity (u_guided = u_uncond + w (u_cond - u_uncond)), sampled with the flow samplers.
"""
from __future__ import annotations

import math

import torch

from .backbones import Backbone


def check_guidance_weight(w: float) -> None:
    """Raise a ValueError unless w is a finite number >= 0."""
    try:
        value = float(w)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"the guidance weight w must be a number >= 0, got {w!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"the guidance weight w must be a finite number >= 0 (0: unconditional, 1: conditional), "
                         f"got {value}; typical values lie in [0, 10]")
    if value < 0:
        raise ValueError(f"the guidance weight w must be >= 0 (0: unconditional, 1: conditional), got {w}")


def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """eps_uncond + w * (eps_cond - eps_uncond)."""
    check_guidance_weight(w)
    return eps_uncond + w * (eps_cond - eps_uncond)


def cfg_eps_model(model: Backbone, y: torch.Tensor, w: float):
    """An eps_model (x_t, t) -> guided noise for the samplers (for a flow-matching network: the guided velocity);
    labels y (B,), one batched network call per step."""
    check_guidance_weight(w)
    if model.num_classes is None:
        raise ValueError("classifier-free guidance needs a class-conditional model (e.g. UNet(num_classes=10))")
    y = torch.as_tensor(y, dtype=torch.long)

    def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if y.shape != (x.shape[0],):
            raise ValueError(f"labels y must have shape (B,) = ({x.shape[0]},), got {tuple(y.shape)}")
        labels = y.to(x.device)
        null = torch.full_like(labels, model.null_label)
        eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))  # (2B, C, H, W)
        eps_cond, eps_uncond = eps.chunk(2)
        return guided_eps(eps_cond, eps_uncond, w)

    return eps_model
