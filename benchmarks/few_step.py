"""Few-step students of the shipped flow U-Nets (notebook 12): reflow's pairs and the reflow student.

    # 1. the pairs: N noises (seed 1, drawn on the CPU) and the teacher's ODE end from each
    python benchmarks/few_step.py pairs --teacher unet_flow_cond --n 30000 --heun-steps 10 --out runs/nb12/pairs.pt
    # 2. the student: flow matching on those pairs, from the teacher's weights (an unconditional network)
    python benchmarks/few_step.py reflow --pairs runs/nb12/pairs.pt --steps 6000 --out runs/nb12/reflow
    # 3. the table: quality at 1, 2, 4 and 8 network evaluations (500 images, seed 0), seconds for 64 digits,
    #    and the copying check on the one-step samples of each student
    python benchmarks/few_step.py table --reflow PATH --meanflow PATH --json diffusion_lib/weights/few_step.json
    # 4. the seconds for 64 digits in one step of each shipped student, timed in turn (best and median of --repeats)
    python benchmarks/few_step.py speed --threads 2

A class-conditional teacher is run at w = 1 (its conditional velocity, no guidance) with a label that the noise
decides (objectives.noise_labels: uniform over the digits, and a function of the noise, so the pairing stays a
map noise -> image that an unconditional student can learn). The ends are clipped to [-1, 1], the images' range.
The MeanFlow model needs no pairs; it trains from the command line (its card has the command):

    python -m diffusion_lib train --objective meanflow --base 16 --backbone-kwargs '{"mults": [1, 2, 8], "interval": true}' \\
        --init-from unet_flow ...
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import torch

from diffusion_lib.checkpoints import model_from_checkpoint, save_checkpoint, load_checkpoint
from diffusion_lib.guidance import cfg_eps_model, conditional_eps_model
from diffusion_lib.objectives import noise_labels, reflow_pairs
from diffusion_lib.device import fast_precision
from diffusion_lib.samplers import with_precision
from diffusion_lib.schedules import make_schedule
from diffusion_lib.training import TrainConfig, teacher_checkpoint, train

NOISE_SEED = 1      # not the evaluation's seed 0: the student never sees the noises it is scored on


def _guided(network, w: float):
    """The teacher's velocity guided at w for the labels y of each batch: (x, t, y) -> u, two evaluations a step."""
    def velocity(x, t, y):
        return cfg_eps_model(network, y, w)(x, t)
    return velocity


def make_pairs(teacher: str, n: int, heun_steps: int, out: Path, minutes: float | None = None,
               chunk: int = 1000, w: float | None = None) -> dict:
    """Noises (seed NOISE_SEED) and the teacher's ODE ends, made `chunk` at a time and saved after each chunk
    (so a student can start from what is there); with `minutes`, it stops after the chunk that passes them.
    A conditional teacher: with w None, its conditional velocity (w = 1) with noise_labels (pairs for an
    unconditional student); with w, guided at w for labels 0..9 in turn (pairs for a conditional student that has
    the guidance built in: `reflow --conditional`)."""
    checkpoint = teacher_checkpoint(teacher)
    network = model_from_checkpoint(checkpoint)
    if w is not None and network.num_classes is None:
        raise SystemExit(f"--w needs a class-conditional teacher; {teacher} is unconditional")
    precision = fast_precision("cpu")     # bfloat16 where the CPU computes in it natively; fp32 where it would emulate it
    model = with_precision(network if w is None else _guided(network, w), precision)
    schedule = make_schedule(checkpoint["schedule"]["name"], checkpoint["schedule"]["T"])
    noise = torch.randn((n, *network.image_shape), generator=torch.Generator().manual_seed(NOISE_SEED))
    labels = None
    if network.num_classes is not None:
        labels = noise_labels(noise, network.num_classes) if w is None else torch.arange(n) % network.num_classes
    start, ends = time.monotonic(), []
    for i in range(0, n, chunk):
        ends.append(reflow_pairs(model, noise[i:i + chunk], schedule, heun_steps,
                                 y=None if labels is None else labels[i:i + chunk], batch_size=500, progress=False))
        done, seconds = i + ends[-1].shape[0], time.monotonic() - start
        nfe = (2 * heun_steps - 1) * (1 if w is None else 2)     # guided: two network evaluations a velocity
        record = {"teacher": teacher, "n": done, "heun_steps": heun_steps, "nfe_per_pair": nfe,
                  "seed": NOISE_SEED, "precision": precision, "w": 1.0 if w is None else w,
                  "labels": None if labels is None else ("noise_labels" if w is None else "0..9 in turn"),
                  "seconds": round(seconds, 1), "seconds_per_1000": round(1000 * seconds / done, 2),
                  "threads": torch.get_num_threads()}
        save_checkpoint({"arch": checkpoint["arch"], "pairs": record, "noise": noise[:done],
                         "ends": torch.cat(ends).clamp(-1, 1),
                         "labels": None if labels is None else labels[:done]}, out)
        print(json.dumps(record), flush=True)
        if minutes is not None and seconds > 60 * minutes:
            break
    return record


def describe(record: dict) -> str:
    return (f"{record['n']} pairs: noise seed {record['seed']}, the ODE end of {record['teacher']} by flow Heun "
            f"{record['heun_steps']} steps" + (f", labels {record['labels']}, w = {record.get('w', 1.0):g}"
                                                if record["labels"] else "") + ", clipped to [-1, 1]")


def train_reflow(pairs_path: Path, out: Path, steps: int, lr: float, batch_size: int, warmup: int,
                 max_minutes: float | None, conditional: bool = False, init_from: str | None = None,
                 noise_end_share: float = 0.0) -> None:
    """The student: flow matching on the pairs from the teacher's weights; unconditional (the teacher's null-label
    branch folded in, training.init_from_teacher), or with conditional=True the teacher's own conditional network
    trained on the pairs' labels with no label dropout (guidance built in, sampled at w = 1).
    init_from: start from these weights (a shipped name or a checkpoint) instead of the pairs' teacher, e.g. an
    earlier student; noise_end_share: FlowMatching's share of the batch at s = 1 (one-step distillation)."""
    pairs = load_checkpoint(pairs_path)
    record = pairs["pairs"]
    if conditional and pairs.get("labels") is None:
        raise SystemExit(f"--conditional needs pairs with labels; {pairs_path} has none")
    kwargs = {k: v for k, v in pairs["arch"]["kwargs"].items() if conditional or k != "num_classes"}
    config = TrainConfig(backbone="unet", backbone_kwargs=kwargs, objective="flow",
                         objective_kwargs={"noise_end_share": noise_end_share} if noise_end_share else {}, steps=steps,
                         max_minutes=max_minutes, batch_size=batch_size, lr=lr, warmup_steps=warmup,
                         lr_decay="cosine", ema_decay=0.999, precision=fast_precision("cpu"), init_from=init_from or record["teacher"],
                         pairs=describe(record), checkpoint_every=250, label_dropout=0.0)
    start = time.monotonic()
    result = train(config, pairs["ends"], pairs["labels"] if conditional else None, noise=pairs["noise"], out_dir=out)
    print(json.dumps({"step": result.step, "minutes": round((time.monotonic() - start) / 60, 1),
                      "last_100_loss": sum(result.history["loss"][-100:]) / max(1, len(result.history["loss"][-100:]))}))


# ----------------------------------------------------------------------------- the table

def _timed(fn, repeats: int = 3) -> tuple[object, float]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def student_entry(student, schedule, sampler: str) -> tuple:
    """A student's (network, schedule, sampler, w) for table_rows: an unconditional one w = None; a conditional one
    w = 1, labels 0..9 in turn and one evaluation a step, its guidance built in (reflow on a guided teacher's pairs,
    or MeanFlow with a guided teacher's velocity)."""
    return student, schedule, sampler, None if student.num_classes is None else 1.0


def table_rows(models: dict, nfes, n: int, classifier, reference, train_images=None, train_features=None) -> list[dict]:
    """One row per (model, sampler, NFE budget): confident share, Frechet distance, guided accuracy (conditional
    rows), sampling seconds for n images and for 64 digits (best of 3), and for the one-step rows of students the
    copying check (median distance to the nearest training image, pixels and features) and the class histogram.
    models: {name: (network, schedule, sampler, w)}; w = 1 (conditional velocity, one evaluation a step), None
    (unconditional), or another w: classifier-free guidance, two evaluations a step (a budget of nfe evaluations is
    nfe // 2 steps)."""
    from diffusion_lib.measure.metrics import classify, class_histogram, nearest_training_images, score_samples
    from diffusion_lib.measure.sweeps import SAMPLER_LABELS, steps_for_nfe
    from diffusion_lib.samplers import final, heun_nfe, sample_noise
    ev = _load_evaluate()
    rows = []
    for name, (network, schedule, sampler, w) in models.items():
        for nfe in nfes:
            guided = w is not None and w != 1
            if guided and nfe < 2:
                continue                                    # guidance costs two evaluations a step
            budget = nfe // 2 if guided else nfe
            steps = budget if sampler == "meanflow" else steps_for_nfe(SAMPLER_LABELS[sampler], budget)
            used = heun_nfe(steps) if sampler in ("heun", "flow-heun") else steps
            if sampler in ("heun", "flow-heun") and used == 1:
                continue                                    # one Heun step is Euler's (the last step is Euler)
            used = 2 * used if guided else used
            x_T = sample_noise(n, network.image_shape, generator=torch.Generator().manual_seed(0))
            labels = torch.arange(n) % 10 if w is not None else None

            def sample(x, precision="fp32"):
                model = (network if labels is None else cfg_eps_model(network, labels[:x.shape[0]], w) if guided
                         else conditional_eps_model(network, labels[:x.shape[0]]))
                model = with_precision(model, precision)
                if sampler == "ddim":
                    return final(ev.ddim_sample_progressive(model, x, schedule, steps, eta=0.0))
                return final(ev.ODE_SAMPLERS[sampler](model, x, schedule, steps))
            start = time.perf_counter()
            images = torch.cat([sample(x_T[i:i + 250]) for i in range(0, n, 250)])
            seconds = time.perf_counter() - start
            _, seconds_64 = _timed(lambda: sample(x_T[:64]))
            seconds_64_bf16 = None          # timed only where the CPU computes in bfloat16 natively: emulated, it is slower
            if fast_precision("cpu") == "bf16":
                _, seconds_64_bf16 = _timed(lambda: sample(x_T[:64], "bf16"))
            scores = score_samples(images, classifier, reference, labels)
            row = {"model": name, "sampler": sampler, "steps": steps, "nfe": used, "w": w, "n": n,
                   "confident_share": round(scores["confident_share"], 3),
                   "frechet_distance": round(scores["frechet_distance"], 1),
                   "guided_accuracy": None if labels is None else round(scores["guided_accuracy"], 3),
                   "effective_classes": round(scores["effective_classes"], 2),
                   "class_histogram": scores["class_histogram"],
                   "seconds": round(seconds, 1), "seconds_64": round(seconds_64, 3),
                   "seconds_64_bf16": None if seconds_64_bf16 is None else round(seconds_64_bf16, 3)}
            if used == 1 and train_images is not None and name.endswith("(student)"):
                near = nearest_training_images(images, train_images, classifier, train_features)
                row["nearest_pixels_median"] = round(float(near["pixels"][0].median()), 2)
                row["nearest_features_median"] = round(float(near["features"][0].median()), 2)
                row["distinct_nearest"] = int(near["pixels"][1].unique().numel())
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def one_step_speed(names, repeats: int) -> list[dict]:
    """Seconds for 64 digits in one network evaluation (no gradient, float32) of each shipped few-step model, the
    models timed in turn `repeats` times so that a slow spell of the machine hits them all alike: best and median.
    A conditional model gets labels 0..9 in turn, one evaluation (its guidance is built in)."""
    from diffusion_lib.pretrained import load_pretrained, pretrained_objective, pretrained_schedule
    from diffusion_lib.samplers import final, flow_euler_sample_progressive, meanflow_sample_progressive, sample_noise
    x_1 = sample_noise(64, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 10
    runs = {}
    for name in names:
        model, schedule = load_pretrained(name), pretrained_schedule(name)
        velocity = model if model.num_classes is None else conditional_eps_model(model, labels)
        sampler = meanflow_sample_progressive if pretrained_objective(name) == "meanflow" else flow_euler_sample_progressive
        runs[name] = functools.partial(lambda v, s, sched: final(s(v, x_1, sched, 1)), velocity, sampler, schedule)
    seconds = {name: [] for name in runs}
    with torch.no_grad():
        for run in runs.values():
            run()                                                     # the first call of each warms up
        for _ in range(repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
    rows = [{"model": name, "threads": torch.get_num_threads(), "repeats": repeats,
             "best_seconds_64": round(min(times), 3), "median_seconds_64": round(sorted(times)[len(times) // 2], 3)}
            for name, times in seconds.items()]
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def _load_evaluate():
    import importlib.util
    spec = importlib.util.spec_from_file_location("evaluate", Path(__file__).with_name("evaluate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_table(reflow: str | None, meanflow: str | None, nfes, n: int, out: Path | None, teachers: bool = True,
               append: bool = False, names: tuple[str, str] = ("reflow", "MeanFlow"), guided: float | None = None) -> list:
    from diffusion_lib.checkpoints import load_model
    from diffusion_lib.data import load_mnist
    from diffusion_lib.measure.metrics import classifier_features, load_classifier, mnist_test_features
    from diffusion_lib.pretrained import load_pretrained, pretrained_schedule
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    train_images, _ = load_mnist(train=True)
    train_features = classifier_features(train_images, classifier)
    linear = pretrained_schedule("unet")
    models = {}
    if teachers:
        models.update({"unet_flow": (load_pretrained("unet_flow"), linear, "flow-euler", None),
                       "unet_flow ": (load_pretrained("unet_flow"), linear, "flow-heun", None),
                       "unet": (load_pretrained("unet"), linear, "ddim", None),
                       "unet_flow_cond": (load_pretrained("unet_flow_cond"), linear, "flow-euler", 1.0)})
    if guided is not None:    # the conditional teacher with classifier-free guidance: two evaluations a step
        models[f"unet_flow_cond, w = {guided:g}"] = (load_pretrained("unet_flow_cond"), linear, "flow-euler", guided)
    if reflow:
        models[f"{names[0]} (student)"] = student_entry(load_model(reflow), linear, "flow-euler")
    if meanflow:
        models[f"{names[1]} (student)"] = student_entry(load_model(meanflow), linear, "meanflow")
    rows = table_rows(models, nfes, n, classifier, reference, train_images, train_features)
    for row in rows:
        row["model"] = row["model"].strip()
    real = nearest_real(train_images, classifier, train_features, n)
    if out:
        record = {"commands": [], "threads": torch.get_num_threads(), "rows": [], "real_test_digits": real}
        if append and Path(out).exists():          # rows of other models kept: teachers and students run apart
            record = json.loads(Path(out).read_text())
            names = {row["model"] for row in rows}
            record["rows"] = [row for row in record["rows"] if row["model"] not in names]
        record["commands"].append("python benchmarks/few_step.py " + " ".join(sys.argv[1:]))
        record["rows"] += rows
        record["load_average"] = [round(x, 1) for x in os.getloadavg()]
        with open(out, "w") as f:
            json.dump(record, f, indent=1)
    return rows


def nearest_real(train_images, classifier, train_features, n: int) -> dict:
    """The copying check's yardstick: n real test digits' median distances to their nearest training image."""
    from diffusion_lib.data import load_mnist
    from diffusion_lib.measure.metrics import nearest_training_images
    test_images, _ = load_mnist(train=False)
    near = nearest_training_images(test_images[:n], train_images, classifier, train_features)
    return {"nearest_pixels_median": round(float(near["pixels"][0].median()), 2),
            "nearest_features_median": round(float(near["features"][0].median()), 2)}


def curve(checkpoints, nfes, n: int, out: Path | None, name: str = "student") -> list[dict]:
    """The learning curve of a student: each checkpoint (a training snapshot) at each NFE budget, n images from
    seed 0: {"step", "nfe", "confident_share", "frechet_distance"}."""
    from diffusion_lib.checkpoints import checkpoint_objective, load_checkpoint, model_from_checkpoint
    from diffusion_lib.measure.metrics import load_classifier, mnist_test_features, score_samples
    from diffusion_lib.samplers import final, flow_euler_sample_progressive, meanflow_sample_progressive, sample_noise
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    rows = []
    for path in checkpoints:
        checkpoint = load_checkpoint(path)
        model = model_from_checkpoint(checkpoint)
        schedule = make_schedule(checkpoint["schedule"]["name"], checkpoint["schedule"]["T"])
        run = meanflow_sample_progressive if checkpoint_objective(checkpoint) == "meanflow" else flow_euler_sample_progressive
        labels = None if model.num_classes is None else torch.arange(n) % 10     # conditional: 0..9 in turn, w = 1
        for nfe in nfes:
            x_T = sample_noise(n, model.image_shape, generator=torch.Generator().manual_seed(0))
            images = torch.cat([final(run(model if labels is None else conditional_eps_model(model, labels[i:i + 250]),
                                          x_T[i:i + 250], schedule, nfe)) for i in range(0, n, 250)])
            scores = score_samples(images, classifier, reference, labels)
            rows.append({"step": int(checkpoint["step"]), "nfe": nfe, "n": n,
                         "confident_share": round(scores["confident_share"], 3),
                         "frechet_distance": round(scores["frechet_distance"], 1)})
            if labels is not None:
                rows[-1]["guided_accuracy"] = round(scores["guided_accuracy"], 3)
            print(json.dumps(rows[-1]), flush=True)
    if out:            # into the table's JSON, under "curves": {name: rows}, beside what it holds already
        record = json.loads(Path(out).read_text()) if Path(out).exists() else {"commands": [], "rows": []}
        kept = [r for r in record.setdefault("curves", {}).get(name, [])
                if (r["step"], r["nfe"]) not in {(q["step"], q["nfe"]) for q in rows}]   # earlier snapshots stay
        record["curves"][name] = sorted(kept + rows, key=lambda r: (r["step"], r["nfe"]))
        record["commands"].append("python benchmarks/few_step.py " + " ".join(sys.argv[1:]))
        with open(out, "w") as f:
            json.dump(record, f, indent=1)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pairs", help="noises and the teacher's ODE ends from them")
    a.add_argument("--teacher", default="unet_flow_cond", help="a shipped flow model or a checkpoint")
    a.add_argument("--n", type=int, default=30000)
    a.add_argument("--heun-steps", type=int, default=10)
    a.add_argument("--minutes", type=float, help="stop after the chunk of 1,000 pairs that passes this wall time")
    a.add_argument("--w", type=float, help="a conditional teacher guided at w, labels 0..9 in turn (pairs for "
                                           "`reflow --conditional`); default: w = 1 with labels the noise decides")
    a.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("reflow", help="train the student on the pairs, from the teacher's weights")
    b.add_argument("--pairs", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--steps", type=int, default=6000)
    b.add_argument("--lr", type=float, default=5e-4)
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--warmup", type=int, default=100)
    b.add_argument("--minutes", type=float, help="stop training after this wall time (a checkpoint is written then)")
    b.add_argument("--conditional", action="store_true", help="a conditional student on the pairs' labels")
    b.add_argument("--init-from", help="start from these weights (a shipped name or a checkpoint), not the teacher's")
    b.add_argument("--noise-end-share", type=float, default=0.0,
                   help="share of each batch at s = 1, where the loss is one Euler step's error (distillation)")
    c = sub.add_parser("table", help="quality at 1, 2, 4, 8 network evaluations, seconds, the copying check")
    c.add_argument("--reflow", help="the reflow student's checkpoint")
    c.add_argument("--meanflow", help="the MeanFlow model's checkpoint")
    c.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 4, 8])
    c.add_argument("--n", type=int, default=500)
    c.add_argument("--no-teachers", action="store_true", help="only the students' rows")
    c.add_argument("--json", type=Path)
    c.add_argument("--append", action="store_true", help="keep the rows of other models already in --json")
    c.add_argument("--names", nargs=2, default=["reflow", "MeanFlow"], help="the students' names in the table")
    c.add_argument("--guided", type=float, metavar="W",
                   help="also unet_flow_cond guided at W (two evaluations a step), beside a student with W built in")
    d = sub.add_parser("curve", help="a student's snapshots scored at a few NFE budgets (its learning curve)")
    d.add_argument("checkpoints", nargs="+")
    d.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 4])
    d.add_argument("--n", type=int, default=200)
    d.add_argument("--json", type=Path, help="the table's JSON: the curve goes under 'curves' -> --name")
    d.add_argument("--name", default="student")
    e = sub.add_parser("speed", help="seconds for 64 digits in one step of each shipped few-step model")
    e.add_argument("--models", nargs="+", default=["reflow", "reflow_cond", "meanflow", "meanflow_cond"])
    e.add_argument("--repeats", type=int, default=20)
    for q in (a, b, c, d, e):
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "pairs":
        make_pairs(args.teacher, args.n, args.heun_steps, args.out, args.minutes, w=args.w)
    elif args.command == "curve":
        curve(sorted(args.checkpoints, key=lambda p: int(load_checkpoint(p)["step"])), args.nfe, args.n, args.json,
              args.name)
    elif args.command == "speed":
        one_step_speed(args.models, args.repeats)
    elif args.command == "table":
        make_table(args.reflow, args.meanflow, args.nfe, args.n, args.json, not args.no_teachers, args.append,
                   tuple(args.names), args.guided)
    else:
        train_reflow(args.pairs, args.out, args.steps, args.lr, args.batch_size, args.warmup, args.minutes,
                     args.conditional, args.init_from, args.noise_end_share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
