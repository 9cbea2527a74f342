"""Automatic checks for the notebooks' exercises.

Each notebook ends with an exercise: the learner writes a function in the notebook, then a check
cell runs `check("01", my_function)`. The checks of notebook NN live in `diffusion_lib/exercises/nbNN.py`
as a function `check(answer)` that raises AssertionError with a helpful message when the answer is
wrong. Worked solutions are in the repository's `solutions/` folder, out of the learner's way;
the test suite runs every check against its solution (and against a wrong answer).

Some notebooks also hold an open experiment: the learner measures something and the check looks at the
shape or the direction of the measured numbers, not at exact values. Its name is the notebook's number,
a dash and a word, `check("05-schedules", measured)`, and its check is `check_schedules(measured)` in
nbNN.py. It raises NotImplementedError while the measurement is still a placeholder (None), and may
return a sentence that sums up what was measured.
"""
from __future__ import annotations

import importlib

import torch


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


def call_answer(answer, args: tuple, where: str, hint: str, shape, shape_hint: str = "") -> torch.Tensor:
    """answer(*args), checked to be a tensor of `shape`. Any error but NotImplementedError (the placeholder) becomes
    an AssertionError that says where it happened (`where`, e.g. "(at t = 10)") and gives `hint`."""
    try:
        got = answer(*args)
    except NotImplementedError:
        raise
    except Exception as e:
        raise AssertionError(f"your function raised {type(e).__name__}: {e} {where}. Hint: {hint}") from e
    assert isinstance(got, torch.Tensor), f"return a torch.Tensor, got {type(got).__name__}"
    assert tuple(got.shape) == tuple(shape), (f"expected shape {tuple(shape)}, got {tuple(got.shape)} {where}"
                                              + (f". Hint: {shape_hint}" if shape_hint else ""))
    return got


def known_mistake(got: torch.Tensor, candidates, **tolerance) -> str | None:
    """The hint of the first (wrong answer, hint) in candidates that `got` matches (torch.allclose), else None."""
    return next((hint for wrong, hint in candidates if torch.allclose(got, wrong, **tolerance)), None)


def get_check(name: str):
    """The check of notebook "01" .. "09", or of one of its experiments, e.g. "05-schedules"."""
    notebook, _, experiment = name.partition("-")
    try:
        module = importlib.import_module(f"diffusion_lib.exercises.nb{notebook}")
    except ModuleNotFoundError:
        raise ValueError(f"no exercise checks for notebook {notebook!r}") from None
    attribute = f"check_{experiment.replace('-', '_')}" if experiment else "check"
    if not hasattr(module, attribute):
        known = sorted(f"{notebook}-{a[len('check_'):].replace('_', '-')}"
                       for a in dir(module) if a.startswith("check_"))
        raise ValueError(f"notebook {notebook} has no check named {name!r}; its experiments: {known or 'none'}")
    return getattr(module, attribute)


def check(name: str, answer) -> bool:
    """Run the check `name` ("01", or an experiment's "05-schedules") on the learner's answer; print the verdict.

    Returns True when correct, False when the exercise was not attempted yet (so the notebook still
    runs top to bottom), and raises AssertionError with a hint when the answer is wrong.
    """
    notebook, _, experiment = name.partition("-")
    try:
        summary = get_check(name)(answer)
    except NotImplementedError:
        if experiment:
            print(f"Experiment not attempted yet: fill in the placeholders above with your measurements. "
                  f"A worked version is in solutions/{notebook}_*.py.")
        else:
            print(f"Exercise not attempted yet: replace the `raise NotImplementedError` above with your answer. "
                  f"A worked solution is in solutions/{notebook}_*.py.")
        return False
    print("Correct!" if not experiment else "Your measurements have the expected shape.")
    if isinstance(summary, str):
        print(summary)
    return True
