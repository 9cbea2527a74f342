"""diffusion_lib.pretrained: the shipped weights load safely, have the right shapes, and draw digits."""
import pytest
import torch

from diffusion_lib.backbones import UNet
from diffusion_lib.checkpoints import load_model
from diffusion_lib.guidance import cfg_eps_model
from diffusion_lib.measure.metrics import classify, confident_share, guided_accuracy, load_classifier
from diffusion_lib.pretrained import PRETRAINED, WEIGHTS_DIR, export_for_sampling, load_pretrained, pretrained_schedule
from diffusion_lib.samplers import ddim_sample_progressive, final, sample_noise
from diffusion_lib.training import TrainConfig, Trainer


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_shipped_file_is_small_and_loads_with_weights_only(name):
    path = WEIGHTS_DIR / PRETRAINED[name].file
    assert path.stat().st_size < 20 * 2 ** 20
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["arch"]["name"] == "unet"
    assert "optimizer" not in checkpoint and "model" not in checkpoint      # only what sampling needs
    assert (WEIGHTS_DIR / f"{name}.md").exists()                          # every model has its card


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_load_pretrained_gives_an_eval_backbone_of_the_right_shape(name):
    model = load_pretrained(name)
    assert isinstance(model, UNet) and not model.training
    schedule = pretrained_schedule(name)
    assert schedule.T == 1000
    x = torch.randn(3, 1, 28, 28)
    t = torch.tensor([0, 500, 999])
    y = torch.tensor([1, 2, 10]) if model.num_classes is not None else None
    with torch.no_grad():
        assert model(x, t, y).shape == (3, 1, 28, 28)


def test_conditional_model_has_ten_classes_and_a_null_label():
    model = load_pretrained("unet_cond")
    assert model.num_classes == 10 and model.null_label == 10
    assert load_pretrained("unet").num_classes is None


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown pretrained model 'unet_big'.*'unet'.*'unet_cond'"):
        load_pretrained("unet_big")
    with pytest.raises(ValueError, match="unknown pretrained model"):
        pretrained_schedule("nope")


def test_export_keeps_the_ema_weights_and_drops_the_rest(tmp_path):
    trainer = Trainer(TrainConfig(backbone="unet", backbone_kwargs={"base": 8}, steps=2, batch_size=4), "cpu")
    x0 = torch.rand(4, 1, 28, 28) * 2 - 1
    for _ in range(2):
        trainer.train_step(x0)
    trainer.save(tmp_path / "last.pt")
    exported = export_for_sampling(tmp_path / "last.pt", tmp_path / "small.pt")
    assert exported.stat().st_size < (tmp_path / "last.pt").stat().st_size
    model = load_model(exported)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 700])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), trainer.ema.module.eval()(x, t))


# Quality floors, far below what the shipped models score (see their model cards), so that only a
# broken file or a broken sampler fails them: 50 images, 10 DDIM steps, a second or two.
# Measured with exactly these settings: unet confident share 0.74 (pure noise scores 0.0),
# unet_cond guided accuracy 0.98 at w = 3 (a model that ignores labels scores about 0.1).
UNCOND_FLOOR = 0.45
COND_FLOOR = 0.7


def _samples(name, eps_model=None, n=50, steps=10):
    model = load_pretrained(name)
    x_T = sample_noise(n, generator=torch.Generator().manual_seed(0))
    return final(ddim_sample_progressive(eps_model or model, x_T, pretrained_schedule(name), steps))


def test_shipped_unconditional_model_draws_digits():
    probs = classify(_samples("unet"), load_classifier())
    assert confident_share(probs) > UNCOND_FLOOR
    assert len(set(probs.argmax(1).tolist())) >= 8        # not a single digit over and over


def test_shipped_conditional_model_draws_the_requested_digit():
    labels = torch.arange(50) % 10
    eps_model = cfg_eps_model(load_pretrained("unet_cond"), labels, w=3.0)
    probs = classify(_samples("unet_cond", eps_model), load_classifier())
    assert guided_accuracy(probs, labels) > COND_FLOOR
