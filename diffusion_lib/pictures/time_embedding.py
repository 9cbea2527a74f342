"""The sinusoidal time embedding and how alike its vectors are (notebook 03).

    plot_embedding_heatmap                 emb(t) for every t as an image
    plot_similarity_matrix                 the cosine similarity of every pair emb(t), emb(s)
    plot_similarity_curves                 rows of that matrix as curves
    plot_embedding_at, embedding_slider    emb(t) and its similarity to every emb(s), for a slider over t
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .live import LiveFigure
from .style import LABEL_SIZE, MAX_WIDTH_IN, TICK_SIZE, TITLE_SIZE, style_axes


def plot_embedding_heatmap(emb: torch.Tensor):
    """The sinusoidal embedding (T, dim) as an image: timestep t down, dimension across, sin half | cos half."""
    T, dim = emb.shape
    fig, ax = plt.subplots(figsize=(10, 5.5))
    im = ax.imshow(emb.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.axvline(dim / 2 - 0.5, color="k", lw=2)
    ax.text(dim / 4, -T * 0.02, "sin half", ha="center", va="bottom", fontsize=LABEL_SIZE)
    ax.text(3 * dim / 4, -T * 0.02, "cos half", ha="center", va="bottom", fontsize=LABEL_SIZE)
    style_axes(ax, None, "embedding dimension (frequency falls from left to right in each half)", "timestep t")
    cbar = fig.colorbar(im, ax=ax)
    cbar.ax.tick_params(labelsize=TICK_SIZE)
    ax.set_title("sinusoidal time embedding emb(t)", fontsize=TITLE_SIZE, pad=24)
    fig.tight_layout()
    return fig


def plot_similarity_matrix(sim: torch.Tensor, title: str = "cosine similarity of emb(t) and emb(s)"):
    """A (T, T) similarity matrix as an image with a colour bar."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(sim.numpy(), cmap="viridis", vmin=float(sim.min()), vmax=1, interpolation="nearest")
    style_axes(ax, title, "timestep s", "timestep t")
    cbar = fig.colorbar(im, ax=ax)
    cbar.ax.tick_params(labelsize=TICK_SIZE)
    fig.tight_layout()
    return fig


def plot_similarity_curves(sim: torch.Tensor, ts, ax=None):
    """Rows `ts` of a similarity matrix: how alike emb(t) is to emb(s), as a function of s, one curve per t."""
    return _similarity_curves(sim, ts, ax)[0]


def _similarity_curves(sim, ts, ax=None, legend: bool = True):
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(9, 3.9))
    s = np.arange(sim.shape[1])
    curves, marks = [], []
    for i, t in enumerate(ts):
        curves.append(ax.plot(s, sim[t].numpy(), lw=2, color=f"C{i}", label=f"t = {t}")[0])
        marks.append(ax.axvline(t, color=f"C{i}", ls=":", lw=1.2))
    ax.set_ylim(float(sim.min()) - 0.02, 1.02)
    style_axes(ax, "cosine similarity of emb(t) with emb(s)", "timestep s", "cosine similarity")
    if legend:
        ax.legend(fontsize=TICK_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout(pad=0.4)
    return fig, curves, marks


def plot_embedding_at(emb: torch.Tensor, sim: torch.Tensor, t: int):
    """The slider picture of notebook 03: emb(t) over the dimensions, and its similarity to every emb(s)
    (live twin for a slider: embedding_slider)."""
    return _embedding_at(emb, sim, t)[0]


def embedding_slider(emb: torch.Tensor, sim: torch.Tensor) -> LiveFigure:
    """The live twin of plot_embedding_at(emb, sim, t) for a slider over t: render(t) -> PNG bytes."""
    return LiveFigure(lambda t: _embedding_at(emb, sim, int(t)))


def _embedding_at(emb, sim, t):
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.7), gridspec_kw={"width_ratios": [1, 1.25]})
    dim = emb.shape[1]
    line, = ax0.plot(np.arange(dim), emb[t].numpy(), ".-", color="tab:blue", ms=4)
    ax0.axvline(dim / 2 - 0.5, color="k", lw=1.5)
    ax0.set_ylim(-1.1, 1.1)
    style_axes(ax0, f"emb(t) at t = {t}", "embedding dimension (sin half | cos half)", "value")
    ax0.grid(alpha=0.3)
    # No legend (one curve; the dotted line is at t): a legend beside the axes would make the layout depend on t.
    _, (curve,), (mark,) = _similarity_curves(sim, [t], ax=ax1, legend=False)
    title, title1 = ax0.title, ax1.title
    title1.set_text(f"similarity of emb({t}) with every emb(s)")

    def update(t: int) -> None:
        line.set_ydata(emb[t].numpy())
        title.set_text(f"emb(t) at t = {t}")
        curve.set_ydata(sim[t].numpy())
        mark.set_xdata([t, t])
        title1.set_text(f"similarity of emb({t}) with every emb(s)")

    return fig, [line, title, curve, mark, title1], update
