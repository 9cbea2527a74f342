"""Training a denoising network (Ho et al. 2020, Algorithm 1).

    repeat:  x_0 ~ data,  t ~ Uniform{0, ..., T-1},  eps ~ N(0, I)
             loss = || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2

for the default objective, noise prediction. Another objective (x0 or v prediction, objectives.py) and a
loss weighting (min-SNR-gamma) are settings of TrainConfig; the loop asks the objective for t, x_t and
the target, and is the same for all of them. With AdamW, an exponential moving average (EMA) of the weights through
torch.optim.swa_utils.AveragedModel, label dropout for class-conditional networks, and
periodic atomic checkpoints. Every random draw of the loop comes from one torch.Generator whose
state is saved, so a run resumed from a checkpoint continues exactly as if it had never stopped.
"""
from __future__ import annotations

import functools
import itertools
import math
import numbers
import os
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from .backbones import BACKBONES, Backbone, build_backbone
from .checkpoints import CheckpointError, load_checkpoint, remove_stale_temp_files, save_checkpoint
from .data import DATASETS
from .device import known_within, mark_known_range
from .objectives import (DEFAULT_MIN_SNR_GAMMA, LOSS_WEIGHTINGS, OBJECTIVES, diffusion_loss, get_objective,
                         loss_weights, mark_model, _objective_loss, teacher_velocity)
from .schedules import BETA_SCHEDULES, longest_schedule, make_schedule

DATASET_SHAPE = (1, 28, 28)     # (C, H, W) of every dataset in DATASETS

__all__ = ["TrainConfig", "Trainer", "TrainResult", "train", "diffusion_loss", "drop_labels", "make_ema", "lr_factor"]


@dataclass
class TrainConfig:
    backbone: str = "unet"
    backbone_kwargs: dict = field(default_factory=dict)   # e.g. {"base": 32, "num_classes": 10}
    schedule: str = "linear"
    T: int = 1000
    objective: str = "eps"         # what the network predicts: "eps", "x0", "v", "flow" or "meanflow" (objectives.OBJECTIVES)
    objective_kwargs: dict = field(default_factory=dict)   # settings of the objective, e.g. MeanFlow's {"r_neq_t": 0.5}
    loss_weighting: str = "none"   # "none", or "min_snr": min(SNR, gamma) per timestep (Hang et al. 2023)
    min_snr_gamma: float = 5.0     # gamma of "min_snr"
    dataset: str = "mnist"         # "mnist" or "fashion_mnist" (data.DATASETS); recorded, checked on resume
    steps: int = 3000              # optimizer steps in all (a resumed run stops at the same total)
    max_minutes: float | None = None   # optional wall-clock limit for this call
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01     # torch's AdamW default
    warmup_steps: int = 0          # linear learning-rate warm-up
    lr_decay: str = "constant"     # "constant" or "cosine" (to 0 at `steps`)
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True        # decay min(ema_decay, (1 + n) / (10 + n)) so early EMA tracks the model
    label_dropout: float = 0.1     # conditional networks: share of labels replaced by the null label
    checkpoint_every: int = 500
    seed: int = 0
    precision: str = "fp32"        # "bf16": autocast the forward pass to bfloat16 (faster on CPUs with AVX512-BF16: README)
    init_from: str | None = None   # start from a teacher's EMA weights: a shipped name ("unet_flow") or a checkpoint path
    pairs: str | None = None       # reflow: how the (noise, image) pairs were made (teacher, sampler, count), recorded
    teacher: str | None = None     # MeanFlow distilled: the flow network whose velocity replaces eps - x_0 in the target
    teacher_w: float = 1.0         # ... guided at this w when the teacher is conditional (guidance built into the student)

    def __post_init__(self):
        """Check every field, so a bad setting fails here, with its name and range, not steps into training."""
        _check_choice(self, "backbone", sorted(BACKBONES))
        if not isinstance(self.backbone_kwargs, dict) or not all(isinstance(k, str) for k in self.backbone_kwargs):
            raise ValueError(f"backbone_kwargs must be a dict of argument names to values, e.g. {{'base': 32}}, "
                             f"got {self.backbone_kwargs!r}")
        with torch.device("meta"):     # the architecture's own checks, without allocating its weights
            build_backbone(self.backbone, **self.backbone_kwargs)
        _check_choice(self, "schedule", sorted(BETA_SCHEDULES))
        _check_int(self, "T", 1)
        _check_choice(self, "objective", sorted(OBJECTIVES))
        if not isinstance(self.objective_kwargs, dict):
            raise ValueError(f"objective_kwargs must be a dict of the objective's settings, got {self.objective_kwargs!r}")
        get_objective(self.objective, **self.objective_kwargs)      # refuses settings the objective does not take
        _check_choice(self, "loss_weighting", LOSS_WEIGHTINGS)
        _check_number(self, "min_snr_gamma", lower=0, lower_open=True)
        _check_choice(self, "dataset", DATASETS)
        _check_int(self, "steps", 1)
        if self.max_minutes is not None:
            _check_number(self, "max_minutes", lower=0, lower_open=True, none="None for no time limit")
        _check_int(self, "batch_size", 1)
        _check_number(self, "lr", lower=0, upper=1, lower_open=True, upper_closed=True)
        _check_number(self, "weight_decay", lower=0)
        _check_int(self, "warmup_steps", 0)
        _check_choice(self, "lr_decay", ("constant", "cosine"))
        if self.init_from is not None and not (isinstance(self.init_from, str) and self.init_from):
            raise ValueError(f"init_from must be a shipped model's name or a checkpoint path, got {self.init_from!r}")
        if self.teacher is not None and not (isinstance(self.teacher, str) and self.teacher):
            raise ValueError(f"teacher must be a shipped model's name or a checkpoint path, got {self.teacher!r}")
        if self.teacher is not None and self.objective != "meanflow":
            raise ValueError(f"a teacher's velocity is used by objective 'meanflow' only (its target), not by "
                             f"{self.objective!r}; drop teacher, or train objective='meanflow'")
        _check_number(self, "teacher_w", lower=0)
        if self.teacher is None and self.teacher_w != 1:
            raise ValueError(f"teacher_w={self.teacher_w} guides a teacher, and none is given; give teacher (a "
                             "conditional flow model, e.g. 'unet_flow_cond'), or leave teacher_w at 1")
        if self.grad_clip is not None:
            _check_number(self, "grad_clip", lower=0, lower_open=True, none="None for no clipping")
        _check_number(self, "ema_decay", lower=0, upper=1)
        _check_bool(self, "ema_warmup")
        _check_number(self, "label_dropout", lower=0, upper=1)
        _check_int(self, "checkpoint_every", 1)
        _check_int(self, "seed", 0, 2**32 - 1)
        _check_choice(self, "precision", ("fp32", "bf16"))
        # settings against each other (the command line refuses the same)
        if self.loss_weighting != "min_snr" and self.min_snr_gamma != DEFAULT_MIN_SNR_GAMMA:
            raise ValueError(f"min_snr_gamma={self.min_snr_gamma} applies to loss_weighting='min_snr' only; set "
                             "loss_weighting='min_snr', or leave min_snr_gamma at its default")
        if not get_objective(self.objective).uses_beta_schedule and self.schedule != "linear":
            raise ValueError(f"schedule={self.schedule!r} means nothing to objective={self.objective!r}: flow matching "
                             "trains on its own straight path x_s = (1 - s) x_0 + s eps (only T, its time grid, is used); "
                             "leave schedule at its default 'linear'")
        check_schedule_fits(self.schedule, self.T, self.objective)


# The noisy end x_{T-1} of a DDPM-family schedule must be mostly noise, or sampling starts from an almost clean
# image: refused when alpha_bar_{T-1} (the share of the image's variance left at the last step) exceeds this.
# The linear schedule of Ho et al. passes from T = 11 on (alpha_bar_{T-1} = 0.89; at T = 1000 it is 4e-5).
NOISY_END_MAX_ALPHA_BAR = 0.9


def check_schedule_fits(schedule: str, T: int, objective: str = "eps") -> None:
    """Raise a ValueError unless the named schedule with T steps is representable in float32 and, for the DDPM
    family, ends in noise (alpha_bar_{T-1} <= NOISY_END_MAX_ALPHA_BAR)."""
    if schedule == "linear" and T > longest_schedule("linear"):
        raise ValueError(f"the linear schedule with T = {T} is not representable in float32 (alpha_bar underflows); "
                         f"use T <= {longest_schedule('linear')}, or the cosine schedule")
    if get_objective(objective).uses_beta_schedule:
        end = float(make_schedule(schedule, T).alpha_bar[-1])
        if end > NOISY_END_MAX_ALPHA_BAR:
            fewest = next(n for n in range(T + 1, 10**6)
                          if float(make_schedule(schedule, n).alpha_bar[-1]) <= NOISY_END_MAX_ALPHA_BAR)
            raise ValueError(f"the {schedule} schedule with T = {T} does not end in noise: its last state x_{{T-1}} keeps "
                             f"alpha_bar = {end:.4f} of the image, so sampling would start from an almost clean image; "
                             f"use T >= {fewest} (Ho et al. use 1000)")


def _check_choice(config, name: str, choices) -> None:
    value = getattr(config, name)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def _check_bool(config, name: str) -> None:
    if not isinstance(getattr(config, name), bool):
        raise ValueError(f"{name} must be True or False, got {getattr(config, name)!r}")


def _check_int(config, name: str, lower: int, upper: int | None = None) -> None:
    """An integer field in [lower, upper]; numpy integers are turned into Python ints (checkpoints store plain types)."""
    value = getattr(config, name)
    span = f">= {lower}" if upper is None else f"in [{lower}, {upper}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer {span}, got {value!r}")
    if value < lower or (upper is not None and value > upper):
        raise ValueError(f"{name} must be an integer {span}, got {value}")
    setattr(config, name, int(value))


def _check_number(config, name: str, lower: float, upper: float | None = None, lower_open: bool = False,
                  none: str | None = None, upper_closed: bool = False) -> None:
    """A finite real field with lower <= value (or lower < value) and, when given, value < upper (<= if upper_closed)."""
    value = getattr(config, name)
    span = ((f"> {lower}" if lower_open else f">= {lower}") if upper is None else
            f"in {'(' if lower_open else '['}{lower}, {upper}{']' if upper_closed else ')'}")
    if none:
        span += f" (or {none})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number {span}, got {value!r}")
    if (value < lower or (lower_open and value == lower)
            or (upper is not None and (value > upper or (value == upper and not upper_closed)))):
        raise ValueError(f"{name} must be {span}, got {value}")
    setattr(config, name, float(value) if not isinstance(value, int) else value)


def drop_labels(y: torch.Tensor, p: float, null_label: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label by the null label with probability p (label dropout for classifier-free guidance).
    The coin flips are drawn where the generator is and moved to y's device (without a generator: on y's device)."""
    where = generator.device if generator is not None else y.device
    drop = torch.rand(y.shape, generator=generator, device=where) < p
    return torch.where(drop.to(y.device, non_blocking=True), torch.full_like(y, null_label), y)


def ema_multi_avg_fn(decay: float, warmup: bool = True) -> Callable:
    """An AveragedModel multi_avg_fn: ema <- ema + (1 - d) (param - ema), with d = min(decay, (1+n)/(10+n)) under warm-up."""
    def update(ema_params, params, num_averaged):
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        torch._foreach_lerp_(ema_params, params, 1 - d)
    return update


class EMA(AveragedModel):
    """torch.optim.swa_utils.AveragedModel with the update of ema_multi_avg_fn, counting its updates on the host.

    AveragedModel reads its counter n_averaged back from the device at every update (and the warm-up's decay needs it
    once more): on a GPU each read waits for the step's work to finish. Here the count is read once, at the first
    update after construction or loading, and kept as a Python int beside n_averaged (saved as before)."""

    def __init__(self, model: Backbone, decay: float = 0.999, warmup: bool = True):
        super().__init__(model, multi_avg_fn=ema_multi_avg_fn(decay, warmup), use_buffers=True)
        self._updates = None                     # n_averaged as a Python int, once read

    def load_state_dict(self, *args, **kwargs):
        self._updates = None
        return super().load_state_dict(*args, **kwargs)

    def update_parameters(self, model: Backbone) -> None:
        if self._updates is None:
            self._updates = int(self.n_averaged)
        ema = [p.detach() for p in itertools.chain(self.module.parameters(), self.module.buffers())]
        new = [p.detach() for p in itertools.chain(model.parameters(), model.buffers())]
        if self._updates == 0:
            torch._foreach_copy_(ema, new)       # the first update copies the weights
        else:
            self.multi_avg_fn(ema, new, self._updates)
        self.n_averaged += 1
        self._updates += 1


def make_ema(model: Backbone, decay: float = 0.999, warmup: bool = True) -> EMA:
    """An EMA copy of the model (an AveragedModel); call .update_parameters(model) after each step."""
    return EMA(model, decay, warmup)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then constant or cosine decay to 0."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_decay == "cosine":
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return 1.0


@dataclass
class TrainResult:
    model: Backbone            # the trained weights
    ema: Backbone              # the EMA weights (what samplers should use)
    history: dict              # {"step": [...], "loss": [...]} one entry per optimizer step
    step: int                  # steps done in all
    checkpoint: Path | None    # the last checkpoint written


class TrainingState:
    """What the two trainers (Trainer for images, masked_training.TokenTrainer for tokens) share, given their
    model, ema, optimizer, lr_scheduler, step and generator: one optimizer update, the loss history, and the
    restoring of all of it from a checkpoint.

    The history is {"step": [...], "loss": [...]}, one entry per optimizer step. The losses stay on the device as
    they come and are read in one go when the history is asked for: a read waits for a GPU."""

    @property
    def history(self) -> dict:
        if self._pending:
            steps, losses = zip(*self._pending)
            self._pending = []
            self._history["step"].extend(steps)
            self._history["loss"].extend(torch.stack([loss.float() for loss in losses]).tolist())
        return self._history

    @history.setter
    def history(self, value: dict) -> None:
        self._history, self._pending = value, []

    def update(self, loss: torch.Tensor, grad_clip: float | None) -> torch.Tensor:
        """One update from a batch's loss: gradients, clipped to norm grad_clip (if set), the optimizer's step, the
        learning rate's next value, the EMA's update; the step counted and its loss kept. Returns the loss,
        detached, on the device."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        loss = loss.detach()
        self._pending.append((self.step, loss))
        return loss

    def restore(self, checkpoint: dict) -> None:
        """Weights, EMA, optimizer, learning-rate schedule, step, generator and history from a checkpoint whose
        settings the caller has checked."""
        self.model.load_state_dict(checkpoint["model"])
        self.ema.load_state_dict(checkpoint["ema"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.lr_scheduler.load_state_dict(checkpoint["lr_scheduler"])
        self.step = int(checkpoint["step"])
        self.generator.set_state(checkpoint["rng"])
        self.history = {k: list(v) for k, v in checkpoint["history"].items()}


class Trainer(TrainingState):
    """The state of one training run: model, EMA, optimizer, lr schedule, step, RNG and loss history."""

    def __init__(self, config: TrainConfig, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):                          # the caller's global RNG is left as it was
            torch.manual_seed(config.seed)                               # weight initialisation
            self.model = build_backbone(config.backbone, **config.backbone_kwargs)
        if config.init_from is not None:
            init_from_teacher(self.model, teacher_checkpoint(config.init_from))
        self.model = self.model.to(self.device)
        self.model.T = config.T                                          # forward() refuses t outside [0, T-1]
        self.objective = get_objective(config.objective, **config.objective_kwargs)
        if (config.objective == "meanflow") != (getattr(self.model, "interval_mlp", None) is not None):
            raise ValueError("MeanFlow needs a network with a second time input and only MeanFlow uses one: train "
                             "objective 'meanflow' with backbone 'unet' and backbone_kwargs {'interval': True}, "
                             "and other objectives without it")
        self.teacher = None
        if config.teacher is not None:                                   # MeanFlow distilled from a flow network
            self.teacher = load_teacher(config.teacher, config.T, self.device)
            if config.teacher_w != 1 and self.teacher.num_classes is None:
                raise ValueError(f"teacher_w={config.teacher_w} guides a conditional teacher, and {config.teacher!r} is "
                                 "unconditional; give a conditional teacher (e.g. 'unet_flow_cond') or teacher_w=1")
            if self.teacher.num_classes is not None and self.model.num_classes not in (None, self.teacher.num_classes):
                raise ValueError(f"the student has {self.model.num_classes} classes and the teacher "
                                 f"{self.teacher.num_classes}; give them the same classes")
            self.objective = self.objective.with_teacher(
                functools.partial(teacher_velocity, self.teacher, T=config.T, w=config.teacher_w))
        self.ema = make_ema(self.model, config.ema_decay, config.ema_warmup)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, config))
        self.schedule = make_schedule(config.schedule, config.T)
        # t, noise and label dropout: drawn on the CPU and moved, so a seed trains the same network on every device
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.data_size = None                                            # training images, recorded by train()
        self.history = {"step": [], "loss": []}
        self._perm_epoch, self._perm, self._perm_on = None, None, {}

    @property
    def label_reader(self) -> Backbone:
        """The network whose classes the labels are: the student if it is conditional, else a conditional teacher
        (an unconditional student of a conditional teacher: the labels reach the teacher only), else the student."""
        if self.model.num_classes is None and self.teacher is not None and self.teacher.num_classes is not None:
            return self.teacher
        return self.model

    # -- data order: one permutation per epoch, seeded by (seed, epoch), so it is known after a resume
    def batch_indices(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The indices of this step's batch into a dataset of n images, on the CPU, or on `device` (the permutation
        is copied there once per epoch) to index a dataset kept there."""
        per_epoch = max(1, n // self.config.batch_size)
        epoch, k = divmod(self.step, per_epoch)
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
            self._perm_epoch, self._perm, self._perm_on = epoch, torch.randperm(n, generator=g), {}
        perm = self._perm
        if device is not None and torch.device(device) != perm.device:
            if str(device) not in self._perm_on:
                self._perm_on[str(device)] = perm.to(device)
            perm = self._perm_on[str(device)]
        return perm[k * self.config.batch_size:(k + 1) * self.config.batch_size]

    def train_step(self, x0: torch.Tensor, y: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None) -> torch.Tensor:
        """One optimizer step on a batch x0 (B, 1, 28, 28) in [-1, 1], labels y (B,) for conditional networks;
        noise (B, 1, 28, 28): the noise paired with each x0 (reflow's pairs), drawn here when None.

        Returns the batch's loss as a 0-dim tensor on the device; float(loss) reads it (on a GPU that waits for the
        step to finish, so train() reads the losses only every LOSS_READ_EVERY steps, through trainer.history)."""
        self.model.train()
        B = x0.shape[0]
        t = self.objective.timesteps_on(self.objective.draw_t(B, self.schedule, self.generator), self.schedule,
                                        self.device)                     # checked on the CPU: no wait
        drawn = torch.randn(x0.shape, generator=self.generator)             # drawn even when paired: one RNG stream
        noise = (drawn if noise is None else noise).to(self.device, non_blocking=True)
        weights = loss_weights(t, self.schedule, self.objective, self.config.loss_weighting, self.config.min_snr_gamma)
        if y is not None:
            reader = self.label_reader
            if reader.num_classes is None:
                raise ValueError("labels were given but the backbone is unconditional; "
                                 "pass backbone_kwargs={'num_classes': 10} to train a conditional model")
            classes = reader.num_classes
            checked = known_within(y, 0, classes - 1) or (
                y.device.type == "cpu" and not (y.dtype.is_floating_point or y.dtype == torch.bool)
                and bool(((y >= 0) & (y < classes)).all()))                  # on the CPU: no wait
            if reader is self.model:     # the student's own labels are dropped; a teacher's alone are its data's
                y = drop_labels(y, self.config.label_dropout, self.model.null_label, self.generator)
            y = y.to(self.device)
            if checked:
                mark_known_range(y, 0, reader.null_label)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            loss = _objective_loss(self.model, x0.to(self.device), self.schedule, self.objective, t, noise, y, weights)
        return self.update(loss, self.config.grad_clip)

    def state_dict(self) -> dict:
        return {"arch": self.model.arch, "schedule": {"name": self.config.schedule, "T": self.config.T},
                "objective": self.config.objective, "dataset": self.config.dataset,
                "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict(),
                "step": self.step, "rng": self.generator.get_state(), "config": asdict(self.config),
                "history": self.history, **({"data_size": self.data_size} if self.data_size is not None else {})}

    def save(self, path: str | os.PathLike) -> Path:
        return save_checkpoint(self.state_dict(), path)

    def load(self, path: str | os.PathLike, checkpoint: dict | None = None) -> None:
        """Restore everything from a checkpoint written by save(), so training continues where it stopped.
        checkpoint: its contents when already read (load_checkpoint(path)); read from path otherwise."""
        if checkpoint is None:
            checkpoint = load_checkpoint(path)
        check_resumable(checkpoint, self.config, path)     # a full training checkpoint, of the same settings
        if checkpoint["arch"] != self.model.arch:
            raise CheckpointError(f"cannot resume: {path} holds {checkpoint['arch']}, this run trains {self.model.arch}; "
                                  "use another output folder or the same backbone settings")
        self.restore(checkpoint)
        self.data_size = checkpoint.get("data_size")


# Settings that may change when a run is resumed: how long it goes on and how often it saves. Every other
# field of TrainConfig must equal the checkpoint's record, or the run would mix two trainings.
RESUMABLE_FIELDS = ("steps", "max_minutes", "checkpoint_every")


class ResumeMismatchError(CheckpointError):
    """A checkpoint that cannot be resumed with the given settings. differences: [(field, recorded, given)]."""

    def __init__(self, message: str, path: Path, differences: list[tuple[str, object, object]]):
        super().__init__(message)
        self.path, self.differences = path, differences


def _plain(value):
    """Tuples as lists, recursively, so a recorded [1, 2, 2] equals a given (1, 2, 2)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def resume_differences(recorded: dict, config: TrainConfig) -> list[tuple[str, object, object]]:
    """(field, recorded, given) for every TrainConfig field in which `config` differs from a checkpoint's record,
    except RESUMABLE_FIELDS. A field missing from the record (an older checkpoint) counts as its default.
    (With lr_decay="cosine", a new `steps` moves the cosine's end: the shipped weights were trained so.)"""
    given = asdict(config)
    differences = []
    for f in fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        old, new = _plain(recorded.get(f.name, default)), _plain(given[f.name])
        if old != new and f.name not in RESUMABLE_FIELDS:
            differences.append((f.name, old, new))
    return differences


def check_resumable(checkpoint: dict, config: TrainConfig, path: str | os.PathLike) -> None:
    """Raise a CheckpointError unless training with `config` can go on from `checkpoint` (read from `path`):
    it must be a full training checkpoint (not a sampling-only file) recorded with the same settings."""
    path = Path(path)
    missing = [k for k in ("model", "optimizer", "lr_scheduler", "step", "rng", "history") if k not in checkpoint]
    if missing:
        raise CheckpointError(f"cannot resume from {path}: it is a sampling-only file (no {', '.join(missing)}), "
                              "like the shipped weights; train into another folder, or start over with --fresh "
                              "(resume=False), which overwrites it")
    if not isinstance(checkpoint.get("config"), dict):
        raise CheckpointError(f"cannot resume from {path}: it records no training settings ('config'); "
                              "start over with --fresh (resume=False) or train into another folder")
    differences = resume_differences(checkpoint["config"], config)
    if differences:
        listed = "; ".join(f"{name}: recorded {old!r}, given {new!r}" for name, old, new in differences)
        raise ResumeMismatchError(
            f"cannot resume from {path}: its recorded settings differ from the ones given ({listed}); either start "
            f"over with --fresh (resume=False), which overwrites it, or rerun with the recorded settings (only "
            f"{', '.join(RESUMABLE_FIELDS)} may change on a resume)", path, differences)


def teacher_checkpoint(init_from: str) -> dict:
    """The checkpoint that init_from names: a shipped model (pretrained.PRETRAINED) or a checkpoint file."""
    from .pretrained import PRETRAINED, pretrained_path
    return load_checkpoint(pretrained_path(init_from) if init_from in PRETRAINED else init_from)


def teacher_reads_labels(config: TrainConfig) -> bool:
    """Whether config's teacher (if any) is class-conditional, so that training needs the data's labels."""
    if config.teacher is None:
        return False
    return teacher_checkpoint(config.teacher)["arch"].get("kwargs", {}).get("num_classes") is not None


def load_teacher(name: str, T: int, device: torch.device | str = "cpu") -> Backbone:
    """The flow-matching network `name` (a shipped model or a checkpoint path) as a frozen teacher on `device`:
    EMA weights, eval mode, no gradients; its time grid must be the student's T."""
    from .checkpoints import checkpoint_objective, checkpoint_schedule, model_from_checkpoint
    checkpoint = teacher_checkpoint(name)
    objective = checkpoint_objective(checkpoint)
    if objective != "flow":
        raise ValueError(f"the teacher {name!r} was trained with objective {objective!r}; a MeanFlow teacher gives a "
                         "velocity: give a flow-matching model (e.g. 'unet_flow' or 'unet_flow_cond')")
    teacher_T = checkpoint_schedule(checkpoint).T
    if teacher_T != T:
        raise ValueError(f"the teacher {name!r} has T = {teacher_T} and the student T = {T}; give the student "
                         f"T = {teacher_T}, so that both read a flow time the same way")
    teacher = model_from_checkpoint(checkpoint, device=device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def init_from_teacher(model: Backbone, checkpoint: dict) -> Backbone:
    """Copy a teacher's EMA weights into `model` before training (reflow's and MeanFlow's students).

    Every tensor of the teacher must fit the student's of the same name. Two differences are allowed:
    - the student has parameters the teacher lacks, left as built: UNet(interval=True)'s interval_mlp,
      whose zero last layer makes the student start as the teacher's velocity for every r;
    - the teacher is class-conditional and the student is not: the null label's embedding row (the teacher's
      unconditional branch) is added to the bias of the time MLP's last layer, the only place the label enters,
      so the student starts as the teacher's unconditional network exactly.
    """
    from .checkpoints import ema_weights
    state = ema_weights(checkpoint) if checkpoint.get("ema") is not None else dict(checkpoint["model"])
    if "label_embedding.weight" in state and getattr(model, "label_embedding", None) is None:
        null = state.pop("label_embedding.weight")[-1]                   # the null label is the last row
        state["time_mlp.2.bias"] = state["time_mlp.2.bias"] + null
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"the teacher's weights do not fit this network ({', '.join(wrong[:4])}...): the teacher "
                              f"is {checkpoint['arch']}, the student {model.arch}; build the student with the "
                              "teacher's widths")
    missing = [k for k in own if k not in state and not k.startswith("interval_mlp.")]
    if missing:
        raise CheckpointError(f"the teacher has no weights for {', '.join(missing[:4])}: the teacher is "
                              f"{checkpoint['arch']}, the student {model.arch}")
    model.load_state_dict(state, strict=False)
    return model


def check_training_data(images: torch.Tensor, labels: torch.Tensor | None, model: Backbone) -> None:
    """Raise a ValueError unless images (N, C, H, W) float32 in [-1, 1] (points for PointMLP: any finite values)
    and labels fit the model."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("there are no training images (N = 0); check the dataset, or --limit on the command line")
    if tuple(images.shape[1:]) != model.image_shape:
        raise ValueError(f"images must have shape (N, {', '.join(map(str, model.image_shape))}) for this network, "
                         f"got {tuple(images.shape)}")
    if images.dtype != torch.float32:
        fix = "scale uint8 pixels with x.float() / 127.5 - 1" if not images.dtype.is_floating_point else "use images.float()"
        raise ValueError(f"images must be float32 in [-1, 1], got dtype {images.dtype}; {fix}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or infinite values; drop or repair those images")
    low, high = float(images.min()), float(images.max())
    if model.pixel_range and (low < -1 or high > 1):       # pixels only: the toy's points and latents may lie anywhere
        raise ValueError(f"images must lie in [-1, 1], got values in [{low:g}, {high:g}]; rescale pixels in [0, 255] "
                         "with x / 127.5 - 1 (or pixels in [0, 1] with 2 * x - 1), as diffusion_lib.data does")
    if model.pixel_range and tuple(images.shape[1:]) == DATASET_SHAPE and low >= 0:   # the datasets' background: -1
        raise ValueError(f"images lie in [{low:g}, {high:g}], never below 0: they look like pixels in [0, 1], but the "
                         f"datasets {DATASETS} are scaled to [-1, 1] (background -1); rescale with 2 * x - 1")
    if labels is not None:
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor (N,), got {type(labels).__name__}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape (N,) = ({images.shape[0]},), got {tuple(labels.shape)}")
    if model.num_classes is None:
        if labels is not None:
            raise ValueError("labels were given but the backbone is unconditional; pass backbone_kwargs="
                             "{'num_classes': 10} to train a conditional model, or labels=None")
        return
    if labels is None:
        raise ValueError(f"the backbone is class-conditional (num_classes={model.num_classes}) but no labels were "
                         "given; pass labels (N,), or drop num_classes from backbone_kwargs for an unconditional model")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor (torch.long), got dtype {labels.dtype}; use labels.long()")
    if int(labels.min()) < 0 or int(labels.max()) > model.num_classes - 1:
        raise ValueError(f"labels must lie in [0, {model.num_classes - 1}] (the classes; {model.num_classes} is the "
                         f"null label, which label dropout adds itself), got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")


# How often train() reads the loss back for its progress bar. Every read waits for a GPU to finish the steps queued
# so far; the losses of all steps are kept and read together, so trainer.history still has one per step.
LOSS_READ_EVERY = 25
# The training set is moved to a GPU when it takes at most this share of the GPU's free memory (MNIST: 188 MB).
DATA_ON_DEVICE_SHARE = 0.25


def training_data_on(device: torch.device, images: torch.Tensor, labels: torch.Tensor | None):
    """images and labels on `device` when they fit (at most DATA_ON_DEVICE_SHARE of a GPU's free memory, 1 GB on
    other accelerators), so that every batch is gathered there instead of being copied from the CPU at each step;
    as they are otherwise (the CPU, or data too large)."""
    device = torch.device(device)
    if device.type == "cpu" or images.device == device:
        return images, labels
    size = images.numel() * images.element_size() + (0 if labels is None else labels.numel() * labels.element_size())
    room = torch.cuda.mem_get_info(device)[0] * DATA_ON_DEVICE_SHARE if device.type == "cuda" else 2**30
    if size > room:
        return images, labels
    return images.to(device), None if labels is None else labels.to(device)


def train(config: TrainConfig, images: torch.Tensor, labels: torch.Tensor | None = None,
          out_dir: str | os.PathLike | None = None, resume: bool = True, device: torch.device | str = "cpu",
          progress: bool = True, callback: Callable[[Trainer], None] | None = None,
          noise: torch.Tensor | None = None) -> TrainResult:
    """Train on `images` (N, 1, 28, 28) float32 in [-1, 1] (and `labels` (N,) for a conditional backbone).

    noise (N, 1, 28, 28): a fixed noise for each image, for reflow (objectives.reflow_pairs: images[i] is the
    teacher's ODE end from noise[i]); by default a fresh noise is drawn for every image at every step.

    With out_dir, checkpoints go to out_dir/last.pt every `checkpoint_every` steps and at the end,
    and, if resume is True and out_dir/last.pt exists, training continues from it: its recorded settings
    must equal `config` except RESUMABLE_FIELDS (see check_resumable). Temporary files that a killed run
    left beside out_dir/last.pt are removed when training starts.
    callback(trainer) is called after every step (for live plots).
    """
    last = Path(out_dir) / "last.pt" if out_dir is not None else None
    if last is not None and last.parent.exists() and not last.parent.is_dir():
        raise NotADirectoryError(f"out_dir {last.parent} is a file, not a folder; give a folder for the checkpoints")
    trainer = Trainer(config, device)
    check_training_data(images, labels, trainer.label_reader)
    if noise is not None and (not isinstance(noise, torch.Tensor) or noise.shape != images.shape):
        raise ValueError(f"noise must pair one noise with each image, shape {tuple(images.shape)}, got "
                         f"{tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__}")
    written = None
    if last is not None and resume and last.exists():
        checkpoint = load_checkpoint(last)
        check_resumable(checkpoint, config, last)
        recorded = checkpoint.get("data_size")                # absent in files written before it was recorded
        if recorded is not None and recorded != images.shape[0]:
            raise ResumeMismatchError(
                f"cannot resume from {last}: it was trained on {recorded} images and is given {images.shape[0]} "
                "(data_size: the batches of a resumed run follow from the data's size); pass the same images, or "
                "start over with resume=False", last, [("data_size", recorded, images.shape[0])])
        trainer.load(last, checkpoint)
        if trainer.step > config.steps:
            raise ValueError(f"cannot resume from {last}: it is already at step {trainer.step}, past steps = "
                             f"{config.steps} (--steps); give steps >= {trainer.step} to train on, or start over with "
                             "resume=False (--fresh)")
        if trainer.step == config.steps:
            written = last                                    # nothing left to train: the file holds this state
    trainer.data_size = images.shape[0]
    if last is not None:
        remove_stale_temp_files(last)
    images, labels = training_data_on(trainer.device, images, labels)
    start = time.monotonic()
    bar = tqdm(total=config.steps, initial=trainer.step, desc=f"train {config.backbone}", disable=not progress)
    while trainer.step < config.steps:
        idx = trainer.batch_indices(images.shape[0], images.device)
        y = None
        if labels is not None:    # checked by check_training_data: the network need not read them back
            y = mark_known_range(labels[idx], 0, trainer.label_reader.num_classes - 1)
        trainer.train_step(images[idx], y, None if noise is None else noise[idx.to(noise.device)])
        bar.update(1)
        if trainer.step % LOSS_READ_EVERY == 0 or trainer.step == config.steps:
            bar.set_postfix(loss=f"{trainer.history['loss'][-1]:.4f}", refresh=False)
        if callback is not None:
            callback(trainer)
        out_of_time = config.max_minutes is not None and time.monotonic() - start > 60 * config.max_minutes
        if last is not None and (trainer.step % config.checkpoint_every == 0 or trainer.step == config.steps or out_of_time):
            written = trainer.save(last)
        if out_of_time:
            break
    bar.close()
    ema_model = build_backbone(config.backbone, **config.backbone_kwargs).to(trainer.device)
    ema_model.load_state_dict(trainer.ema.module.state_dict())
    ema_model.T = config.T
    for network in (trainer.model, ema_model):                        # they know what they are (objectives.mark_model)
        mark_model(network, config.objective, trainer.schedule)
    return TrainResult(trainer.model.eval(), ema_model.eval(), trainer.history, trainer.step, written)
