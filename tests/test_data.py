"""MNIST loading: shape and range against the raw idx files, and a clear error when the files are missing."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_lib.data import DATA_ENV, MNISTNotFoundError, data_root, load_mnist, to_model_range


def mnist_root() -> Path:
    """The folder load_mnist() uses by default ($DIFFUSION_LIB_DATA, set by conftest.py when the shared
    copy exists); the tests that need the files skip when it has none."""
    root = data_root()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"MNIST is not in {root} (set {DATA_ENV})")
    return root


def read_idx(path: Path) -> np.ndarray:
    """An idx file read by hand: big-endian magic (0, 0, 8, ndim), ndim uint32 sizes, then uint8 data."""
    raw = path.read_bytes()
    assert raw[:3] == b"\x00\x00\x08"
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def test_train_split():
    root = mnist_root()
    images, labels = load_mnist()
    assert images.shape == (60_000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (60_000,) and labels.dtype == torch.long
    assert float(images.min()) == -1.0 and float(images.max()) == 1.0
    assert set(labels.unique().tolist()) == set(range(10))
    pixels = torch.from_numpy(read_idx(root / "MNIST" / "raw" / "train-images-idx3-ubyte").copy()).unsqueeze(1)
    assert torch.equal(((images + 1) * 127.5).round().to(torch.uint8), pixels)    # every image, in file order
    expected = (pixels[:1000].float() / 255 - 0.5) / 0.5                          # ToTensor, then Normalize(0.5, 0.5)
    assert torch.allclose(images[:1000], expected, atol=1e-6)
    raw_labels = read_idx(root / "MNIST" / "raw" / "train-labels-idx1-ubyte").astype(np.int64)
    assert torch.equal(labels, torch.from_numpy(raw_labels))


def test_test_split():
    root = mnist_root()
    images, labels = load_mnist(train=False, root=root)
    assert images.shape == (10_000, 1, 28, 28) and labels.shape == (10_000,)
    assert float(images.min()) == -1.0 and float(images.max()) == 1.0


def test_to_model_range():
    pixels = torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8)
    expected = torch.tensor([-1.0, 1 / 127.5 - 1, 127 / 127.5 - 1, 128 / 127.5 - 1, 1.0])
    assert torch.allclose(to_model_range(pixels), expected, atol=1e-6)
    assert to_model_range(pixels).dtype == torch.float32


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "from_env"))
    assert data_root() == (tmp_path / "from_env").resolve()
    assert data_root(tmp_path / "given") == (tmp_path / "given").resolve()
    monkeypatch.delenv(DATA_ENV)
    assert data_root() == Path("~/.cache/diffusion_lib/data").expanduser().resolve()


@pytest.mark.parametrize("via_env", [False, True])
def test_missing_files_offline(tmp_path, monkeypatch, via_env):
    root = tmp_path / ("env" if via_env else "arg")
    root.mkdir()
    if via_env:
        monkeypatch.setenv(DATA_ENV, str(root))
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(root=None if via_env else root, download=False)
    message = str(info.value)
    assert str(root.resolve() / "MNIST" / "raw") in message
    assert DATA_ENV in message and "train-images-idx3-ubyte" in message
    assert isinstance(info.value, FileNotFoundError)
    assert os.listdir(root) == []          # nothing was written
