"""Notebook 14's exercise: one step of ancestral unmasking, x_t -> x_s, written by hand."""
from __future__ import annotations

import torch

from . import call_answer, known_mistake

MASK = 27                                   # the [MASK] id of the names (27 tokens: a-z and the end mark)
TIMES = ((0.0, 0.25), (0.5, 0.6), (0.7, 1.0))  # (alpha_t, alpha_s): the first step (all masked), a middle one, the last


def expected_step(x_t, proposal, u, alpha_t, alpha_s, mask_id):
    p = (alpha_s - alpha_t) / (1 - alpha_t)
    return torch.where((x_t == mask_id) & (u < p), proposal, x_t)


def _candidates(x_t, proposal, u, alpha_t, alpha_s, mask_id):
    masked = x_t == mask_id
    return [
        (torch.where(masked & (u < (1 - alpha_s) / (1 - alpha_t)), proposal, x_t),
         "(1 - alpha_s) / (1 - alpha_t) is the chance that a masked token STAYS masked; it is revealed with "
         "(alpha_s - alpha_t) / (1 - alpha_t)."),
        (torch.where(masked & (u < alpha_s), proposal, x_t),
         "alpha_s is the chance that a token is clean at time s starting from x_0; given that it is still masked at "
         "t, the chance is (alpha_s - alpha_t) / (1 - alpha_t)."),
        (torch.where(u < (alpha_s - alpha_t) / (1 - alpha_t), proposal, x_t),
         "only masked tokens may change: a token already revealed in x_t keeps its value (carry-over)."),
        (torch.where(masked & (u > (alpha_s - alpha_t) / (1 - alpha_t)), proposal, x_t),
         "reveal where u < p (an event of probability p for u ~ U(0, 1)), not where u > p."),
    ]


def check(answer) -> None:
    """answer(x_t, proposal, u, alpha_t, alpha_s, mask_id) must reveal each masked token of x_t (set it to proposal)
    where u < (alpha_s - alpha_t) / (1 - alpha_t), and leave every other token as it is."""
    g = torch.Generator().manual_seed(14)
    for alpha_t, alpha_s in TIMES:
        x_t = torch.randint(0, 27, (6, 12), generator=g)
        x_t[torch.rand((6, 12), generator=g) < 1 - alpha_t] = MASK          # (6, 12) partly masked names
        proposal = torch.randint(0, 27, (6, 12), generator=g)              # the network's draws x_0 ~ x_theta
        u = torch.rand((6, 12), generator=g)
        where = f"(alpha_t = {alpha_t:g}, alpha_s = {alpha_s:g})"
        got = call_answer(answer, (x_t.clone(), proposal.clone(), u.clone(), alpha_t, alpha_s, MASK), where,
                          "x_t, proposal and u are (6, 12) tensors; alpha_t and alpha_s are floats; use torch.where.",
                          x_t.shape)
        expected = expected_step(x_t, proposal, u, alpha_t, alpha_s, MASK)
        if torch.equal(got, expected):
            continue
        hint = known_mistake(got.double(), [(w.double(), h) for w, h in
                                            _candidates(x_t, proposal, u, alpha_t, alpha_s, MASK)])
        if hint:
            raise AssertionError(f"{where}: {hint}")
        raise AssertionError(f"{where}: {int((got != expected).sum())} of the 72 tokens differ from the step "
                             "x_s = proposal where (x_t is [MASK] and u < (alpha_s - alpha_t) / (1 - alpha_t)), else x_t.")


# A plausible mistake: the probability of staying masked used as the probability of being revealed.
def WRONG_EXAMPLE(x_t, proposal, u, alpha_t, alpha_s, mask_id):
    return torch.where((x_t == mask_id) & (u < (1 - alpha_s) / (1 - alpha_t)), proposal, x_t)
