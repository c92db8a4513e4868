"""Tests of fnn.optim.rules: each optimizer against two hand-computed steps, and its errors.

The expected values are written from the textbook formulas with plain NumPy, in
float64, independently of the library's fused arithmetic.
"""

import math

import numpy as np
import pytest

import fnn
import fnn.optim as optim
from fnn import losses, tree

P0 = {"w": np.array([[0.5, -1.0], [2.0, 0.25]]), "b": np.array([0.1, -0.3])}
G1 = {"w": np.array([[0.2, -0.4], [1.5, 0.0]]), "b": np.array([-0.7, 0.05])}
G2 = {"w": np.array([[-0.1, 0.3], [0.6, -0.2]]), "b": np.array([0.4, 0.9])}


def two_steps(opt):
    """Params and state after applying G1 then G2 from P0."""
    state = opt.init(P0)
    p1, state = opt.update(G1, state, P0)
    p2, state = opt.update(G2, state, p1)
    return p1, p2, state


def close(actual, expected):
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-12, atol=1e-15)


def by_hand(step_fn, lrs=(None, None)):
    """Apply a per-leaf update step_fn(p, g, buffers, t) twice to every leaf of P0."""
    out1, out2 = {}, {}
    for key in P0:
        buffers = {}
        p1 = step_fn(P0[key], G1[key], buffers, 1)
        p2 = step_fn(p1, G2[key], buffers, 2)
        out1[key], out2[key] = p1, p2
    return out1, out2


def test_sgd_plain_two_steps():
    """θ ← θ − lr·g, twice."""
    exp1, exp2 = by_hand(lambda p, g, b, t: p - 0.1 * g)
    p1, p2, state = two_steps(optim.sgd(0.1))
    close(p1, exp1)
    close(p2, exp2)
    assert int(state.count) == 2 and state.slots == {}


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_two_steps(nesterov):
    """b ← μb + g; θ ← θ − lr·b (heavy ball) or θ − lr·(g + μb) (Nesterov)."""
    mu, lr = 0.9, 0.05

    def step(p, g, b, t):
        b["v"] = mu * b.get("v", 0.0) + g
        return p - lr * ((g + mu * b["v"]) if nesterov else b["v"])

    exp1, exp2 = by_hand(step)
    p1, p2, state = two_steps(optim.sgd(lr, momentum=mu, nesterov=nesterov))
    close(p1, exp1)
    close(p2, exp2)
    expected_buf = mu * G1["w"] + G2["w"]
    np.testing.assert_allclose(state.slots["momentum"]["w"], expected_buf, rtol=1e-12)


def adam_by_hand(lr, b1, b2, eps, wd=0.0):
    def step(p, g, b, t):
        b["m"] = b1 * b.get("m", 0.0) + (1 - b1) * g
        b["v"] = b2 * b.get("v", 0.0) + (1 - b2) * g**2
        m_hat = b["m"] / (1 - b1**t)
        v_hat = b["v"] / (1 - b2**t)
        return p - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * p)

    return by_hand(step)


def test_adam_two_steps():
    """Adam with bias correction, ε outside the root, checked against the paper's formulas."""
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-3  # unusual values so that every term matters
    exp1, exp2 = adam_by_hand(lr, b1, b2, eps)
    p1, p2, state = two_steps(optim.adam(lr, b1=b1, b2=b2, eps=eps))
    close(p1, exp1)
    close(p2, exp2)
    np.testing.assert_allclose(state.slots["mu"]["b"], b1 * (1 - b1) * G1["b"] + (1 - b1) * G2["b"])
    np.testing.assert_allclose(
        state.slots["nu"]["b"], b2 * (1 - b2) * G1["b"] ** 2 + (1 - b2) * G2["b"] ** 2
    )


def test_adamw_two_steps_decoupled_decay():
    """AdamW: θ ← θ − lr·(m̂/(√v̂+ε) + λθ), the decay outside the adaptive scaling."""
    lr, wd = 0.02, 0.3
    exp1, exp2 = adam_by_hand(lr, 0.9, 0.999, 1e-8, wd=wd)
    p1, p2, _ = two_steps(optim.adamw(lr, weight_decay=wd))
    close(p1, exp1)
    close(p2, exp2)


def test_adamw_with_zero_decay_equals_adam():
    """adamw(weight_decay=0) gives exactly adam's parameters."""
    a = two_steps(optim.adam(0.01))[1]
    b = two_steps(optim.adamw(0.01, weight_decay=0.0))[1]
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("momentum", [0.0, 0.7])
def test_rmsprop_two_steps(momentum):
    """v ← ρv + (1−ρ)g²; s = g/(√v+ε); θ ← θ − lr·s, or through a momentum buffer."""
    lr, rho, eps = 0.01, 0.8, 1e-4

    def step(p, g, b, t):
        b["v"] = rho * b.get("v", 0.0) + (1 - rho) * g**2
        s = g / (np.sqrt(b["v"]) + eps)
        if momentum:
            b["buf"] = momentum * b.get("buf", 0.0) + s
            s = b["buf"]
        return p - lr * s

    exp1, exp2 = by_hand(step)
    p1, p2, _ = two_steps(optim.rmsprop(lr, decay=rho, eps=eps, momentum=momentum))
    close(p1, exp1)
    close(p2, exp2)


def test_adagrad_two_steps():
    """a ← a + g² from a₀; θ ← θ − lr·g/(√a+ε)."""
    lr, eps, a0 = 0.1, 1e-6, 0.25

    def step(p, g, b, t):
        b["a"] = b.get("a", a0) + g**2
        return p - lr * g / (np.sqrt(b["a"]) + eps)

    exp1, exp2 = by_hand(step)
    p1, p2, state = two_steps(optim.adagrad(lr, eps=eps, initial_accumulator=a0))
    close(p1, exp1)
    close(p2, exp2)
    np.testing.assert_allclose(state.slots["sum_sq"]["w"], a0 + G1["w"] ** 2 + G2["w"] ** 2)


def test_defaults_are_documented_values():
    """The constructors' defaults are the values the docstrings cite (Optax/PyTorch)."""
    adam = optim.adam()
    assert (adam.lr(0), adam.rule.b1, adam.rule.b2, adam.rule.eps) == (1e-3, 0.9, 0.999, 1e-8)
    adamw = optim.adamw()
    assert adamw.weight_decay == 1e-2 and adamw.decay_mask is None
    rms = optim.rmsprop()
    assert (rms.rule.decay, rms.rule.eps, rms.rule.momentum) == (0.9, 1e-8, 0.0)
    ada = optim.adagrad()
    assert (ada.lr(0), ada.rule.eps, ada.rule.initial_accumulator) == (1e-2, 1e-10, 0.1)


def small_net(dtype=np.float64):
    return fnn.init([fnn.Dense(4), fnn.Tanh(), fnn.Dense(2)], (3,), key=7, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_without_momentum_equals_sgd_step(dtype):
    """sgd(lr) performs exactly fnn.sgd_step(net, grads, lr), bit for bit."""
    net = small_net(dtype)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(dtype)
    y = np.random.default_rng(1).standard_normal((5, 2)).astype(dtype)
    grads = fnn.grad(net, x, y, losses.mse)
    opt = optim.sgd(0.3)
    new, _ = opt.update(grads, opt.init(net), net)
    expected = fnn.sgd_step(net, grads, 0.3)
    assert all(np.array_equal(a, b) for a, b in zip(tree.leaves(new), tree.leaves(expected), strict=True))


def test_adam_reduces_regression_loss():
    """200 Adam steps on a small noiseless regression problem cut the MSE by more than 10x."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(64, 3)).astype(np.float32)
    y = np.sin(x @ np.array([[1.0], [-2.0], [0.5]], np.float32))
    net = fnn.init([fnn.Dense(16), fnn.Tanh(), fnn.Dense(1)], (3,), key=1)
    opt = optim.adam(1e-2)
    state = opt.init(net)
    start = fnn.loss(net, x, y, losses.mse)
    for _ in range(200):
        grads = fnn.grad(net, x, y, losses.mse)
        net, state = opt.update(grads, state, net)
    assert fnn.loss(net, x, y, losses.mse) < start / 10
    assert net.layers[0].w.dtype == np.float32


def test_float32_bias_correction_does_not_creep_to_float64():
    """Python-float hyper-parameters and bias corrections keep float32 params float32."""
    p = {"w": np.ones(3, np.float32)}
    g = {"w": np.array([0.1, -2.0, 3.0], np.float32)}
    for opt in [
        optim.adam(1e-3),
        optim.adamw(1e-3),
        optim.rmsprop(1e-3, momentum=0.5),
        optim.adagrad(1e-2),
        optim.sgd(0.1, momentum=0.9, nesterov=True),
    ]:
        state = opt.init(p)
        new, state = opt.update(g, state, p)
        new, state = opt.update(g, state, new)
        assert new["w"].dtype == np.float32, opt.name
        assert all(s["w"].dtype == np.float32 for s in state.slots.values()), opt.name
        assert math.isfinite(float(new["w"].sum()))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: optim.sgd(0.0), ValueError, r"fnn.optim.sgd: lr must be a finite number in \(0, inf\)"),
        (lambda: optim.sgd(float("nan")), ValueError, r"fnn.optim.sgd: lr must be a finite number"),
        (lambda: optim.sgd(-0.1), ValueError, r"fnn.optim.sgd: lr must be a finite number"),
        (lambda: optim.sgd(None), TypeError, r"fnn.optim.sgd: lr must be a number or a schedule"),
        (lambda: optim.sgd(0.1, momentum=-0.5), ValueError, r"fnn.optim.sgd: momentum must be a finite number in \[0, 1\)"),
        (lambda: optim.sgd(0.1, momentum=1.0), ValueError, r"sgd: momentum must be"),
        (lambda: optim.sgd(0.1, nesterov=True), ValueError, r"nesterov=True needs momentum > 0"),
        (lambda: optim.sgd(0.1, 0.9, nesterov=1), TypeError, r"nesterov must be a bool"),
        (lambda: optim.adam(b1=1.0), ValueError, r"fnn.optim.adam: b1 must be a finite number in \[0, 1\)"),
        (lambda: optim.adam(b2=-0.1), ValueError, r"fnn.optim.adam: b2 must be"),
        (lambda: optim.adam(b2=float("nan")), ValueError, r"b2 must be a finite number"),
        (lambda: optim.adam(eps=0.0), ValueError, r"adam: eps must be a finite number in \(0, inf\)"),
        (lambda: optim.adam(lr="1e-3"), TypeError, r"adam: lr must be a number or a schedule"),
        (lambda: optim.adamw(weight_decay=-1e-2), ValueError, r"adamw: weight_decay must be a finite number in \[0, inf\)"),
        (lambda: optim.adamw(b1=1.5), ValueError, r"adamw: b1 must be"),
        (lambda: optim.rmsprop(decay=-0.1), ValueError, r"rmsprop: decay must be a finite number in \[0, 1\)"),
        (lambda: optim.rmsprop(momentum=-0.1), ValueError, r"rmsprop: momentum must be"),
        (lambda: optim.rmsprop(eps=-1.0), ValueError, r"rmsprop: eps must be"),
        (lambda: optim.adagrad(initial_accumulator=-0.1), ValueError, r"adagrad: initial_accumulator must be"),
        (lambda: optim.adagrad(eps=0), ValueError, r"adagrad: eps must be"),
        (lambda: optim.adagrad(lr=0), ValueError, r"adagrad: lr must be"),
    ],
)
def test_bad_hyper_parameters_raise(make, error, match):
    """Impossible hyper-parameters raise at construction, naming the optimizer and argument."""
    with pytest.raises(error, match=match):
        make()
