"""Notebook 11's exercise: a noise-prediction network read as a velocity, so that flow Euler runs on it; on the
matched flow times its steps are DDIM's, exactly."""
from __future__ import annotations

import torch

from . import known_mistake
from ..objectives import flow_as_vp, flow_time_for_alpha_bar
from ..samplers import alpha_bar_at, ddim_sample_progressive, ddim_timesteps, final, flow_euler_update
from ..schedules import make_schedule
from ..toy import ExactEps, as_points, ring_mixture

NUM_STEPS = 10       # DDIM's 10-step grid on the linear schedule, T = 1000


def _flow_time(alpha_bar: float) -> float:
    return float(flow_time_for_alpha_bar(alpha_bar))


def _scale(s: float) -> float:
    """c_s = sqrt((1 - s)^2 + s^2): x_s = c_s x_t at the matched level."""
    return float(flow_as_vp(torch.tensor(s, dtype=torch.float64))[0])


def _candidates(eps_model, x_s, t, s, T):
    """Plausible mistakes at one state, each with its hint."""
    c, tt = _scale(s), torch.full((x_s.shape[0],), t, dtype=torch.long)
    s_clock = (t + 1) / T
    c_clock = _scale(s_clock)
    return [
        ((eps_model(x_s, tt) - x_s) / (1 - s),
         "the noise predictor was trained on the DDPM path, x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps: give "
         "it x_s / c_s, not x_s (c_s = sqrt((1 - s)^2 + s^2), dl.objectives.flow_as_vp)."),
        ((eps_model(x_s * c, tt) - x_s) / (1 - s),
         "x_s = c_s x_t: the DDPM state is x_s divided by c_s, not multiplied."),
        ((eps_model(x_s / c_clock, tt) - x_s) / (1 - s_clock),
         "the flow time of the level alpha_bar_t is not (t + 1) / T (the two clocks differ, section 1): it is the s "
         "with s / (1 - s) = sqrt((1 - alpha_bar_t) / alpha_bar_t), dl.objectives.flow_time_for_alpha_bar."),
        ((x_s - eps_model(x_s / c, tt)) / (1 - s),
         "u = eps - x_0 points from the data to the noise: u = (eps - x_s) / (1 - s), not (x_s - eps) / (1 - s)."),
        ((eps_model(x_s / c, tt) - x_s) / s,
         "from x_s = (1 - s) x_0 + s eps, x_0 = (x_s - s eps) / (1 - s), so u = eps - x_0 = (eps - x_s) / (1 - s)."),
    ]


def flow_euler_on_matched_times(velocity, x_T: torch.Tensor, schedule, timesteps) -> torch.Tensor:
    """Flow Euler from x_s = c_s x_T between the flow times matched to the DDPM timesteps (and s = 0 at the end),
    with velocity(x_s, t) called at each DDPM timestep t: the chain the check compares with DDIM's."""
    s_grid = [_flow_time(alpha_bar_at(schedule, t)) for t in [*timesteps, -1]]
    x = _scale(s_grid[0]) * x_T
    for t, s, s_prev in zip(timesteps, s_grid, s_grid[1:]):
        u = velocity(x, torch.full((x.shape[0],), t, dtype=torch.long))
        assert isinstance(u, torch.Tensor) and u.shape == x.shape, (
            f"velocity(x_s, t) must return a tensor of x_s's shape {tuple(x.shape)}, got "
            f"{type(u).__name__ if not isinstance(u, torch.Tensor) else tuple(u.shape)} (at t = {t})")
        x = flow_euler_update(x, u, s, s_prev)
    return x


def check(answer) -> str:
    """answer(eps_model, schedule) must return velocity(x_s, t): the velocity that eps_model implies at x_s, the state
    on the straight path at the flow time matched to the DDPM timestep t. Flow Euler with it, on the flow times
    matched to DDIM's 10-step grid, must end where DDIM ends: on the toy's exact eps* (float64, to 1e-10), then on
    the shipped noise-prediction U-Net (float32, to 1e-3 per pixel: float32 rounding, divided by
    1 - s = 0.0063 at the first step, reaches about 1e-4)."""
    schedule = make_schedule("linear", 1000)
    mixture = ring_mixture().to(torch.zeros(1, dtype=torch.float64))
    eps_model = ExactEps(mixture, schedule)
    try:
        velocity = answer(eps_model, schedule)
    except NotImplementedError:
        raise
    except Exception as e:
        raise AssertionError(f"eps_as_velocity(eps_model, schedule) raised {type(e).__name__}: {e}") from e
    assert callable(velocity), f"eps_as_velocity must return a function velocity(x_s, t), got {type(velocity).__name__}"
    timesteps = ddim_timesteps(NUM_STEPS, schedule.T)
    x_T = as_points(torch.randn((16, 2), generator=torch.Generator().manual_seed(11), dtype=torch.float64))
    # step by step first, so that a mistake is named where it happens
    for t in timesteps:
        s = _flow_time(alpha_bar_at(schedule, t))
        x_s = _scale(s) * x_T * 0.5                                           # some states at this level
        tt = torch.full((x_s.shape[0],), t, dtype=torch.long)
        try:
            got = velocity(x_s.clone(), tt)
        except Exception as e:
            raise AssertionError(f"velocity(x_s, t) raised {type(e).__name__}: {e} (at t = {t}). Hint: t is a (B,) "
                                 "tensor of DDPM timesteps; schedule.alpha_bar[t] has shape (B,): reshape it to "
                                 "(B, 1, 1, 1) to scale each point") from e
        assert isinstance(got, torch.Tensor) and got.shape == x_s.shape, (
            f"velocity(x_s, t) must return a tensor of shape {tuple(x_s.shape)} (at t = {t})")
        expected = (eps_model(x_s / _scale(s), tt) - x_s) / (1 - s)
        if torch.allclose(got, expected, rtol=1e-8, atol=1e-10):
            continue
        hint = known_mistake(got, _candidates(eps_model, x_s, t, s, schedule.T), rtol=1e-8, atol=1e-10)
        raise AssertionError(f"(at t = {t}, s = {s:.4f}) " + (hint or "your velocity differs from (eps - x_s) / (1 - s), "
                             f"eps = eps_model(x_s / c_s, t), by up to {float((got - expected).abs().max()):.3g}."))
    ddim = final(ddim_sample_progressive(eps_model, x_T, schedule, num_steps=NUM_STEPS))
    flow = flow_euler_on_matched_times(velocity, x_T, schedule, timesteps)
    toy_gap = float((flow - ddim).abs().max())
    assert toy_gap < 1e-10, f"flow Euler with your velocity ends up to {toy_gap:.3g} away from DDIM's end"
    from ..pretrained import load_pretrained
    unet = load_pretrained("unet")
    x_T = torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(11))
    ddim = final(ddim_sample_progressive(unet, x_T, schedule, num_steps=NUM_STEPS))
    try:
        with torch.no_grad():
            flow = flow_euler_on_matched_times(answer(unet, schedule), x_T, schedule, timesteps)
    except AssertionError:
        raise
    except Exception as e:
        raise AssertionError(f"on the U-Net (float32), your velocity raised {type(e).__name__}: {e}. Hint: compute s "
                             "and c_s in x_s's dtype and on its device (.to(x_s)), so that the network gets float32") from e
    unet_gap = float((flow - ddim).abs().max())
    assert unet_gap < 1e-3, f"on the U-Net, flow Euler with your velocity ends up to {unet_gap:.3g} away from DDIM's end"
    return (f"Flow Euler with your velocity, on the flow times matched to DDIM's {NUM_STEPS} steps, ends where DDIM "
            f"ends: on the toy's exact eps* to {toy_gap:.1e} (float64), on the shipped U-Net to {unet_gap:.1e} per "
            f"pixel (float32 rounding, amplified where 1 - s and sqrt(alpha_bar) are small).")


# A plausible mistake: the flow's state handed to the noise predictor as it is, without dividing by c_s.
def WRONG_EXAMPLE(eps_model, schedule):
    def velocity(x_s, t):
        s = flow_time_for_alpha_bar(schedule.alpha_bar[t].double()).to(x_s).reshape(-1, 1, 1, 1)
        return (eps_model(x_s, t) - x_s) / (1 - s)
    return velocity
