"""Training a noise-prediction network (Ho et al. 2020, Algorithm 1).

    repeat:  x_0 ~ data,  t ~ Uniform{0, ..., T-1},  eps ~ N(0, I)
             loss = || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2

with AdamW, an exponential moving average (EMA) of the weights through
torch.optim.swa_utils.AveragedModel, label dropout for class-conditional networks, and
periodic atomic checkpoints. Every random draw of the loop comes from one torch.Generator whose
state is saved, so a run resumed from a checkpoint continues exactly as if it had never stopped.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from .backbones import Backbone, build_backbone
from .checkpoints import load_checkpoint, save_checkpoint
from .forward import q_sample
from .schedules import Schedule, make_schedule


@dataclass
class TrainConfig:
    backbone: str = "unet"
    backbone_kwargs: dict = field(default_factory=dict)   # e.g. {"base": 32, "num_classes": 10}
    schedule: str = "linear"
    T: int = 1000
    objective: str = "eps"         # what the network predicts: "eps", "x0" or "v" (see objectives.py)
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

    def __post_init__(self):
        if self.lr_decay not in ("constant", "cosine"):
            raise ValueError(f"lr_decay must be 'constant' or 'cosine', got {self.lr_decay!r}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must lie in [0, 1), got {self.label_dropout}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")


def diffusion_loss(model: Backbone, x0: torch.Tensor, schedule: Schedule, t: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None, y: torch.Tensor | None = None,
                   reduction: str = "mean") -> torch.Tensor:
    """MSE between the true noise eps and eps_theta(x_t, t), with x_t = q_sample(x_0, t, eps).

    t and noise are drawn here when not given; reduction="none" returns one loss per image (B,).
    """
    if t is None:
        t = torch.randint(0, schedule.T, (x0.shape[0],), device=x0.device)
    if noise is None:
        noise = torch.randn_like(x0)
    x_t = q_sample(x0, t, schedule, noise)
    eps_pred = model(x_t, t, y)
    loss = F.mse_loss(eps_pred, noise, reduction="none").flatten(1).mean(1)   # (B,)
    return loss.mean() if reduction == "mean" else loss


def drop_labels(y: torch.Tensor, p: float, null_label: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label by the null label with probability p (label dropout for classifier-free guidance)."""
    drop = torch.rand(y.shape, generator=generator) < p
    return torch.where(drop.to(y.device), torch.full_like(y, null_label), y)


def ema_multi_avg_fn(decay: float, warmup: bool = True) -> Callable:
    """An AveragedModel multi_avg_fn: ema <- ema + (1 - d) (param - ema), with d = min(decay, (1+n)/(10+n)) under warm-up."""
    def update(ema_params, params, num_averaged):
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        torch._foreach_lerp_(ema_params, params, 1 - d)
    return update


def make_ema(model: Backbone, decay: float = 0.999, warmup: bool = True) -> AveragedModel:
    """An EMA copy of the model (torch.optim.swa_utils.AveragedModel); call .update_parameters(model) after each step."""
    return AveragedModel(model, multi_avg_fn=ema_multi_avg_fn(decay, warmup), use_buffers=True)


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


class Trainer:
    """The state of one training run: model, EMA, optimizer, lr schedule, step, RNG and loss history."""

    def __init__(self, config: TrainConfig, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        torch.manual_seed(config.seed)                                   # weight initialisation
        self.model = build_backbone(config.backbone, **config.backbone_kwargs).to(self.device)
        self.ema = make_ema(self.model, config.ema_decay, config.ema_warmup)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, config))
        self.schedule = make_schedule(config.schedule, config.T)
        self.generator = torch.Generator().manual_seed(config.seed)      # t, noise and label dropout
        self.step = 0
        self.history = {"step": [], "loss": []}
        self._perm_epoch, self._perm = None, None

    # -- data order: one permutation per epoch, seeded by (seed, epoch), so it is known after a resume
    def batch_indices(self, n: int) -> torch.Tensor:
        per_epoch = max(1, n // self.config.batch_size)
        epoch, k = divmod(self.step, per_epoch)
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
            self._perm_epoch, self._perm = epoch, torch.randperm(n, generator=g)
        return self._perm[k * self.config.batch_size:(k + 1) * self.config.batch_size]

    def train_step(self, x0: torch.Tensor, y: torch.Tensor | None = None) -> float:
        """One optimizer step on a batch x0 (B, 1, 28, 28) in [-1, 1], labels y (B,) for conditional networks."""
        self.model.train()
        B = x0.shape[0]
        t = torch.randint(0, self.schedule.T, (B,), generator=self.generator).to(self.device)
        noise = torch.randn(x0.shape, generator=self.generator).to(self.device)
        if y is not None:
            if self.model.num_classes is None:
                raise ValueError("labels were given but the backbone is unconditional; "
                                 "pass backbone_kwargs={'num_classes': 10} to train a conditional model")
            y = drop_labels(y, self.config.label_dropout, self.model.null_label, self.generator).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            loss = diffusion_loss(self.model, x0.to(self.device), self.schedule, t, noise, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        value = float(loss.detach())
        self.history["step"].append(self.step)
        self.history["loss"].append(value)
        return value

    def state_dict(self) -> dict:
        return {"arch": self.model.arch, "schedule": {"name": self.config.schedule, "T": self.config.T},
                "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict(),
                "step": self.step, "rng": self.generator.get_state(), "config": asdict(self.config),
                "history": self.history}

    def save(self, path: str | os.PathLike) -> Path:
        return save_checkpoint(self.state_dict(), path)

    def load(self, path: str | os.PathLike) -> None:
        """Restore everything from a checkpoint written by save(), so training continues where it stopped."""
        checkpoint = load_checkpoint(path)
        if checkpoint["arch"] != self.model.arch:
            from .checkpoints import CheckpointError
            raise CheckpointError(f"cannot resume: {path} holds {checkpoint['arch']}, this run trains {self.model.arch}; "
                                  "use another output folder or the same backbone settings")
        self.model.load_state_dict(checkpoint["model"])
        self.ema.load_state_dict(checkpoint["ema"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.lr_scheduler.load_state_dict(checkpoint["lr_scheduler"])
        self.step = int(checkpoint["step"])
        self.generator.set_state(checkpoint["rng"])
        self.history = {k: list(v) for k, v in checkpoint["history"].items()}


def train(config: TrainConfig, images: torch.Tensor, labels: torch.Tensor | None = None,
          out_dir: str | os.PathLike | None = None, resume: bool = True, device: torch.device | str = "cpu",
          progress: bool = True, callback: Callable[[Trainer], None] | None = None) -> TrainResult:
    """Train on `images` (N, 1, 28, 28) in [-1, 1] (and `labels` (N,) for a conditional backbone).

    With out_dir, checkpoints go to out_dir/last.pt every `checkpoint_every` steps and at the end,
    and, if resume is True and out_dir/last.pt exists, training continues from it.
    callback(trainer) is called after every step (for live plots).
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if labels is not None and labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape (N,) = ({images.shape[0]},), got {tuple(labels.shape)}")
    trainer = Trainer(config, device)
    last = Path(out_dir) / "last.pt" if out_dir is not None else None
    if last is not None and resume and last.exists():
        trainer.load(last)
    start, written = time.monotonic(), None
    bar = tqdm(total=config.steps, initial=trainer.step, desc=f"train {config.backbone}", disable=not progress)
    while trainer.step < config.steps:
        idx = trainer.batch_indices(images.shape[0])
        loss = trainer.train_step(images[idx], None if labels is None else labels[idx])
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
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
    return TrainResult(trainer.model.eval(), ema_model.eval(), trainer.history, trainer.step, written)
