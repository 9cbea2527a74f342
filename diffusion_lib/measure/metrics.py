"""Numbers for generated digits, from a small MNIST classifier trained by the project.

Pictures say whether samples look like digits; these functions say how often, and how varied.
Everything goes through one frozen classifier (shipped at diffusion_lib/weights/classifier.pt):

    p(y | x)            the classifier's softmax over the ten digits, one row per image
    guided accuracy     share of images whose argmax is the label that was asked for
    confident share     share of images with max_y p(y | x) > 0.9
    class histogram     how many images fall in each predicted class
    effective classes   exp(entropy of the histogram): 10 = every digit equally often, 1 = one digit
    within-class spread tr Cov(features) of the images of each digit; relative to real digits of that digit
    Frechet distance    || mu_1 - mu_2 ||^2 + tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2})
                        between Gaussians fitted to the classifier's penultimate features (the
                        construction of FID, Heusel et al. 2017, with an MNIST classifier in place
                        of Inception)

None of these is a verdict. The classifier was trained (the recipe is benchmarks/train_classifier.py)
on real digits, plus noise, blobs and blank pages that it learnt to answer with "no idea" (p = 0.1
for every digit), so that an untrained model does not score as confident. It can still be fooled
by odd images it never saw, and it knows nothing of sharpness it did not need to classify. Scores are comparable only
between runs that use the same classifier, the same number of samples and the same reference set.

Images are (B, 1, 28, 28) in [-1, 1], the range of diffusion_lib.data. Samplers can overshoot it,
so `classify` and `classifier_features` clamp their input to [-1, 1] first (said again where it happens).
"""
from __future__ import annotations

import os

import torch
from torch import nn
import torch.nn.functional as F

from ..checkpoints import CheckpointError, load_checkpoint
from ..pretrained import WEIGHTS_DIR

CLASSIFIER_PATH = WEIGHTS_DIR / "classifier.pt"
CONFIDENCE_THRESHOLD = 0.9


# ----------------------------------------------------------------------------- the classifier

class MNISTClassifier(nn.Module):
    """A small CNN: two conv-conv-maxpool stages (28 -> 14 -> 7), a 128-d feature layer, 10 logits.

    `features(x)` returns the 128-d penultimate activations that the Frechet distance compares.
    """

    name = "mnist_classifier"

    def __init__(self, width: int = 16, feature_dim: int = 128):
        super().__init__()
        self.arch_kwargs = {"width": width, "feature_dim": feature_dim}
        c1, c2 = width, 2 * width
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.Conv2d(c1, c1, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                            # 28 -> 14
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                            # 14 -> 7
        )
        self.fc = nn.Linear(c2 * 7 * 7, feature_dim)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, 10)

    @property
    def arch(self) -> dict:
        return {"name": self.name, "kwargs": dict(self.arch_kwargs)}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, feature_dim) of images x (B, 1, 28, 28) in [-1, 1]."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"the classifier expects images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        h = self.conv(x)                                                # (B, 2 width, 7, 7)
        return F.relu(self.fc(h.flatten(1)))                            # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 10)."""
        return self.head(self.dropout(self.features(x)))


def load_classifier(path: str | os.PathLike = CLASSIFIER_PATH, device: torch.device | str = "cpu") -> MNISTClassifier:
    """The shipped classifier (or one at `path`), loaded with weights_only=True, in eval mode."""
    checkpoint = load_checkpoint(path)
    if checkpoint["arch"]["name"] != MNISTClassifier.name:
        raise CheckpointError(f"{path} holds a {checkpoint['arch']['name']!r}, not an MNIST classifier")
    model = MNISTClassifier(**checkpoint["arch"]["kwargs"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


# ----------------------------------------------------------------------------- classifier outputs

def _batched(fn, images: torch.Tensor, classifier: MNISTClassifier, batch_size: int) -> torch.Tensor:
    device = next(classifier.parameters()).device
    outputs = []
    with torch.no_grad():
        for chunk in images.split(batch_size):
            x = chunk.to(device=device, dtype=torch.float32).clamp(-1, 1)   # samplers may overshoot [-1, 1]
            outputs.append(fn(x).cpu())
    return torch.cat(outputs)


def classifier_features(images: torch.Tensor, classifier: MNISTClassifier, batch_size: int = 500) -> torch.Tensor:
    """Penultimate features (N, feature_dim) of images (N, 1, 28, 28), clamped to [-1, 1] first."""
    classifier.eval()
    return _batched(classifier.features, images, classifier, batch_size)


def classify_features(features: torch.Tensor, classifier: MNISTClassifier, batch_size: int = 500) -> torch.Tensor:
    """p(y | x) (N, 10) from the penultimate features (N, feature_dim) of the images: the classifier's head, then
    softmax (dropout is off in eval mode). Lets one pass over the images give both features and probabilities."""
    classifier.eval()
    device = next(classifier.parameters()).device
    with torch.no_grad():
        return torch.cat([classifier.head(chunk.to(device)).softmax(dim=1).cpu()
                          for chunk in features.split(batch_size)])


def classify(images: torch.Tensor, classifier: MNISTClassifier, batch_size: int = 500) -> torch.Tensor:
    """p(y | x): softmax probabilities (N, 10) of images (N, 1, 28, 28), clamped to [-1, 1] first."""
    return classify_features(classifier_features(images, classifier, batch_size), classifier, batch_size)


def classifier_accuracy(images: torch.Tensor, labels: torch.Tensor, classifier: MNISTClassifier) -> float:
    """Share of images whose predicted class is their true label (the classifier's own test accuracy)."""
    return guided_accuracy(classify(images, classifier), labels)


# ----------------------------------------------------------------------------- one function per quantity

def guided_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images classified as the label they were generated for: mean(argmax_y p(y | x) == label).

    Tells whether a conditional model draws the digit it is asked for. Cannot tell whether the
    images look good (a faint but correct stroke counts), nor whether they are varied: a model
    that draws one perfect 7 for every request of a 7 scores 1.0.
    """
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"probs must be (N, 10) and labels (N,), got {tuple(probs.shape)} and {tuple(labels.shape)}")
    return float((probs.argmax(dim=1) == labels.to(probs.device)).float().mean())


def confident_share(probs: torch.Tensor, threshold: float = CONFIDENCE_THRESHOLD) -> float:
    """Share of images with max_y p(y | x) > threshold (0.9): images the classifier reads as one clear digit.

    Tells how many samples are recognisable digits at all; real MNIST test images give the ceiling
    to compare with. Cannot tell which digits they are (a model that only draws 1s scores high)
    nor catch images that fool the classifier with confidence.
    """
    return float((probs.max(dim=1).values > threshold).float().mean())


def class_histogram(probs: torch.Tensor) -> torch.Tensor:
    """Counts (10,) of predicted classes argmax_y p(y | x).

    Shows mode collapse (an unconditional model that favours a few digits); MNIST's own classes
    are close to uniform (between 892 and 1135 of each digit in the 10,000 test images). Cannot
    tell whether the images in a bin are good digits: look at confident_share alongside.
    """
    return torch.bincount(probs.argmax(dim=1), minlength=probs.shape[1])


def effective_classes(histogram: torch.Tensor) -> float:
    """exp(entropy) of the class histogram, in [1, 10]: 10 if all digits are equally frequent, 1 if only one is drawn.

    One number for diversity across classes. Cannot see diversity within a class (ten copies of
    one image per digit still score 10).
    """
    p = histogram.double() / histogram.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


# ----------------------------------------------------------------------------- Frechet distance

def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean mu (D,) and covariance S (D, D) (unbiased, divided by N - 1) of features (N, D), in float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got {tuple(features.shape)}")
    f = features.detach().double().cpu()
    mu = f.mean(dim=0)                                                  # (D,)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)                   # (D, D)


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix: S = V diag(l) V^T -> V diag(sqrt(l)) V^T.

    Eigenvalues below 0, which only rounding can produce for a PSD matrix, are set to 0.
    """
    symmetric = (matrix + matrix.T) / 2
    eigenvalues, eigenvectors = torch.linalg.eigh(symmetric)
    return eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance_gaussians(mu_1: torch.Tensor, S_1: torch.Tensor, mu_2: torch.Tensor, S_2: torch.Tensor) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mu_1, S_1) and N(mu_2, S_2):

        || mu_1 - mu_2 ||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2})

    S_1^{1/2} S_2 S_1^{1/2} is symmetric PSD, so both square roots come from an eigendecomposition.
    """
    mu_1, S_1, mu_2, S_2 = (a.double() for a in (mu_1, S_1, mu_2, S_2))
    root_1 = sqrtm_psd(S_1)
    cross = torch.linalg.eigvalsh(root_1 @ S_2 @ root_1).clamp(min=0).sqrt().sum()   # tr((S_1^1/2 S_2 S_1^1/2)^1/2)
    return float(((mu_1 - mu_2) ** 2).sum() + torch.trace(S_1) + torch.trace(S_2) - 2 * cross)


def frechet_distance(features_1: torch.Tensor, features_2: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two sets of classifier features (N_1, D) and (N_2, D).

    0 for identical sets, larger when the samples' features differ from the reference's in mean or
    spread (missing digits, odd strokes, too little variety). It is biased upwards for small N:
    500 real training images against the test set do not score 0, so compare with that reference
    at the same N, never with 0. Only the first two moments of the features count, and only
    what this classifier's features encode.
    """
    return frechet_distance_gaussians(*gaussian_statistics(features_1), *gaussian_statistics(features_2))


# ----------------------------------------------------------------------------- everything for one set of samples

def score_samples(images: torch.Tensor, classifier: MNISTClassifier, reference_features: torch.Tensor,
                  labels: torch.Tensor | None = None) -> dict:
    """All of the above for generated images (N, 1, 28, 28): a dict of plain numbers.

    reference_features: classifier_features of the reference set (the MNIST test set);
    labels: the labels the images were generated for (conditional models), giving guided_accuracy.
    """
    probs = classify(images, classifier)
    histogram = class_histogram(probs)
    scores = {"n": int(images.shape[0]),
              "confident_share": confident_share(probs),
              "frechet_distance": frechet_distance(classifier_features(images, classifier), reference_features),
              "class_histogram": histogram.tolist(),
              "effective_classes": effective_classes(histogram)}
    if labels is not None:
        scores["guided_accuracy"] = guided_accuracy(probs, labels)
    return scores


def mnist_test_features(classifier: MNISTClassifier, root: str | os.PathLike | None = None) -> torch.Tensor:
    """classifier_features of the 10,000 MNIST test images (10000, feature_dim): the Frechet reference set."""
    from ..data import load_mnist
    images, _ = load_mnist(train=False, root=root)
    return classifier_features(images, classifier)


def reference_scores(classifier: MNISTClassifier, n: int = 500, seed: int = 0, root: str | os.PathLike | None = None,
                     with_features: bool = False) -> dict:
    """What real data scores, from one pass of the classifier over the MNIST test set:

        test_accuracy, test_confident_share, test_effective_classes   of the 10,000 test images
        train_vs_test_n, train_vs_test_frechet_distance               n random training images (drawn from `seed`)
                                                                      against the test set: the floor that n
                                                                      generated images can hope for

    with_features=True adds the tensors that the sweeps compare with: test_features (10000, feature_dim),
    test_labels (10000,) and test_class_spread (10,), the within-class spread of real digits
    (class_feature_spread). Without them the dict holds plain numbers only, ready for JSON or a checkpoint.
    """
    from ..data import load_mnist
    test_images, test_labels = load_mnist(train=False, root=root)
    train_images, _ = load_mnist(train=True, root=root)
    features = classifier_features(test_images, classifier)                             # (10000, D)
    probs = classify_features(features, classifier)                                     # (10000, 10)
    idx = torch.randperm(train_images.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    fd = frechet_distance(classifier_features(train_images[idx], classifier), features)
    scores = {"test_accuracy": guided_accuracy(probs, test_labels), "test_confident_share": confident_share(probs),
              "test_effective_classes": effective_classes(class_histogram(probs)),
              "train_vs_test_n": n, "train_vs_test_frechet_distance": fd}
    if with_features:
        scores.update(test_features=features, test_labels=test_labels,
                      test_class_spread=class_feature_spread(features, test_labels))
    return scores


# ----------------------------------------------------------------------------- variety within a class

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
    digits (reference_scores(..., with_features=True)["test_class_spread"]). 1 means the recognisable digits
    are as varied as real digits of their class. Classes with fewer than two confident images are left out;
    NaN if none has two.
    """
    sure = probs.max(1).values > threshold                                               # (N,) recognisable digits
    spread = class_feature_spread(features[sure], probs.argmax(1)[sure], real_spread.shape[0])
    return float((spread / real_spread.double()).nanmean())


# ----------------------------------------------------------------------------- memorisation

def nearest_neighbours(queries: torch.Tensor, references: torch.Tensor, batch_size: int = 4096
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query (N, ...) its nearest reference (M, ...) in Euclidean distance over all entries, exactly:
    (distances (N,), indices (N,) into references), on the queries' device. References are compared in batches of
    batch_size."""
    q = queries.detach().flatten(1).double()
    r = references.detach().flatten(1).double()
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries and references must have the same size per item, got {tuple(queries.shape[1:])} "
                         f"and {tuple(references.shape[1:])}")
    if r.shape[0] == 0:
        raise ValueError("references is empty: give at least one reference")
    r = r.to(q.device)
    best = torch.full((q.shape[0],), float("inf"), dtype=torch.float64, device=q.device)
    index = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    for start in range(0, r.shape[0], batch_size):
        d = torch.cdist(q, r[start:start + batch_size])                            # (N, batch)
        value, where = d.min(dim=1)
        closer = value < best
        best, index = torch.where(closer, value, best), torch.where(closer, where + start, index)
    return best, index


def nearest_training_images(images: torch.Tensor, training_images: torch.Tensor, classifier: MNISTClassifier,
                            training_features: torch.Tensor | None = None) -> dict:
    """Does a model copy its training digits? For each image (N, 1, 28, 28) its nearest training image, in pixel
    space and in the classifier's feature space: {"pixels": (distances, indices), "features": (distances, indices)}.
    A copy has distance about 0; how far real digits lie from their nearest training digit is the yardstick (call
    this on held-out test digits for it). training_features: classifier_features(training_images, ...), if at hand."""
    if training_features is None:
        training_features = classifier_features(training_images, classifier)
    return {"pixels": nearest_neighbours(images.clamp(-1, 1), training_images),
            "features": nearest_neighbours(classifier_features(images, classifier), training_features)}


__all__ = ["MNISTClassifier", "load_classifier", "classify", "classifier_features", "classify_features",
           "classifier_accuracy", "guided_accuracy", "confident_share", "class_histogram", "effective_classes",
           "gaussian_statistics", "sqrtm_psd", "frechet_distance_gaussians", "frechet_distance", "score_samples",
           "mnist_test_features", "reference_scores", "class_feature_spread", "relative_spread", "nearest_neighbours",
           "nearest_training_images", "CLASSIFIER_PATH"]
