"""Tests of fnn.plot: PNG files written, inputs left alone, clear errors for wrong input."""

import sys

import numpy as np
import pytest

import fnn

pytest.importorskip("matplotlib")

from fnn import plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 100 and data[:8] == PNG_MAGIC


@pytest.fixture
def mlp():
    return fnn.init(
        [fnn.Flatten(), fnn.Dense(20), fnn.ReLU(), fnn.Dense(6), fnn.Tanh(), fnn.Dense(3)],
        (4, 4, 1),
        key=0,
    )


@pytest.fixture
def planar():
    net = fnn.init([fnn.Dense(6), fnn.Tanh(), fnn.Dense(2)], (2,), key=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    return net, x, y


def _frozen_copy(net):
    return fnn.tree.map(np.copy, net)


def test_activations_writes_png_and_leaves_inputs_alone(tmp_path, mlp):
    """activations writes a valid PNG, returns its path, and changes neither net nor x."""
    x = np.random.default_rng(1).normal(size=(1, 4, 4, 1)).astype(np.float32)
    x_before, net_before = x.copy(), _frozen_copy(mlp)
    out = plot.activations(mlp, x, tmp_path / "a.png", max_neurons=8, output_labels="abc")
    assert out == tmp_path / "a.png"
    assert _is_png(out)
    np.testing.assert_array_equal(x, x_before)
    assert fnn.tree.allclose(mlp, net_before, rtol=0)


def test_activations_of_all_zero_input(tmp_path, mlp):
    """An input with no activity at all (every |a| = 0) still draws without dividing by 0."""
    out = plot.activations(mlp, np.zeros((1, 4, 4, 1)), str(tmp_path / "z.png"))
    assert _is_png(out)


@pytest.mark.parametrize(
    ("kwargs", "err", "pattern"),
    [
        ({"x": np.zeros((2, 4, 4, 1))}, ValueError, r"exactly one example.*x\[:1\]"),
        ({"x": np.zeros((4, 4, 1))}, ValueError, r"x\[None\]"),
        ({"x": [[0.0]]}, TypeError, "NumPy array"),
        ({"path": "a.jpg"}, ValueError, r"must end in \.png"),
        ({"path": 3}, TypeError, "path must be a file name"),
        ({"max_neurons": 0}, ValueError, "max_neurons must be a positive int"),
        ({"output_labels": ["a"]}, ValueError, "one name per output unit"),
    ],
)
def test_activations_errors(tmp_path, mlp, kwargs, err, pattern):
    """Bad arguments give the documented error naming the problem and the fix."""
    args = {"x": np.zeros((1, 4, 4, 1)), "path": tmp_path / "a.png"} | kwargs
    with pytest.raises(err, match=pattern):
        plot.activations(mlp, args.pop("x"), args.pop("path"), **args)
    assert not (tmp_path / "a.png").exists()


def test_gradient_norms_single_and_compared(tmp_path, mlp):
    """gradient_norms draws one network's gradients or several side by side."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=5)
    g = fnn.grad(mlp, x, y, fnn.losses.sparse_softmax_cross_entropy)
    g_before = _frozen_copy(g)
    assert _is_png(plot.gradient_norms(g, tmp_path / "g.png", title="one"))
    assert _is_png(plot.gradient_norms({"a": g, "b": g}, tmp_path / "g2.png", log=False))
    assert fnn.tree.allclose(g, g_before, rtol=0)


def test_gradient_norms_errors(tmp_path, mlp, planar):
    """Wrong kinds, empty mappings and networks of different depths are refused."""
    with pytest.raises(TypeError, match=r"grads must be an fnn\.Network"):
        plot.gradient_norms({"w": np.ones(3)}, tmp_path / "g.png")
    with pytest.raises(ValueError, match="empty mapping"):
        plot.gradient_norms({}, tmp_path / "g.png")
    with pytest.raises(ValueError, match="same depth"):
        plot.gradient_norms({"a": mlp, "b": planar[0]}, tmp_path / "g.png")


def test_first_layer_weights(tmp_path, mlp):
    """first_layer_weights infers the image shape from the input shape or takes one."""
    assert _is_png(plot.first_layer_weights(mlp, tmp_path / "w.png", max_units=5))
    flat = fnn.init([fnn.Dense(3)], (12,), key=0)
    assert _is_png(plot.first_layer_weights(flat, tmp_path / "w2.png", image_shape=(3, 4)))
    with pytest.raises(ValueError, match="pass image_shape"):
        plot.first_layer_weights(flat, tmp_path / "w3.png")
    with pytest.raises(ValueError, match="height \\* width = 12"):
        plot.first_layer_weights(flat, tmp_path / "w3.png", image_shape=(5, 5))
    with pytest.raises(ValueError, match="no built Dense layer"):
        plot.first_layer_weights(fnn.init([fnn.Tanh()], (4,), key=0), tmp_path / "w3.png")
    with pytest.raises(TypeError, match=r"expected an fnn\.Network"):
        plot.first_layer_weights("net", tmp_path / "w3.png")


def test_decision_boundary(tmp_path, planar):
    """decision_boundary draws two-class and one-output (logit or sigmoid) networks."""
    net, x, y = planar
    x_before = x.copy()
    assert _is_png(plot.decision_boundary(net, x, y, tmp_path / "d.png", resolution=30))
    np.testing.assert_array_equal(x, x_before)
    one = fnn.init([fnn.Dense(4), fnn.Tanh(), fnn.Dense(1), fnn.Sigmoid()], (2,), key=0)
    out = plot.decision_boundary(one, x, y[:, None].astype(np.float32), tmp_path / "d1.png")
    assert _is_png(out)


@pytest.mark.parametrize(
    ("make", "err", "pattern"),
    [
        (lambda x, y: (x, y[:-1]), ValueError, r"one label per point"),
        (lambda x, y: (x, np.eye(2)[y]), ValueError, r"argmax"),
        (lambda x, y: (x, y + 0.5), ValueError, "integer class labels"),
        (lambda x, y: (x, list(y)), TypeError, "NumPy array of labels"),
        (lambda x, y: (x[:, :1], y), ValueError, r"network takes \(batch, 2\)"),
    ],
)
def test_decision_boundary_errors(tmp_path, planar, make, err, pattern):
    """Labels and points of the wrong shape or kind are refused with a hint."""
    net, x, y = planar
    xx, yy = make(x, y)
    with pytest.raises(err, match=pattern):
        plot.decision_boundary(net, xx, yy, tmp_path / "d.png")


def test_decision_boundary_needs_planar_network(tmp_path, mlp):
    """Only networks on 2-D points have decision regions to draw."""
    with pytest.raises(ValueError, match=r"input_shape \(2,\)"):
        plot.decision_boundary(mlp, np.zeros((3, 2)), np.zeros(3, int), tmp_path / "d.png")


def test_missing_matplotlib_names_the_extra(tmp_path, mlp, monkeypatch):
    """Without matplotlib the error says which extra to install."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install fnn\[plot\]"):
        plot.first_layer_weights(mlp, tmp_path / "w.png")
