"""Tests of fnn.layers.pool: MaxPool2D, AvgPool2D, GlobalAvgPool2D."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import testing
from fnn.layers.pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D

small = st.integers(1, 3)


def distinct_arrays(shape):
    """float64 arrays of ``shape`` whose entries differ pairwise by at least 0.01
    (a shuffled grid plus jitter below 0.004), so no max-pool window has a tie within
    the finite-difference step: the max is differentiable there."""

    def build(seed):
        rng = np.random.default_rng(seed)
        n = math.prod(shape)
        grid = rng.permutation(n) * 0.01 - 0.005 * n
        return (grid + rng.uniform(0, 0.004, n)).reshape(shape)

    return st.integers(0, 2**32 - 1).map(build)


@st.composite
def pools(draw, cls, max_side=5):
    """A pooling layer with generated window, stride and padding, and an input that fits."""
    size = (draw(small), draw(small))
    kind = draw(st.sampled_from(["valid", "same", "explicit"]))
    padding = (
        tuple((draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))) for k in size)
        if kind == "explicit"
        else kind
    )
    strides = draw(st.one_of(st.none(), st.tuples(small, small)))
    layer = cls(size, strides=strides, padding=padding)
    sides = []
    for axis in (0, 1):
        padded = sum(padding[axis]) if kind == "explicit" else 0
        smallest = 1 if kind == "same" else max(1, size[axis] - padded)
        sides.append(draw(st.integers(smallest, smallest + max_side - 1)))
    x = draw(distinct_arrays((draw(testing.batch_sizes(3)), *sides, draw(small))))
    return layer, x


def reference_pool(layer, x, reduce):
    """Pooling written with explicit loops over output positions (padding cells skipped)."""
    (ph, pw), (sh, sw) = layer.pool_size, layer.strides or layer.pool_size
    h, w = x.shape[1:3]
    if layer.padding == "valid":
        pads = ((0, 0), (0, 0))
    elif layer.padding == "same":
        pads = tuple(
            ((t := max((math.ceil(n / s) - 1) * s + k - n, 0)) // 2, t - t // 2)
            for n, k, s in ((h, ph, sh), (w, pw, sw))
        )
    else:
        pads = layer.padding
    oh = (h + sum(pads[0]) - ph) // sh + 1
    ow = (w + sum(pads[1]) - pw) // sw + 1
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for p in range(oh):
        for q in range(ow):
            r0, c0 = p * sh - pads[0][0], q * sw - pads[1][0]
            window = x[:, max(r0, 0) : r0 + ph, max(c0, 0) : c0 + pw, :]
            y[:, p, q, :] = reduce(window, axis=(1, 2))
    return y


@given(st.sampled_from([MaxPool2D, AvgPool2D]).flatmap(pools))
def test_shape_promised_and_values_match_the_definition(case):
    """output_shape equals forward's shape, and forward equals the loop definition."""
    layer, x = case
    y = layer.forward(x)
    assert y.shape == (x.shape[0], *layer.output_shape(x.shape[1:]))
    reduce = np.max if isinstance(layer, MaxPool2D) else np.mean
    np.testing.assert_allclose(y, reference_pool(layer, x, reduce), rtol=1e-12, atol=1e-12)


@given(st.sampled_from([MaxPool2D, AvgPool2D]).flatmap(pools), st.integers(0, 2**31))
def test_gradient_matches_finite_differences(case, seed):
    """dL/dx agrees with central differences (max pooling: away from ties), including
    overlapping windows, padding, and windows that do not divide the input."""
    layer, x = case
    testing.check_layer(layer, x, seed=seed)


@given(st.sampled_from([MaxPool2D, AvgPool2D]).flatmap(pools))
def test_forward_and_pullback_are_pure(case):
    """forward/vjp leave x unchanged."""
    layer, x = case
    x0 = x.copy()
    y, pullback = layer.vjp(x)
    pullback(np.random.default_rng(0).normal(size=y.shape))
    np.testing.assert_array_equal(x, x0)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    """With ties, the whole gradient of a window goes to its first maximal cell in
    row-major order; the other tied cells get nothing."""
    x = np.array(
        [[1.0, 3.0, 3.0, 0.0], [3.0, 3.0, 0.0, 3.0], [2.0, 2.0, 5.0, 5.0], [2.0, 2.0, 5.0, 5.0]]
    )
    layer = MaxPool2D(2)
    _y, pullback = layer.vjp(x.reshape(1, 4, 4, 1))
    dy = np.array([[10.0, 20.0], [30.0, 40.0]])
    dx = pullback(dy.reshape(1, 2, 2, 1))[1][0, :, :, 0]
    expected = np.array([[0, 10, 20, 0], [0, 0, 0, 0], [30, 0, 40, 0], [0, 0, 0, 0]], dtype=float)
    np.testing.assert_array_equal(dx, expected)


def test_max_pool_ties_with_overlapping_windows():
    """Overlapping windows each route their gradient to their own first maximum; a cell
    that is the first maximum of two windows collects both."""
    x = np.full((1, 3, 3, 1), 7.0)  # every window is one big tie
    _y, pullback = MaxPool2D(2, strides=1).vjp(x)
    dx = pullback(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1))[1][0, :, :, 0]
    np.testing.assert_array_equal(dx, [[1, 2, 0], [3, 4, 0], [0, 0, 0]])


def test_cells_no_window_reaches_get_zero_gradient():
    """'valid' windows that do not divide the input ignore the remainder (zero gradient)."""
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3))
    for layer in (MaxPool2D(2), AvgPool2D(2), MaxPool2D(3, strides=2)):
        y, pullback = layer.vjp(x)
        dx = pullback(np.random.default_rng(1).normal(size=y.shape))[1]
        assert dx.shape == x.shape
        if layer.pool_size == (2, 2):
            assert not dx[:, 4, :, :].any() and not dx[:, :, 6, :].any()


def test_avg_pool_padding_is_not_counted():
    """'same' average pooling divides each window by its number of real cells."""
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    y = AvgPool2D(2, padding="same").forward(x)[0, :, :, 0]
    np.testing.assert_allclose(y, [[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2], [(6 + 7) / 2, 8.0]])


def test_max_pool_padding_is_never_the_maximum():
    """Max pooling pads with -inf: an all-negative input is pooled from real cells only."""
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = MaxPool2D(2, padding="same").forward(x)[0, :, :, 0]
    np.testing.assert_array_equal(y, [[-1.0, -3.0], [-7.0, -9.0]])
    assert np.isfinite(y).all()


def test_float32_stays_float32():
    """Pooling a float32 input gives float32 outputs and gradients."""
    x = np.random.default_rng(0).random((2, 6, 6, 3), dtype=np.float32)
    for layer in (MaxPool2D(2), AvgPool2D(3, strides=2, padding="same"), GlobalAvgPool2D()):
        y, pullback = layer.vjp(x)
        dx = pullback(np.random.default_rng(1).standard_normal(y.shape).astype(np.float32))[1]
        assert y.dtype == dx.dtype == np.float32


def test_need_dx_false_returns_none():
    """With need_dx=False the pullback returns dx=None."""
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 1))
    for layer in (MaxPool2D(2), AvgPool2D(2), GlobalAvgPool2D()):
        y, pullback = layer.vjp(x, need_dx=False)
        assert pullback(np.random.default_rng(1).normal(size=y.shape))[1] is None


@given(
    testing.batch_sizes(3), small, small, small, st.integers(0, 2**32 - 1), st.integers(0, 2**31)
)
def test_global_avg_pool_gradient_and_shape(batch, h, w, c, data_seed, seed):
    """GlobalAvgPool2D gives (batch, channels) means and its gradient passes the FD check."""
    x = np.random.default_rng(data_seed).normal(size=(batch, h, w, c))
    layer = GlobalAvgPool2D()
    _, out_shape = layer.init(0, x.shape[1:], np.dtype(np.float64))
    y = layer.forward(x)
    assert y.shape == (batch, *out_shape) == (batch, c)
    np.testing.assert_allclose(y, x.mean(axis=(1, 2)))
    testing.check_layer(layer, x, seed=seed)


def test_pooling_network_has_correct_gradient():
    """conv - max-pool - avg-pool - global-avg-pool - dense passes the network gradient check."""
    layers = [
        fnn.layers.Conv2D(3, 2),
        MaxPool2D(2, strides=1),
        AvgPool2D(2, padding="same"),
        GlobalAvgPool2D(),
        fnn.Dense(2),
    ]
    net = fnn.init(layers, (6, 6, 2), key=3, dtype=np.float64)
    rng = np.random.default_rng(4)
    testing.check_network(
        net, rng.normal(size=(2, 6, 6, 2)), rng.normal(size=(2, 2)), fnn.losses.mse
    )


@pytest.mark.parametrize(
    ("make", "err", "pattern"),
    [
        (lambda: MaxPool2D(0), ValueError, r"MaxPool2D: pool_size must be positive"),
        (lambda: AvgPool2D(2, strides=0), ValueError, r"AvgPool2D: strides must be positive"),
        (lambda: MaxPool2D(2, strides=(1, -1)), ValueError, r"strides must be positive"),
        (lambda: MaxPool2D(2, padding="full"), ValueError, r"padding must be 'valid', 'same'"),
        (lambda: MaxPool2D(2, padding=2), ValueError, r"must be smaller than the window"),
        (lambda: AvgPool2D(2.5), TypeError, r"pool_size must be an int or a pair"),
    ],
)
def test_bad_configs_name_the_problem(make, err, pattern):
    """Impossible configurations raise at construction with the class and field named."""
    with pytest.raises(err, match=pattern):
        make()


def test_bad_inputs_name_the_problem():
    """A window larger than the input, non-image inputs and wrong kinds are refused."""
    with pytest.raises(
        ValueError, match=r"window is larger than the padded input 2x2; use padding='same'"
    ):
        MaxPool2D(3).forward(np.zeros((1, 2, 2, 1)))
    with pytest.raises(ValueError, match=r"window is larger"):
        AvgPool2D(3).init(0, (2, 5, 1), np.dtype(np.float64))
    with pytest.raises(ValueError, match=r"Reshape\(\(height, width, 1\)\)"):
        MaxPool2D(2).init(0, (28, 28), np.dtype(np.float64))
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\) \(4 axes\)"):
        AvgPool2D(2).forward(np.zeros((4, 4, 1)))
    with pytest.raises(TypeError, match=r"floating-point"):
        MaxPool2D(2).forward(np.zeros((1, 4, 4, 1), np.int64))
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        GlobalAvgPool2D().forward(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"expects images"):
        GlobalAvgPool2D().init(0, (16,), np.dtype(np.float64))


def test_pullback_rejects_wrong_cotangent_shape():
    """A cotangent of the wrong shape is refused rather than broadcast."""
    for layer in (MaxPool2D(2), AvgPool2D(2), GlobalAvgPool2D()):
        _y, pullback = layer.vjp(np.zeros((1, 4, 4, 2)))
        with pytest.raises(ValueError, match=r"dy has shape \(3,\), expected"):
            pullback(np.zeros(3))


# Issue 15: non-overlapping max-pooling runs per batch chunk (one or more per thread)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize(
    ("pool_size", "hw"), [(2, (6, 8)), (2, (7, 5)), ((3, 2), (9, 4)), (3, (5, 7)), (1, (3, 3))]
)
def test_tiled_max_pool_matches_definition_and_differences_across_threads(pool_size, hw, n_threads):
    """stride = window (exact tiling and odd sizes whose last cells no window reaches): the
    output equals the loop definition and the gradient passes the float64 check, with the
    batch split across threads."""
    layer = MaxPool2D(pool_size)
    x = _distinct((5, *hw, 3), 8)
    with fnn.threads(n_threads):
        np.testing.assert_array_equal(layer.forward(x), reference_pool(layer, x, np.max))
        for seed in range(2):
            testing.check_layer(layer, x, seed=seed)


def test_tiled_max_pool_ties_and_fixed_bits_with_two_threads():
    """With the batch split across two threads, ties still send the gradient to the first
    maximum (a ReLU output full of zeros), and the result equals the one-thread result."""
    rng = np.random.default_rng(9)
    x = np.maximum(rng.normal(size=(16, 6, 6, 4)), 0.0)  # many all-zero windows: ties
    y, pullback = MaxPool2D(2).vjp(x)
    dy = rng.normal(size=y.shape)
    single = pullback(dy)[1]
    with fnn.threads(2):
        y2, pullback2 = MaxPool2D(2).vjp(x)
        double = pullback2(dy)[1]
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(single, double)
    x6 = x.reshape(16, 3, 2, 3, 2, 4).transpose(0, 1, 3, 5, 2, 4).reshape(16, 3, 3, 4, 4)
    first = np.argmax(x6 == y[..., None], axis=-1)  # row-major first maximum of each window
    routed = double.reshape(16, 3, 2, 3, 2, 4).transpose(0, 1, 3, 5, 2, 4).reshape(16, 3, 3, 4, 4)
    np.testing.assert_array_equal(np.take_along_axis(routed, first[..., None], -1)[..., 0], dy)
    assert np.count_nonzero(routed) == np.count_nonzero(dy)


def _distinct(shape, seed):
    """A float64 array with pairwise distinct entries (no max-pool ties)."""
    rng = np.random.default_rng(seed)
    n = math.prod(shape)
    return (rng.permutation(n) * 0.01 + rng.uniform(0, 0.004, n)).reshape(shape)


def test_copy_runs_copies_channel_runs_as_blocks_and_other_layouts_as_usual():
    """copy_runs (max pooling's gather and scatter of window cells) copies exactly what
    ``dst[...] = src`` copies: strided window cells with a few contiguous channels (as
    blocks, up to 256 bytes), channel axes with a stride, runs longer than 256 bytes and one
    channel (as usual)."""
    from fnn.layers._im2col import copy_runs
    from fnn.layers._pool_ops import tiles

    rng = np.random.default_rng(5)
    for channels, step in ((16, 1), (3, 1), (1, 1), (8, 2), (32, 1), (64, 1), (96, 1)):
        x = rng.normal(size=(3, 6, 8, channels * step)).astype(np.float32)[..., ::step]
        x6 = tiles(x, (2, 2), (3, 4))
        for i in range(2):
            for j in range(2):
                dst = np.full(x6[:, :, i, :, j, :].shape, np.nan, np.float32)
                copy_runs(dst, x6[:, :, i, :, j, :])
                assert dst.tobytes() == np.ascontiguousarray(x6[:, :, i, :, j, :]).tobytes()
                back = np.zeros_like(x)
                copy_runs(tiles(back, (2, 2), (3, 4))[:, :, i, :, j, :], dst)
                assert np.array_equal(back[:, i::2, j::2], x[:, i::2, j::2])
                assert not back[:, 1 - i :: 2].any() and not back[:, :, 1 - j :: 2].any()


def test_max_pool_vjp_on_channel_strided_input_equals_the_contiguous_copy():
    """A max-pool vjp given channels with a stride (no block copies) gives the bits of the
    same input made contiguous (block copies), forward and backward."""
    rng = np.random.default_rng(6)
    wide = rng.normal(size=(4, 8, 8, 12)).astype(np.float32)
    x = wide[..., ::2]
    layer, _ = MaxPool2D(2).init(0, x.shape[1:], np.float32)
    y1, pb1 = layer.vjp(x)
    y2, pb2 = layer.vjp(np.ascontiguousarray(x))
    dy = rng.normal(size=y1.shape).astype(np.float32)
    assert y1.tobytes() == y2.tobytes()
    assert pb1(dy)[1].tobytes() == pb2(dy)[1].tobytes()
