"""The 2-D toy of diffusion_lib.toy (points (B, 2, 1, 1)): densities, vector fields and sampler paths
(notebooks 10 and 11).

    plot_toy_noising, toy_noising_slider            the noised density q_t, shaded, with noised points
    plot_score_fields, field_slider                 a vector field (the score, the flow velocity) as arrows over q_t
    plot_toy_trajectories, toy_trajectory_slider    the same starting points through each sampler, as paths over q_t

Each picture shades a density behind its points or arrows: by default the VP-noised q_t of the data's mixture at
the panel's code timestep t; density_at(t) -> a toy.GaussianMixture shades another path's density instead
(notebook 11's flow path). A picture of one value is a slider's, and has a live twin.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection

from .live import LiveFigure
from .style import MAX_WIDTH_IN, SLIDER_HEIGHT_IN, TICK_SIZE, TITLE_SIZE, text_inches, two_lines


TOY_LIMIT = 1.5          # the square [-TOY_LIMIT, TOY_LIMIT]^2 the toy's pictures show
TOY_PANEL_IN = 3.6       # inches per panel of a slider's picture at most (less where its row would not fit)
TOY_STRIP_PANEL_IN = 2.6  # inches per panel of a static strip at most: rows of them fit MAX_WIDTH_IN
TOY_STRIP_COLUMNS = 3     # panels per row of a strip of one picture at several steps (the noised density)
TOY_SLIDER_TICK_SIZE = TICK_SIZE - 1   # a slider's row is shown up to its full width, its small text >= 12 pixels


def _alpha_bar(schedule, t: int) -> float:
    return 1.0 if t < 0 else float(schedule.alpha_bar[t])


def _shading(mixture, schedule, density_at):
    """t -> (mix, alpha_bar): the density shaded at code timestep t is q_t_log_density(mix, ., alpha_bar). By default
    the VP-noised q_t, (mixture, alpha_bar_t) (alpha_bar 1 at t = -1, the end of a chain); with density_at, the
    mixture density_at(t) returns, as it is: (density_at(t), 1)."""
    from .. import toy

    if density_at is None:
        return lambda t: (mixture, _alpha_bar(schedule, t))
    if not callable(density_at):
        raise TypeError(f"density_at must be a function t -> toy.GaussianMixture (the density to shade at code "
                        f"timestep t), or None for the noised mixture q_t; got {type(density_at).__name__}")

    def shaded(t):
        mix = density_at(t)
        if not isinstance(mix, toy.GaussianMixture):
            raise TypeError(f"density_at({t}) must return a diffusion_lib.toy.GaussianMixture (the density to shade), "
                            f"got {type(mix).__name__}")
        return mix, 1.0
    return shaded


_DENSITY_CACHE: dict = {}    # (mixture's numbers, alpha_bar, limit, n) -> density grid: the toy's pictures reuse them


def _density_grid(mixture, alpha_bar: float, limit: float, n: int = 90) -> np.ndarray:
    """q_t on an n x n grid over [-limit, limit]^2, (y, x): the density of the noised mixture. Recent grids are kept,
    so the panels of one noise level, and a slider's repeated pictures, compute it once (about 10 ms)."""
    from .. import toy

    numbers = tuple(tuple(v.flatten().tolist()) for v in (mixture.weights, mixture.means, mixture.covariances))
    key = (numbers, float(alpha_bar), float(limit), n)
    if key not in _DENSITY_CACHE:
        if len(_DENSITY_CACHE) > 64:
            _DENSITY_CACHE.clear()
        grid = toy.grid_points(limit, n)
        _DENSITY_CACHE[key] = toy.q_t_log_density(mixture, grid, alpha_bar).exp().reshape(n, n).numpy()
    return _DENSITY_CACHE[key]


def _toy_density(ax, mixture, alpha_bar: float, limit: float, n: int = 90, tick_size: float = TICK_SIZE - 2,
                 edge_ticks: bool = True):
    """q_t as a shaded background (drawn smoothed), darkest at its peak; returns the AxesImage (a live picture
    changes it with _set_density). edge_ticks=False: no tick at the square's edges (in a strip, whose panels stand
    close, the label of one panel's right edge would touch that of the next one's left edge)."""
    density = _density_grid(mixture, alpha_bar, limit, n)
    image = ax.imshow(density, extent=(-limit, limit, -limit, limit), origin="lower", cmap="Blues",
                      vmin=0, vmax=float(density.max()), interpolation="bicubic")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=tick_size)
    if not edge_ticks:
        inner = [v for v in ax.get_xticks() if abs(v) < limit - 1e-9]
        ax.set_xticks(inner)
        ax.set_yticks(inner)
    return image


def _set_density(image, mixture, alpha_bar: float, limit: float, n: int = 90) -> None:
    """A live picture's background: the image of _toy_density shows the density of (mixture, alpha_bar) instead."""
    density = _density_grid(mixture, alpha_bar, limit, n)
    image.set_data(density)
    image.set_clim(0, float(density.max()))


PANEL_LEFT, PANEL_RIGHT = 0.5, 0.15     # inches beside a toy panel: its tick labels on the left, a gap on the right


def _gap_w(shared_ticks: bool) -> float:
    return PANEL_RIGHT + (0.0 if shared_ticks else PANEL_LEFT)


def _fit_width(cols: int, size: float, shared_ticks: bool) -> float:
    """The largest panel size up to `size` with which `cols` panels side by side fit MAX_WIDTH_IN."""
    return min(size, (MAX_WIDTH_IN - 0.1 - PANEL_LEFT - PANEL_RIGHT - (cols - 1) * _gap_w(shared_ticks)) / cols)


def _toy_panel_axes(rows: int, cols: int, size: float, title: str, heading_lines: int = 1, shared_ticks: bool = False,
                    max_height: float | None = None, panels: int | None = None):
    """rows x cols square panels, `size` inches each or less, so that they fit MAX_WIDTH_IN (and max_height), laid
    out by hand (a tight layout misplaces square panels): 0.5 inch left of a panel for its tick labels, 0.15 right
    of it, 0.35 under it, 0.3 per line of its title above it, and the figure's title above all (on two lines if one
    is too wide). shared_ticks: tick labels only left of the first column and under the last panel of each column
    (every panel shows the same square), so panels stand closer. panels: how many of the rows x cols are drawn, row
    by row (the others are removed). Returns fig, axes (rows, cols) and the title to give _finish."""
    left, right, bottom, heading = PANEL_LEFT, PANEL_RIGHT, 0.35, 0.3 * heading_lines
    gap_w = _gap_w(shared_ticks)                                       # between two panels side by side
    gap_h = heading + (0.1 if shared_ticks else bottom)                # between a panel and the one under it
    if text_inches([title], TITLE_SIZE)[0] > min(MAX_WIDTH_IN, left + right + cols * size + (cols - 1) * gap_w) - 0.3:
        title = two_lines(title)
    room = 0.15 + 0.3 * (title.count("\n") + 1)
    size = _fit_width(cols, size, shared_ticks)
    if max_height is not None:
        size = min(size, (max_height - 0.1 - room - heading - bottom - (rows - 1) * gap_h) / rows)
    width = round(left + right + cols * size + (cols - 1) * gap_w, 9)      # 10.4, not 10.3999...: 1040 pixels
    height = round(bottom + heading + room + rows * size + (rows - 1) * gap_h, 9)
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - (heading + room) / height, wspace=gap_w / size, hspace=gap_h / size)
    panels = rows * cols if panels is None else panels
    for p, ax in enumerate(axes.flat):
        if p >= panels:
            fig.delaxes(ax)
        elif shared_ticks:
            ax.tick_params(labelleft=p % cols == 0, labelbottom=p + cols >= panels)
    return fig, axes, title


def _toy_slider_axes(cols: int, size: float, title: str, heading_lines: int = 1):
    """A slider's row of `cols` square panels, `size` inches each or less, that fits MAX_WIDTH_IN and
    SLIDER_HEIGHT_IN, every panel with its tick labels (_toy_panel_axes)."""
    return _toy_panel_axes(1, cols, size, title, heading_lines, max_height=SLIDER_HEIGHT_IN)


def _toy_strip_axes(names: int, steps: int, title: str, captions, caption_size: float):
    """A static strip of `names` pictures (fields, samplers) at `steps` steps, in rows that fit MAX_WIDTH_IN rather
    than one long row: several names stand side by side, one row per step (each row is the slider's picture); a
    single name wraps its steps, TOY_STRIP_COLUMNS to a row. Panels of TOY_STRIP_PANEL_IN inches or less, tick
    labels shared. captions: the panels' titles; a panel's title goes on two lines (", " becomes a line break) if
    the longest is wider than a panel. Returns fig, place(name, step) -> its axes, the title to give _finish, and
    the captions' separator (", " or a line break)."""
    rows, cols = (steps, names) if names > 1 else (math.ceil(steps / min(steps, TOY_STRIP_COLUMNS)),
                                                   min(steps, TOY_STRIP_COLUMNS))
    size = _fit_width(cols, TOY_STRIP_PANEL_IN, shared_ticks=True)
    sep = "\n" if text_inches(list(captions), caption_size)[0] > size else ", "
    fig, axes, title = _toy_panel_axes(rows, cols, size, title, heading_lines=1 + (sep == "\n"), shared_ticks=True,
                                       panels=names * steps)

    def place(i: int, j: int):
        return axes[j][i] if names > 1 else axes.flat[j]
    return fig, place, title, sep


def _toy_figure(names: int, steps: int, title: str, captions, caption_size: float, slider_size: float = TOY_PANEL_IN,
                slider_lines: int = 1):
    """The panels of a toy picture of `names` pictures at `steps` steps. One step is a slider's picture: the names
    side by side in one row of panels up to slider_size inches, their titles on slider_lines lines; several steps
    are a static strip (_toy_strip_axes). Returns fig, place(name, step) -> its axes, the title to give _finish,
    and the separator of the panels' captions."""
    if steps == 1:
        fig, axes, title = _toy_slider_axes(names, slider_size, title, slider_lines)
        return fig, (lambda i, j: axes[0][i]), title, "\n" if slider_lines == 2 else ", "
    return _toy_strip_axes(names, steps, title, captions, caption_size)


def _finish(fig, title: str, single: bool):
    """The title above the panels, in the room _toy_panel_axes kept for it; returns the title's Text. A strip's title
    hangs 0.1 inch under the top (matplotlib's default, 2% of the height, would put it on a tall strip's panels)."""
    if single:
        return fig.suptitle(title, fontsize=TITLE_SIZE)
    return fig.suptitle(title, fontsize=TITLE_SIZE, y=1 - 0.1 / fig.get_figheight(), va="top")


def _live_panel(ax, image, *over) -> list:
    """A live panel's moving artists in the order a full draw stacks them: the shaded background `image`, what
    lies `over` it (points, lines, arrows), the axes' spines (blitting redraws the moving artists in the order
    given, over a background drawn without them, so whatever lies over a moving artist must move too)."""
    return [image, *over, *ax.spines.values()]


def _no_update(value) -> None:
    """The update of a picture of several values: none (only a slider's picture, of one value, is redrawn)."""
    raise ValueError("only a picture of one value (a slider's) can be redrawn at another value")


NOISING_TITLE = "the noised density $q_t$ (shaded) and noised data points"
NOISING_LABEL = "x_t = q_sample(x_0, t)"


def plot_toy_noising(mixture, schedule, timesteps, samples: dict | None = None, limit: float = TOY_LIMIT,
                     density_at=None, title: str | None = None, label: str = NOISING_LABEL):
    """The noised density q_t (shaded) at each of `timesteps`, one panel each (TOY_STRIP_COLUMNS to a row), with
    samples[t] (B, 2, 1, 1) drawn on top where given: the toy's forward process. One timestep is the slider's
    picture (live twin: toy_noising_slider).

    density_at: t -> a toy.GaussianMixture, the density to shade at t instead of q_t (the panel titles then leave
    out alpha_bar_t); title: the figure's title; label: the samples' legend."""
    samples_at = None if samples is None else samples.get
    return _toy_noising(mixture, schedule, list(timesteps), samples_at, limit, density_at, title, label)[0]


def toy_noising_slider(mixture, schedule, samples_at=None, limit: float = TOY_LIMIT, density_at=None,
                       title: str | None = None, label: str = NOISING_LABEL) -> LiveFigure:
    """The live twin of plot_toy_noising(mixture, schedule, [t], {t: samples_at(t)}) for a slider over t:
    render(t) -> PNG bytes. samples_at: t -> the points x_t (B, 2, 1, 1) drawn at t (None: the density only)."""
    if samples_at is not None and not callable(samples_at):
        raise TypeError(f"samples_at must be a function t -> points (B, 2, 1, 1), got {type(samples_at).__name__}")
    return LiveFigure(lambda t: _toy_noising(mixture, schedule, [int(t)], samples_at, limit, density_at, title, label))


def _toy_noising(mixture, schedule, timesteps, samples_at, limit, density_at, title, label):
    from .. import toy

    shaded = _shading(mixture, schedule, density_at)
    title = NOISING_TITLE if title is None else title
    single = len(timesteps) == 1

    def caption(t):
        return f"t = {t}" + ("" if density_at is not None else
                             ", " + r"$\bar\alpha_t$" + f" = {_alpha_bar(schedule, t):.3g}")

    def points(t):
        x = samples_at(t)
        if x is None:
            return None
        return toy.as_xy(x).detach().cpu().numpy()

    fig, place, title, _ = _toy_figure(1, len(timesteps), title, [caption(t) for t in timesteps], TITLE_SIZE - 2)
    tick = TOY_SLIDER_TICK_SIZE if single else TICK_SIZE - 2
    for j, t in enumerate(timesteps):
        ax = place(0, j)
        image = _toy_density(ax, *shaded(t), limit, tick_size=tick, edge_ticks=single)
        xy = None if samples_at is None else points(t)
        dots = None if xy is None else ax.scatter(xy[:, 0], xy[:, 1], s=4, color="tab:red", alpha=0.5, label=label)
        heading = ax.set_title(caption(t), fontsize=TITLE_SIZE - 2)
    legend = None if samples_at is None else place(0, 0).legend(fontsize=TICK_SIZE - 2, loc="lower left", markerscale=3)
    _finish(fig, title, single)
    if not single:
        return fig, [], _no_update
    if samples_at is not None and dots is None:
        raise ValueError(f"samples_at({timesteps[0]}) gave no points: a slider's picture needs points at every t")

    def update(t: int) -> None:
        _set_density(image, *shaded(t), limit)
        if dots is not None:
            xy = points(t)
            if xy is None:
                raise ValueError(f"samples_at({t}) gave no points: a slider's picture needs points at every t")
            dots.set_offsets(xy)
        heading.set_text(caption(t))

    over = [] if dots is None else [dots]
    moving = [*_live_panel(ax, image, *over), *([] if legend is None else [legend]), heading]
    return fig, moving, update


SCORE_TITLE = r"the score $\nabla_x \log q_t(x)$ (arrows) over $q_t$ (shaded)"


def plot_score_fields(grid, fields: dict, timesteps, mixture, schedule, limit: float = TOY_LIMIT, density_at=None,
                      title: str | None = None, quantity: str = "score"):
    """Score fields as arrows on the points `grid` (N, 2, 1, 1), over the shaded q_t: fields maps a name ("exact",
    "learned") to {t: score (N, 2, 1, 1)}. The names stand side by side, one row per timestep (one timestep: the
    slider's picture, live twin: field_slider); a single name wraps its timesteps into rows of TOY_STRIP_COLUMNS.

    At one timestep every field is drawn to the same scale, set by the first field: its median arrow is 0.7 grid
    cells long (the length it stands for is printed in the panel), and arrows longer than 1.4 cells are cut to
    1.4 cells, keeping their direction. The score grows like 1 / sqrt(1 - alpha_bar_t) as t falls, so the scale
    differs between timesteps.

    Any vector field on the grid can be drawn the same way: quantity names it in the panels' scale ("velocity"),
    title is the figure's, density_at: t -> a toy.GaussianMixture shades that density instead of q_t."""
    return _fields(grid, fields, list(timesteps), mixture, schedule, limit, density_at, title, quantity)[0]


def field_slider(grid, fields: dict, mixture, schedule, limit: float = TOY_LIMIT, density_at=None,
                 title: str | None = None, quantity: str = "score") -> LiveFigure:
    """The live twin of plot_score_fields(grid, fields, [t], mixture, schedule, ...) for a slider over t: the fields
    of every name at t side by side, arrows over the shaded density. render(t) -> PNG bytes.

    fields: name -> {t: field (N, 2, 1, 1) on grid}, every t the slider visits; quantity: what the arrows are, in
    the panels' scale ("score", or "velocity" for a flow-matching field); title: the figure's title (default: the
    score's); density_at: t -> a toy.GaussianMixture to shade at t (default: the noised mixture q_t, that is
    toy.noised_mixture(mixture, alpha_bar_t))."""
    _field_names(fields)
    return LiveFigure(lambda t: _fields(grid, fields, [int(t)], mixture, schedule, limit, density_at, title, quantity))


def _field_names(fields) -> list:
    if not isinstance(fields, dict) or not fields:
        raise ValueError("fields must be a non-empty dict: name -> {t: field (N, 2, 1, 1)}")
    return list(fields)


def _fields(grid, fields, timesteps, mixture, schedule, limit, density_at, title, quantity):
    from .. import toy

    names = _field_names(fields)
    xy = toy.as_xy(grid).numpy()
    side = round(math.sqrt(xy.shape[0]))
    if side < 2 or side * side != xy.shape[0]:
        raise ValueError(f"grid must be the n x n points of toy.grid_points (n >= 2), got {xy.shape[0]} points")
    spacing = 2 * float(np.abs(xy).max()) / (math.sqrt(xy.shape[0]) - 1)             # distance between grid points
    shaded = _shading(mixture, schedule, density_at)
    title = SCORE_TITLE if title is None else title
    single = len(timesteps) == 1

    def field(name, t):
        at = fields[name]
        if t not in at:
            known = sorted(at) if len(at) <= 6 else f"{min(at)} .. {max(at)}"
            raise ValueError(f"fields[{name!r}] has no field at t = {t} (it has t = {known})")
        f = at[t]
        if tuple(f.shape) != (xy.shape[0], 2, 1, 1):
            raise ValueError(f"fields[{name!r}][{t}] has shape {tuple(f.shape)}; on a grid of {xy.shape[0]} points it "
                             f"must be ({xy.shape[0]}, 2, 1, 1)")
        return f[:, :, 0, 0]

    def arrows(t):
        """name -> arrows (N, 2) in data units, and the length of the first field's median arrow (0.7 cells)."""
        typical = float(field(names[0], t).norm(dim=1).median())
        out = {}
        for name in names:
            uv = field(name, t).double()
            uv = uv * (0.7 * spacing / typical if typical > 0 else 0.0)             # median arrow: 0.7 cells
            length = uv.norm(dim=1, keepdim=True)
            out[name] = (uv * (1.4 * spacing / length.clamp(min=1.4 * spacing))).numpy()  # longer cut to 1.4 cells
        return out, typical

    def scale_text(typical):
        return f"0.7 cells = |{quantity}| {typical:.3g}"

    def caption(name, t, sep=", "):
        return f"{name}{sep}t = {t}"

    fig, place, title, sep = _toy_figure(len(names), len(timesteps), title,
                                         [caption(n, t) for n in names for t in timesteps], TITLE_SIZE - 2)
    tick = TOY_SLIDER_TICK_SIZE if single else TICK_SIZE - 2
    panels = []
    for j, t in enumerate(timesteps):
        uv, typical = arrows(t)
        for i, name in enumerate(names):
            ax = place(i, j)
            image = _toy_density(ax, *shaded(t), limit, tick_size=tick, edge_ticks=single)
            quiver = ax.quiver(xy[:, 0], xy[:, 1], uv[name][:, 0], uv[name][:, 1], angles="xy", scale_units="xy",
                               scale=1, width=0.006, color="k")
            heading = ax.set_title(caption(name, t, sep), fontsize=TITLE_SIZE - 2)
            scale = ax.text(0.02, 0.02, scale_text(typical), transform=ax.transAxes, fontsize=tick,
                            bbox=dict(facecolor="white", alpha=0.8, lw=0))
            panels.append((ax, name, image, quiver, heading, scale))
    _finish(fig, title, single)
    if not single:
        return fig, [], _no_update

    def update(t: int) -> None:
        uv, typical = arrows(t)
        for ax, name, image, quiver, heading, scale in panels:
            _set_density(image, *shaded(t), limit)
            quiver.set_UVC(uv[name][:, 0], uv[name][:, 1])
            heading.set_text(caption(name, t, sep))
            scale.set_text(scale_text(typical))

    moving = [a for ax, _, image, quiver, heading, scale in panels
              for a in (*_live_panel(ax, image, quiver), scale, heading)]
    return fig, moving, update


def plot_toy_trajectories(trajectories: dict, steps, mixture, schedule, trail: int | None = None,
                          show: int | None = None, limit: float = 2.5, density_at=None, title: str | None = None):
    """Chains of 2-D points: trajectories maps a sampler's name to a samplers.Trajectory of points. For each
    recorded step k of `steps` (k = len(timesteps): the end), the points at step k as dots over the shaded q_t of
    that step, and their paths as lines: from the start, or over the last `trail` recorded steps only; the first
    `show` points (all if None). The samplers stand side by side, one row per step, as in the slider's picture of
    a single step (live twin: toy_trajectory_slider); a single sampler wraps its steps into rows of
    TOY_STRIP_COLUMNS.

    density_at: t -> a toy.GaussianMixture to shade at the step's code timestep t (-1 at the end) instead of q_t, or
    a dict chain name -> such a function (or None: q_t) when the chains follow different paths; title: the
    figure's title."""
    return _toy_trajectories(trajectories, list(steps), mixture, schedule, trail, show, limit, density_at, title)[0]


def toy_trajectory_slider(trajectories: dict, mixture, schedule, trail: int | None = 10, show: int | None = 8,
                          density_at=None, limit: float = 2.5, title: str | None = None) -> LiveFigure:
    """The live twin of plot_toy_trajectories(trajectories, [k], mixture, schedule, trail, show, ...) for a slider
    over the recorded step k = 0 .. len(timesteps) (the end): render(k) -> PNG bytes. density_at as there."""
    _trajectory_names(trajectories)
    return LiveFigure(lambda k: _toy_trajectories(trajectories, [int(k)], mixture, schedule, trail, show, limit,
                                                  density_at, title))


def _trajectory_names(trajectories) -> list:
    if not isinstance(trajectories, dict) or not trajectories:
        raise ValueError("trajectories must be a non-empty dict: a sampler's name -> samplers.Trajectory of points")
    for name, tr in trajectories.items():
        if tr.x_t.ndim != 5 or tuple(tr.x_t.shape[2:]) != (2, 1, 1):
            raise ValueError(f"trajectories[{name!r}] must hold 2-D points, states (K, B, 2, 1, 1); "
                             f"got {tuple(tr.x_t.shape)}")
    return list(trajectories)


def _toy_trajectories(trajectories, steps, mixture, schedule, trail, show, limit, density_at, title):
    names = _trajectory_names(trajectories)
    if isinstance(density_at, dict):          # one density per chain: chains of different paths side by side
        unknown = sorted(set(density_at) - set(names))
        if unknown:
            raise ValueError(f"density_at names chains that are not in trajectories: {unknown}; the chains are {names}")
        shading = {name: _shading(mixture, schedule, density_at.get(name)) for name in names}
    else:
        shading = dict.fromkeys(names, _shading(mixture, schedule, density_at))
    single = len(steps) == 1
    what = "paths" if trail is None else f"the last {trail} recorded steps of each path"
    title = (f"the same starting points through each sampler: the points, {what}, over $q_t$ (shaded)"
             if title is None else title)

    def step_of(name, k):
        """The code timestep of recorded step k (-1: the end) and the first step of its trail."""
        K = len(trajectories[name].timesteps)
        if isinstance(k, bool) or not 0 <= k <= K:
            raise ValueError(f"step k = {k} is outside the recorded steps of {name!r}: 0 .. {K} ({K}: the end)")
        return (trajectories[name].timesteps[k] if k < K else -1), (0 if trail is None else max(0, k - trail))

    def caption(name, t, sep=", "):
        return f"{name}{sep}" + (f"t = {t}" if t >= 0 else "the end")

    fig, place, title, sep = _toy_figure(len(names), len(steps), title,
                                         [caption(n, step_of(n, k)[0]) for n in names for k in steps], TITLE_SIZE - 3,
                                         slider_size=4.4, slider_lines=2)      # a slider's narrow panels: two lines
    tick = TOY_SLIDER_TICK_SIZE if single else TICK_SIZE - 2
    panels = []
    for i, name in enumerate(names):
        tr = trajectories[name]
        paths = torch.cat([tr.x_t, tr.sample[None]])[:, :show, :, 0, 0].detach().cpu().numpy()   # (K + 1, B, 2)
        colors = [f"C{b % 10}" for b in range(paths.shape[1])]
        for j, k in enumerate(steps):
            ax = place(i, j)
            t, first = step_of(name, k)
            image = _toy_density(ax, *shading[name](t), limit, tick_size=tick, edge_ticks=single)
            # One collection for every point's trail: a slider redraws one artist per panel, not one per point.
            trails = ax.add_collection(LineCollection(_trails(paths, first, k), colors=colors, linewidths=1,
                                                      alpha=0.8), autolim=False)
            dots = ax.scatter(paths[k, :, 0], paths[k, :, 1], s=22, c=colors, edgecolor="k", linewidths=0.6, zorder=3)
            heading = ax.set_title(caption(name, t, sep), fontsize=TITLE_SIZE - 3)
            panels.append((ax, name, paths, image, trails, dots, heading))
    _finish(fig, title, single)
    if not single:
        return fig, [], _no_update

    def update(k: int) -> None:
        for ax, name, paths, image, trails, dots, heading in panels:
            t, first = step_of(name, k)
            _set_density(image, *shading[name](t), limit)
            trails.set_segments(_trails(paths, first, k))
            dots.set_offsets(paths[k])
            heading.set_text(caption(name, t, sep))

    moving = [a for ax, _, _, image, trails, dots, heading in panels
              for a in (*_live_panel(ax, image, trails, dots), heading)]
    return fig, moving, update


def _trails(paths: np.ndarray, first: int, k: int) -> list:
    """Each point's path over the recorded steps first .. k: one (k - first + 1, 2) array per point."""
    return [paths[first:k + 1, b] for b in range(paths.shape[1])]
