"""diffusion_lib.interpolation: slerp's ends, norms and angles against closed forms."""
import math

import pytest
import torch

from diffusion_lib.interpolation import angle, lerp, slerp, slerp_path


def _pair(seed=0, shape=(1, 28, 28)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


def test_ends_are_the_two_vectors():
    z0, z1 = _pair()
    assert torch.allclose(slerp(z0, z1, 0.0), z0, atol=1e-12)
    assert torch.allclose(slerp(z0, z1, 1.0), z1, atol=1e-12)


def test_equal_norms_are_kept_along_the_path_and_lerp_loses_them():
    z0, z1 = _pair(1)
    z1 = z1 / z1.norm() * z0.norm()                     # same norm, independent directions
    for s in (0.1, 0.25, 0.5, 0.9):
        assert slerp(z0, z1, s).norm() == pytest.approx(float(z0.norm()), rel=1e-9)
    # The straight line's midpoint of two near-orthogonal vectors is shorter by about 1/sqrt(2).
    assert lerp(z0, z1, 0.5).norm() / z0.norm() == pytest.approx(math.cos(angle(z0, z1) / 2), rel=1e-9)
    assert lerp(z0, z1, 0.5).norm() / z0.norm() < 0.8


def test_angle_moves_uniformly_for_equal_norms():
    z0, z1 = _pair(2)
    z1 = z1 / z1.norm() * z0.norm()
    theta = angle(z0, z1)
    for s in (0.2, 0.5, 0.7):
        z = slerp(z0, z1, s)
        assert angle(z0, z) == pytest.approx(s * theta, rel=1e-7)
        assert angle(z, z1) == pytest.approx((1 - s) * theta, rel=1e-7)


def test_quarter_circle_in_the_plane():
    e0, e1 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    mid = slerp(e0, e1, 0.5)
    assert torch.allclose(mid, torch.tensor([math.sqrt(0.5), math.sqrt(0.5)], dtype=torch.float64))


def test_parallel_vectors_fall_back_to_lerp_and_opposite_ones_raise():
    z0, _ = _pair(3)
    assert torch.allclose(slerp(z0, 2 * z0, 0.5), 1.5 * z0)
    with pytest.raises(ValueError, match="opposite"):
        slerp(z0, -z0, 0.5)
    with pytest.raises(ValueError, match="same shape"):
        slerp(z0, z0[..., :-1], 0.5)


def test_path_shape_and_ends():
    z0, z1 = _pair(4)
    path = slerp_path(z0.float(), z1.float(), 7)
    assert path.shape == (7, 1, 28, 28)
    assert torch.allclose(path[0], z0.float()) and torch.allclose(path[-1], z1.float(), atol=1e-6)
    with pytest.raises(ValueError):
        slerp_path(z0, z1, 1)
