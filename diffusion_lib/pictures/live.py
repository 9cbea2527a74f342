"""LiveFigure: the live twin of a picture behind a slider, fast enough to follow a key press.

The pictures behind a slider over many values (01's schedules, 02's forward process, 03's embedding, 06's
chain, 07-09's image tables, 10's toy density, score fields and paths) have a live twin, a LiveFigure: drawn
in full once, after that only the artists that change with the value are redrawn (blitting), which takes
tens of milliseconds instead of most of a second. Each twin sits beside its picture, in the file named after
what it draws.
"""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg


PNG_COMPRESS_LEVEL = 1     # zlib level of a LiveFigure's PNG: fast to write, a few per cent larger


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
