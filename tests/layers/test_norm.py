"""Tests of fnn.layers.norm: LayerNorm and BatchNorm (with its running statistics)."""

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import testing
from fnn._arrays import per_channel
from fnn.layers.norm import BatchNorm, LayerNorm, _Vec


def normal_arrays(shape, scale=1.0, shift=0.0):
    """float64 normal arrays drawn from a Hypothesis-chosen seed."""
    return st.integers(0, 2**32 - 1).map(
        lambda s: np.random.default_rng(s).normal(shift, scale, size=shape)
    )


@st.composite
def built_norm(draw, cls):
    """A built float64 norm layer with random gamma/beta (and running stats) and an input."""
    rank = draw(st.sampled_from([2, 4]))
    batch = draw(testing.batch_sizes(4)) + (1 if cls is BatchNorm and rank == 2 else 0)
    shape = (batch, *draw(testing.shapes(rank - 1, rank - 1, 1, 4)))
    layer, out_shape = cls().init(0, shape[1:], np.dtype(np.float64))
    c = shape[-1]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    changes = {"gamma": rng.normal(size=c), "beta": rng.normal(size=c)}
    if cls is BatchNorm:
        changes |= {"running_mean": rng.normal(size=c), "running_var": rng.uniform(0.5, 2, c)}
    x = draw(normal_arrays(shape, scale=draw(st.floats(0.5, 3.0)), shift=draw(st.floats(-2, 2))))
    return attrs.evolve(layer, **changes), out_shape, x


norm_cases = st.sampled_from([LayerNorm, BatchNorm]).flatmap(built_norm)


@given(norm_cases, st.booleans())
def test_shape_promised_by_init_is_produced(case, training):
    """The shape init promises equals the shape forward produces (in both modes)."""
    layer, out_shape, x = case
    assert layer.forward(x, training=training).shape == (x.shape[0], *out_shape)


@given(norm_cases, st.booleans(), st.integers(0, 2**31))
def test_gradient_matches_finite_differences(case, training, seed):
    """dL/dx, dL/dγ and dL/dβ agree with central differences; for BatchNorm in training
    mode the gradient flows through the batch mean and variance."""
    layer, _, x = case
    testing.check_layer(layer, x, training=training, seed=seed)


@given(norm_cases, st.booleans())
def test_forward_and_pullback_are_pure(case, training):
    """forward/vjp/vjp_with_state leave x and every array of the layer unchanged and read-only."""
    layer, _, x = case
    x0, before = x.copy(), fnn.tree.map(np.copy, layer)
    y, pullback, _ = layer.vjp_with_state(x, training=training)
    dlayer, _ = pullback(np.random.default_rng(0).normal(size=y.shape))
    np.testing.assert_array_equal(x, x0)
    assert fnn.tree.allclose(layer, before)
    assert not any(a.flags.writeable for a in fnn.tree.leaves(layer) + fnn.tree.leaves(dlayer))


@given(st.sampled_from([LayerNorm, BatchNorm]).flatmap(built_norm))
def test_normalised_output_has_zero_mean_unit_variance(case):
    """With γ = 1, β = 0 the training-mode output has mean 0 and variance v/(v + eps) over
    the normalised axes."""
    layer, _, x = case
    c = x.shape[-1]
    layer = attrs.evolve(layer, gamma=np.ones(c), beta=np.zeros(c))
    y = layer.forward(x, training=True)
    axes = (-1,) if isinstance(layer, LayerNorm) else tuple(range(x.ndim - 1))
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-9)
    v = x.var(axis=axes)
    np.testing.assert_allclose(y.var(axis=axes), v / (v + layer.eps), rtol=1e-9, atol=1e-12)


def test_batch_norm_running_statistics_update():
    """vjp_with_state in training mode returns running ← m·running + (1 − m)·batch (biased
    variance); plain forward/vjp and evaluation mode never change the statistics."""
    layer, _ = BatchNorm(momentum=0.8).init(0, (2, 2, 3), np.dtype(np.float64))
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(5, 2, 2, 3))
    _, _, new = layer.vjp_with_state(x, training=True)
    np.testing.assert_allclose(new.running_mean, 0.2 * x.mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(new.running_var, 0.8 + 0.2 * x.var(axis=(0, 1, 2)))
    np.testing.assert_array_equal(new.gamma, layer.gamma)
    _, _, same = layer.vjp_with_state(x, training=False)
    assert same is layer
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.running_mean, np.zeros(3))


def test_batch_norm_evaluation_is_deterministic_and_per_example():
    """In evaluation mode the output uses only the running statistics: it is the same on every
    call and each example's output does not depend on the rest of the batch."""
    layer, _ = BatchNorm().init(0, (4,), np.dtype(np.float64))
    layer = attrs.evolve(layer, running_mean=np.arange(4.0), running_var=np.arange(1.0, 5.0))
    x = np.random.default_rng(0).normal(size=(6, 4))
    y = layer.forward(x)
    np.testing.assert_array_equal(y, layer.forward(x))
    np.testing.assert_allclose(layer.forward(x[2:3]), y[2:3])
    np.testing.assert_allclose(y, (x - np.arange(4.0)) / np.sqrt(np.arange(1.0, 5.0) + 1e-5))


def test_network_state_is_threaded_by_value_and_grad():
    """fnn.value_and_grad(with_state=True) returns the network with new statistics; the
    running stats are state leaves with zero gradient, and sgd_step leaves them unchanged."""
    net = fnn.init([fnn.Dense(3), BatchNorm(), fnn.Dense(1)], (2,), key=0, dtype=np.float64)
    assert fnn.tree.state_paths(net) == {"layers[1].running_mean", "layers[1].running_var"}
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 2)), rng.normal(size=(8, 1))
    loss, grads, new_net = fnn.value_and_grad(net, x, y, fnn.losses.mse, with_state=True)
    assert not grads.layers[1].running_mean.any() and not grads.layers[1].running_var.any()
    h = fnn.activations(net, x)[1]
    np.testing.assert_allclose(new_net.layers[1].running_mean, 0.1 * h.mean(axis=0))
    stepped = fnn.sgd_step(new_net, grads, lr=0.1)
    np.testing.assert_array_equal(stepped.layers[1].running_var, new_net.layers[1].running_var)
    np.testing.assert_array_equal(net.layers[1].running_mean, np.zeros(3))
    testing.check_network(net, x, y, fnn.losses.mse, training=True)
    assert loss == pytest.approx(fnn.loss(net, x, y, fnn.losses.mse, training=True))


def test_float32_stays_float32():
    """float32 layers compute outputs, gradients and statistics in float32."""
    x = np.random.default_rng(0).random((4, 3, 3, 2), dtype=np.float32)
    for cls in (LayerNorm, BatchNorm):
        layer, _ = cls().init(0, (3, 3, 2), np.dtype(np.float32))
        y, pullback, new = layer.vjp_with_state(x, training=True)
        dlayer, dx = pullback(np.random.default_rng(1).random(y.shape, dtype=np.float32))
        dtypes = {y.dtype, dx.dtype, *(a.dtype for a in fnn.tree.leaves((dlayer, new)))}
        assert dtypes == {np.dtype(np.float32)}


def test_need_dx_false_returns_none():
    """With need_dx=False the pullback returns dx=None and the same parameter gradients."""
    x = np.random.default_rng(0).normal(size=(4, 3))
    dy = np.random.default_rng(1).normal(size=(4, 3))
    for cls in (LayerNorm, BatchNorm):
        layer, _ = cls().init(0, (3,), np.dtype(np.float64))
        d1, dx1 = layer.vjp(x, training=True)[1](dy)
        d2, dx2 = layer.vjp(x, training=True, need_dx=False)[1](dy)
        assert dx1 is not None and dx2 is None
        assert fnn.tree.allclose(d1, d2)


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: BatchNorm(momentum=1.0), r"BatchNorm: momentum must be in \[0, 1\)"),
        (lambda: BatchNorm(momentum=-0.1), r"momentum must be in \[0, 1\)"),
        (lambda: LayerNorm(eps=0.0), r"LayerNorm: eps must be a finite number > 0"),
        (lambda: BatchNorm(eps=float("inf")), r"eps must be a finite number > 0"),
    ],
)
def test_bad_configs(make, pattern):
    """Impossible configurations raise at construction with the class and field named."""
    with pytest.raises(ValueError, match=pattern):
        make()


def test_bad_inputs_name_the_problem():
    """Wrong feature size, dtype, unbuilt layers and wrong cotangents are refused."""
    for cls in (LayerNorm, BatchNorm):
        layer, _ = cls().init(0, (4,), np.dtype(np.float64))
        with pytest.raises(
            ValueError,
            match=r"built for \(batch, \.\.\., 4\); normalised features are on the last axis",
        ):
            layer.forward(np.zeros((2, 3)))
        with pytest.raises(ValueError, match=r"built for \(batch, \.\.\., 4\)"):
            layer.forward(np.zeros(4))
        with pytest.raises(TypeError, match=r"cast the input with x.astype\(np.float64\)"):
            layer.forward(np.zeros((2, 4), np.float32))
        with pytest.raises(ValueError, match="not initialised"):
            cls().forward(np.zeros((2, 4)))
        _, pullback = layer.vjp(np.zeros((2, 4)))
        with pytest.raises(ValueError, match=r"dy has shape \(2, 3\), expected \(2, 4\)"):
            pullback(np.zeros((2, 3)))


# Issue 15: BatchNorm computes its statistics and gradients per row chunk (and thread)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_with_two_threads_passes_the_gradient_check(training):
    """Split across two threads, BatchNorm's gradients (through the batch statistics in
    training mode) still agree with central differences in float64."""
    rng = np.random.default_rng(10)
    layer, _ = BatchNorm().init(0, (3, 4, 5), np.dtype(np.float64))
    layer = attrs.evolve(layer, gamma=rng.normal(size=5), beta=rng.normal(size=5))
    x = rng.normal(1.0, 2.0, size=(6, 3, 4, 5))
    with fnn.threads(2):
        assert len(fnn.parallel.split(72, item_bytes=120)) == 2
        for seed in range(3):
            testing.check_layer(layer, x, training=training, seed=seed)


def test_batch_norm_thread_counts_agree_and_a_count_repeats_its_bits():
    """float32 BatchNorm on a batch of feature maps: two runs with two threads give the same
    bits, and one thread agrees with them to round-off (outputs, gradients, statistics)."""
    rng = np.random.default_rng(11)
    layer, _ = BatchNorm().init(0, (14, 14, 32), np.dtype(np.float32))
    x = rng.standard_normal((128, 14, 14, 32), dtype=np.float32) * 3 + 1
    dy = rng.standard_normal(x.shape, dtype=np.float32)

    def run(n):
        with fnn.threads(n):
            y, pullback, new = layer.vjp_with_state(x, training=True)
            grads, dx = pullback(dy)
        return y, dx, grads.gamma, grads.beta, new.running_mean, new.running_var

    first, second, single = run(2), run(2), run(1)
    for a, b, c in zip(first, second, single, strict=True):
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5 * np.abs(c).max())


@pytest.mark.parametrize("channels", [3, 8, 32, 48, 1024])
@pytest.mark.parametrize("rows", [1, 31, 32, 33, 100, 511, 512, 1100])
@pytest.mark.parametrize("op", [np.subtract, np.multiply, np.add])
def test_per_channel_operations_on_widened_rows_give_the_same_bits(channels, rows, op):
    """BatchNorm's per-channel broadcasts run on rows of 16384 or 1024 values where the
    channel count divides them (the rest row by row): exactly what the plain broadcast
    gives, also in place, for any row count, and unchanged for non-contiguous rows; the
    same with the vector tiled once for all chunks (_Vec), whatever width a chunk takes."""
    rng = np.random.default_rng(rows * channels)
    x = rng.normal(size=(rows, channels)).astype(np.float32)
    vec = rng.normal(size=channels).astype(np.float32)
    expected = op(x, vec)
    kept = _Vec.of(vec)
    assert (kept.tiled is None) == (16384 % channels != 0)
    for apply in (lambda r, o: per_channel(op, r, vec, o), lambda r, o: kept.apply(op, r, o)):
        got = apply(x, np.empty_like(x))
        assert np.array_equal(got, expected)
        inplace = x.copy()
        assert apply(inplace, inplace) is inplace
        assert np.array_equal(inplace, expected)
        strided = np.asfortranarray(x)
        assert np.array_equal(apply(strided, np.empty_like(x)), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 63, 64, 65, 200, 8364])
def test_column_dots_are_the_column_sums_of_the_products_bit_for_bit(rows, dtype):
    """Batch norm's sums of squares and of (x − μ)·δ (column_dots) fold the rows exactly as
    column_sums folds the stored products: the same bits, with or without leftover rows,
    and every row counts (a change in the last row changes the sum)."""
    from fnn.layers._im2col import column_dots, column_sums

    rng = np.random.default_rng(rows)
    a = rng.normal(size=(rows, 24)).astype(dtype)
    b = rng.normal(size=(rows, 24)).astype(dtype)
    got = column_dots(a, b)
    assert got.dtype == dtype and np.array_equal(got, column_sums(a * b))
    np.testing.assert_allclose(got, (a.astype(np.float64) * b).sum(axis=0), rtol=1e-4, atol=1e-4)
    b[-1] += 1.0
    assert not np.array_equal(column_dots(a, b), got)
