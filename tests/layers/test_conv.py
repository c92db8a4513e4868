"""Tests of fnn.layers.conv.Conv2D: shape, gradient, reference values, purity and errors."""

import contextlib
import math
from unittest import mock

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import testing
from fnn.layers import _conv_rule, conv
from fnn.layers import _shifted as sh
from fnn.layers import _winograd as wg
from fnn.layers.conv import Conv2D

small = st.integers(1, 3)


def normal_arrays(shape):
    """float64 standard-normal arrays of ``shape``, drawn from a Hypothesis-chosen seed
    (much cheaper than element-wise generation for images)."""
    return st.integers(0, 2**32 - 1).map(lambda s: np.random.default_rng(s).normal(size=shape))


@st.composite
def paddings(draw):
    """'valid', 'same', an int, a pair, or ((top, bottom), (left, right))."""
    return draw(
        st.one_of(
            st.sampled_from(["valid", "same"]),
            st.integers(0, 2),
            st.tuples(st.integers(0, 2), st.integers(0, 2)),
            st.tuples(
                st.tuples(st.integers(0, 2), st.integers(0, 2)),
                st.tuples(st.integers(0, 2), st.integers(0, 2)),
            ),
        )
    )


@st.composite
def built_conv(draw, max_side=5):
    """A built float64 Conv2D with generated geometry, and an input that fits it."""
    layer = Conv2D(
        draw(small),
        (draw(small), draw(small)),
        strides=(draw(small), draw(small)),
        padding=draw(paddings()),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        use_bias=draw(st.booleans()),
    )
    sides = []
    for axis in (0, 1):
        k_eff = (layer.kernel_size[axis] - 1) * layer.dilation[axis] + 1
        padded = 0 if isinstance(layer.padding, str) else sum(layer.padding[axis])
        smallest = 1 if layer.padding == "same" else max(1, k_eff - padded)
        sides.append(draw(st.integers(smallest, smallest + max_side - 1)))
    in_shape = (*sides, draw(small))
    built, out_shape = layer.init(draw(st.integers(0, 2**31)), in_shape, np.dtype(np.float64))
    x = draw(normal_arrays((draw(testing.batch_sizes(3)), *in_shape)))
    return built, out_shape, x


def reference_conv(layer, x):
    """The defining sum, written with explicit loops over output positions."""
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation
    h, w = x.shape[1:3]
    pad = layer.padding
    if pad == "valid":
        pad = ((0, 0), (0, 0))
    elif pad == "same":
        pads = []
        for n, k, s, d in ((h, kh, sh, dh), (w, kw, sw, dw)):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        pad = tuple(pads)
    xp = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    oh = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    y = np.zeros((x.shape[0], oh, ow, layer.filters))
    for p in range(oh):
        for q in range(ow):
            patch = xp[
                :,
                p * sh : p * sh + (kh - 1) * dh + 1 : dh,
                q * sw : q * sw + (kw - 1) * dw + 1 : dw,
                :,
            ]
            y[:, p, q, :] = np.einsum("nijc,ijco->no", patch, layer.w)
    return y + (layer.b if layer.b is not None else 0.0)


@given(built_conv())
def test_shape_promised_by_init_is_produced(case):
    """The shape init promises equals the shape forward produces."""
    layer, out_shape, x = case
    assert layer.forward(x).shape == (x.shape[0], *out_shape)


@given(built_conv())
def test_forward_matches_the_defining_sum(case):
    """im2col + one product equals the convolution sum written out with loops."""
    layer, _, x = case
    np.testing.assert_allclose(layer.forward(x), reference_conv(layer, x), rtol=1e-12, atol=1e-12)


@given(built_conv(), st.integers(0, 2**31))
def test_gradient_matches_finite_differences(case, seed):
    """dL/dx, dL/dW and dL/db agree with central differences for a random cotangent,
    across kernel sizes, strides, paddings and dilations."""
    layer, _, x = case
    testing.check_layer(layer, x, seed=seed)


@given(built_conv())
def test_forward_and_pullback_are_pure(case):
    """forward/vjp leave x and the parameters unchanged and read-only."""
    layer, _, x = case
    x0, w0 = x.copy(), layer.w.copy()
    y, pullback = layer.vjp(x)
    dlayer, _ = pullback(np.random.default_rng(0).normal(size=y.shape))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(layer.w, w0)
    assert not layer.w.flags.writeable and not dlayer.w.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        layer.w[0, 0, 0, 0] = 1.0


def test_float32_stays_float32():
    """A float32 layer computes its output and all gradients in float32."""
    layer, _ = Conv2D(4, 3, padding="same").init(0, (6, 6, 2), np.dtype(np.float32))
    rng = np.random.default_rng(0)
    y, pullback = layer.vjp(rng.random((3, 6, 6, 2), dtype=np.float32))
    dlayer, dx = pullback(rng.standard_normal(y.shape).astype(np.float32))
    assert y.dtype == dlayer.w.dtype == dlayer.b.dtype == dx.dtype == np.float32


def test_blocked_weight_gradient_matches_single_product():
    """The weight gradient of a large batch (blocked product) equals xᵀ·δ in float64."""
    layer, _ = Conv2D(3, 3).init(0, (10, 10, 8), np.dtype(np.float64))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 10, 10, 8))  # 1280 rows of 72: two blocks and a remainder
    y, pullback = layer.vjp(x)
    dy = rng.normal(size=y.shape)
    dw = pullback(dy)[0].w
    cols = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # (n, 8, 8, c, 3, 3)
    expected = np.einsum("npqcij,npqo->ijco", cols, dy)
    np.testing.assert_allclose(dw, expected, rtol=1e-12)


def test_need_dx_false_skips_input_gradient():
    """With need_dx=False the pullback returns dx=None and the same parameter gradients."""
    layer, _ = Conv2D(2, 2).init(0, (4, 4, 1), np.dtype(np.float64))
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 1))
    dy = np.random.default_rng(3).normal(size=(2, 3, 3, 2))
    d1, dx1 = layer.vjp(x)[1](dy)
    d2, dx2 = layer.vjp(x, need_dx=False)[1](dy)
    assert dx1 is not None and dx2 is None
    assert fnn.tree.allclose(d1, d2)


def test_he_initialiser_uses_the_receptive_field_fan():
    """he_normal on a (3, 3, 8, 64) kernel has std ≈ sqrt(2 / (3·3·8))."""
    layer, _ = Conv2D(64, 3, w_init="he_normal").init(0, (10, 10, 8), np.dtype(np.float64))
    assert layer.w.shape == (3, 3, 8, 64)
    assert abs(layer.w.std() / math.sqrt(2 / 72) - 1) < 0.05
    assert not layer.b.any()


def test_same_padding_gives_ceil_of_size_over_stride():
    """'same' padding: out = ceil(n / stride), whatever the kernel and dilation."""
    for n, k, s, d in [(7, 3, 2, 1), (8, 4, 3, 2), (5, 5, 1, 1), (1, 3, 1, 3)]:
        _, out = Conv2D(1, k, strides=s, padding="same", dilation=d).init(0, (n, n, 1), np.float64)
        assert out[:2] == (math.ceil(n / s),) * 2


def test_network_with_conv_layers_has_correct_gradient():
    """A conv-ReLU-conv-flatten-dense network passes the whole-network gradient check."""
    layers = [
        Conv2D(3, 3, padding="same"),
        fnn.Tanh(),
        Conv2D(2, 2, strides=2),
        fnn.Flatten(),
        fnn.Dense(3),
    ]
    net = fnn.init(layers, (6, 5, 2), key=4, dtype=np.float64)
    rng = np.random.default_rng(5)
    testing.check_network(
        net,
        rng.normal(size=(3, 6, 5, 2)),
        rng.integers(0, 3, 3),
        fnn.losses.sparse_softmax_cross_entropy,
    )


@pytest.mark.parametrize(
    ("make", "err", "pattern"),
    [
        (lambda: Conv2D(0, 3), ValueError, r"filters must be a positive int"),
        (lambda: Conv2D(4, 0), ValueError, r"kernel_size must be positive"),
        (lambda: Conv2D(4, 3, strides=0), ValueError, r"Conv2D: strides must be positive"),
        (lambda: Conv2D(4, 3, strides=(1, -2)), ValueError, r"strides must be positive"),
        (lambda: Conv2D(4, 3, dilation=0), ValueError, r"dilation must be positive"),
        (lambda: Conv2D(4, 3, padding="full"), ValueError, r"padding must be 'valid', 'same'"),
        (lambda: Conv2D(4, 3, padding=-1), ValueError, r"padding must be non-negative"),
        (lambda: Conv2D(4, 3, padding=(1, 2, 3)), TypeError, r"padding must be 'valid'"),
        (lambda: Conv2D(4, "3"), TypeError, r"kernel_size must be an int or a pair"),
        (lambda: Conv2D(4, 3, w_init="nope"), ValueError, r"unknown initialiser 'nope'"),
    ],
)
def test_bad_configs_name_the_problem(make, err, pattern):
    """Impossible configurations raise at construction with the class and field named."""
    with pytest.raises(err, match=pattern):
        make()


def test_kernel_larger_than_padded_input():
    """A kernel that does not fit the padded input is refused at init and at forward."""
    with pytest.raises(ValueError, match=r"larger than the padded input 4x4; use padding='same'"):
        Conv2D(2, 5).init(0, (4, 4, 1), np.dtype(np.float64))
    with pytest.raises(ValueError, match=r"extent 5x5 with dilation \(2, 2\)"):
        Conv2D(2, 3, dilation=2).init(0, (4, 4, 1), np.dtype(np.float64))
    layer, _ = Conv2D(2, 3).init(0, (8, 8, 1), np.dtype(np.float64))
    with pytest.raises(ValueError, match=r"larger than the padded input 2x2"):
        layer.forward(np.zeros((1, 2, 2, 1)))


@pytest.mark.parametrize(
    ("x", "err", "pattern"),
    [
        (
            np.zeros((2, 3, 8, 8)),
            ValueError,
            r"looks like \(batch, channels, height, width\).*x.transpose\(0, 2, 3, 1\)",
        ),
        (
            np.zeros((2, 8, 8, 2)),
            ValueError,
            r"built for 3 channels \(batch, height, width, 3\); check the layer before",
        ),
        (np.zeros((8, 8, 3)), ValueError, r"add a batch axis with x\[None\]"),
        (
            np.zeros((2, 8, 8, 3), np.float32),
            TypeError,
            r"cast the input with x.astype\(np.float64\)",
        ),
        (np.zeros((2, 8, 8, 3), np.int64), TypeError, r"floating-point"),
        ([[0.0]], TypeError, r"must be a NumPy array"),
    ],
)
def test_bad_inputs_name_the_problem(x, err, pattern):
    """Channels-first images, wrong channels, missing batch axis and wrong dtypes are named."""
    layer, _ = Conv2D(4, 3).init(0, (8, 8, 3), np.dtype(np.float64))
    with pytest.raises(err, match=pattern):
        layer.forward(x)


def test_init_needs_image_input_and_unbuilt_layer_refuses():
    """init wants (height, width, channels); an unbuilt layer refuses to run."""
    with pytest.raises(
        ValueError, match=r"add a channel axis with Reshape\(\(height, width, 1\)\)"
    ):
        Conv2D(2, 3).init(0, (28, 28), np.dtype(np.float64))
    with pytest.raises(ValueError, match="not initialised"):
        Conv2D(2, 3).forward(np.zeros((1, 5, 5, 1)))


def test_network_reports_channels_first_input():
    """fnn.forward on a conv network spots (batch, channels, height, width) data."""
    net = fnn.init([Conv2D(2, 3)], (8, 8, 3), key=0)
    with pytest.raises(ValueError, match=r"x.transpose\(0, 2, 3, 1\)"):
        fnn.forward(net, np.zeros((2, 3, 8, 8), np.float32))


def test_pullback_rejects_wrong_cotangent_shape():
    """A cotangent of the wrong shape is refused rather than broadcast."""
    layer, _ = Conv2D(2, 3).init(0, (5, 5, 1), np.dtype(np.float64))
    _, pullback = layer.vjp(np.zeros((1, 5, 5, 1)))
    with pytest.raises(ValueError, match=r"dy has shape \(1, 3, 3, 1\), expected \(1, 3, 3, 2\)"):
        pullback(np.zeros((1, 3, 3, 1)))


def test_pullback_rejects_cotangents_of_the_wrong_kind():
    """A dy that is not an array, or of another dtype, is refused with the fix."""
    layer, _ = Conv2D(2, 3).init(0, (5, 5, 1), np.dtype(np.float32))
    y, pullback = layer.vjp(np.zeros((1, 5, 5, 1), np.float32))
    with pytest.raises(
        TypeError, match=r"Conv2D\(filters=2, kernel_size=\(3, 3\)\): dy must be a float32"
    ):
        pullback(None)
    with pytest.raises(TypeError, match=r"got dtype float64; cast it"):
        pullback(np.zeros(y.shape))


# Issue 15: the chunked (and threaded) kernels and each of their code paths

KERNEL_PATHS = [  # filters, kernel, strides, padding, dilation, use_bias, (height, width, c_in)
    (3, 1, 1, "valid", 1, True, (5, 4, 3)),  # 1x1: the im2col matrix is a view of x
    (2, 1, 1, "valid", 1, False, (4, 4, 2)),  # 1x1 without a bias
    (4, 3, 1, "valid", 1, True, (7, 6, 1)),  # one input channel: per-offset im2col
    (3, 2, 2, "valid", 1, True, (6, 8, 2)),  # stride == kernel, windows tile the input
    (2, 3, 3, "valid", 1, True, (7, 5, 2)),  # stride == kernel, odd sizes: cells left out
    (2, 3, 1, "same", 2, True, (6, 5, 3)),  # dilation: transposed-convolution dx
    (3, 3, 1, "same", 1, False, (5, 5, 3)),  # transposed-convolution dx (c_out <= c_in)
    (5, 3, 1, 1, 1, True, (5, 5, 2)),  # col2im dx with padding (c_out > c_in)
    (2, (2, 3), (2, 1), ((0, 1), (2, 0)), (1, 2), True, (6, 7, 2)),  # all asymmetric
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("path", KERNEL_PATHS, ids=lambda p: f"{p[1]}-s{p[2]}-{p[3]}-c{p[6][2]}")
def test_each_kernel_path_matches_the_sum_and_finite_differences(path, n_threads):
    """Every code path of the forward and backward kernels (1x1 without copy, one input
    channel, stride = kernel, odd sizes, dilation, both input-gradient methods) equals the
    defining sum and passes the float64 gradient check with random cotangents, with one
    thread and with the batch split across two."""
    filters, kernel, strides, padding, dilation, use_bias, in_shape = path
    layer = Conv2D(
        filters, kernel, strides=strides, padding=padding, dilation=dilation, use_bias=use_bias
    )
    layer, _ = layer.init(1, in_shape, np.dtype(np.float64))
    if use_bias:  # a non-zero bias, so that dL/db is checked against a real contribution
        layer = attrs.evolve(layer, b=np.random.default_rng(2).normal(size=filters))
    x = np.random.default_rng(3).normal(size=(5, *in_shape))
    with fnn.threads(n_threads):
        np.testing.assert_allclose(layer.forward(x), reference_conv(layer, x), atol=1e-12)
        for seed in range(2):
            testing.check_layer(layer, x, seed=seed)


@pytest.mark.parametrize("mode", ["im2col", "winograd", "shifted"])
def test_a_fixed_thread_count_gives_fixed_bits(mode):
    """For a given thread count the outputs and gradients are bit-identical run after run,
    and one and two threads agree to float32 round-off (every formulation)."""
    layer, _ = Conv2D(16, 3, padding="same").init(0, (12, 12, 8), np.dtype(np.float32))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 12, 12, 8), dtype=np.float32)
    dy = rng.standard_normal((64, 12, 12, 16), dtype=np.float32)

    def run(n):
        with fnn.threads(n), formulation(mode):
            y, pullback = layer.vjp(x)
            grads, dx = pullback(dy)
        return y, grads.w, grads.b, dx

    first, second, single = run(2), run(2), run(1)
    for a, b, c in zip(first, second, single, strict=True):
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4 * np.abs(c).max())


def test_large_batches_are_split_into_chunks_on_one_thread_too():
    """A batch whose im2col matrix exceeds a chunk (several MiB) is processed in chunks;
    the output and the weight gradient still equal the einsum definition in float64."""
    layer, _ = Conv2D(3, 3, padding="same").init(0, (16, 16, 8), np.dtype(np.float64))
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 16, 16, 8))  # 64 images x 256 rows x 73 columns x 8 bytes
    assert len(fnn.parallel.split(64, item_bytes=256 * 73 * 8)) > 1
    y, pullback = layer.vjp(x)
    dy = rng.normal(size=y.shape)
    grads, _ = pullback(dy)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # (n,16,16,c,3,3)
    np.testing.assert_allclose(y, np.einsum("npqcij,ijco->npqo", cols, layer.w) + layer.b)
    np.testing.assert_allclose(grads.w, np.einsum("npqcij,npqo->ijco", cols, dy), rtol=1e-10)
    np.testing.assert_allclose(grads.b, dy.sum(axis=(0, 1, 2)), rtol=1e-10)


@pytest.mark.parametrize("mode", ["auto", "im2col", "winograd", "shifted"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_one_sgd_step_matches_pytorch_in_float64(n_threads, mode):
    """One SGD step of the issue's CNN (valid convolutions, ReLU, max-pool, dense, softmax
    cross-entropy) gives the same parameters as PyTorch in float64, to round-off, with the
    automatic choice of formulation and with each one forced."""
    torch = pytest.importorskip("torch")
    layers = [Conv2D(4, 3), fnn.ReLU(), fnn.MaxPool2D(2), Conv2D(6, 3), fnn.ReLU()]
    layers += [fnn.MaxPool2D(2), fnn.Flatten(), fnn.Dense(10)]
    net = fnn.init(layers, (15, 14, 1), key=6, dtype=np.float64)
    rng = np.random.default_rng(7)
    x, labels = rng.normal(size=(16, 15, 14, 1)), rng.integers(0, 10, 16)
    loss_fn = fnn.losses.sparse_softmax_cross_entropy
    with fnn.threads(n_threads), formulation(mode), kernel_calls() as calls:
        new = fnn.sgd_step(net, fnn.grad(net, x, labels, loss_fn), lr=0.5)
    for name, spy in calls.items():  # one call per chunk of each of the two convolutions
        assert (spy.call_count >= 2) if name == mode else not spy.called

    t = torch.nn
    convs = [t.Conv2d(1, 4, 3).double(), t.Conv2d(4, 6, 3).double()]
    dense = t.Linear(net.layers[7].w.shape[0], 10).double()
    with torch.no_grad():
        for conv, layer in zip(convs, (net.layers[0], net.layers[3]), strict=True):
            conv.weight.copy_(torch.from_numpy(layer.w.transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(layer.b.copy()))
        dense.weight.copy_(torch.from_numpy(net.layers[7].w.T.copy()))
        dense.bias.copy_(torch.from_numpy(net.layers[7].b.copy()))
    h = torch.from_numpy(x).permute(0, 3, 1, 2)
    for conv in convs:
        h = t.functional.max_pool2d(torch.relu(conv(h)), 2)
    logits = dense(h.permute(0, 2, 3, 1).flatten(1))  # fnn flattens (height, width, channels)
    t.functional.cross_entropy(logits, torch.from_numpy(labels)).backward()
    params = [*convs, dense]
    fnn_layers = [new.layers[0], new.layers[3], new.layers[7]]
    for module, layer in zip(params, fnn_layers, strict=True):
        w = (module.weight - 0.5 * module.weight.grad).detach().numpy()
        b = (module.bias - 0.5 * module.bias.grad).detach().numpy()
        expected_w = w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T
        np.testing.assert_allclose(layer.w, expected_w, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.b, b, rtol=1e-12, atol=1e-12)


# Issue 15 follow-up: Winograd F(2x2, 3x3) for 3x3 stride-1 undilated convolutions, and
# shifted products (no im2col matrix) for stride-1 convolutions


@contextlib.contextmanager
def formulation(mode):
    """Compute stride-1 convolutions by "winograd", "shifted" or "im2col" where that applies
    (or by the automatic rule, "auto") inside the block."""
    with mock.patch.object(conv, "_FORMULATION", mode):
        yield


@contextlib.contextmanager
def kernel_calls():
    """Spies on the forward kernels of the fast formulations (one call per chunk), to be
    sure of the path taken: ``{"winograd": spy, "shifted": spy}``."""
    with (
        mock.patch.object(wg, "forward", wraps=wg.forward) as winograd,
        mock.patch.object(sh, "forward", wraps=sh.forward) as shifted,
    ):
        yield {"winograd": winograd, "shifted": shifted}


@contextlib.contextmanager
def winograd_calls():
    """A spy on the Winograd forward kernel (one call per chunk), to be sure of the path."""
    with kernel_calls() as calls:
        yield calls["winograd"]


@st.composite
def winograd_case(draw):
    """A float64 3x3 stride-1 Conv2D with 1-3 channels in and out, any padding form (also
    pads of 3-4, wider than a tile's overlap), image sides giving 1-7 output rows and
    columns (odd and even: the 2x2 tiles need not divide the output), a non-zero bias or
    none, and a fitting input of 1-3 images."""
    wide = st.tuples(st.integers(0, 4), st.integers(0, 4))
    padding = draw(st.one_of(paddings(), st.tuples(wide, wide)))
    layer = Conv2D(draw(small), 3, padding=padding, use_bias=draw(st.booleans()))
    return built_with_input(draw, layer, extra_sides=6)


def built_with_input(draw, layer, extra_sides):
    """``(layer, x)``: the stride-1 ``layer`` built in float64 on a drawn image shape it
    fits (each side up to ``extra_sides`` more than the smallest), with a drawn non-zero
    bias if it has one, and a drawn input of 1-3 such images."""
    sides = []
    for axis in (0, 1):
        k_eff = (layer.kernel_size[axis] - 1) * layer.dilation[axis] + 1
        padded = 0 if isinstance(layer.padding, str) else sum(layer.padding[axis])
        smallest = 1 if layer.padding == "same" else max(1, k_eff - padded)
        sides.append(draw(st.integers(smallest, smallest + extra_sides)))
    in_shape = (*sides, draw(small))
    layer, _ = layer.init(draw(st.integers(0, 2**31)), in_shape, np.dtype(np.float64))
    if layer.use_bias:
        layer = attrs.evolve(layer, b=draw(normal_arrays((layer.filters,))))
    return layer, draw(normal_arrays((draw(testing.batch_sizes(3)), *in_shape)))


@given(winograd_case())
def test_winograd_forward_matches_the_defining_sum(case):
    """Winograd's transforms and 16 products equal the convolution sum written with loops,
    in float64 to 1e-12, for every padding form and for outputs of odd size."""
    layer, x = case
    with formulation("winograd"), winograd_calls() as calls:
        y = layer.forward(x)
    assert calls.called
    np.testing.assert_allclose(y, reference_conv(layer, x), rtol=1e-12, atol=1e-12)


@given(winograd_case(), st.integers(0, 2**31))
def test_winograd_gradient_matches_finite_differences(case, seed):
    """The Winograd pullback (the adjoint of its transforms and products) gives dL/dx,
    dL/dw and dL/db that agree with central differences for a random cotangent."""
    layer, x = case
    with formulation("winograd"), winograd_calls() as calls:
        testing.check_layer(layer, x, seed=seed)
    assert calls.called


@pytest.mark.parametrize("mode", ["winograd", "shifted"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fast_formulations_in_chunks_match_the_einsum_definition(n_threads, mode):
    """A batch cut into several chunks (and threads): y, dL/dw, dL/db and dL/dx equal their
    einsum definitions in float64, and need_dx=False gives the same parameter gradients."""
    layer, _ = Conv2D(24, 3, padding=((2, 0), (1, 1))).init(0, (15, 16, 32), np.float64)
    rng = np.random.default_rng(8)
    layer = attrs.evolve(layer, b=rng.normal(size=24))
    x = rng.normal(size=(21, 15, 16, 32))
    with fnn.threads(n_threads), formulation(mode), kernel_calls() as calls:
        y, pullback = layer.vjp(x)
        dy = rng.normal(size=y.shape)
        grads, dx = pullback(dy)
        grads_no_dx, no_dx = layer.vjp(x, need_dx=False)[1](dy)
    assert calls[mode].call_count >= 4 and no_dx is None  # 2 passes x at least 2 chunks
    xp = np.pad(x, ((0, 0), (2, 0), (1, 1), (0, 0)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # n,p,q,c,i,j
    np.testing.assert_allclose(y, np.einsum("npqcij,ijco->npqo", cols, layer.w) + layer.b)
    np.testing.assert_allclose(grads.w, np.einsum("npqcij,npqo->ijco", cols, dy), rtol=1e-10)
    np.testing.assert_allclose(grads.b, dy.sum(axis=(0, 1, 2)), rtol=1e-10)
    dxp = np.zeros_like(xp)
    for i in range(3):
        for j in range(3):
            dxp[:, i : i + y.shape[1], j : j + y.shape[2]] += dy @ layer.w[i, j].T
    np.testing.assert_allclose(dx, dxp[:, 2:, 1:-1], rtol=1e-10, atol=1e-12)
    assert fnn.tree.allclose(grads, grads_no_dx, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["winograd", "shifted"])
def test_fast_formulations_in_float32_are_as_accurate_as_documented(mode):
    """In float32, on the ResNet block's shape, the output and gradients differ from the
    float64 result by at most 2e-6 of their largest entry (docs/math/conv.md quotes the
    measured errors: below 1e-6; Winograd's dL/dw about 2x im2col's, its y and dx smaller)."""
    layer64, _ = Conv2D(32, 3, padding="same").init(3, (14, 14, 32), np.float64)
    layer64 = attrs.evolve(layer64, b=np.random.default_rng(9).normal(size=32) * 0.1)
    layer32 = fnn.tree.map(lambda a: a.astype(np.float32), layer64)
    rng = np.random.default_rng(10)
    x, dy = rng.normal(size=(16, 14, 14, 32)), rng.normal(size=(16, 14, 14, 32))
    with formulation("im2col"):
        y64, pullback64 = layer64.vjp(x)
        g64, dx64 = pullback64(dy)
    with formulation(mode), kernel_calls() as calls:
        y32, pullback32 = layer32.vjp(x.astype(np.float32))
        g32, dx32 = pullback32(dy.astype(np.float32))
    assert calls[mode].called and y32.dtype == dx32.dtype == g32.w.dtype == np.float32
    for got, want in ((y32, y64), (dx32, dx64), (g32.w, g64.w), (g32.b, g64.b)):
        assert np.abs(got - want).max() <= 2e-6 * np.abs(want).max()


# (layer, input shape, the small-matrix rule's pick, the generic rule's pick)
RULE_CASES = [
    (Conv2D(32, 3, padding="same"), (14, 14, 32), "shifted", "winograd"),  # ResNet-style block
    (Conv2D(64, 3, padding="same"), (28, 28, 32), "winograd", "winograd"),  # 32 -> 64
    (Conv2D(64, 3, padding="same"), (14, 14, 64), "winograd", "winograd"),  # 64 -> 64
    (Conv2D(64, 3), (13, 13, 64), "winograd", "winograd"),  # 11x11 outputs: tiles waste 39%
    (Conv2D(16, 3), (13, 13, 32), "shifted", "im2col"),  # ... generic: 32 -> 16 at 39% loses
    (Conv2D(64, 3, padding="same"), (7, 7, 64), "shifted", "im2col"),  # 7x7: tiles waste 63%
    (Conv2D(16, 3), (28, 28, 1), "im2col", "im2col"),  # the CNN's first layer: one channel
    (Conv2D(16, 3, padding="same"), (28, 28, 3), "im2col", "im2col"),  # RGB input
    (Conv2D(32, 3), (13, 13, 16), "shifted", "im2col"),  # the CNN's second layer
    (Conv2D(32, 3, padding="same"), (13, 13, 16), "shifted", "winograd"),  # tiles waste 33%
    (Conv2D(64, 3, padding="same"), (14, 14, 16), "shifted", "winograd"),  # 4x the channels
    (Conv2D(64, 3), (13, 13, 16), "im2col", "im2col"),  # 4x the channels, grid wastes 40%
    (Conv2D(32, 3, padding="same"), (14, 14, 8), "shifted", "im2col"),  # 8 channels in
    (Conv2D(8, 3, padding="same"), (14, 14, 64), "shifted", "winograd"),  # fewer channels out
    (Conv2D(32, 3, dilation=2, padding="same"), (14, 14, 32), "shifted", "shifted"),  # dilation
    (Conv2D(16, 3, dilation=2, padding="same"), (28, 28, 32), "shifted", "shifted"),  # fewer out
    (Conv2D(64, 3, dilation=2, padding="same"), (28, 28, 32), "shifted", "im2col"),  # more out
    (Conv2D(32, 5, padding="same"), (14, 14, 32), "shifted", "shifted"),  # 5x5, grid wastes 31%
    (Conv2D(64, 5, padding="same"), (14, 14, 32), "shifted", "im2col"),  # 5x5, more out
    (Conv2D(32, 5), (14, 14, 32), "im2col", "im2col"),  # 5x5 valid: grid wastes 96%
    (Conv2D(32, 1), (14, 14, 32), "im2col", "im2col"),  # 1x1: x is its own im2col matrix
    (Conv2D(32, 3, strides=2, padding="same"), (14, 14, 32), "im2col", "im2col"),  # stride 2
]


@pytest.mark.parametrize(
    ("libraries", "expected"),
    [
        ([{"user_api": "blas", "internal_api": "openblas", "architecture": "SkylakeX"}], True),
        ([{"user_api": "blas", "internal_api": "openblas", "architecture": "Cooperlake"}], True),
        ([{"user_api": "blas", "internal_api": "openblas", "architecture": "Haswell"}], False),
        ([{"user_api": "blas", "internal_api": "openblas", "architecture": None}], False),
        ([{"user_api": "blas", "internal_api": "mkl", "architecture": "SkylakeX"}], False),
        ([{"user_api": "openmp", "internal_api": "openmp"}], False),
        (None, False),  # threadpoolctl not installed
    ],
)
def test_the_rule_follows_the_blas_kernel_numpy_loaded(libraries, expected):
    """small_matrix_blas() is true only for OpenBLAS on a core with small-matrix kernels
    (asked of threadpoolctl), and false without threadpoolctl: the generic rule."""
    import threadpoolctl

    if libraries is None:
        patch = mock.patch.dict("sys.modules", {"threadpoolctl": None})
    else:
        patch = mock.patch.object(threadpoolctl, "threadpool_info", return_value=libraries)
    with patch:
        assert _conv_rule.small_matrix_blas.__wrapped__() is expected


@pytest.mark.parametrize("small_matrix_blas", [True, False])
@pytest.mark.parametrize(("layer", "in_shape", "small_pick", "generic_pick"), RULE_CASES)
def test_the_formulation_is_chosen_where_it_measured_fastest(
    layer, in_shape, small_pick, generic_pick, small_matrix_blas
):
    """The automatic rule (Conv2D._formulation) picks each formulation where it measured
    fastest on its kind of BLAS kernel (OpenBLAS with small-matrix kernels, or any other);
    forced, Winograd applies to 3x3 stride-1 undilated kernels only and shifted products to
    every stride-1 kernel (other layers fall back to im2col)."""
    layer, _ = layer.init(0, in_shape, np.float32)
    x = np.zeros((2, *in_shape), np.float32)
    expected = small_pick if small_matrix_blas else generic_pick
    with (
        mock.patch.object(_conv_rule, "small_matrix_blas", return_value=small_matrix_blas),
        kernel_calls() as calls,
    ):
        layer.forward(x)
    assert {name for name, spy in calls.items() if spy.called} == {expected} - {"im2col"}
    stride1 = layer.strides == (1, 1)
    with formulation("winograd"), kernel_calls() as calls:
        layer.forward(x)
    undilated_3x3 = layer.kernel_size == (3, 3) and layer.dilation == (1, 1)
    assert calls["winograd"].called == (undilated_3x3 and stride1)
    assert not calls["shifted"].called
    with formulation("shifted"), kernel_calls() as calls:
        layer.forward(x)
    assert calls["shifted"].called == stride1 and not calls["winograd"].called


@st.composite
def stride1_case(draw):
    """A float64 stride-1 Conv2D with any kernel of 1-3 x 1-3, dilation 1-2, any padding
    form (also pads of 3-4), 1-3 channels in and out, a non-zero bias or none, image sides
    giving 1-5 output rows and columns, and a fitting input of 1-3 images."""
    wide = st.tuples(st.integers(0, 4), st.integers(0, 4))
    layer = Conv2D(
        draw(small),
        (draw(small), draw(small)),
        padding=draw(st.one_of(paddings(), st.tuples(wide, wide))),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        use_bias=draw(st.booleans()),
    )
    return built_with_input(draw, layer, extra_sides=4)


@given(stride1_case())
def test_shifted_products_match_the_defining_sum(case):
    """The sum of kh·kw shifted products on the flat padded grid equals the convolution sum
    written with loops, in float64 to 1e-12, for any kernel, dilation and padding."""
    layer, x = case
    with formulation("shifted"), kernel_calls() as calls:
        y = layer.forward(x)
    assert calls["shifted"].called
    np.testing.assert_allclose(y, reference_conv(layer, x), rtol=1e-12, atol=1e-12)


@given(stride1_case(), st.integers(0, 2**31))
def test_shifted_products_gradient_matches_finite_differences(case, seed):
    """The shifted-product pullback (shifted products the other way, zeros off the output
    grid) gives dL/dx, dL/dw and dL/db that agree with central differences for a random
    cotangent."""
    layer, x = case
    with formulation("shifted"), kernel_calls() as calls:
        testing.check_layer(layer, x, seed=seed)
    assert calls["shifted"].called
