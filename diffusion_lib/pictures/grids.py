"""Image grids and tables. Images come in as (B, 1, H, W) in [-1, 1].

    show_grid                        one grid of images (samples)                                  (every notebook)
    show_rows, labelled_grid_slider  a table of images, each row named, columns labelled, and its slider twin
    plot_chain_step, chain_slider    a sampling chain after k steps: x_t beside the predicted x_0  (notebook 06)
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..images import image_grid as _image_grid
from .live import LiveFigure
from .style import LABEL_SIZE, MAX_WIDTH_IN, SLIDER_HEIGHT_IN, TICK_SIZE, TITLE_SIZE, text_inches, two_lines


GRID_TILE_IN = 0.42        # inches per image (28 pixels and the gap) at scale 1
GRID_SCALE_MAX = 2.4       # the largest a grid's images are drawn: 2.4 x 0.42 = 1 inch, 100 pixels for 28
GRID_HEIGHT_IN = 6.4       # a static grid's greatest height (a slider's picture: SLIDER_HEIGHT_IN)


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """images.image_grid as a numpy array, for imshow."""
    return _image_grid(images, nrow, pad).numpy()


def _fit_scale(scale, tiles_wide: float, tiles_high: float, extra_w: float, extra_h: float,
               max_height: float = GRID_HEIGHT_IN) -> float:
    """The images' scale (1: GRID_TILE_IN inches each): `scale`, or the largest that fits (scale None), never
    wider than MAX_WIDTH_IN, taller than max_height or larger than GRID_SCALE_MAX; extra_*: inches of text."""
    # 0.3 inch to spare: the inline backend's tight bounding box and its 0.1-inch pad on each side
    fit = min((MAX_WIDTH_IN - 0.3 - extra_w) / (GRID_TILE_IN * tiles_wide),
              (max_height - extra_h) / (GRID_TILE_IN * tiles_high), GRID_SCALE_MAX)
    return fit if scale is None else min(scale, fit)


def show_grid(images: torch.Tensor, nrow: int | None = None, title: str | None = None, ax=None,
              scale: float | None = None):
    """Draw image_grid(images) on ax (a new figure if None); returns the AxesImage.

    A new figure is sized like show_rows: images of `scale` x 0.42 inch, or (scale None) as large
    as fits MAX_WIDTH_IN x GRID_HEIGHT_IN, up to 1 inch each.
    """
    grid = image_grid(images, nrow)
    if ax is None:
        tiles_high, tiles_wide = (grid.shape[0] + 2) / 30, (grid.shape[1] + 2) / 30      # 28 pixels + 2 of gap
        title_h = 0.45 * (str(title).count("\n") + 1) if title else 0.0
        scale = _fit_scale(scale, tiles_wide, tiles_high, 0.1, title_h + 0.1)
        _, ax = plt.subplots(figsize=(scale * GRID_TILE_IN * tiles_wide + 0.1,
                                      scale * GRID_TILE_IN * tiles_high + title_h + 0.1))
    im = ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=LABEL_SIZE)
    return im


def _labelled_grid_picture(rows: dict, pad: int = 2):
    """The one image of show_rows: each row's images side by side, rows below each other, white gaps."""
    names = list(rows)
    K = max(rows[n].shape[0] for n in names)
    H, W = next(iter(rows.values())).shape[-2:]
    strips = []
    for n in names:
        strip = image_grid(rows[n], nrow=K, pad=pad)                     # (H, K (W + pad) - pad) or shorter
        full = np.ones((H, K * (W + pad) - pad), dtype=np.float32)
        full[:, :strip.shape[1]] = strip
        strips.append(full)
    return np.concatenate([np.concatenate([s, np.ones((pad, s.shape[1]), dtype=np.float32)]) for s in strips])[:-pad]


def show_rows(rows: dict, col_labels=None, title: str | None = None, scale: float | None = None,
              max_height: float = GRID_HEIGHT_IN):
    """A table of images in one picture (one imshow: fast enough for a slider), each row's name on the left,
    `col_labels` above the columns.

    rows: name -> (K, 1, H, W) in [-1, 1]; rows shorter than the longest are padded with white.
    scale: the images' size (1: 0.42 inch each); None, or anything larger than fits, is the largest that fits
    MAX_WIDTH_IN and max_height (inches), up to GRID_SCALE_MAX. Texts keep their size whatever the scale.
    """
    return _labelled_grid(rows, title, col_labels, scale, max_height)[0]


def labelled_grid_slider(rows_at, title_at=None, col_labels=None, scale: float | None = None) -> LiveFigure:
    """The live twin of show_rows for a slider: rows_at(value) -> the rows (same names and shapes for
    every value), title_at(value) -> the title (or a fixed string, or None). render(value) -> PNG bytes."""
    title_of = title_at if callable(title_at) else (lambda value: title_at)
    return LiveFigure(lambda value: _labelled_grid(rows_at(value), title_of(value), col_labels, scale, SLIDER_HEIGHT_IN,
                                                   rows_at=rows_at, title_at=title_of))


def _labelled_grid(rows, title, col_labels, scale, max_height, rows_at=None, title_at=None):
    names = list(rows)
    if not names:
        raise ValueError("rows is empty: give at least one name -> images (K, 1, H, W)")
    if len({tuple(images.shape[-2:]) for images in rows.values()}) > 1:
        raise ValueError(f"every row needs images of one size; got {[tuple(rows[n].shape[-2:]) for n in names]}")
    K = max(rows[n].shape[0] for n in names)
    H, W = next(iter(rows.values())).shape[-2:]
    pad = 2
    picture = _labelled_grid_picture(rows, pad)
    label_w, _ = text_inches(names, LABEL_SIZE)
    extra_w = label_w + 0.25
    extra_h = (0.45 if title else 0.1) + (0.35 if col_labels is not None else 0) + 0.1
    fitted = _fit_scale(scale, K, len(names), extra_w, extra_h + 0.25 * (col_labels is not None), max_height)
    # The title is centred over the images: one wider than them (and the 0.1-inch margins) goes on two lines, or a
    # slider's picture, drawn without a tight bounding box, would cut it off at its right end.
    if title and text_inches([title], TITLE_SIZE)[0] > fitted * GRID_TILE_IN * K + 0.2:
        extra_h += 0.3
        fitted = _fit_scale(scale, K, len(names), extra_w, extra_h + 0.25 * (col_labels is not None), max_height)
    scale = fitted
    room_w = scale * GRID_TILE_IN * K + 0.2

    def fit_title(text):
        return two_lines(text) if text and text_inches([text], TITLE_SIZE)[0] > room_w else text or ""

    if col_labels is not None:        # a label wider than its column goes on two lines (split at its middle space)
        col_labels = [two_lines(str(c)) if text_inches([c], TICK_SIZE)[0] > 0.9 * scale * GRID_TILE_IN else str(c)
                      for c in col_labels]
        extra_h += 0.25 * any("\n" in c for c in col_labels)
    fig, ax = plt.subplots(figsize=(scale * GRID_TILE_IN * K + extra_w, scale * GRID_TILE_IN * len(names) + extra_h))
    image = ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([r * (H + pad) + H / 2 for r in range(len(names))])
    ax.set_yticklabels([str(n) for n in names], fontsize=LABEL_SIZE)
    if col_labels is not None:
        ax.set_xticks([k * (W + pad) + W / 2 for k in range(len(col_labels))])
        ax.set_xticklabels([str(c) for c in col_labels], fontsize=TICK_SIZE)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    heading = ax.set_title(fit_title(title), fontsize=TITLE_SIZE)
    fig.tight_layout(pad=0.3)

    def update(value) -> None:
        new_rows = rows_at(value)
        if list(new_rows) != names or any(tuple(new_rows[n].shape) != tuple(rows[n].shape) for n in names):
            raise ValueError("labelled_grid_slider: rows_at(value) must give the same row names and image shapes "
                             "for every value")
        image.set_data(_labelled_grid_picture(new_rows, pad))
        heading.set_text(fit_title(title_at(value)))

    return fig, [image, heading], update


def plot_chain_step(trajectory, k: int, show: int = 16, nrow: int = 4):
    """The slider picture of notebook 06: after k recorded steps of a chain, the state x_t and the model's
    prediction of the clean image x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), side by side
    (live twin for a slider: chain_slider)."""
    return _chain_step(trajectory, k, show, nrow)[0]


def chain_slider(trajectory, show: int = 16, nrow: int = 4) -> LiveFigure:
    """The live twin of plot_chain_step(trajectory, k) for a slider over k: render(k) -> PNG bytes."""
    return LiveFigure(lambda k: _chain_step(trajectory, int(k), show, nrow))


def _chain_step(trajectory, k, show, nrow):
    n = min(show, trajectory.x_t.shape[1])
    nrow = min(nrow, n)
    rows = math.ceil(n / nrow)
    side = min((MAX_WIDTH_IN - 0.6) / 2, (SLIDER_HEIGHT_IN - 1.0) * nrow / rows)     # each grid's width, inches
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(2 * side + 0.6, side * rows / nrow + 1.0))

    def texts(k):
        t = trajectory.timesteps[k]
        return f"$x_t$, the state at t = {t}", f"after {k} of {len(trajectory.timesteps)} steps: t = {t}"

    state = ax0.imshow(image_grid(trajectory.x_t[k, :n], nrow=nrow), cmap="gray", vmin=0, vmax=1)
    guess = ax1.imshow(image_grid(trajectory.x0_pred[k, :n], nrow=nrow), cmap="gray", vmin=0, vmax=1)
    left, top = texts(k)
    title = ax0.set_title(left, fontsize=TITLE_SIZE)
    ax1.set_title(r"$\hat x_0$, the model's guess of the end", fontsize=TITLE_SIZE)
    for ax in (ax0, ax1):
        ax.set_axis_off()
    suptitle = fig.suptitle(top, fontsize=TITLE_SIZE + 1)
    fig.tight_layout(pad=0.3, w_pad=2.0, rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))   # 0.4 inch for the suptitle

    def update(k: int) -> None:
        state.set_data(image_grid(trajectory.x_t[k, :n], nrow=nrow))
        guess.set_data(image_grid(trajectory.x0_pred[k, :n], nrow=nrow))
        left, top = texts(k)
        title.set_text(left)
        suptitle.set_text(top)

    return fig, [state, guess, title, suptitle], update
