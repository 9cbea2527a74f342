"""Backbones: shapes, the seed blog's parameter counts, and the errors a learner will meet."""
import pytest
import torch

from diffusion_lib.backbones import (BACKBONES, ChunkyMLP, ConvNet, SmolMLP, UNet, build_backbone,
                                     count_parameters)

from _tiny import one_thread  # noqa: F401 (one_thread is autouse)


def batch(B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((B, 1, 28, 28), generator=g), torch.tensor([0, 999][:B] + [5] * max(0, B - 2))


@pytest.fixture(scope="module")
def convnet():
    torch.manual_seed(0)
    return ConvNet().eval()


@pytest.fixture(scope="module")
def chunky():
    torch.manual_seed(0)
    return ChunkyMLP().eval()


def test_seed_blog_parameter_counts(convnet, chunky):
    assert count_parameters(convnet) == 3_276_129
    assert count_parameters(SmolMLP()) == 1_526_288
    assert count_parameters(chunky) == 20_589_584


@pytest.mark.parametrize("name,kwargs", [("smol_mlp", {}), ("unet", {"base": 8}),
                                         ("unet", {"base": 8, "num_classes": 10}), ("mlp", {"hidden": [16]})])
def test_output_shape_equals_input_shape(name, kwargs):
    torch.manual_seed(0)
    model = build_backbone(name, **kwargs).eval()
    x, t = batch(3)
    with torch.no_grad():
        out = model(x, t)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()


def test_seed_backbones_forward_shape(convnet, chunky):
    x, t = batch(1)
    with torch.no_grad():
        assert convnet(x, t).shape == x.shape
        assert chunky(x, t).shape == x.shape


def test_output_depends_on_t_and_label():
    torch.manual_seed(0)
    model = UNet(base=8, num_classes=10).eval()
    x, _ = batch(2)
    with torch.no_grad():
        a = model(x, torch.tensor([10, 10]), torch.tensor([3, 3]))
        b = model(x, torch.tensor([900, 900]), torch.tensor([3, 3]))
        c = model(x, torch.tensor([10, 10]), torch.tensor([4, 4]))
        null = model(x, torch.tensor([10, 10]))
        null_explicit = model(x, torch.tensor([10, 10]), torch.tensor([10, 10]))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    assert torch.equal(null, null_explicit)          # y=None means the null label
    assert model.null_label == 10


def test_unet_batch_independence():
    """GroupNorm, not BatchNorm: an image's prediction does not depend on the rest of the batch."""
    torch.manual_seed(0)
    model = UNet(base=8).eval()
    x, t = batch(2)
    with torch.no_grad():
        both = model(x, t)
        first = model(x[:1], t[:1])
    assert torch.allclose(both[:1], first, atol=1e-6)


def test_arch_record_rebuilds_the_network():
    torch.manual_seed(0)
    model = UNet(base=8, mults=(1, 2, 4), num_classes=10)
    rebuilt = build_backbone(model.arch["name"], **model.arch["kwargs"])
    assert rebuilt.arch == model.arch
    assert count_parameters(rebuilt) == count_parameters(model)
    assert sorted(BACKBONES) == ["chunky_mlp", "convnet", "mlp", "smol_mlp", "unet"]


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown backbone 'resnet'") as info:
        build_backbone("resnet")
    assert "unet" in str(info.value)
    with pytest.raises(ValueError, match="does not take these arguments"):
        build_backbone("convnet", base=8)


@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (2, 3, 28, 28), (1, 28, 28), (2, 784)])
def test_wrong_image_shape_names_the_expected_shape(shape):
    model = UNet(base=8)
    x = torch.zeros(shape)
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 1, 28, 28\)"):
        model(x, torch.zeros(shape[0], dtype=torch.long))


def test_wrong_t_shape():
    with pytest.raises(ValueError, match=r"t must have shape \(B,\)"):
        SmolMLP()(torch.zeros(2, 1, 28, 28), torch.zeros(3, dtype=torch.long))


def test_labels_on_unconditional_unet():
    model = UNet(base=8)
    with pytest.raises(ValueError, match="unconditional"):
        model(*batch(2), torch.tensor([1, 2]))


@pytest.mark.parametrize("labels", [[0, 11], [-1, 3]])
def test_label_out_of_range(labels):
    model = UNet(base=8, num_classes=10)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\]"):
        model(*batch(2), torch.tensor(labels))


def test_label_shape():
    model = UNet(base=8, num_classes=10)
    with pytest.raises(ValueError, match=r"labels y must have shape \(B,\)"):
        model(*batch(2), torch.tensor([1, 2, 3]))


def test_unet_mults_must_have_three_levels():
    with pytest.raises(ValueError, match="mults"):
        UNet(base=8, mults=(1, 2))
