"""Every worked solution passes its notebook's check, and a wrong answer fails it.

solutions/NN_name.py holds the worked solution and names it ANSWER (what the notebook's check cell
passes to dl.exercises.check). diffusion_lib/exercises/nbNN.py holds check(answer) and WRONG_EXAMPLE,
a plausible mistake the check must catch.

A solution may also hold EXPERIMENTS, {"NN-name": a function of no argument that makes the measurement}: the
measurement must pass the check "NN-name" (check_name in nbNN.py), WRONG_NAME there must fail it, and the
placeholder None counts as not attempted.
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


EXPERIMENTS = [(name, make) for path in SOLUTIONS for name, make in getattr(_load(path), "EXPERIMENTS", {}).items()]


def test_every_experiment_check_has_a_solution():
    checks = {f"{p.stem[:2]}-{a[len('check_'):].replace('_', '-')}"
              for p in SOLUTIONS for a in dir(importlib.import_module(f"diffusion_lib.exercises.nb{p.stem[:2]}"))
              if a.startswith("check_")}
    assert checks == {name for name, _ in EXPERIMENTS}, ("every experiment check needs a worked measurement in "
                                                         "solutions/")
    assert len(checks) >= 3


@pytest.mark.parametrize("name, make", EXPERIMENTS, ids=[name for name, _ in EXPERIMENTS])
def test_experiment_solution_passes_and_wrong_fails(name, make):
    measured = make()
    exercises.get_check(name)(measured)
    assert exercises.check(name, measured) is True
    number, _, experiment = name.partition("-")
    wrong = getattr(importlib.import_module(f"diffusion_lib.exercises.nb{number}"),
                    f"WRONG_{experiment.replace('-', '_').upper()}")
    with pytest.raises(AssertionError):
        exercises.get_check(name)(wrong)


@pytest.mark.parametrize("name", [name for name, _ in EXPERIMENTS])
def test_experiment_placeholder_counts_as_not_attempted(name):
    assert exercises.check(name, None) is False


def test_unknown_check_names_the_known_ones():
    with pytest.raises(ValueError, match="01-zero-snr"):
        exercises.get_check("01-no-such-experiment")
