"""Optimizers as chains of pure gradient transformations, and learning-rate schedules.

A gradient transformation is a pair of pure functions, ``init(params) -> state``
and ``update(updates, state, params) -> (updates, state)``, composed with
`chain` as in Optax. An optimizer (``sgd``, ``adam``, ...) wraps a chain and
adds its result to the params: ``new_params, state = opt.update(grads, state,
params)``. Every state is a tree of frozen values with read-only arrays.

- optimizers: `sgd`, `adam`, `adamw`, `rmsprop`, `adagrad`;
- directions: `trace` (momentum), `scale_by_adam`, `scale_by_rms`, `scale_by_adagrad`;
- simple transformations: `scale`, `scale_by_learning_rate`, `clip`,
  `clip_by_global_norm`, `add_decayed_weights`;
- by path: `masked`, `freeze`, `multi_transform` (masks are path prefixes,
  predicates or boolean trees);
- around a run: `multi_steps` (gradient accumulation), `ema` (averaged
  weights, `ema_params`), `reduce_on_plateau` (with `observe`);
- glue: `chain`, `apply_updates`, `learning_rate`, `migrate` (0.1.0 states);
- schedules (any ``lr`` argument takes one): `constant`, `step_decay`,
  `exponential_decay`, `cosine_decay`.

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

from fnn.optim.aliases import adagrad, adam, adamw, rmsprop, sgd
from fnn.optim.base import Chain, EmptyState, GradientTransformation, OptState
from fnn.optim.masks import Freeze, Mask, Masked, MultiTransform, freeze, masked, multi_transform
from fnn.optim.optimizer import (
    Optimizer,
    OptimizerState,
    apply_updates,
    chain,
    learning_rate,
    migrate,
    observe,
)
from fnn.optim.rules import (
    RMSprop,
    ScaleByAdagrad,
    ScaleByAdagradState,
    ScaleByAdam,
    ScaleByAdamState,
    ScaleByRms,
    ScaleByRmsState,
    Sgd,
    Trace,
    TraceState,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_rms,
    trace,
)
from fnn.optim.schedules import (
    Constant,
    CosineDecay,
    ExponentialDecay,
    Schedule,
    StepDecay,
    constant,
    cosine_decay,
    exponential_decay,
    step_decay,
)
from fnn.optim.transforms import (
    AddDecayedWeights,
    Clip,
    ClipByGlobalNorm,
    Scale,
    ScaleByLearningRate,
    ScheduleState,
    add_decayed_weights,
    clip,
    clip_by_global_norm,
    scale,
    scale_by_learning_rate,
)
from fnn.optim.wrappers import (
    Ema,
    EmaState,
    MultiSteps,
    MultiStepsState,
    ReduceOnPlateau,
    ReduceOnPlateauState,
    ema,
    ema_params,
    multi_steps,
    reduce_on_plateau,
)

__all__ = [
    "AddDecayedWeights",
    "Chain",
    "Clip",
    "ClipByGlobalNorm",
    "Constant",
    "CosineDecay",
    "Ema",
    "EmaState",
    "EmptyState",
    "ExponentialDecay",
    "Freeze",
    "GradientTransformation",
    "Mask",
    "Masked",
    "MultiSteps",
    "MultiStepsState",
    "MultiTransform",
    "OptState",
    "Optimizer",
    "OptimizerState",
    "RMSprop",
    "ReduceOnPlateau",
    "ReduceOnPlateauState",
    "Scale",
    "ScaleByAdagrad",
    "ScaleByAdagradState",
    "ScaleByAdam",
    "ScaleByAdamState",
    "ScaleByLearningRate",
    "ScaleByRms",
    "ScaleByRmsState",
    "Schedule",
    "ScheduleState",
    "Sgd",
    "StepDecay",
    "Trace",
    "TraceState",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "clip",
    "clip_by_global_norm",
    "constant",
    "cosine_decay",
    "ema",
    "ema_params",
    "exponential_decay",
    "freeze",
    "learning_rate",
    "masked",
    "migrate",
    "multi_steps",
    "multi_transform",
    "observe",
    "reduce_on_plateau",
    "rmsprop",
    "scale",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "sgd",
    "step_decay",
    "trace",
]
