"""Tests of fnn.layers.attention: the masked softmax and MultiHeadAttention (gradient, masking,
shape, purity, errors, PyTorch's numbers), and LayerNorm on (batch, time, d) sequences."""

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import GELU, Dense, Residual, Sequential, testing
from fnn.layers.attention import (
    MultiHeadAttention,
    causal_mask,
    masked_softmax,
    masked_softmax_pullback,
)
from fnn.layers.norm import LayerNorm

F64 = np.dtype(np.float64)


@st.composite
def scores_and_mask(draw):
    """Scores (..., n) and a random mask, often with fully masked rows."""
    shape = draw(testing.shapes(min_rank=1, max_rank=3, max_side=5))
    s = draw(testing.arrays(shape, low=-5, high=5))
    seed = draw(st.integers(0, 2**31))
    keep = np.random.default_rng(seed).random(shape) < draw(st.sampled_from([0.2, 0.6, 1.0]))
    return s, keep


@given(scores_and_mask())
def test_masked_softmax_is_a_softmax_over_the_kept_entries(case):
    """Kept entries of a row are softmax(kept scores) and sum to 1; masked entries are exactly 0;
    a fully masked row is all zeros (no NaN, no warning: NumPy errors raise in tests)."""
    s, keep = case
    p = masked_softmax(s, keep)
    assert p.shape == s.shape and np.isfinite(p).all()
    assert not p[~keep].any()
    rows, row_keep = p.reshape(-1, s.shape[-1]), keep.reshape(-1, s.shape[-1])
    for r, k, sr in zip(rows, row_keep, s.reshape(-1, s.shape[-1]), strict=True):
        if k.any():
            e = np.exp(sr[k] - sr[k].max())
            np.testing.assert_allclose(r[k], e / e.sum(), rtol=1e-12, atol=1e-15)
        else:
            assert not r.any()


@given(st.sampled_from([1, 2, 16, 64, 65, 200]), st.integers(1, 6), st.booleans(),
       st.integers(0, 2**31))
def test_row_reductions_agree_with_numpy(n, rows, transposed, seed):
    """The fast row maximum and row sum (a loop of np.maximum, a product with ones, for rows
    up to 64 long) equal NumPy's reductions, for long rows (NumPy's own) and views too; the
    masked softmax of such rows still sums to 1."""
    from fnn.layers.attention import _row_max, _row_sum

    a = np.random.default_rng(seed).normal(size=(2, rows, n))
    if transposed and rows == n:
        a = a.transpose(0, 2, 1)
    np.testing.assert_array_equal(_row_max(a), a.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(_row_sum(a), a.sum(axis=-1, keepdims=True), rtol=1e-12, atol=1e-12)
    before = a.copy()
    p = masked_softmax(a, None)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(a, before)  # the softmax is computed in a new array


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_masked_rows_give_zeros_without_any_warning(dtype):
    """A fully masked row is all zeros, forward and backward, with every NumPy floating-point
    signal raising (underflow included)."""
    s = np.array([[[0.5, -2.0, 3.0], [1.0, 2.0, 3.0]], [[9.0, 8.0, 7.0], [0.0, 0.0, 0.0]]], dtype)
    keep = np.array([[[True, False, True], [False, False, False]],
                     [[False, False, False], [True, True, True]]])
    with np.errstate(all="raise"):
        p = masked_softmax(s, keep)
        ds = masked_softmax_pullback(p, np.full(s.shape, 0.7, dtype) * s)
    assert p.dtype == dtype and np.isfinite(p).all() and np.isfinite(ds).all()
    assert not p[0, 1].any() and not p[1, 0].any() and not ds[0, 1].any() and not ds[1, 0].any()
    np.testing.assert_allclose(p.sum(axis=-1), [[1, 0], [0, 1]], rtol=1e-6)


def test_masked_softmax_is_stable_for_extreme_scores():
    """Scores of ±1e300 neither overflow nor give NaN (the row maximum over the kept entries is
    subtracted first); exp's underflow to exactly 0 is IEEE's correct result."""
    s = np.array([[1e300, -1e300, 0.0], [5.0, 1e300, -1e300], [1.0, 2.0, 3.0]])
    keep = np.array([[True, True, True], [True, False, True], [False, False, False]])
    with np.errstate(all="raise", under="ignore"):
        p = masked_softmax(s, keep)
        plain = masked_softmax(s[:1], None)
    np.testing.assert_array_equal(p, [[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(plain, [[1, 0, 0]])


@given(scores_and_mask(), st.integers(0, 2**31))
def test_masked_softmax_gradient_matches_finite_differences(case, seed):
    """masked_softmax_pullback agrees with central differences of masked_softmax (fully masked
    rows and masked entries included: their gradient is 0)."""
    s, keep = case

    def vjp(a):
        p = masked_softmax(a, keep)
        return p, lambda dp: masked_softmax_pullback(p, dp)

    testing.check_vjp(lambda a: masked_softmax(a, keep), vjp, s, seed=seed, who="masked_softmax")


@st.composite
def built_attention(draw):
    """A float64 MultiHeadAttention with random biases, and a batch (time 1 included)."""
    heads = draw(st.integers(1, 3))
    key_dim = draw(st.one_of(st.none(), st.integers(1, 3)))
    d_model = heads * draw(st.integers(1, 3)) if key_dim is None else draw(st.integers(1, 5))
    time = draw(st.integers(1, 4))
    layer = MultiHeadAttention(heads, key_dim, causal=draw(st.booleans()), use_bias=draw(st.booleans()))
    built, out_shape = layer.init(draw(st.integers(0, 2**31)), (time, d_model), F64)
    if built.use_bias:
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        built = attrs.evolve(built, b_qkv=rng.normal(0, 0.5, built.b_qkv.shape),
                             b_o=rng.normal(0, 0.5, built.b_o.shape))
    x = draw(testing.arrays((draw(testing.batch_sizes(3)), time, d_model), low=-2, high=2))
    return built, out_shape, x


@given(built_attention())
def test_shape_promised_by_init_is_produced(case):
    """The shape init promises, (time, d_model), equals forward's."""
    layer, out_shape, x = case
    assert layer.forward(x).shape == (x.shape[0], *out_shape) == x.shape


@given(built_attention(), st.integers(0, 2**31))
def test_gradient_matches_finite_differences(case, seed):
    """dL/dx, dL/dw_qkv, dL/db_qkv, dL/dw_o and dL/db_o agree with central differences for a
    random cotangent, over head counts, head widths, causal on/off, with and without bias."""
    layer, _, x = case
    testing.check_layer(layer, x, seed=seed)


@given(built_attention(), st.integers(0, 2**31))
def test_causal_attention_never_looks_ahead(case, seed):
    """With causal=True, changing steps after t leaves the outputs up to t unchanged, and a
    cotangent on steps up to t gives no gradient to later inputs."""
    layer, _, x = case
    layer = attrs.evolve(layer, causal=True)
    t = x.shape[1] // 2
    rng = np.random.default_rng(seed)
    x2 = x.copy()
    x2[:, t + 1 :] += rng.normal(size=x2[:, t + 1 :].shape)
    np.testing.assert_allclose(layer.forward(x2)[:, : t + 1], layer.forward(x)[:, : t + 1],
                               rtol=1e-12, atol=1e-12)
    dy = np.zeros(x.shape)
    dy[:, : t + 1] = rng.normal(size=dy[:, : t + 1].shape)
    _, dx = layer.vjp(x)[1](dy)
    assert not dx[:, t + 1 :].any()


@given(built_attention(), st.integers(0, 2**31))
def test_full_attention_commutes_with_permuting_time(case, seed):
    """Without a mask (and without positions) attention is permutation-equivariant in time."""
    layer, _, x = case
    layer = attrs.evolve(layer, causal=False)
    perm = np.random.default_rng(seed).permutation(x.shape[1])
    np.testing.assert_allclose(layer.forward(x[:, perm]), layer.forward(x)[:, perm],
                               rtol=1e-10, atol=1e-12)


@given(built_attention())
def test_forward_and_pullback_are_pure(case):
    """forward/vjp leave x and the parameters unchanged and read-only."""
    layer, _, x = case
    fields = [f for f in ("w_qkv", "b_qkv", "w_o", "b_o") if getattr(layer, f) is not None]
    before = [x.copy(), *(getattr(layer, f).copy() for f in fields)]
    y, pullback = layer.vjp(x)
    dlayer, _ = pullback(np.random.default_rng(0).normal(size=y.shape))
    for a, b in zip(before, [x, *(getattr(layer, f) for f in fields)], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not any(getattr(layer, f).flags.writeable or getattr(dlayer, f).flags.writeable
                   for f in fields)


def test_float32_stays_float32():
    """A float32 layer computes its output and gradients in float32."""
    layer, _ = MultiHeadAttention(2, causal=True).init(0, (3, 4), np.dtype(np.float32))
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    y, pullback = layer.vjp(x)
    dlayer, dx = pullback(np.full(y.shape, 0.5, np.float32) * np.arange(4, dtype=np.float32))
    assert {a.dtype for a in (y, dx, dlayer.w_qkv, dlayer.b_qkv, dlayer.w_o, dlayer.b_o)} == {
        np.dtype(np.float32)
    }


def test_causal_mask():
    """causal_mask(t)[i, j] is j <= i."""
    np.testing.assert_array_equal(causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])


def test_errors_name_the_problem_and_fix():
    """Heads not dividing d_model (without key_dim), a non-sequence input, a wrong width or dtype,
    a bad config and an unbuilt layer raise with the layer's name and the fix."""
    with pytest.raises(ValueError, match=r"MultiHeadAttention\(heads=3\): heads=3 does not divide the model width d_model=8; choose heads dividing 8, or pass key_dim"):
        MultiHeadAttention(3).init(0, (4, 8), F64)
    layer, _ = MultiHeadAttention(3, 2).init(0, (4, 8), F64)  # with key_dim any width works
    assert layer.w_qkv.shape == (8, 18) and layer.w_o.shape == (6, 8)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, time, d_model\).*Embedding"):
        MultiHeadAttention(2).init(0, (8,), F64)
    with pytest.raises(ValueError, match=r"built for \(batch, time, 8\)"):
        layer.forward(np.zeros((1, 4, 6)))
    with pytest.raises(ValueError, match=r"\(3 axes\), got shape \(4, 8\); add a batch axis"):
        layer.forward(np.zeros((4, 8)))
    with pytest.raises(TypeError, match=r"cast the input with x.astype\(np.float64\)"):
        layer.forward(np.zeros((1, 4, 8), np.float32))
    with pytest.raises(ValueError, match="heads must be a positive int"):
        MultiHeadAttention(0)
    with pytest.raises(ValueError, match="key_dim must be a positive int"):
        MultiHeadAttention(2, -1)
    with pytest.raises(ValueError, match="not initialised"):
        MultiHeadAttention(2).forward(np.zeros((1, 2, 4)))
    _, pullback = layer.vjp(np.zeros((1, 4, 8)))
    with pytest.raises(ValueError, match=r"dy has shape \(1, 8\), expected \(1, 4, 8\)"):
        pullback(np.zeros((1, 8)))


@pytest.mark.parametrize("causal", [False, True])
def test_matches_pytorch(causal):
    """Output and every gradient equal torch.nn.MultiheadAttention's with the mapped weights
    (w_qkv = in_proj_weight.T, w_o = out_proj.weight.T)."""
    torch = pytest.importorskip("torch")
    layer, _ = MultiHeadAttention(2, causal=causal).init(0, (5, 8), F64)
    rng = np.random.default_rng(1)
    layer = attrs.evolve(layer, b_qkv=rng.normal(size=24), b_o=rng.normal(size=8))
    x, dy = rng.normal(size=(3, 5, 8)), rng.normal(size=(3, 5, 8))
    y, pullback = layer.vjp(x)
    dlayer, dx = pullback(dy)
    t = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()
    with torch.no_grad():
        t.in_proj_weight.copy_(torch.tensor(layer.w_qkv.T))
        t.in_proj_bias.copy_(torch.tensor(layer.b_qkv))
        t.out_proj.weight.copy_(torch.tensor(layer.w_o.T))
        t.out_proj.bias.copy_(torch.tensor(layer.b_o))
    xt = torch.tensor(x, requires_grad=True)
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1) if causal else None
    yt, _ = t(xt, xt, xt, attn_mask=mask, need_weights=False)
    (yt * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlayer.w_qkv, t.in_proj_weight.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlayer.b_qkv, t.in_proj_bias.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlayer.w_o, t.out_proj.weight.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlayer.b_o, t.out_proj.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# LayerNorm, the other half of a transformer block, on sequences


@given(st.integers(1, 3), st.integers(1, 4), st.integers(2, 5), st.integers(0, 2**31))
def test_layer_norm_normalises_each_step_of_a_sequence(batch, time, d, seed):
    """On (batch, time, d) LayerNorm normalises the last axis of every step (the same as on the
    (batch·time, d) rows), and its gradient agrees with central differences."""
    rng = np.random.default_rng(seed)
    layer, out_shape = LayerNorm().init(0, (time, d), F64)
    layer = attrs.evolve(layer, gamma=rng.normal(size=d), beta=rng.normal(size=d))
    x = rng.normal(0, 2, (batch, time, d))
    y = layer.forward(x)
    assert y.shape == (batch, *out_shape)
    np.testing.assert_allclose(y.reshape(-1, d), layer.forward(x.reshape(-1, d)), rtol=1e-12, atol=1e-12)
    xhat = (y - layer.beta) / layer.gamma
    np.testing.assert_allclose(xhat.mean(axis=-1), 0, atol=1e-9)
    testing.check_layer(layer, x, seed=seed)


# ---------------------------------------------------------------------------
# A whole pre-norm transformer block, built from Residual containers


@st.composite
def transformer_block(draw):
    """A float64 block Residual([LayerNorm, MultiHeadAttention]) then Residual([LayerNorm,
    Dense, GELU, Dense]) with every parameter moved at random (LayerNorm's scales and shifts
    included), and a normal batch (time 1 included)."""
    heads = draw(st.integers(1, 2))
    d_model = heads * draw(st.integers(1, 3))
    time = draw(st.integers(1, 4))
    causal = draw(st.booleans())
    block = Sequential([
        Residual([LayerNorm(), MultiHeadAttention(heads, causal=causal)]),
        Residual([LayerNorm(), Dense(draw(st.integers(1, 6))), GELU(), Dense(d_model)]),
    ])
    built, _ = block.init(draw(st.integers(0, 2**31)), (time, d_model), F64)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    # LayerNorm starts at scale 1, shift 0: move them so their gradients are generic too.
    built = fnn.tree.map(lambda a: a + rng.normal(0, 0.3, a.shape), built)
    # Normal draws from a drawn seed, as for LayerNorm alone (tests/layers/test_norm.py): an
    # element-wise Hypothesis array shrinks towards rows of nearly equal values, where
    # LayerNorm's derivative (1/std) is so large that central differences lose the digits.
    x = rng.normal(0, 1.5, (draw(testing.batch_sizes(3)), time, d_model))
    return built, x


@given(transformer_block(), st.integers(0, 2**31))
def test_transformer_block_gradient_matches_finite_differences(case, seed):
    """A whole transformer block (both Residual branches, LayerNorm, attention causal on/off,
    the GELU MLP): dL/dx and every parameter's gradient agree with central differences for a
    random cotangent, over batch sizes, sequence lengths from 1, head counts and widths."""
    block, x = case
    testing.check_layer(block, x, seed=seed)
