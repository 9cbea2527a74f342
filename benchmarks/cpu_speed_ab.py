"""CPU speed of two versions of the library, side by side: training steps and sampling steps, timed alternately.

    git archive <commit> | tar -x -C /tmp/base                     # the other version, e.g. main before a change
    OMP_NUM_THREADS=1 python benchmarks/cpu_speed_ab.py /tmp/base . --rounds 5

Each round runs one fresh Python process per version, in turn (A, B, A, B, ...), each importing diffusion_lib from
its folder and timing, after a warm-up, on the CPU with the same thread count:

    train   dl.train of the U-Net (base 16) on 64 random images in [-1, 1], batches of 32, fp32 and bf16, 20 steps
            (seconds per step, from the loop's callback, the first 5 steps left out)
    ddim    a 20-step DDIM chain of the U-Net (base 32, the shipped size) on 16 images (seconds per step)
    ddpm    the first 50 steps of a DDPM chain, same network and images (seconds per step)
    tiny    all 1000 steps of DDPM and of DDIM with a network that costs next to nothing (one 3x3 convolution):
            the library's own cost per step

With --clock cpu the times are the CPU time of the timing thread (one torch thread only), not the wall clock.
The medians and the minima over the rounds are printed with their ratios B / A (above 1: B is slower), with the
machine and the load. On a busy machine the minimum (each version's least disturbed run) is the steadier figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import json, sys, time
import torch
import diffusion_lib as dl
from diffusion_lib import samplers
torch.set_num_threads(int(sys.argv[1]))
clock = time.thread_time if sys.argv[2] == "cpu" else time.perf_counter
out = {}
images = torch.rand((64, 1, 28, 28), generator=torch.Generator().manual_seed(0)) * 2 - 1
for precision in ("fp32", "bf16"):
    marks = []
    config = dl.TrainConfig(backbone="unet", backbone_kwargs={"base": 16}, steps=20, batch_size=32,
                            precision=precision, checkpoint_every=1000)
    dl.train(config, images, progress=False, callback=lambda trainer: marks.append(clock()))
    out["train " + precision] = (marks[-1] - marks[4]) / (len(marks) - 5)
torch.manual_seed(0)
model = dl.UNet(base=32).eval()
schedule = dl.make_schedule()
x_T = torch.randn((16, 1, 28, 28), generator=torch.Generator().manual_seed(1))
samplers.final(samplers.ddim_sample_progressive(model, x_T, schedule, 5))          # warm-up
start = clock()
samplers.final(samplers.ddim_sample_progressive(model, x_T, schedule, 20))
out["ddim"] = (clock() - start) / 20
steps = samplers.ddpm_sample_progressive(model, x_T, schedule, generator=torch.Generator().manual_seed(2))
start = clock()
for _, _ in zip(range(50), steps):
    pass
out["ddpm"] = (clock() - start) / 50
# the library's own cost per step: a network that costs next to nothing (one 3x3 convolution, 16 images)
conv = torch.nn.Conv2d(1, 1, 3, padding=1)
tiny = lambda x, t: conv(x)
for name, make in (("ddpm step, tiny net", lambda: samplers.ddpm_sample_progressive(
        tiny, x_T, schedule, generator=torch.Generator().manual_seed(3))),
        ("ddim step, tiny net", lambda: samplers.ddim_sample_progressive(tiny, x_T, schedule, 1000))):
    with torch.no_grad():
        samplers.final(make())                                                      # warm-up
        start = clock()
        samplers.final(make())
    out[name] = (clock() - start) / 1000
print(json.dumps(out))
'''


def run(folder: Path, threads: int, clock: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(folder.resolve()), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(threads), clock], env=env, cwd=folder, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_line() -> str:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    extras = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(extras) or 'no AVX512-BF16 / AMX'}), {os.cpu_count()} logical cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="folder of version A (its diffusion_lib/ is imported)")
    parser.add_argument("b", type=Path, help="folder of version B")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the thread's CPU time (time.thread_time, one torch thread), which other jobs on a "
                             "busy machine disturb far less than the wall clock")
    args = parser.parse_args()
    print(f"machine: {cpu_line()}; torch threads {args.threads}; clock: {args.clock}; load before: {os.getloadavg()}")
    results = {"A": [], "B": []}
    for r in range(args.rounds):
        for name, folder in (("A", args.a), ("B", args.b)):
            results[name].append(run(folder, args.threads, args.clock))
            print(f"round {r + 1} {name}: " + ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in results[name][-1].items()),
                  flush=True)
    print(f"load after: {os.getloadavg()}")
    print(f"\n{'per step, ms (' + str(args.rounds) + ' rounds)':<26}{'A median':>10}{'B median':>10}{'B / A':>7}"
          f"{'A min':>9}{'B min':>9}{'B / A':>7}")
    for key in results["A"][0]:
        a = [1000 * r[key] for r in results["A"]]
        b = [1000 * r[key] for r in results["B"]]
        print(f"{key:<26}{statistics.median(a):>10.2f}{statistics.median(b):>10.2f}"
              f"{statistics.median(b) / statistics.median(a):>7.3f}{min(a):>9.2f}{min(b):>9.2f}{min(b) / min(a):>7.3f}")


if __name__ == "__main__":
    main()
