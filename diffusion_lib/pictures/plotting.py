"""Pictures: image grids, strips over time, schedule curves. Images come in as (B, 1, H, W) in [-1, 1].

Every figure is sized for a projector and for GitHub: at most MAX_WIDTH_IN inches wide (at 100 dpi, shown
at its own size in JupyterLab on a 1280-pixel screen and only a little smaller on GitHub), no text under
10 points (about 14 pixels). A slider's picture is also at most SLIDER_HEIGHT_IN tall, so the slider and
its picture fit a 1280x800 screen together.

The pictures behind a slider over many values (01's schedules, 02's forward process, 03's embedding, 06's
chain, 09's chains, 10's toy density, score fields and paths) have a live twin, a LiveFigure: drawn in full
once, after that only the artists that change with the value are redrawn (blitting), which takes tens of
milliseconds instead of most of a second.
"""
from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ..images import image_grid as _image_grid

MAX_WIDTH_IN = 10.5        # inches; 1050 pixels at matplotlib's default 100 dpi
SLIDER_HEIGHT_IN = 5.6     # inches; a slider's picture, so that slider and picture fit 800 pixels of screen
PNG_COMPRESS_LEVEL = 1     # zlib level of a LiveFigure's PNG: fast to write, a few per cent larger
GRID_TILE_IN = 0.42        # inches per image (28 pixels and the gap) at scale 1
GRID_SCALE_MAX = 2.4       # the largest a grid's images are drawn: 2.4 x 0.42 = 1 inch, 100 pixels for 28
GRID_HEIGHT_IN = 6.4       # a static grid's greatest height (a slider's picture: SLIDER_HEIGHT_IN)


class LiveFigure:
    """A slider's picture: drawn in full for the first value, then only its moving artists are redrawn.

    build(value) -> (fig, moving, update): the figure drawn at `value`, the artists that change with the
    value (lines, images, texts, legends), and update(value), which changes only those artists (set_data,
    set_text, ...) and never the axes' limits or the layout. Calling the LiveFigure with a value returns the
    PNG bytes of the picture at that value; pass it as the `render` of diffusion_lib.widgets.slider_view.

    The picture depends on the value only, not on the values shown before it (tests/test_plotting_layout.py).
    """

    def __init__(self, build):
        self._build = build
        self._state = None

    @property
    def figure(self):
        """The figure (None until the first call)."""
        return None if self._state is None else self._state[0]

    def __call__(self, value) -> bytes:
        if self._state is None:
            fig, moving, update = self._build(value)
            plt.close(fig)                       # ours to draw: never shown by an inline backend
            if not isinstance(fig.canvas, FigureCanvasAgg):
                FigureCanvasAgg(fig)             # blitting needs Agg's buffer, whatever the notebook's backend
            for artist in moving:
                artist.set_animated(True)        # left out of the full draw: the background without them
            fig.canvas.draw()
            self._state = (fig, list(moving), update, fig.canvas.copy_from_bbox(fig.bbox))
        else:
            self._state[2](value)
        fig, moving, _, background = self._state
        fig.canvas.restore_region(background)
        for artist in moving:
            fig.draw_artist(artist)
        return _rgba_to_png(fig.canvas.buffer_rgba())


def _rgba_to_png(rgba) -> bytes:
    from PIL import Image

    pixels = np.asarray(rgba)                                     # (H, W, 4) uint8, Agg's own buffer
    image = Image.frombuffer("RGBA", (pixels.shape[1], pixels.shape[0]), pixels.tobytes(), "raw", "RGBA", 0, 1)
    if pixels[..., 3].min() == 255:
        image = image.convert("RGB")                              # opaque (the usual white figure): a smaller PNG
    buf = io.BytesIO()
    image.save(buf, format="png", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """images.image_grid as a numpy array, for imshow."""
    return _image_grid(images, nrow, pad).numpy()


def _fit_scale(scale, tiles_wide: float, tiles_high: float, extra_w: float, extra_h: float,
               max_height: float = GRID_HEIGHT_IN) -> float:
    """The images' scale (1: GRID_TILE_IN inches each): `scale`, or the largest that fits (scale None), never
    wider than MAX_WIDTH_IN, taller than max_height or larger than GRID_SCALE_MAX; extra_*: inches of text."""
    # 0.3 inch to spare: the inline backend's tight bounding box and its 0.1-inch pad on each side
    fit = min((MAX_WIDTH_IN - 0.3 - extra_w) / (GRID_TILE_IN * tiles_wide),
              (max_height - extra_h) / (GRID_TILE_IN * tiles_high), GRID_SCALE_MAX)
    return fit if scale is None else min(scale, fit)


def show_grid(images: torch.Tensor, nrow: int | None = None, title: str | None = None, ax=None,
              scale: float | None = None):
    """Draw image_grid(images) on ax (a new figure if None); returns the AxesImage.

    A new figure is sized like show_rows: images of `scale` x 0.42 inch, or (scale None) as large
    as fits MAX_WIDTH_IN x GRID_HEIGHT_IN, up to 1 inch each.
    """
    grid = image_grid(images, nrow)
    if ax is None:
        tiles_high, tiles_wide = (grid.shape[0] + 2) / 30, (grid.shape[1] + 2) / 30      # 28 pixels + 2 of gap
        title_h = 0.45 * (str(title).count("\n") + 1) if title else 0.0
        scale = _fit_scale(scale, tiles_wide, tiles_high, 0.1, title_h + 0.1)
        _, ax = plt.subplots(figsize=(scale * GRID_TILE_IN * tiles_wide + 0.1,
                                      scale * GRID_TILE_IN * tiles_high + title_h + 0.1))
    im = ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=LABEL_SIZE)
    return im


# ----------------------------------------------------------------------------------------------------------------
# Notebooks 01-03: schedules, forward noising, time embeddings. Sized for a projector: large fonts, every axis
# labelled, a legend wherever there is more than one curve. Each function returns its matplotlib Figure, so it
# can be the `render` of a dl.widgets.slider_view.

TITLE_SIZE = 15
LABEL_SIZE = 13
TICK_SIZE = 11
SCHEDULE_COLORS = {"linear": "tab:blue", "cosine": "tab:orange"}

# Schedule field -> how the notebooks write it.
SCHEDULE_LABELS = {
    "beta": r"$\beta_t$",
    "alpha_bar": r"$\bar\alpha_t$",
    "sqrt_alpha_bar": r"$\sqrt{\bar\alpha_t}$ (signal)",
    "sqrt_one_minus_alpha_bar": r"$\sqrt{1-\bar\alpha_t}$ (noise)",
    "log_snr": r"$\log \mathrm{SNR}_t$",
}


def _style(ax, title=None, xlabel=None, ylabel=None) -> None:
    if title:
        ax.set_title(title, fontsize=TITLE_SIZE)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)


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
        _style(ax, SCHEDULE_LABELS.get(q, q) + (" (log scale)" if q == "beta" else ""),
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
        _style(ax, f"{s.name} schedule", "timestep t", r"share of Var$(x_t)$" if ax is axes[0, 0] else None)
        ax.legend(loc="center right", fontsize=TICK_SIZE - 1)
    fig.tight_layout(pad=0.4)
    return fig


HIST_BINS, HIST_RANGE = 60, (-4.0, 4.0)


def _pixel_density(x: torch.Tensor, bins: int = HIST_BINS) -> np.ndarray:
    """The histogram of x's pixel values on HIST_RANGE as a density (bars of area 1 in all, as hist(density=True))."""
    values = x.detach().float().flatten().cpu().numpy()
    return np.histogram(values, bins=bins, range=HIST_RANGE, density=True)[0]


def _histogram(ax, x: torch.Tensor, title: str, normal: bool = True, bins: int = HIST_BINS):
    """A filled histogram of x's pixels with the N(0, 1) density; returns the histogram's artist (a StepPatch)."""
    edges = np.linspace(*HIST_RANGE, bins + 1)
    bars = ax.stairs(_pixel_density(x, bins), edges, fill=True, color="tab:purple", alpha=0.7, label="pixels of $x_t$")
    if normal:
        grid = np.linspace(*HIST_RANGE, 200)
        ax.plot(grid, np.exp(-grid ** 2 / 2) / math.sqrt(2 * math.pi), "k--", lw=2, label="N(0, 1)")
    ax.set_xlim(*HIST_RANGE)
    ax.set_xticks([-3, -2, -1, 0, 1, 2, 3])       # none at the corners, where they would run into the y labels
    _style(ax, title, "pixel value", "density")
    return bars


def plot_pixel_histograms(images, labels, title: str | None = None):
    """One histogram of pixel values per entry of `images` (a list of tensors), with the N(0, 1) density."""
    K = len(images)
    ncols = min(K, 5)
    nrows = math.ceil(K / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(MAX_WIDTH_IN, 2.1 * ncols + 0.5), 2.9 * nrows + 0.3),
                             squeeze=False, sharey=True)
    for ax, x, label in zip(axes.flat, images, labels):
        bars = _histogram(ax, x, str(label))
        ax.set_ylim(0, 1.0)
        ax.set_xticks([-2, 0, 2])
        if bars.get_data().values.max() > 1.0:
            ax.text(0.97, 0.96, "peaks\ncut at 1", transform=ax.transAxes, ha="right", va="top", fontsize=TICK_SIZE - 1)
    axes[0, 0].legend(fontsize=TICK_SIZE - 1, loc="upper left", handlelength=1.2, borderpad=0.3)
    for i, ax in enumerate(axes.flat):
        if i % ncols:
            ax.set_ylabel(None)
    for ax in axes.flat[K:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE)
    fig.tight_layout(pad=0.4)
    return fig


def plot_forward_state(x0: torch.Tensor, t: int, schedules, noise: torch.Tensor, show: int = 8):
    """The slider picture of notebook 02: x_t = q_sample(x0, t) for each schedule, a few images and the pixel
    histogram (live twin for a slider: forward_state_slider)."""
    return _forward_state(x0, t, schedules, noise, show)[0]


def forward_state_slider(x0: torch.Tensor, schedules, noise: torch.Tensor, show: int = 8) -> LiveFigure:
    """The live twin of plot_forward_state for a slider over t: render(t) -> PNG bytes."""
    return LiveFigure(lambda t: _forward_state(x0, int(t), schedules, noise, show))


def _forward_state(x0, t, schedules, noise, show):
    from ..forward import q_sample

    nrow = show // 2 if show > 4 else show
    fig, axes = plt.subplots(len(schedules), 2, figsize=(MAX_WIDTH_IN * 0.86, min(SLIDER_HEIGHT_IN, 2.55 * len(schedules) + 0.45)),
                             squeeze=False, gridspec_kw={"width_ratios": [1.45, 1]})

    def states(t):
        t_batch = torch.full((x0.shape[0],), t, dtype=torch.long)
        return [q_sample(x0, t_batch, s, noise=noise) for s in schedules]

    def caption(s, t):
        return f"{s.name}: " + r"$\sqrt{\bar\alpha_t}$" + f" = {s.sqrt_alpha_bar[t].item():.3f}"

    images, titles, bars = [], [], []
    for i, (row, s, x_t) in enumerate(zip(axes, schedules, states(t))):
        images.append(row[0].imshow(image_grid(x_t[:show], nrow=nrow), cmap="gray", vmin=0, vmax=1))
        row[0].set_axis_off()
        titles.append(row[0].set_title(caption(s, t), fontsize=TITLE_SIZE))
        bars.append(_histogram(row[1], x_t, f"pixels of {x0.shape[0]} images"))
        row[1].set_ylim(0, 1.5)
        row[1].legend(fontsize=TICK_SIZE - 1, loc="upper left", handlelength=1.2, borderpad=0.3)
        if i < len(schedules) - 1:
            row[1].set_xlabel(None)                # "pixel value" once, under the last histogram
    suptitle = fig.suptitle(f"t = {t}", fontsize=TITLE_SIZE + 1)
    fig.tight_layout(pad=0.4, h_pad=0.5)

    def update(t: int) -> None:
        for image, title, bar, s, x_t in zip(images, titles, bars, schedules, states(t)):
            image.set_data(image_grid(x_t[:show], nrow=nrow))
            title.set_text(caption(s, t))
            bar.set_data(values=_pixel_density(x_t))
        suptitle.set_text(f"t = {t}")

    return fig, [*images, *titles, *bars, suptitle], update


def plot_embedding_heatmap(emb: torch.Tensor):
    """The sinusoidal embedding (T, dim) as an image: timestep t down, dimension across, sin half | cos half."""
    T, dim = emb.shape
    fig, ax = plt.subplots(figsize=(10, 5.5))
    im = ax.imshow(emb.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.axvline(dim / 2 - 0.5, color="k", lw=2)
    ax.text(dim / 4, -T * 0.02, "sin half", ha="center", va="bottom", fontsize=LABEL_SIZE)
    ax.text(3 * dim / 4, -T * 0.02, "cos half", ha="center", va="bottom", fontsize=LABEL_SIZE)
    _style(ax, None, "embedding dimension (frequency falls from left to right in each half)", "timestep t")
    cbar = fig.colorbar(im, ax=ax)
    cbar.ax.tick_params(labelsize=TICK_SIZE)
    ax.set_title("sinusoidal time embedding emb(t)", fontsize=TITLE_SIZE, pad=24)
    fig.tight_layout()
    return fig


def plot_similarity_matrix(sim: torch.Tensor, title: str = "cosine similarity of emb(t) and emb(s)"):
    """A (T, T) similarity matrix as an image with a colour bar."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(sim.numpy(), cmap="viridis", vmin=float(sim.min()), vmax=1, interpolation="nearest")
    _style(ax, title, "timestep s", "timestep t")
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
    _style(ax, "cosine similarity of emb(t) with emb(s)", "timestep s", "cosine similarity")
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
    _style(ax0, f"emb(t) at t = {t}", "embedding dimension (sin half | cos half)", "value")
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


# ----------------------------------------------------------------------------------------------------------------
# Notebooks 04-05: backbones (shapes, receptive fields, cost) and training (loss curve, loss by timestep).

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
    _style(ax0, "resolution of each layer's output", "layer, in the order of the forward pass", "height = width (pixels)")
    _style(ax1, "channels of each layer's output", "layer, in the order of the forward pass", "channels")
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
    label_w, _ = _text_inches(names, LABEL_SIZE)
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
    _style(ax, "forward + backward, per image" + (f"\n{machine}" if machine else ""), "milliseconds per image (log scale)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout(pad=0.4)
    return fig


# The losses the library reports are means over the pixels (F.mse_loss): ||eps - eps_theta||^2 / 784 for MNIST.
LOSS_LABEL = r"per-pixel mean of $(\varepsilon - \varepsilon_\theta)^2$" "\n(log scale)"


def _loss_axes(ax, title: str, xlabel: str):
    """Log-scale loss axis, labels, grid and legend; returns the figure."""
    ax.set_yscale("log")
    _style(ax, title, xlabel, LOSS_LABEL)
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


# ----------------------------------------------------------------------------------------------------------------
# Notebooks 06-08: sampling chains, DDIM settings, quality against cost, classifier-free guidance.

def _text_inches(labels, size: float) -> tuple[float, float]:
    """Rough width and height in inches of the longest of `labels` at font `size` (points), lines counted."""
    lines = [line for label in labels for line in str(label).replace("$", "").split("\n")] or [""]
    return 0.56 * size / 72 * max(len(line) for line in lines), 1.25 * size / 72 * max(str(x).count("\n") + 1 for x in labels)


def _two_lines(label: str) -> str:
    """`label` broken at the space nearest its middle (unchanged if it has none)."""
    spaces = [i for i, c in enumerate(label) if c == " "]
    if not spaces:
        return label
    cut = min(spaces, key=lambda i: abs(i - len(label) / 2))
    return label[:cut] + "\n" + label[cut + 1:]


def _labelled_grid_picture(rows: dict, pad: int = 2):
    """The one image of show_rows: each row's images side by side, rows below each other, white gaps."""
    names = list(rows)
    K = max(rows[n].shape[0] for n in names)
    H, W = next(iter(rows.values())).shape[-2:]
    strips = []
    for n in names:
        strip = image_grid(rows[n], nrow=K, pad=pad)                     # (H, K (W + pad) - pad) or shorter
        full = np.ones((H, K * (W + pad) - pad), dtype=np.float32)
        full[:, :strip.shape[1]] = strip
        strips.append(full)
    return np.concatenate([np.concatenate([s, np.ones((pad, s.shape[1]), dtype=np.float32)]) for s in strips])[:-pad]


def show_rows(rows: dict, col_labels=None, title: str | None = None, scale: float | None = None,
              max_height: float = GRID_HEIGHT_IN):
    """A table of images in one picture (one imshow: fast enough for a slider), each row's name on the left,
    `col_labels` above the columns.

    rows: name -> (K, 1, H, W) in [-1, 1]; rows shorter than the longest are padded with white.
    scale: the images' size (1: 0.42 inch each); None, or anything larger than fits, is the largest that fits
    MAX_WIDTH_IN and max_height (inches), up to GRID_SCALE_MAX. Texts keep their size whatever the scale.
    """
    return _labelled_grid(rows, title, col_labels, scale, max_height)[0]


def labelled_grid_slider(rows_at, title_at=None, col_labels=None, scale: float | None = None) -> LiveFigure:
    """The live twin of show_rows for a slider: rows_at(value) -> the rows (same names and shapes for
    every value), title_at(value) -> the title (or a fixed string, or None). render(value) -> PNG bytes."""
    title_of = title_at if callable(title_at) else (lambda value: title_at)
    return LiveFigure(lambda value: _labelled_grid(rows_at(value), title_of(value), col_labels, scale, SLIDER_HEIGHT_IN,
                                                   rows_at=rows_at, title_at=title_of))


def _labelled_grid(rows, title, col_labels, scale, max_height, rows_at=None, title_at=None):
    names = list(rows)
    if not names:
        raise ValueError("rows is empty: give at least one name -> images (K, 1, H, W)")
    if len({tuple(images.shape[-2:]) for images in rows.values()}) > 1:
        raise ValueError(f"every row needs images of one size; got {[tuple(rows[n].shape[-2:]) for n in names]}")
    K = max(rows[n].shape[0] for n in names)
    H, W = next(iter(rows.values())).shape[-2:]
    pad = 2
    picture = _labelled_grid_picture(rows, pad)
    label_w, _ = _text_inches(names, LABEL_SIZE)
    extra_w = label_w + 0.25
    extra_h = (0.45 if title else 0.1) + (0.35 if col_labels is not None else 0) + 0.1
    scale = _fit_scale(scale, K, len(names), extra_w, extra_h + 0.25 * (col_labels is not None), max_height)
    if col_labels is not None:        # a label wider than its column goes on two lines (split at its middle space)
        col_labels = [_two_lines(str(c)) if _text_inches([c], TICK_SIZE)[0] > 0.9 * scale * GRID_TILE_IN else str(c)
                      for c in col_labels]
        extra_h += 0.25 * any("\n" in c for c in col_labels)
    fig, ax = plt.subplots(figsize=(scale * GRID_TILE_IN * K + extra_w, scale * GRID_TILE_IN * len(names) + extra_h))
    image = ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([r * (H + pad) + H / 2 for r in range(len(names))])
    ax.set_yticklabels([str(n) for n in names], fontsize=LABEL_SIZE)
    if col_labels is not None:
        ax.set_xticks([k * (W + pad) + W / 2 for k in range(len(col_labels))])
        ax.set_xticklabels([str(c) for c in col_labels], fontsize=TICK_SIZE)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    heading = ax.set_title(title or "", fontsize=TITLE_SIZE)
    fig.tight_layout(pad=0.3)

    def update(value) -> None:
        new_rows = rows_at(value)
        if list(new_rows) != names or any(tuple(new_rows[n].shape) != tuple(rows[n].shape) for n in names):
            raise ValueError("labelled_grid_slider: rows_at(value) must give the same row names and image shapes "
                             "for every value")
        image.set_data(_labelled_grid_picture(new_rows, pad))
        heading.set_text(title_at(value) or "")

    return fig, [image, heading], update


def plot_chain_step(trajectory, k: int, show: int = 16, nrow: int = 4):
    """The slider picture of notebook 06: after k recorded steps of a chain, the state x_t and the model's
    prediction of the clean image x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), side by side
    (live twin for a slider: chain_slider)."""
    return _chain_step(trajectory, k, show, nrow)[0]


def chain_slider(trajectory, show: int = 16, nrow: int = 4) -> LiveFigure:
    """The live twin of plot_chain_step(trajectory, k) for a slider over k: render(k) -> PNG bytes."""
    return LiveFigure(lambda k: _chain_step(trajectory, int(k), show, nrow))


def _chain_step(trajectory, k, show, nrow):
    n = min(show, trajectory.x_t.shape[1])
    nrow = min(nrow, n)
    rows = math.ceil(n / nrow)
    side = min((MAX_WIDTH_IN - 0.6) / 2, (SLIDER_HEIGHT_IN - 1.0) * nrow / rows)     # each grid's width, inches
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(2 * side + 0.6, side * rows / nrow + 1.0))

    def texts(k):
        t = trajectory.timesteps[k]
        return f"$x_t$, the state at t = {t}", f"after {k} of {len(trajectory.timesteps)} steps: t = {t}"

    state = ax0.imshow(image_grid(trajectory.x_t[k, :n], nrow=nrow), cmap="gray", vmin=0, vmax=1)
    guess = ax1.imshow(image_grid(trajectory.x0_pred[k, :n], nrow=nrow), cmap="gray", vmin=0, vmax=1)
    left, top = texts(k)
    title = ax0.set_title(left, fontsize=TITLE_SIZE)
    ax1.set_title(r"$\hat x_0$, the model's guess of the end", fontsize=TITLE_SIZE)
    for ax in (ax0, ax1):
        ax.set_axis_off()
    suptitle = fig.suptitle(top, fontsize=TITLE_SIZE + 1)
    fig.tight_layout(pad=0.3, w_pad=2.0, rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))   # 0.4 inch for the suptitle

    def update(k: int) -> None:
        state.set_data(image_grid(trajectory.x_t[k, :n], nrow=nrow))
        guess.set_data(image_grid(trajectory.x0_pred[k, :n], nrow=nrow))
        left, top = texts(k)
        title.set_text(left)
        suptitle.set_text(top)

    return fig, [state, guess, title, suptitle], update


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
    _style(ax0, "noise of one reverse step", "timestep t (log scale above 10)", r"$\sigma_t$ (log scale)")
    ax0.legend(fontsize=TICK_SIZE - 1, loc="upper left", title="bounds on the step's entropy",
               title_fontsize=TICK_SIZE - 1)
    ratio = np.sqrt(beta_tilde / beta)
    ax1.plot(t, ratio, lw=2.5, color="tab:purple")
    ax1.set_ylim(0, 1.05)
    _style(ax1, r"$\sqrt{\tilde\beta_t / \beta_t}$: they differ only near t = 0", "timestep t (log scale above 10)",
           "ratio")
    for ax in (ax0, ax1):
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(0, schedule.T - 1)                   # t >= 0: no negative side of the symlog axis
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout(pad=0.4)
    return fig


def _shared_legend(fig, axes, ncol: int, bottom_in: float) -> None:
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
    n_labels = len(groups) + (2 if reference else 0)
    legend_rows = math.ceil(n_labels / 2)
    fig, axes = plt.subplots(1, 3, figsize=(MAX_WIDTH_IN, 3.5 + 0.27 * legend_rows))
    markers = "osD^v"
    for i, (name, rows) in enumerate(groups.items()):
        steps = [r[x_key] for r in rows]
        style = dict(marker=markers[i % len(markers)], ms=8, lw=2.5, color=f"C{i}", label=name)
        timed = [(s, 1000 * r["seconds_per_image"]) for s, r in zip(steps, rows) if r.get("seconds_per_image") is not None]
        if timed:                 # rows measured elsewhere (another machine, another load) leave their time out
            axes[0].plot(*zip(*timed), **style)
        axes[1].plot(steps, [r["confident_share"] for r in rows], **style)
        fd = [(s, r["frechet_distance"]) for s, r in zip(steps, rows) if r.get("frechet_distance") is not None]
        if fd:
            axes[2].plot(*zip(*fd), **style)
    if reference:
        axes[1].axhline(reference["test_confident_share"], color="k", ls="--", lw=1.5,
                        label="confident share of real MNIST test digits")
        axes[2].axhline(reference["train_vs_test_frechet_distance"], color="k", ls=":", lw=2,
                        label=f"Frechet distance of {reference['train_vs_test_n']} real training digits")
    xlabel = f"{x_label} (log scale)"
    _style(axes[0], "time per image", xlabel, "milliseconds (log scale)")
    axes[0].set_yscale("log")
    _style(axes[1], "confident share\n(higher is better)", xlabel, "share with p > 0.9")
    axes[1].set_ylim(0, 1.02)
    _style(axes[2], "Frechet distance to the\ntest set (lower is better)", xlabel, "Frechet distance")
    axes[2].set_ylim(bottom=0)
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
    _shared_legend(fig, axes, ncol=2, bottom_in=0.27 * legend_rows + 0.1)
    return fig


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
    _style(ax, "the trade-off\n(one point per w)", "within-class diversity\n(1: as varied as real digits)",
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
    _style(ax, "against the\nguidance weight", "guidance weight w", "share / ratio")
    ax.legend(fontsize=TICK_SIZE - 1, loc="lower right", borderpad=0.3, handlelength=1.5)
    ax.grid(alpha=0.3)
    ax = axes[2]
    ax.plot(ws, [r["frechet_distance"] for r in rows], "o-", lw=2.5, ms=7, color="tab:red", label="generated")
    if reference:
        ax.axhline(reference["train_vs_test_frechet_distance"], color="k", ls="--", lw=1.5,
                   label=f"{reference['train_vs_test_n']} real\ntraining digits")
    ax.set_ylim(bottom=0)
    _style(ax, "Frechet distance to the\ntest set (lower is better)", "guidance weight w", "Frechet distance")
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
    _style(ax, title, "timestep t (sampling goes left to right)", ylabel)
    ax.grid(alpha=0.3, which="both")
    if len(curves) > 1:
        ax.legend(fontsize=TICK_SIZE - 1)
    fig.tight_layout(pad=0.4)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Notebook 09: the MLP-vs-CNN experiment (its numbers come from measure.experiments).

def plot_loss_curves(curves: dict, title: str = "training loss"):
    """Loss against optimizer step (log scale), one curve per run: name -> {"step": [...], "loss": [...]}."""
    fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 4.3))
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(c["step"], c["loss"], lw=2.5, color=f"C{i}", label=name, marker="o" if len(c["step"]) < 20 else None)
    ax.set_yscale("log")
    _style(ax, title, "optimizer step (batches of 128)", LOSS_LABEL)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=TICK_SIZE - 1, loc="upper right")
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
        _style(ax, f"std of {what} along a DDIM chain", "timestep t (sampling goes left to right)",
               "standard deviation (log scale)" if ax is axes[0] else None)
        ax.grid(alpha=0.3, which="both")
    _shared_legend(fig, axes, ncol=3, bottom_in=0.27 * legend_rows + 0.1)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Notebook 10: the 2-D toy of diffusion_lib.toy (points (B, 2, 1, 1)) and the ODE solvers. Each picture shades a
# density behind its points or arrows: by default the VP-noised q_t of the data's mixture at the panel's code timestep
# t; density_at(t) -> a toy.GaussianMixture shades another path's density instead (notebook 11's flow path). A picture
# of one value is a slider's, and has a live twin (toy_noising_slider, field_slider, toy_trajectory_slider).

TOY_LIMIT = 1.5          # the square [-TOY_LIMIT, TOY_LIMIT]^2 the toy's pictures show
TOY_PANEL_IN = 3.6       # inches per panel of the toy's pictures (a slider's row of panels: less, to fit MAX_WIDTH_IN)
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


def _toy_density(ax, mixture, alpha_bar: float, limit: float, n: int = 90, tick_size: float = TICK_SIZE - 2):
    """q_t as a shaded background (drawn smoothed), darkest at its peak; returns the AxesImage (a live picture
    changes it with _set_density)."""
    density = _density_grid(mixture, alpha_bar, limit, n)
    image = ax.imshow(density, extent=(-limit, limit, -limit, limit), origin="lower", cmap="Blues",
                      vmin=0, vmax=float(density.max()), interpolation="bicubic")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=tick_size)
    return image


def _set_density(image, mixture, alpha_bar: float, limit: float, n: int = 90) -> None:
    """A live picture's background: the image of _toy_density shows the density of (mixture, alpha_bar) instead."""
    density = _density_grid(mixture, alpha_bar, limit, n)
    image.set_data(density)
    image.set_clim(0, float(density.max()))


def _toy_axes(rows: int, cols: int, size: float = TOY_PANEL_IN):
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.6), squeeze=False)
    return fig, axes


def _toy_slider_axes(cols: int, size: float, title: str, heading_lines: int = 1):
    """A slider's row of `cols` square panels, `size` inches each or less, so that the row fits MAX_WIDTH_IN and
    SLIDER_HEIGHT_IN, laid out by hand (a tight layout misplaces square panels): 0.5 inch left of each panel for its
    tick labels, 0.15 right of it, 0.35 under it, 0.3 per line of its title above it, and the figure's title
    above all (on two lines if one is too wide). Returns fig, axes (1, cols) and the title to give _finish."""
    left, right, bottom, heading = 0.5, 0.15, 0.35, 0.3 * heading_lines
    if _text_inches([title], TITLE_SIZE)[0] > min(MAX_WIDTH_IN, (size + left + right) * cols) - 0.3:
        title = _two_lines(title)
    room = 0.15 + 0.3 * (title.count("\n") + 1)
    size = min(size, (MAX_WIDTH_IN - 0.1) / cols - left - right, SLIDER_HEIGHT_IN - 0.1 - room - heading - bottom)
    width, height = (size + left + right) * cols, size + bottom + heading + room
    fig, axes = plt.subplots(1, cols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - (heading + room) / height, wspace=(left + right) / size)
    return fig, axes, title


def _finish(fig, title: str, layout: bool = True):
    """The title above the panels, with room kept for it (0.6 inch), and a tight layout (layout=False: the panels
    are placed already); returns the title's Text."""
    text = fig.suptitle(title, fontsize=TITLE_SIZE)
    if layout:
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))
    return text


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
    """The noised density q_t (shaded) at each of `timesteps`, one panel each, with samples[t] (B, 2, 1, 1)
    drawn on top where given: the toy's forward process. One timestep is the slider's picture (live twin:
    toy_noising_slider).

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

    if single:
        fig, axes, title = _toy_slider_axes(1, TOY_PANEL_IN, title)
    else:
        fig, axes = _toy_axes(1, len(timesteps))
    tick = TOY_SLIDER_TICK_SIZE if single else TICK_SIZE - 2
    for ax, t in zip(axes[0], timesteps):
        image = _toy_density(ax, *shaded(t), limit, tick_size=tick)
        xy = None if samples_at is None else points(t)
        dots = None if xy is None else ax.scatter(xy[:, 0], xy[:, 1], s=4, color="tab:red", alpha=0.5, label=label)
        heading = ax.set_title(caption(t), fontsize=TITLE_SIZE - 2)
    legend = None if samples_at is None else axes[0][0].legend(fontsize=TICK_SIZE - 2, loc="lower left", markerscale=3)
    _finish(fig, title, layout=not single)
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
    moving = [*_live_panel(axes[0][0], image, *over), *([] if legend is None else [legend]), heading]
    return fig, moving, update


SCORE_TITLE = r"the score $\nabla_x \log q_t(x)$ (arrows) over $q_t$ (shaded)"


def plot_score_fields(grid, fields: dict, timesteps, mixture, schedule, limit: float = TOY_LIMIT, density_at=None,
                      title: str | None = None, quantity: str = "score"):
    """Score fields as arrows on the points `grid` (N, 2, 1, 1), over the shaded q_t: fields maps a name ("exact",
    "learned") to {t: score (N, 2, 1, 1)}. One row per name and one column per timestep; with a single timestep
    (the slider's picture, live twin: field_slider) the names stand side by side.

    Within a column every field is drawn to the same scale, set by the first field: its median arrow is 0.7 grid
    cells long (the length it stands for is printed in the panel), and arrows longer than 1.4 cells are cut to
    1.4 cells, keeping their direction. The score grows like 1 / sqrt(1 - alpha_bar_t) as t falls, so the scale
    differs between columns.

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

    if single:
        fig, axes, title = _toy_slider_axes(len(names), TOY_PANEL_IN, title)
    else:
        fig, axes = _toy_axes(len(names), len(timesteps))
    tick = TOY_SLIDER_TICK_SIZE if single else TICK_SIZE - 2
    panels = []
    for j, t in enumerate(timesteps):
        uv, typical = arrows(t)
        for i, name in enumerate(names):
            ax = axes[0][i] if single else axes[i][j]
            image = _toy_density(ax, *shaded(t), limit, tick_size=tick)
            quiver = ax.quiver(xy[:, 0], xy[:, 1], uv[name][:, 0], uv[name][:, 1], angles="xy", scale_units="xy",
                               scale=1, width=0.006, color="k")
            heading = ax.set_title(f"{name}, t = {t}", fontsize=TITLE_SIZE - 2)
            scale = ax.text(0.02, 0.02, scale_text(typical), transform=ax.transAxes, fontsize=tick,
                            bbox=dict(facecolor="white", alpha=0.8, lw=0))
            panels.append((ax, name, image, quiver, heading, scale))
    _finish(fig, title, layout=not single)
    if not single:
        return fig, [], _no_update

    def update(t: int) -> None:
        uv, typical = arrows(t)
        for ax, name, image, quiver, heading, scale in panels:
            _set_density(image, *shaded(t), limit)
            quiver.set_UVC(uv[name][:, 0], uv[name][:, 1])
            heading.set_text(f"{name}, t = {t}")
            scale.set_text(scale_text(typical))

    moving = [a for ax, _, image, quiver, heading, scale in panels
              for a in (*_live_panel(ax, image, quiver), scale, heading)]
    return fig, moving, update


def plot_toy_trajectories(trajectories: dict, steps, mixture, schedule, trail: int | None = None,
                          show: int | None = None, limit: float = 2.5, density_at=None, title: str | None = None):
    """Chains of 2-D points: trajectories maps a sampler's name to a samplers.Trajectory of points. For each
    recorded step k of `steps` (k = len(timesteps): the end), the points at step k as dots over the shaded q_t of
    that step, and their paths as lines: from the start, or over the last `trail` recorded steps only; the first
    `show` points (all if None). One row per sampler, one column per step; a single step (the slider's picture,
    live twin: toy_trajectory_slider) puts the samplers side by side.

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

    if single:
        fig, axes, title = _toy_slider_axes(len(names), 4.4, title, heading_lines=2)
    else:
        fig, axes = _toy_axes(len(names), len(steps))
    tick = TOY_SLIDER_TICK_SIZE if single else TICK_SIZE - 2
    sep = "\n" if single else ", "                                       # a slider's narrow panels: two lines
    panels = []
    for i, name in enumerate(names):
        tr = trajectories[name]
        paths = torch.cat([tr.x_t, tr.sample[None]])[:, :show, :, 0, 0]                 # (K + 1, B, 2)
        colors = [f"C{b % 10}" for b in range(paths.shape[1])]
        for j, k in enumerate(steps):
            ax = axes[0][i] if single else axes[i][j]
            t, first = step_of(name, k)
            image = _toy_density(ax, *shading[name](t), limit, tick_size=tick)
            lines = []
            for b in range(paths.shape[1]):
                lines += ax.plot(paths[first:k + 1, b, 0].numpy(), paths[first:k + 1, b, 1].numpy(), lw=1,
                                 color=colors[b], alpha=0.8)
            dots = ax.scatter(paths[k, :, 0].numpy(), paths[k, :, 1].numpy(), s=22, c=colors, edgecolor="k",
                              linewidths=0.6, zorder=3)
            heading = ax.set_title(caption(name, t, sep), fontsize=TITLE_SIZE - 3)
            panels.append((ax, name, paths, image, lines, dots, heading))
    _finish(fig, title, layout=not single)
    if not single:
        return fig, [], _no_update

    def update(k: int) -> None:
        for ax, name, paths, image, lines, dots, heading in panels:
            t, first = step_of(name, k)
            _set_density(image, *shading[name](t), limit)
            for b, line in enumerate(lines):
                line.set_data(paths[first:k + 1, b, 0].numpy(), paths[first:k + 1, b, 1].numpy())
            dots.set_offsets(paths[k].numpy())
            heading.set_text(caption(name, t, sep))

    moving = [a for ax, _, _, image, lines, dots, heading in panels
              for a in (*_live_panel(ax, image, *lines, dots), heading)]
    return fig, moving, update


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
    _style(ax, title, "network evaluations (NFE)", "mean distance (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=TICK_SIZE - 1)
    fig.tight_layout()
    return fig
