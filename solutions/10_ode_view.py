"""Worked solution of notebook 10's exercise: the probability-flow ODE of Gaussian data N(m, s^2 I), solved exactly.

In xbar = x / sqrt(alpha_bar) = x_0 + sigma eps, xbar ~ N(m, (s^2 + sigma^2) I). The best noise prediction is the
regression of eps on xbar, eps*(xbar) = Cov(eps, xbar) / Var(xbar) (xbar - m) = sigma (xbar - m) / (s^2 + sigma^2).
The ODE d xbar / d sigma = eps* then reads d(xbar - m) / (xbar - m) = sigma d sigma / (s^2 + sigma^2) (per coordinate),
so log|xbar - m| - (1/2) log(s^2 + sigma^2) is constant along a path:

    xbar(sigma_to) = m + (xbar(sigma) - m) sqrt((s^2 + sigma_to^2) / (s^2 + sigma^2)).

Each point keeps its standardised position (xbar - m) / sqrt(s^2 + sigma^2): the ODE only rescales the cloud.
"""
import torch


def gaussian_ode_solution(xbar: torch.Tensor, sigma: float, sigma_to: float, mean: torch.Tensor,
                          variance: float) -> torch.Tensor:
    """xbar (B, 2, 1, 1) at noise level sigma, moved along the probability-flow ODE of data N(mean, variance I) to
    the level sigma_to."""
    m = mean[:, None, None]                                              # (2, 1, 1), broadcasts over (B, 2, 1, 1)
    return m + (xbar - m) * ((variance + sigma_to ** 2) / (variance + sigma ** 2)) ** 0.5


ANSWER = gaussian_ode_solution   # what the notebook's check cell passes to dl.exercises.check("10", ...)


def gaussian_experiment():
    """The measurement of the notebook's experiment cell: DDIM and Heun on both grids against the exact ends."""
    import diffusion_lib as dl
    schedule = dl.make_schedule("linear")
    mean, variance = torch.tensor([0.4, -0.3], dtype=torch.float64), 0.05
    gaussian = dl.toy.GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None],
                                      variance * torch.eye(2, dtype=torch.float64)[None])
    gaussian_eps = dl.toy.ExactEps(gaussian, schedule)                   # eps*(x_t, t) of N(mean, variance I)
    x_T = torch.randn((500, 2, 1, 1), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    sigma_T = float(dl.samplers.schedule_sigmas(schedule)[-1])
    abar_T = float(schedule.alpha_bar[-1])
    exact_ends = gaussian_ode_solution(x_T / abar_T ** 0.5, sigma_T, 0.0, mean, variance)   # x_0 = xbar at sigma = 0
    return dl.sweeps.solver_errors(gaussian_eps, x_T, schedule, [5, 10, 20, 50], exact_ends,
                                   grids=("uniform", "karras"))


EXPERIMENTS = {"10-gaussian": gaussian_experiment}
