"""Classifier-free guidance (Ho & Salimans 2022).

One network is trained both with labels and, with probability p (label dropout), with the null
label. At sampling time both predictions are combined with a guidance weight w >= 0:

    eps_guided = eps_uncond + w * (eps_cond - eps_uncond)

w = 0 is the unconditional model, w = 1 the conditional one, w > 1 pushes further towards the label.
The combination is linear in the network's output, so the same function guides a flow-matching
network's velocity (u_guided = u_uncond + w (u_cond - u_uncond)), sampled with the flow samplers.
"""
from __future__ import annotations

import torch

from .backbones import Backbone
from .checks import check_number, check_same_shape
from .objectives import carry_marks

# The guidance weights that make sense: w = 0 is the unconditional model, w = 1 the conditional one, and useful
# guidance lies in about [1, 10] (notebook 08's sweep stops at 8, where the digits are already saturated). Past
# 20 the extrapolation eps_uncond + w (eps_cond - eps_uncond) only amplifies the network's error; huge w overflows
# to inf (DDIM) or NaN (flow Euler) images. So w is refused outside [0, MAX_GUIDANCE_WEIGHT].
MAX_GUIDANCE_WEIGHT = 20.0


def check_guidance_weight(w: float) -> float:
    """w as a float, if it is a number in [0, MAX_GUIDANCE_WEIGHT]; else a ValueError."""
    return check_number(w, "the guidance weight w", 0, MAX_GUIDANCE_WEIGHT,
                        hint="0: unconditional, 1: conditional, useful guidance about 1 to 10")


def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """eps_uncond + w * (eps_cond - eps_uncond)."""
    w = check_guidance_weight(w)
    check_same_shape(eps_cond, eps_uncond, "eps_cond", "eps_uncond")
    return eps_uncond + w * (eps_cond - eps_uncond)


def check_class_labels(y, model: Backbone) -> torch.Tensor:
    """y as a (B,) long tensor, if it holds integer classes of `model` in [0, num_classes - 1] (the null label is not a
    class to ask for: w = 0 gives the unconditional model); else a ValueError."""
    if isinstance(y, torch.Tensor):
        labels = y
    else:
        try:
            labels = torch.as_tensor(y)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"labels y must be a (B,) tensor of integer classes, got {type(y).__name__}; "
                             "pass torch.tensor([...], dtype=torch.long)") from None
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels y must hold integer classes (torch.long), got dtype {labels.dtype}; "
                         "pass whole class numbers, e.g. y.long() if they are whole")
    if labels.ndim != 1 or labels.numel() == 0:
        raise ValueError(f"labels y must have shape (B,), one class per image, got shape {tuple(labels.shape)}; "
                         "flatten them, e.g. y.reshape(-1)")
    high = model.num_classes - 1
    if bool(((labels < 0) | (labels > high)).any()):       # one read, when the guided model is made
        raise ValueError(f"labels y must be classes in [0, {high}], got values in [{int(labels.min())}, "
                         f"{int(labels.max())}] ({model.num_classes} is the null label, which guidance adds itself: "
                         "for unconditional samples use w = 0)")
    return labels.long()


def labels_of_a_conditional_model(y, model: Backbone, purpose: str) -> torch.Tensor:
    """y checked by check_class_labels, if `model` is class-conditional; else a ValueError that names `purpose`."""
    if getattr(model, "num_classes", None) is None:
        raise ValueError(f"{purpose} needs a class-conditional model, and this one is unconditional; "
                         "use a model trained with labels (e.g. UNet(num_classes=10), load_pretrained('unet_cond'))")
    return check_class_labels(y, model)


def labels_for_batch(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The labels (B,) of a batch x (B, ...), on x's device; a ValueError if there is not one per image."""
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels y must have shape (B,) = ({x.shape[0]},), one per image, got {tuple(y.shape)}; "
                         "give as many labels as images")
    return y.to(x.device)


def cfg_eps_model(model: Backbone, y: torch.Tensor, w: float):
    """An eps_model (x_t, t) -> guided noise for the samplers (for a flow-matching network: the guided velocity;
    for a MeanFlow network, (x_t, t, r=...) -> the guided average velocity, two evaluations a step where a student
    with guidance built in needs one); labels y (B,) in [0, num_classes - 1], one batched network call per step.
    It carries the model's marks (objective, schedule, output), so the samplers of the wrong kind refuse it as they
    refuse the model."""
    w = check_guidance_weight(w)
    y = labels_of_a_conditional_model(y, model, "classifier-free guidance")

    def eps_model(x: torch.Tensor, t: torch.Tensor, **r) -> torch.Tensor:
        labels = labels_for_batch(y, x)
        null = torch.full_like(labels, model.null_label)
        r = {k: torch.cat([v, v]) for k, v in r.items()}    # a MeanFlow network's interval end r, for both halves
        eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]), **r)  # (2B, C, H, W)
        eps_cond, eps_uncond = eps.chunk(2)
        return eps_uncond + w * (eps_cond - eps_uncond)           # guided_eps, its checks done once above

    return carry_marks(eps_model, model)


def conditional_eps_model(model: Backbone, y: torch.Tensor):
    """An eps_model (x_t, t) -> the conditional network's output for labels y (B,): w = 1 with one evaluation a step
    (cfg_eps_model at w = 1 gives the same up to rounding, with the unconditional half computed and cancelled). For a
    MeanFlow network the interval end r is passed on. Carries the model's marks, like cfg_eps_model."""
    y = labels_of_a_conditional_model(y, model, "sampling with labels")

    def eps_model(x: torch.Tensor, t: torch.Tensor, **r) -> torch.Tensor:
        return model(x, t, labels_for_batch(y, x), **r)

    return carry_marks(eps_model, model)
