"""Notebook 10's exercise: the probability-flow ODE solved exactly for Gaussian data, and the solvers measured against it.

For data x_0 ~ N(m, s^2 I), xbar = x_0 + sigma eps ~ N(m, (s^2 + sigma^2) I), the best noise prediction is
eps*(xbar) = sigma (xbar - m) / (s^2 + sigma^2), and the ODE d xbar / d sigma = eps* has the solution

    xbar(sigma_to) = m + (xbar(sigma) - m) sqrt((s^2 + sigma_to^2) / (s^2 + sigma^2)).
"""
from __future__ import annotations

import torch

from . import call_answer, known_mistake

MEAN, VARIANCE = (0.4, -0.3), 0.05        # the data: N(mean, variance I) in 2-D
# (sigma, sigma_to): a middle step first (its mistakes show most clearly), then to the clean end, a long jump from
# pure noise, a step backwards (towards more noise: the ODE runs both ways) and no step at all.
STEPS = ((1.0, 0.3), (0.5, 0.0), (157.4, 0.0), (0.2, 2.0), (3.0, 3.0))


def _exact(xbar, sigma, sigma_to, mean, variance):
    return mean + (xbar - mean) * ((variance + sigma_to ** 2) / (variance + sigma ** 2)) ** 0.5


def _candidates(xbar, sigma, sigma_to, mean, variance):
    """Plausible mistakes, each with its hint."""
    eps_star = sigma * (xbar - mean) / (variance + sigma ** 2)
    s = variance ** 0.5
    return [
        (xbar + (sigma_to - sigma) * eps_star,
         "that is one Euler step (DDIM) with the exact eps*: exact only for a tiny step. Solve the ODE instead: "
         "d(xbar - m)/d sigma = sigma (xbar - m) / (s^2 + sigma^2) separates into d log|xbar - m| = ..."),
        (mean + (xbar - mean) * (variance + sigma_to ** 2) / (variance + sigma ** 2),
         "integrate sigma / (s^2 + sigma^2) d sigma = (1/2) log(s^2 + sigma^2): the factor is a square root."),
        (xbar * ((variance + sigma_to ** 2) / (variance + sigma ** 2)) ** 0.5,
         "the ODE moves xbar - m, not xbar: the mean m stays where it is (eps* is zero at xbar = m)."),
        (mean + (xbar - mean) * ((variance + sigma ** 2) / (variance + sigma_to ** 2)) ** 0.5,
         "the factor is upside down: going to a smaller sigma must shrink xbar - m (xbar's spread is "
         "sqrt(s^2 + sigma^2))."),
        (mean + (xbar - mean) * (s + sigma_to) / (s + sigma),
         "xbar's standard deviation is sqrt(s^2 + sigma^2), not s + sigma: variances add, not standard deviations."),
    ]


def check(answer) -> None:
    """answer(xbar, sigma, sigma_to, mean, variance) must move points xbar (B, 2, 1, 1) at noise level sigma along the
    probability-flow ODE of data N(mean, variance I) to the level sigma_to, exactly."""
    g = torch.Generator().manual_seed(10)
    mean = torch.tensor(MEAN, dtype=torch.float64)
    m = mean[:, None, None]                                                          # (2, 1, 1)
    for sigma, sigma_to in STEPS:
        xbar = m + (VARIANCE + sigma ** 2) ** 0.5 * torch.randn((6, 2, 1, 1), generator=g, dtype=torch.float64)
        expected = _exact(xbar, sigma, sigma_to, m, VARIANCE)
        where = f"(sigma = {sigma:g} -> sigma_to = {sigma_to:g})"
        got = call_answer(answer, (xbar.clone(), sigma, sigma_to, mean.clone(), VARIANCE), where,
                          "sigma, sigma_to and variance are floats, mean is a (2,) tensor: reshape it to (2, 1, 1) "
                          "(mean[:, None, None]) to broadcast over points of shape (B, 2, 1, 1).", xbar.shape,
                          "reshape the (2,) mean to (2, 1, 1) so that it lines up with the 2 channels")
        if torch.allclose(got, expected, rtol=1e-6, atol=1e-9):
            continue
        hint = known_mistake(got, _candidates(xbar, sigma, sigma_to, m, VARIANCE), rtol=1e-6, atol=1e-9)
        if hint:
            raise AssertionError(f"{where}: {hint}")
        raise AssertionError(f"{where}: your xbar(sigma_to) differs from the exact solution by up to "
                             f"{float((got - expected).abs().max()):.3g}. Start from eps*(xbar) = E[eps | xbar] = "
                             "sigma (xbar - m) / (s^2 + sigma^2) (a regression of eps on xbar = x_0 + sigma eps), "
                             "then solve d xbar / d sigma = eps*(xbar).")


# A plausible mistake: one Euler step of the ODE (what DDIM does) in place of its solution.
def WRONG_EXAMPLE(xbar, sigma, sigma_to, mean, variance):
    m = mean[:, None, None]
    return xbar + (sigma_to - sigma) * sigma * (xbar - m) / (variance + sigma ** 2)


# ----------------------------------------------------------------------------- experiment "10-gaussian"

GRIDS = ("uniform", "karras")


def check_gaussian(measured) -> str:
    """The rows of dl.sweeps.solver_errors(..., grids=("uniform", "karras")) for DDIM and Heun on Gaussian data, against
    the exact ends that the learner's solution gives, at four or more budgets up to at least 40 evaluations.

    Checked: both samplers on both grids; every error positive; DDIM's error falling at least 3 times from its
    smallest budget to its largest (it does whatever the grid: the exact ends are right only if this holds); at the
    largest budget Heun closer than DDIM on each grid (second order pays for small steps) and, on the finer of the
    two, closer than 0.05 (a wrong reference leaves a floor no solver goes below). Returns Heun / DDIM at each budget.
    """
    if measured is None:
        raise NotImplementedError
    if not isinstance(measured, (list, tuple)) or not all(isinstance(r, dict) for r in measured):
        raise AssertionError(f"pass the list of rows dl.sweeps.solver_errors returns, got {type(measured).__name__}")
    if not measured:
        raise NotImplementedError
    curves = {}
    for r in measured:
        for key in ("sampler", "grid", "nfe", "mean_error"):
            assert key in r, f"a row has no {key!r}: pass the rows of dl.sweeps.solver_errors unchanged"
        curves.setdefault((r["sampler"], r["grid"]), []).append((int(r["nfe"]), float(r["mean_error"])))
    for sampler in ("DDIM", "Heun"):
        for grid in GRIDS:
            assert (sampler, grid) in curves, (f"no rows for {sampler} on the {grid} grid: call solver_errors with "
                                               "grids=('uniform', 'karras') (both samplers are its default)")
    summary = []
    for grid in GRIDS:
        ddim, heun = sorted(curves[("DDIM", grid)]), sorted(curves[("Heun", grid)])
        assert len(ddim) >= 4 and ddim[-1][0] >= 40, (f"DDIM on the {grid} grid: measure at least four budgets, the "
                                                      f"largest 40 or more; got NFE {[n for n, _ in ddim]}")
        assert all(e > 0 for _, e in ddim + heun), "every error must be a positive distance"
        assert ddim[0][1] > 3 * ddim[-1][1], (
            f"DDIM on the {grid} grid: the error barely falls from NFE {ddim[0][0]} ({ddim[0][1]:.3g}) to NFE "
            f"{ddim[-1][0]} ({ddim[-1][1]:.3g}). A first-order solver's error falls like 1 / NFE, so the reference is "
            "probably not the ODE's exact end: the exact clean end of x_T is, in xbar = x / sqrt(alpha_bar), your "
            "solution from sigma_T = dl.samplers.schedule_sigmas(schedule)[-1] to 0, with xbar_T = x_T / sqrt(alpha_bar_T).")
        assert heun[-1][1] < ddim[-1][1], (
            f"on the {grid} grid at the largest budget Heun ({heun[-1][1]:.3g}) should be closer than DDIM "
            f"({ddim[-1][1]:.3g}): with many small steps second order pays. Are the rows labelled right?")
        summary.append(f"{grid}: " + ", ".join(f"NFE {nh}/{nd}: {eh / ed:.2f}" for (nh, eh), (nd, ed) in zip(heun, ddim)))
    best = min(min(e for _, e in curves[("Heun", g)]) for g in GRIDS)
    assert best < 0.05, (f"Heun's smallest error is {best:.3g}: with about 50 evaluations it should land within a few "
                         "hundredths of the exact end. Check the reference (your solution, from sigma_T to 0, mapped "
                         "back with x_0 = xbar(0)).")
    return "Heun / DDIM error at each budget, " + "; ".join(summary)


# A plausible mistake: the reference taken as xbar_T itself (the starting point, not the ODE's end): no solver gets close.
WRONG_GAUSSIAN = [
    {"sampler": s, "grid": g, "steps": n, "nfe": n, "mean_error": e, "max_error": 2 * e}
    for g in GRIDS for s, errors in (("DDIM", (141.3, 141.2, 141.2, 141.2)), ("Heun", (142.0, 141.3, 141.2, 141.2)))
    for n, e in zip((5, 10, 20, 50), errors)]
