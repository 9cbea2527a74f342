"""Noise schedules as curves against t.

    plot_schedules, schedules_slider  beta_t, alpha_bar_t, signal, noise and log-SNR, one panel each   (notebook 01)
    schedule_table                    the same quantities printed at a few t                           (notebook 01)
    plot_variance_split               Var(x_t) split into signal and noise                             (notebook 01)
    plot_ddpm_sigmas                  DDPM's two noise levels sqrt(beta_t) and sqrt(beta_tilde_t)      (notebook 06)
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from .live import LiveFigure
from .style import MAX_WIDTH_IN, SLIDER_HEIGHT_IN, TICK_SIZE, style_axes


SCHEDULE_COLORS = {"linear": "tab:blue", "cosine": "tab:orange"}

# Schedule field -> how the notebooks write it.
SCHEDULE_LABELS = {
    "beta": r"$\beta_t$",
    "alpha_bar": r"$\bar\alpha_t$",
    "sqrt_alpha_bar": r"$\sqrt{\bar\alpha_t}$ (signal)",
    "sqrt_one_minus_alpha_bar": r"$\sqrt{1-\bar\alpha_t}$ (noise)",
    "log_snr": r"$\log \mathrm{SNR}_t$",
}


def _color(name: str, i: int) -> str:
    return SCHEDULE_COLORS.get(name, f"C{i + 2}")


# Where each panel's legend goes: the corner its curves leave empty, for every t (so it never jumps).
SCHEDULE_LEGEND_LOC = {"beta": "upper left", "alpha_bar": "upper right", "sqrt_alpha_bar": "upper right",
                       "sqrt_one_minus_alpha_bar": "lower right", "log_snr": "upper right"}


def plot_schedules(schedules, quantities=tuple(SCHEDULE_LABELS), t=None, ncols: int = 3):
    """One panel per Schedule field in `quantities`, one curve per schedule, against t = 0 .. T-1.

    t: None; an int (a dot at t on each curve, a dotted line there, the value of each schedule in the
    legend: the slider's picture, see schedules_slider); or a list of ints (a dotted line at each: the
    static strip).
    """
    return _schedule_panels(schedules, quantities, t, ncols)[0]


def schedules_slider(schedules, quantities=tuple(SCHEDULE_LABELS), ncols: int = 3) -> LiveFigure:
    """The live twin of plot_schedules(schedules, quantities, t) for a slider over t: render(t) -> PNG bytes."""
    return LiveFigure(lambda t: _schedule_panels(schedules, quantities, int(t), ncols))


def _schedule_panels(schedules, quantities, t, ncols):
    marks = [] if t is None else [t] if isinstance(t, int) else list(t)
    n = len(quantities)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    width = min(MAX_WIDTH_IN, 3.6 * ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, min(2.85 * nrows, 2 * SLIDER_HEIGHT_IN) + 0.2 * (n == 1)),
                             squeeze=False)
    moving, dots, lines, legends = [], [], [], []
    for ax, q in zip(axes.flat, quantities):
        for i, s in enumerate(schedules):
            values = getattr(s, q).numpy()
            label = s.name if not isinstance(t, int) else f"{s.name}: {values[t]:.4g}"
            ax.plot(np.arange(s.T), values, color=_color(s.name, i), lw=2.5, label=label)
            if isinstance(t, int):
                dot, = ax.plot([t], [values[t]], "o", color=_color(s.name, i), ms=8)
                dots.append((dot, values))
        for m in marks:
            lines.append(ax.axvline(m, color="gray", ls=":", lw=1.5))
        if q == "beta":
            ax.set_yscale("log")         # linear betas span 1e-4 .. 0.02, cosine ones 4e-5 .. 0.999
        if q == "log_snr":
            ax.axhline(0, color="k", lw=1)  # SNR = 1: signal and noise variances are equal
        if q in ("alpha_bar", "sqrt_alpha_bar"):  # room above 1 for the legend: the curves start at 1 on the left
            ax.set_ylim(-0.05, 1.55)
            ax.set_yticks(np.linspace(0, 1, 6))
        style_axes(ax, SCHEDULE_LABELS.get(q, q) + (" (log scale)" if q == "beta" else ""),
               "timestep t" if ax in axes[-1] or n <= ncols else None)
        legend = ax.legend(fontsize=TICK_SIZE - 1, loc=SCHEDULE_LEGEND_LOC.get(q, "best"),
                           title=f"t = {t}" if isinstance(t, int) else None, title_fontsize=TICK_SIZE - 1,
                           borderpad=0.3, handlelength=1.5, labelspacing=0.3)
        legends.append((legend, [getattr(s, q).numpy() for s in schedules]))
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    fig.tight_layout(pad=0.4, h_pad=0.6, w_pad=0.8)
    if isinstance(t, int):
        moving = [d for d, _ in dots] + lines + [leg for leg, _ in legends]

    def update(t: int) -> None:
        for dot, values in dots:
            dot.set_data([t], [values[t]])
        for line in lines:
            line.set_xdata([t, t])
        for legend, per_schedule in legends:
            legend.get_title().set_text(f"t = {t}")
            for text, s, values in zip(legend.get_texts(), schedules, per_schedule):
                text.set_text(f"{s.name}: {values[t]:.4g}")

    return fig, moving, update


def schedule_table(schedules, ts, quantities=tuple(SCHEDULE_LABELS), digits: int = 4) -> str:
    """A text table of each schedule's `quantities` at the timesteps `ts` (what the notebooks print)."""
    widths = [max(len(q) + 2, digits + 8) for q in quantities]
    header = f"{'schedule':<9}{'t':>5}" + "".join(f"{q:>{w}}" for q, w in zip(quantities, widths))
    rows = [header]
    for s in schedules:
        for t in ts:
            rows.append(f"{s.name:<9}{t:>5}" + "".join(f"{getattr(s, q)[t].item():>{w}.{digits}g}"
                                                      for q, w in zip(quantities, widths)))
    return "\n".join(rows)


def plot_variance_split(schedules):
    """Per schedule, the variance of x_t split into signal alpha_bar_t and noise 1 - alpha_bar_t: they stack to 1."""
    fig, axes = plt.subplots(1, len(schedules), figsize=(min(MAX_WIDTH_IN, 5.2 * len(schedules)), 3.6), squeeze=False,
                             sharey=True)
    for ax, s in zip(axes[0], schedules):
        t = np.arange(s.T)
        ab = s.alpha_bar.numpy()
        ax.stackplot(t, ab, 1 - ab, colors=["tab:green", "tab:gray"], alpha=0.8,
                     labels=[r"signal variance $\bar\alpha_t$", r"noise variance $1-\bar\alpha_t$"])
        ax.set_ylim(0, 1.05)
        ax.set_xlim(0, s.T - 1)
        style_axes(ax, f"{s.name} schedule", "timestep t", r"share of Var$(x_t)$" if ax is axes[0, 0] else None)
        ax.legend(loc="center right", fontsize=TICK_SIZE - 1)
    fig.tight_layout(pad=0.4)
    return fig


def plot_ddpm_sigmas(schedule):
    """The two DDPM noise levels sigma_t = sqrt(beta_t) and sqrt(beta_tilde_t) against t (log scale), and their ratio.

    Ho et al. (2020, section 3.2): for data of unit variance per pixel, sigma_t^2 = beta_t and beta_tilde_t
    are the upper and the lower bound on the entropy of the reverse step (optimal for x_0 ~ N(0, I) and for
    one fixed x_0).
    """
    t = np.arange(schedule.T)
    beta, beta_tilde = schedule.beta.double().numpy(), schedule.beta_tilde.double().numpy()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 4.0))
    ax0.plot(t, np.sqrt(beta), lw=2.5, color="tab:red", label=r"$\sigma_t = \sqrt{\beta_t}$: upper bound")
    ax0.plot(t[1:], np.sqrt(beta_tilde[1:]), lw=2.5, color="tab:blue",
             label=r"$\sigma_t = \sqrt{\tilde\beta_t}$ (posterior): lower bound")
    ax0.set_yscale("log")
    style_axes(ax0, "noise of one reverse step", "timestep t (log scale above 10)", r"$\sigma_t$ (log scale)")
    ax0.legend(fontsize=TICK_SIZE - 1, loc="upper left", title="bounds on the step's entropy",
               title_fontsize=TICK_SIZE - 1)
    ratio = np.sqrt(beta_tilde / beta)
    ax1.plot(t, ratio, lw=2.5, color="tab:purple")
    ax1.set_ylim(0, 1.05)
    style_axes(ax1, r"$\sqrt{\tilde\beta_t / \beta_t}$: they differ only near t = 0", "timestep t (log scale above 10)",
           "ratio")
    for ax in (ax0, ax1):
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(0, schedule.T - 1)                   # t >= 0: no negative side of the symlog axis
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout(pad=0.4)
    return fig
