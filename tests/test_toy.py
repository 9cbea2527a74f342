"""diffusion_lib.toy: the 2-D mixture's noised density, score and exact eps, checked against independent computations."""
import math

import pytest
import torch

from _tiny import alpha_bars, linear_betas, one_thread  # noqa: F401 (one_thread is autouse)
from diffusion_lib import toy
from diffusion_lib.forward import q_sample
from diffusion_lib.samplers import ddpm_sample_progressive, final
from diffusion_lib.schedules import make_schedule

SCHEDULE = make_schedule("linear")


def lopsided_mixture(dtype=torch.float64) -> toy.GaussianMixture:
    """Three components with unequal weights and tilted, unequal covariances: nothing symmetric to hide a mistake."""
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=dtype)
    means = torch.tensor([[0.6, 0.1], [-0.4, 0.5], [-0.2, -0.7]], dtype=dtype)
    covariances = torch.tensor([[[0.02, 0.012], [0.012, 0.03]], [[0.05, -0.01], [-0.01, 0.01]],
                                [[0.01, 0.0], [0.0, 0.04]]], dtype=dtype)
    return toy.GaussianMixture(weights, means, covariances)


def points(n, seed=0, scale=1.0, dtype=torch.float64):
    return toy.as_points(scale * torch.randn((n, 2), generator=torch.Generator().manual_seed(seed), dtype=dtype))


@pytest.mark.parametrize("alpha_bar", [1.0, 0.9, 0.3, 0.004])
def test_exact_score_is_the_gradient_of_the_exact_log_density(alpha_bar):
    """Central finite differences of log q_t, in float64, against the closed-form score."""
    mixture, x, h = lopsided_mixture(), points(50, seed=1, scale=0.8), 1e-5
    numeric = torch.zeros_like(x)
    for i in range(2):
        step = torch.zeros_like(x)
        step[:, i] = h
        numeric[:, i] = (toy.q_t_log_density(mixture, x + step, alpha_bar)
                         - toy.q_t_log_density(mixture, x - step, alpha_bar))[:, None, None] / (2 * h)
    assert torch.allclose(toy.q_t_score(mixture, x, alpha_bar), numeric, rtol=1e-6, atol=1e-6)


def test_score_of_one_gaussian_is_minus_the_precision_times_the_offset():
    mean, cov = torch.tensor([0.3, -0.2], dtype=torch.float64), torch.tensor([[0.2, 0.05], [0.05, 0.1]], dtype=torch.float64)
    one = toy.GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None], cov[None])
    x, a = points(7, seed=2), 0.6
    C = a * cov + (1 - a) * torch.eye(2, dtype=torch.float64)
    expected = -(torch.linalg.inv(C) @ (toy.as_xy(x) - a ** 0.5 * mean).T).T
    assert torch.allclose(toy.q_t_score(one, x, a), toy.as_points(expected), atol=1e-12)
    log_normal = torch.distributions.MultivariateNormal(a ** 0.5 * mean, C).log_prob(toy.as_xy(x))
    assert torch.allclose(toy.q_t_log_density(one, x, a), log_normal, atol=1e-12)


def test_the_density_integrates_to_one():
    mixture, n, limit = lopsided_mixture(), 301, 2.5
    density = toy.q_t_log_density(mixture, toy.grid_points(limit, n, dtype=torch.float64)).exp()
    cell = (2 * limit / (n - 1)) ** 2
    assert float(density.sum() * cell) == pytest.approx(1.0, abs=1e-4)


def _moments(x):
    xy = toy.as_xy(x)
    return xy.mean(0), torch.cov(xy.T)


@pytest.mark.parametrize("t", [0, 150, 600, 999])
def test_the_noised_mixture_has_the_moments_of_q_sample(t):
    """q_sample applied to draws of the data, against the closed-form q_t: mean and covariance of 200,000 draws
    within 5 standard errors; and the noised mixture's moments are sqrt(abar) m and abar S + (1 - abar) I."""
    mixture, n = lopsided_mixture(), 200_000
    g = torch.Generator().manual_seed(t)
    x0 = toy.mixture_sample(mixture, n, g)
    x_t = q_sample(x0, torch.full((n,), t), SCHEDULE, torch.randn(x0.shape, generator=g, dtype=x0.dtype))
    a = float(SCHEDULE.alpha_bar[t])
    mean, cov = toy.mixture_mean_covariance(toy.noised_mixture(mixture, a))
    mean_0, cov_0 = toy.mixture_mean_covariance(mixture)
    assert torch.allclose(mean, a ** 0.5 * mean_0, atol=1e-12)
    assert torch.allclose(cov, a * cov_0 + (1 - a) * torch.eye(2, dtype=torch.float64), atol=1e-12)
    for draws in (x_t, toy.q_t_sample(mixture, a, n, g)):
        m, c = _moments(draws)
        assert torch.all((m - mean).abs() < 5 * (cov.diagonal() / n).sqrt()), (m, mean)
        # the standard error of a covariance entry is at most sqrt((S_ii S_jj + S_ij^2) / n) for Gaussian-like data;
        # a mixture has heavier tails, so allow twice that
        se = ((cov.diagonal()[:, None] * cov.diagonal()[None] + cov ** 2) / n).sqrt()
        assert torch.all((c - cov).abs() < 10 * se), (c, cov)


def test_mixture_sample_picks_components_by_weight():
    mixture = toy.GaussianMixture(torch.tensor([0.75, 0.25]), torch.tensor([[-5.0, 0.0], [5.0, 0.0]]),
                                  0.01 * torch.eye(2).expand(2, 2, 2).clone())
    x = toy.as_xy(toy.mixture_sample(mixture, 40_000, torch.Generator().manual_seed(0)))
    assert float((x[:, 0] > 0).float().mean()) == pytest.approx(0.25, abs=0.01)


def test_exact_eps_is_the_conditional_mean_of_the_noise():
    """eps*(x_t) = E[eps | x_t]: the residual eps - eps*(x_t) is uncorrelated with any function of x_t (here x_t
    itself and eps* itself), and eps* beats a slightly shrunk or grown copy of itself in the training loss."""
    mixture, n, t = lopsided_mixture(), 100_000, 200
    g = torch.Generator().manual_seed(3)
    x0 = toy.mixture_sample(mixture, n, g)
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    tt = torch.full((n,), t)
    x_t = q_sample(x0, tt, SCHEDULE, eps)
    best = toy.exact_eps(mixture, x_t, tt, SCHEDULE)
    residual = (eps - best).flatten(1)                                                # (n, 2)
    for f in (x_t.flatten(1), best.flatten(1)):
        products = residual[:, :, None] * f[:, None, :]                              # (n, 2, 2)
        se = products.std(0) / math.sqrt(n)
        assert torch.all(products.mean(0).abs() < 5 * se), products.mean(0)
    loss = lambda e: float(((eps - e) ** 2).mean())                                   # noqa: E731
    assert loss(best) < loss(0.9 * best) and loss(best) < loss(1.1 * best)


def test_score_and_eps_convert_both_ways():
    t = torch.tensor([0, 10, 500, 999])
    eps = points(4, seed=5)
    score = toy.score_from_eps(eps, t, SCHEDULE)
    abar = alpha_bars(linear_betas())                                         # plain Python, float64
    expected = -eps / torch.tensor([(1 - abar[i]) ** 0.5 for i in t.tolist()], dtype=torch.float64)[:, None, None, None]
    assert torch.allclose(score, expected, rtol=1e-6)
    assert torch.allclose(toy.eps_from_score(score, t, SCHEDULE), eps, atol=1e-12)
    mixture, x = lopsided_mixture(), points(4, seed=6)
    assert torch.allclose(toy.exact_eps(mixture, x, t, SCHEDULE),
                          toy.eps_from_score(toy.q_t_score(mixture, x, SCHEDULE.alpha_bar[t]), t, SCHEDULE))


def test_learned_and_exact_score_at_one_timestep():
    """The exact eps used as the "network": its learned_score is the exact score, at every t."""
    mixture, x = lopsided_mixture(), points(5, seed=9)
    for t in (0, 300, 999):
        via_eps = toy.learned_score(toy.ExactEps(mixture, SCHEDULE), x, t, SCHEDULE)
        assert torch.allclose(via_eps, toy.exact_score(mixture, x, t, SCHEDULE), rtol=1e-6, atol=1e-9)
        assert torch.allclose(toy.exact_score(mixture, x, t, SCHEDULE), toy.q_t_score(mixture, x, SCHEDULE.alpha_bar[t]))


def test_exact_eps_takes_one_timestep_per_point():
    mixture, x = lopsided_mixture(), points(3, seed=7)
    t = torch.tensor([3, 400, 990])
    together = toy.exact_eps(mixture, x, t, SCHEDULE)
    for i in range(3):
        alone = toy.exact_eps(mixture, x[i:i + 1], t[i:i + 1], SCHEDULE)
        assert torch.allclose(together[i:i + 1], alone, atol=1e-12)


def test_ddpm_with_the_exact_eps_samples_the_data():
    """Ancestral sampling with the exact noise prediction (no network) ends at the data's mean and covariance."""
    mixture, n = lopsided_mixture(torch.float32), 4000
    x_T = torch.randn((n, 2, 1, 1), generator=torch.Generator().manual_seed(8))
    x0 = final(ddpm_sample_progressive(toy.ExactEps(mixture, SCHEDULE), x_T, SCHEDULE,
                                       generator=torch.Generator().manual_seed(9)))
    m, c = _moments(x0)
    mean, cov = toy.mixture_mean_covariance(mixture)
    assert torch.allclose(m, mean, atol=0.02) and torch.allclose(c, cov, atol=0.01), (m, mean, c, cov)


def test_ring_mixture_lies_in_the_unit_square():
    ring = toy.ring_mixture(6, radius=0.7, std=0.1)
    assert torch.allclose(ring.means.norm(dim=1), torch.full((6,), 0.7))
    assert torch.allclose(ring.means[0], torch.tensor([0.7, 0.0]))
    x = toy.as_xy(toy.mixture_sample(ring, 10_000, torch.Generator().manual_seed(0)))
    assert float((x.abs() <= 1).all(dim=1).float().mean()) > 0.99


def test_points_and_grid_shapes():
    grid = toy.grid_points(1.0, 3)
    assert grid.shape == (9, 2, 1, 1)
    assert toy.as_xy(grid)[:3].tolist() == [[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]]   # the first row: y = -1
    with pytest.raises(ValueError, match=r"shape \(B, 2, 1, 1\)"):
        toy.as_xy(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        toy.as_points(torch.zeros(3, 3))


@pytest.mark.parametrize("kwargs,match", [
    (dict(weights=torch.tensor([0.5, 0.6])), "sum to 1"),
    (dict(weights=torch.tensor([1.0])), "needs weights"),
    (dict(covariances=torch.tensor([[[1.0, 2.0], [2.0, 1.0]]] * 2)), "positive definite"),
])
def test_bad_mixtures_are_refused(kwargs, match):
    good = dict(weights=torch.tensor([0.5, 0.5]), means=torch.zeros(2, 2), covariances=torch.eye(2).expand(2, 2, 2).clone())
    with pytest.raises(ValueError, match=match):
        toy.GaussianMixture(**{**good, **kwargs})


def test_bad_alpha_bar_is_refused():
    with pytest.raises(ValueError, match=r"alpha_bar must lie in \(0, 1\]"):
        toy.noised_mixture(toy.ring_mixture(), 0.0)
    with pytest.raises(ValueError, match="one per point"):
        toy.q_t_score(toy.ring_mixture(), points(3, dtype=torch.float32), torch.tensor([0.5, 0.5]))


# ----------------------------------------------------------------------------- the straight path (notebook 11)

@pytest.mark.parametrize("s", [0.0, 0.3, 0.7, 1.0])
def test_flow_mixture_has_the_moments_of_the_interpolant(s):
    """flow_mixture(s) is the density of (1 - s) x_0 + s eps: compare its mean and covariance with samples'."""
    mixture, n = lopsided_mixture(), 200_000
    x0 = toy.mixture_sample(mixture, n, torch.Generator().manual_seed(10))
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(11), dtype=x0.dtype)
    m, c = _moments((1 - s) * x0 + s * eps)
    mean, cov = toy.mixture_mean_covariance(toy.flow_mixture(mixture, s))
    assert torch.allclose(m, mean, atol=0.01) and torch.allclose(c, cov, atol=0.01), (m, mean, c, cov)


@pytest.mark.parametrize("s", [0.05, 0.3, 0.6, 0.95])
def test_exact_velocity_is_tweedie_on_the_flow_density(s):
    """An independent route: E[eps | x_s] = -s grad log p_s(x_s) (Tweedie, noise of standard deviation s) and
    x_0 = (x_s - s eps) / (1 - s), so E[eps - x_0 | x_s] = (-s grad log p_s(x_s) - x_s) / (1 - s); the gradient by
    autograd of the flow mixture's log density."""
    mixture = lopsided_mixture()
    x = points(64, seed=12).requires_grad_(True)
    log_p = toy.q_t_log_density(toy.flow_mixture(mixture, s), x, 1.0)       # alpha_bar = 1: the mixture's own density
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    expected = (-s * grad - x.detach()) / (1 - s)
    assert torch.allclose(toy.exact_velocity(mixture, x.detach(), s), expected, atol=1e-10)


def test_exact_velocity_at_the_ends():
    """At s = 1 (pure noise, x_1 independent of x_0) the best guess of eps - x_0 is x_1 - E[x_0]; at s = 0 it is
    E[eps] - x_0 = -x_0 on the data."""
    mixture = lopsided_mixture()
    x = points(16, seed=13)
    mean, _ = toy.mixture_mean_covariance(mixture)
    assert torch.allclose(toy.as_xy(toy.exact_velocity(mixture, x, 1.0)), toy.as_xy(x) - mean, atol=1e-12)
    assert torch.allclose(toy.exact_velocity(mixture, x, 0.0), -x, atol=1e-12)


def test_flow_euler_with_the_exact_velocity_samples_the_data():
    """The flow ODE of the exact velocity carries N(0, I) to the data: mean and covariance of the ends."""
    from diffusion_lib.samplers import flow_euler_sample_progressive

    mixture, n = lopsided_mixture(torch.float32), 4000
    x_1 = torch.randn((n, 2, 1, 1), generator=torch.Generator().manual_seed(14))
    x0 = final(flow_euler_sample_progressive(toy.ExactVelocity(mixture, SCHEDULE.T), x_1, SCHEDULE, num_steps=200))
    m, c = _moments(x0)
    mean, cov = toy.mixture_mean_covariance(mixture)
    assert torch.allclose(m, mean, atol=0.02) and torch.allclose(c, cov, atol=0.01), (m, mean, c, cov)


def test_exact_velocity_takes_one_flow_time_per_point():
    mixture, x = lopsided_mixture(), points(3, seed=15)
    t = torch.tensor([0, 499, 999])
    together = toy.ExactVelocity(mixture, 1000)(x, t)
    for i, s in enumerate((0.001, 0.5, 1.0)):
        assert torch.allclose(together[i:i + 1], toy.exact_velocity(mixture, x[i:i + 1], s), atol=1e-12)
    with pytest.raises(ValueError, match=r"flow time s must lie in \[0, 1\]"):
        toy.flow_mixture(mixture, 1.5)


def test_learned_velocity_is_the_network_at_one_timestep_without_gradients():
    net = torch.nn.Linear(2, 2).double()
    model = lambda x, t, y=None: toy.as_points(net(toy.as_xy(x))) * (t[:, None, None, None] + 1)  # noqa: E731
    x = points(4, seed=16)
    got = toy.learned_velocity(model, x, 9)
    assert torch.allclose(got, 10 * toy.as_points(net(toy.as_xy(x)))) and not got.requires_grad


def test_responsibilities_are_bayes_rule_over_the_components():
    """r_k(x) = pi_k N(x; mu_k, Sigma_k) / q(x): they sum to 1, and times q(x) they give each component's density
    (computed here from the 2-D normal formula); at a component's mean, far from the other, that component wins."""
    mixture = toy.GaussianMixture(torch.tensor([0.3, 0.7], dtype=torch.float64),
                                  torch.tensor([[0.5, 0.0], [-0.5, 0.2]], dtype=torch.float64),
                                  torch.stack([0.04 * torch.eye(2), torch.tensor([[0.09, 0.02], [0.02, 0.05]])]).double())
    x = toy.as_points(torch.randn((50, 2), generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.6)
    r = toy.responsibilities(mixture, x)
    assert r.shape == (50, 2) and torch.allclose(r.sum(1), torch.ones(50, dtype=torch.float64))
    xy = toy.as_xy(x)
    for k in range(2):
        d = xy - mixture.means[k]
        cov = mixture.covariances[k]
        normal = torch.exp(-0.5 * (d @ torch.linalg.inv(cov) * d).sum(1)) / (2 * math.pi * torch.det(cov).sqrt())
        density = toy.q_t_log_density(mixture, x).exp()
        assert torch.allclose(r[:, k] * density, mixture.weights[k] * normal, rtol=1e-10)
    assert float(toy.responsibilities(mixture, toy.as_points(torch.tensor([[0.5, 0.0]], dtype=torch.float64)))[0, 0]) > 0.99
