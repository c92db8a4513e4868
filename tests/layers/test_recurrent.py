"""Tests of fnn.layers.lstm.LSTM and fnn.layers.gru.GRU: backpropagation through time,
the carry, shapes, purity, errors, and (when torch is installed) PyTorch's numbers."""

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import initializers, testing
from fnn.layers.gru import GRU
from fnn.layers.lstm import LSTM

F64 = np.dtype(np.float64)
CLASSES = [LSTM, GRU]


def _randomise(layer, seed):
    """The layer with every parameter array redrawn (non-zero biases reach every code path)."""
    rng = np.random.default_rng(seed)
    arrays = {f: rng.normal(0, 0.6, getattr(layer, f).shape) for f in ("w", "u", "b")}
    if isinstance(layer, GRU):
        arrays["b_hn"] = rng.normal(0, 0.6, layer.b_hn.shape)
    return attrs.evolve(layer, **arrays)


@st.composite
def built_rnn(draw, max_time=5):
    """A float64 LSTM or GRU with random parameters and a batch (time 1 and batch 1 included)."""
    cls = draw(st.sampled_from(CLASSES))
    units, d_in, time = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, max_time))
    layer = cls(units, return_sequences=draw(st.booleans()))
    built, out_shape = layer.init(draw(st.integers(0, 2**31)), (time, d_in), F64)
    built = _randomise(built, draw(st.integers(0, 2**31)))
    x = draw(testing.arrays((draw(testing.batch_sizes(3)), time, d_in), low=-2, high=2))
    return built, out_shape, x


def _random_carry(layer, batch, seed):
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(0, 0.8, (batch, layer.units)) for _ in range(layer.carry_size))


@given(built_rnn())
def test_shape_promised_by_init_is_produced(case):
    """The shape init promises equals forward's: (time, units), or (units,) without sequences."""
    layer, out_shape, x = case
    assert layer.forward(x).shape == (x.shape[0], *out_shape)


@given(built_rnn(), st.integers(0, 2**31))
def test_gradient_matches_finite_differences(case, seed):
    """dL/dx and dL/d(w, u, b[, b_hn]) agree with central differences for a random cotangent
    (with return_sequences=False the cotangent is on the last step only)."""
    layer, _, x = case
    testing.check_layer(layer, x, seed=seed)


def _concat_outputs(layer, x, carry):
    y, final = layer.forward_with_carry(x, carry)
    return np.concatenate([y.ravel(), *(f.ravel() for f in final)])


def _split_cotangent(v, y_shape, carry):
    sizes = [int(np.prod(y_shape))] + [c.size for c in carry]
    parts = np.split(v, np.cumsum(sizes)[:-1])
    return parts[0].reshape(y_shape), tuple(p.reshape(c.shape) for p, c in zip(parts[1:], carry, strict=True))


@given(built_rnn(), st.integers(0, 2**31))
def test_carry_gradients_match_finite_differences(case, seed):
    """With a random initial carry and random cotangents on y and on the final carry,
    vjp_with_carry's gradients for x, every parameter and every initial carry array agree
    with central differences."""
    layer, _, x = case
    carry = _random_carry(layer, x.shape[0], seed)

    def check(name, point, rebuild, grad_of):
        def f(a):
            lay, xx, cc = rebuild(a)
            return _concat_outputs(lay, xx, cc)

        def vjp(a):
            lay, xx, cc = rebuild(a)
            y, final, pullback = lay.vjp_with_carry(xx, cc)

            def back(v):
                dy, dfinal = _split_cotangent(v, y.shape, final)
                return grad_of(*pullback(dy, dfinal))

            return np.concatenate([y.ravel(), *(c.ravel() for c in final)]), back

        testing.check_vjp(f, vjp, point, seed=seed, who=f"{layer.name} {name}")

    check("x", x, lambda a: (layer, a, carry), lambda dl, dx, dc: dx)
    for k, part in enumerate(carry):
        check(f"carry[{k}]", part,
              lambda a, k=k: (layer, x, (*carry[:k], a, *carry[k + 1:])),
              lambda dl, dx, dc, k=k: dc[k])
    for field in [f.name for f in attrs.fields(type(layer)) if f.name in ("w", "u", "b", "b_hn")]:
        check(field, getattr(layer, field),
              lambda a, field=field: (attrs.evolve(layer, **{field: a}), x, carry),
              lambda dl, dx, dc, field=field: getattr(dl, field))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_long_sequences_backpropagate_through_time(cls, return_sequences):
    """Over 24 steps (long BPTT) every gradient still agrees with central differences, and the
    loss at the last step reaches the first input (the gradient there is not zero)."""
    layer, _ = cls(5, return_sequences=return_sequences).init(3, (24, 3), F64)
    layer = _randomise(layer, 11)
    x = np.random.default_rng(4).normal(0, 1, (2, 24, 3))
    report = testing.check_layer(layer, x, seed=5, n_directions=3)
    assert report.ok
    dy = np.zeros((2, 5))
    dy[:, 0] = 1.5
    dy[:, 3] = -0.7
    if return_sequences:
        dy = np.concatenate([np.zeros((2, 23, 5)), dy[:, None]], axis=1)
    _, dx = layer.vjp(x)[1](dy)
    assert np.abs(dx[:, 0]).max() > 1e-8


@given(built_rnn())
def test_forward_and_pullback_are_pure(case):
    """forward/vjp and the carry methods leave x, the carry and the parameters unchanged and
    read-only; the gradient arrays are read-only."""
    layer, _, x = case
    carry = _random_carry(layer, x.shape[0], 0)
    before = [x.copy(), *(c.copy() for c in carry), layer.w.copy(), layer.u.copy(), layer.b.copy()]
    y, final, pullback = layer.vjp_with_carry(x, carry)
    rng = np.random.default_rng(1)
    dlayer, _, _ = pullback(rng.normal(size=y.shape), tuple(rng.normal(size=f.shape) for f in final))
    layer.vjp(x)[1](rng.normal(size=y.shape))
    after = [x, *carry, layer.w, layer.u, layer.b]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not any(getattr(layer, f).flags.writeable for f in ("w", "u", "b"))
    assert not any(getattr(dlayer, f).flags.writeable for f in ("w", "u", "b"))


@given(built_rnn(), st.integers(0, 2**31))
def test_carry_continues_a_sequence(case, seed):
    """Running two chunks with the carry handed over equals running the whole sequence, and
    forward with a zero carry equals the protocol's forward; the final carry's h is the last
    output."""
    layer, _, x = case
    full = attrs.evolve(layer, return_sequences=True)
    y, final = full.forward_with_carry(x)
    np.testing.assert_array_equal(y, full.forward(x))
    np.testing.assert_allclose(final[0], y[:, -1], rtol=0, atol=0)
    cut = x.shape[1] // 2
    if cut:
        y1, c1 = full.forward_with_carry(x[:, :cut])
        y2, c2 = full.forward_with_carry(x[:, cut:], c1)
        np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y, rtol=1e-12, atol=1e-12)
        for a, b in zip(c2, final, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    last = attrs.evolve(layer, return_sequences=False).forward(x)
    np.testing.assert_array_equal(last, y[:, -1])


@pytest.mark.parametrize("cls", CLASSES)
def test_float32_stays_float32(cls):
    """A float32 layer computes its output, carry and gradients in float32."""
    layer, _ = cls(3).init(0, (4, 2), np.dtype(np.float32))
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(3, 4, 2)
    y, final, pullback = layer.vjp_with_carry(x)
    dlayer, dx, dcarry = pullback(np.full(y.shape, 0.3, np.float32) * np.arange(3, dtype=np.float32))
    arrays = [y, *final, dx, *dcarry, dlayer.w, dlayer.u, dlayer.b]
    assert all(a.dtype == np.float32 for a in arrays)


@pytest.mark.parametrize("cls", CLASSES)
def test_need_dx_false_skips_input_gradient(cls):
    """With need_dx=False the pullback returns dx=None and the same parameter gradients."""
    layer, _ = cls(3).init(0, (4, 2), F64)
    x = np.random.default_rng(0).normal(size=(2, 4, 2))
    dy = np.random.default_rng(1).normal(size=(2, 4, 3))
    d1, dx1 = layer.vjp(x)[1](dy)
    d2, dx2 = layer.vjp(x, need_dx=False)[1](dy)
    assert dx1 is not None and dx2 is None
    for f in ("w", "u", "b"):
        np.testing.assert_array_equal(getattr(d1, f), getattr(d2, f))


def test_initialisation():
    """The LSTM's forget block starts at forget_bias and the rest of b at 0; u has orthonormal
    rows; the GRU's biases start at 0; the same key gives the same parameters."""
    lstm, _ = LSTM(3, forget_bias=2.0).init(0, (4, 2), F64)
    np.testing.assert_array_equal(lstm.b, [0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(lstm.u @ lstm.u.T, np.eye(3), atol=1e-12)
    gru, _ = GRU(3).init(0, (4, 2), F64)
    assert not gru.b.any() and not gru.b_hn.any()
    np.testing.assert_allclose(gru.u @ gru.u.T, np.eye(3), atol=1e-12)
    again, _ = LSTM(3, forget_bias=2.0).init(0, (4, 2), F64)
    np.testing.assert_array_equal(again.u, lstm.u)


def test_orthogonal_initializer():
    """orthogonal gives orthonormal rows or columns (whichever are fewer), by name too."""
    wide = initializers.orthogonal(1, (3, 8), F64)
    tall = initializers.resolve("orthogonal")(1, (8, 3), np.dtype(np.float32))
    np.testing.assert_allclose(wide @ wide.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(tall.T @ tall, np.eye(3), atol=1e-6)
    assert tall.dtype == np.float32
    with pytest.raises(ValueError, match=r"orthogonal: shape must have at least two axes"):
        initializers.orthogonal(0, (4,), F64)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    ("x", "err", "pattern"),
    [
        (np.zeros((2, 4, 3)), ValueError, r"x has shape \(2, 4, 3\) but this layer was built for \(batch, time, 2\)"),
        (np.zeros((4, 2)), ValueError, r"\(batch, time, d_in\) \(3 axes\), got shape \(4, 2\); add a batch axis"),
        (np.zeros((2, 0, 2)), ValueError, r"\(2, 0, 2\), which holds no values"),
        (np.zeros((2, 4, 2), np.float32), TypeError, r"cast the input with x.astype\(np.float64\)"),
        (np.zeros((2, 4, 2), np.int64), TypeError, r"floating-point"),
    ],
)
def test_bad_inputs_name_the_problem(cls, x, err, pattern):
    """Wrong width, rank, length, dtype or kind raise with the layer's name and the fix."""
    layer, _ = cls(3).init(0, (4, 2), F64)
    with pytest.raises(err, match=rf"{cls.__name__}\(units=3\): .*{pattern}"):
        layer.forward(x)


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_carries_and_configs(cls):
    """A carry of the wrong kind, length, shape or dtype, a bad dcarry, a bad config, an unbuilt
    layer and a non-sequence input shape are refused with the fix."""
    layer, _ = cls(3).init(0, (4, 2), F64)
    x = np.zeros((2, 4, 2))
    good = tuple(np.zeros((2, 3)) for _ in range(layer.carry_size))
    with pytest.raises(TypeError, match=r"carry must be a tuple .* got ndarray; pass None"):
        layer.forward_with_carry(x, np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"got tuple of 3"):
        layer.forward_with_carry(x, (np.zeros((2, 3)),) * 3)
    with pytest.raises(ValueError, match=r"carry arrays must have shape \(batch, units\) = \(2, 3\), got \(1, 3\)"):
        layer.forward_with_carry(x, tuple(np.zeros((1, 3)) for _ in good))
    with pytest.raises(TypeError, match=r"each carry array must be a float64 NumPy array"):
        layer.forward_with_carry(x, tuple(np.zeros((2, 3), np.float32) for _ in good))
    y, final, pullback = layer.vjp_with_carry(x, good)
    with pytest.raises(ValueError, match=r"dcarry arrays must have shape \(2, 3\)"):
        pullback(np.zeros(y.shape), tuple(np.zeros((2, 2)) for _ in final))
    with pytest.raises(TypeError, match=r"dcarry must be a tuple like the final carry"):
        pullback(np.zeros(y.shape), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 3\), expected \(2, 4, 3\)"):
        pullback(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="units must be a positive int"):
        cls(0)
    with pytest.raises(ValueError, match="not initialised"):
        cls(2).forward(x)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, time, d_in\).*Embedding"):
        cls(2).init(0, (4,), F64)
    if cls is LSTM:
        with pytest.raises(ValueError, match="forget_bias must be a finite number"):
            LSTM(2, forget_bias=float("nan"))


# ---------------------------------------------------------------------------
# PyTorch's numbers (skipped when torch is not installed)


def _torch_rnn(layer, torch):
    """A torch.nn.LSTM/GRU (float64) holding the layer's weights, mapped as the docstrings say."""
    n = layer.units
    cls = torch.nn.LSTM if isinstance(layer, LSTM) else torch.nn.GRU
    t = cls(layer.w.shape[0], n, batch_first=True).double()
    bias_hh = np.zeros_like(layer.b)
    if isinstance(layer, GRU):
        bias_hh[2 * n :] = layer.b_hn
    with torch.no_grad():
        t.weight_ih_l0.copy_(torch.tensor(layer.w.T))
        t.weight_hh_l0.copy_(torch.tensor(layer.u.T))
        t.bias_ih_l0.copy_(torch.tensor(layer.b))
        t.bias_hh_l0.copy_(torch.tensor(bias_hh))
    return t


@pytest.mark.parametrize("cls", CLASSES)
def test_matches_pytorch(cls):
    """Forward outputs, final carry and all gradients equal PyTorch's for the mapped weights
    (i, f, g, o blocks for the LSTM; r, z, n with the reset after the product for the GRU)."""
    torch = pytest.importorskip("torch")
    layer, _ = cls(4).init(0, (6, 3), F64)
    layer = _randomise(layer, 2)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 3))
    carry = _random_carry(layer, 2, 4)
    dy = rng.normal(size=(2, 6, 4))
    y, final, pullback = layer.vjp_with_carry(x, carry)
    dlayer, dx, dcarry = pullback(dy)

    t = _torch_rnn(layer, torch)
    xt = torch.tensor(x, requires_grad=True)
    ct = tuple(torch.tensor(c[None], requires_grad=True) for c in carry)
    yt, final_t = t(xt, ct if cls is LSTM else ct[0])
    final_t = final_t if cls is LSTM else (final_t,)
    (yt * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    for a, b in zip(final, final_t, strict=True):
        np.testing.assert_allclose(a, b.detach().numpy()[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(dcarry, ct, strict=True):
        np.testing.assert_allclose(a, b.grad.numpy()[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlayer.w, t.weight_ih_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlayer.u, t.weight_hh_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlayer.b, t.bias_ih_l0.grad.numpy(), rtol=1e-10, atol=1e-12)
    if cls is GRU:
        np.testing.assert_allclose(dlayer.b_hn, t.bias_hh_l0.grad.numpy()[8:], rtol=1e-10, atol=1e-12)


def test_a_forget_bias_beyond_float_range_is_a_value_error():
    """Found by the slow fuzz run: float(10**400) raised OverflowError in the validator."""
    with pytest.raises(ValueError, match=r"LSTM: forget_bias must be a finite number, got 1000"):
        LSTM(3, forget_bias=10**400)
