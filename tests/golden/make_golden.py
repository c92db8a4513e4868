"""Write the golden files that every later fnn must load bit for bit.

Run once with fnn 0.1.0 (commit 02b2b49, the 0.1.0 release):
``python tests/golden/make_golden.py tests/golden/v0.1.0``. The files it wrote
are committed; this script is kept to show how they were made, and it is not
run by the tests (a later fnn writes a later format).

What the files hold:

- ``network.npz``: a network using every layer kind 0.1.0 has (Dense, every
  activation, Softmax, Flatten, Reshape, Conv2D, MaxPool2D, AvgPool2D,
  GlobalAvgPool2D, Dropout, LayerNorm, BatchNorm), after one training step so
  that batch-norm running statistics are not at their initial values;
- ``opt_state.npz``: Adam's state after two updates, and a momentum-SGD state;
- ``optimizer.npz``: an optimizer *configuration* value (``chain(l2_penalty,
  clip_by_global_norm, adamw)``), which 0.2 refuses with a message pointing to
  the migration page (0.2 rebuilt optimizers; their states still load);
- ``history.json``: the History of a two-epoch ``fit`` (with a validation split),
  as ``History.to_dict`` writes it (0.1.0 stores histories as JSON, as ``fnn train`` does);
- ``expected.npz``: plain ``np.savez`` of the same arrays by path, and the
  network's output on a fixed input, to compare loaded values with.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import fnn


def layers() -> tuple[list[object], list[object]]:
    conv = [
        fnn.Conv2D(3, 3, padding="same"),
        fnn.BatchNorm(),
        fnn.ReLU(),
        fnn.MaxPool2D(2),
        fnn.Conv2D(4, (2, 2), strides=1, padding="valid", use_bias=False),
        fnn.AvgPool2D(2, strides=1),
        fnn.Flatten(),
        fnn.Dense(6),
        fnn.LayerNorm(),
        fnn.LeakyReLU(0.1),
        fnn.Dropout(0.25),
        fnn.Dense(6, w_init="he_normal"),
        fnn.ELU(0.5),
        fnn.Tanh(),
        fnn.Reshape((2, 3)),
        fnn.Flatten(),
        fnn.Dense(5),
        fnn.GELU(),
        fnn.Sigmoid(),
        fnn.Identity(),
        fnn.Dense(3),
        fnn.Softmax(),
    ]
    pooled = [fnn.Conv2D(2, 3), fnn.GlobalAvgPool2D(), fnn.Dense(2)]
    return conv, pooled


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    conv_layers, pooled_layers = layers()
    net = fnn.init(conv_layers, (8, 8, 2), key=1, dtype=np.float64)
    pooled = fnn.init(pooled_layers, (5, 5, 1), key=2, dtype=np.float32)
    x = rng.normal(size=(4, 8, 8, 2))
    y = np.eye(3)[[0, 1, 2, 0]]
    _, grads, net = fnn.value_and_grad(
        net, x, y, fnn.losses.mse, key=fnn.random.key(3), with_state=True
    )
    net = fnn.sgd_step(net, grads, lr=0.1)
    fnn.save(out / "network.npz", {"net": net, "pooled": pooled})

    opt = fnn.optim.adam(1e-2)
    state = opt.init(net)
    for step in range(2):
        _, g = fnn.value_and_grad(net, x, y, fnn.losses.mse, key=fnn.random.key(10 + step))
        _, state = opt.update(g, state, net)
    sgd = fnn.optim.sgd(0.1, momentum=0.9)
    sgd_state = sgd.init(pooled)
    fnn.save(out / "opt_state.npz", {"adam": state, "sgd": sgd_state})
    config = fnn.optim.chain(
        fnn.optim.l2_penalty(1e-4), fnn.optim.clip_by_global_norm(1.0), fnn.optim.adamw(1e-3)
    )
    fnn.save(out / "optimizer.npz", {"opt": config})

    xs, ys = fnn.datasets.two_spirals(0, 100)
    order = np.random.default_rng(1).permutation(len(ys))
    xs, ys = xs[order], ys[order]
    small = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(2)], (2,), key=0)
    _, _, history = fnn.fit(
        small,
        fnn.optim.sgd(0.1),
        fnn.losses.sparse_softmax_cross_entropy,
        (xs[:150], ys[:150]),
        validation=(xs[150:], ys[150:]),
        metrics=[fnn.metrics.accuracy],
        epochs=2,
        key=0,
        progress=False,
    )
    (out / "history.json").write_text(json.dumps(history.to_dict(), indent=1))

    expected = {f"network/{p}": a for p, a in fnn.tree.leaves_with_path(net)}
    expected |= {f"pooled/{p}": a for p, a in fnn.tree.leaves_with_path(pooled)}
    expected |= {f"adam/{p}": a for p, a in fnn.tree.leaves_with_path(state)}
    expected |= {f"sgd/{p}": a for p, a in fnn.tree.leaves_with_path(sgd_state)}
    expected["input"] = x
    expected["output"] = fnn.forward(net, x)
    expected["pooled_output"] = fnn.forward(pooled, x[:, :5, :5, :1].astype(np.float32))
    np.savez(out / "expected.npz", **expected)
    print("wrote", sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
