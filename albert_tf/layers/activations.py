"""Activation functions by the names used in `albert_config.json`."""

from keras import ops


def gelu_tanh(x):
    """GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).

    This is what the original modeling.py calls "gelu" (HF calls it "gelu_new").
    `ops.gelu(approximate=True)` computes exactly this formula, and TensorFlow's oneDNN
    rewrite fuses it into the preceding MatMul + BiasAdd (12 FFNs at 128 tokens: 64 →
    55 ms); the hand-written form is not fused.
    """
    return ops.gelu(x, approximate=True)


def gelu_exact(x):
    """GELU with the exact erf form: x·Φ(x)."""
    return ops.gelu(x, approximate=False)


def linear(x):
    """Identity."""
    return x


_ACTIVATIONS = {
    "gelu": gelu_tanh,
    "gelu_new": gelu_tanh,
    "gelu_exact": gelu_exact,
    "relu": ops.relu,
    "tanh": ops.tanh,
    "linear": linear,
}


def get_activation(name: str):
    """Returns the elementwise function for `name` (see albert_tf.config.ACTIVATIONS).

    Raises ValueError for an unknown name.
    """
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}") from None
