"""Static checks of every notebooks/NN_*.ipynb (nothing is executed here but the Colab cell).

The .py pair exists and matches; the notebook is valid nbformat, renders on GitHub (no widget
metadata without state) and was committed executed; it starts with the title badge and the Colab
cell; it holds no library code; it ends with an exercise check.
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


def test_colab_cell_installs_without_dependencies_in_colab(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(COLAB_CELL_SOURCE, {})
    assert len(calls) == 1
    (cmd,), kwargs = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"] and "--no-deps" in cmd
    assert any(arg.startswith(f"git+https://github.com/{GITHUB_SLUG}") for arg in cmd)
    assert not any(name in arg for arg in cmd for name in ("torch", "ipywidgets")), "never reinstall Colab's own packages"
    assert kwargs.get("check") is True
