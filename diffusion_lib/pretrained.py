"""Shipped weights: networks trained by the project, so a notebook can sample without training first.

    model = load_pretrained("unet")              # a Backbone in eval mode, EMA weights
    model.schedule, model.objective              # the noise schedule it was trained with, and "eps" (read once)
    pretrained_schedule("unet")                  # the same schedule, without building the network
    pretrained_objective("unet_flow")            # "flow": a velocity model, for the flow samplers

Each file in diffusion_lib/weights/ has a model card beside it (<name>.md): the exact training
command, the commit, the wall time and machine, and its scores from diffusion_lib.metrics.

A shipped file is a training checkpoint with only what sampling needs: the architecture, the
schedule, the objective and the EMA weights (`export_for_sampling` strips the raw weights, the
optimizer state, the RNG state and the loss history). It is still a diffusion_lib checkpoint, so
diffusion_lib.load_model(path) and `python -m diffusion_lib sample --checkpoint PATH` read it too.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .backbones import Backbone
from .checkpoints import checkpoint_codec, checkpoint_objective, load_checkpoint, load_model, save_checkpoint
from .schedules import Schedule, make_schedule

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class Pretrained:
    file: str           # file name in diffusion_lib/weights/
    description: str


PRETRAINED = {
    "unet": Pretrained("unet.pt", "unconditional U-Net on MNIST, linear schedule T = 1000, EMA weights"),
    "unet_cond": Pretrained("unet_cond.pt", "class-conditional U-Net on MNIST (10 digits + null label, label "
                                            "dropout 0.1) for classifier-free guidance, linear schedule T = 1000, "
                                            "EMA weights"),
    "unet_flow": Pretrained("unet_flow.pt", "unconditional U-Net on MNIST trained with flow matching: it predicts the "
                                            "velocity u = eps - x_0 on the straight path x_s = (1 - s) x_0 + s eps, "
                                            "sampled with the flow samplers (flow Euler, flow Heun), T = 1000, EMA weights"),
    "unet_flow_cond": Pretrained("unet_flow_cond.pt", "class-conditional U-Net on MNIST trained with flow matching "
                                                      "(the velocity on the straight path; 10 digits + null label, "
                                                      "label dropout 0.1) for classifier-free guidance on the velocity, "
                                                      "sampled with the flow samplers, T = 1000, EMA weights"),
    "meanflow": Pretrained("meanflow.pt", "unconditional MeanFlow U-Net on MNIST (notebook 12): the average velocity "
                                          "over an interval of the straight path, started from unet_flow's weights "
                                          "with a second time input and a slowed time embedding; sampled in 1 to 8 "
                                          "steps with the meanflow sampler, T = 1000, EMA weights"),
    "meanflow_cond": Pretrained("meanflow_cond.pt", "class-conditional MeanFlow U-Net on MNIST (notebook 12): the average "
                                                    "velocity of unet_flow_cond's ODE guided at w = 1.25, distilled with "
                                                    "the teacher's velocity in the target, so the guidance is built in: "
                                                    "one evaluation a step with the label (null label 10: unguided "
                                                    "unconditional); 1 to 8 steps with the meanflow sampler, T = 1000, "
                                                    "EMA weights"),
    "reflow": Pretrained("reflow.pt", "unconditional U-Net on MNIST (notebook 12), the reflow student of unet_flow: "
                                      "trained with flow matching on (noise, unet_flow's ODE end from it) pairs, so it "
                                      "predicts the velocity on the straight path between them, then distilled for one "
                                      "step on the same pairs; 1 to 8 flow Euler steps, T = 1000, EMA weights"),
    "reflow_cond": Pretrained("reflow_cond.pt", "class-conditional U-Net on MNIST (notebook 12), the reflow student of "
                                                "unet_flow_cond guided at w = 1.25: trained with flow matching on "
                                                "(noise, label, the guided teacher's ODE end) pairs, so it predicts the "
                                                "velocity on the straight path between them with the guidance built in "
                                                "(one evaluation a step with the label, no null label), half of its "
                                                "batches at the noise end (one-step distillation); 1 to 8 flow Euler "
                                                "steps, T = 1000, EMA weights"),
    "autoencoder": Pretrained("autoencoder.pt", "the tiny autoencoder of notebook 13: MNIST 28 x 28 <-> a 4 x 7 x 7 "
                                                "latent, with its scale factor (load_pretrained_codec)"),
    "latent_dit": Pretrained("latent_dit.pt", "class-conditional DiT (patch 1) trained with flow matching on the "
                                              "autoencoder's standardised 4 x 7 x 7 latents, with label dropout; it "
                                              "carries the autoencoder (its decoder fine-tuned on noisy latents), so "
                                              "its samples decode to digits (notebook 13; labels 0..9, w = 1)"),
}
# Files that are not diffusion networks: load_pretrained refuses them, load_pretrained_codec reads them.
AUTOENCODERS = ("autoencoder",)
# Token models (notebook 14): masked diffusion and its autoregressive baseline (masked.py, masked_training.py), loaded
# with load_pretrained_tokens, not load_pretrained; sampled on the command line with `sample-tokens --pretrained`.
TOKEN_PRETRAINED = {
    "masked_digits": Pretrained("masked_digits.pt", "masked diffusion on MNIST digits quantised to 2 grey levels: a "
                                                    "U-Net with a token embedding in and 2 logits per pixel out, EMA weights"),
    "masked_names": Pretrained("masked_names.pt", "masked diffusion on the 1990 US Census surnames (12 characters): a "
                                                  "small transformer, EMA weights"),
    "ar_names": Pretrained("ar_names.pt", "the autoregressive baseline of masked_names: the same transformer, causal, "
                                          "same steps, EMA weights"),
}


def pretrained_path(name: str) -> Path:
    """The file of a shipped model; a ValueError listing the known names if `name` is not one of them."""
    every = {**PRETRAINED, **TOKEN_PRETRAINED}
    if name not in every:
        known = ", ".join(f"{k!r} ({v.description})" for k, v in every.items())
        raise ValueError(f"unknown pretrained model {name!r}; the shipped ones are: {known}")
    path = WEIGHTS_DIR / every[name].file
    if not path.exists():
        raise FileNotFoundError(f"the weights of {name!r} are missing from {path}; reinstall diffusion_lib "
                                "(they ship inside the package) or train your own with `python -m diffusion_lib train`")
    return path


def load_pretrained(name: str, device: torch.device | str = "cpu") -> Backbone:
    """A shipped network with its EMA weights, loaded with torch.load(weights_only=True), in eval mode on `device`
    (checkpoints.load_model): the eps model of the DDPM-family samplers, or for a flow-matching network
    (model.objective == "flow") the velocity model of the flow samplers. It carries model.schedule and
    model.objective, read from the file with the weights."""
    if name in AUTOENCODERS:
        raise ValueError(f"{name!r} is an autoencoder, not a diffusion network; load it with "
                         f"load_pretrained_codec({name!r})")
    return load_model(pretrained_path(name), ema=True, device=device)


def load_pretrained_tokens(name: str, device: torch.device | str = "cpu"):
    """A shipped token model of notebook 14 (TOKEN_PRETRAINED), EMA weights, in eval mode on `device`."""
    if name not in TOKEN_PRETRAINED:
        raise ValueError(f"{name!r} is not a shipped token model; those are {sorted(TOKEN_PRETRAINED)} "
                         "(image models load with load_pretrained)")
    from .masked_training import load_token_model
    return load_token_model(pretrained_path(name), ema=True, device=device)


def load_pretrained_codec(name: str, device: torch.device | str = "cpu"):
    """The LatentCodec (encode images to standardised latents, decode them back) of a shipped autoencoder, or the
    one a shipped latent model carries; None for a model on pixels."""
    return checkpoint_codec(load_checkpoint(pretrained_path(name)), device)


@functools.lru_cache(maxsize=None)
def _record(name: str) -> tuple[str, int, str]:
    """(schedule name, T, objective) of a shipped file, read once per process (the files ship with the package)."""
    checkpoint = load_checkpoint(pretrained_path(name))
    return checkpoint["schedule"]["name"], checkpoint["schedule"]["T"], checkpoint_objective(checkpoint)


def pretrained_schedule(name: str) -> Schedule:
    """The noise schedule a shipped network was trained with (sample with the same one; load_pretrained's model
    carries it too, as model.schedule)."""
    schedule_name, T, _ = _record(name)
    return make_schedule(schedule_name, T)


def pretrained_objective(name: str) -> str:
    """What a shipped network predicts, as recorded in its file: "eps" (the DDPM family's samplers) or "flow"
    (a velocity: samplers.flow_euler_sample_progressive, flow_heun_sample_progressive); model.objective too."""
    return _record(name)[2]


def export_for_sampling(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write a copy of a training checkpoint that keeps only arch, schedule, EMA weights, step and config.

    The EMA keys keep the "module." prefix of torch.optim.swa_utils.AveragedModel, so the result
    loads with diffusion_lib.load_model like any checkpoint; the counter n_averaged is dropped.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    ema = {k: v for k, v in checkpoint["ema"].items() if k.startswith("module.")}
    kept = {key: checkpoint[key] for key in ("objective", "dataset", "autoencoder", "card") if key in checkpoint}
    return save_checkpoint({"arch": checkpoint["arch"], "schedule": checkpoint["schedule"], **kept, "ema": ema,
                            "step": checkpoint["step"], "config": checkpoint["config"]}, out_path)
