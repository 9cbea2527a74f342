"""Classifier-free guidance: w = 0 is the unconditional prediction, w = 1 the conditional one."""
import pytest
import torch

from diffusion_lib.backbones import UNet
from diffusion_lib.guidance import cfg_eps_model, guided_eps

from _tiny import one_thread  # noqa: F401 (one_thread is autouse)


@pytest.fixture(scope="module")
def cond_unet():
    torch.manual_seed(0)
    return UNet(base=8, num_classes=10).eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn((3, 1, 28, 28), generator=g), torch.tensor([999, 400, 3]), torch.tensor([7, 0, 9])


@pytest.fixture(scope="module")
def direct(cond_unet, batch):
    """The two predictions by direct calls: with the labels, and with the null label."""
    x, t, y = batch
    with torch.no_grad():
        cond = cond_unet(x, t, y)
        uncond = cond_unet(x, t, torch.full_like(y, 10))
    assert (cond - uncond).abs().max() > 1e-3     # the label matters, so the tests below can tell them apart
    return cond, uncond


def test_guided_eps_formula():
    g = torch.Generator().manual_seed(1)
    cond, uncond = torch.randn((2, 4), generator=g), torch.randn((2, 4), generator=g)
    assert torch.equal(guided_eps(cond, uncond, 0.0), uncond)
    assert torch.allclose(guided_eps(cond, uncond, 1.0), cond, atol=1e-7)
    assert torch.allclose(guided_eps(cond, uncond, 3.0), 3 * cond - 2 * uncond, atol=1e-6)


@pytest.mark.parametrize("w", [0.0, 1.0, 2.5])
def test_cfg_eps_model_against_direct_calls(cond_unet, batch, direct, w):
    x, t, y = batch
    cond, uncond = direct
    with torch.no_grad():
        guided = cfg_eps_model(cond_unet, y, w)(x, t)
    assert torch.allclose(guided, uncond + w * (cond - uncond), atol=1e-5)
    if w == 0.0:
        with torch.no_grad():
            assert torch.allclose(guided, cond_unet(x, t), atol=1e-5)     # y=None is the null label
    if w == 1.0:
        assert torch.allclose(guided, cond, atol=1e-5)


def test_labels_as_a_list(cond_unet, batch, direct):
    x, t, _ = batch
    with torch.no_grad():
        guided = cfg_eps_model(cond_unet, [7, 0, 9], 1.0)(x, t)
    assert torch.allclose(guided, direct[0], atol=1e-5)


def test_negative_weight():
    with pytest.raises(ValueError, match=r"w must lie in \[0, 20\]"):
        guided_eps(torch.zeros(1), torch.zeros(1), -0.5)
    with pytest.raises(ValueError, match=r"w must lie in \[0, 20\]"):
        cfg_eps_model(UNet(base=8, num_classes=10), torch.tensor([1]), -1.0)


def test_unconditional_model_is_refused():
    with pytest.raises(ValueError, match="class-conditional"):
        cfg_eps_model(UNet(base=8), torch.tensor([1]), 2.0)


def test_label_batch_mismatch(cond_unet, batch):
    x, t, _ = batch
    with pytest.raises(ValueError, match=r"labels y must have shape \(B,\)"):
        cfg_eps_model(cond_unet, torch.tensor([1, 2]), 2.0)(x, t)


def test_conditional_eps_model_is_one_evaluation_of_the_conditional_network():
    from diffusion_lib.guidance import conditional_eps_model
    torch.manual_seed(0)
    model = UNet(base=8, num_classes=10)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([5, 400, 900]), torch.tensor([2, 0, 9])
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        one = conditional_eps_model(model, y)(x, t)
        both = cfg_eps_model(model, y, 1.0)(x, t)
    handle.remove()
    assert calls == [3, 6]                               # one batch of 3 against a doubled batch of 6
    with torch.no_grad():
        assert torch.equal(one, model(x, t, y))
    assert torch.allclose(one, both, atol=1e-5)          # w = 1 of classifier-free guidance, up to rounding
    with pytest.raises(ValueError, match="unconditional"):
        conditional_eps_model(UNet(base=8), y)
    with pytest.raises(ValueError, match=r"\(B,\) = \(2,\)"):
        conditional_eps_model(model, y)(x[:2], t[:2])
