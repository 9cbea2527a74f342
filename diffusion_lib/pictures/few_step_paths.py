"""Few-step paths on the 2-D toy (notebook 12): the same starting noises carried to the data by several samplers,
each in k steps, beside the accurate path, one panel per sampler (the teacher's curved paths, reflow's
straightened ones, MeanFlow's jumps).

    plot_few_step_paths(panels, ks, data)     one row per k in ks (a static strip), one panel per sampler
    few_step_paths_slider(panels, data)       a slider's picture over k (pass it to widgets.slider_view)

panels maps a sampler's name to {"fine": (N + 1, B, 2) the accurate path, or None; "steps": {k: (k + 1, B, 2)
the k-step chain}; "targets": (B, 2) the accurate ends, or None}: states from the noise (first) to the end (last).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

MAX_WIDTH_IN = 10.5     # inches: 1050 pixels at 100 dpi, the course's widest figure
PANEL_IN = 3.3          # inches per panel
TITLE_SIZE = 14
LABEL_SIZE = 12
TICK_SIZE = 10


def _check_panels(panels: dict, ks) -> None:
    if not isinstance(panels, dict) or not panels:
        raise ValueError("panels must be a non-empty dict: a sampler's name -> {'fine', 'steps', 'targets'}")
    for name, panel in panels.items():
        missing = [k for k in ks if k not in panel.get("steps", {})]
        if missing:
            raise ValueError(f"panels[{name!r}]['steps'] has no chain of {missing} steps; it has "
                             f"{sorted(panel.get('steps', {}))}")
        for k in ks:
            states = panel["steps"][k]
            if states.ndim != 3 or states.shape[0] != k + 1 or states.shape[2] != 2:
                raise ValueError(f"panels[{name!r}]['steps'][{k}] must be (k + 1, B, 2) states, got {tuple(states.shape)}")


def _draw_panel(ax, panel: dict, k: int, data: torch.Tensor, show: int, limit: float, title: str) -> None:
    ax.scatter(data[:, 0].numpy(), data[:, 1].numpy(), s=2, color="0.8", zorder=0)
    fine = panel.get("fine")
    states = panel["steps"][k][:, :show]                                        # (k + 1, show, 2)
    for b in range(states.shape[1]):
        color = f"C{b % 10}"
        if fine is not None:
            ax.plot(fine[:, b, 0].numpy(), fine[:, b, 1].numpy(), lw=1.3, ls="--", color=color, alpha=0.6)
        ax.plot(states[:, b, 0].numpy(), states[:, b, 1].numpy(), "-", lw=1.6, color=color, marker="o", ms=2.5)
    ax.scatter(states[-1, :, 0].numpy(), states[-1, :, 1].numpy(), s=30, c=[f"C{b % 10}" for b in range(states.shape[1])],
               edgecolor="k", linewidths=0.7, zorder=3)
    targets = panel.get("targets")
    if targets is not None:
        ax.scatter(targets[:show, 0].numpy(), targets[:show, 1].numpy(), s=40, marker="x", color="k", lw=1.2, zorder=4)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=TICK_SIZE)
    ax.set_title(title, fontsize=LABEL_SIZE)


def plot_few_step_paths(panels: dict, ks, data: torch.Tensor, show: int = 12, limit: float = 2.2,
                        title: str | None = None):
    """One row per number of steps k in ks, one panel per sampler: the first `show` chains of k steps (lines with a
    dot at each state, a ringed dot at the end), the accurate path of each (dashed), the accurate end (x), over data
    points (grey, (M, 2))."""
    ks = list(ks)
    _check_panels(panels, ks)
    cols = len(panels)
    size = min(PANEL_IN, (MAX_WIDTH_IN - 0.2) / cols)
    fig, axes = plt.subplots(len(ks), cols, figsize=(size * cols, (size + 0.35) * len(ks) + 0.7), squeeze=False)
    for i, k in enumerate(ks):
        for j, (name, panel) in enumerate(panels.items()):
            _draw_panel(axes[i][j], panel, k, data, show, limit, f"{name}, {k} step{'s' if k > 1 else ''}")
    fig.suptitle(title or "the same noises carried to the data in k steps (x: the accurate end; dashed: the accurate path)",
                 fontsize=TITLE_SIZE - 1)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / fig.get_figheight()), h_pad=1.5)
    return fig


def few_step_paths_slider(panels: dict, data: torch.Tensor, show: int = 12, limit: float = 2.2,
                          title: str | None = None):
    """render(k) -> the figure of plot_few_step_paths(panels, [k], data, ...): a slider's picture over k."""
    def render(k):
        fig = plot_few_step_paths(panels, [int(k)], data, show, limit, title)
        plt.close(fig)
        return fig
    return render


def plot_student_curves(curves: dict, targets: dict | None = None, title: str | None = None):
    """Learning curves of few-step students: curves maps a student's name to rows {"step", "nfe", "confident_share",
    "frechet_distance"} (benchmarks/few_step.py curve); two panels against the training step, confident share and
    Frechet distance (log scale), one line per student and number of network evaluations. targets: optional
    {"confident_share": value, "frechet_distance": value} drawn as dotted lines (the issue's one-step targets).
    title: the figure's title (default: what a point is)."""
    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves must be a non-empty dict: a student's name -> rows of step, nfe and scores")
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 4.0))
    styles = ["-", "--", ":", "-."]
    for i, (name, rows) in enumerate(curves.items()):
        for j, nfe in enumerate(sorted({r["nfe"] for r in rows})):
            mine = sorted((r for r in rows if r["nfe"] == nfe), key=lambda r: r["step"])
            steps = [r["step"] for r in mine]
            label = f"{name}, {nfe} NFE"
            axes[0].plot(steps, [r["confident_share"] for r in mine], styles[j % 4], marker="o", ms=4, lw=2,
                         color=f"C{i}", label=label)
            axes[1].plot(steps, [r["frechet_distance"] for r in mine], styles[j % 4], marker="o", ms=4, lw=2,
                         color=f"C{i}", label=label)
    for ax, key, ylabel in ((axes[0], "confident_share", "confident share"),
                            (axes[1], "frechet_distance", "Fréchet distance (log)")):
        if targets and key in targets:
            ax.axhline(targets[key], color="k", ls=":", lw=1.5, label="one-step target")
        ax.set_xlabel("training step", fontsize=LABEL_SIZE)
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
        ax.tick_params(labelsize=TICK_SIZE)
        ax.grid(alpha=0.3, which="both")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=TICK_SIZE - 1, loc="upper right")
    fig.suptitle(title or "the students during training (200 images from seed 0 per point)", fontsize=TITLE_SIZE - 1)
    fig.tight_layout()
    return fig


def path_states(trajectory) -> torch.Tensor:
    """A recorded chain of 2-D points (samplers.Trajectory: states (K, B, 2, 1, 1) and the end) as the (K + 1, B, 2)
    states from the start to the end that the panels take."""
    states = torch.cat([trajectory.x_t, trajectory.sample[None]])                     # (K + 1, B, 2, 1, 1)
    return states[..., 0, 0]
