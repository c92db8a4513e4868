"""fnn under NumPy's strictest floating-point settings.

The rest of the suite runs under ``np.errstate(all="raise", under="ignore")``
(tests/conftest.py). Here underflow is an error too, and every warning is an
exception, as in a user's program that sets ``np.seterr(all="raise")`` and
``-W error``. Underflow to zero is the correct IEEE 754 result (``exp(-1000)``
is 0): fnn must compute through it, never raise because of it, and give the
same bits as under NumPy's defaults. Intermediate overflow whose final result
is representable (GELU's ``x³`` at large x, softmax's shift at a huge spread)
must not surface either.
"""

import contextlib
import math
import warnings

import attrs
import numpy as np
import pytest

import fnn
from fnn import losses, metrics, optim

NUMPY_DEFAULTS = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}


@contextlib.contextmanager
def strict(mode):
    """``"raise"``: every floating-point error raises, underflow included; ``"default"``:
    NumPy's default settings. Both with warnings as errors."""
    settings = {"all": "raise"} if mode == "raise" else NUMPY_DEFAULTS
    with np.errstate(**settings), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


MODES = pytest.mark.parametrize("mode", ["raise", "default"])
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64])


def extreme_logits(dtype):
    """Rows of finite logits from ordinary to absurd: ±100 (float32 exp underflows),
    ±1000 (float64 too), ±1e30, and a spread of twice the dtype's largest value."""
    big = np.finfo(dtype).max
    return np.array(
        [[100.0, -100.0, 0.0], [-1000.0, 1000.0, 3.0], [1e30, -1e30, 0.5], [big, -big, 0.0],
         [0.0, 1e-3, -1e-3]],
        dtype=dtype,
    )


def _cotangent(y):
    return np.random.default_rng(0).uniform(-1, 1, y.shape).astype(y.dtype)


@MODES
@DTYPES
@pytest.mark.parametrize("layer", [fnn.Sigmoid(), fnn.Softmax(), fnn.GELU()], ids=lambda v: v.name)
def test_saturating_layers_compute_through_underflow(layer, dtype, mode):
    """Sigmoid, Softmax and GELU: forward, vjp and pullback at any finite input raise
    nothing and warn nothing, and give finite outputs and input gradients."""
    x = extreme_logits(dtype)
    with strict(mode):
        y = layer.forward(x)
        y2, pullback = layer.vjp(x)
        _, dx = pullback(_cotangent(y2))
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    np.testing.assert_array_equal(y, y2)


@DTYPES
def test_saturating_layers_values_at_the_edges(dtype):
    """The values at the edges are the limits: sigmoid(±1000) is exactly 1 and 0 with zero
    slope, softmax puts all mass on the largest logit, GELU(x) is x for large positive x and
    -0 for large negative x, with slopes 1 and 0 (no NaN from x³ overflowing)."""
    big = np.finfo(dtype).max
    x = np.array([[1000.0, -1000.0, 1e30, -1e30, big, -big]], dtype)
    with strict("raise"):
        s, pb = fnn.Sigmoid().vjp(x)
        ds = pb(np.ones_like(s))[1]
        g, pb = fnn.GELU().vjp(x)
        dg = pb(np.ones_like(g))[1]
        p = fnn.Softmax().forward(extreme_logits(dtype))
    assert s.tolist() == [[1, 0, 1, 0, 1, 0]]
    assert ds.tolist() == [[0, 0, 0, 0, 0, 0]]
    np.testing.assert_array_equal(g, np.where(x > 0, x, 0))
    assert dg.tolist() == [[1, 0, 1, 0, 1, 0]]
    assert p[:4].argmax(axis=1).tolist() == [0, 1, 0, 0]
    np.testing.assert_array_equal(p[:4].max(axis=1), 1)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)


def test_gelu_large_float32_inputs_do_not_warn_under_numpy_defaults():
    """The case of issue 16: GELU warned ('overflow encountered in power') on finite float32
    input around 1e13 under NumPy's default settings, and its slope there was NaN."""
    x = np.array([[1e13, -1e13, 3e38]], np.float32)
    with strict("default"):
        y, pullback = fnn.GELU().vjp(x)
        dx = pullback(np.ones_like(y))[1]
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0))
    assert dx.tolist() == [[1, 0, 1]]


def test_gelu_clipping_changes_no_value():
    """GELU evaluates tanh at a clipped argument beyond |x| = 10; tanh is already ±1 there
    to the last bit, so the clipped and unclipped formulas agree bit for bit."""
    for dtype in (np.float32, np.float64):
        x = np.linspace(-30, 30, 6001, dtype=dtype)[:, None]
        c, k = math.sqrt(2 / math.pi), 0.044715  # Python floats: computed in x's dtype
        exact = 0.5 * x * (1 + np.tanh(c * (x + k * (x * x * x))))  # fnn forms x³ as x·x·x
        np.testing.assert_array_equal(fnn.GELU().forward(x), exact)


LOSS_CASES = [
    (losses.binary_cross_entropy_with_logits, lambda z: (z > 0).astype(z.dtype)),
    (losses.binary_cross_entropy_with_logits, lambda z: (z <= 0).astype(z.dtype)),
    (losses.softmax_cross_entropy, lambda z: np.eye(3, dtype=z.dtype)[np.arange(len(z)) % 3]),
    (losses.sparse_softmax_cross_entropy, lambda z: np.arange(len(z)) % 3),
    (losses.sparse_softmax_cross_entropy, lambda z: z.argmax(axis=1)),
    (losses.mse, lambda z: np.zeros_like(z)),
]


@MODES
@DTYPES
@pytest.mark.parametrize(("loss", "target"), LOSS_CASES, ids=lambda v: getattr(v, "name", ""))
def test_losses_compute_through_underflow(loss, target, dtype, mode):
    """Every loss at logits of ±100, ±1000 and ±1e30 raises and warns nothing in either mode,
    and its value and gradient are finite. (mse stops at ±1000: a squared error of 1e60 is
    beyond float32, an honest overflow of an element's term, left to the caller's settings.)"""
    z = extreme_logits(dtype)[: 2 if loss is losses.mse else 3]
    with strict(mode):
        value, grad = loss.value_and_grad(z, target(z))
    assert np.isfinite(grad).all() and np.isfinite(value)


@MODES
def test_binary_cross_entropy_at_probabilities_zero_and_one(mode):
    """binary_cross_entropy takes probabilities exactly 0 and 1 (e.g. a float32 sigmoid that
    saturated) without raising or warning."""
    p = np.array([[0.0, 1.0, 0.0, 1.0]], np.float32)
    y = np.array([[0.0, 1.0, 1.0, 0.0]], np.float32)
    with strict(mode):
        value, grad = losses.binary_cross_entropy.value_and_grad(p, y)
    assert np.isfinite(value) and np.isfinite(grad).all()


def saturating_net(dtype=np.float32):
    """Dense(3) -> Sigmoid -> Dense(2) whose first layer is scaled so that the sigmoid sees
    logits of ±90 and ±101 on inputs of ±1: its outputs are float32 subnormals."""
    net = fnn.init([fnn.Dense(3), fnn.Sigmoid(), fnn.Dense(2)], (2,), key=0, dtype=dtype)
    w = np.array([[45.0, -45.0, 50.0], [45.0, -45.0, -51.0]], dtype)
    first = attrs.evolve(net.layers[0], w=w)
    return attrs.evolve(net, layers=(first, *net.layers[1:]))


def _data(n=16, dtype=np.float32):
    x = np.random.default_rng(0).choice([-1.0, 1.0], size=(n, 2)).astype(dtype)
    return x, (x[:, 0] > 0).astype(np.int64)


def _bits(t):
    return [a.tobytes() for a in fnn.tree.leaves(t)]


def tiny_net():
    """Dense -> Tanh -> Dense in float32 fed inputs of 1e-37: products with the weights fall
    below float32's smallest normal number in the forward and the backward pass."""
    return fnn.init([fnn.Dense(4), fnn.Tanh(), fnn.Dense(2)], (2,), key=1)


@MODES
@pytest.mark.parametrize("which", ["saturating", "tiny"])
def test_network_functions_compute_through_underflow(mode, which):
    """forward, activations, loss, grad, value_and_grad and evaluate on a network whose
    sigmoid outputs underflow: no error, no warning, and the same bits as with underflow
    ignored."""
    net, (x, y) = (saturating_net(), _data()) if which == "saturating" else (tiny_net(), _data())
    if which == "tiny":
        x = x * np.float32(1e-37)
    ce = losses.sparse_softmax_cross_entropy
    calls = {
        "forward": lambda: fnn.forward(net, x),
        "activations": lambda: fnn.activations(net, x),
        "loss": lambda: fnn.loss(net, x, y, ce),
        "grad": lambda: fnn.grad(net, x, y, ce),
        "value_and_grad": lambda: fnn.value_and_grad(net, x, y, ce, check_finite=True),
        "evaluate": lambda: fnn.evaluate(net, x, y, ce, [metrics.accuracy]),
    }
    with np.errstate(all="ignore"):
        expected = {name: call() for name, call in calls.items()}
        # The construction really underflows: subnormal sigmoid outputs, or products of the
        # inputs and the first weights below float32's smallest normal number.
        small = (fnn.activations(net, x)[2] if which == "saturating"
                 else x[:, :, None] * net.layers[0].w[None])
    small = np.abs(small)
    assert ((small > 0) & (small < np.finfo(np.float32).tiny)).any()
    for name, call in calls.items():
        with strict(mode):
            got = call()
        assert repr(got) == repr(expected[name]) and _bits(got) == _bits(expected[name]), name


@MODES
def test_fit_runs_a_saturating_net_to_the_same_bits(mode):
    """The case of issue 16: fit on a healthy network whose sigmoid saturates aborted under
    np.errstate(all='raise') claiming 'the loss is nan'. It now trains to the same bits as
    under NumPy's defaults."""
    net, data = saturating_net(), _data()

    def run():
        out, state, hist = fnn.fit(net, optim.adam(1e-2), losses.sparse_softmax_cross_entropy,
                                   data, epochs=3, key=0, batch_size=4, progress=False,
                                   metrics=[metrics.accuracy], validation=data)
        return _bits(out) + _bits(state), hist.loss

    with np.errstate(under="ignore"):
        expected = run()
    with strict(mode):
        assert run() == expected


@MODES
def test_metrics_compute_through_underflow(mode):
    """Regression metrics on differences whose squares underflow raise nothing."""
    p = np.array([[1e-200], [1.0], [2.0]])
    t = np.array([[0.0], [1.0], [2.0]])
    with strict(mode):
        assert metrics.mse(p, t) == 0.0
        assert metrics.mae(p, t) > 0
        assert metrics.r2_score(p, t) == 1.0


ACTIVATIONS = [fnn.ReLU(), fnn.LeakyReLU(), fnn.LeakyReLU(negative_slope=1e-30), fnn.ELU(),
               fnn.Tanh(), fnn.Sigmoid(), fnn.GELU(), fnn.Identity(), fnn.Softmax()]


@MODES
@DTYPES
@pytest.mark.parametrize("layer", ACTIVATIONS, ids=lambda v: v.name)
def test_every_activation_computes_through_underflow(layer, dtype, mode):
    """Every activation layer called directly, at tiny, subnormal and huge finite inputs:
    forward, vjp and pullback raise and warn nothing."""
    info = np.finfo(dtype)
    values = [info.smallest_subnormal, info.tiny, 1e-30, 1e-20, 1.0, 30.0, 1000.0, 1e30]
    x = np.array([values, [-v for v in values]], dtype)
    with strict(mode):
        layer.forward(x)
        y, pullback = layer.vjp(x)
        pullback(np.full_like(y, 0.5))
        pullback(np.full_like(y, info.tiny))
