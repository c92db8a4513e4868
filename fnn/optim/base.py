"""The optimizer value, its state, and the one update loop every optimizer shares.

An `Optimizer` is a frozen value with two pure methods:

- ``init(params) -> state``: an `OptState` holding the step count and,
  for each buffer the update rule needs (``"mu"``, ``"nu"``, ...), a tree with
  the structure of ``params``;
- ``update(grads, state, params) -> (new_params, new_state)``.

Every optimizer applies, to each *trainable* leaf ``θ`` with gradient ``g``::

    g ← transforms(g)                  (chain: clipping, coupled L2, in order)
    u, buffers ← rule(g, buffers, t)   (SGD, Adam, RMSprop, Adagrad: the direction)
    θ ← θ − lr_t · (u + λ · θ)         (λ: decoupled weight decay, AdamW; 0 otherwise)

with ``t`` the 1-based number of this update and ``lr_t = schedule(t − 1)``.
A leaf is trainable unless it is a state leaf (``fnn.tree.state_paths``, e.g.
batch-norm running statistics) or frozen by `freeze`; any other leaf,
and its buffers, come back as the very same (bit-identical) arrays.

Example:
    >>> import numpy as np, fnn
    >>> net = fnn.init([fnn.Dense(1)], (2,), key=0)
    >>> opt = fnn.optim.adam(1e-2)
    >>> state = opt.init(net)
    >>> x, y = np.ones((4, 2), np.float32), np.zeros((4, 1), np.float32)
    >>> grads = fnn.grad(net, x, y, fnn.losses.mse)
    >>> net2, state2 = opt.update(grads, state, net)
    >>> int(state2.count), net2.layers[0].w.dtype
    (1, dtype('float32'))
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import numpy as np

from fnn import tree
from fnn._frozen import readonly_reduce_ex
from fnn.optim._walk import (
    Collect,
    Mask,
    check_dtypes,
    map_checked,
    rate,
    rebuild,
    resolve_mask,
)
from fnn.optim.schedules import Schedule, as_schedule

__all__ = [
    "Mask",
    "OptState",
    "Optimizer",
    "Rule",
    "Transform",
    "chain",
    "freeze",
    "learning_rate",
]

Array = np.ndarray
_Flags = tuple[list[bool], list[bool]]
"""Per leaf, in leaf order: (trainable, decayed)."""


class Rule(Protocol):
    """The per-leaf math of an optimizer (see `fnn.optim.rules`)."""

    @property
    def slots(self) -> tuple[str, ...]:
        """Names of the per-leaf buffers, e.g. ``("mu", "nu")``."""
        ...

    def init_slot(self, name: str, p: Array) -> Array:
        """The initial value of buffer ``name`` for parameter ``p``."""
        ...

    def step(
        self, g: Array, slots: Sequence[Array], t: int, lr: float
    ) -> tuple[Array, tuple[Array, ...]]:
        """``(lr · u, new_slots)`` for gradient ``g`` at 1-based step ``t``.

        Never writes into its inputs. The first returned array must be freshly
        allocated (the caller turns it into the new parameter in place); the
        buffers are new arrays that nobody writes into afterwards.
        """
        ...


class Transform(Protocol):
    """A stateless gradient transform used by `chain` (see `fnn.optim.transforms`)."""

    def __call__(self, grads: list[Array], params: list[Array]) -> list[Array]:
        """New gradients for the trainable leaves; never writes into its inputs."""
        ...


def _count_array(value: object) -> Array:
    a = np.asarray(value)
    if a.shape != () or not np.issubdtype(a.dtype, np.integer) or int(a) < 0:
        raise ValueError(
            f"fnn.optim.OptState: count must be a non-negative integer scalar, got {value!r}; "
            "create states with opt.init(params)"
        )
    return tree.readonly(a.astype(np.int64, copy=False))


@attrs.frozen(eq=False)
class OptState:
    """An optimizer's state: the update count and one buffer tree per slot.

    A state is a tree (``fnn.tree``): compare two with ``fnn.tree.allclose`` and
    save it like a network. ``count`` is a 0-d int64 array, the number of
    updates taken so far; ``slots[name]`` has the structure of the params.

    Example:
        >>> import numpy as np
        >>> s = OptState(np.int64(3), {"mu": [np.zeros(2)]})
        >>> int(s.count), list(s.slots)
        (3, ['mu'])
    """

    count: Array = attrs.field(converter=_count_array)
    slots: dict[str, Any] = attrs.field(factory=dict, converter=dict)
    __reduce_ex__ = readonly_reduce_ex  # copies and pickles keep arrays read-only


@attrs.frozen(eq=False)
class Optimizer:
    """A pure optimizer: ``init(params) -> state``, ``update(grads, state, params)``.

    Build one with `fnn.optim.sgd`, `fnn.optim.adam`, ... and
    combine with `chain` and `freeze`; the module docstring gives
    the update shared by all of them.

    Attributes:
        name: the constructor's name, used in error messages.
        rule: the per-leaf update direction and its buffers.
        lr: the learning-rate schedule ``step -> lr``.
        weight_decay: decoupled decay ``λ`` (AdamW); 0 for none.
        decay_mask: which trainable leaves are decayed (``None``: all).
        transforms: gradient transforms applied in order before ``rule``.
        frozen: masks of frozen leaves (a leaf is frozen if any mask says so).
    """

    name: str
    rule: Rule
    lr: Schedule
    weight_decay: float = 0.0
    decay_mask: Mask = None
    transforms: tuple[Transform, ...] = ()
    frozen: tuple[Mask, ...] = ()

    def init(self, params: Any) -> OptState:
        """The initial state for ``params``: count 0 and zero (or initial) buffers.

        Args:
            params: the tree to optimize, normally an ``fnn.Network``.

        Returns:
            An `OptState` whose slot trees have the structure of ``params``.

        Raises:
            ValueError: ``params`` has no arrays, or a mask does not fit it.
            TypeError: a leaf is not floating point.
        """
        who = f"fnn.optim.{self.name}.init"
        pairs = tree.leaves_with_path(params)
        if not pairs:
            raise ValueError(f"{who}: params has no arrays; pass the network built by fnn.init")
        for path, p in pairs:
            if not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"{who}: {path} has dtype {p.dtype}; parameters must be floating")
        self._flags(who, params)
        slots = {
            n: tree.map(lambda p, n=n: self.rule.init_slot(n, p), params) for n in self.rule.slots
        }
        return OptState(np.int64(0), slots)

    def update(self, grads: Any, state: OptState, params: Any) -> tuple[Any, OptState]:
        """One optimizer step; see the module docstring for the math.

        Args:
            grads: dL/dparams, a tree like ``params`` (e.g. from ``fnn.grad``).
            state: the state from `init` or a previous ``update``.
            params: the current parameters.

        Returns:
            ``(new_params, new_state)``; the inputs are unchanged, the outputs read-only.

        Raises:
            ValueError: the trees differ (names the first differing path), or the
                schedule gives a bad rate.
            TypeError: ``state`` is not an `OptState`, or dtypes differ.
        """
        who = f"fnn.optim.{self.name}.update"
        names = self.rule.slots
        t = check_state(who, state, names)
        lr = rate(who, self.lr, t)
        slot_trees = [state.slots[n] for n in names]
        flags = self._flags(who, params)
        # transforms may need every gradient first (a global norm); else one walk does it all
        step = self._update_listwise if self.transforms else self._update_in_walk
        new_params, new_slots = step(who, grads, slot_trees, params, t, lr, flags)
        new_state = OptState(
            np.int64(t + 1), {n: rebuild(params, new_slots[k]) for k, n in enumerate(names)}
        )
        return new_params, new_state

    def _update_listwise(
        self,
        who: str,
        grads: Any,
        slot_trees: list[Any],
        params: Any,
        t: int,
        lr: float,
        flags: _Flags | None,
    ) -> tuple[Any, list[list[Array]]]:
        """Collect all leaves, run the transforms on the trainable ones, then update them."""
        names = self.rule.slots
        rows = map_checked(who, Collect(), params, grads, slot_trees, names).rows
        active, decay = flags or ([True] * len(rows), [True] * len(rows))
        idx = [i for i, a in enumerate(active) if a]
        for i in idx:
            check_dtypes(who, params, i, rows[i], names)
        g_act = [rows[i][1] for i in idx]
        for transform in self.transforms:
            g_act = transform(g_act, [rows[i][0] for i in idx])
        new_p = [r[0] for r in rows]
        new_slots = [[r[2 + k] for r in rows] for k in range(len(names))]
        for j, i in enumerate(idx):
            new_p[i], buffers = self._leaf(rows[i][0], g_act[j], rows[i][2:], t, lr, decay[i])
            for k, b in enumerate(buffers):
                new_slots[k][i] = b
        return rebuild(params, new_p), new_slots

    def _update_in_walk(
        self,
        who: str,
        grads: Any,
        slot_trees: list[Any],
        params: Any,
        t: int,
        lr: float,
        flags: _Flags | None,
    ) -> tuple[Any, list[list[Array]]]:
        """One walk computes the new params and collects the new buffers."""
        names = self.rule.slots
        new_slots: list[list[Array]] = [[] for _ in names]
        counter = itertools.count()

        def leaf(p: Array, g: Array, *old: Array) -> Array:
            i = next(counter)
            if flags is not None and not flags[0][i]:
                new, buffers = p, old
            else:
                check_dtypes(who, params, i, (p, g, *old), names)
                new, buffers = self._leaf(p, g, old, t, lr, flags is None or flags[1][i])
            for k, b in enumerate(buffers):
                new_slots[k].append(b)
            return new

        return map_checked(who, leaf, params, grads, slot_trees, names).result, new_slots

    def _leaf(
        self, p: Array, g: Array, old: Sequence[Array], t: int, lr: float, decayed: bool
    ) -> tuple[Array, tuple[Array, ...]]:
        """The new value and buffers of one trainable leaf (``t`` updates taken before)."""
        shape = p.shape
        if p.ndim == 0:  # NumPy turns 0-d results into scalars; rules want arrays
            p, g, old = p.reshape(1), np.asarray(g).reshape(1), [b.reshape(1) for b in old]
        delta, buffers = self.rule.step(g, old, t + 1, lr)
        if self.weight_decay and decayed:
            decay = p * p.dtype.type(lr * self.weight_decay)
            decay += delta
            delta = decay
        np.subtract(p, delta, out=delta)  # delta is a fresh array (Rule.step's contract)
        return delta.reshape(shape), tuple(b.reshape(shape) for b in buffers)

    def _flags(self, who: str, params: Any) -> _Flags | None:
        """Per leaf, in leaf order: (trainable, decayed); ``None`` when all are both."""
        active = [not s for s in tree.state_mask(params)]
        masked_decay = bool(self.weight_decay) and self.decay_mask is not None
        if all(active) and not self.frozen and not masked_decay:
            return None
        if self.frozen or masked_decay:
            paths = [p for p, _ in tree.leaves_with_path(params)]
        for mask in self.frozen:
            frozen = resolve_mask(who, "freeze mask", mask, paths)
            active = [a and not f for a, f in zip(active, frozen, strict=True)]
        decay = active
        if masked_decay:
            wanted = resolve_mask(who, "weight-decay mask", self.decay_mask, paths)
            decay = [a and d for a, d in zip(active, wanted, strict=True)]
        return active, decay


def check_state(who: str, state: object, names: tuple[str, ...]) -> int:
    if not isinstance(state, OptState):
        raise TypeError(
            f"{who}: state must be the OptState from opt.init(params), got {type(state).__name__}; "
            "the call is opt.update(grads, state, params)"
        )
    if tuple(state.slots) != names:
        raise ValueError(
            f"{who}: state holds buffers {list(state.slots)} but this optimizer needs "
            f"{list(names)}; was it made by another optimizer? re-create the state with "
            "opt.init(params)"
        )
    return int(state.count)


def chain(*parts: Transform | Optimizer) -> Optimizer:
    """Gradient transforms applied in order, then an optimizer: ``chain(t1, t2, opt)``.

    ``g ← t_k(… t_1(g))`` and then ``opt``'s own update, e.g.
    ``chain(clip_by_global_norm(1.0), sgd(0.1, momentum=0.9))``. Transforms see
    only the trainable leaves (frozen and state leaves are left out of a global
    norm).

    Args:
        *parts: zero or more transforms from `fnn.optim.transforms`, and an
            `Optimizer` last.

    Returns:
        The optimizer with the transforms prepended to its own.

    Raises:
        TypeError: the last part is not an Optimizer, or an earlier part is one.

    Example:
        >>> from fnn import optim
        >>> opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam())
        >>> len(opt.transforms)
        1
    """
    who = "fnn.optim.chain"
    if not parts or not isinstance(parts[-1], Optimizer):
        raise TypeError(
            f"{who}: the last argument must be an optimizer such as fnn.optim.adam(1e-3), "
            f"got {type(parts[-1]).__name__ if parts else 'nothing'}"
        )
    opt = parts[-1]
    transforms: list[Transform] = []
    for i, part in enumerate(parts[:-1]):
        if isinstance(part, Optimizer) or not callable(part):
            raise TypeError(
                f"{who}: argument {i} must be a gradient transform such as "
                f"fnn.optim.clip_by_global_norm(1.0), got {type(part).__name__}; "
                "only the last argument is an optimizer"
            )
        transforms.append(part)
    return attrs.evolve(opt, transforms=(*transforms, *opt.transforms))


def freeze(opt: Optimizer, mask: Mask) -> Optimizer:
    """``opt`` with the leaves selected by ``mask`` frozen: never updated, never decayed.

    A frozen leaf comes back as the same array (bit-identical) after any number
    of steps and its buffers stay at their initial value. ``mask`` is a
    predicate of the leaf path (``lambda path: path.startswith("layers[0]")``)
    or a tree like the params with boolean leaves of shape ``()``; ``True``
    means frozen. Freezing twice freezes the union.

    Args:
        opt: any optimizer.
        mask: which leaves to freeze.

    Returns:
        A new optimizer; ``opt`` is unchanged.

    Raises:
        TypeError: ``opt`` is not an Optimizer.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> params = {"a": np.ones(2), "b": np.ones(2)}
        >>> opt = optim.freeze(optim.sgd(0.5), lambda path: path == "['a']")
        >>> new, _ = opt.update({"a": np.ones(2), "b": np.ones(2)}, opt.init(params), params)
        >>> new["a"], new["b"]
        (array([1., 1.]), array([0.5, 0.5]))
    """
    if not isinstance(opt, Optimizer):
        raise TypeError(
            f"fnn.optim.freeze: opt must be an optimizer such as fnn.optim.adam(1e-3), "
            f"got {type(opt).__name__}"
        )
    return attrs.evolve(opt, frozen=(*opt.frozen, mask))


def learning_rate(opt: Optimizer, state: OptState) -> float:
    """The learning rate the *next* ``opt.update(grads, state, params)`` will use.

    ``lr = schedule(state.count)``: the count of updates already taken.

    Args:
        opt: the optimizer.
        state: its current state.

    Returns:
        The learning rate as a Python float.

    Raises:
        TypeError: ``opt`` or ``state`` is of the wrong kind.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> opt = optim.sgd(optim.step_decay(1.0, step_size=1, factor=0.5))
        >>> state = optim.OptState(np.int64(2), {})
        >>> optim.learning_rate(opt, state)
        0.25
    """
    who = "fnn.optim.learning_rate"
    if not isinstance(opt, Optimizer):
        raise TypeError(f"{who}: opt must be an fnn.optim optimizer, got {type(opt).__name__}")
    t = check_state(who, state, opt.rule.slots)
    return rate(who, opt.lr, t)


def make(name: str, rule: Rule, lr: object, **kwargs: Any) -> Optimizer:
    """Build an `Optimizer`, turning ``lr`` into a schedule (for the constructors)."""
    return Optimizer(name, rule, as_schedule(f"fnn.optim.{name}", lr), **kwargs)
