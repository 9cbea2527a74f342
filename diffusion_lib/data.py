"""MNIST and Fashion-MNIST as tensors in [-1, 1].

The data root comes from the `root` argument, else $DIFFUSION_LIB_DATA, else
~/.cache/diffusion_lib/data. torchvision's layout is used: <root>/MNIST/raw/*-ubyte and
<root>/FashionMNIST/raw/*-ubyte, four files each (train and test images and labels; torchvision
wants all four even to read one split). Online, the files are downloaded on first use; offline,
put them there yourself (or point DIFFUSION_LIB_DATA at a folder that has them) and pass
download=False.

The files are in the idx format: a big-endian magic number (2051 for images, 2049 for labels),
the sizes (N, 28, 28) or (N,) as big-endian uint32, then N images of 28 x 28 uint8 pixels or N
uint8 labels. Before torchvision reads a file, its header and length are checked, so a file that
is there but truncated or foreign is reported as corrupt, by name.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

DATA_ENV = "DIFFUSION_LIB_DATA"
DEFAULT_ROOT = Path("~/.cache/diffusion_lib/data")

DATASETS = ("mnist", "fashion_mnist")   # the names load_dataset knows
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}   # torchvision's class, and its folder under the root
TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
SPLIT_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),   # (images, labels) of each split
               False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_MAGIC = {"images": 2051, "labels": 2049}                              # 0x00000803: uint8, 3 dims; 0x00000801: 1 dim
IMAGE_SIZE = (28, 28)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on disk and could not be downloaded."""


class MNISTNotFoundError(DatasetNotFoundError):
    """MNIST is not on disk and could not be downloaded (what load_mnist raises)."""


class DatasetCorruptError(ValueError):
    """A dataset's file is on disk but is not a valid idx file of the expected shape."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds MNIST/raw (and FashionMNIST/raw): `root`, else $DIFFUSION_LIB_DATA, else
    ~/.cache/diffusion_lib/data."""
    return Path(root or os.environ.get(DATA_ENV) or DEFAULT_ROOT).expanduser().resolve()


def to_model_range(pixels_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in {0..255} -> float in [-1, 1]: x / 127.5 - 1 (ToTensor then Normalize(0.5, 0.5))."""
    return pixels_uint8.to(torch.float32) / 127.5 - 1.0


def load_dataset(name: str = "mnist", train: bool = True, root: str | os.PathLike | None = None,
                 download: bool = True):
    """(images, labels) of the dataset called `name` (one of DATASETS): images float32 (N, 1, 28, 28) in
    [-1, 1] on the CPU, labels long (N,) in 0..9.

    N = 60,000 for train=True, 10,000 for the test set, for both datasets. The result is cached per
    dataset, root and split. Raises DatasetNotFoundError (MNISTNotFoundError for MNIST) when the files
    are missing and cannot be downloaded, and DatasetCorruptError when a file is there but unreadable.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    return _load_cached(name, str(data_root(root)), bool(train), bool(download))


def load_mnist(train: bool = True, root: str | os.PathLike | None = None, download: bool = True):
    """load_dataset("mnist", ...): MNIST's images (N, 1, 28, 28) in [-1, 1] and labels (N,)."""
    return load_dataset("mnist", train=train, root=root, download=download)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, root: str, train: bool, download: bool):
    raw = Path(root) / FOLDERS[name] / "raw"
    missing = [f for f in (*SPLIT_FILES[True], *SPLIT_FILES[False]) if not (raw / f).exists()]
    if missing and not download:
        raise _not_found(name, raw, missing, "download=False was given")
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, FOLDERS[name])           # MNIST or FashionMNIST
    if missing:
        try:
            dataset_class(root=root, train=train, download=True)
        except Exception as e:  # offline, a proxy, a half-written file...
            raise _not_found(name, raw, missing, f"downloading failed: {e}") from e
    image_file, label_file = (raw / f for f in SPLIT_FILES[train])
    n_images = _check_idx(name, image_file, "images")
    n_labels = _check_idx(name, label_file, "labels")
    if n_images != n_labels:
        raise DatasetCorruptError(f"{TITLES[name]}'s {image_file.name} holds {n_images} images but {label_file.name} "
                                  f"{n_labels} labels (in {raw}): one of them is from another copy or cut short; "
                                  + _fix(name, raw, "both files"))
    ds = dataset_class(root=root, train=train, download=False)
    images = to_model_range(ds.data).unsqueeze(1)   # (N, 1, 28, 28)
    labels = ds.targets.to(torch.long)              # (N,)
    return images, labels


def _check_idx(name: str, path: Path, kind: str) -> int:
    """The number of items N in the idx file at `path` after checking its magic number, its sizes
    ((N, 28, 28) for images, (N,) for labels) and its length; DatasetCorruptError naming the file if not."""
    ndim = 3 if kind == "images" else 1
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    size = path.stat().st_size

    def corrupt(what: str) -> DatasetCorruptError:
        return DatasetCorruptError(f"{TITLES[name]} file {path} is corrupt: {what}; " + _fix(name, path.parent))

    if len(header) < 4 + 4 * ndim:
        raise corrupt(f"it has {size} bytes, fewer than the {4 + 4 * ndim} of an idx header")
    magic = int.from_bytes(header[:4], "big")
    if magic != IDX_MAGIC[kind]:
        raise corrupt(f"its magic number is {magic}, where idx {kind} files start with {IDX_MAGIC[kind]}")
    shape = tuple(int.from_bytes(header[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if shape[0] == 0:
        raise corrupt(f"its header announces 0 {kind}")
    if kind == "images" and shape[1:] != IMAGE_SIZE:
        raise corrupt(f"its images are {shape[1]} x {shape[2]} pixels, not 28 x 28")
    expected = 4 + 4 * ndim + shape[0] * (IMAGE_SIZE[0] * IMAGE_SIZE[1] if kind == "images" else 1)
    if size != expected:
        raise corrupt(f"its header announces {shape[0]} {kind}, {expected} bytes in all, but the file has {size} "
                      "bytes (cut short by an interrupted download or copy?)")
    return shape[0]


def _fix(name: str, raw: Path, which: str = "the file") -> str:
    files = ", ".join((*SPLIT_FILES[True], *SPLIT_FILES[False]))
    return (f"delete {which} and call load_dataset({name!r}, download=True) to download a fresh copy into {raw}, "
            f"or copy a good uncompressed copy there ({files})")


def _not_found(name: str, raw: Path, missing: list[str], why: str) -> DatasetNotFoundError:
    error = MNISTNotFoundError if name == "mnist" else DatasetNotFoundError
    everything = ", ".join((*SPLIT_FILES[True], *SPLIT_FILES[False]))
    example = f" (for example: export {DATA_ENV}=../shared/data)" if name == "mnist" else ""
    return error(f"{TITLES[name]} not found in {raw} ({why}): missing {', '.join(missing)}; put the missing "
                 f"uncompressed files in that folder (torchvision wants all four, {everything}, even to read one "
                 f"split), or set {DATA_ENV} to a folder that has {FOLDERS[name]}/raw/ inside it{example}, or connect "
                 f"to the internet and call load_dataset({name!r}, download=True)")
