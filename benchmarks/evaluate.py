"""Score a trained network with diffusion_lib.metrics: sample N images, classify them.

    python benchmarks/evaluate.py --pretrained unet --n 500 --steps 50
    python benchmarks/evaluate.py --pretrained unet_cond --n 500 --steps 50 --w 0 1 2 3 5
    python benchmarks/evaluate.py --checkpoint runs/unet/last.pt --n 500 --steps 50 --eta 0 1
    python benchmarks/evaluate.py --pretrained unet_flow --n 500 --steps 50 --sampler flow-heun
    python benchmarks/evaluate.py --pretrained unet_flow --n 500 --nfe 5 10 20 50 --sampler flow-euler flow-heun

--sampler: ddim (the default), ddpm or heun for the DDPM family's networks (eps, x0, v); flow-euler (the
default), flow-heun or flow-sde (stochastic) for a flow-matching network, whose objective is read from the
checkpoint; meanflow for a MeanFlow network. A sampler
of the other kind is refused with one line on stderr and exit code 2, as is every bad option (the command line's
rules, diffusion_lib.cli: one `error:` line, exit code 2, checked before any work, nothing written). A conditional network is asked for
the labels 0, 1, ..., 9, 0, 1, ... in turn, once per guidance weight w (classifier-free guidance, on the
velocity for a flow network). One row per sampler x steps (or NFE budget) x eta x w.
Prints one JSON line per setting (and writes them all with --json PATH).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

import os
from pathlib import Path

from diffusion_lib.checkpoints import CheckpointError, load_model
from diffusion_lib.cli import (DDPM_FAMILY_SAMPLERS, MAX_IMAGES, SAMPLERS, SAMPLERS_OF, SEED_MAX, Parser, UsageError,
                               check_writable_file, integer, number, threads)
from diffusion_lib.guidance import MAX_GUIDANCE_WEIGHT, cfg_eps_model
from diffusion_lib.measure.metrics import load_classifier, mnist_test_features, score_samples
from diffusion_lib.measure.sweeps import SAMPLER_LABELS, steps_for_nfe
from diffusion_lib.pretrained import PRETRAINED
from diffusion_lib.samplers import (clipped_x0_eps_model, ddim_sample_progressive, ddpm_sample_progressive, final,
                                    heun_nfe, flow_euler_sample_progressive, flow_heun_sample_progressive,
                                    flow_sde_sample_progressive,
                                    heun_sample_progressive, meanflow_sample_progressive, sample_noise, with_precision)

# The deterministic samplers by their command-line names: (model, x_T, schedule, num_steps) -> chain.
ODE_SAMPLERS = {"heun": heun_sample_progressive, "flow-euler": flow_euler_sample_progressive,
                "flow-heun": flow_heun_sample_progressive, "meanflow": meanflow_sample_progressive}


def load_network(checkpoint: str | None = None, pretrained: str | None = None):
    """(model, schedule, objective) from a training checkpoint or a shipped model name, read once; model is the
    samplers' eps model, or the velocity model when objective is "flow" (it carries both: model.schedule,
    model.objective)."""
    if pretrained:
        from diffusion_lib.pretrained import load_pretrained
        model = load_pretrained(pretrained)
    else:
        model = load_model(checkpoint)
    return model, model.schedule, model.objective


def default_sampler(objective: str) -> str:
    """flow-euler for a flow-matching network, meanflow for a MeanFlow one, ddim for the DDPM family's (eps, x0, v)."""
    return SAMPLERS_OF.get(objective, DDPM_FAMILY_SAMPLERS)[0]


def check_sampler(sampler: str, objective: str) -> None:
    """A ValueError unless `sampler` applies to a network trained with `objective` (the flow samplers to flow
    matching only, the DDPM family's to the others only)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    allowed = SAMPLERS_OF.get(objective, DDPM_FAMILY_SAMPLERS)
    if sampler not in allowed:
        trained = {"flow": "flow matching", "meanflow": "MeanFlow"}.get(objective, f"the {objective} objective (DDPM family)")
        raise UsageError(f"--sampler {sampler} does not apply to this model: it was trained with {trained}; use "
                         f"--sampler {', '.join(allowed[:-1]) + ' or ' + allowed[-1] if len(allowed) > 1 else allowed[0]}")


def generate(model, schedule, n: int, sampler: str = "ddim", steps: int = 50, w: float | None = None,
             seed: int = 0, batch_size: int = 250, precision: str = "fp32",
             eta: float = 0.0, clip_x0: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples (n, 1, 28, 28) and, for a conditional model, the labels asked for (0..9 in turn, guidance weight w).
    sampler: ddim (with eta), ddpm, heun, or for a velocity model flow-euler, flow-heun or flow-sde (check_sampler).
    clip_x0: step from the implied clean image clipped to [-1, 1] (samplers.clipped_x0_eps_model; DDPM family)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if clip_x0 and sampler not in DDPM_FAMILY_SAMPLERS:
        raise ValueError(f"clip_x0 clips the clean image that eps implies, and --sampler {sampler} steps with a "
                         "velocity; drop clip_x0 (it applies to ddim, ddpm and heun)")
    generator = torch.Generator().manual_seed(seed)
    x_T = sample_noise(n, model.image_shape, generator=generator)
    labels = torch.arange(n) % model.num_classes if model.num_classes is not None else None
    images = []
    for start in range(0, n, batch_size):
        x = x_T[start:start + batch_size]
        eps_model = model if labels is None else cfg_eps_model(model, labels[start:start + batch_size], w)
        if clip_x0:
            eps_model = clipped_x0_eps_model(eps_model, schedule)
        eps_model = with_precision(eps_model, precision)
        if sampler == "ddpm":
            chain = ddpm_sample_progressive(eps_model, x, schedule, generator=generator)
        elif sampler == "ddim":
            chain = ddim_sample_progressive(eps_model, x, schedule, steps, eta=eta, generator=generator)
        elif sampler == "flow-sde":
            chain = flow_sde_sample_progressive(eps_model, x, schedule, steps, generator=generator)
        else:
            chain = ODE_SAMPLERS[sampler](eps_model, x, schedule, steps)
        images.append(final(chain))
    return torch.cat(images), labels


def steps_for(sampler: str, nfe: int) -> int:
    """The most steps of `sampler` within nfe network evaluations (sweeps.steps_for_nfe; flow-sde: one per step)."""
    return nfe if sampler == "flow-sde" else steps_for_nfe(SAMPLER_LABELS[sampler], nfe)


def network_evaluations(sampler: str, steps: int) -> int:
    """Calls of the network per image (NFE; a guided model calls it twice per evaluation): one per step, but
    2 steps - 1 for the Heun samplers (samplers.heun_nfe)."""
    return heun_nfe(steps) if sampler in ("heun", "flow-heun") else steps


def evaluate(model, schedule, classifier, reference_features, n: int = 500, steps: int = 50,
             w: float | None = None, sampler: str = "ddim", seed: int = 0, precision: str = "fp32",
             eta: float = 0.0, clip_x0: bool = False) -> dict:
    """Generate n images and score them; adds the setting (sampler, steps, eta for ddim, w, seed, and clip_x0 when
    set) and the sampling wall time in seconds."""
    start = time.monotonic()
    images, labels = generate(model, schedule, n, sampler, steps, w, seed, precision=precision, eta=eta,
                              clip_x0=clip_x0)
    seconds = time.monotonic() - start
    scores = score_samples(images, classifier, reference_features, labels)
    steps = schedule.T if sampler == "ddpm" else steps
    return {"sampler": sampler, "steps": steps, "nfe": network_evaluations(sampler, steps),
            "eta": eta if sampler == "ddim" else None, "w": w, "seed": seed, **({"clip_x0": True} if clip_x0 else {}),
            **scores,
            "sampling_seconds": round(seconds, 1)}


def build_parser() -> Parser:
    p = Parser(prog="python benchmarks/evaluate.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH", help="a checkpoint written by `python -m diffusion_lib train`")
    src.add_argument("--pretrained", choices=sorted(PRETRAINED), help="a shipped model")
    p.add_argument("--n", type=integer(1, MAX_IMAGES), default=500,
                   help=f"images sampled and scored per row, in [1, {MAX_IMAGES}] (default 500)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=integer(1), nargs="+", help="sampler steps, in [1, T], one row each (default "
                        "50); not for ddpm, which walks all T")
    budget.add_argument("--nfe", type=integer(1), nargs="+", help="network evaluations per image instead of steps, "
                        ">= 1, one row each: the most steps of each sampler within the budget (Heun: (nfe + 1) // 2)")
    p.add_argument("--sampler", choices=SAMPLERS, nargs="+",
                   help="one or more; default: ddim, or flow-euler for a flow-matching model")
    p.add_argument("--eta", type=number(0, 1), nargs="+", help="DDIM stochasticity, in [0, 1], one row each (0, the "
                   "default: deterministic); ddim only")
    p.add_argument("--w", type=number(0, MAX_GUIDANCE_WEIGHT), nargs="+",
                   help=f"guidance weights, in [0, {MAX_GUIDANCE_WEIGHT:g}], one row each (default 3); "
                        "class-conditional models only")
    p.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help=f"random seed, in [0, {SEED_MAX}] (default 0)")
    p.add_argument("--threads", type=threads, help=f"torch CPU threads, in [1, {os.cpu_count()}] (default: torch's)")
    p.add_argument("--json", metavar="FILE",
                   help="also write the results to this file (its folder is made if missing; checked before any work)")
    return p


def check_options(args, model, schedule, objective) -> list[str]:
    """The samplers of this run, after checking every option against the others and against the model: a
    UsageError (one line) for the first that does not apply."""
    samplers = args.sampler or [default_sampler(objective)]
    for sampler in samplers:
        check_sampler(sampler, objective)
    if args.eta is not None and "ddim" not in samplers:
        raise UsageError(f"--eta applies to --sampler ddim only, and this run samples with {', '.join(samplers)}; "
                         "drop --eta")
    if args.steps is not None and samplers == ["ddpm"]:
        raise UsageError("--steps does not apply to --sampler ddpm (DDPM walks all T steps); drop --steps")
    if model.num_classes is None and args.w is not None:
        raise UsageError("--w needs a class-conditional model, and this one is unconditional; drop --w")
    if args.nfe is not None and "ddpm" in samplers:
        raise UsageError("--nfe does not apply to --sampler ddpm (DDPM walks all T steps); drop ddpm or use --steps")
    budgets = args.steps or ([steps_for(s, n) for s in samplers for n in args.nfe] if args.nfe else [])
    if budgets and max(budgets) > schedule.T:
        option = "--steps" if args.steps else "--nfe"
        raise UsageError(f"{option} asks for {max(budgets)} steps, more than the T = {schedule.T} steps of this model's "
                         f"schedule; give at most {schedule.T} steps")
    return samplers


def main(argv=None) -> int:
    """Run the evaluation; returns 0, or 2 after printing one `error: ...` line (nothing sampled or written)."""
    try:
        args = build_parser().parse_args(argv)
        out = check_writable_file(args.json, "--json") if args.json else None
        model, schedule, objective = load_network(args.checkpoint, args.pretrained)
        samplers = check_options(args, model, schedule, objective)
    except (UsageError, ValueError, CheckpointError, OSError) as e:
        from diffusion_lib.cli import _message
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    classifier = load_classifier()
    reference = mnist_test_features(classifier)
    results = []
    for sampler in samplers:
        steps_list = ([50] if args.steps is None else args.steps) if args.nfe is None else \
            [steps_for(sampler, n) for n in args.nfe]
        for steps in steps_list:
            for eta in (args.eta or [0.0]) if sampler == "ddim" else [0.0]:      # the other samplers have no eta
                for w in ((args.w or [3.0]) if model.num_classes is not None else [None]):
                    result = evaluate(model, schedule, classifier, reference, args.n, steps, w, sampler, args.seed,
                                      eta=eta)
                    print(json.dumps(result), flush=True)
                    results.append(result)
    if out is not None:   # the format of the model cards' diffusion_lib/weights/<name>.json, read by run.py
        record = {"model": args.pretrained or args.checkpoint, "command": "python " + " ".join(sys.argv),
                  "scores": results}
        from diffusion_lib.checkpoints import write_atomically
        write_atomically(out, lambda f: f.write(json.dumps(record, indent=1).encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
