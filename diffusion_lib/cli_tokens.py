"""The command line's token models (notebook 14): `train-tokens` and `sample-tokens`.

    python -m diffusion_lib train-tokens --data surnames --kind masked --steps 3000 --out runs/names_masked
    python -m diffusion_lib train-tokens --data surnames --kind autoregressive --steps 3000 --out runs/names_ar
    python -m diffusion_lib train-tokens --data mnist --levels 4 --steps 6000 --out runs/digits_masked
    python -m diffusion_lib sample-tokens --checkpoint runs/names_masked/last.pt --sampler confidence --steps 4 --out names.txt
    python -m diffusion_lib sample-tokens --pretrained masked_digits --steps 64 --out digits.png

Errors follow cli.py's rule: one line, exit code 2, nothing written; an option that does not apply is an error.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from .cli import (SEED_MAX, UsageError, _check_folder_can_hold, check_out_folder, device_name, integer,
                  json_object_option, number, threads)

TOKEN_SAMPLERS = ("ancestral", "confidence", "fixed-order", "autoregressive")


def _train_tokens(args) -> int:
    from .masked_training import TokenTrainConfig, load_token_data, train_tokens
    from .token_networks import build_token_network

    if args.levels is not None and args.data != "mnist":
        raise UsageError("--levels applies to --data mnist only (grey levels of the digits); drop it")
    if args.names is not None and args.data != "surnames":
        raise UsageError("--names applies to --data surnames only; drop it")
    if args.kind == "autoregressive" and args.data != "surnames":
        raise UsageError("--kind autoregressive is the text baseline: use it with --data surnames")
    if args.kind == "autoregressive" and (args.weighting is not None or args.schedule is not None):
        raise UsageError("--weighting and --schedule apply to --kind masked only; drop them")
    kwargs = {}
    if args.network_kwargs:
        kwargs = json_object_option(args.network_kwargs, "--network-kwargs", '{"width": 96}')
        for fixed in ("vocab_size", "causal"):
            if fixed in kwargs:
                raise UsageError(f"--network-kwargs: give no {fixed}; it follows from --data, --levels and --kind")
    if args.names is not None and not Path(args.names).is_file():
        raise UsageError(f"--names {args.names} is not a file; give a text file with one name a line")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise UsageError(f"--data-root {args.data_root} is not a folder; give the folder that holds MNIST/raw")
    config = TokenTrainConfig(kind=args.kind, network="token_unet" if args.data == "mnist" else "char_transformer",
                              network_kwargs=kwargs, data=args.data, levels=args.levels or 4,
                              masking_schedule=args.schedule or "linear", weighting=args.weighting or "elbo",
                              steps=args.steps or 10**9 if args.minutes else args.steps or 3000,
                              max_minutes=args.minutes, batch_size=args.batch_size, lr=args.lr,
                              weight_decay=args.weight_decay, warmup_steps=args.warmup, lr_decay=args.lr_decay,
                              ema_decay=args.ema_decay, checkpoint_every=args.checkpoint_every, seed=args.seed,
                              precision=args.precision)
    with torch.device("meta"):
        build_token_network(config.network, **config.network_arguments())
    out = check_out_folder(args.out)
    device = args.device or torch.device("cpu")
    data = load_token_data(args.data, config.levels, root=args.data_root, train=True, names_path=args.names)
    if args.limit is not None:
        if args.limit > data.shape[0]:
            raise UsageError(f"--limit {args.limit} is more than the {data.shape[0]:,} training rows; give at most "
                             f"{data.shape[0]}")
        data = data[:args.limit]
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    trainer, _ = train_tokens(config, data, out_dir=out, resume=not args.fresh, device=device)
    tail = trainer.history["loss"][-100:]
    print(f"trained {config.kind} {config.network} to step {trainer.step} in {(time.monotonic() - start) / 60:.1f} "
          f"min on {device}; mean loss of the last 100 steps {sum(tail) / max(1, len(tail)):.4f} "
          f"(nats per token); checkpoint {out / 'last.pt'}")
    return 0


def _sample_tokens(args) -> int:
    from .checkpoints import load_checkpoint
    from . import masked
    from .masked_training import is_token_checkpoint, token_model_from_checkpoint
    from .tokens import decode_names, dequantise

    n = args.n
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give a file name")
    _check_folder_can_hold(out.parent, "--out")
    if args.pretrained:
        from .pretrained import pretrained_path
        path = pretrained_path(args.pretrained)
    else:
        path = args.checkpoint
    checkpoint = load_checkpoint(path)
    if not is_token_checkpoint(checkpoint):
        raise UsageError(f"{path} holds an image diffusion model, not a token model; sample it with "
                         "`python -m diffusion_lib sample`")
    kind, data = checkpoint["kind"], checkpoint["data"]
    sampler = args.sampler or ("autoregressive" if kind == "autoregressive" else "confidence")
    if (kind == "autoregressive") != (sampler == "autoregressive"):
        raise UsageError(f"--sampler {sampler} does not apply to this {kind} model; use "
                         + ("--sampler autoregressive" if kind == "autoregressive" else
                            "--sampler ancestral, confidence or fixed-order"))
    if args.choice_temperature is not None and sampler != "confidence":
        raise UsageError("--choice-temperature applies to --sampler confidence only; drop it")
    if args.steps is not None and sampler in ("fixed-order", "autoregressive"):
        raise UsageError(f"--steps does not apply to --sampler {sampler} (one token per step); drop --steps")
    wants = ".png" if data["name"] == "mnist" else ".txt"
    if out.suffix.lower() != wants:
        raise UsageError(f"--out {args.out}: this model makes {'digits, written as a PNG' if wants == '.png' else 'names, written as text'}, "
                         f"so the file name must end in {wants}")
    device = args.device or torch.device("cpu")
    model = token_model_from_checkpoint(checkpoint, device=device)
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    shape, V = model.token_shape, model.vocab_size
    start = time.monotonic()
    if sampler == "autoregressive":
        steps = masked.autoregressive_sample_progressive(model, n, shape[0], V, generator, args.temperature, device)
    else:
        x = masked.all_masked(n, shape, V, device)
        schedule = (checkpoint.get("masking") or {}).get("schedule", "linear")
        K = args.steps or 16
        if sampler == "ancestral":
            steps = masked.ancestral_unmask_progressive(model, x, V, K, schedule, generator, args.temperature)
        elif sampler == "confidence":
            steps = masked.confidence_unmask_progressive(model, x, V, K, schedule, generator, args.temperature,
                                                         args.choice_temperature or 0.0)
        else:
            steps = masked.fixed_order_unmask_progressive(model, x, V, None, generator, args.temperature)
    last = None
    for last in steps:
        pass
    tokens = last.x_s.cpu()
    seconds = time.monotonic() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    if wants == ".png":
        from .images import save_grid
        save_grid(dequantise(tokens, data["levels"]), out)
    else:
        out.write_text("\n".join(decode_names(tokens)) + "\n")
    print(f"wrote {n} samples to {out} ({sampler}, {last.nfe} network evaluations, {seconds:.1f} s on {device})")
    return 0


def add_token_commands(sub) -> None:
    from .masked import MASKING_SCHEDULES
    from .masked_training import KINDS, TOKEN_DATASETS
    from .pretrained import TOKEN_PRETRAINED

    t = sub.add_parser("train-tokens", help="train a masked-diffusion (or autoregressive) token model: digits or names")
    t.add_argument("--data", required=True, choices=TOKEN_DATASETS,
                   help="mnist: digits quantised to --levels grey levels; surnames: the shipped name list")
    t.add_argument("--kind", default="masked", choices=KINDS, help="masked diffusion, or the autoregressive baseline "
                                                                   "(surnames only) (default masked)")
    t.add_argument("--levels", type=integer(2, 256), help="grey levels of the digits, in [2, 256] (default 4); mnist only")
    t.add_argument("--names", metavar="FILE", help="a text file of names, one a line, a-z, at most 11 letters "
                                                   "(default: the shipped surnames); surnames only")
    t.add_argument("--network-kwargs", metavar="JSON",
                   help='network arguments, e.g. \'{"width": 96, "depth": 3}\' (names) or \'{"base": 16}\' (digits)')
    t.add_argument("--schedule", choices=MASKING_SCHEDULES, help="masking schedule alpha_t (default linear); masked only")
    t.add_argument("--weighting", choices=("elbo", "none"),
                   help="elbo: the likelihood bound's weight -alpha'/(1 - alpha); none: the mean over masked tokens "
                        "(default elbo); masked only")
    t.add_argument("--steps", type=integer(1), help="optimizer steps in all, >= 1 (default 3000; unlimited with --minutes)")
    t.add_argument("--minutes", type=number(0, lower_open=True), help="stop after this many minutes, > 0, checkpointed")
    t.add_argument("--batch-size", type=integer(1), default=128, help="rows per step, >= 1 (default 128)")
    t.add_argument("--lr", type=number(0, 1, lower_open=True), default=1e-3,
                   help="AdamW learning rate, in (0, 1] (default 1e-3)")
    t.add_argument("--weight-decay", type=number(0), default=0.01, help="AdamW weight decay, >= 0 (default 0.01)")
    t.add_argument("--warmup", type=integer(0), default=0, help="learning-rate warm-up steps, >= 0 (default 0)")
    t.add_argument("--lr-decay", default="constant", choices=["constant", "cosine"], help="(default constant)")
    t.add_argument("--ema-decay", type=number(0, 1, upper_open=True), default=0.999,
                   help="decay of the EMA of the weights, in [0, 1) (default 0.999)")
    t.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="bf16 autocast (default fp32)")
    t.add_argument("--checkpoint-every", type=integer(1), default=500,
                   help="write OUT/last.pt every this many steps, >= 1 (default 500), and at the end")
    t.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help=f"random seed, in [0, {SEED_MAX}] (default 0)")
    t.add_argument("--limit", type=integer(1), help="use only the first N training rows, an integer >= 1")
    t.add_argument("--data-root", metavar="FOLDER", help="MNIST's data root (default: $DIFFUSION_LIB_DATA); mnist only")
    t.add_argument("--device", type=device_name, help="cpu, cuda, cuda:N or mps (default cpu)")
    t.add_argument("--threads", type=threads, help=f"torch CPU threads, in [1, {os.cpu_count()}] (default: torch's)")
    t.add_argument("--out", required=True, metavar="FOLDER", help="output folder; OUT/last.pt is the checkpoint")
    t.add_argument("--fresh", action="store_true", help="ignore OUT/last.pt and start from scratch (overwrites it)")
    t.set_defaults(func=_train_tokens)

    s = sub.add_parser("sample-tokens", help="sample a token model: digits to a PNG, names to a text file")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH", help="a checkpoint written by `train-tokens`")
    src.add_argument("--pretrained", choices=sorted(TOKEN_PRETRAINED), help="a shipped token model")
    s.add_argument("--sampler", choices=TOKEN_SAMPLERS,
                   help="masked models: ancestral, confidence (default) or fixed-order; autoregressive models: "
                        "autoregressive")
    s.add_argument("--steps", type=integer(1), help="unmasking steps K, >= 1 (default 16); ancestral and confidence only")
    s.add_argument("--temperature", type=number(0), default=1.0, help="softmax temperature, >= 0 (default 1)")
    s.add_argument("--choice-temperature", type=number(0),
                   help="MaskGIT's noisy choice of what to reveal, >= 0 (default 0: greedy, LLaDA's rule); confidence only")
    s.add_argument("--n", type=integer(1, 100_000), default=64, help="samples, in [1, 100000] (default 64)")
    s.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help=f"random seed, in [0, {SEED_MAX}] (default 0)")
    s.add_argument("--device", type=device_name, help="cpu, cuda, cuda:N or mps (default cpu)")
    s.add_argument("--threads", type=threads, help=f"torch CPU threads, in [1, {os.cpu_count()}] (default: torch's)")
    s.add_argument("--out", required=True, metavar="FILE", help="FILE.png for digits, FILE.txt for names")
    s.set_defaults(func=_sample_tokens)
