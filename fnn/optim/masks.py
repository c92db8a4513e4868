"""Choosing leaves by path: `masked`, `freeze` and `multi_transform`.

A *mask* says which leaves of the params a transformation applies to. It is one of:

- a path prefix such as ``"layers[0]"`` (the leaves ``layers[0].w`` and
  ``layers[0].b``, not ``layers[10].w``), or a tuple of prefixes;
- a predicate of the path, ``lambda path: path.endswith(".w")``;
- a tree like the params whose leaves are boolean arrays of shape ``()``.

A mask that selects no leaf is an error (a typo in a prefix would otherwise
silently train everything). Masks are resolved once per params structure and cached.

Example:
    >>> import fnn
    >>> from fnn import optim
    >>> net = fnn.init([fnn.Dense(4), fnn.ReLU(), fnn.Dense(2)], (3,), key=0)
    >>> opt = optim.chain(optim.freeze("layers[0]"), optim.adam(1e-3))  # train the head only
    >>> new, _ = opt.update(fnn.tree.map(lambda a: a * 0 + 1, net), opt.init(net), net)
    >>> new.layers[0].w is net.layers[0].w, bool((new.layers[2].b != net.layers[2].b).all())
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from fnn import tree
from fnn.optim.base import EmptyState, GradientTransformation, Step, as_transformation
from fnn.optim.optimizer import lift

__all__ = [
    "Freeze",
    "Mask",
    "Masked",
    "MultiTransform",
    "freeze",
    "masked",
    "multi_transform",
]

Array = np.ndarray
Mask = Any
"""A path prefix (``"layers[0]"``), a tuple of prefixes, a predicate ``path -> bool``,
or a tree like the params with boolean leaves of shape ``()``."""


def _under(path: str, prefix: str) -> bool:
    if not path.startswith(prefix):
        return False
    return len(path) == len(prefix) or prefix == "" or path[len(prefix)] in ".["


def _paths_hint(paths: tuple[str, ...]) -> str:
    shown = ", ".join(p or "<root>" for p in paths[:6])
    return shown + (", ..." if len(paths) > 6 else "")


def check_mask(who: str, mask: object) -> Mask:
    """Refuse values that cannot be masks (at construction, before any params are seen)."""
    if isinstance(mask, str) or callable(mask):
        return mask
    if isinstance(mask, tuple | list | set | frozenset):
        if not all(isinstance(m, str) for m in mask):
            raise TypeError(
                f"{who}: a mask given as a collection must hold path prefixes (str), got {mask!r}"
            )
        return tuple(mask) if not isinstance(mask, tuple) else mask
    if isinstance(mask, dict | np.ndarray) or attrs.has(type(mask)):
        return mask
    raise TypeError(
        f"{who}: mask must be a path prefix such as 'layers[0]', a tuple of prefixes, a "
        f"predicate of the path, or a tree of boolean scalars like the params; got {mask!r}"
    )


def resolve(step: Step, name: str, mask: Mask) -> tuple[bool, ...]:
    """One bool per leaf: is it selected by ``mask``? (cached per params structure)."""
    try:
        key: Any = ("fnn.optim.mask", name, mask)
        hash(key)
    except TypeError:
        key = None
    if key is not None:
        cached = step.treedef.memo.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
    selected = _resolve(step, name, mask)
    if key is not None:
        step.treedef.memo[key] = selected
    return selected


def _resolve(step: Step, name: str, mask: Mask) -> tuple[bool, ...]:
    who, paths = f"{step.who}: {name}", step.treedef.paths
    if isinstance(mask, str | tuple):
        prefixes = (mask,) if isinstance(mask, str) else mask
        for prefix in prefixes:
            if not any(_under(p, prefix) for p in paths):
                raise ValueError(
                    f"{who}: the mask {prefix!r} names no parameter path; the paths are "
                    f"{_paths_hint(paths)} (a prefix selects whole fields or indices)"
                )
        return tuple(any(_under(p, pre) for pre in prefixes) for p in paths)
    if callable(mask):
        out = []
        for path in paths:
            value = mask(path)
            if not isinstance(value, bool | np.bool_):
                raise TypeError(
                    f"{who}: the mask must return a bool for each path, got "
                    f"{type(value).__name__} for {path!r}"
                )
            out.append(bool(value))
        if not any(out):
            raise ValueError(
                f"{who}: the mask selects no parameter; the paths are {_paths_hint(paths)}"
            )
        return tuple(out)
    return _resolve_tree(who, paths, mask)


def _resolve_tree(who: str, paths: tuple[str, ...], mask: object) -> tuple[bool, ...]:
    pairs = tree.leaves_with_path(mask)
    mask_paths = tuple(p for p, _ in pairs)
    if mask_paths != paths:
        where = next(
            (f"{a} vs {b}" for a, b in zip(paths, mask_paths, strict=False) if a != b),
            f"{len(paths)} leaves vs {len(mask_paths)}",
        )
        raise ValueError(
            f"{who}: the mask tree does not match params ({where}); give a path prefix or a "
            "predicate, or build the tree with fnn.tree.map(lambda p: np.array(True), params)"
        )
    out = []
    for path, leaf in pairs:
        if leaf.shape != () or leaf.dtype != np.bool_:
            raise ValueError(
                f"{who}: the mask tree must hold boolean arrays of shape (), got "
                f"{leaf.dtype} of shape {leaf.shape} at {path}; use np.array(True)"
            )
        out.append(bool(leaf))
    if not any(out):
        raise ValueError(f"{who}: the mask tree selects no parameter (every leaf is False)")
    return tuple(out)


def _masked_inner(v: object) -> GradientTransformation:
    return as_transformation("fnn.optim.masked", v)


def _masked_mask(v: object) -> Mask:
    return check_mask("fnn.optim.masked", v)


def _freeze_mask(v: object) -> Mask:
    return check_mask("fnn.optim.freeze", v)


@attrs.frozen(eq=False)
class Masked(GradientTransformation):
    """``inner`` applied to the leaves selected by ``mask``; the others pass unchanged.

    The state is ``inner``'s (its buffers are trees like the params; unselected
    leaves keep their initial buffers).

    Attributes:
        inner: the transformation to apply.
        mask: which leaves (see the module docstring).
    """

    inner: GradientTransformation = attrs.field(converter=_masked_inner)
    mask: Mask = attrs.field(converter=_masked_mask)

    @property
    def name(self) -> str:
        return "masked"

    def parts(self) -> tuple[Any, ...]:
        return (self.inner,)

    def part_states(self, state: Any) -> tuple[Any, ...]:
        return (state,)

    def with_part_states(self, state: Any, states: Any) -> Any:
        return states[0]

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        resolve(step, self.name, self.mask)
        return self.inner.init_leaves(step, params)

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        sel = resolve(step, self.name, self.mask)
        return self.inner.update_leaves(step.sub([i for i in step.active if sel[i]]), updates,
                                        state, params)


def masked(inner: Any, mask: Mask) -> Any:
    """Apply ``inner`` only to the leaves selected by ``mask``; the others pass unchanged.

    ``chain(masked(add_decayed_weights(1e-4), lambda p: p.endswith(".w")), ...)``
    decays weights only.

    Args:
        inner: a transformation (or an `Optimizer`, which makes the result one).
        mask: a path prefix, a tuple of prefixes, a predicate or a boolean tree.

    Returns:
        A `Masked` transformation, or an Optimizer when ``inner`` is one.

    Raises:
        TypeError: ``inner`` is not a transformation, or ``mask`` cannot be a mask.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> tx = masked(optim.scale(10.0), "['a']")
        >>> p = {"a": np.ones(1), "b": np.ones(1)}
        >>> tx.update(p, tx.init(p), p)[0]
        {'a': array([10.]), 'b': array([1.])}
    """
    return lift([inner], Masked(inner, mask))


@attrs.frozen(eq=False)
class Freeze(GradientTransformation):
    """Freeze the leaves selected by ``mask``: from here on in the chain, nothing touches them.

    A frozen leaf gets the update ``-0.0`` (an Optimizer returns the very same
    array), is left out of every later transformation (no buffer changes, no
    weight decay, not in a global norm), and keeps its initial buffers.

    Attributes:
        mask: which leaves to freeze.
    """

    mask: Mask = attrs.field(converter=_freeze_mask)

    @property
    def name(self) -> str:
        return "freeze"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        resolve(step, self.name, self.mask)
        return EmptyState()

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not EmptyState:
            raise step.state_error(self.name, EmptyState, state)
        sel = resolve(step, self.name, self.mask)
        step.frozen.update(i for i in step.active if sel[i])
        return updates, state


def freeze(mask: Mask) -> Freeze:
    """Freeze the leaves selected by ``mask``; put it first in a chain.

    ``chain(freeze("layers[0]"), adamw(1e-3))`` never changes, decays or counts
    the first layer; "train only the head" is ``freeze(lambda p: not
    p.startswith("layers[4]"))``. Frozen leaves come back bit-identical.

    Args:
        mask: a path prefix, a tuple of prefixes, a predicate or a boolean tree.

    Returns:
        A `Freeze` transformation.

    Raises:
        TypeError: ``mask`` cannot be a mask.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> opt = optim.chain(freeze("['a']"), optim.sgd(0.5))
        >>> params = {"a": np.ones(2), "b": np.ones(2)}
        >>> new, _ = opt.update({"a": np.ones(2), "b": np.ones(2)}, opt.init(params), params)
        >>> new["a"] is params["a"], new["b"]
        (True, array([0.5, 0.5]))
    """
    return Freeze(mask)


def _check_transforms(value: object) -> dict[str, GradientTransformation]:
    who = "fnn.optim.multi_transform"
    if not isinstance(value, Mapping) or not value:
        raise TypeError(f"{who}: transforms must be a non-empty dict of label to transformation")
    out = {}
    for label, t in value.items():
        if not isinstance(label, str):
            raise TypeError(f"{who}: labels must be strings, got {label!r}")
        out[label] = as_transformation(who, t)
    return out


def _check_labels(value: object) -> Any:
    who = "fnn.optim.multi_transform"
    if callable(value):
        return value
    if isinstance(value, Mapping) and value:
        return {k: check_mask(who, m) for k, m in value.items()}
    raise TypeError(
        f"{who}: labels must be a function path -> label or a dict of label to mask, got {value!r}"
    )


@attrs.frozen(eq=False)
class MultiTransform(GradientTransformation):
    """A different transformation for each group of leaves; the state is a dict by label.

    Attributes:
        transforms: label to transformation.
        labels: a function ``path -> label``, or a dict of label to mask (each
            mask must select something); every leaf must get exactly one label.
    """

    transforms: dict[str, GradientTransformation] = attrs.field(converter=_check_transforms)
    labels: Any = attrs.field(converter=_check_labels)

    @property
    def name(self) -> str:
        return "multi_transform"

    def parts(self) -> tuple[Any, ...]:
        return tuple(self.transforms.values())

    def part_states(self, state: Any) -> tuple[Any, ...]:
        return tuple(state[k] for k in self.transforms)

    def with_part_states(self, state: Any, states: Any) -> Any:
        return dict(zip(self.transforms, states, strict=True))

    def lr_factor(self, state: Any) -> float | None:
        """The groups' common learning-rate factor; NaN when they differ."""
        factors = {f for t, k in zip(self.parts(), self.transforms, strict=True)
                   if (f := t.lr_factor(state[k])) is not None}
        if not factors:
            return None
        return factors.pop() if len(factors) == 1 else math.nan

    def _labels(self, step: Step) -> tuple[str, ...]:
        key = ("fnn.optim.labels", id(self))
        cached = step.treedef.memo.get(key)
        if cached is not None and cached[0] is self:
            return cached[1]  # type: ignore[no-any-return]
        out = _label_leaves(step, self.name, self.labels, self.transforms)
        step.treedef.memo[key] = (self, out)
        return out

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        self._labels(step)
        return {k: t.init_leaves(step, params) for k, t in self.transforms.items()}

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not dict or list(state) != list(self.transforms):
            raise TypeError(
                f"{step.who}: multi_transform: state must be the dict of states by label "
                f"{list(self.transforms)} from init(params), got {type(state).__name__}"
            )
        labels = self._labels(step)
        new_state = {}
        for k, t in self.transforms.items():
            sub = step.sub([i for i in step.active if labels[i] == k])
            updates, new_state[k] = t.update_leaves(sub, updates, state[k], params)
        return updates, new_state


def _label_leaves(
    step: Step, name: str, labels: Any, transforms: Mapping[str, Any]
) -> tuple[str, ...]:
    who, paths = f"{step.who}: {name}", step.treedef.paths
    if callable(labels):
        out = tuple(labels(p) for p in paths)
        for p, label in zip(paths, out, strict=True):
            if not isinstance(label, str) or label not in transforms:
                raise ValueError(
                    f"{who}: the labels function gave {label!r} for {p}; expected one of "
                    f"{sorted(transforms)}"
                )
    else:
        unknown = sorted(set(labels) - set(transforms))
        if unknown:
            raise ValueError(
                f"{who}: labels {unknown} have no transformation in {sorted(transforms)}"
            )
        chosen = {k: resolve(step, f"{name} label {k!r}", m) for k, m in labels.items()}
        picked: list[str] = []
        for i, p in enumerate(paths):
            hits = [k for k, sel in chosen.items() if sel[i]]
            if len(hits) != 1:
                raise ValueError(
                    f"{who}: {p} is selected by {len(hits)} labels {hits}; each leaf needs "
                    "exactly one label"
                )
            picked.append(hits[0])
        out = tuple(picked)
    return out


def multi_transform(
    transforms: Mapping[str, Any], labels: Callable[[str], str] | Mapping[str, Mask]
) -> Any:
    """Different transformations (or optimizers) for different groups of leaves.

    Args:
        transforms: label to transformation, e.g. ``{"body": sgd(1e-3), "head": adam(1e-2)}``.
        labels: a function ``path -> label``, or a dict of label to mask such as
            ``{"head": "layers[4]", "body": ("layers[0]", "layers[2]")}``.

    Returns:
        A `MultiTransform`, or an Optimizer when any transformation is one.

    Raises:
        TypeError: a transformation or the labels are of the wrong kind.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> opt = multi_transform({"fast": optim.sgd(1.0), "slow": optim.sgd(0.1)},
        ...                       lambda path: "fast" if path == "['a']" else "slow")
        >>> p = {"a": np.zeros(1), "b": np.zeros(1)}
        >>> opt.update({"a": np.ones(1), "b": np.ones(1)}, opt.init(p), p)[0]
        {'a': array([-1.]), 'b': array([-0.1])}
    """
    if not isinstance(transforms, Mapping):
        raise TypeError(f"fnn.optim.multi_transform: transforms must be a dict, got {transforms!r}")
    return lift(list(transforms.values()), MultiTransform(dict(transforms), labels))
