"""Measure notebook 14's token models: masked diffusion against its autoregressive baseline on surnames, and the
masked-diffusion digits against the real quantised digits. Prints tables and writes the numbers as JSON (the
model cards' scores, which notebook 14 and benchmarks/run.py's `masked` section read).

    python benchmarks/masked_diffusion.py names --masked runs/names_masked/last.pt --ar runs/names_ar/last.pt \
        --json diffusion_lib/weights/masked_names.json
    python benchmarks/masked_diffusion.py digits --checkpoint runs/digits_masked/last.pt --n 500 \
        --json diffusion_lib/weights/masked_digits.json

names: bits per character on 2,000 held-out surnames (the first of tokens.split_names's 10%, seed 0): the autoregressive model's
exact -log2 p, the masked model's continuous-time bound and its K-step bound (the bound of the K-step ancestral
sampler); then samples of every sampler at every K: network evaluations (NFE) per sample, seconds, the share of
well-formed names (letters, then only end marks), the share of novel ones (in neither split of the list), and their
bits per character under the autoregressive model (how typical they look to it: lower is more name-like, but a
model that repeats "smith" would score well, so read it with the novel and distinct shares).
Bits per character count a name's letters and its end mark; the padding after it is modelled by both models (a
sequence of 12 tokens), its cost is included in both totals.

digits: confident share, Frechet distance and effective classes (diffusion_lib.metrics, against the MNIST test
set's features) of decoded samples at K steps for the ancestral sampler, the greedy confidence order (LLaDA's rule)
and MaskGIT's noisy confidence order (choice temperature 1), beside real training digits, quantised the same way and
unquantised, scored at the same n.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from diffusion_lib import masked
from diffusion_lib.checkpoints import load_checkpoint
from diffusion_lib.masked_training import token_model_from_checkpoint
from diffusion_lib.tokens import END, characters, decode_names, encode_names, load_names, split_names

NAME_STEPS = (1, 2, 3, 4, 6, 12)
DIGIT_STEPS = (8, 16, 64, 256)
MASKGIT_CHOICE_TEMPERATURE = 1.0   # "maskgit": the confidence order with MaskGIT's noisy choice (masked.py)
DIGIT_SAMPLERS = ("maskgit:8,16,64,256", "ancestral:8,16,64", "confidence:16")


def load(path):
    checkpoint = load_checkpoint(path)
    return token_model_from_checkpoint(checkpoint), checkpoint


def well_formed(tokens: torch.Tensor) -> torch.Tensor:
    """(N,) bool: at least one letter, and nothing but end marks after the first end mark."""
    is_end = tokens == END
    first = torch.where(is_end.any(1), is_end.float().argmax(1), torch.full_like(tokens[:, 0], tokens.shape[1]))
    after = torch.arange(tokens.shape[1])[None] >= first[:, None]
    return (first > 0) & (~after | is_end).all(1)


def batched(fn, x: torch.Tensor, size: int = 2000) -> torch.Tensor:
    return torch.cat([fn(chunk) for chunk in x.split(size)])


def names_section(args) -> dict:
    masked_net, masked_ckpt = load(args.masked)
    ar_net, ar_ckpt = load(args.ar)
    names = load_names()
    training, held = split_names(names)
    known = set(names)
    held = held[:args.held]                        # the first of the held-out split (random order already)
    x = encode_names(held)                                                      # (N, 12)
    chars = int(characters(x).sum())
    mask_id, g = masked_net.vocab_size, torch.Generator().manual_seed(0)
    params = sum(p.numel() for p in masked_net.parameters())
    result = {"held_out_names": len(held), "held_out_characters": chars, "parameters": params,
              "masked_step": masked_ckpt["step"], "ar_step": ar_ckpt["step"]}

    def bpc(nats: torch.Tensor) -> float:
        return float(nats.double().sum() / chars / math.log(2))

    with torch.no_grad():
        ar = bpc(batched(lambda c: masked.autoregressive_nll(ar_net, c, ar_net.vocab_size), x))
        cont = bpc(batched(lambda c: masked.continuous_nelbo(masked_net, c, mask_id, n_times=args.n_times,
                                                             generator=g), x))
        discrete = {k: bpc(batched(lambda c: masked.discrete_nelbo(masked_net, c, mask_id, k, generator=g), x))
                    for k in NAME_STEPS}
    result.update(ar_bits_per_char=ar, masked_continuous_bits_per_char=cont,
                  masked_discrete_bits_per_char={str(k): v for k, v in discrete.items()})
    print(f"held-out {len(held):,} names, {chars:,} characters; AR exact {ar:.3f} bits/char; masked continuous bound "
          f"{cont:.3f}; K-step bounds " + ", ".join(f"K={k}: {v:.3f}" for k, v in discrete.items()), flush=True)

    rows = []

    def score(label, sampler, k, draw):
        torch.manual_seed(0)
        start = time.monotonic()
        last = None
        for last in draw():
            pass
        seconds = time.monotonic() - start
        tokens = last.x_s
        ok = well_formed(tokens)
        decoded = decode_names(tokens)
        novel = sum(1 for n, good in zip(decoded, ok.tolist()) if good and n not in known) / len(decoded)
        with torch.no_grad():
            judged = masked.autoregressive_nll(ar_net, tokens.clamp(max=END), ar_net.vocab_size)
        row = {"model": label, "sampler": sampler, "steps": k, "nfe": last.nfe, "n": tokens.shape[0],
               "seconds": round(seconds, 2), "well_formed": float(ok.float().mean()), "novel": novel,
               "distinct": len(set(decoded)) / len(decoded),
               "ar_bits_per_char": float(judged.double().sum() / characters(tokens).sum() / math.log(2)),
               "examples": decoded[:12]}
        rows.append(row)
        print({k: v for k, v in row.items() if k != "examples"}, " ".join(row["examples"]), flush=True)

    n, L = args.n, x.shape[1]
    score("autoregressive", "autoregressive", L, lambda: masked.autoregressive_sample_progressive(
        ar_net, n, L, ar_net.vocab_size, torch.Generator().manual_seed(0)))
    score("masked", "fixed-order", L, lambda: masked.fixed_order_unmask_progressive(
        masked_net, masked.all_masked(n, (L,), mask_id), mask_id, generator=torch.Generator().manual_seed(0)))
    for k in NAME_STEPS:
        for sampler, fn in (("ancestral", masked.ancestral_unmask_progressive),
                            ("confidence", masked.confidence_unmask_progressive)):
            score("masked", sampler, k, lambda: fn(masked_net, masked.all_masked(n, (L,), mask_id), mask_id, k,
                                                   generator=torch.Generator().manual_seed(0)))
    result["samples"] = rows
    return result


def digits_section(args) -> dict:
    from diffusion_lib.data import load_mnist
    from diffusion_lib.measure.metrics import load_classifier, mnist_test_features, score_samples
    from diffusion_lib.tokens import dequantise, quantise

    net, ckpt = load(args.checkpoint)
    levels, mask_id = ckpt["data"]["levels"], net.vocab_size
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    images, _ = load_mnist(train=True)
    idx = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(0))[:args.n]
    keep = ("confident_share", "frechet_distance", "effective_classes")
    real = {k: v for k, v in score_samples(images[idx], classifier, reference).items() if k in keep}
    real_q = {k: v for k, v in score_samples(dequantise(quantise(images[idx], levels), levels), classifier,
                                             reference).items() if k in keep}
    print(f"real training digits (n={args.n}): {real}; quantised to {levels} levels: {real_q}", flush=True)
    result = {"levels": levels, "n": args.n, "step": ckpt["step"], "parameters": sum(p.numel() for p in net.parameters()),
              "real": real, "real_quantised": real_q, "samples": []}
    samplers = {"ancestral": masked.ancestral_unmask_progressive, "confidence": masked.confidence_unmask_progressive,
                "maskgit": functools.partial(masked.confidence_unmask_progressive,
                                             choice_temperature=MASKGIT_CHOICE_TEMPERATURE)}
    for spec in args.samplers:
        sampler, _, ks = spec.partition(":")
        fn = samplers[sampler]
        for k in (int(v) for v in ks.split(",")):
            start, last = time.monotonic(), None
            tokens = []
            for chunk in range(0, args.n, args.batch):
                b = min(args.batch, args.n - chunk)
                for last in fn(net, masked.all_masked(b, (28, 28), mask_id), mask_id, k,
                               generator=torch.Generator().manual_seed(chunk)):
                    pass
                tokens.append(last.x_s)
            seconds = time.monotonic() - start
            s = score_samples(dequantise(torch.cat(tokens), levels), classifier, reference)
            row = {"sampler": sampler, "steps": k, "nfe": k, "n": args.n, "seconds": round(seconds, 1),
                   **{key: s[key] for key in keep}, "class_histogram": s["class_histogram"],
                   "share_of_real_quantised": s["confident_share"] / real_q["confident_share"]}
            result["samples"].append(row)
            print(row, flush=True)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("names")
    a.add_argument("--masked", required=True)
    a.add_argument("--ar", required=True)
    a.add_argument("--n", type=int, default=1000, help="samples per sampler setting")
    a.add_argument("--n-times", type=int, default=16, help="times t per name for the continuous bound")
    a.add_argument("--held", type=int, default=2000, help="held-out names scored (the first of the split)")
    d = sub.add_parser("digits")
    d.add_argument("--checkpoint", required=True)
    d.add_argument("--n", type=int, default=500)
    d.add_argument("--batch", type=int, default=250)
    d.add_argument("--samplers", nargs="*", default=list(DIGIT_SAMPLERS),
                   help="SAMPLER:K1,K2,... with SAMPLER ancestral, confidence (greedy, LLaDA) or maskgit (noisy choice)")
    for q in (a, d):
        q.add_argument("--threads", type=int)
        q.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    result = names_section(args) if args.what == "names" else digits_section(args)
    result["command"] = "python benchmarks/masked_diffusion.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result["seconds"] = round(time.monotonic() - start)
    result["load_average"] = [round(v, 1) for v in os.getloadavg()]
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
