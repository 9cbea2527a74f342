"""Images in the model's range [-1, 1] turned into pixels: a tiled grid, and a PNG file of it.

This is what the command line writes (`sample --out grid.png`); the notebooks draw the same grid with
pictures.grids.show_grid. Only torch and Pillow (which torchvision already needs) are used here, so the
core of the library never loads matplotlib.
"""
from __future__ import annotations

import math
import os

import torch


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped (only for display: the model works in [-1, 1])."""
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> torch.Tensor:
    """Tile (B, 1, H, W) images in [-1, 1] into one (rows*(H+pad)-pad, nrow*(W+pad)-pad) float tensor in [0, 1],
    white between the tiles; nrow images per row (default: a square grid)."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    x = to_unit(images)[:, 0]                                                   # (B, H, W)
    B, H, W = x.shape
    nrow = nrow or math.ceil(math.sqrt(B))
    rows = math.ceil(B / nrow)
    grid = torch.ones(rows * (H + pad) - pad, nrow * (W + pad) - pad)
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[r * (H + pad):r * (H + pad) + H, c * (W + pad):c * (W + pad) + W] = x[i]
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> None:
    """Write image_grid(images) to a greyscale PNG at `path`, one pixel per image pixel, atomically (as checkpoints
    are written: a temporary file beside it, then a rename), so a failed write leaves no partial file. Images with
    NaN or infinite values are refused: they would be written as black or white pixels without a word."""
    from PIL import Image
    from .checkpoints import write_atomically

    if not bool(torch.isfinite(images).all()):
        raise ValueError("the images hold NaN or infinite values, so no PNG was written; check the model and the "
                         "sampler's settings (a sampler stops at the step where this happens)")
    pixels = (image_grid(images, nrow) * 255).round().to(torch.uint8).numpy()
    write_atomically(path, lambda f: Image.fromarray(pixels, mode="L").save(f, format="PNG"))
