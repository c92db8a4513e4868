"""A tiny momentum-SGD stand-in used until fnn.optim lands (tests only, never shipped)."""

import attrs
import numpy as np

from fnn import tree


@attrs.frozen
class State:
    step: int
    velocity: object


@attrs.frozen
class MomentumSGD:
    lr: float
    momentum: float = 0.9

    def init(self, params):
        return State(0, tree.zeros_like(params))

    def update(self, grads, state, params):
        v = tree.map(lambda v, g: self.momentum * v + g, state.velocity, grads)
        new = tree.map(lambda p, v: p - p.dtype.type(self.lr) * v, params, v)
        return new, State(state.step + 1, v)


def optimizer(lr=0.1, momentum=0.9):
    try:
        from fnn.optim import sgd
    except ImportError:
        return MomentumSGD(lr, momentum)
    return sgd(lr, momentum=momentum)


def toy_classification(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1]) > 0).astype(np.int64)
    return x, y
