"""Sampling runs for notebooks 06-08 and 10: sample with one setting and time it, sweep a setting and score
each point with diffusion_lib.metrics.

    images, seconds = timed(ddim_images, model, schedule, x_T, 20)          # 20 DDIM steps, eta = 0
    rows, images = steps_sweep(model, schedule, x_T, [10, 20, 50], classifier, reference_features)
    rows, images = nfe_sweep(model, schedule, x_T, [5, 10, 20, 50], classifier, reference_features)  # DDIM and Heun

Every function takes the starting noise x_T explicitly and a seed for the sampler's own noise
stream (the z of each stochastic step), so that two settings are compared on the same noise.
Rows are plain dicts of numbers, one per setting, ready for a table or a plot.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..backbones import Backbone
from ..guidance import cfg_eps_model
from .metrics import CONFIDENCE_THRESHOLD, MNISTClassifier, classifier_features, classify, score_samples
from ..samplers import (ddim_invert_progressive, ddim_sample_progressive, ddpm_sample_progressive, final,
                        heun_nfe, heun_sample_progressive, record)
from ..schedules import Schedule


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn: Callable, *args, **kwargs):
    """(fn(*args, **kwargs), wall-clock seconds), waiting for a GPU to finish before the clock stops."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    tensor = out if isinstance(out, torch.Tensor) else getattr(out, "sample", None)
    if isinstance(tensor, torch.Tensor):
        _sync(tensor.device)
    return out, time.perf_counter() - start


def eps_model_for(model: Backbone, y: torch.Tensor | None = None, w: float | None = None):
    """What the samplers call: the network itself, or classifier-free guidance towards labels y with weight w."""
    return model if y is None else cfg_eps_model(model, y, 1.0 if w is None else w)


def _generator(x: torch.Tensor, seed: int) -> torch.Generator:
    return torch.Generator(device=x.device).manual_seed(seed)


def ddim_images(model: Backbone, schedule: Schedule, x_T: torch.Tensor, num_steps: int, eta: float = 0.0,
                seed: int = 0, y: torch.Tensor | None = None, w: float | None = None,
                progress: bool = False) -> torch.Tensor:
    """DDIM samples (B, C, H, W) from x_T (B, C, H, W); the z of the stochastic steps come from `seed`."""
    steps = ddim_sample_progressive(eps_model_for(model, y, w), x_T, schedule, num_steps, eta,
                                    generator=_generator(x_T, seed), progress=progress)
    return final(steps)


def ddpm_images(model: Backbone, schedule: Schedule, x_T: torch.Tensor, variance: str = "beta_tilde", seed: int = 0,
                y: torch.Tensor | None = None, w: float | None = None, progress: bool = False) -> torch.Tensor:
    """DDPM samples (all T steps) from x_T; the z of every step come from `seed`."""
    steps = ddpm_sample_progressive(eps_model_for(model, y, w), x_T, schedule, variance,
                                    generator=_generator(x_T, seed), progress=progress)
    return final(steps)


def ddim_encode(model: Backbone, schedule: Schedule, x0: torch.Tensor, num_steps: int, progress: bool = False):
    """Deterministic DDIM encoding of clean images x0 (B, C, H, W), recorded: a Trajectory whose x_t[k] are the
    ever noisier states at timesteps[k] (-1, the clean image, first) and whose sample is the encoded noise
    x_{T-1} that decodes back to about x0."""
    return record(ddim_invert_progressive(model, x0, schedule, num_steps, progress=progress))


# ----------------------------------------------------------------------------- scoring

def real_reference(classifier: MNISTClassifier, n: int, seed: int = 0, root=None) -> dict:
    """What real digits score, with one pass of the classifier over the MNIST test set.

    The keys of metrics.reference_scores (test_confident_share, train_vs_test_n,
    train_vs_test_frechet_distance: n random training digits, drawn as reference_scores draws them,
    against the test set), plus what the sweeps need: test_features (10000, D), test_labels (10000,)
    and test_class_spread (10,), the within-class spread of real digits (class_feature_spread).
    """
    from ..data import load_mnist
    from .metrics import confident_share, frechet_distance

    test_images, test_labels = load_mnist(train=False, root=root)
    train_images, _ = load_mnist(train=True, root=root)
    features = classifier_features(test_images, classifier)                              # (10000, D)
    device = next(classifier.parameters()).device
    with torch.no_grad():                                   # the head of the classifier on the same features
        probs = classifier.head(features.to(device)).softmax(dim=1).cpu()                # (10000, 10)
    idx = torch.randperm(train_images.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return {"test_confident_share": confident_share(probs), "train_vs_test_n": n,
            "train_vs_test_frechet_distance": frechet_distance(classifier_features(train_images[idx], classifier),
                                                               features),
            "test_features": features, "test_labels": test_labels,
            "test_class_spread": class_feature_spread(features, test_labels)}

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


def steps_sweep(model: Backbone, schedule: Schedule, x_T: torch.Tensor, steps_list: Sequence[int],
                classifier: MNISTClassifier, reference_features: torch.Tensor, eta: float = 0.0, seed: int = 0,
                progress: bool = True) -> tuple[list[dict], dict]:
    """DDIM with each number of steps from the same x_T: (rows, images), one scored, timed row per step
    count and images mapping the step count to its samples (B, C, H, W)."""
    rows, images = [], {}
    for num_steps in tqdm(list(steps_list), desc="DDIM steps", disable=not progress):
        images[num_steps], seconds = timed(ddim_images, model, schedule, x_T, num_steps, eta, seed)
        rows.append(score_row(images[num_steps], seconds, classifier, reference_features, sampler="DDIM",
                              steps=num_steps, eta=eta))
    return rows, images


def ddim_grid(model: Backbone, schedule: Schedule, x_T: torch.Tensor, steps_list: Sequence[int],
              etas: Sequence[float], seed: int = 0, progress: bool = True) -> dict:
    """{(num_steps, eta): DDIM samples from x_T} for every pair: computed once, so a slider only looks them up."""
    pairs = [(s, e) for s in steps_list for e in etas]
    return {(s, e): ddim_images(model, schedule, x_T, s, e, seed)
            for s, e in tqdm(pairs, desc="DDIM grid", disable=not progress)}


# ----------------------------------------------------------------------------- solvers against network evaluations

NFE_SAMPLERS = ("DDIM", "Heun")   # the deterministic solvers of the probability-flow ODE (notebook 10)


def _check_sampler(sampler: str) -> None:
    if sampler not in NFE_SAMPLERS:
        raise ValueError(f"unknown ODE sampler {sampler!r}; choose one of {NFE_SAMPLERS}")


def nfe_of(sampler: str, num_steps: int) -> int:
    """Network evaluations of `sampler` with num_steps steps: DDIM one per step, Heun 2 num_steps - 1 (heun_nfe)."""
    _check_sampler(sampler)
    return num_steps if sampler == "DDIM" else heun_nfe(num_steps)


def steps_for_nfe(sampler: str, nfe: int) -> int:
    """The most steps of `sampler` whose network evaluations do not exceed nfe: DDIM nfe, Heun (nfe + 1) // 2."""
    _check_sampler(sampler)
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise ValueError(f"the number of network evaluations must be a positive integer, got {nfe!r}")
    return nfe if sampler == "DDIM" else max(1, (nfe + 1) // 2)


def ode_images(eps_model, schedule: Schedule, x_T: torch.Tensor, sampler: str, num_steps: int,
               progress: bool = False) -> torch.Tensor:
    """The end of the deterministic chain from x_T (B, C, H, W): DDIM with eta = 0, or Heun, over num_steps steps."""
    _check_sampler(sampler)
    if sampler == "DDIM":
        return final(ddim_sample_progressive(eps_model, x_T, schedule, num_steps, eta=0.0, progress=progress))
    return final(heun_sample_progressive(eps_model, x_T, schedule, num_steps, progress=progress))


def nfe_sweep(model: Backbone, schedule: Schedule, x_T: torch.Tensor, nfes: Sequence[int], classifier: MNISTClassifier,
              reference_features: torch.Tensor, samplers: Sequence[str] = NFE_SAMPLERS,
              progress: bool = True) -> tuple[list[dict], dict]:
    """Each ODE sampler at (at most) each number of network evaluations, from the same x_T: (rows, images).

    A row holds the sampler, its steps, the network evaluations it really made (nfe; Heun's 2 n - 1 can fall one
    short of the number asked for), the wall time and the scores of diffusion_lib.metrics.score_samples;
    images maps (sampler, nfe) to the samples (B, C, H, W)."""
    rows, images = [], {}
    with torch.no_grad():                     # one untimed call first: start-up costs are not charged to one setting
        model(x_T[:1], torch.full((1,), schedule.T - 1, dtype=torch.long, device=x_T.device))
    for sampler, asked in tqdm([(s, n) for s in samplers for n in nfes], desc="samplers x NFE", disable=not progress):
        num_steps = steps_for_nfe(sampler, asked)
        nfe = nfe_of(sampler, num_steps)
        images[(sampler, nfe)], seconds = timed(ode_images, model, schedule, x_T, sampler, num_steps)
        rows.append(score_row(images[(sampler, nfe)], seconds, classifier, reference_features, sampler=sampler,
                              steps=num_steps, nfe=nfe))
    return rows, images


def solver_errors(eps_model, schedule: Schedule, x_T: torch.Tensor, nfes: Sequence[int], reference: torch.Tensor,
                  samplers: Sequence[str] = NFE_SAMPLERS) -> list[dict]:
    """How far each ODE sampler's end lands from the exact end `reference` (B, C, H, W) of the same x_T, at (at most)
    each number of network evaluations. Rows: sampler, steps, nfe, mean_error (the mean over the batch of the
    Euclidean distance |x - reference| of each sample) and max_error (the largest of them)."""
    rows = []
    for sampler in samplers:
        for asked in nfes:
            num_steps = steps_for_nfe(sampler, asked)
            distance = (ode_images(eps_model, schedule, x_T, sampler, num_steps) - reference).flatten(1).norm(dim=1)
            rows.append({"sampler": sampler, "steps": num_steps, "nfe": nfe_of(sampler, num_steps),
                         "mean_error": float(distance.mean()), "max_error": float(distance.max())})
    return rows


# ----------------------------------------------------------------------------- guidance

def class_feature_spread(features: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """(num_classes,) the total variance tr Cov(f) of the classifier features f of the images of each class.

    How varied the images of one digit are: it falls towards 0 when a model draws the same 7 every
    time it is asked for a 7. The unbiased covariance (divided by n - 1) makes it comparable between
    sample sizes; classes with fewer than two images get NaN.
    """
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"features must be (N, D) and labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}")
    spread = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    f = features.detach().double().cpu()
    labels = labels.cpu()
    for c in range(num_classes):
        fc = f[labels == c]                                              # (n_c, D)
        if fc.shape[0] >= 2:
            spread[c] = ((fc - fc.mean(0)) ** 2).sum() / (fc.shape[0] - 1)
    return spread


def relative_spread(features: torch.Tensor, probs: torch.Tensor, real_spread: torch.Tensor,
                    threshold: float = CONFIDENCE_THRESHOLD) -> float:
    """mean_c spread[c] / real_spread[c] over the images read as digit c with max_y p(y | x) > threshold.

    features (N, D) and probs (N, C) of the same images; real_spread (C,) from class_feature_spread of real
    digits. Classes with fewer than two confident images are left out; NaN if none has two.
    """
    sure = probs.max(1).values > threshold                                               # (N,) recognisable digits
    spread = class_feature_spread(features[sure], probs.argmax(1)[sure], real_spread.shape[0])
    return float((spread / real_spread.double()).nanmean())


def guidance_sweep(model: Backbone, schedule: Schedule, x_T: torch.Tensor, labels: torch.Tensor, ws: Sequence[float],
                   classifier: MNISTClassifier, reference_features: torch.Tensor, real_spread: torch.Tensor,
                   num_steps: int = 20, seed: int = 0, progress: bool = True) -> tuple[list[dict], dict]:
    """Classifier-free guidance with each weight w from the same x_T and labels (DDIM, eta = 0).

    Returns (rows, images): rows add to score_samples the relative within-class spread
    mean_c spread_generated[c] / real_spread[c], where the images of class c are those the classifier
    reads as digit c with confidence (max_y p(y | x) > metrics.CONFIDENCE_THRESHOLD): 1 means the
    recognisable digits are as varied as real digits of their class. Classes with fewer than two such
    images are left out of the mean. images maps w to the samples (B, C, H, W).
    Grouping by the label asked for would mix digits when guidance is weak (at w = 0 the label is
    ignored), and unreadable images would add their own scatter: both would count as diversity.
    """
    rows, images = [], {}
    for w in tqdm(list(ws), desc="guidance weights", disable=not progress):
        x, seconds = timed(ddim_images, model, schedule, x_T, num_steps, 0.0, seed, labels, w)
        images[w] = x
        row = score_row(x, seconds, classifier, reference_features, labels, sampler="DDIM", steps=num_steps, w=w)
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
