"""Tests of fnn._arrays, the input policy every entry point applies."""

import math
import re
import warnings

import attrs
import numpy as np
import pytest

import fnn
from fnn import _arrays, datasets, losses, metrics, testing, tree


def test_plain_views_subclasses_as_ndarray_without_copying():
    """An ndarray subclass comes back as a plain ndarray sharing the caller's memory."""
    base = np.arange(6.0).reshape(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        m = np.asmatrix(base)
    out = _arrays.plain("who", "x", m)
    assert type(out) is np.ndarray
    assert np.shares_memory(out, base)
    assert out.shape == (2, 3)
    rec = _arrays.plain("who", "x", np.zeros(3).view(np.recarray))
    assert type(rec) is np.ndarray


def test_plain_refuses_masked_arrays_naming_the_fix():
    """A masked array is a TypeError naming the entry point, the argument and .filled()."""
    masked = np.ma.array([1.0, 2.0], mask=[False, True])
    with pytest.raises(TypeError, match=r"^fnn\.thing: y is a masked array.*y\.filled\(value\)"):
        _arrays.plain("fnn.thing", "y", masked)
    # Even without any masked entry: the policy is about the type, decided once.
    with pytest.raises(TypeError, match="masked array"):
        _arrays.plain("fnn.thing", "y", np.ma.array([1.0, 2.0]))


def test_plain_converts_byte_order_and_keeps_values():
    """A big-endian array comes back in native order with the same values; the caller's
    array is untouched; a plain native array comes back as the same object."""
    big = np.arange(4, dtype=">f4")
    out = _arrays.plain("who", "x", big)
    assert out.dtype == np.float32 and out.dtype.isnative
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert big.dtype == np.dtype(">f4")
    a = np.arange(3.0)
    assert _arrays.plain("who", "x", a) is a


def test_plain_passes_non_arrays_through():
    """Non-arrays come back unchanged, for the caller's own type check."""
    for v in (None, [1, 2], 3.0, "s"):
        assert _arrays.plain("who", "x", v) is v


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", np.dtype("f8")])
def test_compute_dtype_accepts_float32_and_float64(dtype):
    """float32 and float64 (as types, names or dtypes) are the compute dtypes."""
    assert _arrays.compute_dtype("who", dtype) in (np.float32, np.float64)


@pytest.mark.parametrize(
    ("dtype", "why"),
    [
        (np.float16, "float16 is not supported"),
        (np.longdouble, "extended precision"),
        (np.int32, "not floating-point"),
        ("nonsense", "got 'nonsense'"),
        (None, "got None"),
    ],
)


def test_compute_dtype_refuses_the_rest(dtype, why):
    """float16, extended precision, integers and non-dtypes are a TypeError saying why."""
    if dtype is np.longdouble and np.dtype(np.longdouble) == np.float64:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(TypeError, match=rf"^fnn\.init: dtype must be floating-point, np\.float32 or np\.float64.*{why}"):
        _arrays.compute_dtype("fnn.init", dtype)


def test_cast_finite_refuses_values_beyond_the_target_range():
    """float64 beyond float32's range is refused before the cast (no overflow warning,
    no inf passed on); within range, the cast happens."""
    x = np.array([[1.0, -1e39]])
    with np.errstate(all="raise"), pytest.raises(ValueError, match=r"1e\+39.*beyond the range of float32"):
        _arrays.cast_finite("who", "x", x, np.dtype(np.float32))
    ok = _arrays.cast_finite("who", "x", np.array([[3e38]]), np.dtype(np.float32))
    assert ok.dtype == np.float32 and np.isfinite(ok).all()
    with pytest.raises(ValueError, match="NaN or inf"):
        _arrays.cast_finite("who", "x", np.array([np.nan]), np.dtype(np.float64))
    big_int = np.array([np.iinfo(np.int64).max])
    assert np.isfinite(_arrays.cast_finite("who", "x", big_int, np.dtype(np.float32))).all()


def _big(dtype, value=0.5, at=None, layout="C"):
    """A (64, 100) array (above all_finite's dot-product size) of ``value``, with ``at``
    set to ``value`` in its last element instead when given, in the given layout."""
    a = np.full((64, 100), value, dtype)
    if at is not None:
        a[-1, -1] = at
    return {"C": a, "F": np.asfortranarray(a), "strided": np.repeat(a, 2, axis=1)[:, ::2]}[layout]


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("value", "at", "finite"),
    [
        (0.5, None, True),
        (0.5, np.nan, False),
        (0.5, np.inf, False),
        (0.5, -np.inf, False),
        (-0.5, np.inf, False),  # a sum (not of squares) could cancel nothing here either
        ("max", None, True),  # finite, but the squares (and the sum) overflow
        ("max", np.nan, False),
        ("max", -np.inf, False),
        (1e-30, None, True),  # squares underflow: finite, and no underflow error
    ],
)
def test_all_finite_is_isfinite_all(layout, dtype, value, at, finite):
    """all_finite gives np.isfinite(a).all() in every case, its dot-product shortcut's
    inconclusive ones included (finite values whose squares overflow must fall back to the
    exact scan), and never warns or raises whatever np.errstate says."""
    if value == "max":
        value = np.finfo(dtype).max / 2
    a = _big(dtype, value, at, layout)
    assert bool(np.isfinite(a).all()) is finite
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _arrays.all_finite(a) is finite
    assert _arrays.all_finite(a[:2, :3]) is bool(np.isfinite(a[:2, :3]).all())  # small: exact


def test_network_input_scan_keeps_its_message_and_accepts_huge_finite_values():
    """A batch above the dot-product size: NaN, +inf or -inf anywhere is the same ValueError
    as before; finite float32 values near the top of the range (whose squares overflow) are
    accepted, with errors raised on overflow and no warning."""
    net = fnn.init([fnn.Dense(2)], (100,), key=0)
    for bad in (np.nan, np.inf, -np.inf):
        x = _big(np.float32, 0.25, bad)
        for check in (
            lambda x=x: fnn.forward(net, x),
            lambda x=x: fnn.value_and_grad(net, x, np.zeros((64, 2), np.float32), losses.mse),
        ):
            with pytest.raises(ValueError, match=r"^fnn\.\w+: x contains NaN or inf; clean"):
                check()
    huge = _big(np.float32, 3e38)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fnn.network.prepare_input("who", net, huge) is huge


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [(64, 10), (32, 1), (200, 32), (64, 33), (31, 10), (5, 3), (40,), (8, 40, 6)]
)
def test_row_max_is_max_over_the_last_axis(shape, dtype):
    """row_max(x) equals x.max(axis=-1, keepdims=True) (shape, dtype and values, NaN and
    ±inf included) in C and Fortran order, on both sides of its many-narrow-rows path."""
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = rng.normal(size=shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, size=min(6, flat.size), replace=False)] = [
        np.nan, np.inf, -np.inf, 0.0, -0.0, np.nan
    ][: min(6, flat.size)]
    for a in (x, np.asfortranarray(x)):
        got, want = _arrays.row_max(a), a.max(axis=-1, keepdims=True)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def _signalling_nan(dtype):
    bits = {np.float32: (np.uint32, 0x7F800001), np.float64: (np.uint64, 0x7FF0000000000001)}
    kind, value = bits[dtype]
    return np.array([value], kind).view(dtype)[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 16383, 16384, 16385, 40000])
def test_relu_gives_the_bits_of_np_maximum_with_zero(size, dtype):
    """relu(x) is np.maximum(x, 0) bit for bit (signed zeros, NaNs of both signs, a
    signalling NaN, infinities, subnormals) below, at and above its row length, into a new
    array, into ``out``, in place and for non-contiguous input, raising nothing even
    under np.errstate(all="raise")."""
    rng = np.random.default_rng(size)
    x = rng.normal(size=size).astype(dtype)
    tiny = np.finfo(dtype).smallest_subnormal
    with np.errstate(invalid="ignore"):
        default_nan = np.array(np.inf, dtype) * 0  # x86's default NaN has its sign bit set
    specials = [-0.0, 0.0, np.nan, default_nan, _signalling_nan(dtype), np.inf, -np.inf, tiny,
                -tiny]
    where = rng.choice(size, size=min(size, 3 * len(specials)), replace=False)
    x[where] = np.resize(np.array(specials, dtype), len(where))
    want = np.maximum(x, 0)

    def same_bits(a):
        return a.dtype == want.dtype and a.shape == want.shape and a.tobytes() == want.tobytes()

    with np.errstate(all="raise"):
        assert same_bits(_arrays.relu(x))
        out = np.full_like(x, 7.0)
        assert _arrays.relu(x, out) is out and same_bits(out)
        inplace = x.copy()
        assert _arrays.relu(inplace, inplace) is inplace and same_bits(inplace)
        strided = np.repeat(x, 2)[::2]
        assert same_bits(_arrays.relu(strided))


def test_relu_layer_uses_the_same_bits_in_forward_and_vjp():
    """ReLU's forward and vjp (which take relu's long-row form for large batches, and the
    pool's buffers in vjp) give np.maximum(x, 0)'s bits, for a large and a small batch."""
    rng = np.random.default_rng(3)
    for shape in ((128, 14, 14, 32), (8, 5)):
        x = rng.normal(size=shape).astype(np.float32)
        x.reshape(-1)[:4] = [-0.0, np.nan, -np.inf, np.inf]
        want = np.maximum(x, 0).tobytes()
        layer = fnn.ReLU()
        assert layer.forward(x).tobytes() == want
        assert layer.vjp(x)[0].tobytes() == want


def test_softmax_shift_by_either_zero_gives_the_same_results():
    """Rows whose maximum is a zero (both signs present) give sparse and one-hot softmax
    cross-entropies and Softmax outputs equal, bit for bit, to the ones computed with the
    row maximum NumPy picks, with many rows (row_max's column-wise path) and few."""
    for rows in (64, 4):
        z = np.tile(np.array([[0.0, -0.0, -200.0], [-0.0, 0.0, -3.0]], np.float32), (rows // 2, 1))
        labels = np.tile(np.array([1, 0]), rows // 2)
        onehot = np.eye(3, dtype=np.float32)[labels]
        shifted = z - z.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=-1)
        value = float((np.log(total) - shifted[np.arange(rows), labels]).sum(dtype=np.float64))
        got_value, grad = losses.sparse_softmax_cross_entropy.value_and_grad(z, labels)
        assert got_value == value / rows
        e /= (total * np.float32(rows))[:, None]
        e[np.arange(rows), labels] -= 1 / np.float32(rows)
        assert grad.tobytes() == e.tobytes()
        logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        want = float((-(onehot * logp)).sum(dtype=np.float64) / rows)
        assert str(losses.softmax_cross_entropy(z, onehot)) == str(want)
        p = np.exp(shifted)
        p /= p.sum(axis=-1, keepdims=True)
        assert fnn.Softmax().forward(z).tobytes() == p.tobytes()


def test_row_starts_is_a_cached_read_only_arange():
    """row_starts(n, w) is arange(n)·w as intp, read-only, the same array on every call, and
    flat-indexes one entry per row like 2-d fancy indexing; its cache stays bounded."""
    starts = _arrays.row_starts(5, 3)
    np.testing.assert_array_equal(starts, np.arange(5) * 3)
    assert starts.dtype == np.intp
    assert not starts.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        starts[0] = 1
    assert _arrays.row_starts(5, 3) is starts
    a = np.arange(15.0).reshape(5, 3)
    cols = np.array([2, 0, 1, 1, 2])
    np.testing.assert_array_equal(a.reshape(-1)[starts + cols], a[np.arange(5), cols])
    for n in range(1, 200):
        _arrays.row_starts(n, 2)
    assert len(_arrays._ROW_STARTS) <= 64


def test_real_never_overflows():
    """Python ints beyond float range become ±inf instead of raising OverflowError."""
    assert _arrays.real(10**400) == math.inf
    assert _arrays.real(-(10**400)) == -math.inf
    assert _arrays.real(np.float32(0.5)) == 0.5


def test_short_cuts_long_reprs():
    """A 400-digit int is cut to the limit in messages."""
    text = _arrays.short(10**400)
    assert len(text) == 60 and text.endswith("...")


def test_ignoring_underflow_ignores_only_underflow():
    """Inside, underflow is ignored; overflow still raises as the caller set; outside, the
    caller's state is restored."""

    @_arrays.ignoring_underflow
    def f(a, b):
        return np.exp(a) * b

    with np.errstate(all="raise"):
        assert f(np.float32(-200), np.float32(1)) == 0
        with pytest.raises(FloatingPointError, match="overflow"):
            f(np.float32(100), np.float32(1))
        with pytest.raises(FloatingPointError, match="underflow"):
            np.exp(np.float32(-200))
    assert f.__name__ == "f"


# ---------------------------------------------------------------------------
# The policy at every public entry point that takes arrays.


class Sub(np.ndarray):
    """A do-nothing ndarray subclass (np.matrix, np.memmap and astropy's Quantity are others)."""


def _net(layers, in_shape, dtype=np.float64):
    return fnn.init(layers, in_shape, key=0, dtype=dtype)


MLP = _net([fnn.Dense(4), fnn.Tanh(), fnn.Dense(3)], (2,))
X = np.random.default_rng(0).normal(size=(5, 2))
Y_REG = np.random.default_rng(1).normal(size=(5, 3))
LABELS = np.array([0, 2, 1, 1, 0])
IMG = np.random.default_rng(2).normal(size=(2, 4, 4, 2))


def _layer(layer, x):
    return layer.init(0, x.shape[1:], np.dtype(x.dtype))[0]


LAYERS = [
    (fnn.Dense(3), X), (fnn.ReLU(), X), (fnn.LeakyReLU(), X), (fnn.ELU(), X), (fnn.Tanh(), X),
    (fnn.Sigmoid(), X), (fnn.GELU(), X), (fnn.Identity(), X), (fnn.Softmax(), X),
    (fnn.Flatten(), IMG), (fnn.Reshape((16, 2)), IMG), (fnn.Dropout(0.5), X),
    (fnn.Conv2D(2, 2), IMG), (fnn.MaxPool2D(2), IMG), (fnn.AvgPool2D(2), IMG),
    (fnn.GlobalAvgPool2D(), IMG), (fnn.LayerNorm(), X), (fnn.BatchNorm(), IMG),
]


def _layer_rows():
    rows = []
    for layer, x in LAYERS:
        built = _layer(layer, x)
        name = layer.name
        rows.append((f"{name}.forward", [x], lambda x, b=built: b.forward(x, key=0, training=True)))
        rows.append((f"{name}.vjp", [x], lambda x, b=built: b.vjp(x, key=0, training=True)[0]))
        y = built.forward(x, key=0, training=True)
        dy = np.random.default_rng(3).normal(size=y.shape)
        rows.append((f"{name}.pullback", [dy],
                     lambda dy, b=built, x=x: b.vjp(x, key=0, training=True)[1](dy)))
    return rows


def _with_loss(fn, loss):
    return lambda pred, y: fn(loss, pred, y)


ENTRY_POINTS = [
    ("fnn.forward", [X], lambda x: fnn.forward(MLP, x)),
    ("fnn.activations", [X], lambda x: fnn.activations(MLP, x)),
    ("fnn.loss", [X, Y_REG], lambda x, y: fnn.loss(MLP, x, y, losses.mse)),
    ("fnn.grad", [X, Y_REG], lambda x, y: fnn.grad(MLP, x, y, losses.mse)),
    ("fnn.value_and_grad", [X, LABELS],
     lambda x, y: fnn.value_and_grad(MLP, x, y, losses.sparse_softmax_cross_entropy)),
    ("fnn.evaluate", [X, LABELS], lambda x, y: fnn.evaluate(
        MLP, x, y, losses.sparse_softmax_cross_entropy, [metrics.accuracy], batch_size=2)),
    ("fnn.batches", [X, LABELS], lambda x, y: list(fnn.batches(x, y, 2, key=0))),
    ("fnn.fit", [X, LABELS, X, LABELS], lambda x, y, xv, yv: fnn.fit(
        MLP, fnn.optim.adam(1e-2), losses.sparse_softmax_cross_entropy, (x, y), epochs=2, key=0,
        batch_size=2, validation=(xv, yv), metrics=[metrics.accuracy], progress=False)[:2]),
    ("fnn.testing.check_layer", [X], lambda x: testing.check_layer(_layer(fnn.Dense(2), X), x).ok),
    ("fnn.testing.check_loss", [Y_REG, Y_REG[::-1]],
     lambda p, y: testing.check_loss(losses.mse, p, y).ok),
    ("fnn.testing.check_network", [X, Y_REG],
     lambda x, y: testing.check_network(MLP, x, y, losses.mse).ok),
    ("fnn.testing.check_vjp", [X],
     lambda x: testing.check_vjp(np.tanh, lambda x: (np.tanh(x), lambda dy: dy / np.cosh(x) ** 2), x).ok),
    ("fnn.datasets.one_hot", [LABELS], lambda y: datasets.one_hot(y, 3)),
    ("fnn.datasets.train_val_split", [X, LABELS],
     lambda x, y: datasets.train_val_split(x, y, val_fraction=0.4, key=0)),
    ("fnn.datasets.images_to_float", [np.arange(18, dtype=np.uint8).reshape(2, 3, 3)],
     lambda x: datasets.images_to_float(x)),
    ("fnn.datasets.Dataset", [np.zeros((2, 2, 2), np.uint8), LABELS[:2]],
     lambda x, y: tuple(datasets.Dataset(x, y, x, y))),
    *[(f"fnn.losses.{loss.name}", [p, t], lambda p, t, loss=loss: loss.value_and_grad(p, t))
      for loss, p, t in [
          (losses.mse, Y_REG, Y_REG[::-1]),
          (losses.binary_cross_entropy, 1 / (1 + np.exp(-Y_REG)), np.abs(np.tanh(Y_REG))),
          (losses.binary_cross_entropy_with_logits, Y_REG, np.abs(np.tanh(Y_REG))),
          (losses.softmax_cross_entropy, Y_REG, np.eye(3)[LABELS]),
          (losses.sparse_softmax_cross_entropy, Y_REG, LABELS)]],
    ("fnn.metrics.accuracy", [Y_REG, LABELS], metrics.accuracy),
    ("fnn.metrics.top_k_accuracy", [Y_REG, LABELS], lambda p, y: metrics.top_k_accuracy(p, y, 2)),
    ("fnn.metrics.confusion_matrix", [LABELS, Y_REG], lambda y, p: metrics.confusion_matrix(y, p, 3)),
    ("fnn.metrics.mse", [Y_REG, Y_REG[::-1]], metrics.mse),
    ("fnn.metrics.mae", [Y_REG, Y_REG[::-1]], metrics.mae),
    ("fnn.metrics.r2_score", [Y_REG, Y_REG[::-1]], metrics.r2_score),
    *_layer_rows(),
]

CASES = [(name, i) for name, arrays, _ in ENTRY_POINTS for i in range(len(arrays))]
BY_NAME = {name: (arrays, fn) for name, arrays, fn in ENTRY_POINTS}


def _same(a, b):
    """Equal results, with every array in ``b`` a plain ndarray."""
    if isinstance(a, np.ndarray):
        assert type(b) is np.ndarray, type(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _same(u, v)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif attrs.has(type(a)):
        _same(tree.leaves(a), tree.leaves(b))
    else:
        assert a == b


def _call(name, i, wrap):
    arrays, fn = BY_NAME[name]
    args = list(arrays)
    args[i] = wrap(args[i])
    return fn(*args)


@pytest.mark.parametrize(("name", "i"), CASES, ids=[f"{n}-arg{i}" for n, i in CASES])
def test_masked_arrays_are_refused_at_every_entry_point(name, i):
    """A masked array (one masked entry) in any array argument is a TypeError saying so;
    nothing computes with the data under the mask."""

    def masked(a):
        mask = np.zeros(a.shape, bool)
        mask.flat[0] = True
        return np.ma.array(a, mask=mask)

    with pytest.raises(TypeError, match="is a masked array"):
        _call(name, i, masked)


@pytest.mark.parametrize(("name", "i"), CASES, ids=[f"{n}-arg{i}" for n, i in CASES])
def test_subclasses_give_the_plain_result_at_every_entry_point(name, i):
    """An ndarray subclass in any array argument gives the result of the plain array, with
    plain ndarrays in it; a non-native byte order gives the same values too."""
    plain_result = _call(name, i, lambda a: a)
    _same(plain_result, _call(name, i, lambda a: a.view(Sub)))
    swapped = _call(name, i, lambda a: a.astype(a.dtype.newbyteorder("S")))
    _same(plain_result, swapped)


def test_underflow_retried_gives_what_ignoring_underflow_gives():
    """The retrying wrapper returns the underflow-ignoring result, re-raises other errors,
    and calls the function once when nothing is raised."""
    calls = []

    @_arrays.underflow_retried
    def f(a):
        calls.append(a)
        return np.exp(a)

    with np.errstate(all="raise"):
        assert f(np.float64(1.0)) == np.exp(1.0) and len(calls) == 1
        assert f(np.float32(-200)) == 0 and len(calls) == 3
        with pytest.raises(FloatingPointError, match="overflow"):
            f(np.float32(100))
    with np.errstate(all="warn"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(np.float32(-200)) == 0


@pytest.mark.parametrize(("layer", "x"), LAYERS, ids=lambda v: getattr(v, "name", ""))
@pytest.mark.parametrize("where", ["batch", "last"])
def test_layers_refuse_empty_inputs(layer, x, where):
    """An input with no values, a (0, ...) batch or a zero-sized feature axis, is a ValueError
    naming the layer (like fnn.forward's empty-batch error), never a NumPy reduction error
    or a 'mean of empty slice' warning."""
    built = _layer(layer, x)
    empty = x[:0] if where == "batch" else x[..., :0]
    for call in (lambda: built.forward(empty, key=0, training=True),
                 lambda: built.vjp(empty, key=0, training=True)):
        with pytest.raises(ValueError, match=rf"{re.escape(layer.name)}: x has shape .* no values"):
            call()


@pytest.mark.parametrize("value", [10**400, -(10**400), 10**309])
@pytest.mark.parametrize(
    "call",
    [
        lambda v: fnn.optim.sgd(v),
        lambda v: fnn.optim.adam(v),
        lambda v: fnn.optim.adam(1e-3, b1=v),
        lambda v: fnn.optim.rmsprop(1e-3, decay=v),
        lambda v: fnn.optim.constant(v),
        lambda v: fnn.optim.clip_by_global_norm(v),
        lambda v: fnn.optim.add_decayed_weights(v),
        lambda v: fnn.sgd_step(MLP, MLP, v),
    ],
    ids=["sgd", "adam", "adam.b1", "rmsprop.decay", "constant", "clip", "decay", "sgd_step"],
)


def test_ints_beyond_float_range_are_value_errors(call, value):
    """The case of issue 16: lr=10**400 raised OverflowError ('int too large to convert to
    float'); a Python int beyond float range is a finite-number check failing: ValueError,
    with the number shortened in the message."""
    with pytest.raises(ValueError, match=r"must be a finite number") as info:
        call(value)
    assert len(str(info.value)) < 400


NET32 = _net([fnn.Dense(2)], (2,), np.float32)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: fnn.forward(NET32, x),
        lambda x: fnn.activations(NET32, x),
        lambda x: fnn.loss(NET32, x, np.zeros((1, 2), np.float32), losses.mse),
        lambda x: fnn.value_and_grad(NET32, x, np.zeros((1, 2), np.float32), losses.mse),
        lambda x: fnn.evaluate(NET32, x, np.zeros((1, 2), np.float32), losses.mse),
    ],
    ids=["forward", "activations", "loss", "value_and_grad", "evaluate"],
)
@pytest.mark.parametrize("mode", ["raise", "default"])
def test_float64_beyond_float32_range_is_refused_by_a_float32_network(call, mode):
    """The case of issue 16: float64 input of 1e39 into a float32 network overflowed to inf
    on the cast (a RuntimeWarning, or FloatingPointError under errstate raise, then a
    misleading 'contains NaN or inf'). It is a ValueError saying the values are beyond
    float32's range, whatever the errstate; within range the cast works."""
    errs = {"all": "raise"} if mode == "raise" else {"over": "warn", "invalid": "warn"}
    with np.errstate(**errs), warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"up to 1e\+39 in magnitude, beyond the range of float32"):
            call(np.array([[0.5, -1e39]]))
        call(np.array([[0.5, -1e15]]))


@pytest.mark.parametrize("loss", [losses.mse, losses.binary_cross_entropy_with_logits])
def test_float64_targets_beyond_float32_range_are_refused(loss):
    """A float64 target beyond a float32 prediction's range is a ValueError naming the loss,
    not an overflowing cast."""
    with np.errstate(all="raise"), pytest.raises(ValueError, match=rf"{loss.name}: y holds values up to"):
        loss(np.zeros((1, 2), np.float32), np.array([[0.0, 1e300]]))


def test_float16_networks_are_refused_at_init():
    """The decision of issue 16: float16 networks are refused where they are built (fnn.init
    and the Network constructor) with a TypeError saying why and to use float32 or float64;
    no optimizer would keep float16 parameters finite (Adam's eps of 1e-8 is 0 in float16,
    a squared gradient of 300 is inf)."""
    layers = [fnn.Dense(2)]
    with pytest.raises(TypeError, match=r"^fnn\.init: dtype must be floating-point, np\.float32 or np\.float64; float16"):
        fnn.init(layers, (2,), key=0, dtype=np.float16)
    with pytest.raises(TypeError, match=r"^fnn\.init: .*np\.float32 \(the default\)"):
        fnn.init(layers, (2,), key=0, dtype="float16")
    with pytest.raises(TypeError, match=r"^Network: dtype must be floating-point, np\.float32 or np\.float64; float16"):
        fnn.Network(MLP.layers, MLP.input_shape, np.float16)
    with pytest.raises(TypeError, match=r"^Network: dtype must be .* not floating-point"):
        fnn.Network(MLP.layers, MLP.input_shape, np.int32)


@pytest.mark.parametrize(("layer", "x"), LAYERS, ids=lambda v: getattr(v, "name", ""))
def test_layers_refuse_float16_inputs(layer, x):
    """A layer computes in float32 or float64 only: a float16 input is a TypeError naming the
    layer and the cast (parameter-free layers once computed in float16 silently)."""
    built = _layer(layer, x.astype(np.float32))
    with pytest.raises(TypeError, match=rf"{re.escape(layer.name)}: x must be a float32 or float64"):
        built.forward(x.astype(np.float16), key=0, training=True)


@pytest.mark.parametrize("loss", [losses.mse, losses.sparse_softmax_cross_entropy])
def test_losses_refuse_float16_predictions(loss):
    """float16 predictions are a TypeError naming the loss (its batch size as a float16
    overflows at 65504 examples, making the mean 0)."""
    y = np.zeros(2, np.int64) if loss is losses.sparse_softmax_cross_entropy else np.zeros((2, 2))
    with pytest.raises(TypeError, match=rf"{loss.name}: pred must be a float32 or float64"):
        loss(np.zeros((2, 2), np.float16), y)


def test_float16_input_goes_into_a_float32_network():
    """A float16 batch is data like uint8 images: fnn.forward casts it (exactly) to the
    network's dtype."""
    x = X.astype(np.float16)
    np.testing.assert_array_equal(fnn.forward(MLP, x), fnn.forward(MLP, x.astype(np.float64)))


def _writeable_alias(a, b):
    return b is not None and np.shares_memory(a, b) and b.flags.writeable


@pytest.mark.parametrize("layer", [fnn.Flatten(), fnn.Reshape((-1,)), fnn.Reshape((16, 2))],
                         ids=lambda v: v.name)
def test_relayout_never_returns_a_writeable_view_of_the_callers_array(layer):
    """The case of issue 16: Flatten/Reshape returned x.reshape(...), a writeable view, so
    writing into fnn.forward's output changed the caller's x. The output (and the pullback's
    dx, a view of the caller's dy) may share memory but is then read-only."""
    x = IMG.astype(np.float32)
    built = _layer(layer, x)
    net = fnn.Network((built,), x.shape[1:], np.float32)
    y_fwd = built.forward(x)
    y_vjp, pullback = built.vjp(x)
    y_net = fnn.forward(net, x)
    dy = np.random.default_rng(1).normal(size=y_vjp.shape).astype(y_vjp.dtype)
    dx = pullback(dy)[1]
    for y in (y_fwd, y_vjp, y_net, *fnn.activations(net, x)[1:]):
        assert not _writeable_alias(x, y)
    assert not _writeable_alias(dy, dx)
    assert x.flags.writeable and dy.flags.writeable  # the caller's flags are untouched
    np.testing.assert_array_equal(y_net.reshape(x.shape), x)


@pytest.mark.parametrize(("layer", "x"), LAYERS, ids=lambda v: getattr(v, "name", ""))
def test_pullbacks_use_the_plain_input(layer, x):
    """Found by the fuzz test: Dense's and the activations' pullbacks computed with the
    caller's x as passed, so an np.matrix x made dy * f'(x) a matrix product (a shape
    error) and Dense's dW a matrix. With the policy, every pullback gives the plain
    result for a subclass input."""
    if x.ndim != 2:
        pytest.skip("np.matrix is 2-d")
    built = _layer(layer, x)
    y, pullback = built.vjp(x, key=0, training=True)
    dy = np.random.default_rng(4).normal(size=y.shape)
    expected = pullback(dy)
    y_m, pullback_m = built.vjp(_matrix(x), key=0, training=True)
    _same(y, y_m)
    _same(expected, pullback_m(dy))


def _matrix(a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(a)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda v: fnn.ELU(alpha=v), r"ELU: alpha must be a finite number"),
        (lambda v: fnn.LeakyReLU(negative_slope=v), r"LeakyReLU: negative_slope must be a finite"),
        (lambda v: fnn.Dropout(v), r"Dropout: drop_prob must be in \[0, 1\)"),
        (lambda v: fnn.BatchNorm(momentum=v), r"BatchNorm: momentum must be in \[0, 1\)"),
        (lambda v: fnn.LayerNorm(eps=v), r"LayerNorm: eps must be a finite number"),
        (lambda v: tree.allclose(MLP, MLP, atol=v), r"fnn\.tree\.allclose: atol must be finite"),
        (lambda v: datasets.two_spirals(0, 3, noise=v), r"two_spirals: need noise >= 0"),
        (lambda v: datasets.linear_regression(0, 3, bias=v), r"linear_regression: bias must be"),
        (lambda v: fnn.random.uniform(0, (2,), high=v), r"fnn\.random\.uniform: high must be"),
    ],
    ids=["ELU", "LeakyReLU", "Dropout", "BatchNorm", "LayerNorm", "allclose", "two_spirals",
         "linear_regression", "uniform"],
)
@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_more_ints_beyond_float_range_are_value_errors(call, match, value):
    """Found by the fuzz test's huge ints: these validators raised OverflowError."""
    with pytest.raises(ValueError, match=match):
        call(value)


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_tree_scale_by_an_int_beyond_float_range_is_arithmetic(value):
    """tree.scale(t, 10**400) scales by ±inf as IEEE 754 says (like scaling by 1e300 in
    float32), instead of raising OverflowError (found by the fuzz test)."""
    with np.errstate(all="ignore"):
        out = tree.scale({"a": np.array([1.0, -2.0])}, value)
    assert np.isinf(out["a"]).all() and (np.sign(out["a"]) == [np.sign(value), -np.sign(value)]).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda: fnn.LeakyReLU(negative_slope=5e-324).forward(X),
        lambda: fnn.LeakyReLU(negative_slope=5e-324).vjp(X)[1](X),
        lambda: fnn.ELU().vjp(np.full((1, 2), -1e-310))[1](np.full((1, 2), 0.5)),
        lambda: fnn.Tanh().vjp(np.full((1, 2), 1e-200))[1](np.full((1, 2), 0.5)),
        lambda: tree.allclose(MLP, MLP, rtol=5e-324),
        lambda: tree.scale(MLP, 5e-324),
        lambda: tree.vdot({"a": np.full(3, 1e-200)}, {"a": np.full(3, 1e-200)}),
        lambda: tree.norm({"a": np.full(3, 1e-200)}),
        lambda: datasets.two_spirals(0, 3, noise=5e-324),
    ],
    ids=["LeakyReLU", "LeakyReLU.pullback", "ELU.pullback", "Tanh.pullback", "allclose", "scale",
         "vdot", "norm", "two_spirals"],
)
def test_more_entry_points_compute_through_underflow(call):
    """Found by the fuzz test under np.errstate(all='raise'): these raised 'underflow
    encountered in multiply' on finite arguments."""
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        call()


def test_tree_allclose_takes_ints_beyond_int64():
    """tree.allclose(atol=2**64 + 1) compares with that tolerance instead of failing inside
    np.allclose with "ufunc 'isfinite' not supported" (found by the fuzz test)."""
    assert tree.allclose({"a": np.zeros(2)}, {"a": np.ones(2)}, atol=2**64 + 1)
