"""fnn's layers: one family per module, all following the protocol in ``_base``."""

from fnn.layers._base import Layer, param_field, state_field
from fnn.layers.activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from fnn.layers.dense import Dense
from fnn.layers.reshape import Flatten, Reshape

__all__ = [
    "ELU",
    "GELU",
    "Dense",
    "Flatten",
    "Identity",
    "Layer",
    "LeakyReLU",
    "ReLU",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "param_field",
    "state_field",
]
