"""Public home of the weight initialisers (see `fnn.layers.initializers`)."""

from fnn.layers.initializers import (
    Initializer,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    lecun_normal,
    orthogonal,
    resolve,
    zeros,
)

__all__ = [
    "Initializer",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
    "resolve",
    "zeros",
]
