"""Worked solution of notebook 04's exercise: the parameters of the ConvNet's block, layer by layer."""


def conv_block_parameters(c_in: int, c_out: int, emb_dim: int = 256) -> int:
    """Trainable parameters of ConvBlock(c_in, c_out, emb_dim)."""
    conv1 = 3 * 3 * c_in * c_out + c_out      # a 3x3 kernel per (input, output) channel pair, a bias per output
    norm1 = 2 * c_out                         # GroupNorm: a scale and a shift per channel
    time = emb_dim * c_out + c_out            # Linear(emb_dim, c_out): weights and biases
    conv2 = 3 * 3 * c_out * c_out + c_out
    norm2 = 2 * c_out
    return conv1 + norm1 + time + conv2 + norm2


ANSWER = conv_block_parameters   # what the notebook's check cell passes to dl.exercises.check("04", ...)
