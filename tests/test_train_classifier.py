"""benchmarks/train_classifier.py: the recipe of the metrics' classifier (augmentation, non-digits, a tiny
training run that leaves the global random state alone) and the file it writes, which metrics loads."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from _tiny import one_thread  # noqa: F401 (one_thread is autouse)
from diffusion_lib.measure.metrics import MNISTClassifier, classify, load_classifier

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_classifier.py"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("train_classifier", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                        # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_random_shift_moves_each_image_by_at_most_max_shift_and_fills_with_background(recipe):
    B, s = 200, 2
    x = -torch.ones(B, 1, 28, 28)
    x[:, 0, 14, 10] = 1.0                                   # one bright pixel, away from the border
    shifted = recipe.random_shift(x, s, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    bright = torch.nonzero(shifted[:, 0] == 1.0)            # (B, 3): image, row, column
    assert torch.equal(bright[:, 0], torch.arange(B))       # the pixel survives, once per image
    rows, cols = bright[:, 1] - 14, bright[:, 2] - 10
    assert rows.abs().max() <= s and cols.abs().max() <= s
    every_shift = {(r, c) for r in range(-s, s + 1) for c in range(-s, s + 1)}
    assert {(int(r), int(c)) for r, c in zip(rows, cols)} == every_shift          # 200 draws hit all 25
    assert bool((shifted[shifted != 1.0] == -1.0).all())    # everything else is background
    edge = torch.ones(1, 1, 28, 28)                         # a white page: what enters from outside is -1
    moved = recipe.random_shift(edge.expand(50, -1, -1, -1), s, torch.Generator().manual_seed(1))
    assert bool((moved == -1.0).any()) and bool((moved[:, :, s:-s, s:-s] == 1.0).all())


def test_non_digits_are_images_in_range_of_four_kinds(recipe):
    x0 = torch.rand(400, 1, 28, 28) * 2 - 1
    images = recipe.non_digits(x0, torch.Generator().manual_seed(0))
    again = recipe.non_digits(x0, torch.Generator().manual_seed(0))
    assert images.shape == x0.shape and torch.equal(images, again)
    assert float(images.min()) >= -1 and float(images.max()) <= 1
    flat = images.flatten(1).std(1) == 0                    # grey pages: one value per image
    assert 60 < int(flat.sum()) < 140                        # about a quarter of 400
    correlation = torch.stack([torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]
                               for a, b in zip(images[~flat], x0[~flat])])
    assert float(correlation.abs().max()) < 0.5             # drowned digits keep a signal weight below 0.25


def test_train_classifier_is_seeded_and_leaves_the_global_rng_alone(recipe):
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(64, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (64,), generator=g)
    config = recipe.ClassifierConfig(epochs=1, batch_size=16, outliers_per_batch=4, width=4, seed=3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = recipe.train_classifier(images, labels, config, progress=False)
    assert torch.equal(torch.get_rng_state(), state)        # the caller's random stream is untouched
    second = recipe.train_classifier(images, labels, config, progress=False)
    other = recipe.train_classifier(images, labels, recipe.ClassifierConfig(**{**vars(config), "seed": 4}),
                                    progress=False)
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    assert not torch.equal(first.head.weight, other.head.weight)
    assert isinstance(first, MNISTClassifier) and not first.training
    fresh = MNISTClassifier(width=4)
    assert not torch.equal(first.head.weight, fresh.head.weight)   # it trained


def test_save_classifier_writes_what_metrics_loads(recipe, tmp_path):
    torch.manual_seed(0)
    model = MNISTClassifier(width=4).eval()
    path = recipe.save_classifier(model, tmp_path / "classifier.pt", test_accuracy=0.5)
    loaded = load_classifier(path)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert torch.equal(classify(x, loaded), classify(x, model))
    assert torch.load(path, weights_only=True)["test_accuracy"] == 0.5
