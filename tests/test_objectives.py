"""Objectives: the eps / x0 / v conversions as exact identities, each loss lowest at the conversion of the
closed-form optimal denoiser for Gaussian data, min-SNR weights by hand, and the objective in checkpoints."""
import pytest
import torch

from diffusion_lib.backbones import UNet
from diffusion_lib.checkpoints import load_checkpoint, load_model
from diffusion_lib.forward import predict_eps_from_x0, predict_x0_from_eps, q_sample
from diffusion_lib.guidance import cfg_eps_model
from diffusion_lib.objectives import (OBJECTIVES, EpsFromOutput, diffusion_loss, eps_from_flow_velocity,
                                      eps_model_for, flow_as_ve, flow_as_vp, flow_interpolant,
                                      flow_time_for_alpha_bar, flow_velocity_from_eps, score_from_flow_velocity, flow_time, get_objective, loss_weights, min_snr_weight,
                                      objective_loss, predict_eps_from_v, predict_x0_from_v, v_from_flow_velocity,
                                      v_target)
from diffusion_lib.samplers import final, flow_euler_sample_progressive, flow_heun_sample_progressive
from diffusion_lib.pretrained import export_for_sampling
from diffusion_lib.schedules import make_schedule
from diffusion_lib import toy
from diffusion_lib.training import TrainConfig, Trainer

from _tiny import one_thread  # noqa: F401 (autouse)

SCHEDULE = make_schedule("linear")
VP_OBJECTIVES = ["eps", "v", "x0"]     # the DDPM family's targets on x_t = sqrt(abar) x0 + sqrt(1 - abar) eps
COSINE = make_schedule("cosine")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def batch(B=6, seed=0):
    x0 = torch.rand((B, 1, 4, 4), generator=gen(seed), dtype=torch.float64) * 2 - 1
    eps = torch.randn(x0.shape, generator=gen(seed + 1), dtype=torch.float64)
    t = torch.tensor([0, 1, 250, 500, 998, 999])[:B]
    return x0, eps, t


def coefficients(schedule, t):
    """sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t) as (B, 1, 1, 1) float64, from the schedule's alpha_bar alone."""
    alpha_bar = schedule.alpha_bar.double()[t].reshape(-1, 1, 1, 1)
    return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()


# ----------------------------------------------------------------------------- identities

@pytest.mark.parametrize("schedule", [SCHEDULE, COSINE], ids=["linear", "cosine"])
def test_conversions_between_eps_x0_and_v_are_exact(schedule):
    x0, eps, t = batch()
    a, b = coefficients(schedule, t)
    x_t = q_sample(x0, t, schedule, eps)
    v = v_target(x0, eps, t, schedule)
    assert torch.allclose(v, a * eps - b * x0, atol=1e-6)                         # the definition, Salimans & Ho
    assert torch.allclose(predict_eps_from_v(x_t, t, v, schedule), eps, atol=1e-5)
    assert torch.allclose(predict_x0_from_v(x_t, t, v, schedule), x0, atol=1e-5)
    assert torch.allclose(predict_x0_from_eps(x_t, t, eps, schedule)[t < 999], x0[t < 999], atol=1e-4)
    assert torch.allclose(predict_eps_from_x0(x_t, t, x0, schedule)[t > 1], eps[t > 1], atol=1e-4)
    # v is x_t turned by the angle phi with (cos phi, sin phi) = (a, b): |x_t|^2 + |v|^2 = |x0|^2 + |eps|^2
    assert torch.allclose(x_t.square() + v.square(), x0.square() + eps.square(), atol=1e-5)


@pytest.mark.parametrize("name", VP_OBJECTIVES)
def test_each_objectives_to_eps_inverts_its_target(name):
    objective = get_objective(name)
    x0, eps, t = batch()
    x_t = objective.noisy_input(x0, t, eps, SCHEDULE)
    keep = t > 1 if name == "x0" else t >= 0          # x0 -> eps divides by sqrt(1 - alpha_bar_0) ~ 0.01
    target = objective.target(x0, t, eps, SCHEDULE)
    assert torch.allclose(objective.to_eps(target, x_t, t, SCHEDULE)[keep], eps[keep], atol=1e-4)


def test_unknown_objective_and_weighting():
    with pytest.raises(ValueError, match="unknown objective 'score'.*'eps', 'flow', 'meanflow', 'v', 'x0'"):
        get_objective("score")
    with pytest.raises(ValueError, match="unknown loss weighting 'p2'"):
        loss_weights(torch.tensor([1]), SCHEDULE, "eps", "p2")
    with pytest.raises(ValueError, match="gamma must be > 0"):
        min_snr_weight(torch.tensor([1]), SCHEDULE, "eps", gamma=0.0)
    with pytest.raises(ValueError, match="reduction must be 'mean'"):
        objective_loss(lambda x, t, y: x, torch.zeros(1, 1, 2, 2), SCHEDULE, reduction="sum")


# ----------------------------------------------------------------------------- optimal denoiser for Gaussian data

MU, S = 0.3, 0.5     # data: every pixel independent N(MU, S^2)


def posterior_mean_x0(x_t, a, b):
    """E[x_0 | x_t] for x_0 ~ N(MU, S^2 I), x_t = a x_0 + b eps: MU + a S^2 / (a^2 S^2 + b^2) (x_t - a MU)."""
    return MU + a * S ** 2 / (a ** 2 * S ** 2 + b ** 2) * (x_t - a * MU)


def network_from_x0_estimate(name, gain):
    """A 'network' for objective `name` whose output is the objective's target computed, by hand here, from
    the estimate x0_hat = E[x0 | x_t] with its slope scaled by `gain` (gain = 1: the optimum)."""
    def net(x_t, t, y=None):
        a, b = coefficients(SCHEDULE, t)
        x0_hat = MU + gain * (posterior_mean_x0(x_t, a, b) - MU)
        eps_hat = (x_t - a * x0_hat) / b
        return {"x0": x0_hat, "eps": eps_hat, "v": a * eps_hat - b * x0_hat}[name]
    return net


@pytest.mark.parametrize("name", VP_OBJECTIVES)
@pytest.mark.parametrize("weighting", ["none", "min_snr"])
def test_each_loss_is_lowest_at_the_closed_form_optimum(name, weighting):
    g = gen(11)
    n = 4000
    x0 = MU + S * torch.randn((n, 1, 2, 2), generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.randint(1, 1000, (n,), generator=g)
    weights = loss_weights(t, SCHEDULE, name, weighting)

    def loss(gain):
        return float(objective_loss(network_from_x0_estimate(name, gain), x0, SCHEDULE, name, t, eps,
                                    weights=weights))
    best = loss(1.0)
    for gain in (0.8, 0.9, 0.97, 1.03, 1.1, 1.25):
        assert loss(gain) > best, (name, weighting, gain)


@pytest.mark.parametrize("name", VP_OBJECTIVES)
def test_eps_model_for_turns_the_optimum_into_the_optimal_eps(name):
    x0 = MU + S * torch.randn((5, 1, 2, 2), generator=gen(2), dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=gen(3), dtype=torch.float64)
    t = torch.tensor([3, 100, 400, 700, 990])
    x_t = q_sample(x0, t, SCHEDULE, eps)
    a, b = coefficients(SCHEDULE, t)
    optimal_eps = (x_t - a * posterior_mean_x0(x_t, a, b)) / b                     # E[eps | x_t]
    model = eps_model_for(network_from_x0_estimate(name, 1.0), name, SCHEDULE)
    assert torch.allclose(model(x_t, t), optimal_eps, atol=1e-5)


# ----------------------------------------------------------------------------- weighting

def test_min_snr_weights_by_hand():
    t = torch.tensor([0, 100, 300, 500, 999])
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t]
    snr = alpha_bar / (1 - alpha_bar)
    capped = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64))
    hand = {"eps": capped / snr, "x0": capped, "v": capped / (snr + 1)}
    for name, expected in hand.items():
        got = min_snr_weight(t, SCHEDULE, name, gamma=5.0)
        assert torch.allclose(got.double(), expected, rtol=1e-4), name
    # at low noise (SNR > 5) eps's weight is 5 / SNR < 1; at high noise (SNR < 5) it is 1
    eps_w = min_snr_weight(t, SCHEDULE, "eps")
    assert eps_w[0] < 0.01 and torch.allclose(eps_w[-1], torch.tensor(1.0))
    assert loss_weights(t, SCHEDULE, "eps", "none") is None


def test_min_snr_weights_of_flow_matching_use_the_straight_path_s_snr_by_hand():
    """T = 4, gamma = 5: s = (t + 1) / 4 = 1/4, 1/2, 3/4, 1; the path x_s = (1 - s) x_0 + s eps has SNR (1 - s)^2 / s^2
    = 9, 1, 1/9, 0; the velocity's weight is min(SNR, 5) * s^2 (|d x_0|^2 = s^2 |d u|^2):
    5/16, 1/4, 1/16, 0. The beta schedule's name plays no part (the DDPM schedule's SNR did before issue 22)."""
    t = torch.arange(4)
    hand = torch.tensor([5 / 16, 1 / 4, 1 / 16, 0.0])
    for name in ("linear", "cosine"):
        got = min_snr_weight(t, make_schedule(name, 4), "flow", gamma=5.0)
        assert torch.allclose(got, hand, atol=1e-7), (name, got)
    assert torch.allclose(get_objective("flow").snr(t, make_schedule("linear", 4)), torch.tensor([9.0, 1.0, 1 / 9, 0.0]))


@pytest.mark.parametrize("t", [-1, 1000])
def test_min_snr_weight_refuses_timesteps_outside_the_schedule(t):
    with pytest.raises(ValueError, match=r"t must lie in \[0, 999\]"):
        min_snr_weight(torch.tensor([t]), SCHEDULE, "eps")


def test_weights_multiply_the_per_image_loss():
    x0, eps, t = batch()
    net = lambda x, tt, y=None: torch.zeros_like(x)  # noqa: E731
    w = torch.arange(1, 7, dtype=torch.float64)
    plain = objective_loss(net, x0, SCHEDULE, "v", t, eps, reduction="none")
    weighted = objective_loss(net, x0, SCHEDULE, "v", t, eps, weights=w, reduction="none")
    assert torch.allclose(weighted, w * plain)
    assert torch.allclose(plain, v_target(x0, eps, t, SCHEDULE).square().flatten(1).mean(1))
    assert torch.allclose(diffusion_loss(net, x0, SCHEDULE, t, eps), eps.square().mean())


# ----------------------------------------------------------------------------- training and checkpoints

def tiny_config(**kw):
    return TrainConfig(backbone="unet", backbone_kwargs={"base": 8, "mults": [1, 1, 1]}, steps=2, batch_size=4,
                       checkpoint_every=1, **kw)


@pytest.mark.parametrize("name", ["x0", "v"])
def test_objective_round_trip_through_a_checkpoint(tmp_path, name):
    trainer = Trainer(tiny_config(objective=name, loss_weighting="min_snr", min_snr_gamma=3.0))
    images = torch.rand((4, 1, 28, 28), generator=gen(0)) * 2 - 1
    trainer.train_step(images)
    path = trainer.save(tmp_path / "last.pt")
    checkpoint = load_checkpoint(path)
    assert checkpoint["objective"] == name and checkpoint["dataset"] == "mnist"
    assert checkpoint["config"]["loss_weighting"] == "min_snr" and checkpoint["config"]["min_snr_gamma"] == 3.0
    for file in (path, export_for_sampling(path, tmp_path / "shipped.pt")):
        model = load_model(file)                                     # the EMA weights, as samplers get them
        assert isinstance(model, EpsFromOutput) and model.objective == name and model.output == "eps"
        x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 800])
        with torch.no_grad():
            expected = get_objective(name).to_eps(trainer.ema.module.eval()(x, t), x, t, SCHEDULE)
            assert torch.allclose(model(x, t), expected, atol=1e-5)


def test_a_checkpoint_without_objective_loads_as_eps(tmp_path):
    trainer = Trainer(tiny_config())
    state = trainer.state_dict()
    del state["objective"], state["dataset"]
    for key in ("objective", "loss_weighting", "min_snr_gamma", "dataset"):
        del state["config"][key]
    from diffusion_lib.checkpoints import save_checkpoint
    path = save_checkpoint(state, tmp_path / "old.pt")
    model = load_model(path, ema=False)
    assert isinstance(model, UNet)                                   # the network itself: it predicts eps


def test_guidance_works_on_a_converted_network():
    torch.manual_seed(0)
    net = UNet(base=8, mults=(1, 1, 1), num_classes=10).eval()
    model = eps_model_for(net, "v", SCHEDULE)
    assert model.num_classes == 10 and model.null_label == net.null_label
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor([5, 900]), torch.tensor([3, 7])
    with torch.no_grad():
        guided = cfg_eps_model(model, y, 2.0)(x, t)
        cond = predict_eps_from_v(x, t, net(x, t, y), SCHEDULE)
        uncond = predict_eps_from_v(x, t, net(x, t, torch.full_like(y, net.null_label)), SCHEDULE)
    assert torch.allclose(guided, uncond + 2.0 * (cond - uncond), atol=1e-5)


def test_the_training_loop_is_the_same_for_every_objective():
    """Same seed: the same t, noise and batch order; only the target differs, so the eps run is what it was."""
    images = torch.rand((4, 1, 28, 28), generator=gen(0)) * 2 - 1
    losses = {}
    for name in sorted(OBJECTIVES):
        if name == "meanflow":                                          # MeanFlow's second time input
            trainer = Trainer(TrainConfig(backbone="unet", backbone_kwargs={"base": 8, "mults": [1, 1, 1], "interval": True},
                                          steps=2, batch_size=4, checkpoint_every=1, objective=name))
        else:
            trainer = Trainer(tiny_config(objective=name))
        losses[name] = trainer.train_step(images)
    assert len(set(losses.values())) == len(OBJECTIVES)              # a different target each
    trainer = Trainer(tiny_config())
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (4,), generator=g)
    noise = torch.randn(images.shape, generator=g)
    with torch.no_grad():
        expected = float(diffusion_loss(trainer.model, images, SCHEDULE, t, noise))
    assert losses["eps"] == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------- flow matching

def flow_batch():
    x0 = torch.rand((5, 1, 3, 3), generator=gen(20), dtype=torch.float64) * 2 - 1
    eps = torch.randn(x0.shape, generator=gen(21), dtype=torch.float64)
    s = torch.tensor([0.001, 0.2, 0.5, 0.8, 1.0], dtype=torch.float64)
    return x0, eps, s


def test_flow_path_is_the_vp_path_rescaled():
    """x_s / c_s = sqrt(abar) x_0 + sqrt(1 - abar) eps with sqrt(abar) = (1 - s) / c_s: the same Gaussian path."""
    x0, eps, s = flow_batch()
    x_s = flow_interpolant(x0, eps, s)
    assert torch.allclose(x_s, (1 - s).reshape(-1, 1, 1, 1) * x0 + s.reshape(-1, 1, 1, 1) * eps)
    c, a = flow_as_vp(s)
    c, a = c.reshape(-1, 1, 1, 1), a.reshape(-1, 1, 1, 1)
    assert torch.allclose(x_s / c, a * x0 + (1 - a ** 2).sqrt() * eps, atol=1e-12)


def test_flow_velocity_converts_to_v_prediction():
    x0, eps, s = flow_batch()
    x_s = flow_interpolant(x0, eps, s)
    c, a = flow_as_vp(s)
    a, b = a.reshape(-1, 1, 1, 1), (1 - a ** 2).sqrt().reshape(-1, 1, 1, 1)
    assert torch.allclose(v_from_flow_velocity(eps - x0, x_s, s), a * eps - b * x0, atol=1e-12)


def test_flow_objective_trains_on_the_straight_path():
    flow = get_objective("flow")
    x0, eps, _ = flow_batch()
    t = torch.tensor([0, 199, 499, 799, 999])
    assert torch.allclose(flow_time(t, 1000), torch.tensor([0.001, 0.2, 0.5, 0.8, 1.0]))
    assert torch.allclose(flow.noisy_input(x0, t, eps, SCHEDULE), flow_interpolant(x0, eps, flow_time(t, 1000)))
    assert torch.equal(flow.target(x0, t, eps, SCHEDULE), eps - x0)
    net = lambda x, tt, y=None: torch.zeros_like(x)  # noqa: E731
    loss = objective_loss(net, x0, SCHEDULE, "flow", t, eps, reduction="none")
    assert torch.allclose(loss, (eps - x0).square().flatten(1).mean(1))
    with pytest.raises(ValueError, match="flow_euler_sample_progressive"):
        flow.to_eps(eps, x0, t, SCHEDULE)


def test_flow_times_drawn_logit_normal_follow_its_quantiles():
    """t_mean, t_std: s = sigmoid(t_mean + t_std n). The flow time of the drawn code timestep, (t + 1) / T, is s
    rounded up to the grid, so the share of draws at or below sigmoid(t_mean + z t_std) is Phi(z) (to 1 / T)."""
    flow = get_objective("flow", t_mean=-0.5, t_std=0.8)
    t = flow.draw_t(50_000, SCHEDULE, gen(4))
    assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) <= 999
    s = flow_time(t, 1000)
    for z, phi in ((-1.0, 0.158655), (0.0, 0.5), (1.5, 0.933193)):
        edge = torch.sigmoid(torch.tensor(-0.5 + z * 0.8))
        assert abs(float((s <= edge + 1e-3).double().mean()) - phi) < 0.01, z     # sd of a share <= 0.0023
    uniform = get_objective("flow").draw_t(50_000, SCHEDULE, gen(4))
    assert abs(float(flow_time(uniform, 1000).median()) - 0.5) < 0.01
    for bad in ({"t_std": 0}, {"t_mean": "0"}, {"t_mean": float("nan")}):
        with pytest.raises(ValueError, match="t_std|t_mean"):
            get_objective("flow", **bad)


FLOW_MU, FLOW_S = 0.4, 0.3    # data N(FLOW_MU, FLOW_S^2) per pixel


def exact_velocity(x, t, T=1000):
    """E[eps - x_0 | x_s] for x_0 ~ N(MU, S^2), eps ~ N(0, 1), x_s = (1 - s) x_0 + s eps (linear: Gaussian)."""
    s = flow_time(t, T).double().reshape(-1, 1, 1, 1)
    var = (1 - s) ** 2 * FLOW_S ** 2 + s ** 2
    cov = s - (1 - s) * FLOW_S ** 2                                  # Cov(eps - x_0, x_s) per pixel
    return -FLOW_MU + cov / var * (x - (1 - s) * FLOW_MU)


@pytest.mark.parametrize("sampler,steps,tol", [(flow_euler_sample_progressive, 200, 5e-3),
                                                (flow_heun_sample_progressive, 50, 1e-3)], ids=["euler", "heun"])
def test_flow_sampler_with_the_exact_velocity_carries_noise_to_the_data(sampler, steps, tol):
    """The exact velocity field's flow is affine in x: x_0 = A x_1 + B with A = S, B = MU (it carries N(0, 1)
    to N(MU, S^2)). Push x_1 = 0 and x_1 = 1 through the sampler and read A and B off."""
    x_1 = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)]).double()
    out = final(sampler(exact_velocity, x_1, SCHEDULE, num_steps=steps))
    B_, A_ = out[0], out[1] - out[0]
    assert torch.allclose(A_, torch.full_like(A_, FLOW_S), atol=tol), float(A_.mean())
    assert torch.allclose(B_, torch.full_like(B_, FLOW_MU), atol=tol), float(B_.mean())


def test_flow_loss_is_lowest_at_the_exact_velocity():
    g = gen(30)
    n = 20000
    x0 = FLOW_MU + FLOW_S * torch.randn((n, 1, 2, 2), generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.randint(0, 1000, (n,), generator=g)

    def loss(gain):
        net = lambda x, tt, y=None: -FLOW_MU + gain * (exact_velocity(x, tt) + FLOW_MU)  # noqa: E731
        return float(objective_loss(net, x0, SCHEDULE, "flow", t, eps))
    best = loss(1.0)
    assert all(loss(gain) > best for gain in (0.9, 0.95, 1.05, 1.1))


def test_a_flow_checkpoint_loads_as_the_velocity_network(tmp_path):
    trainer = Trainer(tiny_config(objective="flow"))
    trainer.train_step(torch.rand((4, 1, 28, 28), generator=gen(0)) * 2 - 1)
    model = load_model(trainer.save(tmp_path / "last.pt"))
    assert isinstance(model, UNet)
    x = torch.randn(2, 1, 28, 28)
    steps = list(flow_euler_sample_progressive(model, x, SCHEDULE, num_steps=3))
    assert [(s.t, s.t_next) for s in steps] == [(999, 666), (666, 332), (332, -1)]


# ----------------------------------------------------------------------------- velocity, noise and score in one line

@pytest.mark.parametrize("s", [0.05, 0.25, 0.5, 0.8, 0.97])
def test_velocity_noise_and_score_are_one_quantity_on_the_toy(s):
    """On the toy (float64), from the closed-form u* = E[eps - x_0 | x_s] (dl.toy.exact_velocity):
    eps* = x_s + (1 - s) u* is notebook 10's exact noise prediction at the DDPM state x_s / c_s and level
    alpha_bar(s) (computed from that path's own score); -eps* / s is the score of p_s (computed from the density
    of the flow's mixture); and u* comes back from eps*."""
    mixture = toy.ring_mixture().to(torch.zeros(1, dtype=torch.float64))
    x = toy.as_points(torch.randn((64, 2), generator=gen(40), dtype=torch.float64) * 0.8)
    u = toy.exact_velocity(mixture, x, s)
    c, sqrt_ab = flow_as_vp(torch.tensor(s, dtype=torch.float64))
    alpha_bar = float(sqrt_ab) ** 2
    eps_on_ddpm_path = -(1 - alpha_bar) ** 0.5 * toy.q_t_score(mixture, x / c, alpha_bar)
    eps = eps_from_flow_velocity(u, x, s)
    assert torch.allclose(eps, eps_on_ddpm_path, atol=1e-10)
    assert torch.allclose(score_from_flow_velocity(u, x, s), toy.q_t_score(toy.flow_mixture(mixture, s), x), atol=1e-9)
    assert torch.allclose(flow_velocity_from_eps(eps, x, s), u, atol=1e-10)
    assert abs(float(flow_time_for_alpha_bar(alpha_bar)) - s) < 1e-12          # the level maps back to s
    xbar, sigma = flow_as_ve(x, s)                                              # notebook 10's xbar = x_0 + sigma eps
    assert abs(sigma - s / (1 - s)) < 1e-15 and torch.allclose(xbar * (1 - s), x)


def test_velocity_noise_and_score_per_image_and_at_the_ends():
    """s given per image broadcasts; eps does not determine u at s = 1, nor u the score at s = 0."""
    x0, eps, s = flow_batch()
    x_s = flow_interpolant(x0, eps, s)
    assert torch.allclose(eps_from_flow_velocity(eps - x0, x_s, s), eps, atol=1e-12)
    assert torch.allclose(flow_velocity_from_eps(eps[:4], x_s[:4], s[:4]), (eps - x0)[:4], atol=1e-9)
    with pytest.raises(ValueError, match="s = 1"):
        flow_velocity_from_eps(eps, x_s, s)
    with pytest.raises(ValueError, match="s = 0"):
        score_from_flow_velocity(eps - x0, x_s, 0.0)
    assert torch.allclose(flow_time_for_alpha_bar(torch.tensor([1.0, 0.5])), torch.tensor([0.0, 0.5],
                                                                                         dtype=torch.float64))
