"""Embedding tables: ids to vectors (`Embedding`) and learned positions (`PositionalEmbedding`).

``Embedding(vocab, dim)`` looks rows up in a table ``w`` of shape
``(vocab, dim)``: ``y[b, t] = w[x[b, t]]``. It is a Dense layer without bias
applied to one-hot ids (``y = one_hot(x) · w``), which is why it shares
Dense's default Glorot-uniform initialisation, and why its weight gradient is
``one_hot(x)ᵀ · δ``: a scatter-add of the cotangent rows into the rows of the
ids, ``dL/dw[v] = Σ_{(b, t): x[b, t] = v} δ[b, t]``, where an id that occurs
several times collects the sum of all its rows. Ids are not differentiable,
so the input gradient is ``None``.

``PositionalEmbedding(max_len)`` adds a learned table ``w`` of shape
``(max_len, d)`` to a ``(batch, time, d)`` input: ``y[b, t] = x[b, t] + w[t]``,
so ``dL/dx = δ`` and ``dL/dw[t] = Σ_b δ[b, t]`` for ``t < time`` (zero for the
rows a shorter sequence does not reach).

The derivations are on the math page "Embeddings"; the gradient checks are in
``tests/layers/test_embedding.py``.

Example:
    >>> import numpy as np
    >>> emb, shape = Embedding(5, 3).init(0, (4,), np.float64)
    >>> pos, shape = PositionalEmbedding(8).init(1, shape, np.float64)
    >>> ids = np.array([[0, 1, 1, 4]])
    >>> pos.forward(emb.forward(ids)).shape
    (1, 4, 3)
"""

from __future__ import annotations

from typing import ClassVar, cast

import attrs
import numpy as np

from fnn import _arrays
from fnn.layers import initializers
from fnn.layers._base import (
    Array,
    Layer,
    Pullback,
    Shape,
    check_built,
    check_cotangent,
    check_sequence,
    param_field,
    positive_int,
)
from fnn.random import KeyLike

__all__ = ["Embedding", "PositionalEmbedding", "scatter_add_rows"]

# Up to this vocabulary size the scatter-add is a one-hot matrix product (one BLAS
# call); above it, np.bincount over (id, column) pairs. Measured on (64, 16) ids with
# dim 64, float32, one thread (python benchmarks/sequence.py --scatter, on a shared
# machine): at vocab 27 one-hot 105-126 us, bincount 244-480 us, np.add.at 796-1590 us;
# at vocab 128 one-hot and bincount are within noise of each other; at vocab 1000
# bincount 293-590 us against one-hot 2800-3250 us and a sort + reduceat 830-1320 us.
ONE_HOT_MAX_VOCAB = 128


def scatter_add_rows(ids: Array, rows: Array, n: int, *, method: str = "auto") -> Array:
    """``out[v] = Σ_{k: ids[k] = v} rows[k]`` for ``v < n``; repeated ids add up.

    The weight gradient of a table lookup. ``method`` is ``"one_hot"``
    (``one_hot(ids)ᵀ · rows``, one matrix product), ``"bincount"``
    (``np.bincount`` of the flat indices ``id·dim + column`` weighted by the
    rows, summed in float64 and returned in ``rows.dtype``) or ``"auto"``
    (one-hot up to ``ONE_HOT_MAX_VOCAB`` rows, bincount above). All give
    ``np.add.at``'s result.

    Args:
        ids: ``(k,)`` integer ids in ``[0, n)`` (checked by the caller).
        rows: ``(k, dim)`` floating rows.
        n: the number of output rows (the vocabulary size).
        method: ``"auto"``, ``"one_hot"`` or ``"bincount"``.

    Returns:
        A new ``(n, dim)`` array of ``rows.dtype``.

    Example:
        >>> scatter_add_rows(np.array([2, 0, 2]), np.array([[1.0], [2.0], [3.0]]), 3).ravel()
        array([2., 0., 4.])
    """
    if method == "auto":
        method = "one_hot" if n <= ONE_HOT_MAX_VOCAB else "bincount"
    if method == "one_hot":
        one_hot = np.zeros((n, ids.size), rows.dtype)
        one_hot[ids, np.arange(ids.size)] = 1
        out: Array = one_hot @ rows
        return out
    if method != "bincount":
        raise ValueError(
            f"scatter_add_rows: method must be 'auto', 'one_hot' or 'bincount', got {method!r}"
        )
    dim = rows.shape[1]
    flat = (ids.astype(np.intp)[:, None] * dim + np.arange(dim)).reshape(-1)
    sums = np.bincount(flat, weights=rows.reshape(-1), minlength=n * dim)
    out = sums.reshape(n, dim).astype(rows.dtype, copy=False)
    return out


@attrs.frozen(eq=False)
class Embedding(Layer):
    """A lookup table from integer ids to vectors: ``y[b, t] = w[x[b, t]]``.

    Takes integer ids of shape ``(batch, time)`` (any number of axes after
    the batch axis) and returns ``(batch, time, dim)`` in the parameters'
    dtype. Backward: the ids are not differentiable, so ``dx`` is ``None``;
    ``dL/dw[v] = Σ_{(b, t): x[b, t] = v} δ[b, t]`` (a scatter-add; repeated
    ids add up, unused rows get zero). Inside a network it must be the first
    layer (``takes_ids``): ids are not floats to be cast.

    Args:
        vocab: the number of ids, ``x`` takes values ``0 .. vocab - 1``.
        dim: the length of each vector.
        w_init: initialiser (or its name) for ``w`` of shape ``(vocab, dim)``;
            Glorot uniform by default, as for a Dense layer on one-hot ids.

    Raises:
        ValueError: ``vocab``/``dim`` not positive ints; at call time an id
            outside ``[0, vocab)`` (the message names it and its position).
        TypeError: ``x`` is not an integer NumPy array (floats and bools are
            refused, not rounded).

    Example:
        >>> import numpy as np
        >>> layer, out_shape = Embedding(10, 4).init(0, (3,), np.float32)
        >>> y = layer.forward(np.array([[1, 1, 9]]))
        >>> out_shape, y.shape, y.dtype, bool((y[0, 0] == y[0, 1]).all())
        ((3, 4), (1, 3, 4), dtype('float32'), True)
    """

    takes_ids: ClassVar[bool] = True  # a network keeps its x as integer ids

    vocab: int = attrs.field(validator=positive_int)
    dim: int = attrs.field(validator=positive_int)
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, converter=initializers.resolve, kw_only=True
    )
    w: Array | None = param_field()

    @property
    def name(self) -> str:
        return f"Embedding(vocab={self.vocab}, dim={self.dim})"

    def output_shape(self, in_shape: Shape) -> Shape:
        return (*in_shape, self.dim)

    def init(self, key: KeyLike, in_shape: Shape, dtype: np.dtype) -> tuple[Embedding, Shape]:
        out_shape = self.output_shape(in_shape)
        return attrs.evolve(self, w=self.w_init(key, (self.vocab, self.dim), dtype)), out_shape

    def _check(self, x: object) -> Array:
        if self.w is None:
            check_built(self)
        if type(x) is not np.ndarray or not x.dtype.isnative:  # fnn's input policy
            x = _arrays.plain(self.name, "x", x)  # (refuses masked arrays, unwraps subclasses)
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"{self.name}: x must be a NumPy array of integer ids of shape (batch, time), "
                f"got {type(x).__name__}; convert it with np.asarray(x, dtype=np.int64)"
            )
        if x.dtype.kind not in "iu":
            fix = (
                "cast whole-number ids with x.astype(np.int64)"
                if x.dtype.kind == "f"
                else "encode the tokens as integer ids 0 .. vocab - 1"
            )
            raise TypeError(f"{self.name}: x must hold integer ids, got dtype {x.dtype}; {fix}")
        if x.ndim == 0:
            raise ValueError(f"{self.name}: x needs a batch axis; got a 0-d array, pass x[None]")
        if x.size:
            lo, hi = x.min(), x.max()
            if lo < 0 or hi >= self.vocab:
                bad = lo if lo < 0 else hi
                where = tuple(int(i) for i in np.argwhere(x == bad)[0])
                raise ValueError(
                    f"{self.name}: ids must be in [0, {self.vocab}), got {int(bad)} at index "
                    f"{where}; build the layer with vocab > the largest id, or check the encoding"
                )
        return x

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        x = self._check(x)
        out: Array = cast(Array, self.w)[x]  # fancy indexing: a new array
        return out

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        y = self.forward(x)
        ids = x.reshape(-1)

        def pullback(dy: Array) -> tuple[Embedding, None]:
            dy = check_cotangent(self, dy, y)
            dw = scatter_add_rows(ids, dy.reshape(-1, self.dim), self.vocab)
            return self.zero_grad_like(w=dw), None

        return y, pullback


@attrs.frozen(eq=False)
class PositionalEmbedding(Layer):
    """Learned positions added to a sequence: ``y[b, t] = x[b, t] + w[t]``.

    Input and output ``(batch, time, d)`` with ``time ≤ max_len``; ``w`` has
    shape ``(max_len, d)``. Backward: ``dL/dx = δ``;
    ``dL/dw[t] = Σ_b δ[b, t]`` for ``t < time`` and zero for the other rows.

    Args:
        max_len: the longest sequence the table covers.
        w_init: initialiser (or its name) for ``w``; Glorot uniform by default.

    Raises:
        ValueError: ``max_len`` not a positive int; a sequence longer than
            ``max_len`` (at ``init`` or call time); ``x`` not ``(batch, time, d)``
            for the ``d`` the layer was built for.
        TypeError: ``x`` is not a floating array of the parameters' dtype.

    Example:
        >>> import numpy as np
        >>> layer, out_shape = PositionalEmbedding(16).init(0, (5, 8), np.float64)
        >>> y = layer.forward(np.zeros((2, 5, 8)))
        >>> out_shape, bool((y[0] == layer.w[:5]).all())
        ((5, 8), True)
    """

    max_len: int = attrs.field(validator=positive_int)
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, converter=initializers.resolve, kw_only=True
    )
    w: Array | None = param_field()

    @property
    def name(self) -> str:
        return f"PositionalEmbedding(max_len={self.max_len})"

    def _too_long(self, time: int) -> ValueError:
        return ValueError(
            f"{self.name}: the sequence has {time} steps but the table holds max_len="
            f"{self.max_len}; build with PositionalEmbedding(max_len={time}) or shorten the input"
        )

    def output_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != 2:
            raise ValueError(
                f"{self.name}: expects inputs of shape (batch, time, d), but the previous layer "
                f"gives (batch, {', '.join(map(str, in_shape))}); put an Embedding before it"
            )
        if in_shape[0] > self.max_len:
            raise self._too_long(in_shape[0])
        return in_shape

    def init(
        self, key: KeyLike, in_shape: Shape, dtype: np.dtype
    ) -> tuple[PositionalEmbedding, Shape]:
        out_shape = self.output_shape(in_shape)
        return attrs.evolve(self, w=self.w_init(key, (self.max_len, in_shape[1]), dtype)), out_shape

    def _check(self, x: object) -> Array:
        x = check_sequence(self, x, self.w, 1, "(batch, time, d)")
        if x.shape[1] > self.max_len:
            raise self._too_long(x.shape[1])
        return x

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        x = self._check(x)
        out: Array = x + cast(Array, self.w)[: x.shape[1]]
        return out

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        y = self.forward(x)
        time = x.shape[1]

        def pullback(dy: Array) -> tuple[PositionalEmbedding, Array | None]:
            dy = check_cotangent(self, dy, y)
            dw = np.zeros_like(cast(Array, self.w))
            dw[:time] = dy.sum(axis=0)
            return self.zero_grad_like(w=dw), (dy.copy() if need_dx else None)

        return y, pullback
