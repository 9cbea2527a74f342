"""Scaling curves: held-out loss against training compute on log-log axes, per architecture and size (notebook 13)."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from ..measure.scaling import ARCHITECTURE_NAMES, ARCHITECTURES, frontier, runs_of
from .style import MAX_WIDTH_IN, TICK_SIZE, style_axes

ARCHITECTURE_COLORS = {"mlp": "tab:orange", "unet": "tab:blue", "dit": "tab:green"}
SIZE_MARKERS = ("o", "s", "^")


def plot_scaling_curves(record: dict, width_in: float = 9.0, height_in: float = 5.0):
    """One line per run (colour: architecture, marker: size, smallest first), its held-out loss at each evaluation
    against the training FLOPs so far, on log-log axes; each architecture's lower envelope dashed."""
    fig, ax = plt.subplots(figsize=(min(width_in, MAX_WIDTH_IN), height_in))
    for arch in ARCHITECTURES:
        color = ARCHITECTURE_COLORS[arch]
        for marker, (name, run) in zip(SIZE_MARKERS, runs_of(record, arch).items()):
            xs = [p["flops"] for p in run["points"]]
            ys = [p["test_loss"] for p in run["points"]]
            ax.plot(xs, ys, marker=marker, color=color, lw=1.2, ms=5, alpha=0.85,
                    label=f"{name} ({run['parameters'] / 1e6:.2f} M)")
        env = frontier(record, arch)
        if env:
            ax.plot([p["flops"] for p in env], [p["test_loss"] for p in env], ls="--", color=color, lw=2.2, alpha=0.5,
                    label=f"{ARCHITECTURE_NAMES[arch]}: lower envelope")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))   # ticks at 0.2, 0.5, 1, 2, ...
    ax.yaxis.set_major_formatter(ScalarFormatter())           # plain numbers (0.5, 2), not 5 x 10^-1
    ax.yaxis.set_minor_formatter(NullFormatter())
    style_axes(ax, "Held-out flow-matching loss against training compute", "training compute (FLOPs)",
               "held-out loss")
    ax.set_title(ax.get_title(), fontsize=ax.title.get_fontsize(), pad=12)   # clear of the top tick label
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=TICK_SIZE - 1, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout(pad=0.4)
    return fig
