"""The layer protocol and the small helpers every layer shares.

A layer is a frozen ``attrs`` class that subclasses `Layer`:

- ``init(key, in_shape, dtype) -> (layer, out_shape)`` builds parameters for an
  input of shape ``(batch, *in_shape)``; ``in_shape`` excludes the batch axis.
- ``forward(x, *, key=None, training=False) -> y``.
- ``vjp(x, *, key=None, training=False, need_dx=True) -> (y, pullback)`` where
  ``pullback(dy) -> (dlayer, dx)``; ``dlayer`` is a layer of the same class whose
  parameter fields hold dL/dparam, and ``dx`` is dL/dx (``None`` when
  ``need_dx=False``, which lets a network skip the input gradient of its first
  layer).

Layers whose output is random (dropout) set ``stochastic = True`` and receive a
key of their own from the network. Layers with non-trainable state (batch-norm
running statistics) set ``stateful = True`` and implement ``vjp_with_state``,
which also returns the layer with its updated state; their state fields are
declared with `state_field` and get zero gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import numpy as np
from typing_extensions import Self

from fnn import _arrays
from fnn._frozen import readonly_reduce_ex
from fnn.random import KeyLike
from fnn.tree import STATE_METADATA_KEY, readonly

PARAM_METADATA_KEY = "fnn_array"
"""attrs field metadata key marking a field that holds an array (parameter or state)."""

Array = np.ndarray
Shape = tuple[int, ...]
Pullback = Callable[[Array], tuple["Layer", Array | None]]

__all__ = ["Array", "Layer", "Pullback", "Shape", "param_field", "state_field"]


def _to_readonly(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"layer parameters must be NumPy arrays or None, got {type(value).__name__}; "
            "build layers with fnn.init(...) rather than passing parameters by hand"
        )
    return readonly(value)


def param_field() -> Any:
    """A trainable parameter array field: ``None`` until ``init``, read-only after."""
    return attrs.field(
        default=None, converter=_to_readonly, kw_only=True, metadata={PARAM_METADATA_KEY: True}
    )


def state_field() -> Any:
    """A non-trainable array field (gradient is zero; optimizers leave it alone)."""
    return attrs.field(
        default=None,
        converter=_to_readonly,
        kw_only=True,
        metadata={STATE_METADATA_KEY: True, PARAM_METADATA_KEY: True},
    )


@attrs.frozen(eq=False)
class Layer:
    """Base class of every fnn layer; see the module docstring for the protocol."""

    stochastic: ClassVar[bool] = False
    stateful: ClassVar[bool] = False
    __reduce_ex__ = readonly_reduce_ex  # copies and pickles keep arrays read-only

    @property
    def name(self) -> str:
        """A short human-readable name such as ``Dense(units=10)``."""
        return type(self).__name__

    @property
    def built(self) -> bool:
        """True once ``init`` has filled every parameter field."""
        return all(
            getattr(self, name) is not None
            for name in _array_fields(type(self))
            if self._expects(name)
        )

    def _expects(self, field_name: str) -> bool:
        """Whether the parameter ``field_name`` is used by this configuration."""
        return True

    def init(self, key: KeyLike, in_shape: Shape, dtype: np.dtype) -> tuple[Self, Shape]:
        """Return ``(layer with parameters, output shape without batch)``."""
        return self, self.output_shape(in_shape)

    def output_shape(self, in_shape: Shape) -> Shape:
        """The output shape (without batch) for ``in_shape``; shape-preserving by default."""
        return in_shape

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        """The output for a batch ``x``."""
        return self.vjp(x, key=key, training=training, need_dx=False)[0]

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        """The output for ``x`` and the pullback ``dy -> (dlayer, dx)``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement vjp")

    def vjp_with_state(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback, Layer]:
        """Like ``vjp`` but also returns the layer with updated non-trainable state."""
        y, pullback = self.vjp(x, key=key, training=training, need_dx=need_dx)
        return y, pullback, self

    def zero_grad_like(self, **grads: Array | None) -> Self:
        """This layer with ``grads`` in the named fields and zeros in the other arrays.

        Used by pullbacks to build ``dlayer``: every array field gets a value
        (state fields get zeros), so a gradient always has the structure of what
        it differentiates.
        """
        cls = type(self)
        array_fields = _array_fields(cls)
        if not array_fields.issuperset(grads):
            unknown = sorted(set(grads) - array_fields)
            raise ValueError(f"{self.name}: unknown parameter fields {unknown}")
        # Built without __init__: this runs on every backward pass, and the
        # configuration was validated when `self` was built. Arrays are made
        # read-only here, as the field converter would.
        new = object.__new__(cls)
        for name, is_array in _field_kinds(cls):
            value = getattr(self, name)
            if is_array:
                if name in grads:
                    value = grads[name]
                elif value is not None:
                    value = np.zeros_like(value)
                if value is not None:
                    value = readonly(value if isinstance(value, np.ndarray) else np.asarray(value))
            object.__setattr__(new, name, value)
        return new


_FIELD_KINDS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _field_kinds(cls: type) -> tuple[tuple[str, bool], ...]:
    """``(name, holds_an_array)`` for each attrs field of ``cls`` (cached per class)."""
    kinds = _FIELD_KINDS.get(cls)
    if kinds is None:
        kinds = tuple((f.name, bool(f.metadata.get(PARAM_METADATA_KEY))) for f in attrs.fields(cls))
        _FIELD_KINDS[cls] = kinds
    return kinds


_ARRAY_FIELDS: dict[type, frozenset[str]] = {}


def _array_fields(cls: type) -> frozenset[str]:
    """Names of the fields of ``cls`` that hold arrays (parameters or state), cached."""
    names = _ARRAY_FIELDS.get(cls)
    if names is None:
        names = frozenset(name for name, is_array in _field_kinds(cls) if is_array)
        _ARRAY_FIELDS[cls] = names
    return names


def check_input(layer: Layer, x: object, rank: int | None, what: str) -> Array:
    """Check that ``x`` is a floating array of the given rank; return it.

    ``what`` describes the expected layout, e.g. ``"(batch, d_in)"``.
    """
    if type(x) is not np.ndarray or not x.dtype.isnative:  # (layer.name costs: only if needed)
        x = _arrays.plain(layer.name, "x", x)
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{layer.name}: x must be a NumPy array of shape {what}, got {type(x).__name__}; "
            "convert it with np.asarray(x, dtype=np.float32)"
        )
    if x.dtype not in _arrays.COMPUTE_DTYPES:
        _arrays.check_compute_float(layer.name, "x", x)  # float32 or float64 only
    if x.ndim == 0:
        raise ValueError(f"{layer.name}: x needs a batch axis; got a 0-d array, pass x[None]")
    if x.size == 0:
        raise ValueError(
            f"{layer.name}: x has shape {x.shape}, which holds no values; pass at least one "
            "example with at least one value"
        )
    if rank is not None and x.ndim != rank:
        hint = " add a batch axis with x[None]" if x.ndim == rank - 1 else ""
        raise ValueError(
            f"{layer.name}: x must have shape {what} ({rank} axes), got shape {x.shape};"
            f"{hint or ' the batch axis comes first'}"
        )
    return x


def check_dtype(layer: Layer, x: Array, param: Array) -> None:
    """Refuse to mix dtypes: a float32 layer never silently computes in float64."""
    if x.dtype != param.dtype:
        raise TypeError(
            f"{layer.name}: x has dtype {x.dtype} but the layer's parameters are {param.dtype}; "
            f"cast the input with x.astype(np.{param.dtype}) (fnn never upcasts silently)"
        )


def check_cotangent(layer: Layer, dy: object, y: Array) -> Array:
    """Check a pullback's ``dy``: an array of the output's shape and dtype; return it."""
    if type(dy) is not np.ndarray or not dy.dtype.isnative:
        dy = _arrays.plain(layer.name, "dy", dy)
    if not isinstance(dy, np.ndarray) or dy.dtype != y.dtype:
        got = f"dtype {dy.dtype}" if isinstance(dy, np.ndarray) else type(dy).__name__
        raise TypeError(
            f"{layer.name}: dy must be a {y.dtype} NumPy array like the output, got {got}; "
            f"cast it with np.asarray(dy, dtype=np.{y.dtype})"
        )
    if dy.shape != y.shape:
        raise ValueError(f"{layer.name}: dy has shape {dy.shape}, expected {y.shape}")
    return dy


def input_only_pullback(
    layer: Layer, y: Array, dx_of: Callable[[Array], Array], need_dx: bool
) -> Pullback:
    """The pullback of a layer without parameters: ``dy -> (layer, dx_of(dy))``.

    ``dy`` is checked against the output ``y``; ``dlayer`` is the layer itself
    (it has no arrays, so it already has the structure of its gradient); ``dx``
    is ``None`` when ``need_dx`` is false. ``dx_of`` runs with underflow ignored.
    """

    def pullback(dy: Array) -> tuple[Layer, Array | None]:
        dy = check_cotangent(layer, dy, y)
        return layer, (_arrays.call_underflow_retried(dx_of, dy) if need_dx else None)

    return pullback


def check_built(layer: Layer) -> None:
    """Raise if the layer's parameters were never initialised."""
    if not layer.built:
        raise ValueError(
            f"{layer.name}: parameters are not initialised; build the network with "
            "fnn.init(layers, input_shape, key=0) before calling forward"
        )


def positive_int(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """attrs validator: a positive ``int`` (not bool)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(
            f"{type(instance).__name__}: {attribute.name} must be a positive int, got {value!r}"
        )
