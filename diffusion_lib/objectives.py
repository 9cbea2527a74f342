"""Training objectives: what the network predicts, the loss, and how its output becomes the samplers' eps.

Every objective here trains on the same noisy image x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
(forward.q_sample) and differs only in the target of the network's output:

    eps   the noise eps                                           (Ho et al. 2020)
    x0    the clean image x_0
    v     v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0    (Salimans & Ho 2022, Sec. 4)

Since x_t is known, each target determines the others (exact identities, tested in float64):

    x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)        forward.predict_x0_from_eps
    eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)         forward.predict_eps_from_x0
    eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t               predict_eps_from_v
    x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v               predict_x0_from_v

The samplers only ever need eps: `eps_model_for(network, objective, schedule)` turns a network trained
with any objective into the (x_t, t[, y]) -> eps callable they take, in the style of guidance.cfg_eps_model.

Loss weighting. The plain loss is the mean squared error of the target, averaged over pixels and images
(no weighting). Min-SNR-gamma (Hang et al. 2023) weights each timestep so that, measured as an error of
x_0, the weight is min(SNR_t, gamma): since |d eps|^2 = SNR_t |d x_0|^2 and |d v|^2 = (SNR_t + 1) |d x_0|^2
for a fixed x_t, that is min(SNR_t, gamma) / SNR_t on the eps loss, min(SNR_t, gamma) on the x0 loss and
min(SNR_t, gamma) / (SNR_t + 1) on the v loss (`min_snr_weight`).

Flow matching (rectified flow; Liu et al. 2022, Lipman et al. 2022) is one more Objective on another path:

    x_s = (1 - s) x_0 + s eps,  s in [0, 1],   target u = eps - x_0 = d x_s / d s,

with the code's integer timestep t = 0 .. T-1 standing for s = (t + 1) / T (flow_time), so the training
loop, the network's time input and the samplers' timestep pairs are the same as for the DDPM family
(t = -1 is s = 0, the clean image). It is the same family of Gaussian paths under a change of time and
scale: x_s / c_s with c_s = sqrt((1 - s)^2 + s^2) is the variance-preserving x_t of a schedule with
sqrt(alpha_bar) = (1 - s) / c_s, and v-prediction's v is c_s u - (2 s - 1) x_s / c_s (`flow_as_vp`,
`v_from_flow_velocity`, tested). Its network is sampled with samplers.flow_euler_sample_progressive.
The velocity, the noise and the score convert into each other in one line each (eps_from_flow_velocity,
flow_velocity_from_eps, score_from_flow_velocity).

Time convention: here s = 0 is the data and s = 1 the noise, as in rectified flow (Liu et al. 2022) and
Stable Diffusion 3. Lipman et al. (2023) and Meta's Flow Matching Guide (Lipman et al. 2024) run the other
way: their time 0 is the noise and time 1 the data (their x_0 is noise), so their velocity is x_data - noise,
the negative of u here, and their sampler integrates forward in time.

Few-step generation (notebook 12) adds two routes beside flow matching:

    reflow    (Liu et al. 2022, "Flow Straight and Fast") flow matching again, but on pairs (x_0, eps) in which
              x_0 is the teacher's ODE end from eps (`reflow_pairs`) instead of an independent data image:
              the student's straight paths then cross less, and one Euler step gets close. The loss is
              FlowMatching's; only the pairing differs (training.train(..., noise=pairs' noises)).
    MeanFlow  (Geng et al. 2025) the network u(z, r, t) learns the average velocity over [r, t],
                  u(z_t, r, t) = 1 / (t - r) * integral_r^t v(z_tau, tau) d tau,
              through the MeanFlow identity  u = v - (t - r) d/dt u  (differentiate (t - r) u = integral in t),
              with the total derivative d/dt u = v . grad_z u + du/dt from torch.func.jvp (`meanflow_target`).
              One step from noise, z_r = z_t - (t - r) u, is then exact for the exact u (`MeanFlow`).
              Distilled (`MeanFlow.with_teacher`): the velocity v in the identity is a trained flow network's
              at z_t (`teacher_velocity`, guided at w if it is conditional) instead of the straight path's
              eps - x_0. Both have the same average given z_t when the teacher is exact, so the fixed point is the
              same, but the teacher's is one value per z_t, not a random one: the target's noise goes.

Adding an objective is one more Objective subclass here: the training loop asks the objective for the
timesteps, the noisy input and the target (`objective_loss`), and never branches on it; an objective whose
target needs the network itself (MeanFlow) overrides `loss`.
"""
from __future__ import annotations

import copy
import functools
import warnings

import torch
import torch.nn.functional as F

from .device import mark_known_range
from .forward import predict_eps_from_x0, q_sample
from .checks import check_number, check_same_shape, check_timesteps
from .schedules import Schedule, extract, on_device

LOSS_WEIGHTINGS = ("none", "min_snr")
DEFAULT_MIN_SNR_GAMMA = 5.0   # Hang et al. (2023): gamma = 5 worked best in their study


# ----------------------------------------------------------------------------- v and its conversions

def v_target(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022, Sec. 4)."""
    check_same_shape(x0, eps, "x0", "eps")
    return extract(schedule.sqrt_alpha_bar, t, x0.shape) * eps - extract(schedule.sqrt_one_minus_alpha_bar, t, x0.shape) * x0


def predict_eps_from_v(x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t."""
    return extract(schedule.sqrt_alpha_bar, t, x_t.shape) * v + extract(schedule.sqrt_one_minus_alpha_bar, t, x_t.shape) * x_t


def predict_x0_from_v(x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v."""
    return extract(schedule.sqrt_alpha_bar, t, x_t.shape) * x_t - extract(schedule.sqrt_one_minus_alpha_bar, t, x_t.shape) * v


# ----------------------------------------------------------------------------- the objectives

class Objective:
    """What the network learns to output. Subclasses set `name` and define target, to_eps and x0_error_scale.

    draw_t and noisy_input are the DDPM family's (integer t uniform in [0, T-1], x_t = q_sample); an
    objective on another path (flow matching) overrides them.
    """

    name: str = ""
    output: str = ""         # what the network outputs, named for the samplers' check (objectives.check_model)
    uses_beta_schedule: bool = True   # False for a path of its own (flow matching): only the schedule's T is used

    def draw_t(self, batch_size: int, schedule: Schedule, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training timesteps (B,), t ~ Uniform{0, ..., T-1}, drawn on the CPU from `generator`."""
        return torch.randint(0, schedule.T, (batch_size,), generator=generator)

    def timesteps_on(self, t: torch.Tensor, schedule: Schedule, device) -> torch.Tensor:
        """Drawn timesteps checked on the CPU (integers in [0, T-1]), moved to `device` and marked as checked, so
        that the network need not read them back (diffusion_lib.device.mark_known_range)."""
        schedule.check_timesteps(t)
        return mark_known_range(t.to(device, non_blocking=True), 0, schedule.T - 1)

    def noisy_input(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """The network's input x_t for clean images x0 and noise eps: q_sample(x0, t, eps)."""
        return q_sample(x0, t, schedule, noise)

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        raise NotImplementedError

    def to_eps(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """The noise estimate that the network's output implies at (x_t, t)."""
        raise NotImplementedError

    def x0_error_scale(self, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """|error of the target|^2 / |error of x_0|^2 at fixed x_t, per timestep (B,)."""
        raise NotImplementedError

    def loss(self, model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: Schedule,
             y: torch.Tensor | None = None) -> torch.Tensor:
        """The squared error of model(x_t, t, y) against the target, per pixel, for each image (B,)."""
        x_t = self.noisy_input(x0, t, noise, schedule)
        output = model(x_t, t, y)
        return F.mse_loss(output, self.target(x0, t, noise, schedule), reduction="none").flatten(1).mean(1)   # (B,)

    def snr(self, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
        """The signal-to-noise ratio (B,) of the path at t: alpha_bar_t / (1 - alpha_bar_t) on the DDPM path."""
        return on_device(schedule.snr, t.device)[t]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PredictEps(Objective):
    """The network predicts the noise eps: the loss of Ho et al. (2020), Algorithm 1."""

    name = "eps"
    output = "eps"

    def target(self, x0, t, noise, schedule):
        return noise

    def to_eps(self, output, x_t, t, schedule):
        return output

    def x0_error_scale(self, t, schedule):
        return on_device(schedule.snr, t.device)[t]


class PredictX0(Objective):
    """The network predicts the clean image x_0."""

    name = "x0"
    output = "x0"

    def target(self, x0, t, noise, schedule):
        return x0

    def to_eps(self, output, x_t, t, schedule):
        return predict_eps_from_x0(x_t, t, output, schedule)

    def x0_error_scale(self, t, schedule):
        return torch.ones(t.shape, device=t.device)


class PredictV(Objective):
    """The network predicts v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022)."""

    name = "v"
    output = "v"

    def target(self, x0, t, noise, schedule):
        return v_target(x0, noise, t, schedule)

    def to_eps(self, output, x_t, t, schedule):
        return predict_eps_from_v(x_t, t, output, schedule)

    def x0_error_scale(self, t, schedule):
        return on_device(schedule.snr, t.device)[t] + 1


# ----------------------------------------------------------------------------- flow matching

def flow_time(t: torch.Tensor, T: int) -> torch.Tensor:
    """s = (t + 1) / T in (0, 1] for code timesteps t in [0, T-1] (and s = 0 for t = -1, the clean image), float32."""
    return (t.to(torch.float32) + 1) / T


def flow_interpolant(x0: torch.Tensor, noise: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """x_s = (1 - s) x_0 + s eps, s (B,) broadcast over the image."""
    s = s.to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
    return (1 - s) * x0 + s * noise


def flow_as_vp(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_s, sqrt(alpha_bar)) for s (B,): x_s = c_s (sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps) with
    c_s = sqrt((1 - s)^2 + s^2) and sqrt(alpha_bar) = (1 - s) / c_s: the flow's state, divided by c_s, is the
    variance-preserving state of the DDPM family at the noise level alpha_bar."""
    c = ((1 - s) ** 2 + s ** 2).sqrt()
    return c, (1 - s) / c


def v_from_flow_velocity(u: torch.Tensor, x_s: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """v-prediction's v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0 of the same (x_0, eps), from the flow's
    velocity u = eps - x_0 at x_s: v = c_s u - (2 s - 1) x_s / c_s. v is the velocity of x_vp = x_s / c_s in the angle
    phi with sqrt(alpha_bar) = cos(phi), v = d x_vp / d phi; on the flow tan(phi) = s / (1 - s), so d phi / d s =
    1 / c_s^2 and v = c_s^2 d(x_s / c_s) / d s, with d c_s / d s = (2 s - 1) / c_s."""
    s = s.to(x_s.dtype).reshape(-1, *([1] * (x_s.ndim - 1)))
    c, _ = flow_as_vp(s)
    return c * u - (2 * s - 1) * x_s / c


# The noise, the velocity and the score are one quantity read three ways on the straight path. From
# x_s = (1 - s) x_0 + s eps and u = eps - x_0:
#
#     eps = x_s + (1 - s) u,      u = (eps - x_s) / (1 - s),      grad log p_s(x_s) = -E[eps | x_s] / s
#
# and, both sides being linear, the same holds for the best guesses: u* = (eps* - x_s) / (1 - s) and
# score = -eps* / s (the score of x_s = (1 - s) x_0 + s eps given x_0 is -eps / s; average it given x_s).
# In the variables xbar = x_s / (1 - s) and sigma = s / (1 - s) the path is notebook 10's xbar = x_0 + sigma eps.

def _per_image(s, x: torch.Tensor):
    """A flow time given as a number, or one per image (B,), made to broadcast over x (B, C, H, W)."""
    if isinstance(s, torch.Tensor) and s.ndim > 0:
        return s.to(x).reshape(-1, *([1] * (x.ndim - 1)))
    return float(s)


def eps_from_flow_velocity(u: torch.Tensor, x_s: torch.Tensor, s) -> torch.Tensor:
    """eps = x_s + (1 - s) u: the noise that a velocity u implies at x_s (s a number or (B,)); for the best
    velocity u*, the best noise prediction eps* = E[eps | x_s] on the straight path."""
    return x_s + (1 - _per_image(s, x_s)) * u


def flow_velocity_from_eps(eps: torch.Tensor, x_s: torch.Tensor, s) -> torch.Tensor:
    """u = (eps - x_s) / (1 - s): the velocity that a noise prediction implies at x_s, for s < 1 (at s = 1,
    x_1 = eps says nothing about x_0, and u* = x_1 - E[x_0] needs the data's mean)."""
    s = _per_image(s, x_s)
    if bool(torch.as_tensor(s >= 1).any()):
        raise ValueError("the velocity is not determined by eps at s = 1 (pure noise: x_1 = eps); use s < 1")
    return (eps - x_s) / (1 - s)


def score_from_flow_velocity(u: torch.Tensor, x_s: torch.Tensor, s) -> torch.Tensor:
    """grad log p_s(x_s) = -eps* / s = -(x_s + (1 - s) u*) / s, the score of the straight path's density p_s
    from its best velocity u* (from a network's velocity: its score estimate), for s > 0."""
    s = _per_image(s, x_s)
    if bool(torch.as_tensor(s <= 0).any()):
        raise ValueError("the score of the data itself (s = 0) is not given by the velocity; use s > 0")
    return -eps_from_flow_velocity(u, x_s, s) / s


def flow_as_ve(x_s: torch.Tensor, s) -> tuple[torch.Tensor, torch.Tensor | float]:
    """(xbar, sigma) = (x_s / (1 - s), s / (1 - s)) for s < 1: the straight path in notebook 10's variables,
    xbar = x_0 + sigma eps, in which DDIM is Euler's method on d xbar / d sigma = eps*."""
    s = _per_image(s, x_s)
    return x_s / (1 - s), s / (1 - s)


def flow_time_for_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """The flow time s whose state is the DDPM state at noise level alpha_bar, rescaled: sigma = s / (1 - s) =
    sqrt((1 - alpha_bar) / alpha_bar), so s = sqrt(1 - alpha_bar) / (sqrt(alpha_bar) + sqrt(1 - alpha_bar))
    (the inverse of flow_as_vp's sqrt(alpha_bar) = (1 - s) / c_s). alpha_bar = 1 gives s = 0."""
    alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
    return (1 - alpha_bar).sqrt() / (alpha_bar.sqrt() + (1 - alpha_bar).sqrt())


class FlowMatching(Objective):
    """The network predicts the flow's velocity u = eps - x_0 on the straight path x_s = (1 - s) x_0 + s eps."""

    name = "flow"
    output = "velocity"
    uses_beta_schedule = False

    def __init__(self, noise_end_share: float = 0.0, t_mean: float | None = None, t_std: float = 1.0):
        """noise_end_share: the share of training timesteps put at t = T - 1 (s = 1, x_s = eps) instead of drawn
        uniformly. There the loss is |u(eps, 1) - (eps - x_0)|^2, the error of one Euler step from the noise,
        eps - u(eps, 1) against x_0: with reflow's pairs, Liu et al.'s one-step distillation (2022, Sec. 2.3).
        t_mean: draw the flow time from a logit-normal, s = sigmoid(t_mean + t_std n) with n ~ N(0, 1), instead of
        uniformly (Esser et al. 2024, Stable Diffusion 3: mean 0, std 1 puts most draws in the middle of the path).
        The defaults are plain flow matching, with the same draws as before the options existed."""
        check_number(noise_end_share, "noise_end_share", lower=0, upper=1)
        if t_mean is not None:
            check_number(t_mean, "t_mean", hint="None for uniform times")
        check_number(t_std, "t_std", lower=0, lower_open=True)
        self.noise_end_share = float(noise_end_share)
        self.t_mean, self.t_std = None if t_mean is None else float(t_mean), float(t_std)

    def draw_t(self, batch_size, schedule, generator=None):
        """Training timesteps (B,) uniform in [0, T-1], or with t_mean the code timestep of a logit-normal flow
        time s (t = ceil(s T) - 1, the t whose (t + 1) / T is the first at or above s); with noise_end_share
        p > 0, each is T - 1 with probability p (one more draw per timestep from `generator`)."""
        if self.t_mean is None:
            t = super().draw_t(batch_size, schedule, generator)
        else:
            s = torch.sigmoid(self.t_mean + self.t_std * torch.randn(batch_size, generator=generator, dtype=torch.float64))
            t = ((s * schedule.T).ceil().long() - 1).clamp(0, schedule.T - 1)
        if self.noise_end_share > 0:
            end = torch.rand(batch_size, generator=generator) < self.noise_end_share
            t = torch.where(end, torch.full_like(t, schedule.T - 1), t)
        return t

    def noisy_input(self, x0, t, noise, schedule):
        return flow_interpolant(x0, noise, flow_time(t, schedule.T))

    def target(self, x0, t, noise, schedule):
        return noise - x0

    def to_eps(self, output, x_t, t, schedule):
        raise ValueError("a flow-matching network predicts a velocity on the straight path, not eps on the DDPM "
                         "path: sample it with samplers.flow_euler_sample_progressive (or flow_heun_...)")

    def x0_error_scale(self, t, schedule):
        return 1 / flow_time(t, schedule.T) ** 2      # x_0 = x_s - s u: |d x_0|^2 = s^2 |d u|^2

    def snr(self, t, schedule):
        """The straight path's own SNR, (1 - s)^2 / s^2 (signal (1 - s) x_0, noise s eps): the beta schedule's
        name plays no part, only its T (s = (t + 1) / T)."""
        s = flow_time(t, schedule.T)
        return ((1 - s) / s) ** 2


# ----------------------------------------------------------------------------- reflow: the teacher's pairs

def reflow_pairs(velocity_model, noise: torch.Tensor, schedule: Schedule, num_steps: int = 25, y=None,
                 batch_size: int = 500, progress: bool = True) -> torch.Tensor:
    """The teacher's ODE end x_0 = ODE(eps) from each noise eps (N, C, H, W): flow Heun with num_steps steps
    (2 num_steps - 1 network evaluations per pair), in batches of batch_size, returned on the CPU (N, C, H, W).
    (x_0[i], noise[i]) is the coupling a reflow student trains on (Liu et al. 2022, Algorithm 1).

    y: labels (N,) for a class-conditional teacher (its conditional velocity, w = 1), or None. Pass the noise
    as drawn on the CPU from a seeded generator; each batch moves to the teacher's device and back.
    Cost: 2 num_steps - 1 evaluations per pair, about (2 num_steps - 1) / 3 training steps' worth of compute per
    pair batch (a forward pass is about a third of a training step); notebook 12 gives the seconds per 1,000.
    """
    from .samplers import final, flow_heun_sample_progressive      # samplers do not import objectives: no cycle
    from tqdm.auto import tqdm
    if noise.ndim != 4:
        raise ValueError(f"noise must be a batch (N, C, H, W), got shape {tuple(noise.shape)}")
    if y is not None and (not isinstance(y, torch.Tensor) or y.shape != noise.shape[:1]):
        raise ValueError(f"labels y must be a (N,) tensor, one per noise, got {getattr(y, 'shape', y)!r}")
    device = next(velocity_model.parameters()).device if isinstance(velocity_model, torch.nn.Module) else noise.device
    ends = []
    for i in tqdm(range(0, noise.shape[0], batch_size), desc="reflow pairs", disable=not progress):
        z = noise[i:i + batch_size].to(device)
        model = velocity_model
        if y is not None:
            labels = y[i:i + batch_size].to(device)
            model = functools.partial(_with_labels, velocity_model, labels)
        ends.append(final(flow_heun_sample_progressive(model, z, schedule, num_steps)).cpu())
    return torch.cat(ends)


def _with_labels(velocity_model, labels, x, t):
    return velocity_model(x, t, labels)


def noise_labels(noise: torch.Tensor, num_classes: int = 10, seed: int = 0) -> torch.Tensor:
    """A label for each noise (N,) that the noise itself decides: argmax_k <w_k, eps> over num_classes orthonormal
    directions w_k drawn from `seed`. Uniform over the classes (the projections are i.i.d. N(0, 1)), and a
    function of eps, so a conditional teacher run with these labels is still a deterministic map eps -> x_0:
    an unconditional student can learn it (with labels drawn independently of eps, the same eps would lead to
    different digits and a one-step student would average them)."""
    d = noise[0].numel()
    g = torch.Generator().manual_seed(seed)
    w, _ = torch.linalg.qr(torch.randn(d, num_classes, generator=g, dtype=torch.float64))      # (d, K) orthonormal
    return (noise.flatten(1).to(torch.float64).cpu() @ w).argmax(1).to(noise.device)             # (N,)


# ----------------------------------------------------------------------------- MeanFlow: the average velocity

def meanflow_target(u_model, z: torch.Tensor, s: torch.Tensor, r: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """u_tgt = v - (s - r) d/ds u(z_s, r, s), the right side of the MeanFlow identity (Geng et al. 2025, Eq. 6),
    for flow times s, r (B,) with r <= s, states z (B, C, H, W) and the velocity v = dz/ds there.

    u_model(z, s, r) -> the average velocity over [r, s]. The total derivative along the path,
    d/ds u = v . grad_z u + du/ds (r fixed), is one Jacobian-vector product: torch.func.jvp with the tangent
    (v, 1, 0) for (z, s, r). No gradient flows through the target (it is a regression target, the paper's
    stop-gradient); it is computed in float32, and only where r < s (where r = s the target is v itself).
    u_model must then treat each image on its own (no batch statistics), as the U-Net does: the jvp runs on the
    images with r < s only, and y (if any) is subset with them by the caller."""
    shape = (-1,) + (1,) * (z.ndim - 1)
    target = v.clone()
    open_ = r < s                    # where r = s the interval is empty and the target is v: no jvp needed there
    if bool(open_.any()):
        z_o, s_o, r_o, v_o = z[open_], s[open_], r[open_], v[open_]
        with torch.no_grad(), torch.autocast(z.device.type, enabled=False), warnings.catch_warnings():
            # torch.func's first call imports a module that uses the deprecated torch.jit.script: not our concern
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
            _, du_ds = torch.func.jvp(u_model, (z_o, s_o, r_o), (v_o, torch.ones_like(s_o), torch.zeros_like(r_o)))
        target[open_] = v_o - (s_o - r_o).reshape(shape) * du_ds.to(device=v.device, dtype=v.dtype)
    return target


def teacher_velocity(teacher, z: torch.Tensor, s: torch.Tensor, y: torch.Tensor | None = None, *, T: int,
                     w: float = 1.0) -> torch.Tensor:
    """The velocity v(z_s, s) of a trained flow-matching network `teacher` for flow times s (B,), read at the
    nearest of the integer code timesteps it was trained on, t = round(s T - 1) in [0, T - 1] (an error of at most
    half a step, 1 / (2 T), in its time, never in z). A conditional teacher takes labels y (B,) and is guided at w
    (classifier-free guidance on the velocity, v_uncond + w (v_cond - v_uncond), guidance.guided_eps; w = 1 is the
    conditional velocity alone, one call). Where y is the null label both halves are the unconditional velocity.
    No gradient flows to the teacher."""
    from .guidance import guided_eps                 # guidance imports this module
    t = (s * T - 1).round().clamp(0, T - 1).long()
    with torch.no_grad():
        if y is None or w == 1:
            return teacher(z, t, y) if y is not None else teacher(z, t)
        null = torch.full_like(y, teacher.null_label)
        v_cond, v_uncond = teacher(torch.cat([z, z]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
        return guided_eps(v_cond, v_uncond, w)


class MeanFlow(Objective):
    """The network u(z, t, r) predicts the average velocity over [r, t] on flow matching's straight path
    (Geng et al. 2025), trained towards meanflow_target. It is a UNet(interval=True): its code timesteps t and
    r (continuous) stand for flow times s = (t + 1) / T and s_r = (r + 1) / T, as for FlowMatching.

    Times (the paper's best settings): s and s_r are two draws of a logit-normal (mean -0.4, std 1.0), sorted;
    in a share 1 - r_neq_t of the batch s_r = s (the interval is empty, the loss is flow matching's).
    Adaptive weighting: each image's squared error (per-pixel mean) is divided by (error + c)^p, detached
    (p = 1 as in the paper, c = 1e-3); p = 0 is the plain squared error.
    """

    name = "meanflow"
    output = "average_velocity"
    uses_beta_schedule = False

    def __init__(self, r_neq_t: float = 0.25, mean: float = -0.4, std: float = 1.0, p: float = 1.0, c: float = 1e-3):
        self.r_neq_t, self.mean, self.std, self.p, self.c = r_neq_t, mean, std, p, c
        self.velocity = None       # (z, s, y) -> v: a teacher's velocity (with_teacher); None: eps - x_0

    def with_teacher(self, velocity) -> "MeanFlow":
        """A copy of this objective whose target uses velocity(z, s, y) -> v, a teacher's velocity at z_s (e.g.
        functools.partial(teacher_velocity, teacher, T=1000, w=2)), in place of the straight path's eps - x_0.
        The labels y of a batch reach the teacher; the student gets them only if it is conditional itself."""
        other = copy.copy(self)
        other.velocity = velocity
        return other

    def draw_t(self, batch_size, schedule, generator=None):
        """Flow times (B, 2): column 0 is s, column 1 is s_r <= s, drawn on the CPU from `generator`."""
        a = torch.sigmoid(self.mean + self.std * torch.randn(batch_size, 2, generator=generator))
        s, s_r = a.max(1).values, a.min(1).values
        empty = torch.rand(batch_size, generator=generator) >= self.r_neq_t
        s_r = torch.where(empty, s, s_r)
        return torch.stack([s, s_r], 1)

    def timesteps_on(self, t, schedule, device):
        """MeanFlow's flow times (B, 2), checked on the CPU (0 <= s_r <= s <= 1), moved to `device`."""
        if t.ndim != 2 or t.shape[1] != 2 or t.dtype.is_complex or not t.dtype.is_floating_point:
            raise ValueError(f"MeanFlow's times are a float (B, 2) tensor of (s, s_r), got {t.dtype} {tuple(t.shape)}")
        if bool((t[:, 1] < 0).any() or (t[:, 1] > t[:, 0]).any() or (t[:, 0] > 1).any()):
            raise ValueError("MeanFlow's times must satisfy 0 <= s_r <= s <= 1")
        return t.to(device, non_blocking=True)

    def noisy_input(self, x0, t, noise, schedule):
        return flow_interpolant(x0, noise, t[:, 0])

    def target(self, x0, t, noise, schedule):
        raise ValueError("MeanFlow's target needs the network itself: use MeanFlow.loss (objective_loss calls it)")

    def to_eps(self, output, x_t, t, schedule):
        raise ValueError("a MeanFlow network predicts an average velocity: sample it with "
                         "samplers.meanflow_sample_progressive")

    def x0_error_scale(self, t, schedule):
        raise ValueError("min-SNR weighting is not defined for MeanFlow; train it with loss_weighting='none'")

    def loss(self, model, x0, t, noise, schedule, y=None):
        T = schedule.T
        s, s_r = t[:, 0].to(x0.dtype), t[:, 1].to(x0.dtype)

        def u_model(z, s, s_r, labels=None):      # flow times -> the network's continuous code timesteps
            return model(z, s * T - 1, labels, s_r * T - 1)

        z = flow_interpolant(x0, noise, s)                        # (B, C, H, W)
        if self.velocity is None:
            v = noise - x0                                        # the velocity of the straight path at z
        else:                                                     # the teacher's velocity at z (distillation)
            v = self.velocity(z, s, y).to(x0.dtype)
            if getattr(model, "num_classes", None) is None:       # an unconditional student of a conditional teacher
                y = None
        y_open = None if y is None else y[s_r < s]
        target = meanflow_target(lambda z_, s_, r_: u_model(z_, s_, r_, y_open), z, s, s_r, v)
        error = F.mse_loss(u_model(z, s, s_r, y).to(target.dtype), target, reduction="none").flatten(1).mean(1)   # (B,)
        if self.p:
            error = error / (error.detach() + self.c) ** self.p
        return error

    def __repr__(self):
        teacher = "" if self.velocity is None else ", velocity=<teacher>"
        return f"MeanFlow(r_neq_t={self.r_neq_t}, mean={self.mean}, std={self.std}, p={self.p}, c={self.c}{teacher})"


OBJECTIVES = {o.name: o for o in (PredictEps(), PredictX0(), PredictV(), FlowMatching(), MeanFlow())}


def get_objective(objective: str | Objective, **settings) -> Objective:
    """The Objective called `objective` ("eps", "x0", "v", "flow", "meanflow"), or `objective` itself if it is one;
    with settings, a new one of that kind built with them (MeanFlow(r_neq_t=0.5, ...))."""
    if isinstance(objective, Objective):
        return objective
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {sorted(OBJECTIVES)}")
    if settings:
        try:
            return type(OBJECTIVES[objective])(**settings)
        except TypeError as e:
            raise ValueError(f"objective {objective!r} does not take the settings {settings} ({e})") from None
    return OBJECTIVES[objective]


# ----------------------------------------------------------------------------- loss weighting and the loss

def min_snr_weight(t: torch.Tensor, schedule: Schedule, objective: str | Objective = "eps",
                   gamma: float = DEFAULT_MIN_SNR_GAMMA) -> torch.Tensor:
    """Min-SNR-gamma weights (B,) for the objective's loss: min(SNR_t, gamma) / x0_error_scale(t)
    (Hang et al. 2023, Eq. 8; for eps: min(SNR_t, gamma) / SNR_t). SNR_t is the SNR of the objective's own path:
    alpha_bar_t / (1 - alpha_bar_t) for the DDPM family, (1 - s)^2 / s^2 for flow matching."""
    check_number(gamma, "min-SNR gamma", lower=0, lower_open=True)
    check_timesteps(t, schedule.T)
    objective = get_objective(objective)
    return objective.snr(t, schedule).clamp(max=gamma) / objective.x0_error_scale(t, schedule)


def loss_weights(t: torch.Tensor, schedule: Schedule, objective: str | Objective = "eps", weighting: str = "none",
                 gamma: float = DEFAULT_MIN_SNR_GAMMA) -> torch.Tensor | None:
    """The per-timestep weights (B,) of `weighting` ("none": None, every timestep weighs 1; "min_snr")."""
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; choose one of {LOSS_WEIGHTINGS}")
    return None if weighting == "none" else min_snr_weight(t, schedule, objective, gamma)


def objective_loss(model, x0: torch.Tensor, schedule: Schedule, objective: str | Objective = "eps",
                   t: torch.Tensor | None = None, noise: torch.Tensor | None = None, y: torch.Tensor | None = None,
                   weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error between the objective's target and model(x_t, t, y), per pixel, for each image (B,);
    multiplied by `weights` (B,) if given; averaged over the batch unless reduction="none".

    t and noise are drawn here (from torch's global generator) when not given; when given, they are checked
    (t: integers in [0, T-1], shape (B,); noise: x0's shape; weights: (B,)).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' (one number) or 'none' (one loss per image), got {reduction!r}")
    objective = get_objective(objective)
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2:
        raise ValueError(f"x0 must be a batch of images (B, C, H, W), got {type(x0).__name__}"
                         f"{' of shape ' + str(tuple(x0.shape)) if isinstance(x0, torch.Tensor) else ''}; "
                         "add a batch dimension with x.unsqueeze(0)")
    B = x0.shape[0]
    if t is not None:
        check_timesteps(t, schedule.T)
        if tuple(t.shape) != (B,):
            raise ValueError(f"t must have shape (B,) = ({B},), one timestep per image, got {tuple(t.shape)}; "
                             "pass one timestep per image")
    if noise is not None:
        check_same_shape(x0, noise, "x0", "noise")
    if weights is not None and (not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (B,)):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights must have shape (B,) = ({B},), one per image, got {shape}; "
                         "pass loss_weights(t, ...) for the same t")
    return _objective_loss(model, x0, schedule, objective, t, noise, y, weights, reduction)


def _objective_loss(model, x0, schedule, objective: Objective, t, noise, y, weights, reduction: str = "mean"):
    """objective_loss without the checks of its arguments (the trainer's, whose t, noise and weights are its own)."""
    if t is None:
        t = objective.draw_t(x0.shape[0], schedule).to(x0.device)
    if noise is None:
        noise = torch.randn_like(x0)
    loss = objective.loss(model, x0, t, noise, schedule, y)                                          # (B,)
    if weights is not None:
        loss = loss * weights
    return loss.mean() if reduction == "mean" else loss


def diffusion_loss(model, x0: torch.Tensor, schedule: Schedule, t: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None, y: torch.Tensor | None = None,
                   reduction: str = "mean") -> torch.Tensor:
    """The noise-prediction loss || eps - eps_theta(x_t, t) ||^2 (per-pixel mean) of Ho et al. (2020):
    objective_loss with the eps objective and no weighting."""
    return objective_loss(model, x0, schedule, "eps", t, noise, y, reduction=reduction)


# ----------------------------------------------------------------------------- what the samplers call

def eps_model_for(network, objective: str | Objective, schedule: Schedule):
    """The callable (x_t, t[, y]) -> eps that the samplers take, for a network trained with `objective`.

    For "eps" that is the network itself (and for "flow" too: its output is a velocity, which the flow
    samplers take as it is; the DDPM-family samplers refuse it). Otherwise it is an EpsFromOutput module that
    converts the network's output with objective.to_eps and exposes the network's num_classes, null_label and
    image_shape, so guidance.cfg_eps_model works on it as on any eps network. Either way the result is marked
    with what it is (mark_model: objective, schedule, output), so a sampler of the wrong kind refuses it.
    """
    objective = get_objective(objective)
    if objective.output in ("x0", "v"):
        return EpsFromOutput(network, objective, schedule)
    return mark_model(network, objective, schedule)


class EpsFromOutput(torch.nn.Module):
    """A network trained with another objective, seen as an eps predictor: forward(x_t, t, y) -> eps.
    Marked with the objective it was trained with ("x0", "v"), its schedule, and output "eps"."""

    def __init__(self, network, objective: Objective, schedule: Schedule):
        super().__init__()
        self.network, self.trained_objective = network, get_objective(objective)
        mark_model(self, self.trained_objective, schedule, output="eps")
        for attribute in ("num_classes", "null_label", "image_shape", "arch"):
            if hasattr(network, attribute):
                setattr(self, attribute, getattr(network, attribute))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        output = self.network(x_t, t, y)
        return self.trained_objective.to_eps(output.to(x_t.dtype), x_t, t, self.schedule)


# ----------------------------------------------------------------------------- a model that knows what it is

# A network loaded from a checkpoint (checkpoints.load_model, pretrained.load_pretrained) or returned by
# training.train carries three attributes, set once from its record (mark_model):
#     model.objective   the objective it was trained with: "eps", "x0", "v", "flow" or "meanflow"
#     model.schedule    the Schedule it was trained with (for flow matching only its T means anything)
#     model.output      what calling it returns: "eps" (also an x0 or v network behind eps_model_for), "x0", "v",
#                       "velocity" (flow matching) or "average_velocity" (MeanFlow)
# The wrappers (guidance.cfg_eps_model, samplers.with_precision, samplers.clipped_x0_eps_model) pass them on
# (carry_marks), and the samplers and helpers check them (check_model). A bare network or a function of your own
# carries none: it is taken as it is, unchecked.
MARKS = ("objective", "schedule", "output")


def mark_model(model, objective: str | Objective, schedule: Schedule, output: str | None = None):
    """Set model.objective (the objective's name), model.schedule and model.output (by default what a network
    trained with `objective` outputs); returns model."""
    objective = get_objective(objective)
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule (schedules.make_schedule), got {type(schedule).__name__}; "
                         "pass the schedule the model was trained with")
    model.objective, model.schedule, model.output = objective.name, schedule, output or objective.output
    return model


def carry_marks(wrapper, model):
    """Give `wrapper` (a function or module around `model`) the model's marks, if it has them; returns wrapper."""
    for attribute in MARKS:
        if getattr(model, attribute, None) is not None:
            setattr(wrapper, attribute, getattr(model, attribute))
    return wrapper


# What each kind of output is sampled with, for the messages.
SAMPLED_WITH = {"eps": "the DDPM family's samplers (ddpm_, ddim_ or heun_sample_progressive)",
                "velocity": "the flow samplers (flow_euler_sample_progressive or flow_heun_sample_progressive)",
                "average_velocity": "samplers.meanflow_sample_progressive (MeanFlow)"}


def check_model(model, needs: str, user: str, schedule: Schedule | None = None) -> None:
    """Raise a ValueError if `model` is marked (mark_model) with an output other than `needs` ("eps" for the DDPM
    family's samplers, "velocity" for the flow samplers), or with a schedule other than `schedule` (for flow
    matching: another T). `user` names the caller in the message. Unmarked models pass unchecked."""
    output = getattr(model, "output", None)
    if output is None:
        return
    objective = getattr(model, "objective", "?")
    if output != needs:
        if output in ("x0", "v") and needs == "eps":
            fix = (f"wrap it so that its output becomes eps: objectives.eps_model_for(model, {objective!r}, "
                   "model.schedule) (load_model does this)")
        else:
            fix = f"sample it with {SAMPLED_WITH.get(output, 'the samplers of its objective')}"
        raise ValueError(f"{user} needs a network that predicts {needs}, but this one predicts {output} (trained "
                         f"with the {objective!r} objective); {fix}")
    carried = getattr(model, "schedule", None)
    if schedule is None or not isinstance(carried, Schedule):
        return
    beta = get_objective(objective).uses_beta_schedule if objective in OBJECTIVES else True
    if carried.T != schedule.T or (beta and carried.name != schedule.name):
        given = f"the {schedule.name} schedule with T = {schedule.T}" if beta else f"a schedule with T = {schedule.T}"
        trained = f"the {carried.name} schedule with T = {carried.T}" if beta else f"T = {carried.T}"
        raise ValueError(f"{user} was given {given}, but this model was trained with {trained}; "
                         "pass the model's own schedule, model.schedule")
