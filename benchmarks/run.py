"""Benchmarks of diffusion_lib on this machine: prints markdown tables and writes them to benchmarks/RESULTS.md.

    python benchmarks/run.py                          # every section, full sizes (18 minutes on 2 CPU cores)
    python benchmarks/run.py --quick                  # every section, small sizes (a few minutes)
    python benchmarks/run.py --sections nfe guidance cards
    python benchmarks/run.py --sections cards --models autoencoder latent_dit --out benchmarks/RESULTS_latent.md

With --threads 2 on a quiet 2-core AMD EPYC (AVX512-BF16): 17.6 minutes, of which the sampling section 5.6, the
guidance sweep of both conditional models 7.3 and the nfe section 2.5.

Sections:
    reference    what real MNIST scores with the metric's classifier (the targets for generated digits)
    throughput   training images/s of every backbone (batch 128, forward + backward + AdamW step)
    sampling     wall time for 64 images and quality per sampler and step count, shipped unconditional U-Net
    nfe          quality against network evaluations (NFE 5, 10, 20, 50): the eps U-Net under DDIM and Heun,
                 the flow-matching U-Net (`unet_flow`) under flow Euler and flow Heun
    guidance     guided accuracy, confident share and class diversity over the guidance weight w, shipped conditional
                 U-Net (DDIM 50) and conditional flow-matching U-Net (`unet_flow_cond`, flow Euler 50, CFG on the velocity)
    few_step     quality at 1, 2, 4 and 8 network evaluations: the teachers (`unet_flow` flow Euler and Heun, `unet`
                 DDIM, `unet_flow_cond` at w = 1) and the shipped few-step students (reflow, MeanFlow), with the
                 seconds for 64 digits and the copying check on one-step samples (benchmarks/few_step.py table_rows)
    cards        the numbers of the model cards (diffusion_lib/weights/<name>.json) reproduced, each row with its sampler
    masked       notebook 14's token models (masked_names against ar_names; masked_digits against the real quantised
                 digits), by benchmarks/masked_diffusion.py, beside their cards' numbers

A shipped model whose file is not in diffusion_lib/weights/ is skipped with a note.

Not a test: numbers depend on the machine and on what else runs on it (the load average is printed).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from evaluate import check_sampler, evaluate, generate  # noqa: E402

from diffusion_lib.backbones import IMAGE_BACKBONES, build_backbone, count_parameters  # noqa: E402
from diffusion_lib.measure.metrics import load_classifier, mnist_test_features, reference_scores  # noqa: E402
from diffusion_lib.measure.sweeps import SAMPLER_LABELS, nfe_of, steps_for_nfe  # noqa: E402
from diffusion_lib.pretrained import (AUTOENCODERS, PRETRAINED, WEIGHTS_DIR, load_pretrained,  # noqa: E402
                                      load_pretrained_codec, pretrained_objective, pretrained_schedule)
from diffusion_lib.schedules import make_schedule  # noqa: E402
from diffusion_lib.training import diffusion_loss  # noqa: E402

SECTIONS = ("reference", "throughput", "sampling", "nfe", "guidance", "few_step", "cards", "masked")
FEW_STEP_NFES = (1, 2, 4, 8)
# evaluate.py's --sampler names and the names of diffusion_lib.sweeps (NFE_SAMPLERS, FLOW_SAMPLERS), in the tables
SAMPLER_NAMES = SAMPLER_LABELS      # the cards' sampler names -> the tables'
NFES = (5, 10, 20, 50)
NFE_MODELS = (("unet", ("ddim", "heun")), ("unet_flow", ("flow-euler", "flow-heun")))
GUIDED_MODELS = (("unet_cond", "ddim"), ("unet_flow_cond", "flow-euler"))     # 50 steps each


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = "load average %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"Python {platform.python_version()}; {load}")


def has_weights(name: str) -> bool:
    """Whether the file of the registered model `name` is in diffusion_lib/weights/."""
    return (WEIGHTS_DIR / PRETRAINED[name].file).exists()


def absent_note(names) -> str:
    missing = [f"`{n}` ({PRETRAINED[n].file})" for n in names if not has_weights(n)]
    return f"\n\nSkipped, its file is not in diffusion_lib/weights/: {', '.join(missing)}." if missing else ""


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- sections

def section_reference(args) -> str:
    classifier = load_classifier()
    r = reference_scores(classifier, n=args.n)
    rows = [["classifier accuracy, MNIST test set (10,000)", f"{r['test_accuracy']:.4f}"],
            ["confident share (p > 0.9), MNIST test set", f"{r['test_confident_share']:.3f}"],
            ["effective classes, MNIST test set", f"{r['test_effective_classes']:.2f}"],
            [f"Frechet distance, {r['train_vs_test_n']} training images vs test set",
             f"{r['train_vs_test_frechet_distance']:.2f}"]]
    return "## Real data (the targets)\n\n" + table(["quantity", "value"], rows)


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_mhz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def nominal_fp32_peak(threads: int, fma_units: int = 2) -> tuple[float | None, str]:
    """The CPU's nominal fp32 peak in GFLOP/s for `threads` cores, and the formula with its inputs:
    cores x fp32 lanes per SIMD register x FMA units x 2 (an FMA is two FLOPs) x clock."""
    flags, mhz = cpu_flags(), cpu_mhz()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    simd = {16: "AVX-512", 8: "AVX2", 4: "SSE"}[lanes]
    if mhz is None:
        return None, "clock unknown: no nominal peak"
    peak = threads * lanes * fma_units * 2 * mhz / 1000
    extras = ", ".join(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "no AVX512-BF16, no AMX"
    return peak, (f"{threads} cores x {lanes} fp32 lanes ({simd}) x {fma_units} FMA units x 2 x {mhz / 1000:.2f} GHz "
                  f"= {peak:.0f} GFLOP/s nominal fp32 peak ({extras}; a CPU that runs 512-bit instructions as two "
                  "256-bit halves reaches half of it)")


def training_flops_per_image(model, batch_size: int = 8) -> float:
    """FLOPs of one training step's forward and backward pass per image (torch.utils.flop_counter), fp32."""
    from torch.utils.flop_counter import FlopCounterMode

    x0 = torch.rand(batch_size, 1, 28, 28) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        diffusion_loss(model, x0, make_schedule("linear", 1000)).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch_size


def training_step(network, parameters, x0: torch.Tensor, precision: str):
    """One training step on the fixed batch x0 as a zero-argument function: the noise-prediction loss of `network`
    (under bf16 autocast if precision is "bf16"), backward, an AdamW step on `parameters` (lr 1e-3)."""
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    schedule = make_schedule("linear", 1000)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = diffusion_loss(network, x0, schedule)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def training_throughput(name: str, precision: str, batch_size: int, min_seconds: float,
                        **kwargs) -> tuple[int, float, float]:
    """(parameters, images/s, FLOPs per image) of training steps on random batches: loss, backward, AdamW step."""
    torch.manual_seed(0)
    model = build_backbone(name, **kwargs)
    flops = training_flops_per_image(model)
    step = training_step(model, model.parameters(), torch.rand(batch_size, 1, 28, 28) * 2 - 1, precision)
    step()                                                   # warm-up: allocations, kernel selection
    steps, start = 0, time.monotonic()
    while steps < 2 or time.monotonic() - start < min_seconds:
        step()
        steps += 1
    return count_parameters(model), steps * batch_size / (time.monotonic() - start), flops


def section_throughput(args) -> str:
    rows = []
    settings = [(name, {}, "fp32") for name in IMAGE_BACKBONES if name not in ("unet", "mlp")]   # "mlp" is SmolMLP's parent
    unet_widths = [{"base": 32}, {"base": 16}]
    shipped = load_pretrained("unet").arch["kwargs"]
    if all(build_backbone("unet", **w).arch["kwargs"] != shipped for w in unet_widths):   # the shipped width too
        unet_widths.append({k: v for k, v in shipped.items() if v is not None})
    settings += [("unet", w, precision) for w in unet_widths for precision in ("fp32", "bf16")]
    peak, formula = nominal_fp32_peak(torch.get_num_threads())
    print(f"CPU: {machine()}\n{formula}", flush=True)
    for name, kwargs, precision in settings:
        params, rate, flops = training_throughput(name, precision, 128, args.min_seconds, **kwargs)
        label = name + "".join(f" {k}={tuple(v) if isinstance(v, list) else v}" for k, v in kwargs.items())
        achieved = flops * rate / 1e9
        share = f"{100 * achieved / peak:.0f}%" if peak else "?"
        rows.append([label, f"{params:,}", precision, f"{rate:,.0f}", f"{60000 / rate / 60:.1f}", f"{flops / 1e9:.3f}",
                     f"{achieved:.0f}", share])
        print(f"{label}, {precision}: {rate:,.0f} images/s x {flops / 1e9:.3f} GFLOP per image = achieved "
              f"{achieved:.0f} GFLOP/s, {share} of the nominal fp32 peak", flush=True)
    return ("## Training throughput (batch 128, forward + backward + AdamW, random batches)\n\n"
            f"FLOPs counted with torch.utils.flop_counter.FlopCounterMode (fp32 forward + backward; the optimizer's "
            f"few FLOPs per parameter are left out). Peak: {formula}.\n\n"
            + table(["backbone", "parameters", "precision", "images/s", "minutes per epoch (60k)", "GFLOP per image",
                     "achieved GFLOP/s", "share of nominal fp32 peak"], rows))


def sampling_seconds(model, schedule, sampler: str, steps: int, n: int, precision: str = "fp32",
                     repeats: int = 1) -> float:
    """Best wall time of `repeats` runs of a sampler on n images in one batch."""
    best = float("inf")
    for _ in range(repeats):
        start = time.monotonic()
        generate(model, schedule, n, sampler, steps, w=None, seed=0, precision=precision)
        best = min(best, time.monotonic() - start)
    return best


def real_images_row(n: int, classifier, reference) -> list:
    """The scores of n random MNIST training images: what a perfect sampler would get at this n."""
    from diffusion_lib.data import load_mnist
    from diffusion_lib.measure.metrics import score_samples
    images, _ = load_mnist(train=True)
    idx = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(0))[:n]
    s = score_samples(images[idx], classifier, reference)
    return ["real training images", "", n, f"{s['confident_share']:.3f}", f"{s['frechet_distance']:.2f}",
            f"{s['effective_classes']:.2f}"]


_SCORED: dict = {}


def scored(name, model, schedule, classifier, reference, n, steps, w=None, sampler="ddim", precision="fp32", seed=0,
           eta=0.0):
    """evaluate(...) once per setting: the cards section reuses what the sampling, nfe and guidance sections computed."""
    key = (name, n, steps, w, sampler, precision, seed, eta)
    if key not in _SCORED:
        _SCORED[key] = evaluate(model, schedule, classifier, reference, n, steps, w, sampler, seed, precision, eta)
    return _SCORED[key]


def section_sampling(args, classifier, reference) -> str:
    model, schedule = load_pretrained("unet"), pretrained_schedule("unet")
    rows = []
    settings = [("ddpm", 1000, "fp32", None)] + [("ddim", s, "fp32", 0.0) for s in (10, 20, 50, 100)]
    settings += [("ddim", 20, "bf16", 0.0), ("ddim", 50, "fp32", 1.0)]
    for sampler, steps, precision, eta in settings:
        seconds = sampling_seconds(model, schedule, sampler, steps, args.n_time, precision,
                                   repeats=1 if sampler == "ddpm" else 3)
        s = scored("unet", model, schedule, classifier, reference, args.n_sampling, steps, None, sampler, precision,
                   eta=eta or 0.0)
        rows.append([f"{sampler.upper()} {steps}" + (f", eta={eta:g}" if sampler == "ddim" else "")
                     + (", bf16 autocast" if precision == "bf16" else ""),
                     f"{seconds:.2f}", args.n_sampling, f"{s['confident_share']:.3f}", f"{s['frechet_distance']:.2f}",
                     f"{s['effective_classes']:.2f}"])
        print(rows[-1], flush=True)
    rows.append(real_images_row(args.n_sampling, classifier, reference))
    return ("## Sampling with the shipped unconditional U-Net (`unet`)\n\n"
            f"Time: {args.n_time} images in one batch, best of 3 runs (DDPM: 1 run), fp32 unless said. "
            f"Quality: {args.n_sampling} images from seed 0 for every sampler, scored by diffusion_lib.metrics; the "
            "Frechet distance is against the MNIST test set, so compare it with the real-images row of the same n.\n\n"
            + table(["sampler", f"seconds for {args.n_time} images", "n scored", "confident share", "Frechet distance",
                     "effective classes"], rows))


def section_nfe(args, classifier, reference) -> str:
    rows = []
    for name, samplers in NFE_MODELS:
        if not has_weights(name):
            continue
        model, schedule, objective = load_pretrained(name), pretrained_schedule(name), pretrained_objective(name)
        generate(model, schedule, 1, samplers[0], 1)     # warm-up: start-up costs are not charged to the first row
        for sampler in samplers:
            check_sampler(sampler, objective)
            for asked in NFES:
                steps = steps_for_nfe(SAMPLER_NAMES[sampler], asked)
                s = scored(name, model, schedule, classifier, reference, args.n, steps, None, sampler)
                rows.append([f"`{name}`", objective, SAMPLER_NAMES[sampler], steps,
                             nfe_of(SAMPLER_NAMES[sampler], steps), f"{s['sampling_seconds']:.1f}",
                             f"{s['confident_share']:.3f}", f"{s['frechet_distance']:.2f}",
                             f"{s['effective_classes']:.2f}"])
                print(rows[-1], flush=True)
    real = real_images_row(args.n, classifier, reference)
    rows.append([real[0], "", "", "", "", "", *real[3:]])
    return (f"## Quality against network evaluations ({args.n} images from seed 0 per row)\n\n"
            "The same budgets of network evaluations (NFE) for a first- and a second-order solver: DDIM and Heun on "
            "the eps U-Net's probability-flow ODE, flow Euler and flow Heun on the flow-matching U-Net's velocity. "
            "Heun's 2 steps - 1 evaluations can fall one short of the budget. The two networks come from separate "
            "training runs (see their model cards): compare the two samplers of one model first."
            + absent_note(name for name, _ in NFE_MODELS) + "\n\n"
            + table(["model", "objective", "sampler", "steps", "NFE", f"sampling seconds ({args.n} images)",
                     "confident share", "Frechet distance", "effective classes"], rows))


def section_guidance(args, classifier, reference) -> str:
    rows = []
    for name, sampler in GUIDED_MODELS:
        if not has_weights(name):
            continue
        model, schedule = load_pretrained(name), pretrained_schedule(name)
        check_sampler(sampler, pretrained_objective(name))
        for w in args.w:
            s = scored(name, model, schedule, classifier, reference, args.n, 50, w, sampler)
            rows.append([f"`{name}`", f"{SAMPLER_NAMES[sampler]} 50", w, f"{s['guided_accuracy']:.3f}",
                         f"{s['confident_share']:.3f}", f"{s['frechet_distance']:.2f}",
                         f"{s['effective_classes']:.2f}", " ".join(map(str, s["class_histogram"])),
                         f"{s['sampling_seconds']:.0f}"])
            print(rows[-1], flush=True)
    return (f"## Classifier-free guidance sweep ({args.n} images, labels 0..9 in turn)\n\n"
            "`unet_cond` under DDIM 50 (guidance on eps), `unet_flow_cond` under flow Euler 50 (guidance on the "
            "velocity: the same linear combination of the network's conditional and null-label outputs)."
            + absent_note(name for name, _ in GUIDED_MODELS) + "\n\n"
            + table(["model", "sampler", "w", "guided accuracy", "confident share", "Frechet distance",
                     "effective classes", "class histogram (0..9)", "sampling s"], rows))


def few_step_models() -> dict:
    """The teachers and the shipped few-step students (registered models trained from a teacher: the objective
    meanflow, or flow with recorded reflow pairs), as benchmarks/few_step.py table_rows takes them."""
    from few_step import student_entry
    from diffusion_lib.checkpoints import load_checkpoint
    from diffusion_lib.pretrained import pretrained_path
    linear = make_schedule("linear", 1000)
    models = {}
    for name, sampler, w in (("unet_flow", "flow-euler", None), ("unet_flow", "flow-heun", None), ("unet", "ddim", None),
                             ("unet_flow_cond", "flow-euler", 1.0)):
        if has_weights(name):
            models[name + " " * len(models)] = (load_pretrained(name), linear, sampler, w)   # names kept unique
    for name in PRETRAINED:
        if not has_weights(name) or name in AUTOENCODERS:     # an autoencoder is no diffusion network
            continue
        config = load_checkpoint(pretrained_path(name)).get("config") or {}
        if pretrained_objective(name) == "meanflow":       # a conditional one: labels 0..9, its built-in guidance
            w = config.get("teacher_w", 1.0)
            if config.get("teacher") == "unet_flow_cond" and w != 1:   # its teacher guided at that w, two evaluations
                models[f"unet_flow_cond, w = {w:g}"] = (load_pretrained("unet_flow_cond"), linear, "flow-euler", w)
            models[f"{name} (student)"] = student_entry(load_pretrained(name), pretrained_schedule(name), "meanflow")
        elif config.get("pairs"):          # a reflow student, a conditional one with its guidance built in
            models[f"{name} (student)"] = student_entry(load_pretrained(name), pretrained_schedule(name), "flow-euler")
    return models


def section_few_step(args, classifier, reference) -> str:
    from few_step import table_rows
    from diffusion_lib.data import load_mnist
    from diffusion_lib.measure.metrics import classifier_features
    train_images, _ = load_mnist(train=True)
    rows = table_rows(few_step_models(), FEW_STEP_NFES, args.n, classifier, reference, train_images,
                      classifier_features(train_images, classifier))
    lines = []
    for r in rows:
        copy = (f"{r['nearest_pixels_median']} / {r['nearest_features_median']} ({r['distinct_nearest']} distinct)"
                if "nearest_pixels_median" in r else "")
        lines.append([f"`{r['model'].strip().replace(' (student)', '')}`" + (" (student)" if "student" in r["model"] else ""),
                      SAMPLER_NAMES[r["sampler"]] if r["sampler"] in SAMPLER_NAMES else r["sampler"],
                      r["nfe"], "" if r["w"] is None else f"{r['w']:g}", f"{r['confident_share']:.3f}",
                      f"{r['frechet_distance']:.1f}", "" if r["guided_accuracy"] is None else f"{r['guided_accuracy']:.3f}",
                      f"{r['seconds_64']:.3f}",
                      "(emulated: not timed)" if r["seconds_64_bf16"] is None else f"{r['seconds_64_bf16']:.3f}", copy])
    return (f"## Few-step generation: quality at 1, 2, 4 and 8 network evaluations ({args.n} images from seed 0)\n\n"
            "Unconditional rows are scored by confident share and Frechet distance; the conditional teacher at w = 1 "
            "(its conditional velocity, one evaluation a step, labels 0..9 in turn) also by guided accuracy. Seconds for "
            "64 digits: best of 3, fp32 and bf16 autocast. Copying check (students, one evaluation): median distance "
            "of each sample to its nearest training image in pixels / in the classifier's features, and how many "
            "distinct training images are nearest (real test digits: see the reference section's yardstick in "
            "notebook 07; benchmarks/few_step.py prints it).\n\n"
            + table(["model", "sampler", "NFE", "w", "confident share", "Frechet distance", "guided accuracy",
                     "s / 64 digits fp32", "s / 64 bf16", "copying check"], lines))


def card_setting(sampler: str, steps: int, eta: float, n: int, w: float | None) -> str:
    """A card row's setting in words: "DDIM 50, eta=0, n=500, w=3", "flow Euler 50, n=500"."""
    setting = f"{SAMPLER_NAMES[sampler]} {steps}" + (f", eta={eta:g}" if sampler == "ddim" else "") + f", n={n}"
    return setting + (f", w={w:g}" if w is not None else "")


def autoencoder_test_error(name: str, n: int = 2000) -> float:
    """Mean squared reconstruction error per pixel of a shipped autoencoder on the first n MNIST test digits."""
    from diffusion_lib.data import load_mnist
    codec = load_pretrained_codec(name)
    images = load_mnist(train=False)[0][:n]
    with torch.no_grad():
        return float((codec.autoencoder(images) - images).pow(2).mean())


def scored_latent(name, model, codec, schedule, classifier, reference, n: int, steps: int, w=None) -> dict:
    """The scores of n decoded samples of a latent flow model (flow Euler, x_1 from seed 0); a conditional one with
    the classes 0..9 in turn at guidance weight w."""
    from diffusion_lib.autoencoder import sample_latent_images
    from diffusion_lib.measure.metrics import score_samples
    key = (name, n, steps, w, "latent")
    if key not in _SCORED:
        labels = None if w is None else torch.arange(n) % 10
        images = sample_latent_images(model, codec, schedule, n, steps, seed=0, labels=labels,
                                      w=1.0 if w is None else w)
        _SCORED[key] = score_samples(images, classifier, reference, labels)
    return _SCORED[key]


def section_cards(args, classifier, reference) -> str:
    rows = []
    for name in PRETRAINED:
        if args.models and name not in args.models:
            continue
        card_path = WEIGHTS_DIR / f"{name}.json"
        if not has_weights(name) or not card_path.exists():
            rows.append([name, "(no weights file)" if not has_weights(name) else "(no card)", "", "", "", ""])
            continue
        card = json.loads(card_path.read_text())
        if name in AUTOENCODERS:                   # not a diffusion network: its card gives a reconstruction error
            got = autoencoder_test_error(name)
            rows.append([name, "2,000 MNIST test digits", "reconstruction MSE", f"{card['test_reconstruction_mse']:.4f}",
                         f"{got:.4f}", ""])
            print(rows[-1], flush=True)
            continue
        model, schedule, objective = load_pretrained(name), pretrained_schedule(name), pretrained_objective(name)
        codec = load_pretrained_codec(name)
        for expected in card["scores"]:
            if codec is not None:                  # a latent model: sample its latents, decode, then score
                n = min(expected["n"], args.n) if args.quick else expected["n"]
                got = scored_latent(name, model, codec, schedule, classifier, reference, n, expected["steps"],
                                    expected.get("w"))
                setting = card_setting("flow-euler", expected["steps"], 0.0, n, expected.get("w")) + ", decoded"
                for key in ("guided_accuracy", "confident_share", "frechet_distance"):
                    if key not in expected:
                        continue
                    rows.append([name, setting, key, f"{expected[key]:.3f}", f"{got[key]:.3f}",
                                 "" if n == expected["n"] else "smaller n (quick mode)"])
                    print(rows[-1], flush=True)
                continue
            n = min(expected["n"], args.n) if args.quick else expected["n"]
            sampler, eta = expected.get("sampler", "ddim"), expected.get("eta") or 0.0
            check_sampler(sampler, objective)                  # a card of the other kind of model is an error
            got = scored(name, model, schedule, classifier, reference, n, expected["steps"], expected.get("w"),
                         sampler, seed=expected.get("seed", 0), eta=eta)
            setting = card_setting(sampler, expected["steps"], eta, n, expected.get("w"))
            for key in ("guided_accuracy", "confident_share", "frechet_distance"):
                if key in expected:
                    rows.append([name, setting, key, f"{expected[key]:.3f}", f"{got[key]:.3f}",
                                 "" if n == expected["n"] else "smaller n (quick mode)"])
                    print(rows[-1], flush=True)
    return ("## Model cards reproduced (diffusion_lib/weights/<name>.json against this run)\n\n"
            + table(["model", "setting", "quantity", "card", "this run", "note"], rows))


def section_masked(args) -> str:
    """Notebook 14's tables: the masked and autoregressive names models, the masked digits, against their cards."""
    import masked_diffusion as md
    from diffusion_lib.pretrained import TOKEN_PRETRAINED, pretrained_path

    missing = [name for name, entry in TOKEN_PRETRAINED.items() if not (WEIGHTS_DIR / entry.file).exists()]
    if missing:
        return "## Masked diffusion (notebook 14)\n\nSkipped, files not in diffusion_lib/weights/: " + ", ".join(missing)
    n_names, n_digits = (100, 50) if args.quick else (1000, 200)      # the cards' n
    names = md.names_section(argparse.Namespace(masked=str(pretrained_path("masked_names")),
                                                ar=str(pretrained_path("ar_names")), n=n_names, n_times=16,
                                                held=300 if args.quick else 2000))
    digits = md.digits_section(argparse.Namespace(checkpoint=str(pretrained_path("masked_digits")), n=n_digits,
                                                  batch=250, samplers=["maskgit:8", "ancestral:8"] if args.quick
                                                  else list(md.DIGIT_SAMPLERS)))
    cards = {name: json.loads((WEIGHTS_DIR / f"{name}.json").read_text()) for name in ("masked_names", "masked_digits")}
    bits = [["autoregressive, exact", 12, f"{names['ar_bits_per_char']:.3f}", f"{cards['masked_names']['ar_bits_per_char']:.3f}"],
            ["masked, continuous bound", "", f"{names['masked_continuous_bits_per_char']:.3f}",
             f"{cards['masked_names']['masked_continuous_bits_per_char']:.3f}"]]
    bits += [[f"masked, {k}-step bound", k, f"{v:.3f}", f"{cards['masked_names']['masked_discrete_bits_per_char'][k]:.3f}"]
             for k, v in names["masked_discrete_bits_per_char"].items()]
    samples = [[r["model"], r["sampler"], r["steps"], r["nfe"], f"{r['seconds']:.2f}", f"{r['well_formed']:.3f}",
                f"{r['novel']:.3f}", f"{r['distinct']:.3f}", f"{r['ar_bits_per_char']:.2f}", " ".join(r["examples"][:4])]
               for r in names["samples"]]
    card_digits = {(r["sampler"], r["steps"]): r for r in cards["masked_digits"]["samples"]}
    quality = [["real training digits", "", "", f"{digits['real']['confident_share']:.3f}",
                f"{digits['real']['frechet_distance']:.1f}", ""],
               [f"real, {digits['levels']} grey levels", "", "", f"{digits['real_quantised']['confident_share']:.3f}",
                f"{digits['real_quantised']['frechet_distance']:.1f}", ""]]
    for r in digits["samples"]:
        c = card_digits.get((r["sampler"], r["steps"]))
        quality.append([r["sampler"], r["steps"], f"{r['seconds']:.1f}", f"{r['confident_share']:.3f}",
                        f"{r['frechet_distance']:.1f}",
                        f"{c['confident_share']:.3f} / {c['frechet_distance']:.1f}" if c else ""])
    return ("## Masked diffusion (notebook 14)\n\n"
            f"Names: bits per character on {names['held_out_names']:,} held-out surnames, this run beside the card "
            "(`masked_names.json`):\n\n" + table(["model", "NFE", "bits per character", "card"], bits)
            + f"\n\nSamples, {n_names} per row (seed 0):\n\n"
            + table(["model", "sampler", "K", "NFE", "seconds", "well formed", "novel", "distinct",
                     "AR bits/char of the samples", "examples"], samples)
            + f"\n\nDigits (`masked_digits`, {digits['n']} images per row, against the MNIST test set):\n\n"
            + table(["sampler", "K = NFE", "seconds", "confident share", "Frechet distance", "card (share / Frechet)"],
                    quality))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not numbers to quote")
    p.add_argument("--w", type=float, nargs="*", default=[0.0, 1.0, 2.0, 3.0, 5.0])
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--models", nargs="+", choices=list(PRETRAINED), metavar="NAME",
                   help="the cards section checks only these shipped models (default: every one)")
    p.add_argument("--out", default=str(Path(__file__).parent / "RESULTS.md"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # n: images per guidance weight, per NFE row and per model-card check; n_sampling: per sampler of the sampling
    # section (DDPM 1000 is the slow one)
    args.n, args.n_sampling, args.n_time, args.min_seconds = (50, 16, 8, 1.0) if args.quick else (500, 200, 64, 5.0)

    start = time.monotonic()
    header = (f"# diffusion_lib benchmarks\n\nMachine: {machine()}\n\n"
              f"Command: `python {' '.join(sys.argv)}`" + (" (quick mode: smoke sizes, not numbers to quote)" if args.quick else ""))
    print(header, flush=True)
    parts = [header]
    classifier = reference = None
    if set(args.sections) & {"sampling", "nfe", "guidance", "few_step", "cards"}:
        classifier = load_classifier()
        reference = mnist_test_features(classifier)
    for name in args.sections:
        t = time.monotonic()
        if name == "reference":
            text = section_reference(args)
        elif name == "throughput":
            text = section_throughput(args)
        elif name == "masked":
            text = section_masked(args)
        else:
            text = globals()[f"section_{name}"](args, classifier, reference)
        text += f"\n\n({time.monotonic() - t:.0f} s)"
        print("\n" + text + "\n", flush=True)
        parts.append(text)
    parts.append(f"Total: {(time.monotonic() - start) / 60:.1f} min.")
    Path(args.out).write_text("\n\n".join(parts) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
