"""Worked solution of notebook 14's exercise: one step of ancestral unmasking from time t to the earlier time s."""
import torch


def unmask_step(x_t: torch.Tensor, proposal: torch.Tensor, u: torch.Tensor, alpha_t: float, alpha_s: float,
                mask_id: int) -> torch.Tensor:
    """x_s from x_t: a masked token is clean at s with probability (alpha_s - alpha_t) / (1 - alpha_t) (it was
    clean at s with probability alpha_s, and it is masked at t; of the 1 - alpha_t that are masked at t, the
    alpha_s - alpha_t were still clean at s). Revealed, it takes the network's draw; a clean token never changes."""
    p = (alpha_s - alpha_t) / (1 - alpha_t)                    # the unmasking posterior, one number for the step
    reveal = (x_t == mask_id) & (u < p)                        # (B, L): masked, and the coin says reveal
    return torch.where(reveal, proposal, x_t)


ANSWER = unmask_step   # what the notebook's check cell passes to dl.exercises.check("14", ...)
