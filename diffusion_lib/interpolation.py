"""Interpolating between two starting noises (notebook 07).

DDIM with eta = 0 is a deterministic map from noise x_{T-1} to an image, so two images can be blended
by blending their noises (found with samplers.ddim_invert_progressive) and decoding the blend.
A straight line is the wrong path: x_{T-1} ~ N(0, I) in d = 784 dimensions has norm close to
sqrt(d) = 28, and the midpoint of two independent such vectors has norm about 28 / sqrt(2) = 19.8,
a noise level the network never saw at t = T-1. Spherical interpolation keeps the norm
(Shoemake 1985; used for diffusion noises by Song et al. 2021, Sec. 5.3):

    slerp(z_0, z_1, s) = sin((1 - s) theta) / sin(theta) z_0 + sin(s theta) / sin(theta) z_1,
    cos(theta) = <z_0, z_1> / (|z_0| |z_1|)

For two vectors of equal norm, every point of the path has that norm; s = 0 gives z_0, s = 1 gives z_1.
"""
from __future__ import annotations

import math

import torch

# Below this angle (radians) the two vectors are parallel to float precision: sin(theta) ~ 0, use lerp.
PARALLEL_ANGLE = 1e-4


def lerp(z0: torch.Tensor, z1: torch.Tensor, s: float) -> torch.Tensor:
    """(1 - s) z_0 + s z_1: the straight line, for comparison."""
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    return (1 - s) * z0 + s * z1


def angle(z0: torch.Tensor, z1: torch.Tensor) -> float:
    """theta = arccos(<z_0, z_1> / (|z_0| |z_1|)) in radians, over all the entries of the two tensors."""
    a, b = z0.double().flatten(), z1.double().flatten()
    if float(a.norm()) == 0 or float(b.norm()) == 0:
        raise ValueError("the angle between z0 and z1 needs two non-zero vectors; a zero vector has no direction "
                         "(interpolate between noises such as sample_noise(...) draws)")
    cos = (a @ b) / (a.norm() * b.norm())
    return float(torch.arccos(cos.clamp(-1.0, 1.0)))


def slerp(z0: torch.Tensor, z1: torch.Tensor, s: float) -> torch.Tensor:
    """Spherical interpolation from z_0 (s = 0) to z_1 (s = 1), treating each tensor as one vector.

    Falls back to lerp when the vectors are parallel (theta < PARALLEL_ANGLE); raises for opposite
    vectors (theta = pi), where the great circle is not unique.
    """
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    theta = angle(z0, z1)
    if theta < PARALLEL_ANGLE:
        return lerp(z0, z1, s)
    if math.pi - theta < PARALLEL_ANGLE:
        raise ValueError("z0 and z1 point in opposite directions: the spherical path between them is not unique")
    return (math.sin((1 - s) * theta) * z0 + math.sin(s * theta) * z1) / math.sin(theta)


def slerp_path(z0: torch.Tensor, z1: torch.Tensor, num: int) -> torch.Tensor:
    """num points slerp(z_0, z_1, s) for s evenly spaced in [0, 1], stacked: (num, *z0.shape).

    For images z0, z1 of shape (1, 28, 28) this is a batch (num, 1, 28, 28) ready for a sampler.
    """
    if num < 2:
        raise ValueError(f"a path needs at least its two ends, got num = {num}")
    return torch.stack([slerp(z0, z1, k / (num - 1)) for k in range(num)])
