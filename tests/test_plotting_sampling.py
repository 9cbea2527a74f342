"""The pictures of notebooks 06-08 (diffusion_lib.plotting, last section) and the image table of every notebook
(show_rows): what they draw, not how it looks."""
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


def test_show_rows_size_is_the_height_of_a_row_in_inches():
    rows = {f"row {i}": torch.zeros(4, 1, 28, 28) for i in range(3)}
    heights = [plotting.show_rows(rows, size=size).get_size_inches()[1] for size in (0.5, 1.0, 2.0)]
    assert np.allclose(np.diff(heights), [3 * 0.5, 3 * 1.0])             # three rows: 3 * size more each time


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
