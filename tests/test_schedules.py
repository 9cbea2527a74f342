"""Noise schedules against closed forms recomputed here without diffusion_lib."""
import math

import pytest
import torch

from diffusion_lib.schedules import extract, make_schedule, schedule_from_betas

from _tiny import alpha_bars, linear_betas


def f64(values):
    return torch.tensor(values, dtype=torch.float64)


@pytest.fixture(scope="module")
def linear():
    return make_schedule("linear")


@pytest.fixture(scope="module")
def cosine():
    return make_schedule("cosine")


def test_linear_endpoints_and_length(linear):
    assert linear.T == 1000 and linear.beta.shape == (1000,)
    assert float(linear.beta[0]) == pytest.approx(1e-4, rel=1e-6)
    assert float(linear.beta[-1]) == pytest.approx(0.02, rel=1e-6)
    assert torch.allclose(linear.beta.double(), f64(linear_betas()), rtol=1e-6, atol=0)


def test_every_quantity_is_float32_of_shape_T(linear, cosine):
    for s in (linear, cosine):
        tensors = s.as_dict()
        assert set(tensors) == {"beta", "alpha", "alpha_bar", "alpha_bar_prev", "sqrt_alpha_bar",
                                "sqrt_one_minus_alpha_bar", "snr", "log_snr", "beta_tilde",
                                "posterior_coef_x0", "posterior_coef_xt"}
        for name, v in tensors.items():
            assert v.dtype == torch.float32, name
            assert v.shape == (s.T,), name


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_bar_is_cumprod_of_one_minus_beta(name):
    s = make_schedule(name)
    expected = f64(alpha_bars(s.beta.double().tolist()))
    assert torch.allclose(s.alpha.double(), 1 - s.beta.double(), atol=1e-7)
    assert torch.allclose(s.alpha_bar.double(), expected, rtol=1e-5, atol=1e-9)
    assert float(s.alpha_bar_prev[0]) == 1.0
    assert torch.equal(s.alpha_bar_prev[1:], s.alpha_bar[:-1])


def test_linear_alpha_bar_matches_python_recursion(linear):
    expected = f64(alpha_bars(linear_betas()))
    assert torch.allclose(linear.alpha_bar.double(), expected, rtol=1e-5, atol=1e-9)
    assert 0 < float(linear.alpha_bar[-1]) < 1e-4   # x_{T-1} is almost pure noise


def test_cosine_matches_nichol_dhariwal(cosine):
    T, s = 1000, 0.008
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    abar = [v / f[0] for v in f]
    beta = f64([min(1 - abar[t + 1] / abar[t], 0.999) for t in range(T)])
    assert torch.allclose(cosine.beta.double(), beta, rtol=1e-5, atol=1e-9)
    # the last beta is the clipped one (alpha_bar(T) = 0 would give beta = 1)
    assert float(cosine.beta[-1]) == pytest.approx(0.999, rel=1e-6)
    assert float(cosine.beta.max()) <= 0.999 + 1e-7
    # before the clip, code timestep t holds alpha_bar(t + 1) of the paper
    assert torch.allclose(cosine.alpha_bar[:-1].double(), f64(abar[1:T]), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_sqrt_terms_square_to_one(name):
    s = make_schedule(name)
    assert torch.allclose(s.sqrt_alpha_bar ** 2 + s.sqrt_one_minus_alpha_bar ** 2, torch.ones(s.T), atol=1e-6)
    assert torch.allclose(s.sqrt_alpha_bar ** 2, s.alpha_bar, atol=1e-6)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_snr_and_log_snr(name):
    s = make_schedule(name)
    abar = f64(alpha_bars(s.beta.double().tolist()))
    snr = abar / (1 - abar)
    assert torch.allclose(s.snr.double(), snr, rtol=1e-4)
    assert torch.allclose(s.log_snr.double(), snr.log(), atol=1e-4)
    assert bool((s.snr[1:] < s.snr[:-1]).all())   # signal-to-noise falls with t


def test_beta_tilde_formula(linear):
    beta = f64(linear_betas())
    abar = f64(alpha_bars(linear_betas()))
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    expected = beta * (1 - abar_prev) / (1 - abar)
    assert torch.allclose(linear.beta_tilde.double(), expected, rtol=1e-5, atol=1e-12)
    assert float(linear.beta_tilde[0]) == 0.0
    assert bool((linear.beta_tilde <= linear.beta).all())


def test_posterior_coefficients_match_float64_formula(linear):
    # Recomputed in plain Python doubles: sqrt(abar_prev) beta / (1 - abar) and sqrt(alpha) (1 - abar_prev) / (1 - abar).
    betas = linear_betas()
    abar = alpha_bars(betas)
    abar_prev = [1.0] + abar[:-1]
    coef_x0 = torch.tensor([math.sqrt(p) * b / (1 - a) for b, a, p in zip(betas, abar, abar_prev)], dtype=torch.float64)
    coef_xt = torch.tensor([math.sqrt(1 - b) * (1 - p) / (1 - a) for b, a, p in zip(betas, abar, abar_prev)],
                           dtype=torch.float64)
    assert torch.allclose(linear.posterior_coef_x0.double(), coef_x0, rtol=1e-6, atol=0)
    assert torch.allclose(linear.posterior_coef_xt.double(), coef_xt, rtol=1e-6, atol=1e-12)
    # at t = 0 the posterior is the clean image itself: coefficient 1 on x0, 0 on x_t
    assert float(linear.posterior_coef_x0[0]) == pytest.approx(1.0, abs=1e-7) and float(linear.posterior_coef_xt[0]) == 0.0


def test_schedule_length_follows_T():
    s = make_schedule("linear", T=10)
    assert s.T == 10 and s.beta.shape == (10,)
    assert torch.allclose(s.beta.double(), f64(linear_betas(10)), rtol=1e-6)


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'") as info:
        make_schedule("quadratic")
    assert "linear" in str(info.value) and "cosine" in str(info.value)


@pytest.mark.parametrize("T", [0, -5, 10.0])
def test_bad_T(T):
    with pytest.raises(ValueError, match="T must be a positive integer"):
        make_schedule("linear", T=T)


@pytest.mark.parametrize("beta", [torch.tensor([0.1, 1.0]), torch.tensor([0.0, 0.1]), torch.zeros(0),
                                  torch.full((2, 2), 0.1)])
def test_bad_betas(beta):
    with pytest.raises(ValueError):
        schedule_from_betas(beta)


def test_extract_gathers_and_broadcasts():
    values = torch.arange(10, dtype=torch.float32) * 0.5
    t = torch.tensor([0, 3, 9])
    out = extract(values, t, (3, 1, 28, 28))
    assert out.shape == (3, 1, 1, 1)
    assert out.flatten().tolist() == [0.0, 1.5, 4.5]
