"""Tests of fnn.layers.containers: Sequential, Residual and Parallel as layers.

Gradients over generated nestings (depth up to 3, Dense/Conv2D/LayerNorm/BatchNorm/activation
children), Residual with a projection shortcut, Parallel with both merges; shape, dtype and
purity properties; keys, training mode and batch-norm state through containers; errors with
paths; save/load, optimizers and fit on nested networks.
"""

import io as stdio
import tempfile
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import optim, testing
from fnn.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LayerNorm,
    Parallel,
    ReLU,
    Residual,
    Sequential,
    Tanh,
)
from fnn.random import fold_in, key

seeds = st.integers(0, 2**31)


def normal(seed, shape):
    """Standard normal float64 values from a seed (never degenerate, unlike shrunk arrays).

    The stream is keyed by (seed, "data"), never the stream fnn.testing draws its cotangent
    from with the same seed: Hypothesis likes equal small seeds, and a cotangent equal to
    the input x is a flat point (for a normalisation, ⟨norm(x), x⟩ barely changes with x)
    where central differences measure only rounding."""
    return np.random.default_rng([seed, 0xDA7A]).normal(size=shape)


def snapshot(tree):
    """Copies of every array leaf and its read-only flag."""
    return [(p, a.copy(), a.flags.writeable) for p, a in fnn.tree.leaves_with_path(tree)]


def assert_unchanged(tree, before):
    after = snapshot(tree)
    assert [p for p, _, _ in after] == [p for p, _, _ in before]
    for (p, a, w), (_, b, w0) in zip(after, before, strict=True):
        assert np.array_equal(a, b) and w == w0 is False, p


@st.composite
def built_nested(draw, max_depth=3):
    """A built float64 nested layer, its output shape and an input batch.

    The batch has at least 3 examples: batch norm over 2 gives exactly ±1, after which a
    LayerNorm may see a constant row, a point where the map is too ill-conditioned
    (variance 0, scale 1/sqrt(eps)) for central differences to be accurate."""
    layer, in_shape = draw(testing.nested_layers(max_depth=max_depth))
    built, out_shape = layer.init(draw(seeds), in_shape, np.dtype(np.float64))
    x = normal(draw(seeds), (draw(st.integers(3, 4)), *in_shape))
    return built, out_shape, x


@given(built_nested(), st.booleans(), seeds)
def test_nested_gradients_match_finite_differences(case, training, seed):
    """For generated nestings (depth <= 3), dL/dx and dL/d(every parameter array inside)
    agree with central differences, in training (batch statistics) and evaluation mode."""
    layer, _, x = case
    testing.check_layer(layer, x, training=training, seed=seed)


@given(built_nested(max_depth=2), seeds)
def test_nested_network_gradient_matches_finite_differences(case, seed):
    """fnn.value_and_grad through a network holding a nested layer agrees with central
    differences of fnn.loss for every parameter array, named by its path."""
    layer, out_shape, x = case
    net = fnn.init([layer], x.shape[1:], key=seed, dtype=np.float64)
    y = normal(seed + 1, (x.shape[0], *out_shape))
    report = testing.check_network(net, x, y, fnn.losses.mse, seed=seed)
    assert all(e.where.startswith("layers[0]") for e in report.entries)


@st.composite
def residual_blocks(draw):
    """A ResNet-style block: conv-BN-tanh-conv with stride, and a strided 1x1 conv + BN shortcut."""
    stride = draw(st.sampled_from([1, 2]))
    # Two or more channels: a 1x1 convolution of one channel followed by batch norm is
    # invariant to its weights, a gradient of order eps that finite differences cannot check.
    c_in, c_out = draw(st.integers(2, 3)), draw(st.integers(2, 3))
    h, w = draw(st.integers(2, 5)), draw(st.integers(2, 5))
    # As in a ResNet, convolutions followed by batch norm have no bias: the norm would make
    # its gradient exactly 0, where central differences measure only rounding.
    body = [
        Conv2D(c_out, 3, strides=stride, padding="same", use_bias=False),
        BatchNorm(),
        Tanh(),
        Conv2D(c_out, draw(st.sampled_from([1, 3])), padding="same"),
    ]
    shortcut = [Conv2D(c_out, 1, strides=stride, use_bias=False), BatchNorm()]
    block = Residual(body, shortcut=shortcut)
    built, out_shape = block.init(draw(seeds), (h, w, c_in), np.dtype(np.float64))
    return built, out_shape, normal(draw(seeds), (draw(st.integers(3, 4)), h, w, c_in))


@given(residual_blocks(), st.booleans(), seeds)
def test_residual_with_projection_gradient(case, training, seed):
    """Residual(body, shortcut=projection): both branches' parameters and dL/dx (the sum of
    the two paths) agree with central differences, with strides 1 and 2."""
    block, out_shape, x = case
    y = block.forward(x, training=training)
    assert y.shape == (x.shape[0], *out_shape)
    testing.check_layer(block, x, training=training, seed=seed)


@st.composite
def parallel_blocks(draw, merge):
    """Parallel image branches (conv, conv + tanh, LayerNorm) merged by concat or sum."""
    c = draw(st.integers(3, 4))  # LayerNorm over fewer than 3 channels is degenerate
    filters = [draw(st.integers(1, 3)) for _ in range(3)] if merge == "concat" else [c] * 3
    branches = [
        Conv2D(filters[0], 3, padding="same"),
        [Conv2D(filters[1], 1), Tanh()],
        [LayerNorm(), Conv2D(filters[2], 2, padding="same")],
    ][: draw(st.integers(1, 3))]
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 4)), c)
    built, out_shape = Parallel(branches, merge=merge).init(draw(seeds), shape, np.dtype(np.float64))
    return built, out_shape, normal(draw(seeds), (draw(st.integers(1, 3)), *shape))


@given(st.sampled_from(["concat", "sum"]).flatmap(parallel_blocks), seeds)
def test_parallel_gradient_both_merges(case, seed):
    """Parallel with concat (each branch gets its slice of δ) and sum (each gets δ): dL/dx
    (the sum over branches) and every branch's parameters agree with central differences."""
    block, out_shape, x = case
    assert block.forward(x).shape == (x.shape[0], *out_shape)
    testing.check_layer(block, x, seed=seed)


def test_parallel_concat_and_sum_values():
    """concat joins the branch outputs along the last axis in order; sum adds them."""
    x = normal(0, (2, 3))
    a, b = Dense(2), Dense(2)
    cat, _ = Parallel([a, b]).init(0, (3,), np.dtype(np.float64))
    ya, yb = cat.branches[0].forward(x), cat.branches[1].forward(x)
    np.testing.assert_array_equal(cat.forward(x), np.concatenate([ya, yb], axis=-1))
    add = attrs.evolve(cat, merge="sum")
    np.testing.assert_array_equal(add.forward(x), ya + yb)


@given(built_nested(), st.sampled_from([np.float32, np.float64]), st.booleans(), seeds)
def test_shape_dtype_and_purity(case, dtype, training, seed):
    """The shape init promises is the shape forward gives; dtype in = dtype out; forward, vjp,
    vjp_with_state and the pullback leave x and every array inside unchanged and read-only;
    the gradient has the layer's structure."""
    layer, out_shape, x = case
    if dtype == np.float32:
        layer, _ = layer.init(seed, x.shape[1:], np.dtype(np.float32))
        x = x.astype(np.float32)
    x0, before = x.copy(), snapshot(layer)
    y = layer.forward(x, training=training)
    assert y.shape == (x.shape[0], *out_shape) and y.dtype == dtype
    y2, pullback, new = layer.vjp_with_state(x, training=training)
    np.testing.assert_array_equal(y, y2)
    dlayer, dx = pullback(normal(seed, y.shape).astype(dtype))
    assert dx.shape == x.shape and dx.dtype == dtype
    fnn.tree.check_same_structure(layer, dlayer)
    fnn.tree.check_same_structure(layer, new)
    np.testing.assert_array_equal(x, x0)
    assert_unchanged(layer, before)
    if not training:
        assert new is layer  # evaluation mode updates no statistics


def test_need_dx_false_skips_the_input_gradient():
    """need_dx=False gives dx=None from every container, with the same parameter gradients."""
    for block in (Sequential([Dense(3), Tanh()]), Residual([Dense(2)]),
                  Residual([Dense(3)], shortcut=Dense(3)), Parallel([Dense(2), Dense(1)])):
        built, _ = block.init(0, (2,), np.dtype(np.float64))
        x = normal(1, (4, 2))
        y, pb = built.vjp(x, need_dx=False)
        dy = normal(2, y.shape)
        dlayer, dx = pb(dy)
        assert dx is None
        assert fnn.tree.allclose(dlayer, built.vjp(x)[1](dy)[0], rtol=0)


def test_flags_pass_through_containers():
    """A container is stochastic if a child is and stateful if a child is, at any depth."""
    assert Sequential([Dense(2), Dropout(0.5)]).stochastic
    assert not Sequential([Dense(2), ReLU()]).stochastic
    deep = Parallel([Dense(2), Residual([Sequential([BatchNorm()])])])
    assert deep.stateful and not deep.stochastic
    assert Residual([Dense(2)], shortcut=[Dropout(0.1)]).stochastic


def dropout_net():
    block = Residual([Dense(4), Dropout(0.5), Tanh()])
    return fnn.init([Dense(4), block, Dense(2)], (3,), key=0, dtype=np.float64)


def test_dropout_inside_residual_is_reproducible_by_key():
    """A Dropout at layers[1].body.layers[1] gets fold_in(fold_in(fold_in(key, 1), 0), 1): the
    same key gives the same output bit for bit, the mask is the one a top-level Dropout draws
    with that key, and another key gives another mask."""
    net = dropout_net()
    x = normal(0, (5, 3))
    k = key(7)
    y1 = fnn.forward(net, x, key=k, training=True)
    np.testing.assert_array_equal(y1, fnn.forward(net, x, key=k, training=True))
    assert not np.array_equal(y1, fnn.forward(net, x, key=key(8), training=True))
    acts = fnn.activations(net, x, key=k, training=True)
    h = acts.by_path["layers[1].body.layers[0]"]
    child_key = fold_in(fold_in(fold_in(k, 1), 0), 1)
    expected = Dropout(0.5).forward(h, key=child_key, training=True)
    np.testing.assert_array_equal(acts.by_path["layers[1].body.layers[1]"], expected)
    np.testing.assert_array_equal(acts[-1], y1)


def test_dropout_inside_residual_gradient_uses_the_same_mask():
    """value_and_grad with a key passes the whole-network gradient check through the block."""
    net = dropout_net()
    x, y = normal(1, (5, 3)), normal(2, (5, 2))
    testing.check_network(net, x, y, fnn.losses.mse, key=3, training=True)


def test_random_container_without_a_key_is_refused():
    """Training mode without a key names the container's path; evaluation needs none."""
    net, x = dropout_net(), normal(0, (2, 3))
    with pytest.raises(ValueError, match=r"fnn\.forward: layers\[1\] \(Residual\) is random"):
        fnn.forward(net, x, training=True)
    block = net.layers[1]
    with pytest.raises(ValueError, match=r"body\.layers\[1\] \(Dropout\(drop_prob=0\.5\)\).*key"):
        block.forward(normal(0, (2, 4)), training=True)
    assert fnn.forward(net, x).shape == (2, 2)


def bn_net():
    block = Residual([Dense(3), BatchNorm(momentum=0.5), Tanh()])
    return fnn.init([Dense(3), block, Dense(1)], (2,), key=0, dtype=np.float64)


def test_batchnorm_state_inside_a_container_is_updated():
    """value_and_grad(with_state=True) returns the net whose nested BatchNorm's running
    statistics moved exactly as a top-level BatchNorm's would on the same input; plain
    forward and the returned gradient's structure leave them alone."""
    net = bn_net()
    x, y = normal(3, (6, 2)), normal(4, (6, 1))
    _, grads, new = fnn.value_and_grad(net, x, y, fnn.losses.mse, with_state=True)
    bn = net["layers[1].body.layers[1]"]
    h = fnn.activations(net, x, training=True).by_path["layers[1].body.layers[0]"]
    _, _, expected = bn.vjp_with_state(h, training=True)
    got = new["layers[1].body.layers[1]"]
    np.testing.assert_array_equal(got.running_mean, expected.running_mean)
    np.testing.assert_array_equal(got.running_var, expected.running_var)
    assert not np.array_equal(got.running_mean, bn.running_mean)
    assert np.array_equal(grads["layers[1].body.layers[1].running_mean"], np.zeros(3))
    assert new.layers[0] is net.layers[0]  # only the container holding state is rebuilt
    assert "layers[1].body.layers[1].running_var" in fnn.tree.state_paths(net)


def test_fit_updates_nested_batchnorm_and_learns():
    """fit trains a nested network: the loss falls and the nested running statistics move."""
    net = bn_net()
    x = normal(5, (64, 2))
    y = (x[:, :1] * x[:, 1:]).astype(np.float64)
    new, _, hist = fnn.fit(net, optim.adam(0.02), fnn.losses.mse, (x, y), epochs=8, key=0,
                           batch_size=16, progress=False, train_metrics=False)
    assert hist.loss[-1] < hist.loss[0]
    old_bn, new_bn = net["layers[1].body.layers[1]"], new["layers[1].body.layers[1]"]
    assert not np.array_equal(old_bn.running_mean, new_bn.running_mean)


def every_kind_nested():
    """A nested image network holding every container kind and every layer kind."""
    return [
        Conv2D(3, 3, padding="same"),
        Residual([Conv2D(3, 3, padding="same"), BatchNorm(), ReLU()]),
        Parallel([[Conv2D(2, 1), Tanh()], [fnn.MaxPool2D(1), Conv2D(2, 1), fnn.LeakyReLU(0.1)]],
                 merge="sum"),
        Residual([Conv2D(4, 3, strides=2, padding="same"), LayerNorm(), fnn.ELU()],
                 shortcut=[fnn.AvgPool2D(2), Conv2D(4, 1)]),
        Parallel([fnn.GlobalAvgPool2D(), [Flatten(), Dense(4), fnn.Sigmoid()]]),
        Sequential([Dense(5), Dropout(0.2), fnn.GELU(), fnn.Softmax(), fnn.Reshape((5, 1)),
                    Flatten(), fnn.Identity(), Dense(2)]),
    ]


OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.05, momentum=0.9),
    "adam": lambda: optim.adam(0.01),
    "adamw": lambda: optim.adamw(0.01),
    "rmsprop": lambda: optim.rmsprop(0.01),
    "adagrad": lambda: optim.adagrad(0.05),
    "chain": lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.add_decayed_weights(1e-4),
                                 optim.adam(0.01)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_nested_network_trains_with_every_optimizer(name):
    """fit with each optimizer on a network nesting every container kind: finite parameters of
    the same structure, and a lower training loss than at the start."""
    net = fnn.init(every_kind_nested(), (4, 4, 1), key=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4, 4, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    loss = fnn.losses.sparse_softmax_cross_entropy
    before = fnn.loss(net, x, y, loss)
    new, _, _ = fnn.fit(net, OPTIMIZERS[name](), loss, (x, y), epochs=6, key=0, batch_size=16,
                        progress=False, train_metrics=False)
    fnn.tree.check_same_structure(net, new)
    assert all(np.isfinite(a).all() for a in fnn.tree.leaves(new))
    assert fnn.loss(new, x, y, loss) < before


def test_freeze_a_nested_block_by_path_prefix():
    """optim.freeze with a path prefix keeps every array of a nested block bit-identical."""
    net = fnn.init(every_kind_nested(), (4, 4, 1), key=1)
    opt = optim.chain(optim.freeze("layers[1]"), optim.adam(0.05))
    x = normal(0, (8, 4, 4, 1)).astype(np.float32)
    y = np.arange(8) % 2
    new, _, _ = fnn.fit(net, opt, fnn.losses.sparse_softmax_cross_entropy, (x, y), epochs=2,
                        key=0, batch_size=4, progress=False, train_metrics=False)
    for path, a in fnn.tree.leaves_with_path(net):
        if path.startswith("layers[1]") and "running" not in path:
            np.testing.assert_array_equal(new[path], a)
    assert not np.array_equal(new["layers[3].body.layers[0].w"], net["layers[3].body.layers[0].w"])


def test_save_and_load_round_trip_nested_networks():
    """fnn.save / fnn.load give back a nested network (every container kind) and an Adam
    state for it with the same structure, the same bits and the same outputs."""
    net = fnn.init(every_kind_nested(), (4, 4, 1), key=2)
    opt = optim.adam(1e-3)
    state = opt.init(net)
    x = normal(0, (3, 4, 4, 1)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        path = fnn.save(Path(d) / "nested", {"net": net, "opt": state})
        back = fnn.load(path)
    fnn.tree.check_same_structure(net, back["net"])
    for (p, a), (_, b) in zip(fnn.tree.leaves_with_path(net),
                              fnn.tree.leaves_with_path(back["net"]), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b), p
    assert type(back["net"].layers[2]) is Parallel and back["net"].layers[2].merge == "sum"
    np.testing.assert_array_equal(fnn.forward(back["net"], x), fnn.forward(net, x))
    fnn.tree.check_same_structure(state, back["opt"])


def test_errors_inside_containers_name_the_full_path_once():
    """An init or forward error deep inside names the innermost layer by its full path, once."""
    layers = [Dense(4), Residual([Dense(4), Sequential([Conv2D(2, 3)])])]
    with pytest.raises(ValueError) as info:
        fnn.init(layers, (3,), key=0)
    msg = str(info.value)
    assert msg.startswith("fnn.init: layers[1].body.layers[1].layers[0] (Conv2D(filters=2, ")
    assert msg.count("Conv2D(filters=2") == 1
    net = fnn.init([Residual([Dense(3), Tanh()])], (3,), key=0)
    block = net.layers[0]
    with pytest.raises(TypeError, match=r"^Residual: body\.layers\[0\] \(Dense\(units=3\)\): x "
                                        r"has dtype float64 but the layer's parameters are float32"):
        block.forward(np.zeros((2, 3)))


class SumlessDense(Dense):
    """A Dense whose pullback forgets to sum the bias gradient over the batch."""

    def vjp(self, x, *, key=None, training=False, need_dx=True):
        y, pullback = super().vjp(x, key=key, training=training, need_dx=need_dx)

        def bad(dy):
            dlayer, dx = pullback(dy)
            return attrs.evolve(dlayer, b=dy), dx  # (batch, units), not (units,)

        return y, bad


def test_wrong_gradient_shape_inside_a_container_is_caught_with_its_path():
    """A pullback returning a gradient with an extra batch axis is refused where it happens,
    naming the layer path, the parameter, both shapes and the likely fix."""
    net = fnn.init([Dense(3), Residual([SumlessDense(3), Tanh()])], (2,), key=0)
    x, y = np.zeros((5, 2), np.float32), np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError) as info:
        fnn.grad(net, x, y, fnn.losses.mse)
    msg = str(info.value)
    assert msg.startswith("fnn.value_and_grad: layers[1].body.layers[0] (Dense(units=3)): ")
    assert "gradient of b with shape (5, 3) but b has shape (3,)" in msg
    assert "did you forget to sum over the batch axis?" in msg


def test_nonfinite_guard_names_the_nested_layer():
    """check_finite names the innermost layer where the forward pass first overflows, even
    when a later tanh squashes the inf back to a finite value."""
    net = fnn.init([Dense(2), Residual([Dense(2), Tanh(), Dense(2)])], (1,), key=0,
                   dtype=np.float64)
    big = attrs.evolve(net["layers[1].body.layers[0]"], w=np.full((2, 2), 1e308))
    net = fnn.replace(net, "layers[1].body.layers[0]", big)
    x, y = np.full((2, 1), 5.0), np.zeros((2, 2))
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isfinite(fnn.forward(net, x)).all()  # tanh(inf) = 1: nothing shows outside
        with pytest.raises(
            FloatingPointError,
            match=r"forward pass at layers\[1\]\.body\.layers\[0\] \(Dense\(units=2\)\)",
        ):
            fnn.value_and_grad(net, x, y, fnn.losses.mse, check_finite=True)


@pytest.mark.parametrize(
    ("make", "err", "pattern"),
    [
        (lambda: Sequential([]), ValueError, r"Sequential: needs at least one layer"),
        (lambda: Sequential([Dense(2), "relu"]), TypeError, r"Sequential: layers\[1\] is str"),
        (lambda: Sequential(Dense(2)), TypeError, r"must be a list or tuple of layers"),
        (lambda: Residual([]), ValueError, r"Residual: body: .*at least one layer"),
        (lambda: Residual(None), TypeError, r"Residual: body is NoneType, not an fnn layer"),
        (lambda: Residual([Dense(2)], shortcut=3), TypeError, r"Residual: shortcut is int"),
        (lambda: Parallel([]), ValueError, r"Parallel: needs at least one branch"),
        (lambda: Parallel([Dense(2), [ReLU(), 4]]), TypeError,
         r"Parallel: branches\[1\]: Sequential: layers\[1\] is int"),
        (lambda: Parallel([Dense(2)], merge="mean"), ValueError, r"merge must be 'concat'.*'sum'"),
    ],
)
def test_bad_configurations(make, err, pattern):
    """A non-layer child, an empty body or an unknown merge is refused at construction."""
    with pytest.raises(err, match=pattern):
        make()


@pytest.mark.parametrize(
    ("layers", "in_shape", "pattern"),
    [
        ([Residual([Dense(3)])], (2,),
         r"layers\[0\] \(Residual\): the body's output \(None, 3\) and the identity shortcut's "
         r"\(None, 2\) cannot be added; .*projection shortcut"),
        ([Residual([Conv2D(4, 3, strides=2, padding="same")], shortcut=Conv2D(4, 1))], (6, 6, 2),
         r"body's output \(None, 3, 3, 4\) and the shortcut's \(None, 6, 6, 4\)"),
        ([Parallel([Dense(2), Dense(3)], merge="sum")], (2,),
         r"branch outputs branches\[0\] \(None, 2\), branches\[1\] \(None, 3\) cannot be added"),
        ([Parallel([Conv2D(2, 3), Conv2D(2, 1)])], (5, 5, 1),
         r"branches\[0\] \(None, 3, 3, 2\), branches\[1\] \(None, 5, 5, 2\) cannot be "
         r"concatenated"),
        ([Parallel([Flatten(), Conv2D(2, 1)])], (2, 2, 1), r"cannot be concatenated"),
    ],
)
def test_parts_that_do_not_fit_are_refused_at_init(layers, in_shape, pattern):
    """Outputs that cannot be added or concatenated: a ValueError naming the path and the
    shapes, from fnn.init (and nothing built)."""
    with pytest.raises(ValueError, match=pattern) as info:
        fnn.init(layers, in_shape, key=0)
    assert str(info.value).startswith("fnn.init: layers[0] (")


def test_merge_checks_shapes_at_run_time_too():
    """A block built for one input shape and given another never broadcasts silently."""
    block, _ = Parallel([Flatten(), Flatten()], merge="sum").init(0, (2, 2), np.dtype(np.float64))
    assert block.forward(np.ones((3, 2, 2))).shape == (3, 4)
    res, _ = Residual([Flatten()]).init(0, (4,), np.dtype(np.float64))
    with pytest.raises(ValueError, match=r"Residual: the body gave shape \(3, 4\) and the "
                                         r"shortcut \(3, 2, 2\)"):
        res.forward(np.ones((3, 2, 2)))


def test_bad_cotangent_to_a_container_pullback():
    """A container's pullback checks dy against its output like every layer."""
    block, _ = Residual([Dense(2)]).init(0, (2,), np.dtype(np.float64))
    _, pb = block.vjp(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"Residual: dy has shape \(3, 3\), expected \(3, 2\)"):
        pb(np.ones((3, 3)))
    with pytest.raises(TypeError, match=r"Residual: dy must be a float64 NumPy array"):
        pb(np.ones((3, 2), np.float32))


def test_sublayers_and_paths():
    """sublayers names each child by the path suffix its parameters have in fnn.tree."""
    net = fnn.init(every_kind_nested(), (4, 4, 1), key=0)
    assert [p for p, _ in net.layers[3].sublayers()] == ["body", "shortcut"]
    assert [p for p, _ in net.layers[2].sublayers()] == ["branches[0]", "branches[1]"]
    paths = [p for p, _ in fnn.tree.leaves_with_path(net)]
    assert "layers[2].branches[1].layers[1].w" in paths
    assert "layers[3].shortcut.layers[1].w" in paths
    assert isinstance(net["layers[5].layers[0]"], Layer)


def test_summary_is_indented_with_per_block_counts():
    """summary lists nested layers under their container, indented, by full path; a block's
    row counts every parameter inside it and the total counts each array once."""
    net = fnn.init([Dense(4), Residual([Dense(4), BatchNorm()])], (3,), key=0)
    text = fnn.summary(net, quiet=True)
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("layers[1] "))
    assert row.split()[-1] == f"{4 * 4 + 4 + 4 * 4:,}"  # Dense 20 + BatchNorm 16
    assert any(line.startswith("    layers[1].body.layers[1]  ") for line in lines)
    assert "parameters: 52 (44 trainable, 8 non-trainable)" in text
    buf = stdio.StringIO()
    fnn.summary(net, file=buf)
    assert buf.getvalue().strip() == text
