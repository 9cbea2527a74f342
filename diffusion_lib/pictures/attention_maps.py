"""The DiT's view of an image: its patches (tokens) and what each block's attention heads look at (notebook 13)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .style import MAX_WIDTH_IN, TICK_SIZE, TITLE_SIZE

MAX_HEIGHT_IN = 6.6      # inches: a static figure stays within one screen (660 px at 100 dpi)


def plot_patches(image: torch.Tensor, patch: int, tokens: torch.Tensor, width_in: float = 9.0):
    """Left: a (1, H, W) image with its patch x patch grid and each patch's token number; right: the tokens
    (N, patch * patch) as rows of pixels, what the transformer receives (before its linear embedding)."""
    c, h, w = image.shape
    fig, (left, right) = plt.subplots(1, 2, figsize=(min(width_in, MAX_WIDTH_IN), 4.2),
                                      gridspec_kw={"width_ratios": [1, 1.3]})
    left.imshow(image[0].detach().cpu(), cmap="gray", vmin=-1, vmax=1)
    for k in range(0, h + 1, patch):
        left.axhline(k - 0.5, color="tab:orange", lw=1)
    for k in range(0, w + 1, patch):
        left.axvline(k - 0.5, color="tab:orange", lw=1)
    cols = w // patch
    for i in range((h // patch) * cols):
        r, q = divmod(i, cols)
        left.text(q * patch + patch / 2 - 0.5, r * patch + patch / 2 - 0.5, str(i), color="tab:orange",
                  ha="center", va="center", fontsize=TICK_SIZE - 1)
    left.set_title(f"{h} x {w} image, {patch} x {patch} patches", fontsize=TITLE_SIZE)
    left.axis("off")
    right.imshow(tokens.detach().cpu(), cmap="gray", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    right.set_title(f"{tokens.shape[0]} tokens of {tokens.shape[1]} numbers", fontsize=TITLE_SIZE)
    right.set_xlabel("pixel within the patch (row by row)", fontsize=TICK_SIZE + 1)
    right.set_ylabel("token (patch number)", fontsize=TICK_SIZE + 1)
    right.tick_params(labelsize=TICK_SIZE)
    fig.tight_layout(pad=0.4)
    return fig


def plot_attention_maps(maps: torch.Tensor, query: int, grid: tuple[int, int], image: torch.Tensor | None = None,
                        title: str = ""):
    """maps (depth, heads, N, N) of one picture (DiT.attention_maps(...)[:, b]): for each block (row) and head
    (column), where token `query` looks, as an image of the grid (rows, cols) of tokens; the query is marked.
    `image` (1, H, W), if given, is drawn first for reference."""
    depth, heads, n, _ = maps.shape
    rows, cols = grid
    extra = 1 if image is not None else 0
    size = min(1.7, (MAX_WIDTH_IN - 0.3) / (heads + extra), (MAX_HEIGHT_IN - 0.6) / depth)
    fig, axes = plt.subplots(depth, heads + extra, figsize=(size * (heads + extra) + 0.3, size * depth + 0.6),
                             squeeze=False)
    qr, qc = divmod(query, cols)
    for b in range(depth):
        if extra:
            ax = axes[b, 0]
            if b == 0:
                ax.imshow(image[0].detach().cpu(), cmap="gray", vmin=-1, vmax=1)
                ax.set_title("the digit", fontsize=TICK_SIZE)
            ax.axis("off")
        for k in range(heads):
            ax = axes[b, k + extra]
            ax.imshow(maps[b, k, query].reshape(rows, cols).detach().cpu(), cmap="magma", vmin=0)
            ax.plot(qc, qr, marker="+", color="cyan", ms=10, mew=2)
            ax.set_xticks([])
            ax.set_yticks([])
            if b == 0:
                ax.set_title(f"head {k + 1}", fontsize=TICK_SIZE)
            if k == 0:
                ax.set_ylabel(f"block {b + 1}", fontsize=TICK_SIZE)
    if title:
        fig.suptitle(title, fontsize=TICK_SIZE + 1)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()) if title else None)   # room for the title
    return fig
