"""The optimizers: SGD (with momentum), Adam, AdamW, RMSprop and Adagrad.

Each constructor returns an `fnn.optim.Optimizer`; each rule below gives
the update direction ``u`` of one leaf (its ``step`` method returns ``lr_t · u``,
fused for speed), and the optimizer then applies ``θ ← θ − lr_t · u`` (see
`fnn.optim.base`). ``t`` is the 1-based update
number, ``g`` the gradient, products and powers of arrays are elementwise, and
every scalar is cast to the parameter's dtype (a float32 network stays float32).

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

import math
from collections.abc import Sequence

import attrs
import numpy as np

from fnn.optim import _checks
from fnn.optim.base import Mask, Optimizer, make

__all__ = ["Adagrad", "Adam", "RMSprop", "Sgd", "adagrad", "adam", "adamw", "rmsprop", "sgd"]

Array = np.ndarray


def _unit(who: str, name: str, value: object) -> float:
    """A number in [0, 1)."""
    return _checks.number(who, name, value, low=0.0, high=1.0, high_open=True)


def _positive(who: str, name: str, value: object) -> float:
    return _checks.number(who, name, value, low=0.0, low_open=True)


def _non_negative(who: str, name: str, value: object) -> float:
    return _checks.number(who, name, value, low=0.0)


@attrs.frozen
class Sgd:
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Without momentum ``u = g``. With momentum ``μ > 0`` and buffer ``b`` (zero at start)::

        b ← μ · b + g
        u = b              (heavy ball)
        u = g + μ · b      (Nesterov)

    This is PyTorch's and Optax's form (``lr`` outside the buffer), so a
    schedule changes the step at once rather than through the buffer.
    """

    momentum: float = 0.0
    nesterov: bool = False

    @property
    def slots(self) -> tuple[str, ...]:
        """``("momentum",)`` when momentum is used, else nothing."""
        return ("momentum",) if self.momentum else ()

    def init_slot(self, name: str, p: Array) -> Array:
        """A zero buffer."""
        return np.zeros_like(p)

    def step(
        self, g: Array, slots: Sequence[Array], t: int, lr: float
    ) -> tuple[Array, tuple[Array, ...]]:
        """``(lr · u, new buffers)``."""
        f = g.dtype.type
        if not self.momentum:
            return f(lr) * g, ()
        mu = f(self.momentum)
        buf = slots[0] * mu
        buf += g
        if not self.nesterov:
            return buf * f(lr), (buf,)
        u = buf * mu
        u += g
        u *= f(lr)
        return u, (buf,)


@attrs.frozen
class Adam:
    """Adam (Kingma & Ba, 2015) with buffers ``m``, ``v`` (zero at start)::

        m ← β₁ · m + (1 − β₁) · g
        v ← β₂ · v + (1 − β₂) · g²
        u = m̂ / (√v̂ + ε),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)

    ``ε`` is added outside the square root, as in the paper, Optax and PyTorch.
    """

    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    @property
    def slots(self) -> tuple[str, ...]:
        """``("mu", "nu")``: the first and second moment estimates."""
        return ("mu", "nu")

    def init_slot(self, name: str, p: Array) -> Array:
        """A zero buffer."""
        return np.zeros_like(p)

    def step(
        self, g: Array, slots: Sequence[Array], t: int, lr: float
    ) -> tuple[Array, tuple[Array, ...]]:
        """``(lr · u, new buffers)``."""
        # m̂ / (√v̂ + ε) = m / (√v + ε·√c₂) · √c₂ / c₁ with c = 1 − βᵗ: fewer passes.
        f = g.dtype.type
        m_old, v_old = slots
        m = g - m_old
        m *= f(1.0 - self.b1)
        m += m_old
        v = g * g
        v -= v_old
        v *= f(1.0 - self.b2)
        v += v_old
        root_c2 = math.sqrt(1.0 - self.b2**t)
        delta = np.sqrt(v)
        delta += f(self.eps * root_c2)
        np.divide(m, delta, out=delta)
        delta *= f(lr * root_c2 / (1.0 - self.b1**t))
        return delta, (m, v)


@attrs.frozen
class RMSprop:
    """RMSprop (Hinton, 2012) with buffer ``v`` (zero at start) and optional momentum::

        v ← ρ · v + (1 − ρ) · g²
        s = g / (√v + ε)
        u = s                          (μ = 0)
        b ← μ · b + s,  u = b          (μ > 0)

    ``ε`` outside the root as in PyTorch (Optax puts it inside: ``g / √(v + ε)``).
    """

    decay: float = 0.9
    eps: float = 1e-8
    momentum: float = 0.0

    @property
    def slots(self) -> tuple[str, ...]:
        """``("nu",)``, plus ``"momentum"`` when momentum is used."""
        return ("nu", "momentum") if self.momentum else ("nu",)

    def init_slot(self, name: str, p: Array) -> Array:
        """A zero buffer."""
        return np.zeros_like(p)

    def step(
        self, g: Array, slots: Sequence[Array], t: int, lr: float
    ) -> tuple[Array, tuple[Array, ...]]:
        """``(lr · u, new buffers)``."""
        f = g.dtype.type
        v_old = slots[0]
        v = g * g
        v -= v_old
        v *= f(1.0 - self.decay)
        v += v_old
        s = np.sqrt(v)
        s += f(self.eps)
        np.divide(g, s, out=s)
        if not self.momentum:
            s *= f(lr)
            return s, (v,)
        buf = slots[1] * f(self.momentum)
        buf += s
        return buf * f(lr), (v, buf)


@attrs.frozen
class Adagrad:
    """Adagrad (Duchi et al., 2011) with accumulator ``a`` (``a₀`` at start)::

        a ← a + g²
        u = g / (√a + ε)
    """

    eps: float = 1e-10
    initial_accumulator: float = 0.1

    @property
    def slots(self) -> tuple[str, ...]:
        """``("sum_sq",)``: the running sum of squared gradients."""
        return ("sum_sq",)

    def init_slot(self, name: str, p: Array) -> Array:
        """The buffer filled with ``initial_accumulator``."""
        return np.full_like(p, self.initial_accumulator)

    def step(
        self, g: Array, slots: Sequence[Array], t: int, lr: float
    ) -> tuple[Array, tuple[Array, ...]]:
        """``(lr · u, new buffer)``."""
        f = g.dtype.type
        a = g * g
        a += slots[0]
        delta = np.sqrt(a)
        delta += f(self.eps)
        np.divide(g, delta, out=delta)
        delta *= f(lr)
        return delta, (a,)


def sgd(lr: object, momentum: float = 0.0, nesterov: bool = False) -> Optimizer:
    """Stochastic gradient descent: ``θ ← θ − lr_t · u`` with ``u`` from `Sgd`.

    With ``momentum=0`` one update equals ``fnn.sgd_step(net, grads, lr)``
    bit for bit. Defaults as Optax and PyTorch (Keras' default ``lr`` is 0.01;
    fnn asks for it).

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
    mu = _unit(who, "momentum", momentum)
    if not isinstance(nesterov, bool):
        raise TypeError(f"{who}: nesterov must be a bool, got {type(nesterov).__name__}")
    if nesterov and not mu:
        raise ValueError(f"{who}: nesterov=True needs momentum > 0, e.g. momentum=0.9")
    return make("sgd", Sgd(mu, nesterov), lr)


def adam(lr: object = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam: ``θ ← θ − lr_t · m̂ / (√v̂ + ε)``; see `Adam` for ``m̂``, ``v̂``.

    Defaults are the paper's, Optax's and PyTorch's (Keras uses ``eps=1e-7``).

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
    rule = Adam(_unit(who, "b1", b1), _unit(who, "b2", b2), _positive(who, "eps", eps))
    return make("adam", rule, lr)


def adamw(
    lr: object = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    mask: Mask = None,
) -> Optimizer:
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    ``θ ← θ − lr_t · (m̂ / (√v̂ + ε) + λ · θ)``: the decay is not rescaled by
    ``v̂`` (unlike ``chain(l2_penalty(λ), adam(...))``) and follows the
    schedule. ``λ = 1e-2`` is PyTorch's default (Optax: 1e-4, Keras: 4e-3).

    Args:
        lr: a float > 0 or a schedule ``step -> lr``.
        b1: ``β₁`` in [0, 1).
        b2: ``β₂`` in [0, 1).
        eps: ``ε`` > 0.
        weight_decay: ``λ`` >= 0.
        mask: which leaves to decay: a predicate of the leaf path, e.g.
            ``lambda path: path.endswith(".w")`` to spare biases, or a tree of
            boolean scalars like the params; ``None`` decays every trainable
            leaf. Frozen and state leaves are never decayed.

    Returns:
        The optimizer.

    Raises:
        ValueError: an argument is out of range.
        TypeError: ``lr`` is neither a number nor a schedule.

    Example:
        >>> import numpy as np
        >>> opt = adamw(0.1, weight_decay=0.5)
        >>> p = [np.array([2.0])]
        >>> opt.update([np.array([0.0])], opt.init(p), p)[0]  # only decay: 2 − 0.1·0.5·2
        [array([1.9])]
    """
    who = "fnn.optim.adamw"
    rule = Adam(_unit(who, "b1", b1), _unit(who, "b2", b2), _positive(who, "eps", eps))
    wd = _non_negative(who, "weight_decay", weight_decay)
    return make("adamw", rule, lr, weight_decay=wd, decay_mask=mask)


def rmsprop(
    lr: object = 1e-3, decay: float = 0.9, eps: float = 1e-8, momentum: float = 0.0
) -> Optimizer:
    """RMSprop: ``θ ← θ − lr_t · g / (√v + ε)``; see `RMSprop`.

    ``decay = 0.9`` as Optax and Keras (PyTorch: 0.99); ``lr = 1e-3`` as Keras.

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
    rule = RMSprop(
        _unit(who, "decay", decay), _positive(who, "eps", eps), _unit(who, "momentum", momentum)
    )
    return make("rmsprop", rule, lr)


def adagrad(lr: object = 1e-2, eps: float = 1e-10, initial_accumulator: float = 0.1) -> Optimizer:
    """Adagrad: ``θ ← θ − lr_t · g / (√a + ε)``, ``a`` the sum of squared gradients.

    ``initial_accumulator = 0.1`` as Optax and Keras (PyTorch: 0) keeps the
    first steps bounded; ``eps = 1e-10`` and ``lr = 1e-2`` as PyTorch.

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
    rule = Adagrad(
        _positive(who, "eps", eps), _non_negative(who, "initial_accumulator", initial_accumulator)
    )
    return make("adagrad", rule, lr)
