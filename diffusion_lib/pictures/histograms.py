"""Pixel histograms of noised images, against the N(0, 1) density (notebook 02).

    plot_pixel_histograms                    one histogram per noise level
    plot_forward_state, forward_state_slider  x_t = q_sample(x_0, t) for each schedule: a few images and the histogram
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from .grids import image_grid
from .live import LiveFigure
from .style import MAX_WIDTH_IN, SLIDER_HEIGHT_IN, TICK_SIZE, TITLE_SIZE, style_axes


HIST_BINS, HIST_RANGE = 60, (-4.0, 4.0)


def _pixel_density(x: torch.Tensor, bins: int = HIST_BINS) -> np.ndarray:
    """The histogram of x's pixel values on HIST_RANGE as a density (bars of area 1 in all, as hist(density=True))."""
    values = x.detach().float().flatten().cpu().numpy()
    return np.histogram(values, bins=bins, range=HIST_RANGE, density=True)[0]


def _histogram(ax, x: torch.Tensor, title: str, normal: bool = True, bins: int = HIST_BINS):
    """A filled histogram of x's pixels with the N(0, 1) density; returns the histogram's artist (a StepPatch)."""
    edges = np.linspace(*HIST_RANGE, bins + 1)
    bars = ax.stairs(_pixel_density(x, bins), edges, fill=True, color="tab:purple", alpha=0.7, label="pixels of $x_t$")
    if normal:
        grid = np.linspace(*HIST_RANGE, 200)
        ax.plot(grid, np.exp(-grid ** 2 / 2) / math.sqrt(2 * math.pi), "k--", lw=2, label="N(0, 1)")
    ax.set_xlim(*HIST_RANGE)
    ax.set_xticks([-3, -2, -1, 0, 1, 2, 3])       # none at the corners, where they would run into the y labels
    style_axes(ax, title, "pixel value", "density")
    return bars


def plot_pixel_histograms(images, labels, title: str | None = None):
    """One histogram of pixel values per entry of `images` (a list of tensors), with the N(0, 1) density."""
    K = len(images)
    ncols = min(K, 5)
    nrows = math.ceil(K / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(MAX_WIDTH_IN, 2.1 * ncols + 0.5), 2.9 * nrows + 0.3),
                             squeeze=False, sharey=True)
    for ax, x, label in zip(axes.flat, images, labels):
        bars = _histogram(ax, x, str(label))
        ax.set_ylim(0, 1.0)
        ax.set_xticks([-2, 0, 2])
        if bars.get_data().values.max() > 1.0:
            ax.text(0.97, 0.96, "peaks\ncut at 1", transform=ax.transAxes, ha="right", va="top", fontsize=TICK_SIZE - 1)
    axes[0, 0].legend(fontsize=TICK_SIZE - 1, loc="upper left", handlelength=1.2, borderpad=0.3)
    for i, ax in enumerate(axes.flat):
        if i % ncols:
            ax.set_ylabel(None)
    for ax in axes.flat[K:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE)
    fig.tight_layout(pad=0.4)
    return fig


def plot_forward_state(x0: torch.Tensor, t: int, schedules, noise: torch.Tensor, show: int = 8):
    """The slider picture of notebook 02: x_t = q_sample(x0, t) for each schedule, a few images and the pixel
    histogram (live twin for a slider: forward_state_slider)."""
    return _forward_state(x0, t, schedules, noise, show)[0]


def forward_state_slider(x0: torch.Tensor, schedules, noise: torch.Tensor, show: int = 8) -> LiveFigure:
    """The live twin of plot_forward_state for a slider over t: render(t) -> PNG bytes."""
    return LiveFigure(lambda t: _forward_state(x0, int(t), schedules, noise, show))


def _forward_state(x0, t, schedules, noise, show):
    from ..forward import q_sample

    nrow = show // 2 if show > 4 else show
    fig, axes = plt.subplots(len(schedules), 2, figsize=(MAX_WIDTH_IN * 0.86, min(SLIDER_HEIGHT_IN, 2.55 * len(schedules) + 0.45)),
                             squeeze=False, gridspec_kw={"width_ratios": [1.45, 1]})

    def states(t):
        t_batch = torch.full((x0.shape[0],), t, dtype=torch.long)
        return [q_sample(x0, t_batch, s, noise=noise) for s in schedules]

    def caption(s, t):
        return f"{s.name}: " + r"$\sqrt{\bar\alpha_t}$" + f" = {s.sqrt_alpha_bar[t].item():.3f}"

    images, titles, bars = [], [], []
    for i, (row, s, x_t) in enumerate(zip(axes, schedules, states(t))):
        images.append(row[0].imshow(image_grid(x_t[:show], nrow=nrow), cmap="gray", vmin=0, vmax=1))
        row[0].set_axis_off()
        titles.append(row[0].set_title(caption(s, t), fontsize=TITLE_SIZE))
        bars.append(_histogram(row[1], x_t, f"pixels of {x0.shape[0]} images"))
        row[1].set_ylim(0, 1.5)
        row[1].legend(fontsize=TICK_SIZE - 1, loc="upper left", handlelength=1.2, borderpad=0.3)
        if i < len(schedules) - 1:
            row[1].set_xlabel(None)                # "pixel value" once, under the last histogram
    suptitle = fig.suptitle(f"t = {t}", fontsize=TITLE_SIZE + 1)
    fig.tight_layout(pad=0.4, h_pad=0.5)

    def update(t: int) -> None:
        for image, title, bar, s, x_t in zip(images, titles, bars, schedules, states(t)):
            image.set_data(image_grid(x_t[:show], nrow=nrow))
            title.set_text(caption(s, t))
            bar.set_data(values=_pixel_density(x_t))
        suptitle.set_text(f"t = {t}")

    return fig, [*images, *titles, *bars, suptitle], update
