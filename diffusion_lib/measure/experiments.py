"""Notebook 09's experiment: the seed blog's MLP-vs-CNN comparison under one budget, and its diagnosis.

    MLP_VS_CNN_RUNS               the runs: the blog's four backbones (the U-Net standing in for a modern
                                  CNN) and the changes tried on the MLPs
    blog_config(run, steps, ...)  the blog's recipe as a TrainConfig: AdamW lr 1e-3, batch 128, eps-prediction,
                                  linear schedule T = 1000, fp32, no gradient clipping
    chain_magnitudes(...)         std of x_t and of the predicted x_0 at every step of a DDIM chain
    one_step_x0(...)              the predicted clean image x0_pred from x_t = q_sample(x_0, t), at a few t
    eps_error_amplification(...)  sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t): how an error in eps becomes an error in x0_pred
    live_configs(budget)          the short runs notebook 09 trains live (and dead_unit_configs(budget))
    dead_unit_share(model, x_t, t)  per hidden layer of an MLP, the share of ReLUs silent on a whole batch
    unreachable_part(model, x)    the part of an image an MLP's output can never reach (SmolMLP: 272 of 784 dimensions)
    load_mlp_vs_cnn_results()     what benchmarks/mlp_vs_cnn.py measured, shipped in diffusion_lib/weights/
    results_table(record)         the notebook's table (its pictures: dl.plotting.plot_loss_curves and
                                  plot_chain_magnitudes)

Images are stored as uint8 (pixels of [-1, 1] clamped and mapped to 0..255): they are for display,
the numbers (standard deviations, losses, scores) are measured on the float tensors before that.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import Budget
from ..data import to_model_range
from ..forward import predict_x0_from_eps, q_sample
from ..samplers import ddim_sample_progressive
from ..schedules import Schedule, on_device
from ..pretrained import WEIGHTS_DIR
from ..training import TrainConfig

RESULTS_JSON = WEIGHTS_DIR / "mlp_vs_cnn.json"
RESULTS_IMAGES = WEIGHTS_DIR / "mlp_vs_cnn.pt"


# ----------------------------------------------------------------------------- the runs

@dataclass(frozen=True)
class Run:
    name: str                          # how tables and plots call it
    backbone: str                      # a name of diffusion_lib.backbones.BACKBONES
    backbone_kwargs: dict = field(default_factory=dict)
    lr: float = 1e-3                   # the blog's
    max_minutes: float | None = None   # a wall-clock cap on top of the step budget
    note: str = ""


MLP_VS_CNN_RUNS = [
    Run("SmolMLP", "smol_mlp", note="the blog's: 1040 -> 512 -> 512 -> 512 -> 784"),
    Run("ChunkyMLP", "chunky_mlp", note="the blog's: five hidden layers of 2048"),
    Run("ConvNet", "convnet", max_minutes=5.0, note="the blog's: nine conv blocks at 28x28; capped at 5 minutes"),
    Run("U-Net", "unet", {"base": 16}, note="the course's small U-Net (notebooks 04-05), 28 -> 14 -> 7 and back"),
    Run("SmolMLP + skip", "mlp", {"hidden": [512, 512, 512], "skip": True},
        note="change: eps_theta = x_t + f(x_t, t), no new parameters"),
    Run("SmolMLP + LayerNorm", "mlp", {"hidden": [512, 512, 512], "norm": True},
        note="change: LayerNorm before every hidden ReLU"),
    Run("SmolMLP, lr 1e-4", "smol_mlp", lr=1e-4, note="change: a ten times lower learning rate"),
    Run("ChunkyMLP, lr 1e-4", "chunky_mlp", lr=1e-4, note="change: a ten times lower learning rate"),
]
BLOG_BACKBONES = ["SmolMLP", "ChunkyMLP", "ConvNet", "U-Net"]


def blog_config(run: Run, steps: int, batch_size: int = 128, seed: int = 0) -> TrainConfig:
    """The seed blog's recipe for `run`: AdamW (lr 1e-3 unless the run changes it), batch 128, the
    noise-prediction loss, linear schedule T = 1000, fp32, and no gradient clipping (the blog has none).

    TrainConfig also keeps an EMA of the weights; the blog has none, so the experiment samples the raw weights.
    """
    return TrainConfig(backbone=run.backbone, backbone_kwargs=dict(run.backbone_kwargs), schedule="linear", T=1000,
                       steps=steps, max_minutes=run.max_minutes, batch_size=batch_size, lr=run.lr,
                       grad_clip=None, precision="fp32", seed=seed)


def live_configs(budget: Budget) -> dict[str, TrainConfig]:
    """The short runs of notebook 09, from the budget: SmolMLP and SmolMLP + skip for a tenth of
    budget.train_steps, the U-Net for a hundredth (at least one step each), on batches of budget.batch_size.

    In full mode that is 300, 300 and 30 steps of 128 images: about a minute on one thread of a 2-core CPU.
    """
    runs = {r.name: r for r in MLP_VS_CNN_RUNS}
    mlp_steps, unet_steps = max(1, budget.train_steps // 10), max(1, budget.train_steps // 100)
    return {"SmolMLP": blog_config(runs["SmolMLP"], mlp_steps, budget.batch_size),
            "SmolMLP + skip": blog_config(runs["SmolMLP + skip"], mlp_steps, budget.batch_size),
            "U-Net": blog_config(runs["U-Net"], unet_steps, budget.batch_size)}


def dead_unit_configs(budget: Budget) -> dict[str, TrainConfig]:
    """ChunkyMLP at the blog's learning rate and at a ten times lower one, for a six-hundredth of
    budget.train_steps (at least one step): enough to count its dead ReLUs (5 steps in full mode)."""
    runs = {r.name: r for r in MLP_VS_CNN_RUNS}
    steps = max(1, budget.train_steps // 600)
    return {name: blog_config(runs[name], steps, budget.batch_size) for name in ("ChunkyMLP", "ChunkyMLP, lr 1e-4")}


# ----------------------------------------------------------------------------- measurements

def unreachable_part(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """For an MLP without skip: the part of images x (B, 1, 28, 28) that the network's output can never reach,
    shape (B, 784): x minus its projection onto the column space of the last Linear's weight W (784, width).

    eps_theta = W h + b lies in that column space shifted by b, whatever the input and t. If width < 784 (SmolMLP:
    512), a deterministic DDIM chain only rescales the unreachable part of x_t, step by step by
    sqrt(alpha_bar_prev / alpha_bar_t), plus a shift common to all images; over the whole chain the factors multiply
    to 1 / sqrt(alpha_bar_{T-1}) (about 157 on the linear schedule). So, across images,
    unreachable_part(sample) - its mean = (unreachable_part(x_T) - its mean) / sqrt(alpha_bar_{T-1}).
    """
    W = model.layers[-1].weight.detach()                                   # (784, width)
    Q, _ = torch.linalg.qr(W)                                               # (784, width) orthonormal columns
    flat = x.detach().flatten(1).to(W)                                      # (B, 784)
    return flat - (flat @ Q) @ Q.T                                          # (B, 784)


def dead_unit_share(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor) -> list[float]:
    """For an MLP backbone: per hidden layer, the share of its ReLU units that output 0 for every image of the
    batch x_t (B, 1, 28, 28) at timesteps t (B,). Such a unit passes no gradient either: it is dead for this data.

    Walks the layers as MLP.forward does (Linear, LayerNorm if any, ReLU)."""
    shares = []
    with torch.no_grad():
        h = torch.cat([x_t.flatten(1), model.time_embedding(t)], dim=1)    # (B, 784 + 256)
        for i, layer in enumerate(model.layers[:-1]):
            h = layer(h)
            if model.norms is not None:
                h = model.norms[i](h)
            h = torch.relu(h)                                               # (B, width)
            shares.append(float((h == 0).all(dim=0).float().mean()))
    return shares


def eps_error_amplification(t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t), shape of t: the factor by which an error in the predicted noise
    becomes an error in the predicted clean image, since x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)
    gives x0_pred - x_0 = -sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t) * (eps_pred - eps)."""
    return on_device(schedule.sqrt_one_minus_alpha_bar, t.device)[t] / on_device(schedule.sqrt_alpha_bar, t.device)[t]


@dataclass
class ChainMagnitudes:
    """One DDIM chain, measured: at each step (t from T-1 down), the std over all pixels of all images of x_t
    and of x0_pred; `x_t` and `x0_pred` (S, keep, 1, 28, 28) of the first `keep` images; the samples (B, 1, 28, 28)."""
    timesteps: list[int]
    x_t_std: list[float]
    x0_pred_std: list[float]
    x_t: torch.Tensor
    x0_pred: torch.Tensor
    samples: torch.Tensor

    def numbers(self) -> dict:
        return {"t": self.timesteps, "x_t_std": self.x_t_std, "x0_pred_std": self.x0_pred_std,
                "sample_std": float(self.samples.std()), "sample_abs_max": float(self.samples.abs().max())}


def chain_magnitudes(model: nn.Module, x_T: torch.Tensor, schedule: Schedule, num_steps: int = 50,
                     keep: int = 3, batch_size: int = 250) -> ChainMagnitudes:
    """Run deterministic DDIM (eta = 0) from x_T (B, 1, 28, 28) and measure every step (in batches of batch_size)."""
    model.eval()
    sums, kept_x, kept_x0, samples = None, [], [], []
    for start in range(0, x_T.shape[0], batch_size):
        chunk = x_T[start:start + batch_size]
        steps = list(ddim_sample_progressive(model, chunk, schedule, num_steps, eta=0.0))
        # sums of squares per step, so the std over every image of every batch comes out exactly
        sq = torch.tensor([[float(s.x_t.double().square().sum()), float(s.x_t.double().sum()),
                            float(s.x0_pred.double().square().sum()), float(s.x0_pred.double().sum())] for s in steps])
        sums = sq if sums is None else sums + sq
        if start == 0:
            kept_x = torch.stack([s.x_t[:keep].cpu() for s in steps])           # (S, keep, 1, 28, 28)
            kept_x0 = torch.stack([s.x0_pred[:keep].cpu() for s in steps])
        samples.append(steps[-1].x_next.cpu())
    n = x_T.numel()
    std = lambda s2, s1: float(((s2 - s1 * s1 / n) / (n - 1)) ** 0.5)   # noqa: E731
    return ChainMagnitudes(timesteps=[s.t for s in steps],
                           x_t_std=[std(r[0], r[1]) for r in sums.tolist()],
                           x0_pred_std=[std(r[2], r[3]) for r in sums.tolist()],
                           x_t=kept_x, x0_pred=kept_x0, samples=torch.cat(samples))


def one_step_x0(model: nn.Module, x0: torch.Tensor, schedule: Schedule, timesteps, seed: int = 0) -> torch.Tensor:
    """(len(timesteps), B, 1, 28, 28): x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_bar_t)
    from x_t = q_sample(x0, t, eps), with the same noise eps (drawn from `seed`) at every t."""
    device = next(model.parameters()).device
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    x0, noise = x0.to(device), noise.to(device)
    model.eval()
    out = []
    with torch.no_grad():
        for t in timesteps:
            tt = torch.full((x0.shape[0],), int(t), dtype=torch.long, device=device)
            x_t = q_sample(x0, tt, schedule, noise)
            out.append(predict_x0_from_eps(x_t, tt, model(x_t, tt), schedule).cpu())
    return torch.stack(out)


def block_means(history: dict, points: int = 100) -> dict:
    """The loss curve of a run, shortened for storage: means over blocks of max(1, steps // points) steps."""
    loss = np.asarray(history["loss"], dtype=np.float64)
    block = max(1, len(loss) // points)
    n = len(loss) // block * block
    means = loss[:n].reshape(-1, block).mean(1)
    return {"step": [int(block * (i + 1)) for i in range(len(means))], "loss": [round(float(v), 5) for v in means],
            "block": block}


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (clamped first) -> uint8 0..255, for storing pictures small."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float images in [-1, 1], the inverse of to_uint8: data.to_model_range, as MNIST is loaded."""
    return to_model_range(x)


# ----------------------------------------------------------------------------- the shipped results

def load_mlp_vs_cnn_results(json_path: str | Path = RESULTS_JSON, images_path: str | Path = RESULTS_IMAGES) -> dict:
    """The results of benchmarks/mlp_vs_cnn.py: the JSON record (command, machine, budget, and per run its
    loss curve, loss by timestep, scores, chain magnitudes, wall times), with record["images"][run] holding
    its pictures as float tensors in [-1, 1] (DDIM samples, DDPM samples, a DDIM chain, one-step x0_pred)."""
    record = json.loads(Path(json_path).read_text())
    stored = torch.load(images_path, map_location="cpu", weights_only=True)
    record["images"] = {run: {k: from_uint8(v) for k, v in pictures.items()} for run, pictures in stored.items()}
    return record


def results_table(record: dict, runs=None) -> str:
    """One line per run: parameters, steps, images/s, final loss, loss at t = 999, and the DDIM samples' scores."""
    runs = runs or list(record["runs"])
    t_last = record["timesteps"].index(999)
    head = (f"{'run':<20} {'params':>11} {'steps':>6} {'img/s':>6} {'loss':>6} {'L(999)':>7} {'n':>4} "
            f"{'confident':>9} {'Frechet':>8} {'classes':>7} {'sample std':>10}")
    lines = [head, "-" * len(head)]
    for name in runs:
        r = record["runs"][name]
        s = r["scores"]
        lines.append(f"{name:<20} {r['parameters']:>11,} {r['steps']:>6} {r['images_per_second']:>6.0f} "
                     f"{r['final_loss']:>6.3f} {r['loss_by_timestep'][t_last]:>7.3f} {s['n']:>4} "
                     f"{s['confident_share']:>9.3f} {s['frechet_distance']:>8.1f} {s['effective_classes']:>7.2f} "
                     f"{r['chain']['sample_std']:>10.3g}")
    ref = record["reference"]
    lines.append(f"{'MNIST (reference)':<20} {'':>11} {'':>6} {'':>6} {'':>6} {'':>7} {ref['train_vs_test_n']:>4} "
                 f"{ref['test_confident_share']:>9.3f} {ref['train_vs_test_frechet_distance']:>8.1f} "
                 f"{ref['test_effective_classes']:>7.2f} {ref['data_std']:>10.3g}")
    return "\n".join(lines)
