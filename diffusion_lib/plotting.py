"""Pictures: image grids, strips over time, schedule curves. Images come in as (B, 1, H, W) in [-1, 1]."""
from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np
import torch


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped (only for display: the model works in [-1, 1])."""
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (B, 1, H, W) images in [-1, 1] into one (rows*(H+pad)-pad, nrow*(W+pad)-pad) array in [0, 1]."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    x = to_unit(images)[:, 0].numpy()
    B, H, W = x.shape
    nrow = nrow or math.ceil(math.sqrt(B))
    rows = math.ceil(B / nrow)
    grid = np.ones((rows * (H + pad) - pad, nrow * (W + pad) - pad), dtype=np.float32)
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[r * (H + pad):r * (H + pad) + H, c * (W + pad):c * (W + pad) + W] = x[i]
    return grid


def show_grid(images: torch.Tensor, nrow: int | None = None, title: str | None = None, ax=None, scale: float = 0.6):
    """Draw image_grid(images) on ax (a new figure if None); returns the AxesImage."""
    grid = image_grid(images, nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(2, scale * grid.shape[1] / 30 * 3), max(2, scale * grid.shape[0] / 30 * 3)))
    im = ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return im


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> None:
    """Write image_grid(images) to a PNG."""
    plt.imsave(path, image_grid(images, nrow), cmap="gray", vmin=0, vmax=1)


def show_strip(images: torch.Tensor, labels=None, title: str | None = None, scale: float = 1.2):
    """One row of images (K, 1, H, W) with a caption under each: the static twin of a slider."""
    K = images.shape[0]
    fig, axes = plt.subplots(1, K, figsize=(scale * K, scale * 1.3), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(to_unit(images[i])[0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
