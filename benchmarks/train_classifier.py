"""Train the MNIST classifier behind diffusion_lib.metrics and ship it: the recipe and the command.

    DIFFUSION_LIB_DATA=/path/to/data python benchmarks/train_classifier.py --out diffusion_lib/weights/classifier.pt

Prints the test accuracy and the reference scores of real data (the test set's confident share,
the Frechet distance of 500 training images against the test set), and stores them in the file.
The library only loads and uses the result (diffusion_lib.measure.metrics.load_classifier).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from diffusion_lib.checkpoints import save_checkpoint
from diffusion_lib.data import load_mnist
from diffusion_lib.measure.metrics import MNISTClassifier, classifier_accuracy, load_classifier, reference_scores


# ----------------------------------------------------------------------------- the recipe

def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to max_shift pixels in x and y, filling with background (-1)."""
    B, _, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)                     # (B, 1, H + 2s, W + 2s)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, B), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + H, dx[i]:dx[i] + W] for i in range(B)])


def non_digits(x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images (B, 1, 28, 28) in [-1, 1] that are no digit, a quarter of each kind:
    pure noise, smooth blobs, digits drowned in noise (signal weight < 0.25), and flat grey pages.

    The classifier learns to answer these with the uniform distribution (outlier exposure), so
    that its confidence means "a recognisable digit"; without them, it calls pure noise an 8 with
    p > 0.99, and the confident share of an untrained diffusion model would be 1.
    """
    B = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator)
    blobs = torch.tanh(3 * (F.interpolate(torch.randn(B, 1, 7, 7, generator=generator), size=x0.shape[-2:],
                                          mode="bilinear", align_corners=False) - 0.5))
    a = 0.25 * torch.rand(B, 1, 1, 1, generator=generator)
    drowned = a * x0 + (1 - a ** 2).sqrt() * noise
    flat = (2 * torch.rand(B, 1, 1, 1, generator=generator) - 1).expand_as(x0)
    kind = torch.randint(0, 4, (B, 1, 1, 1), generator=generator)
    images = torch.where(kind == 0, noise, torch.where(kind == 1, blobs, torch.where(kind == 2, drowned, flat)))
    return images.clamp(-1, 1)


@dataclass
class ClassifierConfig:
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    max_shift: int = 2             # augmentation: random translations of up to 2 pixels
    outliers_per_batch: int = 32   # non-digits added to each batch, trained towards the uniform distribution
    outlier_weight: float = 0.5    # weight of their loss (outlier exposure, Hendrycks et al. 2019)
    width: int = 16
    seed: int = 0


def train_classifier(images: torch.Tensor, labels: torch.Tensor, config: ClassifierConfig = ClassifierConfig(),
                     progress: bool = True) -> MNISTClassifier:
    """Train MNISTClassifier on (N, 1, 28, 28) images in [-1, 1]: cross-entropy, AdamW, cosine lr decay,
    random shifts, and non_digits() pushed towards the uniform distribution.

    config.seed fixes everything: the batches, shifts and non-digits come from a generator of their own; the
    initial weights and the dropout masks from torch's global generator, seeded inside torch.random.fork_rng,
    so that the caller's random state is the same afterwards as before.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)                               # the initial weights and dropout
        model = MNISTClassifier(width=config.width)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = images.shape[0] // config.batch_size
        total = config.epochs * steps_per_epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
        generator = torch.Generator().manual_seed(config.seed)
        model.train()
        bar = tqdm(total=total, desc="train classifier", disable=not progress)
        for _ in range(config.epochs):
            order = torch.randperm(images.shape[0], generator=generator)
            for k in range(steps_per_epoch):
                idx = order[k * config.batch_size:(k + 1) * config.batch_size]
                x = random_shift(images[idx], config.max_shift, generator) if config.max_shift else images[idx]
                outliers = non_digits(x[:config.outliers_per_batch], generator)
                logits = model(torch.cat([x, outliers]))                    # (B + B_out, 10)
                loss = F.cross_entropy(logits[:len(idx)], labels[idx])
                if config.outliers_per_batch:                               # cross-entropy to the uniform distribution
                    loss = loss - config.outlier_weight * logits[len(idx):].log_softmax(dim=1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        bar.close()
        return model.eval()


def save_classifier(model: MNISTClassifier, path: str | os.PathLike, **record) -> Path:
    """Write the classifier as a plain dict (arch, model state_dict, and any record such as test accuracy)."""
    return save_checkpoint({"arch": model.arch, "model": model.state_dict(), **record}, path)


# ----------------------------------------------------------------------------- the command

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=ClassifierConfig.epochs)
    p.add_argument("--width", type=int, default=ClassifierConfig.width)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", default="diffusion_lib/weights/classifier.pt")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    config = ClassifierConfig(epochs=args.epochs, width=args.width, seed=args.seed)
    images, labels = load_mnist(train=True)
    test_images, test_labels = load_mnist(train=False)
    start = time.monotonic()
    model = train_classifier(images, labels, config)
    minutes = (time.monotonic() - start) / 60
    accuracy = classifier_accuracy(test_images, test_labels, model)
    record = {"config": dataclasses.asdict(config), "test_accuracy": accuracy, "train_minutes": minutes,
              "command": "python " + " ".join(sys.argv), "machine": f"{platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} torch threads", "torch": str(torch.__version__)}
    save_classifier(model, args.out, **record)
    reference = reference_scores(load_classifier(args.out))          # from the saved file, as users will load it
    save_classifier(model, args.out, **record, reference=reference)
    os.chmod(args.out, 0o644)                                      # save_checkpoint's temporary file is private
    print(json.dumps({**record, "reference": reference}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
