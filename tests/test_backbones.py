"""Backbones: shapes, the seed blog's parameter counts, and the errors a learner will meet."""
import pytest
import torch

from diffusion_lib.backbones import (BACKBONES, IMAGE_BACKBONES, ChunkyMLP, ConvNet, PointMLP, SelfAttention, SmolMLP,
                                     UNet, build_backbone, count_parameters)

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
    assert sorted(BACKBONES) == ["chunky_mlp", "convnet", "dit", "mlp", "point_mlp", "smol_mlp", "unet"]
    assert sorted(IMAGE_BACKBONES) == ["chunky_mlp", "convnet", "dit", "mlp", "smol_mlp", "unet"]   # what the CLI trains


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


def test_self_attention_matches_an_explicit_softmax():
    """SelfAttention against the formula written out: per head, softmax(q k^T / sqrt(d)) v over the 49 positions."""
    torch.manual_seed(0)
    attn = SelfAttention(16, heads=4).eval()
    x = torch.randn(2, 16, 7, 7)
    with torch.no_grad():
        got = attn(x)
        qkv = attn.qkv(attn.norm(x)).flatten(2)                       # (B, 3 * 16, 49)
        q, k, v = qkv[:, :16], qkv[:, 16:32], qkv[:, 32:]
        heads = []
        for h in range(4):
            qh, kh, vh = (a[:, 4 * h:4 * h + 4] for a in (q, k, v))   # (B, 4, 49)
            weights = torch.softmax(torch.einsum("bdi,bdj->bij", qh, kh) / 2.0, dim=-1)   # sqrt(4) = 2
            heads.append(torch.einsum("bij,bdj->bdi", weights, vh))
        expected = x + attn.proj(torch.cat(heads, dim=1).view(2, 16, 7, 7))
    assert torch.allclose(got, expected, atol=1e-5)


def test_mid_blocks_and_attention_add_exactly_their_parameters():
    base = UNet(base=8, mults=(1, 2, 4))
    deeper = UNet(base=8, mults=(1, 2, 4), mid_blocks=3, mid_attention=True)
    c, e = 32, 32                                                     # 7x7 channels 8 * 4, embedding 4 * 8
    res_block = 2 * c + (9 * c * c + c) + (e * c + c) + 2 * c + (9 * c * c + c)   # norms, convs, embedding
    attention = 2 * c + (c * 3 * c + 3 * c) + (c * c + c)
    assert count_parameters(deeper) - count_parameters(base) == 2 * res_block + attention
    x, t = batch(2)
    assert deeper(x, t).shape == x.shape
    rebuilt = build_backbone("unet", **deeper.arch["kwargs"])
    assert rebuilt.arch == deeper.arch and count_parameters(rebuilt) == count_parameters(deeper)


def test_default_unet_record_has_no_new_keys():
    """Checkpoints written before mid_blocks / mid_attention existed hold exactly this record."""
    assert UNet(base=16, mults=(1, 2, 8)).arch == {"name": "unet", "kwargs": {"base": 16, "mults": [1, 2, 8],
                                                                               "num_classes": None}}


@pytest.mark.parametrize("kwargs, match", [({"mid_blocks": 0}, "mid_blocks"), ({"mid_blocks": 1.5}, "mid_blocks")])
def test_bad_mid_blocks(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet(base=8, **kwargs)


def test_attention_heads_must_divide_channels():
    with pytest.raises(ValueError, match="divisible by heads"):
        SelfAttention(10, heads=4)


# ----------------------------------------------------------------------------- the 2-D toy's point network

@pytest.mark.parametrize("width,depth,emb_dim", [(128, 3, 64), (16, 1, 8), (32, 2, 16)])
def test_point_mlp_parameters_by_hand(width, depth, emb_dim):
    """Linear(2 + emb_dim, width), depth - 1 of Linear(width, width), Linear(width, 2), each with its bias."""
    model = PointMLP(width=width, depth=depth, emb_dim=emb_dim)
    by_hand = (2 + emb_dim) * width + width + (depth - 1) * (width * width + width) + width * 2 + 2
    assert count_parameters(model) == by_hand


def test_point_mlp_default_size():
    assert count_parameters(PointMLP()) == 41_858      # 66 * 128 + 128 + 2 * (128 * 128 + 128) + 128 * 2 + 2


def test_point_mlp_shapes_time_and_record():
    torch.manual_seed(0)
    model = build_backbone("point_mlp", width=16, depth=2, emb_dim=8).eval()
    x = torch.randn(5, 2, 1, 1)
    with torch.no_grad():
        out = model(x, torch.full((5,), 10))
        later = model(x, torch.full((5,), 900))
        alone = model(x[:1], torch.full((1,), 10))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert not torch.allclose(out, later)                       # the time embedding reaches the output
    assert torch.allclose(out[:1], alone, atol=1e-6)            # no coupling between the points of a batch
    rebuilt = build_backbone(model.arch["name"], **model.arch["kwargs"])
    assert model.arch == {"name": "point_mlp", "kwargs": {"width": 16, "depth": 2, "emb_dim": 8}}
    assert count_parameters(rebuilt) == count_parameters(model)


def test_point_mlp_refuses_images_with_a_hint():
    with pytest.raises(ValueError, match=r"expects points of shape \(B, 2, 1, 1\).*toy.as_points"):
        PointMLP()(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="depth >= 1"):
        PointMLP(depth=0)


def test_unet_time_scale_embeds_scaled_times_and_is_recorded_only_when_set():
    """UNet(time_scale=c) is the same network fed c t and c r: checked against a twin with the same weights."""
    torch.manual_seed(0)
    scaled = UNet(base=8, interval=True, time_scale=0.01)
    torch.nn.init.normal_(scaled.interval_mlp[2].weight, std=0.1)    # its zero start would hide the interval's input
    plain = UNet(base=8, interval=True)
    plain.load_state_dict(scaled.state_dict())
    x = torch.randn(3, 1, 28, 28)
    t, r = torch.tensor([999.0, 500.0, 10.0]), torch.tensor([-1.0, 250.0, 10.0])
    torch.testing.assert_close(scaled(x, t, r=r), plain(x, 0.01 * t, r=0.01 * r))
    assert "time_scale" not in UNet(base=8).arch["kwargs"]
    assert scaled.arch["kwargs"]["time_scale"] == 0.01
    rebuilt = build_backbone(scaled.arch["name"], **scaled.arch["kwargs"])
    rebuilt.load_state_dict(scaled.state_dict())
    torch.testing.assert_close(rebuilt(x, t, r=r), scaled(x, t, r=r))
    for bad in (0, -1.0, True, "0.01"):
        for build in (lambda: UNet(base=8, time_scale=bad), lambda: PointMLP(time_scale=bad)):   # one check for both
            with pytest.raises(ValueError, match="time_scale must be a number > 0"):
                build()
