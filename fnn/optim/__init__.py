"""Pure optimizers and learning-rate schedules.

An optimizer is a frozen value with ``init(params) -> state`` and
``update(grads, state, params) -> (new_params, new_state)``; nothing is
mutated, and the state (step count and buffers) is a tree like the params.

- optimizers: `sgd`, `adam`, `adamw`, `rmsprop`, `adagrad`;
- composition: `chain` with `clip_by_global_norm` and
  `l2_penalty`; `freeze` for frozen leaves;
- schedules (any ``lr`` argument takes one): `constant`,
  `step_decay`, `exponential_decay`, `cosine_decay`;
  `learning_rate` gives the rate of the next update.

Example:
    >>> import numpy as np, fnn
    >>> net = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(1)], (3,), key=0)
    >>> x = np.linspace(-1, 1, 30, dtype=np.float32).reshape(10, 3)
    >>> y = x.sum(axis=1, keepdims=True)
    >>> opt = fnn.optim.chain(
    ...     fnn.optim.clip_by_global_norm(1.0),
    ...     fnn.optim.adam(fnn.optim.cosine_decay(1e-2, total_steps=50, warmup_steps=5)),
    ... )
    >>> state = opt.init(net)
    >>> before = fnn.loss(net, x, y, fnn.losses.mse)
    >>> for _ in range(50):
    ...     grads = fnn.grad(net, x, y, fnn.losses.mse)
    ...     net, state = opt.update(grads, state, net)
    >>> bool(fnn.loss(net, x, y, fnn.losses.mse) < before), fnn.optim.learning_rate(opt, state)
    (True, 0.0)
"""

from fnn.optim.base import Mask, Optimizer, OptState, Rule, Transform, chain, freeze, learning_rate
from fnn.optim.rules import adagrad, adam, adamw, rmsprop, sgd
from fnn.optim.schedules import (
    Schedule,
    constant,
    cosine_decay,
    exponential_decay,
    step_decay,
)
from fnn.optim.transforms import clip_by_global_norm, l2_penalty

__all__ = [
    "Mask",
    "OptState",
    "Optimizer",
    "Rule",
    "Schedule",
    "Transform",
    "adagrad",
    "adam",
    "adamw",
    "chain",
    "clip_by_global_norm",
    "constant",
    "cosine_decay",
    "exponential_decay",
    "freeze",
    "l2_penalty",
    "learning_rate",
    "rmsprop",
    "sgd",
    "step_decay",
]
