"""fnn's layers: one family per module, all following the protocol in ``_base``."""

from fnn.layers._base import Layer, check_pullback, param_field, state_field
from fnn.layers.activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from fnn.layers.attention import MultiHeadAttention
from fnn.layers.containers import Container, Sequential
from fnn.layers.conv import Conv2D
from fnn.layers.dense import Dense
from fnn.layers.dropout import Dropout
from fnn.layers.embedding import Embedding, PositionalEmbedding
from fnn.layers.gru import GRU
from fnn.layers.lstm import LSTM
from fnn.layers.norm import BatchNorm, LayerNorm
from fnn.layers.parallel import Parallel
from fnn.layers.pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from fnn.layers.reshape import Flatten, Reshape
from fnn.layers.residual import Residual

__all__ = [
    "ELU",
    "GELU",
    "GRU",
    "LSTM",
    "AvgPool2D",
    "BatchNorm",
    "Container",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAvgPool2D",
    "Identity",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "MaxPool2D",
    "MultiHeadAttention",
    "Parallel",
    "PositionalEmbedding",
    "ReLU",
    "Reshape",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "check_pullback",
    "param_field",
    "state_field",
]
