"""A tiny autoencoder for latent diffusion: MNIST 28x28 pixels <-> a small latent z (4 x 7 x 7 by default).

    z = E(x)                          encoder: 28x28 -> 14x14 -> 7x7, then 1x1 conv to `latent_channels`
    x_hat = D(z)                      decoder: the mirror image, ending in tanh (pixels in [-1, 1])
    loss = |x_hat - x|^2 + lambda |z|^2       mean squared error per pixel, plus a small scale penalty on z

Why a plain autoencoder with a scale penalty and not a VAE: the diffusion model in the latent is the generative
part; the autoencoder only has to compress well and keep the latent of a sensible size. A VAE's sampled latent
(its noise and KL term) costs reconstruction quality in a few CPU-minutes of training, and nothing in this course
samples from the VAE's own prior. Without any penalty the encoder could make z as large or small as it likes (the
decoder undoes any scale), so a tiny L2 penalty (`penalty`, 1e-4 by default) pins it near a fixed size.

The scale factor. A diffusion model assumes its data is roughly of unit variance, like its noise. So, as Stable
Diffusion does (it multiplies its VAE's latents by 0.18215, measured once on its training images), the latent is
standardised with one number measured on the training set:

    z_scaled = (z - mean) * scale,    scale = 1 / std(z)          (latent_statistics, to_latent / from_latent)

Round trip: `decode(encode(x))` is the reconstruction; `encode_scaled` / `decode_scaled` do the standardisation too.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from .backbones import GROUPS

AUTOENCODER_PENALTY = 1e-4   # lambda of the scale penalty lambda |z|^2 (per latent number)


class Autoencoder(nn.Module):
    """Encoder and decoder of MNIST images (B, 1, 28, 28) in [-1, 1] <-> latents (B, latent_channels, 7, 7).

    Parameters (defaults width=16, latent_channels=4): 29,701. `arch` records what rebuilds it, as for the
    backbones, so checkpoints load with weights_only=True.
    """

    name = "autoencoder"

    def __init__(self, width: int = 16, latent_channels: int = 4):
        super().__init__()
        for value, what in ((width, "width"), (latent_channels, "latent_channels")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a positive integer, got {value!r}")
        if width % GROUPS:
            raise ValueError(f"width must be a multiple of {GROUPS} (the GroupNorm groups), got {width}")
        self.arch_kwargs = {"width": width, "latent_channels": latent_channels}
        self.image_shape = (1, 28, 28)
        self.latent_shape = (latent_channels, 7, 7)
        c1, c2 = width, 2 * width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.GroupNorm(GROUPS, c1), nn.SiLU(),             # (B, c1, 28, 28)
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.GroupNorm(GROUPS, c2), nn.SiLU(),  # (B, c2, 14, 14)
            nn.Conv2d(c2, c2, 3, stride=2, padding=1), nn.GroupNorm(GROUPS, c2), nn.SiLU(),  # (B, c2, 7, 7)
            nn.Conv2d(c2, latent_channels, 1),                                               # (B, C_z, 7, 7)
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, c2, 3, padding=1), nn.GroupNorm(GROUPS, c2), nn.SiLU(),  # (B, c2, 7, 7)
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c2, c2, 3, padding=1), nn.GroupNorm(GROUPS, c2), nn.SiLU(),               # (B, c2, 14, 14)
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c2, c1, 3, padding=1), nn.GroupNorm(GROUPS, c1), nn.SiLU(),               # (B, c1, 28, 28)
            nn.Conv2d(c1, 1, 3, padding=1), nn.Tanh(),                                          # (B, 1, 28, 28)
        )

    @property
    def arch(self) -> dict:
        return {"name": self.name, "kwargs": dict(self.arch_kwargs)}

    def _check(self, x: torch.Tensor, shape: tuple, what: str) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the autoencoder's {what} must have shape (B, {', '.join(map(str, shape))}), got {got}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = E(x): images (B, 1, 28, 28) in [-1, 1] -> latents (B, C_z, 7, 7)."""
        self._check(x, self.image_shape, "images")
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x_hat = D(z): latents (B, C_z, 7, 7) -> images (B, 1, 28, 28) in [-1, 1] (tanh)."""
        self._check(z, self.latent_shape, "latents")
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction D(E(x)) (B, 1, 28, 28)."""
        return self.decode(self.encode(x))


def autoencoder_loss(autoencoder: Autoencoder, x: torch.Tensor, penalty: float = AUTOENCODER_PENALTY
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, reconstruction error): loss = mean |D(E(x)) - x|^2 + penalty * mean |E(x)|^2, both per number."""
    z = autoencoder.encode(x)                                            # (B, C_z, 7, 7)
    reconstruction = F.mse_loss(autoencoder.decode(z), x)
    return reconstruction + penalty * z.pow(2).mean(), reconstruction


# ----------------------------------------------------------------------------- the latent's statistics

def encode_all(autoencoder: Autoencoder, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """E(x) of many images (N, 1, 28, 28), in batches, without gradients; latents (N, C_z, 7, 7) on the images' device."""
    device = next(autoencoder.parameters()).device
    with torch.no_grad():
        return torch.cat([autoencoder.encode(images[i:i + batch_size].to(device)).to(images.device)
                          for i in range(0, images.shape[0], batch_size)])


def latent_statistics(latents: torch.Tensor) -> dict:
    """Per-channel mean and standard deviation of latents (N, C, H, W), the overall ones, and the scale factor
    1 / std that brings them to unit variance (plain floats and lists, to store in a checkpoint)."""
    per_channel = latents.transpose(0, 1).flatten(1)                    # (C, N*H*W)
    mean, std = float(latents.mean()), float(latents.std())
    return {"channel_mean": per_channel.mean(1).tolist(), "channel_std": per_channel.std(1).tolist(),
            "mean": mean, "std": std, "scale": 1.0 / std}


def to_latent(z: torch.Tensor, mean: float, scale: float) -> torch.Tensor:
    """z_scaled = (z - mean) * scale: the latent standardised for the diffusion model."""
    return (z - mean) * scale


def from_latent(z_scaled: torch.Tensor, mean: float, scale: float) -> torch.Tensor:
    """z = z_scaled / scale + mean: the inverse of to_latent."""
    return z_scaled / scale + mean


class LatentCodec(nn.Module):
    """An autoencoder with its latent's standardisation: encode images to z_scaled, decode z_scaled to images."""

    def __init__(self, autoencoder: Autoencoder, mean: float, scale: float):
        super().__init__()
        if not (math.isfinite(scale) and scale > 0 and math.isfinite(mean)):
            raise ValueError(f"the latent's scale must be a finite number > 0 and its mean finite, got {scale}, {mean}")
        self.autoencoder, self.mean, self.scale = autoencoder, float(mean), float(scale)
        self.latent_shape = autoencoder.latent_shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) -> z_scaled (B, C_z, 7, 7)."""
        return to_latent(self.autoencoder.encode(x), self.mean, self.scale)

    def decode(self, z_scaled: torch.Tensor) -> torch.Tensor:
        """z_scaled (B, C_z, 7, 7) -> images (B, 1, 28, 28)."""
        return self.autoencoder.decode(from_latent(z_scaled, self.mean, self.scale))

    def record(self) -> dict:
        """What rebuilds this codec, for a checkpoint (plain types and tensors: loads with weights_only=True)."""
        return {"arch": self.autoencoder.arch, "weights": self.autoencoder.state_dict(),
                "mean": self.mean, "scale": self.scale}


def codec_from_record(record: dict, device: torch.device | str = "cpu") -> LatentCodec:
    """The LatentCodec that LatentCodec.record() describes, in eval mode on `device`."""
    if not isinstance(record, dict) or not {"arch", "weights", "mean", "scale"} <= record.keys():
        raise ValueError("not an autoencoder record: it needs arch, weights, mean and scale (LatentCodec.record())")
    if record["arch"].get("name") != Autoencoder.name:
        raise ValueError(f"the record holds a {record['arch'].get('name')!r}, not an autoencoder")
    autoencoder = Autoencoder(**record["arch"]["kwargs"])
    autoencoder.load_state_dict(record["weights"])
    return LatentCodec(autoencoder.to(device).eval(), record["mean"], record["scale"])


def _adamw_with_cosine(parameters, lr: float, steps: int):
    """AdamW at lr with a cosine decay of the learning rate to 0 over `steps` (the autoencoder's trainings)."""
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / steps, 1))))
    return optimizer, scheduler


def _update(optimizer, scheduler, loss: torch.Tensor) -> None:
    """One optimizer step on loss's gradients, then the learning rate's next value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()


def train_autoencoder(images: torch.Tensor, steps: int = 2000, batch_size: int = 128, lr: float = 2e-3,
                      penalty: float = AUTOENCODER_PENALTY, width: int = 16, latent_channels: int = 4,
                      seed: int = 0, device: torch.device | str = "cpu", callback=None) -> tuple[Autoencoder, dict]:
    """Train an Autoencoder on images (N, 1, 28, 28) in [-1, 1] with AdamW and a cosine learning rate to 0;
    returns it (eval mode) and its history {"step": [...], "loss": [...], "reconstruction": [...]}.
    Batches are drawn on the CPU from a generator seeded with `seed`, then moved to `device`."""
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must have shape (N, 1, 28, 28), got {tuple(images.shape)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        autoencoder = Autoencoder(width, latent_channels).to(device)
    optimizer, scheduler = _adamw_with_cosine(autoencoder.parameters(), lr, steps)
    generator = torch.Generator().manual_seed(seed)
    history = {"step": [], "loss": [], "reconstruction": []}
    autoencoder.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        loss, reconstruction = autoencoder_loss(autoencoder, images[idx].to(device), penalty)
        _update(optimizer, scheduler, loss)
        history["step"].append(step)
        history["loss"].append(float(loss.detach()))
        history["reconstruction"].append(float(reconstruction.detach()))
        if callback is not None:
            callback(step, history)
    return autoencoder.eval(), history


def noisy_latent_reconstruction_loss(codec: "LatentCodec", z_scaled: torch.Tensor, x: torch.Tensor,
                                     sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The decoder's error on latents pushed off the encoder's: mean |D(z + sigma n) - x|^2 per pixel, with z the
    standardised latents (B, C_z, 7, 7) of the images x (B, 1, 28, 28), sigma (B,) the noise size of each image in
    standardised units and n ~ N(0, I) the noise (B, C_z, 7, 7). sigma = 0 gives the plain reconstruction error."""
    return (codec.decode(z_scaled + sigma.view(-1, 1, 1, 1) * noise) - x).pow(2).mean()


def fine_tune_decoder(codec: "LatentCodec", images: torch.Tensor, steps: int = 1500, sigma_max: float = 0.4,
                      batch_size: int = 128, lr: float = 1e-3, seed: int = 0, callback=None) -> tuple["LatentCodec", dict]:
    """Make the decoder tolerate the latent model's errors: train the decoder alone (the encoder frozen) on latents
    pushed off the encoder's by noise, towards the clean image,

        L = mean |D(z + sigma n) - x|^2,   z = (E(x) - mean) * scale,   sigma ~ U(0, sigma_max) per image,  n ~ N(0, I)

    (noisy_latent_reconstruction_loss). A sampled latent is never exactly one that the encoder gives; a decoder that
    has seen only the encoder's latents turns the difference into broken strokes. The encoder, and so the latents,
    their scale factor and a latent model trained on them, stay as they are. AdamW with a cosine learning rate to 0.
    Batches, sigmas and noise are drawn on the CPU from `seed`, then moved to the codec's device. Returns the codec
    (its decoder updated in place, eval mode) and the history {"step": [...], "loss": [...]}."""
    if images.ndim != 4 or tuple(images.shape[1:]) != codec.autoencoder.image_shape:
        raise ValueError(f"images must have shape (N, 1, 28, 28), got {tuple(images.shape)}")
    if not (isinstance(sigma_max, (int, float)) and math.isfinite(sigma_max) and sigma_max >= 0):
        raise ValueError(f"sigma_max must be a finite number >= 0 (the largest noise, in standardised latent units), "
                         f"got {sigma_max!r}")
    device = next(codec.autoencoder.parameters()).device
    latents = to_latent(encode_all(codec.autoencoder, images), codec.mean, codec.scale)     # (N, C_z, 7, 7), CPU
    decoder = codec.autoencoder.decoder
    optimizer, scheduler = _adamw_with_cosine(decoder.parameters(), lr, steps)
    generator = torch.Generator().manual_seed(seed)
    history = {"step": [], "loss": []}
    decoder.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        sigma = sigma_max * torch.rand(batch_size, generator=generator)                    # (B,)
        noise = torch.randn((batch_size, *codec.latent_shape), generator=generator)        # (B, C_z, 7, 7)
        loss = noisy_latent_reconstruction_loss(codec, latents[idx].to(device), images[idx].to(device),
                                                sigma.to(device), noise.to(device))
        _update(optimizer, scheduler, loss)
        history["step"].append(step)
        history["loss"].append(float(loss.detach()))
        if callback is not None:
            callback(step, history)
    decoder.eval()
    return codec, history


# ----------------------------------------------------------------------------- sampling in the latent

def sample_latent_images(velocity_model, codec: LatentCodec, schedule, n: int, num_steps: int = 20, seed: int = 0,
                         batch_size: int = 500, labels: torch.Tensor | None = None, w: float = 1.0) -> torch.Tensor:
    """Latent diffusion's sampling: z_1 ~ N(0, I) of the latent's shape (drawn on the CPU from `seed`, then moved to
    the model's device), flow Euler over num_steps steps to z_0 (samplers.flow_euler_sample_progressive, unchanged),
    then decoded: images (n, 1, 28, 28) on the model's device.

    A class-conditional model needs labels (n,), e.g. torch.arange(n) % 10: at w = 1 its conditional velocity (one
    evaluation a step), at another w classifier-free guidance (guidance.cfg_eps_model, two evaluations a step)."""
    from .guidance import cfg_eps_model, conditional_eps_model
    from .samplers import final, flow_euler_sample_progressive, sample_noise
    conditional = getattr(velocity_model, "num_classes", None) is not None
    if conditional and labels is None:
        raise ValueError("this latent model is class-conditional: give labels (n,), one class per digit, "
                         f"e.g. labels=torch.arange({n}) % {velocity_model.num_classes}")
    if not conditional and (labels is not None or w != 1):
        raise ValueError("labels and w need a class-conditional latent model, and this one is unconditional; "
                         "drop labels and w")
    if conditional and (not isinstance(labels, torch.Tensor) or labels.shape != (n,)):
        raise ValueError(f"labels must be a tensor of shape (n,) = ({n},), one class per digit, got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    device = next(codec.autoencoder.parameters()).device
    z_1 = sample_noise(n, codec.latent_shape, generator=torch.Generator().manual_seed(seed)).to(device)   # (n, C_z, 7, 7)
    images = []
    for start in range(0, n, batch_size):
        model = velocity_model
        if conditional:
            y = labels[start:start + batch_size]                                                     # (b,)
            model = conditional_eps_model(velocity_model, y) if w == 1 else cfg_eps_model(velocity_model, y, w)
        z_0 = final(flow_euler_sample_progressive(model, z_1[start:start + batch_size], schedule, num_steps))
        with torch.no_grad():
            images.append(codec.decode(z_0))                                                         # (b, 1, 28, 28)
    return torch.cat(images)
