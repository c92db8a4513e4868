"""Tests of the softmax cross-entropies over sequences and with masks (issue 11).

Logits ``(batch, time, classes)`` with labels ``(batch, time)`` or one-hot targets, and
``y = (labels, mask)``: the mean over the unmasked positions, its gradient, the edges, the
errors, and the pair's way through ``fnn.value_and_grad``, ``fnn.evaluate`` and ``fnn.fit``.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnn
from fnn import losses, testing

SPARSE, DENSE = losses.sparse_softmax_cross_entropy, losses.softmax_cross_entropy
F32, F64 = np.float32, np.float64


@st.composite
def masked_case(draw, min_kept=0):
    """Logits (B, T, C), labels in range where kept and garbage (-1, C, 10**6) where masked,
    and a mask (B, T) in one of its accepted forms: bool, int 0/1 or float 0/1."""
    b, t, c = draw(testing.batch_sizes()), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    z = draw(testing.arrays((b, t, c), low=-8, high=8))
    keep = draw(hnp.arrays(bool, (b, t)))
    if keep.sum() < min_kept:
        keep = np.ones((b, t), bool)
    labels = draw(hnp.arrays(np.int64, (b, t), elements=st.integers(0, c - 1)))
    garbage = draw(st.sampled_from([-1, c, 10**6]))
    labels = np.where(keep, labels, garbage)
    form = draw(st.sampled_from([bool, np.int64, np.float32]))
    return z, labels, keep.astype(form), keep


def one_hot_with_garbage(labels, keep, c):
    """One-hot rows where kept; NaN, 7 and -1 (never valid targets) where masked."""
    y = np.eye(c)[np.clip(labels, 0, c - 1)]
    y[~keep] = np.array([np.nan, 7.0, -1.0, np.nan, 7.0])[:c]
    return y


@given(masked_case(), st.integers(0, 2**31))
def test_masked_sparse_gradient(case, seed):
    """sparse_softmax_cross_entropy over (batch, time, classes) with a mask: the gradient agrees
    with central differences (generated batch sizes, lengths from 1, class counts, masks,
    fully masked batches included)."""
    z, labels, mask, _ = case
    testing.check_loss(SPARSE, z, (labels, mask), seed=seed)


@given(masked_case(), st.integers(0, 2**31))
def test_masked_dense_gradient(case, seed):
    """softmax_cross_entropy over (batch, time, classes) with one-hot targets (garbage, NaN
    included, at masked positions) and a mask: the gradient agrees with central differences."""
    z, labels, mask, keep = case
    y = one_hot_with_garbage(labels, keep, z.shape[-1])
    testing.check_loss(DENSE, z, (y, mask), seed=seed)


@given(masked_case())
def test_masked_loss_is_the_plain_loss_on_the_kept_positions(case):
    """The masked loss equals the 2-d loss on the kept positions alone (z[keep], labels[keep]):
    the mean over the unmasked positions; its gradient is that loss's gradient there and exactly
    0 at masked positions; the one-hot version agrees with the sparse one."""
    z, labels, mask, keep = case
    value, grad = SPARSE.value_and_grad(z, (labels, mask))
    dense_value, dense_grad = DENSE.value_and_grad(
        z, (one_hot_with_garbage(labels, keep, z.shape[-1]), mask)
    )
    assert grad.shape == z.shape and grad.dtype == z.dtype
    assert not grad[~keep].any() and not dense_grad[~keep].any()
    if keep.any():
        plain_value, plain_grad = SPARSE.value_and_grad(z[keep], labels[keep])
        assert value == pytest.approx(plain_value, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(grad[keep], plain_grad, rtol=1e-12, atol=1e-15)
    else:
        assert value == 0.0 and not grad.any()
    assert dense_value == pytest.approx(value, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(dense_grad, grad, rtol=1e-12, atol=1e-15)


@given(masked_case(), st.integers(0, 2**31))
def test_unmasked_sequences_are_the_mean_over_every_position(case, seed):
    """Without a mask, (B, T, C) logits with (B, T) labels are the 2-d loss of the B·T
    positions as examples (reshape to (B·T, C)); the gradient checks by central differences."""
    z, labels, _, _ = case
    labels = np.clip(labels, 0, z.shape[-1] - 1)
    value, grad = SPARSE.value_and_grad(z, labels)
    flat_value, flat_grad = SPARSE.value_and_grad(z.reshape(-1, z.shape[-1]), labels.ravel())
    assert value == pytest.approx(flat_value, rel=1e-12)
    np.testing.assert_allclose(grad.reshape(flat_grad.shape), flat_grad, rtol=1e-12, atol=1e-15)
    testing.check_loss(SPARSE, z, labels, seed=seed)
    onehot = np.eye(z.shape[-1])[labels]
    testing.check_loss(DENSE, z, onehot, seed=seed)
    assert DENSE(z, onehot) == pytest.approx(value, rel=1e-12)


def test_mask_of_two_d_logits_masks_examples():
    """2-d logits (batch, classes) take a (batch,) mask: the mean over the kept examples."""
    z = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    keep = np.array([True, False, True])
    value, grad = SPARSE.value_and_grad(z, (np.array([1, -5, 0]), keep))
    assert value == pytest.approx(SPARSE(z[keep], np.array([1, 0])))
    assert not grad[1].any()


def test_reduction_over_positions():
    """The mean is over positions: repeating the batch or the time axis changes nothing, and
    appending fully masked examples (pure padding) changes neither value nor the gradient of
    the original examples (padding does not dilute the loss)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 3, 4))
    labels = rng.integers(0, 4, (2, 3))
    keep = np.array([[True, True, False], [True, False, False]])
    value, grad = SPARSE.value_and_grad(z, (labels, keep))
    for axis in (0, 1):
        doubled = SPARSE(np.concatenate([z, z], axis), (np.concatenate([labels, labels], axis),
                                                        np.concatenate([keep, keep], axis)))
        assert doubled == pytest.approx(value, rel=1e-14)
    padded_z = np.concatenate([z, rng.normal(size=(3, 3, 4))])
    padded_y = (np.concatenate([labels, np.full((3, 3), -1)]),
                np.concatenate([keep, np.zeros((3, 3), bool)]))
    padded_value, padded_grad = SPARSE.value_and_grad(padded_z, padded_y)
    assert padded_value == pytest.approx(value, rel=1e-14)
    np.testing.assert_allclose(padded_grad[:2], grad, rtol=1e-14)


def test_hand_computed_masked_value():
    """One kept position of p = 3/4 and one of p = 1/2: (−log ¾ − log ½) / 2; a third, masked
    position with a label of -1 adds nothing."""
    z = np.array([[[0.0, np.log(3.0)], [0.0, 0.0], [5.0, -5.0]]])
    value = SPARSE(z, (np.array([[1, 0, -1]]), np.array([[1, 1, 0]])))
    assert value == pytest.approx((-np.log(0.75) - np.log(0.5)) / 2, rel=1e-14)


# ---------------------------------------------------------------------------
# Edges


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("loss", [SPARSE, DENSE], ids=lambda f: f.name)
def test_fully_masked_batch_is_zero_with_zero_gradient(dtype, loss):
    """A fully masked batch (documented choice): value 0.0 and a gradient of zeros of pred's
    shape and dtype, also under np.errstate(all='raise'), whatever the logits and labels."""
    z = np.array([[[1000.0, -1000.0], [3.0, 1.0]]], dtype)
    labels = np.array([[-1, 99]])
    y = labels if loss is SPARSE else np.full((1, 2, 2), np.nan)
    with np.errstate(all="raise"):
        value, grad = loss.value_and_grad(z, (y, np.zeros((1, 2), bool)))
    assert value == 0.0 and grad.shape == z.shape and grad.dtype == dtype and not grad.any()


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("sparse", [False, True])
def test_sequences_at_logits_of_1000(dtype, sparse):
    """At logits ±1000, per position as for 2-d logits: all mass on the label costs 0 with
    gradient 0; on another class 2000 with gradient ±1/n (n kept positions); masked positions
    holding the same logits add nothing."""
    z = np.array([[[1000.0, -1000.0], [1000.0, -1000.0], [-1000.0, 1000.0]]], dtype)
    labels = np.array([[0, 1, 0]])
    keep = np.array([[True, True, False]])
    loss = SPARSE if sparse else DENSE
    y = labels if sparse else np.eye(2, dtype=dtype)[labels]
    with np.errstate(all="raise"):
        value, grad = loss.value_and_grad(z, (y, keep))
    assert value == 2000 / 2
    np.testing.assert_array_equal(grad, np.array([[[0, 0], [0.5, -0.5], [0, 0]]], dtype))


@pytest.mark.parametrize("sparse", [False, True])
def test_sequences_with_one_class(sparse):
    """With one class the loss is 0 and the gradient 0 at every position, masked or not."""
    z = np.array([[[1000.0], [-1000.0], [0.3]]])
    y = np.zeros((1, 3), np.int64) if sparse else np.ones((1, 3, 1))
    loss = SPARSE if sparse else DENSE
    for target in (y, (y, np.array([[True, False, True]]))):
        value, grad = loss.value_and_grad(z, target)
        assert value == 0.0 and not grad.any()


def test_garbage_under_the_mask_is_never_read():
    """Labels -1, 27 or 10**9 at masked positions give bit-identical value and gradient to
    labels 0 there; unmasked, the same -1 is refused naming its position."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3, 4, 27)).astype(np.float32)
    labels = rng.integers(0, 27, (3, 4))
    keep = rng.random((3, 4)) < 0.6
    keep[0, 0] = False
    reference = SPARSE.value_and_grad(z, (np.where(keep, labels, 0), keep))
    for garbage in (-1, 27, 10**9):
        value, grad = SPARSE.value_and_grad(z, (np.where(keep, labels, garbage), keep))
        assert value == reference[0]
        np.testing.assert_array_equal(grad, reference[1])
    bad = np.where(keep, labels, -1)
    with pytest.raises(ValueError, match=r"label -1 at position \(0, 0\) is out of range"):
        SPARSE(z, bad)


# ---------------------------------------------------------------------------
# Bad input: the loss, expected vs got, and the fix


Z = np.zeros((2, 3, 4))
LABELS = np.zeros((2, 3), np.int64)
KEEP = np.ones((2, 3), bool)


@pytest.mark.parametrize(
    ("loss", "y", "err", "pattern"),
    [
        (SPARSE, (LABELS, np.ones((2, 4), bool)), ValueError,
         r"sparse_softmax_cross_entropy: mask has shape \(2, 4\) but expected \(2, 3\) for "
         r"logits of shape \(2, 3, 4\); one entry per position"),
        (SPARSE, (LABELS, np.ones((2, 3, 4), bool)), ValueError,
         r"not per class: pass mask\[\.\.\., 0\]"),
        (SPARSE, (LABELS, np.ones((3, 2), bool)), ValueError, r"mask transposed"),
        (DENSE, (np.zeros((2, 3, 4)), np.ones(3, bool)), ValueError,
         r"softmax_cross_entropy: mask has shape \(3,\) but expected \(2, 3\)"),
        (SPARSE, (LABELS, np.full((2, 3), 2)), ValueError,
         r"mask must hold only 0 and 1 \(or False and True\), got 2; 1/True marks"),
        (SPARSE, (LABELS, np.full((2, 3), np.nan)), ValueError, r"mask must hold only 0 and 1"),
        (SPARSE, (LABELS, np.full((2, 3), "a")), TypeError, r"mask must be bool or 0/1 numbers"),
        (SPARSE, (LABELS, [[1, 1, 1]] * 2), TypeError, r"mask must be a NumPy array of shape "
         r"\(2, 3\), got list"),
        (SPARSE, (LABELS, KEEP, KEEP), TypeError, r"a pair \(targets, mask\), got a tuple of 3"),
        (SPARSE, (np.full((2, 3), 4), KEEP), ValueError,
         r"label 4 at position \(0, 0\) is out of range for 4 classes \(labels must be in "
         r"0..3\) and not masked; mask the position out \(mask False\) if it is padding"),
        (SPARSE, np.full((2, 3), -1), ValueError,
         r"label -1 at position \(0, 0\) .*for padding pass y = \(labels, mask\)"),
        (SPARSE, np.zeros((2, 3), np.float64), TypeError, r"astype\(np.int64\)"),
        (SPARSE, np.zeros((2, 3, 1), np.int64), ValueError,
         r"y has shape \(2, 3, 1\) but expected integer labels of shape \(2, 3\).*y\[\.\.\., 0\]"),
        (SPARSE, np.zeros((2, 3, 4)), ValueError, r"for one-hot targets use "
         r"fnn.losses.softmax_cross_entropy"),
        (SPARSE, np.zeros(2, np.int64), ValueError, r"expected integer labels of shape \(2, 3\)"),
        (DENSE, LABELS, ValueError, r"integer labels of shape \(2, 3\).*use "
         r"fnn.losses.sparse_softmax_cross_entropy"),
        (DENSE, np.zeros((2, 4, 3)), ValueError, r"y has shape \(2, 4, 3\) but pred has shape"),
        (DENSE, (np.full((2, 3, 4), 2.0), KEEP), ValueError, r"targets must lie in \[0, 1\]"),
        (SPARSE, np.ma.array(LABELS, mask=~KEEP), TypeError,
         r"masked array.*pass the pair \(y.filled\(0\), ~np.ma.getmaskarray\(y\)\)"),
    ],
)
def test_bad_sequence_targets_name_the_problem(loss, y, err, pattern):
    """Masks of the wrong shape, dtype or values; out-of-range labels where unmasked; labels
    and targets of the wrong shape or kind: the error names the loss, what it expected, what
    came and the fix."""
    with pytest.raises(err, match=pattern):
        loss.value_and_grad(Z, y)


def test_other_shapes_and_losses_refuse_sequences_or_masks():
    """4-d logits are refused with a reshape hint; the element-wise losses refuse a pair."""
    with pytest.raises(ValueError, match=r"\(batch, time, classes\), got \(1, 2, 3, 4\).*reshape"):
        SPARSE(np.zeros((1, 2, 3, 4)), np.zeros((1, 2, 3), np.int64))
    for loss in (losses.mse, losses.binary_cross_entropy, losses.binary_cross_entropy_with_logits):
        with pytest.raises(TypeError, match=rf"{loss.name}: y is a tuple, but this loss takes no "
                           r"mask"):
            loss(np.full((2, 3), 0.5), (np.zeros((2, 3)), np.ones(2, bool)))


def test_inputs_are_not_changed():
    """Logits, labels and the mask are unchanged (and stay read-only) after the call."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=(2, 3, 5))
    labels = np.where(rng.random((2, 3)) < 0.5, rng.integers(0, 5, (2, 3)), -1)
    keep = labels >= 0
    for a in (z, labels, keep):
        a.flags.writeable = False
    copies = [a.copy() for a in (z, labels, keep)]
    SPARSE.value_and_grad(z, (labels, keep))
    DENSE.value_and_grad(z, (one_hot_with_garbage(labels, keep, 5), keep))
    for a, c in zip((z, labels, keep), copies, strict=True):
        np.testing.assert_array_equal(a, c)
        assert not a.flags.writeable


# ---------------------------------------------------------------------------
# Through value_and_grad, evaluate and fit: y = (labels, mask)

VOCAB, T = 6, 5


def padded_data(n=24, seed=0, garbage=-1):
    """Id sequences of random lengths 1..T; targets are the next id, padding is masked and
    holds ``garbage`` labels."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, n)
    keep = np.arange(T) < lengths[:, None]
    x = np.where(keep, rng.integers(0, VOCAB, (n, T)), 0)
    y = np.where(keep, (x + 1) % VOCAB, garbage)
    return x, y, keep


def lstm_net(dtype=np.float32):
    return fnn.init([fnn.Embedding(VOCAB, 4), fnn.LSTM(6), fnn.Dense(VOCAB)], (T,), key=3,
                    dtype=dtype)


def test_value_and_grad_of_a_network_with_a_mask_checks():
    """fnn.value_and_grad(net, x, (labels, mask), loss) of an Embedding-LSTM-Dense network agrees
    with central differences of fnn.loss for every parameter (float64)."""
    x, y, keep = padded_data(6)
    testing.check_network(lstm_net(np.float64), x, (y, keep), SPARSE, n_directions=2)


def test_fit_batches_the_mask_with_the_labels():
    """fit(net, opt, loss, (x, (labels, mask))): bit for bit the written-out loop of the fit
    docstring over fnn.batches (which shuffles labels and mask together); garbage labels under
    the mask (-1) give the same network as zeros there; the loss decreases."""
    x, y, keep = padded_data()
    net, opt = lstm_net(), fnn.optim.adam(0.05)
    trained, _, hist = fnn.fit(net, opt, SPARSE, (x, (y, keep)), epochs=3, key=7, batch_size=8,
                               progress=False)
    clean, _, _ = fnn.fit(net, opt, SPARSE, (x, (np.where(keep, y, 0), keep)), epochs=3, key=7,
                          batch_size=8, progress=False)
    assert fnn.tree.allclose(trained, clean, rtol=0, atol=0)
    by_hand, state = net, opt.init(net)
    for epoch in range(3):
        shuffle = fnn.random.fold_in(fnn.random.fold_in(7, epoch), 0)
        for xb, (yb, kb) in fnn.batches(x, (y, keep), 8, key=shuffle):
            assert (yb[kb] >= 0).all() and (yb[~kb] == -1).all()  # the mask moved with y
            _, grads = fnn.value_and_grad(by_hand, xb, (yb, kb), SPARSE)
            by_hand, state = opt.update(grads, state, by_hand)
    assert fnn.tree.allclose(trained, by_hand, rtol=0, atol=0)
    assert hist.loss[-1] < hist.loss[0]


def test_fit_validation_and_evaluate_take_the_pair():
    """validation=(x, (labels, mask)) logs val_loss equal to the loss of the whole set
    (the mean over all its unmasked positions), as fnn.evaluate and fnn.loss give it."""
    x, y, keep = padded_data(40, seed=1)
    xv, yv, kv = padded_data(17, seed=2)
    net, _, hist = fnn.fit(lstm_net(), fnn.optim.adam(0.01), SPARSE, (x, (y, keep)), epochs=1,
                           key=0, batch_size=16, validation=(xv, (yv, kv)), progress=False,
                           eval_batch_size=5)
    whole = fnn.loss(net, xv, (yv, kv), SPARSE)
    assert hist["val_loss"][0] == pytest.approx(whole, rel=1e-6)
    assert fnn.evaluate(net, xv, (yv, kv), SPARSE, batch_size=4)["loss"] == pytest.approx(whole)


def test_batches_of_a_tuple_check_every_part():
    """fnn.batches takes y as a tuple of arrays; a part of another length or no array is refused."""
    x, y, keep = padded_data(5)
    parts = list(fnn.batches(x, (y, keep), 2))
    assert [len(xb) for xb, _ in parts] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([kb for _, (_, kb) in parts]), keep)
    with pytest.raises(ValueError, match=r"x has 5 examples but y has 4"):
        list(fnn.batches(x, (y, keep[:4]), 2))
    with pytest.raises(TypeError, match=r"pair of NumPy arrays \(x, y\), got list"):
        list(fnn.batches(x, (y, keep.tolist()), 2))
