"""Masked diffusion (diffusion_lib.masked): the forward process, the ELBO weight, the unmasking posterior, and the
samplers against a tiny distribution known exactly, with a perfect denoiser computed by enumeration."""
import itertools
import math

import pytest
import torch

from diffusion_lib import masked
from diffusion_lib.masked import (alpha, alpha_derivative, all_masked, ancestral_unmask_progressive,
                                  autoregressive_nll, autoregressive_sample_progressive, confidence_unmask_progressive,
                                  continuous_nelbo, discrete_nelbo, elbo_weight, final_tokens,
                                  fixed_order_unmask_progressive, masked_counts, masked_cross_entropy,
                                  masked_diffusion_loss, q_mask, step_times, unmask_probability)

from _tiny import one_thread  # noqa: F401 (one_thread is autouse)


# ----------------------------------------------------------------------------- the schedule and the forward process

@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_masked_share_is_one_minus_alpha_by_sampling(schedule):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 5, (4000, 50), generator=g)                        # 200,000 tokens per time
    for t in (0.0, 0.1, 0.3, 0.5, 0.8, 1.0):
        x_t = q_mask(x0, torch.full((4000,), t), 5, schedule, g)
        share = float((x_t == 5).float().mean())
        expected = 1 - float(alpha(torch.tensor(t), schedule))
        # binomial standard error sqrt(p (1 - p) / 200000) <= 0.0012: 5 of them
        assert abs(share - expected) < 0.006, (t, share, expected)
        kept = x_t != 5
        assert torch.equal(x_t[kept], x0[kept])                               # unmasked tokens are untouched


def test_schedule_ends_and_hand_values():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(alpha(t, "linear"), torch.tensor([1.0, 0.75, 0.5, 0.0], dtype=torch.float64))
    # cosine: 1 - cos(pi/2 (1 - t)); at t = 0.5, 1 - cos(pi/4) = 1 - 0.70711
    assert torch.allclose(alpha(t, "cosine"), torch.tensor([1.0, 1 - math.cos(3 * math.pi / 8), 1 - 0.5 ** 0.5, 0.0],
                                                           dtype=torch.float64))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_alpha_derivative_matches_finite_differences(schedule):
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    numeric = (alpha(t + h, schedule) - alpha(t - h, schedule)) / (2 * h)
    assert torch.allclose(alpha_derivative(t, schedule), numeric, atol=1e-8)


def test_elbo_weight_by_hand():
    # linear: -alpha' / (1 - alpha) = 1 / t
    t = torch.tensor([0.1, 0.25, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(elbo_weight(t, "linear"), torch.tensor([10.0, 4.0, 2.0, 1.0], dtype=torch.float64))
    # cosine at t = 0.5: alpha' = -pi/2 sin(pi/4), 1 - alpha = cos(pi/4), so the weight is pi/2 tan(pi/4) = pi/2
    assert math.isclose(float(elbo_weight(torch.tensor(0.5, dtype=torch.float64), "cosine")), math.pi / 2, rel_tol=1e-12)


def test_unknown_schedule_and_bad_times_are_refused():
    with pytest.raises(ValueError, match="masking schedule"):
        alpha(torch.tensor(0.5), "sqrt")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        q_mask(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0.5, 1.5]), 4)
    with pytest.raises(ValueError, match="earlier time s"):
        unmask_probability(0.5, 0.5)


# ----------------------------------------------------------------------------- the unmasking posterior

def test_unmask_probability_by_hand():
    # linear, t = 0.75 -> s = 0.5: (alpha_s - alpha_t) / (1 - alpha_t) = (0.5 - 0.25) / 0.75 = 1/3
    assert math.isclose(float(unmask_probability(0.75, 0.5)), 1 / 3, rel_tol=1e-12)
    # the last step, s = 0, reveals everything; the first of K = 4 steps reveals a quarter
    assert float(unmask_probability(0.25, 0.0)) == 1.0
    assert math.isclose(float(unmask_probability(1.0, 0.75)), 0.25, rel_tol=1e-12)
    # cosine, t = 1 -> s = 0.5: alpha_s = 1 - cos(pi/4)
    assert math.isclose(float(unmask_probability(1.0, 0.5, "cosine")), 1 - 0.5 ** 0.5, rel_tol=1e-12)


def test_step_times_and_masked_counts():
    assert step_times(4) == [(1.0, 0.75), (0.75, 0.5), (0.5, 0.25), (0.25, 0.0)]
    assert masked_counts(12, 4) == [9, 6, 3, 0]
    assert masked_counts(12, 1) == [0]


class Constant(torch.nn.Module):
    """A 'network' whose logits are the same everywhere: x_theta = softmax(logits) at every position."""

    def __init__(self, logits, shape):
        super().__init__()
        self.logits, self.shape = torch.as_tensor(logits, dtype=torch.float32), shape

    def forward(self, x):
        return self.logits.to(x.device).expand(*x.shape, -1)


def test_ancestral_step_reveals_with_the_posterior_probability():
    net = Constant([0.0, 0.0], (40,))
    g = torch.Generator().manual_seed(1)
    steps = list(ancestral_unmask_progressive(net, all_masked(5000, (40,), 2), 2, 4, generator=g))
    # step 1 (t = 1 -> 0.75): 1/4 of the masked tokens; step 2 (0.75 -> 0.5): 1/3 of those left; ...
    for step, p in zip(steps, (0.25, 1 / 3, 0.5, 1.0)):
        was, now = (step.x_t == 2), (step.x_s == 2)
        revealed = float((was & ~now).sum() / was.sum())
        assert abs(revealed - p) < 0.01, (step.t, revealed, p)
        assert torch.equal(step.x_s[~was], step.x_t[~was])                   # revealed tokens never change
    assert not bool((steps[-1].x_s == 2).any())


def test_confidence_sampler_follows_the_schedule_and_reveals_the_most_confident():
    class Ramp(torch.nn.Module):          # position l is surer of token 0 the larger l is
        def forward(self, x):
            conf = torch.linspace(0, 5, x.shape[1])
            return torch.stack([conf, -conf], -1).expand(x.shape[0], -1, -1)
    steps = list(confidence_unmask_progressive(Ramp(), all_masked(3, (8,), 2), 2, 4, temperature=0))
    assert [int((s.x_s == 2).sum(1)[0]) for s in steps] == masked_counts(8, 4) == [6, 4, 2, 0]
    first = steps[0].x_s[0]
    assert (first != 2).nonzero().flatten().tolist() == [6, 7]                # the two most confident positions
    assert [s.nfe for s in steps] == [1, 2, 3, 4]
    noisy = list(confidence_unmask_progressive(Ramp(), all_masked(3, (8,), 2), 2, 4, temperature=0,
                                               choice_temperature=50.0, generator=torch.Generator().manual_seed(0)))
    assert [int((s.x_s == 2).sum(1)[0]) for s in noisy] == [6, 4, 2, 0]        # the same counts, a noisier order
    assert any((s.x_s[0] != 2).nonzero().flatten().tolist() != [6, 7] for s in noisy[:1])


# ----------------------------------------------------------------------------- a perfect denoiser on a known distribution

V, L = 2, 3
TABLE = torch.tensor([0.30, 0.02, 0.05, 0.13, 0.01, 0.19, 0.25, 0.05], dtype=torch.float64)   # p(x) over {0,1}^3
STRINGS = torch.tensor(list(itertools.product(range(V), repeat=L)))                          # (8, 3) in TABLE's order


class PerfectDenoiser(torch.nn.Module):
    """x_theta(x_l | x_t) = p(x_l | the unmasked tokens of x_t), by enumerating the 8 strings."""

    def forward(self, x):
        consistent = ((x[:, None, :] == STRINGS[None]) | (x[:, None, :] == V)).all(-1)        # (B, 8)
        weights = consistent.double() * TABLE                                                  # (B, 8)
        onehot = torch.nn.functional.one_hot(STRINGS, V).double()                             # (8, L, V)
        probs = torch.einsum("bs,slv->blv", weights, onehot)
        probs = probs / probs.sum(-1, keepdim=True)
        return probs.clamp_min(1e-30).log()                                                    # (B, L, V)


def string_index(x):
    return (x * torch.tensor([4, 2, 1])).sum(1)


def chi_square(samples, probabilities):
    counts = torch.bincount(string_index(samples), minlength=8).double()
    expected = probabilities * samples.shape[0]
    return float(((counts - expected) ** 2 / expected).sum())


CHI2_7_DOF_P001 = 24.32    # the 0.999 quantile of chi-square with 7 degrees of freedom


@pytest.mark.parametrize("sampler", ["fixed-order", "fixed-order-reversed", "ancestral-256"])
def test_perfect_denoiser_reproduces_the_distribution(sampler):
    g = torch.Generator().manual_seed(3)
    x = all_masked(20_000, (L,), V)
    net = PerfectDenoiser()
    if sampler == "fixed-order":
        steps = fixed_order_unmask_progressive(net, x, V, generator=g)
    elif sampler == "fixed-order-reversed":
        steps = fixed_order_unmask_progressive(net, x, V, order=[2, 1, 0], generator=g)
    else:                                # two tokens revealed in one step is rare: almost the exact chain
        steps = ancestral_unmask_progressive(net, x, V, 256, generator=g)
    assert chi_square(final_tokens(steps), TABLE) < CHI2_7_DOF_P001


def test_confidence_order_is_not_an_exact_sampler():
    """Revealing the most confident draw first favours likely tokens: even with one token per step (K = L) and a
    perfect denoiser, the samples are biased towards the mode (MaskGIT trades exactness for quality)."""
    g = torch.Generator().manual_seed(3)
    samples = final_tokens(confidence_unmask_progressive(PerfectDenoiser(), all_masked(20_000, (L,), V), V, 3,
                                                         generator=g))
    assert chi_square(samples, TABLE) > 10 * CHI2_7_DOF_P001
    share_of_mode = float((string_index(samples) == int(TABLE.argmax())).double().mean())
    assert share_of_mode > float(TABLE.max()) + 0.02


def test_one_step_gives_the_product_of_marginals_not_the_distribution():
    g = torch.Generator().manual_seed(4)
    samples = final_tokens(ancestral_unmask_progressive(PerfectDenoiser(), all_masked(20_000, (L,), V), V, 1,
                                                        generator=g))
    marginal_one = (TABLE[:, None] * STRINGS.double()).sum(0)                 # (L,) p(x_l = 1)
    product = torch.where(STRINGS.bool(), marginal_one, 1 - marginal_one).prod(1)
    assert chi_square(samples, product) < CHI2_7_DOF_P001
    assert chi_square(samples, TABLE) > 10 * CHI2_7_DOF_P001                  # and clearly not the true joint


def test_elbo_of_a_perfect_denoiser():
    net = PerfectDenoiser()
    x0 = STRINGS
    nll = -TABLE.log()                                                        # (8,) the true -log p(x)
    # K = 1: one step from all masked, weight 1: exactly the sum of the marginals' -log p(x_l)
    marginal_one = (TABLE[:, None] * STRINGS.double()).sum(0)
    marginals_nll = -torch.where(STRINGS.bool(), marginal_one, 1 - marginal_one).log().sum(1)
    assert torch.allclose(discrete_nelbo(net, x0, V, 1).double(), marginals_nll, rtol=1e-5)
    # the continuous-time bound is tight for the perfect denoiser: it averages the exact any-order factorisations
    g = torch.Generator().manual_seed(5)
    estimate = torch.stack([continuous_nelbo(net, x0, V, n_times=64, generator=g) for _ in range(40)]).mean(0)
    assert torch.allclose(estimate.double(), nll, rtol=0.05), (estimate, nll)
    # and more steps tighten the discrete bound towards it (averaged over the data)
    k2, k16 = (float((TABLE * torch.stack([discrete_nelbo(net, x0, V, k, generator=g) for _ in range(200)])
                      .mean(0).double()).sum()) for k in (2, 16))
    entropy = float((TABLE * nll).sum())
    assert float((TABLE * marginals_nll).sum()) > k2 > k16 > entropy - 0.01


# ----------------------------------------------------------------------------- losses and the autoregressive baseline

def test_masked_cross_entropy_counts_masked_positions_only():
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))   # (1, 3, 2)
    x0 = torch.tensor([[0, 0, 1]])
    x_t = torch.tensor([[2, 0, 2]])                                            # positions 0 and 2 masked
    assert torch.allclose(masked_cross_entropy(logits, x0, x_t, 2), torch.tensor([-math.log(0.5) - math.log(0.8)]))


def test_elbo_and_unweighted_loss_by_hand():
    net = Constant(torch.log(torch.tensor([0.25, 0.75])), (4,))
    x0 = torch.tensor([[1, 1, 0, 1]])
    t = torch.tensor([1.0])                                                   # everything masked, weight 1
    ce = -3 * math.log(0.75) - math.log(0.25)
    assert torch.allclose(masked_diffusion_loss(net, x0, 2, t=t), torch.tensor([ce]))
    assert torch.allclose(masked_diffusion_loss(net, x0, 2, t=t, weighting="none"), torch.tensor([ce / 4]))
    with pytest.raises(ValueError, match="weighting"):
        masked_diffusion_loss(net, x0, 2, t=t, weighting="snr")


def test_autoregressive_nll_is_the_sum_of_conditionals():
    torch.manual_seed(0)
    from diffusion_lib.token_networks import CharTransformer
    net = CharTransformer(vocab_size=3, length=4, width=16, depth=1, heads=2, causal=True).eval()
    x0 = torch.tensor([[2, 0, 1, 1]])
    by_hand = 0.0
    for k in range(4):
        inputs = torch.tensor([[3] + x0[0, :k].tolist() + [0] * (3 - k)])     # later positions cannot matter (causal)
        by_hand -= float(net(inputs)[0, k].log_softmax(-1)[x0[0, k]])
    assert math.isclose(float(autoregressive_nll(net, x0, 3)), by_hand, rel_tol=1e-5)
    steps = list(autoregressive_sample_progressive(net, 5, 4, 3, torch.Generator().manual_seed(0)))
    assert len(steps) == 4 and steps[-1].nfe == 4 and bool((steps[-1].x_s < 3).all())


def test_samplers_draw_the_same_on_a_generator_seed():
    net = Constant([0.0, 0.3, -0.2], (6,))
    a, b = (final_tokens(ancestral_unmask_progressive(net, all_masked(4, (6,), 3), 3, 3,
                                                      generator=torch.Generator().manual_seed(9))) for _ in range(2))
    assert torch.equal(a, b)
    assert masked.bits_per_token(torch.tensor([math.log(2) * 6]), 6) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- device rules (CUDA emulated on the CPU)

def test_losses_and_samplers_follow_the_data_device():
    from cuda_emulation import EmulatedCuda
    from diffusion_lib.token_networks import CharTransformer, TokenUNet

    torch.manual_seed(0)
    text = CharTransformer(vocab_size=5, length=6, width=16, depth=1, heads=2).eval()
    causal = CharTransformer(vocab_size=5, length=6, width=16, depth=1, heads=2, causal=True).eval()
    digits = TokenUNet(vocab_size=2, embed_dim=4, base=8).eval()
    x0 = torch.randint(0, 5, (4, 6), generator=torch.Generator().manual_seed(1))

    def run(device):
        g = lambda: torch.Generator().manual_seed(2)                           # noqa: E731 (CPU generators, always)
        t, c, u = text.to(device), causal.to(device), digits.to(device)
        x = x0.to(device)
        out = [masked_diffusion_loss(t, x, 5, generator=g()), discrete_nelbo(t, x, 5, 3, generator=g()),
               autoregressive_nll(c, x, 5)]
        for sampler in (ancestral_unmask_progressive, confidence_unmask_progressive):
            out.append(final_tokens(sampler(t, all_masked(3, (6,), 5, device), 5, 3, generator=g())))
        out.append(final_tokens(fixed_order_unmask_progressive(t, all_masked(3, (6,), 5, device), 5, generator=g())))
        out.append(final_tokens(autoregressive_sample_progressive(c, 3, 6, 5, g(), device=device)))
        out.append(final_tokens(confidence_unmask_progressive(u, all_masked(2, (28, 28), 2, device), 2, 2,
                                                              generator=g())))
        return [o.detach() for o in out]

    on_cpu = run("cpu")
    with EmulatedCuda():
        on_cuda = run("cuda")
        assert all(o.device.type == "cuda" for o in on_cuda)
        on_cuda = [o.cpu() for o in on_cuda]
    for a, b in zip(on_cpu, on_cuda):                                          # the same draws on every device
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
