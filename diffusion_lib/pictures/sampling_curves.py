"""Numbers about sampling as curves: quality against cost, and quantities along a chain (in brackets: the notebooks).

    plot_quality_vs_steps, plot_quality_vs_nfe   time per image, confident share, Frechet distance (07, 10, 11)
    plot_guidance_tradeoff                       classifier-free guidance over w                   (08, 11)
    plot_over_t                                  a quantity recorded along a chain, against t      (06)
    plot_chain_magnitudes                        std of x_t and of the predicted x_0 along a chain (09)
    plot_solver_errors                           an ODE solver's error against its evaluations     (10, 11)
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from .style import LABEL_SIZE, MAX_WIDTH_IN, TICK_SIZE, shared_legend, style_axes, text_inches


def plot_quality_vs_steps(groups: dict, reference: dict | None = None):
    """Time per image, confident share and Frechet distance against the number of sampling steps (log scale).

    groups: series name -> list of rows from diffusion_lib.sweeps (keys steps, seconds_per_image,
    confident_share, frechet_distance, n); reference: diffusion_lib.metrics.reference_scores(...),
    drawn as dashed lines (what real digits score). One legend for the three panels, under them.
    """
    return _quality_against(groups, reference, "steps", "sampling steps")


def plot_quality_vs_nfe(groups: dict, reference: dict | None = None):
    """plot_quality_vs_steps against the number of network evaluations (key nfe) instead: DDIM and Heun side
    by side (rows from diffusion_lib.sweeps.nfe_sweep), Heun spending two evaluations on most of its steps."""
    return _quality_against(groups, reference, "nfe", "network evaluations (NFE)")


def _quality_against(groups: dict, reference: dict | None, x_key: str, x_label: str):
    timed = any(r.get("seconds_per_image") is not None for rows in groups.values() for r in rows)
    n_labels = len(groups) + (2 if reference else 0)
    legend_rows = math.ceil(n_labels / 2)
    panels = 3 if timed else 2            # no time measured here (rows of a model card): no empty time panel
    fig, axes = plt.subplots(1, panels, figsize=(min(MAX_WIDTH_IN, 3.5 * panels + 0.5), 3.5 + 0.27 * legend_rows))
    time_ax, share_ax, fd_ax = axes if timed else (None, *axes)
    markers = "osD^v"
    for i, (name, rows) in enumerate(groups.items()):
        steps = [r[x_key] for r in rows]
        style = dict(marker=markers[i % len(markers)], ms=8, lw=2.5, color=f"C{i}", label=name)
        times = [(s, 1000 * r["seconds_per_image"]) for s, r in zip(steps, rows)
                 if r.get("seconds_per_image") is not None]
        if times:                 # rows measured elsewhere (another machine, another load) leave their time out
            time_ax.plot(*zip(*times), **style)
        share_ax.plot(steps, [r["confident_share"] for r in rows], **style)
        fd = [(s, r["frechet_distance"]) for s, r in zip(steps, rows) if r.get("frechet_distance") is not None]
        if fd:
            fd_ax.plot(*zip(*fd), **style)
    if reference:
        share_ax.axhline(reference["test_confident_share"], color="k", ls="--", lw=1.5,
                         label="confident share of real MNIST test digits")
        fd_ax.axhline(reference["train_vs_test_frechet_distance"], color="k", ls=":", lw=2,
                      label=f"Frechet distance of {reference['train_vs_test_n']} real training digits")
    xlabel = f"{x_label} (log scale)"
    if text_inches([xlabel], LABEL_SIZE)[0] > fig.get_figwidth() / panels - 0.6:    # wider than its panel
        xlabel = f"{x_label}\n(log scale)"
    if timed:
        style_axes(time_ax, "time per image", xlabel, "milliseconds (log scale)")
        _plain_log_y(time_ax)
    style_axes(share_ax, "confident share\n(higher is better)", xlabel, "share with p > 0.9")
    share_ax.set_ylim(0, 1.02)
    # log scale: a sampler that fails at few steps (Heun's 1770 at 5 NFE) would squash every other curve to the floor
    style_axes(fd_ax, "Frechet distance to the\ntest set (lower is better)", xlabel, "Frechet distance (log scale)")
    _plain_log_y(fd_ax)
    from matplotlib.ticker import NullLocator

    all_steps, ticks = sorted({r[x_key] for rows in groups.values() for r in rows}, reverse=True), []
    for s in all_steps:                       # from the largest down, leave out values too close to label apart
        if not ticks or ticks[-1] / s > 1.25:
            ticks.append(s)
    all_steps = sorted(ticks)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(all_steps)                              # the values measured, written out in full
        ax.set_xticklabels([str(s) for s in all_steps])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(alpha=0.3, which="both")
    shared_legend(fig, axes, ncol=2, bottom_in=0.27 * legend_rows + 0.1)
    return fig


def _plain_log_y(ax) -> None:
    """A log y axis labelled in plain numbers, at 1, 2 and 5 of each decade (10, 20, 50; not 1x10^1, 2x10^1), or
    at every integer multiple where the data span less than two of those."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.autoscale_view()
    lo, hi = ax.get_ylim()
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    subs = (1.0, 2.0, 5.0) if sum(lo <= m * 10.0 ** d <= hi for d in decades for m in (1, 2, 5)) >= 2 else \
        tuple(float(m) for m in range(1, 10))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_guidance_tradeoff(rows, reference: dict | None = None):
    """Classifier-free guidance over w: guided accuracy against within-class diversity (one point per w),
    and each quantity against w. rows: from diffusion_lib.sweeps.guidance_sweep."""
    ws = [r["w"] for r in rows]
    acc = [r["guided_accuracy"] for r in rows]
    spread = [r["relative_spread"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(MAX_WIDTH_IN, 4.3))
    ax = axes[0]
    ax.plot(spread, acc, "-", color="gray", lw=1.5, zorder=1)
    # One colour per w and a legend for them: the labels never overlap, however the points crowd.
    colors = plt.get_cmap("viridis")(np.linspace(0, 1, len(ws)))
    for w, x, y, c in zip(ws, spread, acc, colors):
        ax.scatter([x], [y], color=c, s=90, zorder=2, edgecolor="k", label=f"{w:g}")
    style_axes(ax, "the trade-off\n(one point per w)", "within-class diversity\n(1: as varied as real digits)",
           "guided accuracy")
    ax.set_ylim(min(acc) - 0.05, 1.05)
    ax.legend(title="w", fontsize=TICK_SIZE - 1, title_fontsize=TICK_SIZE - 1, loc="lower left", ncol=2,
              handletextpad=0.2, columnspacing=0.6, borderpad=0.3)
    ax.grid(alpha=0.3)
    ax = axes[1]
    ax.plot(ws, acc, "o-", lw=2.5, ms=7, color="tab:green", label="guided accuracy")
    ax.plot(ws, [r["confident_share"] for r in rows], "s-", lw=2.5, ms=7, color="tab:blue", label="confident share")
    ax.plot(ws, spread, "D-", lw=2.5, ms=7, color="tab:orange", label="within-class diversity")
    if reference:
        ax.axhline(reference["test_confident_share"], color="tab:blue", ls="--", lw=1.2,
                   label="confident share,\nreal digits")
    ax.set_ylim(0, 1.1)
    style_axes(ax, "against the\nguidance weight", "guidance weight w", "share / ratio")
    ax.legend(fontsize=TICK_SIZE - 1, loc="lower right", borderpad=0.3, handlelength=1.5)
    ax.grid(alpha=0.3)
    ax = axes[2]
    ax.plot(ws, [r["frechet_distance"] for r in rows], "o-", lw=2.5, ms=7, color="tab:red", label="generated")
    if reference:
        ax.axhline(reference["train_vs_test_frechet_distance"], color="k", ls="--", lw=1.5,
                   label=f"{reference['train_vs_test_n']} real\ntraining digits")
    ax.set_ylim(bottom=0)
    style_axes(ax, "Frechet distance to the\ntest set (lower is better)", "guidance weight w", "Frechet distance")
    ax.legend(fontsize=TICK_SIZE - 1, loc="upper right", borderpad=0.3, handlelength=1.5)
    ax.grid(alpha=0.3)
    fig.tight_layout(pad=0.4, w_pad=0.8)
    return fig


def plot_over_t(timesteps, curves: dict, title: str, ylabel: str, logy: bool = False, marks=None):
    """Quantities recorded along a sampling chain against t, t falling from left to right as sampling goes.

    curves: name -> (K,) values at `timesteps`; marks: timesteps to draw as dotted lines.
    """
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 3.9))
    for i, (name, values) in enumerate(curves.items()):
        ax.plot(list(timesteps), np.asarray(values, dtype=np.float64), lw=2.5, color=f"C{i}", label=name)
    for m in marks or []:
        ax.axvline(m, color="gray", ls=":", lw=1.5)
    ax.invert_xaxis()                                          # sampling runs from t = T-1 (left) to 0 (right)
    if logy:
        ax.set_yscale("log")
    style_axes(ax, title, "timestep t (sampling goes left to right)", ylabel)
    ax.grid(alpha=0.3, which="both")
    if len(curves) > 1:
        ax.legend(fontsize=TICK_SIZE - 1)
    fig.tight_layout(pad=0.4)
    return fig


def plot_chain_magnitudes(chains: dict, data_std: float | None = None):
    """Two panels against t (t = T-1 on the left: sampling goes left to right): std of x_t and std of x0_pred
    over a DDIM chain, log scale, one curve per run: name -> {"t": [...], "x_t_std": [...], "x0_pred_std": [...]}.
    One legend for both panels, under them."""
    n_labels = len(chains) + (data_std is not None)
    legend_rows = math.ceil(n_labels / 3)
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.8 + 0.27 * legend_rows))
    for i, (name, c) in enumerate(chains.items()):
        for ax, key in zip(axes, ("x_t_std", "x0_pred_std")):
            ax.plot(c["t"], c[key], "o-", ms=3, lw=2.5, color=f"C{i}", label=name)
    for ax, what in zip(axes, ("$x_t$", r"predicted $x_0$")):
        if data_std is not None:
            ax.axhline(data_std, color="k", ls="--", lw=1.5, label=f"MNIST pixels ({data_std:.2f})")
        ax.set_yscale("log")
        ax.invert_xaxis()
        style_axes(ax, f"std of {what} along a DDIM chain", "timestep t (sampling goes left to right)",
               "standard deviation (log scale)" if ax is axes[0] else None)
        ax.grid(alpha=0.3, which="both")
    shared_legend(fig, axes, ncol=3, bottom_in=0.27 * legend_rows + 0.1)
    return fig


def plot_solver_errors(rows, title: str = "distance to the exact end of the ODE"):
    """Error against network evaluations, log-log, one curve per sampler (rows of diffusion_lib.sweeps.solver_errors),
    with dashed guides of slope -1 and -2 (first and second order) through each curve's first point."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, sampler in enumerate(dict.fromkeys(r["sampler"] for r in rows)):
        mine = [r for r in rows if r["sampler"] == sampler]
        nfe = np.array([r["nfe"] for r in mine], dtype=float)
        err = np.array([r["mean_error"] for r in mine])
        ax.plot(nfe, err, "o-", lw=2.5, ms=8, color=f"C{i}", label=sampler)
        order = 1 if sampler in ("DDIM", "flow Euler") else 2           # Heun and flow Heun: second order
        ax.plot(nfe, err[0] * (nfe / nfe[0]) ** -order, "--", lw=1.3, color=f"C{i}",
                label=f"slope -{order} (error ~ 1 / NFE" + ("" if order == 1 else "^2") + ")")
    ax.set_xscale("log")
    ax.set_yscale("log")
    style_axes(ax, title, "network evaluations (NFE)", "mean distance (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=TICK_SIZE - 1)
    fig.tight_layout()
    return fig
