"""Every worked solution passes its notebook's check, and a wrong answer fails it.

solutions/NN_name.py holds the worked solution and names it ANSWER (what the notebook's check cell
passes to dl.exercises.check). diffusion_lib/exercises/nbNN.py holds check(answer) and WRONG_EXAMPLE,
a plausible mistake the check must catch.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

from diffusion_lib import exercises

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"solution_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def solution(request):
    return request.param.stem[:2], _load(request.param)


def test_solution_passes(solution):
    number, module = solution
    assert hasattr(module, "ANSWER"), f"solutions/{number}_*.py must name its worked answer ANSWER"
    exercises.get_check(number)(module.ANSWER)
    assert exercises.check(number, module.ANSWER) is True


def test_wrong_answer_fails(solution):
    number, _ = solution
    wrong = importlib.import_module(f"diffusion_lib.exercises.nb{number}").WRONG_EXAMPLE
    with pytest.raises(AssertionError):
        exercises.get_check(number)(wrong)


def test_placeholder_counts_as_not_attempted(solution):
    number, _ = solution

    def placeholder(*args, **kwargs):
        raise NotImplementedError

    assert exercises.check(number, placeholder) is False
