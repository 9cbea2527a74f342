"""Noise-prediction networks eps_theta(x_t, t): each takes images (B, 1, 28, 28) and timesteps (B,)
and returns predicted noise of the same shape as the images.

- ConvNet, SmolMLP, ChunkyMLP: the seed blog's three backbones, layer for layer
  (3,276,129 / 1,526,288 / 20,589,584 parameters).
- UNet: a small U-Net with down-sampling (28 -> 14 -> 7) and skip connections, the fast default
  on a CPU, optionally class-conditional with a dedicated null label for classifier-free guidance.
- PointMLP: a tiny MLP for the 2-D points (B, 2, 1, 1) of notebook 10's toy (diffusion_lib.toy), not for images.
"""
from __future__ import annotations

import inspect

import torch
from torch import nn
import torch.nn.functional as F

from .device import known_within
from .embeddings import TIME_EMBEDDING_DIM, TimeEmbedding, sinusoidal_embedding, sinusoidal_frequencies
from .schedules import DEFAULT_T

IMAGE_SHAPE = (1, 28, 28)
GROUPS = 8   # GroupNorm groups of the U-Net: every channel count must be a multiple of it


class Backbone(nn.Module):
    """Common checks and the architecture record that checkpoints store.

    T is the number of diffusion steps the network is used with (the schedule's T): forward() refuses
    timesteps outside [0, T-1]. It is 1000 (Ho et al.'s) unless set: train() sets it from its config and
    load_model() from the checkpoint's schedule; set model.T yourself for another schedule length. It is not
    part of the architecture record (the same weights can serve any T in principle).
    """

    name: str = "backbone"
    num_classes: int | None = None
    takes_images: bool = True      # False for PointMLP, whose inputs are 2-D points (B, 2, 1, 1)
    continuous_time: bool = False  # True: float timesteps in [-1, T-1] are accepted (UNet(interval=True), MeanFlow)
    pixel_range: bool = True       # inputs are pixels in [-1, 1] (training checks it); False for points and latents

    def __init__(self, **arch_kwargs):
        super().__init__()
        self.arch_kwargs = dict(arch_kwargs)
        self.image_shape = IMAGE_SHAPE        # (C, H, W) of the inputs; PointMLP sets its own
        self.T = DEFAULT_T

    @property
    def arch(self) -> dict:
        """What rebuilds this network: {"name": ..., "kwargs": {...}} (plain types, safe for weights_only)."""
        return {"name": self.name, "kwargs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.arch_kwargs.items()}}

    @property
    def null_label(self) -> int | None:
        """The label that means "no class" (classifier-free guidance); None for unconditional networks."""
        return self.num_classes

    def check_inputs(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> None:
        """Shapes, dtypes and ranges of a forward call's inputs, refused with a message that says how to fix them.

        Images must have the network's dtype (float32 unless you converted the network): float64 images are
        refused, not cast, so that a silent precision change cannot hide in a sampler; uint8 pixels are refused
        with the rule that scales them to [-1, 1].
        """
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} expects images as a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            where = ("MNIST batches from diffusion_lib.data have this shape" if self.takes_images else
                     "make points from (B, 2) coordinates with diffusion_lib.toy.as_points")
            raise ValueError(f"{name} expects {'images' if self.takes_images else 'points'} of shape "
                             f"(B, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}; {where}")
        if not x.dtype.is_floating_point:
            raise ValueError(f"{name} expects floating-point images in [-1, 1], got dtype {x.dtype}; "
                             "scale uint8 pixels with x.float() / 127.5 - 1")
        weight_dtype = next(self.parameters()).dtype
        if x.dtype != weight_dtype and not _autocast_enabled(x.device.type):
            raise ValueError(f"{name} has {weight_dtype} weights but got {x.dtype} images; pass x.to({weight_dtype}) "
                             f"(or convert the network with model.to({x.dtype}))")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"t must be a (B,) tensor of integer timesteps, got {type(t).__name__}; "
                            "use torch.full((B,), t, dtype=torch.long)")
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must have shape (B,) = ({x.shape[0]},), one timestep per image, got {tuple(t.shape)}")
        if self.continuous_time:
            self._check_continuous(t, "t")
        elif t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"t must be an integer tensor (torch.long) of timesteps, got dtype {t.dtype}; "
                             "use t.long() (a network is trained on integer timesteps only)")
        elif t.numel() and not known_within(t, 0, self.T - 1) and bool(((t < 0) | (t > self.T - 1)).any()):
            raise ValueError(f"timestep out of range: got values in [{int(t.min())}, {int(t.max())}], but this network "
                             f"is used with T = {self.T} steps, so t must lie in [0, {self.T - 1}]; "
                             f"if it was trained with another schedule length, set model.T to it")
        if y is not None:
            if self.num_classes is None:
                raise ValueError(f"this {name} is unconditional; build it with num_classes=10 to pass labels y")
            if not isinstance(y, torch.Tensor):
                raise TypeError(f"labels y must be a (B,) torch.long tensor, got {type(y).__name__}")
            if y.shape != t.shape:
                raise ValueError(f"labels y must have shape (B,) = ({x.shape[0]},), got {tuple(y.shape)}")
            if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
                raise ValueError(f"labels y must be an integer tensor (torch.long) of classes, got dtype {y.dtype}; "
                                 "use y.long()")
            if y.numel() and not known_within(y, 0, self.num_classes) and bool(((y < 0) | (y > self.num_classes)).any()):
                raise ValueError(f"labels must lie in [0, {self.num_classes}] ({self.num_classes} is the null label), "
                                 f"got values in [{int(y.min())}, {int(y.max())}]")


    def _check_continuous(self, t: torch.Tensor, name: str) -> None:
        """A continuous time: a real tensor with values in [-1, T-1] (-1 is the clean image)."""
        if t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"{name} must be a real tensor of timesteps, got dtype {t.dtype}")
        if t.numel() and bool(((t < -1) | (t > self.T - 1)).any()):
            raise ValueError(f"{name} out of range: got values in [{float(t.min()):g}, {float(t.max()):g}], but this "
                             f"network takes continuous timesteps in [-1, T-1] = [-1, {self.T - 1}]")

    def check_interval(self, t: torch.Tensor, r: torch.Tensor) -> None:
        """The interval's end r (B,): a timestep in [-1, t] for each image (the average runs from t down to r)."""
        if not isinstance(r, torch.Tensor) or r.shape != t.shape:
            raise ValueError(f"r must be a (B,) tensor of timesteps like t, shape {tuple(t.shape)}, got "
                             f"{tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__}")
        self._check_continuous(r, "r")
        if r.numel() and bool((r > t).any()):
            raise ValueError("r must not exceed t: the interval runs from t down to r (r = t: the velocity at t)")


def _autocast_enabled(device_type: str) -> bool:
    """Whether torch.autocast is on for this device type (torch < 2.4 has no device argument)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def _check_positive_int(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def _checked_time_scale(value) -> float:
    """The factor applied to t (and t - r) before the sinusoidal embedding (UNet, PointMLP): a number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"time_scale must be a number > 0, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------- the seed blog's ConvNet

class ConvBlock(nn.Module):
    """conv3x3 -> GroupNorm(8) -> ReLU -> + Linear(256, out)(time) -> conv3x3 -> GroupNorm(8) -> ReLU."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int = TIME_EMBEDDING_DIM):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(8, c_out)
        self.time = nn.Linear(emb_dim, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, c_out)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))            # (B, c_out, H, W)
        h = h + self.time(emb)[:, :, None, None]         # time added per channel
        return F.relu(self.norm2(self.conv2(h)))


class ConvNet(Backbone):
    """The seed blog's ConvNet: nine ConvBlocks at full 28x28 resolution, no down-sampling, no skips."""

    name = "convnet"
    CHANNELS = (1, 32, 64, 128, 256, 256, 128, 64, 32, 32)

    def __init__(self):
        super().__init__()
        self.time_embedding = TimeEmbedding()
        self.blocks = nn.ModuleList(ConvBlock(a, b) for a, b in zip(self.CHANNELS[:-1], self.CHANNELS[1:]))
        self.out = nn.Conv2d(self.CHANNELS[-1], 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(x, t, y)
        emb = self.time_embedding(t)                     # (B, 256)
        h = x
        for block in self.blocks:
            h = block(h, emb)                            # (B, c, 28, 28) at every block
        return self.out(h)                               # (B, 1, 28, 28)


# ----------------------------------------------------------------------------- the seed blog's MLPs

class MLP(Backbone):
    """Flatten x, concatenate the time embedding, then Linear/ReLU layers back to 784 pixels.

    hidden=(512, 512, 512) is the seed blog's SmolMLP, (2048,) * 5 its ChunkyMLP.

    Two options, both off by default (the seed blog's networks, parameter for parameter), studied
    in notebook 09:

    - skip=True adds the input to the output, eps_theta(x_t, t) = x_t + f(x_t, t): an identity path
      from input to output, with no parameters. At large t, x_t is almost all noise and the target
      eps is almost x_t, which a plain MLP must rebuild through its hidden layers (SmolMLP cannot:
      its last layer maps 512 numbers to 784 pixels, so its outputs span at most 512 dimensions).
    - norm=True puts a LayerNorm after every hidden Linear, before the ReLU (2 * width parameters each).
    """

    name = "mlp"

    def __init__(self, hidden=(512, 512, 512), skip: bool = False, norm: bool = False):
        # The options enter the architecture record only when on, so the record of a plain MLP is unchanged.
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise ValueError(f"hidden must be a list of layer widths, e.g. [512, 512, 512], got {hidden!r}")
        for width in hidden:
            _check_positive_int(width, "every hidden width")
        for option, on in (("skip", skip), ("norm", norm)):
            if not isinstance(on, bool):
                raise ValueError(f"{option} must be True or False, got {on!r}")
        options = {k: True for k, on in (("skip", skip), ("norm", norm)) if on}
        super().__init__(hidden=tuple(hidden), **options)
        n_pixels = 1
        for s in self.image_shape:
            n_pixels *= s
        self.skip = bool(skip)
        self.time_embedding = TimeEmbedding()
        widths = [n_pixels + TIME_EMBEDDING_DIM, *hidden, n_pixels]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(nn.LayerNorm(w) for w in hidden) if norm else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(x, t, y)
        h = torch.cat([x.flatten(1), self.time_embedding(t)], dim=1)   # (B, 784 + 256)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                if self.norms is not None:
                    h = self.norms[i](h)
                h = F.relu(h)
        out = h.view_as(x)                                               # (B, 1, 28, 28)
        return x + out if self.skip else out                             # skip: eps_theta = x_t + f(x_t, t)


class SmolMLP(MLP):
    name = "smol_mlp"

    def __init__(self):
        super().__init__(hidden=(512, 512, 512))
        self.arch_kwargs = {}


class ChunkyMLP(MLP):
    name = "chunky_mlp"

    def __init__(self):
        super().__init__(hidden=(2048,) * 5)
        self.arch_kwargs = {}


# ----------------------------------------------------------------------------- the U-Net

class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, + embedding, GroupNorm -> SiLU -> conv3x3, plus a residual path."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = GROUPS):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, with a residual path:
    x + proj(softmax(q k^T / sqrt(d)) v), q, k, v from GroupNorm(x) by a 1x1 convolution."""

    def __init__(self, channels: int, heads: int = 4, groups: int = GROUPS):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention needs channels divisible by heads, got {channels} channels and {heads} heads")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)                  # (B, heads, H*W, c / heads)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(Backbone):
    """A small U-Net: 28x28 (base channels) -> 14x14 (2 base) -> 7x7 (2 base) and back up, with
    skip connections (concatenated) at each resolution and the time (and class) embedding in every block.

    num_classes=None gives an unconditional network; num_classes=10 adds a label embedding with
    11 rows, row 10 being the null label used for classifier-free guidance.
    mid_blocks > 1 stacks more residual blocks at 7x7, and mid_attention=True puts self-attention
    after the first of them: cheap on a CPU (49 positions), and they see the whole digit at once.

    interval=True (off by default) gives the network a second time input for MeanFlow (notebook 12): r, the
    timestep where an interval that starts at t ends, so that forward(x, t, y, r) is the average velocity over
    [r, t]. The interval's length t - r is embedded like t (notebook 03's sinusoidal embedding, then its own
    two-layer MLP) and added to the time embedding. Its last layer starts at zero, so a network built with it
    and given a flow-matching network's weights computes that network's velocity for every r (the average
    velocity over an empty interval is the velocity). Such a network takes continuous timesteps (float t and r
    in [-1, T-1], -1 the clean image), since MeanFlow differentiates it in t. Off, the network and its
    state_dict are those of the shipped U-Nets, unchanged. time_scale multiplies t and t - r before the
    sinusoidal embedding (default 1), as PointMLP's does: 0.01 keeps ten radians per unit of flow time s instead
    of a thousand, so that MeanFlow's derivative in s is not dominated by the embedding's fastest frequencies.
    """

    name = "unet"

    def __init__(self, base: int = 32, mults=(1, 2, 2), num_classes: int | None = None,
                 mid_blocks: int = 1, mid_attention: bool = False, interval: bool = False, time_scale: float = 1.0):
        _check_positive_int(base, "base (the channels at 28x28)")
        if base % GROUPS:
            raise ValueError(f"base must be a positive multiple of {GROUPS} (the GroupNorm groups), got {base}; "
                             f"try {max(GROUPS, round(base / GROUPS) * GROUPS)}")
        if isinstance(mults, (str, bytes)) or not hasattr(mults, "__iter__"):
            raise ValueError(f"mults must give the channel multiplier of the 28x28, 14x14 and 7x7 levels, "
                             f"e.g. (1, 2, 2), got {mults!r}")
        mults = tuple(mults)
        for m in mults:
            _check_positive_int(m, "every channel multiplier in mults")
        if num_classes is not None:
            _check_positive_int(num_classes, "num_classes (None for an unconditional network)")
        for option, on in (("mid_attention", mid_attention), ("interval", interval)):
            if not isinstance(on, bool):
                raise ValueError(f"{option} must be True or False, got {on!r}")
        extras = {}   # recorded only when not the default, so older checkpoints' records stay the same
        if mid_blocks != 1:
            extras["mid_blocks"] = mid_blocks
        if mid_attention:
            extras["mid_attention"] = True
        if interval:
            extras["interval"] = True
        time_scale = _checked_time_scale(time_scale)
        if time_scale != 1.0:
            extras["time_scale"] = time_scale
        super().__init__(base=base, mults=tuple(mults), num_classes=num_classes, **extras)
        self.time_scale = time_scale
        if len(mults) != 3:
            raise ValueError("mults must give the channel multiplier of the 28x28, 14x14 and 7x7 levels, e.g. (1, 2, 2)")
        if isinstance(mid_blocks, bool) or not isinstance(mid_blocks, int) or mid_blocks < 1:
            raise ValueError(f"mid_blocks must be an integer >= 1 (residual blocks at 7x7), got {mid_blocks!r}")
        self.num_classes = num_classes
        c1, c2, c3 = (base * m for m in mults)
        emb_dim = 4 * base
        self.time_mlp = nn.Sequential(nn.Linear(TIME_EMBEDDING_DIM, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.register_buffer("frequencies", sinusoidal_frequencies(TIME_EMBEDDING_DIM), persistent=False)   # omega
        self.label_embedding = nn.Embedding(num_classes + 1, emb_dim) if num_classes is not None else None
        self.interval_mlp = None
        if interval:        # MeanFlow's second time input, the interval t - r, embedded like t
            self.interval_mlp = nn.Sequential(nn.Linear(TIME_EMBEDDING_DIM, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            nn.init.zeros_(self.interval_mlp[2].weight)
            nn.init.zeros_(self.interval_mlp[2].bias)
        self.continuous_time = interval
        self.conv_in = nn.Conv2d(self.image_shape[0], c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, emb_dim)
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)       # 28 -> 14
        self.down2 = ResBlock(c1, c2, emb_dim)
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)       # 14 -> 7
        self.down3 = ResBlock(c2, c3, emb_dim)
        self.mid = ResBlock(c3, c3, emb_dim)
        self.mid_attention = SelfAttention(c3) if mid_attention else None
        self.mid_more = nn.ModuleList(ResBlock(c3, c3, emb_dim) for _ in range(mid_blocks - 1))
        self.up3 = ResBlock(c3 + c3, c2, emb_dim)
        self.unpool2 = nn.Conv2d(c2, c2, 3, padding=1)               # after nearest 7 -> 14
        self.up2 = ResBlock(c2 + c2, c1, emb_dim)
        self.unpool1 = nn.Conv2d(c1, c1, 3, padding=1)               # after nearest 14 -> 28
        self.up1 = ResBlock(c1 + c1, c1, emb_dim)
        self.norm_out = nn.GroupNorm(GROUPS, c1)
        self.conv_out = nn.Conv2d(c1, self.image_shape[0], 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                r: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(x, t, y)
        time = t if self.time_scale == 1.0 else t * self.time_scale
        emb = self.time_mlp(sinusoidal_embedding(time, frequencies=self.frequencies))   # (B, E)
        if self.label_embedding is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=x.device)
            emb = emb + self.label_embedding(y)
        if r is not None and self.interval_mlp is None:
            raise ValueError("this UNet has no second time input; build it with interval=True (MeanFlow) to pass r")
        if self.interval_mlp is not None:
            if r is None:
                r = t                                                   # an empty interval: the velocity at t
            self.check_interval(t, r)
            emb = emb + self.interval_mlp(sinusoidal_embedding((t - r) * self.time_scale,
                                                               frequencies=self.frequencies))       # (B, E)
        h = self.conv_in(x)                                             # (B, c1, 28, 28)
        s1 = self.down1(h, emb)                                         # (B, c1, 28, 28)
        s2 = self.down2(self.pool1(s1), emb)                            # (B, c2, 14, 14)
        s3 = self.down3(self.pool2(s2), emb)                            # (B, c3, 7, 7)
        h = self.mid(s3, emb)                                           # (B, c3, 7, 7)
        if self.mid_attention is not None:
            h = self.mid_attention(h)
        for block in self.mid_more:
            h = block(h, emb)
        h = self.up3(torch.cat([h, s3], dim=1), emb)                    # (B, c2, 7, 7)
        h = self.unpool2(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.up2(torch.cat([h, s2], dim=1), emb)                    # (B, c1, 14, 14)
        h = self.unpool1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.up1(torch.cat([h, s1], dim=1), emb)                    # (B, c1, 28, 28)
        return self.conv_out(F.silu(self.norm_out(h)))                  # (B, 1, 28, 28)


# ----------------------------------------------------------------------------- the diffusion transformer (DiT)

def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images (B, C, H, W) into non-overlapping patch x patch squares, one token each, in reading order:
    tokens (B, N, C * patch * patch) with N = (H / patch) (W / patch). Each token lists its C channels, each
    channel's patch row by row. Exactly inverted by unpatchify."""
    b, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"the patch size {patch} must divide the image's height and width, got {h} x {w}")
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)           # (B, C, H/p, p, W/p, p)
    x = x.permute(0, 2, 4, 1, 3, 5)                                      # (B, H/p, W/p, C, p, p)
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)  # (B, N, C p p)


def unpatchify(tokens: torch.Tensor, patch: int, shape) -> torch.Tensor:
    """The inverse of patchify: tokens (B, N, C * patch * patch) back to images (B, C, H, W), shape = (C, H, W)."""
    c, h, w = shape
    b, n, d = tokens.shape
    if n != (h // patch) * (w // patch) or d != c * patch * patch:
        raise ValueError(f"tokens of shape {tuple(tokens.shape)} do not tile a {c} x {h} x {w} image with patch {patch}")
    x = tokens.reshape(b, h // patch, w // patch, c, patch, patch)       # (B, H/p, W/p, C, p, p)
    x = x.permute(0, 3, 1, 4, 2, 5)                                      # (B, C, H/p, p, W/p, p)
    return x.reshape(b, c, h, w)                                         # (B, C, H, W)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Adaptive layer norm's affine part: x (1 + scale) + shift, with (B, D) shift and scale applied to every token."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class Attention(nn.Module):
    """Multi-head self-attention over the tokens: softmax(q k^T / sqrt(d)) v, then a linear projection."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def _qkv(self, h: torch.Tensor):
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v                                                   # each (B, heads, N, d / heads)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        q, k, v = self._qkv(h)
        out = F.scaled_dot_product_attention(q, k, v)                    # (B, heads, N, d / heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))           # (B, N, D)

    def weights(self, h: torch.Tensor) -> torch.Tensor:
        """The attention weights softmax(q k^T / sqrt(d)) (B, heads, N, N): row i says where token i looks."""
        q, k, _ = self._qkv(h)
        return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)


class DiTBlock(nn.Module):
    """A transformer block with adaLN-Zero conditioning (Peebles & Xie 2023, Sec. 3.2):

        shift1, scale1, gate1, shift2, scale2, gate2 = Linear(SiLU(c))        six (B, D) vectors from the condition c
        x = x + gate1 * Attention(modulate(LayerNorm(x), shift1, scale1))
        x = x + gate2 * MLP(modulate(LayerNorm(x), shift2, scale2))

    "Zero": the Linear that makes the six vectors starts at zero, so both gates are 0 and the block starts as the
    identity, x -> x, whatever the condition (tested).
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        # GELU itself, not the tanh approximation of DiT's code: the same curve to 5e-4, and 3.8x faster on this
        # course's CPU (a quarter of a forward pass with the approximation: benchmarks/README.md, latent diffusion)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(),
                                 nn.Linear(mlp_ratio * width, width))
        self.ada_ln = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada_ln[1].weight)
        nn.init.zeros_(self.ada_ln[1].bias)

    def modulations(self, c: torch.Tensor):
        return self.ada_ln(c).chunk(6, dim=1)                            # six (B, D)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulations(c)
        x = x + gate1[:, None, :] * self.attn(modulate(self.norm1(x), shift1, scale1))   # (B, N, D)
        return x + gate2[:, None, :] * self.mlp(modulate(self.norm2(x), shift2, scale2))  # (B, N, D)


class DiT(Backbone):
    """A diffusion transformer (Peebles & Xie 2023) for images or latents of shape image_shape = (C, H, W):

        tokens = Linear(patchify(x, patch)) + position         (B, N, D), N = H W / patch^2
        c = MLP(sinusoidal(t)) [+ label embedding(y)]           (B, D), the condition (notebook 03's embedding)
        tokens = DiTBlock(tokens, c), depth times               adaLN-Zero blocks
        out = unpatchify(Linear(modulate(LayerNorm(tokens), c)), patch)    (B, C, H, W)

    On MNIST pixels, (1, 28, 28) with patch 2 (196 tokens) or 4 (49 tokens); on the autoencoder's latent,
    (4, 7, 7) with patch 1 (49 tokens, one per latent position). The final Linear also starts at zero (as in DiT),
    so the untrained network outputs 0. Position embeddings are learned. `attention_maps` returns what every block
    attends to.
    """

    name = "dit"

    def __init__(self, image_shape=(1, 28, 28), patch: int = 4, width: int = 128, depth: int = 4, heads: int = 4,
                 num_classes: int | None = None, mlp_ratio: int = 4):
        if isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__iter__") or len(tuple(image_shape)) != 3:
            raise ValueError(f"image_shape must be (C, H, W), e.g. (1, 28, 28) or (4, 7, 7), got {image_shape!r}")
        image_shape = tuple(image_shape)
        for value, what in [(v, "every entry of image_shape") for v in image_shape] + [
                (patch, "patch"), (width, "width"), (depth, "depth"), (heads, "heads"), (mlp_ratio, "mlp_ratio")]:
            _check_positive_int(value, what)
        if image_shape[1] % patch or image_shape[2] % patch:
            raise ValueError(f"patch {patch} must divide the height and width of {image_shape}; for 28 x 28 use 1, 2, "
                             f"4, 7, 14 or 28, for the 7 x 7 latent use 1 or 7")
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        if num_classes is not None:
            _check_positive_int(num_classes, "num_classes (None for an unconditional network)")
        extras = {"mlp_ratio": mlp_ratio} if mlp_ratio != 4 else {}
        super().__init__(image_shape=image_shape, patch=patch, width=width, depth=depth, heads=heads,
                         num_classes=num_classes, **extras)
        self.image_shape = image_shape
        self.pixel_range = image_shape == IMAGE_SHAPE      # MNIST pixels in [-1, 1]; a latent may lie anywhere
        self.patch, self.num_classes = patch, num_classes
        c, h, w = image_shape
        n_tokens, patch_dim = (h // patch) * (w // patch), c * patch * patch
        self.embed = nn.Linear(patch_dim, width)
        self.position = nn.Parameter(0.02 * torch.randn(1, n_tokens, width))
        self.time_mlp = nn.Sequential(nn.Linear(TIME_EMBEDDING_DIM, width), nn.SiLU(), nn.Linear(width, width))
        self.label_embedding = nn.Embedding(num_classes + 1, width) if num_classes is not None else None
        self.blocks = nn.ModuleList(DiTBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, patch_dim)
        for layer in (self.ada_out[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def condition(self, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """c = MLP(sinusoidal(t)) (+ the label's embedding; the null label when y is None): (B, D)."""
        c = self.time_mlp(sinusoidal_embedding(t).to(self.position.dtype))
        if self.label_embedding is not None:
            if y is None:
                y = torch.full_like(t, self.null_label)
            c = c + self.label_embedding(y)
        return c

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The input tokens: Linear(patchify(x)) + position, (B, N, D)."""
        return self.embed(patchify(x, self.patch)) + self.position

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(x, t, y)
        c = self.condition(t, y)                                         # (B, D)
        h = self.tokens(x)                                               # (B, N, D)
        for block in self.blocks:
            h = block(h, c)                                              # (B, N, D)
        shift, scale = self.ada_out(c).chunk(2, dim=1)
        h = self.out(modulate(self.norm_out(h), shift, scale))           # (B, N, C p p)
        return unpatchify(h, self.patch, self.image_shape)               # (B, C, H, W)

    def attention_maps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """What each block attends to: softmax(q k^T / sqrt(d)) of every block, (depth, B, heads, N, N), without
        gradients. Token i of an image is patch (i // (W / patch), i % (W / patch)) in reading order."""
        self.check_inputs(x, t, y)
        maps = []
        with torch.no_grad():
            c = self.condition(t, y)
            h = self.tokens(x)
            for block in self.blocks:
                shift1 = block.modulations(c)
                maps.append(block.attn.weights(modulate(block.norm1(h), shift1[0], shift1[1])))
                h = block(h, c)
        return torch.stack(maps)


# ----------------------------------------------------------------------------- a network for 2-D points

class PointMLP(Backbone):
    """eps_theta for 2-D points x (B, 2, 1, 1) (notebook 10's toy): the coordinates and the sinusoidal
    embedding of t, concatenated, then `depth` Linear + SiLU layers of `width` units and a Linear back to 2:

        h_1 = SiLU(W_1 [x, emb(t)] + b_1),  h_l = SiLU(W_l h_{l-1} + b_l) (l = 2 .. depth),  eps = W_out h_depth + b_out

    Parameters: (2 + emb_dim + 1) width + (depth - 1)(width + 1) width + (width + 1) 2.

    interval=True (off by default): MeanFlow's second time input, as for the UNet: forward(x, t, y, r) also takes
    the end r of the interval [r, t] and concatenates the embedding of t - r (emb_dim more inputs to the first
    layer); t and r are then continuous, in [-1, T-1]. time_scale multiplies t and t - r before the sinusoidal
    embedding (default 1): MeanFlow differentiates the network in t, and the embedding's fastest frequency, one
    radian per code timestep, makes that derivative T times rougher in the flow time s; 0.01 keeps ten radians
    per unit of s, which the toy's MeanFlow trains much better with (notebook 12).
    """

    name = "point_mlp"
    takes_images = False
    pixel_range = False

    def __init__(self, width: int = 128, depth: int = 3, emb_dim: int = 64, interval: bool = False,
                 time_scale: float = 1.0):
        extras = {"interval": True} if interval else {}      # recorded only when not the default: older records stay
        time_scale = _checked_time_scale(time_scale)
        if time_scale != 1.0:
            extras["time_scale"] = time_scale
        super().__init__(width=width, depth=depth, emb_dim=emb_dim, **extras)
        self.time_scale = time_scale
        if depth < 1 or width < 1:
            raise ValueError(f"PointMLP needs depth >= 1 and width >= 1, got depth {depth}, width {width}")
        self.image_shape = (2, 1, 1)                                       # a point is a 1 x 1 "image" of 2 channels
        self.emb_dim = emb_dim
        self.interval = self.continuous_time = bool(interval)
        self.register_buffer("frequencies", sinusoidal_frequencies(emb_dim), persistent=False)   # omega
        widths = [2 + emb_dim * (2 if interval else 1)] + [width] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(width, 2)

    @property
    def interval_mlp(self):
        """Whether the network has MeanFlow's second time input (the trainer asks; the UNet's is a module)."""
        return True if self.interval else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                r: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(x, t, y)
        time = t if self.time_scale == 1.0 else t * self.time_scale
        inputs = [x.flatten(1), sinusoidal_embedding(time, self.emb_dim, self.frequencies).to(x.dtype)]
        if r is not None and not self.interval:
            raise ValueError("this PointMLP has no second time input; build it with interval=True (MeanFlow) to pass r")
        if self.interval:
            r = t if r is None else r
            self.check_interval(t, r)
            inputs.append(sinusoidal_embedding((t - r) * self.time_scale, self.emb_dim, self.frequencies).to(x.dtype))
        h = torch.cat(inputs, dim=1)                                                             # (B, 2 + emb_dim [+ emb_dim])
        for layer in self.layers:
            h = F.silu(layer(h))                                                                # (B, width)
        return self.out(h).view_as(x)                                                           # (B, 2, 1, 1)


BACKBONES = {cls.name: cls for cls in (ConvNet, SmolMLP, ChunkyMLP, UNet, MLP, PointMLP, DiT)}
# The backbones for MNIST images (the command line and the benchmarks train these): all but the point network.
IMAGE_BACKBONES = tuple(name for name, cls in BACKBONES.items() if cls.takes_images)


def build_backbone(name: str, **kwargs) -> Backbone:
    """Build a backbone by name: "unet" (default of the course), "convnet", "smol_mlp", "chunky_mlp", "mlp";
    "point_mlp" for the 2-D toy."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    try:
        return BACKBONES[name](**kwargs)
    except TypeError as e:
        takes = [p for p in inspect.signature(BACKBONES[name]).parameters if p != "self"]
        raise ValueError(f"backbone {name!r} does not take these arguments {kwargs} ({e}); "
                         + (f"it takes {', '.join(takes)}" if takes else "it takes no arguments")) from None


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
