"""Pictures of masked diffusion over tokens (notebook 14): the masking schedule, digits and names being masked or
revealed (static and for a slider), bits per character against network evaluations, digit quality against steps.

    plot_masking_schedule     alpha_t, the masked share 1 - alpha_t and the ELBO weight -alpha'_t / (1 - alpha_t)
    tokens_as_images          digit tokens -> images in [-1, 1], [MASK] drawn as a mid grey (for show_rows)
    show_names                columns of names, [MASK] as '_' (static strips)
    names_slider              the same as a slider's render(value)
    plot_bits_vs_nfe          text: the masked model's K-step bound and its samples against the autoregressive model
    plot_digit_quality        digits: confident share and Frechet distance against steps, real digits as lines
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .style import LABEL_SIZE, MAX_WIDTH_IN, TICK_SIZE, TITLE_SIZE, style_axes

MASK_GREY = 0.0      # a [MASK] pixel between black (-1) and white (+1)


def plot_masking_schedule(schedules=("linear", "cosine"), t_marks=()):
    """Two panels over t in [0, 1]: the masked share 1 - alpha_t, and the ELBO weight (log scale)."""
    from ..masked import alpha, elbo_weight

    t = torch.linspace(0.0, 1.0, 401, dtype=torch.float64)
    fig, (a, b) = plt.subplots(1, 2, figsize=(min(MAX_WIDTH_IN, 10.0), 3.6))
    for i, name in enumerate(schedules):
        a.plot(t, 1 - alpha(t, name), lw=2.5, color=f"C{i}", label=name)
        tw = t[t > 0.004]
        b.plot(tw, elbo_weight(tw, name), lw=2.5, color=f"C{i}", label=name)
    for mark in t_marks:
        a.axvline(mark, color="0.6", lw=1, ls=":")
    style_axes(a, "masked share 1 - alpha_t", "t", "share of tokens that are [MASK]")
    style_axes(b, "ELBO weight -alpha'_t / (1 - alpha_t)", "t", "weight (log scale)")
    b.set_yscale("log")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=TICK_SIZE)
    fig.tight_layout()
    return fig


def tokens_as_images(tokens: torch.Tensor, levels: int, mask_id: int) -> torch.Tensor:
    """Digit tokens (B, 28, 28) -> images (B, 1, 28, 28) in [-1, 1]: token k at grey -1 + 2k / (levels - 1), [MASK]
    at MASK_GREY."""
    tokens = tokens.detach().cpu()
    masked = tokens == mask_id
    images = tokens.clamp(max=levels - 1).float() * 2 / (levels - 1) - 1
    return torch.where(masked, torch.full_like(images, MASK_GREY), images).unsqueeze(1)


def _names_figure(rows: dict, title: str | None, width_in: float | None = None):
    names = list(rows)
    depth = max(len(v) for v in rows.values())
    width = width_in or min(MAX_WIDTH_IN, 1.6 + 1.9 * len(names))
    fig, ax = plt.subplots(figsize=(width, 0.9 + 0.3 * depth))
    ax.set_axis_off()
    for j, name in enumerate(names):
        x = (j + 0.5) / len(names)
        ax.text(x, 1.0, name, ha="center", va="bottom", fontsize=LABEL_SIZE, weight="bold", transform=ax.transAxes)
        for i, text in enumerate(rows[name]):
            ax.text(x, 1 - (i + 1) / (depth + 0.5), text, ha="center", va="center", family="monospace",
                    fontsize=LABEL_SIZE, transform=ax.transAxes)
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE)
    fig.tight_layout()
    return fig


def show_names(rows: dict, title: str | None = None):
    """Columns of names side by side: rows is column title -> list of strings ('_' for a [MASK])."""
    return _names_figure(rows, title)


def names_slider(rows_at, title_at, width_in: float | None = None):
    """render(value) for diffusion_lib.widgets.slider_view: the names figure of rows_at(value), titled title_at(value)."""
    return lambda value: _names_figure(rows_at(value), title_at(value), width_in)


def plot_bits_vs_nfe(names: dict):
    """Text, from benchmarks/masked_diffusion.py's JSON: left, bits per character on held-out names against the
    network evaluations per sample (the masked model's K-step bound at K evaluations; the autoregressive model's
    exact value at 12); right, how typical the samples look to the autoregressive model, per sampler."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(min(MAX_WIDTH_IN, 10.5), 3.9))
    ks = sorted(int(k) for k in names["masked_discrete_bits_per_char"])
    a.plot(ks, [names["masked_discrete_bits_per_char"][str(k)] for k in ks], "o-", lw=2.5, ms=7, color="C0",
           label="masked: K-step bound")
    a.axhline(names["masked_continuous_bits_per_char"], color="C0", ls="--", lw=1.5, label="masked: K -> infinity")
    a.plot([12], [names["ar_bits_per_char"]], "s", ms=10, color="C3", label="autoregressive (exact)")
    a.axhline(1.1 * names["ar_bits_per_char"], color="C3", ls=":", lw=1.5, label="autoregressive + 10%")
    style_axes(a, "held-out bits per character\n(lower is better)", "network evaluations per sample", "bits per character")
    series = {}
    for row in names["samples"]:
        series.setdefault(f"{row['model']}: {row['sampler']}", []).append(row)
    markers = {"autoregressive: autoregressive": ("s", "C3"), "masked: fixed-order": ("D", "C2"),
               "masked: ancestral": ("o", "C0"), "masked: confidence": ("^", "C1")}
    for label, rows in series.items():
        marker, color = markers.get(label, ("x", "k"))
        rows = sorted(rows, key=lambda r: r["nfe"])
        b.plot([r["nfe"] for r in rows], [r["ar_bits_per_char"] for r in rows], marker=marker, color=color, lw=2,
               ms=8, label=label)
    style_axes(b, "samples judged by the autoregressive\nmodel (bits per character)", "network evaluations per sample",
               "bits per character")
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_xticks([1, 2, 3, 4, 6, 12])
        ax.set_xticklabels(["1", "2", "3", "4", "6", "12"])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=TICK_SIZE - 1)
    fig.tight_layout()
    return fig


def plot_digit_quality(digits: dict):
    """Digits, from benchmarks/masked_diffusion.py's JSON: confident share and Frechet distance against the number
    of unmasking steps K (= network evaluations), both samplers, real digits and real quantised digits as lines."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(min(MAX_WIDTH_IN, 10.5), 3.9))
    labels = {"maskgit": "MaskGIT (noisy confidence)", "confidence": "greedy confidence", "ancestral": "ancestral"}
    for i, sampler in enumerate(("maskgit", "ancestral", "confidence")):
        rows = sorted((r for r in digits["samples"] if r["sampler"] == sampler), key=lambda r: r["steps"])
        if not rows:
            continue
        style = dict(marker="o^s"[i], ms=8, lw=2.5, color=f"C{i}", label=labels[sampler])
        a.plot([r["steps"] for r in rows], [r["confident_share"] for r in rows], **style)
        b.plot([r["steps"] for r in rows], [r["frechet_distance"] for r in rows], **style)
    for key, ls, label in (("real", "--", "real digits"), ("real_quantised", ":",
                                                              f"real digits, {digits['levels']} grey levels")):
        a.axhline(digits[key]["confident_share"], color="k", ls=ls, lw=1.5, label=label)
        b.axhline(digits[key]["frechet_distance"], color="k", ls=ls, lw=1.5, label=label)
    style_axes(a, "confident share (higher is better)", "unmasking steps K (log scale)", "share with p > 0.9")
    a.set_ylim(0, 1.02)
    style_axes(b, "Frechet distance (lower is better)", "unmasking steps K (log scale)", "Frechet distance (log scale)")
    b.set_yscale("log")
    steps = sorted({r["steps"] for r in digits["samples"]})
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_xticks(steps)
        ax.set_xticklabels([str(s) for s in steps])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=TICK_SIZE - 1)
    fig.tight_layout()
    return fig
