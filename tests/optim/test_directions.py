"""Tests of fnn.optim.rules used as bare transformations (trace, scale_by_adam, scale_by_rms,
scale_by_adagrad, and the Sgd/RMSprop rules): two steps against the textbook formulas written
here in float64. tests/optim/test_rules.py checks the same math through the optimizers."""

import numpy as np
import pytest

import fnn.optim as optim
from fnn import tree

G1 = {"w": np.array([[0.2, -0.4], [1.5, 0.0]]), "b": np.array([-0.7, 0.05])}
G2 = {"w": np.array([[-0.1, 0.3], [0.6, -0.2]]), "b": np.array([0.4, 0.9])}


def two_updates(tx):
    state = tx.init(G1)
    u1, state = tx.update(G1, state, G1)
    u2, state = tx.update(G2, state, G1)
    return u1, u2, state


def close(actual, expected):
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_trace_by_hand(nesterov):
    """b ← μb + g; u = b, or g + μb with Nesterov."""
    mu = 0.7
    u1, u2, state = two_updates(optim.trace(mu, nesterov=nesterov))
    b1 = {k: G1[k] for k in G1}
    b2 = {k: mu * G1[k] + G2[k] for k in G1}
    if nesterov:
        close(u1, {k: G1[k] + mu * b1[k] for k in G1})
        close(u2, {k: G2[k] + mu * b2[k] for k in G1})
    else:
        close(u1, b1)
        close(u2, b2)
    close(state.momentum, b2)


def test_scale_by_adam_by_hand():
    """m, v moving averages; u = m̂/(√v̂ + ε) with the bias corrections of step t."""
    b1, b2, eps = 0.8, 0.95, 1e-3
    u1, u2, state = two_updates(optim.scale_by_adam(b1, b2, eps))
    m1 = {k: (1 - b1) * G1[k] for k in G1}
    v1 = {k: (1 - b2) * G1[k] ** 2 for k in G1}
    m2 = {k: b1 * m1[k] + (1 - b1) * G2[k] for k in G1}
    v2 = {k: b2 * v1[k] + (1 - b2) * G2[k] ** 2 for k in G1}

    def u(m, v, t):
        return {k: (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t)) + eps) for k in G1}

    close(u1, u(m1, v1, 1))
    close(u2, u(m2, v2, 2))
    close(state.mu, m2)
    close(state.nu, v2)
    assert int(state.count) == 2


def test_scale_by_rms_by_hand():
    """v ← ρv + (1−ρ)g²; u = g/(√v + ε)."""
    rho, eps = 0.8, 1e-4
    u1, u2, state = two_updates(optim.scale_by_rms(rho, eps))
    v1 = {k: (1 - rho) * G1[k] ** 2 for k in G1}
    v2 = {k: rho * v1[k] + (1 - rho) * G2[k] ** 2 for k in G1}
    close(u1, {k: G1[k] / (np.sqrt(v1[k]) + eps) for k in G1})
    close(u2, {k: G2[k] / (np.sqrt(v2[k]) + eps) for k in G1})
    close(state.nu, v2)


def test_scale_by_adagrad_by_hand():
    """a ← a + g² from a₀; u = g/(√a + ε)."""
    eps, a0 = 1e-6, 0.25
    u1, u2, state = two_updates(optim.scale_by_adagrad(eps, a0))
    a1 = {k: a0 + G1[k] ** 2 for k in G1}
    a2 = {k: a1[k] + G2[k] ** 2 for k in G1}
    close(u1, {k: G1[k] / (np.sqrt(a1[k]) + eps) for k in G1})
    close(u2, {k: G2[k] / (np.sqrt(a2[k]) + eps) for k in G1})
    close(state.sum_sq, a2)


def test_rmsprop_rule_with_momentum_by_hand():
    """RMSprop(ρ, ε, μ): s = g/(√v + ε), then b ← μb + s; u = b."""
    rho, eps, mu = 0.9, 1e-8, 0.5
    u1, u2, _ = two_updates(optim.RMSprop(rho, eps, mu))
    v1 = {k: (1 - rho) * G1[k] ** 2 for k in G1}
    v2 = {k: rho * v1[k] + (1 - rho) * G2[k] ** 2 for k in G1}
    s1 = {k: G1[k] / (np.sqrt(v1[k]) + eps) for k in G1}
    s2 = {k: G2[k] / (np.sqrt(v2[k]) + eps) for k in G1}
    close(u1, s1)
    close(u2, {k: mu * s1[k] + s2[k] for k in G1})


def test_plain_sgd_rule_is_the_identity_without_state():
    """Sgd() passes the gradients through and keeps no buffers."""
    u1, _, state = two_updates(optim.Sgd())
    close(u1, G1)
    assert state == optim.EmptyState()


def test_buffers_are_read_only_and_inputs_untouched():
    """Every buffer a direction stores is read-only, and the gradients given are unchanged."""
    before = [a.copy() for a in tree.leaves((G1, G2))]
    for tx in (optim.trace(0.9), optim.scale_by_adam(), optim.scale_by_rms(), optim.scale_by_adagrad()):
        _, _, state = two_updates(tx)
        assert all(not a.flags.writeable for a in tree.leaves(state)), tx.name
    assert all(np.array_equal(a, b) for a, b in zip(before, tree.leaves((G1, G2)), strict=True))


def test_float32_stays_float32():
    """Python-float hyper-parameters never upcast float32 updates or buffers."""
    g = {"w": np.array([0.1, -2.0, 3.0], np.float32)}
    for tx in (optim.trace(0.9, True), optim.scale_by_adam(), optim.scale_by_rms(), optim.scale_by_adagrad()):
        u, state = tx.update(g, tx.init(g), g)
        assert u["w"].dtype == np.float32 and all(a.dtype == np.float32 for a in tree.leaves(state)
                                                  if a.dtype.kind == "f"), tx.name


def test_zero_dimensional_leaves_stay_arrays():
    """A 0-d parameter gets 0-d array updates and buffers (NumPy would give scalars)."""
    g = {"s": np.array(2.0)}
    for tx in (optim.chain(optim.scale_by_adam(), optim.scale_by_learning_rate(0.1)),
               optim.trace(0.5, nesterov=True), optim.scale_by_rms(), optim.scale_by_adagrad(),
               optim.clip(1.0), optim.add_decayed_weights(0.1)):
        u, state = tx.update(g, tx.init(g), g)
        assert isinstance(u["s"], np.ndarray) and u["s"].shape == (), tx.name
        assert all(isinstance(a, np.ndarray) for a in tree.leaves(state)), tx.name


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: optim.trace(1.0), ValueError, r"fnn.optim.trace: momentum must be a finite number in \[0, 1\)"),
        (lambda: optim.trace(0.5, nesterov="yes"), TypeError, r"fnn.optim.trace: nesterov must be a bool"),
        (lambda: optim.scale_by_adam(b1=-0.1), ValueError, r"scale_by_adam: b1 must be"),
        (lambda: optim.scale_by_adam(eps=0.0), ValueError, r"scale_by_adam: eps must be a finite number in \(0, inf\)"),
        (lambda: optim.scale_by_rms(decay=1.0), ValueError, r"scale_by_rms: decay must be"),
        (lambda: optim.scale_by_adagrad(initial_accumulator=-1.0), ValueError, r"scale_by_adagrad: initial_accumulator must be"),
        (lambda: optim.Sgd(0.0, True), ValueError, r"sgd: nesterov=True needs momentum > 0"),
        (lambda: optim.RMSprop(momentum=2.0), ValueError, r"rmsprop: momentum must be"),
    ],
)
def test_bad_hyper_parameters_raise(make, error, match):
    """Impossible hyper-parameters raise at construction, naming the transformation."""
    with pytest.raises(error, match=match):
        make()


def test_buffer_of_wrong_dtype_names_the_transformation_and_path():
    """A float32 buffer for float64 params is refused, naming the transformation and the path."""
    tx = optim.scale_by_adam()
    state = tx.init(G1)
    bad = optim.ScaleByAdamState(0, tree.map(lambda a: a.astype(np.float32), state.mu), state.nu)
    with pytest.raises(TypeError, match=r"scale_by_adam.update: scale_by_adam: state.mu at \['w'\] has dtype float32"):
        tx.update(G1, bad, G1)
