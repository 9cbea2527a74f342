"""Small models and helpers shared by the library tests (kept tiny so the suite runs in seconds on a CPU)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from diffusion_lib.embeddings import sinusoidal_embedding


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread for the modules that import this fixture. The models here are tiny, so a second
    thread only adds overhead, and on a CPU shared with other jobs its waits made the suite 5-10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyEps(nn.Module):
    """A fixed random eps-model (x_t, t) -> x_t + a small conv net of (x_t, t), for any (B, C, H, W).

    Cheap enough to run a full 1000-step chain in well under a second on 8x8 images.
    """

    def __init__(self, channels: int = 1, hidden: int = 4, emb_dim: int = 16):
        super().__init__()
        self.emb_dim = emb_dim
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.time = nn.Linear(emb_dim, hidden)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = sinusoidal_embedding(t, self.emb_dim).to(x.dtype)
        return x + self.conv2(torch.tanh(self.conv1(x) + self.time(emb)[:, :, None, None]))   # eps ~ x_t, as at large t


def tiny_eps(seed: int = 0, dtype: torch.dtype = torch.float64) -> TinyEps:
    torch.manual_seed(seed)
    return TinyEps().to(dtype).eval()


def linear_betas(T: int = 1000, start: float = 1e-4, end: float = 0.02) -> list[float]:
    """Ho et al.'s linear betas, computed in plain Python (independent of diffusion_lib)."""
    return [start + (end - start) * i / (T - 1) for i in range(T)]


def alpha_bars(betas: list[float]) -> list[float]:
    """prod_{s<=t} (1 - beta_s), in plain Python."""
    out, prod = [], 1.0
    for b in betas:
        prod *= 1.0 - b
        out.append(prod)
    return out


def synthetic_mnist(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n random 'images' (n, 1, 28, 28) in [-1, 1] and labels (n,) in 0..9: training data without MNIST."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, 28, 28), generator=g) * 2 - 1, torch.randint(0, 10, (n,), generator=g)


def tiny_config(**overrides):
    """A TrainConfig for a U-Net with 8 base channels and batches of 4: a training step in milliseconds."""
    from diffusion_lib.training import TrainConfig

    settings = dict(backbone="unet", backbone_kwargs={"base": 8}, steps=4, batch_size=4, seed=0)
    settings.update(overrides)
    return TrainConfig(**settings)


def load_script(path, name: str):
    """A benchmarks/ script imported as a module named `name` (the scripts are not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
