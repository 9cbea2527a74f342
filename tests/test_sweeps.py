"""diffusion_lib.sweeps: seeding, the DDPM/DDIM wrappers and the sweep rows."""
import math

import pytest
import torch

from _tiny import one_thread, tiny_eps  # noqa: F401 (one_thread is autouse)
from diffusion_lib.backbones import UNet
from diffusion_lib.guidance import cfg_eps_model
from diffusion_lib.measure.metrics import MNISTClassifier, classifier_features, classify, relative_spread
from diffusion_lib.schedules import make_schedule
from diffusion_lib.measure.sweeps import (ddim_encode, ddim_grid, ddim_images, ddpm_images, eps_model_for, format_rows,
                                          guidance_sweep, score_row, steps_sweep, timed)


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("linear", 40)


def _noise(n=3, size=8, seed=0, dtype=torch.float64):
    return torch.randn((n, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_ddpm_images_is_ddim_eta1_on_the_full_grid_with_the_same_seed(schedule):
    model, x_T = tiny_eps(), _noise()
    ddpm = ddpm_images(model, x_T, schedule, seed=5)
    assert torch.allclose(ddpm, ddim_images(model, x_T, schedule, schedule.T, eta=1.0, seed=5), atol=1e-5)
    assert not torch.allclose(ddpm, ddpm_images(model, x_T, schedule, seed=6))          # the seed is the z stream
    assert not torch.allclose(ddpm, ddpm_images(model, x_T, schedule, variance="beta", seed=5))


def test_ddim_eta0_ignores_the_seed_and_eta1_does_not(schedule):
    model, x_T = tiny_eps(), _noise()
    assert torch.equal(ddim_images(model, x_T, schedule, 10, 0.0, seed=1), ddim_images(model, x_T, schedule, 10, 0.0, seed=2))
    assert not torch.allclose(ddim_images(model, x_T, schedule, 10, 1.0, seed=1),
                              ddim_images(model, x_T, schedule, 10, 1.0, seed=2))


def test_the_old_argument_order_is_refused_with_the_samplers_order(schedule):
    model, x_T = tiny_eps(), _noise()
    calls = [lambda: ddim_images(model, schedule, x_T, 5), lambda: ddpm_images(model, schedule, x_T),
             lambda: ddim_encode(model, schedule, x_T, 5), lambda: ddim_grid(model, schedule, x_T, [2], [0.0], progress=False)]
    for call in calls:
        with pytest.raises(TypeError, match=r"\(model, x_T, schedule, \.\.\.\).*got a Schedule where the images go"):
            call()


def test_eps_model_for_is_the_network_or_guidance():
    torch.manual_seed(0)
    model = UNet(base=8, num_classes=10).eval()
    assert eps_model_for(model) is model
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor([10, 900]), torch.tensor([3, 4])
    with torch.no_grad():
        assert torch.allclose(eps_model_for(model, y, 2.0)(x, t), cfg_eps_model(model, y, 2.0)(x, t))
        assert torch.allclose(eps_model_for(model, y)(x, t), model(x, t, y), atol=1e-5)   # w defaults to 1


def test_ddim_encode_walks_up_to_T_minus_1_and_decodes_back(schedule):
    model = tiny_eps()
    x0 = _noise(seed=3).clamp(-1, 1)
    trajectory = ddim_encode(model, x0, schedule, num_steps=schedule.T)
    assert trajectory.timesteps == list(range(-1, schedule.T - 1))       # states from the clean image (-1) up to T-2
    assert trajectory.x_t.shape == (schedule.T, 3, 1, 8, 8) and torch.equal(trajectory.x_t[0], x0)
    back = ddim_images(model, trajectory.sample, schedule, schedule.T, 0.0)
    assert (back - x0).abs().max() < 0.05


def _classifier_and_reference():
    torch.manual_seed(0)
    classifier = MNISTClassifier(width=4).eval()
    reference = torch.rand(40, 128, generator=torch.Generator().manual_seed(1))
    return classifier, reference


def test_steps_sweep_rows(schedule):
    classifier, reference = _classifier_and_reference()
    torch.manual_seed(0)
    model = UNet(base=8).eval()
    x_T = _noise(n=4, size=28, dtype=torch.float32)
    rows, images = steps_sweep(model, x_T, schedule, [2, 5], classifier, reference, progress=False)
    assert set(images) == {2, 5} and images[5].shape == x_T.shape
    assert [r["steps"] for r in rows] == [2, 5] and all(r["n"] == 4 and r["sampler"] == "DDIM" for r in rows)
    assert all(r["seconds"] > 0 and r["seconds_per_image"] == pytest.approx(r["seconds"] / 4) for r in rows)
    assert all(0 <= r["confident_share"] <= 1 and r["frechet_distance"] >= 0 for r in rows)
    grid = ddim_grid(model, x_T, schedule, [2, 5], [0.0, 1.0], progress=False)
    assert set(grid) == {(2, 0.0), (2, 1.0), (5, 0.0), (5, 1.0)}
    assert torch.equal(grid[(5, 0.0)], ddim_images(model, x_T, schedule, 5, 0.0))
    assert torch.equal(grid[(5, 0.0)], images[5])
    text = format_rows(rows, ["steps", "n", "confident_share"])
    assert text.splitlines()[0].split() == ["steps", "n", "confident_share"] and len(text.splitlines()) == 3


def test_guidance_sweep_rows_and_images(schedule):
    classifier, reference = _classifier_and_reference()
    torch.manual_seed(0)
    model = UNet(base=8, num_classes=10).eval()
    x_T = _noise(n=20, size=28, dtype=torch.float32)
    labels = torch.arange(20) % 10
    real_spread = torch.full((10,), 2.0)
    rows, images = guidance_sweep(model, x_T, schedule, labels, [0.0, 3.0], classifier, reference, real_spread,
                                  num_steps=3, progress=False)
    assert [r["w"] for r in rows] == [0.0, 3.0] and set(images) == {0.0, 3.0}
    assert all(r["sampler"] == "DDIM" for r in rows)
    assert torch.equal(images[3.0], ddim_images(model, x_T, schedule, 3, 0.0, 0, labels, 3.0))
    assert images[3.0].shape == (20, 1, 28, 28)
    assert not torch.allclose(images[0.0], images[3.0])
    for row, w in zip(rows, (0.0, 3.0)):
        assert 0 <= row["guided_accuracy"] <= 1
        expected = relative_spread(classifier_features(images[w], classifier), classify(images[w], classifier),
                                   real_spread)
        assert row["relative_spread"] == pytest.approx(expected, rel=1e-9, nan_ok=True)


def test_guidance_sweep_with_a_flow_sampler_guides_the_velocity(schedule):
    from diffusion_lib.samplers import final, flow_euler_sample_progressive, flow_heun_sample_progressive
    classifier, reference = _classifier_and_reference()
    torch.manual_seed(0)
    model = UNet(base=8, num_classes=10).eval()              # read as a velocity model
    x_1 = _noise(n=10, size=28, dtype=torch.float32)
    labels = torch.arange(10) % 10
    rows, images = guidance_sweep(model, x_1, schedule, labels, [0.0, 1.0, 3.0], classifier, reference,
                                  torch.full((10,), 2.0), num_steps=3, sampler="flow Euler", progress=False)
    assert [(r["sampler"], r["steps"], r["w"]) for r in rows] == [("flow Euler", 3, w) for w in (0.0, 1.0, 3.0)]

    def flow_euler(label_of):
        return final(flow_euler_sample_progressive(lambda x, t: model(x, t, label_of(x)), x_1, schedule, 3))
    torch.testing.assert_close(images[1.0], flow_euler(lambda x: labels), atol=1e-5, rtol=1e-5)   # w = 1: conditional
    torch.testing.assert_close(images[0.0], flow_euler(lambda x: torch.full_like(labels, model.null_label)),
                               atol=1e-5, rtol=1e-5)                                            # w = 0: null label
    torch.testing.assert_close(images[3.0], final(flow_euler_sample_progressive(cfg_eps_model(model, labels, 3.0),
                                                                                 x_1, schedule, 3)))
    rows, images = guidance_sweep(model, x_1, schedule, labels, [2.0], classifier, reference, torch.full((10,), 2.0),
                                  num_steps=3, sampler="flow Heun", progress=False)
    assert rows[0]["sampler"] == "flow Heun"
    torch.testing.assert_close(images[2.0], final(flow_heun_sample_progressive(cfg_eps_model(model, labels, 2.0),
                                                                                x_1, schedule, 3)))
    with pytest.raises(ValueError, match="unknown ODE sampler 'flow-euler'.*'flow Euler'"):
        guidance_sweep(model, x_1, schedule, labels, [1.0], classifier, reference, torch.full((10,), 2.0),
                       sampler="flow-euler", progress=False)


def test_timed_and_score_row():
    out, seconds = timed(lambda n: torch.ones(n), 3)
    assert torch.equal(out, torch.ones(3)) and seconds >= 0
    classifier, reference = _classifier_and_reference()
    row = score_row(torch.zeros(5, 1, 28, 28), 2.0, classifier, reference, sampler="DDPM", steps=1000)
    assert row["sampler"] == "DDPM" and row["seconds_per_image"] == pytest.approx(0.4) and row["n"] == 5


def test_agreement_with_final_counts_steps_whose_prediction_is_the_final_digit():
    from diffusion_lib.samplers import Trajectory
    from diffusion_lib.measure.sweeps import agreement_with_final
    classifier, _ = _classifier_and_reference()
    g = torch.Generator().manual_seed(0)
    sample = torch.rand(4, 1, 28, 28, generator=g) * 2 - 1
    other = torch.rand(4, 1, 28, 28, generator=g) * 2 - 1
    x0_pred = torch.stack([other, sample, torch.cat([sample[:2], other[2:]])])         # (3, 4, 1, 28, 28)
    trajectory = Trajectory([2, 1, 0], x0_pred.clone(), x0_pred, sample)
    from diffusion_lib.measure.metrics import classify
    same_other = float((classify(other, classifier).argmax(1) == classify(sample, classifier).argmax(1)).double().mean())
    ts, share = agreement_with_final(trajectory, classifier)
    assert ts == [2, 1, 0] and share.shape == (3,) and share[1] == 1.0
    assert share[0] == pytest.approx(same_other)
    ts, share = agreement_with_final(trajectory, classifier, every=2)
    assert ts == [2, 0] and share[0] == pytest.approx(same_other)


# ----------------------------------------------------------------------------- solvers against network evaluations

def test_nfe_and_steps_of_each_sampler():
    from diffusion_lib.measure.sweeps import FLOW_SAMPLERS, NFE_SAMPLERS, nfe_of, steps_for_nfe
    assert NFE_SAMPLERS == ("DDIM", "Heun") and FLOW_SAMPLERS == ("flow Euler", "flow Heun")
    for first, second in (("DDIM", "Heun"), ("flow Euler", "flow Heun")):
        assert [steps_for_nfe(first, n) for n in (5, 10, 20, 50)] == [5, 10, 20, 50]
        assert [steps_for_nfe(second, n) for n in (5, 10, 20, 50)] == [3, 5, 10, 25]
        assert [nfe_of(second, steps_for_nfe(second, n)) for n in (5, 10, 20, 50)] == [5, 9, 19, 49]  # 2 n - 1 <= NFE
        assert nfe_of(second, 1) == 1 and steps_for_nfe(second, 1) == 1 and nfe_of(first, 7) == 7
        assert nfe_of(second, 7) == 13
    with pytest.raises(ValueError, match=r"unknown ODE sampler 'Euler'; choose one of \('DDIM', 'Heun'\) for an eps "
                                         r"model or \('flow Euler', 'flow Heun'\) for a flow-matching"):
        nfe_of("Euler", 3)
    with pytest.raises(ValueError, match="unknown ODE sampler 'flow-euler'"):      # the command line's spelling
        steps_for_nfe("flow-euler", 3)
    with pytest.raises(ValueError, match="positive integer"):
        steps_for_nfe("DDIM", 0)
    with pytest.raises(ValueError, match="positive integer"):
        steps_for_nfe("flow Heun", 0)


class CountingEps(torch.nn.Module):
    """tiny_eps, counting its calls."""

    def __init__(self):
        super().__init__()
        self.inner, self.calls = tiny_eps(dtype=torch.float32), 0

    def forward(self, x, t):
        self.calls += 1
        return self.inner(x, t)


def test_nfe_sweep_rows_count_the_network_calls_really_made(schedule):
    from diffusion_lib.measure.sweeps import nfe_sweep, ode_images
    from diffusion_lib.samplers import ddim_sample_progressive, final, heun_sample_progressive
    classifier, reference = _classifier_and_reference()
    model = CountingEps()
    x_T = _noise(n=3, size=28, dtype=torch.float32)
    rows, images = nfe_sweep(model, x_T, schedule, [3, 6], classifier, reference, progress=False)
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in rows] == [("DDIM", 3, 3), ("DDIM", 6, 6), ("Heun", 2, 3),
                                                                   ("Heun", 3, 5)]
    assert model.calls == 1 + 3 + 6 + 3 + 5                        # one warm-up call, then each row's nfe
    assert all(r["n"] == 3 and r["seconds"] > 0 and 0 <= r["confident_share"] <= 1 for r in rows)
    assert torch.equal(images[("DDIM", 6)], final(ddim_sample_progressive(model, x_T, schedule, 6)))
    assert torch.equal(images[("Heun", 5)], final(heun_sample_progressive(model, x_T, schedule, 3)))
    assert torch.equal(images[("Heun", 5)], ode_images(model, x_T, schedule, "Heun", 3))


def test_nfe_sweep_of_a_velocity_model_walks_the_flow_samplers(schedule):
    from diffusion_lib.measure.sweeps import FLOW_SAMPLERS, nfe_sweep, ode_images
    from diffusion_lib.samplers import final, flow_euler_sample_progressive, flow_heun_sample_progressive
    classifier, reference = _classifier_and_reference()
    model = CountingEps()                                    # read as a velocity: any (x_t, t) -> tensor will do
    x_1 = _noise(n=3, size=28, dtype=torch.float32)
    rows, images = nfe_sweep(model, x_1, schedule, [3, 6], classifier, reference, samplers=FLOW_SAMPLERS,
                             progress=False)
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in rows] == [("flow Euler", 3, 3), ("flow Euler", 6, 6),
                                                                   ("flow Heun", 2, 3), ("flow Heun", 3, 5)]
    assert model.calls == 1 + 3 + 6 + 3 + 5                        # one warm-up call, then each row's nfe
    assert torch.equal(images[("flow Euler", 6)], final(flow_euler_sample_progressive(model, x_1, schedule, 6)))
    assert torch.equal(images[("flow Heun", 5)], final(flow_heun_sample_progressive(model, x_1, schedule, 3)))
    assert torch.equal(ode_images(model, x_1, schedule, "flow Euler", 4),
                       final(flow_euler_sample_progressive(model, x_1, schedule, 4)))
    assert torch.equal(ode_images(model, x_1, schedule, "flow Heun", 4),
                       final(flow_heun_sample_progressive(model, x_1, schedule, 4)))
    assert not torch.allclose(ode_images(model, x_1, schedule, "flow Euler", 4),     # another chain than DDIM's
                              ode_images(model, x_1, schedule, "DDIM", 4))


def test_a_sweep_refuses_samplers_of_both_kinds_of_model(schedule):
    from diffusion_lib.measure.sweeps import nfe_sweep, solver_errors
    classifier, reference = _classifier_and_reference()
    x_T = _noise(n=2, size=28, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"mix two kinds of model.*eps model.*velocity"):
        nfe_sweep(CountingEps(), x_T, schedule, [2], classifier, reference, samplers=("DDIM", "flow Euler"))
    with pytest.raises(ValueError, match="mix two kinds of model"):
        solver_errors(CountingEps(), x_T, schedule, [2], x_T, samplers=("flow Heun", "Heun"))
    with pytest.raises(ValueError, match="unknown ODE sampler 'Euler'"):
        nfe_sweep(CountingEps(), x_T, schedule, [2], classifier, reference, samplers=("Euler",))


def test_solver_errors_of_the_flow_samplers_on_the_exact_velocity_of_gaussian_data():
    """Gaussian data N(0, s2 I) on the straight path x_s = (1 - s) x_0 + s eps: x_s ~ N(0, v(s) I) with
    v(s) = (1 - s)^2 s2 + s^2, the exact velocity is u(x, s) = x v'(s) / (2 v(s)) and the exact clean end of x_1
    is x_1 sqrt(s2). The errors halve (flow Euler) or quarter (flow Heun) when the network evaluations double."""
    from diffusion_lib.measure.sweeps import FLOW_SAMPLERS, solver_errors
    schedule, s2 = make_schedule("linear"), 0.25

    def gaussian_velocity(x, t):
        s = ((t.double() + 1) / schedule.T).reshape(-1, 1, 1, 1)
        v, dv = (1 - s) ** 2 * s2 + s ** 2, -2 * (1 - s) * s2 + 2 * s
        return x * dv / (2 * v)

    x_1 = _noise(n=4, size=2)
    rows = solver_errors(gaussian_velocity, x_1, schedule, [10, 20, 40], x_1 * s2 ** 0.5, samplers=FLOW_SAMPLERS)
    euler = [r["mean_error"] for r in rows if r["sampler"] == "flow Euler"]
    heun = [r["mean_error"] for r in rows if r["sampler"] == "flow Heun"]
    assert [r["nfe"] for r in rows] == [10, 20, 40, 9, 19, 39]
    assert all(1.6 < a / b < 2.6 for a, b in zip(euler, euler[1:])), euler              # first order
    assert all(3.0 < a / b < 6.0 for a, b in zip(heun, heun[1:])), heun                 # second order
    assert heun[-1] < euler[-1] / 5                                                     # measured: / 8.6


def test_solver_errors_fall_as_one_over_nfe_for_ddim_and_faster_for_heun():
    """Gaussian data N(0, s2 I): in xbar = x / sqrt(abar), the ODE's solution is xbar(sigma) = xbar_T sqrt(s2 + sigma^2)
    / sqrt(s2 + sigma_T^2), so the exact clean end of x_T is x_T sqrt(s2 / (abar_T s2 + 1 - abar_T)). The errors
    against it halve (DDIM) or quarter (Heun) when the network evaluations double."""
    from diffusion_lib.measure.sweeps import solver_errors
    schedule, s2 = make_schedule("linear"), 0.25

    def gaussian_eps(x, t):
        abar = schedule.alpha_bar.double()[t].reshape(-1, 1, 1, 1)
        return (1 - abar).sqrt() * x / (abar * s2 + 1 - abar)

    x_T = _noise(n=4, size=2)
    abar_T = float(schedule.alpha_bar.double()[-1])
    exact = x_T * (s2 / (abar_T * s2 + 1 - abar_T)) ** 0.5          # xbar(0) = xbar_T sqrt(s2) / sqrt(s2 + sigma_T^2)
    rows = solver_errors(gaussian_eps, x_T, schedule, [20, 40, 80], exact)
    ddim = [r["mean_error"] for r in rows if r["sampler"] == "DDIM"]
    heun = [r["mean_error"] for r in rows if r["sampler"] == "Heun"]
    assert [r["nfe"] for r in rows] == [20, 40, 80, 19, 39, 79]
    assert all(1.6 < a / b < 2.6 for a, b in zip(ddim, ddim[1:])), ddim                 # first order
    assert all(3.0 < a / b < 6.0 for a, b in zip(heun, heun[1:])), heun                 # second order
    assert heun[-1] < ddim[-1] / 5                                                      # measured: / 7.8
    assert all(r["max_error"] >= r["mean_error"] for r in rows)


def test_solver_errors_and_nfe_sweep_walk_the_grid_they_are_asked_for(schedule):
    """grids=("uniform", "karras"): every sampler on every grid, each row naming its grid; the Karras rows are the
    chains over samplers.karras_timesteps, and a flow sampler refuses any grid but its own."""
    from diffusion_lib.measure.sweeps import nfe_sweep, ode_images, solver_errors
    from diffusion_lib.samplers import final, heun_sample_progressive, karras_timesteps, timestep_pairs
    model = CountingEps()
    x_T = _noise(n=3, size=28, dtype=torch.float32)
    rows = solver_errors(model, x_T, schedule, [3, 6], x_T, grids=("uniform", "karras"))
    assert [(r["grid"], r["sampler"], r["steps"], r["nfe"]) for r in rows] == [
        ("uniform", "DDIM", 3, 3), ("uniform", "DDIM", 6, 6), ("uniform", "Heun", 2, 3), ("uniform", "Heun", 3, 5),
        ("karras", "DDIM", 3, 3), ("karras", "DDIM", 6, 6), ("karras", "Heun", 2, 3), ("karras", "Heun", 3, 5)]
    karras = ode_images(model, x_T, schedule, "Heun", 3, grid="karras")
    steps = list(heun_sample_progressive(model, x_T, schedule, 3, grid="karras"))
    assert [(s.t, s.t_next) for s in steps] == timestep_pairs(karras_timesteps(3, schedule))
    assert torch.equal(karras, steps[-1].x_next)
    assert not torch.allclose(karras, ode_images(model, x_T, schedule, "Heun", 3))        # another grid, another end
    classifier, reference = _classifier_and_reference()
    sweep_rows, images = nfe_sweep(model, x_T, schedule, [6], classifier, reference, grid="karras", progress=False)
    assert [(r["sampler"], r["grid"], r["nfe"]) for r in sweep_rows] == [("DDIM", "karras", 6), ("Heun", "karras", 5)]
    assert torch.equal(images[("Heun", 5)], karras)
    with pytest.raises(ValueError, match="flow grid"):
        ode_images(model, x_T, schedule, "flow Euler", 3, grid="karras")
    with pytest.raises(ValueError, match="unknown timestep grid"):
        solver_errors(model, x_T, schedule, [3], x_T, grids=("sigma",))
