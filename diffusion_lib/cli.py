"""Command line: `python -m diffusion_lib train ...` and `python -m diffusion_lib sample ...`.

    python -m diffusion_lib train --backbone unet --steps 3000 --out runs/unet
    python -m diffusion_lib train --backbone unet --conditional --minutes 10 --precision bf16 --out runs/cond
    python -m diffusion_lib sample --checkpoint runs/unet/last.pt --sampler ddim --steps 50 --out samples.png
    python -m diffusion_lib sample --pretrained unet_cond --w 3 --label 7 --out sevens.png

Training resumes from OUT/last.pt when it exists (pass --fresh to start over).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .backbones import IMAGE_BACKBONES
from .config import budget
from .device import default_device
from .samplers import PRECISIONS
from .schedules import BETA_SCHEDULES


def _train(args) -> int:
    from .data import load_mnist
    from .training import TrainConfig, train

    kwargs = json.loads(args.backbone_kwargs) if args.backbone_kwargs else {}
    if args.base is not None:
        kwargs["base"] = args.base
    if args.conditional:
        kwargs["num_classes"] = 10
    images, labels = load_mnist(train=True, root=args.data)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    steps = args.steps
    if args.epochs is not None:
        steps = max(1, round(args.epochs * images.shape[0] / args.batch_size))
    if steps is None:
        steps = 10**9 if args.minutes else budget().train_steps
    config = TrainConfig(backbone=args.backbone, backbone_kwargs=kwargs, schedule=args.schedule, T=args.T, steps=steps,
                         max_minutes=args.minutes, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         warmup_steps=args.warmup, lr_decay=args.lr_decay, ema_decay=args.ema_decay,
                         label_dropout=args.label_dropout, checkpoint_every=args.checkpoint_every, seed=args.seed,
                         precision=args.precision)
    device = torch.device(args.device) if args.device else default_device()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    result = train(config, images, labels if args.conditional else None, out_dir=args.out, resume=not args.fresh,
                   device=device)
    minutes = (time.monotonic() - start) / 60
    losses = result.history["loss"]
    tail = sum(losses[-100:]) / max(1, len(losses[-100:]))
    print(f"trained {config.backbone} to step {result.step} in {minutes:.1f} min on {device}; "
          f"mean loss of the last 100 steps {tail:.4f}; checkpoint {result.checkpoint}")
    return 0


def _sample(args) -> int:
    from .checkpoints import load_checkpoint, load_model
    from .guidance import cfg_eps_model
    from .images import save_grid
    from .samplers import ddim_sample_progressive, ddpm_sample_progressive, final, sample_noise, with_precision
    from .schedules import make_schedule

    device = torch.device(args.device) if args.device else default_device()
    if args.pretrained:
        from .pretrained import load_pretrained, pretrained_schedule
        model = load_pretrained(args.pretrained, device=device)
        schedule = pretrained_schedule(args.pretrained)
    elif args.checkpoint:
        checkpoint = load_checkpoint(args.checkpoint)
        model = load_model(args.checkpoint, ema=not args.no_ema, device=device)
        schedule = make_schedule(checkpoint["schedule"]["name"], checkpoint["schedule"]["T"])
    else:
        print("error: give --checkpoint PATH or --pretrained NAME", file=sys.stderr)
        return 2
    n = args.n or budget().n_samples
    generator = torch.Generator(device=device).manual_seed(args.seed)
    x_T = sample_noise(n, model.image_shape, generator=generator, device=device)
    if model.num_classes is not None:
        labels = torch.full((n,), args.label, dtype=torch.long) if args.label is not None else torch.arange(n) % model.num_classes
        eps_model = cfg_eps_model(model, labels, args.w)
    else:
        if args.label is not None:
            print("error: --label needs a class-conditional model", file=sys.stderr)
            return 2
        eps_model = model
    eps_model = with_precision(eps_model, args.precision)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    if args.sampler == "ddpm":
        steps = ddpm_sample_progressive(eps_model, x_T, schedule, variance=args.variance, generator=generator, progress=True)
    else:
        steps = ddim_sample_progressive(eps_model, x_T, schedule, args.steps or budget().ddim_steps, args.eta,
                                        generator=generator, progress=True)
    images = final(steps)
    seconds = time.monotonic() - start
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_grid(images, args.out, nrow=args.nrow)
    print(f"wrote {n} samples to {args.out} ({args.sampler}, {seconds:.1f} s on {device})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m diffusion_lib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a noise-prediction network on MNIST")
    t.add_argument("--backbone", default="unet", choices=sorted(IMAGE_BACKBONES))
    t.add_argument("--base", type=int, help="U-Net base channels (default 32)")
    t.add_argument("--backbone-kwargs", help='extra backbone arguments as JSON, e.g. \'{"mults": [1, 2, 2]}\'')
    t.add_argument("--conditional", action="store_true", help="class-conditional (U-Net), trained with label dropout")
    t.add_argument("--label-dropout", type=float, default=0.1)
    t.add_argument("--schedule", default="linear", choices=sorted(BETA_SCHEDULES))
    t.add_argument("--T", type=int, default=1000)
    g = t.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="optimizer steps in all (default: the budget's train_steps)")
    g.add_argument("--epochs", type=float, help="passes over the training set")
    t.add_argument("--minutes", type=float, help="stop after this many minutes of training (checkpointed)")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--warmup", type=int, default=0, help="learning-rate warm-up steps")
    t.add_argument("--lr-decay", default="constant", choices=["constant", "cosine"])
    t.add_argument("--ema-decay", type=float, default=0.999)
    t.add_argument("--precision", default="fp32", choices=PRECISIONS)
    t.add_argument("--checkpoint-every", type=int, default=500)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, help="use only the first N training images")
    t.add_argument("--data", help="MNIST root (default: $DIFFUSION_LIB_DATA or ~/.cache/diffusion_lib/data)")
    t.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--out", required=True, help="output folder; OUT/last.pt is the checkpoint")
    t.add_argument("--fresh", action="store_true", help="ignore OUT/last.pt and start from scratch")
    t.set_defaults(func=_train)

    s = sub.add_parser("sample", help="sample a grid of images to a PNG")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a checkpoint written by `train`")
    src.add_argument("--pretrained", help="a shipped model: see diffusion_lib.pretrained.PRETRAINED")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA ones")
    s.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    s.add_argument("--steps", type=int, help="DDIM steps (default: the budget's ddim_steps)")
    s.add_argument("--eta", type=float, default=0.0, help="DDIM stochasticity in [0, 1]")
    s.add_argument("--variance", default="beta_tilde", choices=["beta_tilde", "beta"], help="DDPM variance")
    s.add_argument("--w", type=float, default=3.0, help="guidance weight (conditional models)")
    s.add_argument("--label", type=int, help="digit to draw (conditional models); default: 0..9 in turn")
    s.add_argument("--n", type=int, help="number of images (default: the budget's n_samples)")
    s.add_argument("--nrow", type=int, help="images per row")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="bf16: run the network under bfloat16 autocast (faster on CPUs with AVX512-BF16)")
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.add_argument("--device")
    s.add_argument("--out", default="samples.png")
    s.set_defaults(func=_sample)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
