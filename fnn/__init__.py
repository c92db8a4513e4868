"""fnn: a functional neural-network library in pure NumPy.

Networks are values, training is pure functions, every gradient is checked.
"""

from fnn import initializers, losses, random, tree
from fnn.layers import (
    ELU,
    GELU,
    Dense,
    Flatten,
    Identity,
    Layer,
    LeakyReLU,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
)
from fnn.network import (
    Network,
    activations,
    forward,
    grad,
    init,
    loss,
    sgd_step,
    summary,
    value_and_grad,
)

__version__ = "0.1.0"

__all__ = [
    "ELU",
    "GELU",
    "Dense",
    "Flatten",
    "Identity",
    "Layer",
    "LeakyReLU",
    "Network",
    "ReLU",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "__version__",
    "activations",
    "forward",
    "grad",
    "init",
    "initializers",
    "loss",
    "losses",
    "random",
    "sgd_step",
    "summary",
    "tree",
    "value_and_grad",
]
