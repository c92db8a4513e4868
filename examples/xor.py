"""XOR with a 2-3-1 network (tanh, then sigmoid) and log-loss, trained by plain SGD.

The first network of every from-scratch tutorial, written with fnn's pure
functions: each step returns a new network; nothing is updated in place.

    python examples/xor.py
"""

from __future__ import annotations

import numpy as np

import fnn


def main(steps: int = 2000, lr: float = 1.0, seed: int = 0) -> np.ndarray:
    """Train on the four XOR points and return the final predictions, shape (4, 1)."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    net = fnn.init([fnn.Dense(3), fnn.Tanh(), fnn.Dense(1), fnn.Sigmoid()], (2,), key=seed)
    for step in range(steps):
        loss, grads = fnn.value_and_grad(net, x, y, fnn.losses.binary_cross_entropy)
        net = fnn.sgd_step(net, grads, lr)
        if step % (steps // 5) == 0:
            print(f"step {step:5d}  log-loss {loss:.4f}")
    pred = fnn.forward(net, x)
    for xi, yi, pi in zip(x, y, pred, strict=True):
        print(f"{xi.astype(int)} -> {pi[0]:.3f} (target {int(yi[0])})")
    print(f"largest error {np.abs(pred - y).max():.3f}")
    return pred


if __name__ == "__main__":
    main()
