"""Static checks of every notebooks/NN_*.ipynb (nothing is executed here but the Colab cell).

The .py pair exists and matches; the notebook is valid nbformat, renders on GitHub (no widget
metadata without state) and was committed executed; it starts with the title badge and the Colab
cell; it holds no library code; it ends with an exercise check.

What a reader sees without a kernel (GitHub, nbconvert, a first open): no widget's repr text, no progress
bar at 0% (or a live one), nothing on stderr, no absolute path of any machine, no figure wider than 1100 pixels
(GitHub's column shows about 900), in any output
(tools/notebook_outputs.output_problems; small notebooks built here with each fault prove it catches them).
The model cards and benchmark notes the notebooks render or link carry no absolute path either.
"""
from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from notebook_cells import COLAB_CELL_SOURCE, GITHUB_SLUG, header_problems  # noqa: E402
from notebook_outputs import (ABSOLUTE_PATH, MAX_FIGURE_WIDTH_PX, finish_progress_bars, output_problems,  # noqa: E402
                              png_size)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISE_MARKER = "# EXERCISE"          # first line of the one cell allowed to `def` (the learner's function)
LIBRARY_CODE = re.compile(r"^\s*(def|class)\s", re.MULTILINE)


def _ids(paths):
    return [p.stem for p in paths]


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.fixture(params=NOTEBOOKS, ids=_ids(NOTEBOOKS))
def notebook(request):
    path = request.param
    return path, nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


def test_py_pair_exists_and_is_in_sync(notebook):
    path, nb = notebook
    py = path.with_suffix(".py")
    assert py.exists(), f"{py.name} is missing: every notebook is paired with a py:percent file"
    # `jupytext --diff` exits 0 even when the two differ, so compare the cells ourselves.
    paired = jupytext.read(py, fmt="py:percent")
    assert _cells(paired) == _cells(nb), (f"{path.name} and {py.name} differ: edit the .py, then run "
                                          f"`python tools/build_notebooks.py {path.stem[:2]}`")


def test_valid_nbformat(notebook):
    _, nb = notebook
    nbformat.validate(nb)


def test_no_widget_metadata_without_state(notebook):
    _, nb = notebook
    widgets = nb.metadata.get("widgets", {})
    for key, entry in widgets.items():
        assert "state" in entry, f"metadata.widgets[{key!r}] has no 'state': GitHub will not render the notebook"


def test_outputs_are_committed(notebook):
    path, nb = notebook
    assert any(c.cell_type == "code" and c.get("outputs") for c in nb.cells), (
        f"{path.name} has no outputs: commit it executed (python tools/build_notebooks.py {path.stem[:2]})")


def test_starts_with_badge_and_colab_cell(notebook):
    path, nb = notebook
    assert header_problems(nb, path.stem) == []


def test_no_library_code_in_notebook(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or cell.source.lstrip().startswith(EXERCISE_MARKER):
            continue
        assert not LIBRARY_CODE.search(cell.source), (
            f"{path.name}, cell {i + 1} defines a function or class: put it in diffusion_lib and import it "
            f"(only the learner's exercise cell, whose first line is {EXERCISE_MARKER!r}, may `def`)")


def test_one_exercise_and_a_check(notebook):
    path, nb = notebook
    number = path.stem[:2]
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert sum(s.lstrip().startswith(EXERCISE_MARKER) for s in code) == 1, f"{path.name} needs one {EXERCISE_MARKER} cell"
    assert any(f'dl.exercises.check("{number}"' in s for s in code), (
        f'{path.name} needs a cell that runs dl.exercises.check("{number}", ...)')


def test_colab_cell_is_a_no_op_outside_colab(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append((a, k)))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(COLAB_CELL_SOURCE, {})
    assert calls == []


def test_colab_cell_installs_without_dependencies_in_colab(monkeypatch, capsys):
    calls = []

    def run(*a, **k):
        calls.append((a, k))
        return subprocess.CompletedProcess(a[0], 0, stdout="", stderr="")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(COLAB_CELL_SOURCE, {})
    assert len(calls) == 1
    (cmd,), kwargs = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"] and "--no-deps" in cmd
    assert any(arg.startswith(f"git+https://github.com/{GITHUB_SLUG}") for arg in cmd)
    assert not any(name in arg for arg in cmd for name in ("torch", "ipywidgets")), "never reinstall Colab's own packages"
    assert kwargs.get("capture_output") is True          # pip's complaint is printed by the cell, not as a traceback
    assert capsys.readouterr().out == ""                  # a good install says nothing


# --- what a reader sees without a kernel ----------------------------------------------------------------------

def test_outputs_show_no_widget_repr_bar_stderr_path_or_wide_figure(notebook):
    path, nb = notebook
    problems = output_problems(nb)
    assert problems == [], (f"{path.name}: outputs a reader must not see (rebuild with "
                            f"`python tools/build_notebooks.py {path.stem[:2]}`, or fix the cell):\n  "
                            + "\n  ".join(problems))


def _nb(*outputs, source="x = 1"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    return nb


def _display(data):
    return {"output_type": "display_data", "metadata": {}, "data": data}


def _png(width: int, height: int = 40) -> list[str]:
    """A white PNG of that size, base64 in lines of 76 characters, as a notebook stores it."""
    import base64
    import io
    import textwrap

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buf, format="png")
    return [line + "\n" for line in textwrap.wrap(base64.b64encode(buf.getvalue()).decode(), 76)]


def _stream(text, name="stdout"):
    return {"output_type": "stream", "name": name, "text": text}


VIEW = {"version_major": 2, "version_minor": 0, "model_id": "b0x"}
FAULTS = {
    "widget repr": _display({"text/plain": "VBox(children=(IntSlider(value=600, description='step', max=999), "
                                           "Image(value=b'...')))", "application/vnd.jupyter.widget-view+json": VIEW}),
    "widget repr in html": _display({"text/html": "<pre>IntSlider(value=3, max=9)</pre>"}),
    "live bar": _display({"text/plain": "DDPM:   0%|          | 0/1000 [00:00<?, ?it/s]",
                          "application/vnd.jupyter.widget-view+json": VIEW}),
    "bar at 0 as text": _stream("train unet:   0%|          | 0/3000 [00:00<?, ?it/s]\n"),
    "stderr": _stream("UserWarning: careful\n", name="stderr"),
    "path in stdout": _stream("wrote /tmp/run/last.pt\n"),
    "path in markdown": _display({"text/markdown": "    export DIFFUSION_LIB_DATA=/work/shared/data"}),
    "home path in html": _display({"text/html": "<code>/home/ada/data/MNIST</code>"}),
    "mac path": _display({"text/plain": "'/Users/ada/course/notebooks'"}),
    "windows path": _stream("C:\\Users\\ada\\course\n"),
    "error": {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []},
    "wide figure": _display({"text/plain": "<Figure size 2150x437 with 6 Axes>", "image/png": _png(MAX_FIGURE_WIDTH_PX + 1)}),
}
CLEAN = [
    _display({"text/plain": "Interactive slider over t (run the notebook to move it); the static pictures next to "
                            "this cell show the same.", "application/vnd.jupyter.widget-view+json": VIEW}),
    _display({"text/plain": "DDPM: 100%|██████████| 1000/1000 [00:52<00:00, 19.1it/s]"}),
    _stream("loss 0.0312; see runs/unet_cond/last.pt and ../shared/data/MNIST, https://github.com/a/b/tmp/x\n"),
    _display({"text/plain": "Text(0.5, 1.0, 'title')", "image/png": "iVBORw0KGgo="}),
    _display({"text/plain": "<Figure size 1100x900 with 9 Axes>", "image/png": _png(MAX_FIGURE_WIDTH_PX, 900)}),
    _display({"text/markdown": "ratio 3/4, t: 0/1000 is not a bar; $x_t \\in \\mathbb{R}$"}),
]


FAULT_NAMES = {"widget repr": "widget's repr", "widget repr in html": "widget's repr in text/html",
               "live bar": "live progress bar", "bar at 0 as text": "stuck at 0", "stderr": "stderr",
               "path in stdout": "absolute path in stream stdout", "path in markdown": "absolute path in text/markdown",
               "home path in html": "absolute path in text/html", "mac path": "absolute path in text/plain",
               "windows path": "absolute path", "error": "an error was committed", "wide figure": "1101 pixels wide"}


@pytest.mark.parametrize("fault", FAULTS)
def test_output_check_catches_each_fault(fault):
    problems = output_problems(_nb(*CLEAN, FAULTS[fault]))
    assert len(problems) == 1 and problems[0].startswith("cell 2: "), problems
    assert FAULT_NAMES[fault] in problems[0], problems


def test_output_check_passes_what_a_reader_may_see():
    assert output_problems(_nb(*CLEAN)) == []


def test_png_size_reads_the_header_of_a_notebooks_png():
    assert png_size(_png(1101, 37)) == (1101, 37) and png_size("".join(_png(8, 9))) == (8, 9)
    assert png_size("iVBORw0KGgo=") is None and png_size("not base64!") is None


def _bar_state(model_id, left, value, total, right):
    ids = [f"{model_id}-{part}" for part in ("l", "p", "r")]
    return {
        model_id: {"model_name": "HBoxModel", "state": {"children": [f"IPY_MODEL_{i}" for i in ids]}},
        ids[0]: {"model_name": "HTMLModel", "state": {"value": left}},
        ids[1]: {"model_name": "FloatProgressModel", "state": {"value": value, "max": total}},
        ids[2]: {"model_name": "HTMLModel", "state": {"value": right}},
    }


def test_progress_bars_become_their_last_text():
    """What build_notebooks does after executing: each tqdm widget's output becomes the bar's final text."""
    bar = lambda model_id, desc, n: _display({"text/plain": f"{desc}:   0%|          | 0/{n} [00:00<?, ?it/s]",  # noqa: E731
                                              "application/vnd.jupyter.widget-view+json": {**VIEW, "model_id": model_id}})
    slider = CLEAN[0]
    nb = _nb(bar("done", "DDPM", 1000), _stream("sampled\n"), bar("half", "train", 3000), slider, bar("lost", "DDIM", 50))
    state = {**_bar_state("done", "DDPM:\u2007100%", 1000.0, 1000.0, "\u20071000/1000\u2007[00:52&lt;00:00,\u200719.1it/s]"),
             **_bar_state("half", "train:\u2007\u200745%", 1350.0, 3000.0, "\u20071350/3000\u2007[02:00&lt;02:27]")}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2,
                                                                             "version_minor": 0}}
    assert output_problems(nb) != []                               # as executed: three live bars
    assert finish_progress_bars(nb) == 3
    texts = [o.data["text/plain"] if "data" in o else o.text for o in nb.cells[1].outputs]
    assert texts == ["DDPM: 100%|██████████| 1000/1000 [00:52<00:00, 19.1it/s]", "sampled\n",
                     "train:  45%|████      | 1350/3000 [02:00<02:27]",
                     slider["data"]["text/plain"]]                  # the bar without state is gone, the slider kept
    assert "application/vnd.jupyter.widget-view+json" in nb.cells[1].outputs[3].data
    assert output_problems(nb) == []


CARDS = sorted([*(ROOT / "diffusion_lib" / "weights").glob("*.md"), *(ROOT / "benchmarks").glob("*.md")])


@pytest.mark.parametrize("card", CARDS, ids=[str(c.relative_to(ROOT)) for c in CARDS])
def test_cards_and_benchmark_notes_name_no_absolute_path(card):
    """Notebook 08 renders unet_cond.md; the others are linked from the notebooks and the README."""
    lines = [f"{i}: {line.strip()}" for i, line in enumerate(card.read_text().splitlines(), 1) if ABSOLUTE_PATH.search(line)]
    assert lines == [], f"{card.name} names an absolute path of some machine (write a relative one):\n" + "\n".join(lines)
