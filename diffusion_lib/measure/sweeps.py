"""Sampling runs for notebooks 06-08 and 10: sample with one setting and time it, sweep a setting and score
each point with diffusion_lib.metrics.

    images, seconds = timed(ddim_images, model, x_T, schedule, 20)          # 20 DDIM steps, eta = 0
    rows, images = steps_sweep(model, x_T, schedule, [10, 20, 50], classifier, reference_features)
    rows, images = nfe_sweep(model, x_T, schedule, [5, 10, 20, 50], classifier, reference_features)  # DDIM and Heun
    rows, images = nfe_sweep(velocity_model, x_1, schedule, [5, 10, 20, 50], classifier, reference_features,
                             samplers=FLOW_SAMPLERS)                                  # a flow-matching network

Every function takes the starting noise x_T explicitly and a seed for the sampler's own noise
stream (the z of each stochastic step), so that two settings are compared on the same noise. The
arguments come in the samplers' order: (model, x_T, schedule, ...), as in
ddim_sample_progressive(eps_model, x_T, schedule, num_steps, eta).
Rows are plain dicts of numbers, one per setting, ready for a table or a plot.
"""
from __future__ import annotations

import functools
import time
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..backbones import Backbone
from ..device import synchronize
from ..guidance import cfg_eps_model
from .metrics import MNISTClassifier, classifier_features, classify, relative_spread, score_samples
from ..samplers import (GRIDS, ddim_invert_progressive, ddim_sample_progressive, ddpm_sample_progressive, final,
                        flow_euler_sample_progressive, flow_heun_sample_progressive, grid_timesteps, heun_nfe,
                        heun_sample_progressive, meanflow_sample_progressive, record)
from ..schedules import Schedule


def timed(fn: Callable, *args, **kwargs):
    """(fn(*args, **kwargs), wall-clock seconds), waiting for a GPU to finish before the clock stops."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    tensor = out if isinstance(out, torch.Tensor) else getattr(out, "sample", None)
    if isinstance(tensor, torch.Tensor):
        synchronize(tensor.device)
    return out, time.perf_counter() - start


def eps_model_for(model: Backbone, y: torch.Tensor | None = None, w: float | None = None):
    """What the samplers call: the network itself, or classifier-free guidance towards labels y with weight w."""
    return model if y is None else cfg_eps_model(model, y, 1.0 if w is None else w)


def _generator(seed: int) -> torch.Generator:
    """The sampler's noise stream: a CPU generator, whose draws the samplers move to the images' device, so that a
    seed gives the same pictures on every device."""
    return torch.Generator().manual_seed(seed)


def _where_model_is(model, x: torch.Tensor) -> torch.Tensor:
    """x on the device of the network's weights (x itself for a callable without weights): the encoded noise of
    ddim_encode, recorded on the CPU, can be decoded by a network on a GPU."""
    weights = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return x if weights is None else x.to(weights.device)


def _check_order(x: torch.Tensor, schedule: Schedule) -> None:
    """A clear error for the order of the arguments before the samplers' (model, schedule, x_T, ...)."""
    if not isinstance(x, torch.Tensor) or not isinstance(schedule, Schedule):
        raise TypeError(f"expected (model, x_T, schedule, ...), the samplers' order, but got a {type(x).__name__} "
                        f"where the images go and a {type(schedule).__name__} where the schedule goes; "
                        "pass the images before the schedule")


def ddim_images(model: Backbone, x_T: torch.Tensor, schedule: Schedule, num_steps: int, eta: float = 0.0,
                seed: int = 0, y: torch.Tensor | None = None, w: float | None = None,
                progress: bool = False) -> torch.Tensor:
    """DDIM samples (B, C, H, W) from x_T (B, C, H, W), on the network's device (x_T is moved there); the z of the
    stochastic steps come from `seed`, drawn on the CPU, so a seed gives the same samples on every device."""
    _check_order(x_T, schedule)
    x_T = _where_model_is(model, x_T)
    steps = ddim_sample_progressive(eps_model_for(model, y, w), x_T, schedule, num_steps, eta,
                                    generator=_generator(seed), progress=progress)
    return final(steps)


def ddpm_images(model: Backbone, x_T: torch.Tensor, schedule: Schedule, variance: str = "beta_tilde", seed: int = 0,
                y: torch.Tensor | None = None, w: float | None = None, progress: bool = False) -> torch.Tensor:
    """DDPM samples (all T steps) from x_T, on the network's device; the z of every step come from `seed` (CPU)."""
    _check_order(x_T, schedule)
    x_T = _where_model_is(model, x_T)
    steps = ddpm_sample_progressive(eps_model_for(model, y, w), x_T, schedule, variance,
                                    generator=_generator(seed), progress=progress)
    return final(steps)


def ddim_encode(model: Backbone, x0: torch.Tensor, schedule: Schedule, num_steps: int, progress: bool = False):
    """Deterministic DDIM encoding of clean images x0 (B, C, H, W), recorded: a Trajectory whose x_t[k] are the
    ever noisier states at timesteps[k] (-1, the clean image, first) and whose sample is the encoded noise
    x_{T-1} that decodes back to about x0.

    The Trajectory is on the CPU, like every samplers.record (its states feed the sliders), whatever device the
    chain ran on: its .sample goes to ddim_images as it is, which moves x_T to the network's device."""
    _check_order(x0, schedule)
    return record(ddim_invert_progressive(model, x0, schedule, num_steps, progress=progress))


# ----------------------------------------------------------------------------- scoring

def agreement_with_final(trajectory, classifier: MNISTClassifier, every: int = 1) -> tuple[list[int], torch.Tensor]:
    """When the digit's identity is decided: (timesteps, share), for every `every`-th recorded step of a chain
    (and the last), the share of images whose predicted clean image x0_pred is classified as the same digit
    as the chain's final sample."""
    keep = [k for k in range(len(trajectory.timesteps)) if k % every == 0 or k == len(trajectory.timesteps) - 1]
    final_class = classify(trajectory.sample, classifier).argmax(1)                       # (B,)
    x0_pred = trajectory.x0_pred[keep]                                                    # (K, B, C, H, W)
    K, B = x0_pred.shape[:2]
    classes = classify(x0_pred.flatten(0, 1), classifier).argmax(1).view(K, B)            # (K, B)
    return [trajectory.timesteps[k] for k in keep], (classes == final_class).double().mean(1)


def score_row(images: torch.Tensor, seconds: float, classifier: MNISTClassifier, reference_features: torch.Tensor,
              labels: torch.Tensor | None = None, **setting) -> dict:
    """One row: the setting (sampler, steps, eta, w, ...), the wall time, and diffusion_lib.metrics.score_samples."""
    scores = score_samples(images, classifier, reference_features, labels)
    return {**setting, "seconds": seconds, "seconds_per_image": seconds / images.shape[0], **scores}


def steps_sweep(model: Backbone, x_T: torch.Tensor, schedule: Schedule, steps_list: Sequence[int],
                classifier: MNISTClassifier, reference_features: torch.Tensor, eta: float = 0.0, seed: int = 0,
                progress: bool = True) -> tuple[list[dict], dict]:
    """DDIM with each number of steps from the same x_T: (rows, images), one scored, timed row per step
    count and images mapping the step count to its samples (B, C, H, W)."""
    rows, images = [], {}
    for num_steps in tqdm(list(steps_list), desc="DDIM steps", disable=not progress):
        images[num_steps], seconds = timed(ddim_images, model, x_T, schedule, num_steps, eta, seed)
        rows.append(score_row(images[num_steps], seconds, classifier, reference_features, sampler="DDIM",
                              steps=num_steps, eta=eta))
    return rows, images


def ddim_grid(model: Backbone, x_T: torch.Tensor, schedule: Schedule, steps_list: Sequence[int],
              etas: Sequence[float], seed: int = 0, progress: bool = True) -> dict:
    """{(num_steps, eta): DDIM samples from x_T} for every pair: computed once, so a slider only looks them up."""
    pairs = [(s, e) for s in steps_list for e in etas]
    return {(s, e): ddim_images(model, x_T, schedule, s, e, seed)
            for s, e in tqdm(pairs, desc="DDIM grid", disable=not progress)}


# ----------------------------------------------------------------------------- solvers against network evaluations

NFE_SAMPLERS = ("DDIM", "Heun")               # the deterministic solvers of the probability-flow ODE (notebook 10)
FLOW_SAMPLERS = ("flow Euler", "flow Heun")   # the same two orders on a flow-matching network's velocity
# The command line's sampler names (python -m diffusion_lib sample --sampler, benchmarks/evaluate.py, the model
# cards' json rows) -> the names these sweeps and their tables use.
SAMPLER_LABELS = {"ddim": "DDIM", "ddpm": "DDPM", "heun": "Heun", "flow-euler": "flow Euler", "flow-heun": "flow Heun",
                  "meanflow": "MeanFlow"}
# Each one's chain from the noise x_T (B, C, H, W) to the clean image: (model, x_T, schedule, num_steps, progress).
_ODE_CHAINS = {"DDIM": functools.partial(ddim_sample_progressive, eta=0.0), "Heun": heun_sample_progressive,
               "flow Euler": flow_euler_sample_progressive, "flow Heun": flow_heun_sample_progressive,
               "MeanFlow": meanflow_sample_progressive}     # a MeanFlow network's average velocity, one step per NFE
_SECOND_ORDER = ("Heun", "flow Heun")         # two network evaluations per step but the last (heun_nfe)


def _check_sampler(sampler: str) -> None:
    if sampler not in _ODE_CHAINS:
        raise ValueError(f"unknown ODE sampler {sampler!r}; choose one of {NFE_SAMPLERS} for an eps model or "
                         f"{FLOW_SAMPLERS} for a flow-matching (velocity) model")


def _check_one_family(samplers: Sequence[str]) -> None:
    """The samplers of one sweep all take the same model: an eps model (NFE_SAMPLERS) or a velocity (FLOW_SAMPLERS)."""
    for sampler in samplers:
        _check_sampler(sampler)
    if not (set(samplers) <= set(NFE_SAMPLERS) or set(samplers) <= set(FLOW_SAMPLERS)):
        raise ValueError(f"the samplers {tuple(samplers)} mix two kinds of model: {NFE_SAMPLERS} take an eps model, "
                         f"{FLOW_SAMPLERS} a flow-matching network's velocity; sweep one kind at a time")


def nfe_of(sampler: str, num_steps: int) -> int:
    """Network evaluations of `sampler` with num_steps steps: DDIM and flow Euler one per step, Heun and flow Heun
    2 num_steps - 1 (heun_nfe)."""
    _check_sampler(sampler)
    return heun_nfe(num_steps) if sampler in _SECOND_ORDER else num_steps


def steps_for_nfe(sampler: str, nfe: int) -> int:
    """The most steps of `sampler` whose network evaluations do not exceed nfe: nfe for DDIM and flow Euler,
    (nfe + 1) // 2 for Heun and flow Heun."""
    _check_sampler(sampler)
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise ValueError(f"the number of network evaluations must be a positive integer, got {nfe!r}")
    return max(1, (nfe + 1) // 2) if sampler in _SECOND_ORDER else nfe


def _check_grid(sampler: str, grid: str) -> None:
    if grid not in GRIDS:
        raise ValueError(f"unknown timestep grid {grid!r}; choose one of {tuple(GRIDS)}")
    if grid != "uniform" and sampler not in NFE_SAMPLERS:
        raise ValueError(f"{sampler} walks the flow grid (evenly spaced in s); grid={grid!r} applies to "
                         f"{NFE_SAMPLERS} only")


def grid_steps(sampler: str, num_steps: int, schedule: Schedule, grid: str = "uniform") -> int:
    """The steps `sampler` really takes with num_steps on `grid`: num_steps, less any timesteps the Karras grid
    drops as duplicates (samplers.karras_timesteps; none up to 78 steps on the linear schedule)."""
    _check_grid(sampler, grid)
    return num_steps if sampler not in NFE_SAMPLERS else len(grid_timesteps(grid, num_steps, schedule))


def ode_images(eps_model, x_T: torch.Tensor, schedule: Schedule, sampler: str, num_steps: int,
               progress: bool = False, grid: str = "uniform") -> torch.Tensor:
    """The end of the deterministic chain from x_T (B, C, H, W) over num_steps steps: DDIM with eta = 0 or Heun for
    an eps model, flow Euler or flow Heun for a velocity model (then eps_model is that velocity model).
    grid: the timesteps DDIM and Heun walk, "uniform" (DDIM's) or "karras" (samplers.karras_timesteps)."""
    _check_order(x_T, schedule)
    _check_sampler(sampler)
    _check_grid(sampler, grid)
    x_T = _where_model_is(eps_model, x_T)
    grid_kwargs = {"grid": grid} if sampler in NFE_SAMPLERS else {}
    return final(_ODE_CHAINS[sampler](eps_model, x_T, schedule, num_steps, progress=progress, **grid_kwargs))


def nfe_sweep(model: Backbone, x_T: torch.Tensor, schedule: Schedule, nfes: Sequence[int], classifier: MNISTClassifier,
              reference_features: torch.Tensor, samplers: Sequence[str] = NFE_SAMPLERS,
              progress: bool = True, grid: str = "uniform") -> tuple[list[dict], dict]:
    """Each ODE sampler at (at most) each number of network evaluations, from the same x_T: (rows, images).

    samplers: NFE_SAMPLERS for an eps model, FLOW_SAMPLERS for a flow-matching network (model is its velocity).
    A row holds the sampler, its steps, the network evaluations it really made (nfe; Heun's 2 n - 1 can fall one
    short of the number asked for), the wall time and the scores of diffusion_lib.metrics.score_samples;
    images maps (sampler, nfe) to the samples (B, C, H, W). grid: the timesteps of DDIM and Heun (ode_images); a
    row records it."""
    _check_order(x_T, schedule)
    _check_one_family(samplers)
    for sampler in samplers:
        _check_grid(sampler, grid)
    rows, images = [], {}
    with torch.no_grad():                     # one untimed call first: start-up costs are not charged to one setting
        model(x_T[:1], torch.full((1,), schedule.T - 1, dtype=torch.long, device=x_T.device))
    for sampler, asked in tqdm([(s, n) for s in samplers for n in nfes], desc="samplers x NFE", disable=not progress):
        num_steps = steps_for_nfe(sampler, asked)
        steps = grid_steps(sampler, num_steps, schedule, grid)          # fewer only if the grid dropped duplicates
        nfe = nfe_of(sampler, steps)
        images[(sampler, nfe)], seconds = timed(ode_images, model, x_T, schedule, sampler, num_steps, grid=grid)
        rows.append(score_row(images[(sampler, nfe)], seconds, classifier, reference_features, sampler=sampler,
                              grid=grid, steps=steps, nfe=nfe))
    return rows, images


def solver_errors(eps_model, x_T: torch.Tensor, schedule: Schedule, nfes: Sequence[int], reference: torch.Tensor,
                  samplers: Sequence[str] = NFE_SAMPLERS, grids: Sequence[str] = ("uniform",)) -> list[dict]:
    """How far each ODE sampler's end lands from the exact end `reference` (B, C, H, W) of the same x_T, at (at most)
    each number of network evaluations. Rows: sampler, steps, nfe, mean_error (the mean over the batch of the
    Euclidean distance |x - reference| of each sample) and max_error (the largest of them). samplers: NFE_SAMPLERS
    for an eps model, FLOW_SAMPLERS for a velocity model. grids: the timestep grids to try (ode_images), each
    sampler on each; a row records its grid."""
    _check_one_family(samplers)
    rows = []
    for grid in grids:
        for sampler in samplers:
            _check_grid(sampler, grid)
            for asked in nfes:
                num_steps = steps_for_nfe(sampler, asked)
                end = ode_images(eps_model, x_T, schedule, sampler, num_steps, grid=grid)
                distance = (end - reference).flatten(1).norm(dim=1)
                steps = grid_steps(sampler, num_steps, schedule, grid)
                rows.append({"sampler": sampler, "grid": grid, "steps": steps, "nfe": nfe_of(sampler, steps),
                             "mean_error": float(distance.mean()), "max_error": float(distance.max())})
    return rows


# ----------------------------------------------------------------------------- guidance

def guidance_sweep(model: Backbone, x_T: torch.Tensor, schedule: Schedule, labels: torch.Tensor, ws: Sequence[float],
                   classifier: MNISTClassifier, reference_features: torch.Tensor, real_spread: torch.Tensor,
                   num_steps: int = 20, seed: int = 0, sampler: str = "DDIM",
                   progress: bool = True) -> tuple[list[dict], dict]:
    """Classifier-free guidance with each weight w from the same x_T and labels, sampled with `sampler`: "DDIM"
    (eta = 0) for an eps model, "flow Euler" or "flow Heun" for a flow-matching network, guided on its velocity
    (guidance.cfg_eps_model is linear in the network's output), or "Heun".

    Returns (rows, images): rows add to score_samples the relative within-class spread
    mean_c spread_generated[c] / real_spread[c], where the images of class c are those the classifier
    reads as digit c with confidence (max_y p(y | x) > metrics.CONFIDENCE_THRESHOLD): 1 means the
    recognisable digits are as varied as real digits of their class. Classes with fewer than two such
    images are left out of the mean. images maps w to the samples (B, C, H, W).
    Grouping by the label asked for would mix digits when guidance is weak (at w = 0 the label is
    ignored), and unreadable images would add their own scatter: both would count as diversity.
    """
    _check_order(x_T, schedule)
    _check_sampler(sampler)
    rows, images = [], {}
    for w in tqdm(list(ws), desc="guidance weights", disable=not progress):
        if sampler == "DDIM":
            x, seconds = timed(ddim_images, model, x_T, schedule, num_steps, 0.0, seed, labels, w)
        else:
            x, seconds = timed(ode_images, eps_model_for(model, labels, w), x_T, schedule, sampler, num_steps)
        images[w] = x
        row = score_row(x, seconds, classifier, reference_features, labels, sampler=sampler, steps=num_steps, w=w)
        row["relative_spread"] = relative_spread(classifier_features(x, classifier), classify(x, classifier),
                                                 real_spread)
        rows.append(row)
    return rows, images


def format_rows(rows: Sequence[dict], columns: Sequence[str], digits: int = 3) -> str:
    """A fixed-width text table of `columns` of the rows (floats with `digits` significant digits)."""
    def cell(v):
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return str(v)
    table = [[str(c) for c in columns]] + [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in table)
