"""Latent diffusion on MNIST, the runs behind notebook 13: the autoencoder, then flow matching in its latent.

    OMP_NUM_THREADS=1 python benchmarks/latent_diffusion.py autoencoder --steps 1500 --out RUNS/autoencoder.pt
    OMP_NUM_THREADS=1 python benchmarks/latent_diffusion.py latent --autoencoder RUNS/autoencoder.pt \
        --conditional --t-logit-normal 0 1 --minutes 25 --out RUNS/latent_dit
    OMP_NUM_THREADS=1 python benchmarks/latent_diffusion.py decoder --checkpoint RUNS/latent_dit/latent.pt \
        --sigma-max 0.4 --out RUNS/latent_dit/latent_robust.pt
    OMP_NUM_THREADS=1 python benchmarks/latent_diffusion.py evaluate --checkpoint RUNS/latent_dit/latent_robust.pt \
        --n 500 --w 1 1.5
    OMP_NUM_THREADS=1 python benchmarks/latent_diffusion.py ship --autoencoder RUNS/autoencoder.pt \
        --latent RUNS/latent_dit/latent_robust.pt --eval RUNS/eval.json [--compare CHECKPOINT EVAL_JSON]

`autoencoder` trains diffusion_lib.autoencoder.Autoencoder and writes it with its latent statistics (a
diffusion_lib checkpoint: loads with weights_only=True). `latent` encodes the training set, standardises it with
the measured scale factor and trains a DiT (patch 1) with flow matching on the latents through the library's own
training loop (diffusion_lib.train, unchanged); with --conditional the DiT is class-conditional and trained on the
digits' labels with label dropout. Its checkpoint carries the autoencoder record, so it samples and decodes by
itself (`python -m diffusion_lib sample --checkpoint ...`). `decoder` fine-tunes the decoder that a latent checkpoint
carries on noisy latents (diffusion_lib.autoencoder.fine_tune_decoder; the encoder, and so the latent model,
unchanged) and writes a copy of the checkpoint with it. `evaluate` samples with flow Euler (a conditional model with
the labels 0..9 in turn, at each guidance weight --w), decodes and scores the digits with the course metric, and
times 64 digits against the shipped pixel U-Net (`unet_flow`) at the same number of steps. Each prints one line per
result and writes JSON with --json. `ship` copies an evaluated run into diffusion_lib/weights/ with its card record.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from diffusion_lib.autoencoder import (LatentCodec, codec_from_record, encode_all, fine_tune_decoder,
                                       latent_statistics, to_latent, train_autoencoder)
from diffusion_lib.checkpoints import load_checkpoint, save_checkpoint
from diffusion_lib.data import load_mnist
from diffusion_lib.measure.inspection import git_commit, machine_description


def load_average() -> str:
    import os
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def command() -> str:
    return "OMP_NUM_THREADS=1 python benchmarks/latent_diffusion.py " + shlex.join(sys.argv[1:])


# ----------------------------------------------------------------------------- the autoencoder

def reconstruction_error_on_test_digits(autoencoder, test_images: torch.Tensor, n: int = 2000) -> float:
    """Mean squared reconstruction error per pixel on the first n test digits (the cards' number)."""
    with torch.no_grad():
        return float((autoencoder(test_images[:n]) - test_images[:n]).pow(2).mean())


def run_autoencoder(args) -> int:
    images, _ = load_mnist(train=True)
    test_images, _ = load_mnist(train=False)
    start = time.monotonic()
    autoencoder, history = train_autoencoder(images, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                             penalty=args.penalty, width=args.width,
                                             latent_channels=args.latent_channels, seed=args.seed,
                                             callback=lambda s, h: s % 100 == 0 and print(
                                                 f"step {s}: reconstruction {sum(h['reconstruction'][-100:]) / 100:.4f}",
                                                 flush=True))
    seconds = time.monotonic() - start
    latents = encode_all(autoencoder, images)
    stats = latent_statistics(latents)
    test_error = reconstruction_error_on_test_digits(autoencoder, test_images)
    codec = LatentCodec(autoencoder, stats["mean"], stats["scale"])
    record = {"kind": "autoencoder", "arch": autoencoder.arch, "autoencoder": codec.record(), "statistics": stats,
              "history": {k: v[::10] for k, v in history.items()},
              "card": {"command": command(), "commit": git_commit(), "steps": args.steps,
                       "train_seconds": round(seconds, 1), "machine": machine_description("cpu"),
                       "load": load_average(), "test_reconstruction_mse": test_error,
                       "penalty": args.penalty, "batch_size": args.batch_size, "lr": args.lr}}
    save_checkpoint(record, args.out)
    print(f"autoencoder: {args.steps} steps in {seconds / 60:.1f} min; test reconstruction MSE {test_error:.4f}; "
          f"latent std {stats['std']:.3f}, scale {stats['scale']:.4f}; wrote {args.out}", flush=True)
    return 0


def load_codec(path) -> LatentCodec:
    checkpoint = load_checkpoint(path)
    return codec_from_record(checkpoint["autoencoder"])


# ----------------------------------------------------------------------------- flow matching in the latent

def encoded_training_set(codec: LatentCodec) -> tuple[torch.Tensor, torch.Tensor]:
    """The MNIST training images encoded and standardised, (60000, C_z, 7, 7), and their labels (60000,)."""
    images, labels = load_mnist(train=True)
    return to_latent(encode_all(codec.autoencoder, images), codec.mean, codec.scale), labels


def run_latent(args) -> int:
    from diffusion_lib.training import TrainConfig, train
    codec = load_codec(args.autoencoder)
    latents, labels = encoded_training_set(codec)
    print(f"latents {tuple(latents.shape)}: mean {float(latents.mean()):.3f}, std {float(latents.std()):.3f}",
          flush=True)
    kwargs = {"image_shape": list(codec.latent_shape), "patch": 1, "width": args.width, "depth": args.depth,
              "heads": args.heads, **({"num_classes": 10} if args.conditional else {})}
    if args.backbone == "unet":
        raise SystemExit("the U-Net down-samples 28 -> 14 -> 7 and does not fit a 7 x 7 latent; use --backbone dit")
    times = {} if args.t_logit_normal is None else {"t_mean": args.t_logit_normal[0], "t_std": args.t_logit_normal[1]}
    config = TrainConfig(backbone="dit", backbone_kwargs=kwargs, objective="flow", objective_kwargs=times, steps=args.steps,
                         label_dropout=args.label_dropout,
                         max_minutes=args.minutes, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup,
                         lr_decay="cosine", checkpoint_every=250, seed=args.seed)
    start = time.monotonic()
    result = train(config, latents, labels if args.conditional else None, out_dir=args.out, progress=False,
                   callback=lambda tr: tr.step % 100 == 0 and print(
                       f"step {tr.step}: loss {sum(tr.history['loss'][-100:]) / 100:.4f} "
                       f"({time.monotonic() - start:.0f} s)", flush=True))
    seconds = time.monotonic() - start
    checkpoint = load_checkpoint(result.checkpoint)
    checkpoint.pop("format")
    checkpoint["autoencoder"] = codec.record()
    checkpoint["card"] = {"command": command(), "commit": git_commit(), "steps": result.step,
                          "train_seconds": round(seconds, 1), "machine": machine_description("cpu"),
                          "load": load_average(), "autoencoder": str(args.autoencoder)}
    out = Path(args.out) / "latent.pt"
    save_checkpoint(checkpoint, out)
    print(f"latent DiT: {result.step} steps in {seconds / 60:.1f} min; wrote {out}", flush=True)
    return 0


def run_decoder(args) -> int:
    checkpoint = load_checkpoint(args.checkpoint)
    checkpoint.pop("format")
    if "autoencoder" not in checkpoint:
        raise SystemExit(f"{args.checkpoint} carries no autoencoder; give a latent model written by `latent`")
    codec = codec_from_record(checkpoint["autoencoder"])
    images, _ = load_mnist(train=True)
    test_images, _ = load_mnist(train=False)
    start = time.monotonic()
    fine_tune_decoder(codec, images, steps=args.steps, sigma_max=args.sigma_max, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed,
                      callback=lambda s, h: s % 100 == 0 and print(
                          f"step {s}: loss {sum(h['loss'][-100:]) / 100:.4f}", flush=True))
    seconds = time.monotonic() - start
    test_error = reconstruction_error_on_test_digits(codec.autoencoder, test_images)
    checkpoint["autoencoder"] = codec.record()
    checkpoint.setdefault("card", {})["decoder"] = {
        "command": command(), "commit": git_commit(), "steps": args.steps, "sigma_max": args.sigma_max,
        "batch_size": args.batch_size, "lr": args.lr, "seconds": round(seconds, 1), "load": load_average(),
        "test_reconstruction_mse": test_error}
    save_checkpoint(checkpoint, args.out)
    print(f"decoder: {args.steps} steps on latents with noise up to {args.sigma_max} in {seconds / 60:.1f} min; "
          f"test reconstruction MSE {test_error:.4f}; wrote {args.out}", flush=True)
    return 0


# ----------------------------------------------------------------------------- evaluation

def best_seconds(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.monotonic()
        fn()
        best = min(best, time.monotonic() - start)
    return best


def run_evaluate(args) -> int:
    from diffusion_lib.checkpoints import model_from_checkpoint
    from diffusion_lib.autoencoder import sample_latent_images
    from diffusion_lib.measure.metrics import load_classifier, mnist_test_features, score_samples
    from diffusion_lib.pretrained import load_pretrained, pretrained_schedule
    from diffusion_lib.samplers import final, flow_euler_sample_progressive, sample_noise
    from diffusion_lib.schedules import make_schedule

    checkpoint = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(checkpoint)
    codec = codec_from_record(checkpoint["autoencoder"])
    schedule = make_schedule(checkpoint["schedule"]["name"], checkpoint["schedule"]["T"])
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    results = {"command": command(), "commit": git_commit(), "machine": machine_description("cpu"),
               "load": load_average(), "scores": []}
    conditional = model.num_classes is not None
    if not conditional and args.w != [1.0]:
        raise SystemExit(f"--w needs a class-conditional latent model, and {args.checkpoint} is unconditional; "
                         "drop --w")
    labels = torch.arange(args.n) % 10 if conditional else None          # conditional: the classes 0..9 in turn
    for w in args.w:
        for steps in args.steps:
            start = time.monotonic()
            images = sample_latent_images(model, codec, schedule, args.n, steps, seed=0, labels=labels, w=w)
            seconds = time.monotonic() - start
            s = score_samples(images, classifier, reference, labels)
            guided = conditional and w != 1                              # two evaluations a step
            row = {"sampler": "flow-euler", "steps": steps, "nfe": 2 * steps if guided else steps,
                   **({"w": w, "guided_accuracy": s["guided_accuracy"]} if conditional else {}), "seed": 0,
                   "n": args.n, "confident_share": s["confident_share"], "frechet_distance": s["frechet_distance"],
                   "effective_classes": s["effective_classes"], "sampling_seconds": round(seconds, 1)}
            results["scores"].append(row)
            print(row, flush=True)
    # speed: 64 digits, the latent model (sampling + decoding; a conditional one at w = 1, one evaluation a step)
    # against the shipped pixel U-Net at the same steps
    pixel, pixel_schedule = load_pretrained("unet_flow"), pretrained_schedule("unet_flow")
    x_pixel = sample_noise(64, pixel.image_shape, generator=torch.Generator().manual_seed(0))
    speed = []
    for steps in args.speed_steps:
        latent_s = best_seconds(lambda: sample_latent_images(model, codec, schedule, 64, steps, seed=0,
                                                             labels=None if labels is None else labels[:64]),
                                args.repeats)
        pixel_s = best_seconds(lambda: final(flow_euler_sample_progressive(pixel, x_pixel, pixel_schedule, steps)),
                               args.repeats)
        speed.append({"steps": steps, "repeats": args.repeats, "latent_seconds": round(latent_s, 3),
                      "pixel_unet_seconds": round(pixel_s, 3),
                      "speed_up": round(pixel_s / latent_s, 2)})
        print(speed[-1], flush=True)
    results["speed_64"] = speed
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


# ----------------------------------------------------------------------------- shipping

def compared_runs(pairs) -> list[dict]:
    """The records of other latent runs shown beside the shipped one (e.g. the same recipe without labels): each
    (checkpoint, evaluation JSON) pair gives its training command, steps, minutes, architecture and scores."""
    runs = []
    for checkpoint_path, eval_path in pairs or []:
        checkpoint, evaluation = load_checkpoint(checkpoint_path), json.loads(Path(eval_path).read_text())
        card = checkpoint["card"]
        runs.append({"train_command": card["command"], "commit": card["commit"], "steps": card["steps"],
                     "train_minutes": round(card["train_seconds"] / 60, 1), "train_load": card["load"],
                     "architecture": checkpoint["arch"], "decoder": card.get("decoder"),
                     "command": evaluation["command"], "scores": evaluation["scores"]})
    return runs


def run_ship(args) -> int:
    """Copy the evaluated runs into diffusion_lib/weights/: the autoencoder and the latent model (EMA weights only,
    with the autoencoder it carries), each with its record (<name>.json) for the model card."""
    from diffusion_lib.pretrained import export_for_sampling
    out = Path(args.weights)
    ae = load_checkpoint(args.autoencoder)
    save_checkpoint({k: ae[k] for k in ("kind", "arch", "autoencoder", "statistics", "card")}, out / "autoencoder.pt")
    (out / "autoencoder.json").write_text(json.dumps({"model": "autoencoder", **ae["card"],
                                                      "statistics": ae["statistics"]}, indent=1) + "\n")
    export_for_sampling(args.latent, out / "latent_dit.pt")
    latent, evaluation = load_checkpoint(args.latent), json.loads(Path(args.eval).read_text())
    card = latent["card"]
    (out / "latent_dit.json").write_text(json.dumps({
        "model": "latent_dit", "command": evaluation["command"], "train_command": card["command"],
        "commit": card["commit"], "steps": card["steps"], "train_minutes": round(card["train_seconds"] / 60, 1),
        "machine": card["machine"], "train_load": card["load"], "eval_load": evaluation["load"],
        "architecture": latent["arch"], "decoder": card.get("decoder"), "scores": evaluation["scores"],
        "scores_autoencoder_decoder": (json.loads(Path(args.eval_plain).read_text())["scores"]
                                       if args.eval_plain else None),
        "speed_64": evaluation["speed_64"], "compared": compared_runs(args.compare)},
        indent=1) + "\n")
    for name in ("autoencoder.pt", "latent_dit.pt"):
        print(f"{out / name}: {(out / name).stat().st_size / 2 ** 20:.2f} MiB")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("autoencoder", help="train the autoencoder")
    a.add_argument("--steps", type=int, default=1500)
    a.add_argument("--batch-size", type=int, default=128)
    a.add_argument("--lr", type=float, default=2e-3)
    a.add_argument("--penalty", type=float, default=1e-4)
    a.add_argument("--width", type=int, default=16)
    a.add_argument("--latent-channels", type=int, default=4)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", required=True)
    a.set_defaults(func=run_autoencoder)
    l = sub.add_parser("latent", help="train a flow-matching DiT on the autoencoder's latents")
    l.add_argument("--autoencoder", required=True)
    l.add_argument("--backbone", default="dit", choices=["dit", "unet"])
    l.add_argument("--width", type=int, default=128)
    l.add_argument("--depth", type=int, default=4)
    l.add_argument("--heads", type=int, default=4)
    l.add_argument("--steps", type=int, default=4000)
    l.add_argument("--minutes", type=float, default=None)
    l.add_argument("--batch-size", type=int, default=128)
    l.add_argument("--lr", type=float, default=1e-3)
    l.add_argument("--warmup", type=int, default=200)
    l.add_argument("--seed", type=int, default=0)
    l.add_argument("--conditional", action="store_true",
                   help="a class-conditional DiT (the digit's label, dropped to the null label at --label-dropout)")
    l.add_argument("--label-dropout", type=float, default=0.1)
    l.add_argument("--t-logit-normal", type=float, nargs=2, metavar=("MEAN", "STD"),
                   help="flow times s = sigmoid(MEAN + STD n) (Stable Diffusion 3's 0 1), not uniform")
    l.add_argument("--out", required=True)
    l.set_defaults(func=run_latent)
    d = sub.add_parser("decoder", help="fine-tune a latent checkpoint's decoder on noisy latents")
    d.add_argument("--checkpoint", required=True)
    d.add_argument("--sigma-max", type=float, default=0.4, help="noise up to this, in standardised latent units")
    d.add_argument("--steps", type=int, default=1500)
    d.add_argument("--batch-size", type=int, default=128)
    d.add_argument("--lr", type=float, default=1e-3)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", required=True)
    d.set_defaults(func=run_decoder)
    e = sub.add_parser("evaluate", help="score and time a latent model")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--n", type=int, default=500)
    e.add_argument("--steps", type=int, nargs="+", default=[20])
    e.add_argument("--w", type=float, nargs="+", default=[1.0],
                   help="a class-conditional model: guidance weights to score (1: its conditional velocity, "
                        "the default)")
    e.add_argument("--speed-steps", type=int, nargs="+", default=[20])
    e.add_argument("--repeats", type=int, default=1, help="timing runs of each model, the best kept (default 1)")
    e.add_argument("--json")
    e.set_defaults(func=run_evaluate)
    h = sub.add_parser("ship", help="copy the evaluated runs into diffusion_lib/weights/ with their records")
    h.add_argument("--autoencoder", required=True)
    h.add_argument("--latent", required=True)
    h.add_argument("--eval", required=True)
    h.add_argument("--eval-plain", help="the evaluation of the same latent model with autoencoder.pt's own decoder "
                                        "(when `decoder` fine-tuned the one it carries)")
    h.add_argument("--compare", nargs=2, action="append", metavar=("CHECKPOINT", "EVAL_JSON"),
                   help="another latent run to record in the card beside the shipped one (repeatable)")
    h.add_argument("--weights", default=str(Path(__file__).resolve().parent.parent / "diffusion_lib" / "weights"))
    h.set_defaults(func=run_ship)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
