"""Masked (absorbing-state) diffusion over tokens (notebook 14): the discrete counterpart of notebooks 01-11.

Tokens are integers; the Gaussian step convention of samplers.py does not fit them, so this module has its own
forward process, loss and samplers, one function per equation (MDLM, Sahoo et al. 2024; Shi et al. 2024;
Austin et al. 2021's absorbing state).

Notation (one name per symbol):

    x_0        clean tokens, integers in [0, V - 1], shape (B, *shape): (B, L) characters or (B, 28, 28) pixels
    m          the [MASK] token, id V (one past the vocabulary): `mask_id`
    t          continuous time in [0, 1]: t = 0 is the clean data, t = 1 is all [MASK]
    alpha_t    probability that a token is still clean at time t (alpha_0 = 1, alpha_1 = 0): `alpha(t)`
    x_t        x_0 with each token replaced by m independently with probability 1 - alpha_t: `q_mask`
    s < t      an earlier time, the next state of a sampler walking from t = 1 down to 0
    x_theta    the network's distribution over the clean token at every position, softmax of its logits (B, *shape, V)

A network here is any callable `network(x_t) -> logits (B, *shape, V)` over the V clean tokens (never m). It is
not told t: the share of [MASK] tokens in x_t tells it (MDLM shows that this costs nothing). Its predictions at
the positions that are not masked are ignored ("carry-over": a revealed token never changes).

    alpha, alpha_derivative      the masking schedule alpha_t and d alpha_t / dt ("linear": 1 - t; "cosine")
    q_mask                       sample q(x_t | x_0)
    elbo_weight                  -alpha'_t / (1 - alpha_t), the continuous-time ELBO's weight (1 / t when linear)
    masked_cross_entropy         sum over the masked positions of -log x_theta(x_0)
    masked_diffusion_loss        the weighted loss (an upper bound on -log p(x_0), in nats), or the unweighted one
    discrete_nelbo               the K-step ELBO: the bound on -log p(x_0) of the K-step ancestral sampler
    unmask_probability           q(x_s = x_0 | x_t = m, x_0) = (alpha_s - alpha_t) / (1 - alpha_t)
    ancestral_unmask_progressive     each masked token revealed with that probability, K steps (yields states)
    confidence_unmask_progressive    the most confident masked tokens revealed first (MaskGIT; LLaDA's low-confidence
                                     remasking), as many per step as the schedule says (yields states)
    fixed_order_unmask_progressive   one token per step in a fixed order: the masked model as an autoregressive one
    autoregressive_nll, autoregressive_sample_progressive   a causal model's exact likelihood and its sampler

Randomness: every draw is made on the CPU from an optional torch.Generator and moved to the data's device, so a
seed gives the same samples on every device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from .device import known_within, mark_known_range

MASKING_SCHEDULES = ("linear", "cosine")
LN2 = math.log(2.0)
Network = Callable[[torch.Tensor], torch.Tensor]   # x_t (B, *shape) long -> logits (B, *shape, V)


# ----------------------------------------------------------------------------- the masking schedule

def check_masking_schedule(schedule: str) -> None:
    if schedule not in MASKING_SCHEDULES:
        raise ValueError(f"unknown masking schedule {schedule!r}; choose one of {MASKING_SCHEDULES}")


def alpha(t: torch.Tensor, schedule: str = "linear") -> torch.Tensor:
    """alpha_t, the probability that a token is still clean at time t in [0, 1]:

        linear   alpha_t = 1 - t                       (MDLM's default; masked share grows evenly)
        cosine   alpha_t = 1 - cos(pi/2 (1 - t))       (Shi et al. 2024; fewer masks early, MaskGIT-like)
    """
    check_masking_schedule(schedule)
    if schedule == "linear":
        return 1 - t
    return 1 - torch.cos(math.pi / 2 * (1 - t))


def alpha_derivative(t: torch.Tensor, schedule: str = "linear") -> torch.Tensor:
    """alpha'_t = d alpha_t / dt: -1 (linear), -pi/2 sin(pi/2 (1 - t)) (cosine)."""
    check_masking_schedule(schedule)
    if schedule == "linear":
        return -torch.ones_like(t)
    return -math.pi / 2 * torch.sin(math.pi / 2 * (1 - t))


def elbo_weight(t: torch.Tensor, schedule: str = "linear") -> torch.Tensor:
    """The continuous-time ELBO's weight -alpha'_t / (1 - alpha_t) (MDLM Eq. 10; Shi et al. Eq. 5): 1 / t for the
    linear schedule. Large near t = 0, where one masked token among clean ones says a lot about -log p(x_0)."""
    return -alpha_derivative(t, schedule) / (1 - alpha(t, schedule))


def _per_item(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) values reshaped to (B, 1, ..., 1) to broadcast against a batch `like` of shape (B, *shape)."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


# ----------------------------------------------------------------------------- the forward process

def check_tokens(x: torch.Tensor, vocab_size: int, allow_mask: bool, name: str = "tokens") -> None:
    """Integer tokens (B, *shape) in [0, V - 1], or in [0, V] where the [MASK] id V is allowed."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer tokens, got {type(x).__name__}")
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise ValueError(f"{name} must be integer token ids (torch.long), got dtype {x.dtype}; "
                         "quantise images with diffusion_lib.tokens.quantise")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (B, *shape), one row per sequence or image, got {tuple(x.shape)}")
    top = vocab_size if allow_mask else vocab_size - 1
    if x.numel() and bool(((x < 0) | (x > top)).any()):
        raise ValueError(f"{name} must lie in [0, {top}] ({vocab_size} tokens"
                         + (f", {vocab_size} is [MASK]" if allow_mask else "") + f"), got values in "
                         f"[{int(x.min())}, {int(x.max())}]")


def _check_times(t: torch.Tensor, batch: int) -> None:
    if not isinstance(t, torch.Tensor) or t.shape != (batch,) or not t.dtype.is_floating_point:
        raise ValueError(f"t must be a float tensor of shape (B,) = ({batch},), one time in [0, 1] per row, got "
                         f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if t.numel() and bool(((t < 0) | (t > 1)).any()):
        raise ValueError(f"t must lie in [0, 1], got values in [{float(t.min()):g}, {float(t.max()):g}]")


def _rand(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """U(0, 1) drawn on the CPU (from `generator` if given) and moved to `device`: the same draw on every device."""
    return torch.rand(shape, generator=generator).to(device)


def q_mask(x0: torch.Tensor, t: torch.Tensor, mask_id: int, schedule: str = "linear",
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample q(x_t | x_0): each token replaced by [MASK] (id `mask_id`) independently with probability 1 - alpha_t.

    x0 (B, *shape) long, t (B,) in [0, 1], one time per row. Returns x_t of the same shape, on x0's device.
    """
    _check_times(t, x0.shape[0])
    keep = _rand(x0.shape, generator, x0.device) < _per_item(alpha(t.to(x0.device), schedule), x0)   # (B, *shape)
    x_t = torch.where(keep, x0, torch.full_like(x0, mask_id))
    if known_within(x0, 0, mask_id):          # checked tokens stay checked: the network need not read them back
        mark_known_range(x_t, 0, mask_id)
    return x_t


def draw_times(batch: int, generator: torch.Generator | None = None, t_min: float = 1e-3,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """(B,) training times, stratified ("low-discrepancy", MDLM): t_i = (i + u) / B for one u ~ U(0, 1), so the batch
    covers [0, 1] evenly, then clamped to [t_min, 1] (the weight 1 / t is unbounded at 0), in a random order."""
    u = torch.rand((), generator=generator)
    t = (torch.arange(batch) + u) / batch                                   # (B,) one time in each stratum
    t = t[torch.randperm(batch, generator=generator)]
    return t.clamp(t_min, 1.0).to(device)


# ----------------------------------------------------------------------------- the loss

def masked_cross_entropy(logits: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, mask_id: int) -> torch.Tensor:
    """(B,) sum over the masked positions of x_t of -log x_theta(x_0) (nats); unmasked positions cost nothing."""
    if logits.shape[:-1] != x0.shape:
        raise ValueError(f"logits must have shape (B, *shape, V) = {tuple(x0.shape)} + (V,), got {tuple(logits.shape)}")
    nll = F.cross_entropy(logits.float().flatten(0, -2), x0.flatten(), reduction="none").view_as(x0)   # (B, *shape)
    return (nll * (x_t == mask_id)).flatten(1).sum(1)                                                  # (B,)


def masked_diffusion_loss(network: Network, x0: torch.Tensor, mask_id: int, schedule: str = "linear",
                          t: torch.Tensor | None = None, generator: torch.Generator | None = None,
                          weighting: str = "elbo") -> torch.Tensor:
    """(B,) loss per row, in nats, at times t (drawn with draw_times if None):

        "elbo"  w(t) * sum over masked positions of -log x_theta(x_0),  w(t) = elbo_weight(t) = -alpha'_t / (1 - alpha_t)
                Its mean over t ~ U(0, 1) is the continuous-time negative ELBO, an upper bound on -log p_theta(x_0)
                (MDLM Eq. 11): divide by the number of tokens and by ln 2 for bits per token.
        "none"  the mean of -log x_theta(x_0) over the masked positions (MaskGIT's loss): not a bound on anything.
    """
    if weighting not in ("elbo", "none"):
        raise ValueError(f"weighting must be 'elbo' (the likelihood bound) or 'none' (mean over masked tokens), "
                         f"got {weighting!r}")
    if t is None:
        t = draw_times(x0.shape[0], generator)        # on the CPU, where q_mask checks it without a read from a GPU
    x_t = q_mask(x0, t, mask_id, schedule, generator)                     # (B, *shape)
    ce = masked_cross_entropy(network(x_t), x0, x_t, mask_id)             # (B,)
    if weighting == "elbo":
        return elbo_weight(t.to(x0.device), schedule) * ce
    n_masked = (x_t == mask_id).flatten(1).sum(1).clamp(min=1)
    return ce / n_masked


@torch.no_grad()
def continuous_nelbo(network: Network, x0: torch.Tensor, mask_id: int, schedule: str = "linear", n_times: int = 16,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) Monte-Carlo estimate of the continuous-time negative ELBO of each row, in nats: the "elbo" loss averaged
    over n_times stratified draws of t per row (an unbiased estimate of an upper bound on -log p_theta(x_0))."""
    total = torch.zeros(x0.shape[0], device=x0.device)
    for k in range(n_times):
        u = torch.rand(x0.shape[0], generator=generator)
        t = ((k + u) / n_times).clamp(1e-4, 1.0).to(x0.device)          # one stratum of [0, 1] per pass
        total += masked_diffusion_loss(network, x0, mask_id, schedule, t, generator, "elbo")
    return total / n_times


def unmask_probability(t: torch.Tensor | float, s: torch.Tensor | float, schedule: str = "linear") -> torch.Tensor:
    """q(x_s = x_0 | x_t = [MASK], x_0) = (alpha_s - alpha_t) / (1 - alpha_t) for s < t: the chance that a token
    masked at time t is clean at the earlier time s. (It stays masked with the rest, (1 - alpha_s) / (1 - alpha_t).)
    A token clean at t is clean at s. The reverse step puts x_theta in place of the unknown x_0 (MDLM Eq. 7)."""
    t, s = torch.as_tensor(t, dtype=torch.float64), torch.as_tensor(s, dtype=torch.float64)
    if bool((s >= t).any()):
        raise ValueError(f"the earlier time s must be below t, got s = {s.tolist()} and t = {t.tolist()}")
    a_t, a_s = alpha(t, schedule), alpha(s, schedule)
    return (a_s - a_t) / (1 - a_t)


def step_times(num_steps: int) -> list[tuple[float, float]]:
    """K pairs (t, s) from t = 1 down to s = 0, evenly spaced: step_times(4) -> [(1, .75), (.75, .5), (.5, .25), (.25, 0)]."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"the number of steps must be an integer >= 1, got {num_steps!r}")
    return [((k + 1) / num_steps, k / num_steps) for k in reversed(range(num_steps))]


@torch.no_grad()
def discrete_nelbo(network: Network, x0: torch.Tensor, mask_id: int, num_steps: int, schedule: str = "linear",
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) the K-step negative ELBO of each row, in nats (MDLM Eq. 8): the bound on -log p(x_0) of the model that
    samples with `ancestral_unmask_progressive` in K = num_steps steps,

        sum over the K pairs (t, s) of  (alpha_s - alpha_t) / (1 - alpha_t) * sum over masked positions of -log x_theta(x_0)

    with one draw of x_t ~ q(x_t | x_0) per pair. It falls towards the continuous-time bound as K grows; with few
    steps, several tokens are revealed at once, independently, which costs likelihood.
    """
    total = torch.zeros(x0.shape[0], device=x0.device)
    for t, s in step_times(num_steps):
        times = torch.full((x0.shape[0],), t)
        x_t = q_mask(x0, times, mask_id, schedule, generator)
        weight = float(unmask_probability(t, s, schedule))
        total += weight * masked_cross_entropy(network(x_t), x0, x_t, mask_id)
    return total


def bits_per_token(nats: torch.Tensor, tokens_per_row: int | torch.Tensor) -> float:
    """Total nats over rows -> bits per token: sum(nats) / (sum of tokens * ln 2)."""
    tokens = tokens_per_row.sum() if isinstance(tokens_per_row, torch.Tensor) else tokens_per_row * nats.shape[0]
    return float(nats.double().sum() / (float(tokens) * LN2))


# ----------------------------------------------------------------------------- sampling by unmasking

@dataclass
class UnmaskStep:
    """One step of an unmasking sampler: the state before (x_t at time t) and after (x_s at time s), the network's
    most likely clean tokens x0_pred (B, *shape), and the network evaluations made so far."""
    t: float
    s: float
    x_t: torch.Tensor
    x0_pred: torch.Tensor
    x_s: torch.Tensor
    nfe: int


def all_masked(n: int, shape: Sequence[int], mask_id: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The start of every sampler, x_1: n rows of shape `shape`, all [MASK]."""
    return torch.full((n, *shape), mask_id, dtype=torch.long, device=device)


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None = None,
                       temperature: float = 1.0) -> torch.Tensor:
    """One token per position from softmax(logits / temperature) (Gumbel-max; the Gumbel noise drawn on the CPU and
    moved): (B, *shape, V) -> (B, *shape) long. temperature 0 takes the most likely token."""
    if temperature == 0:
        return logits.argmax(-1)
    u = _rand(logits.shape, generator, logits.device).clamp(1e-10, 1 - 1e-10)
    gumbel = -torch.log(-torch.log(u))
    return (logits.float() / temperature + gumbel).argmax(-1)


@torch.no_grad()
def ancestral_unmask_progressive(network: Network, x: torch.Tensor, mask_id: int, num_steps: int,
                                 schedule: str = "linear", generator: torch.Generator | None = None,
                                 temperature: float = 1.0) -> Iterator[UnmaskStep]:
    """Ancestral sampling (MDLM Eq. 7) from x = all_masked(...) in K = num_steps steps (t, s) from 1 to 0: every
    masked token is revealed with probability (alpha_s - alpha_t) / (1 - alpha_t) (unmask_probability), its value
    drawn from x_theta; the others stay masked; revealed tokens never change. At s = 0 every token is revealed.

    The network is called only when x changed since its last call (no token revealed, same prediction): `nfe`
    counts the calls. Yields an UnmaskStep per step.
    """
    logits, nfe, changed = None, 0, True
    for t, s in step_times(num_steps):
        if changed:
            logits, nfe = network(x), nfe + 1                                 # (B, *shape, V)
        masked = x == mask_id
        p = float(unmask_probability(t, s, schedule))
        reveal = masked & (_rand(x.shape, generator, x.device) < p)          # (B, *shape)
        proposal = sample_categorical(logits, generator, temperature)
        x_s = torch.where(reveal, proposal, x)
        changed = bool(reveal.any())
        yield UnmaskStep(t, s, x, logits.argmax(-1), x_s, nfe)
        x = x_s


def masked_counts(length: int, num_steps: int, schedule: str = "linear") -> list[int]:
    """How many of `length` tokens are still masked after each of K steps: round(length (1 - alpha_s)), from the
    schedule, ending at 0 (the confidence sampler reveals length - count tokens in all by then)."""
    return [int(round(length * (1 - float(alpha(torch.tensor(s, dtype=torch.float64), schedule)))))
            for _, s in step_times(num_steps)]


@torch.no_grad()
def confidence_unmask_progressive(network: Network, x: torch.Tensor, mask_id: int, num_steps: int,
                                  schedule: str = "linear", generator: torch.Generator | None = None,
                                  temperature: float = 1.0, choice_temperature: float = 0.0) -> Iterator[UnmaskStep]:
    """Confidence-ordered unmasking (MaskGIT, Chang et al. 2022; LLaDA's low-confidence remasking, Nie et al. 2025):
    at each of K steps, draw a token for every masked position from x_theta, then keep only the most confident
    ones (the highest probability of the drawn token), as many as bring the masked count down to the schedule's
    round(n (1 - alpha_s)); the others go back to [MASK]. One network call per step. Yields an UnmaskStep per step.

    choice_temperature > 0 is MaskGIT's randomised choice: Gumbel noise times choice_temperature (1 - k / K) is added
    to the log-confidence at step k, so early choices are partly random and the last ones greedy. With 0 (LLaDA's
    rule) the order is greedy throughout, which on binary digits reveals the sure background first and can end in
    an empty page: notebook 14 shows it.
    """
    n_tokens = x[0].numel()
    counts = masked_counts(n_tokens, num_steps, schedule)
    for k, (t, s) in enumerate(step_times(num_steps)):
        logits = network(x)                                                   # (B, *shape, V)
        masked = (x == mask_id).flatten(1)                                    # (B, N)
        proposal = sample_categorical(logits, generator, temperature)         # (B, *shape)
        confidence = logits.float().log_softmax(-1).gather(-1, proposal.unsqueeze(-1)).squeeze(-1).flatten(1)
        if choice_temperature > 0:                                            # MaskGIT: noisy early, greedy late
            u = _rand(confidence.shape, generator, x.device).clamp(1e-10, 1 - 1e-10)
            confidence = confidence + choice_temperature * (1 - (k + 1) / num_steps) * -torch.log(-torch.log(u))
        confidence = confidence.masked_fill(~masked, -math.inf)               # only masked positions compete
        n_reveal = (masked.sum(1) - counts[k]).clamp(min=0)                   # (B,) tokens to reveal in this step
        order = confidence.argsort(dim=1, descending=True)                    # (B, N) most confident first
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(n_tokens, device=x.device).expand_as(order))
        reveal = (rank < n_reveal[:, None]) & masked                          # (B, N)
        x_s = torch.where(reveal.view_as(x), proposal, x)
        yield UnmaskStep(t, s, x, logits.argmax(-1), x_s, k + 1)
        x = x_s


@torch.no_grad()
def fixed_order_unmask_progressive(network: Network, x: torch.Tensor, mask_id: int,
                                   order: Sequence[int] | None = None, generator: torch.Generator | None = None,
                                   temperature: float = 1.0) -> Iterator[UnmaskStep]:
    """One token per step, in a fixed order over the flattened positions (left to right if None): the masked model
    used as an autoregressive one. Position order[k] is drawn from x_theta given the k tokens revealed before it,
    so the sample's probability is the product of these conditionals, exactly as an autoregressive model's (any
    order works for a masked model: it was trained on every pattern of masks). N tokens take N network calls."""
    n_tokens = x[0].numel()
    order = list(range(n_tokens)) if order is None else list(order)
    if sorted(order) != list(range(n_tokens)):
        raise ValueError(f"order must list each of the {n_tokens} positions once, got {len(order)} entries")
    for k, position in enumerate(order):
        logits = network(x)                                                   # (B, *shape, V)
        flat = x.flatten(1).clone()
        drawn = sample_categorical(logits.flatten(1, -2)[:, position], generator, temperature)   # (B,)
        flat[:, position] = drawn
        x_s = flat.view_as(x)
        yield UnmaskStep(1 - k / n_tokens, 1 - (k + 1) / n_tokens, x, logits.argmax(-1), x_s, k + 1)
        x = x_s


def final_tokens(steps: Iterator[UnmaskStep]) -> torch.Tensor:
    """Run an unmasking sampler to the end and return its last state (the sample)."""
    last = None
    for last in steps:
        pass
    if last is None:
        raise ValueError("the sampler made no step")
    return last.x_s


# ----------------------------------------------------------------------------- the autoregressive baseline

def autoregressive_nll(network: Network, x0: torch.Tensor, bos_id: int) -> torch.Tensor:
    """(B,) exact -log p(x_0) in nats of a causal network over sequences (B, L): it reads [BOS, x_1 .. x_{L-1}] and
    its logits at position l give p(x_{l+1} | x_1 .. x_l), so the sum of the L cross-entropies is the exact NLL."""
    if x0.ndim != 2:
        raise ValueError(f"an autoregressive model takes sequences (B, L), got {tuple(x0.shape)}")
    inputs = torch.cat([torch.full_like(x0[:, :1], bos_id), x0[:, :-1]], dim=1)   # (B, L) shifted right
    if known_within(x0, 0, bos_id):           # checked tokens stay checked: the network need not read them back
        mark_known_range(inputs, 0, bos_id)
    logits = network(inputs)                                                       # (B, L, V)
    return F.cross_entropy(logits.float().flatten(0, 1), x0.flatten(), reduction="none").view_as(x0).sum(1)


@torch.no_grad()
def autoregressive_sample_progressive(network: Network, n: int, length: int, bos_id: int,
                                      generator: torch.Generator | None = None, temperature: float = 1.0,
                                      device: torch.device | str = "cpu") -> Iterator[UnmaskStep]:
    """Sample a causal network left to right, one token per network call (L calls for L tokens); the positions not
    drawn yet hold bos_id. Yields an UnmaskStep per token, like the unmasking samplers."""
    x = torch.full((n, length), bos_id, dtype=torch.long, device=device)
    for k in range(length):
        inputs = torch.cat([torch.full_like(x[:, :1], bos_id), x[:, :-1]], dim=1)
        logits = network(inputs)                                                   # (B, L, V)
        x_s = x.clone()
        x_s[:, k] = sample_categorical(logits[:, k], generator, temperature)
        yield UnmaskStep(1 - k / length, 1 - (k + 1) / length, x, logits.argmax(-1), x_s, k + 1)
        x = x_s
