"""benchmarks/evaluate.py: each sampler draws what the library's sampler draws, the default sampler follows the
checkpoint's objective, and a sampler of the other kind of model is refused in one line with exit code 2."""
import json
import sys
from pathlib import Path

import pytest
import torch

from _tiny import load_script, synthetic_mnist, tiny_config, one_thread  # noqa: F401 (one_thread is autouse)
from diffusion_lib.checkpoints import load_model
from diffusion_lib.guidance import cfg_eps_model
from diffusion_lib.samplers import (ddim_sample_progressive, final, flow_euler_sample_progressive,
                                    flow_heun_sample_progressive, flow_sde_sample_progressive, heun_sample_progressive,
                                    sample_noise)
from diffusion_lib.schedules import make_schedule
from diffusion_lib.training import train

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "evaluate.py"
T = 20


@pytest.fixture(scope="module")
def evaluate():
    return load_script(SCRIPT, "evaluate_script")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One-step checkpoints (U-Net base 8, T = 20): eps, flow, and a class-conditional flow network."""
    root = tmp_path_factory.mktemp("runs")
    images, labels = synthetic_mnist(8)
    train(tiny_config(steps=1, T=T), images, out_dir=root / "eps", progress=False)
    train(tiny_config(steps=1, T=T, objective="flow"), images, out_dir=root / "flow", progress=False)
    train(tiny_config(steps=1, T=T, objective="flow", backbone_kwargs={"base": 8, "num_classes": 10}), images, labels,
          out_dir=root / "flow_cond", progress=False)
    return {name: root / name / "last.pt" for name in ("eps", "flow", "flow_cond")}


def _x_T(n):
    return sample_noise(n, generator=torch.Generator().manual_seed(0))


def test_load_network_returns_the_objective(evaluate, runs):
    for name, objective in (("eps", "eps"), ("flow", "flow"), ("flow_cond", "flow")):
        model, schedule, got = evaluate.load_network(str(runs[name]))
        assert got == objective and schedule.T == T
    assert evaluate.default_sampler("flow") == "flow-euler" and evaluate.default_sampler("eps") == "ddim"
    assert evaluate.default_sampler("v") == "ddim"


@pytest.mark.parametrize("sampler, chain", [("flow-euler", flow_euler_sample_progressive),
                                            ("flow-heun", flow_heun_sample_progressive)])
def test_generate_with_a_flow_sampler_is_the_library_s_flow_sampler(evaluate, runs, sampler, chain):
    model, schedule, _ = evaluate.load_network(str(runs["flow"]))
    images, labels = evaluate.generate(model, schedule, 4, sampler, steps=3)
    assert labels is None
    torch.testing.assert_close(images, final(chain(model, _x_T(4), schedule, 3)))


def test_generate_with_the_flow_sde_draws_its_noise_after_the_start(evaluate, runs):
    """flow-sde: the start x_1 from the seed's generator, then each step's fresh noise from the same generator."""
    model, schedule, _ = evaluate.load_network(str(runs["flow"]))
    images, _ = evaluate.generate(model, schedule, 4, "flow-sde", steps=3, seed=2)
    g = torch.Generator().manual_seed(2)
    x_1 = sample_noise(4, generator=g)
    torch.testing.assert_close(images, final(flow_sde_sample_progressive(model, x_1, schedule, 3, generator=g)))
    assert evaluate.steps_for("flow-sde", 7) == 7 and evaluate.network_evaluations("flow-sde", 7) == 7


def test_generate_guides_a_conditional_flow_model_on_its_velocity(evaluate, runs):
    model, schedule, _ = evaluate.load_network(str(runs["flow_cond"]))
    images, labels = evaluate.generate(model, schedule, 12, "flow-euler", steps=3, w=2.0, batch_size=5)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    expected = final(flow_euler_sample_progressive(cfg_eps_model(model, labels, 2.0), _x_T(12), schedule, 3))
    torch.testing.assert_close(images, expected, atol=1e-5, rtol=1e-5)       # batches of 5: the same images


def test_generate_with_the_ddpm_family_samplers(evaluate, runs):
    model, schedule, _ = evaluate.load_network(str(runs["eps"]))
    torch.testing.assert_close(evaluate.generate(model, schedule, 3, "heun", steps=3)[0],
                               final(heun_sample_progressive(model, _x_T(3), schedule, 3)))
    torch.testing.assert_close(evaluate.generate(model, schedule, 3, "ddim", steps=3)[0],
                               final(ddim_sample_progressive(model, _x_T(3), schedule, 3)))
    with pytest.raises(ValueError, match="unknown sampler 'DDIM'"):
        evaluate.generate(model, schedule, 3, "DDIM", steps=3)


@pytest.mark.parametrize("run, options, message", [
    ("flow", ["--sampler", "ddim"], "error: --sampler ddim does not apply to this model: it was trained with flow "
                                    "matching; use --sampler flow-euler, flow-heun or flow-sde"),
    ("flow_cond", ["--sampler", "ddpm"], "error: --sampler ddpm does not apply to this model: it was trained with "
                                         "flow matching"),
    ("eps", ["--sampler", "flow-euler"], "error: --sampler flow-euler does not apply to this model: it was trained "
                                         "with the eps objective (DDPM family); use --sampler ddim, ddpm or heun"),
    ("eps", ["--sampler", "flow-heun"], "error: --sampler flow-heun does not apply to this model"),
    ("flow", ["--eta", "0", "1"], "error: --eta applies to --sampler ddim only, and this run samples with flow-euler"),
])
def test_a_sampler_of_the_other_kind_of_model_is_refused_in_one_line(evaluate, runs, capsys, run, options, message):
    assert evaluate.main(["--checkpoint", str(runs[run]), "--n", "2", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("sampler,steps,nfe", [("ddim", 10, 10), ("ddpm", 1000, 1000), ("heun", 5, 9),
                                               ("flow-euler", 20, 20), ("flow-heun", 25, 49)])
def test_network_evaluations_count_heuns_second_calls(evaluate, sampler, steps, nfe):
    assert evaluate.network_evaluations(sampler, steps) == nfe


def test_one_run_writes_a_row_per_sampler_and_budget(evaluate, runs, monkeypatch, tmp_path):
    """--nfe asks each sampler for the most steps within each budget; the json holds one row per pair, in order."""
    calls = []
    monkeypatch.setattr(evaluate, "load_classifier", lambda: None)
    monkeypatch.setattr(evaluate, "mnist_test_features", lambda classifier: None)
    monkeypatch.setattr(evaluate, "evaluate", lambda model, schedule, c, r, n, steps, w, sampler, seed, eta: calls.append(
        (sampler, steps)) or {"sampler": sampler, "steps": steps, "nfe": evaluate.network_evaluations(sampler, steps)})
    out = tmp_path / "card.json"
    assert evaluate.main(["--checkpoint", str(runs["flow"]), "--n", "2", "--nfe", "5", "10",
                          "--sampler", "flow-euler", "flow-heun", "--json", str(out)]) == 0
    assert calls == [("flow-euler", 5), ("flow-euler", 10), ("flow-heun", 3), ("flow-heun", 5)]
    assert [r["nfe"] for r in json.loads(out.read_text())["scores"]] == [5, 10, 5, 9]


def test_eta_makes_rows_for_ddim_only(evaluate, runs, monkeypatch):
    calls = []
    monkeypatch.setattr(evaluate, "load_classifier", lambda: None)
    monkeypatch.setattr(evaluate, "mnist_test_features", lambda classifier: None)
    monkeypatch.setattr(evaluate, "evaluate", lambda model, schedule, c, r, n, steps, w, sampler, seed, eta: calls.append(
        (sampler, steps, eta)) or {})
    assert evaluate.main(["--checkpoint", str(runs["eps"]), "--n", "2", "--nfe", "5", "--sampler", "ddim", "heun",
                          "--eta", "0", "1"]) == 0
    assert calls == [("ddim", 5, 0.0), ("ddim", 5, 1.0), ("heun", 3, 0.0)]
