"""Regenerate every picture in docs/img/ from real runs of the current code.

    python docs/make_figures.py            # all figures (about 90 s on 2 cores)
    python docs/make_figures.py spirals    # only the figures whose name contains "spirals"

Needs matplotlib and Fashion-MNIST (found by ``fnn.datasets.fashion_mnist``:
``$FNN_DATA``, the user cache, or Debian's /usr/share/datasets/fashion-mnist/).
Every run is seeded, so the pictures change only when the code does. Numbers
worth quoting in the pages (final accuracies, gradient norms) are printed.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

import fnn
import fnn.datasets
import fnn.metrics
import fnn.optim
import fnn.train
from fnn import cli, plot

IMG = Path(__file__).resolve().parent / "img"


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Small float32 matrix products are much faster on one OpenBLAS thread here."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed depends on it
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def shrink(png: Path, limit_kb: float = 150.0) -> None:
    """Re-save a large PNG with a 256-colour palette (Pillow comes with matplotlib)."""
    if png.stat().st_size <= limit_kb * 1024:
        return
    from PIL import Image

    with Image.open(png) as im:
        small = im.convert("RGB").quantize(colors=256)
    small.save(png, optimize=True)


def fashion() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    data = fnn.datasets.fashion_mnist(download=False)
    x_train = fnn.datasets.images_to_float(data.x_train)
    x_test = fnn.datasets.images_to_float(data.x_test)
    return x_train, data.y_train, x_test, data.y_test, data.class_names


def dead_units(net: fnn.Network, x: np.ndarray) -> list[int]:
    """First-layer ReLU units that are zero on every one of the first 10,000 examples."""
    dense = net.layers[0]
    hidden = np.maximum(x[:10000] @ dense.w + dense.b, 0)
    return np.flatnonzero((hidden == 0).all(axis=0)).tolist()


def fashion_mlp() -> None:
    """The tutorials' 784-32-16-10 MLP on Fashion-MNIST: curves, activations, weights."""
    x, y, x_test, y_test, names = fashion()
    x_tr, y_tr, x_val, y_val = fnn.datasets.train_val_split(x, y, val_fraction=1 / 6, key=1)
    layers = [fnn.Dense(32), fnn.ReLU(), fnn.Dense(16), fnn.ReLU(), fnn.Dense(10)]
    net = fnn.init(layers, (784,), key=0)
    opt = fnn.optim.adam(1e-3)
    net, _, hist = fnn.train.fit(
        net, opt, fnn.losses.sparse_softmax_cross_entropy, (x_tr, y_tr),
        epochs=12, key=2, batch_size=64, validation=(x_val, y_val),
        metrics=[fnn.metrics.accuracy], progress=False,
    )
    test_acc = fnn.metrics.accuracy(fnn.forward(net, x_test), y_test)
    print(f"  784-32-16-10: val accuracy {hist['val_accuracy'][-1]:.4f}, "
          f"test accuracy {test_acc:.4f}, {sum(hist.seconds):.1f} s")
    hist.plot(str(IMG / "fashion_mlp_curves.png"))
    print(f"  first-layer units never active on 10,000 training images: {dead_units(net, x_tr)}")
    i = 0  # the first test image (an ankle boot)
    plot.activations(
        net, x_test[i : i + 1], IMG / "fashion_mlp_activations.png", max_neurons=16,
        output_labels=names,
        title=f"Activations for test image {i} ({names[y_test[i]]})",
    )
    plot.first_layer_weights(
        net, IMG / "fashion_mlp_first_layer.png", image_shape=(28, 28),
        title="Dense(32) weights after 12 epochs of Adam (red +, blue −)",
    )
    # The same training with a small L2 penalty: weights that the data never
    # pushes (border pixels, dead units) decay to zero and the templates show.
    opt_l2 = fnn.optim.chain(fnn.optim.add_decayed_weights(1e-4), fnn.optim.adam(1e-3))
    net_l2, _, hist_l2 = fnn.train.fit(
        fnn.init(layers, (784,), key=0), opt_l2, fnn.losses.sparse_softmax_cross_entropy,
        (x_tr, y_tr), epochs=12, key=2, batch_size=64, validation=(x_val, y_val),
        metrics=[fnn.metrics.accuracy], progress=False,
    )
    test_acc = fnn.metrics.accuracy(fnn.forward(net_l2, x_test), y_test)
    print(f"  with L2 1e-4: val accuracy {hist_l2['val_accuracy'][-1]:.4f}, "
          f"test accuracy {test_acc:.4f}, dead units {dead_units(net_l2, x_tr)}")
    plot.first_layer_weights(
        net_l2, IMG / "fashion_mlp_first_layer_l2.png", image_shape=(28, 28),
        title="The same with an L2 penalty of 1e-4 (red +, blue −)",
    )


def gradient_norms() -> None:
    """Vanishing gradients: a deep sigmoid MLP against the same depth with ReLU and He init."""
    x, y, _, _, _ = fashion()
    xb, yb = x[:256], y[:256]
    depth, width = 8, 64

    def mlp(act: Callable[[], fnn.Layer], w_init: str) -> fnn.Network:
        layers: list[fnn.Layer] = []
        for _ in range(depth):
            layers += [fnn.Dense(width, w_init=w_init), act()]
        return fnn.init([*layers, fnn.Dense(10)], (784,), key=0)

    grads = {
        "Sigmoid, Glorot init": fnn.grad(
            mlp(fnn.Sigmoid, "glorot_uniform"), xb, yb, fnn.losses.sparse_softmax_cross_entropy
        ),
        "ReLU, He init": fnn.grad(
            mlp(fnn.ReLU, "he_normal"), xb, yb, fnn.losses.sparse_softmax_cross_entropy
        ),
    }
    for label, g in grads.items():
        norms = [fnn.tree.norm(layer) for layer in g.layers if fnn.tree.leaves(layer)]
        print(f"  {label}: first layer {norms[0]:.2e}, last layer {norms[-1]:.2e}")
    plot.gradient_norms(
        grads, IMG / "gradient_norms.png",
        title=f"Gradient norm per layer at initialisation ({depth}×{width} hidden, one batch)",
    )


def spirals() -> None:
    """The training page's 2-32-32-2 run (curves) and `fnn train`'s default job (regions)."""
    x, y = fnn.datasets.two_spirals(0, 200, noise=0.05)
    layers = [fnn.Dense(32), fnn.ReLU(), fnn.Dense(32), fnn.ReLU(), fnn.Dense(2)]
    net = fnn.init(layers, (2,), key=0)
    net, _, hist = fnn.train.fit(
        net, fnn.optim.adam(1e-2), fnn.losses.sparse_softmax_cross_entropy, (x, y),
        epochs=200, key=1, batch_size=20, metrics=[fnn.metrics.accuracy], progress=False,
    )
    print(f"  spirals (training page): train accuracy {hist['accuracy'][-1]:.4f}, "
          f"{sum(hist.seconds):.1f} s")
    hist.plot(IMG / "spirals_curves.png")
    # The README's picture: exactly what `fnn train` (no arguments) trains and saves.
    with tempfile.TemporaryDirectory() as out:
        assert cli.main(["train", "--no-progress", "--out", out]) == 0
        job = fnn.load(Path(out) / "model.npz")
    test = cli.load_split("spirals", None, 0, None)
    sizes = "-".join(str(s) for s in (*job.input_shape, *(d.units for d in job.layers
                                                           if isinstance(d, fnn.Dense))))
    accuracy = fnn.metrics.accuracy(fnn.forward(job, test.x_test), test.y_test)
    print(f"  fnn train's default job: {sizes}, test accuracy {accuracy:.4f}")
    plot.decision_boundary(job, test.x_test, test.y_test, IMG / "spirals_boundary.png",
                           title=f"fnn train's default job: {sizes} ReLU MLP, test points")


def xor() -> None:
    """The 2-3-1 XOR network of the tutorials: decision regions and activations."""
    x, y = fnn.datasets.xor()
    net = fnn.init([fnn.Dense(3), fnn.Tanh(), fnn.Dense(1), fnn.Sigmoid()], (2,), key=0)
    for _ in range(2000):
        grads = fnn.grad(net, x, y, fnn.losses.binary_cross_entropy)
        net = fnn.sgd_step(net, grads, lr=1.0)
    print(f"  xor: predictions {fnn.forward(net, x).ravel().round(3)}")
    plot.decision_boundary(net, x, y, IMG / "xor_boundary.png", title="XOR, 2-3-1 tanh/sigmoid")


FIGURES: dict[str, Callable[[], None]] = {
    "fashion_mlp": fashion_mlp,
    "gradient_norms": gradient_norms,
    "spirals": spirals,
    "xor": xor,
}


def main(argv: list[str]) -> None:
    IMG.mkdir(exist_ok=True)
    chosen = [name for name in FIGURES if not argv or any(a in name for a in argv)]
    with one_blas_thread(), np.errstate(over="raise", invalid="raise", divide="raise"):
        for name in chosen:
            t0 = time.perf_counter()
            print(f"{name} ...")
            FIGURES[name]()
            print(f"  done in {time.perf_counter() - t0:.1f} s")
    for png in sorted(IMG.glob("*.png")):
        shrink(png)
        print(f"{png.name:32s} {png.stat().st_size / 1024:6.1f} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
