"""Every figure of diffusion_lib.plotting fits a screen and a projector, with the inputs the notebooks give it.

For each figure, drawn as a notebook shows it (the inline backend's tight bounding box; a slider's picture
as its LiveFigure draws it, the whole canvas):
- at most MAX_WIDTH_PX wide, so it is shown at (nearly) its own size: JupyterLab on a 1280-pixel screen
  gives an output about 1100 pixels wide with the file browser closed, GitHub about 980;
- no text smaller than MIN_TEXT_PX once shown SHOWN_WIDTH_PX wide (a figure is scaled down to fit);
- a slider's picture at most SLIDER_HEIGHT_PX tall, any other figure at most SCREEN_HEIGHT_PX, so that on a
  1280x800 screen it fits under JupyterLab's bars (the slider itself takes about 30 more); a strip of many
  panels (STRIPS: the toy's pictures at several steps) wraps into rows instead, and may be taller;
- no two texts overlap or touch, and no text of a slider's picture is cut off at its edge.

Texts are the ones the renderer actually draws (Text.draw is watched while the figure is drawn). Every picture
function of dl.plotting is drawn here (test_every_picture_function_is_drawn_here).
Also: a LiveFigure's picture depends only on its value, never on the values shown before.
"""
from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image  # noqa: E402

from diffusion_lib import embeddings, inspection, toy  # noqa: E402
from diffusion_lib.pictures import plotting as P  # noqa: E402
from diffusion_lib.samplers import Trajectory  # noqa: E402
from diffusion_lib.schedules import make_schedule  # noqa: E402

MAX_WIDTH_PX = 1060           # MAX_WIDTH_IN at 100 dpi, and the inline backend's 0.1-inch pad
SHOWN_WIDTH_PX = 1000
MIN_TEXT_PX = 12
SLIDER_HEIGHT_PX = 570
SCREEN_HEIGHT_PX = 680

g = torch.Generator().manual_seed(0)


def imgs(n, *shape):
    return (torch.rand(n, *shape, 1, 28, 28, generator=g) * 2 - 1) if shape else torch.rand(n, 1, 28, 28, generator=g) * 2 - 1


S = [make_schedule("linear"), make_schedule("cosine")]
EMB = embeddings.sinusoidal_embedding(torch.arange(1000), 256)
UNIT = EMB / EMB.norm(dim=1, keepdim=True)
SIM = UNIT @ UNIT.T
X0 = imgs(64)
NOISE = torch.randn(X0.shape, generator=g)
CHAIN = Trajectory(list(range(999, -1, -1)), imgs(1000, 16), imgs(1000, 16), imgs(16))
PIXELS = [(k, k) for k in range(0, 28, 3)]
MASKS = {name: torch.rand(len(PIXELS), 28, 28, generator=g) > 0.5 for name in ("ConvNet", "UNet (base 32)")}
REFERENCE = {"test_confident_share": 0.972, "train_vs_test_frechet_distance": 26.13, "train_vs_test_n": 200}
SWEEP = [{"steps": s, "seconds_per_image": 0.0013 * s, "confident_share": c, "frechet_distance": f, "n": 100}
         for s, c, f in ((10, 0.83, 89.6), (20, 0.86, 82.1), (50, 0.84, 83.9))]
GUIDE = [{"w": w, "guided_accuracy": a, "confident_share": c, "relative_spread": r, "frechet_distance": f}
         for w, a, c, r, f in ((0, 0.09, 0.51, 1.04, 249), (0.5, 0.445, 0.58, 1.02, 216), (1, 0.825, 0.795, 0.915, 72.4),
                               (2, 0.975, 0.93, 0.741, 34.2), (3, 0.98, 0.95, 0.655, 52.5), (5, 0.985, 0.94, 0.613, 77),
                               (8, 0.97, 0.9, 0.688, 122))]
TS = [0, 50, 100, 250, 500, 750, 900, 999]
CURVES = {"linear": np.exp(-np.linspace(0, 3, 8)), "cosine": np.exp(-np.linspace(0, 2, 8))}
HISTORY = {"step": list(range(3000)), "loss": list(0.03 + 0.5 / (1 + np.arange(3000) / 50))}
MAG = {n: {"t": list(range(999, -1, -20)), "x_t_std": list(np.linspace(1, 0.6, 50) * k), "x0_pred_std": list(np.linspace(3, 0.6, 50) * k)}
       for n, k in (("SmolMLP", 5), ("SmolMLP + skip", 2), ("ChunkyMLP, lr 1e-4", 3), ("U-Net", 1))}

# Notebook 10's toy: the ring of six Gaussians, 400 noised points, score fields on a 15 x 15 grid at the values the
# sliders visit below, and four chains of 101 recorded steps of 32 points.
MIX = toy.ring_mixture()
TOY_X0 = toy.mixture_sample(MIX, 400, g)
TOY_EPS = torch.randn(TOY_X0.shape, generator=g)
TOY_GRID = toy.grid_points(1.4, 15)
TOY_FIELD_TS = (30, 31, 999, 0)
_EXACT = {t: toy.exact_score(MIX, TOY_GRID, t, S[0]) for t in TOY_FIELD_TS}
TOY_FIELDS = {"exact": _EXACT, "learned": {t: 1.1 * f for t, f in _EXACT.items()},
              "learned - exact": {t: 0.1 * f for t, f in _EXACT.items()}}
_PATHS = torch.randn(1, 32, 2, 1, 1, generator=g) + 0.05 * torch.randn(101, 32, 2, 1, 1, generator=g).cumsum(0)
TOY_CHAINS = {n: Trajectory(list(range(999, -1, -10)), _PATHS[:100], _PATHS[:100], _PATHS[100])
              for n in ("DDIM, exact eps", "DDIM, the network", "DDPM, seed 1", "DDPM, seed 2", "flow, exact u",
                        "flow, the network")}


# Notebooks 10 and 11: quality against NFE, measured here (timed) and from a model card (no time: its panel goes),
# with Heun's failure at 5 NFE (a Frechet distance of 1770 against about 30-160 for the rest).
def _nfe_rows(nfes, shares, fds, ms=None):
    return [{"nfe": a, "steps": a, "seconds_per_image": None if ms is None else m / 1000, "confident_share": c,
             "frechet_distance": f, "n": 200} for a, c, f, m in zip(nfes, shares, fds, ms or nfes)]


NFE_GROUPS = {"DDIM, 200 images": _nfe_rows([5, 10, 20, 50], [0.7, 0.78, 0.82, 0.85], [160, 90, 70, 60], [7.5, 15, 30, 75]),
              "Heun, 200 images": _nfe_rows([5, 9, 19, 49], [0.0, 0.49, 0.85, 0.86], [1770, 480, 80, 62], [7.4, 14, 29, 80]),
              "model card: Heun, 500 images": _nfe_rows([5, 9, 19, 49], [0.0, 0.45, 0.84, 0.85], [1760, 490, 50, 28])}
SOLVER_ROWS = [{"sampler": s, "nfe": n, "mean_error": e / n ** k} for s, e, k in (("DDIM", 0.4, 1), ("Heun", 2.0, 2))
               for n in (5, 10, 20, 50, 100, 200)]


def toy_noised(t):
    from diffusion_lib.forward import q_sample
    return q_sample(TOY_X0, torch.full((400,), t), S[0], TOY_EPS)


def _trace():
    from diffusion_lib.backbones import ConvNet, UNet
    x, t = imgs(2), torch.zeros(2, dtype=torch.long)
    return {"ConvNet": inspection.shape_trace(ConvNet(), x, t), "UNet (base 32)": inspection.shape_trace(UNet(base=32), x, t)}


# name -> (what draws it, the values a slider visits or None for a static figure)
STATIC = {
    "show_grid 64": lambda: P.show_grid(X0, nrow=8, title="DDPM, 1000 steps: 64 samples").figure,
    "show_grid 16": lambda: P.show_grid(X0[:16], nrow=8, title="DDPM, 1000 steps: 16 samples").figure,
    "plot_schedules, marks": lambda: P.plot_schedules(S, t=[0, 100, 250, 500, 750, 999]),
    "plot_schedules, one panel": lambda: P.plot_schedules(S, ["log_snr"], t=[259, 496]),
    "plot_variance_split": lambda: P.plot_variance_split(S),
    "show_rows 02": lambda: P.show_rows({"linear": X0[:8], "cosine": X0[8:16]}, col_labels=[f"t = {t}" for t in TS],
                                        title="x_t = q_sample(x_0, t), same noise in every column"),
    "show_rows 02 eight digits": lambda: P.show_rows({"linear": X0[:8], "cosine": X0[8:16]}, title="eight digits at t = 250"),
    "show_rows 03": lambda: P.show_rows({"": X0[:3]}, col_labels=["$x_0$", "$x_t$", r"$\hat x_0$"]),
    "show_rows 05 batch": lambda: P.show_rows({"$x_0$": X0[:8], r"$\varepsilon$": X0[8:16], "$x_t$": X0[16:24],
                                               r"$\varepsilon_\theta(x_t, t)$": X0[24:32]}),
    "show_rows 05 steps": lambda: P.show_rows({f"step {s}": X0[:8] for s in (1, 100, 300, 600, 1000, 1500, 2000, 3000)}),
    "show_rows 09": lambda: P.show_rows({f"{n} $\\hat x_0$": X0[:6] for n in ("SmolMLP", "ChunkyMLP", "U-Net")},
                                        col_labels=[f"t = {t}" for t in (999, 799, 599, 399, 199, 19)],
                                        title=r"the guess $\hat x_0$ of the first image along its DDIM chain"),
    "plot_pixel_histograms": lambda: P.plot_pixel_histograms([X0 * a for a in (1, 0.8, 0.5, 0.2, 0.01)],
                                                             [f"t = {t}" for t in (0, 100, 250, 500, 999)],
                                                             title="pixels of x_t, linear schedule"),
    "plot_embedding_heatmap": lambda: P.plot_embedding_heatmap(EMB),
    "plot_similarity_matrix": lambda: P.plot_similarity_matrix(SIM),
    "plot_similarity_curves": lambda: P.plot_similarity_curves(SIM, [0, 250, 500, 999]),
    "plot_shape_traces": lambda: P.plot_shape_traces(_trace()),
    "plot_receptive_fields, four": lambda: P.plot_receptive_fields(MASKS, PIXELS, which=[0, 2, 5, 9]),
    "plot_cost_per_image": lambda: P.plot_cost_per_image({"ConvNet": 0.0123, "UNet (base 32)": 0.0051, "UNet (base 16)": 0.002,
                                                          "SmolMLP": 0.0001},
                                                         machine="AMD EPYC, 1 torch thread on 2 logical cores, torch 2.15.0+cu132"),
    "plot_loss_curve": lambda: P.plot_loss_curve(HISTORY),
    "plot_loss_by_timestep": lambda: P.plot_loss_by_timestep(TS, {"your run (3000 steps)": np.linspace(1, 0.01, 8),
                                                                  "shipped (EMA)": np.linspace(0.9, 0.008, 8)}),
    "show_rows 06 strip": lambda: P.show_rows(
        {f"{n} {i}": X0[:8] for i in (1, 2) for n in ("x_t", "x0_pred")}, col_labels=[f"t = {t}" for t in TS],
        title="two images of the chain: the state and the predicted clean image"),
    "show_rows 06 variance": lambda: P.show_rows(
        {"beta_tilde": X0[:4], "beta": X0[4:8], "|difference| x 10": X0[8:12]}, title="the same noise through both variances"),
    "show_rows 07 compare": lambda: P.show_rows(
        {"DDPM 1000": X0[:8], **{f"DDIM {s}, eta {e:g}": X0[:8] for s in (50, 10) for e in (0.0, 1.0)}},
        title="the same x_(T-1) in every column"),
    "show_rows 07 every setting": lambda: P.show_rows(
        {f"image {i + 1}, eta = {e:g}": X0[:4] for i in range(3) for e in (0.0, 0.5, 1.0)},
        col_labels=[f"{s} steps" for s in (5, 10, 20, 50)], title="every setting, three images"),
    "show_rows 07 encoding": lambda: P.show_rows(
        {f"digit {d}": X0[:7] for d in (2, 7)}, col_labels=[f"t = {t}" for t in (0, 160, 320, 480, 660, 820, 999)],
        title="a digit encoded step by step"),
    "show_rows 07 interpolation": lambda: P.show_rows(
        {"slerp": X0[:9], "lerp": X0[:9]}, col_labels=[f"s = {s:.3g}" for s in np.linspace(0, 1, 9)],
        title="between two noises"),
    "show_rows 07 paths": lambda: P.show_rows(
        {f"{e}, {how}": X0[:9] for e in ("drawn noises", "encoded 2 and 7") for how in ("slerp", "lerp")},
        col_labels=[f"s = {s:.3g}" for s in np.linspace(0, 1, 9)],
        title="decoded paths between two noises (DDIM, 10 steps)"),
    "show_rows 07 encode decode": lambda: P.show_rows(
        {"original": X0[:10], "encoded x_(T-1)": X0[10:20], "decoded": X0[20:30]},
        title="DDIM encoding and decoding, 10 steps each way"),
    "show_rows 08 one w": lambda: P.show_rows({f"{d}": X0[:10] for d in range(10)},
                                                                title="w = 3: one row per digit asked for"),
    "show_rows 08 every w": lambda: P.show_rows(
        {f"w = {w:g}": X0[:10] for w in (0, 0.5, 1, 2, 3, 5, 8)}, col_labels=[f"asked {d}" for d in range(10)],
        title="the first sample of every digit at every w"),
    "plot_ddpm_sigmas": lambda: P.plot_ddpm_sigmas(S[0]),
    "plot_quality_vs_steps": lambda: P.plot_quality_vs_steps(
        {"DDIM, eta = 0, 100 images": SWEEP, "DDIM, eta = 1, 100 images": SWEEP,
         "DDPM 1000, 8 images (section 3)": [{"steps": 1000, "seconds_per_image": 1.87, "confident_share": 0.875,
                                              "frechet_distance": None}],
         **{f"model card: DDIM, eta = {e}, 500 images": [{"steps": 50, "seconds_per_image": None, "confident_share": c,
                                                          "frechet_distance": None}] for e, c in ((0, 0.822), (1, 0.876))}},
        reference={**REFERENCE, "train_vs_test_n": 100}),
    "plot_guidance_tradeoff": lambda: P.plot_guidance_tradeoff(GUIDE, REFERENCE),
    "plot_over_t": lambda: P.plot_over_t(list(range(999, -1, -50)), {"x0_pred classified as the final digit": np.linspace(0.1, 1, 20)},
                                         "does the guess already show the final digit?", "share of the 16 images"),
    "plot_loss_curves": lambda: P.plot_loss_curves({n: {"step": [0, 100, 200, 300], "loss": [1, 0.3, 0.1, 0.05]}
                                                    for n in ("SmolMLP", "ChunkyMLP", "ConvNet", "U-Net")}),
    "plot_chain_magnitudes": lambda: P.plot_chain_magnitudes(MAG, data_std=0.62),
    "plot_chain_step": lambda: P.plot_chain_step(CHAIN, 500),
    "plot_forward_state": lambda: P.plot_forward_state(X0, 250, S, NOISE),
    "plot_embedding_at": lambda: P.plot_embedding_at(EMB, SIM, 500),
    "plot_quality_vs_nfe 10": lambda: P.plot_quality_vs_nfe(NFE_GROUPS, REFERENCE),
    "plot_quality_vs_nfe 11, card rows only": lambda: P.plot_quality_vs_nfe(
        {n: [{**r, "seconds_per_image": None} for r in rows] for n, rows in NFE_GROUPS.items()}),
    "plot_solver_errors": lambda: P.plot_solver_errors(SOLVER_ROWS, title="the toy with the exact eps: distance to the "
                                                                          "ODE's exact end"),
    "show_rows 10 NFE": lambda: P.show_rows({f"{s}, NFE {n}": X0[:8] for s in ("DDIM", "Heun") for n in (5, 9, 19)},
                                            title="the same noises, DDIM and Heun at the NFE of the sweep"),
    "show_rows 11 paths": lambda: P.show_rows({f"digit {i}, {n}": X0[:6] for i in range(3) for n in ("flow: x_s", "DDPM: x_t")},
                                              col_labels=[f"t = {t}" for t in (0, 99, 249, 499, 749, 999)],
                                              title="3 of the digits on both paths, same noise"),
}

# Notebooks 13 and 14: the DiT's patches and attention, the scaling curves (the shipped record), masked tokens.
_WEIGHTS = __import__("diffusion_lib").pretrained.WEIGHTS_DIR
_JSON = lambda name: __import__("json").loads((_WEIGHTS / f"{name}.json").read_text())
_NAMES = {f"t = {t:g}": ["sm_th", "j_nes", "__e__", "brown"] for t in (0.2, 0.5, 0.8)}
STATIC.update({
    "plot_patches 13": lambda: P.plot_patches(X0[0], 4, torch.rand(49, 16) * 2 - 1),
    "plot_attention_maps 13": lambda: P.plot_attention_maps(torch.rand(4, 4, 49, 49).softmax(-1), 24, (7, 7),
                                                            image=X0[0], title="where token 24 looks"),
    "plot_scaling_curves 13": lambda: P.plot_scaling_curves(_JSON("scaling")),
    "plot_masking_schedule 14": lambda: P.plot_masking_schedule(t_marks=(0.2, 0.5, 0.8)),
    "show_names 14": lambda: P.show_names(_NAMES, title="four held-out names masked"),
    "plot_bits_vs_nfe 14": lambda: P.plot_bits_vs_nfe(_JSON("masked_names")),
    "plot_digit_quality 14": lambda: P.plot_digit_quality(_JSON("masked_digits")),
})

# Static strips of the toy's pictures at several steps (notebooks 10 and 11, their inputs): rows of panels, as wide
# as any figure, taller than a screen.
_FLOW_TITLE = "the same starting points on each ODE: whole paths, over their path's density"
STRIPS = {
    "plot_toy_noising, six t": lambda: P.plot_toy_noising(MIX, S[0], [0, 50, 100, 200, 400, 999],
                                                          {t: toy_noised(t) for t in (0, 50, 100, 200, 400, 999)}),
    "plot_score_fields, three fields at five t": lambda: P.plot_score_fields(TOY_GRID, TOY_FIELDS, [30, 31, 999, 0, 30],
                                                                            MIX, S[0]),
    "plot_score_fields, one field": lambda: P.plot_score_fields(TOY_GRID, {"exact": _EXACT}, [30, 31, 999, 0], MIX, S[0],
                                                               quantity="velocity"),
    "plot_toy_trajectories, four chains at six steps": lambda: P.plot_toy_trajectories(
        TOY_CHAINS, [0, 50, 80, 90, 95, 100], MIX, S[0], trail=10, show=8),
    "plot_toy_trajectories, three chains, long title": lambda: P.plot_toy_trajectories(
        {n: TOY_CHAINS[n] for n in ("flow, exact u", "flow, the network", "DDIM, exact eps")}, [0, 30, 50, 70, 90, 100],
        MIX, S[0], trail=None, show=8, title=_FLOW_TITLE),
}

# The pictures behind the notebooks' sliders: a LiveFigure, or a static figure drawn once per value.
SLIDERS = {
    "01 schedules": (lambda: P.schedules_slider(S), [250, 251, 999, 0, 137]),
    "02 forward state": (lambda: P.forward_state_slider(X0, S, NOISE), [250, 251, 999, 0]),
    "03 embedding": (lambda: P.embedding_slider(EMB, SIM), [500, 501, 999, 0]),
    "04 receptive field": (lambda: (lambda k: P.plot_receptive_fields(MASKS, PIXELS, which=[PIXELS.index((k, k))])),
                           [0, 27]),
    "05 training step": (lambda: (lambda s: P.show_rows({f"step {s}": X0[:8]})), [1, 3000]),
    "06 chain": (lambda: P.chain_slider(CHAIN), [600, 601, 999, 0]),
    "07 DDIM steps": (lambda: P.labelled_grid_slider(lambda s: {f"eta = {e:g}": X0[:8] for e in (0.0, 0.5, 1.0)},
                                                     lambda s: f"DDIM with {s} steps"), [10, 5, 50]),
    "07 eta": (lambda: P.labelled_grid_slider(lambda e: {f"{s} steps": X0[:8] for s in (5, 10, 20, 50)},
                                              lambda e: f"DDIM with eta = {e:g}"), [0.0, 0.5, 1.0]),
    "08 w": (lambda: P.labelled_grid_slider(lambda w: {f"{d}": X0[:10] for d in range(10)}, lambda w: f"w = {w:g}"),
             [3.0, 0.0, 8.0]),
    "09 chains": (lambda: P.labelled_grid_slider(
        lambda k: {n: X0[:6] * (1 - k / 50) for n in ("SmolMLP", "ChunkyMLP", "U-Net")},
        lambda k: f"DDIM step {k + 1} of 50: t = {999 - 20 * k}",
        col_labels=[f"$x_t$ {i}" for i in (1, 2, 3)] + [f"$\\hat x_0$ {i}" for i in (1, 2, 3)]), [10, 11, 49, 0]),
    "10 noising": (lambda: P.toy_noising_slider(MIX, S[0], toy_noised), [150, 151, 999, 0]),
    "10 score fields": (lambda: P.field_slider(TOY_GRID, TOY_FIELDS, MIX, S[0]), list(TOY_FIELD_TS)),
    "14 names": (lambda: P.names_slider(lambda t: _NAMES, lambda t: f"t = {t}"), [0.5, 0.9]),
    "10 trajectories": (lambda: P.toy_trajectory_slider(
        {n: TOY_CHAINS[n] for n in ("DDIM, exact eps", "DDIM, the network", "DDPM, seed 1", "DDPM, seed 2")},
        MIX, S[0], trail=10, show=8), [80, 81, 100, 0]),
    "11 paths": (lambda: P.labelled_grid_slider(
        lambda t: {"flow: x_s": X0[:8] * (1 - t / 1000), "DDPM: x_t": X0[8:16] * (1 - t / 1000)},
        lambda t: f"t = {t}: flow s = {(t + 1) / 1000:.3f}, signal factor 1 - s = {1 - (t + 1) / 1000:.3f}; "
                  f"DDPM sqrt(alpha_bar) = {0.5:.3f}"), [499, 500, 999, 0]),
    "11 trajectories": (lambda: P.toy_trajectory_slider(
        {n: TOY_CHAINS[n] for n in ("flow, exact u", "flow, the network", "DDIM, exact eps")}, MIX, S[0], trail=20,
        show=8, title="the same starting points on each ODE: the points and their last 20 steps, over their path's "
                      "density"), [70, 71, 100, 0]),
}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def drawn_texts(fig, monkeypatch, **savefig):
    """(text, its box in pixels of the saved picture) for every non-empty Text the renderer draws, and the
    picture's (width, height) in pixels."""
    seen = []
    original, original_figure = Text.draw, Figure.draw

    def draw(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            seen.append((self, self.get_window_extent(renderer)))

    def draw_figure(self, renderer):
        seen.clear()                    # bbox_inches="tight" draws twice: keep the texts of the last draw
        original_figure(self, renderer)

    monkeypatch.setattr(Text, "draw", draw)
    monkeypatch.setattr(Figure, "draw", draw_figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    monkeypatch.setattr(Text, "draw", original)
    monkeypatch.setattr(Figure, "draw", original_figure)
    return seen, Image.open(io.BytesIO(buf.getvalue())).size


def layout_problems(fig, monkeypatch, slider: bool, strip: bool = False) -> list[str]:
    if slider:
        texts, (w, h) = drawn_texts(fig, monkeypatch)                     # a LiveFigure's whole canvas
    else:
        texts, (w, h) = drawn_texts(fig, monkeypatch, bbox_inches="tight")   # what the inline backend shows
    problems = []
    if w > MAX_WIDTH_PX:
        problems.append(f"{w} pixels wide (at most {MAX_WIDTH_PX})")
    limit = SLIDER_HEIGHT_PX if slider else SCREEN_HEIGHT_PX
    if h > limit and not strip:
        problems.append(f"{h} pixels tall (at most {limit})")
    shrink = min(1.0, SHOWN_WIDTH_PX / w)
    for text, _ in texts:
        px = text.get_fontsize() * fig.dpi / 72 * shrink
        if px < MIN_TEXT_PX - 1e-6:
            problems.append(f"text {text.get_text()!r} is {px:.1f} px shown {SHOWN_WIDTH_PX} px wide (at least {MIN_TEXT_PX})")
    boxes = [(t, b) for t, b in texts if b.width > 0 and b.height > 0]
    for i, (t1, b1) in enumerate(boxes):
        for t2, b2 in boxes[i + 1:]:
            dx = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
            dy = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
            if dx > -1 and dy > -1:                   # closer than a pixel: they touch or overlap
                problems.append(f"texts touch or overlap: {t1.get_text()!r} and {t2.get_text()!r} ({dx:.0f} x {dy:.0f} px)")
        if slider and (b1.x0 < -1 or b1.y0 < -1 or b1.x1 > w + 1 or b1.y1 > h + 1):
            problems.append(f"text {t1.get_text()!r} is cut off at the edge of the picture")
    return problems


@pytest.mark.parametrize("name", STATIC)
def test_static_figure_fits_and_reads(name, monkeypatch):
    assert layout_problems(STATIC[name](), monkeypatch, slider=False) == []


@pytest.mark.parametrize("name", STRIPS)
def test_strip_fits_the_width_and_reads(name, monkeypatch):
    assert layout_problems(STRIPS[name](), monkeypatch, slider=False, strip=True) == []


def _names_called(code) -> set:
    """The attribute names a function's code (and the code of the functions it defines) reads."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names_called(const)
    return names


def test_every_picture_function_is_drawn_here():
    """Each figure function of dl.plotting is drawn by a case above, so its width and its smallest text are checked."""
    drawn = set()
    for make in [*STATIC.values(), *STRIPS.values(), *(make for make, _ in SLIDERS.values())]:
        drawn |= _names_called(make.__code__)
    pictures = {n for n in P.__all__ if callable(getattr(P, n)) and not isinstance(getattr(P, n), type)
                and n not in ("image_grid", "schedule_table", "tokens_as_images")}   # arrays and a text, not figures
    assert pictures - drawn == set()


@pytest.mark.parametrize("name", SLIDERS)
def test_slider_picture_fits_and_reads(name, monkeypatch):
    make, values = SLIDERS[name]
    render = make()
    for v in (values[0], values[-1]):               # the first picture and one after a move
        picture = render(v)
        fig = render.figure if isinstance(render, P.LiveFigure) else picture
        assert layout_problems(fig, monkeypatch, slider=isinstance(render, P.LiveFigure)) == [], f"{name} at {v}"


@pytest.mark.parametrize("name", [n for n, (make, _) in SLIDERS.items() if isinstance(make(), P.LiveFigure)])
def test_live_picture_depends_on_the_value_only(name):
    make, values = SLIDERS[name]
    live = make()
    pngs = {v: live(v) for v in values}                        # visited in this order, one figure redrawn
    assert all(p.startswith(b"\x89PNG") for p in pngs.values())
    assert len(set(pngs.values())) == len(values), f"{name}: different values should give different pictures"
    for v in values[::-1]:
        assert live(v) == pngs[v], f"{name}: back at {v}, the picture differs"
    v = values[-1]
    assert make()(v) == pngs[v], f"{name}: drawn fresh at {v}, the picture differs from the redrawn one"


def test_live_schedules_picture_shows_the_values_at_t():
    live = P.schedules_slider(S)
    live(10)
    live(600)
    fig = live.figure
    legend = fig.axes[1].get_legend()                           # alpha_bar's panel
    assert legend.get_title().get_text() == "t = 600"
    assert [t.get_text() for t in legend.get_texts()] == [f"{s.name}: {s.alpha_bar[600].item():.4g}" for s in S]
    dots = [line for line in fig.axes[1].lines if line.get_marker() == "o"]
    assert [float(d.get_ydata()[0]) for d in dots] == pytest.approx([s.alpha_bar[600].item() for s in S])
    assert [leg.get_texts()[0].get_text() for leg in (ax.get_legend() for ax in fig.axes[:5])] == \
        [f"linear: {getattr(S[0], q)[600].item():.4g}" for q in P.SCHEDULE_LABELS]
    locs = [ax.get_legend()._loc for ax in fig.axes[:5]]
    live(999)
    assert [ax.get_legend()._loc for ax in fig.axes[:5]] == locs            # legends stay in their corners


def test_live_forward_state_histogram_is_the_density_of_x_t():
    live = P.forward_state_slider(X0, S, NOISE)
    live(0)
    live(300)
    bars = [a for ax in live.figure.axes for a in ax.patches]
    from diffusion_lib.forward import q_sample
    x_t = q_sample(X0, torch.full((X0.shape[0],), 300), S[1], noise=NOISE)
    expected = np.histogram(x_t.flatten().numpy(), bins=P.HIST_BINS, range=P.HIST_RANGE, density=True)[0]
    assert np.allclose(bars[1].get_data().values, expected)
    assert np.sum(expected) * (P.HIST_RANGE[1] - P.HIST_RANGE[0]) / P.HIST_BINS == pytest.approx(1, abs=0.02)


def test_live_grid_rejects_rows_that_change_shape():
    live = P.labelled_grid_slider(lambda v: {"a": X0[:v]}, lambda v: str(v))
    live(3)
    with pytest.raises(ValueError, match="same row names and image shapes"):
        live(4)
