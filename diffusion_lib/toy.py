"""A 2-D toy whose every density and score is known: data from a mixture of Gaussians (notebook 10).

The data is x_0 ~ q(x_0) = sum_k pi_k N(mu_k, Sigma_k) in the plane. The forward process
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps turns each component into another Gaussian, so the
noised density is again a mixture with the same weights, for every t (in closed form, no sampling):

    q_t(x) = sum_k pi_k N(x; sqrt(alpha_bar_t) mu_k, alpha_bar_t Sigma_k + (1 - alpha_bar_t) I)    noised_mixture

Its score (the gradient of log q_t) is a responsibility-weighted sum of the components' scores,

    grad log q_t(x) = sum_k r_k(x) (-C_k^{-1} (x - m_k)),   r_k(x) = pi_k N(x; m_k, C_k) / q_t(x)     score

with m_k, C_k the noised means and covariances. And the best possible noise prediction, the one a network
trained with the loss of Ho et al. minimises towards, E[eps | x_t], is the score rescaled:

    eps*(x_t, t) = -sqrt(1 - alpha_bar_t) grad log q_t(x_t)                                       exact_eps

(the same relation turns any eps network into a score estimate: score_from_eps).

Flow matching (notebook 11) noises the same data on the straight path x_s = (1 - s) x_0 + s eps, s in [0, 1]:
again a mixture, with means (1 - s) mu_k and covariances (1 - s)^2 Sigma_k + s^2 I (flow_mixture), and the best
velocity a network can learn, E[eps - x_0 | x_s], is a responsibility-weighted sum over the components of each
component's Gaussian regression (exact_velocity; ExactVelocity as a model the flow samplers take).

Points are tensors of
shape (B, 2, 1, 1), two "channels" of a 1 x 1 "image", so forward.q_sample, the samplers and the Trainer
work on them unchanged; as_points and as_xy convert from and to (B, 2) coordinates.
Everything follows the dtype and device of its input (float64 in the tests).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .schedules import Schedule, extract, on_device

POINT_SHAPE = (2, 1, 1)


# ----------------------------------------------------------------------------- points

def as_points(xy: torch.Tensor) -> torch.Tensor:
    """(B, 2) coordinates -> (B, 2, 1, 1) points, the shape the samplers and networks take."""
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"coordinates must have shape (B, 2), got {tuple(xy.shape)}")
    return xy[:, :, None, None]


def as_xy(points: torch.Tensor) -> torch.Tensor:
    """(B, 2, 1, 1) points -> (B, 2) coordinates."""
    if points.ndim != 4 or tuple(points.shape[1:]) != POINT_SHAPE:
        raise ValueError(f"points must have shape (B, 2, 1, 1), got {tuple(points.shape)}; "
                         "make them from (B, 2) coordinates with toy.as_points")
    return points[:, :, 0, 0]


def grid_points(limit: float = 1.5, n: int = 21, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The n x n points of a square grid on [-limit, limit]^2, row by row (y fixed within a row), (n * n, 2, 1, 1)."""
    axis = torch.linspace(-limit, limit, n, dtype=dtype)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return as_points(torch.stack([x.flatten(), y.flatten()], dim=1))


# ----------------------------------------------------------------------------- the mixture

@dataclass(frozen=True)
class GaussianMixture:
    """q(x) = sum_k pi_k N(x; mu_k, Sigma_k) in 2-D: weights pi (K,), means mu (K, 2), covariances Sigma (K, 2, 2)."""

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor

    def __post_init__(self):
        K = self.weights.shape[0] if self.weights.ndim == 1 else -1
        if K < 1 or self.means.shape != (K, 2) or self.covariances.shape != (K, 2, 2):
            raise ValueError(f"a mixture of K components needs weights (K,), means (K, 2) and covariances (K, 2, 2), "
                             f"got {tuple(self.weights.shape)}, {tuple(self.means.shape)}, {tuple(self.covariances.shape)}")
        if not bool((self.weights > 0).all()) or abs(float(self.weights.sum()) - 1) > 1e-5:
            raise ValueError(f"the weights must be positive and sum to 1, got {self.weights.tolist()}")
        if not torch.allclose(self.covariances, self.covariances.transpose(1, 2)) or \
                not bool((torch.linalg.eigvalsh(self.covariances.double()) > 0).all()):
            raise ValueError("every covariance must be symmetric positive definite")

    @property
    def num_components(self) -> int:
        return self.weights.shape[0]

    def to(self, like: torch.Tensor) -> "GaussianMixture":
        """The same mixture in the dtype and on the device of `like`."""
        return GaussianMixture(self.weights.to(like), self.means.to(like), self.covariances.to(like))


def ring_mixture(num_components: int = 6, radius: float = 0.7, std: float = 0.1) -> GaussianMixture:
    """num_components equal Gaussians N(mu_k, std^2 I) with their means evenly spaced on a circle of `radius`
    (the first on the positive x axis): with the defaults, nearly all the data lies in [-1, 1]^2."""
    if num_components < 1 or radius < 0 or std <= 0:
        raise ValueError(f"need num_components >= 1, radius >= 0 and std > 0, got {num_components}, {radius}, {std}")
    angle = 2 * math.pi * torch.arange(num_components, dtype=torch.float64) / num_components
    means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)                          # (K, 2)
    covariances = std ** 2 * torch.eye(2, dtype=torch.float64).expand(num_components, 2, 2).clone()
    weights = torch.full((num_components,), 1 / num_components, dtype=torch.float64)
    return GaussianMixture(weights.float(), means.float(), covariances.float())


def mixture_sample(mixture: GaussianMixture, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws x ~ q: a component k ~ pi, then x = mu_k + L_k z with L_k L_k^T = Sigma_k, z ~ N(0, I); (n, 2, 1, 1)
    on the mixture's device. k and z are drawn where the generator is and moved (without one: on the mixture's
    device): a seeded CPU generator gives the same points on every device."""
    device = mixture.means.device
    where = generator.device if generator is not None else device
    k = torch.multinomial(mixture.weights.to(where), n, replacement=True, generator=generator).to(device)   # (n,)
    z = torch.randn((n, 2), generator=generator, dtype=mixture.means.dtype, device=where).to(device)       # (n, 2)
    L = torch.linalg.cholesky(mixture.covariances)                                               # (K, 2, 2)
    return as_points(mixture.means[k] + (L[k] @ z[:, :, None])[:, :, 0])


def mixture_mean_covariance(mixture: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    """The mixture's mean sum_k pi_k mu_k (2,) and covariance sum_k pi_k (Sigma_k + mu_k mu_k^T) - mean mean^T (2, 2)."""
    pi = mixture.weights
    mean = (pi[:, None] * mixture.means).sum(0)
    second = (pi[:, None, None] * (mixture.covariances + mixture.means[:, :, None] * mixture.means[:, None, :])).sum(0)
    return mean, second - mean[:, None] * mean[None, :]


def noised_mixture(mixture: GaussianMixture, alpha_bar: float) -> GaussianMixture:
    """q_t for a noise level alpha_bar_t: the same weights, means sqrt(alpha_bar) mu_k and covariances
    alpha_bar Sigma_k + (1 - alpha_bar) I. alpha_bar = 1 is the data itself."""
    alpha_bar = float(alpha_bar)
    if not 0 < alpha_bar <= 1:
        raise ValueError(f"alpha_bar must lie in (0, 1], got {alpha_bar}")
    eye = torch.eye(2, dtype=mixture.covariances.dtype, device=mixture.covariances.device)
    return GaussianMixture(mixture.weights, alpha_bar ** 0.5 * mixture.means,
                           alpha_bar * mixture.covariances + (1 - alpha_bar) * eye)


def q_t_sample(mixture: GaussianMixture, alpha_bar: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws x_t ~ q_t, directly from the noised mixture (no x_0 needed); (n, 2, 1, 1)."""
    return mixture_sample(noised_mixture(mixture, alpha_bar), n, generator)


# ----------------------------------------------------------------------------- density and score

def _noised_parameters(mixture: GaussianMixture, alpha_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means (B, K, 2) and covariances (B, K, 2, 2) of q_t for one alpha_bar per point, alpha_bar (B,)."""
    a = alpha_bar[:, None, None]
    means = a.sqrt() * mixture.means[None]                                                       # (B, K, 2)
    eye = torch.eye(2, dtype=alpha_bar.dtype, device=alpha_bar.device)
    covariances = a[..., None] * mixture.covariances[None] + (1 - a[..., None]) * eye            # (B, K, 2, 2)
    return means, covariances


def _component_terms(mixture: GaussianMixture, x: torch.Tensor, alpha_bar) -> tuple[torch.Tensor, torch.Tensor]:
    """(log pi_k + log N(x; m_k, C_k)) (B, K) and the components' scores -C_k^{-1} (x - m_k) (B, K, 2)."""
    xy = as_xy(x)                                                                                # (B, 2)
    mixture = mixture.to(xy)
    if not isinstance(alpha_bar, torch.Tensor) or alpha_bar.ndim == 0:
        alpha_bar = torch.full((xy.shape[0],), float(alpha_bar), dtype=xy.dtype, device=xy.device)
    alpha_bar = alpha_bar.to(xy)
    if alpha_bar.shape != (xy.shape[0],):
        raise ValueError(f"alpha_bar must be a number or one per point, shape ({xy.shape[0]},), got {tuple(alpha_bar.shape)}")
    if not bool(((alpha_bar > 0) & (alpha_bar <= 1)).all()):
        raise ValueError("alpha_bar must lie in (0, 1]")
    log_terms, precision_diff = _gaussian_terms(mixture.weights, xy, *_noised_parameters(mixture, alpha_bar))
    return log_terms, -precision_diff


def _gaussian_terms(weights: torch.Tensor, xy: torch.Tensor, means: torch.Tensor,
                    covariances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log pi_k + log N(x; m_k, C_k)) (B, K) and C_k^{-1} (x - m_k) (B, K, 2) for points xy (B, 2) and components
    m_k, C_k given per point, (B, K, 2) and (B, K, 2, 2), or for all points, (K, 2) and (K, 2, 2)."""
    diff = xy[:, None, :] - means                                                                # (B, K, 2)
    precision_diff = torch.linalg.solve(covariances, diff[..., None])[..., 0]                    # C_k^{-1} (x - m_k)
    mahalanobis = (diff * precision_diff).sum(-1)                                                # (B, K)
    log_normal = -0.5 * mahalanobis - 0.5 * torch.logdet(covariances) - math.log(2 * math.pi)   # log N, in 2-D
    return weights.log()[None] + log_normal, precision_diff


def q_t_log_density(mixture: GaussianMixture, x: torch.Tensor, alpha_bar=1.0) -> torch.Tensor:
    """log q_t(x) = log sum_k pi_k N(x; sqrt(alpha_bar) mu_k, alpha_bar Sigma_k + (1 - alpha_bar) I), (B,), for points
    x (B, 2, 1, 1) and alpha_bar a number or one per point (B,); alpha_bar = 1 (default) is the data's log q(x)."""
    log_terms, _ = _component_terms(mixture, x, alpha_bar)
    return torch.logsumexp(log_terms, dim=1)


def q_t_score(mixture: GaussianMixture, x: torch.Tensor, alpha_bar=1.0) -> torch.Tensor:
    """grad_x log q_t(x) = sum_k r_k(x) (-C_k^{-1} (x - m_k)), r_k = softmax_k(log pi_k + log N(x; m_k, C_k)),
    (B, 2, 1, 1), at points x (B, 2, 1, 1); alpha_bar as in q_t_log_density."""
    log_terms, component_scores = _component_terms(mixture, x, alpha_bar)
    responsibilities = log_terms.softmax(dim=1)                                                  # (B, K)
    return as_points((responsibilities[..., None] * component_scores).sum(1))


def responsibilities(mixture: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """r_k(x) = pi_k N(x; mu_k, Sigma_k) / q(x), (B, K): the probability that a point x (B, 2, 1, 1) was drawn from
    component k (for the noised density, pass noised_mixture or flow_mixture)."""
    xy = as_xy(x)
    mixture = mixture.to(xy)
    log_terms, _ = _gaussian_terms(mixture.weights, xy, mixture.means, mixture.covariances)
    return log_terms.softmax(dim=1)


def score_from_eps(eps: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """grad log q_t(x_t) ~ -eps / sqrt(1 - alpha_bar_t): a noise prediction read as a score (any eps network)."""
    return -eps / extract(schedule.sqrt_one_minus_alpha_bar, t, eps.shape)


def eps_from_score(score: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """eps = -sqrt(1 - alpha_bar_t) grad log q_t(x_t): the inverse of score_from_eps."""
    return -extract(schedule.sqrt_one_minus_alpha_bar, t, score.shape) * score


def exact_eps(mixture: GaussianMixture, x_t: torch.Tensor, t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The best noise prediction E[eps | x_t] = -sqrt(1 - alpha_bar_t) grad log q_t(x_t), (B, 2, 1, 1), for points
    x_t (B, 2, 1, 1) at code timesteps t (B,)."""
    schedule.check_timesteps(t)
    alpha_bar = on_device(schedule.alpha_bar, t.device)[t]                                              # (B,)
    return eps_from_score(q_t_score(mixture, x_t, alpha_bar), t, schedule)


def exact_score(mixture: GaussianMixture, x_t: torch.Tensor, t: int, schedule: Schedule) -> torch.Tensor:
    """grad log q_t(x_t) at one code timestep t for every point x_t (B, 2, 1, 1): q_t_score at alpha_bar_t."""
    return q_t_score(mixture, x_t, float(schedule.alpha_bar[t]))


def learned_score(eps_model, x_t: torch.Tensor, t: int, schedule: Schedule) -> torch.Tensor:
    """s_theta(x_t, t) = -eps_theta(x_t, t) / sqrt(1 - alpha_bar_t): a noise-prediction network's score estimate at one
    code timestep t for every point x_t (B, 2, 1, 1), computed without gradients."""
    tt = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)
    with torch.no_grad():
        return score_from_eps(eps_model(x_t, tt), tt, schedule)


class ExactEps:
    """The exact noise prediction of a mixture as an eps model, the callable (x_t, t) -> eps the samplers take."""

    def __init__(self, mixture: GaussianMixture, schedule: Schedule):
        self.mixture, self.schedule = mixture, schedule

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return exact_eps(self.mixture, x_t, t, self.schedule)


# ----------------------------------------------------------------------------- the straight path of flow matching

def _check_s(s: float) -> float:
    s = float(s)
    if not 0 <= s <= 1:
        raise ValueError(f"the flow time s must lie in [0, 1] (0: the data, 1: pure noise), got {s}")
    return s


def flow_mixture(mixture: GaussianMixture, s: float) -> GaussianMixture:
    """The density p_s of x_s = (1 - s) x_0 + s eps: the same weights, means (1 - s) mu_k and covariances
    (1 - s)^2 Sigma_k + s^2 I. s = 0 is the data, s = 1 the standard normal."""
    s = _check_s(s)
    eye = torch.eye(2, dtype=mixture.covariances.dtype, device=mixture.covariances.device)
    return GaussianMixture(mixture.weights, (1 - s) * mixture.means, (1 - s) ** 2 * mixture.covariances + s ** 2 * eye)


def exact_velocity(mixture: GaussianMixture, x_s: torch.Tensor, s: float) -> torch.Tensor:
    """The best velocity u*(x_s) = E[eps - x_0 | x_s] at flow time s, (B, 2, 1, 1), for points x_s (B, 2, 1, 1).

    Given the component k, (x_0, eps, x_s) are jointly Gaussian, and the regression of u = eps - x_0 on x_s is
    u_k(x) = -mu_k + (s I - (1 - s) Sigma_k) C_k^{-1} (x - (1 - s) mu_k), C_k = (1 - s)^2 Sigma_k + s^2 I;
    u* = sum_k r_k(x) u_k(x) with the responsibilities r_k of p_s (flow_mixture). Finite at s = 0 and s = 1."""
    s = _check_s(s)
    xy = as_xy(x_s)                                                                              # (B, 2)
    mixture = mixture.to(xy)
    noised = flow_mixture(mixture, s)
    log_terms, precision_diff = _gaussian_terms(noised.weights, xy, noised.means, noised.covariances)
    eye = torch.eye(2, dtype=xy.dtype, device=xy.device)
    gain = s * eye - (1 - s) * mixture.covariances                                               # (K, 2, 2)
    u_k = -mixture.means[None] + (gain[None] @ precision_diff[..., None])[..., 0]                # (B, K, 2)
    return as_points((log_terms.softmax(dim=1)[..., None] * u_k).sum(1))


def learned_velocity(velocity_model, x_s: torch.Tensor, t: int) -> torch.Tensor:
    """u_theta(x_s, t): a flow-matching network's velocity at one code timestep t (flow time s = (t + 1) / T) for every
    point x_s (B, 2, 1, 1), computed without gradients."""
    tt = torch.full((x_s.shape[0],), int(t), dtype=torch.long, device=x_s.device)
    with torch.no_grad():
        return velocity_model(x_s, tt)


class ExactVelocity:
    """The exact velocity of a mixture as a model (x_s, t) -> u, as the flow samplers call a velocity network:
    code timesteps t (B,) stand for the flow times s = (t + 1) / T (objectives.flow_time)."""

    def __init__(self, mixture: GaussianMixture, T: int):
        self.mixture, self.T = mixture, T

    def __call__(self, x_s: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        s = (t.to(torch.float64) + 1) / self.T
        if bool((s != s[0]).any()):
            return torch.cat([exact_velocity(self.mixture, x_s[i:i + 1], float(s[i])) for i in range(len(s))])
        return exact_velocity(self.mixture, x_s, float(s[0]))
