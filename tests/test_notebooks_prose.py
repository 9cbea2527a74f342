"""What every notebook must say to a learner who reads it alone (checked on the committed .ipynb, nothing is run).

- after the two header cells, a markdown cell with what you will learn, what you need first and the run time;
- every "**Question.**" prompt followed, in the same cell, by its folded answer (<details><summary>Answer...);
- at the end, a summary and what the next notebook does;
- one index convention in the prose: no x_{-1} or alpha_bar_{-1}, and no undefined "seed blog" / "seed report".
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
QUESTION = re.compile(r"\*\*Questions?\.\*\*")
ANSWER = "<details><summary>Answer"


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request):
    return request.param.stem, nbformat.read(request.param, as_version=4)


def _markdown(nb):
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]


def test_there_are_notebooks():
    assert NOTEBOOKS


def test_objectives_prerequisites_and_run_time_at_the_top(notebook):
    stem, nb = notebook
    cell = nb.cells[2] if len(nb.cells) > 2 else None
    assert cell is not None and cell.cell_type == "markdown", (
        f"{stem}: the cell after the Colab cell must be markdown: what you will learn, what you need first, run time")
    for part in ("**What you will learn**", "**What you need first:**", "**Run time:**"):
        assert part in cell.source, f"{stem}: its first cell after the header cells lacks {part!r}"
    objectives = [line for line in cell.source.splitlines() if line.startswith("- ")]
    assert 2 <= len(objectives) <= 4, f"{stem}: state 2 to 4 learning objectives, found {len(objectives)}"


def test_every_question_has_its_answer_below_it(notebook):
    stem, nb = notebook
    questions = 0
    for i, source in _markdown(nb):
        for match in QUESTION.finditer(source):
            questions += 1
            assert ANSWER in source[match.end():], (
                f"{stem}, cell {i + 1}: a question without its answer below it in the same cell "
                f"({source[match.start():match.start() + 70]!r}...): add <details><summary>Answer</summary> ... </details>")
            assert "</details>" in source[source.index(ANSWER, match.end()):], f"{stem}, cell {i + 1}: unclosed <details>"
    assert questions >= 3, f"{stem}: only {questions} questions; every notebook asks at least three"


def test_summary_and_next_at_the_end(notebook):
    stem, nb = notebook
    last = _markdown(nb)[-1][1]
    assert last.lstrip().startswith("## Summary") and "**Next:**" in last, (
        f"{stem}: the last markdown cell must be '## Summary' with a '**Next:**' line")


def test_one_index_convention_and_no_undefined_sources(notebook):
    stem, nb = notebook
    for i, source in _markdown(nb):
        for bad in ("x_{-1}", "alpha_{-1}", "x_{T-1}", "alpha_{T-1}"):
            assert bad not in source, (f"{stem}, cell {i + 1}: {bad!r} in the prose; equations count t = 1..T "
                                       "(notebook 01's map), so the clean image is x_0 and the noise x_T")
        for undefined in ("seed blog", "seed report"):
            assert undefined not in source.lower(), (
                f"{stem}, cell {i + 1}: {undefined!r} is not defined for a learner: name the work")
