"""Datasets: IDX files, MNIST and Fashion-MNIST, generated toy problems, and data helpers.

- `read_idx` / `write_idx`: the IDX format of the MNIST files, plain
  or gzip-compressed.
- `mnist` / `fashion_mnist`: the four standard files, found on disk
  or downloaded once with SHA-256 verification, as a `Dataset` record of
  ``uint8`` images ``(n, 28, 28)`` and ``int64`` labels ``(n,)``;
  `images_to_float` turns images into what networks take.
- `xor`, `linear_regression`, `two_spirals`: toy problems,
  generated from an explicit key where random.
- `train_val_split`, `one_hot`: the two helpers every training
  script needs.

Every array returned here is read-only: data are values, like networks.

Example:
    >>> x, y = xor()
    >>> x.shape, y.ravel().tolist()
    ((4, 2), [0.0, 1.0, 1.0, 0.0])
    >>> one_hot(np.array([2, 0]), 3).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import stat
import tempfile
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import attrs
import numpy as np

from fnn import _arrays
from fnn.random import KeyLike, as_key, generator
from fnn.tree import readonly

__all__ = [
    "Dataset",
    "download",
    "fashion_mnist",
    "images_to_float",
    "linear_regression",
    "mnist",
    "one_hot",
    "read_idx",
    "train_val_split",
    "two_spirals",
    "write_idx",
    "xor",
]

# ---------------------------------------------------------------------------
# IDX files: 2 zero bytes, a type code, the rank; then rank big-endian uint32
# dimensions; then the data, big-endian, C order.

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
_CHUNK = 1 << 22
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_RANK = 32  # files in use have rank 1-4; NumPy 1.x arrays stop at 32 axes
_DEFLATE_MAX_RATIO = 1032  # deflate turns n bytes into at most about 1032·n
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _read_exactly(f: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes, in chunks, so a lying size never allocates more than arrives."""
    parts, left = [], n
    while left > 0:
        part = f.read(min(left, _CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _open_regular(path: Path, who: str) -> IO[bytes]:
    """Open ``path`` for reading if it is a regular file; refuse anything else at once.

    Opened non-blocking, so a FIFO without a writer does not hang ``open``; its
    kind is then checked on the open descriptor (no race with a swapped path).
    """
    nonblock = getattr(os, "O_NONBLOCK", 0)  # 0 on Windows, which has no FIFOs in the path
    fd = os.open(path, os.O_RDONLY | nonblock)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
            raise ValueError(
                f"{who}: not a regular file ({kind}); read_idx reads IDX files from disk"
            )
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def _open_maybe_gzip(path: Path, who: str) -> Iterator[tuple[IO[bytes], bool, int]]:
    """``(stream, compressed, file size)``: gzip is detected from the first bytes."""
    with _open_regular(path, who) as raw:
        size = os.fstat(raw.fileno()).st_size
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield raw, False, size
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield cast(IO[bytes], unzipped), True, size


def _check_declared(
    who: str, dims: tuple[int, ...], itemsize: int, header: int, compressed: bool, size: int,
    max_bytes: int,
) -> int:
    """The data size the header declares, refused before anything is read if it cannot be."""
    nbytes = math.prod(dims) * itemsize
    if nbytes > max_bytes:
        raise ValueError(
            f"{who}: shape {dims} declares {nbytes} data bytes, more than max_bytes={max_bytes}; "
            f"pass max_bytes={nbytes} (or more) if the file really holds that much"
        )
    if math.prod(max(d, 1) for d in dims) * itemsize > np.iinfo(np.intp).max:
        raise ValueError(f"{who}: dimensions {dims} are absurd: no array can have that shape")
    if not compressed and nbytes > size - header:
        raise ValueError(
            f"{who}: truncated: shape {dims} needs {nbytes} data bytes, found {size - header}"
        )
    if compressed and nbytes + header > _DEFLATE_MAX_RATIO * size + 1024:
        raise ValueError(
            f"{who}: shape {dims} declares {nbytes} data bytes, more than a gzip file of {size} "
            f"bytes can hold (deflate expands at most {_DEFLATE_MAX_RATIO}-fold): truncated or "
            "forged"
        )
    return nbytes


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = 1 << 30) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed, detected from its first bytes).

    Layout: bytes 0-1 are zero, byte 2 the type code (0x08 uint8, 0x09 int8,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), byte 3 the rank ``r``;
    then ``r`` big-endian uint32 dimensions; then ``prod(dims)`` big-endian
    values in C order.

    The header is checked before any data is read: a rank above 32, a shape
    no array can have, more data than ``max_bytes``, than a plain file holds
    or than a gzip file of its size can expand to is refused, so a forged
    header never makes ``read_idx`` allocate what it merely declares. Only
    regular files are read: a FIFO, device or directory is refused at once.

    Args:
        path: the file, e.g. ``train-images-idx3-ubyte.gz``.
        max_bytes: the largest data size accepted (1 GiB by default; the MNIST
            training images are 47 MB).

    Returns:
        A read-only array of shape ``dims`` in native byte order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a regular file, wrong magic number, an absurd rank or
            shape, more data than ``max_bytes``, truncated data, trailing bytes
            or a corrupted gzip stream; the message names the file.

    Example:
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_idx(os.path.join(d, "a.gz"), np.arange(6, dtype=np.uint8).reshape(2, 3))
        ...     read_idx(os.path.join(d, "a.gz")).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    path = Path(path)
    who = f"fnn.datasets.read_idx: {path}"
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"{who}: max_bytes must be a positive int, got {max_bytes!r}")
    try:
        with _open_maybe_gzip(path, who) as (f, compressed, size):
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES:
                raise ValueError(
                    f"{who}: not an IDX file (magic number {magic.hex() or 'missing'}; expected "
                    "00 00, a type code in 08 09 0b 0c 0d 0e, and the rank)"
                )
            dtype, rank = _IDX_DTYPES[magic[2]], magic[3]
            if rank > _MAX_RANK:
                raise ValueError(
                    f"{who}: rank {rank} is absurd (IDX files hold rank 1-4; at most "
                    f"{_MAX_RANK} is accepted)"
                )
            raw_dims = f.read(4 * rank)
            if len(raw_dims) < 4 * rank:
                raise ValueError(f"{who}: truncated header ({rank} dimensions expected)")
            dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
            header = 4 + 4 * rank
            nbytes = _check_declared(
                who, dims, dtype.itemsize, header, compressed, size, max_bytes
            )
            data = _read_exactly(f, nbytes)
            if len(data) < nbytes:
                raise ValueError(
                    f"{who}: truncated: shape {dims} needs {nbytes} data bytes, found {len(data)}"
                )
            if f.read(1):
                raise ValueError(f"{who}: trailing bytes after the {nbytes} data bytes of {dims}")
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{who}: corrupted gzip stream ({err})") from None
    array = np.frombuffer(data, dtype=dtype).reshape(dims)
    return readonly(array.astype(dtype.newbyteorder("="), copy=False))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``.

    Args:
        path: the file to write (overwritten).
        array: uint8, int8, int16, int32, float32 or float64, any rank up to 255.

    Raises:
        TypeError: ``array`` is not an array of an IDX dtype.

    Example:
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_idx(os.path.join(d, "x"), np.array([1.5], np.float32))
        ...     Path(d, "x").read_bytes()[:4].hex()
        '00000d01'
    """
    array = _arrays.plain("fnn.datasets.write_idx", "array", array)
    if not isinstance(array, np.ndarray) or array.dtype.newbyteorder("=") not in _IDX_CODES:
        got = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise TypeError(
            f"fnn.datasets.write_idx: expected an array of uint8, int8, int16, int32, float32 "
            f"or float64, got {got}; convert it with array.astype(...)"
        )
    code = _IDX_CODES[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


# ---------------------------------------------------------------------------
# Download with verification.


def _content_sha256(path: Path, max_bytes: int) -> str:
    """SHA-256 of the file's content (after gunzip if it is gzip), reading at most ``max_bytes``."""
    digest, total = hashlib.sha256(), 0
    try:
        with _open_maybe_gzip(path, path.name) as (f, _, _):
            while chunk := f.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise ValueError(f"{path.name}: content exceeds {max_bytes} bytes")
                digest.update(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{path.name}: corrupted gzip stream ({err})") from None
    return digest.hexdigest()


def download(
    url: str,
    path: str | os.PathLike[str],
    *,
    content_sha256: str,
    max_bytes: int = 1 << 30,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``path``, verifying its content, leaving nothing behind on failure.

    The data go to a temporary file beside ``path``; its SHA-256 is checked and
    only then is it renamed to ``path``. The hash is of the *content*: of the
    bytes after gzip decompression when the download is gzip-compressed, else
    of the bytes themselves, so mirrors that recompress a file verify too.

    Args:
        url: any URL urllib opens (``https://``, ``http://``, ``file://``).
        path: the destination; its directory must exist.
        content_sha256: the expected hex SHA-256 of the content.
        max_bytes: refuse downloads or decompressed contents larger than this.
        timeout: seconds to wait for the server.

    Returns:
        ``path``, now holding the verified file.

    Raises:
        ValueError: checksum mismatch, oversize or corrupted data (the temp file
            is deleted and ``path`` untouched).
        OSError: the URL could not be fetched (``urllib.error.URLError``).

    Example:
        >>> import os, tempfile, hashlib, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     src = pathlib.Path(d, "src"); _ = src.write_bytes(b"data")
        ...     sha = hashlib.sha256(b"data").hexdigest()
        ...     download(src.as_uri(), os.path.join(d, "dst"), content_sha256=sha).read_bytes()
        b'data'
    """
    path = Path(path)
    if not isinstance(url, str):
        raise TypeError(f"fnn.datasets.download: url must be a string, got {url!r}")
    if not isinstance(content_sha256, str) or len(content_sha256) != 64:
        raise TypeError(
            "fnn.datasets.download: content_sha256 must be the 64-character hex SHA-256 "
            f"of the file, got {content_sha256!r}"
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = 0
            while chunk := response.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise ValueError(f"fnn.datasets.download: {url} exceeds {max_bytes} bytes")
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = _content_sha256(tmp, max_bytes)
        if got != content_sha256.lower():
            raise ValueError(
                f"fnn.datasets.download: {url} has content SHA-256 {got}, expected "
                f"{content_sha256}; the download is corrupted or the mirror serves another "
                "file. Nothing was kept; try again or another mirror (base_url=...)"
            )
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


# ---------------------------------------------------------------------------
# MNIST and Fashion-MNIST.


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


# ---------------------------------------------------------------------------
# Toy problems.


def _positive(who: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def xor(dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: ``x`` ``(4, 2)`` in {0, 1}², ``y = x₀ XOR x₁`` of shape ``(4, 1)``.

    Example:
        >>> x, y = xor()
        >>> x.tolist()
        [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    """
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([[0], [1], [1], [0]], dtype=dtype)
    return readonly(x), readonly(y)


@_arrays.underflow_retried
def linear_regression(
    key: KeyLike,
    n: int = 1000,
    *,
    low: int = 0,
    high: int = 100,
    bias: float = 0.0,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's regression toy: integer inputs and ``target = x + 2y + 3z + bias``.

    ``x`` has three columns of integers drawn uniformly from ``[low, high)``
    (0-99 by default); the classic extrapolation check draws a validation set
    from ``low=5000, high=10000``. The target is exact (no noise).

    Args:
        key: an ``fnn.random.Key`` or int seed; same key, same data.
        n: number of rows.
        low, high: the integer range of the inputs.
        bias: added to every target (0 by default, as in the tutorial).
        dtype: dtype of both arrays.

    Returns:
        ``(x, y)`` of shapes ``(n, 3)`` and ``(n, 1)``.

    Raises:
        ValueError: ``n`` not a positive int or ``low >= high``.

    Example:
        >>> x, y = linear_regression(0, 2)
        >>> bool((y[:, 0] == x[:, 0] + 2 * x[:, 1] + 3 * x[:, 2]).all())
        True
    """
    who = "fnn.datasets.linear_regression"
    n = _positive(who, "n", n)
    if not low < high:
        raise ValueError(f"{who}: need low < high, got low={low}, high={high}")
    if isinstance(bias, bool) or not isinstance(bias, int | float | np.integer | np.floating):
        raise TypeError(f"{who}: bias must be a real number, got {bias!r}")
    if not math.isfinite(_arrays.real(bias)):
        raise ValueError(f"{who}: bias must be a finite number, got {_arrays.short(bias)}")
    x = generator(as_key(key, who)).integers(low, high, size=(n, 3)).astype(np.float64)
    y = x @ np.array([[1.0], [2.0], [3.0]]) + bias
    return readonly(x.astype(dtype)), readonly(y.astype(dtype))


@_arrays.underflow_retried
def two_spirals(
    key: KeyLike,
    n_per_class: int = 100,
    *,
    noise: float = 0.0,
    turns: float = 1.5,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane, a classic non-linear binary problem.

    For ``u ~ U(0, 1)``: angle ``t = 2π·turns·√u``, radius ``r = √u``; class 0 is
    ``(r cos t, r sin t)``, class 1 the same rotated by π; then Gaussian noise
    of standard deviation ``noise`` is added to both coordinates.

    Args:
        key: an ``fnn.random.Key`` or int seed.
        n_per_class: points per class.
        noise: standard deviation of the added noise (radius is at most 1).
        turns: how many times each arm winds round.
        dtype: dtype of ``x``.

    Returns:
        ``(x, y)``: ``x`` ``(2·n_per_class, 2)``; ``y`` ``(2·n_per_class,)`` int64
        labels, the first ``n_per_class`` are 0. For a sigmoid output with binary
        cross-entropy use ``y[:, None].astype(np.float32)``.

    Raises:
        ValueError: ``n_per_class`` not a positive int, negative ``noise`` or ``turns <= 0``.

    Example:
        >>> x, y = two_spirals(0, 5)
        >>> x.shape, y.tolist()
        ((10, 2), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    """
    who = "fnn.datasets.two_spirals"
    n = _positive(who, "n_per_class", n_per_class)
    finite = math.isfinite(_arrays.real(noise)) and math.isfinite(_arrays.real(turns))
    if not (finite and noise >= 0 and turns > 0):
        raise ValueError(f"{who}: need noise >= 0 and turns > 0, got noise={noise}, turns={turns}")
    rng = generator(as_key(key, who))
    r = np.sqrt(rng.uniform(0.0, 1.0, size=n))
    t = 2 * np.pi * turns * r
    arm = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * n, 2))
    y = np.repeat(np.array([0, 1], dtype=np.int64), n)
    return readonly(x.astype(dtype)), readonly(y)


# ---------------------------------------------------------------------------
# Helpers.


def train_val_split(
    x: np.ndarray, y: np.ndarray, *, val_fraction: float, key: KeyLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split examples at random into training and validation parts.

    ``n_val = ceil(val_fraction · n)`` examples, chosen by a permutation from
    ``key``, go to validation; the rest to training. Both parts keep the
    original order of their examples. Same key, same split.

    Args:
        x: ``(n, ...)`` inputs.
        y: ``(n, ...)`` targets.
        val_fraction: in (0, 1).
        key: an ``fnn.random.Key`` or int seed.

    Returns:
        ``(x_train, y_train, x_val, y_val)``, read-only copies.

    Raises:
        TypeError: ``x`` or ``y`` is not an array.
        ValueError: different lengths, ``val_fraction`` outside (0, 1), or a part
            would be empty.

    Example:
        >>> x, y = np.arange(10).reshape(5, 2), np.arange(5)
        >>> x_tr, y_tr, x_va, y_va = train_val_split(x, y, val_fraction=0.4, key=0)
        >>> len(y_tr), len(y_va), sorted(y_tr.tolist() + y_va.tolist())
        (3, 2, [0, 1, 2, 3, 4])
    """
    who = "fnn.datasets.train_val_split"
    x, y = _arrays.plain(who, "x", x), _arrays.plain(who, "y", y)
    for name, a in (("x", x), ("y", y)):
        if not isinstance(a, np.ndarray) or a.ndim == 0:
            raise TypeError(f"{who}: {name} must be an array with a batch axis, got {a!r:.60}")
    if len(x) != len(y):
        raise ValueError(
            f"{who}: x has {len(x)} examples but y has {len(y)}; both need the batch axis first"
        )
    if isinstance(val_fraction, bool) or not 0 < val_fraction < 1:
        raise ValueError(f"{who}: val_fraction must be in (0, 1), got {val_fraction!r}")
    n = len(x)
    n_val = math.ceil(val_fraction * n)
    if n_val >= n:
        raise ValueError(
            f"{who}: val_fraction={val_fraction} of {n} examples leaves no training examples"
        )
    perm = generator(as_key(key, who)).permutation(n)
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return readonly(x[train]), readonly(y[train]), readonly(x[val]), readonly(y[val])


def one_hot(labels: np.ndarray, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """One-hot rows: ``out[..., c] = 1`` where ``labels == c``, else 0.

    Args:
        labels: integer array of any shape, values in ``[0, num_classes)``.
        num_classes: the number of classes.
        dtype: dtype of the result.

    Returns:
        A read-only array of shape ``(*labels.shape, num_classes)``.

    Raises:
        TypeError: ``labels`` is not an integer array.
        ValueError: a label is out of range, or ``num_classes`` is not a positive int.

    Example:
        >>> one_hot(np.array([1, 0]), 2, dtype=np.int64).tolist()
        [[0, 1], [1, 0]]
    """
    who = "fnn.datasets.one_hot"
    num_classes = _positive(who, "num_classes", num_classes)
    labels = np.asarray(_arrays.plain(who, "labels", labels))
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"{who}: labels must be integers, got dtype {labels.dtype}; "
            "use labels.astype(np.int64) if they are whole numbers"
        )
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{who}: label {labels[where]} at index {where} is outside [0, {num_classes}); "
            "check num_classes or the labels"
        )
    out = labels[..., None] == np.arange(num_classes)
    return readonly(out.astype(dtype))
