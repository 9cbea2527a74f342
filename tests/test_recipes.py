"""benchmarks/recipes.py's bookkeeping: two studies writing one results.json keep each other's rows, a snapshot is
saved once at each mark of the clock, and the table sorts rows by budget and then in the study's order."""
import json
from pathlib import Path

import pytest

from _tiny import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "recipes.py"


@pytest.fixture(scope="module")
def recipes():
    return load_script(SCRIPT, "recipes_script")


def row(name: str, minutes: float, share: float, curve=None) -> dict:
    return {"row": name, "config": {"max_minutes": minutes}, "train_minutes": minutes - 0.5, "steps": 1000, "images_per_s": 500.0,
            "loss_last_100": 0.05, "n": 500, "confident_share": share, "frechet_distance": 40.0,
            "curve": curve or [{"minutes": minutes, "steps": 1000, "confident_share": share, "frechet_distance": 40.0}]}


def test_save_row_keeps_the_other_studys_rows_and_replaces_a_rerun(recipes, tmp_path):
    path = tmp_path / "study" / "results.json"
    recipes.save_row(path, row("eps", 10, 0.5), {"machine": "A"})
    recipes.save_row(path, row("flow", 10, 0.7), {"machine": "A"})        # as if from the other process
    recipes.save_row(path, row("eps", 30, 0.8), {"machine": "A"})         # another budget: a row of its own
    record = recipes.save_row(path, row("eps", 10, 0.6), {"machine": "B"})  # the same row and budget, run again
    assert record == json.loads(path.read_text())
    assert sorted((r["row"], r["config"]["max_minutes"], r["confident_share"]) for r in record["rows"]) == [
        ("eps", 10, 0.6), ("eps", 30, 0.8), ("flow", 10, 0.7)]
    assert record["machine"] == "B"
    assert recipes.find_row(path, "eps", 30)["confident_share"] == 0.8 and recipes.find_row(path, "flow", 30) is None
    assert not path.with_suffix(".json.tmp").exists()


def test_snapshots_are_saved_once_at_each_mark(recipes, tmp_path, monkeypatch):
    clock = {"now": 1000.0}
    monkeypatch.setattr(recipes.time, "monotonic", lambda: clock["now"])

    class FakeTrainer:
        step = 0
        saved = []

        def save(self, path):
            self.saved.append(Path(path).name)
            return Path(path)

    trainer, snapshots = FakeTrainer(), recipes.Snapshots(tmp_path, every=2)
    for seconds, step in [(0, 1), (119, 2), (121, 3), (125, 4), (241, 5), (300, 6), (365, 7)]:
        clock["now"], trainer.step = 1000.0 + seconds, step
        snapshots(trainer)
    assert trainer.saved == ["at_2min.pt", "at_4min.pt", "at_6min.pt"]
    assert [(mark, step) for mark, step, _ in snapshots.saved] == [(2, 3), (4, 5), (6, 7)]
    off = recipes.Snapshots(tmp_path, every=None)
    off(trainer)
    assert off.saved == [] and len(trainer.saved) == 3


def test_table_sorts_by_budget_then_study_order_and_shows_curves(recipes):
    curve = [{"minutes": 2, "steps": 200, "confident_share": 0.1, "frechet_distance": 300.0},
             {"minutes": 10, "steps": 1000, "confident_share": 0.7, "frechet_distance": 40.0}]
    text = recipes.markdown({"rows": [row("flow", 30, 0.8), row("flow", 10, 0.7, curve), row("eps", 10, 0.5)]})
    table, curves = text.split("against training minutes")
    lines = [line for line in table.splitlines() if line.startswith("| ") and "min" in line.split("|")[1]]
    assert [(line.split("|")[1].strip(), line.split("|")[2].strip()) for line in lines] == [
        ("10 min", "eps"), ("10 min", "flow"), ("30 min", "flow")]
    assert "0.700" in lines[1] and "0.500" in lines[0] and "| 29.5 |" in lines[2]
    assert "2 min, 200 steps: 0.100 (300.0)" in curves and "10 min, 1,000 steps: 0.700 (40.0)" in curves
    assert "against training minutes" not in recipes.markdown({"rows": [row("eps", 10, 0.5)]})
    cond = {**row("flow, conditional (w = 1)", 10, 0.9), "guided_accuracy": 0.95,
            "at_w0": {"confident_share": 0.6, "frechet_distance": 120.0}}
    assert ("flow, conditional (w = 1), 10 min: guided accuracy 0.950 at w = 1; at w = 0 (the same network's "
            "unconditional mode) confident share 0.600, Fréchet distance 120.0.") in recipes.markdown({"rows": [cond]})
