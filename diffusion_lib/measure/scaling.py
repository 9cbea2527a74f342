"""The scaling grid of benchmarks/scaling.py: its record, and the numbers notebook 13 reads off its curves.

A run's points are (training compute C in FLOPs, held-out loss L). On log-log axes a power law L = a C^(-b) is a
straight line of slope -b; `loglog_slope` fits it by least squares on (log10 C, log10 L). Two architectures' curves
are parallel when their slopes are equal, and they cross when the sign of their gap changes over the compute range
they share (`loss_gap`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..pretrained import WEIGHTS_DIR

SCALING_JSON = WEIGHTS_DIR / "scaling.json"
ARCHITECTURES = ("mlp", "unet", "dit")
ARCHITECTURE_NAMES = {"mlp": "MLP (the blog's family)", "unet": "U-Net", "dit": "DiT (patch 4)"}


def load_scaling_results(path: str | Path = SCALING_JSON) -> dict:
    """The record that benchmarks/scaling.py wrote (diffusion_lib/weights/scaling.json)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no scaling results at {path}; run `python benchmarks/scaling.py` to make them")
    return json.loads(path.read_text())


def runs_of(record: dict, architecture: str) -> dict:
    """{run name: run} of one architecture, smallest first (by parameters)."""
    runs = {k: v for k, v in record["runs"].items() if v["architecture"] == architecture}
    return dict(sorted(runs.items(), key=lambda kv: kv[1]["parameters"]))


def loglog_slope(points) -> float:
    """Least-squares slope of log10(test_loss) against log10(flops) over points [{"flops", "test_loss"}, ...]."""
    xs = [math.log10(p["flops"]) for p in points]
    ys = [math.log10(p["test_loss"]) for p in points]
    if len(xs) < 2:
        raise ValueError("a slope needs at least two points")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def frontier(record: dict, architecture: str) -> list[dict]:
    """The compute-optimal frontier of one architecture: its points (all sizes) sorted by compute, keeping each point
    only if its loss is below every cheaper point's (the lower envelope of its curves)."""
    points = sorted((p for run in runs_of(record, architecture).values() for p in run["points"]),
                    key=lambda p: (p["flops"], p["test_loss"]))        # at equal compute, the lower loss first
    kept, best = [], float("inf")
    for p in points:
        if p["test_loss"] < best:
            kept.append(p)
            best = p["test_loss"]
    return kept


def loss_at(points, flops: float) -> float:
    """The loss of a lower envelope at `flops`: interpolated linearly in log-log between its points, and flat after its
    last point (more compute did not lower the loss further: the best loss so far stays the best)."""
    pts = sorted(points, key=lambda p: p["flops"])
    if flops < pts[0]["flops"] * (1 - 1e-9):
        raise ValueError(f"{flops:.3g} FLOPs is below the envelope's first point, {pts[0]['flops']:.3g}")
    if flops >= pts[-1]["flops"]:
        return pts[-1]["test_loss"]
    for a, b in zip(pts, pts[1:]):
        if a["flops"] <= flops <= b["flops"]:
            if b["flops"] == a["flops"]:
                return min(a["test_loss"], b["test_loss"])
            w = (math.log10(flops) - math.log10(a["flops"])) / (math.log10(b["flops"]) - math.log10(a["flops"]))
            return 10 ** ((1 - w) * math.log10(a["test_loss"]) + w * math.log10(b["test_loss"]))
    return pts[0]["test_loss"]


def compute_range(record: dict, architecture: str) -> tuple[float, float]:
    """The least and the most training compute among an architecture's points (all sizes)."""
    flops = [p["flops"] for run in runs_of(record, architecture).values() for p in run["points"]]
    return min(flops), max(flops)


def loss_gap(record: dict, first: str, second: str, samples: int = 9) -> list[tuple[float, float]]:
    """(flops, log10 L_first - log10 L_second) of the two lower envelopes at `samples` compute values spread evenly in
    log over the range both architectures' runs cover: a gap of constant sign means one curve lies below the other
    throughout; a change of sign, that they cross."""
    a, b = frontier(record, first), frontier(record, second)
    (lo_a, hi_a), (lo_b, hi_b) = compute_range(record, first), compute_range(record, second)
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    if lo >= hi:
        return []
    grid = [10 ** (math.log10(lo) + (math.log10(hi) - math.log10(lo)) * i / (samples - 1)) for i in range(samples)]
    grid[0], grid[-1] = lo, hi                                             # exactly the ends, not a rounding off them
    return [(c, math.log10(loss_at(a, c)) - math.log10(loss_at(b, c))) for c in grid]
