"""Data as tokens for masked diffusion (notebook 14): MNIST digits quantised to a few grey levels, and surnames
as character sequences.

Digits: quantise(images, levels) maps pixels in [-1, 1] to the nearest of `levels` evenly spaced grey levels,
token k <-> grey -1 + 2k / (levels - 1); dequantise maps back, so the course's metric scores decoded samples.

Surnames: the 88,799 surnames of the 1990 US Census (public domain, a work of the US government), as shipped in
the PyPI package `names` 0.3.0 (MIT licence; its README: "Data in the following files are public domain (derived
from 1990 Census data)"), lower-cased, the 87,957 of at most 11 letters kept, in the Census's order (most frequent
first), in diffusion_lib/corpora/surnames.txt.gz (316 KB). A name becomes `length` = 12 tokens: its letters a-z
(0..25), then the end mark "." (26) repeated to the end, so every name has at least one end mark.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import torch

CORPORA_DIR = Path(__file__).parent / "corpora"
SURNAMES_PATH = CORPORA_DIR / "surnames.txt.gz"
ALPHABET = "abcdefghijklmnopqrstuvwxyz."      # 26 letters and the end mark: V = 27 tokens
END = ALPHABET.index(".")
NAME_LENGTH = 12                              # tokens per name: at most 11 letters and one end mark


# ----------------------------------------------------------------------------- digits

def quantise(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Images (B, 1, 28, 28) in [-1, 1] -> tokens (B, 28, 28) long in [0, levels - 1], the nearest grey level."""
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2 (2: black and white), got {levels!r}")
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must have shape (B, 1, H, W), got {tuple(images.shape)}")
    return ((images[:, 0].clamp(-1, 1) + 1) / 2 * (levels - 1)).round().long()


def dequantise(tokens: torch.Tensor, levels: int) -> torch.Tensor:
    """Tokens (B, 28, 28) in [0, levels - 1] -> images (B, 1, 28, 28) in [-1, 1], token k at grey -1 + 2k/(levels - 1)."""
    if tokens.dtype.is_floating_point:
        raise ValueError(f"tokens must be integer grey levels, got dtype {tokens.dtype}")
    return (tokens.float() * 2 / (levels - 1) - 1).unsqueeze(1)


# ----------------------------------------------------------------------------- surnames

def load_names(path: str | os.PathLike = SURNAMES_PATH) -> list[str]:
    """The names in a gzipped (or plain) text file, one a line, lower case a-z (the shipped surnames by default)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no name list at {path}; the surnames ship in diffusion_lib/corpora/ (reinstall "
                                "diffusion_lib), or give a text file with one name a line")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    bad = next((n for n in names if not set(n) <= set(ALPHABET[:-1])), None)
    if bad is not None:
        raise ValueError(f"{path}: names must be lower-case letters a-z only, found {bad!r}")
    return names


def encode_names(names: list[str], length: int = NAME_LENGTH) -> torch.Tensor:
    """Names -> tokens (N, length): letters 0..25, then the end mark 26 to the end. Names must be shorter than length."""
    too_long = next((n for n in names if len(n) >= length), None)
    if too_long is not None:
        raise ValueError(f"{too_long!r} has {len(too_long)} letters; names must have at most {length - 1} "
                         f"(one token is kept for the end mark)")
    bad = next((n for n in names if not set(n) <= set(ALPHABET[:-1])), None)
    if bad is not None:
        raise ValueError(f"names must be lower-case letters a-z only, got {bad!r}; pass name.lower() for "
                         "capitals, and drop other characters")
    rows = [[ALPHABET.index(c) for c in n] + [END] * (length - len(n)) for n in names]
    return torch.tensor(rows, dtype=torch.long).reshape(len(names), length)


def decode_names(tokens: torch.Tensor) -> list[str]:
    """Tokens (N, L) -> names: the letters before the first end mark (a [MASK] or [BOS] id prints as '_')."""
    names = []
    for row in tokens.tolist():
        text = "".join(ALPHABET[i] if i < len(ALPHABET) else "_" for i in row)
        names.append(text.split(".", 1)[0])
    return names


def names_as_text(tokens: torch.Tensor) -> list[str]:
    """Tokens (N, L) -> the whole rows as text, end marks included and any [MASK] (or [BOS]) id as '_':
    [[0, 13, 13, 26, 27]] -> ['ann._'] (decode_names keeps only the letters before the first end mark)."""
    return ["".join(ALPHABET[i] if i < len(ALPHABET) else "_" for i in row) for row in tokens.tolist()]


def characters(tokens: torch.Tensor) -> torch.Tensor:
    """(N,) characters per name counted for bits per character: its letters and one end mark."""
    is_end = tokens == END
    first_end = torch.where(is_end.any(1), is_end.float().argmax(1), torch.full_like(tokens[:, 0], tokens.shape[1]))
    return first_end + 1


def split_names(names: list[str], held_out: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
    """(training, held-out): a random share `held_out` of the names (permutation from `seed`) kept for evaluation."""
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a share in (0, 1), got {held_out!r}")
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    n_held = max(1, int(round(held_out * len(names))))
    return [names[i] for i in order[n_held:]], [names[i] for i in order[:n_held]]
