"""Tests of fnn.losses: values, gradients w.r.t. the prediction, stability and errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnn import losses, testing

batch = testing.batch_sizes()
width = st.integers(1, 5)


@st.composite
def regression_case(draw):
    shape = (draw(batch), draw(width))
    return draw(testing.arrays(shape)), draw(testing.arrays(shape))


@st.composite
def probability_case(draw):
    shape = (draw(batch), draw(width))
    p = draw(testing.arrays(shape, low=0.02, high=0.98))
    y = draw(testing.arrays(shape, low=0.0, high=1.0))
    return p, y


@st.composite
def logits_case(draw, one_hot):
    b, c = draw(batch), draw(st.integers(1, 5))
    z = draw(testing.arrays((b, c), low=-8, high=8))
    labels = draw(hnp.arrays(np.int64, (b,), elements=st.integers(0, c - 1)))
    y = np.eye(c)[labels] if one_hot else labels
    return z, y


@given(regression_case(), st.integers(0, 2**31))
def test_mse_gradient(case, seed):
    """MSE's gradient agrees with central differences."""
    testing.check_loss(losses.mse, *case, seed=seed)


@given(probability_case(), st.integers(0, 2**31))
def test_bce_gradient(case, seed):
    """Binary cross-entropy on probabilities: gradient agrees with central differences."""
    testing.check_loss(losses.binary_cross_entropy, *case, seed=seed)


@given(probability_case(), st.integers(0, 2**31))
def test_bce_logits_gradient_and_agreement(case, seed):
    """BCE from logits: gradient checks, and its value equals BCE of sigmoid(logits)."""
    p, y = case
    z = np.log(p / (1 - p))
    testing.check_loss(losses.binary_cross_entropy_with_logits, z, y, seed=seed)
    assert np.isclose(
        losses.binary_cross_entropy_with_logits(z, y), losses.binary_cross_entropy(p, y), rtol=1e-9
    )


@given(logits_case(one_hot=True), st.integers(0, 2**31))
def test_softmax_ce_gradient(case, seed):
    """Softmax cross-entropy with one-hot targets: gradient agrees with central differences."""
    testing.check_loss(losses.softmax_cross_entropy, *case, seed=seed)


@given(logits_case(one_hot=False), st.integers(0, 2**31))
def test_sparse_softmax_ce_gradient_and_agreement(case, seed):
    """Integer-label cross-entropy checks, and equals the one-hot version."""
    z, labels = case
    testing.check_loss(losses.sparse_softmax_cross_entropy, z, labels, seed=seed)
    onehot = np.eye(z.shape[1])[labels]
    v1, g1 = losses.sparse_softmax_cross_entropy.value_and_grad(z, labels)
    v2, g2 = losses.softmax_cross_entropy.value_and_grad(z, onehot)
    assert np.isclose(v1, v2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-15)


def _sparse_ce_reference(z, labels):
    """The sparse cross-entropy written with 2-d fancy indexing, as fnn computed it before."""
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=-1)
    rows = np.arange(z.shape[0])
    b = z.dtype.type(z.shape[0])
    value = float((np.log(total) - shifted[rows, labels]).sum(dtype=np.float64) / z.shape[0])
    e /= (total * b)[:, None]
    e[rows, labels] -= 1 / b
    return value, e


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8, np.uint64])
def test_sparse_softmax_ce_in_every_layout_and_label_dtype(layout, label_dtype):
    """Logits in C order, Fortran order or strided, with labels of any integer dtype, give
    the value and gradient of the plain 2-d indexing formula bit for bit (the flat-index
    shortcut must not lose the gradient's -1/B when the logits are not C-ordered)."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(6, 14)).astype(np.float32) * 4
    z = {"C": base[:, :7].copy(), "F": np.asfortranarray(base[:, :7]), "strided": base[:, ::2]}
    z = z[layout]
    labels = np.array([0, 6, 3, 3, 1, 5], dtype=label_dtype)
    value, grad = losses.sparse_softmax_cross_entropy.value_and_grad(z, labels)
    ref_value, ref_grad = _sparse_ce_reference(z, labels)
    assert value == ref_value
    assert grad.dtype == np.float32
    np.testing.assert_array_equal(grad, ref_grad)
    assert (grad[np.arange(6), labels.astype(np.int64)] < 0).all()  # the one-hot part is there


def test_reduction_is_mean_over_batch():
    """Doubling the batch by repetition leaves every loss unchanged (mean, not sum)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 4))
    labels = np.array([0, 3, 1])
    p = 1 / (1 + np.exp(-z))
    y = (rng.random((3, 4)) > 0.5).astype(float)
    cases = [
        (losses.mse, z, y),
        (losses.binary_cross_entropy, p, y),
        (losses.binary_cross_entropy_with_logits, z, y),
        (losses.softmax_cross_entropy, z, np.eye(4)[labels]),
        (losses.sparse_softmax_cross_entropy, z, labels),
    ]
    for fn, pred, target in cases:
        doubled = fn(np.concatenate([pred, pred]), np.concatenate([target, target]))
        assert np.isclose(fn(pred, target), doubled), fn.name


def test_hand_computed_values():
    """Values computed by hand for tiny inputs."""
    assert losses.mse(np.array([[1.0], [3.0]]), np.array([[0.0], [1.0]])) == 2.5
    assert np.isclose(
        losses.binary_cross_entropy(np.array([[0.8]]), np.array([[1.0]])), -np.log(0.8)
    )
    z = np.array([[0.0, np.log(3.0)]])
    assert np.isclose(losses.sparse_softmax_cross_entropy(z, np.array([1])), -np.log(0.75))


def test_extreme_logits_are_stable():
    """Logits of ±1000 give finite values and gradients (no overflow warnings: they are errors)."""
    z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    v, g = losses.sparse_softmax_cross_entropy.value_and_grad(z, np.array([0, 0]))
    assert np.isclose(v, 1000.0) and np.isfinite(g).all()
    v, g = losses.softmax_cross_entropy.value_and_grad(z, np.eye(2)[[1, 1]])
    assert np.isclose(v, 1000.0) and np.isfinite(g).all()
    v, g = losses.binary_cross_entropy_with_logits.value_and_grad(
        z, np.array([[0.0, 1.0], [1.0, 0.0]])
    )
    assert np.isclose(v, 1000.0) and np.isfinite(g).all()


def test_dtype_of_gradient_follows_prediction():
    """A float32 prediction with float64 or int targets gives a float32 gradient."""
    pred = np.ones((2, 3), np.float32)
    for fn, y in [
        (losses.mse, np.zeros((2, 3))),
        (losses.softmax_cross_entropy, np.eye(3)[[0, 1]]),
        (losses.sparse_softmax_cross_entropy, np.array([0, 2])),
        (losses.binary_cross_entropy_with_logits, np.zeros((2, 3), np.int64)),
    ]:
        assert fn.value_and_grad(pred, y)[1].dtype == np.float32, fn.name


@pytest.mark.parametrize(
    ("fn", "pred", "y", "err", "pattern"),
    [
        (losses.mse, np.zeros((4, 1)), np.zeros(4), ValueError, r"y.reshape\(-1, 1\)"),
        (losses.mse, np.zeros((2, 3)), np.zeros((3, 2)), ValueError, r"transposed"),
        (losses.mse, np.zeros((2, 3)), [[0.0] * 3] * 2, TypeError, r"mse: y must be a NumPy array"),
        (losses.mse, np.zeros((2, 1)), np.array([[np.nan], [0.0]]), ValueError, r"NaN"),
        (
            losses.binary_cross_entropy,
            np.full((1, 1), 2.0),
            np.ones((1, 1)),
            ValueError,
            r"with_logits",
        ),
        (
            losses.binary_cross_entropy,
            np.full((1, 1), 0.5),
            np.full((1, 1), 2.0),
            ValueError,
            r"\[0, 1\]",
        ),
        (
            losses.sparse_softmax_cross_entropy,
            np.zeros((2, 3)),
            np.array([0, 3]),
            ValueError,
            r"label 3 is out of range for 3 classes",
        ),
        (
            losses.sparse_softmax_cross_entropy,
            np.zeros((2, 3)),
            np.array([0.0, 1.0]),
            TypeError,
            r"astype\(np.int64\)",
        ),
        (
            losses.sparse_softmax_cross_entropy,
            np.zeros((2, 3)),
            np.eye(3)[[0, 1]],
            ValueError,
            r"softmax_cross_entropy for one-hot",
        ),
        (
            losses.sparse_softmax_cross_entropy,
            np.zeros((2, 3)),
            np.array([[0], [1]]),
            ValueError,
            r"y.ravel\(\)",
        ),
        (
            losses.softmax_cross_entropy,
            np.zeros((2, 3)),
            np.array([0, 1]),
            ValueError,
            r"sparse_softmax_cross_entropy",
        ),
        (losses.softmax_cross_entropy, np.zeros(3), np.zeros(3), ValueError, r"\(batch, classes\)"),
        (losses.mse, np.zeros((2, 1), np.int64), np.zeros((2, 1)), TypeError, r"floating-point"),
    ],
)
def test_bad_targets_name_the_problem(fn, pred, y, err, pattern):
    """Mismatched, transposed, out-of-range, non-finite or mistyped targets raise with the fix."""
    with pytest.raises(err, match=pattern):
        fn.value_and_grad(pred, y)


# ---------------------------------------------------------------------------
# The input policy (fnn._arrays): subclasses viewed as ndarrays, masked arrays refused.

ALL_LOSSES = [
    (losses.mse, np.array([[0.2, -1.0], [3.0, 0.5]]), np.array([[0.0, 1.0], [1.0, 0.0]])),
    (losses.binary_cross_entropy, np.array([[0.2, 0.7], [0.9, 0.5]]), np.array([[0.0, 1.0], [1.0, 0.0]])),
    (losses.binary_cross_entropy_with_logits, np.array([[0.2, -1.0], [3.0, 0.5]]),
     np.array([[0.0, 1.0], [1.0, 0.0]])),
    (losses.softmax_cross_entropy, np.array([[0.2, -1.0], [3.0, 0.5]]), np.array([[0.0, 1.0], [1.0, 0.0]])),
    (losses.sparse_softmax_cross_entropy, np.array([[0.2, -1.0], [3.0, 0.5]]), np.array([1, 0])),
]


def _matrix(a):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(a)


@pytest.mark.parametrize(("fn", "pred", "y"), ALL_LOSSES, ids=lambda v: getattr(v, "name", ""))
def test_subclasses_compute_like_plain_arrays(fn, pred, y):
    """An ndarray subclass (np.matrix, a recarray view) gives exactly the value and gradient
    of the plain array, and the gradient is a plain ndarray."""
    value, grad = fn.value_and_grad(pred, y)
    y_sub = _matrix(y) if y.ndim == 2 else y.view(np.recarray)
    value2, grad2 = fn.value_and_grad(_matrix(pred), y_sub)
    assert value2 == value
    assert type(grad2) is np.ndarray
    np.testing.assert_array_equal(grad2, grad)


@pytest.mark.parametrize(("fn", "pred", "y"), ALL_LOSSES, ids=lambda v: getattr(v, "name", ""))
@pytest.mark.parametrize("which", ["pred", "y"])
def test_masked_arrays_are_refused(fn, pred, y, which):
    """A masked pred or target is a TypeError naming the loss and .filled(), even when the
    data under the mask would pass every other check."""
    mask = np.zeros(pred.shape if which == "pred" else y.shape, bool)
    mask.flat[0] = True
    args = {"pred": pred, "y": y}
    args[which] = np.ma.array(args[which], mask=mask)
    with pytest.raises(TypeError, match=rf"{fn.name}: {which} is a masked array.*\.filled"):
        fn.value_and_grad(args["pred"], args["y"])


def test_masked_label_and_masked_inf_are_never_used():
    """The cases of issue 16: a masked -1 label (once used as the last class) and a masked
    inf target (once passed the finite check) are refused, not computed with."""
    z = np.zeros((2, 3))
    with pytest.raises(TypeError, match="masked array"):
        losses.sparse_softmax_cross_entropy(z, np.ma.array([0, -1], mask=[False, True]))
    t = np.ma.array([[0.0, np.inf], [0.0, 0.0]], mask=[[False, True], [False, False]])
    with pytest.raises(TypeError, match="masked array"):
        losses.mse(np.zeros((2, 2)), t)


@pytest.mark.parametrize(("fn", "pred", "y"), ALL_LOSSES, ids=lambda v: getattr(v, "name", ""))
def test_predictions_without_values_are_refused(fn, pred, y):
    """(batch, 0) predictions (an output layer of zero units) are a ValueError naming the
    loss and the shape, not 0/0, a NumPy reduction error or a label range of '0..-1'."""
    empty = np.zeros((2, 0))
    target = np.zeros(2, np.int64) if y.ndim == 1 else np.zeros((2, 0))
    with pytest.raises(ValueError, match=rf"^{fn.name}: pred has shape \(2, 0\).*no values"):
        fn.value_and_grad(empty, target)


# ---------------------------------------------------------------------------
# At the edges of each loss's domain: the values and gradients the module docstring promises.

F32, F64 = np.float32, np.float64


@pytest.mark.parametrize("dtype", [F32, F64])
def test_mse_at_its_minimum(dtype):
    """mse at p = y: value 0, gradient exactly 0, also with one output column."""
    for shape in [(3, 2), (4, 1), (1, 1)]:
        p = np.random.default_rng(0).normal(size=shape).astype(dtype)
        value, grad = losses.mse.value_and_grad(p, p.copy())
        assert value == 0.0 and not grad.any() and grad.dtype == dtype


@pytest.mark.parametrize("dtype", [F32, F64])
def test_bce_at_probabilities_zero_and_one(dtype):
    """binary_cross_entropy at p exactly 0 and 1: right answers cost −log(1 − eps) with
    gradient ∓1/((1 − eps)N); wrong ones cost −log(eps) with gradient ∓1/(eps·N)."""
    eps = np.finfo(dtype).eps
    p = np.array([[0.0, 1.0, 0.0, 1.0]], dtype)
    y = np.array([[0.0, 1.0, 1.0, 0.0]], dtype)
    n = 4
    value, grad = losses.binary_cross_entropy.value_and_grad(p, y)
    right, wrong = -np.log1p(-eps), -np.log(eps)
    assert value == pytest.approx((2 * right + 2 * wrong) / n, rel=1e-6)
    assert wrong == pytest.approx({F32: 15.942385, F64: 36.043653}[dtype], rel=1e-6)
    expected = np.array([[1 / (1 - eps), -1 / (1 - eps), -1 / eps, 1 / eps]]) / n
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
    assert grad.dtype == dtype


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("z", [1000.0, -1000.0, 50.0])
def test_bce_with_logits_at_saturated_logits(dtype, z):
    """binary_cross_entropy_with_logits where σ saturates: right answer 0 with gradient 0,
    wrong answer |z| with gradient ±1/N, target ½ costs |z|/2 with gradient ±½/N."""
    if dtype is F64 and abs(z) == 50.0:
        pytest.skip("σ(50) is not 1 in float64")
    logits = np.array([[z, z, z]], dtype)
    right = 1.0 if z > 0 else 0.0
    y = np.array([[right, 1 - right, 0.5]], dtype)
    value, grad = losses.binary_cross_entropy_with_logits.value_and_grad(logits, y)
    assert value == pytest.approx((0 + abs(z) + abs(z) / 2) / 3, rel=1e-6)
    s = np.sign(z)
    np.testing.assert_array_equal(grad, np.array([[0.0, s, 0.5 * s]], dtype) / dtype(3))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("sparse", [False, True])
def test_softmax_cross_entropies_at_logits_of_1000(dtype, sparse):
    """At logits ±1000: all mass on the label costs exactly 0 with gradient 0; all mass on
    another class c costs z_c − z_y = 2000 with gradient +1/B at c and −1/B at the label."""
    z = np.array([[1000.0, -1000.0], [1000.0, -1000.0]], dtype)
    labels = np.array([0, 1])
    loss = losses.sparse_softmax_cross_entropy if sparse else losses.softmax_cross_entropy
    y = labels if sparse else np.eye(2, dtype=dtype)[labels]
    value, grad = loss.value_and_grad(z, y)
    assert value == 2000 / 2
    np.testing.assert_array_equal(grad, np.array([[0, 0], [0.5, -0.5]], dtype))
    value, grad = loss.value_and_grad(z[:1], y[:1])
    assert value == 0.0 and not grad.any()


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("sparse", [False, True])
def test_softmax_cross_entropies_with_one_class(dtype, sparse):
    """With one class softmax is 1: value 0, gradient 0, for any logits (±1000 included)
    and, for softmax_cross_entropy, any target in [0, 1]."""
    z = np.array([[1000.0], [-1000.0], [0.3]], dtype)
    if sparse:
        targets = [np.zeros(3, np.int64)]
        loss = losses.sparse_softmax_cross_entropy
    else:
        targets = [np.ones((3, 1), dtype), np.array([[0.5], [0.0], [1.0]], dtype)]
        loss = losses.softmax_cross_entropy
    for y in targets:
        value, grad = loss.value_and_grad(z, y)
        assert value == 0.0 and not grad.any() and grad.shape == z.shape


@pytest.mark.parametrize("dtype", [F32, F64])
def test_softmax_cross_entropies_at_a_spread_beyond_the_float_range(dtype):
    """Logits of ±finfo.max (a spread beyond the float range) give a finite value and
    gradient: the loss is the largest float, the gradient (+1/B, −1/B) as at ±1000."""
    big = np.finfo(dtype).max
    z = np.array([[big, -big]], dtype)
    for loss, y in [(losses.sparse_softmax_cross_entropy, np.array([1])),
                    (losses.softmax_cross_entropy, np.array([[0.0, 1.0]], dtype))]:
        with np.errstate(all="raise"):
            value, grad = loss.value_and_grad(z, y)
        assert value == pytest.approx(float(big), rel=1e-6)
        np.testing.assert_array_equal(grad, np.array([[1.0, -1.0]], dtype))
