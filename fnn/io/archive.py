"""The zip layer of `load`: open a regular file, check the archive, read entries within a budget.

Python's `zipfile` is used only to parse the central directory; entries are
read here, by a reader that trusts nothing the archive says:

- only stored and deflated entries are read (fnn writes nothing else), never
  encrypted ones; bzip2, LZMA and other methods are refused before anything is
  decompressed;
- duplicate entry names are refused (readers disagree about which one counts),
  and so are entries whose bytes overlap another entry or the directory (the
  trick that makes a small file hold the same data many times over); each
  entry's local header must agree with the directory;
- the decoded contents are charged against a budget, ``max_bytes``: by default
  64 times the file's size and at least 256 MiB (enough for every file `save`
  writes except compressed data that compresses better than 64:1 beyond
  256 MiB). The sizes the directory declares are charged before anything is
  read; each entry is then inflated in chunks, stopping with an error as soon
  as it produces more than it declared, and its CRC is checked.
"""

from __future__ import annotations

import operator
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO

__all__: list[str] = []

MIN_BUDGET = 256 * 2**20
"""The default budget is never below this many bytes."""
RATIO = 64
"""The default budget is this many times the file's size."""
CHUNK = 1 << 20

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # the 30-byte local file header
_METHODS = {
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "LZMA",
    1: "shrink",
    6: "implode",
    9: "deflate64",
    93: "zstd",
    95: "xz",
    98: "PPMd",
}


HEADER_WEIGHT = 8
"""Bytes charged per header byte before the header is read (the least `header_cost` charges)."""


def parse_cost(raw: bytes | bytearray) -> int:
    """An upper bound, in bytes, of the memory ``json.loads(raw)`` takes.

    ``json.loads`` takes at most about 88 bytes per list or dict (a one-item
    list), 40 per ``,`` or ``:`` (a new small object and its slot), 80 per
    string (a one-character str of 4-byte characters) and 4 per character of
    text; the bound charges 96 per ``[`` or ``{``, 40 per ``,`` or ``:``, 20 per
    ``"`` and 4 per byte. Such characters inside strings are counted too, which
    only overestimates. ``tests/test_io_decode.py`` checks the bound with
    tracemalloc.
    """
    containers = raw.count(b"[") + raw.count(b"{")
    separators = raw.count(b",") + raw.count(b":")
    return 4 * len(raw) + 96 * containers + 40 * separators + 20 * raw.count(b'"')


def header_cost(raw: bytes | bytearray) -> int:
    """What decoding a header may take: parsing it, and rebuilding the tree (at most as much)."""
    return 2 * parse_cost(raw)


def check_max_bytes(who: str, max_bytes: object) -> int | None:
    if max_bytes is None:
        return None
    if isinstance(max_bytes, bool):
        raise TypeError(f"{who}: max_bytes must be an int or None, got bool")
    try:
        n = operator.index(max_bytes)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{who}: max_bytes must be an int (a number of bytes) or None, got "
            f"{type(max_bytes).__name__}"
        ) from None
    if n < 1:
        raise ValueError(f"{who}: max_bytes must be positive, got {n}")
    return int(n)


class BadFile(ValueError):
    """A file that is not a valid fnn file, or is over its budget; the message names the file."""


def default_budget(file_size: int) -> int:
    """``max_bytes`` when the caller passes none: ``max(256 MiB, 64 × file size)``."""
    return max(MIN_BUDGET, RATIO * file_size)


def human(n: int) -> str:
    """``3221225472`` -> ``'3.0 GiB'``."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


def open_regular(who: str, target: Path, given: object) -> IO[bytes]:
    """Open ``target`` for reading without blocking; refuse anything but a regular file.

    A FIFO or a device would block or never end: the file is opened with
    ``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor, so a path
    swapped after a check cannot slip through.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError:
        hint = f" (save adds .npz: {target.name})" if target != Path(given) else ""  # type: ignore[arg-type]
        raise FileNotFoundError(f"{who}: no such file {str(target)!r}{hint}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(f"{who}: {str(target)!r} is a directory, not an fnn file")
        if not stat.S_ISREG(mode):
            kind = next(
                (
                    k
                    for t, k in (
                        (stat.S_ISFIFO, "a FIFO"),
                        (stat.S_ISSOCK, "a socket"),
                        (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"),
                    )
                    if t(mode)
                ),
                "not a regular file",
            )
            raise ValueError(
                f"{who}: {str(target)!r} is {kind}; fnn files are regular files (read a stream "
                "into a file first)"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class Archive:
    """A checked zip archive and the budget of one `load`."""

    def __init__(
        self, zf: zipfile.ZipFile, fp: IO[bytes], file: Path, size: int, max_bytes: int | None
    ) -> None:
        self.fp = fp
        self.file = file
        self.size = size
        self.budget = default_budget(size) if max_bytes is None else max_bytes
        self.default = max_bytes is None
        self.produced = 0
        infos = zf.infolist()
        self.entries: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.filename in self.entries:
                raise self.fail(
                    f"the entry {info.filename!r} appears twice (zip readers disagree about "
                    "which copy counts, so such files are refused)"
                )
            self.entries[info.filename] = info
            self.check_method(info)
        self.data_start = self.check_layout(infos, getattr(zf, "start_dir", size))

    def fail(self, problem: str) -> BadFile:
        return BadFile(f"fnn.io.load: {self.file}: {problem}")

    def over_budget(self, what: str, need: int) -> BadFile:
        how = (
            f"by default max(256 MiB, {RATIO} × the file's {human(self.size)})"
            if self.default
            else "the max_bytes given"
        )
        return self.fail(
            f"{what} needs {human(need)} ({need} bytes), more than this load's limit of "
            f"{human(self.budget)} ({self.budget} bytes), max_bytes ({how}), which guards "
            f"against decompression bombs; if you trust this file, load it with "
            f"max_bytes={need} or more"
        )

    def check_method(self, info: zipfile.ZipInfo) -> None:
        if info.flag_bits & 0x61:  # encrypted, strongly encrypted, patch data
            raise self.fail(f"the entry {info.filename!r} is encrypted; fnn files never are")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
            raise self.fail(
                f"the entry {info.filename!r} is compressed with {method}; fnn writes and reads "
                "only stored or deflated entries (re-save the data with fnn.save)"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise self.fail(
                f"the stored entry {info.filename!r} declares {info.file_size} bytes but "
                f"occupies {info.compress_size}"
            )

    def check_layout(self, infos: list[zipfile.ZipInfo], directory: int) -> dict[str, int]:
        """Where each entry's data starts; refuse entries that overlap or disagree."""
        starts: dict[str, int] = {}
        end = 0
        for info in sorted(infos, key=lambda i: i.header_offset):
            if info.header_offset < end:
                raise self.fail(
                    f"the entry {info.filename!r} overlaps the entry before it (its data would "
                    "be counted twice; fnn never writes such files)"
                )
            self.fp.seek(info.header_offset)
            raw = self.fp.read(_LOCAL.size)
            if len(raw) != _LOCAL.size:
                raise self.fail(f"the local header of {info.filename!r} is truncated")
            fields = _LOCAL.unpack(raw)
            if fields[0] != b"PK\x03\x04":
                raise self.fail(f"the local header of {info.filename!r} is missing")
            name_len, extra_len = fields[9], fields[10]
            name = self.fp.read(name_len)
            encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
            same = name.decode(encoding, "replace") == info.orig_filename
            if not same or fields[3] != info.compress_type:
                raise self.fail(
                    f"the local header of {info.filename!r} disagrees with the directory"
                )
            starts[info.filename] = info.header_offset + _LOCAL.size + name_len + extra_len
            end = starts[info.filename] + info.compress_size
            if end > directory:
                raise self.fail(
                    f"the entry {info.filename!r} extends past the end of the data (into the "
                    "directory or beyond the file)"
                )
        return starts

    def charge_declared(self, header: str, header_weight: int) -> None:
        """Refuse at once if the declared sizes alone exceed the budget."""
        need = sum(
            i.file_size * (header_weight if name == header else 1)
            for name, i in self.entries.items()
        )
        if need > self.budget:
            raise self.over_budget("decoding its entries (as their sizes are declared)", need)

    def open(self, name: str) -> Entry:
        return Entry(self, self.entries[name], self.data_start[name])


class Entry:
    """A bounded, streaming reader of one entry's bytes (file-like: ``read(n)``)."""

    def __init__(self, archive: Archive, info: zipfile.ZipInfo, start: int) -> None:
        self.archive = archive
        self.info = info
        self.pos = start
        self.compressed_left = info.compress_size
        self.left = info.file_size
        self.crc = 0
        self.inflate = (
            zlib.decompressobj(-zlib.MAX_WBITS)
            if info.compress_type == zipfile.ZIP_DEFLATED
            else None
        )
        self.pending = b""  # compressed input not yet inflated

    def raw(self, n: int) -> bytes:
        n = min(n, self.compressed_left)
        if n <= 0:
            return b""
        self.archive.fp.seek(self.pos)
        data = self.archive.fp.read(n)
        self.pos += len(data)
        self.compressed_left -= len(data)
        if len(data) != n:
            raise self.archive.fail(f"the entry {self.info.filename!r} is truncated")
        return data

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is left with ``n < 0``); fewer only at the end."""
        n = self.left if n < 0 else min(n, self.left)
        parts: list[bytes] = []
        got = 0
        while got < n:
            want = min(n - got, CHUNK)
            if self.inflate is None:
                chunk = self.raw(want)
            else:
                if self.inflate.eof:  # the stream ended early: finish() reports it
                    break
                if not self.pending:
                    self.pending = self.raw(CHUNK)
                before = len(self.pending)
                chunk = self.inflate.decompress(self.pending, want)
                self.pending = self.inflate.unconsumed_tail
                if not chunk and (not before or len(self.pending) == before):
                    break  # no input left, or none consumed: the stream is cut or corrupted
            if not chunk and self.inflate is None:
                break
            parts.append(chunk)
            got += len(chunk)
        data = b"".join(parts)
        self.account(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` (a byte view) chunk by chunk; return how many bytes came.

        Stored bytes go straight from the file into ``buffer`` (one copy).
        """
        if self.inflate is None:
            want = min(len(buffer), self.left, self.compressed_left)
            self.archive.fp.seek(self.pos)
            got = 0
            while got < want:
                n = self.archive.fp.readinto(buffer[got:want])  # type: ignore[attr-defined]
                if not n:
                    break
                got += n
            self.pos += got
            self.compressed_left -= got
            self.account(buffer[:got])
            return got
        filled = 0
        while filled < len(buffer):
            chunk = self.read(min(CHUNK, len(buffer) - filled))
            if not chunk:
                break
            buffer[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        return filled

    def account(self, data: bytes | memoryview) -> None:
        self.left -= len(data)
        self.crc = zlib.crc32(data, self.crc)
        archive = self.archive
        archive.produced += len(data)
        if archive.produced > archive.budget:  # cannot happen after charge_declared: a guard
            raise archive.over_budget("decoding its entries", archive.produced)

    def finish(self) -> None:
        """Check the entry ended exactly where declared and its CRC matches."""
        name = self.info.filename
        if self.left:
            raise self.archive.fail(f"the entry {name!r} is truncated")
        if self.inflate is not None:
            if not self.inflate.eof:  # the last bytes of the stream (end of block) may remain
                more = self.inflate.decompress(self.pending or self.raw(CHUNK), 1)
                self.pending = self.inflate.unconsumed_tail
                if more:
                    raise self.archive.fail(
                        f"the entry {name!r} inflates to more than its declared "
                        f"{self.info.file_size} bytes"
                    )
            if (
                not self.inflate.eof
                or self.pending
                or self.inflate.unused_data
                or self.compressed_left
            ):
                raise self.archive.fail(
                    f"the entry {name!r} does not end where its declared sizes say (corrupted, "
                    "or trailing data)"
                )
        elif self.compressed_left:  # pragma: no cover - stored sizes are equal, checked above
            raise self.archive.fail(f"the entry {name!r} has trailing data")
        if self.crc != self.info.CRC:
            raise self.archive.fail(f"the entry {name!r} fails its CRC check (corrupted)")
