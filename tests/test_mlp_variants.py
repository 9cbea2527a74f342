"""The MLP's options of notebook 09 (skip, norm) and the experiment helpers of diffusion_lib.experiments.

The options default to off and then leave the seed blog's MLPs exactly as they were: the same
parameters, the same state_dict keys, the same architecture record, the same outputs.
"""
import json

import pytest
import torch

from diffusion_lib import experiments
from diffusion_lib.backbones import MLP, SmolMLP, build_backbone, count_parameters
from diffusion_lib.checkpoints import load_model
from diffusion_lib.config import FULL, QUICK
from diffusion_lib.data import to_model_range
from diffusion_lib.schedules import make_schedule
from diffusion_lib.training import TrainConfig, Trainer

from _tiny import one_thread  # noqa: F401 (one_thread is autouse)


def batch(B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((B, 1, 28, 28), generator=g), torch.tensor([0, 500, 999][:B])


def test_defaults_keep_the_seed_mlp():
    torch.manual_seed(0)
    plain = MLP()
    torch.manual_seed(0)
    smol = SmolMLP()
    assert count_parameters(plain) == count_parameters(smol) == 1_526_288
    assert plain.state_dict().keys() == smol.state_dict().keys()
    assert plain.arch == {"name": "mlp", "kwargs": {"hidden": [512, 512, 512]}}
    x, t = batch()
    with torch.no_grad():
        assert torch.equal(plain(x, t), smol(x, t))


def test_skip_adds_the_input_and_no_parameters():
    torch.manual_seed(0)
    plain = MLP(hidden=(32, 32))
    torch.manual_seed(0)
    skip = MLP(hidden=(32, 32), skip=True)
    assert count_parameters(skip) == count_parameters(plain)
    x, t = batch()
    with torch.no_grad():
        assert torch.allclose(skip(x, t), x + plain(x, t))      # eps_theta = x_t + f(x_t, t)
    assert skip.arch == {"name": "mlp", "kwargs": {"hidden": [32, 32], "skip": True}}


def test_skip_with_zero_last_layer_is_the_identity():
    """With the last Linear at zero, f = 0 and eps_theta(x_t, t) = x_t: the answer at large t comes for free."""
    model = MLP(hidden=(16,), skip=True)
    with torch.no_grad():
        model.layers[-1].weight.zero_()
        model.layers[-1].bias.zero_()
        x, t = batch()
        assert torch.equal(model(x, t), x)


def test_norm_adds_a_layernorm_per_hidden_layer():
    widths = (32, 64)
    model = MLP(hidden=widths, norm=True)
    assert count_parameters(model) == count_parameters(MLP(hidden=widths)) + 2 * sum(widths)
    assert [m.normalized_shape for m in model.norms] == [(32,), (64,)]
    assert model.arch["kwargs"] == {"hidden": [32, 64], "norm": True}
    x, t = batch()
    with torch.no_grad():
        h = torch.cat([x.flatten(1), model.time_embedding(t)], dim=1)
        h = model.norms[0](model.layers[0](h))                 # LayerNorm after the Linear, before the ReLU
        assert torch.allclose(h.mean(1), torch.zeros(3), atol=1e-5)


def test_options_survive_a_checkpoint(tmp_path):
    config = TrainConfig(backbone="mlp", backbone_kwargs={"hidden": [8], "skip": True, "norm": True}, steps=1,
                         batch_size=2)
    trainer = Trainer(config)
    trainer.train_step(batch(2)[0])
    path = trainer.save(tmp_path / "last.pt")
    model = load_model(path, ema=False)
    assert model.arch == trainer.model.arch and model.skip and model.norms is not None
    x, t = batch()
    with torch.no_grad():
        assert torch.equal(model(x, t), trainer.model.eval()(x, t))


def test_build_backbone_rejects_unknown_options():
    with pytest.raises(ValueError):
        build_backbone("mlp", hidden=[8], residual=True)


# ----------------------------------------------------------------------------- experiment helpers

def test_blog_config_is_the_blogs_recipe():
    runs = {r.name: r for r in experiments.MLP_VS_CNN_RUNS}
    assert set(experiments.BLOG_BACKBONES) <= set(runs)
    config = experiments.blog_config(runs["SmolMLP"], steps=10)
    assert (config.lr, config.batch_size, config.schedule, config.T, config.precision, config.grad_clip) == \
        (1e-3, 128, "linear", 1000, "fp32", None)
    for run in experiments.MLP_VS_CNN_RUNS:                      # every run builds
        assert count_parameters(build_backbone(run.backbone, **run.backbone_kwargs)) > 0


@pytest.mark.parametrize("budget", [FULL, QUICK], ids=["full", "quick"])
def test_live_configs_follow_the_budget(budget):
    configs = experiments.live_configs(budget)
    assert list(configs) == ["SmolMLP", "SmolMLP + skip", "U-Net"]
    assert all(c.batch_size == budget.batch_size and c.steps >= 1 for c in configs.values())


def test_dead_unit_configs_and_share():
    configs = experiments.dead_unit_configs(FULL)
    assert {name: c.lr for name, c in configs.items()} == {"ChunkyMLP": 1e-3, "ChunkyMLP, lr 1e-4": 1e-4}
    assert experiments.dead_unit_configs(QUICK)["ChunkyMLP"].steps == 1
    torch.manual_seed(0)
    model = MLP(hidden=(16, 8), norm=True)
    x, t = torch.randn(64, 1, 28, 28), torch.arange(64) * 15
    with torch.no_grad():
        assert experiments.dead_unit_share(model, x, t) == [0.0, 0.0]   # at initialisation every unit fires sometimes
        model.layers[1].bias.fill_(-1e3)                       # every unit of the second layer silenced...
        model.norms[1].bias.fill_(-1e3)                        # ...after its LayerNorm too
        assert experiments.dead_unit_share(model, x, t)[1] == 1.0


def test_eps_error_amplification_matches_predict_x0():
    schedule = make_schedule("linear")
    t = torch.tensor([0, 250, 999])
    x_t, delta = torch.randn(3, 1, 28, 28), torch.randn(3, 1, 28, 28)
    eps = torch.randn(3, 1, 28, 28)
    from diffusion_lib.forward import predict_x0_from_eps
    error = predict_x0_from_eps(x_t, t, eps + delta, schedule) - predict_x0_from_eps(x_t, t, eps, schedule)
    factor = experiments.eps_error_amplification(t, schedule).reshape(-1, 1, 1, 1)
    assert torch.allclose(error, -factor * delta, rtol=1e-4, atol=1e-4)
    assert 150 < float(experiments.eps_error_amplification(torch.tensor(999), schedule)) < 160


def test_chain_magnitudes_std_over_batches():
    schedule = make_schedule("linear")

    class Zero(torch.nn.Module):                                  # eps_theta = 0: DDIM scales x_t up step by step
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t, y=None):
            return torch.zeros_like(x)

    x_T = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    whole = experiments.chain_magnitudes(Zero(), x_T, schedule, num_steps=4, keep=2)
    split = experiments.chain_magnitudes(Zero(), x_T, schedule, num_steps=4, keep=2, batch_size=2)
    assert whole.timesteps == [999, 666, 333, 0]
    assert whole.x_t.shape == (4, 2, 1, 28, 28) and whole.samples.shape == x_T.shape
    assert whole.x_t_std[0] == pytest.approx(float(x_T.std()), rel=1e-6)
    assert split.x_t_std == pytest.approx(whole.x_t_std, rel=1e-6)
    assert split.x0_pred_std == pytest.approx(whole.x0_pred_std, rel=1e-6)
    # with eps_theta = 0 nothing is ever removed: the sample is x_T / sqrt(alpha_bar_{T-1})
    assert torch.allclose(whole.samples, x_T / schedule.sqrt_alpha_bar[999], rtol=1e-4)


def test_ddim_only_rescales_what_a_narrow_mlp_cannot_reach():
    """unreachable_part(sample) = unreachable_part(x_T) / sqrt(alpha_bar_{T-1}) + a common shift, for any weights."""
    schedule = make_schedule("linear")
    torch.manual_seed(0)
    model = MLP(hidden=(32, 16)).eval()
    x_T = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    sample = experiments.chain_magnitudes(model, x_T, schedule, num_steps=10).samples
    before, after = experiments.unreachable_part(model, x_T), experiments.unreachable_part(model, sample)
    # 784 - 16 of the 784 dimensions are out of reach: nearly all of the noise's energy
    assert float(before.square().sum()) > 0.9 * (784 - 16) / 784 * float(x_T.square().sum())
    before, after = before - before.mean(0), after - after.mean(0)
    assert torch.allclose(after, before / schedule.sqrt_alpha_bar[-1], rtol=1e-3, atol=1e-3 * float(after.abs().max()))


def test_uint8_round_trip_and_block_means():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0])
    assert experiments.to_uint8(x).tolist() == [0, 0, 128, 255, 255]
    assert torch.allclose(experiments.from_uint8(experiments.to_uint8(x)), x.clamp(-1, 1), atol=1 / 127.5)
    pixels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(experiments.from_uint8(pixels), to_model_range(pixels))            # as MNIST is loaded
    assert torch.allclose(experiments.from_uint8(pixels).double(), pixels.double() / 127.5 - 1, atol=1e-7)
    curve = experiments.block_means({"step": list(range(1, 11)), "loss": [float(i) for i in range(10)]}, points=5)
    assert curve == {"step": [2, 4, 6, 8, 10], "loss": [0.5, 2.5, 4.5, 6.5, 8.5], "block": 2}


def test_shipped_results_load_and_tabulate():
    if not experiments.RESULTS_JSON.exists():
        pytest.skip("the shipped results are not there yet (run benchmarks/mlp_vs_cnn.py)")
    record = experiments.load_mlp_vs_cnn_results()
    assert set(experiments.BLOG_BACKBONES) <= set(record["runs"])
    assert json.loads(experiments.RESULTS_JSON.read_text())["command"].startswith("OMP_NUM_THREADS=1 python benchmarks/")
    for name, run in record["runs"].items():
        assert len(run["loss_by_timestep"]) == len(record["timesteps"])
        images = record["images"][name]
        assert images["ddim"].shape[1:] == (1, 28, 28) and -1 <= float(images["ddim"].min())
    table = experiments.results_table(record)
    assert all(name in table for name in record["runs"])
    assert experiments.RESULTS_JSON.stat().st_size + experiments.RESULTS_IMAGES.stat().st_size < 2_000_000
