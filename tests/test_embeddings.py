"""The sinusoidal time embedding: known values and the parameter count of the seed blog's TimeEmbedding."""
import math

import pytest
import torch

from diffusion_lib.backbones import count_parameters
from diffusion_lib.embeddings import TimeEmbedding, sinusoidal_embedding, sinusoidal_frequencies


def test_shape_and_dtype():
    emb = sinusoidal_embedding(torch.arange(5))
    assert emb.shape == (5, 256) and emb.dtype == torch.float32


def test_t0_gives_sin_zero_cos_one():
    emb = sinusoidal_embedding(torch.zeros(2, dtype=torch.long))
    assert torch.equal(emb[:, :128], torch.zeros(2, 128))
    assert torch.equal(emb[:, 128:], torch.ones(2, 128))


def test_frequencies_run_from_one_to_1e_minus_4():
    omega = sinusoidal_frequencies(256)
    expected = torch.tensor([10000.0 ** (-i / 127) for i in range(128)], dtype=torch.float64)
    assert omega.shape == (128,)
    assert torch.allclose(omega.double(), expected, rtol=1e-5)
    assert float(omega[0]) == 1.0
    assert float(omega[-1]) == pytest.approx(1e-4, rel=1e-5)


def test_known_values():
    t = torch.tensor([0, 1, 17, 999])
    emb = sinusoidal_embedding(t).double()
    td = t.double()
    assert torch.allclose(emb[:, 0], td.sin(), atol=1e-5)                 # first frequency is 1
    assert torch.allclose(emb[:, 128], td.cos(), atol=1e-5)
    assert torch.allclose(emb[:, 127], (td * 1e-4).sin(), atol=1e-6)      # last frequency is 1e-4
    assert torch.allclose(emb[:, 255], (td * 1e-4).cos(), atol=1e-6)
    i = 40
    w = math.exp(-math.log(10000) * i / 127)
    assert torch.allclose(emb[:, i], (td * w).sin(), atol=1e-4)
    assert torch.allclose(emb[:, 128 + i], (td * w).cos(), atol=1e-4)


def test_other_dimensions_and_bad_input():
    assert sinusoidal_embedding(torch.tensor([3]), dim=8).shape == (1, 8)
    for dim in (2, 7):
        with pytest.raises(ValueError, match="even number"):
            sinusoidal_embedding(torch.tensor([3]), dim=dim)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        sinusoidal_embedding(torch.tensor(3))


def test_time_embedding_parameters_and_output():
    torch.manual_seed(0)
    te = TimeEmbedding()
    assert count_parameters(te) == 65_792 == 256 * 256 + 256
    t = torch.tensor([0, 500])
    out = te(t)
    expected = torch.relu(sinusoidal_embedding(t) @ te.proj.weight.T + te.proj.bias)
    assert out.shape == (2, 256)
    assert torch.allclose(out, expected, atol=1e-6)
    assert bool((out >= 0).all())
