"""Command line: `python -m diffusion_lib train ...` and `python -m diffusion_lib sample ...`.

    python -m diffusion_lib train --backbone unet --steps 3000 --out runs/unet
    python -m diffusion_lib train --backbone unet --conditional --minutes 10 --precision bf16 --out runs/cond
    python -m diffusion_lib sample --checkpoint runs/unet/last.pt --sampler ddim --steps 50 --out samples.png
    python -m diffusion_lib sample --pretrained unet_cond --w 3 --label 7 --out sevens.png

Training resumes from OUT/last.pt when it exists (pass --fresh to start over); only --steps (or --epochs),
--minutes and --checkpoint-every may differ from the run that wrote it.

Every failure prints one line, `error: <what is wrong>; <how to fix it>`, exits with code 2 and writes
nothing: options are checked before any work starts, and an option that does not apply to the chosen
model or sampler is an error, not ignored.
"""
from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from .backbones import IMAGE_BACKBONES
from .checkpoints import CheckpointError
from .config import FULL, QUICK, budget
from .data import DATASETS
from .device import check_device, default_device, fast_precision
from .guidance import MAX_GUIDANCE_WEIGHT
from .objectives import LOSS_WEIGHTINGS, OBJECTIVES
from .pretrained import PRETRAINED
from .samplers import DDPM_VARIANCES, PRECISIONS
from .schedules import BETA_SCHEDULES, longest_schedule

SEED_MAX = 2**32 - 1
SAMPLERS = ("ddim", "ddpm", "heun", "flow-euler", "flow-heun", "flow-sde", "meanflow")
FLOW_SAMPLERS = ("flow-euler", "flow-heun", "flow-sde")
# The samplers that apply to a model, by the objective it was trained with, the first one its default.
SAMPLERS_OF = {"flow": FLOW_SAMPLERS, "meanflow": ("meanflow",)}
DDPM_FAMILY_SAMPLERS = ("ddim", "ddpm", "heun")
MAX_IMAGES = 10_000       # sample --n: a 100 x 100 grid, 2,800 pixels square; more is no longer a picture
NUM_CLASSES = 10          # --conditional: the ten digits (or Fashion-MNIST's ten kinds of clothing)


class UsageError(Exception):
    """A bad command line: main() prints it as one `error: ...` line and returns 2."""


# ----------------------------------------------------------------------------- option types (ranges)

def integer(lower: int, upper: int | None = None, multiple_of: int | None = None):
    """An argparse type: an integer in [lower, upper] (and a multiple of `multiple_of`)."""
    span = f">= {lower}" if upper is None else f"in [{lower}, {upper}]"
    if multiple_of:
        span += f" and a multiple of {multiple_of}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {text!r}") from None
        if value < lower or (upper is not None and value > upper) or (multiple_of and value % multiple_of):
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {value}")
        return value
    return parse


def number(lower: float, upper: float | None = None, lower_open: bool = False, upper_open: bool = False):
    """An argparse type: a finite number with lower <= x (lower < x if lower_open) and x <= upper (< if upper_open)."""
    if upper is None:
        span = f"> {lower:g}" if lower_open else f">= {lower:g}"
    else:
        span = f"in {'(' if lower_open else '['}{lower:g}, {upper:g}{')' if upper_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {span}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number {span}, got {text}")
        if (value < lower or (lower_open and value == lower)
                or (upper is not None and (value > upper or (upper_open and value == upper)))):
            raise argparse.ArgumentTypeError(f"must be {span}, got {value:g}")
        return value
    return parse


def device_name(text: str) -> torch.device:
    """An argparse type: cpu, cuda, cuda:N or mps, refused when this machine does not have it."""
    try:
        return check_device(text, fix="use --device cpu, or leave --device out to take the best available")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def threads(text: str) -> int:
    """An argparse type: torch CPU threads, in [1, the CPUs of this machine] (far more crashes the thread pool)."""
    return integer(1, os.cpu_count() or 1)(text)


class Parser(argparse.ArgumentParser):
    """argparse's parser, with its errors raised as one-line UsageErrors instead of usage text and exit(2)."""

    def error(self, message: str):
        raise UsageError(f"{message}; see `{self.prog} --help`")


# ----------------------------------------------------------------------------- output paths

def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_folder_can_hold(folder: Path, option: str) -> None:
    """The folder exists and is writable, or the nearest existing ancestor is a writable folder (so it can be made)."""
    existing = _nearest_existing(folder.absolute())
    if not existing.is_dir():
        raise UsageError(f"{option}: cannot make the folder {folder}, because {existing} is a file; "
                         "choose a path under a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: the folder {existing} is not writable; choose a folder you can write to")


def _try_a_write(folder: Path, option: str) -> None:
    """Write and delete a temporary file in `folder` (the nearest existing one), leaving its times as they were:
    os.access says yes to root everywhere, even under /proc, so only a real write tells."""
    import tempfile
    existing = _nearest_existing(folder.absolute())
    times = existing.stat()
    try:
        fd, probe = tempfile.mkstemp(prefix=".diffusion_lib-write-test.", dir=existing)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise UsageError(f"{option}: cannot write in {existing} ({e.strerror or e}); choose a folder you can write to") from None
    finally:
        try:
            os.utime(existing, ns=(times.st_atime_ns, times.st_mtime_ns))
        except OSError:
            pass


def check_out_folder(out: str) -> Path:
    """train --out: a folder (existing or to be made), never an existing file."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out} is a file, but training writes a folder (OUT/last.pt); "
                         "give a folder path, e.g. --out runs/mine")
    _check_folder_can_hold(path, "--out")
    last = path / "last.pt"
    if last.exists() and not os.access(last, os.W_OK):
        raise UsageError(f"--out: {last} is not writable; choose another folder")
    if last.is_dir():
        raise UsageError(f"--out: {last} is a folder, where the checkpoint file goes; remove it or choose another folder")
    _try_a_write(path, "--out")
    return path


def check_out_png(out: str) -> Path:
    """sample --out: a .png file whose folder exists or can be made."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: samples are written as a PNG image, so the file name must end in .png; "
                         f"e.g. --out {path.with_suffix('.png').name}")
    return check_writable_file(out, "--out", example="samples.png")


def check_writable_file(out: str, option: str, example: str = "results.json") -> Path:
    """A file to write at the end of a run: not a folder, in a folder that exists or can be made, where a real
    write succeeds now (checked before any work)."""
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"{option} {out} is a folder; give a file name, e.g. {option} {path / example}")
    _check_folder_can_hold(path.parent, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option}: {path} exists and is not writable; choose another file name")
    _try_a_write(path.parent, option)
    return path


# ----------------------------------------------------------------------------- train

# TrainConfig field -> the option that sets it (for the resume message)
FLAGS = {"backbone": "--backbone", "schedule": "--schedule", "T": "--T", "objective": "--objective",
         "loss_weighting": "--loss-weighting", "min_snr_gamma": "--min-snr-gamma", "dataset": "--dataset",
         "batch_size": "--batch-size", "lr": "--lr", "weight_decay": "--weight-decay", "warmup_steps": "--warmup",
         "lr_decay": "--lr-decay", "ema_decay": "--ema-decay", "label_dropout": "--label-dropout", "seed": "--seed",
         "precision": "--precision", "data_size": "--limit", "init_from": "--init-from", "teacher": "--teacher",
         "teacher_w": "--teacher-w"}


def json_object_option(text: str, flag: str, example: str) -> dict:
    """The JSON object an option such as --backbone-kwargs was given, or a UsageError that shows `example`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{flag} is not valid JSON ({e}); write a JSON object, e.g. {flag} '{example}'") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object of argument names to values, got {text}; "
                         f"e.g. {flag} '{example}'")
    return value


def _backbone_kwargs(args) -> dict:
    """The backbone's arguments from --backbone-kwargs, --base and --conditional, checked for conflicts."""
    kwargs = {}
    if args.backbone_kwargs:
        kwargs = json_object_option(args.backbone_kwargs, "--backbone-kwargs", '{"mults": [1, 2, 2]}')
        if "num_classes" in kwargs:
            raise UsageError("--backbone-kwargs: give no num_classes; use --conditional for a class-conditional U-Net")
    if args.base is not None:
        if args.backbone != "unet":
            raise UsageError(f"--base applies to --backbone unet only; drop it for {args.backbone}")
        if "base" in kwargs:
            raise UsageError("the base is given twice, by --base and in --backbone-kwargs; give it once")
        kwargs["base"] = args.base
    if args.conditional:
        if args.backbone != "unet":
            raise UsageError(f"--conditional needs --backbone unet ({args.backbone} takes no labels)")
        kwargs["num_classes"] = NUM_CLASSES
    return kwargs


def _train(args) -> int:
    from .backbones import build_backbone
    from .data import load_dataset
    from .schedules import make_schedule
    from .training import ResumeMismatchError, TrainConfig, teacher_reads_labels, train

    # 1. options against each other, then the whole configuration, before anything is loaded or written
    if args.label_dropout is not None and not args.conditional:
        raise UsageError("--label-dropout applies to --conditional training only; add --conditional or drop it")
    if args.min_snr_gamma is not None and args.loss_weighting != "min_snr":
        raise UsageError("--min-snr-gamma applies to --loss-weighting min_snr only; add it or drop --min-snr-gamma")
    if args.teacher is not None and args.objective != "meanflow":
        raise UsageError(f"--teacher gives MeanFlow's target a teacher's velocity; it needs --objective meanflow, "
                         f"not {args.objective}")
    if args.teacher_w is not None and args.teacher is None:
        raise UsageError("--teacher-w guides a --teacher; add --teacher (a conditional flow model, e.g. "
                         "unet_flow_cond) or drop --teacher-w")
    if args.schedule is not None and args.objective in ("flow", "meanflow"):
        raise UsageError(f"--schedule {args.schedule} means nothing to --objective {args.objective}: it trains on its "
                         "own straight path x_s = (1 - s) x_0 + s eps, with no beta schedule (--T sets its time grid); "
                         "drop --schedule")
    kwargs = _backbone_kwargs(args)
    config = TrainConfig(backbone=args.backbone, backbone_kwargs=kwargs, schedule=args.schedule or "linear", T=args.T,
                         objective=args.objective, loss_weighting=args.loss_weighting,
                         min_snr_gamma=5.0 if args.min_snr_gamma is None else args.min_snr_gamma,
                         dataset=args.dataset, steps=args.steps or 1, max_minutes=args.minutes,
                         batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         warmup_steps=args.warmup, lr_decay=args.lr_decay, ema_decay=args.ema_decay,
                         label_dropout=0.1 if args.label_dropout is None else args.label_dropout,
                         checkpoint_every=args.checkpoint_every, seed=args.seed, precision=args.precision,
                         init_from=args.init_from, teacher=args.teacher,
                         teacher_w=1.0 if args.teacher_w is None else args.teacher_w)
    teacher_labels = teacher_reads_labels(config)      # a conditional teacher: the data's labels are read
    if args.teacher_w is not None and args.teacher_w != 1 and not teacher_labels:
        raise UsageError(f"--teacher-w {args.teacher_w:g} guides a conditional --teacher, and {args.teacher} is "
                         "unconditional; give a conditional teacher (e.g. unet_flow_cond) or drop --teacher-w")
    with torch.device("meta"):                 # runs the architecture's checks without allocating its weights
        build_backbone(config.backbone, **config.backbone_kwargs)
    make_schedule(config.schedule, config.T)   # refuses a schedule that float32 cannot hold
    out = check_out_folder(args.out)
    if args.data is not None and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data} is not a folder; give the folder that holds MNIST/raw "
                         "(or leave --data out to use $DIFFUSION_LIB_DATA)")
    device = args.device or _default_device()
    _warn_if_bf16_is_emulated(args.precision, device)

    # 2. the data, and what depends on its size
    images, labels = load_dataset(args.dataset, train=True, root=args.data)
    if args.limit is not None:
        if args.limit > images.shape[0]:
            raise UsageError(f"--limit {args.limit} is more than the {images.shape[0]:,} training images; "
                             f"give at most {images.shape[0]}, or leave --limit out to use them all")
        images, labels = images[:args.limit], labels[:args.limit]
    if args.batch_size > images.shape[0]:
        raise UsageError(f"--batch-size {args.batch_size} is more than the {images.shape[0]:,} training images; "
                         f"give at most {images.shape[0]}")
    if args.epochs is not None:
        steps = max(1, round(args.epochs * images.shape[0] / args.batch_size))
    elif args.steps is not None:
        steps = args.steps
    else:
        steps = 10**9 if args.minutes else budget().train_steps
    config = replace(config, steps=steps)
    if not args.fresh and (out / "last.pt").exists():          # a resume: of the same settings, and will it train?
        from .checkpoints import load_checkpoint
        from .training import check_resumable
        checkpoint = load_checkpoint(out / "last.pt")
        try:
            check_resumable(checkpoint, config, out / "last.pt")
        except ResumeMismatchError as e:
            raise UsageError(_resume_message(e)) from None
        done = checkpoint.get("step")
        if isinstance(done, int) and done >= steps:
            raise UsageError(f"{out / 'last.pt'} is already at step {done}, and this run asks for {steps} steps in all; "
                             f"give --steps (or --epochs) beyond {done} to train on, or --fresh to start over")

    # 3. train (it refuses to resume a checkpoint of other settings before writing anything)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    try:
        result = train(config, images, labels if args.conditional or teacher_labels else None,
                       out_dir=out, resume=not args.fresh, device=device)
    except ResumeMismatchError as e:
        raise UsageError(_resume_message(e)) from None
    minutes = (time.monotonic() - start) / 60
    losses = result.history["loss"]
    tail = sum(losses[-100:]) / max(1, len(losses[-100:]))
    print(f"trained {config.backbone} to step {result.step} in {minutes:.1f} min on {device}; "
          f"mean loss of the last 100 steps {tail:.4f}; checkpoint {result.checkpoint}")
    return 0


def _default_device() -> torch.device:
    """default_device(), its ValueError for a bad $DIFFUSION_LIB_DEVICE shown as a usage error."""
    try:
        return default_device()
    except ValueError as e:
        raise UsageError(str(e)) from None


def _warn_if_bf16_is_emulated(precision: str, device) -> None:
    """A warning on stderr when bf16 is asked for on a CPU that would emulate it (no AVX512-BF16 or AMX)."""
    if precision == "bf16" and torch.device(device).type == "cpu" and fast_precision("cpu") == "fp32":
        print("warning: this CPU has no AVX512-BF16 or AMX instructions, so bfloat16 is emulated and slower than fp32 "
              "(a MeanFlow training step of the course's U-Net took ten times as long on a 2-core AMD EPYC with "
              "AVX2); use --precision fp32", file=sys.stderr)


def _flag(name: str) -> str:
    if name == "backbone_kwargs":
        return "--base/--conditional/--backbone-kwargs"
    return FLAGS.get(name, f"{name} (set through the Python API)")


def _as_options(name: str, value, given=None) -> str:
    """The options that give TrainConfig field `name` the value `value` (`given`: the value this command gave)."""
    if name == "backbone_kwargs":
        rest = dict(value)
        parts = [f"--base {rest.pop('base')}"] if "base" in rest else []
        if rest.pop("num_classes", None) is not None:
            parts.append("--conditional")
        elif isinstance(given, dict) and given.get("num_classes") is not None:
            parts.append("without --conditional")
        if rest:
            parts.append(f"--backbone-kwargs '{json.dumps(rest)}'")
        return " ".join(parts) or "no --base, --conditional or --backbone-kwargs"
    if name in FLAGS:
        return f"{FLAGS[name]} {value}"
    return f"{name}={value!r}"


def _resume_message(e) -> str:
    listed = "; ".join(f"{_flag(name)}: the checkpoint records {old!r}, this command gives {new!r}"
                       for name, old, new in e.differences)
    again = " ".join(_as_options(name, old, new) for name, old, new in e.differences)
    return (f"cannot resume from {e.path}, which was trained with other settings ({listed}); rerun with the "
            f"recorded settings ({again}; only --steps/--epochs, --minutes and --checkpoint-every may change on a "
            f"resume), or pass --fresh to start over (this overwrites {e.path})")


# ----------------------------------------------------------------------------- sample

def _sample(args) -> int:
    from .checkpoints import checkpoint_codec, load_checkpoint, model_from_checkpoint
    from .guidance import cfg_eps_model
    from .images import save_grid
    from . import samplers

    # 1. options against each other and the output path, before anything is loaded
    if args.sampler == "ddpm" and args.steps is not None:
        raise UsageError("--steps does not apply to --sampler ddpm (DDPM walks all T steps); drop --steps or use "
                         "--sampler ddim")
    if args.eta is not None and args.sampler not in (None, "ddim"):
        raise UsageError(f"--eta applies to --sampler ddim only (--sampler {args.sampler} has no eta); drop --eta or "
                         "use --sampler ddim")
    if args.variance is not None and args.sampler != "ddpm":
        raise UsageError("--variance applies to --sampler ddpm only (DDIM's noise is set by --eta); "
                         "drop --variance or use --sampler ddpm")
    if args.no_ema and args.pretrained:
        raise UsageError("--no-ema: the shipped models hold only their EMA weights; drop --no-ema")
    n = args.n if args.n is not None else budget().n_samples
    if args.nrow is not None and args.nrow > n:
        raise UsageError(f"--nrow {args.nrow} is more than the {n} images (--n); give --nrow at most {n}")
    out = check_out_png(args.out)
    device = args.device or _default_device()
    _warn_if_bf16_is_emulated(args.precision, device)

    # 2. the model (read once: it carries its objective and schedule), and the options that depend on it
    if args.pretrained:
        from .pretrained import AUTOENCODERS, pretrained_path
        if args.pretrained in AUTOENCODERS:
            raise UsageError(f"--pretrained {args.pretrained} is an autoencoder, which does not sample; "
                             "use --pretrained latent_dit (a diffusion model in its latent)")
        checkpoint = load_checkpoint(pretrained_path(args.pretrained))
    else:
        checkpoint = load_checkpoint(args.checkpoint)
        if checkpoint.get("kind") in ("masked", "autoregressive"):
            raise UsageError(f"{args.checkpoint} holds a {checkpoint['kind']} token model (notebook 14); sample it with "
                             f"`python -m diffusion_lib sample-tokens --checkpoint {args.checkpoint}`")
    model = model_from_checkpoint(checkpoint, ema=not args.no_ema, device=device)
    codec = checkpoint_codec(checkpoint, device=device)     # a latent model's decoder, None for a model on pixels
    schedule, objective = model.schedule, model.objective
    allowed = SAMPLERS_OF.get(objective, DDPM_FAMILY_SAMPLERS)
    sampler = args.sampler or allowed[0]
    if sampler not in allowed:
        trained = {"flow": "flow matching", "meanflow": "MeanFlow (an average velocity)"}.get(
            objective, "a DDPM-family objective")
        raise UsageError(f"--sampler {sampler} does not apply to this model: it was trained with {trained}; "
                         f"use --sampler {', '.join(allowed[:-1]) + ' or ' + allowed[-1] if len(allowed) > 1 else allowed[0]}")
    if args.eta is not None and sampler != "ddim":
        raise UsageError(f"--eta applies to --sampler ddim only, and this model samples with {sampler}; drop --eta")
    # a conditional student trained without label dropout (reflow on a guided teacher's pairs) never learned its
    # null label: its guidance is built in, like a MeanFlow student's (their cards)
    untrained_null = (checkpoint.get("config") or {}).get("label_dropout") == 0
    if model.num_classes is None:
        for option, value in (("--w", args.w), ("--label", args.label)):
            if value is not None:
                raise UsageError(f"{option} needs a class-conditional model, and this one is unconditional; "
                                 f"drop {option}")
    elif untrained_null and args.w not in (None, 1):
        raise UsageError(f"--w {args.w:g} mixes in the unconditional branch (the null label), and this model was trained "
                         "without label dropout, so that branch is untrained: its guidance is built in (a student of a "
                         "guided teacher). Drop --w, or give --w 1")
    elif args.label is not None and args.label > model.num_classes - 1:
        raise UsageError(f"--label {args.label} is not a class of this model: give one in [0, {model.num_classes - 1}] "
                         f"({model.num_classes} is the null label; for unconditional samples use --w 0)")
    if args.steps is not None and args.steps > schedule.T:
        raise UsageError(f"--steps {args.steps} is more than the T = {schedule.T} steps of this model's schedule; "
                         f"give --steps in [1, {schedule.T}]")

    # 3. sample, then write
    generator = torch.Generator().manual_seed(args.seed)
    x_T = samplers.sample_noise(n, model.image_shape, generator=generator, device=device)
    if model.num_classes is not None:
        labels = torch.full((n,), args.label, dtype=torch.long) if args.label is not None else torch.arange(n) % model.num_classes
        default_w = 1.0 if objective == "meanflow" or untrained_null else 3.0     # built in: w = 1, one evaluation
        eps_model = cfg_eps_model(model, labels, default_w if args.w is None else args.w)
    else:
        eps_model = model
    eps_model = samplers.with_precision(eps_model, args.precision)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    default_steps = 1 if objective == "meanflow" else min(budget().ddim_steps, schedule.T)   # MeanFlow: one step
    num_steps = args.steps if args.steps is not None else default_steps
    if sampler == "ddpm":
        steps = samplers.ddpm_sample_progressive(eps_model, x_T, schedule, variance=args.variance or "beta_tilde",
                                                 generator=generator, progress=True)
    elif sampler == "ddim":
        steps = samplers.ddim_sample_progressive(eps_model, x_T, schedule, num_steps,
                                                 0.0 if args.eta is None else args.eta, generator=generator, progress=True)
    elif sampler == "flow-sde":
        steps = samplers.flow_sde_sample_progressive(eps_model, x_T, schedule, num_steps, generator=generator,
                                                     progress=True)
    else:
        progressive = {"heun": samplers.heun_sample_progressive, "flow-euler": samplers.flow_euler_sample_progressive,
                       "flow-heun": samplers.flow_heun_sample_progressive,
                       "meanflow": samplers.meanflow_sample_progressive}[sampler]
        steps = progressive(eps_model, x_T, schedule, num_steps, progress=True)
    images = samplers.final(steps)
    if codec is not None:                      # a latent model: decode its latents (B, C_z, 7, 7) to digits
        with torch.no_grad():
            images = codec.decode(images)
    seconds = time.monotonic() - start
    save_grid(images, out, nrow=args.nrow)          # atomically: a failed write leaves no partial file
    weights = ("EMA weights" if model.weights == "ema" else
               "raw weights, as asked by --no-ema" if args.no_ema else "raw weights: this checkpoint holds no EMA ones")
    print(f"wrote {n} samples to {out} ({sampler}, {weights}, {seconds:.1f} s on {device})")
    return 0


# ----------------------------------------------------------------------------- the parser

def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m diffusion_lib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a noise-prediction network on MNIST (or Fashion-MNIST)")
    t.add_argument("--backbone", default="unet", choices=sorted(IMAGE_BACKBONES), help="the network (default unet)")
    t.add_argument("--base", type=integer(8, multiple_of=8),
                   help="U-Net base channels: a multiple of 8 (the GroupNorm groups), >= 8 (default 32); unet only")
    t.add_argument("--backbone-kwargs", metavar="JSON",
                   help='extra backbone arguments as a JSON object, e.g. \'{"mults": [1, 2, 2]}\'')
    t.add_argument("--conditional", action="store_true",
                   help="class-conditional U-Net (10 classes + the null label), trained with label dropout; unet only")
    t.add_argument("--label-dropout", type=number(0, 1, upper_open=True),
                   help="share of labels replaced by the null label, in [0, 1) (default 0.1); --conditional only")
    t.add_argument("--dataset", default="mnist", choices=DATASETS, help="training images (default mnist)")
    t.add_argument("--schedule", choices=sorted(BETA_SCHEDULES),
                   help="noise schedule (default linear); not for --objective flow, whose straight path has none")
    t.add_argument("--T", type=integer(1), default=1000,
                   help=f"diffusion steps, >= 1 (default 1000); the linear schedule fits float32 up to "
                        f"T = {longest_schedule('linear')}, the cosine one any T")
    t.add_argument("--objective", default="eps", choices=sorted(OBJECTIVES),
                   help="what the network predicts: the noise eps, the clean image x0, v, or the flow-matching "
                        "velocity flow (default eps)")
    t.add_argument("--loss-weighting", default="none", choices=LOSS_WEIGHTINGS,
                   help="per-timestep loss weight: none, or min_snr, min(SNR, gamma), with the SNR of the objective's "
                        "own path (for flow: (1 - s)^2 / s^2) (default none)")
    t.add_argument("--min-snr-gamma", type=number(0, lower_open=True),
                   help="gamma of --loss-weighting min_snr, > 0 (default 5); min_snr only")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--steps", type=integer(1),
                   help=f"optimizer steps in all, >= 1 (default {FULL.train_steps}, {QUICK.train_steps} in quick "
                        "mode; unlimited with --minutes); may grow on a resume")
    g.add_argument("--epochs", type=number(0, lower_open=True),
                   help="passes over the training set, > 0 (sets --steps from the data size)")
    t.add_argument("--minutes", type=number(0, lower_open=True),
                   help="stop after this many minutes of training, > 0, checkpointed (default: no limit)")
    t.add_argument("--batch-size", type=integer(1), default=128, help="images per step, >= 1 (default 128)")
    t.add_argument("--lr", type=number(0, 1, lower_open=True), default=1e-3,
                   help="AdamW learning rate, in (0, 1] (default 1e-3)")
    t.add_argument("--weight-decay", type=number(0), default=0.01, help="AdamW weight decay, >= 0 (default 0.01)")
    t.add_argument("--warmup", type=integer(0), default=0, help="learning-rate warm-up steps, >= 0 (default 0)")
    t.add_argument("--lr-decay", default="constant", choices=["constant", "cosine"],
                   help="learning rate after the warm-up: constant, or cosine to 0 at --steps (default constant)")
    t.add_argument("--ema-decay", type=number(0, 1, upper_open=True), default=0.999,
                   help="decay of the EMA of the weights, in [0, 1) (default 0.999)")
    t.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="bf16: autocast the forward pass to bfloat16 (default fp32)")
    t.add_argument("--checkpoint-every", type=integer(1), default=500,
                   help="write OUT/last.pt every this many steps, >= 1 (default 500), and at the end")
    t.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help=f"random seed, in [0, {SEED_MAX}] (default 0)")
    t.add_argument("--limit", type=integer(1), help="use only the first N training images, an integer >= 1 and at most the data size")
    t.add_argument("--data", metavar="FOLDER",
                   help="data root, an existing folder (default: $DIFFUSION_LIB_DATA or ~/.cache/diffusion_lib/data)")
    t.add_argument("--device", type=device_name, help="cpu, cuda, cuda:N or mps, one this machine has "
                                                      "(default: the best available)")
    t.add_argument("--threads", type=threads, help=f"torch CPU threads, in [1, {os.cpu_count()}] (default: torch's)")
    t.add_argument("--out", required=True, metavar="FOLDER",
                   help="output folder (made if missing, not an existing file); OUT/last.pt is the checkpoint")
    t.add_argument("--init-from", metavar="NAME_OR_PATH",
                   help="start from a teacher's EMA weights: a shipped model's name (e.g. unet_flow) or a checkpoint "
                        "(MeanFlow from a flow model: --objective meanflow --backbone-kwargs '{\"interval\": true}')")
    t.add_argument("--teacher", metavar="NAME_OR_PATH",
                   help="MeanFlow distilled: the flow model whose velocity replaces eps - x_0 in the target, a shipped "
                        "model's name (e.g. unet_flow_cond) or a checkpoint; a conditional teacher reads the data's "
                        "labels; --objective meanflow only")
    t.add_argument("--teacher-w", type=number(0), default=None,
                   help="guide a conditional --teacher at this w, >= 0, in the target (guidance built into the "
                        "student; default 1, no guidance)")
    t.add_argument("--fresh", action="store_true", help="ignore OUT/last.pt and start from scratch (overwrites it)")
    t.set_defaults(func=_train)

    s = sub.add_parser("sample", help="sample a grid of images to a PNG")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH", help="a checkpoint written by `train` (or an exported one)")
    src.add_argument("--pretrained", choices=sorted(PRETRAINED), help="a shipped model")
    s.add_argument("--no-ema", action="store_true",
                   help="use the raw weights instead of the EMA ones (training checkpoints only)")
    s.add_argument("--sampler", choices=SAMPLERS,
                   help="ddim, ddpm or heun for the DDPM family's models (eps, x0, v); flow-euler, flow-heun or "
                        "flow-sde (stochastic, notebook 11) for a flow-matching model (a reflow student too); meanflow "
                        "for a MeanFlow model (default: ddim, flow-euler or meanflow, by the model's objective)")
    s.add_argument("--steps", type=integer(1),
                   help=f"sampler steps, in [1, T] (default {FULL.ddim_steps}, {QUICK.ddim_steps} in quick mode, at most T); "
                        "not for ddpm (it walks all T)")
    s.add_argument("--eta", type=number(0, 1), help="DDIM stochasticity, in [0, 1] (default 0); ddim only")
    s.add_argument("--variance", choices=DDPM_VARIANCES, help="DDPM variance (default beta_tilde); ddpm only")
    s.add_argument("--w", type=number(0, MAX_GUIDANCE_WEIGHT),
                   help=f"guidance weight, in [0, {MAX_GUIDANCE_WEIGHT:g}] (default 3; 1 for a MeanFlow model or a student with its "
                        "guidance built in; 0: "
                        "unconditional, 1: conditional, useful guidance about 1 to 10; beyond, the digits only break "
                        "up); class-conditional models only")
    s.add_argument("--label", type=integer(0),
                   help="class to draw, in [0, 9] (default: 0..9 in turn); class-conditional models only")
    s.add_argument("--n", type=integer(1, MAX_IMAGES),
                   help=f"number of images, in [1, {MAX_IMAGES}] (default {FULL.n_samples}, {QUICK.n_samples} in quick mode)")
    s.add_argument("--nrow", type=integer(1), help="images per row, in [1, n] (default: a square grid)")
    s.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help=f"random seed, in [0, {SEED_MAX}] (default 0)")
    s.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="bf16: run the network under bfloat16 autocast (faster on CPUs with AVX512-BF16)")
    s.add_argument("--threads", type=threads, help=f"torch CPU threads, in [1, {os.cpu_count()}] (default: torch's)")
    s.add_argument("--device", type=device_name, help="cpu, cuda, cuda:N or mps, one this machine has "
                                                      "(default: the best available)")
    s.add_argument("--out", default="samples.png", metavar="FILE.png",
                   help="the PNG to write; its folder is made if missing (default samples.png)")
    s.set_defaults(func=_sample)

    from .cli_tokens import add_token_commands      # masked diffusion and its baseline (notebook 14)
    add_token_commands(sub)
    return p


# ----------------------------------------------------------------------------- errors

_ERRNO_FIXES = {errno.ENOSPC: "free disk space, or write to another disk (nothing was left half-written)",
                errno.EFBIG: "the file system refuses a file this large: write to another disk",
                errno.EDQUOT: "your disk quota is used up: free space, or write to another disk"}
_OS_FIXES = {PermissionError: "choose a path you can write to", FileExistsError: "choose another path",
             IsADirectoryError: "give a file name, not a folder", NotADirectoryError: "give a path under a folder"}


def _message(e: BaseException) -> str:
    """The error as one line: what is wrong; how to fix it."""
    if isinstance(e, OSError) and e.strerror and e.filename is not None:   # raised by the OS, not by the library
        fix = (_ERRNO_FIXES.get(e.errno) or next((f for cls, f in _OS_FIXES.items() if isinstance(e, cls)), None)
               or "check the path and free disk space")
        text = f"{e.strerror}: {e.filename}; {fix}"
    else:
        text = str(e)
    return " ".join(text.split())


def main(argv=None) -> int:
    """Run the command line; returns the exit code: 0, or 2 after printing one `error: ...` line."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (UsageError, ValueError, CheckpointError, OSError) as e:
        # UsageError: the options; ValueError and CheckpointError: what the library refuses (bad values,
        # foreign or corrupt checkpoints, a resume with other settings); OSError: paths (missing, not
        # writable, a file where a folder should be) and data that cannot be read. Anything else is a bug
        # and keeps its traceback.
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        # Out of memory: a MemoryError, torch's CPU allocator's RuntimeError ("can't allocate memory") or CUDA's
        # OutOfMemoryError (a RuntimeError). Any other RuntimeError is a bug and keeps its traceback.
        if isinstance(e, RuntimeError) and not (isinstance(e, getattr(torch, "OutOfMemoryError", ()))
                                                or "can't allocate memory" in str(e)):
            raise
        print(f"error: out of memory ({' '.join(str(e).split())[:160]}); use fewer images (--n) or a smaller "
              "--batch-size", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main())
