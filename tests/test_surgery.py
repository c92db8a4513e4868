"""Tests of fnn.surgery (replace, insert, remove) and of paths into networks.

Properties: surgery is pure; only new or shape-changed layers get new parameters; the result
fits together; bad locations and replacements raise errors naming the path and the shapes.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import testing
from fnn.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Identity,
    ReLU,
    Residual,
    Sequential,
    Tanh,
)
from fnn.random import fold_in, key


def snapshot(net):
    return [(p, a.copy()) for p, a in fnn.tree.leaves_with_path(net)]


def assert_same_arrays(net, before):
    after = snapshot(net)
    assert [p for p, _ in after] == [p for p, _ in before]
    for (p, a), (_, b) in zip(after, before, strict=True):
        assert np.array_equal(a, b), p


def image_net():
    return fnn.init(
        [
            Conv2D(4, 3, padding="same"),
            Residual([Conv2D(4, 3, padding="same"), BatchNorm(), ReLU()]),
            Flatten(),
            Dense(8),
            Tanh(),
            Dense(3),
        ],
        (5, 5, 2),
        key=0,
    )


def test_replace_the_head_initialises_only_the_new_layer():
    """A new head is initialised with fold_in(key, n), n its position among the network's
    layers in depth-first order (containers not counted); every other layer is the same
    object; the input network is unchanged; the same key gives the same bits."""
    net = image_net()
    before = snapshot(net)
    new = fnn.replace(net, 5, Dense(10), key=7)
    assert new.output_shape == (10,)
    assert all(a is b for a, b in zip(new.layers[:5], net.layers[:5], strict=True))
    n = 7  # Conv2D, then in the Residual Conv2D, BatchNorm, ReLU; Flatten, Dense, Tanh: 0..6
    expected, _ = Dense(10).init(fold_in(key(7), n), (8,), np.dtype(np.float32))
    np.testing.assert_array_equal(new.layers[5].w, expected.w)
    assert_same_arrays(net, before)
    np.testing.assert_array_equal(
        fnn.replace(net, 5, Dense(10), key=7).layers[5].w, new.layers[5].w
    )


def test_a_wider_layer_reinitialises_only_the_next_one():
    """Replacing Dense(8) by Dense(16) re-initialises the Dense after it (its weights change
    shape) and keeps every other layer, parameter-free ones included."""
    net = image_net()
    new = fnn.replace(net, "layers[3]", Dense(16), key=1)
    assert new.layers[5].w.shape == (16, 3) and net.layers[5].w.shape == (8, 3)
    for i in (0, 1, 2, 4):
        assert new.layers[i] is net.layers[i]


def test_nested_replace_keeps_the_rest_of_the_block():
    """Replacing a layer inside a Residual's body keeps its siblings and the other layers."""
    net = image_net()
    new = fnn.replace(net, "layers[1].body.layers[0]", Conv2D(4, 1), key=2)
    assert new["layers[1].body.layers[0]"].w.shape == (1, 1, 4, 4)
    assert new["layers[1].body.layers[1]"] is net["layers[1].body.layers[1]"]
    assert new.layers[3] is net.layers[3]
    x = np.random.default_rng(0).random((2, 5, 5, 2)).astype(np.float32)
    assert fnn.forward(new, x).shape == (2, 3)


def test_a_built_replacement_that_fits_keeps_its_parameters():
    """A built layer (say from another network) that fits where it goes keeps its arrays and
    needs no key; one that does not fit is refused, naming the path and both shapes."""
    net = image_net()  # layers[3] gets the 5·5·4 = 100 features of the Flatten
    donor = fnn.init([Dense(8)], (50,), key=5).layers[0]
    with pytest.raises(ValueError) as info:
        fnn.replace(net, 3, donor)
    msg = str(info.value)
    assert msg.startswith("fnn.replace: with layers[3] replaced by Dense(units=8): layers[3] ")
    assert "[('w', (50, 8)), ('b', (8,))]" in msg and "(None, 100)" in msg
    assert "[('w', (100, 8)), ('b', (8,))]" in msg
    fitting = fnn.init([Dense(8)], (100,), key=9).layers[0]
    new = fnn.replace(net, 3, fitting)
    assert new.layers[3] is fitting and new.layers[5] is net.layers[5]


def test_give_a_residual_a_projection_shortcut():
    """'layers[1].shortcut' names the (empty) shortcut slot of a Residual."""
    net = image_net()
    new = fnn.replace(net, "layers[1].shortcut", Conv2D(4, 1), key=0)
    assert new.layers[1].shortcut.w.shape == (1, 1, 4, 4)
    assert net.layers[1].shortcut is None


def test_insert_and_remove():
    """insert puts a layer before an index (or into a nested list); remove takes one out;
    parameter-free changes need no key and keep every array."""
    net = image_net()
    with_relu = fnn.insert(net, 4, ReLU())
    assert [type(layer).__name__ for layer in with_relu.layers][3:6] == ["Dense", "ReLU", "Tanh"]
    assert all(a is b for a, b in zip(with_relu.layers[:4], net.layers[:4], strict=True))
    appended = fnn.insert(net, len(net.layers), Tanh())
    assert isinstance(appended.layers[-1], Tanh)
    nested = fnn.insert(net, "layers[1].body.layers[3]", Conv2D(4, 1), key=3)
    assert len(nested.layers[1].body.layers) == 4 and len(net.layers[1].body.layers) == 3
    back = fnn.remove(with_relu, 4)
    x = np.random.default_rng(1).random((2, 5, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(fnn.forward(back, x), fnn.forward(net, x))
    shorter = fnn.remove(net, "layers[1].body.layers[2]")
    assert len(shorter.layers[1].body.layers) == 2


def test_remove_that_changes_a_shape_needs_a_key():
    """Removing the layer that sets a width re-initialises the layer after it, with a key."""
    net = fnn.init([Dense(6), Dense(4), Dense(2)], (3,), key=0)
    with pytest.raises(ValueError, match=r"layers\[1\] \(Dense\(units=2\)\): needs "
                                         r"\(re\)initialising for its input \(None, 6\); pass key="):
        fnn.remove(net, 1)
    new = fnn.remove(net, 1, key=4)
    assert new.layers[1].w.shape == (6, 2) and new.layers[0] is net.layers[0]


@given(testing.networks(max_layers=4), st.data())
def test_surgery_properties_on_generated_networks(net, data):
    """Inserting an Identity anywhere leaves the output bit-identical and every array the same
    object; removing it again gives the original layers; replacing a Dense by a fresh one of
    the same width keeps every other layer and the output shape."""
    x = np.random.default_rng(0).normal(size=(3, *net.input_shape))
    i = data.draw(st.integers(0, len(net.layers)))
    with_id = fnn.insert(net, i, Identity())
    np.testing.assert_array_equal(fnn.forward(with_id, x), fnn.forward(net, x))
    back = fnn.remove(with_id, i)
    assert all(a is b for a, b in zip(back.layers, net.layers, strict=True))
    dense = [j for j, layer in enumerate(net.layers) if isinstance(layer, Dense)]
    j = data.draw(st.sampled_from(dense))
    new = fnn.replace(net, j, Dense(net.layers[j].units), key=data.draw(st.integers(0, 99)))
    assert new.output_shape == net.output_shape
    assert all(a is b for k, (a, b) in enumerate(zip(new.layers, net.layers, strict=True))
               if k != j)


@pytest.mark.parametrize(
    ("call", "err", "pattern"),
    [
        (lambda n: fnn.replace(n, 9, Dense(2), key=0), ValueError,
         r"fnn\.replace: layers\[9\] is out of range: layers holds 6 items"),
        (lambda n: fnn.replace(n, "layers[1].bdy", Dense(2), key=0), ValueError,
         r"layers\[1\] \(Residual\) has no field 'bdy'; its fields are body, shortcut"),
        (lambda n: fnn.replace(n, "layers[0].w", Dense(2), key=0), ValueError,
         r"layers\[0\]\.w is ndarray, not a layer"),
        (lambda n: fnn.replace(n, "layers[1]..body", Dense(2)), ValueError,
         r"cannot read the path 'layers\[1\]\.\.body'"),
        (lambda n: fnn.replace(n, 0, "relu"), TypeError, r"must be an fnn layer.*got str"),
        (lambda n: fnn.replace(n, 1.5, ReLU()), TypeError, r"a path is a string"),
        (lambda n: fnn.replace(n, 2, ReLU()), ValueError,
         r"with layers\[2\] replaced by ReLU: layers\[3\] \(Dense\(units=8\)\): .*"
         r"\(batch, 5, 5, 4\); put a Flatten\(\) before it"),
        (lambda n: fnn.replace(n, "layers[1].body.layers[0]", Conv2D(6, 3, padding="same"),
                               key=0), ValueError,
         r"layers\[1\] \(Residual\): the body's output \(None, 5, 5, 6\) and the identity "
         r"shortcut's \(None, 5, 5, 4\) cannot be added"),
        (lambda n: fnn.replace(n, 5, Dense(4)), ValueError, r"pass key="),
        (lambda n: fnn.replace(n, 5, Dense(4), key="k"), TypeError, r"key must be"),
        (lambda n: fnn.insert(n, 7, ReLU()), ValueError,
         r"fnn\.insert: layers\[7\] is out of range: layers holds 6 layers, so the index must "
         r"be in -6\.\.6"),
        (lambda n: fnn.insert(n, "layers[1].body", ReLU()), ValueError,
         r"layers\[1\]\.body is not a position in a list of layers"),
        (lambda n: fnn.insert(n, 0, GlobalAvgPool2D()), ValueError,
         r"with GlobalAvgPool2D inserted at layers\[0\]: layers\[1\] \(Conv2D"),
        (lambda n: fnn.remove(n, 6), ValueError, r"fnn\.remove: layers\[6\] is out of range"),
        (lambda n: fnn.remove(fnn.remove(fnn.remove(n, "layers[1].body.layers[2]"),
                                         "layers[1].body.layers[1]"), "layers[1].body.layers[0]"),
         ValueError, r"layers\[1\]\.body\.layers\[0\] is the only layer of layers\[1\]\.body"),
        (lambda n: fnn.remove([n], 0), TypeError, r"fnn\.remove: expected an fnn\.Network"),
    ],
)
def test_bad_surgery_is_refused_and_changes_nothing(call, err, pattern):
    """Bad locations, replacements and results: ValueError/TypeError naming the path and the
    shapes, and the network passed in is unchanged."""
    net = image_net()
    before = snapshot(net)
    with pytest.raises(err, match=pattern):
        call(net)
    assert_same_arrays(net, before)


def test_sequential_surgery_keeps_the_container():
    """A Sequential inside a network is edited in place of its own list."""
    net = fnn.init([Sequential([Dense(4), Tanh()]), Dense(2)], (3,), key=0)
    new = fnn.insert(net, "layers[0].layers[1]", Dense(4), key=1)
    assert [layer.name for layer in new.layers[0].layers] == [
        "Dense(units=4)", "Dense(units=4)", "Tanh"]
    assert new.layers[0].layers[0] is net.layers[0].layers[0]
    assert new.layers[1] is net.layers[1]
