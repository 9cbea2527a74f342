"""SliderView on the kernel side: moving the slider redraws the picture.

Only API shared by ipywidgets 7.7 and 8 is used (IntSlider, SelectionSlider, Image.value as PNG bytes,
setting .value), so this file runs unchanged under both; tests/test_widgets_versions.py runs a check in
a subprocess against each version.
"""
import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest

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

    view = slider_view(recording_render, values, description="t")
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
    assert calls == [values[0], *visits]                # one render per move, none repeated


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
