"""Tests of fnn.network: init, forward, loss, grad, sgd_step and summary as pure functions."""

import io

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import losses, testing, tree


def mlp(dtype=np.float32, key=0):
    return fnn.init([fnn.Dense(4), fnn.ReLU(), fnn.Dense(3)], (5,), key=key, dtype=dtype)


@st.composite
def network_case(draw):
    net = draw(testing.networks())
    b = draw(testing.batch_sizes())
    x = draw(testing.arrays((b, *net.input_shape)))
    y = draw(testing.arrays((b, *net.output_shape)))
    return net, x, y


@given(network_case(), st.integers(0, 2**31))
def test_network_gradient_matches_finite_differences(case, seed):
    """fnn.grad of a random MLP under MSE agrees with central differences of fnn.loss."""
    net, x, y = case
    testing.check_network(net, x, y, losses.mse, seed=seed)


@given(network_case(), st.integers(0, 2**31))
def test_classifier_gradient_matches_finite_differences(case, seed):
    """fnn.grad under integer-label softmax cross-entropy agrees with finite differences."""
    net, x, _ = case
    classes = net.output_shape[0]
    labels = np.random.default_rng(seed).integers(0, classes, size=x.shape[0])
    testing.check_network(net, x, labels, losses.sparse_softmax_cross_entropy, seed=seed)


@given(network_case())
def test_shapes_and_gradient_structure(case):
    """forward gives (batch, *output_shape); grad has the structure and dtypes of the network."""
    net, x, y = case
    assert fnn.forward(net, x).shape == (x.shape[0], *net.output_shape)
    g = fnn.grad(net, x, y, losses.mse)
    tree.check_same_structure(net, g)
    assert isinstance(g, fnn.Network)
    assert all(a.dtype == b.dtype for a, b in zip(tree.leaves(net), tree.leaves(g), strict=True))


@given(network_case(), st.floats(1e-3, 1.0))
def test_training_functions_are_pure(case, lr):
    """init/forward/grad/sgd_step mutate nothing, and every array they return is read-only."""
    net, x, y = case
    before = [a.copy() for a in tree.leaves(net)]
    x0, y0 = x.copy(), y.copy()
    g = fnn.grad(net, x, y, losses.mse)
    new = fnn.sgd_step(net, g, lr)
    fnn.forward(new, x)
    for a, b in zip(before, tree.leaves(net), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    for t in (net, g, new):
        assert all(not a.flags.writeable for a in tree.leaves(t))


def test_sgd_step_is_theta_minus_lr_grad():
    """sgd_step computes θ − lr·g leaf by leaf and keeps float32."""
    net = mlp()
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    g = fnn.grad(net, x, y, losses.mse)
    new = fnn.sgd_step(net, g, 0.5)
    expected = net.layers[0].w - np.float32(0.5) * g.layers[0].w
    np.testing.assert_array_equal(new.layers[0].w, expected)
    assert new.layers[0].w.dtype == np.float32
    assert fnn.loss(new, x, y, losses.mse) < fnn.loss(net, x, y, losses.mse)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_step_with_a_subnormal_step_does_not_raise_for_underflow(dtype):
    """Under np.errstate(all='raise') a finite lr so small that lr·g underflows (5e-324) is no
    error: the step is flushed to 0 and the parameters come back unchanged."""
    net = fnn.init([fnn.Dense(2)], (3,), key=0, dtype=dtype)
    g = tree.map(lambda a: np.full_like(a, 0.5), net)
    with np.errstate(all="raise"):
        new = fnn.sgd_step(net, g, 5e-324)
    assert tree.allclose(new, net, rtol=0, atol=0)


def test_same_key_same_network_different_key_different_network():
    """init is deterministic in its key."""
    assert tree.allclose(mlp(key=3), mlp(key=3), rtol=0)
    assert not tree.allclose(mlp(key=3), mlp(key=4))


def test_float32_network_never_computes_in_float64():
    """float64 or integer inputs are cast at the boundary; outputs and grads are float32."""
    net = mlp()
    x64 = np.random.default_rng(0).normal(size=(2, 5))
    assert fnn.forward(net, x64).dtype == np.float32
    assert fnn.forward(net, np.ones((2, 5), np.uint8)).dtype == np.float32
    g = fnn.grad(net, x64, np.zeros((2, 3)), losses.mse)
    assert {a.dtype for a in tree.leaves(g)} == {np.dtype(np.float32)}


def test_parameters_are_read_only():
    """Assigning into a parameter array raises instead of corrupting a shared value."""
    net = mlp()
    with pytest.raises(ValueError, match="read-only"):
        net.layers[0].w[0, 0] = 1.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        net.layers[0].w = None


def test_activations_returns_every_layer_output():
    """activations gives the cast input and each layer's output, the last equal to forward."""
    net = mlp()
    x = np.ones((2, 5))
    outs = fnn.activations(net, x)
    assert len(outs) == len(net.layers) + 1
    assert [o.shape[1:] for o in outs] == [(5,), (4,), (4,), (3,)]
    np.testing.assert_array_equal(outs[-1], fnn.forward(net, x))


def test_summary_counts_parameters():
    """summary lists every layer and counts weights and biases (5·4+4 + 4·3+3 = 39)."""
    text = fnn.summary(mlp(), quiet=True)
    assert "Dense(units=4)" in text and "ReLU" in text and "(None, 3)" in text
    assert "parameters: 39 (39 trainable, 0 non-trainable), 156 bytes" in text
    buf = io.StringIO()
    fnn.summary(mlp(), file=buf)
    assert buf.getvalue().strip() == text


def test_check_finite_names_the_layer():
    """A non-finite activation is reported with the layer path and the pass."""
    net = fnn.init([fnn.Dense(2), fnn.Dense(1)], (1,), key=0, dtype=np.float64)
    big = attrs.evolve(net.layers[0], w=np.full((1, 2), 1e308))
    net = attrs.evolve(net, layers=(big, net.layers[1]))
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(
            FloatingPointError, match=r"forward pass at layers\[0\] \(Dense\(units=2\)\)"
        ),
    ):
        fnn.value_and_grad(
            net, np.full((1, 1), 10.0), np.zeros((1, 1)), losses.mse, check_finite=True
        )


def test_xor_trains_to_within_a_tenth():
    """The tutorial XOR network (2-3-1, tanh, sigmoid, log-loss) learns XOR with plain SGD."""
    net = fnn.init([fnn.Dense(3), fnn.Tanh(), fnn.Dense(1), fnn.Sigmoid()], (2,), key=0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    for _ in range(2000):
        net = fnn.sgd_step(net, fnn.grad(net, x, y, losses.binary_cross_entropy), 1.0)
    assert np.abs(fnn.forward(net, x) - y).max() < 0.1


@pytest.mark.parametrize(
    ("x", "err", "pattern"),
    [
        (np.zeros((4, 2)), ValueError, r"x has shape \(4, 2\) but the network takes \(batch, 5\)"),
        (np.zeros(5), ValueError, r"x\[None\]"),
        (np.zeros((5, 3)), ValueError, r"x.T"),
        ([[0.0] * 5], TypeError, r"must be a NumPy array"),
        (np.zeros((1, 5), complex), TypeError, r"real numbers"),
        (np.array([[np.nan, 0, 0, 0, 0]]), ValueError, r"NaN or inf"),
        (np.zeros((0, 5)), ValueError, r"empty batch"),
    ],
)
def test_bad_inputs(x, err, pattern):
    """Wrong width, rank, orientation, kind, dtype, NaN or empty batch: a clear error."""
    with pytest.raises(err, match=r"^fnn.forward: ") as info:
        fnn.forward(mlp(), x)
    info.match(pattern)


def test_label_errors_reach_the_user():
    """An out-of-range label through fnn.grad names the loss, the label and the class count."""
    with pytest.raises(ValueError, match="label 7 is out of range for 3 classes"):
        fnn.grad(mlp(), np.zeros((2, 5)), np.array([0, 7]), losses.sparse_softmax_cross_entropy)


def test_bad_arguments():
    """Bad layers, shapes, dtypes, learning rates, losses and networks raise with the fix."""
    with pytest.raises(TypeError, match=r"layers\[1\] is str"):
        fnn.init([fnn.Dense(2), "relu"], (3,), key=0)
    with pytest.raises(ValueError, match="input_shape must be a tuple of positive ints"):
        fnn.init([fnn.Dense(2)], (0,), key=0)
    with pytest.raises(TypeError, match="dtype must be floating"):
        fnn.init([fnn.Dense(2)], (3,), key=0, dtype=np.int32)
    with pytest.raises(ValueError, match=r"fnn.init: layers\[0\] \(Dense\(units=2\)\): .*Flatten"):
        fnn.init([fnn.Dense(2)], (3, 3, 1), key=0)
    with pytest.raises(TypeError, match="key must be"):
        fnn.init([fnn.Dense(2)], (3,), key="seed")
    net = mlp()
    g = fnn.grad(net, np.zeros((1, 5)), np.zeros((1, 3)), losses.mse)
    for lr, err in [
        (0.0, ValueError),
        (-1.0, ValueError),
        (float("nan"), ValueError),
        ("1", TypeError),
    ]:
        with pytest.raises(err, match="lr must be"):
            fnn.sgd_step(net, g, lr)
    with pytest.raises(TypeError, match=r"fnn\.losses\.Loss"):
        fnn.grad(net, np.zeros((1, 5)), np.zeros((1, 3)), lambda p, y: 0.0)
    with pytest.raises(TypeError, match=r"expected an fnn\.Network"):
        fnn.forward([net.layers], np.zeros((1, 5)))
    other = fnn.init([fnn.Dense(4), fnn.ReLU(), fnn.Dense(2)], (5,), key=0)
    g2 = fnn.grad(other, np.zeros((1, 5)), np.zeros((1, 2)), losses.mse)
    with pytest.raises(ValueError, match=r"layers\[2\]\.w: shape \(4, 3\) vs shape \(4, 2\)"):
        fnn.sgd_step(net, g2, 0.1)


def conv_residual_net(dtype=np.float32):
    block = fnn.Residual([fnn.Conv2D(3, 3, padding="same"), fnn.BatchNorm(), fnn.ReLU()])
    layers = [fnn.Conv2D(3, 3, padding="same"), block, fnn.MaxPool2D(2), fnn.Flatten(),
              fnn.Dense(4), fnn.Tanh(), fnn.Dense(2)]
    return fnn.init(layers, (6, 6, 2), key=3, dtype=dtype)


@given(st.one_of(testing.networks(), st.just(conv_residual_net())), st.data())
def test_slices_compose_to_the_network_bit_for_bit(net, data):
    """net[a:b] is a Network of those layers whose input shape is what the layers before give;
    forward(net[k:], forward(net[:k], x)) equals forward(net, x) bit for bit."""
    n = len(net.layers)
    x = np.random.default_rng(data.draw(st.integers(0, 99))).normal(
        size=(data.draw(testing.batch_sizes()), *net.input_shape)).astype(net.dtype)
    k = data.draw(st.integers(1, n - 1)) if n > 1 else None
    if k is None:
        assert net[:].layers == net.layers
        return
    head, tail = net[:k], net[k:]
    assert head.layers == net.layers[:k] and tail.layers == net.layers[k:]
    assert tail.input_shape == head.output_shape and tail.dtype == net.dtype
    np.testing.assert_array_equal(fnn.forward(tail, fnn.forward(head, x)), fnn.forward(net, x))
    j = data.draw(st.integers(k, n))
    mid = net[k:j] if j > k else None
    if mid is not None:
        np.testing.assert_array_equal(
            fnn.forward(net[j:], fnn.forward(mid, fnn.forward(head, x))) if j < n
            else fnn.forward(mid, fnn.forward(head, x)),
            fnn.forward(net, x))


def test_indexing_a_network():
    """net[i] is layer i (negative from the end), len and iteration give the top-level layers,
    and a path string gives the layer or array there."""
    net = conv_residual_net()
    assert net[0] is net.layers[0] and net[-1] is net.layers[-1] and len(net) == 7
    assert list(net) == list(net.layers)
    assert net["layers[1].body.layers[1]"] is net.layers[1].body.layers[1]
    assert net["layers[1].body.layers[0].w"] is net.layers[1].body.layers[0].w
    assert net[-3:].input_shape == (27,) and net[1:3].output_shape == (3, 3, 3)


@pytest.mark.parametrize(
    ("index", "err", "pattern"),
    [
        (7, ValueError, r"Network: layers\[7\] is out of range: layers holds 7 items"),
        (-8, ValueError, r"layers\[-8\] is out of range"),
        (slice(0, 9), ValueError, r"slice stop 9 is out of range for a network of 7 layers"),
        (slice(-9, None), ValueError, r"slice start -9 is out of range"),
        (slice(3, 3), ValueError, r"the slice \[3:3\] selects no layers of the 7"),
        (slice(5, 2), ValueError, r"selects no layers"),
        (slice(None, None, 2), ValueError, r"consecutive layers, got step 2"),
        (slice(0.5, None), TypeError, r"slice bounds must be ints"),
        (1.0, TypeError, r"index with an int"),
        (True, TypeError, r"index with an int"),
        ("layers[1].tail", ValueError, r"layers\[1\] \(Residual\) has no field 'tail'"),
        ("layers[1].body.layers[5]", ValueError,
         r"layers\[1\]\.body\.layers\[5\] is out of range: layers\[1\]\.body\.layers holds 3"),
        ("layers[0].w[0]", ValueError, r"layers\[0\]\.w is ndarray, which has no numbered"),
        ("1", ValueError, r"cannot read the path '1'"),
        ("", ValueError, r"the path is empty"),
    ],
)
def test_bad_indexes_name_the_range(index, err, pattern):
    """Out-of-range indexes, slices and paths, empty slices and steps: a clear error."""
    with pytest.raises(err, match=pattern):
        conv_residual_net()[index]


def test_activations_by_path_reach_inside_containers():
    """activations keeps its tuple (input, then each top-level layer) and maps every path,
    nested layers included, to its output."""
    net = conv_residual_net(np.float64)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2))
    acts = fnn.activations(net, x)
    assert isinstance(acts, tuple) and len(acts) == len(net.layers) + 1
    np.testing.assert_array_equal(acts[-1], fnn.forward(net, x))
    assert acts.by_path["input"] is acts[0] and acts.by_path["layers[6]"] is acts[-1]
    h = acts.by_path["layers[0]"]
    conv = net["layers[1].body.layers[0]"]
    np.testing.assert_array_equal(acts.by_path["layers[1].body.layers[0]"], conv.forward(h))
    np.testing.assert_array_equal(
        acts.by_path["layers[1]"], acts.by_path["layers[1].body"] + h)
    assert list(acts.by_path)[:6] == [
        "input", "layers[0]", "layers[1].body.layers[0]", "layers[1].body.layers[1]",
        "layers[1].body.layers[2]", "layers[1].body"]


# issue 12 item 5: the hot path trusts a pullback only where its result is right by
# construction; everywhere else value_and_grad still checks what the pullback returned.


def _mlp_with_bias(b):
    net = fnn.init([fnn.Dense(3), fnn.ReLU(), fnn.Dense(2)], (4,), key=0, dtype=np.float64)
    return attrs.evolve(net, layers=(*net.layers[:2], attrs.evolve(net.layers[2], b=b)))


@pytest.mark.parametrize(
    ("b", "err", "pattern"),
    [
        (np.zeros(1), ValueError, r"layers\[2\] \(Dense\(units=2\)\).*gradient of b with shape "
         r"\(2,\) but b has shape \(1,\)"),
        (np.zeros(2, np.float32), TypeError, r"layers\[2\].*gradient of b with dtype float64 "
         r"but b is float32"),
    ],
)
def test_a_dense_whose_bias_does_not_fit_w_is_still_checked(b, err, pattern):
    """A Dense built by hand with a bias that broadcasts but is not (d_out,) of w's dtype
    gets no trust: value_and_grad names the wrong gradient as it always did."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 2, size=5)
    with pytest.raises(err, match=pattern):
        fnn.value_and_grad(_mlp_with_bias(b), x, y, losses.sparse_softmax_cross_entropy)


@attrs.frozen(eq=False)
class _LeakyByHand(fnn.ReLU):
    """A ReLU subclass that changes the math: it must take the general short-form path."""

    def _f(self, x):
        return np.where(x > 0, x, 0.5 * x)

    def _df(self, x, y):
        return np.where(x > 0, 1.0, 0.5)


def test_a_relu_subclass_takes_the_general_path():
    """ReLU's direct vjp serves ReLU itself only: a subclass that changes _f/_df gets its
    own math, checked against finite differences."""
    layer = _LeakyByHand()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4))
    x += np.sign(x) * 0.1  # away from the kink at 0
    y, pullback = layer.vjp(x)
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0.5 * x))
    dy = rng.normal(size=(3, 4))
    np.testing.assert_array_equal(pullback(dy)[1], dy * np.where(x > 0, 1.0, 0.5))
    testing.check_layer(layer, x)
