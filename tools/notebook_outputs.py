"""What a committed notebook's outputs may show where no kernel runs (GitHub, nbconvert, a first open).

    finish_progress_bars(nb)   after execution: each tqdm bar's output becomes the bar's last text
    output_problems(nb)        the outputs a reader must not see; [] when there are none
    png_size(data)             the (width, height) in pixels of a base64 PNG, from its header

A progress bar from tqdm.auto is a widget. Its output holds the widget's id and, as text/plain, the bar as it
was when it first appeared: `DDPM:   0%|          | 0/1000`. The widget's later state (100%, the time taken)
lives only in the executed notebook's metadata.widgets, which tools/build_notebooks.py drops (GitHub does
not render it without every widget's full state). So finish_progress_bars rebuilds the bar's last text
from that state and puts it in place of the widget; a learner who runs the notebook still sees the live bar.

tools/build_notebooks.py applies both; tests/test_notebooks_static.py checks every committed notebook with
output_problems.
"""
from __future__ import annotations

import base64
import binascii
import html
import re
import struct

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex")
BAR_WIDTH = 10                                    # characters of tqdm's bar, as in its own text output
# GitHub's column and JupyterLab with its sidebar open show a figure about 850-1000 pixels wide: one wider than this
# is shrunk, and its text with it (a strip of many panels wraps into rows instead).
MAX_FIGURE_WIDTH_PX = 1100
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The repr of an ipywidgets widget, e.g. `VBox(children=(IntSlider(value=600, ...` or `IntSlider(value=3)`.
WIDGET_REPR = re.compile(r"\b(?:[HV]?Box|GridBox|Tab|Accordion|IntSlider|FloatSlider|FloatLogSlider|IntRangeSlider|"
                         r"SelectionSlider|SelectionRangeSlider|IntProgress|FloatProgress|Image|Output|Dropdown|"
                         r"Button|Checkbox|HTML|Label|Text|Layout|SliderStyle|interactive)\((?:children|value|"
                         r"description|options|layout|index|min|max|outputs|style|format)=")
# A tqdm meter: "desc: 37%|███▋      | 370/1000 [..." (the bar may be empty); group n and total.
TQDM_METER = re.compile(r"\d+%\|[^|\n]*\|\s*(\d+(?:\.\d+)?[kMG]?)/(\d+(?:\.\d+)?[kMG]?)")
# An absolute path of some machine: a POSIX home, scratch or system folder, or a Windows drive.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])(?:/(?:work|tmp|home|root|Users|mnt|opt|var|private|usr|content|"
                           r"scratch|data|srv|nfs)/|[A-Za-z]:\\\\?[\w.-])|file:///")


def _texts(output) -> list[tuple[str, str]]:
    """(where, text) for every text an output shows: its stream text or its text mimetypes."""
    if output.get("output_type") == "stream":
        return [(f"stream {output.get('name')}", _joined(output.get("text", "")))]
    if output.get("output_type") == "error":
        return [("error", "\n".join([output.get("ename", ""), output.get("evalue", ""), *output.get("traceback", [])]))]
    data = output.get("data", {})
    return [(mime, _joined(data[mime])) for mime in TEXT_MIMES if mime in data]


def _joined(text) -> str:
    return "".join(text) if isinstance(text, list) else str(text)


def output_problems(nb) -> list[str]:
    """Every output that must not be committed, as 'cell N: what is wrong: the text' lines; [] if none.

    Looked at: stream texts, errors, and the text/plain, text/html, text/markdown and text/latex of every
    display, and the width of every image/png. Not allowed: a widget's repr text, an unfinished or live tqdm bar,
    an absolute path, anything on stderr, an error, a figure wider than MAX_FIGURE_WIDTH_PX.
    """
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            where = f"cell {i + 1}"
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(f"{where}: output on stderr (a warning or a log line): {_short(_joined(output.text))}")
            if output.get("output_type") == "error":
                problems.append(f"{where}: an error was committed: {output.get('ename')}: {output.get('evalue')}")
            data = output.get("data", {})
            size = png_size(data["image/png"]) if "image/png" in data else None
            if size is not None and size[0] > MAX_FIGURE_WIDTH_PX:
                problems.append(f"{where}: a figure {size[0]} pixels wide (at most {MAX_FIGURE_WIDTH_PX}: GitHub shows "
                                f"about 900, shrinking its text; split a wide strip into rows)")
            for mime, text in _texts(output):
                if WIDGET_REPR.search(text):
                    problems.append(f"{where}: a widget's repr in {mime} (what GitHub shows in place of the widget): "
                                    f"{_short(text)}")
                for m in TQDM_METER.finditer(text):
                    if WIDGET_VIEW in data:
                        problems.append(f"{where}: a live progress bar (its text is the bar when it first "
                                        f"appeared; run tools/build_notebooks.py): {_short(m.group(0))}")
                    elif _number(m.group(1)) == 0:
                        problems.append(f"{where}: a progress bar stuck at 0: {_short(m.group(0))}")
                path = ABSOLUTE_PATH.search(text)
                if path:
                    problems.append(f"{where}: an absolute path in {mime}: "
                                    f"{_short(text[max(0, path.start() - 30):path.start() + 50])}")
    return problems


def png_size(data) -> tuple[int, int] | None:
    """(width, height) in pixels of a PNG given as base64 text (a string or a list of lines, as in a notebook), read
    from its IHDR header; None if it is not a PNG."""
    try:
        head = base64.b64decode(_joined(data).replace("\n", "")[:44])          # 33 bytes: signature and IHDR
    except (binascii.Error, ValueError):
        return None
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _number(text: str) -> float:
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}
    return float(text[:-1]) * scale[text[-1]] if text[-1] in scale else float(text)


def _short(text: str, n: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."


def _plain(html_text: str) -> str:
    """tqdm's HTML pieces as plain text: entities decoded, its figure and en spaces back to spaces."""
    return html.unescape(html_text).replace("\u2007", " ").replace("\u2002", " ").replace("\xa0", " ")


def progress_bar_text(model_id: str, state: dict) -> str | None:
    """The last text of the tqdm bar whose HBox is `model_id` in a widget state, or None if it is not one."""
    def model(ref):
        entry = state.get(ref[len("IPY_MODEL_"):] if isinstance(ref, str) and ref.startswith("IPY_MODEL_") else ref)
        return entry if isinstance(entry, dict) else None

    box = model(model_id)
    if box is None or box.get("model_name") != "HBoxModel":
        return None
    children = [model(ref) for ref in box.get("state", {}).get("children", [])]
    kinds = [c.get("model_name") if c else None for c in children]
    if len(kinds) != 3 or kinds[0] != "HTMLModel" or kinds[2] != "HTMLModel" or \
            kinds[1] not in ("FloatProgressModel", "IntProgressModel"):
        return None
    left, bar, right = (c["state"] for c in children)
    value, top = float(bar.get("value", 0) or 0), float(bar.get("max", 0) or 0)
    filled = round(BAR_WIDTH * min(1.0, value / top)) if top > 0 else 0
    return f"{_plain(left.get('value', ''))}|{'█' * filled}{' ' * (BAR_WIDTH - filled)}|{_plain(right.get('value', ''))}"


def finish_progress_bars(nb) -> int:
    """Replace each tqdm widget output by the bar's last text (from nb.metadata.widgets), in place.

    A tqdm widget whose state is missing is dropped: its only text would be the bar at 0%. Other widgets
    (sliders) are left as they are. Returns the number of bars replaced or dropped.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW not in data:
                outputs.append(output)
                continue
            model_id = data[WIDGET_VIEW].get("model_id", "")
            text = progress_bar_text(model_id, state)
            looks_like_bar = bool(TQDM_METER.search(_joined(data.get("text/plain", ""))))
            if text is not None:
                outputs.append(nbformat.v4.new_output("display_data", data={"text/plain": text}))
                changed += 1
            elif looks_like_bar and model_id not in state:
                changed += 1                          # a bar whose last state is unknown: better no bar than 0%
            else:
                outputs.append(output)
        cell.outputs = outputs
    return changed
