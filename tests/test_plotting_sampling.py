"""The pictures of notebooks 06-08 and 10 (diffusion_lib.plotting, last sections) and the image table of every
notebook (show_rows): what they draw, not how it looks."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from diffusion_lib import plotting  # noqa: E402
from diffusion_lib.samplers import Trajectory  # noqa: E402
from diffusion_lib.schedules import make_schedule  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_show_rows_is_one_picture_with_a_row_per_entry():
    rows = {"a": -torch.ones(3, 1, 28, 28), "b\n$x_t$": torch.ones(2, 1, 28, 28)}
    fig = plotting.show_rows(rows, col_labels=["x", "y", "z"], title="t")
    assert len(fig.axes) == 1 and len(fig.axes[0].images) == 1          # one imshow: quick for a slider
    ax = fig.axes[0]
    picture = ax.images[0].get_array()
    assert picture.shape == (2 * 28 + 2, 3 * 28 + 2 * 2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b\n$x_t$"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"] and ax.get_title() == "t"
    assert picture[0, 0] == 0.0 and picture[30, 0] == 1.0               # -1 draws black, +1 white
    assert picture[30, 2 * 30 + 5] == 1.0                                 # the short row is padded with white
    ramp = torch.linspace(-1, 1, 28).expand(1, 1, 28, 28)                 # each column one grey level
    strip = plotting.show_rows({"": ramp.repeat(2, 1, 1, 1)}).axes[0].images[0].get_array()
    assert np.allclose(strip[0, :28], (torch.linspace(-1, 1, 28).numpy() + 1) / 2)


def test_show_rows_scale_sets_the_height_of_a_row():
    """scale s draws each image s x GRID_TILE_IN inches tall: three rows grow by 3 x GRID_TILE_IN per unit of s;
    scale None is the largest that fits, and a scale too large for the screen is cut down to that."""
    rows = {f"row {i}": torch.zeros(4, 1, 28, 28) for i in range(3)}
    heights = [plotting.show_rows(rows, scale=scale).get_size_inches()[1] for scale in (0.5, 1.0, 2.0)]
    assert np.allclose(np.diff(heights), [3 * 0.5 * plotting.GRID_TILE_IN, 3 * 1.0 * plotting.GRID_TILE_IN])
    fitted = plotting.show_rows(rows).get_size_inches()
    assert np.allclose(plotting.show_rows(rows, scale=50).get_size_inches(), fitted)
    assert fitted[0] <= plotting.MAX_WIDTH_IN and fitted[1] <= plotting.GRID_HEIGHT_IN


def test_show_rows_refuses_nothing_and_mixed_sizes():
    with pytest.raises(ValueError, match="rows is empty"):
        plotting.show_rows({})
    with pytest.raises(ValueError, match="one size"):
        plotting.show_rows({"a": torch.zeros(1, 1, 28, 28), "b": torch.zeros(1, 1, 14, 14)})


def test_chain_step_shows_x_t_and_x0_pred_at_the_step():
    x_t = torch.stack([torch.full((4, 1, 28, 28), v) for v in (-1.0, 1.0)])        # (K=2, B=4, 1, 28, 28)
    trajectory = Trajectory([1, 0], x_t, -x_t, x_t[-1])
    fig = plotting.plot_chain_step(trajectory, 1, show=4, nrow=2)
    left, right = (ax.images[0].get_array() for ax in fig.axes[:2])
    assert left.max() == 1.0 and right.max() == 1.0 and right[0, 0] == 0.0   # step 1: x_t = +1, x0_pred = -1
    assert "t = 0" in fig._suptitle.get_text()


def test_sigmas_ratio_starts_at_zero_and_ends_at_one():
    fig = plotting.plot_ddpm_sigmas(make_schedule("linear"))
    ratio = fig.axes[1].lines[0].get_ydata()
    assert ratio[0] == 0.0 and ratio[-1] == pytest.approx(1.0, abs=1e-3)


def test_quality_and_guidance_plots_take_sweep_rows():
    rows = [{"steps": s, "seconds_per_image": 0.01 * s, "confident_share": 0.5, "frechet_distance": 10.0 / s, "n": 4}
            for s in (10, 20)]
    reference = {"test_confident_share": 0.97, "train_vs_test_frechet_distance": 2.0, "train_vs_test_n": 4}
    fig = plotting.plot_quality_vs_steps({"a": rows, "b": [{**rows[0], "frechet_distance": None}]}, reference)
    assert len(fig.axes) == 3 and len(fig.axes[2].lines) == 2               # 'b' has no Frechet distance: one curve + ref
    fig = plotting.plot_quality_vs_steps({"a": rows, "b": [{**rows[0], "seconds_per_image": None}]})
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[1].lines) == 2     # 'b' untimed: no time curve, still a share
    guide = [{"w": w, "guided_accuracy": a, "confident_share": a, "relative_spread": 1 - a, "frechet_distance": 5.0}
             for w, a in ((0.0, 0.1), (3.0, 0.9))]
    fig = plotting.plot_guidance_tradeoff(guide, reference)
    assert list(fig.axes[0].lines[0].get_xdata()) == [0.9, pytest.approx(0.1)]


def test_over_t_runs_right_to_left():
    fig = plotting.plot_over_t([2, 1, 0], {"x": [0.0, 0.5, 1.0]}, "title", "share")
    left, right = fig.axes[0].get_xlim()
    assert left > right


# ----------------------------------------------------------------------------- notebook 10: the toy and the solvers

def test_quality_vs_nfe_puts_the_evaluations_on_the_x_axis():
    rows = [{"nfe": n, "steps": (n + 1) // 2, "seconds_per_image": 0.01 * n, "confident_share": 0.5,
             "frechet_distance": 10.0 / n, "n": 4} for n in (5, 9)]
    fig = plotting.plot_quality_vs_nfe({"Heun": rows, "DDIM": [{**r, "nfe": m} for r, m in zip(rows, (5, 10))]})
    assert list(fig.axes[1].lines[0].get_xdata()) == [5, 9]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["5", "10"]     # 9 is too close to 10 to label
    assert "network evaluations" in fig.axes[1].get_xlabel()


def _drawn_tick_labels(ax, axis: str = "y") -> list[str]:
    """The tick labels a reader sees on ax's y (or x) axis: those inside the view, after a draw."""
    ax.figure.canvas.draw()
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    ticks = ax.yaxis.get_major_ticks() if axis == "y" else ax.xaxis.get_major_ticks()
    return [t.label1.get_text() for t in ticks if lo <= t.get_loc() <= hi and t.label1.get_text()]


def test_quality_vs_nfe_reads_a_failed_sampler_and_untimed_rows():
    """Notebook 10-11's sweep: Heun fails at 5 NFE (Frechet distance 1770 against 30-160): a log Frechet axis keeps
    the other curves apart; times are labelled in plain numbers; rows without any time (a model card's) get no empty
    time panel."""
    nfes = [5, 10, 20, 50]
    heun = [{"nfe": n, "seconds_per_image": 0.0015 * n, "confident_share": 0.5, "frechet_distance": f, "n": 4}
            for n, f in zip(nfes, (1770, 480, 80, 62))]
    ddim = [{**r, "frechet_distance": f} for r, f in zip(heun, (160, 90, 70, 30))]
    fig = plotting.plot_quality_vs_nfe({"Heun": heun, "DDIM": ddim})
    time_ax, _, fd_ax = fig.axes
    assert fd_ax.get_yscale() == "log" and time_ax.get_yscale() == "log"
    assert all(re.fullmatch(r"\d+", label) for label in _drawn_tick_labels(time_ax))       # 10, 20, 50: no 2x10^1
    assert _drawn_tick_labels(time_ax) == ["10", "20", "50"]
    assert {"100", "1000"} <= set(_drawn_tick_labels(fd_ax))
    untimed = {name: [{**r, "seconds_per_image": None} for r in rows] for name, rows in (("Heun", heun), ("DDIM", ddim))}
    fig = plotting.plot_quality_vs_nfe(untimed)
    assert len(fig.axes) == 2 and "confident share" in fig.axes[0].get_title()
    assert fig.axes[1].get_yscale() == "log" and len(fig.axes[1].lines) == 2


def test_toy_noising_draws_one_panel_per_timestep_and_the_samples():
    from diffusion_lib import toy
    schedule, mixture = make_schedule("linear"), toy.ring_mixture()
    x = toy.mixture_sample(mixture, 30, torch.Generator().manual_seed(0))
    fig = plotting.plot_toy_noising(mixture, schedule, [0, 500], {0: x})
    assert len(fig.axes) == 2 and len(fig.axes[0].collections) == 1 and len(fig.axes[1].collections) == 0
    assert fig.axes[0].collections[0].get_offsets().shape == (30, 2)
    density = fig.axes[0].images[0].get_array()
    assert density.max() > 5 * fig.axes[1].images[0].get_array().max()          # the data is far more peaked than q_T


def test_score_fields_share_a_scale_per_column_and_cut_long_arrows():
    from diffusion_lib import toy
    schedule, mixture = make_schedule("linear"), toy.ring_mixture()
    grid = toy.grid_points(1.0, 5)                                                   # spacing 0.5
    exact = {t: toy.exact_score(mixture, grid, t, schedule) for t in (10, 300)}
    fields = {"exact": exact, "double": {t: 2 * s for t, s in exact.items()}}
    fig = plotting.plot_score_fields(grid, fields, [10, 300], mixture, schedule)
    assert len(fig.axes) == 4                                                        # 2 fields x 2 timesteps
    assert [ax.get_title() for ax in fig.axes] == ["exact, t = 10", "double, t = 10", "exact, t = 300",
                                                  "double, t = 300"]               # side by side, a row per t
    lengths = [torch.tensor(ax.collections[0].U ** 2 + ax.collections[0].V ** 2).sqrt() for ax in fig.axes]
    assert float(lengths[0].median()) == pytest.approx(0.7 * 0.5, rel=1e-6)          # the median arrow: 0.7 cells
    assert all(float(v.max()) <= 1.4 * 0.5 + 1e-9 for v in lengths)                 # none longer than 1.4 cells
    assert torch.all(lengths[1] >= lengths[0] - 1e-9)                                # the doubled field is longer
    fig = plotting.plot_score_fields(grid, fields, [10], mixture, schedule)
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "double, t = 10"      # one t: side by side


def test_toy_trajectories_draw_the_trail_and_the_points_of_each_step():
    from diffusion_lib import toy
    schedule, mixture = make_schedule("linear"), toy.ring_mixture()
    x_t = torch.arange(3 * 4 * 2, dtype=torch.float32).reshape(3, 4, 2, 1, 1) / 24    # K = 3 states of 4 points
    trajectory = Trajectory([999, 500, 0], x_t, x_t, x_t[-1] * 0)
    fig = plotting.plot_toy_trajectories({"a": trajectory, "b": trajectory}, [1, 3], mixture, schedule, trail=1, show=3)
    assert [ax.get_title() for ax in fig.axes] == ["a, t = 500", "b, t = 500", "a, the end", "b, the end"]
    trails, dots = _trails_and_dots(fig.axes[0])
    assert len(trails) == 3 and all(len(trail) == 2 for trail in trails)          # 3 points, trail of one step
    assert dots.get_offsets().tolist() == x_t[1, :3, :, 0, 0].tolist()


def _trails_and_dots(ax):
    """A trajectory panel's trails (one (n, 2) array per point) and its dots (the points at the step)."""
    from matplotlib.collections import LineCollection, PathCollection
    (trails,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    return trails.get_segments(), dots


# ---------------------------------------------------------------------------------------------------------------
# The live pictures of notebook 10's sliders (that a picture depends on its value only, and fits the screen:
# tests/test_plotting_layout.py). Here: what each redraw shows.

def _toy():
    from diffusion_lib import toy
    schedule, mixture = make_schedule("linear"), toy.ring_mixture()
    return toy, schedule, mixture


def _flow_mixture(mixture, s):
    """x_s = (1 - s) x_0 + s eps: notebook 11's path (toy.flow_mixture)."""
    from diffusion_lib import toy
    return toy.flow_mixture(mixture, s)


def _shaded(toy, mixture, alpha_bar, limit, n=90):
    return toy.q_t_log_density(mixture, toy.grid_points(limit, n), alpha_bar).exp().reshape(n, n).numpy()


def test_live_toy_noising_redraws_density_points_and_title():
    toy, schedule, mixture = _toy()
    x0 = toy.mixture_sample(mixture, 50, torch.Generator().manual_seed(0))
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    from diffusion_lib.forward import q_sample

    def noised(t):
        return q_sample(x0, torch.full((50,), t), schedule, eps)

    live = plotting.toy_noising_slider(mixture, schedule, noised)
    live(0)
    live(500)
    ax = live.figure.axes[0]
    density = _shaded(toy, mixture, float(schedule.alpha_bar[500]), plotting.TOY_LIMIT)
    assert np.allclose(ax.images[0].get_array(), density)
    assert ax.images[0].get_clim() == (0, pytest.approx(density.max()))
    assert np.allclose(ax.collections[0].get_offsets(), noised(500)[:, :, 0, 0].numpy())
    assert ax.get_title() == "t = 500, " + r"$\bar\alpha_t$" + f" = {float(schedule.alpha_bar[500]):.3g}"
    assert live(0) != live(500)


def test_toy_pictures_shade_the_density_at_t_they_are_given():
    toy, schedule, mixture = _toy()
    T = schedule.T

    def flow(t):
        return _flow_mixture(mixture, (t + 1) / T)

    default = plotting.toy_noising_slider(mixture, schedule)
    vp = plotting.toy_noising_slider(mixture, schedule, density_at=lambda t: toy.noised_mixture(
        mixture, float(schedule.alpha_bar[t])))
    for live in (default, vp):
        live(10)
        live(300)
    assert np.allclose(default.figure.axes[0].images[0].get_array(), vp.figure.axes[0].images[0].get_array(),
                       rtol=1e-4)                                   # the default is the VP-noised mixture
    live = plotting.toy_noising_slider(mixture, schedule, density_at=flow, title="the flow path")
    live(10)
    live(499)
    ax = live.figure.axes[0]
    assert np.allclose(ax.images[0].get_array(), _shaded(toy, flow(499), 1.0, plotting.TOY_LIMIT))
    assert ax.get_title() == "t = 499" and live.figure.texts[0].get_text() == "the flow path"
    fig = plotting.plot_toy_noising(mixture, schedule, [0, 499], density_at=flow, title="the flow path")
    assert np.allclose(fig.axes[1].images[0].get_array(), ax.images[0].get_array())
    assert fig.texts[0].get_text() == "the flow path" and fig.axes[1].get_title() == "t = 499"


def test_field_slider_redraws_the_arrows_of_a_fresh_picture():
    toy, schedule, mixture = _toy()
    grid = toy.grid_points(1.0, 5)
    exact = {t: toy.exact_score(mixture, grid, t, schedule) for t in (10, 300)}
    fields = {"exact": exact, "double": {t: 2 * s for t, s in exact.items()}}
    live = plotting.field_slider(grid, fields, mixture, schedule)
    live(10)
    live(300)
    fresh = plotting.plot_score_fields(grid, fields, [300], mixture, schedule)
    for ax, other in zip(live.figure.axes, fresh.axes):
        assert np.allclose(ax.collections[0].U, other.collections[0].U)
        assert np.allclose(ax.collections[0].V, other.collections[0].V)
        assert ax.get_title() == other.get_title() and ax.texts[0].get_text() == other.texts[0].get_text()
        assert np.allclose(ax.images[0].get_array(), other.images[0].get_array())
    assert live.figure.axes[1].get_title() == "double, t = 300"
    typical = float(exact[300][:, :, 0, 0].norm(dim=1).median())
    assert live.figure.axes[0].texts[0].get_text() == f"0.7 cells = |score| {typical:.3g}"


def test_field_slider_draws_a_velocity_over_another_density():
    toy, schedule, mixture = _toy()
    grid = toy.grid_points(1.0, 5)
    velocity = {t: torch.tensor([t + 1.0, 0.0]).expand(25, 2)[:, :, None, None] for t in (0, 1)}   # along x
    live = plotting.field_slider(grid, {"v": velocity}, mixture, schedule, title="the velocity",
                                 density_at=lambda t: _flow_mixture(mixture, (t + 1) / 2), quantity="velocity")
    live(1)
    live(0)
    ax = live.figure.axes[0]
    assert ax.texts[0].get_text() == "0.7 cells = |velocity| 1" and live.figure.texts[0].get_text() == "the velocity"
    assert np.allclose(ax.images[0].get_array(), _shaded(toy, _flow_mixture(mixture, 0.5), 1.0, plotting.TOY_LIMIT))
    fig = plotting.plot_score_fields(grid, {"v": velocity}, [0, 1], mixture, schedule, title="the velocity",
                                     quantity="velocity", density_at=lambda t: _flow_mixture(mixture, (t + 1) / 2))
    assert fig.texts[0].get_text() == "the velocity" and fig.axes[1].texts[0].get_text() == "0.7 cells = |velocity| 2"


def test_trajectory_slider_redraws_trails_points_and_the_end():
    toy, schedule, mixture = _toy()
    x_t = torch.randn(5, 4, 2, 1, 1, generator=torch.Generator().manual_seed(0))        # K = 5 states of 4 points
    trajectory = Trajectory([999, 700, 400, 100, 0], x_t, x_t, x_t[-1] * 0)
    live = plotting.toy_trajectory_slider({"a": trajectory, "b": trajectory}, mixture, schedule, trail=2, show=3)
    live(0)
    live(3)
    ax = live.figure.axes[1]
    trails, dots = _trails_and_dots(ax)
    assert ax.get_title() == "b\nt = 100" and len(trails) == 3
    assert np.allclose(trails[1], x_t[1:4, 1, :, 0, 0].numpy())                         # the last 2 steps of point 1
    assert np.allclose(dots.get_offsets(), x_t[3, :3, :, 0, 0].numpy())
    assert np.allclose(ax.images[0].get_array(), _shaded(toy, mixture, float(schedule.alpha_bar[100]), 2.5))
    live(5)                                                                              # the end: the clean points
    assert ax.get_title() == "b\nthe end" and np.allclose(_trails_and_dots(ax)[1].get_offsets(), 0)
    assert np.allclose(ax.images[0].get_array(), _shaded(toy, mixture, 1.0, 2.5))
    seen = []
    live = plotting.toy_trajectory_slider({"a": trajectory}, mixture, schedule,
                                          density_at=lambda t: seen.append(t) or _flow_mixture(mixture, 0.5))
    live(1)
    live(5)
    assert seen[-1] == -1 and 700 in seen                            # density_at gets the step's t, -1 at the end


def test_trajectory_pictures_shade_each_chain_with_its_own_path():
    """density_at as a dict: the flow chain over the flow's density, the DDIM chain over q_t (None), in one picture."""
    toy, schedule, mixture = _toy()
    x_t = torch.randn(5, 4, 2, 1, 1, generator=torch.Generator().manual_seed(0))
    trajectory = Trajectory([999, 700, 400, 100, 0], x_t, x_t, x_t[-1] * 0)
    flow = {"flow": lambda t: _flow_mixture(mixture, (t + 1) / schedule.T), "DDIM": None}
    live = plotting.toy_trajectory_slider({"flow": trajectory, "DDIM": trajectory}, mixture, schedule, density_at=flow)
    live(0)
    live(2)
    flow_ax, ddim_ax = live.figure.axes[:2]
    assert np.allclose(flow_ax.images[0].get_array(), _shaded(toy, _flow_mixture(mixture, 401 / 1000), 1.0, 2.5))
    assert np.allclose(ddim_ax.images[0].get_array(), _shaded(toy, mixture, float(schedule.alpha_bar[400]), 2.5))
    fig = plotting.plot_toy_trajectories({"flow": trajectory, "DDIM": trajectory}, [2, 5], mixture, schedule,
                                         density_at=flow)
    assert np.allclose(fig.axes[0].images[0].get_array(), flow_ax.images[0].get_array())
    assert np.allclose(fig.axes[1].images[0].get_array(), ddim_ax.images[0].get_array())
    with pytest.raises(ValueError, match=r"not in trajectories: \['ddpm'\]"):
        plotting.plot_toy_trajectories({"flow": trajectory}, [2], mixture, schedule, density_at={"ddpm": None})


def test_live_toy_pictures_refuse_bad_input():
    toy, schedule, mixture = _toy()
    grid = toy.grid_points(1.0, 5)
    fields = {"exact": {t: toy.exact_score(mixture, grid, t, schedule) for t in (10, 11)}}
    with pytest.raises(ValueError, match="non-empty dict"):
        plotting.field_slider(grid, {}, mixture, schedule)
    live = plotting.field_slider(grid, fields, mixture, schedule)
    live(10)
    with pytest.raises(ValueError, match=r"fields\['exact'\] has no field at t = 12"):
        live(12)
    with pytest.raises(ValueError, match=r"must be \(25, 2, 1, 1\)"):
        plotting.field_slider(grid, {"bad": {0: torch.zeros(24, 2, 1, 1)}}, mixture, schedule)(0)
    with pytest.raises(ValueError, match="n x n points"):
        plotting.field_slider(grid[:24], fields, mixture, schedule)(10)
    with pytest.raises(TypeError, match="density_at must be a function"):
        plotting.field_slider(grid, fields, mixture, schedule, density_at=mixture)(10)
    with pytest.raises(TypeError, match=r"density_at\(10\) must return a diffusion_lib.toy.GaussianMixture"):
        plotting.field_slider(grid, fields, mixture, schedule, density_at=lambda t: 0.5)(10)
    with pytest.raises(TypeError, match="samples_at must be a function"):
        plotting.toy_noising_slider(mixture, schedule, {0: grid})
    live = plotting.toy_noising_slider(mixture, schedule, lambda t: grid if t < 5 else None)
    live(0)
    with pytest.raises(ValueError, match=r"samples_at\(7\) gave no points"):
        live(7)
    with pytest.raises(ValueError, match=r"points must have shape \(B, 2, 1, 1\)"):
        plotting.toy_noising_slider(mixture, schedule, lambda t: torch.zeros(3, 1, 28, 28))(0)
    x_t = torch.zeros(3, 4, 2, 1, 1)
    trajectory = Trajectory([999, 500, 0], x_t, x_t, x_t[-1])
    live = plotting.toy_trajectory_slider({"a": trajectory}, mixture, schedule)
    live(3)
    with pytest.raises(ValueError, match=r"step k = 4 is outside the recorded steps of 'a': 0 \.\. 3"):
        live(4)
    images = Trajectory([1, 0], torch.zeros(2, 4, 1, 28, 28), torch.zeros(2, 4, 1, 28, 28), torch.zeros(4, 1, 28, 28))
    with pytest.raises(ValueError, match=r"must hold 2-D points, states \(K, B, 2, 1, 1\)"):
        plotting.toy_trajectory_slider({"a": images}, mixture, schedule)


def test_solver_errors_plot_has_a_curve_and_a_guide_per_sampler():
    rows = [{"sampler": s, "nfe": n, "mean_error": e} for s, pts in (("DDIM", ((5, 0.4), (10, 0.2))),
                                                                     ("Heun", ((5, 3.0), (9, 0.4)))) for n, e in pts]
    fig = plotting.plot_solver_errors(rows)
    ax = fig.axes[0]
    assert len(ax.lines) == 4 and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    guide = ax.lines[3].get_ydata()                                                  # Heun's slope -2 guide
    assert guide[1] == pytest.approx(3.0 * (9 / 5) ** -2)
    flow = [{"sampler": s, "nfe": n, "mean_error": e} for s, pts in (("flow Euler", ((5, 0.4), (10, 0.2))),
                                                                     ("flow Heun", ((5, 3.0), (9, 0.4)))) for n, e in pts]
    ax = plotting.plot_solver_errors(flow).axes[0]
    assert ax.lines[1].get_ydata()[1] == pytest.approx(0.4 * (10 / 5) ** -1)       # flow Euler: first order
    assert ax.lines[3].get_ydata()[1] == pytest.approx(3.0 * (9 / 5) ** -2)        # flow Heun: second order
