"""Time embeddings: how a network is told which timestep t it is denoising.

    half = dim / 2 frequencies  omega_i = exp(-ln(10000) * i / (half - 1)),  i = 0 .. half-1
    emb(t) = [sin(t omega_0), ..., sin(t omega_{half-1}), cos(t omega_0), ..., cos(t omega_{half-1})]

applied to the integer timestep t, as in the seed blog (dim = 256), then Linear(dim, dim) + ReLU.
"""
from __future__ import annotations

import math

import torch
from torch import nn

TIME_EMBEDDING_DIM = 256


def sinusoidal_frequencies(dim: int = TIME_EMBEDDING_DIM) -> torch.Tensor:
    """omega_i = exp(-ln(10000) * i / (half - 1)) for i = 0 .. half-1, shape (dim // 2,)."""
    if dim < 4 or dim % 2:
        raise ValueError(f"the embedding dimension must be an even number >= 4, got {dim}")
    half = dim // 2
    return torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))


def sinusoidal_embedding(t: torch.Tensor, dim: int = TIME_EMBEDDING_DIM,
                         frequencies: torch.Tensor | None = None) -> torch.Tensor:
    """[sin(t omega), cos(t omega)] for a (B,) tensor of timesteps; returns (B, dim) float32 on t's device.

    frequencies: omega = sinusoidal_frequencies(dim), already on t's device; the networks keep it as a buffer, so
    that a forward pass on a GPU does not build it on the CPU and copy it over every time."""
    if t.ndim != 1:
        raise ValueError(f"t must be a 1-D tensor of timesteps with shape (B,), got shape {tuple(t.shape)}")
    if frequencies is None:
        frequencies = sinusoidal_frequencies(dim).to(t.device)
    elif frequencies.shape != (dim // 2,):
        raise ValueError(f"frequencies must have shape (dim // 2,) = ({dim // 2},), got {tuple(frequencies.shape)}")
    angles = t.to(torch.float32)[:, None] * frequencies[None, :]                                # (B, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, dim)


class TimeEmbedding(nn.Module):
    """The seed blog's time embedding: sinusoidal(t) -> Linear(dim, dim) -> ReLU. Parameters: dim * dim + dim."""

    def __init__(self, dim: int = TIME_EMBEDDING_DIM):
        super().__init__()
        self.dim = dim
        self.proj = nn.Linear(dim, dim)
        # omega, moved with the module (not saved: it is rebuilt from dim)
        self.register_buffer("frequencies", sinusoidal_frequencies(dim), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.proj(sinusoidal_embedding(t, self.dim, self.frequencies)))  # (B, dim)
