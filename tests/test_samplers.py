"""Samplers: the timestep grid, DDPM as DDIM(eta=1) on the full grid, determinism, inversion, bad input."""
import pytest
import torch

from diffusion_lib.backbones import UNet
from diffusion_lib.forward import predict_x0_from_eps, q_sample
import diffusion_lib.samplers as samplers
from diffusion_lib.samplers import (with_precision, ddim_invert, ddim_invert_progressive, ddim_sample_progressive,
                                    ddim_step, ddim_timesteps, ddpm_sample_progressive, ddpm_step, final, record,
                                    sample_noise, timestep_pairs)
from diffusion_lib.schedules import extract, make_schedule

from _tiny import alpha_bars, linear_betas, one_thread, tiny_eps  # noqa: F401 (one_thread is autouse)

SCHEDULE = make_schedule("linear")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def x_T(B=2, seed=0, dtype=torch.float64, size=8):
    return torch.randn((B, 1, size, size), generator=gen(seed), dtype=dtype)


# ----------------------------------------------------------------------------- the grid

GRIDS = [(S, T) for T in (1000, 300, 10) for S in (1, 2, 3, 7, 10, 50, 299, 300, 999, 1000) if S <= T]


@pytest.mark.parametrize("S,T", GRIDS)
def test_ddim_timesteps(S, T):
    ts = ddim_timesteps(S, T)
    assert len(ts) == S and all(isinstance(t, int) for t in ts)
    assert ts[0] == T - 1
    if S > 1:
        assert ts[-1] == 0
        gaps = [a - b for a, b in zip(ts, ts[1:])]
        assert min(gaps) >= 1                                    # strictly decreasing
        spacing = (T - 1) / (S - 1)
        assert all(abs(g - spacing) <= 1 for g in gaps)          # evenly spaced up to rounding
    if S == T:
        assert ts == list(range(T - 1, -1, -1))


def closed_form_karras(N, sigma_min, sigma_max, rho=7.0):
    """Karras et al. 2022, Eq. 5, written out here independently of the library: a list of N floats."""
    if N == 1:
        return [sigma_max]
    return [(sigma_max ** (1 / rho) + i / (N - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
            for i in range(N)]


@pytest.mark.parametrize("N", [1, 2, 3, 5, 10, 20, 50, 78])
def test_karras_timesteps_round_the_closed_form_to_the_nearest_timestep(N):
    abar = torch.tensor(alpha_bars(linear_betas()), dtype=torch.float64)
    exact_sigma = ((1 - abar) / abar).sqrt()                               # (T,) from the betas, in float64
    # the schedule keeps alpha_bar in float32: 1 - alpha_bar near t = 0 carries ~1e-4 relative rounding
    assert torch.allclose(samplers.schedule_sigmas(SCHEDULE), exact_sigma, rtol=1e-3)
    stored = SCHEDULE.alpha_bar.double()
    sigma = ((1 - stored) / stored).sqrt()                                 # the levels the grid is rounded to
    targets = closed_form_karras(N, float(sigma[0]), float(sigma[-1]))
    assert torch.allclose(samplers.karras_sigmas(N, float(sigma[0]), float(sigma[-1])),
                          torch.tensor(targets, dtype=torch.float64), rtol=1e-12)
    ts = samplers.karras_timesteps(N, SCHEDULE)
    assert all(isinstance(t, int) for t in ts)
    assert ts[0] == 999 and (N == 1 or ts[-1] == 0)                       # the ends are exact
    assert all(a > b for a, b in zip(ts, ts[1:]))                         # strictly decreasing
    assert len(ts) == N                                                   # no duplicates up to 78 steps
    log_sigma = sigma.log()
    for t, target in zip(ts, targets):
        # nearest in log sigma: no other timestep is closer to the closed form's level
        gap = (log_sigma[t] - torch.tensor(target).log()).abs()
        assert gap <= (log_sigma - torch.tensor(target).log()).abs().min() + 1e-12, (N, t, target)
        # and the level between neighbouring timesteps: sigma_{t-1} <= target-ish <= sigma_{t+1}
        assert float(sigma[max(t - 1, 0)]) <= target * (1 + 1e-9) or t == 0
        assert target <= float(sigma[min(t + 1, 999)]) * (1 + 1e-9)


def test_karras_grid_is_finer_at_the_clean_end_and_drops_duplicates():
    ts = samplers.karras_timesteps(10, SCHEDULE)
    assert ts == [999, 937, 864, 775, 663, 511, 301, 102, 18, 0]          # the rounded closed form, for the record
    sigma = ((1 - SCHEDULE.alpha_bar.double()) / SCHEDULE.alpha_bar.double()).sqrt()
    ratios = [float(sigma[a] / sigma[b]) for a, b in zip(ts, ts[1:])]
    assert all(r1 < r2 for r1, r2 in zip(ratios, ratios[1:]))             # sigma shrinks by ever larger factors...
    uniform = ddim_timesteps(10, 1000)
    uniform_ratios = [float(sigma[a] / sigma[b]) for a, b in zip(uniform, uniform[1:])]
    assert max(ratios) < max(uniform_ratios) / 3                          # ...but far less than DDIM's last step
    # from 79 steps on the grid is finer than the timesteps near t = 0: rounded duplicates are dropped
    for N in (79, 100, 200, 1000):
        ts = samplers.karras_timesteps(N, SCHEDULE)
        nearest = [int((sigma.log() - torch.tensor(s).log()).abs().argmin())
                   for s in closed_form_karras(N, float(sigma[0]), float(sigma[-1]))]
        assert ts == list(dict.fromkeys(nearest)) and len(ts) < N
        assert all(a > b for a, b in zip(ts, ts[1:])) and ts[0] == 999 and ts[-1] == 0


def test_samplers_walk_the_grid_they_are_given(model64):
    for sampler in (ddim_sample_progressive, samplers.heun_sample_progressive):
        steps = list(sampler(model64, x_T(), SCHEDULE, num_steps=5, grid="karras"))
        assert [(s.t, s.t_next) for s in steps] == timestep_pairs([999, 843, 593, 142, 0])
        uniform = list(sampler(model64, x_T(), SCHEDULE, num_steps=5))
        assert [(s.t, s.t_next) for s in uniform] == timestep_pairs(ddim_timesteps(5, 1000))
        with pytest.raises(ValueError, match="uniform"):
            final(sampler(model64, x_T(), SCHEDULE, num_steps=5, grid="Karras"))
    with pytest.raises(ValueError, match=r"\[1, 1000\]"):
        samplers.karras_timesteps(0, SCHEDULE)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        samplers.karras_sigmas(5, 2.0, 1.0)


def test_timestep_pairs():
    assert timestep_pairs([999, 749, 500, 250, 0]) == [(999, 749), (749, 500), (500, 250), (250, 0), (0, -1)]
    assert timestep_pairs([999]) == [(999, -1)]
    pairs = timestep_pairs(ddim_timesteps(20, 1000))
    assert pairs[-1] == (0, -1) and len(pairs) == 20
    assert all(p[1] == q[0] for p, q in zip(pairs, pairs[1:]))


@pytest.mark.parametrize("S", [0, -3, 1001, 2.0, 10.5])
def test_bad_number_of_steps(S):
    with pytest.raises(ValueError, match=r"\[1, 1000\]"):
        ddim_timesteps(S, 1000)
    with pytest.raises(ValueError):
        final(ddim_sample_progressive(tiny_eps(), x_T(), SCHEDULE, num_steps=S))


@pytest.mark.parametrize("eta", [-0.1, 1.5])
def test_bad_eta(eta):
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\]"):
        final(ddim_sample_progressive(tiny_eps(), x_T(), SCHEDULE, num_steps=2, eta=eta))


def test_bad_variance_and_bad_x_T():
    with pytest.raises(ValueError, match="unknown DDPM variance"):
        final(ddpm_sample_progressive(tiny_eps(), x_T(), SCHEDULE, variance="sigma"))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        final(ddim_sample_progressive(tiny_eps(), torch.zeros(1, 8, 8), SCHEDULE, num_steps=2))


# ----------------------------------------------------------------------------- DDPM

def ddpm_reference(model, x, generator, variance="beta_tilde"):
    """Ho et al. 2020, Algorithm 2, written out here in float64 from the betas alone."""
    betas = linear_betas()
    abar = alpha_bars(betas)
    for t in range(999, -1, -1):
        beta, alpha = betas[t], 1 - betas[t]
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        mean = (x - beta / (1 - abar[t]) ** 0.5 * eps) / alpha ** 0.5
        if t == 0:
            return mean
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        sigma2 = beta * (1 - abar[t - 1]) / (1 - abar[t]) if variance == "beta_tilde" else beta
        x = mean + sigma2 ** 0.5 * z


@pytest.fixture(scope="module")
def model64():
    return tiny_eps(seed=0, dtype=torch.float64)


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_matches_algorithm_2(model64, variance):
    with torch.no_grad():
        expected = ddpm_reference(model64, x_T(), gen(1), variance)
    got = final(ddpm_sample_progressive(model64, x_T(), SCHEDULE, variance=variance, generator=gen(1)))
    assert torch.allclose(got, expected, atol=1e-4)


def test_ddim_eta1_on_the_full_grid_is_ddpm(model64):
    ddpm = final(ddpm_sample_progressive(model64, x_T(), SCHEDULE, generator=gen(7)))
    ddim = final(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=1000, eta=1.0, generator=gen(7)))
    assert torch.allclose(ddim, ddpm, atol=1e-4)
    # and it is not trivially so: another noise stream gives another image
    other = final(ddpm_sample_progressive(model64, x_T(), SCHEDULE, generator=gen(8)))
    assert (other - ddpm).abs().max() > 0.1


def test_ddpm_adds_no_noise_at_the_last_step(model64):
    """At t = 0 the update is the posterior mean, which equals x0_pred (alpha_bar_0 = alpha_0), for both variances.
    (A short T = 20 schedule: nothing here depends on T.)"""
    short = make_schedule("linear", T=20)
    betas, abar = linear_betas(20), alpha_bars(linear_betas(20))
    for variance in ("beta_tilde", "beta"):
        steps = list(ddpm_sample_progressive(model64, x_T(), short, variance=variance, generator=gen(3)))
        last = steps[-1]
        assert (last.t, last.t_next) == (0, -1)
        assert torch.allclose(last.x_next, last.x0_pred, atol=1e-7)
        # the step before does add noise: x_prev differs from its mean by far more than rounding
        before = steps[-2]
        eps = model64(before.x_t, torch.ones(2, dtype=torch.long))
        mean = (before.x_t - betas[1] / (1 - abar[1]) ** 0.5 * eps) / (1 - betas[1]) ** 0.5
        assert (before.x_next - mean).abs().max() > 1e-2


def test_ddpm_beta_variance_differs_from_beta_tilde(model64):
    """Same x_T and noise stream: the first update differs only by sigma, so the deviations from the mean
    are in the ratio sqrt(beta / beta_tilde) at t = T-1."""
    tilde = next(iter(ddpm_sample_progressive(model64, x_T(), SCHEDULE, variance="beta_tilde", generator=gen(5))))
    beta = next(iter(ddpm_sample_progressive(model64, x_T(), SCHEDULE, variance="beta", generator=gen(5))))
    betas, abar = linear_betas(), alpha_bars(linear_betas())
    eps = model64(x_T(), torch.full((2,), 999, dtype=torch.long))
    mean = (x_T() - betas[999] / (1 - abar[999]) ** 0.5 * eps) / (1 - betas[999]) ** 0.5
    ratio = ((betas[999] * (1 - abar[998]) / (1 - abar[999])) / betas[999]) ** 0.5
    assert torch.allclose(tilde.x_next - mean, ratio * (beta.x_next - mean), atol=1e-6)
    # at t = 1 the two variances are far apart: beta_tilde_1 = beta_1 (1 - abar_0) / (1 - abar_1) ~ beta_1 / 2
    x, z = x_T(seed=1), x_T(seed=2)
    eps = model64(x, torch.ones(2, dtype=torch.long))
    mean, _ = ddpm_step(x, eps, 1, 0, SCHEDULE, noise=None)
    dev_tilde = ddpm_step(x, eps, 1, 0, SCHEDULE, z, variance="beta_tilde")[0] - mean
    dev_beta = ddpm_step(x, eps, 1, 0, SCHEDULE, z, variance="beta")[0] - mean
    assert torch.allclose(dev_beta, betas[1] ** 0.5 * z, atol=1e-7)
    assert torch.allclose(dev_tilde, (betas[1] * (1 - abar[0]) / (1 - abar[1])) ** 0.5 * z, atol=1e-7)
    assert (dev_beta - dev_tilde).abs().max() > 1e-3


# ----------------------------------------------------------------------------- DDIM

def test_ddim_eta0_is_deterministic(model64):
    a = final(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=20, eta=0.0, generator=gen(1)))
    b = final(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=20, eta=0.0, generator=gen(2)))
    c = final(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=20, eta=0.0))
    assert torch.equal(a, b) and torch.equal(a, c)
    # with eta > 0 the generator matters
    d = final(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=20, eta=0.5, generator=gen(1)))
    e = final(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=20, eta=0.5, generator=gen(2)))
    assert not torch.allclose(d, e)


def test_ddim_step_matches_song_et_al_eq_12(model64):
    """First step of a 4-step DDIM (999 -> 666), eta = 0.6, recomputed from Eq. 12 and Eq. 16."""
    step = next(iter(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=4, eta=0.6, generator=gen(9))))
    z = torch.randn(x_T().shape, generator=gen(9), dtype=torch.float64)
    abar = alpha_bars(linear_betas())
    a, a_prev = abar[999], abar[666]
    assert (step.t, step.t_next) == (999, 666)
    eps = model64(x_T(), torch.full((2,), 999, dtype=torch.long))
    x0 = (x_T() - (1 - a) ** 0.5 * eps) / a ** 0.5
    sigma = 0.6 * ((1 - a_prev) / (1 - a)) ** 0.5 * (1 - a / a_prev) ** 0.5
    expected = a_prev ** 0.5 * x0 + (1 - a_prev - sigma ** 2) ** 0.5 * eps + sigma * z
    assert torch.allclose(step.x0_pred, x0, rtol=1e-4, atol=1e-4)
    assert torch.allclose(step.x_next, expected, atol=1e-4)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_progressive_yields_every_step(model64, sampler):
    schedule = make_schedule("linear", T=30)
    if sampler == "ddpm":
        steps = list(ddpm_sample_progressive(model64, x_T(), schedule, generator=gen(0)))
        timesteps = list(range(29, -1, -1))
    else:
        steps = list(ddim_sample_progressive(model64, x_T(), schedule, num_steps=6, eta=0.3, generator=gen(0)))
        timesteps = ddim_timesteps(6, 30)
    assert [s.t for s in steps] == timesteps
    assert [s.t_next for s in steps] == timesteps[1:] + [-1]
    assert torch.equal(steps[0].x_t, x_T())
    for s, nxt in zip(steps, steps[1:]):
        assert nxt.x_t is s.x_next                                  # a chain, state by state
    for s in steps:
        tt = torch.full((2,), s.t, dtype=torch.long)
        assert torch.allclose(s.x0_pred, predict_x0_from_eps(s.x_t, tt, model64(s.x_t, tt), schedule), atol=1e-5)


def test_record_keeps_every_kth_and_the_last(model64):
    S = 10
    full = record(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=S, eta=0.5, generator=gen(4)))
    assert full.timesteps == ddim_timesteps(S, 1000)
    assert full.x_t.shape == (S, 2, 1, 8, 8) and full.x0_pred.shape == (S, 2, 1, 8, 8)
    sparse = record(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=S, eta=0.5, generator=gen(4)), every=4)
    kept = [0, 4, 8, 9]
    assert sparse.timesteps == [full.timesteps[i] for i in kept]
    assert torch.equal(sparse.x_t, full.x_t[kept]) and torch.equal(sparse.x0_pred, full.x0_pred[kept])
    expected = final(ddim_sample_progressive(model64, x_T(), SCHEDULE, num_steps=S, eta=0.5, generator=gen(4)))
    assert torch.equal(full.sample, expected) and torch.equal(sparse.sample, expected)


def test_final_and_record_of_an_empty_chain():
    with pytest.raises(ValueError, match="no step"):
        final(iter([]))
    with pytest.raises(ValueError, match="no step"):
        record(iter([]))


# ----------------------------------------------------------------------------- inversion

def test_inversion_with_the_oracle_follows_q_sample_and_comes_back():
    """For x_t = q_sample(x_0, t, e) with one fixed e, the model that always answers e is exact, so the
    DDIM inversion visits q_sample(x_0, t, e) at every grid point and DDIM(eta=0) brings it back to x_0."""
    x0 = torch.rand((2, 1, 8, 8), generator=gen(0), dtype=torch.float64) * 2 - 1
    e = torch.randn(x0.shape, generator=gen(1), dtype=torch.float64)
    oracle = lambda x, t: e  # noqa: E731
    steps = list(ddim_invert_progressive(oracle, x0, SCHEDULE, num_steps=10))
    grid_up = ddim_timesteps(10, 1000)[::-1]                         # [0, 111, ..., 999]
    assert [s.t_next for s in steps] == grid_up
    assert [s.t for s in steps] == [-1] + grid_up[:-1]              # each step starts where the last one ended
    assert steps[0].x_t is x0
    for s, nxt in zip(steps, steps[1:]):
        assert nxt.x_t is s.x_next                                  # the fields mean what they mean in sampling
    for s in steps:
        expected = q_sample(x0, torch.full((2,), s.t_next, dtype=torch.long), SCHEDULE, e)
        assert torch.allclose(s.x_next, expected, atol=1e-5)
    latent = ddim_invert(oracle, x0, SCHEDULE, num_steps=10)
    assert torch.equal(latent, steps[-1].x_next)
    assert torch.equal(final(ddim_invert_progressive(oracle, x0, SCHEDULE, num_steps=10)), latent)
    assert torch.equal(record(ddim_invert_progressive(oracle, x0, SCHEDULE, num_steps=10)).sample, latent)
    back = final(ddim_sample_progressive(oracle, latent, SCHEDULE, num_steps=10, eta=0.0))
    assert torch.allclose(back, x0, atol=1e-4)


def test_inversion_round_trip_with_a_time_dependent_model():
    """A model whose answer depends on t only (a random e_t per timestep): each inversion step is then the
    exact inverse of the DDIM step over the same pair, so the round trip is exact (up to rounding), while
    using the noise of another timestep on either side would break it."""
    table = torch.randn((1000, 1, 1, 8, 8), generator=gen(2), dtype=torch.float64)
    model = lambda x, t: table[t].squeeze(1)  # noqa: E731
    x0 = torch.rand((2, 1, 8, 8), generator=gen(3), dtype=torch.float64) * 2 - 1
    for S in (1, 5, 50):
        latent = ddim_invert(model, x0, SCHEDULE, num_steps=S)
        assert not torch.allclose(latent, x0, atol=0.1)
        back = final(ddim_sample_progressive(model, latent, SCHEDULE, num_steps=S, eta=0.0))
        assert torch.allclose(back, x0, atol=1e-4), S


def test_inversion_of_a_network_is_close_for_many_steps():
    """With a real (random, tiny) network the inversion is only approximate; it gets better with more steps."""
    model = tiny_eps(seed=1, dtype=torch.float64)
    x0 = torch.rand((2, 1, 8, 8), generator=gen(4), dtype=torch.float64) * 2 - 1
    errors = []
    for S in (10, 200):   # the error is first order in the step: about 1.8 and 0.08 here
        latent = ddim_invert(model, x0, SCHEDULE, num_steps=S)
        back = final(ddim_sample_progressive(model, latent, SCHEDULE, num_steps=S, eta=0.0))
        errors.append(float((back - x0).abs().max()))
    assert errors[1] < errors[0] / 10 and errors[1] < 0.1


# ----------------------------------------------------------------------------- with a real backbone

def test_unet_sampling_shapes_and_noise():
    torch.manual_seed(0)
    model = UNet(base=8).eval()
    noise = sample_noise(3, generator=torch.Generator().manual_seed(0))
    assert noise.shape == (3, 1, 28, 28)
    assert torch.equal(noise, sample_noise(3, generator=torch.Generator().manual_seed(0)))
    out = final(ddim_sample_progressive(model, noise, SCHEDULE, num_steps=2, eta=1.0, generator=gen(0)))
    assert out.shape == (3, 1, 28, 28) and torch.isfinite(out).all()


def test_with_precision_bf16_is_close_to_fp32_and_returns_float32():
    torch.manual_seed(0)
    net = UNet(base=8).eval()
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 10, 500, 999])
    assert with_precision(net, "fp32") is net                      # fp32: the model itself, untouched
    with torch.no_grad():
        eps32, eps16 = net(x, t), with_precision(net, "bf16")(x, t)
    assert eps16.dtype == torch.float32
    assert not torch.equal(eps16, eps32)                           # it really ran in bfloat16 ...
    assert torch.allclose(eps16, eps32, atol=0.05, rtol=0.05)      # ... and bfloat16 keeps about 3 significant digits


def test_with_precision_rejects_unknown():
    with pytest.raises(ValueError, match="unknown precision 'fp16'.*'fp32', 'bf16'"):
        with_precision(lambda x, t: x, "fp16")


# ----------------------------------------------------------------------------- one step convention

def test_ddpm_step_is_the_posterior_at_the_predicted_x0_and_ho_et_al_eq_11(model64):
    """ddpm_step's mean is q(x_{t-1} | x_t, x0_pred)'s mean; algebraically that is Eq. 11 of Ho et al.:
    checked in float64 against both, written out here from the betas."""
    betas, abar = linear_betas(), alpha_bars(linear_betas())
    x = x_T(seed=3)
    for t in (999, 500, 10, 1):
        eps = model64(x, torch.full((2,), t, dtype=torch.long))
        mean, x0_pred = ddpm_step(x, eps, t, t - 1, SCHEDULE)
        x0 = (x - (1 - abar[t]) ** 0.5 * eps) / abar[t] ** 0.5
        posterior = (abar[t - 1] ** 0.5 * betas[t] / (1 - abar[t])) * x0 \
            + ((1 - betas[t]) ** 0.5 * (1 - abar[t - 1]) / (1 - abar[t])) * x
        eq_11 = (x - betas[t] / (1 - abar[t]) ** 0.5 * eps) / (1 - betas[t]) ** 0.5
        assert torch.allclose(x0_pred, x0, rtol=1e-5, atol=1e-5)
        assert torch.allclose(mean, posterior, atol=1e-5) and torch.allclose(mean, eq_11, atol=1e-5)


def test_ddpm_step_refuses_a_skip():
    x = x_T()
    with pytest.raises(ValueError, match="one timestep at a time"):
        ddpm_step(x, x, 999, 666, SCHEDULE)


def test_every_step_has_one_signature(model64):
    """ddpm_step and ddim_step take (x_t, eps, t, t_prev, schedule, noise) and return (x_prev, x0_pred);
    on the full grid, eta = 1 DDIM and DDPM agree step by step, and both return the same x0_pred."""
    x, z = x_T(seed=5), x_T(seed=6)
    for t in (999, 400, 1, 0):
        eps = model64(x, torch.full((2,), t, dtype=torch.long))
        noise = z if t > 0 else None
        ddpm_prev, ddpm_x0 = ddpm_step(x, eps, t, t - 1, SCHEDULE, noise)
        ddim_prev, ddim_x0 = ddim_step(x, eps, t, t - 1, SCHEDULE, noise, eta=1.0)
        assert torch.allclose(ddpm_prev, ddim_prev, atol=1e-5) and torch.allclose(ddpm_x0, ddim_x0, atol=1e-5)


def _docstring_example():
    """The second-order sampler that the samplers module's docstring shows, executed from the docstring."""
    doc = samplers.__doc__
    start = doc.index("    def heun_sample_progressive")
    end = doc.index("Why this is Heun's method")
    code = "\n".join(line[4:] for line in doc[start:end].rstrip().splitlines())
    namespace = vars(samplers).copy()
    exec(code, namespace)
    return namespace["heun_sample_progressive"]


@pytest.mark.parametrize("heun", [samplers.heun_sample_progressive, _docstring_example()], ids=["library", "docstring"])
def test_a_second_order_sampler_plugs_into_the_loop(heun):
    x0 = torch.rand((2, 1, 8, 8), generator=gen(0), dtype=torch.float64) * 2 - 1
    e = torch.randn(x0.shape, generator=gen(1), dtype=torch.float64)
    # a model that answers the same eps at every t: Heun's average slope is Euler's, so Heun == DDIM
    constant = lambda x, t: e  # noqa: E731
    latent = q_sample(x0, torch.full((2,), 999, dtype=torch.long), SCHEDULE, e)
    by_heun = final(heun(constant, latent, SCHEDULE, num_steps=5))
    assert torch.allclose(by_heun, final(ddim_sample_progressive(constant, latent, SCHEDULE, num_steps=5)), atol=1e-6)
    assert torch.allclose(by_heun, x0, atol=1e-4)
    # a network: Heun's steps differ from DDIM's and it yields SamplerSteps like every sampler
    model = tiny_eps(seed=2, dtype=torch.float64)
    steps = list(heun(model, x_T(), SCHEDULE, num_steps=4))
    assert [(s.t, s.t_next) for s in steps] == timestep_pairs(ddim_timesteps(4, 1000))
    ddim = final(ddim_sample_progressive(model, x_T(), SCHEDULE, num_steps=4))
    assert (steps[-1].x_next - ddim).abs().max() > 1e-4


def test_the_library_and_the_docstring_give_the_same_heun():
    model = tiny_eps(seed=3, dtype=torch.float64)
    a = final(samplers.heun_sample_progressive(model, x_T(), SCHEDULE, num_steps=6))
    b = final(_docstring_example()(model, x_T(), SCHEDULE, num_steps=6))
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- the ODE view

S2 = 0.25   # data x_0 ~ N(0, S2 I): E[eps | x_t] = sqrt(1 - abar) x_t / (abar S2 + 1 - abar), known in closed form


def gaussian_eps(x, t):
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t].reshape(-1, 1, 1, 1)
    return (1 - abar).sqrt() * x / (abar * S2 + 1 - abar)


def test_ddim_is_an_euler_step_of_the_probability_flow_ode():
    """In xbar = x / sqrt(abar), sigma = sqrt((1 - abar) / abar): d xbar / d sigma = eps. One Euler step of it,
    written here from the alpha_bars alone, is one DDIM (eta = 0) step, for big and small steps alike."""
    abar = alpha_bars(linear_betas())
    x = x_T(seed=4)
    for t, t_prev in [(999, 500), (500, 499), (120, 3), (3, -1)]:
        eps = gaussian_eps(x, torch.full((2,), t))
        a_t, a_prev = abar[t], (abar[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64))
        sigma_t, sigma_prev = ((1 - a_t) / a_t) ** 0.5, ((1 - a_prev) / a_prev) ** 0.5
        xbar_prev = x / a_t ** 0.5 + (sigma_prev - sigma_t) * eps
        ddim_prev, _ = ddim_step(x, eps, t, t_prev, SCHEDULE)
        assert torch.allclose(ddim_prev, a_prev ** 0.5 * xbar_prev, atol=1e-5), (t, t_prev)


def test_heun_error_shrinks_as_h_squared_and_ddim_as_h():
    """Gaussian data: the ODE's solution is xbar(sigma) = xbar_T sqrt(S2 + sigma^2) / sqrt(S2 + sigma_T^2), so the
    exact clean end of x_T is known. Doubling the steps halves DDIM's error (first order) and quarters Heun's."""
    abar = alpha_bars(linear_betas())
    x = x_T(B=4, seed=5)
    sigma_T2 = (1 - abar[999]) / abar[999]
    exact = x / abar[999] ** 0.5 * S2 ** 0.5 / (S2 + sigma_T2) ** 0.5
    errors = {"ddim": [], "heun": []}
    for n in (20, 40, 80):
        ddim = final(ddim_sample_progressive(gaussian_eps, x, SCHEDULE, num_steps=n))
        heun = final(samplers.heun_sample_progressive(gaussian_eps, x, SCHEDULE, num_steps=n))
        errors["ddim"].append(float((ddim - exact).abs().max()))
        errors["heun"].append(float((heun - exact).abs().max()))
    for coarse, fine in zip(errors["ddim"], errors["ddim"][1:]):
        assert 1.7 < coarse / fine < 2.5, errors                         # measured: 2.0, 2.0
    for coarse, fine in zip(errors["heun"], errors["heun"][1:]):
        assert 3.3 < coarse / fine < 5.5, errors                         # measured: 4.3, 4.7
    assert errors["heun"][-1] < errors["ddim"][-1] / 10
    assert samplers.heun_nfe(10) == 19


@pytest.mark.parametrize("t", [900, 500, 100, 1])
def test_ddpm_moves_along_eps_twice_as_far_as_ddim(t):
    """The reverse SDE's drift has the score with weight g^2, the probability-flow ODE's with g^2 / 2 (Song et al.
    2021, Eqs. 6 and 13). Step by step: both updates x_t -> x_{t-1} scale x_t by 1 / sqrt(alpha_t); what they add
    along eps is, for DDPM's mean (Ho et al. Eq. 11), -beta_t / (sqrt(alpha_t) sqrt(1 - abar_t)), and for DDIM
    (eta = 0), sqrt(1 - abar_{t-1}) - sqrt(1 - abar_t) / sqrt(alpha_t). Divided by sqrt(abar_{t-1}) they read, in
    sigma_t = sqrt((1 - abar_t) / abar_t), -(sigma_t^2 - sigma_{t-1}^2) / sigma_t and -(sigma_t - sigma_{t-1}): their
    ratio is 1 + sigma_{t-1} / sigma_t, just under 2 for one small step."""
    betas = torch.tensor(linear_betas(), dtype=torch.float64)
    abar = torch.tensor(alpha_bars(linear_betas()), dtype=torch.float64)
    alpha = 1 - betas
    ddpm_coefficient = -betas[t] / (alpha[t].sqrt() * (1 - abar[t]).sqrt())              # from the schedule
    ddim_coefficient = (1 - abar[t - 1]).sqrt() - (1 - abar[t]).sqrt() / alpha[t].sqrt()
    sigma_t, sigma_prev = ((1 - abar[t]) / abar[t]).sqrt(), ((1 - abar[t - 1]) / abar[t - 1]).sqrt()
    closed_form = 1 + sigma_prev / sigma_t
    assert torch.allclose(ddpm_coefficient / ddim_coefficient, closed_form, rtol=1e-9)
    assert 1 < float(closed_form) < 2                                   # at t = 1: 1.67 (sigma_0 / sigma_1 = 0.67)
    # the library's steps, applied to x_t = 0 and eps = 1, give the same two coefficients (up to the float32
    # rounding of the schedule's alpha_bar, ~1e-4 relative in 1 - alpha_bar at t = 1)
    zero, one = torch.zeros((1, 1, 1, 1), dtype=torch.float64), torch.ones((1, 1, 1, 1), dtype=torch.float64)
    by_ddpm, _ = ddpm_step(zero, one, t, t - 1, SCHEDULE)                               # the mean: noise is None
    by_ddim, _ = ddim_step(zero, one, t, t - 1, SCHEDULE)
    assert torch.allclose(by_ddpm.flatten(), ddpm_coefficient.reshape(1), rtol=1e-3)
    assert torch.allclose(by_ddim.flatten(), ddim_coefficient.reshape(1), rtol=1e-3)
    assert torch.allclose((by_ddpm / by_ddim).flatten(), closed_form.reshape(1), rtol=1e-3)
    if t in (900, 500, 100):
        assert float(closed_form) > 1.98                                              # "about 1.99" in notebook 10


# ----------------------------------------------------------------------------- clipped_x0_eps_model

def test_clipped_x0_eps_model_leaves_eps_alone_inside_the_bound_and_clips_outside():
    schedule = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((6, 1, 28, 28), generator=g) * 1.8 - 0.9            # inside [-1, 1]
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 10, 100, 400, 700, 900])
    x_t = q_sample(x0, t, schedule, noise)
    exact = samplers.clipped_x0_eps_model(lambda x, tt: noise, schedule)
    assert torch.allclose(exact(x_t, t), noise, atol=1e-4)
    biased = lambda x, tt: noise + 0.5                                    # implies an image far outside at large t
    implied = predict_x0_from_eps(x_t, t, biased(x_t, t), schedule)
    assert implied.abs().max() > 5
    clipped = samplers.clipped_x0_eps_model(biased, schedule, bound=1.0)
    assert torch.allclose(predict_x0_from_eps(x_t, t, clipped(x_t, t), schedule), implied.clamp(-1, 1), atol=1e-4)
    with pytest.raises(ValueError, match="bound must be > 0"):
        samplers.clipped_x0_eps_model(biased, schedule, bound=0)


def test_cosine_schedule_first_ddim_step_divides_the_error_by_sqrt_alpha_bar_and_clipping_bounds_it():
    """With alpha_bar_{T-1} = 2.4e-9 (cosine), an eps error delta implies x0_pred = -delta sqrt((1 - a) / a): about
    -2000 delta at the first DDIM step. The network here knows the data is 0 (eps = x_t / sqrt(1 - alpha_bar_t)) and
    errs by delta = 0.01."""
    schedule = make_schedule("cosine", 1000)
    a = float(schedule.alpha_bar[-1])
    assert 1e-9 < a < 1e-8
    delta = 0.01
    model = lambda x, t: x / extract(schedule.sqrt_one_minus_alpha_bar, t, x.shape) + delta
    x_T = sample_noise(4, generator=torch.Generator().manual_seed(1))
    first = next(iter(ddim_sample_progressive(model, x_T, schedule, num_steps=50)))
    expected = -delta * ((1 - a) / a) ** 0.5
    assert expected < -100
    assert torch.allclose(first.x0_pred, torch.full_like(first.x0_pred, expected), rtol=1e-2)
    first_clipped = next(iter(ddim_sample_progressive(samplers.clipped_x0_eps_model(model, schedule), x_T, schedule,
                                                      num_steps=50)))
    assert torch.allclose(first_clipped.x0_pred, torch.full_like(first.x0_pred, -1.0), atol=1e-2)


# ----------------------------------------------------------------------------- flow Euler is DDIM; the flow's SDE

def _matched_flow_times(grid):
    """The flow time of each timestep's level, read as ddim_step reads it (alpha_bar_at), and s = 0 for t = -1."""
    from diffusion_lib.objectives import flow_time_for_alpha_bar
    return [float(flow_time_for_alpha_bar(samplers.alpha_bar_at(SCHEDULE, t))) for t in [*grid, -1]]


@pytest.mark.parametrize("num_steps", [2, 5, 10, 20])
def test_flow_euler_is_ddim_on_the_matched_grid(num_steps):
    """Float64, the same eps model: DDIM over a grid of timesteps, and flow Euler over the flow times of the same
    noise levels (sigma = s / (1 - s)) with the velocity u = (eps - x_s) / (1 - s) that eps implies at x_s = c_s x_t,
    end in the same place. Each flow Euler step is one DDIM step in xbar = x_s / (1 - s)."""
    from diffusion_lib.objectives import flow_as_vp, flow_velocity_from_eps
    grid = samplers.flow_matched_timesteps(num_steps, SCHEDULE)
    x = x_T(B=3, seed=7)
    ddim = final(ddim_sample_progressive(gaussian_eps, x, SCHEDULE, timesteps=grid))
    s_grid = _matched_flow_times(grid)
    scale = lambda s: float(flow_as_vp(torch.tensor(s, dtype=torch.float64))[0])   # noqa: E731  c_s
    x_s = scale(s_grid[0]) * x
    for t, s, s_prev in zip(grid, s_grid, s_grid[1:]):
        eps = gaussian_eps(x_s / scale(s), torch.full((3,), t))                     # the eps model at x_t = x_s / c_s
        x_s = samplers.flow_euler_update(x_s, flow_velocity_from_eps(eps, x_s, s), s, s_prev)
    assert torch.allclose(x_s, ddim, rtol=0, atol=1e-10), float((x_s - ddim).abs().max())
    # and not by accident: on DDIM's own (even) grid the end differs
    assert (final(ddim_sample_progressive(gaussian_eps, x, SCHEDULE, num_steps=num_steps)) - ddim).abs().max() > 1e-3


def test_one_flow_euler_step_is_one_ddim_step_in_xbar_and_sigma():
    """x_{s'} / (1 - s') = x_s / (1 - s) + (sigma' - sigma) eps, for any velocity u and eps = x_s + (1 - s) u."""
    from diffusion_lib.objectives import eps_from_flow_velocity, flow_as_ve
    x, u = x_T(seed=8), x_T(seed=9)
    for s, s_prev in [(0.99, 0.5), (0.5, 0.49), (0.3, 0.01), (0.2, 0.0)]:
        xbar, sigma = flow_as_ve(x, s)
        xbar_prev, sigma_prev = flow_as_ve(samplers.flow_euler_update(x, u, s, s_prev), s_prev)
        assert torch.allclose(xbar_prev, xbar + (sigma_prev - sigma) * eps_from_flow_velocity(u, x, s), atol=1e-12)


def test_flow_matched_timesteps():
    assert samplers.flow_matched_timesteps(5, SCHEDULE) == [999, 527, 338, 187, 73]
    for n in (1, 2, 10, 100):
        grid = samplers.flow_matched_timesteps(n, SCHEDULE)
        assert len(grid) == n and grid[0] == 999
        flow_s = [(t + 1) / 1000 for t in samplers.flow_timesteps(n, 1000)]
        for t, s in zip(grid[1:], flow_s[1:]):           # the nearest level: its neighbours are further away
            target = 2 * torch.log(torch.tensor((1 - s) / s, dtype=torch.float64))
            gaps = [abs(float(SCHEDULE.log_snr[k]) - float(target)) for k in (t - 1, t, t + 1) if 0 <= k < 1000]
            assert min(gaps) == abs(float(SCHEDULE.log_snr[t]) - float(target))
    with pytest.raises(ValueError, match="too fine"):
        samplers.flow_matched_timesteps(500, SCHEDULE)
    with pytest.raises(ValueError, match="strictly decreasing"):
        ddim_sample_progressive(gaussian_eps, x_T(), SCHEDULE, timesteps=[500, 700, 0])


def test_flow_sde_step_is_the_ddpm_step_under_the_change_of_variables():
    """In x_t = x_s / c_s at the matched levels, a flow SDE step is DDIM's eta = 1 step (DDPM's posterior draw at
    x0_pred) with the same z; from pure noise (s = 1) it draws (1 - s') x0_pred + s' z."""
    from diffusion_lib.objectives import eps_from_flow_velocity, flow_as_vp, flow_velocity_from_eps
    x, e, z = x_T(seed=10), x_T(seed=11), x_T(seed=12)
    for t, t_prev in [(999, 700), (700, 699), (400, 120), (120, 0)]:
        s, s_prev = _matched_flow_times([t, t_prev])[:2]
        c, c_prev = (float(flow_as_vp(torch.tensor(v, dtype=torch.float64))[0]) for v in (s, s_prev))
        ddpm_prev, ddpm_x0 = ddim_step(x, e, t, t_prev, SCHEDULE, z, eta=1.0)
        x_prev, x0_pred = samplers.flow_sde_update(c * x, flow_velocity_from_eps(e, c * x, s), s, s_prev, z)
        assert torch.allclose(x_prev / c_prev, ddpm_prev, atol=1e-10) and torch.allclose(x0_pred, ddpm_x0, atol=1e-10)
    u = x_T(seed=13)
    first, x0_pred = samplers.flow_sde_update(x, u, 1.0, 0.8, z)
    assert torch.allclose(first, 0.2 * (x - u) + 0.8 * z, atol=1e-12)
    assert torch.allclose(samplers.flow_sde_update(x, u, 0.3, 0.0, z)[0], x - 0.3 * u, atol=1e-12)   # the last step
    with pytest.raises(ValueError, match="towards the data"):
        samplers.flow_sde_update(x, u, 0.3, 0.5, z)
    # a small step: the mean moves by -h (u + eps / (1 - s)), the score entering twice, and the noise is sqrt(2 s h / (1 - s))
    s, h = 0.4, 1e-6
    mean, _ = samplers.flow_sde_update(x, u, s, s - h)
    drift = -(u + eps_from_flow_velocity(u, x, s) / (1 - s))
    assert torch.allclose((mean - x) / h, drift, rtol=1e-4, atol=1e-4)
    spread = (samplers.flow_sde_update(x, u, s, s - h, z)[0] - mean) / z
    assert torch.allclose(spread, torch.full_like(spread, (2 * s * h / (1 - s)) ** 0.5), rtol=1e-4)


MU, S = 0.4, 0.3     # Gaussian data N(MU, S^2) per pixel: the flow's exact velocity and marginals are known


def gaussian_velocity(x, t, T=1000):
    s = ((t.double() + 1) / T).reshape(-1, 1, 1, 1)
    return -MU + (s - (1 - s) * S ** 2) / ((1 - s) ** 2 * S ** 2 + s ** 2) * (x - (1 - s) * MU)


def _sde_marginals(num_steps):
    """Gaussian data: each flow SDE step is affine in (x, z), x' = A x + c + b z, so the chain's state stays Gaussian.
    Read A, c and b off the library's step and push the mean and variance of x_1 ~ N(0, 1) through the chain:
    [(s, mean, std)] after every step."""
    out, mean, var = [], 0.0, 1.0
    grid = [(t + 1) / 1000 for t in samplers.flow_timesteps(num_steps, 1000)] + [0.0]
    for s, s_prev in zip(grid, grid[1:]):
        x = torch.tensor([0.0, 1.0], dtype=torch.float64).reshape(2, 1, 1, 1)
        u = gaussian_velocity(x, torch.full((2,), round(s * 1000) - 1))
        y = samplers.flow_sde_update(x, u, s, s_prev, torch.zeros_like(x))[0].flatten()
        b = float(samplers.flow_sde_update(x, u, s, s_prev, torch.ones_like(x))[0].flatten()[0] - y[0])
        A, c = float(y[1] - y[0]), float(y[0])
        mean, var = A * mean + c, A * A * var + b * b
        out.append((s_prev, mean, var ** 0.5))
    return out


def test_flow_sde_sampler_with_the_exact_velocity_follows_the_exact_marginals():
    """With the exact velocity, the chain's state at each flow time s has the path's mean (1 - s) MU exactly, and
    its spread tends to the path's sqrt((1 - s)^2 S^2 + s^2) as the steps shrink, first order like DDPM's (a step
    from the predicted mean x0_pred leaves out x_0's own spread given x_s): measured, the worst gap along the
    chain is 0.081, 0.024, 0.0070 and 0.0015 with 10, 50, 200 and 1000 steps."""
    worst = {}
    for n in (10, 50, 200, 1000):
        marginals = _sde_marginals(n)
        for s, mean, std in marginals:
            assert abs(mean - (1 - s) * MU) < 1e-10, (n, s, mean)
        worst[n] = max(abs(std - ((1 - s) ** 2 * S ** 2 + s ** 2) ** 0.5) for s, _, std in marginals)
    assert worst[1000] < 2e-3 and 3 < worst[10] / worst[50] < 5 and 3 < worst[200] / worst[1000] < 6, worst


def test_flow_sde_sampler_draws_from_the_marginals():
    """The chain itself, 1000 steps from x_1 ~ N(0, I), 16,000 numbers: at each flow time its sample mean and
    spread are the path's, to three standard errors (plus the 1000-step gap above); another seed, another sample;
    one network evaluation per step."""
    x = torch.randn((4000, 1, 2, 2), generator=gen(14), dtype=torch.float64)
    calls = []
    model = lambda x, t: calls.append(1) or gaussian_velocity(x, t)  # noqa: E731
    steps = list(samplers.flow_sde_sample_progressive(model, x, SCHEDULE, num_steps=1000, generator=gen(15)))
    assert len(calls) == 1000 and [(s.t, s.t_next) for s in steps] == timestep_pairs(samplers.ddpm_timesteps(1000))
    for step in steps[::111] + steps[-1:]:
        s = (step.t_next + 1) / 1000
        mean, std = (1 - s) * MU, ((1 - s) ** 2 * S ** 2 + s ** 2) ** 0.5
        assert abs(float(step.x_next.mean()) - mean) < 3 * std / 126, (s, float(step.x_next.mean()), mean)
        assert abs(float(step.x_next.std()) - std) < 3 * std / 126 / 2 ** 0.5 + 2e-3, (s, float(step.x_next.std()))
    other = final(samplers.flow_sde_sample_progressive(model, x[:8], SCHEDULE, num_steps=20, generator=gen(16)))
    again = final(samplers.flow_sde_sample_progressive(model, x[:8], SCHEDULE, num_steps=20, generator=gen(17)))
    assert (other - again).abs().max() > 0.1


def test_the_flow_samplers_and_the_matched_grid_run_on_cuda():
    """Under the tests' CUDA-rules emulation: the flow SDE sampler (its noise from a CUDA generator), flow Euler and
    DDIM on the flow-matched grid run on a CUDA model and CUDA noise without mixing devices, and match the CPU
    (the SDE with the same draws, passed in step by step)."""
    from cuda_emulation import EmulatedCuda
    from diffusion_lib.objectives import eps_from_flow_velocity, flow_velocity_from_eps, score_from_flow_velocity
    model = tiny_eps(seed=4, dtype=torch.float64)
    x = x_T(seed=20)
    grid = samplers.flow_matched_timesteps(5, SCHEDULE)
    expected_ddim = final(ddim_sample_progressive(model, x, SCHEDULE, timesteps=grid))
    expected_euler = final(samplers.flow_euler_sample_progressive(model, x, SCHEDULE, num_steps=5))
    with EmulatedCuda():
        cuda_model, x_cuda = model.to("cuda"), x.to("cuda")
        ddim = final(ddim_sample_progressive(cuda_model, x_cuda, SCHEDULE, timesteps=grid)).cpu()
        euler = final(samplers.flow_euler_sample_progressive(cuda_model, x_cuda, SCHEDULE, num_steps=5)).cpu()
        sde = final(samplers.flow_sde_sample_progressive(cuda_model, x_cuda, SCHEDULE, num_steps=5,
                                                         generator=torch.Generator(device="cuda").manual_seed(3)))
        s = torch.full((2,), 0.4, dtype=torch.float64, device="cuda")
        u = cuda_model(x_cuda, torch.full((2,), 399, device="cuda"))
        eps = eps_from_flow_velocity(u, x_cuda, s)
        assert torch.allclose(flow_velocity_from_eps(eps, x_cuda, s).cpu(), u.cpu(), atol=1e-5)
        assert score_from_flow_velocity(u, x_cuda, s).device.type == "cuda" and sde.device.type == "cuda"
    assert torch.allclose(ddim, expected_ddim, atol=1e-5) and torch.allclose(euler, expected_euler, atol=1e-5)


# ----------------------------------------------------------------------------- NaN or inf stops the chain (issue 22)

def test_a_nan_on_an_emulated_gpu_is_reported_at_the_end_without_a_read_per_step():
    """On a GPU the finiteness flags stay on the device: no value is read back per step (the chain is not slowed),
    and the first bad step is named when the chain ends."""
    import math
    from cuda_emulation import EmulatedCuda
    from diffusion_lib.samplers import NotFiniteError, ddim_sample_progressive

    def nan_below_10(x, t):
        return torch.full_like(x, math.nan) if int(t[0].cpu()) < 10 else 0.1 * x

    schedule = make_schedule("linear", 20)
    with EmulatedCuda() as cuda:
        x = torch.randn(2, 1, 8, 8).to("cuda")
        steps = ddim_sample_progressive(lambda x, t: 0.1 * x, x, schedule, 5)
        before = cuda.snapshot()
        for _ in steps:                                               # a finite chain: no read, no error
            pass
        assert cuda.snapshot()["d2h"] - before["d2h"] == 1            # the flags, read once at the end
        seen = []
        with pytest.raises(NotFiniteError, match=r"DDIM stopped at step 4 of 5 \(t = 5 -> 0\)"):
            for step in ddim_sample_progressive(nan_below_10, x, schedule, 5):
                seen.append(step.t)
    assert seen == [19, 14, 10, 5, 0]                                 # on a GPU it is found when the chain ends


def test_the_per_step_finiteness_flag_agrees_with_an_entrywise_check():
    """_sum_is_finite (the sum of the state) against torch.isfinite(x).all(): the same answer with a NaN, +inf or -inf
    anywhere, and with none."""
    g = torch.Generator().manual_seed(0)
    for trial in range(40):
        x = torch.randn((3, 1, 6, 6), generator=g)
        bad = trial % 4                                    # 0: none, 1: NaN, 2: +inf, 3: -inf
        if bad:
            i = int(torch.randint(x.numel(), (1,), generator=g))
            x.view(-1)[i] = (float("nan"), float("inf"), float("-inf"))[bad - 1]
        assert bool(samplers._sum_is_finite(x)) == bool(torch.isfinite(x).all()), (trial, bad)


def test_a_chain_of_huge_but_finite_states_is_not_stopped():
    """Two entries of 2e38 sum past float32's range: the cheap flag says "not finite", the CPU chain checks every entry
    and goes on; a real infinity still stops it."""
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = 2e38
    assert not bool(samplers._sum_is_finite(x)) and bool(torch.isfinite(x).all())
    zero_velocity = lambda x, t: torch.zeros_like(x)                   # noqa: E731 (the state stays where it is)
    out = samplers.final(samplers.flow_euler_sample_progressive(zero_velocity, x, make_schedule("linear", 20), 3))
    assert torch.equal(out, x)
    with pytest.raises(samplers.NotFiniteError, match="flow Euler stopped at step 1 of 3"):
        samplers.final(samplers.flow_euler_sample_progressive(lambda x, t: torch.full_like(x, float("inf")), x,
                                                              make_schedule("linear", 20), 3))
