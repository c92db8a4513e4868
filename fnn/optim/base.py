"""Gradient transformations: pairs of pure functions, composed by `chain`.

A `GradientTransformation` ``tx`` has two pure methods, as in Optax:

- ``tx.init(params) -> state``: its state, a tree of frozen attrs values whose
  arrays are read-only (so it can be compared, saved with ``fnn.save``, resumed);
- ``tx.update(updates, state, params) -> (new_updates, new_state)``: maps the
  updates (at first the gradients) to new updates.

Updates are *deltas to add*: ``fnn.optim.apply_updates(params, updates)`` is
``θ + u`` leaf by leaf, and ``scale_by_learning_rate(lr)`` multiplies by
``−lr``, so ``chain(scale_by_adam(), scale_by_learning_rate(1e-3))`` is Adam.

Two kinds of leaves are left alone by every transformation: *state* leaves
(attrs fields marked as state, such as batch-norm running statistics; see
``fnn.tree.state_paths``) and leaves *frozen* by ``fnn.optim.freeze`` earlier
in the chain. Their buffers keep their initial values, they count in no global
norm, and the updates that ``update`` returns for them are ``-0.0`` (adding
``-0.0`` leaves every float, even ``-0.0``, bit-identical).

Inside a chain the transformations pass flat lists of leaves to each other (the
``*_leaves`` methods): the trees are flattened once per step and rebuilt once.

Example:
    >>> import numpy as np
    >>> from fnn import optim
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> tx = optim.chain(optim.scale(2.0), optim.scale_by_learning_rate(0.1))
    >>> updates, state = tx.update({"w": np.array([1.0, 1.0])}, tx.init(params), params)
    >>> updates["w"], optim.apply_updates(params, updates)["w"]
    (array([-0.2, -0.2]), array([0.8, 1.8]))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from fnn import tree
from fnn._frozen import readonly_reduce_ex
from fnn.tree import TreeDef

__all__ = ["Chain", "EmptyState", "GradientTransformation", "OptState", "State", "Step"]

Array = np.ndarray


def frozen_array(a: Array) -> Array:
    """Mark an array fnn just allocated as read-only (in place: nobody else holds it)."""
    a.setflags(write=False)
    return a


def as_array(x: Any) -> Array:
    """``x`` itself if it is an array; arithmetic on 0-d arrays gives NumPy scalars."""
    return x if type(x) is np.ndarray else np.asarray(x)


def next_count(count: Array) -> Array:
    """``count + 1`` as a new read-only 0-d int64 array (``count`` came from a checked state)."""
    out = np.array(int(count) + 1, np.int64)
    out.setflags(write=False)
    return out


def checked_state(cls: type[Any], **fields: Any) -> Any:
    """An instance of the attrs class ``cls`` with these field values, built without running
    its converters: for states made on every update from values already checked (internal)."""
    new = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(new, name, value)
    return new


def count_array(who: str, value: object) -> Array:
    """A read-only 0-d int64 array holding a non-negative count."""
    if type(value) is int and value >= 0:  # the common case, every update: fast
        out = np.array(value, np.int64)
        out.setflags(write=False)
        return out
    a = np.asarray(value)
    if a.shape != () or a.dtype.kind not in "iu" or int(a) < 0:
        raise ValueError(
            f"{who}: count must be a non-negative integer scalar, got {value!r}; "
            "create states with init(params)"
        )
    return tree.readonly(a.astype(np.int64, copy=False))


class Step:
    """What one ``update`` call shares among the transformations of a chain (internal).

    Attributes:
        who: the public entry point, for error messages (``fnn.optim.adam.update``).
        treedef: the structure of the params (or of the updates when no params).
        like: the leaves of that tree; buffers must match their shapes and dtypes.
        active: indices of the leaves this transformation may change.
        frozen: indices frozen so far in this call (shared by every sub-step).
        fresh: arrays allocated in this call that nobody else holds, by id; a
            later transformation may write into them instead of allocating.
    """

    __slots__ = ("active", "fresh", "frozen", "like", "treedef", "who")

    def __init__(
        self, who: str, treedef: TreeDef, like: list[Array], active: list[int]
    ) -> None:
        self.who = who
        self.treedef = treedef
        self.like = like
        self.active = active
        self.frozen: set[int] = set()
        self.fresh: dict[int, Array] = {}

    def sub(self, active: list[int]) -> Step:
        """The same call restricted to ``active`` (frozen and fresh are shared)."""
        s = Step(self.who, self.treedef, self.like, active)
        s.frozen, s.fresh = self.frozen, self.fresh
        return s

    def new(self, a: Array) -> Array:
        """Record ``a`` as allocated in this call and held by nobody else."""
        self.fresh[id(a)] = a
        return a

    def owns(self, a: Array) -> bool:
        """Whether ``a`` was allocated in this call and may be written into."""
        return self.fresh.get(id(a)) is a

    def scale(self, updates: list[Array], s: float, indices: Iterable[int] | None = None) -> None:
        """``updates[i] ← updates[i] · s`` for ``i`` in ``indices`` (default: the active
        leaves), with ``s`` cast to each leaf's dtype; in place where this call owns the
        array, else into a new one (the list is changed, never the arrays given)."""
        fresh = self.fresh
        scalars: dict[np.dtype, Any] = {}
        for i in self.active if indices is None else indices:
            a = updates[i]
            f = scalars.get(a.dtype)
            if f is None:
                f = scalars[a.dtype] = a.dtype.type(s)
            if fresh.get(id(a)) is a:
                a *= f
            else:
                a = a * f
                if type(a) is not np.ndarray:
                    a = np.asarray(a)
                fresh[id(a)] = a
                updates[i] = a

    def buffer(self, name: str, what: str, value: object) -> list[Array]:
        """The leaves of the buffer tree ``value`` (``state.<what>``), checked against params."""
        try:
            leaves = tree.leaves_like(self.treedef, self.like, value)
        except ValueError as err:
            raise ValueError(
                f"{self.who}: {name}: state.{what} does not match params: {err}; the state was "
                "built for other params: re-create the state with opt.init(params)"
            ) from None
        like = self.like
        for i in self.active:
            if leaves[i].dtype != like[i].dtype:
                raise TypeError(
                    f"{self.who}: {name}: state.{what} at {self.treedef.paths[i]} has dtype "
                    f"{leaves[i].dtype} but the parameter is {like[i].dtype}; re-create the state "
                    "with opt.init(params)"
                )
        return leaves

    def build(self, leaves: Sequence[Array]) -> Any:
        """A tree like params from read-only leaves in leaf order."""
        return self.treedef.build(leaves)

    def zeros(self) -> Any:
        """A tree like params of read-only zeros."""
        return self.build([frozen_array(np.zeros_like(p)) for p in self.like])

    def state_error(self, name: str, cls: type, state: object) -> TypeError:
        return TypeError(
            f"{self.who}: {name}: state must be the {cls.__name__} from init(params), got "
            f"{type(state).__name__}; pass the state that init (or the previous update) returned"
        )

    def needs_params(self, name: str, params: list[Array] | None) -> list[Array]:
        """``params``, or a ValueError saying that ``name`` needs them."""
        if params is None:
            raise ValueError(
                f"{self.who}: {name} needs the params: call update(updates, state, params)"
            )
        return params


class State:
    """Base of fnn's transformation states: which fields are buffers, counts, inner states.

    ``SLOTS`` names the fields holding per-leaf buffers (trees like the params),
    ``COUNTS`` the fields counting updates, ``SUBSTATES`` the fields holding
    inner transformations' states. ``OptimizerState.slots`` and
    ``fnn.optim.migrate`` read them.
    """

    SLOTS: ClassVar[tuple[str, ...]] = ()
    COUNTS: ClassVar[tuple[str, ...]] = ()
    SUBSTATES: ClassVar[tuple[str, ...]] = ()
    __reduce_ex__ = readonly_reduce_ex  # copies and pickles keep arrays read-only


@attrs.frozen
class EmptyState(State):
    """The state of a transformation that keeps none (``scale``, ``clip``, ``freeze``, ...).

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> optim.scale(0.5).init({"w": np.zeros(1)})
        EmptyState()
    """


def _optstate_count(v: object) -> Array:
    return count_array("fnn.optim.OptState", v)


@attrs.frozen(eq=False)
class OptState:
    """fnn 0.1.0's optimizer state: the update count and one buffer tree per slot.

    Kept so that checkpoints written by fnn 0.1.0 load (``fnn.load``) and resume:
    an `Optimizer`'s ``update`` accepts an ``OptState`` and converts it with
    ``fnn.optim.migrate``. New states are ``fnn.optim.OptimizerState``.

    Attributes:
        count: a 0-d int64 array, the number of updates taken.
        slots: buffer name (``"mu"``, ``"nu"``, ``"momentum"``, ``"sum_sq"``) to a
            tree like the params.

    Example:
        >>> import numpy as np
        >>> s = OptState(np.int64(3), {"mu": [np.zeros(2)]})
        >>> int(s.count), list(s.slots)
        (3, ['mu'])
    """

    count: Array = attrs.field(converter=_optstate_count)
    slots: dict[str, Any] = attrs.field(factory=dict)
    __reduce_ex__ = readonly_reduce_ex  # copies and pickles keep arrays read-only

    @slots.validator
    def _check_slots(self, attribute: Any, value: object) -> None:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise TypeError(
                f"fnn.optim.OptState: slots must be a dict of buffer name to tree, got {value!r}"
            )


class GradientTransformation:
    """Base class of fnn's gradient transformations (see the module docstring).

    A subclass implements the flat interface used inside chains:
    ``init_leaves(step, params)`` and ``update_leaves(step, updates, state,
    params)``, where ``params`` and ``updates`` are lists of arrays in leaf
    order. It must change only the leaves listed in ``step.active``, never write
    into an array unless ``step.owns(array)``, and return read-only buffers. Any
    other object with tree-level ``init(params)`` and ``update(updates, state,
    params)`` also works in `chain` (wrapped, at the cost of one rebuild per step).
    """

    @property
    def name(self) -> str:
        """The constructor's name, used in error messages."""
        return type(self).__name__

    def init(self, params: Any) -> Any:
        """The initial state for ``params``.

        Raises:
            ValueError: ``params`` has no arrays, or a mask does not fit it.
            TypeError: a leaf is not floating point.
        """
        from fnn.optim.optimizer import begin_init

        step = begin_init(f"fnn.optim.{self.name}.init", params)
        return self.init_leaves(step, step.like)

    def update(self, updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        """``(new_updates, new_state)``; params are needed by some transformations.

        Raises:
            ValueError: the trees differ (names the first differing path), a mask
                selects nothing, or a schedule gives a bad rate.
            TypeError: a state of the wrong kind, or dtypes differ.
        """
        from fnn.optim.optimizer import begin, finish_updates

        step, u_leaves = begin(f"fnn.optim.{self.name}.update", params, updates, "updates")
        p_leaves = None if params is None else step.like
        new, new_state = self.update_leaves(step, list(u_leaves), state, p_leaves)
        return finish_updates(step, new), new_state

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        """The initial state, from the params' leaves."""
        raise NotImplementedError(f"{type(self).__name__} does not implement init_leaves")

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        """New updates (a new list) and the new state, for the leaves in ``step.active``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_leaves")

    def parts(self) -> tuple[Any, ...]:
        """The transformations inside this one (for walks such as `learning_rate`)."""
        return ()

    def part_states(self, state: Any) -> tuple[Any, ...]:
        """The states of `parts`, in order, taken from this transformation's state."""
        return ()

    def with_part_states(self, state: Any, states: Sequence[Any]) -> Any:
        """This transformation's state with its parts' states replaced."""
        return state

    def observe(self, state: Any, logs: Mapping[str, float]) -> Any:
        """The state after seeing an epoch's metrics (only `reduce_on_plateau` cares)."""
        pairs = zip(self.parts(), self.part_states(state), strict=True)
        new = [p.observe(s, logs) for p, s in pairs]
        return self.with_part_states(state, new) if new else state

    def monitors(self) -> tuple[str, ...]:
        """The metric names `observe` needs, e.g. ``("val_loss",)``."""
        return tuple(m for p in self.parts() for m in p.monitors())

    def lr_factor(self, state: Any) -> float | None:
        """This transformation's factor in the learning rate of the next update, if any."""
        pairs = zip(self.parts(), self.part_states(state), strict=True)
        factors = [p.lr_factor(s) for p, s in pairs]
        known = [f for f in factors if f is not None]
        if not known:
            return None
        out = 1.0
        for f in known:
            out *= f
        return out


def as_transformation(who: str, part: object, i: int | None = None) -> GradientTransformation:
    """``part`` as a GradientTransformation: fnn's own, an Optimizer's, or a wrapped foreign one."""
    inner = getattr(part, "tx", None)
    if isinstance(inner, GradientTransformation):  # an fnn.optim.Optimizer
        return inner
    if isinstance(part, GradientTransformation):
        return part
    if callable(getattr(part, "init", None)) and callable(getattr(part, "update", None)):
        return Foreign(part)
    where = "" if i is None else f"argument {i} "
    raise TypeError(
        f"{who}: {where}must be a gradient transformation such as fnn.optim.scale_by_adam() "
        f"or an optimizer such as fnn.optim.adam(1e-3), got {type(part).__name__}"
    )


@attrs.frozen
class Foreign(GradientTransformation):
    """A user's transformation with tree-level ``init`` and ``update``, inside a chain."""

    inner: Any

    @property
    def name(self) -> str:
        return type(self.inner).__name__

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return self.inner.init(step.build(params))

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        u_tree = step.build([tree.readonly(u) for u in updates])
        p_tree = None if params is None else step.build(params)
        new_tree, new_state = self.inner.update(u_tree, state, p_tree)
        new = tree.leaves_like(step.treedef, step.like, new_tree, step.who)
        out = list(updates)
        for i in step.active:  # the others pass through, whatever the user's code did
            out[i] = np.asarray(new[i])
        return out, new_state


def _parts(value: Iterable[object]) -> tuple[GradientTransformation, ...]:
    if not isinstance(value, tuple | list):
        raise TypeError(
            f"fnn.optim.chain: transforms must be a list of transformations, got {value!r}"
        )
    return tuple(as_transformation("fnn.optim.chain", p, i) for i, p in enumerate(value))


@attrs.frozen
class Chain(GradientTransformation):
    """Transformations applied in order: ``u ← t_n(… t_1(u))``; its state is a tuple.

    A leaf frozen by a `fnn.optim.freeze` part is left out of every later part.

    Attributes:
        transforms: the transformations, first applied first.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> tx = Chain((optim.scale(2.0), optim.scale(3.0)))
        >>> p = [np.ones(1)]
        >>> tx.update([np.ones(1)], tx.init(p), p)[0]
        [array([6.])]
    """

    transforms: tuple[GradientTransformation, ...] = attrs.field(converter=_parts)

    @property
    def name(self) -> str:
        return "chain"

    def parts(self) -> tuple[Any, ...]:
        return self.transforms

    def part_states(self, state: Any) -> tuple[Any, ...]:
        return tuple(state)

    def with_part_states(self, state: Any, states: Sequence[Any]) -> Any:
        return tuple(states)

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return tuple(t.init_leaves(step, params) for t in self.transforms)

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not tuple or len(state) != len(self.transforms):
            raise TypeError(
                f"{step.who}: chain: state must be the tuple of {len(self.transforms)} states "
                f"from init(params), got {type(state).__name__}; pass the state that init "
                "(or the previous update) returned"
            )
        new_states = []
        n_frozen = len(step.frozen)
        for t, s in zip(self.transforms, state, strict=True):
            updates, s = t.update_leaves(step, updates, s, params)
            new_states.append(s)
            if len(step.frozen) != n_frozen:  # a freeze: later parts leave those leaves alone
                n_frozen = len(step.frozen)
                step = step.sub([i for i in step.active if i not in step.frozen])
        return updates, tuple(new_states)
