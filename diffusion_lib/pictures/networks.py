"""What a backbone does to an image (notebook 04).

    plot_shape_traces       resolution and channels of each layer's output
    plot_receptive_fields   which input pixels an output pixel can see
    plot_cost_per_image     milliseconds per image of a training step, per network
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .style import LABEL_SIZE, MAX_WIDTH_IN, SLIDER_HEIGHT_IN, TICK_SIZE, style_axes, text_inches


def plot_shape_traces(traces: dict):
    """Resolution and channels of each layer's output along one forward pass, one line per network.

    traces: name -> diffusion_lib.inspection.ShapeTrace. Layers whose output is not an image (the time
    embedding) are left out; the x axis is the layer's place in the forward pass.
    """
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.9))
    for i, (name, trace) in enumerate(traces.items()):
        layers = [r for r in trace if len(r.out_shape) == 4]
        x = np.arange(1, len(layers) + 1)
        ax0.plot(x, [r.out_shape[2] for r in layers], "o-", lw=2.5, ms=7, color=f"C{i}", label=name)
        ax1.plot(x, [r.out_shape[1] for r in layers], "o-", lw=2.5, ms=7, color=f"C{i}", label=name)
    ax0.set_yticks([7, 14, 28])
    ax0.set_ylim(0, 31)
    style_axes(ax0, "resolution of each layer's output", "layer, in the order of the forward pass", "height = width (pixels)")
    style_axes(ax1, "channels of each layer's output", "layer, in the order of the forward pass", "channels")
    for ax in (ax0, ax1):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=TICK_SIZE - 1)
    fig.tight_layout(pad=0.4)
    return fig


def plot_receptive_fields(masks: dict, pixels, which=None):
    """Receptive-field masks: one row per network, one column per output pixel.

    masks: name -> (P, H, W) boolean tensor from diffusion_lib.inspection.receptive_fields(net, pixels);
    which: indices into `pixels` to draw (all if None). The output pixel is the red square; the
    input pixels it can see are white, the ones it cannot are dark.
    """
    from matplotlib.patches import Rectangle

    which = list(range(len(pixels))) if which is None else list(which)
    names = list(masks)
    label_w, _ = text_inches(names, LABEL_SIZE)
    panel = min((MAX_WIDTH_IN - label_w - 0.3) / len(which), (SLIDER_HEIGHT_IN - 0.1) / len(names) - 0.45, 2.6)
    fig, axes = plt.subplots(len(names), len(which), figsize=(panel * len(which) + label_w + 0.3,
                                                              (panel + 0.45) * len(names) + 0.1), squeeze=False)
    for r, name in enumerate(names):
        for c, p in enumerate(which):
            ax = axes[r, c]
            mask = masks[name][p].float().numpy()
            ax.imshow(mask, cmap="gray", vmin=-0.35, vmax=1, interpolation="nearest")
            row, col = pixels[p]
            ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, color="red"))
            rows_seen = np.flatnonzero(mask.any(1))
            cols_seen = np.flatnonzero(mask.any(0))
            ax.set_title(f"({row}, {col}) sees {len(rows_seen)}x{len(cols_seen)}", fontsize=LABEL_SIZE)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=LABEL_SIZE)
    fig.tight_layout()
    return fig


def plot_cost_per_image(seconds: dict, machine: str | None = None):
    """Horizontal bars of milliseconds per image (log scale), each annotated with images per second."""
    names = list(seconds)
    ms = np.array([1000 * seconds[n] for n in names])
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 0.7 * len(names) + 1.6))
    y = np.arange(len(names))[::-1]
    ax.barh(y, ms, color=[f"C{i}" for i in range(len(names))])
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=LABEL_SIZE)
    ax.set_xlim(ms.min() / 3, ms.max() * 8)
    for yi, v in zip(y, ms):
        ax.text(v * 1.1, yi, f"{v:.3g} ms  ({1000 / v:,.0f} images/s)", va="center", fontsize=TICK_SIZE + 1)
    style_axes(ax, "forward + backward, per image" + (f"\n{machine}" if machine else ""), "milliseconds per image (log scale)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout(pad=0.4)
    return fig
