"""fnn: a functional neural-network library in pure NumPy.

Networks are values, training is pure functions, every gradient is checked.
"""

from fnn import (
    datasets,
    initializers,
    io,
    losses,
    metrics,
    optim,
    plot,
    random,
    testing,
    train,
    tree,
)
from fnn.io import load, register, save
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
from fnn.train import History, batches, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "ELU",
    "GELU",
    "Dense",
    "Flatten",
    "History",
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
    "batches",
    "datasets",
    "evaluate",
    "fit",
    "forward",
    "grad",
    "init",
    "initializers",
    "io",
    "load",
    "loss",
    "losses",
    "metrics",
    "optim",
    "plot",
    "random",
    "register",
    "save",
    "sgd_step",
    "summary",
    "testing",
    "train",
    "tree",
    "value_and_grad",
]
