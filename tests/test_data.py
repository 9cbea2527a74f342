"""MNIST and Fashion-MNIST loading: shape and range against the raw idx files (the real MNIST when it is there,
tiny idx files written into a temporary folder otherwise), and clear errors for missing and corrupt files.
Nothing here downloads."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_lib.data import (DATA_ENV, DATASETS, DatasetCorruptError, DatasetNotFoundError, MNISTNotFoundError,
                                data_root, load_dataset, load_mnist, to_model_range)


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


# ----------------------------------------------------------------------------- tiny idx files in a temporary folder

def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """An idx file as torchvision reads it: the big-endian magic number, the sizes as big-endian uint32, the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def tiny_dataset(root: Path, folder: str = "FashionMNIST", n_train: int = 5, n_test: int = 3) -> dict:
    """Write the four files of a tiny dataset into root/folder/raw; returns {train: (pixels, labels)}."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for train, n, prefix in ((True, n_train, "train"), (False, n_test, "t10k")):
        pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        pixels[0, 0, :2] = (0, 255)                        # both ends of the range appear
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels, 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, 2049)
        written[train] = (pixels, labels)
    return written


@pytest.fixture
def no_download(monkeypatch):
    """Make any download attempt fail the test."""
    import torchvision.datasets

    def refuse(self):
        raise AssertionError("a download was attempted")
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", refuse)   # FashionMNIST inherits it


@pytest.mark.parametrize("train", [True, False])
def test_fashion_mnist_from_tiny_files(tmp_path, no_download, train):
    pixels, labels = tiny_dataset(tmp_path)[train]
    images, got_labels = load_dataset("fashion_mnist", train=train, root=tmp_path, download=False)
    n = pixels.shape[0]
    assert images.shape == (n, 1, 28, 28) and images.dtype == torch.float32
    assert got_labels.shape == (n,) and got_labels.dtype == torch.long
    expected = torch.from_numpy(pixels.astype(np.float32)).unsqueeze(1) / 127.5 - 1    # x / 127.5 - 1, by hand
    assert torch.equal(images, expected)
    assert float(images[0, 0, 0, 0]) == -1.0 and float(images[0, 0, 0, 1]) == 1.0
    assert torch.equal(got_labels, torch.from_numpy(labels.astype(np.int64)))


def test_fashion_mnist_with_download_true_reads_the_files_that_are_there(tmp_path, no_download):
    pixels, _ = tiny_dataset(tmp_path)[True]
    images, _ = load_dataset("fashion_mnist", root=tmp_path)             # download=True: nothing to fetch
    assert images.shape[0] == pixels.shape[0]


def test_load_dataset_mnist_is_load_mnist(tmp_path, no_download):
    pixels, labels = tiny_dataset(tmp_path, folder="MNIST")[False]
    images, got_labels = load_dataset("mnist", train=False, root=tmp_path, download=False)
    assert torch.equal(images, load_mnist(train=False, root=tmp_path, download=False)[0])
    assert torch.equal(got_labels, torch.from_numpy(labels.astype(np.int64)))
    with pytest.raises(DatasetNotFoundError, match="FashionMNIST"):      # the MNIST files are not Fashion-MNIST's
        load_dataset("fashion_mnist", root=tmp_path, download=False)


def test_missing_fashion_mnist_names_its_folder_and_files(tmp_path, no_download):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion_mnist", root=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path.resolve() / "FashionMNIST" / "raw") in message
    assert "t10k-labels-idx1-ubyte" in message and DATA_ENV in message and "download=False" in message
    assert not isinstance(info.value, MNISTNotFoundError) and isinstance(info.value, FileNotFoundError)
    assert os.listdir(tmp_path) == []


def test_one_missing_file_of_four_is_named(tmp_path, no_download):
    tiny_dataset(tmp_path, folder="MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(MNISTNotFoundError, match="missing t10k-images-idx3-ubyte") as info:
        load_mnist(train=True, root=tmp_path, download=False)        # torchvision needs all four, even for train
    assert "train-images" not in str(info.value).split("missing")[1].split(".")[0]


def _corrupt_truncated(raw):
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    return path, "cut short"


def _corrupt_magic(raw):
    path = raw / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[:4] = (2051).to_bytes(4, "big")                             # an images header on a labels file
    path.write_bytes(bytes(data))
    return path, "magic number is 2051"


def _corrupt_html(raw):
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(b"<html>proxy error</html>")                     # what a captive portal saves
    return path, "magic number"


def _corrupt_size(raw):
    path = raw / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((5, 32, 32), dtype=np.uint8), 2051)
    return path, "32 x 32 pixels"


def _corrupt_empty(raw):
    """A header that announces 0 images (issue 22: torch's reader failed with "offset (16 bytes) must be ...")."""
    path = raw / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((0, 28, 28), dtype=np.uint8), 2051)
    return path, "its header announces 0 images"


@pytest.mark.parametrize("damage", [_corrupt_truncated, _corrupt_magic, _corrupt_html, _corrupt_size, _corrupt_empty])
@pytest.mark.parametrize("download", [False, True])
def test_a_corrupt_file_is_reported_as_corrupt_by_name(tmp_path, no_download, damage, download):
    tiny_dataset(tmp_path, folder="MNIST")
    path, what = damage(tmp_path / "MNIST" / "raw")
    with pytest.raises(DatasetCorruptError) as info:
        load_mnist(root=tmp_path, download=download)                  # the file is there: no download is tried
    message = str(info.value)
    assert f"{path} is corrupt" in message and what in message
    assert "delete the file" in message and "download=True" in message and "not found" not in message
    assert isinstance(info.value, ValueError)                         # the command line reports it in one line


def test_images_and_labels_of_different_lengths_are_corrupt(tmp_path, no_download):
    tiny_dataset(tmp_path)
    write_idx(tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte", np.zeros(2, dtype=np.uint8), 2049)
    with pytest.raises(DatasetCorruptError, match="holds 3 images but t10k-labels-idx1-ubyte 2 labels"):
        load_dataset("fashion_mnist", train=False, root=tmp_path, download=False)
    load_dataset("fashion_mnist", train=True, root=tmp_path, download=False)   # the other split is fine


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar10'.*'mnist', 'fashion_mnist'"):
        load_dataset("cifar10")
    assert DATASETS == ("mnist", "fashion_mnist")
