"""Looking inside a backbone and a training run: the measurements of notebooks 04 and 05.

    shape_trace(model, x, t)            every layer the forward pass calls: input shape, output shape, parameters
    chain_receptive_field(layers)       r = 1 + sum_l (k_l - 1) * prod_{m<l} s_m for a chain of convolutions
    receptive_fields(model, pixels)     which input pixels can reach each output pixel, measured by backprop
    time_per_image(model)               seconds of one forward + backward pass, per image
    machine_description(device)         the processor (or GPU) those seconds were measured on
    loss_by_timestep(model, x0, ...)    the noise-prediction loss at each of a list of timesteps
    toy_eps_errors(model, mixture, ...) the 2-D toy: that loss split into its floor and the network's own error
    path_straightness(trajectory)       length of each sampler path over the distance between its ends (1: straight)
    SampleRecorder                      a train() callback that keeps DDIM samples every k steps

Nothing here changes a model: measurements that need a modified network work on a copy.
"""
from __future__ import annotations

import copy
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ..backbones import count_parameters
from ..device import synchronize
from ..samplers import ddim_sample_progressive, final
from ..forward import q_sample
from ..schedules import Schedule
from ..toy import GaussianMixture, exact_eps
from ..training import diffusion_loss


# ----------------------------------------------------------------------------- shapes through one forward pass

@dataclass(frozen=True)
class LayerRecord:
    name: str              # the attribute path in the model, e.g. "blocks.3" or "down2"
    kind: str              # the module's class, e.g. "ConvBlock"
    in_shape: tuple        # shape of its first tensor argument
    out_shape: tuple       # shape of its output
    parameters: int        # trainable parameters of this layer


class ShapeTrace(list):
    """A list of LayerRecord, in the order the forward pass called the layers; prints as a table."""

    def table(self) -> str:
        rows = [("layer", "kind", "input shape", "output shape", "parameters")]
        rows += [(r.name, r.kind, _shape(r.in_shape), _shape(r.out_shape), f"{r.parameters:,}") for r in self]
        rows.append(("total", "", "", "", f"{sum(r.parameters for r in self):,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()

    __str__ = __repr__


def _shape(s: tuple) -> str:
    return "(" + ", ".join(str(d) for d in s) + ")"


def shape_trace(model: nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> ShapeTrace:
    """Run model(x, t, y) once and record every layer that its forward() calls directly.

    "Directly" means one level down: the ConvNet's nine blocks (not the convolutions inside them),
    the U-Net's conv_in, down1, pool1, ... . Operations that are not modules (torch.cat of a skip
    connection, F.interpolate) do not appear, but their effect shows in the next layer's input shape.
    """
    records: list[LayerRecord] = []
    depth = [0]

    def pre(module, args):
        depth[0] += 1

    def post(name):
        def hook(module, args, output):
            depth[0] -= 1
            if depth[0] == 1:        # back at the model's own level: `module` was called by model.forward itself
                first = next((a for a in args if isinstance(a, torch.Tensor)), None)
                records.append(LayerRecord(name, type(module).__name__,
                                           tuple(first.shape) if first is not None else (),
                                           tuple(output.shape), count_parameters(module)))
        return hook

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post(name)))
    try:
        with torch.no_grad():
            model(x, t) if y is None else model(x, t, y)
    finally:
        for h in handles:
            h.remove()
    return ShapeTrace(records)


# ----------------------------------------------------------------------------- receptive field

def chain_receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """Receptive field (in input pixels, one side) of a chain of convolutions [(kernel, stride), ...]:

        r = 1 + sum_l (k_l - 1) * j_l,   with j_l = s_1 * ... * s_{l-1} the input-pixel spacing of layer l's grid.
    """
    r, jump = 1, 1
    for kernel, stride in layers:
        r += (kernel - 1) * jump
        jump *= stride
    return r


def _image_shape(model: nn.Module) -> tuple:
    """(C, H, W) of the images the model takes: its image_shape, which every diffusion_lib backbone sets."""
    shape = getattr(model, "image_shape", None)
    if shape is None:
        raise ValueError(f"{type(model).__name__} has no image_shape attribute; give it one, e.g. image_shape = "
                         "(1, 28, 28), or use a diffusion_lib backbone (they all have it)")
    return tuple(shape)


def receptive_fields(model: nn.Module, pixels: Sequence[tuple[int, int]]) -> torch.Tensor:
    """(P, H, W) boolean masks: mask[p] marks the input pixels that output pixel pixels[p] = (row, col) depends on.

    Measured, not derived: one backward pass from each output pixel to the input. To read off the
    wiring of the convolutions rather than accidents of one input, this runs on a copy of the
    network whose weights are all 1 / fan_in, biases 0, with a positive input and t = 0 (whose
    embedding [sin 0, cos 0] is >= 0): every activation is then positive, no ReLU is shut and no two
    paths cancel, so a gradient is > 0 exactly where a chain of layers connects the two pixels.
    GroupNorm is bypassed in the copy: its mean and variance are two numbers per group computed
    from every pixel, a thin global path that would otherwise connect everything to everything.
    """
    probe = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    with torch.no_grad():
        for name, p in probe.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0 / max(1, p[0].numel()) if p.ndim > 1 else 1.0)
    for m in probe.modules():
        if isinstance(m, nn.GroupNorm):
            m.register_forward_hook(lambda module, args, output: args[0])   # pass the input through
    P = len(pixels)
    x = torch.ones((P, *_image_shape(model)), requires_grad=True)
    out = probe(x, torch.zeros(P, dtype=torch.long))
    rows = torch.tensor([r for r, _ in pixels])
    cols = torch.tensor([c for _, c in pixels])
    out[torch.arange(P), 0, rows, cols].sum().backward()   # image p's gradient comes from its own pixel only
    return x.grad.abs().sum(1) > 0                         # (P, H, W)


def mask_extent(mask: torch.Tensor) -> tuple[int, int]:
    """(height, width) of the bounding box of a (H, W) boolean mask."""
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    if rows.numel() == 0:
        return 0, 0
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


# ----------------------------------------------------------------------------- cost

def time_per_image(model: nn.Module, batch_size: int = 16, repeats: int = 3, precision: str = "fp32",
                   device: torch.device | str | None = None) -> float:
    """Seconds per image of one forward + backward pass (what a training step costs, less the optimizer).

    One untimed warm-up pass, then the fastest of `repeats` timed passes of a random batch, divided by
    batch_size (on a shared machine the slower passes are the ones that waited for other work). precision="bf16" autocasts the forward pass as TrainConfig(precision="bf16") does.
    A copy of the model is timed, so the caller's model stays on its device, in its mode, with its gradients.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = copy.deepcopy(model).to(device).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, *_image_shape(model)), generator=g).to(device)
    t = torch.randint(0, getattr(model, "T", 1000), (batch_size,), generator=g).to(device)   # the network's own T
    times = []
    for i in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x, t)
        out.float().square().mean().backward()
        synchronize(device)
        if i > 0:
            times.append(time.perf_counter() - start)
    return min(times) / batch_size


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device | str = "cpu") -> str:
    """One line naming what a timing ran on: the GPU, or the CPU model and the threads torch uses."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    if device.type == "mps":
        return f"Apple GPU (MPS) on {platform.machine()}, torch {torch.__version__}"
    threads = torch.get_num_threads()
    return (f"{_cpu_name()}, {threads} torch thread{'s' if threads != 1 else ''} on {os.cpu_count()} logical cores, "
            f"torch {torch.__version__}")


def git_commit() -> str:
    """The commit a benchmark's result came from, for its card: `git rev-parse HEAD` in the working folder, marked
    "(with uncommitted changes)" when diffusion_lib/ or benchmarks/ differ from it; "unknown" outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "diffusion_lib", "benchmarks"],
                               capture_output=True, text=True).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ----------------------------------------------------------------------------- a trained model

def loss_by_timestep(model: nn.Module, x0: torch.Tensor, schedule: Schedule, timesteps: Sequence[int],
                     seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """(len(timesteps),) the mean of || eps - eps_theta(x_t, t) ||^2 over the images x0, at each t.

    The same images and the same noise (drawn from `seed`) are used at every t, so the curve shows
    how hard each noise level is, not which images happened to be drawn.
    """
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=g)
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for t in timesteps:
            total = 0.0
            for i in range(0, x0.shape[0], batch_size):
                xb = x0[i:i + batch_size].to(device)
                tb = torch.full((xb.shape[0],), int(t), dtype=torch.long, device=device)
                total += float(diffusion_loss(model, xb, schedule, tb, noise[i:i + batch_size].to(device),
                                              reduction="none").sum())
            out.append(total / x0.shape[0])
    model.train(was_training)
    return torch.tensor(out)


def toy_eps_errors(model: nn.Module, mixture: GaussianMixture, x0: torch.Tensor, schedule: Schedule,
                   timesteps: Sequence[int], seed: int = 0) -> list[dict]:
    """For the 2-D toy, whose best noise prediction eps*(x_t, t) = E[eps | x_t] is known (toy.exact_eps): one row
    per t with, averaged over the points x0 (B, 2, 1, 1) and per coordinate,

        loss    |eps - eps_theta(x_t, t)|^2     the network's training loss at t
        floor   |eps - eps*(x_t, t)|^2          the lowest loss any network can reach (eps cannot be told from x_t)
        excess  |eps_theta - eps*|^2            the network's own error; loss = floor + excess on average
        exact   |eps*|^2                        the size of what there is to learn (excess / exact: relative error)

    with x_t = q_sample(x0, t, eps) and the same eps (drawn from `seed`) at every t."""
    device = next(model.parameters()).device
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=x0.dtype).to(x0.device)
    mixture = mixture.to(x0)
    was_training = model.training
    model.eval()
    rows = []
    with torch.no_grad():
        for t in timesteps:
            tt = torch.full((x0.shape[0],), int(t), dtype=torch.long, device=x0.device)
            x_t = q_sample(x0, tt, schedule, noise)                                      # (B, 2, 1, 1)
            best = exact_eps(mixture, x_t, tt, schedule)
            eps_theta = model(x_t.to(device), tt.to(device)).to(x_t)
            rows.append({"t": int(t), "alpha_bar": float(schedule.alpha_bar[int(t)]),
                         "loss": float(((noise - eps_theta) ** 2).mean()), "floor": float(((noise - best) ** 2).mean()),
                         "excess": float(((eps_theta - best) ** 2).mean()), "exact": float((best ** 2).mean())})
    model.train(was_training)
    return rows


@dataclass
class SampleRecorder:
    """A callback for diffusion_lib.train: every `every` steps (and after step 1), DDIM samples of the EMA network.

    The starting noise x_T is fixed, so the snapshots show one set of images taking shape as training
    goes on. After training: recorder.steps [s1, s2, ...] and recorder.images {step: (N, 1, 28, 28)}.
    """
    x_T: torch.Tensor                       # (N, 1, 28, 28) the fixed starting noise
    schedule: Schedule
    every: int
    num_steps: int = 50                     # DDIM steps per sample
    seed: int = 0                           # for the DDIM noise stream (eta = 0 draws it but does not use it)
    steps: list = field(default_factory=list)
    images: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"every must be a positive number of steps, got {self.every}")

    def __call__(self, trainer) -> None:
        if trainer.step == 1 or trainer.step % self.every == 0 or trainer.step == trainer.config.steps:
            self.snapshot(trainer.ema.module, trainer.step)

    def snapshot(self, model: nn.Module, step: int) -> torch.Tensor:
        """Sample from `model` now and keep the images under `step`."""
        if step in self.images:
            return self.images[step]
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        g = torch.Generator().manual_seed(self.seed)
        x = final(ddim_sample_progressive(model, self.x_T.to(device), self.schedule, self.num_steps, eta=0.0,
                                          generator=g)).cpu()
        model.train(was_training)
        self.steps.append(step)
        self.images[step] = x
        return x


def path_straightness(trajectory) -> torch.Tensor:
    """For each chain of a samplers.Trajectory recorded at every step: the length of its path (the sum of the
    distances between consecutive states, the end included) divided by the distance from its start to its end,
    (B,). 1 for a straight line travelled once; larger the more the path bends."""
    path = torch.cat([trajectory.x_t, trajectory.sample[None]]).flatten(2).double()          # (K + 1, B, D)
    length = (path[1:] - path[:-1]).norm(dim=-1).sum(0)                                     # (B,)
    chord = (path[-1] - path[0]).norm(dim=-1)
    if bool((chord == 0).any()):
        raise ValueError("a path ends where it started: its straightness (length / distance) is undefined")
    return length / chord
