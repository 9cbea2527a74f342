"""Budgets follow DIFFUSION_LIB_QUICK; the default device follows DIFFUSION_LIB_DEVICE; synchronize waits for a GPU."""
import pytest
import torch

from diffusion_lib.config import FULL, QUICK, QUICK_ENV, budget, quick_mode
from diffusion_lib.device import DEVICE_ENV, default_device, synchronize


@pytest.mark.parametrize("value", ["1", "true", "yes", "TRUE", " on "])
def test_quick_mode_on(monkeypatch, value):
    monkeypatch.setenv(QUICK_ENV, value)
    assert quick_mode() is True
    assert budget() is QUICK and budget().mode == "quick"


@pytest.mark.parametrize("value", [None, "", "0", "false", "No", " "])
def test_quick_mode_off(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(QUICK_ENV, raising=False)
    else:
        monkeypatch.setenv(QUICK_ENV, value)
    assert quick_mode() is False
    assert budget() is FULL and budget().mode == "full"


def test_quick_is_smaller_everywhere():
    for field in ("train_steps", "batch_size", "n_samples", "ddim_steps", "ddpm_images", "metric_samples",
                  "sweep_samples", "toy_train_steps", "toy_points"):
        assert 0 < getattr(QUICK, field) < getattr(FULL, field), field


def test_default_device(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, "meta")
    assert default_device() == torch.device("meta")
    monkeypatch.delenv(DEVICE_ENV)
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert default_device().type == expected


def test_synchronize_waits_for_the_device_it_is_given(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("cuda", device)))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append(("mps", None)))
    synchronize("cpu")
    synchronize(torch.device("cpu"))
    assert calls == []                                              # a CPU has nothing queued
    synchronize("cuda:1")
    synchronize(torch.device("mps"))
    assert calls == [("cuda", torch.device("cuda:1")), ("mps", None)]
