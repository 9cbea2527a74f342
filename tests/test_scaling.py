"""The scaling grid's numbers (diffusion_lib.measure.scaling) on records whose answers are known in closed form."""
from __future__ import annotations

import math

import pytest

from diffusion_lib.measure.scaling import frontier, loglog_slope, loss_at, loss_gap, runs_of


def power_law_run(arch: str, a: float, b: float, flops=(1e6, 1e7, 1e8, 1e9), parameters: int = 1000) -> dict:
    """A run whose loss is exactly L = a C^(-b) at each compute C."""
    return {"architecture": arch, "parameters": parameters,
            "points": [{"flops": c, "test_loss": a * c ** (-b)} for c in flops]}


def test_loglog_slope_of_a_power_law_is_its_exponent():
    run = power_law_run("mlp", 3.0, 0.25)
    assert loglog_slope(run["points"]) == pytest.approx(-0.25, abs=1e-12)
    with pytest.raises(ValueError, match="two points"):
        loglog_slope(run["points"][:1])


def test_frontier_is_the_lower_envelope_across_sizes():
    small = power_law_run("dit", 2.0, 0.1, flops=(1e6, 1e7, 1e8), parameters=10)
    big = {"architecture": "dit", "parameters": 100,
           "points": [{"flops": 1e7, "test_loss": 5.0}, {"flops": 1e8, "test_loss": 0.2}, {"flops": 1e9, "test_loss": 0.15}]}
    record = {"runs": {"big": big, "small": small, "other": power_law_run("mlp", 1.0, 0.1)}}
    assert list(runs_of(record, "dit")) == ["small", "big"]                 # smallest first
    env = frontier(record, "dit")
    assert [p["flops"] for p in env] == [1e6, 1e7, 1e8, 1e9]                # big's 5.0 at 1e7 is above small's
    assert [p["test_loss"] for p in env][2:] == [0.2, 0.15]
    assert all(a["test_loss"] > b["test_loss"] for a, b in zip(env, env[1:]))


def test_loss_at_interpolates_in_log_log():
    points = power_law_run("mlp", 3.0, 0.25)["points"]
    assert loss_at(points, 10 ** 7.5) == pytest.approx(3.0 * 10 ** (-7.5 * 0.25), rel=1e-12)   # exact on a power law
    assert loss_at(points, 1e10) == points[-1]["test_loss"]               # flat after the last point
    with pytest.raises(ValueError, match="below"):
        loss_at(points, 1e5)


def test_parallel_curves_keep_a_constant_gap_and_crossing_ones_change_sign():
    parallel = {"runs": {"a": power_law_run("unet", 1.0, 0.2), "b": power_law_run("mlp", 2.0, 0.2)}}
    gap = loss_gap(parallel, "unet", "mlp")
    assert len(gap) == 9 and all(g == pytest.approx(-math.log10(2.0)) for _, g in gap)
    crossing = {"runs": {"a": power_law_run("unet", 30.0, 0.3), "b": power_law_run("dit", 1.0, 0.1)}}
    signs = [g > 0 for _, g in loss_gap(crossing, "unet", "dit")]
    assert signs[0] and not signs[-1]                    # the steeper curve starts above and ends below
    disjoint = {"runs": {"a": power_law_run("unet", 1.0, 0.2, flops=(1, 10)), "b": power_law_run("dit", 1.0, 0.2)}}
    assert loss_gap(disjoint, "unet", "dit") == []
