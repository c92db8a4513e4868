"""Tests of fnn.layers._base: the short layer form (apply/backward) and check_pullback.

A layer written as its math (``apply`` and ``backward``) gets fnn's checks and messages from
the base class; a wrong-shaped gradient from any pullback is caught where it is made.
"""

from typing import ClassVar

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import testing
from fnn.layers import Layer, check_pullback, param_field
from fnn.layers.activations import sigmoid
from fnn.random import as_key, generator


@attrs.frozen(eq=False)
class Swish(Layer):
    """y = x · σ(βx) with a learnable β per feature, in the short form."""

    beta: np.ndarray | None = param_field()

    def init(self, key, in_shape, dtype):
        return attrs.evolve(self, beta=np.ones(in_shape[-1], dtype)), in_shape

    def apply(self, x):
        return x * sigmoid(self.beta * x)

    def backward(self, x, y, dy):
        s = sigmoid(self.beta * x)
        ds = s * (1 - s)
        dbeta = (dy * x * x * ds).sum(axis=tuple(range(x.ndim - 1)))
        return {"beta": dbeta}, dy * (s + self.beta * x * ds)


@attrs.frozen(eq=False)
class NoisyScale(Layer):
    """y = x · (1 + 0.1·n) with n ~ N(0, 1) drawn from the key in training mode."""

    stochastic: ClassVar[bool] = True

    def noise(self, x, key, training):
        if not training:
            return np.ones_like(x)
        return 1 + 0.1 * generator(as_key(key, self.name)).standard_normal(x.shape)

    def apply(self, x, *, key, training):
        return x * self.noise(x, key, training)

    def backward(self, x, y, dy, *, key, training):
        return {}, dy * self.noise(x, key, training)


def built_swish(seed, d):
    layer, _ = Swish().init(0, (d,), np.dtype(np.float64))
    return attrs.evolve(layer, beta=np.random.default_rng(seed).normal(size=d))


@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**31), st.integers(0, 2**31))
def test_short_form_gradient_matches_finite_differences(d, batch, seed, check_seed):
    """A layer written as apply + backward passes the gradient check for x and β."""
    layer = built_swish(seed, d)
    x = np.random.default_rng(seed + 1).normal(size=(batch, d))
    testing.check_layer(layer, x, seed=check_seed)


def test_short_form_works_in_a_network_with_need_dx():
    """In a network (first layer: need_dx=False, dx dropped) and at every other position the
    short form's gradient matches finite differences of the loss."""
    net = fnn.init([Swish(), fnn.Dense(3), Swish(), fnn.Dense(2)], (3,), key=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    testing.check_network(net, x, y, fnn.losses.mse)
    _, pullback = net.layers[0].vjp(x, need_dx=False)
    dlayer, dx = pullback(rng.normal(size=(4, 3)))
    assert dx is None and dlayer.beta.shape == (3,) and not dlayer.beta.flags.writeable


def test_short_form_gets_keys_and_training_only_if_it_asks():
    """apply/backward declaring key and training receive them; the same key gives the same
    output; evaluation mode needs no key; the gradient uses the forward's noise."""
    layer = NoisyScale()
    x = np.random.default_rng(0).normal(size=(3, 4))
    y1 = layer.forward(x, key=1, training=True)
    np.testing.assert_array_equal(y1, layer.forward(x, key=1, training=True))
    assert not np.array_equal(y1, layer.forward(x, key=2, training=True))
    np.testing.assert_array_equal(layer.forward(x), x)
    testing.check_layer(layer, x, key=5, training=True)
    net = fnn.init([fnn.Dense(4), NoisyScale()], (2,), key=0)
    with pytest.raises(ValueError, match=r"layers\[1\] \(NoisyScale\) is random in training mode"):
        fnn.forward(net, np.zeros((1, 2)), training=True)


@pytest.mark.parametrize(
    ("x", "err", "pattern"),
    [
        ([[1.0, 2.0]], TypeError, r"^Swish: x must be a NumPy array of shape \(batch, \.\.\.\)"),
        (np.ones((2, 2), np.int64), TypeError, r"^Swish: x must be a floating-point array"),
        (np.ones((2, 2), np.float32), TypeError,
         r"^Swish: x has dtype float32 but the layer's parameters are float64"),
        (np.array(1.0), ValueError, r"^Swish: x needs a batch axis; got a 0-d array, pass x\[None\]"),
    ],
)
def test_short_form_gets_fnns_input_checks(x, err, pattern):
    """A user's short-form layer refuses bad input with fnn's own messages."""
    with pytest.raises(err, match=pattern):
        built_swish(0, 2).forward(x)
    with pytest.raises(err, match=pattern):
        built_swish(0, 2).vjp(x)


def test_short_form_checks_built_and_cotangent():
    """An unbuilt short-form layer says how to build it; dy must match the output."""
    with pytest.raises(ValueError, match=r"^Swish: parameters are not initialised; .*fnn\.init"):
        Swish().forward(np.ones((1, 2)))
    _, pullback = built_swish(0, 2).vjp(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"^Swish: dy has shape \(3, 3\), expected \(3, 2\)"):
        pullback(np.ones((3, 3)))
    with pytest.raises(TypeError, match=r"^Swish: dy must be a float64 NumPy array"):
        pullback([[1.0, 1.0]] * 3)


def bad_layer(apply=None, backward=None, **attrs_kw):
    """A short-form layer class with the given apply/backward."""
    namespace = {"w": param_field()}
    if apply is not None:
        namespace["apply"] = apply
    if backward is not None:
        namespace["backward"] = backward
    cls = attrs.frozen(eq=False)(type("Bad", (Layer,), namespace))
    return cls(w=np.ones(3))


def ok_apply(self, x):
    return x * self.w


@pytest.mark.parametrize(
    ("backward", "err", "pattern"),
    [
        (lambda self, x, y, dy: ({"w": dy * x}, dy * self.w), ValueError,
         r"^Bad: backward returned a gradient of w with shape \(4, 3\) but w has shape \(3,\); "
         r"did you forget to sum over the batch axis\? \(\.sum\(axis=0\)\)"),
        (lambda self, x, y, dy: ({}, dy * self.w), ValueError,
         r"backward returned no gradient for \['w'\]; return \{'w': dL/dw\}"),
        (lambda self, x, y, dy: ({"w": (dy * x).sum(0), "v": dy}, dy), ValueError,
         r"gradients for \['v'\], which are not parameter fields of Bad \(those are \['w'\]\)"),
        (lambda self, x, y, dy: dy * self.w, TypeError, r"backward must return \(grads, dx\)"),
        (lambda self, x, y, dy: ([dy], dy), TypeError, r"grads a dict of parameter gradients"),
        (lambda self, x, y, dy: ({"w": (dy * x).sum(0)}, dy.sum(0)), ValueError,
         r"backward returned dx of shape \(3,\) but x has shape \(4, 3\)"),
        (lambda self, x, y, dy: ({"w": (dy * x).sum(0)}, None), TypeError,
         r"backward returned NoneType as dx although the caller needs it"),
        (lambda self, x, y, dy: ({"w": (dy * x).sum(0).astype(np.float32)}, dy), TypeError,
         r"gradient of w with dtype float32 but w is float64"),
    ],
)
def test_short_form_backward_mistakes_are_caught_where_they_happen(backward, err, pattern):
    """A backward that forgets the batch sum, a gradient, or returns the wrong thing is
    refused by the pullback itself, naming the layer, the parameter and the shapes."""
    layer = bad_layer(ok_apply, backward)
    _, pullback = layer.vjp(np.ones((4, 3)))
    with pytest.raises(err, match=pattern):
        pullback(np.random.default_rng(0).normal(size=(4, 3)))


def test_short_form_apply_must_keep_its_promises():
    """apply must return an array of the input's dtype and of the promised output shape."""
    wide = bad_layer(lambda self, x: np.concatenate([x, x], axis=1))
    with pytest.raises(ValueError, match=r"apply returned shape \(2, 6\) for x of shape \(2, 3\), "
                                         r"but output_shape promises \(2, 3\)"):
        wide.forward(np.ones((2, 3)))
    cast = bad_layer(lambda self, x: x.astype(np.float32))
    with pytest.raises(TypeError, match=r"apply returned dtype float32 for a float64 input"):
        cast.forward(np.ones((2, 3)))


def test_a_layer_without_forward_math_says_what_to_write():
    """A layer defining neither form raises NotImplementedError naming both ways."""
    with pytest.raises(NotImplementedError, match=r"define apply\(x\) and backward"):
        bad_layer().vjp(np.ones((1, 3)))
    with pytest.raises(NotImplementedError, match=r"define backward\(x, y, dy\)"):
        bad_layer(ok_apply).vjp(np.ones((1, 3)))
    assert bad_layer(ok_apply).forward(np.ones((1, 3))).shape == (1, 3)


@attrs.frozen(eq=False)
class SumlessDense(fnn.Dense):
    """A full-protocol Dense whose pullback forgets to sum dL/db over the batch."""

    def vjp(self, x, *, key=None, training=False, need_dx=True):
        y, pullback = super().vjp(x, key=key, training=training, need_dx=need_dx)
        return y, lambda dy: (attrs.evolve(pullback(dy)[0], b=dy), pullback(dy)[1])


def test_wrong_gradient_from_a_full_protocol_layer_is_caught_by_the_network():
    """value_and_grad refuses a pullback's wrong-shaped gradient at once (not at sgd_step),
    naming the layer path, the parameter, both shapes and the missing batch sum."""
    net = fnn.init([fnn.Dense(3), fnn.Tanh(), SumlessDense(2)], (4,), key=0)
    x, y = np.zeros((5, 4), np.float32), np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match=r"^fnn\.value_and_grad: layers\[2\] \(Dense\(units=2\)\): "
                                         r"the pullback returned a gradient of b with shape \(5, 2\) "
                                         r"but b has shape \(2,\); did you forget to sum over the "
                                         r"batch axis\?"):
        fnn.value_and_grad(net, x, y, fnn.losses.mse)


def test_check_pullback_hints():
    """check_pullback: the batch-sum hint for extra leading axes, the transpose hint for a
    transposed matrix, and the class check."""
    layer, _ = fnn.Dense(3).init(0, (2,), np.dtype(np.float64))
    x = np.ones((4, 2))
    good = layer.zero_grad_like(w=np.ones((2, 3)), b=np.ones(3))
    check_pullback(layer, good, np.ones((4, 2)), x, True)
    check_pullback(layer, good, None, x, False)
    with pytest.raises(ValueError, match=r"is it transposed\?"):
        check_pullback(layer, attrs.evolve(good, w=np.ones((3, 2))), None, x, False)
    with pytest.raises(ValueError, match=r"\.sum\(axis=\(0, 1\)\)"):
        check_pullback(layer, attrs.evolve(good, b=np.ones((4, 5, 3))), None, x, False)
    with pytest.raises(TypeError, match=r"returned a ReLU as the layer's gradient"):
        check_pullback(layer, fnn.ReLU(), None, x, False)
    with pytest.raises(TypeError, match=r"returned NoneType as the gradient of w"):
        check_pullback(layer, attrs.evolve(good, w=None), None, x, False)


def test_check_pullback_reads_dtypes_up_to_byte_order():
    """A big-endian float32 input is a float32 input (fnn's input policy reads either byte
    order), so a layer's native float32 dx for it passes check_pullback, and so does a
    big-endian dx or gradient of the right dtype; a float64 dx for it still fails."""
    layer, _ = fnn.Dense(2).init(0, (3,), np.float32)
    x = np.arange(6, dtype=">f4").reshape(2, 3)
    _, pullback = layer.vjp(x)
    dlayer, dx = pullback(np.array([[1.0, -2.0], [0.5, 3.0]], np.float32))
    assert dx.dtype == np.float32 and dx.dtype.isnative
    check_pullback(layer, dlayer, dx, x, True)
    check_pullback(layer, dlayer, dx.astype(">f4"), x.astype(np.float32), True)
    swapped = attrs.evolve(dlayer, w=dlayer.w.astype(">f4"))
    check_pullback(layer, swapped, dx, x, True)
    with pytest.raises(TypeError, match=r"dx of dtype float64 for a >f4 input"):
        check_pullback(layer, dlayer, dx.astype(np.float64), x, True)
