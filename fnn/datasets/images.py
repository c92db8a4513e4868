"""MNIST-style image sets: MNIST and Fashion-MNIST, found on disk or downloaded once.

`mnist` / `fashion_mnist` return a `Dataset` record of ``uint8`` images
``(n, 28, 28)`` and ``int64`` labels ``(n,)``, each file checked (IDX
structure, shapes, label range); `images_to_float` turns images into what
networks take.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from fnn import _arrays
from fnn.datasets.idx import download, read_idx
from fnn.tree import readonly

__all__ = ["Dataset", "fashion_mnist", "images_to_float", "mnist"]

def _readonly_array(name: str, value: object) -> np.ndarray:
    return readonly(np.asarray(_arrays.plain("fnn.datasets.Dataset", name, value)))


def _x_train(value: object) -> np.ndarray:
    return _readonly_array("x_train", value)


def _y_train(value: object) -> np.ndarray:
    return _readonly_array("y_train", value)


def _x_test(value: object) -> np.ndarray:
    return _readonly_array("x_test", value)


def _y_test(value: object) -> np.ndarray:
    return _readonly_array("y_test", value)


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@attrs.frozen(eq=False)
class Dataset:
    """A train/test split of an image-classification dataset (read-only arrays).

    Unpacks like a tuple: ``x_train, y_train, x_test, y_test = fnn.datasets.mnist()``.

    Attributes:
        x_train: ``(n_train, height, width)`` uint8 pixels, 0 = background.
        y_train: ``(n_train,)`` int64 class labels.
        x_test: ``(n_test, height, width)`` uint8.
        y_test: ``(n_test,)`` int64.
        class_names: the name of each label value.

    Example:
        >>> images, labels = np.zeros((3, 2, 2), np.uint8), np.array([0, 1, 0])
        >>> x_train, y_train, x_test, y_test = Dataset(images, labels, images[:1], labels[:1])
        >>> x_test.shape, y_train.flags.writeable
        ((1, 2, 2), False)
    """

    x_train: np.ndarray = attrs.field(converter=_x_train)
    y_train: np.ndarray = attrs.field(converter=_y_train)
    x_test: np.ndarray = attrs.field(converter=_x_test)
    y_test: np.ndarray = attrs.field(converter=_y_test)
    class_names: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.x_train, self.y_train, self.x_test, self.y_test))


@attrs.frozen
class _Source:
    name: str
    title: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]  # content (uncompressed IDX) SHA-256 per file
    class_names: tuple[str, ...]


_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_MAX_FILE_BYTES = 64 << 20

# Content SHA-256 of the uncompressed files. MNIST: as published alongside the
# files by several independent mirrors' users (not hashed here: no copy on this
# machine). Fashion-MNIST: hashed from Debian's dataset-fashion-mnist package,
# whose gzip files are recompressed copies of Zalando's, and equal to the
# independently published values.
_MNIST = _Source(
    name="mnist",
    title="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    sha256=dict(
        zip(
            _STEMS,
            (
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
            strict=True,
        )
    ),
    class_names=tuple(str(d) for d in range(10)),
)
_FASHION_MNIST = _Source(
    name="fashion-mnist",
    title="Fashion-MNIST",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
    sha256=dict(
        zip(
            _STEMS,
            (
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
            strict=True,
        )
    ),
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)
# System-wide copies installed by distribution packages (Debian: dataset-fashion-mnist).
_SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "mnist": (),
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "fnn"


def _search_dirs(source: _Source, directory: str | os.PathLike[str] | None) -> list[Path]:
    dirs = [Path(directory)] if directory is not None else []
    if os.environ.get("FNN_DATA"):
        dirs.append(Path(os.environ["FNN_DATA"]) / source.name)
    dirs.append(_cache_root() / source.name)
    dirs.extend(Path(d) for d in _SYSTEM_DIRS.get(source.name, ()))
    return dirs


def _find(d: Path, stem: str) -> Path | None:
    for candidate in (d / stem, d / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _fetch(source: _Source, target: Path, base_url: str | None, who: str) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    mirrors = (base_url,) if base_url is not None else source.mirrors
    paths = []
    for stem in _STEMS:
        found = _find(target, stem)
        if found is not None:
            paths.append(found)
            continue
        failures: list[tuple[str, Exception]] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{stem}.gz"
            try:
                paths.append(
                    download(
                        url,
                        target / f"{stem}.gz",
                        content_sha256=source.sha256[stem],
                        max_bytes=_MAX_FILE_BYTES,
                    )
                )
                break
            except (OSError, ValueError) as err:
                failures.append((url, err))
        else:
            kind = ValueError if any(isinstance(e, ValueError) for _, e in failures) else OSError
            tried = "; ".join(f"{url}: {err}" for url, err in failures)
            raise kind(
                f"{who}: could not download {stem}.gz ({tried}). Put the four files "
                f"{', '.join(_STEMS)} (optionally .gz) into {target} or $FNN_DATA/{source.name}/"
            )
    return paths


def _check_split(who: str, x: np.ndarray, y: np.ndarray, part: str, classes: int) -> None:
    if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            f"{who}: the {part} files hold images {x.dtype} {x.shape} and labels {y.dtype} "
            f"{y.shape}; expected uint8 (n, height, width) and (n,); are the files mixed up?"
        )
    if y.dtype.kind not in "iu":
        raise ValueError(
            f"{who}: {part} labels must be integers, the file holds {y.dtype}; is it a label file?"
        )
    low, high = (int(y.min()), int(y.max())) if y.size else (0, 0)
    if low < 0 or high >= classes:
        raise ValueError(
            f"{who}: {part} labels must be in 0..{classes - 1}, found {low if low < 0 else high}; "
            "the label file is corrupted or of another dataset"
        )


def _load(
    source: _Source,
    directory: str | os.PathLike[str] | None,
    download: bool,
    base_url: str | None,
) -> Dataset:
    who = f"fnn.datasets.{source.name.replace('-', '_')}"
    dirs = _search_dirs(source, directory)
    paths: list[Path] | None = None
    for d in dirs:
        found = [_find(d, stem) for stem in _STEMS]
        if all(p is not None for p in found):
            paths = [p for p in found if p is not None]
            break
    if paths is None:
        if not download:
            raise FileNotFoundError(
                f"{who}: {source.title} not found; looked for {', '.join(_STEMS)} (or .gz) in "
                f"{', '.join(map(str, dirs))}. Pass download=True, or put the files in one of "
                "those directories (or set $FNN_DATA)"
            )
        target = Path(directory) if directory is not None else _cache_root() / source.name
        paths = _fetch(source, target, base_url, who)
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    classes = len(source.class_names)
    _check_split(who, x_train, y_train, "training", classes)
    _check_split(who, x_test, y_test, "test", classes)
    return Dataset(
        x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), source.class_names
    )


def mnist(
    directory: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    base_url: str | None = None,
) -> Dataset:
    """The MNIST handwritten digits: 60,000 training and 10,000 test images of 28×28.

    The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or
    ``.gz``) are looked for, all four in one directory, in: ``directory``;
    ``$FNN_DATA/mnist/``; the cache ``$XDG_CACHE_HOME/fnn/mnist/`` (default
    ``~/.cache/fnn/mnist/``). If absent they are downloaded into ``directory``
    (or the cache), each verified against its published SHA-256. Files found on
    disk are trusted (their IDX structure is checked, not their hash).

    Args:
        directory: where to look first (and to download to).
        download: fetch missing files; with ``False`` a missing dataset is an error.
        base_url: a mirror to use instead of the built-in ones (any urllib URL).

    Returns:
        A `Dataset`: ``x_*`` uint8 ``(n, 28, 28)``, ``y_*`` int64 labels
        0-9. For an MLP use ``images_to_float(x)`` (``(n, 784)`` float32 in
        [0, 1]); for a CNN ``images_to_float(x, layout="nhwc")``.

    Raises:
        FileNotFoundError: not found and ``download=False``.
        ValueError: a download failed verification, or the files are malformed.
        OSError: no mirror could be reached.

    Example:
        >>> x_train, y_train, x_test, y_test = mnist()  # doctest: +SKIP
        >>> x_train.shape, y_train.dtype                  # doctest: +SKIP
        ((60000, 28, 28), dtype('int64'))
    """
    return _load(_MNIST, directory, download, base_url)


def fashion_mnist(
    directory: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    base_url: str | None = None,
) -> Dataset:
    """Zalando's Fashion-MNIST: MNIST's layout with ten kinds of clothing.

    Found and downloaded exactly like `mnist` (directory name
    ``fashion-mnist``), with one more place searched before downloading:
    ``/usr/share/datasets/fashion-mnist/`` (Debian's ``dataset-fashion-mnist``).
    Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
    6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot (also in ``class_names``).

    Args:
        directory: where to look first (and to download to).
        download: fetch missing files; with ``False`` a missing dataset is an error.
        base_url: a mirror to use instead of the built-in ones.

    Returns:
        A `Dataset` like `mnist`'s.

    Raises:
        FileNotFoundError: not found and ``download=False``.
        ValueError: a download failed verification, or the files are malformed.
        OSError: no mirror could be reached.

    Example:
        >>> data = fashion_mnist(download=False)  # doctest: +SKIP
        >>> data.class_names[data.y_train[0]]     # doctest: +SKIP
        'Ankle boot'
    """
    return _load(_FASHION_MNIST, directory, download, base_url)


def images_to_float(x: np.ndarray, *, layout: str = "flat", dtype: Any = np.float32) -> np.ndarray:
    """uint8 images ``(batch, height, width)`` as floats in [0, 1]: ``x / 255``.

    Args:
        x: uint8 images of shape ``(batch, height, width)``.
        layout: ``"flat"`` gives ``(batch, height*width)`` for MLPs, ``"nhwc"``
            gives ``(batch, height, width, 1)`` for convolutions, ``"hw"`` keeps
            ``(batch, height, width)``.
        dtype: the floating dtype of the result.

    Returns:
        A read-only array of ``dtype`` in the requested layout.

    Raises:
        TypeError: ``x`` is not a uint8 array.
        ValueError: ``x`` is not 3-d, or ``layout`` is unknown.

    Example:
        >>> images_to_float(np.full((2, 3, 3), 255, np.uint8)).shape
        (2, 9)
    """
    who = "fnn.datasets.images_to_float"
    x = _arrays.plain(who, "x", x)
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{who}: expected uint8 images, got {got}; scale other data yourself")
    if x.ndim != 3:
        raise ValueError(f"{who}: expected images of shape (batch, height, width), got {x.shape}")
    shapes = {"flat": (len(x), -1), "nhwc": (*x.shape, 1), "hw": x.shape}
    if layout not in shapes:
        raise ValueError(f"{who}: layout must be one of {sorted(shapes)}, got {layout!r}")
    out = x.astype(dtype) / np.asarray(255, dtype=dtype)
    return readonly(out.reshape(shapes[layout]))
