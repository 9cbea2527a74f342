"""benchmarks/solver_grids.py: one row per grid x sampler x budget, each labelled with its budget, from the model
card's starting noises, written atomically; bad numbers are refused with exit code 2."""
import json
from pathlib import Path

import pytest
import torch

from diffusion_lib.measure.sweeps import NFE_SAMPLERS, nfe_of, steps_for_nfe
from diffusion_lib.samplers import sample_noise

from _tiny import load_script, one_thread  # noqa: F401 (one_thread is autouse)

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "solver_grids.py"


@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT, "solver_grids_script")


def test_rows_carry_their_grid_and_budget_and_start_from_the_cards_noises(script, monkeypatch, tmp_path):
    seen = []

    def fake_sweep(model, x_T, schedule, nfes, classifier, reference, grid, progress):   # nfe_sweep's row order
        seen.append((grid, x_T.clone()))
        rows = [{"sampler": s, "steps": steps_for_nfe(s, n), "nfe": nfe_of(s, steps_for_nfe(s, n)), "seconds": 1.0,
                 "confident_share": 0.5, "frechet_distance": 10.0} for s in NFE_SAMPLERS for n in nfes]
        return rows, {}

    monkeypatch.setattr(script, "load_classifier", lambda: None)
    monkeypatch.setattr(script, "mnist_test_features", lambda classifier: None)
    monkeypatch.setattr(script, "nfe_sweep", fake_sweep)
    out = tmp_path / "grids.json"
    assert script.main(["--n", "3", "--nfe", "5", "10", "--json", str(out)]) == 0
    assert [grid for grid, _ in seen] == ["uniform", "karras"]
    expected = sample_noise(3, (1, 28, 28), generator=torch.Generator().manual_seed(0))   # evaluate.py's seed-0 noises
    assert all(torch.equal(x_T, expected) for _, x_T in seen)
    rows = json.loads(out.read_text())["scores"]
    assert [(r["budget"], r["sampler"], r["grid"], r["nfe"]) for r in rows] == [
        (5, "ddim", "uniform", 5), (5, "ddim", "karras", 5), (5, "heun", "uniform", 5), (5, "heun", "karras", 5),
        (10, "ddim", "uniform", 10), (10, "ddim", "karras", 10), (10, "heun", "uniform", 9), (10, "heun", "karras", 9)]
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("args", [["--n", "0"], ["--nfe", "5", "0"], ["--threads", "0"]])
def test_bad_numbers_exit_with_code_2(script, tmp_path, capsys, args):
    out = tmp_path / "grids.json"
    assert script.main([*args, "--json", str(out)]) == 2
    assert "must be integers >= 1" in capsys.readouterr().err and not out.exists()
