"""Two versions of the library in one process, alternated: the U-Net's forward pass and a 10-step DDIM chain.

    python benchmarks/inprocess_ab.py <folder A> <folder B>     # each folder holds a diffusion_lib/

Both versions are imported into the same process (the first one's modules are renamed out of the way), and each
round times both, in turn, with the order swapped every round, over 16 rounds: the U-Net (base 32) forward pass on
16 images and a 10-step DDIM chain, in CPU time of this thread (one torch thread). Prints medians and minima.
Give the same folder twice to see the spread of the machine.
"""
import sys, time, importlib, statistics
import torch
torch.set_num_threads(1)
def load(path):
    sys.path.insert(0, path)
    lib = importlib.import_module("diffusion_lib")
    mods = {k: v for k, v in sys.modules.items() if k == "diffusion_lib" or k.startswith("diffusion_lib.")}
    for k in mods: del sys.modules[k]
    sys.path.remove(path)
    return lib
import argparse
from pathlib import Path
parser = argparse.ArgumentParser(description="two versions of diffusion_lib in one process, alternated")
parser.add_argument("a", type=Path, help="folder holding version A's diffusion_lib/")
parser.add_argument("b", type=Path, help="folder holding version B's diffusion_lib/")
args = parser.parse_args()
for folder in (args.a, args.b):
    if not (folder / "diffusion_lib" / "__init__.py").is_file():
        parser.error(f"{folder} holds no diffusion_lib/ package; give the folder that contains it")
A = load(str(args.a.resolve())); B = load(str(args.b.resolve()))
print(A.__file__, B.__file__)
x_T = torch.randn((16, 1, 28, 28), generator=torch.Generator().manual_seed(1))
res = {"A": {"ddim": [], "fwd": []}, "B": {"ddim": [], "fwd": []}}
nets = {}
for name, lib in (("A", A), ("B", B)):
    torch.manual_seed(0); nets[name] = (lib, lib.UNet(base=32).eval(), lib.make_schedule())
clock = time.thread_time
for r in range(16):
    for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
        lib, model, sched = nets[name]
        with torch.no_grad():
            t = torch.full((16,), 500, dtype=torch.long)
            model(x_T, t)
            s = clock()
            for _ in range(10): model(x_T, t)
            res[name]["fwd"].append((clock() - s) / 10)
        s = clock()
        lib.samplers.final(lib.samplers.ddim_sample_progressive(model, x_T, sched, 10))
        res[name]["ddim"].append((clock() - s) / 10)
for k in ("fwd", "ddim"):
    a, b = statistics.median(res["A"][k]), statistics.median(res["B"][k])
    print(k, "A %.2f ms  B %.2f ms  B/A %.3f   min A %.2f B %.2f" % (1000*a, 1000*b, b/a, 1000*min(res["A"][k]), 1000*min(res["B"][k])))
