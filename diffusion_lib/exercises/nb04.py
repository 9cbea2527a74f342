"""Notebook 04's exercise: the number of parameters of the ConvNet's block, from its layers.

    ConvBlock(c_in, c_out): conv3x3(c_in -> c_out), GroupNorm(8, c_out), Linear(emb_dim -> c_out),
                            conv3x3(c_out -> c_out), GroupNorm(8, c_out)
"""
from __future__ import annotations

from ..backbones import ConvBlock, count_parameters

# (c_in, c_out, emb_dim): the ConvNet's first, widest and last blocks, and two shapes it never uses.
CASES = [(1, 32, 256), (256, 256, 256), (32, 32, 256), (3, 16, 64), (24, 8, 10)]


def _variants(c_in: int, c_out: int, e: int) -> dict:
    """Answers that come from a known slip, with the hint for each."""
    weights = 9 * c_in * c_out + e * c_out + 9 * c_out * c_out      # conv1, Linear, conv2 weights
    biases = 3 * c_out                                               # conv1, Linear, conv2 biases
    norms = 2 * 2 * c_out                                            # two GroupNorms, a scale and a shift per channel
    return {
        weights + norms: "every layer here has a bias: one per output channel for each conv and for the Linear",
        weights: "count the biases (one per output channel for each conv and for the Linear) and GroupNorm's own "
                 "parameters (a scale and a shift per channel)",
        weights + biases: "GroupNorm has learnable parameters too: a scale and a shift per channel "
                          "(2 * c_out for each of the two GroupNorms)",
        weights + biases + norms // 2: "only one GroupNorm counted? The block has two",
        weights - 9 * c_out * c_out + 9 * c_in * c_out + biases + norms:
            "the second convolution maps c_out -> c_out channels: 9 * c_out * c_out weights",
        (weights - 9 * c_in * c_out - 9 * c_out * c_out) + c_in * c_out + c_out * c_out + biases + norms:
            "a 3x3 convolution has 3 * 3 = 9 weights per (input channel, output channel) pair",
    }


def check(answer) -> None:
    """answer(c_in, c_out, emb_dim) must equal count_parameters(ConvBlock(c_in, c_out, emb_dim)) on every case."""
    for c_in, c_out, e in CASES:
        expected = count_parameters(ConvBlock(c_in, c_out, e))
        got = answer(c_in, c_out, e)
        assert isinstance(got, int) or (hasattr(got, "__index__") and not isinstance(got, bool)), (
            f"return a whole number (an int), got {type(got).__name__}")
        got = int(got)
        if got != expected:
            hint = _variants(c_in, c_out, e).get(got, "go through the block layer by layer: a conv3x3 has "
                                                      "9 * in * out weights + out biases, a Linear in * out + out, "
                                                      "a GroupNorm 2 * channels")
            raise AssertionError(f"ConvBlock(c_in={c_in}, c_out={c_out}, emb_dim={e}) has {expected:,} parameters, "
                                 f"your function gives {got:,}: {hint}.")


# A plausible mistake: the weights and biases of the convs and the Linear, but not GroupNorm's scale and shift.
def WRONG_EXAMPLE(c_in: int, c_out: int, emb_dim: int = 256) -> int:
    return (9 * c_in * c_out + c_out) + (emb_dim * c_out + c_out) + (9 * c_out * c_out + c_out)
