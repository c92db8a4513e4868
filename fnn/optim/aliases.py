"""The usual optimizers as short chains: SGD (with momentum), Adam, AdamW, RMSprop, Adagrad.

Each returns an ``fnn.optim.Optimizer`` whose ``tx`` is the chain written in its
docstring, e.g. ``adam(lr) = chain(scale_by_adam(b1, b2, eps),
scale_by_learning_rate(lr))``; ``opt.update`` adds the result to the params.

Defaults follow Optax and PyTorch (which agree, except where noted in each
constructor); Keras differs mainly in ``eps = 1e-7``.

Example:
    >>> import numpy as np
    >>> from fnn import optim
    >>> params = {"w": np.array([1.0, -2.0])}
    >>> opt = optim.sgd(0.1, momentum=0.9)
    >>> new, state = opt.update({"w": np.array([1.0, 1.0])}, opt.init(params), params)
    >>> new["w"]
    array([ 0.9, -2.1])
"""

from __future__ import annotations

from fnn.optim.base import Chain, GradientTransformation
from fnn.optim.masks import Mask
from fnn.optim.optimizer import Optimizer
from fnn.optim.rules import RMSprop, ScaleByAdagrad, ScaleByAdam, Sgd, non_negative, positive, unit
from fnn.optim.schedules import as_schedule
from fnn.optim.transforms import AddDecayedWeights, ScaleByLearningRate

__all__ = ["adagrad", "adam", "adamw", "rmsprop", "sgd"]


def _make(name: str, lr: object, *parts: GradientTransformation) -> Optimizer:
    rate = ScaleByLearningRate(as_schedule(f"fnn.optim.{name}", lr))
    return Optimizer(Chain([*parts, rate]), name)


def sgd(lr: object, momentum: float = 0.0, nesterov: bool = False) -> Optimizer:
    """Stochastic gradient descent: ``chain(Sgd(momentum, nesterov), scale_by_learning_rate(lr))``.

    ``θ ← θ − lr_t · g``; with momentum ``μ`` the direction is ``trace(μ, nesterov)``.
    With ``momentum=0`` one update equals ``fnn.sgd_step(net, grads, lr)`` bit for
    bit. Defaults as Optax and PyTorch (Keras' default ``lr`` is 0.01; fnn asks for it).

    Args:
        lr: a float > 0 or a schedule ``step -> lr``.
        momentum: ``μ`` in [0, 1); 0 for plain SGD.
        nesterov: use Nesterov momentum (needs ``momentum > 0``).

    Returns:
        The optimizer.

    Raises:
        ValueError: an argument is out of range, or ``nesterov`` without momentum.
        TypeError: ``lr`` is neither a number nor a schedule.

    Example:
        >>> import numpy as np
        >>> opt = sgd(0.5)
        >>> p = [np.array([1.0])]
        >>> opt.update([np.array([2.0])], opt.init(p), p)[0]
        [array([0.])]
    """
    who = "fnn.optim.sgd"
    mu = unit(who, "momentum", momentum)
    if not isinstance(nesterov, bool):
        raise TypeError(f"{who}: nesterov must be a bool, got {type(nesterov).__name__}")
    if nesterov and not mu:
        raise ValueError(f"{who}: nesterov=True needs momentum > 0, e.g. momentum=0.9")
    return _make("sgd", lr, Sgd(mu, nesterov))


def adam(lr: object = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam: ``chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))``.

    ``θ ← θ − lr_t · m̂ / (√v̂ + ε)``; see ``fnn.optim.ScaleByAdam``. Defaults are
    the paper's, Optax's and PyTorch's (Keras uses ``eps=1e-7``).

    Args:
        lr: a float > 0 or a schedule ``step -> lr``.
        b1: ``β₁`` in [0, 1), decay of the first moment.
        b2: ``β₂`` in [0, 1), decay of the second moment.
        eps: ``ε`` > 0, added to ``√v̂``.

    Returns:
        The optimizer.

    Raises:
        ValueError: an argument is out of range.
        TypeError: ``lr`` is neither a number nor a schedule.

    Example:
        >>> import numpy as np
        >>> opt = adam(0.1)
        >>> p = [np.array([1.0, 1.0])]
        >>> new, _ = opt.update([np.array([3.0, -0.5])], opt.init(p), p)
        >>> np.round(new[0], 6)  # the first Adam step moves each entry by lr
        array([0.9, 1.1])
    """
    who = "fnn.optim.adam"
    rule = ScaleByAdam(unit(who, "b1", b1), unit(who, "b2", b2), positive(who, "eps", eps))
    return _make("adam", lr, rule)


def adamw(
    lr: object = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    mask: Mask = None,
) -> Optimizer:
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    ``chain(scale_by_adam(b1, b2, eps), add_decayed_weights(λ, mask),
    scale_by_learning_rate(lr))``, so ``θ ← θ − lr_t · (m̂ / (√v̂ + ε) + λ · θ)``:
    the decay is not rescaled by ``v̂`` (unlike L2 before Adam,
    ``chain(add_decayed_weights(λ), adam(lr))``) and follows the schedule.
    ``λ = 1e-2`` is PyTorch's default (Optax: 1e-4, Keras: 4e-3).

    Args:
        lr: a float > 0 or a schedule ``step -> lr``.
        b1: ``β₁`` in [0, 1).
        b2: ``β₂`` in [0, 1).
        eps: ``ε`` > 0.
        weight_decay: ``λ`` >= 0.
        mask: which leaves to decay: a path prefix, a predicate such as
            ``lambda path: path.endswith(".w")`` (no decay on biases and norm
            scales), or a tree of boolean scalars; ``None`` decays every
            trainable leaf. Frozen and state leaves are never decayed.

    Returns:
        The optimizer.

    Raises:
        ValueError: an argument is out of range.
        TypeError: ``lr`` is neither a number nor a schedule, or ``mask`` cannot be one.

    Example:
        >>> import numpy as np
        >>> opt = adamw(0.1, weight_decay=0.5)
        >>> p = [np.array([2.0])]
        >>> opt.update([np.array([0.0])], opt.init(p), p)[0]  # only decay: 2 − 0.1·0.5·2
        [array([1.9])]
    """
    who = "fnn.optim.adamw"
    rule = ScaleByAdam(unit(who, "b1", b1), unit(who, "b2", b2), positive(who, "eps", eps))
    wd = non_negative(who, "weight_decay", weight_decay)
    if not wd:
        return _make("adamw", lr, rule)
    return _make("adamw", lr, rule, AddDecayedWeights(wd, mask))


def rmsprop(
    lr: object = 1e-3, decay: float = 0.9, eps: float = 1e-8, momentum: float = 0.0
) -> Optimizer:
    """RMSprop: ``chain(RMSprop(decay, eps, momentum), scale_by_learning_rate(lr))``.

    ``θ ← θ − lr_t · g / (√v + ε)`` (through a momentum buffer when ``μ > 0``);
    see ``fnn.optim.RMSprop``. ``decay = 0.9`` as Optax and Keras (PyTorch:
    0.99); ``lr = 1e-3`` as Keras.

    Args:
        lr: a float > 0 or a schedule ``step -> lr``.
        decay: ``ρ`` in [0, 1), decay of the mean square.
        eps: ``ε`` > 0.
        momentum: ``μ`` in [0, 1).

    Returns:
        The optimizer.

    Raises:
        ValueError: an argument is out of range.
        TypeError: ``lr`` is neither a number nor a schedule.

    Example:
        >>> import numpy as np
        >>> opt = rmsprop(0.01, decay=0.75)
        >>> p = [np.array([1.0])]
        >>> np.round(opt.update([np.array([4.0])], opt.init(p), p)[0][0], 6)  # 1 − 0.01·4/2
        array([0.98])
    """
    who = "fnn.optim.rmsprop"
    mu = unit(who, "momentum", momentum)
    rule = RMSprop(unit(who, "decay", decay), positive(who, "eps", eps), mu)
    return _make("rmsprop", lr, rule)


def adagrad(lr: object = 1e-2, eps: float = 1e-10, initial_accumulator: float = 0.1) -> Optimizer:
    """Adagrad: ``chain(scale_by_adagrad(eps, initial_accumulator), scale_by_learning_rate(lr))``.

    ``θ ← θ − lr_t · g / (√a + ε)``, ``a`` the sum of squared gradients from
    ``a₀``. ``initial_accumulator = 0.1`` as Optax and Keras (PyTorch: 0) keeps
    the first steps bounded; ``eps = 1e-10`` and ``lr = 1e-2`` as PyTorch.

    Args:
        lr: a float > 0 or a schedule ``step -> lr``.
        eps: ``ε`` > 0.
        initial_accumulator: ``a₀`` >= 0, the accumulator's starting value.

    Returns:
        The optimizer.

    Raises:
        ValueError: an argument is out of range.
        TypeError: ``lr`` is neither a number nor a schedule.

    Example:
        >>> import numpy as np
        >>> opt = adagrad(0.1, initial_accumulator=0.0)
        >>> p = [np.array([1.0])]
        >>> np.round(opt.update([np.array([5.0])], opt.init(p), p)[0][0], 6)
        array([0.9])
    """
    who = "fnn.optim.adagrad"
    rule = ScaleByAdagrad(
        positive(who, "eps", eps), non_negative(who, "initial_accumulator", initial_accumulator)
    )
    return _make("adagrad", lr, rule)

