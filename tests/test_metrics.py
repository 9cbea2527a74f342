"""diffusion_lib.metrics: the Frechet distance against closed forms, the per-image quantities on
hand-made probabilities, and the shipped classifier on real MNIST test images."""
import math

import pytest
import torch

from diffusion_lib.measure.metrics import (CLASSIFIER_PATH, MNISTClassifier, class_feature_spread, class_histogram,
                                           classifier_features, classify, classify_features, confident_share,
                                           effective_classes, frechet_distance, frechet_distance_gaussians,
                                           gaussian_statistics, guided_accuracy, load_classifier, mnist_test_features,
                                           reference_scores, relative_spread, score_samples, sqrtm_psd)


def random_covariance(d: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


# ----------------------------------------------------------------------------- Frechet distance

def test_sqrtm_psd_squares_back():
    S = random_covariance(6, torch.Generator().manual_seed(0))
    root = sqrtm_psd(S)
    torch.testing.assert_close(root @ root, S)
    torch.testing.assert_close(root, root.T)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    f = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    assert abs(frechet_distance(f, f)) < 1e-6


def test_frechet_distance_one_dimension():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    d = frechet_distance_gaussians(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[9.0]]))
    assert d == pytest.approx(3.0 ** 2 + (2.0 - 3.0) ** 2, abs=1e-9)


def test_frechet_distance_diagonal_covariances():
    # Commuting covariances diag(a), diag(b): |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    a, b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    mu_1, mu_2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    expected = float(((mu_1 - mu_2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance_gaussians(mu_1, torch.diag(a), mu_2, torch.diag(b)) == pytest.approx(expected, abs=1e-9)


def test_frechet_distance_rotated_covariance_against_identity():
    # S1 = I, S2 = R diag(b) R^T (not diagonal): tr(I) + tr(S2) - 2 tr(S2^1/2) = sum_i (1 - sqrt(b_i))^2
    b = torch.tensor([4.0, 0.09], dtype=torch.float64)
    R = rotation(0.7)
    S_2 = R @ torch.diag(b) @ R.T
    zero = torch.zeros(2, dtype=torch.float64)
    expected = float(((1 - b.sqrt()) ** 2).sum())
    assert frechet_distance_gaussians(zero, torch.eye(2, dtype=torch.float64), zero, S_2) == pytest.approx(expected, abs=1e-9)


def test_frechet_distance_is_symmetric():
    g = torch.Generator().manual_seed(2)
    S_1, S_2 = random_covariance(8, g), random_covariance(8, g)
    mu_1, mu_2 = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    d_12 = frechet_distance_gaussians(mu_1, S_1, mu_2, S_2)
    d_21 = frechet_distance_gaussians(mu_2, S_2, mu_1, S_1)
    assert d_12 > 0.1
    assert d_12 == pytest.approx(d_21, rel=1e-9)
    f_1, f_2 = torch.randn(400, 8, generator=g), 2 * torch.randn(300, 8, generator=g) + 1
    assert frechet_distance(f_1, f_2) == pytest.approx(frechet_distance(f_2, f_1), rel=1e-9)


def test_frechet_distance_from_samples_matches_the_closed_form():
    # 20,000 draws from two 2-d Gaussians with non-commuting covariances: the sample estimate is
    # close to the value computed from the true parameters.
    g = torch.Generator().manual_seed(3)
    mu_1, mu_2 = torch.tensor([0.0, 0.0], dtype=torch.float64), torch.tensor([1.0, -0.5], dtype=torch.float64)
    S_1 = torch.diag(torch.tensor([1.0, 0.25], dtype=torch.float64))
    S_2 = rotation(0.5) @ torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64)) @ rotation(0.5).T
    n = 20000
    f_1 = mu_1 + torch.randn(n, 2, generator=g, dtype=torch.float64) @ sqrtm_psd(S_1)
    f_2 = mu_2 + torch.randn(n, 2, generator=g, dtype=torch.float64) @ sqrtm_psd(S_2)
    expected = frechet_distance_gaussians(mu_1, S_1, mu_2, S_2)
    assert frechet_distance(f_1, f_2) == pytest.approx(expected, rel=0.05)


def test_gaussian_statistics_are_the_unbiased_estimates():
    f = torch.randn(50, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    mu, S = gaussian_statistics(f)
    torch.testing.assert_close(mu, f.mean(0))
    torch.testing.assert_close(S, torch.cov(f.T))


# ----------------------------------------------------------------------------- per-image quantities

PROBS = torch.tensor([[0.95, 0.05] + [0.0] * 8,      # a confident 0
                      [0.6, 0.4] + [0.0] * 8,        # an unsure 0
                      [0.0] * 7 + [0.92, 0.08, 0.0],  # a confident 7
                      [0.0] * 9 + [1.0]])            # a confident 9


def test_guided_accuracy():
    assert guided_accuracy(PROBS, torch.tensor([0, 0, 7, 9])) == 1.0
    assert guided_accuracy(PROBS, torch.tensor([0, 1, 7, 3])) == 0.5


def test_confident_share():
    assert confident_share(PROBS) == 0.75
    assert confident_share(PROBS, threshold=0.99) == 0.25


def test_class_histogram_and_effective_classes():
    histogram = class_histogram(PROBS)
    assert histogram.tolist() == [2, 0, 0, 0, 0, 0, 0, 1, 0, 1]
    assert effective_classes(torch.full((10,), 7)) == pytest.approx(10.0)
    assert effective_classes(torch.tensor([5] + [0] * 9)) == pytest.approx(1.0)
    assert effective_classes(histogram) == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))))


def test_classifier_shapes_and_clamping():
    model = MNISTClassifier().eval()
    x = torch.randn(5, 1, 28, 28)
    assert model(x).shape == (5, 10)
    assert classifier_features(x, model).shape == (5, 128)
    probs = classify(x, model)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    torch.testing.assert_close(probs, classify(x.clamp(-1, 1), model))   # inputs are clamped to [-1, 1]
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model.features(torch.zeros(2, 28, 28))


def test_classify_is_the_head_on_the_features():
    torch.manual_seed(0)
    model = MNISTClassifier(width=4).eval()
    x = torch.rand(7, 1, 28, 28) * 2 - 1
    features = classifier_features(x, model, batch_size=3)
    assert torch.equal(classify(x, model, batch_size=3), classify_features(features, model, batch_size=3))
    with torch.no_grad():
        torch.testing.assert_close(classify(x, model), model(x).softmax(1))      # the whole forward pass at once


# ----------------------------------------------------------------------------- within-class spread

def test_class_feature_spread_is_the_trace_of_each_class_covariance():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(60, 5, generator=g, dtype=torch.float64) * torch.arange(1, 6)
    labels = torch.arange(60) % 3
    spread = class_feature_spread(features, labels, num_classes=4)
    for c in range(3):
        assert spread[c] == pytest.approx(float(torch.cov(features[labels == c].T).trace()), rel=1e-12)
    assert math.isnan(spread[3])                                         # no image of class 3
    same = class_feature_spread(features[:1].expand(10, -1), torch.zeros(10, dtype=torch.long), 1)
    assert float(same[0]) == 0.0                                         # ten copies: no spread at all
    with pytest.raises(ValueError):
        class_feature_spread(features, labels[:-1])


def test_relative_spread_counts_confident_images_by_the_digit_read():
    features = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 4.0], [100.0, 100.0], [5.0, 5.0]],
                            dtype=torch.float64)
    probs = torch.tensor([[0.95, 0.05, 0.0], [0.95, 0.05, 0.0],      # two confident 0s, 2 apart: spread 2
                          [0.02, 0.98, 0.0], [0.02, 0.98, 0.0],      # two confident 1s, 4 apart: spread 8
                          [0.5, 0.5, 0.0],                           # unreadable: left out
                          [0.0, 0.0, 1.0]])                          # a lone 2: class left out of the mean
    real = torch.tensor([1.0, 4.0, 7.0])
    assert relative_spread(features, probs, real) == pytest.approx((2.0 / 1.0 + 8.0 / 4.0) / 2)
    assert math.isnan(relative_spread(features, probs, real, threshold=0.99))



# ----------------------------------------------------------------------------- the shipped classifier on real digits

@pytest.fixture(scope="module")
def mnist_test():
    from diffusion_lib.data import MNISTNotFoundError, load_mnist
    try:
        images, labels = load_mnist(train=False)
    except MNISTNotFoundError as e:
        pytest.skip(f"MNIST is not available: {e}")
    return images[:2000], labels[:2000]


def test_shipped_classifier_loads_with_weights_only():
    checkpoint = torch.load(CLASSIFIER_PATH, map_location="cpu", weights_only=True)
    assert checkpoint["arch"]["name"] == "mnist_classifier"
    assert CLASSIFIER_PATH.stat().st_size < 5 * 2 ** 20


def test_shipped_classifier_reads_real_digits(mnist_test):
    # Measured on the first 2,000 test images: accuracy 0.9855, confident share 0.959.
    images, labels = mnist_test
    classifier = load_classifier()
    probs = classify(images, classifier)
    assert guided_accuracy(probs, labels) > 0.97
    assert confident_share(probs) > 0.93


def test_shipped_classifier_is_not_confident_on_non_digits():
    # Without outlier exposure, pure noise was classified as an 8 with p > 0.99.
    classifier = load_classifier()
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(100, 1, 28, 28, generator=g)
    blank = -torch.ones(10, 1, 28, 28)
    assert confident_share(classify(noise, classifier)) < 0.05
    assert confident_share(classify(blank, classifier)) == 0.0


def test_real_digits_score_near_the_test_set(mnist_test):
    # 1,000 test images against the other 1,000: Frechet distance 8.0 measured, all ten classes present.
    images, _ = mnist_test
    classifier = load_classifier()
    reference = classifier_features(images[1000:], classifier)
    scores = score_samples(images[:1000], classifier, reference)
    assert scores["frechet_distance"] < 20
    assert scores["effective_classes"] > 9.5


def test_reference_scores_from_one_pass_over_the_test_set(mnist_test):
    # A small random classifier (cheap): every number recomputed from the public functions, independently.
    from diffusion_lib.data import load_mnist
    torch.manual_seed(0)
    classifier = MNISTClassifier(width=4).eval()
    ours = reference_scores(classifier, n=50, seed=3, with_features=True)
    test_images, test_labels = load_mnist(train=False)
    train_images, _ = load_mnist(train=True)
    probs = classify(test_images, classifier)
    features = mnist_test_features(classifier)
    idx = torch.randperm(60000, generator=torch.Generator().manual_seed(3))[:50]
    assert ours["test_accuracy"] == guided_accuracy(probs, test_labels)
    assert ours["test_confident_share"] == confident_share(probs)
    assert ours["test_effective_classes"] == effective_classes(class_histogram(probs))
    assert ours["train_vs_test_n"] == 50
    train_features = classifier_features(train_images[idx], classifier)
    assert ours["train_vs_test_frechet_distance"] == frechet_distance(train_features, features)
    assert torch.equal(ours["test_features"], features) and torch.equal(ours["test_labels"], test_labels)
    assert torch.equal(ours["test_class_spread"], class_feature_spread(features, test_labels))
    plain = reference_scores(classifier, n=50, seed=3)                     # numbers only: JSON and checkpoints
    assert plain == {k: v for k, v in ours.items() if not isinstance(v, torch.Tensor)}
    assert all(isinstance(v, (int, float)) for v in plain.values())


# ----------------------------------------------------------------------------- memorisation

def test_nearest_neighbours_against_brute_force():
    from diffusion_lib.measure.metrics import nearest_neighbours
    g = torch.Generator().manual_seed(3)
    references = torch.randn(257, 1, 4, 4, generator=g)
    queries = torch.randn(9, 1, 4, 4, generator=g)
    distances, indices = nearest_neighbours(queries, references, batch_size=50)          # batches that split the set
    for q, d, i in zip(queries, distances, indices):
        brute = [float(((q - r) ** 2).sum().sqrt()) for r in references]
        assert int(i) == min(range(len(brute)), key=brute.__getitem__)
        assert abs(float(d) - min(brute)) < 1e-6
    # a copy is found, at distance 0, whatever batch it falls in
    copies = references[[0, 49, 50, 256]]
    d, i = nearest_neighbours(copies, references, batch_size=50)
    assert i.tolist() == [0, 49, 50, 256] and torch.allclose(d, torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="same size per item"):
        nearest_neighbours(queries, torch.randn(3, 5))


def test_nearest_training_images_finds_copies_in_pixels_and_features():
    from diffusion_lib.measure.metrics import MNISTClassifier, nearest_training_images
    torch.manual_seed(0)
    classifier = MNISTClassifier().eval()
    training = torch.rand(40, 1, 28, 28) * 2 - 1
    near_copies = training[[3, 17]] + 0.01 * torch.randn(2, 1, 28, 28)
    found = nearest_training_images(near_copies, training, classifier)
    for space in ("pixels", "features"):
        distances, indices = found[space]
        assert indices.tolist() == [3, 17], space
    far = nearest_training_images(torch.rand(2, 1, 28, 28) * 2 - 1, training, classifier)
    assert bool((far["pixels"][0] > 10 * found["pixels"][0]).all())
