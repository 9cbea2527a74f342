"""Worked solution of notebook 11's exercise: a noise-prediction network read as a velocity, for flow Euler."""
import torch

import diffusion_lib as dl


def eps_as_velocity(eps_model, schedule):
    """velocity(x_s, t): the velocity that eps_model implies at x_s, the state on the straight path at the flow time
    s_t of the DDPM timestep t (sigma = s / (1 - s) = sqrt((1 - alpha_bar_t) / alpha_bar_t))."""
    def velocity(x_s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha_bar = schedule.alpha_bar.to(t.device)[t].double()                      # (B,)
        s = dl.objectives.flow_time_for_alpha_bar(alpha_bar).to(x_s).reshape(-1, 1, 1, 1)   # the matched flow time
        c = ((1 - s) ** 2 + s ** 2).sqrt()                                           # x_s = c_s x_t
        eps = eps_model(x_s / c, t)                                                  # the network sees the DDPM state
        return (eps - x_s) / (1 - s)                                                 # u = eps - x_0, x_0 = (x_s - s eps) / (1 - s)
    return velocity


ANSWER = eps_as_velocity   # what the notebook's check cell passes to dl.exercises.check("11", ...)
