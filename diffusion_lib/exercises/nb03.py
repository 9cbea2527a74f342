"""Notebook 03's exercise: the sinusoidal time embedding [sin(t omega), cos(t omega)], written by hand."""
from __future__ import annotations

import math

import torch

from ..embeddings import sinusoidal_embedding


def check(answer) -> None:
    """answer(t, dim) must match dl.sinusoidal_embedding for dim = 256 and dim = 16."""
    t = torch.tensor([0, 1, 7, 123, 500, 999])                      # (6,)
    for dim in (256, 16):
        expected = sinusoidal_embedding(t, dim)                     # (6, dim)
        got = answer(t.clone(), dim)
        assert isinstance(got, torch.Tensor), f"return a torch.Tensor, got {type(got).__name__}"
        assert got.shape == expected.shape, (f"dim = {dim}: expected shape {tuple(expected.shape)} (one row of dim "
                                             f"numbers per timestep), got {tuple(got.shape)}")
        got = got.to(torch.float32)
        if torch.allclose(got, expected, atol=1e-3):
            continue
        half = dim // 2
        if torch.allclose(got, torch.cat([expected[:, half:], expected[:, :half]], dim=1), atol=1e-3):
            raise AssertionError("the halves are swapped: the sines come first, then the cosines.")
        if torch.allclose(got[:1], expected[:1], atol=1e-3):   # t = 0 right, so the layout is right
            i = torch.arange(half, dtype=torch.float64)
            raise AssertionError(f"dim = {dim}: right at t = 0 but not later, so the frequencies are off: "
                                 f"omega_i = exp(-ln(10000) * i / (half - 1)) for i = 0 .. half - 1, from 1 down to "
                                 f"{math.exp(-math.log(10000.0)):.0e} (half = {half}); the angles are t * omega_i. "
                                 f"Expected omega_1 = {torch.exp(-math.log(10000.0) * i[1] / (half - 1)).item():.4g}.")
        raise AssertionError(f"dim = {dim}: at t = 0 the embedding is [0, ..., 0, 1, ..., 1] (sin 0 = 0, cos 0 = 1); "
                             f"yours starts {got[0, :3].tolist()} ... {got[0, half:half + 3].tolist()}.")


# A plausible mistake: dividing by half instead of half - 1, so the lowest frequency misses 1e-4.
def WRONG_EXAMPLE(t, dim):
    half = dim // 2
    omega = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
    angles = t.float()[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)
