"""Sliders for time-indexed pictures, working on ipywidgets 7.7 (Colab) and 8.

A SliderView pairs a slider with an image widget. Moving the slider calls render(value), which
returns a matplotlib Figure; the figure is drawn to PNG and shown in the image widget. Nothing is
recomputed that was already computed: render usually indexes into a recorded chain.

    view = slider_view(lambda t: plot_noised(t), values=range(0, 1000), description="t")
    view            # in a notebook: the slider and the picture
    view.set(500)   # what dragging the slider does, callable from code and tests

On GitHub and in print, widgets are inert: put a static strip of the same quantity beside each.
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt


def figure_to_png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (so inline backends do not show it twice)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class SliderView:
    """A slider over `values` and an Image widget that shows render(value)."""

    def __init__(self, render: Callable[[object], "matplotlib.figure.Figure"], values: Sequence, description: str = "t",
                 value=None):
        values = list(values)
        if not values:
            raise ValueError("a slider needs at least one value")
        self.render = render
        self.values = values
        start = values[0] if value is None else value
        if start not in values:
            raise ValueError(f"initial value {start!r} is not one of the slider's values")
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
        self.slider.observe(self._on_change, names="value")
        self._draw(start)

    def _on_change(self, change) -> None:
        self._draw(change["new"])

    def _draw(self, value) -> None:
        self.image.value = figure_to_png(self.render(value))

    @property
    def value(self):
        return self.slider.value

    def set(self, value) -> None:
        """Move the slider to `value` (the picture follows through the same callback as a drag)."""
        self.slider.value = value

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)


def slider_view(render, values, description: str = "t", value=None) -> SliderView:
    """Build a SliderView; see the module docstring."""
    return SliderView(render, values, description, value)
