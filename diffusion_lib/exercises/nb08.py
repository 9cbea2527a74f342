"""Notebook 08's exercise: the classifier-free guided noise prediction, from two calls of one network."""
from __future__ import annotations

import torch

from . import call_answer
from ..backbones import UNet
from ..guidance import cfg_eps_model

WEIGHTS = (0.0, 1.0, 3.0)


def _tiny_model() -> UNet:
    """A small conditional U-Net with seeded random weights (the learner's global RNG is left alone)."""
    with torch.random.fork_rng():
        torch.manual_seed(8)
        return UNet(base=8, num_classes=10).eval()


def check(answer) -> None:
    """answer(model, x_t, t, y, w) must match dl.cfg_eps_model(model, y, w)(x_t, t) for w in 0, 1, 3."""
    model = _tiny_model()
    g = torch.Generator().manual_seed(8)
    x_t = torch.randn((4, 1, 28, 28), generator=g)
    t = torch.tensor([999, 500, 100, 3])
    y = torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        eps_cond = model(x_t, t, y)
        eps_uncond = model(x_t, t, torch.full_like(y, model.null_label))
    assert not torch.allclose(eps_cond, eps_uncond), "internal: the test network ignores its labels"
    got = {}
    for w in WEIGHTS:
        with torch.no_grad():
            got[w] = call_answer(answer, (model, x_t.clone(), t.clone(), y.clone(), w), f"(w = {w})",
                                 "call the network as model(x_t, t, labels); the null label is model.null_label "
                                 "(torch.full_like(y, model.null_label)).", x_t.shape)
    # Each mistake is recognised only if it explains the answers at every w (some coincide at one w).
    mistakes = [
        (lambda w: (1 + w) * eps_cond - w * eps_uncond,
         "that is (1 + w) eps_cond - w eps_uncond, the convention of Ho & Salimans' paper, where w = 0 means "
         "conditional. This course (and diffusion_lib) writes eps_uncond + w (eps_cond - eps_uncond), so that "
         "w = 0 is unconditional and w = 1 conditional."),
        (lambda w: eps_cond, "you returned the conditional prediction for every w: mix in the unconditional one."),
        (lambda w: eps_uncond + w * (eps_uncond - eps_cond), "the sign is reversed: move from eps_uncond towards eps_cond."),
        (lambda w: eps_cond + w * (eps_cond - eps_uncond),
         "start from eps_uncond, not eps_cond: w = 0 must give the unconditional prediction."),
    ]
    with torch.no_grad():
        expected = {w: cfg_eps_model(model, y, w)(x_t, t) for w in WEIGHTS}
    wrong = [w for w in WEIGHTS if not torch.allclose(got[w], expected[w], atol=1e-5)]
    if not wrong:
        return
    for mistake, hint in mistakes:
        if all(torch.allclose(got[w], mistake(w), atol=1e-5) for w in WEIGHTS):
            raise AssertionError(hint)
    w = wrong[0]
    gap = float((got[w] - expected[w]).abs().max())
    raise AssertionError(f"w = {w}: your prediction differs from eps_uncond + w (eps_cond - eps_uncond) by up to "
                         f"{gap:.3g}. Hint: eps_uncond = model(x_t, t, null labels).")


# A plausible mistake: the paper's (1 + w) convention, where w = 0 is the conditional model.
def WRONG_EXAMPLE(model, x_t, t, y, w):
    eps_cond = model(x_t, t, y)
    eps_uncond = model(x_t, t, torch.full_like(y, model.null_label))
    return (1 + w) * eps_cond - w * eps_uncond
