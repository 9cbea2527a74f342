"""Notebook 13's exercise: patchify, the DiT's first step, written by hand and checked against the library's."""
from __future__ import annotations

import torch

from . import call_answer, known_mistake
from ..backbones import patchify, unpatchify

CASES = (((1, 28, 28), 4), ((1, 28, 28), 2), ((4, 7, 7), 1), ((3, 6, 4), 2))   # (C, H, W), patch


def _candidates(x: torch.Tensor, p: int):
    """Plausible mistakes, each with its hint."""
    b, c, h, w = x.shape
    n, d = (h // p) * (w // p), c * p * p
    return [
        (x.reshape(b, n, d),
         "a plain reshape cuts the image into runs of pixels along the rows, not into squares: split H and W into "
         "(H / p, p) and (W / p, p) and move the two patch-grid axes in front (permute) before flattening."),
        (x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, n, d),
         "your tokens list each pixel's channels together (channels last inside the patch); the library lists each "
         "channel's p x p patch in turn: order the axes (B, H/p, W/p, C, p, p)."),
        (x.reshape(b, c, h // p, p, w // p, p).permute(0, 4, 2, 1, 3, 5).reshape(b, n, d),
         "your tokens go down the columns first; read the patches row by row, like text: (B, H/p, W/p, ...)."),
        (x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 5, 3).reshape(b, n, d),
         "inside a patch, your pixels go column by column; keep each patch's rows in order: (..., C, p_row, p_col)."),
    ]


def check(answer) -> None:
    """answer(x, p) must return the tokens (B, N, C p p) of dl.backbones.patchify for images (B, C, H, W): the
    p x p squares in reading order, each listing its channels' pixels row by row, so that unpatchify inverts it."""
    g = torch.Generator().manual_seed(13)
    for shape, p in CASES:
        x = torch.randn((2, *shape), generator=g)
        expected = patchify(x, p)
        where = f"(images of shape {tuple(x.shape)}, patch {p})"
        got = call_answer(answer, (x.clone(), p), where,
                          "x.reshape(B, C, H // p, p, W // p, p) splits the rows and columns into patches",
                          expected.shape, "N = (H / p) (W / p) tokens of C p p numbers each")
        if torch.equal(got, expected):
            assert torch.equal(unpatchify(got, p, shape), x)
            continue
        hint = known_mistake(got, _candidates(x, p), rtol=0, atol=0)
        if hint:
            raise AssertionError(f"{where}: {hint}")
        raise AssertionError(f"{where}: your tokens hold other numbers than the library's patchify "
                             "(unpatchify of them does not give the image back).")


# A plausible mistake: a plain reshape, which cuts rows into runs of pixels instead of squares.
def WRONG_EXAMPLE(x, p):
    b, c, h, w = x.shape
    return x.reshape(b, (h // p) * (w // p), c * p * p)
