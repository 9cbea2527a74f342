"""MNIST as tensors in [-1, 1].

The data root comes from the `root` argument, else $DIFFUSION_LIB_DATA, else
~/.cache/diffusion_lib/data. torchvision's layout is used: <root>/MNIST/raw/*-ubyte. Online, the
files are downloaded on first use; offline, put them there yourself (or point DIFFUSION_LIB_DATA
at a folder that has them) and pass download=False.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

DATA_ENV = "DIFFUSION_LIB_DATA"
DEFAULT_ROOT = Path("~/.cache/diffusion_lib/data")
MNIST_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


DATASETS = ("mnist", "fashion_mnist")   # the names load_dataset knows


class MNISTNotFoundError(FileNotFoundError):
    """MNIST is not on disk and could not be downloaded."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds MNIST/raw: `root`, else $DIFFUSION_LIB_DATA, else ~/.cache/diffusion_lib/data."""
    return Path(root or os.environ.get(DATA_ENV) or DEFAULT_ROOT).expanduser().resolve()


def to_model_range(pixels_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in {0..255} -> float in [-1, 1]: x / 127.5 - 1 (ToTensor then Normalize(0.5, 0.5))."""
    return pixels_uint8.to(torch.float32) / 127.5 - 1.0


def load_mnist(train: bool = True, root: str | os.PathLike | None = None, download: bool = True):
    """(images, labels): images float32 (N, 1, 28, 28) in [-1, 1] on the CPU, labels long (N,).

    N = 60,000 for train=True, 10,000 for the test set. The result is cached per root and split.
    """
    return _load_mnist_cached(str(data_root(root)), bool(train), bool(download))


def load_dataset(name: str = "mnist", train: bool = True, root: str | os.PathLike | None = None,
                 download: bool = True):
    """(images, labels) of the dataset called `name` (one of DATASETS), as load_mnist returns them."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if name == "mnist":
        return load_mnist(train=train, root=root, download=download)
    raise NotImplementedError("fashion_mnist: being added")


@functools.lru_cache(maxsize=4)
def _load_mnist_cached(root: str, train: bool, download: bool):
    raw = Path(root) / "MNIST" / "raw"
    have_files = all((raw / f).exists() for f in MNIST_FILES[train])
    if not have_files and not download:
        raise MNISTNotFoundError(_missing_message(raw, train, "download=False was given"))
    from torchvision.datasets import MNIST
    try:
        ds = MNIST(root=root, train=train, download=download and not have_files)
    except Exception as e:  # offline, a proxy, a half-written file...
        raise MNISTNotFoundError(_missing_message(raw, train, f"downloading failed: {e}")) from e
    images = to_model_range(ds.data).unsqueeze(1)   # (N, 1, 28, 28)
    labels = ds.targets.to(torch.long)              # (N,)
    return images, labels


def _missing_message(raw: Path, train: bool, why: str) -> str:
    files = ", ".join(MNIST_FILES[train])
    return (f"MNIST ({'train' if train else 'test'} split) not found in {raw} ({why}). "
            f"Put the uncompressed files {files} in that folder, or set {DATA_ENV} to a folder "
            f"that has MNIST/raw/ inside it (for example: export {DATA_ENV}=../shared/data), "
            "or connect to the internet and call load_mnist(download=True).")
