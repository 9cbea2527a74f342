"""Sliders for time-indexed pictures, working on ipywidgets 7.7 (Colab) and 8.

A SliderView pairs a slider with an image widget. Moving the slider shows render(value): a matplotlib
Figure (drawn to PNG here, then closed) or PNG bytes already drawn (what the pictures of
diffusion_lib.plotting.LiveFigure return: they redraw only what moves, fast enough for a key press).
Each value's PNG is kept once drawn, so going back to a value costs nothing; a slider over a few values
(at most PRERENDER_MAX) draws all of them when it is built, and then only swaps bytes.

    view = slider_view(lambda t: plot_noised(t), values=range(0, 1000), description="t")
    view            # in a notebook: the slider and the picture
    view.set(500)   # what dragging the slider does, callable from code and tests

Where no kernel runs (GitHub, an HTML export, a notebook opened before it is run), a widget shows its
text/plain: for a SliderView that is one sentence (SliderView.note), never the widget's repr. Widgets are
inert there, so put a static strip of the same quantity beside each slider.
"""
from __future__ import annotations

import io
from collections import OrderedDict
from typing import Callable, Sequence, Union

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PRERENDER_MAX = 16                 # a slider over this many values or fewer draws them all up front
CACHE_BYTES = 96 * 2 ** 20         # the drawn PNGs one slider keeps (least recently shown go first)

Picture = Union["matplotlib.figure.Figure", bytes]


def figure_to_png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (so inline backends do not show it twice)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def picture_to_png(picture: Picture) -> bytes:
    """PNG bytes of what a render function returned: a Figure (drawn and closed) or PNG bytes (as they are)."""
    if isinstance(picture, (bytes, bytearray, memoryview)):
        data = bytes(picture)
        if not data.startswith(PNG_SIGNATURE):
            raise TypeError("a slider's render function returned bytes that are not a PNG image; return a "
                            "matplotlib Figure or PNG bytes")
        return data
    if isinstance(picture, matplotlib.figure.Figure):
        return figure_to_png(picture)
    raise TypeError(f"a slider's render function must return a matplotlib Figure or PNG bytes, "
                    f"not {type(picture).__name__}")


class SliderView:
    """A slider over `values` and an Image widget that shows render(value).

    prerender: draw every value when the slider is built (default: when there are at most PRERENDER_MAX);
    after that, moving the slider only swaps PNG bytes.
    """

    def __init__(self, render: Callable[[object], Picture], values: Sequence, description: str = "t",
                 value=None, prerender: bool | None = None):
        values = list(values)
        if not values:
            raise ValueError("a slider needs at least one value")
        self.render = render
        self.values = values
        self.description = description
        start = values[0] if value is None else value
        if start not in values:
            raise ValueError(f"initial value {start!r} is not one of the slider's values")
        self._cache: OrderedDict = OrderedDict()       # value -> PNG bytes, most recently shown last
        self._cached_bytes = 0
        contiguous = all(isinstance(v, int) for v in values) and values == list(range(values[0], values[-1] + 1))
        layout = widgets.Layout(width="600px")
        style = {"description_width": "initial"}
        if contiguous:
            self.slider = widgets.IntSlider(value=start, min=values[0], max=values[-1], step=1, description=description,
                                            continuous_update=True, layout=layout, style=style)
        else:
            self.slider = widgets.SelectionSlider(options=[(str(v), v) for v in values], value=start,
                                                  description=description, continuous_update=True, layout=layout,
                                                  style=style)
        self.image = widgets.Image(format="png")
        # align_items="flex-start": show the picture at its own size, not stretched to the output's width
        self.box = widgets.VBox([self.slider, self.image], layout=widgets.Layout(align_items="flex-start"))
        self._draw(start)
        if prerender if prerender is not None else len(values) <= PRERENDER_MAX:
            for v in values:
                self.png(v)
        self.slider.observe(self._on_change, names="value")

    @property
    def note(self) -> str:
        """What a reader without a kernel sees in place of the slider (the widget's text/plain)."""
        return (f"Interactive slider over {self.description} (run the notebook to move it); "
                f"the static pictures next to this cell show the same.")

    def png(self, value) -> bytes:
        """The PNG shown at `value`: drawn on first use, then kept (up to CACHE_BYTES for the whole slider)."""
        if value in self._cache:
            self._cache.move_to_end(value)
            return self._cache[value]
        data = picture_to_png(self.render(value))
        self._cache[value] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped)
        return data

    def _on_change(self, change) -> None:
        self._draw(change["new"])

    def _draw(self, value) -> None:
        self.image.value = self.png(value)

    @property
    def value(self):
        return self.slider.value

    def set(self, value) -> None:
        """Move the slider to `value` (the picture follows through the same callback as a drag)."""
        self.slider.value = value

    def _repr_mimebundle_(self, include=None, exclude=None):
        # The widget's own bundle (what ipywidgets 7 and 8 both send: the view of the model by its id) with our
        # sentence as text/plain, which is all that GitHub, nbconvert and an untrusted notebook show.
        return {"text/plain": self.note,
                "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                             "model_id": self.box.model_id}}

    def __repr__(self) -> str:
        return self.note


def slider_view(render, values, description: str = "t", value=None, prerender: bool | None = None) -> SliderView:
    """Build a SliderView; see the module docstring."""
    return SliderView(render, values, description, value, prerender)
