"""A small ResNet on Fashion-MNIST, written with fnn's containers.

    input:   random left-right flip, random shift by up to 2 pixels (training only)
    stem:    conv 3x3 (32, same) - BatchNorm - ReLU - max-pool 2          -> 14x14x32
    block 1: Residual(conv 3x3 (32) - BN - ReLU - conv 3x3 (32) - BN) - ReLU
    block 2: Residual(conv 3x3 (64, stride 2) - BN - ReLU - conv 3x3 (64) - BN,
                      shortcut = conv 1x1 (64, stride 2) - BN) - ReLU       -> 7x7x64
    block 3: the same with 128 channels                                     -> 4x4x128
    head:    global average pooling - dropout 0.3 - dense 10 (logits)

Each block is one ``fnn.Residual`` whose body (a list, so a ``Sequential``)
holds the convolutions; blocks 2 and 3 halve the resolution and double the
channels, so their shortcut is a projection (a strided 1x1 convolution with
batch norm). Convolutions followed by batch norm have no bias (the norm's β
takes its place). The flip and the shift are custom layers in fnn's short
form (``apply``/``backward``, with a key and the training flag): data
augmentation that ``fit`` drives with its per-step keys, like a dropout layer.

The data are those of ``examples/mnist_cnn.py``, so the two compare: images
``(batch, 28, 28, 1)`` float32 in [0, 1], 10% of the training set held out
with a fixed key for validation, batch 128, at most 25 epochs (the CNN's
budget is 15), the best epoch restored, the test set used once at the end.
The other differences: AdamW with a cosine decay of the learning rate from 1e-3 to 0
over the run and a decoupled weight decay of 0.05 on the convolution and
dense kernels only (a mask by path: ``path.endswith(".w")`` spares biases and
batch-norm parameters), and early stopping on the validation accuracy
(patience 3), since a confident network's validation loss can rise while its
accuracy still improves. Batch norm uses batch statistics in training and its
running statistics in evaluation (``fit`` updates them every step).

Measured (seed 0, ``fnn.threads(1)``, ``python examples/resnet_fashion.py
--epochs 25`` at commit 6b69b86, 2-core machine shared with other jobs): 309,418
parameters (the CNN example has 421,642); validation accuracy 86.4% after
epoch 1, 91.1% after 6, 92.6% after 14, 93.7% after 24 and 25; test accuracy
**93.19%** with epoch 24's parameters restored, against the CNN example's
92.67%. 85-185 s per epoch (2469 s in all), about 86 s on a quiet machine.
An earlier run of 15 epochs with only the flip gave 92.53%, below the CNN;
the shift and the longer cosine schedule made the difference. (Later
convolution kernels, Winograd and shifted products, change the float32
results in their last bits.)

    python examples/resnet_fashion.py                          # full size
    python examples/resnet_fashion.py --epochs 2 --train 5000  # a quick look
"""

from __future__ import annotations

import argparse
import time
from typing import ClassVar

import attrs
import numpy as np

import fnn
from fnn import datasets, metrics, optim
from fnn.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    ReLU,
    Residual,
)
from fnn.train import EarlyStopping, fit


def load(dataset: str = "fashion_mnist") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): x of shape (n, 28, 28, 1) float32 in [0, 1]."""
    d = getattr(datasets, dataset)()

    def images(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), 28, 28, 1).astype(np.float32) / np.float32(255)

    return (
        images(d.x_train),
        d.y_train.astype(np.int64),
        images(d.x_test),
        d.y_test.astype(np.int64),
    )


@attrs.frozen(eq=False)
class RandomFlip(Layer):
    """Flip each image left-right with probability 1/2 in training mode; the identity otherwise.

    ``y = x[:, :, ::-1]`` for the drawn examples (the draw comes from the key),
    so ``dL/dx = δ[:, :, ::-1]`` for them (a flip is its own adjoint) and ``δ``
    for the others.
    """

    stochastic: ClassVar[bool] = True
    input_rank = 4
    input_layout = "(batch, height, width, channels)"

    def _flipped(self, a: np.ndarray, key: fnn.random.KeyLike) -> np.ndarray:
        flip = fnn.random.generator(key).random(len(a)) < 0.5
        return np.where(flip[:, None, None, None], a[:, :, ::-1], a)

    def apply(self, x: np.ndarray, *, key: fnn.random.KeyLike, training: bool) -> np.ndarray:
        return self._flipped(x, key) if training else x

    def backward(
        self,
        x: np.ndarray,
        y: np.ndarray,
        dy: np.ndarray,
        *,
        key: fnn.random.KeyLike,
        training: bool,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return {}, (self._flipped(dy, key) if training else dy)


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"RandomShift: pixels must be an int >= 1, got {value!r}")


@attrs.frozen(eq=False)
class RandomShift(Layer):
    """Shift each image by up to ``pixels`` rows and columns in training mode (zeros come in).

    With ``xp`` the input zero-padded by ``p = pixels`` and offsets
    ``(r_b, c_b)`` drawn uniformly from ``0..2p`` per example:
    ``y[b, i, j] = xp[b, i + r_b, j + c_b]``. Each output cell reads one
    input cell, so the pullback moves ``δ`` back: ``dxp[b, i + r_b, j + c_b]
    = δ[b, i, j]`` and ``dL/dx`` is ``dxp`` without the padding. The identity
    in evaluation mode.
    """

    stochastic: ClassVar[bool] = True
    input_rank = 4
    input_layout = "(batch, height, width, channels)"

    pixels: int = attrs.field(default=2, validator=_positive)

    def _where(self, shape: tuple[int, ...], key: fnn.random.KeyLike) -> tuple[np.ndarray, ...]:
        """Index arrays picking each example's window from the padded batch."""
        batch, height, width, _ = shape
        offsets = fnn.random.generator(key).integers(0, 2 * self.pixels + 1, size=(2, batch))
        rows = offsets[0][:, None] + np.arange(height)
        cols = offsets[1][:, None] + np.arange(width)
        return np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]

    def apply(self, x: np.ndarray, *, key: fnn.random.KeyLike, training: bool) -> np.ndarray:
        if not training:
            return x
        p = self.pixels
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        out: np.ndarray = padded[self._where(x.shape, key)]
        return out

    def backward(
        self,
        x: np.ndarray,
        y: np.ndarray,
        dy: np.ndarray,
        *,
        key: fnn.random.KeyLike,
        training: bool,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if not training:
            return {}, dy
        p = self.pixels
        b, h, w, c = x.shape
        padded = np.zeros((b, h + 2 * p, w + 2 * p, c), dy.dtype)
        padded[self._where(x.shape, key)] = dy  # each window cell is written once
        return {}, padded[:, p : p + h, p : p + w]


def conv(channels: int, kernel: int = 3, stride: int = 1) -> Conv2D:
    """A bias-free convolution (batch norm follows), He-initialised for ReLU."""
    return Conv2D(
        channels, kernel, strides=stride, padding="same", use_bias=False, w_init="he_normal"
    )


def block(channels: int, stride: int = 1, project: bool = False) -> Residual:
    """conv-BN-ReLU-conv-BN plus the input (or its projection when the shape changes)."""
    body = [conv(channels, 3, stride), BatchNorm(), ReLU(), conv(channels), BatchNorm()]
    shortcut = [conv(channels, 1, stride), BatchNorm()] if project else None
    return Residual(body, shortcut=shortcut)


def resnet(widths: tuple[int, int, int] = (32, 64, 128), drop_prob: float = 0.3) -> list[Layer]:
    """The layers: a stem, three residual blocks (each followed by ReLU) and a dense head."""
    w1, w2, w3 = widths
    return [
        RandomFlip(),
        RandomShift(2),
        conv(w1),
        BatchNorm(),
        ReLU(),
        MaxPool2D(2),
        block(w1),
        ReLU(),
        block(w2, stride=2, project=True),
        ReLU(),
        block(w3, stride=2, project=True),
        ReLU(),
        GlobalAvgPool2D(),
        Dropout(drop_prob),
        Dense(10),
    ]


def main(
    *,
    epochs: int = 25,
    n_train: int | None = None,
    n_test: int | None = None,
    widths: tuple[int, int, int] = (32, 64, 128),
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    drop_prob: float = 0.3,
    dataset: str = "fashion_mnist",
    seed: int = 0,
    progress: bool = True,
) -> float:
    """Train the ResNet and return its test accuracy.

    ``n_train`` / ``n_test`` take the first examples only, and ``widths``
    shrinks the network (toy runs in tests).
    """
    x, y, x_test, y_test = load(dataset)
    x, y = x[:n_train], y[:n_train]
    x_test, y_test = x_test[:n_test], y_test[:n_test]
    x_tr, y_tr, x_val, y_val = datasets.train_val_split(x, y, val_fraction=0.1, key=seed)
    key_init, key_fit = fnn.random.split(fnn.random.key(seed))
    net = fnn.init(resnet(widths, drop_prob), (28, 28, 1), key=key_init)
    fnn.summary(net)
    steps = epochs * -(-len(x_tr) // batch_size)
    t0 = time.perf_counter()
    net, _, history = fit(
        net,
        optim.adamw(
            optim.cosine_decay(lr, total_steps=max(steps, 1)),
            weight_decay=weight_decay,
            mask=lambda path: path.endswith(".w"),
        ),
        fnn.losses.sparse_softmax_cross_entropy,
        (x_tr, y_tr),
        epochs=epochs,
        key=key_fit,
        batch_size=batch_size,
        validation=(x_val, y_val),
        metrics=[metrics.accuracy],
        early_stopping=EarlyStopping("val_accuracy", patience=3),
        progress=progress,
        train_metrics=False,
    )
    seconds = time.perf_counter() - t0
    for i, loss in enumerate(history.loss if not progress else ()):  # fit printed them
        print(
            f"epoch {i + 1}: loss {loss:.4f}, val_loss {history['val_loss'][i]:.4f}, "
            f"val_accuracy {history['val_accuracy'][i]:.4f}"
        )
    pred = np.concatenate(
        [fnn.forward(net, x_test[i : i + 1000]) for i in range(0, len(x_test), 1000)]
    )
    accuracy = metrics.accuracy(pred, y_test)
    print(
        f"test accuracy {accuracy:.4f} (epoch {history.best_epoch + 1}'s parameters), "
        f"{len(history.epochs)} epochs in {seconds:.0f}s"
    )
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--train", type=int, default=None, help="use the first N training examples")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dataset", choices=["fashion_mnist", "mnist"], default="fashion_mnist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args()
    with fnn.threads(args.threads):
        main(
            epochs=args.epochs,
            n_train=args.train,
            batch_size=args.batch_size,
            lr=args.lr,
            dataset=args.dataset,
            seed=args.seed,
        )
