"""The layer protocol, the base class that supplies its defaults, and shared checks.

A layer is a frozen ``attrs`` class that subclasses `Layer`. It can be written
in one of two ways.

**The short form: the math only.** Define

- ``init(key, in_shape, dtype) -> (layer, out_shape)`` if the layer has
  parameters (the default returns the layer unchanged and
  ``output_shape(in_shape)``; define ``output_shape`` if the layer changes
  the shape);
- ``apply(x) -> y``, the forward computation on a checked batch;
- ``backward(x, y, dy) -> (grads, dx)``, the pullback: ``grads`` maps each
  parameter field's name to dL/dparam (``{}`` for a layer without
  parameters) and ``dx`` is dL/dx.

The base class then supplies ``forward`` and ``vjp``: it checks ``x`` (a
floating NumPy array of rank ``input_rank`` in the parameters' dtype, on a
built layer) and ``dy`` (the output's shape and dtype), checks that ``apply``
kept the promise of ``output_shape``, builds the gradient layer from
``grads`` (refusing a missing or unknown parameter or a gradient of the wrong
shape, with the likely cause) and drops ``dx`` when the caller does not need
it. ``apply`` and ``backward`` receive ``key``, ``training`` (and
``backward`` ``need_dx``) only if their signatures declare them.

**The full protocol** (what the base class implements, and what layers that
need more control, such as convolution, pooling or batch norm, write
themselves):

- ``init(key, in_shape, dtype) -> (layer, out_shape)`` builds parameters for an
  input of shape ``(batch, *in_shape)``; ``in_shape`` excludes the batch axis.
- ``forward(x, *, key=None, training=False) -> y``.
- ``vjp(x, *, key=None, training=False, need_dx=True) -> (y, pullback)`` where
  ``pullback(dy) -> (dlayer, dx)``; ``dlayer`` is a layer of the same class whose
  parameter fields hold dL/dparam, and ``dx`` is dL/dx (``None`` when
  ``need_dx=False``, which lets a network skip the input gradient of its first
  layer).

Layers whose output is random (dropout) set ``stochastic = True`` and receive a
key of their own from the network. Layers that compute each example on its
own set ``per_example = True`` (see `Layer.per_example`), so that a network
may run a step in parts of the batch on fnn's threads. Layers with
non-trainable state (batch-norm running statistics) set ``stateful = True``
and implement ``vjp_with_state``, which also returns the layer with its
updated state; their state fields are declared with `state_field` and get
zero gradients.

Whoever calls a pullback (a network, a container, ``fnn.testing``) checks what
it returns with `check_pullback`, so a gradient of the wrong shape is caught
where it is made, named by its layer's path.

Example:
    >>> import attrs, numpy as np
    >>> @attrs.frozen(eq=False)
    ... class Square(Layer):
    ...     def apply(self, x):
    ...         return x * x
    ...     def backward(self, x, y, dy):
    ...         return {}, 2 * x * dy
    >>> y, pullback = Square().vjp(np.array([[1.0, -2.0]]))
    >>> y, pullback(np.array([[1.0, 0.5]]))[1]
    (array([[1., 4.]]), array([[ 2., -2.]]))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, cast

import attrs
import numpy as np
from typing_extensions import Self

from fnn import _arrays
from fnn._frozen import readonly_reduce_ex
from fnn.random import KeyLike
from fnn.tree import ARRAY_METADATA_KEY, STATE_METADATA_KEY, class_fields, readonly

PARAM_METADATA_KEY = ARRAY_METADATA_KEY
"""attrs field metadata key marking a field that holds an array (parameter or state); which
fields are arrays and which are state is read from ``fnn.tree``'s per-class table."""

Array = np.ndarray
Shape = tuple[int, ...]
Pullback = Callable[[Array], tuple["Layer", Array | None]]

__all__ = [
    "Array",
    "Layer",
    "Pullback",
    "Shape",
    "check_pullback",
    "check_sequence",
    "checked_pullback",
    "located",
    "param_field",
    "state_field",
]

E = TypeVar("E", bound=Exception)

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


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
    """Base class of every fnn layer; see the module docstring for the protocol.

    A subclass writes either the short form (``apply`` and ``backward``, plus
    ``init`` if it has parameters) or the full protocol (``forward`` and
    ``vjp``); the base class supplies the rest and the checks.
    """

    stochastic: ClassVar[bool] = False
    stateful: ClassVar[bool] = False
    per_example: ClassVar[bool] = False
    """Each example's output depends only on that example and the parameters, and the
    pullback's parameter gradient is a sum over examples: a network may then compute a
    batch in parts on fnn's threads (`fnn.threads`). A random layer may set it too if a
    part draws the values the whole batch would draw for its rows (`Dropout` skips the
    draws of the ``fnn.random.rows_before()`` rows before its part). Counts only where
    the class itself sets it (a subclass may change the math, so it must say so again)."""
    takes_ids: ClassVar[bool] = False
    """The input is integer ids, not numbers to cast (``Embedding``); a network whose first
    layer (or first layer of a leading ``Sequential``) takes ids keeps ``x`` as integers."""
    __reduce_ex__ = readonly_reduce_ex  # copies and pickles keep arrays read-only
    input_rank: ClassVar[int | None] = None
    """Short form: the number of axes ``x`` must have (batch included); ``None``: any."""
    input_layout: ClassVar[str] = "(batch, ...)"
    """Short form: the layout of ``x`` named in error messages."""

    @property
    def name(self) -> str:
        """A short human-readable name such as ``Dense(units=10)``."""
        return type(self).__name__

    @property
    def built(self) -> bool:
        """True once ``init`` has filled every parameter field."""
        return all(
            getattr(self, name) is not None
            for name in class_fields(type(self)).arrays
            if self._expects(name)
        )

    def _expects(self, field_name: str) -> bool:
        """Whether the parameter ``field_name`` is used by this configuration."""
        return True

    def sublayers(self) -> tuple[tuple[str, Layer], ...]:
        """``(path, layer)`` of each layer this one holds; empty except for containers."""
        return ()

    def reads_ids(self) -> bool:
        """Whether this layer's input is integer ids (``takes_ids``, or a Sequential's first)."""
        return self.takes_ids

    def init(self, key: KeyLike, in_shape: Shape, dtype: np.dtype) -> tuple[Self, Shape]:
        """Return ``(layer with parameters, output shape without batch)``."""
        return self, self.output_shape(in_shape)

    def output_shape(self, in_shape: Shape) -> Shape:
        """The output shape (without batch) for ``in_shape``; shape-preserving by default."""
        return in_shape

    def apply(self, x: Array) -> Array:
        """Short form: the output for a checked batch ``x`` (see the module docstring)."""
        raise NotImplementedError(
            f"{type(self).__name__} defines neither apply(x) nor forward(x, *, key, training)"
        )

    def backward(self, x: Array, y: Array, dy: Array) -> tuple[Mapping[str, Array], Array]:
        """Short form: ``(grads, dx)`` for the cotangent ``dy`` of ``y = apply(x)``."""
        raise NotImplementedError(
            f"{type(self).__name__} defines neither backward(x, y, dy) nor vjp(x, ...)"
        )

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        """The output for a batch ``x``."""
        plan = _plan(type(self))
        if not plan.short:
            return self.vjp(x, key=key, training=training, need_dx=False)[0]
        x = self._check_short_input(plan, x)
        return self._apply_checked(plan, x, key, training)

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        """The output for ``x`` and the pullback ``dy -> (dlayer, dx)``."""
        plan = _plan(type(self))
        if not (plan.short and plan.has_backward):
            missing = "backward(x, y, dy)" if plan.short else "apply(x) and backward(x, y, dy)"
            raise NotImplementedError(
                f"{type(self).__name__} does not implement vjp; define {missing} "
                "(or the full vjp(x, *, key, training, need_dx))"
            )
        x = self._check_short_input(plan, x)
        y = self._apply_checked(plan, x, key, training)
        if plan.backward_kw:
            options = {"key": key, "training": training, "need_dx": need_dx}
            kwargs = {k: options[k] for k in plan.backward_kw}
        else:
            kwargs = {}

        def pullback(dy: Array) -> tuple[Layer, Array | None]:
            if not (type(dy) is np.ndarray and dy.dtype is y.dtype and dy.shape == y.shape):
                dy = check_cotangent(self, dy, y)
            # Underflow to zero is correct arithmetic in a backward pass (e.g. y·dy with tiny
            # probabilities), so it never raises, whatever the caller's np.errstate.
            out = _arrays.call_underflow_retried(self.backward, x, y, dy, **kwargs)
            if type(out) is not tuple or len(out) != 2:
                raise TypeError(
                    f"{self.name}: backward must return (grads, dx), a dict of parameter "
                    f"gradients and dL/dx, got {type(out).__name__}; return {{}}, dx for a "
                    "layer without parameters"
                )
            grads, dx = out
            dlayer = self if (not plan.arrays and type(grads) is dict and not grads) else None
            if dlayer is None:
                dlayer = self._grads_layer(grads)
                check_pullback(self, dlayer, dx, x, need_dx, "backward")
            elif need_dx and not (
                type(dx) is np.ndarray and dx.shape == x.shape and dx.dtype is x.dtype
            ):
                _check_dx(self, dx, x, "backward")
            return dlayer, (dx if need_dx else None)

        return y, pullback

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
        info = class_fields(cls)
        if not info.array_set.issuperset(grads):
            unknown = sorted(set(grads) - info.array_set)
            raise ValueError(f"{self.name}: unknown parameter fields {unknown}")
        # Built without __init__: this runs on every backward pass, and the
        # configuration was validated when `self` was built. Arrays are made
        # read-only here, as the field converter would.
        new = object.__new__(cls)
        for name in info.config:
            object.__setattr__(new, name, getattr(self, name))
        for name in info.arrays:
            if name in grads:
                value = grads[name]
                if value is not None:
                    value = readonly(value if type(value) is np.ndarray else np.asarray(value))
            else:
                value = getattr(self, name)
                if value is not None:
                    value = np.zeros_like(value)
                    value.setflags(write=False)  # allocated here: nobody else holds it
            object.__setattr__(new, name, value)
        return new

    # -- the short form's plumbing ------------------------------------------------------

    def _check_short_input(self, plan: _Plan, x: object) -> Array:
        x = check_input(self, x, self.input_rank, self.input_layout)
        if not plan.arrays:
            return x
        first = next((p for p in (getattr(self, n) for n in plan.arrays) if p is not None), None)
        check_built(self)
        if first is not None:
            check_dtype(self, x, first)
        return x

    def _apply_checked(self, plan: _Plan, x: Array, key: KeyLike | None, training: bool) -> Array:
        if plan.apply_kw:
            options = {"key": key, "training": training}
            y = self.apply(x, **{k: options[k] for k in plan.apply_kw})
        else:
            y = self.apply(x)
        if type(y) is not np.ndarray or y.dtype is not x.dtype:
            if not isinstance(y, np.ndarray) or y.dtype != x.dtype:
                got = f"dtype {y.dtype}" if isinstance(y, np.ndarray) else type(y).__name__
                raise TypeError(
                    f"{self.name}: apply returned {got} for a {x.dtype} input; return a NumPy "
                    "array of the input's dtype (fnn layers never change the dtype)"
                )
        if plan.same_shape:
            if y.shape != x.shape:
                self._bad_output(y, x, x.shape)
        else:
            expected = (x.shape[0], *self.output_shape(x.shape[1:]))
            if y.shape != expected:
                self._bad_output(y, x, expected)
        return y

    def _bad_output(self, y: Array, x: Array, expected: Shape) -> None:
        raise ValueError(
            f"{self.name}: apply returned shape {y.shape} for x of shape {x.shape}, but "
            f"output_shape promises {expected}; make output_shape(in_shape) agree with apply"
        )

    def _grads_layer(self, grads: object) -> Self:
        """The gradient layer for ``backward``'s ``grads`` mapping, with its names checked."""
        if not isinstance(grads, Mapping):
            raise TypeError(
                f"{self.name}: backward must return (grads, dx) with grads a dict of "
                f"parameter gradients, got {type(grads).__name__} for grads"
            )
        cls = type(self)
        info = class_fields(cls)
        fields = info.array_set
        if not fields:
            if grads:
                raise ValueError(
                    f"{self.name}: backward returned gradients for {sorted(map(str, grads))} "
                    "but the layer has no parameter fields; return {}, dx"
                )
            return self
        unknown = sorted(str(k) for k in grads if k not in fields)
        if unknown:
            raise ValueError(
                f"{self.name}: backward returned gradients for {unknown}, which are not "
                f"parameter fields of {cls.__name__} (those are {sorted(fields)})"
            )
        state = info.state
        missing = sorted(
            n for n in fields if n not in state and getattr(self, n) is not None and n not in grads
        )
        if missing:
            raise ValueError(
                f"{self.name}: backward returned no gradient for {missing}; return "
                f"{{{', '.join(repr(n) + ': dL/d' + n for n in missing)}}} with the other "
                "gradients"
            )
        return self.zero_grad_like(**grads)


_BASE_VJP = Layer.vjp  # the short form's: its pullback checks what backward returned
_BASE_VJP_WITH_STATE = Layer.vjp_with_state  # returns vjp's pullback


@attrs.frozen
class _Plan:
    """How the base class calls a class's short form (computed once per class)."""

    short: bool
    has_backward: bool
    apply_kw: tuple[str, ...]
    backward_kw: tuple[str, ...]
    arrays: tuple[str, ...]  # the array (parameter and state) fields
    same_shape: bool  # output_shape is the base class's: the output has the input's shape


_PLANS: dict[type, _Plan] = {}


def _accepted(fn: Callable[..., Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """Which of ``names`` the function ``fn`` takes as keyword arguments."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins only
        return ()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return names
    return tuple(n for n in names if n in params)


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        apply, backward = cls.apply, cls.backward  # type: ignore[attr-defined]
        plan = _Plan(
            short=apply is not Layer.apply,
            has_backward=backward is not Layer.backward,
            apply_kw=_accepted(apply, ("key", "training")),
            backward_kw=_accepted(backward, ("key", "training", "need_dx")),
            arrays=class_fields(cls).arrays,
            same_shape=cls.output_shape is Layer.output_shape,  # type: ignore[attr-defined]
        )
        _PLANS[cls] = plan
    return plan


def check_input(layer: Layer, x: object, rank: int | None, what: str) -> Array:
    """Check that ``x`` is a floating array of the given rank; return it.

    ``what`` describes the expected layout, e.g. ``"(batch, d_in)"``.
    """
    if (  # the common case (a native float32/64 batch of the right rank): one test
        type(x) is np.ndarray
        and (x.dtype is _F32 or x.dtype is _F64)
        and x.ndim > 0
        and (rank is None or x.ndim == rank)
        and x.size
    ):
        return x
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


def check_sequence(
    layer: Layer, x: object, param: Array | None, width_axis: int, what: str
) -> Array:
    """Check a ``(batch, time, features)`` input of a built sequence layer; return it.

    ``param`` is the built parameter whose axis ``width_axis`` is the feature width
    (``None`` if the layer was never built); ``what`` names the layout in errors,
    e.g. ``"(batch, time, d_model)"``.
    """
    if param is None:
        check_built(layer)
    x = check_input(layer, x, 3, what)
    p = cast(Array, param)
    width = p.shape[width_axis]
    if x.shape[2] != width:
        raise ValueError(
            f"{layer.name}: x has shape {x.shape} but this layer was built for "
            f"(batch, time, {width}); check the feature width of the layer before this one"
        )
    check_dtype(layer, x, p)
    return x


def check_cotangent(layer: Layer, dy: object, y: Array) -> Array:
    """Check a pullback's ``dy``: an array of the output's shape and dtype; return it."""
    if type(dy) is np.ndarray and dy.dtype is y.dtype and dy.shape == y.shape:
        return dy
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


_CHECKED_PULLBACKS: dict[type, tuple[Callable[..., Any], Callable[[Layer], bool] | None]] = {}


def checked_pullback(cls: type[Layer], when: Callable[[Layer], bool] | None = None) -> None:
    """Declare that what ``cls``'s own ``vjp``'s pullbacks return is right by construction
    (fnn's own full-protocol layers, such as ``Dense``), for every instance or for those
    where ``when(layer)`` holds: then `check_pullback` on it would only repeat that, and
    network-level callers skip it. Only ``cls`` itself, with the ``vjp`` it has now, is
    trusted; a subclass, or another ``vjp`` put in its place, is checked as usual."""
    _CHECKED_PULLBACKS[cls] = (cls.vjp, when)


def runs_per_example(layer: Layer) -> bool:
    """Whether ``layer`` computes each example on its own (`Layer.per_example`).

    The flag counts where the layer's own class sets it (or a container's
    property answers for what it holds); a subclass of a per-example layer
    that does not set it again is not taken to be one, since it may change the
    math.
    """
    for cls in type(layer).__mro__:
        if "per_example" in cls.__dict__:
            value = cls.__dict__["per_example"]
            if isinstance(value, property):
                return bool(layer.per_example)
            return cls is type(layer) and value is True
    return False


def pullback_checked(layer: Layer) -> bool:
    """Whether what ``layer``'s ``vjp`` pullbacks return is already checked, or right by
    construction, so that a caller's `check_pullback` could not fail: the short form's
    pullback checks its result itself; `checked_pullback` declares the others."""
    cls = type(layer)
    entry = _CHECKED_PULLBACKS.get(cls)
    if cls.vjp_with_state is not _BASE_VJP_WITH_STATE:  # its own pullbacks: check them
        return False
    if entry is None:
        return cls.vjp is _BASE_VJP
    return cls.vjp is entry[0] and (entry[1] is None or entry[1](layer))


def _shape_hint(grad: Array, param: Array) -> str:
    """The likely cause of a gradient of the wrong shape."""
    extra = grad.ndim - param.ndim
    if extra > 0 and grad.shape[extra:] == param.shape:
        axes = "axis=0" if extra == 1 else f"axis={tuple(range(extra))}"
        return f"; did you forget to sum over the batch axis? (.sum({axes}))"
    if grad.ndim == 2 and grad.shape == param.shape[::-1]:
        return "; is it transposed? (for y = x·W, dL/dW = xᵀ·δ)"
    return "; a gradient has the shape of what it differentiates"


def check_pullback(
    layer: Layer,
    dlayer: object,
    dx: object,
    x: Array,
    need_dx: bool,
    who: str = "the pullback",
) -> None:
    """Check what a pullback of ``layer`` returned for its input ``x``.

    ``dlayer`` must be a layer of the same class whose parameter arrays have the
    shapes and dtypes of ``layer``'s, and ``dx`` (when ``need_dx``) an array
    like ``x``. A gradient with an extra leading axis gets the hint "did you
    forget to sum over the batch axis?". Containers check only their own
    fields here: they check each child's pullback themselves, with its path.

    Raises:
        TypeError: ``dlayer`` is not of ``layer``'s class, a gradient is not an
            array or has another dtype, or ``dx`` is missing.
        ValueError: a gradient or ``dx`` has the wrong shape.
    """
    if not isinstance(layer, Layer):
        raise TypeError(
            f"fnn.layers.check_pullback: layer must be an fnn layer, got {type(layer).__name__}"
        )
    if need_dx and not isinstance(x, np.ndarray):
        raise TypeError(
            f"fnn.layers.check_pullback: x must be the layer's input array, got {type(x).__name__}"
        )
    cls = type(layer)
    if type(dlayer) is not cls:
        raise TypeError(
            f"{layer.name}: {who} returned a {type(dlayer).__name__} as the layer's gradient; "
            f"return a {cls.__name__} holding dL/dparam in each parameter field, e.g. "
            "self.zero_grad_like(w=dw)"
        )
    # Runs after every pullback of a training step: the common case is a few attribute
    # reads and comparisons; the messages are built only on failure.
    for name in _plan(cls).arrays:
        param = getattr(layer, name)
        if param is None:
            continue
        grad = getattr(dlayer, name)
        if type(grad) is np.ndarray and grad.shape == param.shape and grad.dtype == param.dtype:
            continue
        if not isinstance(grad, np.ndarray):
            raise TypeError(
                f"{layer.name}: {who} returned {type(grad).__name__} as the gradient of "
                f"{name}; expected an array of shape {param.shape}"
            )
        if grad.shape != param.shape:
            raise ValueError(
                f"{layer.name}: {who} returned a gradient of {name} with shape {grad.shape} "
                f"but {name} has shape {param.shape}{_shape_hint(grad, param)}"
            )
        if not _same_dtype(grad.dtype, param.dtype):
            raise TypeError(
                f"{layer.name}: {who} returned a gradient of {name} with dtype {grad.dtype} "
                f"but {name} is {param.dtype}; compute it in the parameter's dtype"
            )
    if need_dx:
        _check_dx(layer, dx, x, who)


def _same_dtype(a: np.dtype, b: np.dtype) -> bool:
    """The same numbers: equal dtypes up to byte order (fnn's input policy reads either)."""
    return a == b or a.newbyteorder("=") == b.newbyteorder("=")


def _check_dx(layer: Layer, dx: object, x: Array, who: str) -> None:
    """``dx`` must be an array of ``x``'s shape and dtype."""
    if not isinstance(dx, np.ndarray):
        raise TypeError(
            f"{layer.name}: {who} returned {type(dx).__name__} as dx although the caller "
            f"needs it; return dL/dx, an array of shape {x.shape}"
        )
    if dx.shape != x.shape:
        raise ValueError(
            f"{layer.name}: {who} returned dx of shape {dx.shape} but x has shape "
            f"{x.shape}{_shape_hint(dx, x) if dx.ndim != x.ndim else ''}; dx has the shape of x"
        )
    if not _same_dtype(dx.dtype, x.dtype):
        raise TypeError(
            f"{layer.name}: {who} returned dx of dtype {dx.dtype} for a {x.dtype} input; "
            "dx has the dtype of x"
        )


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


def join_path(prefix: str, suffix: str) -> str:
    """``prefix`` and ``suffix`` joined as tree paths are: ``a.b``, ``a[0]``."""
    if not prefix:
        return suffix
    if not suffix:
        return prefix
    return prefix + suffix if suffix.startswith("[") else f"{prefix}.{suffix}"


def located(err: E, path: str, layer: Layer, who: str = "") -> E:
    """``err`` again (same class) with the location ``path (layer name)`` in front.

    Errors raised inside a container come out with the full path through the
    nesting: a container locates its child's error with the child's path, and
    the next container out prepends its own, so the message names the
    innermost layer once, e.g. ``layers[3].body.layers[1] (Dense(units=4)): ...``.
    The located parts are kept on the error (``fnn_path``, ``fnn_layer``,
    ``fnn_text``) for the next level; ``who`` (a public function's name) goes
    first, at the outermost level.
    """
    inner = getattr(err, "fnn_path", None)
    if isinstance(inner, str):
        full, name, text = join_path(path, inner), str(err.fnn_layer), str(err.fnn_text)  # type: ignore[attr-defined]
    else:
        full, name, text = path, layer.name, str(err)
        if text.startswith(f"{name}: "):
            text = text[len(name) + 2 :]
    message = f"{who + ': ' if who else ''}{full} ({name}): {text}"
    try:
        new = type(err)(message)
    except Exception:  # an exception class with another constructor signature
        new = (TypeError if isinstance(err, TypeError) else ValueError)(message)  # type: ignore[assignment]
    new.fnn_path = full  # type: ignore[attr-defined]
    new.fnn_layer = name  # type: ignore[attr-defined]
    new.fnn_text = text  # type: ignore[attr-defined]
    return new
