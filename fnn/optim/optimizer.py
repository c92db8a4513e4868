"""The optimizer value: a gradient transformation whose ``update`` returns new params.

``opt = fnn.optim.adam(1e-3)`` is an `Optimizer`: ``opt.init(params) -> state``
and ``opt.update(grads, state, params) -> (new_params, new_state)``, where
``new_params = params + u`` with ``u`` from the chain of transformations
``opt.tx``. The same chain is there for Optax-style loops::

    updates, tx_state = opt.tx.update(grads, tx_state, params)
    params = fnn.optim.apply_updates(params, updates)

Combinators (`chain`, ``masked``, ``multi_transform``, ``multi_steps``) return
an `Optimizer` when any argument is one, and a bare transformation otherwise.

Example:
    >>> import numpy as np
    >>> from fnn import optim
    >>> opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.5))
    >>> p = {"w": np.array([0.0, 0.0])}
    >>> new, state = opt.update({"w": np.array([3.0, 4.0])}, opt.init(p), p)
    >>> new["w"], int(state.count)
    (array([-0.3, -0.4]), 1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from fnn import tree
from fnn.optim.base import (
    Chain,
    GradientTransformation,
    OptState,
    State,
    Step,
    as_transformation,
    checked_state,
    count_array,
    frozen_array,
    next_count,
)

__all__ = [
    "Optimizer",
    "OptimizerState",
    "apply_updates",
    "chain",
    "learning_rate",
    "migrate",
    "observe",
]

Array = np.ndarray
_ACTIVE = "fnn.optim.active"  # memo key: the indices of the non-state leaves


def begin_init(who: str, params: Any) -> Step:
    """Flatten and check the params of one ``init`` call (internal)."""
    return _step(who, params)


def begin(who: str, params: Any, updates: Any, what: str = "grads") -> tuple[Step, list[Array]]:
    """Flatten and check the trees of one ``update`` call (internal).

    Returns the step and the updates' leaves, checked against the params
    (structure, shapes, and the dtype of every trainable leaf); without params
    (``None``), the updates' own tree is the reference.
    """
    step = _step(who, updates if params is None else params)
    if params is None:
        return step, step.like
    like, td, active = step.like, step.treedef, step.active
    try:
        u = tree.leaves_like(td, like, updates)
    except ValueError as err:
        raise ValueError(
            f"{who}: {what} do not match params: {err}; pass the gradient of these params, "
            "e.g. fnn.grad(net, x, y, loss_fn)"
        ) from None
    for i in active:
        if u[i].dtype != like[i].dtype:
            raise TypeError(
                f"{who}: {what} at {td.paths[i] or '<root>'} has dtype {u[i].dtype} but the "
                f"parameter is {like[i].dtype}; cast with "
                f"fnn.tree.map(lambda a: a.astype(np.{like[i].dtype}), {what}) "
                "(fnn never changes a network's dtype silently)"
            )
    return step, u


def _step(who: str, like_tree: Any) -> Step:
    like, td = tree.flatten(like_tree)
    if not like:
        raise ValueError(f"{who}: params has no arrays; pass the network built by fnn.init")
    active = td.memo.get(_ACTIVE)
    if active is None:  # shared by every call on this structure: never changed in place
        active = td.memo[_ACTIVE] = [i for i, s in enumerate(td.state_mask) if not s]
    for i, p in enumerate(like):
        if p.dtype.kind != "f":
            raise TypeError(
                f"{who}: {td.paths[i] or '<root>'} has dtype {p.dtype}; parameters must be "
                "floating, e.g. params.astype(np.float32)"
            )
    return Step(who, td, like, active)


def _negative_zeros(a: Array) -> Array:
    return frozen_array(np.full(a.shape, -0.0, a.dtype))


def finish_updates(step: Step, new: list[Array]) -> Any:
    """The updates tree a tree-level ``update`` returns: read-only, ``-0.0`` where untouched."""
    out = [_negative_zeros(a) for a in new]
    for i in step.active:
        if i not in step.frozen:
            a = new[i]
            out[i] = frozen_array(a) if step.owns(a) else tree.readonly(np.asarray(a))
    return step.build(out)


def apply_leaves(step: Step, updates: list[Array]) -> list[Array]:
    """``θ + u`` for the trainable, unfrozen leaves; the others are the same arrays."""
    new = list(step.like)
    frozen, fresh = step.frozen, step.fresh
    for i in step.active:
        if frozen and i in frozen:
            continue
        p, u = new[i], updates[i]
        if u.dtype != p.dtype or u.shape != p.shape:
            raise TypeError(
                f"{step.who}: the update of {step.treedef.paths[i] or '<root>'} has dtype "
                f"{u.dtype} and shape {u.shape}, the parameter {p.dtype} and {p.shape}; a "
                "transformation in the chain changed them"
            )
        if fresh.get(id(u)) is u:
            out = np.add(p, u, out=u)
        else:
            out = np.add(p, u)
            if type(out) is not np.ndarray:  # 0-d inputs give a NumPy scalar
                out = np.asarray(out)
        out.setflags(write=False)
        new[i] = out
    return new


def _count(value: object) -> Array:
    return count_array("fnn.optim.OptimizerState", value)


@attrs.frozen(eq=False)
class OptimizerState(State):
    """An `Optimizer`'s state: its update count and the state of its transformation.

    A tree (compare with ``fnn.tree.allclose``, save with ``fnn.save``).

    Attributes:
        count: a 0-d int64 array, the number of ``update`` calls so far.
        inner: the state of ``opt.tx`` (for a chain, a tuple of states).
        slots: (read-only view) every per-leaf buffer of ``inner`` by name, e.g.
            ``{"mu": ..., "nu": ...}`` for Adam; ``{}`` for plain SGD.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> state = optim.adam(1e-3).init({"w": np.zeros(2)})
        >>> int(state.count), sorted(state.slots)
        (0, ['mu', 'nu'])
    """

    SUBSTATES = ("inner",)
    COUNTS = ("count",)

    count: Array = attrs.field(converter=_count)
    inner: Any = None

    @property
    def slots(self) -> dict[str, Any]:
        """Every per-leaf buffer in ``inner`` by name (a second ``momentum`` is ``momentum_2``)."""
        out: dict[str, Any] = {}

        def visit(s: State) -> State:
            for name in type(s).SLOTS:
                out[_fresh_name(name, out)] = getattr(s, name)
            return s

        walk_states(self.inner, visit)
        return out


def _fresh_name(name: str, taken: Mapping[str, Any]) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"


def walk_states(state: Any, visit: Callable[[State], State]) -> Any:
    """Rebuild a state tree, passing every `State` (outermost first) through ``visit``."""
    if isinstance(state, State):
        state = visit(state)
        subs = {n: walk_states(getattr(state, n), visit) for n in type(state).SUBSTATES}
        return attrs.evolve(state, **subs) if subs else state
    if type(state) is tuple:
        return tuple(walk_states(s, visit) for s in state)
    if type(state) is dict:
        return {k: walk_states(s, visit) for k, s in state.items()}
    return state


def _check_tx(value: object) -> GradientTransformation:
    if isinstance(value, Optimizer):
        return value.tx
    return as_transformation("fnn.optim.Optimizer", value)


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not value.isidentifier():
        raise TypeError(f"fnn.optim.Optimizer: name must be an identifier string, got {value!r}")
    return value


def _find(tx: Any, test: Callable[[Any], bool]) -> Any:
    if test(tx):
        return tx
    for part in tx.parts():
        found = _find(part, test)
        if found is not None:
            return found
    return None


@attrs.frozen(eq=False)
class Optimizer:
    """A pure optimizer: ``init(params) -> state``, ``update(grads, state, params)``.

    ``update`` runs the gradient transformation ``tx`` on the gradients and adds
    the result to the trainable leaves: ``θ ← θ + u``. State leaves (batch-norm
    statistics) and leaves frozen by ``fnn.optim.freeze`` come back as the very
    same arrays. Build one with ``fnn.optim.sgd``, ``adam``, ``adamw``,
    ``rmsprop``, ``adagrad``, or wrap any transformation: ``Optimizer(tx)``.

    Attributes:
        tx: the gradient transformation (an Optimizer given here is unwrapped).
        name: used in error messages, e.g. ``"adam"``.
        lr: (read-only) the learning-rate schedule of the first
            ``scale_by_learning_rate`` in ``tx``, or ``None``.
        rule: (read-only) the first transformation in ``tx`` that gives an update
            direction (``Sgd``, ``ScaleByAdam``, ``RMSprop``, ...), or ``None``.
        weight_decay: (read-only) the rate of the first ``add_decayed_weights``, or 0.
        decay_mask: (read-only) that transformation's mask (``None``: every leaf).

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> opt = Optimizer(optim.chain(optim.scale_by_adam(), optim.scale_by_learning_rate(0.1)))
        >>> p = [np.array([1.0])]
        >>> opt.update([np.array([5.0])], opt.init(p), p)[0]
        [array([0.9])]
    """

    tx: GradientTransformation = attrs.field(converter=_check_tx)
    name: str = attrs.field(default="optimizer", converter=_check_name)

    @property
    def lr(self) -> Any:
        """The schedule of the first ``scale_by_learning_rate`` in ``tx`` (``None`` if none)."""
        found = _find(self.tx, lambda t: getattr(t, "is_learning_rate", False))
        return None if found is None else found.lr

    @property
    def rule(self) -> Any:
        """The first transformation in ``tx`` that gives the update direction."""
        return _find(self.tx, lambda t: getattr(t, "direction", False))

    @property
    def weight_decay(self) -> float:
        """The rate of the first ``add_decayed_weights`` in ``tx`` (0 if none)."""
        found = _find(self.tx, lambda t: hasattr(t, "weight_decay"))
        return 0.0 if found is None else float(found.weight_decay)

    @property
    def decay_mask(self) -> Any:
        """The mask of the first ``add_decayed_weights`` in ``tx`` (``None``: every leaf)."""
        found = _find(self.tx, lambda t: hasattr(t, "weight_decay"))
        return None if found is None else found.mask

    def init(self, params: Any) -> OptimizerState:
        """The initial state for ``params``: count 0 and ``tx.init(params)``.

        Args:
            params: the tree to optimize, normally an ``fnn.Network``.

        Returns:
            An `OptimizerState`.

        Raises:
            ValueError: ``params`` has no arrays, or a mask does not fit it.
            TypeError: a leaf is not floating point.
        """
        step = begin_init(f"fnn.optim.{self.name}.init", params)
        return OptimizerState(np.int64(0), self.tx.init_leaves(step, step.like))

    def update(self, grads: Any, state: Any, params: Any) -> tuple[Any, OptimizerState]:
        """One step: ``u = tx(grads)``, ``θ ← θ + u``; the inputs are unchanged.

        Args:
            grads: dL/dparams, a tree like ``params`` (e.g. from ``fnn.grad``).
            state: the state from `init` or a previous ``update`` (a 0.1.0
                ``OptState`` is converted with ``fnn.optim.migrate``).
            params: the current parameters.

        Returns:
            ``(new_params, new_state)``, read-only.

        Raises:
            ValueError: the trees differ (names the first differing path), a mask
                selects nothing, or a schedule gives a bad rate.
            TypeError: ``state`` is of the wrong kind, or dtypes differ.
        """
        who = f"fnn.optim.{self.name}.update"
        if type(state) is not OptimizerState:
            state = self._coerce(who, state, params)
        step, g = begin(who, params, grads)
        u, inner = self.tx.update_leaves(step, list(g), state.inner, step.like)
        new_params = step.build(apply_leaves(step, u))
        return new_params, checked_state(OptimizerState, count=next_count(state.count), inner=inner)

    def _coerce(self, who: str, state: object, params: Any) -> OptimizerState:
        if isinstance(state, OptState):
            return migrate(state, self, params)
        if isinstance(state, OptimizerState):
            return state
        raise TypeError(
            f"{who}: state must be the OptimizerState from opt.init(params), got "
            f"{type(state).__name__}; the call is opt.update(grads, state, params)"
        )


def lift(parts: Sequence[object], tx: GradientTransformation) -> Any:
    """``tx`` as an Optimizer (named after the first Optimizer in ``parts``), or bare."""
    for p in parts:
        if isinstance(p, Optimizer):
            return Optimizer(tx, p.name)
    return tx


def chain(*parts: Any) -> Any:
    """Transformations applied in order: ``u ← t_n(… t_1(g))``.

    ``chain(clip_by_global_norm(1.0), adam(1e-3))`` clips, then runs Adam. A
    part may be an `Optimizer` (its ``tx`` is used) or any object with
    tree-level ``init``/``update``. A leaf frozen by a ``freeze`` part is left
    out of every later part.

    Args:
        *parts: gradient transformations or optimizers.

    Returns:
        An `Optimizer` if any part is one (named after it), else a `Chain`.

    Raises:
        TypeError: a part is not a transformation.

    Example:
        >>> from fnn import optim
        >>> opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam())
        >>> opt.name, len(opt.tx.transforms)
        ('adam', 2)
    """
    who = "fnn.optim.chain"
    txs = tuple(as_transformation(who, p, i) for i, p in enumerate(parts))
    return lift(parts, Chain(list(txs)))


def apply_updates(params: Any, updates: Any) -> Any:
    """``θ + u`` leaf by leaf; state leaves (batch-norm statistics) are returned as they are.

    Args:
        params: the current parameters.
        updates: a tree like ``params``, e.g. from ``tx.update``.

    Returns:
        The new params, read-only; the inputs are unchanged.

    Raises:
        ValueError: the trees differ (names the first differing path).
        TypeError: an update's dtype differs from its parameter's.

    Example:
        >>> import numpy as np
        >>> apply_updates({"w": np.array([1.0])}, {"w": np.array([-0.5])})
        {'w': array([0.5])}
    """
    step, u = begin("fnn.optim.apply_updates", params, updates, "updates")
    return step.build(apply_leaves(step, u))


def _transformation_and_state(who: str, opt: object, state: object) -> tuple[Any, Any]:
    if isinstance(opt, Optimizer):
        if not isinstance(state, OptimizerState):
            hint = "; convert a 0.1.0 OptState with fnn.optim.migrate"
            raise TypeError(
                f"{who}: state must be the OptimizerState from opt.init(params), got "
                f"{type(state).__name__}" + (hint if isinstance(state, OptState) else "")
            )
        return opt.tx, state.inner
    if isinstance(opt, GradientTransformation):
        return opt, state
    raise TypeError(
        f"{who}: opt must be an fnn.optim optimizer or gradient transformation, "
        f"got {type(opt).__name__}"
    )


def learning_rate(opt: Any, state: Any) -> float:
    """The learning rate the *next* update will use.

    The product of every ``scale_by_learning_rate`` schedule at its count and
    every ``reduce_on_plateau`` scale in ``opt``; NaN when the groups of a
    ``multi_transform`` use different rates.

    Args:
        opt: an `Optimizer` or a gradient transformation.
        state: its current state.

    Returns:
        The learning rate as a Python float.

    Raises:
        TypeError: ``opt`` or ``state`` is of the wrong kind.
        ValueError: ``opt`` has no learning rate.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> opt = optim.sgd(optim.step_decay(1.0, step_size=1, factor=0.5))
        >>> p = [np.zeros(1)]
        >>> _, state = opt.update([np.ones(1)], opt.init(p), p)
        >>> optim.learning_rate(opt, state)
        0.5
    """
    who = "fnn.optim.learning_rate"
    tx, inner = _transformation_and_state(who, opt, state)
    factor = tx.lr_factor(inner)
    if factor is None:
        raise ValueError(f"{who}: {tx.name} has no learning rate (no scale_by_learning_rate)")
    return float(factor)


def observe(opt: Any, state: Any, logs: Mapping[str, float]) -> Any:
    """The state after an epoch's metrics, for ``reduce_on_plateau`` (``fit`` calls this).

    Args:
        opt: an `Optimizer` or a gradient transformation.
        state: its current state.
        logs: metric name to value, e.g. ``{"val_loss": 0.31}``.

    Returns:
        The new state (the same state when nothing in ``opt`` observes metrics).

    Raises:
        ValueError: a ``reduce_on_plateau`` monitors a name missing from ``logs``.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> opt = optim.chain(optim.sgd(0.1), optim.reduce_on_plateau(patience=0, factor=0.5))
        >>> s = opt.init([np.zeros(1)])
        >>> s = optim.observe(opt, optim.observe(opt, s, {"val_loss": 1.0}), {"val_loss": 2.0})
        >>> optim.learning_rate(opt, s)
        0.05
    """
    who = "fnn.optim.observe"
    tx, inner = _transformation_and_state(who, opt, state)
    if not isinstance(logs, Mapping):
        raise TypeError(f"{who}: logs must be a mapping of metric name to value, got {logs!r}")
    new = tx.observe(inner, logs)
    return attrs.evolve(state, inner=new) if isinstance(opt, Optimizer) else new


def migrate(state: OptState, opt: Any, params: Any) -> OptimizerState:
    """Convert a 0.1.0 ``OptState`` into ``opt``'s state, to resume training exactly.

    The buffers are taken by name (``mu``, ``nu``, ``momentum``, ``sum_sq``) and
    every update count (bias correction, schedule position) is set to
    ``state.count``, so the next update equals the one 0.1.0 would have made.

    Args:
        state: the loaded ``OptState``.
        opt: the optimizer that made it, e.g. ``fnn.optim.adam(1e-2)``.
        params: the parameters it was made for.

    Returns:
        An `OptimizerState` for ``opt``.

    Raises:
        TypeError: ``state`` is not an ``OptState`` or ``opt`` not an `Optimizer`.
        ValueError: the buffers are not the ones ``opt`` keeps.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> p = {"w": np.zeros(2)}
        >>> old = optim.OptState(np.int64(4), {"momentum": {"w": np.ones(2)}})
        >>> new = optim.migrate(old, optim.sgd(0.1, momentum=0.9), p)
        >>> int(new.count), new.slots["momentum"]["w"]
        (4, array([1., 1.]))
    """
    who = "fnn.optim.migrate"
    if not isinstance(state, OptState):
        raise TypeError(
            f"{who}: state must be a 0.1.0 fnn.optim.OptState, got {type(state).__name__}"
        )
    if not isinstance(opt, Optimizer):
        raise TypeError(f"{who}: opt must be an fnn.optim.Optimizer, got {type(opt).__name__}")
    fresh = opt.init(params)
    names = list(fresh.slots)
    if sorted(state.slots) != sorted(names):
        raise ValueError(
            f"{who}: the state holds buffers {sorted(state.slots)} but {opt.name} keeps "
            f"{sorted(names)}; was it made by another optimizer? pass that optimizer, or "
            "start again with opt.init(params)"
        )
    count = state.count
    taken: dict[str, Any] = {}

    def visit(s: State) -> State:
        new: dict[str, Any] = {name: count for name in type(s).COUNTS}
        for name in type(s).SLOTS:
            key = _fresh_name(name, taken)
            taken[key] = True
            new[name] = state.slots[key]
        return attrs.evolve(s, **new) if new else s  # type: ignore[misc]

    return walk_states(fresh, visit)  # type: ignore[no-any-return]
