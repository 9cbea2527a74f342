"""Bad input, from the command line, the benchmark scripts and the Python API (issues 12 and 22).

Every case in the three tables below (CLI_CASES, BENCH_CASES, API_CASES: input, expected message fragment, and
exit code 2 or the exception's type) asserts three things: the message names the problem (a specific
substring), the command line exits with code 2 printing one `error: ...` line and no traceback, and
nothing was written (the listing of the test's folder, names, sizes and times, is the same before and
after). Then: a resume with changed settings, a run killed with SIGKILL in the middle of a checkpoint
write, and stale temporary files.

The command line trains on 16 synthetic images (diffusion_lib.data.load_dataset is replaced), so no
MNIST is needed; every network is a U-Net with 8 base channels and T = 20.
"""
from __future__ import annotations

import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import diffusion_lib.data
from diffusion_lib import cli
from diffusion_lib.backbones import UNet, build_backbone
from diffusion_lib.checkpoints import CheckpointError, load_checkpoint, load_model, save_checkpoint, temp_files
from diffusion_lib.forward import predict_eps_from_x0, predict_x0_from_eps, q_sample
from diffusion_lib.guidance import cfg_eps_model, guided_eps
from diffusion_lib.pretrained import export_for_sampling
from diffusion_lib.interpolation import slerp
from diffusion_lib.device import default_device
from diffusion_lib.objectives import min_snr_weight, objective_loss, v_target
from diffusion_lib.samplers import (NotFiniteError, alpha_bar_at, clipped_x0_eps_model, ddim_invert, ddim_sample_progressive,
                                    ddim_step, ddim_timesteps, ddpm_sample_progressive, ddpm_step, final,
                                    flow_euler_sample_progressive, flow_euler_step, flow_heun_sample_progressive,
                                    heun_sample_progressive, record, sample_noise)
from diffusion_lib.schedules import extract, longest_schedule, make_schedule
from diffusion_lib.training import RESUMABLE_FIELDS, TrainConfig, Trainer, diffusion_loss, train

from _tiny import one_thread  # noqa: F401 (one_thread is autouse)
from _tiny import synthetic_mnist, tiny_config

REPO = Path(__file__).resolve().parents[1]
T = 20
COND = {"base": 8, "num_classes": 10}
# The CLI options that reproduce the settings of the `runs` fixture's unconditional run.
SAME_AS_RUN = "train --base 8 --batch-size 4 --T 20 --steps 2 --device cpu"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Checkpoints of one step: an unconditional, a conditional and a flow-matching U-Net (base 8, T = 20), and a
    sampling-only export of the first (what the shipped weights look like)."""
    root = tmp_path_factory.mktemp("runs")
    images, labels = synthetic_mnist(8)
    train(tiny_config(steps=1, T=T), images, out_dir=root / "uncond", progress=False)
    train(tiny_config(steps=1, T=T, backbone_kwargs=COND), images, labels, out_dir=root / "cond", progress=False)
    train(tiny_config(steps=1, T=T, objective="flow"), images, out_dir=root / "flow", progress=False)
    train(tiny_config(steps=1, T=T, objective="flow", backbone_kwargs=COND), images, labels, out_dir=root / "flow_cond",
          progress=False)
    train(tiny_config(steps=1, T=T, objective="x0"), images, out_dir=root / "x0", progress=False)
    export_for_sampling(root / "uncond" / "last.pt", root / "shipped.pt")
    return {"uncond": root / "uncond" / "last.pt", "cond": root / "cond" / "last.pt", "shipped": root / "shipped.pt",
            "flow": root / "flow" / "last.pt", "flow_cond": root / "flow_cond" / "last.pt", "x0": root / "x0" / "last.pt"}


@pytest.fixture(autouse=True)
def tiny_data(monkeypatch):
    """The command line's training set: 16 synthetic images with labels, on the CPU."""
    data = synthetic_mnist(16)
    monkeypatch.setattr(diffusion_lib.data, "load_dataset", lambda name="mnist", train=True, root=None, download=True: data)
    monkeypatch.setenv("DIFFUSION_LIB_DEVICE", "cpu")


def listing(folder: Path) -> list:
    """Every file and folder under `folder`, with its size and modification time."""
    out = []
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        out.append((str(path.relative_to(folder)), path.is_dir(), st.st_size, st.st_mtime_ns))
    return out


# ----------------------------------------------------------------------------- set-ups of some cases

def a_file(name, content=b"some bytes"):
    def setup(tmp, runs, monkeypatch):
        (tmp / name).write_bytes(content)
    return setup


def a_folder(name):
    def setup(tmp, runs, monkeypatch):
        (tmp / name).mkdir()
    return setup


def read_only(name):
    """A folder that os.access reports as not writable (the tests run as root, for whom chmod changes nothing)."""
    def setup(tmp, runs, monkeypatch):
        folder = (tmp / name).resolve()
        folder.mkdir()
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p).resolve() == folder else real(p, mode, **kw))
    return setup


def a_run(which):
    """tmp/run/last.pt: a copy of one of the `runs` checkpoints."""
    def setup(tmp, runs, monkeypatch):
        (tmp / "run").mkdir()
        (tmp / "run" / "last.pt").write_bytes(runs[which].read_bytes())
    return setup


def a_changed_copy(name, change, of="uncond"):
    """tmp/<name>: a copy of one of the `runs` checkpoints, its record changed by change(record) (saved with a digest)."""
    def setup(tmp, runs, monkeypatch):
        record = load_checkpoint(runs[of])
        change(record)
        save_checkpoint(record, tmp / name)
    return setup


def a_flipped_copy(name, of="uncond"):
    """tmp/<name>: a copy of one of the `runs` checkpoints with one bit flipped inside a tensor's bytes."""
    def setup(tmp, runs, monkeypatch):
        from test_checkpoints import flip_a_tensor_byte
        flip_a_tensor_byte(runs[of], tmp / name)
    return setup


def env(name, value):
    def setup(tmp, runs, monkeypatch):
        monkeypatch.setenv(name, value)
    return setup


def drop_last_ema_tensor(record):
    record["ema"] = {k: v for k, v in list(record["ema"].items())[:-1]}


# ----------------------------------------------------------------------------- the command line

def case(id, argv, match, setup=None):
    return pytest.param(argv, match, setup, id=id)


SAMPLE_U = "sample --checkpoint {uncond} --steps 2 --n 2"
SAMPLE_C = "sample --checkpoint {cond} --steps 2 --n 2"
TRAIN = "train --base 8 --batch-size 4 --steps 2 --out {tmp}/run"

CLI_CASES = [
    # The tracebacks
    case("checkpoint-every-0", f"{TRAIN} --checkpoint-every 0", "argument --checkpoint-every: must be an integer >= 1, got 0"),
    case("backbone-kwargs-a-list", [*shlex.split(TRAIN), "--backbone-kwargs", "[1, 2]"],
         "--backbone-kwargs must be a JSON object"),
    case("out-txt", f"{SAMPLE_U} --out {{tmp}}/x.txt", "the file name must end in .png"),
    case("out-in-a-read-only-folder", f"{SAMPLE_U} --out {{tmp}}/ro/x.png",
         "is not writable; choose a folder you can write to", read_only("ro")),
    case("train-out-is-an-existing-file", "train --out {tmp}/file", "is a file, but training writes a folder",
         a_file("file")),
    case("resume-from-a-sampling-only-file", f"{SAME_AS_RUN} --out {{tmp}}/run", "it is a sampling-only file",
         a_run("shipped")),
    case("no-ema-on-a-sampling-only-file", "sample --checkpoint {shipped} --no-ema --steps 2 --n 2 --out {tmp}/x.png",
         "no raw weights, only the EMA ones"),
    # The silently accepted inputs
    case("n-0", f"{SAMPLE_U} --n 0 --out {{tmp}}/x.png", "argument --n: must be an integer in [1, 10000], got 0"),
    case("steps-0", "sample --checkpoint {uncond} --steps 0 --out {tmp}/x.png", "argument --steps: must be an integer >= 1, got 0"),
    case("w-on-an-unconditional-model", f"{SAMPLE_U} --w 2 --out {{tmp}}/x.png", "--w needs a class-conditional model"),
    case("eta-under-ddpm", "sample --checkpoint {uncond} --sampler ddpm --eta 0.5 --out {tmp}/x.png",
         "--eta applies to --sampler ddim only"),
    case("steps-under-ddpm", "sample --checkpoint {uncond} --sampler ddpm --steps 10 --out {tmp}/x.png",
         "--steps does not apply to --sampler ddpm"),
    case("ddpm-on-a-flow-model", "sample --checkpoint {flow} --sampler ddpm --out {tmp}/x.png",
         "--sampler ddpm does not apply to this model: it was trained with flow matching"),
    case("flow-sampler-on-an-eps-model", "sample --checkpoint {uncond} --sampler flow-euler --out {tmp}/x.png",
         "--sampler flow-euler does not apply to this model"),
    case("eta-on-a-flow-model", "sample --checkpoint {flow} --eta 0.5 --out {tmp}/x.png",
         "--eta applies to --sampler ddim only, and this model samples with flow-euler"),
    case("w-nan", f"{SAMPLE_C} --w nan --out {{tmp}}/x.png", "argument --w: must be a finite number in [0, 20], got nan"),
    case("label-10-the-null-label", f"{SAMPLE_C} --label 10 --out {{tmp}}/x.png", "--label 10 is not a class of this model"),
    case("limit-negative", f"{TRAIN} --limit -5", "argument --limit: must be an integer >= 1, got -5"),
    case("epochs-0", "train --epochs 0 --out {tmp}/run", "argument --epochs: must be > 0, got 0"),
    case("minutes-negative", f"{TRAIN} --minutes -1", "argument --minutes: must be > 0, got -1"),
    case("warmup-negative", f"{TRAIN} --warmup -3", "argument --warmup: must be an integer >= 0, got -3"),
    case("ema-decay-5", f"{TRAIN} --ema-decay 5", "argument --ema-decay: must be in [0, 1), got 5"),
    case("checkpoint-every-negative", f"{TRAIN} --checkpoint-every -1", "argument --checkpoint-every: must be an integer >= 1"),
    # The resumes that mixed settings
    case("resume-with-another-schedule-and-T", "train --base 8 --batch-size 4 --steps 2 --schedule cosine --T 50 "
         "--out {tmp}/run", "--schedule: the checkpoint records 'linear', this command gives 'cosine'", a_run("uncond")),
    case("resume-with-another-lr", f"{SAME_AS_RUN} --lr 0.5 --out {{tmp}}/run",
         "--lr: the checkpoint records 0.001, this command gives 0.5", a_run("uncond")),
    # The raw torch messages
    case("base-0", f"{TRAIN} --base 0", "argument --base: must be an integer >= 8 and a multiple of 8, got 0"),
    case("n-negative", f"{SAMPLE_U} --n -3 --out {{tmp}}/x.png", "argument --n: must be an integer in [1, 10000], got -3"),
    case("nrow-negative", f"{SAMPLE_U} --nrow -1 --out {{tmp}}/x.png", "argument --nrow: must be an integer >= 1, got -1"),
    # The long schedule
    case("linear-T-20000", f"{TRAIN} --T 20000", "the linear schedule with T = 20000 is not representable in float32"),
    # More of each kind: sample
    case("eta-2", f"{SAMPLE_U} --eta 2 --out {{tmp}}/x.png", "argument --eta: must be in [0, 1], got 2"),
    case("eta-nan", f"{SAMPLE_U} --eta nan --out {{tmp}}/x.png", "argument --eta: must be a finite number in [0, 1]"),
    case("eta-not-a-number", f"{SAMPLE_U} --eta high --out {{tmp}}/x.png", "argument --eta: must be a number in [0, 1], got 'high'"),
    case("steps-more-than-T", "sample --checkpoint {uncond} --steps 21 --n 2 --out {tmp}/x.png",
         "--steps 21 is more than the T = 20 steps"),
    case("variance-under-ddim", f"{SAMPLE_U} --variance beta --out {{tmp}}/x.png", "--variance applies to --sampler ddpm only"),
    case("label-on-an-unconditional-model", f"{SAMPLE_U} --label 3 --out {{tmp}}/x.png", "--label needs a class-conditional model"),
    case("label-negative", f"{SAMPLE_C} --label -1 --out {{tmp}}/x.png", "argument --label: must be an integer >= 0, got -1"),
    case("w-negative", f"{SAMPLE_C} --w -1 --out {{tmp}}/x.png", "argument --w: must be in [0, 20], got -1"),
    case("no-ema-on-a-shipped-model", "sample --pretrained unet --no-ema --out {tmp}/x.png",
         "the shipped models hold only their EMA weights"),
    case("unknown-pretrained", "sample --pretrained nope --out {tmp}/x.png", "argument --pretrained: invalid choice: 'nope'"),
    case("unknown-sampler", f"{SAMPLE_U} --sampler plms --out {{tmp}}/x.png", "argument --sampler: invalid choice: 'plms'"),
    case("no-source", "sample --out {tmp}/x.png", "one of the arguments --checkpoint --pretrained is required"),
    case("checkpoint-missing", "sample --checkpoint {tmp}/none.pt --out {tmp}/x.png", "no checkpoint at"),
    case("checkpoint-corrupt", "sample --checkpoint {tmp}/bad.pt --out {tmp}/x.png", "is corrupt or not a diffusion_lib checkpoint",
         a_file("bad.pt")),
    case("out-is-a-folder", f"{SAMPLE_U} --out {{tmp}}/grid.png", "is a folder; give a file name", a_folder("grid.png")),
    case("out-under-a-file", f"{SAMPLE_U} --out {{tmp}}/file/x.png", "is a file; choose a path under a folder",
         a_file("file")),
    case("device-unknown", f"{SAMPLE_U} --device banana --out {{tmp}}/x.png", "argument --device: 'banana' is not a device"),
    case("device-absent", f"{SAMPLE_U} --device cuda:7 --out {{tmp}}/x.png", "argument --device: 'cuda:7'"),
    case("sample-threads-0", f"{SAMPLE_U} --threads 0 --out {{tmp}}/x.png", "argument --threads: must be an integer in [1, "),
    case("sample-seed-negative", f"{SAMPLE_U} --seed -1 --out {{tmp}}/x.png", "argument --seed: must be an integer in [0, 4294967295]"),
    case("nrow-more-than-n", f"{SAMPLE_U} --nrow 5 --out {{tmp}}/x.png", "--nrow 5 is more than the 2 images"),
    case("n-not-an-integer", f"{SAMPLE_U} --n 2.5 --out {{tmp}}/x.png", "argument --n: must be an integer in [1, 10000], got '2.5'"),
    # More of each kind: train
    case("batch-size-0", f"{TRAIN} --batch-size 0", "argument --batch-size: must be an integer >= 1, got 0"),
    case("lr-0", f"{TRAIN} --lr 0", "argument --lr: must be in (0, 1], got 0"),
    case("lr-nan", f"{TRAIN} --lr nan", "argument --lr: must be a finite number in (0, 1]"),
    case("weight-decay-negative", f"{TRAIN} --weight-decay -0.1", "argument --weight-decay: must be >= 0, got -0.1"),
    case("T-0", f"{TRAIN} --T 0", "argument --T: must be an integer >= 1, got 0"),
    case("train-steps-0", "train --steps 0 --out {tmp}/run", "argument --steps: must be an integer >= 1, got 0"),
    case("steps-and-epochs", "train --steps 5 --epochs 1 --out {tmp}/run", "not allowed with argument"),
    case("label-dropout-1", f"{TRAIN} --conditional --label-dropout 1", "argument --label-dropout: must be in [0, 1), got 1"),
    case("label-dropout-without-conditional", f"{TRAIN} --label-dropout 0.2", "--label-dropout applies to --conditional"),
    case("conditional-convnet", "train --backbone convnet --conditional --out {tmp}/run", "--conditional needs --backbone unet"),
    case("base-12", f"{TRAIN} --base 12", "argument --base: must be an integer >= 8 and a multiple of 8, got 12"),
    case("base-on-convnet", "train --backbone convnet --base 16 --out {tmp}/run", "--base applies to --backbone unet only"),
    case("backbone-kwargs-bad-json", ["train", "--backbone-kwargs", '{"base": 8', "--out", "{tmp}/run"],
         "--backbone-kwargs is not valid JSON"),
    case("backbone-kwargs-unknown-argument", ["train", "--backbone-kwargs", '{"basee": 8}', "--out", "{tmp}/run"],
         "backbone 'unet' does not take these arguments"),
    case("backbone-kwargs-base-12", ["train", "--backbone-kwargs", '{"base": 12}', "--out", "{tmp}/run"],
         "base must be a positive multiple of 8 (the GroupNorm groups), got 12"),
    case("backbone-kwargs-mults-0", ["train", "--backbone-kwargs", '{"mults": [1, 0, 2]}', "--out", "{tmp}/run"],
         "every channel multiplier in mults must be a positive integer, got 0"),
    case("backbone-kwargs-num-classes", ["train", "--backbone-kwargs", '{"num_classes": 10}', "--out", "{tmp}/run"],
         "use --conditional"),
    case("base-given-twice", [*shlex.split(TRAIN), "--backbone-kwargs", '{"base": 16}'], "the base is given twice"),
    case("min-snr-gamma-without-min-snr", f"{TRAIN} --min-snr-gamma 3", "--min-snr-gamma applies to --loss-weighting min_snr"),
    case("min-snr-gamma-0", f"{TRAIN} --loss-weighting min_snr --min-snr-gamma 0", "argument --min-snr-gamma: must be > 0"),
    case("unknown-objective", f"{TRAIN} --objective score", "argument --objective: invalid choice: 'score'"),
    case("unknown-dataset", f"{TRAIN} --dataset cifar", "argument --dataset: invalid choice: 'cifar'"),
    case("unknown-precision", f"{TRAIN} --precision fp16", "argument --precision: invalid choice: 'fp16'"),
    case("train-seed-negative", f"{TRAIN} --seed -1", "argument --seed: must be an integer in [0, 4294967295], got -1"),
    case("train-threads-0", f"{TRAIN} --threads 0", "argument --threads: must be an integer in [1, "),
    case("limit-0", f"{TRAIN} --limit 0", "argument --limit: must be an integer >= 1, got 0"),
    case("limit-more-than-the-data", f"{TRAIN} --limit 1000", "--limit 1000 is more than the 16 training images"),
    case("data-not-a-folder", f"{TRAIN} --data {{tmp}}/nodata", "is not a folder; give the folder that holds MNIST/raw"),
    case("train-out-under-a-file", "train --out {tmp}/file/run", "is a file; choose a path under a folder", a_file("file")),
    case("train-out-in-a-read-only-folder", "train --out {tmp}/ro/run", "is not writable", read_only("ro")),
    case("resume-with-another-base", "train --base 16 --batch-size 4 --T 20 --steps 2 --out {tmp}/run",
         "the checkpoint records {'base': 8}, this command gives {'base': 16}", a_run("uncond")),
    case("resume-with-another-batch-size", "train --base 8 --batch-size 8 --T 20 --steps 2 --out {tmp}/run",
         "--batch-size: the checkpoint records 4, this command gives 8", a_run("uncond")),
    case("resume-as-conditional", f"{SAME_AS_RUN} --conditional --out {{tmp}}/run",
         "the checkpoint records {'base': 8}, this command gives {'base': 8, 'num_classes': 10}", a_run("uncond")),
    case("resume-a-corrupt-checkpoint", f"{SAME_AS_RUN} --out {{tmp}}/run", "is corrupt or not a diffusion_lib checkpoint",
         lambda tmp, runs, mp: ((tmp / "run").mkdir(), (tmp / "run" / "last.pt").write_bytes(b"torn"))),
    # Issue 22: wrong results
    case("flow-with-a-schedule", f"{TRAIN} --objective flow --schedule cosine",
         "--schedule cosine means nothing to --objective flow"),
    case("flow-min-snr-with-a-schedule", f"{TRAIN} --objective flow --loss-weighting min_snr --schedule linear",
         "--schedule linear means nothing to --objective flow"),
    case("w-1e308", f"{SAMPLE_C} --w 1e308 --out {{tmp}}/x.png", "argument --w: must be in [0, 20], got 1e+308"),
    case("w-1e308-flow", "sample --checkpoint {flow_cond} --steps 2 --n 2 --w 1e308 --out {tmp}/x.png",
         "argument --w: must be in [0, 20]"),
    case("w-21", f"{SAMPLE_C} --w 21 --out {{tmp}}/x.png", "argument --w: must be in [0, 20], got 21"),
    # Issue 22: tracebacks
    case("device-env-bogus", f"{SAMPLE_U} --out {{tmp}}/x.png", "DIFFUSION_LIB_DEVICE=bogus is not a device",
         env("DIFFUSION_LIB_DEVICE", "bogus")),
    case("device-env-absent-cuda", f"{SAMPLE_U} --out {{tmp}}/x.png", "DIFFUSION_LIB_DEVICE=cuda:7: this machine has",
         env("DIFFUSION_LIB_DEVICE", "cuda:7")),
    case("train-device-env-bogus", TRAIN, "DIFFUSION_LIB_DEVICE=bogus is not a device (cpu, cuda, cuda:N or mps); set DIFFUSION_LIB_DEVICE to cpu",
         env("DIFFUSION_LIB_DEVICE", "bogus")),
    case("weights-that-do-not-fit", "sample --checkpoint {tmp}/misfit.pt --steps 2 --n 2 --out {tmp}/x.png",
         "misfit.pt: its EMA weights do not fit the architecture it records (unet)",
         a_changed_copy("misfit.pt", drop_last_ema_tensor)),
    case("threads-beyond-the-cpus", f"{SAMPLE_U} --threads 100000 --out {{tmp}}/x.png",
         "argument --threads: must be an integer in [1, "),
    case("n-beyond-a-picture", f"{SAMPLE_U} --n 100000000000 --out {{tmp}}/x.png",
         "argument --n: must be an integer in [1, 10000], got 100000000000"),
    case("lr-1e300", f"{TRAIN} --lr 1e300", "argument --lr: must be in (0, 1], got 1e+300"),
    case("batch-size-beyond-the-data", "train --base 8 --batch-size 100 --steps 1 --out {tmp}/run",
         "--batch-size 100 is more than the 16 training images"),
    case("checkpoint-is-a-folder", "sample --checkpoint {tmp}/run --out {tmp}/x.png", "is a folder, not a checkpoint file",
         a_folder("run")),
    # Issue 22: silent accepts
    case("T-1", f"{TRAIN} --T 1", "the linear schedule with T = 1 does not end in noise"),
    case("T-10", f"{TRAIN} --T 10", "use T >= 11"),
    case("resume-with-another-limit", "train --base 8 --batch-size 4 --T 20 --steps 2 --limit 4 --out {tmp}/run",
         "--limit: the checkpoint records 8, this command gives 4", a_run("uncond")),
    case("resume-already-past-the-steps", "train --base 8 --batch-size 4 --T 20 --steps 1 --out {tmp}/run",
         "is already at step 1, and this run asks for 1 steps in all", a_run("uncond")),
    case("a-flipped-byte", "sample --checkpoint {tmp}/flipped.pt --steps 2 --n 2 --out {tmp}/x.png",
         "flipped.pt is damaged: its contents no longer match the digest", a_flipped_copy("flipped.pt")),
    case("T-0-in-a-checkpoint", "sample --checkpoint {tmp}/t0.pt --steps 2 --n 2 --out {tmp}/x.png",
         "t0.pt records a schedule that cannot be built",
         a_changed_copy("t0.pt", lambda r: r.update(schedule={"name": "linear", "T": 0}))),
    case("train-out-under-proc", "train --base 8 --batch-size 4 --steps 2 --out /proc/diffusion_lib_test_run", "/proc"),
    case("sample-out-under-proc", f"{SAMPLE_U} --out /proc/diffusion_lib_test.png", "/proc"),
    case("heun-on-a-flow-model", "sample --checkpoint {flow} --sampler heun --out {tmp}/x.png",
         "--sampler heun does not apply to this model: it was trained with flow matching"),
    case("ddim-on-a-conditional-flow-model", "sample --checkpoint {flow_cond} --sampler ddim --out {tmp}/x.png",
         "--sampler ddim does not apply to this model"),
]


def expand(argv, tmp: Path, runs: dict) -> list[str]:
    """The words of a case, with {tmp}, {uncond}, {cond} and {shipped} replaced by their paths."""
    words = shlex.split(argv) if isinstance(argv, str) else argv
    places = {"{tmp}": str(tmp), **{f"{{{k}}}": str(v) for k, v in runs.items()}}
    out = []
    for word in words:
        for place, path in places.items():
            word = word.replace(place, path)
        out.append(word)
    return out


@pytest.mark.parametrize("argv, match, setup", CLI_CASES)
def test_the_command_line_refuses(argv, match, setup, runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)               # anything written to the working folder would show in the listing
    if setup is not None:
        setup(tmp_path, runs, monkeypatch)
    before = listing(tmp_path)
    code = cli.main(expand(argv, tmp_path, runs))
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err       # one line
    assert match in err, err
    assert "Traceback" not in err and out == ""
    assert listing(tmp_path) == before                                   # nothing written


def test_the_tables_hold_at_least_60_cases():
    assert len(CLI_CASES) >= 60 and len(API_CASES) >= 60 and len(BENCH_CASES) >= 40


def test_sampling_says_which_weights_it_used(runs, tmp_path, capsys):
    """A checkpoint without EMA weights samples its raw ones, and says so (issue 22)."""
    record = load_checkpoint(runs["uncond"])
    del record["ema"]
    save_checkpoint(record, tmp_path / "noema.pt")
    assert cli.main(expand(f"sample --checkpoint {{tmp}}/noema.pt --steps 2 --n 2 --out {{tmp}}/x.png", tmp_path, runs)) == 0
    assert "raw weights: this checkpoint holds no EMA ones" in capsys.readouterr().out
    assert cli.main(expand(f"{SAMPLE_U} --out {{tmp}}/y.png", tmp_path, runs)) == 0
    assert "EMA weights" in capsys.readouterr().out


def test_a_failed_png_write_leaves_no_partial_file(runs, tmp_path, monkeypatch):
    """The PNG is written like a checkpoint: a temporary file, then a rename (issue 22)."""
    from PIL import Image
    from diffusion_lib.images import save_grid
    (tmp_path / "x.png").write_bytes(b"the previous grid")

    def fail_half_way(self, f, *args, **kwargs):
        f.write(b"half a PNG")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", fail_half_way)
    with pytest.raises(OSError, match="No space left"):
        save_grid(x(4), tmp_path / "x.png")
    assert (tmp_path / "x.png").read_bytes() == b"the previous grid"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


# ----------------------------------------------------------------------------- the benchmark scripts (issue 22)

def bench(id, script, argv, match, setup=None):
    return pytest.param(script, argv, match, setup, id=f"{script}:{id}")


EV = "--checkpoint {uncond} --n 2 --steps 2"
EV_C = "--checkpoint {cond} --n 2 --steps 2"
BENCH_CASES = [
    bench("pretrained-bogus", "evaluate", "--pretrained bogus", "argument --pretrained: invalid choice: 'bogus'"),
    bench("n-0", "evaluate", "--checkpoint {uncond} --n 0", "argument --n: must be an integer in [1, 10000], got 0"),
    bench("n-negative", "evaluate", "--checkpoint {uncond} --n -2", "argument --n: must be an integer in [1, 10000]"),
    bench("n-not-an-integer", "evaluate", "--checkpoint {uncond} --n 2.5", "argument --n: must be an integer"),
    bench("eta-1.5", "evaluate", f"{EV} --eta 1.5", "argument --eta: must be in [0, 1], got 1.5"),
    bench("eta-nan", "evaluate", f"{EV} --eta nan", "argument --eta: must be a finite number in [0, 1]"),
    bench("eta-negative", "evaluate", f"{EV} --eta -0.1", "argument --eta: must be in [0, 1], got -0.1"),
    bench("eta-empty", "evaluate", f"{EV} --eta", "argument --eta: expected at least one argument"),
    bench("eta-with-heun", "evaluate", f"{EV} --sampler heun --eta 0.5", "--eta applies to --sampler ddim only"),
    bench("threads-negative", "evaluate", f"{EV} --threads -1", "argument --threads: must be an integer in [1, "),
    bench("threads-0", "evaluate", f"{EV} --threads 0", "argument --threads: must be an integer in [1, "),
    bench("json-unwritable", "evaluate", f"{EV} --json /proc/diffusion_lib_test/results.json", "/proc"),
    bench("json-is-a-folder", "evaluate", f"{EV} --json {{tmp}}/out", "--json {tmp}/out is a folder", a_folder("out")),
    bench("json-under-a-file", "evaluate", f"{EV} --json {{tmp}}/file/r.json", "is a file; choose a path under a folder",
          a_file("file")),
    bench("w-on-an-unconditional-model", "evaluate", f"{EV} --w 2", "--w needs a class-conditional model"),
    bench("w-empty", "evaluate", f"{EV_C} --w", "argument --w: expected at least one argument"),
    bench("w-negative", "evaluate", f"{EV_C} --w -1", "argument --w: must be in [0, 20], got -1"),
    bench("w-inf", "evaluate", f"{EV_C} --w inf", "argument --w: must be a finite number in [0, 20]"),
    bench("w-1e308", "evaluate", f"{EV_C} --w 1e308", "argument --w: must be in [0, 20], got 1e+308"),
    bench("steps-with-ddpm", "evaluate", "--checkpoint {uncond} --n 2 --sampler ddpm --steps 10",
          "--steps does not apply to --sampler ddpm"),
    bench("steps-0", "evaluate", "--checkpoint {uncond} --n 2 --steps 0", "argument --steps: must be an integer >= 1, got 0"),
    bench("steps-more-than-T", "evaluate", "--checkpoint {uncond} --n 2 --steps 50",
          "--steps asks for 50 steps, more than the T = 20 steps of this model's schedule"),
    bench("nfe-0", "evaluate", "--checkpoint {uncond} --n 2 --nfe 0", "argument --nfe: must be an integer >= 1, got 0"),
    bench("nfe-with-ddpm", "evaluate", "--checkpoint {uncond} --n 2 --nfe 5 --sampler ddpm", "--nfe does not apply to --sampler ddpm"),
    bench("steps-and-nfe", "evaluate", "--checkpoint {uncond} --n 2 --nfe 5 --steps 5", "not allowed with argument"),
    bench("checkpoint-missing", "evaluate", "--checkpoint {tmp}/none.pt", "no checkpoint at"),
    bench("checkpoint-corrupt", "evaluate", "--checkpoint {tmp}/bad.pt", "is corrupt or not a diffusion_lib checkpoint",
          a_file("bad.pt")),
    bench("checkpoint-misfit", "evaluate", "--checkpoint {tmp}/misfit.pt --n 2", "its EMA weights do not fit",
          a_changed_copy("misfit.pt", drop_last_ema_tensor)),
    bench("seed-negative", "evaluate", f"{EV} --seed -1", "argument --seed: must be an integer in [0, 4294967295]"),
    bench("seed-float", "evaluate", f"{EV} --seed 1.5", "argument --seed: must be an integer"),
    bench("ddpm-on-a-flow-model", "evaluate", "--checkpoint {flow} --n 2 --sampler ddpm",
          "--sampler ddpm does not apply to this model: it was trained with flow matching"),
    bench("flow-sampler-on-an-eps-model", "evaluate", "--checkpoint {uncond} --n 2 --sampler flow-heun",
          "--sampler flow-heun does not apply to this model"),
    bench("no-source", "evaluate", "--n 2", "one of the arguments --checkpoint --pretrained is required"),
    bench("minutes-inf", "recipes", "--minutes inf --out {tmp}/o", "argument --minutes: must be a finite number in (0, 1440]"),
    bench("minutes-0", "recipes", "--minutes 0 --out {tmp}/o", "argument --minutes: must be in (0, 1440], got 0"),
    bench("minutes-nan", "recipes", "--minutes nan --out {tmp}/o", "argument --minutes: must be a finite number"),
    bench("minutes-negative", "recipes", "--minutes -1 --out {tmp}/o", "argument --minutes: must be in (0, 1440], got -1"),
    bench("minutes-text", "recipes", "--minutes ten --out {tmp}/o", "argument --minutes: must be a number in (0, 1440], got 'ten'"),
    bench("n-0", "recipes", "--n 0 --out {tmp}/o", "argument --n: must be an integer in [1, 10000], got 0"),
    bench("curve-every-0", "recipes", "--curve-every 0 --out {tmp}/o", "argument --curve-every: must be > 0, got 0"),
    bench("curve-every-past-the-budget", "recipes", "--minutes 1 --curve-every 5 --out {tmp}/o",
          "--curve-every 5 is not less than --minutes 1"),
    bench("rows-unknown", "recipes", "--rows bogus --out {tmp}/o", "argument --rows: invalid choice: 'bogus'"),
    bench("rows-empty", "recipes", "--rows --out {tmp}/o", "argument --rows: expected at least one argument"),
    bench("out-missing", "recipes", "--minutes 1", "the following arguments are required: --out"),
    bench("out-is-a-file", "recipes", "--out {tmp}/f", "is a file, but training writes a folder", a_file("f")),
    bench("out-unwritable", "recipes", "--out /proc/diffusion_lib_test_recipes", "/proc"),
    bench("out-in-a-read-only-folder", "recipes", "--out {tmp}/ro/o", "is not writable", read_only("ro")),
    bench("clip-x0-of-flow-rows-only", "recipes", "--clip-x0 --rows flow --out {tmp}/o",
          "every row given is a flow row"),
    bench("clip-x0-with-curve-every", "recipes", "--clip-x0 --rows eps --curve-every 1 --out {tmp}/o",
          "--curve-every applies to training, and --clip-x0 trains nothing"),
    bench("results-json-unreadable", "recipes", "--out {tmp}/o", "results.json cannot be read",
          lambda tmp, runs, mp: ((tmp / "o").mkdir(), (tmp / "o" / "results.json").write_text("{not json"))),
]

SCRIPTS = {}


def script(name):
    """benchmarks/<name>.py imported once, with the first step of its work (the classifier's loading) replaced by
    a failure: a bad invocation that reached the work would fail this test instead of costing minutes."""
    if name not in SCRIPTS:
        from _tiny import load_script
        module = load_script(REPO / "benchmarks" / f"{name}.py", f"bad_inputs_{name}")
        SCRIPTS[name] = module
    return SCRIPTS[name]


@pytest.mark.parametrize("name, argv, match, setup", BENCH_CASES)
def test_the_benchmark_scripts_refuse(name, argv, match, setup, runs, tmp_path, monkeypatch, capsys):
    module = script(name)

    def work_started(*args, **kwargs):
        raise AssertionError("the script started its work before refusing the bad input")
    monkeypatch.setattr(module, "load_classifier", work_started)
    if hasattr(module, "load_mnist"):
        monkeypatch.setattr(module, "load_mnist", work_started)
    monkeypatch.chdir(tmp_path)
    if setup is not None:
        setup(tmp_path, runs, monkeypatch)
    before = listing(tmp_path)
    code = module.main(expand(argv, tmp_path, runs))
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err       # one line
    assert match.replace("{tmp}", str(tmp_path)) in err, err
    assert "Traceback" not in err and out == ""
    assert listing(tmp_path) == before                                   # nothing written


@pytest.mark.parametrize("argv, match", [
    ("train --checkpoint-every 0 --out {tmp}/run", "argument --checkpoint-every: must be an integer >= 1"),
    ("sample --checkpoint {shipped} --no-ema --steps 2 --n 1 --device cpu --out {tmp}/x.png", "no raw weights"),
], ids=["checkpoint-every-0", "no-ema-on-a-sampling-only-file"])
def test_a_real_process_prints_one_line_and_no_traceback(argv, match, runs, tmp_path):
    before = listing(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DIFFUSION_LIB_DEVICE": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "diffusion_lib", *expand(argv, tmp_path, runs)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert match in proc.stderr and "Traceback" not in proc.stderr
    assert listing(tmp_path) == before


def test_a_write_that_fails_late_is_one_line_too(runs, tmp_path, monkeypatch, capsys):
    """Past the up-front checks (the folder became read-only while sampling): the OS error, mapped, no file."""
    def refuse(images, path, nrow=None):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr("diffusion_lib.images.save_grid", refuse)
    code = cli.main(expand(f"{SAMPLE_U} --out {{tmp}}/x.png", tmp_path, runs))
    err = capsys.readouterr().err
    assert code == 2
    last = err.strip().splitlines()[-1]                                  # the lines before are the progress bar
    assert last == f"error: Permission denied: {tmp_path / 'x.png'}; choose a path you can write to"
    assert "Traceback" not in err and not (tmp_path / "x.png").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a user whom chmod restricts (not root)")
def test_a_really_read_only_folder(runs, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert cli.main(expand(f"{SAMPLE_U} --out {{tmp}}/ro/x.png", tmp_path, runs)) == 2
        assert "is not writable" in capsys.readouterr().err and not any(folder.iterdir())
    finally:
        folder.chmod(0o755)


def test_help_states_the_range_of_every_option():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, cli.argparse._SubParsersAction)).choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            if action.type is not None and action.type is not str:
                assert any(s in (action.help or "") for s in (">=", "> 0", "in [", "in (", "cpu, cuda")), \
                    f"{name} {action.option_strings}: {action.help}"
    assert f"T = {longest_schedule('linear')}" in " ".join(subparsers["train"].format_help().split())


# ----------------------------------------------------------------------------- the Python API

def api(id, call, error, match, setup=None):
    return pytest.param(call, error, match, setup, id=id)


def x(B=2):
    return torch.rand((B, 1, 28, 28), generator=torch.Generator().manual_seed(0)) * 2 - 1


def unet(**kwargs):
    torch.manual_seed(0)
    return UNet(base=8, **kwargs).eval()


def tiny_train(tmp, images=None, labels=None, **config):
    """One step (unless `steps` is given) of the tiny U-Net with T = 20 into tmp/run."""
    if images is None:
        images = synthetic_mnist(8)[0]
    settings = {"steps": 1, "T": T, **config}
    return train(tiny_config(**settings), images, labels, out_dir=tmp / "run", progress=False)


IMAGES, LABELS = synthetic_mnist(8)
SCHEDULE = make_schedule("linear", 1000)

API_CASES = [
    # TrainConfig: every field
    api("grad-clip-negative", lambda tmp, runs: TrainConfig(grad_clip=-1), ValueError,
        "grad_clip must be > 0 (or None for no clipping), got -1"),
    api("grad-clip-0", lambda tmp, runs: TrainConfig(grad_clip=0), ValueError, "grad_clip must be > 0"),
    api("ema-decay-1", lambda tmp, runs: TrainConfig(ema_decay=1.0), ValueError, "ema_decay must be in [0, 1), got 1.0"),
    api("ema-decay-5", lambda tmp, runs: TrainConfig(ema_decay=5), ValueError, "ema_decay must be in [0, 1), got 5"),
    api("warmup-negative", lambda tmp, runs: TrainConfig(warmup_steps=-3), ValueError,
        "warmup_steps must be an integer >= 0, got -3"),
    api("checkpoint-every-0", lambda tmp, runs: TrainConfig(checkpoint_every=0), ValueError,
        "checkpoint_every must be an integer >= 1, got 0"),
    api("max-minutes-negative", lambda tmp, runs: TrainConfig(max_minutes=-1), ValueError, "max_minutes must be > 0"),
    api("lr-0", lambda tmp, runs: TrainConfig(lr=0), ValueError, "lr must be in (0, 1], got 0"),
    api("lr-inf", lambda tmp, runs: TrainConfig(lr=math.inf), ValueError, "lr must be a finite number in (0, 1]"),
    api("weight-decay-negative", lambda tmp, runs: TrainConfig(weight_decay=-0.1), ValueError, "weight_decay must be >= 0"),
    api("batch-size-0", lambda tmp, runs: TrainConfig(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    api("steps-float", lambda tmp, runs: TrainConfig(steps=2.5), ValueError, "steps must be an integer >= 1, got 2.5"),
    api("T-0", lambda tmp, runs: TrainConfig(T=0), ValueError, "T must be an integer >= 1, got 0"),
    api("seed-negative", lambda tmp, runs: TrainConfig(seed=-1), ValueError, "seed must be an integer in [0, 4294967295]"),
    api("unknown-schedule", lambda tmp, runs: TrainConfig(schedule="quadratic"), ValueError,
        "schedule must be one of ('cosine', 'linear'), got 'quadratic'"),
    api("unknown-objective", lambda tmp, runs: TrainConfig(objective="score"), ValueError,
        "objective must be one of ('eps', 'flow', 'meanflow', 'v', 'x0'), got 'score'"),
    api("unknown-loss-weighting", lambda tmp, runs: TrainConfig(loss_weighting="snr"), ValueError,
        "loss_weighting must be one of ('none', 'min_snr')"),
    api("min-snr-gamma-0", lambda tmp, runs: TrainConfig(min_snr_gamma=0), ValueError, "min_snr_gamma must be > 0"),
    api("unknown-dataset", lambda tmp, runs: TrainConfig(dataset="cifar"), ValueError,
        "dataset must be one of ('mnist', 'fashion_mnist'), got 'cifar'"),
    api("label-dropout-1", lambda tmp, runs: TrainConfig(label_dropout=1.0), ValueError, "label_dropout must be in [0, 1)"),
    api("unknown-backbone", lambda tmp, runs: TrainConfig(backbone="resnet"), ValueError, "backbone must be one of"),
    api("backbone-kwargs-a-list", lambda tmp, runs: TrainConfig(backbone_kwargs=[1, 2]), ValueError,
        "backbone_kwargs must be a dict"),
    # train(): the data
    api("empty-dataset", lambda tmp, runs: tiny_train(tmp, IMAGES[:0]), ValueError, "there are no training images (N = 0)"),
    api("conditional-without-labels", lambda tmp, runs: tiny_train(tmp, backbone_kwargs=COND), ValueError,
        "the backbone is class-conditional (num_classes=10) but no labels were given"),
    api("labels-for-an-unconditional-backbone", lambda tmp, runs: tiny_train(tmp, IMAGES, LABELS), ValueError,
        "labels were given but the backbone is unconditional"),
    api("images-in-0-255", lambda tmp, runs: tiny_train(tmp, (IMAGES + 1) * 127.5), ValueError,
        "images must lie in [-1, 1], got values in [0"),
    api("images-in-0-255-say-how-to-rescale", lambda tmp, runs: tiny_train(tmp, (IMAGES + 1) * 127.5), ValueError,
        "x / 127.5 - 1"),
    api("images-nan", lambda tmp, runs: tiny_train(tmp, IMAGES.clone().index_fill_(0, torch.tensor([3]), math.nan)),
        ValueError, "images contain NaN or infinite values"),
    api("images-float64", lambda tmp, runs: tiny_train(tmp, IMAGES.double()), ValueError,
        "images must be float32 in [-1, 1], got dtype torch.float64; use images.float()"),
    api("images-uint8", lambda tmp, runs: tiny_train(tmp, ((IMAGES + 1) * 127.5).to(torch.uint8)), ValueError,
        "scale uint8 pixels with x.float() / 127.5 - 1"),
    api("images-of-another-shape", lambda tmp, runs: tiny_train(tmp, torch.zeros(4, 1, 32, 32)), ValueError,
        "images must have shape (N, 1, 28, 28) for this network, got (4, 1, 32, 32)"),
    api("labels-float", lambda tmp, runs: tiny_train(tmp, IMAGES, LABELS.float(), backbone_kwargs=COND), ValueError,
        "labels must be an integer tensor (torch.long), got dtype torch.float32"),
    api("labels-10", lambda tmp, runs: tiny_train(tmp, IMAGES, torch.full((8,), 10), backbone_kwargs=COND), ValueError,
        "labels must lie in [0, 9]"),
    api("out-dir-is-a-file", lambda tmp, runs: tiny_train(tmp), NotADirectoryError, "is a file, not a folder",
        a_file("run")),
    api("resume-from-a-sampling-only-file", lambda tmp, runs: tiny_train(tmp), CheckpointError,
        "it is a sampling-only file", a_run("shipped")),
    api("resume-with-another-lr", lambda tmp, runs: tiny_train(tmp, lr=0.5), CheckpointError,
        "lr: recorded 0.001, given 0.5", a_run("uncond")),
    api("resume-with-another-objective", lambda tmp, runs: tiny_train(tmp, objective="v"), CheckpointError,
        "objective: recorded 'eps', given 'v'", a_run("uncond")),
    api("resume-with-two-differences", lambda tmp, runs: tiny_train(tmp, schedule="cosine", T=50), CheckpointError,
        "schedule: recorded 'linear', given 'cosine'; T: recorded 20, given 50", a_run("uncond")),
    api("diffusion-loss-sum", lambda tmp, runs: diffusion_loss(unet(), x(), SCHEDULE, reduction="sum"), ValueError,
        "reduction must be 'mean' (one number) or 'none' (one loss per image), got 'sum'"),
    # backbones: architecture and forward()
    api("unet-base-12", lambda tmp, runs: UNet(base=12), ValueError, "base must be a positive multiple of 8"),
    api("unet-base-negative", lambda tmp, runs: UNet(base=-8), ValueError, "base (the channels at 28x28) must be a positive"),
    api("unet-base-0", lambda tmp, runs: UNet(base=0), ValueError, "must be a positive integer, got 0"),
    api("unet-mults-0", lambda tmp, runs: UNet(base=8, mults=(1, 0, 2)), ValueError, "every channel multiplier"),
    api("unet-mults-float", lambda tmp, runs: UNet(base=8, mults=(1, 1.5, 2)), ValueError, "every channel multiplier"),
    api("unet-num-classes-0", lambda tmp, runs: UNet(base=8, num_classes=0), ValueError, "num_classes"),
    api("mlp-hidden-0", lambda tmp, runs: build_backbone("mlp", hidden=[0]), ValueError, "every hidden width must be a positive"),
    api("unet-t-500.5", lambda tmp, runs: unet()(x(), torch.tensor([500.5, 1.0])), ValueError,
        "t must be an integer tensor (torch.long) of timesteps, got dtype torch.float32"),
    api("unet-t-5000", lambda tmp, runs: unet()(x(), torch.tensor([5000, 1])), ValueError,
        "got values in [1, 5000], but this network is used with T = 1000 steps, so t must lie in [0, 999]"),
    api("unet-t-minus-7", lambda tmp, runs: unet()(x(), torch.tensor([-7, 1])), ValueError, "so t must lie in [0, 999]"),
    api("unet-t-beyond-a-loaded-T", lambda tmp, runs: load_model(runs["uncond"])(x(), torch.tensor([20, 0])), ValueError,
        "this network is used with T = 20 steps, so t must lie in [0, 19]"),
    api("unet-float64-images", lambda tmp, runs: unet()(x().double(), torch.tensor([1, 2])), ValueError,
        "UNet has torch.float32 weights but got torch.float64 images; pass x.to(torch.float32)"),
    api("unet-uint8-images", lambda tmp, runs: unet()(x().to(torch.uint8), torch.tensor([1, 2])), ValueError,
        "scale uint8 pixels with x.float() / 127.5 - 1"),
    api("unet-float-labels", lambda tmp, runs: unet(num_classes=10)(x(), torch.tensor([1, 2]), torch.tensor([1.0, 2.0])),
        ValueError, "labels y must be an integer tensor (torch.long) of classes, got dtype torch.float32"),
    api("unet-label-11", lambda tmp, runs: unet(num_classes=10)(x(), torch.tensor([1, 2]), torch.tensor([1, 11])),
        ValueError, "labels must lie in [0, 10]"),
    api("ddim-with-a-float64-x_T", lambda tmp, runs: final(ddim_sample_progressive(unet(), x().double(), SCHEDULE, 2)),
        ValueError, "got torch.float64 images"),
    # forward.py and the samplers: timesteps
    api("ddpm-step-t-minus-1", lambda tmp, runs: ddpm_step(x(), x(), -1, -2, SCHEDULE), ValueError,
        "timestep t_prev must be an integer in [-1, 999] (-1: the clean image"),
    api("ddpm-step-skipping", lambda tmp, runs: ddpm_step(x(), x(), 999, 500, SCHEDULE), ValueError,
        "DDPM steps one timestep at a time"),
    api("alpha-bar-at-T", lambda tmp, runs: alpha_bar_at(SCHEDULE, 1000), ValueError,
        "timestep 1000 is outside [-1, T-1] = [-1, 999]"),
    api("ddim-step-eta-from-the-clean-image", lambda tmp, runs: ddim_step(x(), x(), -1, 0, SCHEDULE, eta=0.5),
        ValueError, "eta > 0 needs a noisy starting state"),
    api("ddim-steps-true", lambda tmp, runs: ddim_timesteps(True, 1000), ValueError,
        "the number of sampling steps must be an integer in [1, 1000] (T = 1000), got True (bool)"),
    api("sample-noise-negative", lambda tmp, runs: sample_noise(-3), ValueError,
        "the number of images n must be an integer >= 1, got -3"),
    api("record-every-0", lambda tmp, runs: record(ddim_sample_progressive(unet(), x(), SCHEDULE, 2), every=0),
        ValueError, "every must be an integer >= 1 (keep every every-th step), got 0"),
    api("slerp-of-zero-vectors", lambda tmp, runs: slerp(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), 0.5), ValueError,
        "a zero vector has no direction"),
    api("nan-x-T", lambda tmp, runs: ddim_sample_progressive(unet(), torch.full((2, 1, 28, 28), math.nan), SCHEDULE, 2),
        ValueError, "x_T has NaN or infinite entries"),
    api("predict-x0-t-minus-1", lambda tmp, runs: predict_x0_from_eps(x(), torch.tensor([-1, 3]), x(), SCHEDULE),
        ValueError, "t must lie in [0, 999]"),
    api("predict-eps-t-minus-1", lambda tmp, runs: predict_eps_from_x0(x(), -1, x(), SCHEDULE), ValueError,
        "t must lie in [0, 999]"),
    api("predict-x0-eps-of-another-shape", lambda tmp, runs: predict_x0_from_eps(x(), 3, x(1), SCHEDULE), ValueError,
        "x_t and eps must have the same shape"),
    api("q-sample-int-t-1000", lambda tmp, runs: q_sample(x(), 1000, SCHEDULE), ValueError, "t must lie in [0, 999]"),
    api("q-sample-float-t", lambda tmp, runs: q_sample(x(), 2.5, SCHEDULE), TypeError,
        "t must be a Python int or a (B,) tensor of integer timesteps, got float"),
    api("extract-t-minus-1", lambda tmp, runs: extract(SCHEDULE.beta, torch.tensor([-1]), (1, 1, 28, 28)), ValueError,
        "timestep out of range"),
    api("linear-T-20000", lambda tmp, runs: make_schedule("linear", 20000), ValueError,
        "is not representable in float32: alpha_bar_t falls below"),
    api("linear-T-20000-names-the-fix", lambda tmp, runs: make_schedule("linear", 20000), ValueError,
        f"use fewer steps T, or the cosine schedule (the linear schedule stays representable up to T = "
        f"{longest_schedule('linear')})"),
    # guidance and eta
    api("guided-eps-w-nan", lambda tmp, runs: guided_eps(x(), x(), math.nan), ValueError,
        "the guidance weight w must be a finite number in [0, 20]"),
    api("cfg-w-inf", lambda tmp, runs: cfg_eps_model(unet(num_classes=10), torch.tensor([1, 2]), math.inf), ValueError,
        "the guidance weight w must be a finite number in [0, 20]"),
    api("eta-nan", lambda tmp, runs: final(ddim_sample_progressive(unet(), x(), SCHEDULE, 2, eta=math.nan)), ValueError,
        "eta must be a finite number in [0, 1]"),
    # checkpoints
    api("no-ema-on-a-sampling-only-file", lambda tmp, runs: load_model(runs["shipped"], ema=False), CheckpointError,
        "this checkpoint has no raw weights, only the EMA ones"),
    # Issue 22: wrong results
    api("ddim-step-eta-1.5", lambda tmp, runs: ddim_step(x(), x(), 500, 400, SCHEDULE, x(), eta=1.5), ValueError,
        "eta must lie in [0, 1] (0: deterministic DDIM, 1: DDPM-like noise), got 1.5"),
    api("min-snr-t-minus-1", lambda tmp, runs: min_snr_weight(torch.tensor([-1]), SCHEDULE), ValueError,
        "got values in [-1, -1], but this schedule has T = 1000, so t must lie in [0, 999]"),
    api("min-snr-t-1000", lambda tmp, runs: min_snr_weight(torch.tensor([1000]), SCHEDULE), ValueError,
        "t must lie in [0, 999]"),
    api("clip-x0-with-a-flow-sampler", lambda tmp, runs: evaluate_script().generate(
        load_model(runs["flow"]), make_schedule("linear", T), 2, "flow-euler", steps=2, clip_x0=True), ValueError,
        "clip_x0 clips the clean image that eps implies, and --sampler flow-euler steps with a velocity"),
    api("clipping-a-flow-model", lambda tmp, runs: clipped_x0_eps_model(load_model(runs["flow"]), make_schedule("linear", T)),
        ValueError, "clipping the implied clean image (clipped_x0_eps_model) needs a network that predicts eps, but "
        "this one predicts velocity"),
    api("cfg-w-1e308", lambda tmp, runs: cfg_eps_model(load_model(runs["cond"]), torch.tensor([1, 2]), 1e308),
        ValueError, "the guidance weight w must lie in [0, 20]"),
    api("guided-eps-w-21", lambda tmp, runs: guided_eps(x(), x(), 21), ValueError, "w must lie in [0, 20]"),
    # Issue 22: a model that knows what it is
    api("ddim-on-a-flow-model", lambda tmp, runs: ddim_sample_progressive(load_model(runs["flow"]), x(), S20, 2),
        ValueError, "DDIM sampling needs a network that predicts eps, but this one predicts velocity (trained with the "
        "'flow' objective); sample it with the flow samplers"),
    api("ddpm-on-a-flow-model", lambda tmp, runs: ddpm_sample_progressive(load_model(runs["flow"]), x(), S20),
        ValueError, "DDPM sampling needs a network that predicts eps"),
    api("heun-on-a-flow-model", lambda tmp, runs: heun_sample_progressive(load_model(runs["flow"]), x(), S20, 2),
        ValueError, "Heun sampling needs a network that predicts eps"),
    api("inversion-of-a-flow-model", lambda tmp, runs: ddim_invert(load_model(runs["flow"]), x(), S20, 2),
        ValueError, "DDIM inversion needs a network that predicts eps"),
    api("flow-euler-on-an-eps-model", lambda tmp, runs: flow_euler_sample_progressive(load_model(runs["uncond"]), x(), S20, 2),
        ValueError, "flow Euler sampling needs a network that predicts velocity, but this one predicts eps (trained with "
        "the 'eps' objective); sample it with the DDPM family's samplers"),
    api("flow-heun-on-an-x0-model", lambda tmp, runs: flow_heun_sample_progressive(load_model(runs["x0"]), x(), S20, 2),
        ValueError, "flow Heun sampling needs a network that predicts velocity, but this one predicts eps"),
    api("ddim-on-a-guided-flow-model", lambda tmp, runs: ddim_sample_progressive(
        cfg_eps_model(load_model(runs["flow_cond"]), torch.tensor([1, 2]), 2.0), x(), S20, 2), ValueError,
        "DDIM sampling needs a network that predicts eps, but this one predicts velocity"),
    api("ddim-on-a-raw-x0-network", lambda tmp, runs: ddim_sample_progressive(
        train(tiny_config(steps=1, T=T, objective="x0"), IMAGES, progress=False).ema, x(), S20, 2),
        ValueError, "this one predicts x0 (trained with the 'x0' objective); wrap it so that its output becomes eps: "
        "objectives.eps_model_for(model, 'x0', model.schedule)"),
    api("ddim-with-another-schedule", lambda tmp, runs: ddim_sample_progressive(load_model(runs["uncond"]), x(),
        make_schedule("cosine", T), 2), ValueError, "DDIM sampling was given the cosine schedule with T = 20, but this model "
        "was trained with the linear schedule with T = 20; pass the model's own schedule, model.schedule"),
    api("flow-with-another-T", lambda tmp, runs: flow_euler_sample_progressive(load_model(runs["flow"]), x(), SCHEDULE, 2),
        ValueError, "flow Euler sampling was given a schedule with T = 1000, but this model was trained with T = 20"),
    # Issue 22: numbers as numbers
    api("eta-a-string", lambda tmp, runs: ddim_sample_progressive(unet(), x(), SCHEDULE, 2, eta="0.5"), ValueError,
        "eta must be a number in [0, 1] (0: deterministic DDIM, 1: DDPM-like noise), got the string '0.5'"),
    api("eta-true", lambda tmp, runs: ddim_sample_progressive(unet(), x(), SCHEDULE, 2, eta=True), ValueError,
        "eta must be a number in [0, 1]"),
    api("ddim-step-eta-a-string", lambda tmp, runs: ddim_step(x(), x(), 10, 5, SCHEDULE, eta="0.5"), ValueError,
        "got the string '0.5'"),
    api("w-a-string", lambda tmp, runs: cfg_eps_model(unet(num_classes=10), torch.tensor([1, 2]), "2"), ValueError,
        "the guidance weight w must be a number in [0, 20]"),
    api("w-true", lambda tmp, runs: cfg_eps_model(unet(num_classes=10), torch.tensor([1, 2]), True), ValueError,
        "got True (bool)"),
    api("guided-eps-w-a-string", lambda tmp, runs: guided_eps(x(), x(), "2"), ValueError, "got the string '2'"),
    api("gamma-a-string", lambda tmp, runs: min_snr_weight(torch.tensor([3]), SCHEDULE, gamma="5"), ValueError,
        "min-SNR gamma must be a number > 0"),
    api("gamma-true", lambda tmp, runs: min_snr_weight(torch.tensor([3]), SCHEDULE, gamma=True), ValueError,
        "min-SNR gamma must be a number > 0"),
    api("ddim-step-float-t", lambda tmp, runs: ddim_step(x(), x(), 10.5, 5, S20), ValueError,
        "timestep t must be an integer (-1: the clean image), got 10.5 (float)"),
    api("ddim-step-string-t", lambda tmp, runs: ddim_step(x(), x(), "10", 5, S20), ValueError,
        "timestep t must be an integer"),
    api("ddpm-step-float-t", lambda tmp, runs: ddpm_step(x(), x(), 10.0, 9.0, S20), ValueError,
        "timestep t must be an integer in [-1, 19]"),
    api("sample-noise-float-n", lambda tmp, runs: sample_noise(2.0), ValueError,
        "the number of images n must be an integer >= 1, got 2.0 (float)"),
    api("cfg-float-labels", lambda tmp, runs: cfg_eps_model(unet(num_classes=10), torch.tensor([1.5, 2.0]), 2.0),
        ValueError, "labels y must hold integer classes (torch.long), got dtype torch.float32"),
    api("cfg-float-list-labels", lambda tmp, runs: cfg_eps_model(unet(num_classes=10), [1.5, 2.0], 2.0), ValueError,
        "labels y must hold integer classes"),
    # Issue 22: labels
    api("cfg-the-null-label", lambda tmp, runs: cfg_eps_model(unet(num_classes=10), torch.tensor([10, 2]), 2.0),
        ValueError, "labels y must be classes in [0, 9], got values in [2, 10] (10 is the null label"),
    api("cfg-label-11", lambda tmp, runs: cfg_eps_model(unet(num_classes=10), torch.tensor([11, 2]), 2.0), ValueError,
        "labels y must be classes in [0, 9]"),
    api("cfg-label-negative", lambda tmp, runs: cfg_eps_model(unet(num_classes=10), torch.tensor([-1, 2]), 2.0),
        ValueError, "labels y must be classes in [0, 9], got values in [-1, 2]"),
    api("cfg-labels-2d", lambda tmp, runs: cfg_eps_model(unet(num_classes=10), torch.tensor([[1, 2]]), 2.0), ValueError,
        "labels y must have shape (B,), one class per image, got shape (1, 2)"),
    api("cfg-on-an-unconditional-model", lambda tmp, runs: cfg_eps_model(unet(), torch.tensor([1, 2]), 2.0), ValueError,
        "classifier-free guidance needs a class-conditional model, and this one is unconditional"),
    # Issue 22: timesteps at every public function
    api("alpha-bar-at-2.5", lambda tmp, runs: alpha_bar_at(SCHEDULE, 2.5), ValueError,
        "timestep t must be an integer (-1: the clean image), got 2.5 (float)"),
    api("flow-euler-step-t-2000", lambda tmp, runs: flow_euler_step(x(), x(), 2000, 1999, SCHEDULE), ValueError,
        "timestep t must be an integer in [-1, 999]"),
    api("flow-euler-step-t-minus-5", lambda tmp, runs: flow_euler_step(x(), x(), -5, -6, SCHEDULE), ValueError,
        "timestep t must be an integer in [-1, 999]"),
    api("ddim-step-t-2000", lambda tmp, runs: ddim_step(x(), x(), 2000, 1000, SCHEDULE), ValueError,
        "timestep 2000 is outside [-1, T-1] = [-1, 999]"),
    api("objective-loss-t-1000", lambda tmp, runs: objective_loss(unet(), x(), SCHEDULE, "eps", t=torch.tensor([1000, 3])),
        ValueError, "t must lie in [0, 999]"),
    api("flow-loss-t-1000", lambda tmp, runs: objective_loss(unet(), x(), SCHEDULE, "flow", t=torch.tensor([1000, 3])),
        ValueError, "t must lie in [0, 999]"),
    api("flow-loss-float-t", lambda tmp, runs: objective_loss(unet(), x(), SCHEDULE, "flow", t=torch.tensor([0.5, 3.0])),
        ValueError, "timesteps must be an integer tensor (torch.long), got dtype torch.float32"),
    # Issue 22: shapes at public boundaries
    api("weights-of-the-wrong-length", lambda tmp, runs: objective_loss(unet(), x(), SCHEDULE, weights=torch.ones(3)),
        ValueError, "weights must have shape (B,) = (2,), one per image, got (3,)"),
    api("noise-of-another-shape", lambda tmp, runs: objective_loss(unet(), x(), SCHEDULE, noise=torch.randn(2, 1, 14, 14)),
        ValueError, "x0 and noise must have the same shape, got (2, 1, 28, 28) and (2, 1, 14, 14)"),
    api("ddim-step-eps-of-another-shape", lambda tmp, runs: ddim_step(x(), x(1), 10, 5, S20), ValueError,
        "x_t and eps must have the same shape, got (2, 1, 28, 28) and (1, 1, 28, 28)"),
    api("ddim-step-eps-that-broadcasts", lambda tmp, runs: ddim_step(x(), torch.zeros(1, 28, 28), 10, 5, S20), ValueError,
        "x_t and eps must have the same shape"),
    api("ddpm-step-eps-of-another-shape", lambda tmp, runs: ddpm_step(x(), torch.zeros(1, 1, 28, 1), 10, 9, S20),
        ValueError, "x_t and eps must have the same shape"),
    api("flow-step-u-of-another-shape", lambda tmp, runs: flow_euler_step(x(), x(1), 10, 5, S20), ValueError,
        "x_t and u must have the same shape"),
    api("guided-eps-of-other-shapes", lambda tmp, runs: guided_eps(x(), x(1), 2.0), ValueError,
        "eps_cond and eps_uncond must have the same shape"),
    api("ddim-step-noise-of-another-shape", lambda tmp, runs: ddim_step(x(), x(), 10, 5, S20, torch.zeros(1, 1, 1, 1), eta=0.5),
        ValueError, "x_t and noise must have the same shape"),
    api("v-target-eps-of-another-shape", lambda tmp, runs: v_target(x(), x(1), torch.tensor([3, 3]), SCHEDULE), ValueError,
        "x0 and eps must have the same shape"),
    # Issue 22: TrainConfig refuses what the CLI refuses; train() checks its data
    api("config-gamma-without-min-snr", lambda tmp, runs: TrainConfig(min_snr_gamma=3.0), ValueError,
        "min_snr_gamma=3.0 applies to loss_weighting='min_snr' only"),
    api("config-flow-with-cosine", lambda tmp, runs: TrainConfig(objective="flow", schedule="cosine"), ValueError,
        "schedule='cosine' means nothing to objective='flow'"),
    api("config-linear-T-20000", lambda tmp, runs: TrainConfig(T=20000), ValueError,
        f"the linear schedule with T = 20000 is not representable in float32 (alpha_bar underflows); use T <= "
        f"{longest_schedule('linear')}"),
    api("config-T-1", lambda tmp, runs: TrainConfig(T=1), ValueError,
        "the linear schedule with T = 1 does not end in noise: its last state x_{T-1} keeps alpha_bar = 0.9999"),
    api("config-lr-a-string", lambda tmp, runs: TrainConfig(lr="0.001"), ValueError, "lr must be a finite number"),
    api("train-on-pixels-in-0-1", lambda tmp, runs: tiny_train(tmp, (IMAGES + 1) / 2), ValueError,
        "they look like pixels in [0, 1], but the datasets ('mnist', 'fashion_mnist') are scaled to [-1, 1]"),
    api("train-on-a-list", lambda tmp, runs: tiny_train(tmp, [IMAGES]), TypeError,
        "images must be a torch.Tensor (N, C, H, W), got list"),
    api("resume-on-other-data", lambda tmp, runs: tiny_train(tmp, IMAGES[:4], steps=2), CheckpointError,
        "it was trained on 8 images and is given 4", a_run("uncond")),
    api("resume-past-its-steps", lambda tmp, runs: tiny_train(tmp, steps=1), ValueError,
        "it is already at step 2, past steps = 1 (--steps); give steps >= 2 to train on",
        lambda tmp, runs, mp: tiny_train(tmp, steps=2)),
    api("trainer-load-with-another-objective", lambda tmp, runs: Trainer(tiny_config(steps=1, T=T, objective="v")).load(
        runs["uncond"]), CheckpointError, "objective: recorded 'eps', given 'v'"),
    api("trainer-load-with-another-schedule", lambda tmp, runs: Trainer(tiny_config(steps=1, T=T, schedule="cosine")).load(
        runs["uncond"]), CheckpointError, "schedule: recorded 'linear', given 'cosine'"),
    api("trainer-load-with-another-T", lambda tmp, runs: Trainer(tiny_config(steps=1, T=50)).load(runs["uncond"]),
        CheckpointError, "T: recorded 20, given 50"),
    api("trainer-load-a-sampling-only-file", lambda tmp, runs: Trainer(tiny_config(steps=1, T=T)).load(runs["shipped"]),
        CheckpointError, "it is a sampling-only file"),
    # Issue 22: NaN or inf in the samplers stops at that step
    api("ddim-of-a-nan-network", lambda tmp, runs: final(ddim_sample_progressive(NAN, x(), S20, 4)), NotFiniteError,
        "DDIM stopped at step 1 of 4 (t = 19 -> 13): the network returned NaN or infinite values"),
    api("ddpm-of-a-nan-network", lambda tmp, runs: final(ddpm_sample_progressive(NAN, x(), S20)), NotFiniteError,
        "DDPM stopped at step 1 of 20 (t = 19 -> 18)"),
    api("heun-of-an-inf-network", lambda tmp, runs: final(heun_sample_progressive(INF, x(), S20, 2)), NotFiniteError,
        "Heun stopped at step 1 of 2"),
    api("flow-euler-of-a-nan-network", lambda tmp, runs: final(flow_euler_sample_progressive(NAN, x(), S20, 2)),
        NotFiniteError, "flow Euler stopped at step 1 of 2 (t = 19 -> 9)"),
    api("flow-heun-of-an-inf-network", lambda tmp, runs: final(flow_heun_sample_progressive(INF, x(), S20, 2)),
        NotFiniteError, "flow Heun stopped at step 1 of 2"),
    api("ddim-nan-half-way", lambda tmp, runs: record(ddim_sample_progressive(NAN_BELOW_10, x(), S20, 5)), NotFiniteError,
        "DDIM stopped at step 4 of 5 (t = 5 -> 0): the network returned NaN or infinite values"),
    api("inversion-of-a-nan-network", lambda tmp, runs: ddim_invert(NAN, x(), S20, 2), NotFiniteError,
        "DDIM inversion stopped at step 1 of 2"),
    api("cfg-overflow", lambda tmp, runs: final(ddim_sample_progressive(
        cfg_eps_model(HUGE_COND, torch.tensor([1, 2]), 20.0), x(), S20, 2)), NotFiniteError, "DDIM stopped at step 1 of 2"),
    # Issue 22: checkpoints
    api("load-weights-that-do-not-fit", lambda tmp, runs: load_model(tmp / "misfit.pt"), CheckpointError,
        "misfit.pt: its EMA weights do not fit the architecture it records (unet)",
        a_changed_copy("misfit.pt", drop_last_ema_tensor)),
    api("load-a-flipped-byte", lambda tmp, runs: load_model(tmp / "flipped.pt"), CheckpointError,
        "flipped.pt is damaged", a_flipped_copy("flipped.pt")),
    api("load-a-schedule-of-T-0", lambda tmp, runs: load_model(tmp / "t0.pt"), CheckpointError,
        "t0.pt records a schedule that cannot be built ({'name': 'linear', 'T': 0}: T must be a positive integer",
        a_changed_copy("t0.pt", lambda r: r.update(schedule={"name": "linear", "T": 0}))),
    api("load-onto-a-bogus-device", lambda tmp, runs: load_model(runs["uncond"], device="bogus"), ValueError,
        "'bogus' is not a device (cpu, cuda, cuda:N or mps); pass device='cpu'"),
    api("load-a-folder", lambda tmp, runs: load_model(tmp), CheckpointError, "is a folder, not a checkpoint file"),
    api("default-device-bogus", lambda tmp, runs: default_device(), ValueError,
        "DIFFUSION_LIB_DEVICE=bogus is not a device", env("DIFFUSION_LIB_DEVICE", "bogus")),
]


def evaluate_script():
    return script("evaluate")


S20 = make_schedule("linear", T)


def NAN(x, t, *args):
    return torch.full_like(x, math.nan)


def INF(x, t, *args):
    return torch.full_like(x, math.inf)


def NAN_BELOW_10(x, t, *args):
    return torch.full_like(x, math.nan) if int(t[0]) < 10 else 0.1 * x


class _Huge(torch.nn.Module):
    """A conditional 'network' whose two outputs differ by 1e38: guided at w = 20 they overflow float32."""
    num_classes, null_label, image_shape = 10, 10, (1, 28, 28)

    def forward(self, x, t, y):
        return torch.where((y == 10).reshape(-1, 1, 1, 1), torch.zeros_like(x), torch.full_like(x, 1e38))


HUGE_COND = _Huge()


@pytest.mark.parametrize("call, error, match, setup", API_CASES)
def test_the_api_refuses(call, error, match, setup, runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if setup is not None:
        setup(tmp_path, runs, monkeypatch)
    before = listing(tmp_path)
    with pytest.raises(error) as info:
        call(tmp_path, runs)
    assert match in str(info.value), str(info.value)
    assert listing(tmp_path) == before                                   # nothing written


def test_an_int_timestep_is_broadcast_to_the_batch():
    x0, noise = x(3), torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    t = torch.full((3,), 250, dtype=torch.long)
    assert torch.equal(q_sample(x0, 250, SCHEDULE, noise), q_sample(x0, t, SCHEDULE, noise))
    x_t = q_sample(x0, t, SCHEDULE, noise)
    assert torch.allclose(predict_x0_from_eps(x_t, 250, noise, SCHEDULE), x0, atol=1e-5)
    assert torch.allclose(predict_eps_from_x0(x_t, 250, x0, SCHEDULE), noise, atol=1e-4)


def test_the_longest_linear_schedule_is_the_last_that_fits():
    longest = longest_schedule("linear")
    assert make_schedule("linear", longest).alpha_bar[-1] >= torch.finfo(torch.float32).tiny
    with pytest.raises(ValueError, match="not representable"):
        make_schedule("linear", longest + 1)
    alpha_bar = make_schedule("cosine", 20_000).alpha_bar                # the cosine schedule at the T is fine
    assert bool((alpha_bar > 0).all())


# ----------------------------------------------------------------------------- resume never mixes

def test_a_resume_with_changed_settings_is_refused_and_one_with_more_steps_continues(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--base", "8", "--batch-size", "4", "--T", "20", "--device", "cpu", "--out", str(run)]
    assert cli.main([*base, "--steps", "2"]) == 0
    first = load_checkpoint(run / "last.pt")
    written = (run / "last.pt").read_bytes()
    capsys.readouterr()

    assert cli.main([*base, "--steps", "2", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--lr: the checkpoint records 0.001, this command gives 0.5" in err
    assert "rerun with the recorded settings (--lr 0.001" in err and "--fresh" in err
    assert cli.main([*base, "--steps", "2", "--schedule", "cosine", "--T", "50"]) == 2
    err = capsys.readouterr().err
    assert "--schedule: the checkpoint records 'linear', this command gives 'cosine'" in err
    assert "--T: the checkpoint records 20, this command gives 50" in err
    assert "--schedule linear --T 20" in err
    assert (run / "last.pt").read_bytes() == written                     # refused runs left the checkpoint alone

    assert cli.main([*base, "--steps", "4", "--checkpoint-every", "1"]) == 0   # only RESUMABLE_FIELDS changed
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["step"] == 4 and resumed["history"]["loss"][:2] == first["history"]["loss"]
    assert resumed["config"]["lr"] == first["config"]["lr"] == 1e-3
    assert set(RESUMABLE_FIELDS) == {"steps", "max_minutes", "checkpoint_every"}


def test_an_old_checkpoint_without_the_new_fields_means_their_defaults(runs, tmp_path):
    """Checkpoints from before objective, loss_weighting, min_snr_gamma and dataset: eps, none, 5.0, mnist."""
    checkpoint = load_checkpoint(runs["uncond"])
    for name in ("objective", "loss_weighting", "min_snr_gamma", "dataset"):
        del checkpoint["config"][name]
    save_checkpoint(checkpoint, tmp_path / "run" / "last.pt")
    assert tiny_train(tmp_path, steps=2).step == 2                       # the defaults: it resumes
    for name, settings in [("objective", {"objective": "x0"}), ("loss_weighting", {"loss_weighting": "min_snr"}),
                           ("min_snr_gamma", {"loss_weighting": "min_snr", "min_snr_gamma": 2.0}),
                           ("dataset", {"dataset": "fashion_mnist"})]:
        with pytest.raises(CheckpointError, match=f"{name}: recorded"):
            tiny_train(tmp_path, steps=3, **settings)


# ----------------------------------------------------------------------------- killed mid-write, stale temp files

KILLED_RUN = """
import sys, time, torch
sys.path.insert(0, {tests!r})
import diffusion_lib.checkpoints as checkpoints
from diffusion_lib.training import train
from _tiny import synthetic_mnist, tiny_config

real_save, saves = torch.save, []
def slow_save(obj, f, *args, **kwargs):   # the third checkpoint write stops half-way, long enough to be killed
    saves.append(1)
    if len(saves) == 3:
        f.write(b"half a checkpoint")
        f.flush()
        open({marker!r}, "w").close()
        time.sleep(120)
    return real_save(obj, f, *args, **kwargs)
checkpoints.torch.save = slow_save
torch.set_num_threads(1)
images, _ = synthetic_mnist(8)
train(tiny_config(steps=6, T=20, checkpoint_every=1), images, out_dir={out!r}, progress=False)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX only")
def test_a_run_killed_while_writing_a_checkpoint_resumes_and_leaves_no_temp_file(tmp_path):
    out = tmp_path / "run"
    marker = tmp_path / "third write stalled"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(out), marker=str(marker))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():                                         # the third write has begun
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the third checkpoint write never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(temp_files(out / "last.pt")) == 1                         # what the kill left
    assert load_checkpoint(out / "last.pt")["step"] == 2                 # the last complete write

    steps, temp_left = [], []
    images, _ = synthetic_mnist(8)
    result = train(tiny_config(steps=4, T=T, checkpoint_every=1), images, out_dir=out, progress=False,
                   callback=lambda trainer: (steps.append(trainer.step), temp_left.append(temp_files(out / "last.pt"))))
    assert steps == [3, 4] and result.step == 4                          # it resumed from step 2
    assert temp_left[0] == [] and temp_files(out / "last.pt") == []      # removed when training started
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]


def test_only_the_temp_files_of_the_same_checkpoint_are_removed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".last.pt.k3j2_x.tmp", run / ".last.pt.0.tmp"]
    others = [run / ".best.pt.k3j2_x.tmp", run / "notes.tmp", run / "last.pt.tmp", run / ".last.pt.backup"]
    for path in stale + others:
        path.write_bytes(b"x")
    tiny_train(tmp_path)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)
