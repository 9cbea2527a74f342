"""Score a trained network with diffusion_lib.metrics: sample N images with DDIM, classify them.

    python benchmarks/evaluate.py --pretrained unet --n 500 --steps 50
    python benchmarks/evaluate.py --pretrained unet_cond --n 500 --steps 50 --w 0 1 2 3 5
    python benchmarks/evaluate.py --checkpoint runs/unet/last.pt --n 500 --steps 50 --eta 0 1

A conditional network is asked for the labels 0, 1, ..., 9, 0, 1, ... in turn, once per guidance
weight w. Prints one JSON line per setting (and writes them all with --json PATH).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from diffusion_lib.checkpoints import load_checkpoint, model_from_checkpoint
from diffusion_lib.guidance import cfg_eps_model
from diffusion_lib.measure.metrics import load_classifier, mnist_test_features, score_samples
from diffusion_lib.samplers import ddim_sample_progressive, ddpm_sample_progressive, final, sample_noise, with_precision
from diffusion_lib.schedules import make_schedule


def load_network(checkpoint: str | None = None, pretrained: str | None = None):
    """(model, schedule) from a training checkpoint or a shipped model name."""
    if pretrained:
        from diffusion_lib.pretrained import load_pretrained, pretrained_schedule
        return load_pretrained(pretrained), pretrained_schedule(pretrained)
    record = load_checkpoint(checkpoint)
    return model_from_checkpoint(record), make_schedule(record["schedule"]["name"], record["schedule"]["T"])


def generate(model, schedule, n: int, sampler: str = "ddim", steps: int = 50, w: float | None = None,
             seed: int = 0, batch_size: int = 250, precision: str = "fp32",
             eta: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples (n, 1, 28, 28) and, for a conditional model, the labels asked for (0..9 in turn, guidance weight w)."""
    generator = torch.Generator().manual_seed(seed)
    x_T = sample_noise(n, model.image_shape, generator=generator)
    labels = torch.arange(n) % model.num_classes if model.num_classes is not None else None
    images = []
    for start in range(0, n, batch_size):
        x = x_T[start:start + batch_size]
        eps_model = model if labels is None else cfg_eps_model(model, labels[start:start + batch_size], w)
        eps_model = with_precision(eps_model, precision)
        if sampler == "ddpm":
            chain = ddpm_sample_progressive(eps_model, x, schedule, generator=generator)
        else:
            chain = ddim_sample_progressive(eps_model, x, schedule, steps, eta=eta, generator=generator)
        images.append(final(chain))
    return torch.cat(images), labels


def evaluate(model, schedule, classifier, reference_features, n: int = 500, steps: int = 50,
             w: float | None = None, sampler: str = "ddim", seed: int = 0, precision: str = "fp32",
             eta: float = 0.0) -> dict:
    """Generate n images and score them; adds the sampling wall time in seconds."""
    start = time.monotonic()
    images, labels = generate(model, schedule, n, sampler, steps, w, seed, precision=precision, eta=eta)
    seconds = time.monotonic() - start
    scores = score_samples(images, classifier, reference_features, labels)
    return {"sampler": sampler, "steps": schedule.T if sampler == "ddpm" else steps,
            "eta": eta if sampler == "ddim" else None, "w": w, "seed": seed, **scores,
            "sampling_seconds": round(seconds, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint")
    src.add_argument("--pretrained")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    p.add_argument("--eta", type=float, nargs="*", default=[0.0], help="DDIM stochasticity (0: deterministic)")
    p.add_argument("--w", type=float, nargs="*", default=[3.0], help="guidance weights (conditional models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, schedule = load_network(args.checkpoint, args.pretrained)
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    results = []
    for eta in args.eta:
        for w in (args.w if model.num_classes is not None else [None]):
            result = evaluate(model, schedule, classifier, reference, args.n, args.steps, w, args.sampler, args.seed,
                              eta=eta)
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json:   # the format of the model cards' diffusion_lib/weights/<name>.json, read by run.py
        with open(args.json, "w") as f:
            json.dump({"model": args.pretrained or args.checkpoint, "command": "python " + " ".join(sys.argv),
                       "scores": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
