"""diffusion_lib.pretrained: the shipped weights load safely, have the right shapes, and draw digits.

Every registered model ships (the first test); the tests over every name still skip a registered model whose
file is not in diffusion_lib/weights/ (a model being added), so that the first test alone reports it.
"""
import json

import pytest
import torch

from diffusion_lib.backbones import UNet
from diffusion_lib.checkpoints import load_model
from diffusion_lib.cli import main
from diffusion_lib.guidance import cfg_eps_model
from diffusion_lib.measure.metrics import classify, confident_share, guided_accuracy, load_classifier
from diffusion_lib.pretrained import (PRETRAINED, WEIGHTS_DIR, export_for_sampling, load_pretrained,
                                      load_pretrained_codec, pretrained_objective, pretrained_schedule)
from diffusion_lib.samplers import ddim_sample_progressive, final, flow_euler_sample_progressive, sample_noise
from diffusion_lib.training import TrainConfig, Trainer

FLOW = ("unet_flow", "unet_flow_cond", "reflow", "reflow_cond")          # trained with flow matching; the others predict eps


def shipped(name: str) -> bool:
    return (WEIGHTS_DIR / PRETRAINED[name].file).exists()


def needs(*names: str):
    """pytest.param(*names), skipped while the file of one of them is not in diffusion_lib/weights/."""
    missing = [PRETRAINED[name].file for name in names if not shipped(name)]
    return pytest.param(*names, marks=pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not in "
                                                                               "diffusion_lib/weights/"))


LATENT = ("autoencoder", "latent_dit")          # notebook 13's files: tested below, not U-Nets on pixels
EVERY = [needs(name) for name in sorted(PRETRAINED) if name not in LATENT]


def test_every_registered_model_is_shipped_and_the_flow_ones_say_so():
    assert [name for name in PRETRAINED if not shipped(name)] == []
    assert set(FLOW) <= set(PRETRAINED)
    for name in FLOW:
        description = PRETRAINED[name].description
        assert "flow matching" in description and "velocity" in description and "straight path" in description
    assert "classifier-free guidance" in PRETRAINED["unet_flow_cond"].description
    assert "null label" in PRETRAINED["unet_flow_cond"].description


@pytest.mark.parametrize("name", EVERY)
def test_shipped_file_is_small_and_loads_with_weights_only(name):
    path = WEIGHTS_DIR / PRETRAINED[name].file
    assert path.stat().st_size < 20 * 2 ** 20
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["arch"]["name"] == "unet"
    assert "optimizer" not in checkpoint and "model" not in checkpoint      # only what sampling needs


@pytest.mark.parametrize("name", EVERY)
def test_every_shipped_file_has_its_card(name):
    """A model card (<name>.md) and its scores (<name>.json, written by benchmarks/evaluate.py, whose command the
    json records and the card shows), with no absolute path of the machine that made them."""
    card, scores = (WEIGHTS_DIR / f"{name}.md").read_text(), json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    assert scores["command"].startswith(f"python benchmarks/evaluate.py --pretrained {name} ")
    assert " ".join(scores["command"].split()[2:5]) in " ".join(card.replace("\\\n", " ").split())
    assert scores["scores"] and all(row["n"] == 500 and row["seed"] == 0 for row in scores["scores"])
    for text in (card, json.dumps(scores)):
        assert not any(root in text for root in ("/work/", "/home/", "/tmp/", "/Users/", "C:\\")), name


@pytest.mark.parametrize("name", EVERY)
def test_pretrained_objective_is_the_one_recorded_in_the_file(name):
    expected = "flow" if name in FLOW else "meanflow" if name.startswith("meanflow") else "eps"
    assert pretrained_objective(name) == expected
    assert torch.load(WEIGHTS_DIR / PRETRAINED[name].file, weights_only=True).get("objective", "eps") == expected


@pytest.mark.parametrize("name", EVERY)
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


@pytest.mark.parametrize("cond, uncond", [("unet_cond", "unet"), needs("unet_flow_cond", "unet_flow")])
def test_conditional_model_has_ten_classes_and_a_null_label(cond, uncond):
    model = load_pretrained(cond)
    assert model.num_classes == 10 and model.null_label == 10
    assert load_pretrained(uncond).num_classes is None


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
# broken file or a broken sampler fails them: 50 images, 10 steps (DDIM, or flow Euler for the flow
# models), a second or two. Measured with exactly these settings: unet confident share 0.74 (pure noise
# scores 0.0), unet_cond guided accuracy 0.98 at w = 3 (a model that ignores labels scores about 0.1);
# the flow models after only 500 of their training steps: 0.58, and 1.0 at w = 3.
UNCOND_FLOOR = 0.45
COND_FLOOR = 0.7


def _samples(name, model=None, n=50, steps=10):
    """Samples of a shipped model (or of `model`, e.g. its guided version): DDIM, or flow Euler for a flow model."""
    model = model or load_pretrained(name)
    x_T = sample_noise(n, generator=torch.Generator().manual_seed(0))
    sampler = flow_euler_sample_progressive if pretrained_objective(name) == "flow" else ddim_sample_progressive
    return final(sampler(model, x_T, pretrained_schedule(name), steps))


@pytest.mark.parametrize("name", ["unet", needs("unet_flow")])
def test_shipped_unconditional_model_draws_digits(name):
    probs = classify(_samples(name), load_classifier())
    assert confident_share(probs) > UNCOND_FLOOR
    assert len(set(probs.argmax(1).tolist())) >= 8        # not a single digit over and over


@pytest.mark.parametrize("name", ["unet_cond", needs("unet_flow_cond")])
def test_shipped_conditional_model_draws_the_requested_digit(name):
    labels = torch.arange(50) % 10
    guided = cfg_eps_model(load_pretrained(name), labels, w=3.0)        # on the velocity for a flow model
    probs = classify(_samples(name, guided), load_classifier())
    assert guided_accuracy(probs, labels) > COND_FLOOR


@pytest.mark.parametrize("name", [needs("unet_flow"), needs("unet_flow_cond")])
def test_the_command_line_samples_a_shipped_flow_model_with_a_flow_sampler(name, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["sample", "--pretrained", name, "--n", "2", "--steps", "2", "--device", "cpu", "--out", str(out)]) == 0
    assert out.exists() and "(flow-euler," in capsys.readouterr().out        # the default for a flow model
    assert main(["sample", "--pretrained", name, "--sampler", "ddim", "--out", str(out)]) == 2
    assert "--sampler ddim does not apply to this model: it was trained with flow matching" in capsys.readouterr().err


# ----------------------------------------------------------------------------- notebook 13's autoencoder and latent DiT

def latent_shipped(names=LATENT):
    """Skip while notebook 13's files are not registered and in diffusion_lib/weights/."""
    missing = [name for name in names if name not in PRETRAINED or not shipped(name)]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not shipped")


@latent_shipped(("autoencoder",))
def test_the_autoencoder_file_is_small_and_gives_a_codec_not_a_network():
    path = WEIGHTS_DIR / PRETRAINED["autoencoder"].file
    assert path.stat().st_size < 3 * 2 ** 20
    assert "autoencoder" in torch.load(path, map_location="cpu", weights_only=True)
    with pytest.raises(ValueError, match="load_pretrained_codec"):
        load_pretrained("autoencoder")
    codec = load_pretrained_codec("autoencoder")
    z = torch.randn(3, *codec.latent_shape)
    with torch.no_grad():
        images = codec.decode(z)
        assert images.shape == (3, 1, 28, 28) and float(images.abs().max()) <= 1
    record = json.loads((WEIGHTS_DIR / "autoencoder.json").read_text())
    assert record["statistics"]["scale"] == pytest.approx(codec.scale) == pytest.approx(1 / record["statistics"]["std"])


@latent_shipped()
def test_latent_files_are_small_load_with_weights_only_and_carry_the_autoencoder():
    from diffusion_lib.backbones import DiT
    for name in LATENT:
        path = WEIGHTS_DIR / PRETRAINED[name].file
        assert path.stat().st_size < 3 * 2 ** 20
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        assert "optimizer" not in checkpoint and "model" not in checkpoint
        assert "autoencoder" in checkpoint
    with pytest.raises(ValueError, match="load_pretrained_codec"):
        load_pretrained("autoencoder")
    codec, carried = load_pretrained_codec("autoencoder"), load_pretrained_codec("latent_dit")
    assert carried.scale == codec.scale and carried.mean == codec.mean        # the latent model's own autoencoder
    own, theirs = codec.autoencoder.state_dict(), carried.autoencoder.state_dict()
    assert own.keys() == theirs.keys()
    assert all(torch.equal(theirs[k], v) for k, v in own.items() if k.startswith("encoder."))   # the same latents
    fine_tuned = json.loads((WEIGHTS_DIR / "latent_dit.json").read_text()).get("decoder") is not None
    same_decoder = all(torch.equal(theirs[k], v) for k, v in own.items() if k.startswith("decoder."))
    assert same_decoder is not fine_tuned      # the decoder differs exactly when the card says it was fine-tuned
    model = load_pretrained("latent_dit")
    assert isinstance(model, DiT) and not model.training and model.image_shape == codec.latent_shape == (4, 7, 7)
    assert pretrained_objective("latent_dit") == "flow"
    z, t = torch.randn(2, 4, 7, 7), torch.tensor([0, 999])
    with torch.no_grad():
        assert model(z, t).shape == z.shape
        assert codec.decode(z).shape == (2, 1, 28, 28)


@latent_shipped()
def test_the_shipped_latent_model_draws_the_requested_digit_at_w_1():
    """The class-conditional latent DiT with labels 0..9, its conditional velocity (w = 1, one evaluation a step),
    flow Euler 10, decoded by the codec it carries: the classifier reads the asked digit."""
    from diffusion_lib.autoencoder import sample_latent_images
    model, codec = load_pretrained("latent_dit"), load_pretrained_codec("latent_dit")
    assert model.num_classes == 10
    labels = torch.arange(50) % 10
    images = sample_latent_images(model, codec, pretrained_schedule("latent_dit"), 50, 10, seed=0, labels=labels)
    assert guided_accuracy(classify(images, load_classifier()), labels) > COND_FLOOR


@latent_shipped()
def test_the_command_line_samples_the_shipped_latent_model_for_a_label(tmp_path, capsys):
    """`sample --pretrained latent_dit --label 3 --w 1`: four 3s, the grid of sample_latent_images with the same seed
    and labels (the command line guides at w = 1 with two evaluations a step: equal up to rounding)."""
    import numpy as np
    from PIL import Image
    from diffusion_lib.autoencoder import sample_latent_images
    from diffusion_lib.images import image_grid
    out = tmp_path / "threes.png"
    assert main(["sample", "--pretrained", "latent_dit", "--label", "3", "--w", "1", "--steps", "5", "--n", "4",
                 "--seed", "2", "--device", "cpu", "--out", str(out)]) == 0
    assert "(flow-euler," in capsys.readouterr().out
    images = sample_latent_images(load_pretrained("latent_dit"), load_pretrained_codec("latent_dit"),
                                  pretrained_schedule("latent_dit"), 4, 5, seed=2, labels=torch.full((4,), 3))
    pixels = (image_grid(images) * 255).round().to(torch.uint8).numpy()
    assert np.abs(np.asarray(Image.open(out)).astype(int) - pixels.astype(int)).max() <= 1
    assert classify(images, load_classifier()).argmax(1).tolist().count(3) >= 3


@latent_shipped()
def test_latent_cards_record_their_runs_without_absolute_paths():
    for name in LATENT:
        card, record = (WEIGHTS_DIR / f"{name}.md").read_text(), json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
        assert record["command"].startswith("OMP_NUM_THREADS=1 python benchmarks/latent_diffusion.py ")
        assert record["command"].split()[3] in card
        for text in (card, json.dumps(record)):
            assert not any(root in text for root in ("/work/", "/home/", "/tmp/", "/Users/", "C:\\")), name
    scores = json.loads((WEIGHTS_DIR / "latent_dit.json").read_text())["scores"]
    assert scores and all(row["n"] == 500 and row["seed"] == 0 and row["sampler"] == "flow-euler" for row in scores)


@pytest.mark.parametrize("name", [needs("meanflow"), needs("meanflow_cond"), needs("reflow"), needs("reflow_cond")])
def test_the_shipped_few_step_model_samples_in_one_step_from_the_command_line(name, tmp_path, capsys):
    """`sample --pretrained meanflow --steps 1`: the grid of one MeanFlow step, x_0 = x_1 - u(x_1, r = -1, t = T - 1),
    computed here by hand from the same seed; for the conditional model, with labels 0..9 in turn and no further
    guidance (w = 1, one evaluation: the guidance is built in). The reflow students: one flow Euler step,
    x_0 = x_1 - v(x_1, t = T - 1), the conditional one with labels 0..9 and no further guidance (built in)."""
    import numpy as np
    from PIL import Image
    from diffusion_lib.cli import main
    from diffusion_lib.images import image_grid
    from diffusion_lib.samplers import sample_noise
    out = tmp_path / "one_step.png"
    assert main(["sample", "--pretrained", name, "--steps", "1", "--n", "4", "--seed", "3", "--device", "cpu",
                 "--out", str(out)]) == 0
    meanflow = pretrained_objective(name) == "meanflow"
    assert ("(meanflow," if meanflow else "(flow-euler,") in capsys.readouterr().out
    model = load_pretrained(name)
    x_1 = sample_noise(4, model.image_shape, generator=torch.Generator().manual_seed(3))
    labels = None if model.num_classes is None else torch.arange(4) % 10
    with torch.no_grad():
        u = (model(x_1, torch.full((4,), 999.0), labels, r=torch.full((4,), -1.0)) if meanflow
             else model(x_1, torch.full((4,), 999), labels))
    pixels = (image_grid(x_1 - u) * 255).round().to(torch.uint8).numpy()
    assert np.abs(np.asarray(Image.open(out)).astype(int) - pixels.astype(int)).max() <= 1
