"""The linear-regression toy: learn target = x + 2y + 3z with one Dense unit.

Training inputs are integers 0-99; the check, as in the tutorial, is on inputs
drawn from 5000-10000, far outside the training range: a model that learned the
rule (weights near 1, 2, 3) extrapolates, one that memorised does not.

    python examples/regression.py
"""

from __future__ import annotations

import numpy as np

import fnn


def main(steps: int = 300, lr: float = 1e-4, seed: int = 0) -> tuple[np.ndarray, float]:
    """Fit by full-batch gradient descent; return (learned weights, r² on 5000-10000)."""
    k_train, k_test, k_init = fnn.random.split(fnn.random.key(seed), 3)
    x, y = fnn.datasets.linear_regression(k_train, 1000, low=0, high=100)
    net = fnn.init([fnn.Dense(1)], (3,), key=k_init)
    for step in range(steps):
        loss, grads = fnn.value_and_grad(net, x, y, fnn.losses.mse)
        net = fnn.sgd_step(net, grads, lr)
        if step % (steps // 5) == 0:
            print(f"step {step:4d}  mse {loss:.5f}")
    w = net.layers[0].w[:, 0]
    x_test, y_test = fnn.datasets.linear_regression(k_test, 1000, low=5000, high=10000)
    score = fnn.metrics.r2_score(fnn.forward(net, x_test), y_test)
    print(f"learned weights {np.round(w, 4)} (true [1. 2. 3.]), bias {net.layers[0].b[0]:.4f}")
    print(f"r² on inputs from 5000-10000: {score:.6f}")
    return w, score


if __name__ == "__main__":
    main()
