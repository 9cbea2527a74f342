"""Which training recipe gives the best unguided digits per CPU-minute? A study, not a test.

    python benchmarks/recipes.py --minutes 10 --out ../runs/recipes                 # every row, 10 minutes each
    python benchmarks/recipes.py --minutes 10 --rows eps v v+min_snr --out ../runs/recipes
    python benchmarks/recipes.py --minutes 10 --rows flow eps --curve-every 2 --out ../runs/recipes  # with curves

Each row trains an unconditional U-Net from scratch for the same wall-clock budget (--minutes) on this
machine, one torch thread, then scores its EMA weights with the course's metric: 500 samples from seed 0,
DDIM 50 steps, eta 0 (as the model cards). The rows change one thing at a time from the base recipe
(`BASE`: the U-Net of base 16, batch 64, AdamW lr 3e-3 with 100 warm-up steps and a cosine decay, bf16
autocast, EMA 0.999, eps-prediction, no loss weighting, linear schedule): the objective (eps / x0 / v, and
flow matching, whose velocity network is scored with flow Euler 50 instead of DDIM), the weighting (min-SNR-5),
the schedule (linear / cosine), the width and the EMA decay.

The cosine decay needs a step count: each row's is its own throughput, measured on its first 50 steps,
times the budget, so every row ends its learning rate at about the budget's end; training stops at the
budget in any case (TrainConfig.max_minutes). A row that runs faster than its probe reaches its step count a
little before the budget's end: the table reports the minutes each row trained, the steps it reached, the
images per second, the mean loss of the last 100 steps (each objective's own loss: not comparable across
objectives), the scores, and the machine with its load average (other work on the machine slows every row).

--curve-every M also saves each row every M minutes of training (OUT/<row>/at_<M>min.pt) and scores those
snapshots after the row's training, for the curve of quality against training minutes. They are points of one
run, whose learning rate decays to the budget's end, not shorter budgets of their own.

Rows already in OUT/results.json with the same budget are kept and not run again, so an interrupted study resumes
row by row (a row interrupted mid-way starts again). Checkpoints go to OUT/<row>/last.pt. Two studies can share
one OUT, one per core with different --rows (as the README's table was made): each writes its rows under a lock.
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from evaluate import evaluate  # noqa: E402
from run import machine, table  # noqa: E402

from diffusion_lib.checkpoints import load_model  # noqa: E402
from diffusion_lib.data import load_mnist  # noqa: E402
from diffusion_lib.measure.metrics import load_classifier, mnist_test_features  # noqa: E402
from diffusion_lib.schedules import make_schedule  # noqa: E402
from diffusion_lib.training import TrainConfig, Trainer, train  # noqa: E402

BASE = dict(backbone="unet", backbone_kwargs={"base": 16}, batch_size=64, lr=3e-3, warmup_steps=100,
            lr_decay="cosine", ema_decay=0.999, precision="bf16", checkpoint_every=500)

# name -> what differs from BASE
ROWS = {
    "eps": {},
    "x0": {"objective": "x0"},
    "v": {"objective": "v"},
    "eps+min_snr": {"loss_weighting": "min_snr"},
    "v+min_snr": {"objective": "v", "loss_weighting": "min_snr"},
    "eps, cosine": {"schedule": "cosine"},
    "v, cosine": {"objective": "v", "schedule": "cosine"},
    "eps, EMA 0.9995": {"ema_decay": 0.9995},
    "eps, shipped width (1, 2, 8)": {"backbone_kwargs": {"base": 16, "mults": [1, 2, 8]}},
    "flow": {"objective": "flow"},      # scored with flow Euler 50 (a velocity network has no DDIM)
    "flow+min_snr": {"objective": "flow", "loss_weighting": "min_snr"},
    "flow, shipped width (1, 2, 8)": {"objective": "flow", "backbone_kwargs": {"base": 16, "mults": [1, 2, 8]}},
    "flow, EMA 0.998": {"objective": "flow", "ema_decay": 0.998},
    # class-conditional (label dropout 0.1), scored with the labels 0..9 in turn at w = 1: the conditional network
    # as it is, no guidance (w = 0, its unconditional mode, is scored too)
    "eps, conditional (w = 1)": {"backbone_kwargs": {"base": 16, "num_classes": 10}},
    "flow, conditional (w = 1)": {"objective": "flow", "backbone_kwargs": {"base": 16, "num_classes": 10}},
    "flow, conditional, width (1, 2, 8) (w = 1)": {"objective": "flow",
                                                   "backbone_kwargs": {"base": 16, "mults": [1, 2, 8], "num_classes": 10}},
}


def config_for(name: str, steps: int, minutes: float) -> TrainConfig:
    return TrainConfig(**{**BASE, **ROWS[name], "steps": steps, "max_minutes": minutes})


def steps_per_second(name: str, images: torch.Tensor, labels: torch.Tensor, probe_steps: int = 50) -> float:
    """This row's training speed on this machine now: optimizer steps per second over probe_steps steps
    (after 5 warm-up steps), in a throwaway Trainer."""
    config = config_for(name, steps=10**6, minutes=1.0)
    trainer = Trainer(config)

    def step():
        idx = trainer.batch_indices(images.shape[0])
        trainer.train_step(images[idx], labels[idx] if conditional(config) else None)

    for _ in range(5):
        step()
    start = time.monotonic()
    for _ in range(probe_steps):
        step()
    return probe_steps / (time.monotonic() - start)


class Snapshots:
    """A train() callback that saves the run every `every` minutes of wall time (FOLDER/at_<m>min.pt), for the
    curve of quality against training minutes. The clock starts when the callback is made, just before train()."""

    def __init__(self, folder: Path, every: float | None):
        self.folder, self.every, self.start, self.saved = folder, every, time.monotonic(), []

    def __call__(self, trainer: Trainer) -> None:
        mark = self.every * (len(self.saved) + 1) if self.every else None
        if mark is not None and time.monotonic() - self.start >= 60 * mark:
            self.saved.append((mark, trainer.step, trainer.save(self.folder / f"at_{mark:g}min.pt")))


def conditional(config: TrainConfig) -> bool:
    return "num_classes" in config.backbone_kwargs


def score(path: Path, config: TrainConfig, args, classifier, reference, w: float = 1.0, clip_x0: bool = False) -> dict:
    """The course's metric on the EMA weights in `path`: n samples from seed 0 with DDIM 50 (eta 0), or flow
    Euler 50 for a velocity network (the same 50 network evaluations); a conditional network draws the labels
    0..9 in turn at guidance weight w (1: the conditional network, no guidance). clip_x0: DDIM steps from the
    implied clean image clipped to [-1, 1] (samplers.clipped_x0_eps_model)."""
    scores = evaluate(load_model(path), make_schedule(config.schedule, config.T), classifier, reference, n=args.n,
                      steps=50, sampler="flow-euler" if config.objective == "flow" else "ddim",
                      w=w if conditional(config) else None, clip_x0=clip_x0)
    return {k: scores[k] for k in ("n", "confident_share", "frechet_distance", "effective_classes", "guided_accuracy")
            if k in scores}


def run_row(name: str, args, images, labels, classifier, reference) -> dict:
    rate = steps_per_second(name, images, labels)
    steps = max(200, int(rate * 60 * args.minutes))
    config = config_for(name, steps, args.minutes)
    out = Path(args.out) / folder_name(name)
    snapshots = Snapshots(out, args.curve_every)
    start = time.monotonic()
    result = train(config, images, labels if conditional(config) else None, out_dir=out, resume=False, progress=False,
                   callback=snapshots)
    minutes = (time.monotonic() - start) / 60
    losses = result.history["loss"][-100:]
    row = {"row": name, "changes": ROWS[name], "config": dataclasses.asdict(config), "probe_steps_per_s": round(rate, 2),
           "steps": result.step, "train_minutes": round(minutes, 2),
           "images_per_s": round(result.step * config.batch_size / (60 * minutes), 1),
           "loss_last_100": round(sum(losses) / len(losses), 5), "load_average": os.getloadavg()}
    final_scores = score(out / "last.pt", config, args, classifier, reference)
    row.update(final_scores)
    if conditional(config):
        row["at_w0"] = score(out / "last.pt", config, args, classifier, reference, w=0.0)
    row["curve"] = [{"minutes": mark, "steps": step, **score(path, config, args, classifier, reference)}
                    for mark, step, path in snapshots.saved if mark < args.minutes]
    row["curve"].append({"minutes": round(minutes, 2), "steps": result.step,
                         **final_scores})
    return row


def rescore_clipped(args, results_path: Path, header: dict, classifier, reference) -> int:
    """--clip-x0: each DDPM-family row of --rows already trained for --minutes, scored again with x0 clipping."""
    for name in args.rows:
        row = find_row(results_path, name, args.minutes)
        if row is None or row["config"]["objective"] == "flow":
            print(f"{name}: {'a flow row (no DDIM)' if row else 'not trained yet'}, skipped", flush=True)
            continue
        config = TrainConfig(**row["config"])
        row["clip_x0"] = score(Path(args.out) / folder_name(name) / "last.pt", config, args, classifier, reference,
                               clip_x0=True)
        save_row(results_path, row, header)
        print(f"{name}, x0 clipped: confident share {row['clip_x0']['confident_share']:.3f}, "
              f"Frechet {row['clip_x0']['frechet_distance']:.1f}", flush=True)
    print("\n" + markdown(read_results(results_path)))
    return 0


def folder_name(row: str) -> str:
    return row.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")


def save_row(results_path: Path, row: dict, header: dict) -> dict:
    """Add `row` to results.json (replacing a row of the same name and budget) and return the whole record.
    Under an exclusive lock, so that two studies writing the same file (one per core) keep each other's rows."""
    results_path.parent.mkdir(parents=True, exist_ok=True)
    with open(results_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = read_results(results_path)
        record.update(header)
        record["rows"] = [r for r in record["rows"] if (r["row"], budget(r)) != (row["row"], budget(row))] + [row]
        tmp = results_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, results_path)
    return record


def read_results(results_path: Path) -> dict:
    return json.loads(results_path.read_text()) if results_path.exists() else {"rows": []}


def budget(row: dict) -> float:
    return row["config"]["max_minutes"]


def find_row(results_path: Path, name: str, minutes: float) -> dict | None:
    """The row `name` trained for `minutes` in results.json, or None."""
    return next((r for r in read_results(results_path)["rows"] if r["row"] == name and budget(r) == minutes), None)


def markdown(record: dict) -> str:
    """The study's table (rows by budget, then in ROWS order) and, for the rows with snapshots, their curves."""
    order = {name: i for i, name in enumerate(ROWS)}
    rows = sorted(record["rows"], key=lambda r: (budget(r), order.get(r["row"], len(order))))
    n = rows[0]["n"] if rows else "?"
    text = table(["budget", "recipe (change from the base)", "minutes", "steps", "images/s", "loss (last 100)",
                  "confident share", f"Fréchet distance (n = {n})"],
                 [[f"{budget(r):g} min", r["row"], f"{r['train_minutes']:.1f}", f"{r['steps']:,}", f"{r['images_per_s']:.0f}",
                   f"{r['loss_last_100']:.4f}", f"{r['confident_share']:.3f}", f"{r['frechet_distance']:.1f}"]
                  for r in rows])
    for r in rows:
        if "clip_x0" in r:
            text += (f"\n\n{r['row']}, {budget(r):g} min, DDIM 50 stepping from the clean image clipped to [-1, 1]: "
                     f"confident share {r['clip_x0']['confident_share']:.3f}, "
                     f"Fréchet distance {r['clip_x0']['frechet_distance']:.1f}.")
        if "at_w0" in r:
            text += (f"\n\n{r['row']}, {budget(r):g} min: guided accuracy {r['guided_accuracy']:.3f} at w = 1; at w = 0 "
                     f"(the same network's unconditional mode) confident share {r['at_w0']['confident_share']:.3f}, "
                     f"Fréchet distance {r['at_w0']['frechet_distance']:.1f}.")
    curves = [r for r in rows if len(r.get("curve", [])) > 1]
    if curves:
        text += "\n\nConfident share (Fréchet distance) against training minutes:\n\n" + table(
            ["budget", "recipe"] + [f"point {i + 1}" for i in range(max(len(r["curve"]) for r in curves))],
            [[f"{budget(r):g} min", r["row"]] + [f"{c['minutes']:g} min, {c['steps']:,} steps: "
                                                 f"{c['confident_share']:.3f} ({c['frechet_distance']:.1f})"
                                                 for c in r["curve"]] for r in curves])
    return text


def build_parser():
    from diffusion_lib.cli import MAX_IMAGES, Parser, integer, number
    p = Parser(prog="python benchmarks/recipes.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=number(0, 24 * 60, lower_open=True), default=10.0,
                   help="training wall time of every row, in (0, 1440] (default 10)")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), metavar="ROW",
                   help=f"one or more of: {', '.join(ROWS)} (default: all)")
    p.add_argument("--n", type=integer(1, MAX_IMAGES), default=500,
                   help=f"samples scored per row, in [1, {MAX_IMAGES}] (default 500)")
    p.add_argument("--curve-every", type=number(0, lower_open=True), default=None, metavar="MINUTES",
                   help="also save each row every MINUTES of training, > 0 and less than --minutes, and score those "
                        "snapshots (the curve)")
    p.add_argument("--clip-x0", action="store_true",
                   help="train nothing: score the DDPM-family rows already in OUT again with DDIM 50 stepping from the "
                        "clean image clipped to [-1, 1], and add those scores to their rows")
    p.add_argument("--out", required=True, metavar="FOLDER",
                   help="folder for the checkpoints and results.json (outside the repository; made if missing)")
    return p


def check_options(args) -> Path:
    """Every option against the others and the output folder, before any work: a UsageError for the first bad one.
    Returns the results file."""
    from diffusion_lib.cli import UsageError, check_out_folder
    if args.curve_every is not None and args.curve_every >= args.minutes:
        raise UsageError(f"--curve-every {args.curve_every:g} is not less than --minutes {args.minutes:g}, so no "
                         "snapshot would be taken before the end; give a smaller --curve-every or drop it")
    if args.clip_x0 and all(ROWS[name].get("objective") == "flow" for name in args.rows):
        raise UsageError("--clip-x0 rescores the DDPM-family rows (eps, x0, v), and every row given is a flow row "
                         "(a velocity has no clipped DDIM); give DDPM-family --rows")
    if args.clip_x0 and args.curve_every is not None:
        raise UsageError("--curve-every applies to training, and --clip-x0 trains nothing; drop one of them")
    out = check_out_folder(args.out)
    results = out / "results.json"
    if results.exists():
        try:
            read_results(results)
        except (ValueError, OSError) as e:
            raise UsageError(f"{results} cannot be read ({e}); move it away or choose another --out") from None
    return results


def main(argv=None) -> int:
    from diffusion_lib.cli import UsageError, _message
    try:
        args = build_parser().parse_args(argv)
        results_path = check_options(args)
    except (UsageError, ValueError, OSError) as e:
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    command = "python benchmarks/recipes.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = {"base": BASE, "machine": machine()}
    images, labels = load_mnist(train=True)
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    print(f"Machine: {machine()}\n{len(args.rows)} rows of {args.minutes:g} min; base recipe {BASE}", flush=True)
    if args.clip_x0:
        return rescore_clipped(args, results_path, header, classifier, reference)
    for name in args.rows:
        if find_row(results_path, name, args.minutes) is not None:
            print(f"{name}: already in {results_path}, kept", flush=True)
            continue
        row = run_row(name, args, images, labels, classifier, reference)
        row["command"] = command
        save_row(results_path, row, header)
        print(f"{name}: {row['steps']} steps in {row['train_minutes']:.1f} min ({row['images_per_s']:.0f} img/s), "
              f"loss {row['loss_last_100']:.4f}, confident share {row['confident_share']:.3f}, "
              f"Frechet {row['frechet_distance']:.1f}", flush=True)
    print("\n" + markdown(read_results(results_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
