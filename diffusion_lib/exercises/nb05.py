"""Notebook 05's exercise: the training loss, written from the equation (Ho et al. 2020, Algorithm 1).

    x_t  = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
    loss = mean over images and pixels of (eps - eps_theta(x_t, t))^2
"""
from __future__ import annotations

import torch
from torch import nn

from . import call_with_broadcast_hint
from ..schedules import extract, make_schedule
from ..training import diffusion_loss


class CheckModel(nn.Module):
    """A fixed, cheap stand-in for eps_theta: a nonlinear function of x_t and t, so that every slip changes the loss."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        return torch.tanh(2 * x) * (1 - t.to(x.dtype) / 1000)[:, None, None, None] + 0.1


def _inputs(seed: int, B: int = 6, shape=(1, 28, 28)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand((B, *shape), generator=g) * 2 - 1                       # images in [-1, 1]
    t = torch.tensor([0, 999, 10, 250, 500, 750][:B])
    eps = torch.randn((B, *shape), generator=g)
    return x0, t, eps


def _slips(model, x0, t, eps, schedule) -> list[tuple[torch.Tensor, str]]:
    """Losses that come from a known slip, with the hint for each."""
    ab = extract(schedule.alpha_bar, t, x0.shape)
    a = extract(schedule.alpha, t, x0.shape)

    def mse(x_t, target=eps, reduce=torch.mean):
        return reduce((target - model(x_t, t)) ** 2)

    good = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    return [
        (mse(ab * x0 + (1 - ab) * eps), "take square roots: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps "
                                        "(alpha_bar_t and 1 - alpha_bar_t are variances)"),
        (mse(a.sqrt() * x0 + (1 - a).sqrt() * eps), "use alpha_bar_t = schedule.alpha_bar[t] (the product of all "
                                                    "alphas up to t), not the one-step alpha_t"),
        (mse(good, target=x0), "the network predicts the noise eps, so compare its output with eps, not with x_0"),
        (mse(good, reduce=torch.sum), "average over images and pixels (.mean()), not sum: the loss must not grow "
                                      "with the batch size or the image size"),
        (mse(ab.sqrt() * x0 - (1 - ab).sqrt() * eps), "the noise is added: + sqrt(1 - alpha_bar_t) eps"),
    ]


def check(answer) -> None:
    """answer(model, x0, t, eps, schedule) must return diffusion_loss(model, x0, schedule, t, eps), a scalar."""
    model = CheckModel()
    for seed, name in [(0, "linear"), (1, "cosine")]:
        schedule = make_schedule(name, 1000)
        x0, t, eps = _inputs(seed)
        expected = diffusion_loss(model, x0, schedule, t, eps)
        got = call_with_broadcast_hint(answer, model, x0.clone(), t.clone(), eps.clone(), schedule,
                                       scales="each image of x0 (B, 1, 28, 28)")
        assert isinstance(got, torch.Tensor), f"return a torch.Tensor (the loss), got {type(got).__name__}"
        assert got.numel() == 1, (f"return one number, the mean over the batch and the pixels; got shape "
                                  f"{tuple(got.shape)}")
        got = got.detach().reshape(())
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-6):
            hint = next((h for value, h in _slips(model, x0, t, eps, schedule)
                         if torch.allclose(got, value.reshape(()), rtol=1e-4, atol=1e-6)),
                        "build x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps with alpha_bar_t = "
                        "schedule.alpha_bar[t] reshaped to (B, 1, 1, 1), then average (eps - model(x_t, t))^2")
            raise AssertionError(f"{name} schedule: the loss should be {expected.item():.6f}, your function gives "
                                 f"{got.item():.6f}. Hint: {hint}.")


# A plausible mistake: alpha_bar_t and 1 - alpha_bar_t used as the coefficients, without the square roots.
def WRONG_EXAMPLE(model, x0, t, eps, schedule):
    alpha_bar = schedule.alpha_bar[t].reshape(-1, 1, 1, 1)
    x_t = alpha_bar * x0 + (1 - alpha_bar) * eps
    return ((eps - model(x_t, t)) ** 2).mean()


# ----------------------------------------------------------------------------- experiment "05-schedules"

def _curves(measured, names: tuple[str, str]):
    """The timesteps and the two L(t) curves of an experiment's measurement, checked for shape; NotImplementedError
    while a curve is still None. Every curve must fall from the smallest t measured to the largest."""
    if measured is None:
        raise NotImplementedError
    if not isinstance(measured, dict):
        raise AssertionError(f"pass a dict with keys 'timesteps', {names[0]!r} and {names[1]!r}, "
                             f"got {type(measured).__name__}")
    if any(measured.get(k) is None for k in names):
        raise NotImplementedError
    ts = [int(t) for t in measured["timesteps"]]
    assert len(ts) >= 3 and ts == sorted(set(ts)) and 0 <= ts[0] and ts[-1] <= 999, (
        f"'timesteps' must be at least three increasing code timesteps in [0, 999], got {ts}")
    curves = {}
    for name in names:
        c = torch.as_tensor(measured[name], dtype=torch.float64).detach().flatten()
        assert c.numel() == len(ts), (f"'{name}' has {c.numel()} losses for {len(ts)} timesteps: one L(t) per "
                                      "timestep, as dl.inspection.loss_by_timestep returns")
        assert torch.isfinite(c).all() and bool((c > 0).all()), f"'{name}': every L(t) must be a positive number"
        assert c[-1] < c[0], (f"'{name}': L(t) should fall from t = {ts[0]} ({float(c[0]):.3f}) to t = {ts[-1]} "
                              f"({float(c[-1]):.3f}), as in section 4. If it does not, the run is too short to have "
                              "learned anything: train for more steps.")
        curves[name] = c
    return ts, curves


def _above_where(ts, curves, higher: str, lower: str, keep, span: str, why_there: str, hint: str) -> None:
    """Assert that run `higher`'s L(t) is above run `lower`'s on average over the timesteps t with keep(t)."""
    kept = [i for i, t in enumerate(ts) if keep(t)]
    assert kept, f"measure at least one timestep {span} {why_there}; got {ts}"
    high, low = curves[higher][kept].mean(), curves[lower][kept].mean()
    assert high > low, (f"{span} your {higher} run's loss ({float(high):.3f} on average) is not above the {lower} "
                        f"run's ({float(low):.3f}). {hint}")


def _ratios(ts, top, bottom) -> str:
    return ", ".join(f"t = {t}: {float(a / b):.2f}" for t, a, b in zip(ts, top, bottom))


def check_schedules(measured) -> str:
    """{"timesteps": [...], "linear": L(t), "cosine": L(t)}: the loss at each timestep of two runs that differ only
    in their schedule, each measured with its own schedule.

    Checked: the shapes, both curves falling from the smallest t to the largest, and the direction that notebook
    01 predicts: in the middle of the run (100 <= t <= 750) the cosine schedule leaves more of the image, so its
    noise is harder to name and its loss is higher. Returns the ratio cosine / linear at each t.
    """
    ts, curves = _curves(measured, ("linear", "cosine"))
    _above_where(ts, curves, "cosine", "linear", lambda t: 100 <= t <= 750, "between t = 100 and 750",
                 "(the middle of the run)",
                 "Notebook 01: at the same t the cosine schedule keeps more of the image, so there is less noise to "
                 "name and the loss is higher. Did you measure each network with the schedule it was trained with "
                 "(loss_by_timestep(model, x, schedule, ts))?")
    return f"cosine / linear loss at each t: {_ratios(ts, curves['cosine'], curves['linear'])}"


# A plausible mistake: the two curves swapped (the cosine run measured where the linear one was meant).
WRONG_SCHEDULES = {"timesteps": [10, 100, 250, 500, 750, 900],
                   "linear": [1.008, 0.611, 0.429, 0.335, 0.301, 0.293],
                   "cosine": [1.001, 0.495, 0.333, 0.276, 0.271, 0.271]}


# ----------------------------------------------------------------------------- experiment "05-min-snr"

def check_min_snr(measured) -> str:
    """{"timesteps": [...], "none": L(t), "min_snr": L(t)}: the loss at each timestep of two runs that differ only
    in TrainConfig.loss_weighting.

    Checked: the shapes, both curves falling, and the direction the weights predict: min(SNR_t, 5) / SNR_t is far
    below 1 at the first steps (0.0005 at t = 0, 0.15 at t = 50), so the min-SNR run spends little effort there and
    its loss at t <= 100 is the higher one. Returns the ratio min_snr / none at each t.
    """
    ts, curves = _curves(measured, ("none", "min_snr"))
    _above_where(ts, curves, "min_snr", "none", lambda t: t <= 100, "at t <= 100", "(where the weights differ most)",
                 "Min-SNR multiplies the loss of those timesteps by min(SNR_t, 5) / SNR_t, far below 1, so the network "
                 "learns less there. Did the second run really get TrainConfig(loss_weighting='min_snr'), and the "
                 "first the default 'none', with everything else the same?")
    return f"min_snr / none loss at each t: {_ratios(ts, curves['min_snr'], curves['none'])}"


# A plausible mistake: the two curves swapped (the weighting given to the wrong run).
WRONG_MIN_SNR = {"timesteps": [0, 10, 50, 100, 250, 500, 750, 900],
                 "none": [1.127, 0.959, 0.517, 0.302, 0.138, 0.061, 0.049, 0.049],
                 "min_snr": [1.019, 0.806, 0.390, 0.252, 0.140, 0.063, 0.052, 0.053]}
