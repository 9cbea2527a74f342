"""SliderView on the kernel side: moving the slider redraws the picture, each value is drawn once, and
without a kernel the slider reads as one sentence (never the widget's repr).

Only API shared by ipywidgets 7.7 and 8 is used (IntSlider, SelectionSlider, Image.value as PNG bytes,
setting .value), so this file runs unchanged under both; tests/test_widgets_versions.py runs a check in
a subprocess against each version.
"""
import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
from IPython.core.formatters import DisplayFormatter

from diffusion_lib.pictures import widgets as dw
from diffusion_lib.pictures.widgets import figure_to_png, slider_view


def render(value):
    """A small picture that depends on the value: a grey level and the value as title."""
    fig, ax = plt.subplots(figsize=(1.2, 1.2), dpi=40)
    ax.imshow(np.full((4, 4), float(value)), vmin=0, vmax=1000, cmap="gray")
    ax.set_title(str(value), fontsize=8)
    ax.set_axis_off()
    return fig


def png_of(value) -> bytes:
    return figure_to_png(render(value))


def shown(view) -> bytes:
    """The PNG in the image widget (bytes in ipywidgets 7, a memoryview in 8)."""
    return bytes(view.image.value)


CASES = {
    "contiguous ints": (list(range(0, 6)), ipywidgets.IntSlider, [3, 5, 1]),
    "timesteps in sampling order": ([999, 749, 500, 250, 0], ipywidgets.SelectionSlider, [250, 0, 749]),
    "floats": ([0.0, 0.5, 1.0], ipywidgets.SelectionSlider, [1.0, 0.5, 0.0]),
}


@pytest.mark.parametrize("case", CASES)
def test_moving_the_slider_redraws(case):
    values, kind, visits = CASES[case]
    calls = []

    def recording_render(v):
        calls.append(v)
        return render(v)

    view = slider_view(recording_render, values, description="t", prerender=False)
    assert isinstance(view.slider, kind)
    assert view.value == values[0] and calls == [values[0]]
    assert shown(view) == png_of(values[0]) and shown(view).startswith(b"\x89PNG")
    seen = {values[0]: shown(view)}
    for i, v in enumerate(visits):
        if i % 2:
            view.slider.value = v                       # what a drag does to the model
        else:
            view.set(v)                                 # the same from code
        assert view.value == v
        assert shown(view) == png_of(v)
        seen[v] = shown(view)
    assert len(set(seen.values())) == len(seen)         # different values, different pictures
    first_visits = list(dict.fromkeys([values[0], *visits]))
    assert calls == first_visits                        # one render per new value, none repeated
    view.set(visits[0])                                 # a value seen before: its PNG is kept, nothing redrawn
    assert shown(view) == png_of(visits[0]) and calls == first_visits


def test_few_values_are_all_drawn_up_front():
    calls = []
    view = slider_view(lambda v: calls.append(v) or render(v), [999, 500, 0], value=500)
    assert sorted(calls) == [0, 500, 999] and calls[0] == 500            # the shown value first, then the rest
    for v in (0, 999, 500):
        view.set(v)
        assert shown(view) == png_of(v)
    assert len(calls) == 3                                               # moving only swapped bytes
    many = slider_view(lambda v: calls.append(v) or render(v), range(dw.PRERENDER_MAX + 1))
    assert calls[3:] == [0]                                              # too many to draw up front: the first only


def test_render_may_return_png_bytes_and_the_cache_is_bounded(monkeypatch):
    pngs = {v: png_of(v) for v in range(4)}
    monkeypatch.setattr(dw, "CACHE_BYTES", 2 * max(len(p) for p in pngs.values()))
    calls = []
    view = slider_view(lambda v: calls.append(v) or pngs[v], range(4), prerender=False)
    for v in (1, 2, 3):
        view.set(v)
        assert shown(view) == pngs[v]
    assert len(view._cache) <= 2 and view._cached_bytes == sum(len(p) for p in view._cache.values())
    view.set(0)                                          # pushed out of the bounded cache: drawn again
    assert calls == [0, 1, 2, 3, 0]
    with pytest.raises(TypeError, match="not a PNG"):
        slider_view(lambda v: b"GIF89a", range(2))
    with pytest.raises(TypeError, match="Figure or PNG bytes, not str"):
        slider_view(lambda v: "picture", range(2))


def test_without_a_kernel_the_slider_reads_as_a_sentence():
    view = slider_view(render, [999, 500, 0], description="step t")
    data, _ = DisplayFormatter().format(view)          # what IPython sends to the front end for `view`
    assert data["text/plain"] == view.note == repr(view)
    assert view.note.startswith("Interactive slider over step t (run the notebook to move it)")
    assert "VBox" not in data["text/plain"] and "Slider(" not in data["text/plain"]
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == view.box.model_id   # live: the box
    assert set(data) == {"text/plain", "application/vnd.jupyter.widget-view+json"}


def test_initial_value_and_bad_input():
    view = slider_view(render, [10, 20, 40], value=20)
    assert view.value == 20 and shown(view) == png_of(20)
    with pytest.raises(ValueError, match="at least one value"):
        slider_view(render, [])
    with pytest.raises(ValueError, match="not one of the slider's values"):
        slider_view(render, range(3), value=7)


def test_widget_tree():
    view = slider_view(render, range(3), description="step")
    assert isinstance(view.box, ipywidgets.VBox)
    assert list(view.box.children) == [view.slider, view.image]
    assert view.slider.description == "step"
    assert (view.slider.min, view.slider.max) == (0, 2)
