"""The CUDA-rules emulation itself (tests/cuda_emulation.py), both ways: it raises on each rule, and accepts correct
code; and it counts copies and reads."""
import copy

import numpy as np
import pytest
import torch

from cuda_emulation import CPU_INDEXED_BY_CUDA, MIXED_DEVICES, EmulatedCuda, is_emulated_cuda


def small_net():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.SiLU(), torch.nn.Linear(4, 1))


# ----------------------------------------------------------------------------- it raises on each rule

def test_mixing_a_cuda_tensor_with_a_cpu_tensor_raises():
    with EmulatedCuda():
        x = torch.ones(3, device="cuda")
        with pytest.raises(RuntimeError, match="same device"):
            x + torch.ones(3)
        with pytest.raises(RuntimeError, match="same device"):
            torch.cat([x, torch.ones(3)])
        with pytest.raises(RuntimeError, match="same device"):
            small_net().to("cuda")(torch.ones(2, 3))          # CPU input, CUDA weights
        with pytest.raises(RuntimeError, match="same device"):
            small_net()(torch.ones(2, 3).to("cuda"))          # CUDA input, CPU weights


def test_a_generator_of_the_other_device_raises():
    with EmulatedCuda():
        with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator but found 'cpu'"):
            torch.randn(3, generator=torch.Generator().manual_seed(0), device="cuda")
        with pytest.raises(RuntimeError, match="Expected a 'cpu' device type for generator but found 'cuda'"):
            torch.randn(3, generator=torch.Generator(device="cuda").manual_seed(0))
        with pytest.raises(RuntimeError, match="device type for generator"):
            torch.ones(3, device="cuda").normal_(generator=torch.Generator().manual_seed(0))


def test_numpy_of_a_cuda_tensor_raises():
    with EmulatedCuda():
        x = torch.ones(3, device="cuda")
        with pytest.raises(TypeError, match="can't convert cuda:0"):
            x.numpy()
        with pytest.raises(TypeError, match="can't convert cuda:0"):
            np.asarray(x)


def test_indexing_a_cpu_tensor_with_cuda_indices_raises():
    with EmulatedCuda():
        with pytest.raises(RuntimeError, match="indices should be either on cpu"):
            torch.arange(10.0)[torch.tensor([1, 2], device="cuda")]
    assert CPU_INDEXED_BY_CUDA.startswith("indices") and "cuda:0 and cpu" in MIXED_DEVICES


# ----------------------------------------------------------------------------- it accepts correct code

def test_correct_code_runs_and_reports_cuda():
    torch.manual_seed(0)
    net, x = small_net(), torch.randn(5, 3)
    expected = net(x)
    with EmulatedCuda():
        net_cuda = copy.deepcopy(net).to("cuda")
        assert next(net_cuda.parameters()).device == torch.device("cuda", 0)
        assert next(net_cuda.parameters()).is_cuda
        x_cuda = x.to("cuda")
        out = net_cuda(x_cuda) * torch.tensor(2.0) / 2           # a 0-dim CPU tensor is a scalar: allowed
        assert out.device.type == "cuda" and is_emulated_cuda(out)
        back = out.cpu()
        assert back.device.type == "cpu" and not is_emulated_cuda(back)
        assert torch.allclose(back, expected)
        assert is_emulated_cuda(x_cuda[torch.tensor([0, 2])])    # CPU indices into a CUDA tensor: allowed
        g = torch.Generator(device=x_cuda.device).manual_seed(0)
        assert g.device.type == "cuda" and isinstance(g, torch.Generator)
        assert torch.randn(3, generator=g, device="cuda").device.type == "cuda"
        assert torch.randn(3, generator=torch.Generator().manual_seed(0)).device.type == "cpu"
        assert not is_emulated_cuda(x) and x.device.type == "cpu"       # .to() left the original alone
    assert not is_emulated_cuda(torch.ones(2)) and torch.Generator is torch._C.Generator   # all undone


def test_a_training_step_on_cuda_runs_and_matches_the_cpu():
    torch.manual_seed(0)
    net, x = small_net(), torch.randn(5, 3)

    def step(model, inputs):
        opt = torch.optim.AdamW(model.parameters(), lr=0.1)
        ema = torch.optim.swa_utils.AveragedModel(model)
        for _ in range(3):
            loss = model(inputs).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            ema.update_parameters(model)
        return [p.detach().cpu() for p in ema.parameters()]

    expected = step(copy.deepcopy(net), x)
    with EmulatedCuda():
        got = step(copy.deepcopy(net).to("cuda"), x.to("cuda"))
    assert all(torch.allclose(a, b) for a, b in zip(got, expected))


def test_an_emulated_cuda_generator_draws_another_stream_than_the_cpu_one():
    """As on a real GPU: the same seed on another device gives other numbers."""
    with EmulatedCuda():
        on_cuda = torch.randn(4, generator=torch.Generator(device="cuda").manual_seed(7), device="cuda").cpu()
        on_cpu = torch.randn(4, generator=torch.Generator().manual_seed(7))
        again = torch.randn(4, generator=torch.Generator(device="cuda").manual_seed(7), device="cuda").cpu()
    assert not torch.allclose(on_cuda, on_cpu) and torch.equal(on_cuda, again)


# ----------------------------------------------------------------------------- it counts

def test_it_counts_copies_and_reads():
    with EmulatedCuda() as cuda:
        x = torch.ones(3).to("cuda")
        assert cuda.snapshot() == {"h2d": 1, "d2h": 0, "sync": 0}
        y = x * 2 + torch.ones(3, device="cuda")                # made on the device: no copy
        assert cuda.snapshot()["h2d"] == 1
        float(y.sum()), y.tolist(), bool(y[0] > 0), y.cpu()
        assert cuda.snapshot()["d2h"] == 4
        y[torch.tensor([0, 1])]                                  # CPU indices are copied over
        assert cuda.snapshot()["h2d"] == 2
        torch.cuda.synchronize()
        assert cuda.snapshot()["sync"] == 1
        cuda.reset()
        z = torch.ones(3)
        float(z.sum()), z.tolist()                               # CPU tensors: nothing to count
        assert cuda.snapshot() == {"h2d": 0, "d2h": 0, "sync": 0}
