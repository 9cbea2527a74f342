"""Training token networks (notebook 14): masked diffusion, or the autoregressive baseline, with the habits of
training.py (AdamW, EMA, one seeded generator whose state is saved, atomic checkpoints, exact resume).

    repeat:  x_0 ~ data,  t ~ U(0, 1) (stratified),  x_t ~ q(x_t | x_0)
             loss = mean over the batch of  w(t) * sum over masked positions of -log x_theta(x_0) / tokens per row

for kind "masked" (masked.masked_diffusion_loss; weighting "elbo" is the likelihood bound, "none" MaskGIT's plain
mean), or the exact -log p(x_0) / tokens of a causal network for kind "autoregressive". Data: "mnist" (digits
quantised to `levels` grey levels, tokens (28, 28)) or "surnames" (tokens (12,), tokens.py).

A checkpoint records `kind` ("masked" or "autoregressive") beside the usual fields, with the data it was trained on
(`data`: {"name", "levels"} or {"name", "length"}) and, for masked models, the masking schedule; load_token_model
rebuilds the network from it. checkpoints.load_model refuses such a file and points here.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import CheckpointError, load_checkpoint, remove_stale_temp_files, save_checkpoint
from .device import mark_known_range, moved
from .masked import MASKING_SCHEDULES, autoregressive_nll, masked_diffusion_loss
from .token_networks import TOKEN_NETWORKS, build_token_network
from .training import (LOSS_READ_EVERY, TrainingState, _check_bool, _check_choice, _check_int, _check_number,
                       lr_factor, make_ema)

KINDS = ("masked", "autoregressive")
TOKEN_DATASETS = ("mnist", "surnames")


@dataclass
class TokenTrainConfig:
    kind: str = "masked"               # "masked" (masked diffusion) or "autoregressive" (the causal baseline)
    network: str = "char_transformer"  # token_networks.TOKEN_NETWORKS
    network_kwargs: dict = field(default_factory=dict)
    data: str = "surnames"             # "mnist" (quantised digits) or "surnames" (characters)
    levels: int = 4                    # grey levels of the quantised digits (data "mnist")
    masking_schedule: str = "linear"   # alpha_t = 1 - t (masked only)
    weighting: str = "elbo"            # "elbo": -alpha'_t / (1 - alpha_t), the bound; "none": mean over masked tokens
    steps: int = 3000
    max_minutes: float | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    lr_decay: str = "constant"
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    checkpoint_every: int = 500
    seed: int = 0
    precision: str = "fp32"

    def __post_init__(self):
        _check_choice(self, "kind", KINDS)
        _check_choice(self, "network", sorted(TOKEN_NETWORKS))
        if not isinstance(self.network_kwargs, dict) or not all(isinstance(k, str) for k in self.network_kwargs):
            raise ValueError(f"network_kwargs must be a dict of argument names to values, got {self.network_kwargs!r}")
        _check_choice(self, "data", TOKEN_DATASETS)
        _check_int(self, "levels", 2, 256)
        _check_choice(self, "masking_schedule", MASKING_SCHEDULES)
        _check_choice(self, "weighting", ("elbo", "none"))
        _check_int(self, "steps", 1)
        if self.max_minutes is not None:
            _check_number(self, "max_minutes", lower=0, lower_open=True, none="None for no time limit")
        _check_int(self, "batch_size", 1)
        _check_number(self, "lr", lower=0, lower_open=True)
        _check_number(self, "weight_decay", lower=0)
        _check_int(self, "warmup_steps", 0)
        _check_choice(self, "lr_decay", ("constant", "cosine"))
        if self.grad_clip is not None:
            _check_number(self, "grad_clip", lower=0, lower_open=True, none="None for no clipping")
        _check_number(self, "ema_decay", lower=0, upper=1)
        _check_bool(self, "ema_warmup")
        _check_int(self, "checkpoint_every", 1)
        _check_int(self, "seed", 0, 2**32 - 1)
        _check_choice(self, "precision", ("fp32", "bf16"))
        if self.kind == "autoregressive" and (self.network != "char_transformer" or self.data != "surnames"):
            raise ValueError("the autoregressive baseline is a causal char_transformer on surnames; use kind 'masked' "
                             "for digits")
        if self.data == "mnist" and self.network != "token_unet":
            raise ValueError("digits (data 'mnist') are (28, 28) tokens: use network 'token_unet'")
        if self.data == "surnames" and self.network != "char_transformer":
            raise ValueError("surnames are sequences: use network 'char_transformer'")

    def network_arguments(self) -> dict:
        """The network's arguments: network_kwargs plus what the data and the kind fix (vocabulary, causal)."""
        kwargs = dict(self.network_kwargs)
        if self.data == "mnist":
            kwargs["vocab_size"] = self.levels
        else:
            kwargs["causal"] = self.kind == "autoregressive"
        return kwargs

    def data_record(self) -> dict:
        return {"name": "mnist", "levels": self.levels} if self.data == "mnist" else {"name": "surnames", "length": 12}


def token_loss(network, x0: torch.Tensor, config: TokenTrainConfig, generator: torch.Generator | None) -> torch.Tensor:
    """The training loss of one batch of tokens (B, *shape), a scalar: per token, averaged over the batch."""
    tokens = x0[0].numel()
    if config.kind == "autoregressive":
        return autoregressive_nll(network, x0, network.vocab_size).mean() / tokens
    loss = masked_diffusion_loss(network, x0, network.vocab_size, config.masking_schedule, generator=generator,
                                 weighting=config.weighting)
    return loss.mean() / (tokens if config.weighting == "elbo" else 1)


class TokenTrainer(TrainingState):
    """One run's state: network, EMA, optimizer, learning-rate schedule, step, generator and loss history."""

    def __init__(self, config: TokenTrainConfig, device: torch.device | str = "cpu"):
        self.config, self.device = config, torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = build_token_network(config.network, **config.network_arguments()).to(self.device)
        self.ema = make_ema(self.model, config.ema_decay, config.ema_warmup)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, config))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step, self.history = 0, {"step": [], "loss": []}

    def batch_indices(self, n: int) -> torch.Tensor:
        """One permutation per epoch, seeded by (seed, epoch): the data order is known after a resume."""
        per_epoch = max(1, n // self.config.batch_size)
        epoch, k = divmod(self.step, per_epoch)
        g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return torch.randperm(n, generator=g)[k * self.config.batch_size:(k + 1) * self.config.batch_size]

    def train_step(self, x0: torch.Tensor) -> torch.Tensor:
        """One optimizer step on a batch of tokens; returns the batch's loss as a 0-dim tensor on the device (the
        history reads the losses in one go; on a GPU each read waits for the step to finish)."""
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            loss = token_loss(self.model, moved(x0, self.device), self.config, self.generator)
        return self.update(loss, self.config.grad_clip)

    def state_dict(self) -> dict:
        c = self.config
        return {"kind": c.kind, "arch": self.model.arch, "data": c.data_record(),
                "masking": {"schedule": c.masking_schedule, "weighting": c.weighting} if c.kind == "masked" else None,
                "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict(),
                "step": self.step, "rng": self.generator.get_state(), "config": asdict(c), "history": self.history}

    def load(self, checkpoint: dict, path) -> None:
        recorded = dict(checkpoint.get("config") or {})
        given = asdict(self.config)
        differences = [(k, recorded.get(k), v) for k, v in given.items()
                       if k not in ("steps", "max_minutes", "checkpoint_every") and _plain(recorded.get(k)) != _plain(v)]
        if differences:
            listed = "; ".join(f"{k}: recorded {old!r}, given {new!r}" for k, old, new in differences)
            raise CheckpointError(f"cannot resume from {path}, trained with other settings ({listed}); give the "
                                  "recorded settings, or start afresh in another folder (or with --fresh)")
        self.restore(checkpoint)


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def train_tokens(config: TokenTrainConfig, data: torch.Tensor, out_dir: str | os.PathLike | None = None,
                 resume: bool = True, device: torch.device | str = "cpu", progress: bool = True):
    """Train on tokens `data` (N, *shape) long; checkpoints to out_dir/last.pt (resumed from it when it exists and
    `resume`). Returns (trainer, ema network in eval mode)."""
    last = Path(out_dir) / "last.pt" if out_dir is not None else None
    trainer = TokenTrainer(config, device)
    from .masked import check_tokens
    check_tokens(data, trainer.model.vocab_size, allow_mask=False, name="training tokens")
    if tuple(data.shape[1:]) != tuple(trainer.model.token_shape):
        raise ValueError(f"training tokens must have shape (N, {', '.join(map(str, trainer.model.token_shape))}), "
                         f"got {tuple(data.shape)}")
    if last is not None and resume and last.exists():
        trainer.load(load_checkpoint(last), last)
    if last is not None:
        remove_stale_temp_files(last)
    start = time.monotonic()
    bar = tqdm(total=config.steps, initial=trainer.step, desc=f"train {config.kind} {config.network}",
               disable=not progress)
    while trainer.step < config.steps:
        batch = data[trainer.batch_indices(data.shape[0])]
        trainer.train_step(mark_known_range(batch, 0, trainer.model.vocab_size - 1))   # checked above, as data
        bar.update(1)
        if trainer.step % LOSS_READ_EVERY == 0 or trainer.step == config.steps:
            bar.set_postfix(loss=f"{trainer.history['loss'][-1]:.4f}", refresh=False)
        out_of_time = config.max_minutes is not None and time.monotonic() - start > 60 * config.max_minutes
        if last is not None and (trainer.step % config.checkpoint_every == 0 or trainer.step == config.steps
                                 or out_of_time):
            save_checkpoint(trainer.state_dict(), last)
        if out_of_time:
            break
    bar.close()
    ema = build_token_network(config.network, **config.network_arguments()).to(trainer.device)
    ema.load_state_dict(trainer.ema.module.state_dict())
    return trainer, ema.eval()


def is_token_checkpoint(checkpoint: dict) -> bool:
    return checkpoint.get("kind") in KINDS


def token_model_from_checkpoint(checkpoint: dict, ema: bool = True, device: torch.device | str = "cpu"):
    """The network of a token checkpoint (EMA weights by default), in eval mode on `device`."""
    if not is_token_checkpoint(checkpoint):
        raise CheckpointError("this checkpoint holds an image diffusion model, not a masked-diffusion or "
                              "autoregressive token model; load it with diffusion_lib.load_model")
    arch = checkpoint["arch"]
    model = build_token_network(arch["name"], **arch["kwargs"])
    if ema and checkpoint.get("ema") is not None:
        state = {k[len("module."):]: v for k, v in checkpoint["ema"].items() if k.startswith("module.")}
    elif checkpoint.get("model") is not None:
        state = checkpoint["model"]
    else:
        raise CheckpointError("this checkpoint has no raw weights, only the EMA ones; load it with ema=True")
    model.load_state_dict(state)
    return model.to(device).eval()


def load_token_model(path: str | os.PathLike, ema: bool = True, device: torch.device | str = "cpu"):
    """Rebuild a masked-diffusion or autoregressive token network from a checkpoint (kind recorded in the file)."""
    return token_model_from_checkpoint(load_checkpoint(path), ema, device)


def export_token_model(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """A sampling-only copy of a token checkpoint: kind, arch, data, masking, EMA weights, step and config."""
    c = load_checkpoint(checkpoint_path)
    if not is_token_checkpoint(c):
        raise CheckpointError(f"{checkpoint_path} is not a token model's checkpoint")
    ema = {k: v for k, v in c["ema"].items() if k.startswith("module.")}
    return save_checkpoint({k: c[k] for k in ("kind", "arch", "data", "masking", "step", "config")} | {"ema": ema},
                           out_path)


def load_token_data(config_or_data: str, levels: int = 4, root=None, train: bool = True,
                    names_path=None) -> torch.Tensor:
    """Tokens of a dataset: "mnist" -> (N, 28, 28) quantised digits; "surnames" -> (N, 12) characters (the
    training split, or the held-out one when train=False)."""
    from .tokens import encode_names, load_names, quantise, split_names, SURNAMES_PATH
    if config_or_data == "mnist":
        from .data import load_mnist
        images, _ = load_mnist(train=train, root=root)
        return quantise(images, levels)
    if config_or_data == "surnames":
        training, held = split_names(load_names(names_path or SURNAMES_PATH))
        return encode_names(training if train else held)
    raise ValueError(f"unknown token data {config_or_data!r}; choose one of {TOKEN_DATASETS}")


__all__ = ["TokenTrainConfig", "TokenTrainer", "train_tokens", "token_loss", "load_token_model",
           "token_model_from_checkpoint", "export_token_model", "load_token_data", "KINDS", "TOKEN_DATASETS"]

