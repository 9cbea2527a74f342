"""The autoencoder, the DiT, and diffusion in a latent: shapes, inverses, identities at initialisation, round trips."""
from __future__ import annotations

import pytest
import torch

from diffusion_lib.autoencoder import (Autoencoder, LatentCodec, autoencoder_loss, codec_from_record, encode_all,
                                       fine_tune_decoder, from_latent, latent_statistics,
                                       noisy_latent_reconstruction_loss, sample_latent_images, to_latent,
                                       train_autoencoder)
from diffusion_lib.backbones import DiT, DiTBlock, build_backbone, patchify, unpatchify
from diffusion_lib.checkpoints import CheckpointError, checkpoint_codec, load_checkpoint, load_codec, load_model, save_checkpoint
from diffusion_lib.objectives import FlowMatching, objective_loss
from diffusion_lib.samplers import final, flow_euler_sample_progressive, flow_heun_sample_progressive, sample_noise
from diffusion_lib.schedules import make_schedule
from diffusion_lib.training import TrainConfig, train

from _tiny import one_thread  # noqa: F401  (fixture)

LATENT = (4, 7, 7)


def blobs(n: int = 64, seed: int = 0) -> torch.Tensor:
    """n easy 'digits' (n, 1, 28, 28) in [-1, 1]: one bright square at a random place on a dark background."""
    g = torch.Generator().manual_seed(seed)
    x = -torch.ones(n, 1, 28, 28)
    for i, (r, c) in enumerate(torch.randint(2, 18, (n, 2), generator=g).tolist()):
        x[i, 0, r:r + 8, c:c + 8] = 1.0
    return x


# ----------------------------------------------------------------------------- the autoencoder

def test_autoencoder_shapes_and_range():
    ae = Autoencoder(width=8, latent_channels=4)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    z = ae.encode(x)
    assert z.shape == (3, *LATENT) == (3, *ae.latent_shape)
    x_hat = ae.decode(z)
    assert x_hat.shape == x.shape and float(x_hat.detach().abs().max()) <= 1.0      # tanh: pixels in [-1, 1]
    with pytest.raises(ValueError, match=r"\(B, 4, 7, 7\)"):
        ae.decode(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        ae.encode(torch.zeros(2, 4, 7, 7))


@pytest.fixture(scope="module")
def trained_toy():
    """An autoencoder trained on 64 squares until it reconstructs them (a few seconds)."""
    images = blobs()
    ae, history = train_autoencoder(images, steps=300, batch_size=32, lr=3e-3, width=8, seed=0)
    return ae, images, history


def test_autoencoder_round_trip_on_a_trained_toy(trained_toy):
    ae, images, history = trained_toy
    with torch.no_grad():
        untrained = float((Autoencoder(width=8)(images) - images).pow(2).mean())
        error = float((ae(images) - images).pow(2).mean())
    assert error < 0.1 * untrained and error < 0.05, (error, untrained)
    assert history["reconstruction"][-1] < history["reconstruction"][0]


def test_autoencoder_loss_is_reconstruction_plus_the_scale_penalty():
    ae = Autoencoder(width=8)
    x = blobs(4)
    loss, reconstruction = autoencoder_loss(ae, x, penalty=0.5)
    z = ae.encode(x)
    assert torch.allclose(reconstruction, ((ae.decode(z) - x) ** 2).mean())
    assert torch.allclose(loss, reconstruction + 0.5 * (z ** 2).mean())


def test_latent_statistics_and_the_scale_factor():
    g = torch.Generator().manual_seed(0)
    z = 3.0 + 0.25 * torch.randn(500, *LATENT, generator=g)
    stats = latent_statistics(z)
    assert stats["scale"] == pytest.approx(1 / float(z.std()))
    assert stats["channel_mean"] == pytest.approx([float(z[:, c].mean()) for c in range(4)], abs=1e-5)
    scaled = to_latent(z, stats["mean"], stats["scale"])
    assert float(scaled.std()) == pytest.approx(1.0, abs=1e-4) and abs(float(scaled.mean())) < 1e-4
    assert torch.allclose(from_latent(scaled, stats["mean"], stats["scale"]), z, atol=1e-5)


def test_codec_record_round_trips_with_weights_only(trained_toy, tmp_path):
    ae, images, _ = trained_toy
    stats = latent_statistics(encode_all(ae, images))
    codec = LatentCodec(ae, stats["mean"], stats["scale"])
    path = save_checkpoint({"kind": "autoencoder", "arch": ae.arch, "autoencoder": codec.record()}, tmp_path / "ae.pt")
    loaded = load_codec(path)                            # torch.load(weights_only=True) inside
    torch.load(path, weights_only=True)
    with torch.no_grad():
        assert torch.equal(loaded.encode(images), codec.encode(images))
        z = codec.encode(images)
        assert torch.allclose(loaded.decode(z), ae.decode(encode_all(ae, images)), atol=1e-5)
    with pytest.raises(CheckpointError, match="autoencoder"):
        load_model(path)                                 # an autoencoder is not a diffusion network
    with pytest.raises(ValueError, match="scale"):
        LatentCodec(ae, 0.0, 0.0)


def toy_codec(trained_toy) -> LatentCodec:
    """A fresh copy of the trained toy autoencoder with its latent's standardisation."""
    ae, images, _ = trained_toy
    copy = Autoencoder(width=8)
    copy.load_state_dict(ae.state_dict())
    stats = latent_statistics(encode_all(copy, images))
    return LatentCodec(copy.eval(), stats["mean"], stats["scale"])


def test_noisy_latent_reconstruction_loss_by_hand(trained_toy):
    codec, images = toy_codec(trained_toy), trained_toy[1][:6]
    with torch.no_grad():
        z = codec.encode(images)
        noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(3))
        sigma = torch.linspace(0, 0.5, 6)
        by_hand = torch.stack([((codec.decode(z[i:i + 1] + sigma[i] * noise[i:i + 1]) - images[i:i + 1]) ** 2).mean()
                               for i in range(6)]).mean()
        assert torch.allclose(noisy_latent_reconstruction_loss(codec, z, images, sigma, noise), by_hand, atol=1e-6)
        plain = ((codec.autoencoder(images) - images) ** 2).mean()          # sigma = 0: the reconstruction error
        assert torch.allclose(noisy_latent_reconstruction_loss(codec, z, images, torch.zeros(6), noise), plain, atol=1e-6)


def test_fine_tuning_the_decoder_on_noisy_latents_keeps_the_encoder_and_lowers_the_noisy_error(trained_toy):
    codec, images = toy_codec(trained_toy), trained_toy[1]
    encoder_before = {k: v.clone() for k, v in codec.autoencoder.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in codec.autoencoder.decoder.state_dict().items()}
    with torch.no_grad():
        z = codec.encode(images)
        noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(4))
        sigma = torch.full((images.shape[0],), 0.5)
        before = float(noisy_latent_reconstruction_loss(codec, z, images, sigma, noise))
    codec, history = fine_tune_decoder(codec, images, steps=150, sigma_max=0.8, batch_size=32, lr=2e-3, seed=0)
    with torch.no_grad():
        after = float(noisy_latent_reconstruction_loss(codec, z, images, sigma, noise))
    assert after < 0.7 * before, (before, after)                # held-out noise: the decoder tolerates it better
    assert len(history["loss"]) == 150 and not codec.autoencoder.decoder.training
    for k, v in codec.autoencoder.encoder.state_dict().items():
        assert torch.equal(v, encoder_before[k])                # the latents, and a model trained on them, stay valid
    assert any(not torch.equal(v, decoder_before[k]) for k, v in codec.autoencoder.decoder.state_dict().items())
    with pytest.raises(ValueError, match="sigma_max"):
        fine_tune_decoder(codec, images, steps=1, sigma_max=-0.1)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        fine_tune_decoder(codec, z, steps=1)


def test_fine_tune_decoder_on_cuda_matches_the_cpu(trained_toy):
    """Under the CUDA-rules emulation: batches and noise drawn on the CPU and moved, the same decoder as on the CPU."""
    from cuda_emulation import EmulatedCuda
    images = trained_toy[1]
    expected, _ = fine_tune_decoder(toy_codec(trained_toy), images, steps=3, batch_size=8, seed=1)
    with EmulatedCuda():
        codec = toy_codec(trained_toy)
        codec.autoencoder.to("cuda")
        codec, history = fine_tune_decoder(codec, images, steps=3, batch_size=8, seed=1)
        weights = {k: v.cpu() for k, v in codec.autoencoder.decoder.state_dict().items()}
    for k, v in expected.autoencoder.decoder.state_dict().items():
        torch.testing.assert_close(weights[k], v, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------- the DiT

@pytest.mark.parametrize("shape,patch", [((1, 28, 28), 2), ((1, 28, 28), 4), ((4, 7, 7), 1), ((3, 6, 4), 2)])
def test_patchify_and_unpatchify_are_exact_inverses(shape, patch):
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    tokens = patchify(x, patch)
    c, h, w = shape
    assert tokens.shape == (2, (h // patch) * (w // patch), c * patch * patch)
    assert torch.equal(unpatchify(tokens, patch, shape), x)
    assert torch.equal(patchify(unpatchify(tokens, patch, shape), patch), tokens)


def test_patchify_puts_each_patch_in_its_token():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    tokens = patchify(x, 2)                               # 4 tokens in reading order, 2 channels x 2 x 2 each
    assert torch.equal(tokens[0, 1], torch.cat([x[0, 0, 0:2, 2:4].flatten(), x[0, 1, 0:2, 2:4].flatten()]))
    assert torch.equal(tokens[0, 2], torch.cat([x[0, 0, 2:4, 0:2].flatten(), x[0, 1, 2:4, 0:2].flatten()]))
    with pytest.raises(ValueError, match="divide"):
        patchify(torch.zeros(1, 1, 28, 28), 3)


def test_each_adaln_zero_block_is_the_identity_at_initialisation():
    torch.manual_seed(0)
    block = DiTBlock(width=32, heads=4)
    x, c = torch.randn(3, 10, 32), torch.randn(3, 32)
    assert torch.equal(block(x, c), x)
    model = DiT(image_shape=LATENT, patch=1, width=32, depth=3, heads=4)
    x, t = torch.randn(2, *LATENT), torch.tensor([0, 999])
    h, cond = model.tokens(x), model.condition(t)
    for b in model.blocks:
        assert torch.equal(b(h, cond), h)
    assert torch.equal(model(x, t), torch.zeros_like(x))   # and the zero-initialised final layer outputs 0
    # once the modulation is no longer zero, the block changes its input
    torch.nn.init.normal_(block.ada_ln[1].weight, std=0.1)
    assert not torch.allclose(block(x := torch.randn(3, 10, 32), c), x)


@pytest.mark.parametrize("kwargs", [dict(image_shape=(1, 28, 28), patch=2), dict(image_shape=(1, 28, 28), patch=4),
                                    dict(image_shape=LATENT, patch=1, num_classes=10)])
def test_dit_shapes_gradients_and_attention_maps(kwargs):
    torch.manual_seed(0)
    model = DiT(width=32, depth=2, heads=2, **kwargs)
    x = torch.randn(3, *model.image_shape)
    t = torch.tensor([0, 500, 999])
    y = torch.tensor([1, 2, 10]) if model.num_classes else None
    loss = objective_loss(model, x, make_schedule("linear", 1000), "flow", y=y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    maps = model.attention_maps(x, t, y)
    n = (model.image_shape[1] // model.patch) * (model.image_shape[2] // model.patch)
    assert maps.shape == (2, 3, 2, n, n)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 3, 2, n))          # each row is a distribution
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(3, 1, 27, 27), t)


def test_dit_attention_maps_match_the_forward_pass():
    """The maps are those of the forward pass: recomputing attention from them gives the block's attention output."""
    torch.manual_seed(0)
    model = DiT(image_shape=LATENT, patch=1, width=16, depth=1, heads=2)
    torch.nn.init.normal_(model.blocks[0].ada_ln[1].weight, std=0.1)
    x, t = torch.randn(2, *LATENT), torch.tensor([3, 700])
    block, c = model.blocks[0], model.condition(t)
    shift, scale = block.modulations(c)[:2]
    h = block.norm1(model.tokens(x)) * (1 + scale[:, None]) + shift[:, None]
    q, k, v = block.attn._qkv(h)
    w = model.attention_maps(x, t)[0]
    expected = block.attn.proj((w @ v).transpose(1, 2).reshape(2, 49, 16))
    assert torch.allclose(block.attn(h), expected, atol=1e-5)


def test_dit_rejects_bad_sizes():
    with pytest.raises(ValueError, match="patch"):
        DiT(image_shape=LATENT, patch=2)
    with pytest.raises(ValueError, match="heads"):
        DiT(width=30, heads=4)
    with pytest.raises(ValueError, match="image_shape"):
        build_backbone("dit", image_shape=(28, 28))


# ----------------------------------------------------------------------------- samplers and objectives on latents

def test_flow_objective_and_samplers_take_latent_shapes():
    schedule = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    z0, noise = torch.randn(5, *LATENT, generator=g), torch.randn(5, *LATENT, generator=g)
    t = torch.tensor([0, 249, 499, 749, 999])
    objective = FlowMatching()
    x_t = objective.noisy_input(z0, t, noise, schedule)
    s = ((t + 1) / 1000).reshape(-1, 1, 1, 1)
    assert torch.allclose(x_t, (1 - s) * z0 + s * noise)
    assert torch.equal(objective.target(z0, t, noise, schedule), noise - z0)

    # the exact velocity of one latent z* is (x_s - z*) / s: flow Euler reaches z* exactly, whatever the shape
    target = torch.randn(1, *LATENT, generator=g)

    def velocity(x, t_batch):
        return (x - target) / ((t_batch.to(x.dtype) + 1) / 1000).reshape(-1, 1, 1, 1)

    z_1 = sample_noise(3, LATENT, generator=torch.Generator().manual_seed(1))
    assert z_1.shape == (3, *LATENT)
    for sampler in (flow_euler_sample_progressive, flow_heun_sample_progressive):
        out = final(sampler(velocity, z_1, schedule, 7))
        assert out.shape == (3, *LATENT)
        assert torch.allclose(out, target.expand(3, *LATENT), atol=1e-5)


def test_eps_objective_trains_on_latents_through_the_training_loop(tmp_path):
    latents = torch.randn(16, *LATENT, generator=torch.Generator().manual_seed(0)) * 2   # not in [-1, 1]: allowed
    config = TrainConfig(backbone="dit", backbone_kwargs={"image_shape": list(LATENT), "patch": 1, "width": 16,
                                                          "depth": 1, "heads": 2},
                         objective="flow", steps=3, batch_size=8, checkpoint_every=3)
    result = train(config, latents, out_dir=tmp_path, progress=False)
    assert result.step == 3 and len(result.history["loss"]) == 3
    assert torch.load(tmp_path / "last.pt", weights_only=True)["arch"]["kwargs"]["image_shape"] == list(LATENT)
    model = load_model(tmp_path / "last.pt")
    assert model.image_shape == LATENT
    # a pixel network still refuses data outside [-1, 1]
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        train(TrainConfig(backbone="dit", backbone_kwargs={"width": 16, "depth": 1, "heads": 2}, steps=1, batch_size=2),
              torch.full((4, 1, 28, 28), 2.0), progress=False)


# ----------------------------------------------------------------------------- a latent model end to end

@pytest.fixture(scope="module")
def latent_checkpoint(trained_toy, tmp_path_factory):
    """A tiny latent flow model (2 training steps) carrying the toy autoencoder, as benchmarks/latent_diffusion.py
    writes it, and the exported sampling-only copy."""
    from diffusion_lib.pretrained import export_for_sampling
    ae, images, _ = trained_toy
    stats = latent_statistics(encode_all(ae, images))
    codec = LatentCodec(ae, stats["mean"], stats["scale"])
    out = tmp_path_factory.mktemp("latent")
    config = TrainConfig(backbone="dit", backbone_kwargs={"image_shape": list(LATENT), "patch": 1, "width": 16,
                                                          "depth": 1, "heads": 2},
                         objective="flow", steps=2, batch_size=8)
    with torch.no_grad():
        latents = codec.encode(images)
    train(config, latents, out_dir=out, progress=False)
    checkpoint = load_checkpoint(out / "last.pt")
    checkpoint.pop("format")
    checkpoint["autoencoder"] = codec.record()
    path = save_checkpoint(checkpoint, out / "latent.pt")
    exported = export_for_sampling(path, out / "exported.pt")
    return path, exported, codec


def test_latent_checkpoints_round_trip_with_weights_only(latent_checkpoint):
    path, exported, codec = latent_checkpoint
    for p in (path, exported):
        raw = torch.load(p, weights_only=True)
        assert raw["objective"] == "flow" and "autoencoder" in raw
        loaded = checkpoint_codec(load_checkpoint(p))
        assert loaded.scale == codec.scale and loaded.mean == codec.mean
        for key, value in codec.autoencoder.state_dict().items():
            assert torch.equal(loaded.autoencoder.state_dict()[key], value)
    a, b = load_model(path), load_model(exported)
    z, t = torch.randn(2, *LATENT), torch.tensor([10, 900])
    with torch.no_grad():
        assert torch.equal(a(z, t), b(z, t))


def test_sample_latent_images_decodes_the_sampled_latents(latent_checkpoint):
    path, _, codec = latent_checkpoint
    model, schedule = load_model(path), make_schedule("linear", 1000)
    images = sample_latent_images(model, codec, schedule, n=3, num_steps=4, seed=5)
    assert images.shape == (3, 1, 28, 28)
    z_1 = sample_noise(3, LATENT, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = codec.decode(final(flow_euler_sample_progressive(model, z_1, schedule, 4)))
    assert torch.equal(images, expected)


def test_cli_samples_the_latent_model_and_decodes(latent_checkpoint, tmp_path, capsys):
    from PIL import Image
    from diffusion_lib.cli import main
    path, exported, _ = latent_checkpoint
    out = tmp_path / "latent.png"
    assert main(["sample", "--checkpoint", str(exported), "--n", "4", "--nrow", "4", "--steps", "3",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert "flow-euler" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size[1] < 40 and im.size[0] > 4 * 28         # one row of four decoded 28 x 28 digits
    assert main(["sample", "--checkpoint", str(path), "--sampler", "ddim", "--out", str(out)]) == 2
    assert "flow" in capsys.readouterr().err


@pytest.fixture(scope="module")
def conditional_latent(trained_toy):
    """A class-conditional latent DiT (untrained weights, its adaLN-Zero gates opened so the label matters) and the
    toy codec."""
    ae, images, _ = trained_toy
    stats = latent_statistics(encode_all(ae, images))
    codec = LatentCodec(ae, stats["mean"], stats["scale"])
    model = DiT(image_shape=LATENT, patch=1, width=16, depth=1, heads=2, num_classes=10)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    from diffusion_lib.objectives import mark_model
    return mark_model(model, "flow", make_schedule("linear", 1000)), codec


def test_a_conditional_latent_model_samples_its_labels_at_w_1_and_guided(conditional_latent):
    from diffusion_lib.objectives import carry_marks
    model, codec = conditional_latent
    schedule = make_schedule("linear", 1000)
    labels = torch.tensor([3, 7, 0])
    z_1 = sample_noise(3, LATENT, generator=torch.Generator().manual_seed(5))
    null = torch.full_like(labels, model.null_label)
    for w in (1.0, 2.5):
        images = sample_latent_images(model, codec, schedule, n=3, num_steps=4, seed=5, labels=labels, w=w)

        def velocity(z, t):                               # the conditional or guided velocity, written out
            v_cond, v_uncond = model(z, t, labels), model(z, t, null)
            return v_cond if w == 1 else v_uncond + w * (v_cond - v_uncond)
        with torch.no_grad():
            z_0 = final(flow_euler_sample_progressive(carry_marks(velocity, model), z_1, schedule, 4))
            expected = codec.decode(z_0)
        assert torch.allclose(images, expected, atol=1e-5)
    other = sample_latent_images(model, codec, schedule, n=3, num_steps=4, seed=5, labels=torch.tensor([1, 1, 1]))
    assert not torch.allclose(other, images, atol=1e-3)        # the label reaches the samples


def test_sample_latent_images_refuses_missing_or_stray_labels(conditional_latent, latent_checkpoint):
    model, codec = conditional_latent
    schedule = make_schedule("linear", 1000)
    with pytest.raises(ValueError, match="class-conditional: give labels"):
        sample_latent_images(model, codec, schedule, n=3, num_steps=2)
    with pytest.raises(ValueError, match=r"shape \(n,\) = \(3,\)"):
        sample_latent_images(model, codec, schedule, n=3, num_steps=2, labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"classes in \[0, 9\]"):
        sample_latent_images(model, codec, schedule, n=2, num_steps=2, labels=torch.tensor([1, 10]))
    unconditional = load_model(latent_checkpoint[0])
    with pytest.raises(ValueError, match="unconditional; drop labels and w"):
        sample_latent_images(unconditional, codec, schedule, n=2, num_steps=2, labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="unconditional; drop labels and w"):
        sample_latent_images(unconditional, codec, schedule, n=2, num_steps=2, w=2.0)


def test_a_conditional_latent_model_samples_on_cuda_as_on_the_cpu(conditional_latent):
    """Under the CUDA-rules emulation: the noise drawn on the CPU and moved, the labels moved by the guidance
    wrappers; the same digits as on the CPU at w = 1 and guided."""
    import copy
    from cuda_emulation import EmulatedCuda, is_emulated_cuda
    model, codec = conditional_latent
    schedule, labels = make_schedule("linear", 1000), torch.tensor([4, 0, 9])
    expected = {w: sample_latent_images(model, codec, schedule, n=3, num_steps=3, seed=1, labels=labels, w=w)
                for w in (1.0, 2.0)}
    with EmulatedCuda():
        model_cuda, codec_cuda = copy.deepcopy(model).to("cuda"), copy.deepcopy(codec)
        codec_cuda.autoencoder.to("cuda")
        for w, images in expected.items():
            got = sample_latent_images(model_cuda, codec_cuda, schedule, n=3, num_steps=3, seed=1, labels=labels, w=w)
            assert is_emulated_cuda(got)
            torch.testing.assert_close(got.cpu(), images, atol=1e-5, rtol=1e-5)
