"""Shape errors name the likely cause, and only a cause that fits the shapes (issue 13)."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn._diagnose import channels_first_hint, shape_hint

MLP = [fnn.Dense(10)]
CNN = [fnn.Conv2D(4, 3), fnn.ReLU(), fnn.Flatten(), fnn.Dense(10)]

# (case, layers, input_shape, x shape, the hint's pattern)
CASES = [
    ("one example, no batch axis", MLP, (784,), (784,), r"; a single example needs a batch axis: pass x\[None\]$"),
    ("transposed", MLP, (784,), (784, 8), r"; x looks transposed .*: pass x\.T$"),
    ("wrong input width, one extra column", MLP, (784,), (8, 785),
     r"takes 784 values per example but x has 785 \(785 = 784 \+ 1: is a label or index column still in x\?\); check the input width$"),
    ("wrong input width", MLP, (784,), (8, 100), r"takes 784 values per example but x has 100; check the input width$"),
    ("unflattened images into an MLP", MLP, (784,), (8, 28, 28),
     r"x holds images of 28x28 but the network takes vectors of 784 values: flatten them with "
     r"x\.reshape\(len\(x\), -1\), or make fnn\.Flatten\(\) the first layer and build the network for input_shape=\(28, 28\)$"),
    ("one unflattened image into an MLP", MLP, (784,), (28, 28), r"if it is one 28x28 image, flatten it and add a batch axis: x\.reshape\(1, -1\)$"),
    ("conv net, no channel axis", CNN, (28, 28, 1), (8, 28, 28), r"grey-scale images need a channel axis: pass x\[\.\.\., None\]"),
    ("conv net, flat vectors", CNN, (28, 28, 1), (8, 784), r"x holds flat vectors; the network takes images: pass x\.reshape\(-1, 28, 28, 1\)$"),
    ("conv net, channels first (NCHW)", CNN, (28, 28, 1), (8, 1, 28, 28), r"\(batch, channels, height, width\).*pass x\.transpose\(0, 2, 3, 1\)$"),
    ("conv net, one image without batch and channel axes", CNN, (28, 28, 1), (28, 28), r"pass x\[None, \.\.\., None\]$"),
    ("conv net, one image, no batch axis", CNN, (28, 28, 1), (28, 28, 1), r"pass x\[None\]$"),
    ("conv net, one channels-first image", CNN, (28, 28, 1), (1, 28, 28), r"pass x\.transpose\(1, 2, 0\)\[None\]$"),
    ("conv net, other channels", CNN, (28, 28, 1), (8, 28, 28, 3), r"x has 3 channels per pixel but the network takes 1"),
    ("conv net, other image size", CNN, (28, 28, 1), (8, 32, 32, 1), r"x holds 32x32 images but the network was built for 28x28"),
]

# Every fix a hint can suggest; each message must carry its own and no other.
FIXES = ["x[None]", "x.T", "x.reshape(len(x), -1)", "x.reshape(1, -1)", "x[..., None]",
         "x.reshape(-1, 28, 28, 1)", "x.transpose(0, 2, 3, 1)", "x[None, ..., None]",
         "x.transpose(1, 2, 0)[None]", "check the input width", "Flatten()", "batch axis comes first"]


@pytest.mark.parametrize(("case", "layers", "input_shape", "shape", "pattern"), CASES,
                         ids=[c[0] for c in CASES])
def test_forward_names_the_cause(case, layers, input_shape, shape, pattern):
    """fnn.forward's shape error states both shapes and the cause that fits this case."""
    net = fnn.init(layers, input_shape, key=0)
    with pytest.raises(ValueError, match=r"^fnn\.forward: x has shape .* but the network takes \(batch, ") as info:
        fnn.forward(net, np.zeros(shape, np.float32))
    message = str(info.value)
    assert re.search(pattern, message), message


@pytest.mark.parametrize(("case", "layers", "input_shape", "shape", "pattern"), CASES,
                         ids=[c[0] for c in CASES])
def test_hints_say_only_what_fits(case, layers, input_shape, shape, pattern):
    """No message suggests a fix meant for another case (no 'the batch axis comes first'
    catch-all, no x.T for a width mismatch)."""
    net = fnn.init(layers, input_shape, key=0)
    with pytest.raises(ValueError) as info:
        fnn.forward(net, np.zeros(shape, np.float32))
    message = str(info.value).split(";", 1)[1]
    own = {f for f in FIXES if f in re.sub(r"\\", "", pattern)}
    others = [f for f in FIXES if f in message and f not in own and not any(f in o for o in own)]
    assert not others, f"{case}: {message!r} also suggests {others}"


def test_no_cause_fits_no_hint():
    """When no cause fits, the message gives the two shapes and no guess."""
    net = fnn.init(CNN, (28, 28, 1), key=0)
    with pytest.raises(ValueError, match=r"x has shape \(8, 5, 7\) but the network takes \(batch, 28, 28, 1\)$"):
        fnn.forward(net, np.zeros((8, 5, 7), np.float32))


@pytest.mark.parametrize("layer", [fnn.Conv2D(8, 3), fnn.MaxPool2D(2)], ids=lambda layer: type(layer).__name__)
def test_channels_first_input_shape_at_init(layer):
    """init with input shape (1, 28, 28) says input shapes are (height, width, channels) and
    gives (28, 28, 1); the layer's name appears once in its own message."""
    with pytest.raises(ValueError) as info:
        layer.init(0, (1, 28, 28), np.dtype(np.float32))
    message = str(info.value)
    assert re.search(r"input shapes are \(height, width, channels\) without the batch axis, and "
                     r"\(1, 28, 28\) looks like \(channels, height, width\): use \(28, 28, 1\)$", message)
    assert message.count(layer.name) == 1
    with pytest.raises(ValueError, match=r"layers\[0\].*use \(28, 28, 1\)$"):
        fnn.init([layer], (1, 28, 28), key=0)


def test_kernel_too_large_without_channels_first_keeps_the_padding_advice():
    """A kernel larger than a (height, width, channels) input is not blamed on the layout."""
    with pytest.raises(ValueError, match=r"larger than the padded input 5x5; use padding='same'"):
        fnn.init([fnn.Conv2D(2, 7)], (5, 5, 1), key=0)


def test_layer_and_dataset_contexts():
    """A layer's hint also blames the layer before it; a data set's hint blames the data set."""
    assert shape_hint((784,), (8, 100), "layer").endswith("check the input width or the layer before this one")
    assert shape_hint((784,), (8, 28, 28), "layer").endswith("put fnn.Flatten() before this layer")
    assert re.fullmatch(r"this data set's examples have shape \(2,\) but the model was built for \(784,\); "
                        r"was it trained on another data set\? .*", shape_hint((784,), (100, 2), "dataset"))
    assert shape_hint((784,), (100, 784), "dataset") == ""


def test_channels_first_hint_only_for_channels_first_shapes():
    """Only a small first axis followed by two larger ones reads as channels first."""
    assert channels_first_hint((3, 32, 32)).endswith("use (32, 32, 3)")
    for shape in [(28, 28, 1), (32, 32, 3), (784,), (4, 4, 4), (1, 2, 2)]:
        assert channels_first_hint(shape) == ""


_CALL = r"\((?:[^()]|\([^()]*\))*\)"  # an argument list, one level of nested parentheses
_FIX = re.compile(rf"x(?:\.T\b|\.reshape{_CALL}|\.transpose{_CALL}|\[[^\]]*\])+")
_SHAPES = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


@given(expected=_SHAPES, got=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple))
def test_every_suggested_expression_makes_x_fit(expected, got):
    """Property: for any shapes, a fit gives no hint, and every expression a hint suggests
    (x[None], x.T, x.reshape(...), x.transpose(...), ...) turns x into (batch, *expected)."""
    hint = shape_hint(expected, got)
    if got[1:] == expected:
        assert hint == ""
    for expr in _FIX.findall(hint):
        fixed = eval(expr, {"len": len}, {"x": np.zeros(got)})
        assert fixed.shape[1:] == expected, (expected, got, hint, expr)
