"""What one step of a slider costs the kernel: CPU milliseconds to draw a live picture (LiveFigure) at a value it
has not shown yet, for the sliders of notebooks 01 and 10, on inputs of the notebooks' sizes.

    python benchmarks/slider_frames.py                 # the library found on PYTHONPATH
    PYTHONPATH=/path/to/other/checkout python benchmarks/slider_frames.py   # another version of it

CPU time (time.process_time) of this process, not wall time: on a machine shared with other jobs the wall time
grows with the load, the CPU time much less. The sliders are stepped in turn, one value each round, so every one
sees the same load. A browser adds the transfer and the decoding of the PNG on top (tests/test_browser.py times a
key press to the new picture in JupyterLab).
"""
from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

import diffusion_lib as dl  # noqa: E402
from diffusion_lib.samplers import Trajectory  # noqa: E402

STEPS = 60


def sliders() -> dict:
    """name -> (the live picture, its first value): the sliders of notebooks 01 and 10, on seeded inputs."""
    g = torch.Generator().manual_seed(0)
    schedules = [dl.make_schedule("linear"), dl.make_schedule("cosine")]
    linear = schedules[0]
    mixture = dl.toy.ring_mixture()
    x0 = dl.toy.mixture_sample(mixture, 400, g)
    eps = torch.randn(x0.shape, generator=g)
    grid = dl.toy.grid_points(1.4, 15)
    exact = {t: dl.toy.exact_score(mixture, grid, t, linear) for t in range(100, 100 + STEPS + 1)}
    fields = {"exact": exact, "learned": {t: 1.1 * f for t, f in exact.items()},
              "learned - exact": {t: 0.1 * f for t, f in exact.items()}}
    # four chains of 100 recorded steps (notebook 10 keeps every tenth of 1000), 8 points shown
    paths = torch.randn(1, 50, 2, 1, 1, generator=g) + 0.05 * torch.randn(101, 50, 2, 1, 1, generator=g).cumsum(0)
    chains = {n: Trajectory(list(range(999, -1, -10)), paths[:100], paths[:100], paths[100])
              for n in ("DDIM, exact eps", "DDIM, the network", "DDPM, seed 1", "DDPM, seed 2")}
    return {
        "01 schedules": (dl.plotting.schedules_slider(schedules), 100),
        "10 noising": (dl.plotting.toy_noising_slider(
            mixture, linear, lambda t: dl.q_sample(x0, torch.full((400,), t), linear, eps)), 100),
        "10 score fields": (dl.plotting.field_slider(grid, fields, mixture, linear), 100),
        "10 trajectories": (dl.plotting.toy_trajectory_slider(chains, mixture, linear, trail=10, show=8), 20),
    }


def main() -> None:
    live = sliders()
    cpu = {name: [] for name in live}
    for picture, start in live.values():
        picture(start)                                      # the full first draw, not timed
    for k in range(1, STEPS + 1):
        for name, (picture, start) in live.items():
            began = time.process_time()
            picture(start + k)
            cpu[name].append(time.process_time() - began)
    print(f"CPU ms to draw a new value, median of {STEPS} (load average {os.getloadavg()[0]:.1f}; "
          f"{dl.inspection.machine_description(torch.device('cpu'))}):")
    for name, seconds in cpu.items():
        print(f"  {name:<16} {1000 * statistics.median(seconds):6.1f} ms")


if __name__ == "__main__":
    main()
