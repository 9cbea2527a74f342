"""Checkpoints: written atomically, loaded with weights_only=True, checked against the architecture.

A checkpoint is a dict of plain types and tensors:
    format      "diffusion_lib/1"
    arch        {"name": backbone name, "kwargs": {...}}  -- rebuilds the network
    schedule    {"name": "linear", "T": 1000}
    objective   what the network predicts: "eps", "x0", "v", "flow" or "meanflow" (objectives.py); absent in older files: "eps"
    dataset     what it was trained on: "mnist" or "fashion_mnist"; absent in older files: "mnist"
    config      the TrainConfig as a dict: a student records its teacher (init_from) and, for reflow, its pairs
    model       state_dict of the trained weights
    autoencoder a latent model's decoder: LatentCodec.record() (arch, weights, mean, scale), optional; a network
                with it works in the autoencoder's latent, and its samples are decoded (checkpoint_codec)
    ema         state_dict of the torch.optim.swa_utils.AveragedModel (EMA weights), optional
    optimizer, lr_scheduler, step, rng, config, history   -- for resuming training
    digest      "sha256:<hex>" of everything above (payload_digest), checked on loading; absent in older files

The network that load_model returns knows what it is: model.objective and model.schedule (objectives.mark_model),
read from the same file once.

Token models (notebook 14, masked_training.py) add `kind` ("masked" or "autoregressive") and `data`, and have no
`schedule`; load_model refuses them and names their loader.
"""
from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from pathlib import Path

import torch

from .backbones import Backbone, build_backbone
from .objectives import OBJECTIVES, eps_model_for
from .schedules import Schedule, make_schedule

FORMAT = "diffusion_lib/1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, of another format, or of another architecture."""


def save_checkpoint(checkpoint: dict, path: str | os.PathLike) -> Path:
    """Write the dict to `path` atomically: a temporary file in the same folder, fsync, then rename.

    A crash mid-write leaves the previous checkpoint intact, never a half-written file.
    """
    payload = {k: v for k, v in checkpoint.items() if k not in ("format", "digest", "path")}  # path: where it was read
    record = {"format": FORMAT, **payload, "digest": payload_digest(payload)}
    return write_atomically(path, lambda f: torch.save(record, f))


def write_atomically(path: str | os.PathLike, write) -> Path:
    """Call write(f) on a temporary file beside `path`, fsync it, then rename it to `path`: a crash or a failed
    write (disk full, file too large) leaves the previous file intact and no partial one. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:   # disk full, file too large: say
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e           # which file it was
        raise
    return path


def payload_digest(payload: dict) -> str:
    """sha256 of a checkpoint's contents: every key, plain value and tensor (dtype, shape and bytes), in a fixed
    order, so that the digest computed when saving can be checked against the tensors read back."""
    h = hashlib.sha256()

    def feed(value):
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"tensor {t.dtype} {tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(value, dict):
            h.update(f"dict {len(value)}|".encode())
            for key in sorted(value, key=repr):
                h.update(f"{key!r}:".encode())
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            h.update(f"{type(value).__name__} {len(value)}|".encode())
            for item in value:
                feed(item)
        else:
            h.update(f"{value!r}|".encode())
    feed(payload)
    return "sha256:" + h.hexdigest()


def temp_files(path: str | os.PathLike) -> list[Path]:
    """The temporary files save_checkpoint(..., path) leaves beside `path` when it is killed mid-write
    (.<name>.<random>.tmp in the same folder). Files of other checkpoints in that folder are not listed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of `path` left by an earlier run that was killed while saving; returns them.

    Call it when a run that writes `path` starts: no other writer of the same checkpoint is running then
    (two runs training into one folder at once would overwrite each other's checkpoints anyway).
    """
    removed = []
    for tmp in temp_files(path):
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with torch.load(weights_only=True) onto the CPU, with clear errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m diffusion_lib train --out DIR` "
                                "or use diffusion_lib.load_pretrained(name)")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; give the file, e.g. {path / 'last.pt'}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = " ".join(str(e).split()).split(". ")[0][:160]       # torch's messages run to a paragraph
        raise CheckpointError(f"{path} is corrupt or not a diffusion_lib checkpoint ({type(e).__name__}: {first}); "
                              "delete it and resume from an earlier checkpoint, or train again") from e
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT or "arch" not in checkpoint:
        raise CheckpointError(f"{path} is not a diffusion_lib checkpoint (expected format {FORMAT!r}); "
                              "checkpoints are written by diffusion_lib.train or `python -m diffusion_lib train`")
    digest = checkpoint.pop("digest", None)      # files written before digests were recorded have none
    if digest is not None:
        payload = {k: v for k, v in checkpoint.items() if k != "format"}
        if payload_digest(payload) != digest:
            raise CheckpointError(f"{path} is damaged: its contents no longer match the digest recorded when it was "
                                  "saved (a changed byte, from a bad disk or copy); restore it from a good copy, or "
                                  "train again")
    checkpoint["path"] = str(path)           # for the messages of the functions it is passed to; never saved
    return checkpoint


def ema_weights(checkpoint: dict) -> dict:
    """The EMA network's state_dict from a checkpoint (AveragedModel keys without the 'module.' prefix)."""
    if checkpoint.get("ema") is None:
        raise CheckpointError("this checkpoint has no EMA weights; load it with ema=False")
    return {k[len("module."):]: v for k, v in checkpoint["ema"].items() if k.startswith("module.")}


def load_weights_into(model: Backbone, checkpoint: dict, ema: bool = True) -> Backbone:
    """Copy a checkpoint's weights (EMA ones by default) into `model`, which must have the same architecture."""
    if checkpoint["arch"] != model.arch:
        raise CheckpointError(f"architecture mismatch: the checkpoint holds {checkpoint['arch']}, but the model is "
                              f"{model.arch}; build the model from the checkpoint instead: diffusion_lib.load_model(path)")
    if not ema and checkpoint.get("model") is None:
        raise CheckpointError("this checkpoint has no raw weights, only the EMA ones (a sampling-only file, as the "
                              "shipped weights are); load it with ema=True (on the command line: drop --no-ema)")
    state = ema_weights(checkpoint) if ema else checkpoint["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{checkpoint.get('path', 'the checkpoint')}: its {'EMA' if ema else 'raw'} weights do not "
                              f"fit the architecture it records ({checkpoint['arch']['name']}): "
                              f"{' '.join(str(e).split())[:300]}; the file was not written by this version of "
                              "diffusion_lib, or was edited: train again, or load it with the code that wrote it") from None
    schedule = checkpoint.get("schedule")
    if isinstance(schedule, dict) and isinstance(schedule.get("T"), int):
        model.T = schedule["T"]          # the timesteps the weights were trained on: forward() refuses others
    return model


def checkpoint_objective(checkpoint: dict) -> str:
    """The objective a checkpoint's network was trained with; "eps" for files written before it was recorded."""
    return checkpoint.get("objective", "eps")


def checkpoint_codec(checkpoint: dict, device: torch.device | str = "cpu"):
    """The autoencoder (a LatentCodec: encode images to standardised latents, decode them back) that a latent
    model's checkpoint carries, or None for a model on pixels. An autoencoder's own file (kind "autoencoder")
    gives its codec too."""
    from .autoencoder import codec_from_record
    record = checkpoint.get("autoencoder")
    return None if record is None else codec_from_record(record, device)


def load_codec(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """The LatentCodec of an autoencoder file (or of a latent model's checkpoint), in eval mode on `device`."""
    codec = checkpoint_codec(load_checkpoint(path), device)
    if codec is None:
        raise CheckpointError(f"{path} holds no autoencoder: it is a model on pixels, with no latent to decode")
    return codec


def load_model(path: str | os.PathLike, ema: bool = True, device: torch.device | str = "cpu"):
    """Rebuild the network a checkpoint was trained with, load its (EMA) weights, in eval mode on `device`,
    and return it as the samplers' eps model: the network itself when it predicts eps, else the network
    with its output converted to eps (objectives.eps_model_for), so the caller need not know the objective.
    A flow-matching network comes back as it is, a velocity model for the flow samplers. Either way it carries
    model.objective ("eps", "x0", "v" or "flow") and model.schedule, read from the file once."""
    return model_from_checkpoint(load_checkpoint(path), ema, device)


def checkpoint_schedule(checkpoint: dict) -> Schedule:
    """The Schedule a checkpoint records, with a clear error naming the file when the record is missing or bad."""
    where = checkpoint.get("path", "this checkpoint")
    record = checkpoint.get("schedule")
    if not isinstance(record, dict) or not {"name", "T"} <= record.keys():
        raise CheckpointError(f"{where} records no noise schedule; it was not written by diffusion_lib.train or "
                              "`python -m diffusion_lib train`, so it cannot be sampled")
    try:
        return make_schedule(record["name"], record["T"])
    except ValueError as e:
        raise CheckpointError(f"{where} records a schedule that cannot be built ({record!r}: {e}); the file was "
                              "edited or damaged: train again, or restore it from a good copy") from None


def model_from_checkpoint(checkpoint: dict, ema: bool = True, device: torch.device | str = "cpu"):
    """load_model for a checkpoint already read with load_checkpoint. ema=True takes the EMA weights where the file
    has them and the raw ones otherwise: `model.weights` says which ("ema" or "raw")."""
    if checkpoint.get("kind") in ("masked", "autoregressive"):       # token models of notebook 14 (masked_training.py)
        raise CheckpointError(f"{checkpoint.get('path', 'this checkpoint')} holds a {checkpoint['kind']} token model, "
                              "not an image diffusion model; load it with diffusion_lib.masked_training.load_token_model "
                              "(on the command line: python -m diffusion_lib sample-tokens)")
    arch = checkpoint["arch"]
    where = checkpoint.get("path", "this checkpoint")
    if checkpoint.get("kind") == "autoencoder":
        raise CheckpointError(f"{where} is an autoencoder, not a diffusion network: load it with "
                              "diffusion_lib.load_codec(path) (or load_pretrained_codec('autoencoder'))")
    objective = checkpoint_objective(checkpoint)
    if objective not in OBJECTIVES:
        raise CheckpointError(f"{where} records the objective {objective!r}, which this version of diffusion_lib does "
                              f"not know (it knows {', '.join(sorted(OBJECTIVES))}); update diffusion_lib")
    schedule = checkpoint_schedule(checkpoint)
    try:
        model = build_backbone(arch["name"], **arch["kwargs"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{where} records an architecture that cannot be built ({e}); the file was edited or "
                              "written by another version of diffusion_lib: train again") from None
    try:
        device = torch.device(device)          # a name torch knows (whether this machine has it, .to() says)
    except (RuntimeError, TypeError):
        raise ValueError(f"{device!r} is not a device (cpu, cuda, cuda:N or mps); pass device='cpu', or one this "
                         "machine has") from None
    use_ema = ema and checkpoint.get("ema") is not None
    load_weights_into(model, checkpoint, ema=use_ema)
    model = eps_model_for(model.to(device).eval(), objective, schedule)
    model.weights = "ema" if use_ema else "raw"
    return model
