"""The forward process q: closed form vs step by step, posterior vs Bayes' rule."""
import pytest
import torch

from diffusion_lib.forward import (predict_eps_from_x0, predict_x0_from_eps, q_posterior_mean_variance, q_sample,
                                   q_step)
from diffusion_lib.schedules import make_schedule

from _tiny import alpha_bars, linear_betas, one_thread  # noqa: F401 (one_thread is autouse)

SCHEDULE = make_schedule("linear")
BETA = torch.tensor(linear_betas(), dtype=torch.float64)
ABAR = torch.tensor(alpha_bars(linear_betas()), dtype=torch.float64)


def images(B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((B, 1, 28, 28), generator=g) * 2 - 1


def full(B, t):
    return torch.full((B,), t, dtype=torch.long)


def test_q_sample_zero_noise_is_scaled_x0():
    x0 = images()
    t = torch.tensor([0, 500, 999])
    out = q_sample(x0, t, SCHEDULE, noise=torch.zeros_like(x0))
    expected = ABAR[t].sqrt().float()[:, None, None, None] * x0
    assert torch.allclose(out, expected, atol=1e-6)


def test_q_sample_closed_form_with_noise():
    x0, eps = images(), images(seed=1)
    t = torch.tensor([3, 250, 998])
    a = ABAR[t].float()[:, None, None, None]
    assert torch.allclose(q_sample(x0, t, SCHEDULE, eps), a.sqrt() * x0 + (1 - a).sqrt() * eps, atol=1e-6)


@pytest.mark.parametrize("k", [0, 1, 10, 999])
def test_iterated_q_step_without_noise_equals_closed_form(k):
    x0 = images(2)
    x = x0
    for t in range(k + 1):
        x = q_step(x, full(2, t), SCHEDULE, noise=torch.zeros_like(x))
    expected = q_sample(x0, full(2, k), SCHEDULE, noise=torch.zeros_like(x0))
    assert torch.allclose(x, expected, atol=1e-6)


def test_iterated_q_step_matches_q_sample_statistically():
    """Many chains of q_step from one x_0: mean sqrt(alpha_bar_k) x_0, variance 1 - alpha_bar_k (Ho et al. Eq. 4).

    One image whose 2 x 10,000 pixels are independent chains: channel 0 starts at 0.8, channel 1 at -0.5.
    """
    N = 10_000
    start = torch.tensor([0.8, -0.5], dtype=torch.float64)
    x0 = start.reshape(1, 2, 1, 1).expand(1, 2, 100, N // 100).float()
    g = torch.Generator().manual_seed(0)
    checkpoints = {0, 5, 50, 300, 999}
    x = x0
    for t in range(1000):
        x = q_step(x, full(1, t), SCHEDULE, noise=torch.randn(x.shape, generator=g))
        if t in checkpoints:
            chains = x.double().reshape(2, N)
            mean, var = chains.mean(1), chains.var(1)
            expected_var = 1 - ABAR[t]
            se_mean = (expected_var / N).sqrt()
            assert torch.allclose(mean, ABAR[t].sqrt() * start, atol=float(5 * se_mean)), (t, mean)
            assert torch.allclose(var, expected_var.expand(2), rtol=5 * (2 / N) ** 0.5), (t, var, expected_var)


def test_posterior_matches_bayes_rule():
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0): a product of two Gaussians in x_{t-1}."""
    x0, x_t = images(), images(seed=2)
    t = torch.tensor([1, 400, 999])
    mean, var = q_posterior_mean_variance(x0, x_t, t, SCHEDULE)
    alpha = (1 - BETA[t])[:, None, None, None]
    beta = BETA[t][:, None, None, None]
    abar_prev = ABAR[t - 1][:, None, None, None]
    # likelihood in x_{t-1}: N(x_t / sqrt(alpha_t), beta_t / alpha_t);  prior: N(sqrt(abar_prev) x_0, 1 - abar_prev)
    precision = alpha / beta + 1 / (1 - abar_prev)
    bayes_var = 1 / precision
    bayes_mean = bayes_var * (alpha.sqrt() * x_t.double() / beta + abar_prev.sqrt() * x0.double() / (1 - abar_prev))
    assert var.shape == (3, 1, 1, 1)
    assert torch.allclose(var.double(), bayes_var, rtol=1e-5)
    assert torch.allclose(mean.double(), bayes_mean, atol=1e-5)


def test_posterior_at_t0_is_the_clean_image():
    """alpha_bar_prev = 1 at t = 0: the prior is a point mass at x_0."""
    x0, x_t = images(2), images(2, seed=3)
    mean, var = q_posterior_mean_variance(x0, x_t, full(2, 0), SCHEDULE)
    assert torch.allclose(mean, x0, atol=1e-5)
    assert torch.all(var == 0)


def test_predict_x0_from_eps_inverts_q_sample():
    x0, eps = images(), images(seed=4)
    t = torch.tensor([0, 123, 999])
    x_t = q_sample(x0, t, SCHEDULE, eps)
    assert torch.allclose(predict_x0_from_eps(x_t, t, eps, SCHEDULE), x0, atol=1e-3)
    assert torch.allclose(predict_eps_from_x0(x_t, t, x0, SCHEDULE), eps, atol=1e-4)
    # away from t = T-1 (where sqrt(alpha_bar) ~ 6e-3 amplifies float32 rounding) the inversion is tight
    t = torch.tensor([0, 123, 600])
    x_t = q_sample(x0, t, SCHEDULE, eps)
    assert torch.allclose(predict_x0_from_eps(x_t, t, eps, SCHEDULE), x0, atol=1e-5)


@pytest.mark.parametrize("bad", [-1, 1000])
def test_out_of_range_t_names_the_range(bad):
    x0 = images(1)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        q_sample(x0, full(1, bad), SCHEDULE)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        q_step(x0, full(1, bad), SCHEDULE)


def test_float_t_is_refused():
    with pytest.raises(ValueError, match="integer tensor"):
        q_sample(images(1), torch.tensor([5.0]), SCHEDULE)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        q_sample(torch.zeros(1, 28, 28), full(1, 0), SCHEDULE)
    with pytest.raises(ValueError, match=r"t must have shape \(B,\)"):
        q_sample(images(2), full(3, 0), SCHEDULE)
    with pytest.raises(ValueError, match="floating-point"):
        q_sample(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), full(1, 0), SCHEDULE)
    with pytest.raises(ValueError, match="same shape"):
        q_posterior_mean_variance(images(2)[:, :, :14], images(2), full(2, 1), SCHEDULE)
