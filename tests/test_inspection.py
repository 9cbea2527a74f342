"""diffusion_lib.inspection: shape traces, receptive fields, timing, loss by timestep, the sample recorder."""
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import diffusion_lib as dl
from diffusion_lib import inspection
from diffusion_lib.schedules import make_schedule


class TwoConvs(nn.Module):
    """eps-model (x, t) -> x-shaped: conv3x3 -> GroupNorm -> ReLU -> conv3x3 (receptive field 5x5)."""

    image_shape = (1, 12, 12)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.norm = nn.GroupNorm(4, 8)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x, t, y=None):
        return self.conv2(torch.relu(self.norm(self.conv1(x))))


def batch(B=2):
    g = torch.Generator().manual_seed(0)
    return torch.randn((B, 1, 28, 28), generator=g), torch.tensor([3, 700][:B])


def test_shape_trace_convnet_lists_the_nine_blocks_in_order_and_all_parameters():
    model = dl.ConvNet()
    x, t = batch()
    trace = inspection.shape_trace(model, x, t)
    assert [r.name for r in trace] == ["time_embedding", *[f"blocks.{i}" for i in range(9)], "out"]
    assert [r.out_shape[1] for r in trace[1:]] == [*dl.ConvNet.CHANNELS[1:], 1]
    assert all(r.out_shape[2:] == (28, 28) for r in trace[1:])
    assert sum(r.parameters for r in trace) == dl.count_parameters(model) == 3_276_129
    assert "3,276,129" in repr(trace)


def test_shape_trace_unet_shows_the_concatenated_skips_and_the_resolutions():
    model = dl.UNet(base=8)
    x, t = batch()
    trace = {r.name: r for r in inspection.shape_trace(model, x, t)}
    assert trace["pool1"].out_shape == (2, 8, 14, 14) and trace["pool2"].out_shape == (2, 16, 7, 7)
    assert trace["up3"].in_shape == (2, 32, 7, 7)           # mid's 16 channels + down3's 16
    assert trace["up1"].in_shape == (2, 16, 28, 28)         # unpool1's 8 + down1's 8
    assert trace["conv_out"].out_shape == (2, 1, 28, 28)
    assert sum(r.parameters for r in trace.values()) == dl.count_parameters(model)


def test_shape_trace_removes_its_hooks():
    model = dl.SmolMLP()
    x, t = batch()
    inspection.shape_trace(model, x, t)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_chain_receptive_field():
    assert inspection.chain_receptive_field([]) == 1
    assert inspection.chain_receptive_field([(3, 1)] * 18 + [(1, 1)]) == 37     # the ConvNet
    assert inspection.chain_receptive_field([(3, 2), (3, 1)]) == 7              # 3, then 2 more at spacing 2
    assert inspection.chain_receptive_field([(2, 2)] * 3) == 8                  # non-overlapping pooling


def test_receptive_fields_of_two_convs_is_5x5_clipped_at_the_border_and_ignores_groupnorm():
    model = TwoConvs()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = inspection.receptive_fields(model, [(6, 6), (0, 0), (11, 3)])
    assert masks.shape == (3, 12, 12) and masks.dtype == torch.bool
    expected = torch.zeros(12, 12, dtype=torch.bool)
    expected[4:9, 4:9] = True
    assert torch.equal(masks[0], expected)
    assert inspection.mask_extent(masks[1]) == (3, 3) and bool(masks[1][:3, :3].all())
    assert inspection.mask_extent(masks[2]) == (3, 5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model must not change"
    assert not any(m._forward_hooks for m in model.modules())


def test_receptive_field_of_the_convnet_corner_matches_the_chain_formula():
    masks = inspection.receptive_fields(dl.ConvNet(), [(0, 0), (14, 14)])
    r = inspection.chain_receptive_field([(3, 1)] * 18 + [(1, 1)])
    assert inspection.mask_extent(masks[0]) == (r // 2 + 1, r // 2 + 1) == (19, 19)
    assert bool(masks[1].all())


def test_receptive_field_of_the_unet_is_the_whole_image_even_at_a_corner():
    masks = inspection.receptive_fields(dl.UNet(base=8), [(0, 0), (27, 0)])
    assert bool(masks.all())


def test_mask_extent_of_an_empty_mask():
    assert inspection.mask_extent(torch.zeros(4, 4, dtype=torch.bool)) == (0, 0)


def test_time_per_image_draws_the_networks_own_timesteps():
    """A network trained on T = 20 refuses t >= 20: the timing draws t in [0, model.T), not in [0, 1000)."""
    model = dl.UNet(base=8)
    model.T = 20
    assert inspection.time_per_image(model, batch_size=4, repeats=1) > 0


def test_time_per_image_is_positive_and_leaves_no_gradients():
    model = TwoConvs()
    s = inspection.time_per_image(model, batch_size=4, repeats=2)
    assert s > 0
    assert all(p.grad is None for p in model.parameters())
    assert inspection.time_per_image(model, batch_size=4, repeats=1, precision="bf16") > 0


def test_a_network_without_image_shape_is_refused_by_name():
    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x, t):
            return self.conv(x)
    for measure in (lambda m: inspection.receptive_fields(m, [(0, 0)]), lambda m: inspection.time_per_image(m)):
        with pytest.raises(ValueError, match="Bare has no image_shape attribute"):
            measure(Bare())


def test_machine_description_names_the_cpu_and_threads():
    text = inspection.machine_description("cpu")
    assert "torch thread" in text and torch.__version__ in text


def test_loss_by_timestep_matches_diffusion_loss_at_fixed_t():
    torch.manual_seed(0)
    model = dl.UNet(base=8)
    schedule = make_schedule("linear", 1000)
    x0 = torch.rand(5, 1, 28, 28) * 2 - 1
    ts = [0, 500, 999]
    got = inspection.loss_by_timestep(model, x0, schedule, ts, seed=3, batch_size=2)   # batches of 2, 2, 1
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = [float(dl.diffusion_loss(model, x0, schedule, torch.full((5,), s), noise)) for s in ts]
    assert got.shape == (3,)
    assert torch.allclose(got, torch.tensor(expected), rtol=1e-5)
    assert model.training, "loss_by_timestep must restore the model's mode"


def test_sample_recorder_keeps_steps_1_every_k_and_the_last():
    torch.manual_seed(0)
    model = dl.UNet(base=8)
    schedule = make_schedule("linear", 1000)
    rec = inspection.SampleRecorder(x_T=torch.randn(2, 1, 28, 28), schedule=schedule, every=4, num_steps=3)
    trainer = SimpleNamespace(step=0, config=SimpleNamespace(steps=10), ema=SimpleNamespace(module=model))
    for step in range(1, 11):
        trainer.step = step
        rec(trainer)
    assert rec.steps == [1, 4, 8, 10]
    assert all(rec.images[s].shape == (2, 1, 28, 28) for s in rec.steps)
    # same noise, same weights: the same samples
    assert torch.equal(rec.images[1], rec.images[10])
    with pytest.raises(ValueError):
        inspection.SampleRecorder(x_T=torch.randn(1, 1, 28, 28), schedule=schedule, every=0)


def test_sample_recorder_inside_train():
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    config = dl.TrainConfig(backbone="unet", backbone_kwargs={"base": 8}, steps=4, batch_size=8)
    rec = inspection.SampleRecorder(x_T=torch.randn(2, 1, 28, 28), schedule=make_schedule("linear", 1000), every=2,
                                    num_steps=2)
    dl.train(config, images, progress=False, callback=rec)
    assert rec.steps == [1, 2, 4]
    assert not torch.equal(rec.images[1], rec.images[4])


def test_toy_eps_errors_split_the_loss_into_its_floor_and_the_networks_excess():
    """loss = floor + excess on average (the cross term vanishes because eps* = E[eps | x_t]); a network that
    outputs eps* exactly has no excess and its loss is the floor."""
    from diffusion_lib import toy
    from diffusion_lib.backbones import PointMLP
    from diffusion_lib.measure.inspection import toy_eps_errors
    from diffusion_lib.schedules import make_schedule

    schedule, mixture = make_schedule("linear"), toy.ring_mixture()
    x0 = toy.mixture_sample(mixture, 20_000, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    rows = toy_eps_errors(PointMLP(width=16, depth=1, emb_dim=8), mixture, x0, schedule, [5, 300, 999])
    assert [r["t"] for r in rows] == [5, 300, 999]
    for r in rows:
        assert r["loss"] == pytest.approx(r["floor"] + r["excess"], rel=0.03), r
        assert r["floor"] == pytest.approx(1 - r["exact"], abs=0.02), r    # E|eps|^2 - E|eps*|^2 per coordinate

    class Exact(torch.nn.Module):                                          # eps* as a "network" with one parameter
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, t):
            return toy.exact_eps(mixture, x, t, schedule)

    for r in toy_eps_errors(Exact(), mixture, x0[:2000], schedule, [5, 300]):
        assert r["excess"] == 0.0 and r["loss"] == pytest.approx(r["floor"], rel=1e-9)


def test_path_straightness_of_a_line_a_detour_and_a_circle():
    """A straight path gives 1 however it is cut; a right-angle detour sqrt(2); a half circle of n chords
    n sin(pi / 2n) / 1 (chord lengths of the inscribed polygon over the diameter), each computed here by hand."""
    from diffusion_lib.measure.inspection import path_straightness
    from diffusion_lib.samplers import Trajectory

    def trajectory(points):                       # points (K + 1, B, 2): states, the last one the end
        states = torch.as_tensor(points, dtype=torch.float64)[..., None, None]
        return Trajectory(list(range(len(points) - 1)), states[:-1], states[:-1], states[-1])

    line = [[[0.0, 0.0]], [[0.1, 0.2]], [[0.5, 1.0]], [[1.0, 2.0]]]
    detour = [[[0.0, 0.0]], [[1.0, 0.0]], [[1.0, 1.0]]]
    n = 12
    angles = torch.linspace(0, math.pi, n + 1, dtype=torch.float64)
    circle = torch.stack([angles.cos(), angles.sin()], dim=-1)[:, None]           # (n + 1, 1, 2)
    got = torch.cat([path_straightness(trajectory(p)) for p in (line, detour, circle)])
    expected = torch.tensor([1.0, math.sqrt(2), n * 2 * math.sin(math.pi / (2 * n)) / 2], dtype=torch.float64)
    assert torch.allclose(got, expected, atol=1e-12), got
    with pytest.raises(ValueError, match="ends where it started"):
        path_straightness(trajectory([[[0.0, 0.0]], [[1.0, 0.0]], [[0.0, 0.0]]]))
