"""The linear-regression toy: learn target = x + 2y + 3z with one Dense unit.

Training inputs are integers 0-99; the check, as in the tutorial, is on inputs
drawn from 5000-10000, far outside the training range: a model that learned the
rule (weights near 1, 2, 3) extrapolates, one that memorised does not.

    python examples/regression.py
"""

from __future__ import annotations

import numpy as np

import fnn

TRUE_W = np.array([1.0, 2.0, 3.0])


def make_data(
    key: fnn.random.KeyLike, n: int, low: int, high: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of integers in [low, high) and their targets x + 2y + 3z."""
    x = fnn.random.generator(key).integers(low, high, size=(n, 3)).astype(np.float32)
    return x, (x @ TRUE_W.astype(np.float32))[:, None]


def r2(pred: np.ndarray, y: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot."""
    return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def main(steps: int = 300, lr: float = 1e-4, seed: int = 0) -> tuple[np.ndarray, float]:
    """Fit by full-batch gradient descent; return (learned weights, r² on 5000-10000)."""
    k_train, k_test, k_init = fnn.random.split(fnn.random.key(seed), 3)
    x, y = make_data(k_train, 1000, 0, 100)
    net = fnn.init([fnn.Dense(1)], (3,), key=k_init)
    for step in range(steps):
        loss, grads = fnn.value_and_grad(net, x, y, fnn.losses.mse)
        net = fnn.sgd_step(net, grads, lr)
        if step % (steps // 5) == 0:
            print(f"step {step:4d}  mse {loss:.5f}")
    w = net.layers[0].w[:, 0]
    x_test, y_test = make_data(k_test, 1000, 5000, 10000)
    score = r2(fnn.forward(net, x_test), y_test)
    print(f"learned weights {np.round(w, 4)} (true {TRUE_W}), bias {net.layers[0].b[0]:.4f}")
    print(f"r² on inputs from 5000-10000: {score:.6f}")
    return w, score


if __name__ == "__main__":
    main()
