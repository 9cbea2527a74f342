"""The rules every picture follows: its greatest size, its fonts, and how its texts are measured and placed.

Every figure is sized for a projector and for GitHub: at most MAX_WIDTH_IN inches wide (at 100 dpi, shown
at its own size in JupyterLab on a 1280-pixel screen and only a little smaller on GitHub), no text under
10 points (about 14 pixels). A slider's picture is also at most SLIDER_HEIGHT_IN tall, so the slider and
its picture fit a 1280x800 screen together. Large fonts, every axis labelled, a legend wherever there is
more than one curve.
"""
from __future__ import annotations


MAX_WIDTH_IN = 10.5        # inches; 1050 pixels at matplotlib's default 100 dpi
SLIDER_HEIGHT_IN = 5.6     # inches; a slider's picture, so that slider and picture fit 800 pixels of screen


TITLE_SIZE = 15
LABEL_SIZE = 13
TICK_SIZE = 11


def style_axes(ax, title=None, xlabel=None, ylabel=None) -> None:
    if title:
        ax.set_title(title, fontsize=TITLE_SIZE)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)


def text_inches(labels, size: float) -> tuple[float, float]:
    """Rough width and height in inches of the longest of `labels` at font `size` (points), lines counted."""
    lines = [line for label in labels for line in str(label).replace("$", "").split("\n")] or [""]
    return 0.56 * size / 72 * max(len(line) for line in lines), 1.25 * size / 72 * max(str(x).count("\n") + 1 for x in labels)


def two_lines(label: str) -> str:
    """`label` broken at the space nearest its middle (unchanged if it has none)."""
    spaces = [i for i, c in enumerate(label) if c == " "]
    if not spaces:
        return label
    cut = min(spaces, key=lambda i: abs(i - len(label) / 2))
    return label[:cut] + "\n" + label[cut + 1:]


def shared_legend(fig, axes, ncol: int, bottom_in: float) -> None:
    """One legend for all panels (each label once), under them, in `bottom_in` inches kept free for it."""
    handles, labels = [], []
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=TICK_SIZE - 1, frameon=False,
               handlelength=1.8, columnspacing=1.2)
    fig.tight_layout(pad=0.4, w_pad=1.0, rect=(0, bottom_in / fig.get_figheight(), 1, 1))
