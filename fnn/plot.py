"""Pictures of what a network does: activations, gradient norms, weights, decision regions.

Every function here is pure: it reads a network (or a gradient) and some data,
writes one PNG file to ``path`` and returns ``path`` as a `pathlib.Path`.
Nothing is mutated, no window opens and matplotlib's global state (pyplot, the
current backend) is never touched: each picture is drawn on its own
``matplotlib.figure.Figure`` with the Agg renderer.

matplotlib is optional; it is imported only when a function here is called, and
its absence gives an ``ImportError`` that says ``pip install fnn[plot]``.

Example:
    >>> import os, tempfile
    >>> import numpy as np, fnn
    >>> from fnn import plot
    >>> net = fnn.init([fnn.Dense(4), fnn.ReLU(), fnn.Dense(2)], (3,), key=0)
    >>> out = plot.activations(net, np.ones((1, 3)), os.path.join(tempfile.mkdtemp(), "a.png"))
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fnn import tree
from fnn._diagnose import check_folder
from fnn.layers._base import Layer
from fnn.layers.activations import Sigmoid
from fnn.layers.dense import Dense
from fnn.network import Network, forward, prepare_input
from fnn.network import activations as network_activations

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["activations", "decision_boundary", "first_layer_weights", "gradient_norms"]

Array = np.ndarray
PathLike = str | os.PathLike[str]


def _figure(who: str, figsize: tuple[float, float]) -> Figure:
    """A fresh Agg figure, or an ImportError naming the extra to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            f"{who} needs matplotlib, which is not installed; install it with "
            "pip install fnn[plot] (or pip install matplotlib)"
        ) from err
    return Figure(figsize=figsize, layout="constrained")


def _check_path(who: str, path: object) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            f"{who}: path must be a file name such as 'picture.png', got {type(path).__name__}"
        )
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"{who}: path must end in .png, got {str(p)!r}; e.g. 'picture.png'")
    return check_folder(who, p)


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    fig.savefig(path, dpi=dpi)
    return path


def _check_net(who: str, net: object) -> Network:
    if not isinstance(net, Network):
        raise TypeError(f"{who}: expected an fnn.Network (from fnn.init), got {type(net).__name__}")
    return net


def _has_params(layer: Layer) -> bool:
    return len(tree.leaves(layer)) > len(tree.state_paths(layer))


def _columns(net: Network, outs: tuple[Array, ...]) -> list[tuple[str, Array, Layer | None]]:
    """``(label, activations of one example, layer that produced them)`` per drawn column.

    A column is the output of a layer with parameters together with the
    parameter-free layers after it (``Dense(32) + ReLU``). Parameter-free
    layers before the first parametric one (a ``Flatten``) belong to the input.
    """
    cols: list[tuple[str, Array, Layer | None]] = []
    label, first = "input", None
    for i, layer in enumerate(net.layers):
        if _has_params(layer):
            cols.append((label, outs[i][0].ravel(), first))
            label, first = layer.name, layer
        elif first is not None:
            label = f"{label} + {layer.name}"
    cols.append((label, outs[-1][0].ravel(), first))
    return cols


def _shown(a: Array, max_neurons: int) -> Array:
    """Indices drawn for a column: all, or the ``max_neurons`` largest |a| in index order."""
    if a.size <= max_neurons:
        return np.arange(a.size)
    return np.sort(np.argsort(-np.abs(a), kind="stable")[:max_neurons])


def _positive_int(who: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def activations(
    net: Network,
    x: Array,
    path: PathLike,
    *,
    max_neurons: int = 24,
    output_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Draw the network as columns of neurons shaded by how active they are for one input.

    Column ``k`` holds the activations ``a_k`` after the ``k``-th layer with
    parameters (and the parameter-free layers that follow it, so a column is
    ``Dense(32) + ReLU``); column 0 is the input. Each neuron is shaded by
    ``(a − min a_k) / (max a_k − min a_k)``, its value scaled to its column's
    range, so brighter neurons are more active. A column wider than
    ``max_neurons`` shows the ``max_neurons`` units of largest ``|a|`` (the
    heading says so). Between two ``Dense`` columns, an edge ``i → j`` is drawn
    when its contribution ``|a_i · W_ij|`` to neuron ``j`` is at least 15% of the
    largest one, darker for larger contributions.

    Args:
        net: a built network.
        x: one example with its batch axis, shape ``(1, *net.input_shape)``.
        path: the PNG file to write.
        max_neurons: the most neurons drawn per column.
        output_labels: names for the output units (e.g. class names).
        title: a title for the picture.

    Returns:
        ``path`` as a `pathlib.Path`.

    Raises:
        TypeError: ``net`` is not a Network, ``x`` not an array, ``path`` not a path.
        ValueError: ``x`` is not a batch of exactly one example, ``path`` does
            not end in ``.png``, ``max_neurons < 1``, or ``output_labels`` has
            the wrong length.
        ImportError: matplotlib is missing.

    Example:
        >>> import os, tempfile
        >>> import numpy as np, fnn
        >>> from fnn import plot
        >>> net = fnn.init([fnn.Dense(3), fnn.Tanh(), fnn.Dense(1)], (2,), key=0)
        >>> out = plot.activations(net, np.array([[0.5, -1.0]]),
        ...                        os.path.join(tempfile.mkdtemp(), "act.png"))
        >>> out.stat().st_size > 0
        True
    """
    who = "fnn.plot.activations"
    net = _check_net(who, net)
    p = _check_path(who, path)
    max_neurons = _positive_int(who, "max_neurons", max_neurons)
    xb = prepare_input(who, net, x)
    if xb.shape[0] != 1:
        raise ValueError(
            f"{who}: x must hold exactly one example, shape (1, ...), got {xb.shape}; "
            "pass x[:1] (or x[i:i+1]) to draw example i"
        )
    cols = _columns(net, network_activations(net, xb))
    n_out = cols[-1][1].size
    if output_labels is not None and len(output_labels) != n_out:
        raise ValueError(
            f"{who}: output_labels has {len(output_labels)} names but the network has "
            f"{n_out} outputs; give one name per output unit"
        )
    fig = _figure(who, (2.3 * len(cols) + 1.5, 6.0))
    ax = fig.add_subplot()
    cmap = _cmap("magma")
    shown = [_shown(a, max_neurons) for _, a, _ in cols]
    ys = [np.linspace(1, 0, len(s)) if len(s) > 1 else np.array([0.5]) for s in shown]
    for k in range(1, len(cols)):
        _edges(ax, cols[k - 1][1], cols[k][2], shown[k - 1], shown[k], ys[k - 1], ys[k], k)
    for k, (label, a, _) in enumerate(cols):
        vals = a[shown[k]]
        span = float(a.max() - a.min())
        level = (vals - a.min()) / span if span > 0 else np.zeros_like(vals)
        ax.scatter(
            np.full(len(shown[k]), k), ys[k], s=260 if len(shown[k]) <= 12 else 120,
            c=cmap(level), edgecolors="0.35", linewidths=0.6, zorder=3,
        )
        n = a.size
        more = f"\n(top {len(shown[k])} by |a|)" if n > len(shown[k]) else ""
        head = f"{label}\n{n} units{more}"
        ax.text(k, 1.06, head, ha="center", va="bottom", fontsize=8)
    if output_labels is not None:
        out = cols[-1][1]
        for j, yy in zip(shown[-1], ys[-1], strict=True):
            ax.text(len(cols) - 1 + 0.12, yy, f"{output_labels[j]}  {out[j]:.2f}",
                    va="center", fontsize=8)
    ax.set_xlim(-0.4, len(cols) - 0.6 + (0.7 if output_labels is not None else 0))
    ax.set_ylim(-0.06, 1.22)
    ax.axis("off")
    from matplotlib.cm import ScalarMappable

    fig.colorbar(
        ScalarMappable(cmap=cmap), ax=ax, shrink=0.5,
        label="activation, scaled to its column's range",
    )
    if title:
        fig.suptitle(title)
    return _save(fig, p, 80)


def _cmap(name: str) -> Any:
    from matplotlib import colormaps

    return colormaps[name]


def _edges(
    ax: Any,
    a_prev: Array,
    layer: Layer | None,
    rows: Array,
    cols: Array,
    y_prev: Array,
    y_next: Array,
    k: int,
) -> None:
    """Lines from column ``k-1`` to ``k`` shaded by ``|a_i · W_ij|`` (Dense layers only)."""
    if not isinstance(layer, Dense) or layer.w is None or layer.w.shape[0] != a_prev.size:
        return
    contrib = np.abs(a_prev[rows][:, None] * layer.w[np.ix_(rows, cols)])
    top = contrib.max()
    if top <= 0:
        return
    from matplotlib.collections import LineCollection

    strength = contrib / top
    keep = np.argwhere(strength >= 0.15)
    segs = [[(k - 1, y_prev[i]), (k, y_next[j])] for i, j in keep]
    alpha = strength[keep[:, 0], keep[:, 1]] * 0.8
    colors = np.zeros((len(segs), 4))
    colors[:, :3] = 0.15
    colors[:, 3] = alpha
    ax.add_collection(LineCollection(segs, colors=colors, linewidths=0.8, zorder=1))


def _layer_norms(who: str, grads: object) -> list[tuple[str, float]]:
    """``(label, ‖g‖₂)`` for each layer with trainable arrays (state arrays left out)."""
    if isinstance(grads, Network):
        out = []
        for i, layer in enumerate(grads.layers):
            state = tree.state_paths(layer)
            leaves = [a for pth, a in tree.leaves_with_path(layer) if pth not in state]
            if leaves:
                norm = math.sqrt(sum(float(np.vdot(a, a)) for a in leaves))
                out.append((f"layers[{i}]: {layer.name}", norm))
        return out
    raise TypeError(
        f"{who}: grads must be an fnn.Network of gradients (from fnn.grad), "
        f"got {type(grads).__name__}"
    )


def gradient_norms(
    grads: Network | Mapping[str, Network],
    path: PathLike,
    *,
    log: bool = True,
    title: str | None = None,
) -> Path:
    """Bar chart of the gradient norm ``‖∂L/∂θ_l‖₂`` of each layer ``l`` with parameters.

    Vanishing gradients show as bars that shrink towards the input (early
    layers), exploding ones as bars that grow. Pass a mapping of
    ``{label: grads}`` to compare several networks of the same depth (e.g. a
    sigmoid and a ReLU network) side by side.

    Args:
        grads: a gradient ``Network`` (``fnn.grad(...)``) or a mapping of labels
            to gradient networks with the same layer structure.
        path: the PNG file to write.
        log: use a logarithmic y axis (default), where factors look like steps.
        title: a title for the picture.

    Returns:
        ``path`` as a `pathlib.Path`.

    Raises:
        TypeError: ``grads`` is not a Network or a mapping of Networks.
        ValueError: an empty mapping, networks with different numbers of
            parametric layers, or a ``path`` not ending in ``.png``.
        ImportError: matplotlib is missing.

    Example:
        >>> import os, tempfile
        >>> import numpy as np, fnn
        >>> from fnn import plot
        >>> net = fnn.init([fnn.Dense(3), fnn.Tanh(), fnn.Dense(1)], (2,), key=0)
        >>> g = fnn.grad(net, np.ones((4, 2)), np.zeros((4, 1)), fnn.losses.mse)
        >>> plot.gradient_norms(g, os.path.join(tempfile.mkdtemp(), "g.png")).suffix
        '.png'
    """
    who = "fnn.plot.gradient_norms"
    p = _check_path(who, path)
    series = dict(grads) if isinstance(grads, Mapping) else {"": grads}
    if not series:
        raise ValueError(f"{who}: grads is an empty mapping; pass at least one gradient network")
    norms = {label: _layer_norms(who, g) for label, g in series.items()}
    lengths = {len(v) for v in norms.values()}
    if len(lengths) != 1:
        raise ValueError(
            f"{who}: the gradient networks have different numbers of layers with parameters "
            f"({ {k: len(v) for k, v in norms.items()} }); compare networks of the same depth"
        )
    n = lengths.pop()
    fig = _figure(who, (max(4.5, 0.9 * n + 2.5), 3.8))
    ax = fig.add_subplot()
    width = 0.8 / len(norms)
    for s, (label, rows) in enumerate(norms.items()):
        pos = np.arange(n) + (s - (len(norms) - 1) / 2) * width
        ax.bar(pos, [v for _, v in rows], width, label=label or None)
    first = next(iter(norms.values()))
    if len(norms) == 1:
        names = [textwrap.fill(name, 14, break_long_words=False) for name, _ in first]
    else:
        names = [name.split(":")[0] for name, _ in first]
    ax.set_xticks(np.arange(n), names, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("‖∂L/∂θ‖₂ of the layer")
    ax.set_xlabel("input side  →  output side")
    ax.grid(axis="y", alpha=0.3)
    if len(norms) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, p, 100)


def _image_shape(who: str, net: Network, d_in: int, image_shape: object) -> tuple[int, int]:
    if image_shape is not None:
        if (
            not isinstance(image_shape, tuple | list)
            or len(image_shape) != 2
            or not all(isinstance(v, int) and v > 0 for v in image_shape)
            or image_shape[0] * image_shape[1] != d_in
        ):
            raise ValueError(
                f"{who}: image_shape must be (height, width) with height * width = {d_in} "
                f"(the first Dense layer's d_in), got {image_shape!r}"
            )
        return int(image_shape[0]), int(image_shape[1])
    shp = net.input_shape
    if len(shp) in (2, 3) and shp[0] * shp[1] == d_in:
        return shp[0], shp[1]
    side = math.isqrt(d_in)
    if side * side == d_in:
        return side, side
    raise ValueError(
        f"{who}: cannot tell the image shape of {d_in} inputs; pass image_shape=(height, width)"
    )


def first_layer_weights(
    net: Network,
    path: PathLike,
    *,
    image_shape: tuple[int, int] | None = None,
    max_units: int = 32,
    title: str | None = None,
) -> Path:
    """Show each unit's incoming weights of the first ``Dense`` layer as an image.

    Unit ``j`` of a Dense layer on flattened images computes ``Σ_i x_i W_ij``;
    its column ``W[:, j]``, reshaped to ``(height, width)``, is the pattern the
    unit responds to. Each tile uses a diverging colour map symmetric around 0
    (red positive, blue negative), scaled to that unit's largest ``|W_ij|``.

    Args:
        net: a built network containing a ``Dense`` layer whose input is an
            image flattened to ``d_in = height · width`` values.
        path: the PNG file to write.
        image_shape: ``(height, width)``; inferred from ``net.input_shape`` or a
            square ``d_in`` when left out.
        max_units: the most units shown (the first ones).
        title: a title for the picture.

    Returns:
        ``path`` as a `pathlib.Path`.

    Raises:
        TypeError: ``net`` is not a Network.
        ValueError: no Dense layer, an image shape that does not fit ``d_in``,
            ``max_units < 1``, or a ``path`` not ending in ``.png``.
        ImportError: matplotlib is missing.

    Example:
        >>> import os, tempfile
        >>> import fnn
        >>> from fnn import plot
        >>> net = fnn.init([fnn.Flatten(), fnn.Dense(4)], (8, 8, 1), key=0)
        >>> plot.first_layer_weights(net, os.path.join(tempfile.mkdtemp(), "w.png")).name
        'w.png'
    """
    who = "fnn.plot.first_layer_weights"
    net = _check_net(who, net)
    p = _check_path(who, path)
    max_units = _positive_int(who, "max_units", max_units)
    dense = next((layer for layer in net.layers if isinstance(layer, Dense)), None)
    if dense is None or dense.w is None:
        raise ValueError(f"{who}: the network has no built Dense layer to show")
    w = dense.w
    h, wd = _image_shape(who, net, w.shape[0], image_shape)
    units = min(w.shape[1], max_units)
    ncols = min(units, 8)
    nrows = math.ceil(units / ncols)
    fig = _figure(who, (1.15 * ncols + 0.3, 1.25 * nrows + (0.4 if title else 0.1)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for idx, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if idx >= units:
            continue
        tile = w[:, idx].reshape(h, wd)
        lim = float(np.abs(tile).max()) or 1.0
        ax.imshow(tile, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"unit {idx}", fontsize=7, pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, p, 90)


def _labels(who: str, y: object, n: int) -> Array:
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{who}: y must be a NumPy array of labels, got {type(y).__name__}")
    if y.shape == (n, 1):
        y = y[:, 0]
    if y.shape != (n,):
        raise ValueError(
            f"{who}: y must hold one label per point, shape ({n},) or ({n}, 1), got {y.shape}; "
            "for one-hot targets pass y.argmax(axis=1)"
        )
    if y.dtype.kind not in "iubf" or (y.dtype.kind == "f" and not np.all(y == np.round(y))):
        raise ValueError(f"{who}: y must hold integer class labels (0, 1, ...), got {y.dtype}")
    return y.astype(np.int64)


def _classes(out: Array, threshold: float) -> Array:
    if out.shape[1] == 1:
        return (out[:, 0] > threshold).astype(np.int64)
    classes: Array = out.argmax(axis=1)
    return classes


def decision_boundary(
    net: Network,
    x: Array,
    y: Array,
    path: PathLike,
    *,
    resolution: int = 200,
    threshold: float | None = None,
    title: str | None = None,
) -> Path:
    """Colour the plane by the class the network predicts, with the data on top.

    The network must take 2-D points. It is evaluated on a
    ``resolution × resolution`` grid covering the data with a 10% margin; the
    predicted class is ``argmax`` of the outputs, or for a single output
    ``[output > threshold]``. The curve where the prediction changes is the
    decision boundary.

    Args:
        net: a built network with ``input_shape == (2,)``.
        x: ``(n, 2)`` points.
        y: ``(n,)`` (or ``(n, 1)``) integer class labels of the points.
        path: the PNG file to write.
        resolution: grid points per axis.
        threshold: for a single output; default 0.5 after a final ``Sigmoid``,
            0.0 otherwise (a logit).
        title: a title for the picture.

    Returns:
        ``path`` as a `pathlib.Path`.

    Raises:
        TypeError: wrong kinds of ``net``, ``x``, ``y`` or ``path``.
        ValueError: the network does not take 2-D points, shapes of ``x`` and
            ``y`` disagree, labels are not integers, ``resolution < 2``.
        ImportError: matplotlib is missing.

    Example:
        >>> import os, tempfile
        >>> import numpy as np, fnn
        >>> from fnn import plot
        >>> net = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(2)], (2,), key=0)
        >>> x = np.array([[0.0, 0.0], [1.0, 1.0]]); y = np.array([0, 1])
        >>> plot.decision_boundary(net, x, y, os.path.join(tempfile.mkdtemp(), "d.png"),
        ...                        resolution=20).exists()
        True
    """
    who = "fnn.plot.decision_boundary"
    net = _check_net(who, net)
    p = _check_path(who, path)
    if net.input_shape != (2,):
        raise ValueError(
            f"{who}: the network takes inputs of shape {net.input_shape}; decision regions "
            "can be drawn only for 2-D points, input_shape (2,)"
        )
    resolution = _positive_int(who, "resolution", resolution)
    if resolution < 2:
        raise ValueError(f"{who}: resolution must be at least 2, got {resolution}")
    xb = prepare_input(who, net, x)
    labels = _labels(who, y, xb.shape[0])
    if threshold is None:
        threshold = 0.5 if isinstance(net.layers[-1], Sigmoid) else 0.0
    lo, hi = xb.min(axis=0), xb.max(axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-6)
    g0 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    g1 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    mesh = np.stack(np.meshgrid(g0, g1), axis=-1).reshape(-1, 2)
    pred = _classes(forward(net, mesh), threshold).reshape(resolution, resolution)
    n_classes = int(max(pred.max(), labels.max())) + 1
    fig = _figure(who, (6.0, 4.6))
    ax = fig.add_subplot()
    cmap = _cmap("tab10")
    colors = [cmap(c % 10) for c in range(n_classes)]
    from matplotlib.colors import ListedColormap

    ax.imshow(
        pred, origin="lower", extent=(g0[0], g0[-1], g1[0], g1[-1]), aspect="auto",
        cmap=ListedColormap(colors), vmin=-0.5, vmax=n_classes - 0.5, alpha=0.25,
        interpolation="nearest",
    )
    if pred.min() != pred.max():
        ax.contour(g0, g1, pred, levels=np.arange(n_classes - 1) + 0.5, colors="k",
                   linewidths=1.0)
    for c in range(n_classes):
        m = labels == c
        if m.any():
            ax.scatter(xb[m, 0], xb[m, 1], s=10, color=colors[c], edgecolors="k",
                       linewidths=0.3, label=f"class {c}")
    acc = float((_classes(forward(net, xb), threshold) == labels).mean())
    ax.set_xlabel("x[:, 0]")
    ax.set_ylabel("x[:, 1]")
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
        title=f"accuracy {acc:.1%}", title_fontsize=8,
    )
    if title:
        ax.set_title(title)
    return _save(fig, p, 90)
