"""Tests of fnn.layers.embedding: Embedding and PositionalEmbedding (shape, gradient, purity, errors)."""

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import testing
from fnn.layers.embedding import (
    ONE_HOT_MAX_VOCAB,
    Embedding,
    PositionalEmbedding,
    scatter_add_rows,
)

F64 = np.dtype(np.float64)


@st.composite
def built_embedding(draw):
    """A float64 Embedding and a batch of ids with many repeats (vocab is small)."""
    vocab, dim = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    time = draw(st.integers(1, 5))
    layer, out_shape = Embedding(vocab, dim).init(draw(st.integers(0, 2**31)), (time,), F64)
    batch = draw(testing.batch_sizes())
    seed = draw(st.integers(0, 2**31))
    dtype = draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int8]))
    ids = np.random.default_rng(seed).integers(0, vocab, (batch, time)).astype(dtype)
    return layer, out_shape, ids


def _weight_check(layer, ids, seed):
    """check_vjp of w -> forward(ids): the scatter-add against central differences."""

    def f(w):
        return attrs.evolve(layer, w=w).forward(ids)

    def vjp(w):
        y, pullback = attrs.evolve(layer, w=w).vjp(ids)
        return y, lambda dy: pullback(dy)[0].w

    return testing.check_vjp(f, vjp, layer.w, seed=seed, who=layer.name)


@given(built_embedding())
def test_shape_promised_by_init_is_produced(case):
    """The shape init promises equals the shape forward produces, in the parameters' dtype."""
    layer, out_shape, ids = case
    y = layer.forward(ids)
    assert y.shape == (ids.shape[0], *out_shape) and y.dtype == np.float64


@given(built_embedding(), st.integers(0, 2**31))
def test_weight_gradient_matches_finite_differences(case, seed):
    """dL/dw (a scatter-add over repeated ids) agrees with central differences for a random
    cotangent, and equals np.add.at's result; the input gradient is None."""
    layer, _, ids = case
    _weight_check(layer, ids, seed)
    dy = np.random.default_rng(seed).standard_normal((*ids.shape, layer.dim))
    dlayer, dx = layer.vjp(ids)[1](dy)
    expected = np.zeros_like(layer.w)
    np.add.at(expected, ids.reshape(-1), dy.reshape(-1, layer.dim))
    np.testing.assert_allclose(dlayer.w, expected, rtol=1e-12, atol=1e-12)
    assert dx is None and layer.vjp(ids, need_dx=False)[1](dy)[1] is None


@given(
    st.integers(1, 300),
    st.integers(0, 40),
    st.integers(1, 4),
    st.sampled_from(["one_hot", "bincount", "auto"]),
    st.integers(0, 2**31),
)
def test_scatter_add_methods_agree_with_add_at(n, k, dim, method, seed):
    """Every scatter-add method gives np.add.at's sums (repeats add up, unused rows are 0)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, min(n, 4) if seed % 2 else n, k)  # often heavily repeated
    rows = rng.standard_normal((k, dim))
    expected = np.zeros((n, dim))
    np.add.at(expected, ids, rows)
    np.testing.assert_allclose(scatter_add_rows(ids, rows, n, method=method), expected, atol=1e-12)


def test_both_scatter_paths_are_used_by_the_layer():
    """auto picks one-hot up to ONE_HOT_MAX_VOCAB and bincount above; both are right in the layer."""
    for vocab in (ONE_HOT_MAX_VOCAB, ONE_HOT_MAX_VOCAB + 1):
        layer, _ = Embedding(vocab, 3).init(0, (6,), F64)
        ids = np.array([[0, vocab - 1, 5, 5, 0, vocab - 1], [5, 5, 5, 1, 2, 3]])
        _weight_check(layer, ids, seed=vocab)


@given(built_embedding())
def test_forward_and_pullback_are_pure(case):
    """forward/vjp leave the ids and the table unchanged and read-only; gradients are read-only."""
    layer, _, ids = case
    ids0, w0 = ids.copy(), layer.w.copy()
    y, pullback = layer.vjp(ids)
    dlayer, _ = pullback(np.random.default_rng(0).normal(size=y.shape))
    np.testing.assert_array_equal(ids, ids0)
    np.testing.assert_array_equal(layer.w, w0)
    assert not layer.w.flags.writeable and not dlayer.w.flags.writeable
    assert not np.shares_memory(y, layer.w)


def test_lookup_and_dtype():
    """y[b, t] = w[x[b, t]] in the parameters' dtype, whatever the integer dtype of the ids."""
    layer, _ = Embedding(4, 2).init(0, (3,), np.dtype(np.float32))
    ids = np.array([[3, 0, 3]], np.uint16)
    y = layer.forward(ids)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[0], layer.w[[3, 0, 3]])
    assert Embedding.takes_ids and not getattr(PositionalEmbedding, "takes_ids", False)


@pytest.mark.parametrize(
    ("x", "err", "pattern"),
    [
        (np.array([[0.0, 1.0]]), TypeError, r"integer ids, got dtype float64; cast whole-number ids"),
        (np.array([[True, False]]), TypeError, r"got dtype bool; encode the tokens as integer ids"),
        (np.array([[0, 5]]), ValueError, r"Embedding\(vocab=5, dim=2\): ids must be in \[0, 5\), got 5 at index \(0, 1\); build the layer with vocab >"),
        (np.array([[0, 1], [-1, 2]]), ValueError, r"got -1 at index \(1, 0\)"),
        ([[0, 1]], TypeError, r"must be a NumPy array of integer ids"),
        (np.array(3), ValueError, r"needs a batch axis"),
    ],
)
def test_bad_ids_name_the_problem(x, err, pattern):
    """Float, bool, out-of-range or negative ids and non-arrays are refused with the fix."""
    layer, _ = Embedding(5, 2).init(0, (2,), F64)
    with pytest.raises(err, match=pattern):
        layer.forward(x)


def test_bad_embedding_configs():
    """vocab and dim are positive ints; an unbuilt layer refuses to run; a bad cotangent is refused."""
    with pytest.raises(ValueError, match="vocab must be a positive int"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        Embedding(3, 2.5)
    with pytest.raises(ValueError, match="not initialised"):
        Embedding(3, 2).forward(np.zeros((1, 2), np.int64))
    layer, _ = Embedding(3, 2).init(0, (2,), F64)
    _, pullback = layer.vjp(np.array([[0, 2]]))
    with pytest.raises(ValueError, match=r"dy has shape \(1, 2\), expected \(1, 2, 2\)"):
        pullback(np.zeros((1, 2)))


# ---------------------------------------------------------------------------
# PositionalEmbedding


@st.composite
def built_positional(draw):
    """A float64 PositionalEmbedding and a batch no longer than its table (time 1 included)."""
    max_len, d = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    time = draw(st.integers(1, max_len))
    layer, out_shape = PositionalEmbedding(max_len).init(draw(st.integers(0, 2**31)), (time, d), F64)
    x = draw(testing.arrays((draw(testing.batch_sizes()), time, d)))
    return layer, out_shape, x


@given(built_positional())
def test_positional_shape_promised_by_init_is_produced(case):
    """The shape init promises equals forward's; y[b, t] = x[b, t] + w[t]."""
    layer, out_shape, x = case
    y = layer.forward(x)
    assert y.shape == (x.shape[0], *out_shape)
    np.testing.assert_array_equal(y, x + layer.w[: x.shape[1]])


@given(built_positional(), st.integers(0, 2**31))
def test_positional_gradient_matches_finite_differences(case, seed):
    """dL/dx and dL/dw (rows past the sequence get zero) agree with central differences."""
    layer, _, x = case
    testing.check_layer(layer, x, seed=seed)
    dlayer, _ = layer.vjp(x)[1](np.random.default_rng(seed).standard_normal(x.shape))
    assert not dlayer.w[x.shape[1] :].any()


@given(built_positional())
def test_positional_is_pure(case):
    """forward/vjp leave x and w unchanged and read-only; dx is a new array."""
    layer, _, x = case
    x0, w0 = x.copy(), layer.w.copy()
    y, pullback = layer.vjp(x)
    dy = np.random.default_rng(1).normal(size=y.shape)
    dlayer, dx = pullback(dy)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(layer.w, w0)
    assert not layer.w.flags.writeable and not dlayer.w.flags.writeable
    assert not np.shares_memory(dx, dy)


def test_positional_errors_name_the_lengths_and_fix():
    """Too long a sequence (at init or call), a wrong width, rank or dtype raise with the fix."""
    with pytest.raises(ValueError, match=r"has 9 steps but the table holds max_len=8; build with PositionalEmbedding\(max_len=9\)"):
        PositionalEmbedding(8).init(0, (9, 4), F64)
    layer, _ = PositionalEmbedding(8).init(0, (5, 4), F64)
    with pytest.raises(ValueError, match=r"has 10 steps but the table holds max_len=8"):
        layer.forward(np.zeros((1, 10, 4)))
    with pytest.raises(ValueError, match=r"built for \(batch, time, 4\)"):
        layer.forward(np.zeros((1, 5, 3)))
    with pytest.raises(ValueError, match=r"\(batch, time, d\) \(3 axes\)"):
        layer.forward(np.zeros((5, 4)))
    with pytest.raises(TypeError, match=r"cast the input with x.astype\(np.float64\)"):
        layer.forward(np.zeros((1, 5, 4), np.float32))
    with pytest.raises(ValueError, match="put an Embedding before it"):
        PositionalEmbedding(8).init(0, (4,), F64)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        PositionalEmbedding(0)
    assert layer.forward(np.zeros((2, 3, 4))).shape == (2, 3, 4)  # shorter than built: fine


def test_network_starting_with_an_embedding_takes_integer_ids():
    """A network whose first layer is an Embedding takes integer ids: its forward equals the
    layers chained by hand, and fnn.grad agrees with finite differences of fnn.loss."""
    import fnn

    layers = [Embedding(5, 3), fnn.LSTM(4, return_sequences=False), fnn.Dense(2)]
    net = fnn.init(layers, (4,), key=0, dtype=np.float64)
    ids = np.array([[0, 1, 1, 4], [3, 3, 3, 3], [2, 0, 4, 1]])
    h = ids
    for layer in net.layers:
        h = layer.forward(h)
    np.testing.assert_allclose(fnn.forward(net, ids), h, rtol=1e-12)
    y = np.random.default_rng(0).normal(size=(3, 2))
    testing.check_network(net, ids, y, fnn.losses.mse)


def test_network_with_ids_refuses_floats_and_a_leading_sequential_passes_them_on():
    """A network whose first layer takes ids refuses float x (the message says which layer and
    the cast); a Sequential whose first child is an Embedding takes ids like the Embedding."""
    import fnn

    net = fnn.init([Embedding(5, 3), fnn.Flatten(), fnn.Dense(2)], (4,), key=0)
    with pytest.raises(TypeError, match=r"first layer \(Embedding.*takes integer ids.*int64"):
        fnn.forward(net, np.zeros((2, 4), np.float32))
    nested = fnn.init([fnn.Sequential([Embedding(5, 3), fnn.Flatten()]), fnn.Dense(2)], (4,), key=0)
    ids = np.array([[0, 4, 4, 1]], np.int32)
    expected = nested.layers[1].forward(nested.layers[0].forward(ids))
    np.testing.assert_array_equal(fnn.forward(nested, ids), expected)
    with pytest.raises(ValueError, match=r"layers\[0\]\.layers\[0\] \(Embedding.*ids must be in \[0, 5\), got 5"):
        fnn.forward(nested, np.array([[0, 5, 1, 1]]))


def test_masked_and_subclassed_ids_follow_the_input_policy():
    """Found by the slow fuzz run: a masked id array skipped the range check (its min/max
    ignore masked entries) and indexing then read the value under the mask."""
    layer, _ = Embedding(1, 2).init(0, (1,), np.float32)
    ids = np.ma.masked_array(np.array([[255]], np.uint8), mask=[[True]])
    with pytest.raises(TypeError, match=r"Embedding\(vocab=1, dim=2\): x is a masked array"):
        layer.forward(ids)
    with pytest.raises(TypeError, match=r"x is a masked array"):
        layer.vjp(ids)
    big_endian = np.array([[0, 0]], ">i8")
    np.testing.assert_array_equal(layer.forward(big_endian), layer.forward(np.zeros((1, 2), int)))
