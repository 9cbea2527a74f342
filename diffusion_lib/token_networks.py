"""Networks over tokens for masked diffusion (masked.py) and its autoregressive baseline (notebook 14).

Each maps tokens x (B, *shape) long, values in [0, V] (V being [MASK] or, for a causal network, [BOS]), to logits
(B, *shape, V) over the V clean tokens. None is told the time t: the masked share of its input tells it.

- TokenUNet: the course's U-Net (backbones.UNet, unchanged inside) with a token embedding in place of the
  pixels and V logits per pixel out, for digits quantised to a few grey levels. Its time input is given the
  masked share of each image (as a timestep index), so it needs no other signal of t.
- CharTransformer: a small transformer over character sequences (B, L); causal=False for masked diffusion
  (every position sees every other), causal=True for the autoregressive baseline, same layers and parameters.

Why the U-Net and not notebook 13's DiT: the DiT was written at the same time as this notebook and had not
landed; the U-Net is the network that notebooks 04-11 teach, trained here with the same habits.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .backbones import UNet
from .device import known_within


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


class TokenNetwork(nn.Module):
    """Common record and checks: `arch` rebuilds the network (plain types for weights_only checkpoints)."""

    name = "token_network"

    def __init__(self, **arch_kwargs):
        super().__init__()
        self.arch_kwargs = dict(arch_kwargs)

    @property
    def arch(self) -> dict:
        return {"name": self.name, "kwargs": {k: (list(v) if isinstance(v, tuple) else v)
                                              for k, v in self.arch_kwargs.items()}}

    def check_tokens(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} expects a torch.Tensor of token ids, got {type(x).__name__}")
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise ValueError(f"{name} expects integer token ids (torch.long), got dtype {x.dtype}")
        if tuple(x.shape[1:]) != tuple(self.token_shape) or x.ndim != 1 + len(self.token_shape):
            raise ValueError(f"{name} expects tokens of shape (B, {', '.join(map(str, self.token_shape))}), "
                             f"got {tuple(x.shape)}")
        if x.numel() and not known_within(x, 0, self.vocab_size) and bool(((x < 0) | (x > self.vocab_size)).any()):
            raise ValueError(f"{name} expects token ids in [0, {self.vocab_size}] ({self.vocab_size} is [MASK] or "
                             f"[BOS]), got values in [{int(x.min())}, {int(x.max())}]")


class TokenUNet(TokenNetwork):
    """backbones.UNet with an nn.Embedding(V + 1, embed_dim) in (the [MASK] token has its own row) and V logits
    per pixel out: tokens (B, 28, 28) -> logits (B, 28, 28, V). The U-Net's timestep input is the masked share of
    each image, as an index in [0, T - 1] (T = 1000), so it is told how much is hidden without being told t."""

    name = "token_unet"

    def __init__(self, vocab_size: int = 4, embed_dim: int = 8, base: int = 32, mults=(1, 2, 2),
                 mid_blocks: int = 1, mid_attention: bool = False):
        _positive_int(vocab_size, "vocab_size (grey levels)")
        _positive_int(embed_dim, "embed_dim")
        super().__init__(vocab_size=vocab_size, embed_dim=embed_dim, base=base, mults=tuple(mults),
                         mid_blocks=mid_blocks, mid_attention=mid_attention)
        self.vocab_size, self.token_shape = vocab_size, (28, 28)
        self.embedding = nn.Embedding(vocab_size + 1, embed_dim)
        self.unet = UNet(base=base, mults=mults, mid_blocks=mid_blocks, mid_attention=mid_attention)
        c1 = base * tuple(mults)[0]
        self.unet.image_shape = (embed_dim, 28, 28)                       # what its first convolution now reads
        self.unet.conv_in = nn.Conv2d(embed_dim, c1, 3, padding=1)
        self.unet.conv_out = nn.Conv2d(c1, vocab_size, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x)
        h = self.embedding(x).permute(0, 3, 1, 2)                         # (B, embed_dim, 28, 28)
        h = h.to(next(self.unet.parameters()).dtype)
        masked_share = (x == self.vocab_size).flatten(1).float().mean(1)  # (B,) in [0, 1]
        t = (masked_share * (self.unet.T - 1)).round().long()             # (B,) the U-Net's timestep index
        return self.unet(h, t).permute(0, 2, 3, 1)                        # (B, 28, 28, V)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x)) (MLP 4x wide, GELU)."""

    def __init__(self, width: int, heads: int, causal: bool):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)       # (B, heads, L, c / heads)
        x = x + self.proj(h.transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(self.norm2(x))


class CharTransformer(TokenNetwork):
    """A small transformer over sequences (B, L) of token ids in [0, V]: embedding + learnt positions, `depth`
    pre-norm blocks, LayerNorm, V logits per position. causal=True: position l sees positions <= l only (the
    autoregressive baseline); causal=False: every position sees all (masked diffusion). Same parameters either way."""

    name = "char_transformer"

    def __init__(self, vocab_size: int = 27, length: int = 12, width: int = 128, depth: int = 4, heads: int = 4,
                 causal: bool = False):
        for value, what in ((vocab_size, "vocab_size"), (length, "length"), (width, "width"), (depth, "depth"),
                            (heads, "heads")):
            _positive_int(value, what)
        if width % heads:
            raise ValueError(f"width must be a multiple of heads, got width {width} and {heads} heads")
        if not isinstance(causal, bool):
            raise ValueError(f"causal must be True or False, got {causal!r}")
        super().__init__(vocab_size=vocab_size, length=length, width=width, depth=depth, heads=heads, causal=causal)
        self.vocab_size, self.token_shape, self.causal = vocab_size, (length,), causal
        self.embedding = nn.Embedding(vocab_size + 1, width)
        self.position = nn.Parameter(torch.zeros(length, width))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(Block(width, heads, causal) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x)
        h = self.embedding(x) + self.position                              # (B, L, width)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))                                     # (B, L, V)


TOKEN_NETWORKS = {cls.name: cls for cls in (TokenUNet, CharTransformer)}


def build_token_network(name: str, **kwargs) -> TokenNetwork:
    """Build a token network by name: "token_unet" (digits) or "char_transformer" (text)."""
    if name not in TOKEN_NETWORKS:
        raise ValueError(f"unknown token network {name!r}; choose one of {sorted(TOKEN_NETWORKS)}")
    try:
        return TOKEN_NETWORKS[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"token network {name!r} does not take these arguments {kwargs} ({e})") from None
