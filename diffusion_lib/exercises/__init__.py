"""Automatic checks for the notebooks' exercises.

Each notebook ends with an exercise: the learner writes a function in the notebook, then a check
cell runs `check("01", my_function)`. The checks of notebook NN live in `diffusion_lib/exercises/nbNN.py`
as a function `check(answer)` that raises AssertionError with a helpful message when the answer is
wrong. Worked solutions are in the repository's `solutions/` folder, out of the learner's way;
the test suite runs every check against its solution (and against a wrong answer).
"""
from __future__ import annotations

import importlib


class NotAttempted(Exception):
    """The exercise still holds its placeholder (it raises NotImplementedError)."""


def call_with_broadcast_hint(answer, *args, scales: str = "each image"):
    """answer(*args), turning torch's "must match the size" error into a hint about per-timestep scalars."""
    try:
        return answer(*args)
    except RuntimeError as e:
        if "must match the size" not in str(e):
            raise
        raise AssertionError(f"shapes do not broadcast ({e}). schedule.alpha_bar[t] has shape (B,): reshape it to "
                             f"(B, 1, 1, 1) so that it scales {scales}, e.g. "
                             "schedule.alpha_bar[t].reshape(-1, 1, 1, 1)") from None


def get_check(notebook: str):
    """The check function of notebook "01", "02", ... (diffusion_lib/exercises/nbNN.py)."""
    try:
        module = importlib.import_module(f"diffusion_lib.exercises.nb{notebook}")
    except ModuleNotFoundError:
        raise ValueError(f"no exercise checks for notebook {notebook!r}") from None
    return module.check


def check(notebook: str, answer) -> bool:
    """Run the check of `notebook` on the learner's answer; print the verdict.

    Returns True when correct, False when the exercise was not attempted yet (so the notebook still
    runs top to bottom), and raises AssertionError with a hint when the answer is wrong.
    """
    try:
        get_check(notebook)(answer)
    except NotImplementedError:
        print(f"Exercise not attempted yet: replace the `raise NotImplementedError` above with your answer. "
              f"A worked solution is in solutions/{notebook}_*.py.")
        return False
    print("Correct!")
    return True
