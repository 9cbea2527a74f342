"""Training: the loss, label dropout, the EMA recursion, the learning-rate schedule and exact resume."""
import math
from dataclasses import replace

import pytest
import torch

from diffusion_lib.backbones import UNet, build_backbone
from diffusion_lib.checkpoints import CheckpointError, load_checkpoint
from diffusion_lib.training import TrainConfig, Trainer, diffusion_loss, drop_labels, lr_factor, make_ema, train
from diffusion_lib.schedules import make_schedule

from _tiny import one_thread  # noqa: F401 (one_thread is autouse)
from _tiny import alpha_bars, linear_betas, synthetic_mnist, tiny_config


def test_diffusion_loss_is_the_mse_of_the_noise():
    torch.manual_seed(0)
    model = UNet(base=8, num_classes=10).eval()
    x0, y = synthetic_mnist(3)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 321, 999])
    abar = torch.tensor(alpha_bars(linear_betas()), dtype=torch.float64)[t].float()[:, None, None, None]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    with torch.no_grad():
        pred = model(x_t, t, y)
        per_image = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
        loss = diffusion_loss(model, x0, make_schedule(), t, noise, y)
        loss_none = diffusion_loss(model, x0, make_schedule(), t, noise, y, reduction="none")
    assert loss.shape == () and loss_none.shape == (3,)
    assert torch.allclose(loss_none, per_image, rtol=1e-4)
    assert torch.allclose(loss, per_image.mean(), rtol=1e-4)


def test_label_dropout_rate():
    y = torch.arange(20_000) % 10
    g = torch.Generator().manual_seed(0)
    dropped = drop_labels(y, 0.3, 10, generator=g)
    is_null = dropped == 10
    rate = float(is_null.double().mean())
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 20_000)
    assert torch.equal(dropped[~is_null], y[~is_null])                 # the others are untouched
    assert torch.equal(drop_labels(y, 0.0, 10, generator=g), y)


def test_ema_follows_the_warm_up_recursion():
    """AveragedModel with our multi_avg_fn: e_1 = p_1, then e <- d e + (1 - d) p with d = min(decay, (1+n)/(10+n))."""
    torch.manual_seed(0)
    model = build_backbone("mlp", hidden=[4])
    for warmup in (True, False):
        ema = make_ema(model, decay=0.95, warmup=warmup)
        expected = None
        g = torch.Generator().manual_seed(1)
        for n in range(40):
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn(p.shape, generator=g))
            ema.update_parameters(model)
            params = [p.detach().double().clone() for p in model.parameters()]
            if expected is None:
                expected = params
            else:
                d = min(0.95, (1 + n) / (10 + n)) if warmup else 0.95
                expected = [d * e + (1 - d) * p for e, p in zip(expected, params)]
        for e, got in zip(expected, ema.module.parameters()):
            assert torch.allclose(got.double(), e, atol=1e-6)


def test_train_keeps_the_ema_of_the_weights_it_trained():
    config = tiny_config(steps=5, ema_decay=0.999)
    images, _ = synthetic_mnist(8)
    snapshots = []
    result = train(config, images, progress=False,
                   callback=lambda tr: snapshots.append([p.detach().double().clone() for p in tr.model.parameters()]))
    assert len(snapshots) == 5 and result.step == 5
    expected = snapshots[0]
    for n, params in enumerate(snapshots[1:], start=1):
        d = min(0.999, (1 + n) / (10 + n))
        expected = [d * e + (1 - d) * p for e, p in zip(expected, params)]
    for e, got, raw in zip(expected, result.ema.parameters(), result.model.parameters()):
        assert torch.allclose(got.double(), e, atol=1e-6)
    assert any(not torch.allclose(a, b) for a, b in zip(result.ema.parameters(), result.model.parameters()))
    assert len(result.history["loss"]) == 5 and result.history["step"] == [1, 2, 3, 4, 5]


def test_lr_schedule():
    config = TrainConfig(steps=100, warmup_steps=10, lr_decay="cosine")
    assert [lr_factor(s, config) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(10, config) == pytest.approx(1.0)
    assert lr_factor(55, config) == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lr_factor(100, config) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(50, TrainConfig(steps=100)) == 1.0


@pytest.mark.parametrize("kwargs", [{"lr_decay": "step"}, {"label_dropout": 1.0}, {"precision": "fp16"},
                                    {"steps": 0}, {"batch_size": 0}])
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_bad_training_input():
    images, labels = synthetic_mnist(4)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        train(tiny_config(), images[:, 0], progress=False)
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\)"):
        train(tiny_config(), images, labels[:3], progress=False)
    with pytest.raises(ValueError, match="unconditional"):
        Trainer(tiny_config()).train_step(images, labels)


# ----------------------------------------------------------------------------- resume

class Interrupted(Exception):
    pass


def resume_config(**overrides):
    """A conditional tiny U-Net with label dropout, lr warm-up and decay, and epochs of 3 batches."""
    settings = dict(backbone_kwargs={"base": 8, "num_classes": 10}, steps=6, warmup_steps=2, lr_decay="cosine",
                    ema_decay=0.9, label_dropout=0.3, checkpoint_every=2, seed=3)
    settings.update(overrides)
    return tiny_config(**settings)


def assert_same_state(a: dict, b: dict, path="checkpoint"):
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, path
        if a.dtype.is_floating_point:
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), path
        else:
            assert torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.mark.parametrize("how", ["crash", "stop"])
def test_resume_equals_one_go(tmp_path, how):
    """6 steps in one go vs interrupted and resumed from out_dir/last.pt: the same model, EMA, optimizer,
    lr schedule, RNG and loss history. 'crash': an exception after step 3 (last checkpoint at step 2);
    'stop': a run asked for 3 steps, then the same folder asked for 6."""
    images, labels = synthetic_mnist(12)
    config = resume_config() if how == "crash" else resume_config(lr_decay="constant")
    one_go = train(config, images, labels, out_dir=tmp_path / "one", progress=False)

    resumed_steps = []
    if how == "crash":
        def crash(trainer):
            if trainer.step == 3:
                raise Interrupted
        with pytest.raises(Interrupted):
            train(config, images, labels, out_dir=tmp_path / "two", progress=False, callback=crash)
        assert load_checkpoint(tmp_path / "two" / "last.pt")["step"] == 2
    else:
        half = train(replace(config, steps=3), images, labels, out_dir=tmp_path / "two", progress=False)
        assert half.step == 3
    resumed = train(config, images, labels, out_dir=tmp_path / "two", progress=False,
                    callback=lambda tr: resumed_steps.append(tr.step))
    assert resumed_steps == ([3, 4, 5, 6] if how == "crash" else [4, 5, 6])   # it did not start over

    a, b = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema", "optimizer", "lr_scheduler", "rng", "history"):
        assert_same_state(a[key], b[key], key)
    assert len(a["optimizer"]["state"]) > 0
    for p, q in zip(one_go.ema.parameters(), resumed.ema.parameters()):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7)
    assert one_go.history == resumed.history


def test_resume_refuses_another_architecture(tmp_path):
    images, _ = synthetic_mnist(8)
    train(tiny_config(steps=1), images, out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="cannot resume") as info:
        train(tiny_config(steps=2, backbone_kwargs={"base": 16}), images, out_dir=tmp_path, progress=False)
    assert "'base': 8" in str(info.value) and "'base': 16" in str(info.value)
    fresh = train(tiny_config(steps=1, backbone_kwargs={"base": 16}), images, out_dir=tmp_path, resume=False,
                  progress=False)
    assert fresh.step == 1 and load_checkpoint(tmp_path / "last.pt")["arch"]["kwargs"]["base"] == 16
