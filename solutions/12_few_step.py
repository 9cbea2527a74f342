"""Worked solution of notebook 12's exercise: two MeanFlow steps from noise to data.

The average velocity u(z, r, s) over [r, s] is what one straight step needs: x_r = x_s - (s - r) u(x_s, r, s) is the
ODE's state at r exactly, for the exact u (it is the integral of the velocity over the step). Two steps split the
interval at s = 1/2: first from s = 1 to r = 1/2, then from s = 1/2 to r = 0, each moving by (s - r) u = u / 2.
"""
import torch


def two_step_meanflow(u_model, x_1: torch.Tensor) -> torch.Tensor:
    """x_0 after two steps s = 1 -> 1/2 -> 0 of the average velocity u_model(z, s, r)."""
    x = x_1
    for s, r in ((1.0, 0.5), (0.5, 0.0)):
        x = x - (s - r) * u_model(x, s, r)
    return x


ANSWER = two_step_meanflow   # what the notebook's check cell passes to dl.exercises.check("12", ...)
