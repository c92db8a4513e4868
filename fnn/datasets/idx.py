"""IDX files (the format of the MNIST files) and verified downloads.

- `read_idx` / `write_idx`: the IDX format, plain or gzip-compressed. The
  reader is hardened: the header is checked before anything is allocated, and
  only regular files are read (a FIFO is refused without hanging).
- `download`: fetch a URL to a file, verifying the content's SHA-256, leaving
  nothing behind on failure.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from fnn import _arrays
from fnn.datasets._checks import open_regular
from fnn.tree import readonly

__all__ = ["download", "read_idx", "write_idx"]

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


@contextlib.contextmanager
def _open_maybe_gzip(path: Path, who: str) -> Iterator[tuple[IO[bytes], bool, int]]:
    """``(stream, compressed, file size)``: gzip is detected from the first bytes."""
    with open_regular(path, who, "read_idx reads IDX files from disk") as raw:
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
