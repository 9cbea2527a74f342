"""Training losses as curves (notebooks 05 and 09).

    plot_loss_curve         one run's loss at every step and its running mean
    plot_loss_by_timestep   the loss at fixed t against t, one curve per model
    plot_loss_curves        several runs' losses against the step
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .style import MAX_WIDTH_IN, TICK_SIZE, style_axes


# The losses the library reports are means over the pixels (F.mse_loss): ||eps - eps_theta||^2 / 784 for MNIST.
LOSS_LABEL = r"per-pixel mean of $(\varepsilon - \varepsilon_\theta)^2$" "\n(log scale)"


def _loss_axes(ax, title: str, xlabel: str):
    """Log-scale loss axis, labels, grid and legend; returns the figure."""
    ax.set_yscale("log")
    style_axes(ax, title, xlabel, LOSS_LABEL)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=TICK_SIZE - 1)
    ax.figure.tight_layout(pad=0.4)
    return ax.figure


def plot_loss_curve(history: dict, window: int | None = None, ax=None):
    """The training loss of every step (light) and its running mean over `window` steps (dark), log scale."""
    ax = ax if ax is not None else plt.subplots(figsize=(MAX_WIDTH_IN, 4.0))[1]
    steps = np.asarray(history["step"])
    loss = np.asarray(history["loss"], dtype=np.float64)
    window = window or max(1, len(loss) // 30)
    ax.plot(steps, loss, color="tab:blue", alpha=0.3, lw=1, label="loss of each step's batch")
    if len(loss) >= window:
        mean = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], mean, color="tab:blue", lw=3, label=f"running mean over {window} steps")
    return _loss_axes(ax, "training loss", "optimizer step")


def plot_loss_by_timestep(timesteps, curves: dict, ax=None):
    """The loss at fixed t against t, one curve per model (name -> (len(timesteps),) tensor), log scale."""
    ax = ax if ax is not None else plt.subplots(figsize=(MAX_WIDTH_IN, 4.0))[1]
    for i, (name, values) in enumerate(curves.items()):
        ax.plot(list(timesteps), np.asarray(values), "o-", lw=2.5, ms=5, color=f"C{i}", label=name)
    return _loss_axes(ax, "loss at each timestep", "timestep t")


def plot_loss_curves(curves: dict, title: str = "training loss"):
    """Loss against optimizer step (log scale), one curve per run: name -> {"step": [...], "loss": [...]}."""
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 4.3))
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(c["step"], c["loss"], lw=2.5, color=f"C{i}", label=name, marker="o" if len(c["step"]) < 20 else None)
    ax.set_yscale("log")
    style_axes(ax, title, "optimizer step (batches of 128)", LOSS_LABEL)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=TICK_SIZE - 1, loc="upper right")
    fig.tight_layout(pad=0.4)
    return fig
