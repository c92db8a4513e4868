"""Memory bombs: files of a few MB (or kB) that make a naive reader allocate GBs.

Each bomb is built cheaply from zip structures written by hand: nothing big is
compressed or written. A deflate stream of zeros is one compressed block
repeated (after a full flush a deflate compressor starts afresh, so the block's
bytes can be repeated), a bzip2 stream is one compressed block repeated (bzip2
blocks are bit-aligned; they are spliced bit by bit), and the CRC-32 of
gigabytes is combined from the CRC of one block (zlib's ``crc32_combine``, in
Python). ``test_bombs_are_honest_zip_files`` checks with Python's own
``zipfile`` that small versions of the same builders are valid archives whose
entries really inflate to the declared sizes with the declared CRCs.

Every bomb is loaded in a child process under an address-space limit
(``RLIMIT_AS``) of 192 MiB above its size after importing fnn, far below what
the bombs would take: ``load`` must refuse each with a ``ValueError`` naming
the problem (and, for a budget, the limit and the ``max_bytes`` that would
raise it), and the child's peak memory must grow by less than 64 MiB.
"""

from __future__ import annotations

import bz2
import dataclasses
import io as _stdio
import json
import lzma
import os
import re
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from fnn import io as fio

REPO = Path(__file__).resolve().parents[2]
GIB = 2**30
MIB = 2**20

# ---------------------------------------------------------------------------
# CRC-32 of long inputs without reading them: zlib's crc32_combine.


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)`` (zlib's algorithm)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # the operator for one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def crc32_repeat(block_crc: int, block_len: int, count: int) -> int:
    """CRC-32 of a block repeated ``count`` times."""
    result, base, length = 0, block_crc, block_len
    while count:
        if count & 1:
            result = crc32_combine(result, base, length)
        base, length = crc32_combine(base, base, length), 2 * length
        count >>= 1
    return result


# ---------------------------------------------------------------------------
# Zip structures.

LOCAL = struct.Struct("<4sHHHHHIIIHH")
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
END = struct.Struct("<4sHHHHIIH")


@dataclasses.dataclass
class Member:
    """One zip entry: the bytes as stored, the method, the CRC and size of what they inflate to."""

    name: str
    data: bytes
    method: int = zipfile.ZIP_STORED
    crc: int | None = None
    size: int | None = None
    csize: int | None = None  # bytes occupied in the file (len(data) unless they overlap others)

    def __post_init__(self) -> None:
        if self.crc is None:
            self.crc = zlib.crc32(self.data)
        if self.size is None:
            self.size = len(self.data)
        if self.csize is None:
            self.csize = len(self.data)

    def local(self) -> bytes:
        n = self.name.encode()
        return LOCAL.pack(b"PK\x03\x04", 20, 0x800, self.method, 0, 0x21, self.crc, self.csize,
                          self.size, len(n), 0) + n

    def central(self, offset: int) -> bytes:
        n = self.name.encode()
        return CENTRAL.pack(b"PK\x01\x02", 20, 20, 0x800, self.method, 0, 0x21, self.crc,
                            self.csize, self.size, len(n), 0, 0, 0, 0, 0, offset) + n


def zip_bytes(members: list[Member]) -> bytes:
    """The archive with the members' local headers and data one after another."""
    out, offsets = bytearray(), []
    for m in members:
        offsets.append(len(out))
        out += m.local() + m.data
    return bytes(out) + directory(members, offsets, len(out))


def directory(members: list[Member], offsets: list[int], start: int) -> bytes:
    cd = b"".join(m.central(o) for m, o in zip(members, offsets, strict=True))
    return cd + END.pack(b"PK\x05\x06", 0, 0, len(members), len(members), len(cd), start, 0)


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    buf = _stdio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def fnn_header(tree: object) -> Member:
    text = json.dumps({"format": "fnn", "format_version": 1, "fnn_version": "bomb", "tree": tree}).encode()
    return Member("fnn-header.npy", npy_header((len(text),)) + text)


def root_array(n: int) -> dict:
    return {"t": "array", "name": "arrays/<root>", "dtype": "|u1", "shape": [n]}


# ---------------------------------------------------------------------------
# Compressed streams built from one block.


def deflate_repeat(prefix: bytes, block: bytes, count: int, suffix: bytes = b"") -> tuple[bytes, int, int]:
    """Raw deflate of ``prefix + block * count + suffix``: (stream, CRC-32, length)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = co.compress(prefix) + co.flush(zlib.Z_FULL_FLUSH)
    body = co.compress(block) + co.flush(zlib.Z_FULL_FLUSH)
    assert co.compress(block) + co.flush(zlib.Z_FULL_FLUSH) == body  # the block is reusable
    tail = co.compress(suffix) + co.flush()
    crc = crc32_combine(zlib.crc32(prefix), crc32_repeat(zlib.crc32(block), len(block), count),
                        len(block) * count)
    crc = crc32_combine(crc, zlib.crc32(suffix), len(suffix))
    return head + body * count + tail, crc, len(prefix) + len(block) * count + len(suffix)


_BZ_EOS = 0x177245385090  # bzip2's end-of-stream marker (48 bits)


def _bz2_block(data: bytes) -> tuple[int, int, int]:
    """The bits of the one block bzip2 makes of ``data``: (bits, bit count, block CRC)."""
    comp = bz2.compress(data, 9)
    bits, total = int.from_bytes(comp, "big"), 8 * len(comp)
    for pad in range(8):  # the stream ends with the marker, the CRC (32 bits) and padding
        eos = total - pad - 80
        if (bits >> (total - eos - 48)) & (2**48 - 1) == _BZ_EOS:
            break
    else:  # pragma: no cover
        raise AssertionError("no bzip2 end-of-stream marker")
    stream_crc = (bits >> pad) & 0xFFFFFFFF
    nbits = eos - 32  # after the 4-byte 'BZh9' header
    block = (bits >> (total - eos)) & ((1 << nbits) - 1)
    assert block >> (nbits - 48) == 0x314159265359  # a block magic
    block_crc = (block >> (nbits - 80)) & 0xFFFFFFFF
    assert block_crc == stream_crc  # so the stream held this one block
    return block, nbits, block_crc


def bz2_repeat(prefix: bytes, block: bytes, count: int) -> tuple[bytes, int, int]:
    """A bzip2 stream of ``prefix + block * count``: (stream, CRC-32, length)."""
    pieces = [_bz2_block(prefix)] + [_bz2_block(block)] * count
    acc, nbits, combined = int.from_bytes(b"BZh9", "big"), 32, 0
    for bits, n, crc in pieces:
        acc, nbits = (acc << n) | bits, nbits + n
        combined = (((combined << 1) | (combined >> 31)) & 0xFFFFFFFF) ^ crc
    acc, nbits = (((acc << 48) | _BZ_EOS) << 32) | combined, nbits + 80
    pad = -nbits % 8
    stream = (acc << pad).to_bytes((nbits + pad) // 8, "big")
    crc = crc32_combine(zlib.crc32(prefix), crc32_repeat(zlib.crc32(block), len(block), count),
                        len(block) * count)
    return stream, crc, len(prefix) + len(block) * count


# ---------------------------------------------------------------------------
# The bombs. ``scale`` shrinks them (for the honesty check).


def deflate_bomb(scale: int = 192) -> bytes:
    """3 GiB of zeros in a 3 MB file, every size declared truthfully."""
    n = scale * 16 * MIB
    data, crc, size = deflate_repeat(npy_header((n,)), bytes(16 * MIB), scale)
    return zip_bytes([fnn_header(root_array(n)),
                      Member("arrays/<root>.npy", data, zipfile.ZIP_DEFLATED, crc, size)])


def bzip2_bomb(scale: int = 256) -> bytes:
    """3 GiB of zeros in a bzip2 entry of about 10 kB (fnn never writes bzip2)."""
    n = scale * 12 * MIB
    data, crc, size = bz2_repeat(npy_header((n,)), bytes(12 * MIB), scale)
    return zip_bytes([fnn_header(root_array(n)),
                      Member("arrays/<root>.npy", data, zipfile.ZIP_BZIP2, crc, size)])


def lzma_bomb(scale: int = 32) -> bytes:
    """LZMA entries (fnn never writes them): the header and an array of ``scale`` MiB of zeros."""
    n = scale * MIB
    buf = _stdio.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_LZMA) as zf:
        header = fnn_header(root_array(n))
        zf.writestr(header.name, header.data)
        zf.writestr("arrays/<root>.npy", npy_header((n,)) + bytes(n))
    return buf.getvalue()


_NEST = b"[[[]]],"  # 7 bytes that json.loads turns into three lists (~240 bytes)


def json_bomb(scale: int = 18) -> bytes:
    """A deflated JSON header of ``scale`` x 14 MiB of nested lists (252 MiB at full size,
    under 0.1.0's 256 MiB header cap: about 9 GB once parsed), declared truthfully."""
    prefix = b'{"format":"fnn","format_version":1,"tree":{"t":"list","items":['
    suffix = b"0]}}"
    length = len(prefix) + scale * 14 * MIB + len(suffix)
    data, crc, size = deflate_repeat(npy_header((length,)) + prefix, _NEST * (2 * MIB), scale, suffix)
    return zip_bytes([Member("fnn-header.npy", data, zipfile.ZIP_DEFLATED, crc, size)])


def overlap_bomb(count: int = 64, data_len: int = 16 * MIB) -> bytes:
    """``count`` stored entries whose data overlap: each entry's bytes run to the end of one
    shared 16 MiB block, over the local headers of the entries after it, and each is a valid
    .npy (a uint8 array of everything after its own .npy header). A reader without an
    overlap check loads 1 GiB from a 16 MiB file."""
    shared = bytes(data_len)
    suffix_len, suffix_crc = data_len, zlib.crc32(shared)  # the bytes after entry i's .npy header
    chain = []
    for i in reversed(range(count)):
        npy = npy_header((suffix_len,))
        size = len(npy) + suffix_len
        m = Member(f"arrays/[{i}].npy", b"", zipfile.ZIP_STORED,
                   crc32_combine(zlib.crc32(npy), suffix_crc, suffix_len), size, size)
        local = m.local()
        chain.append((m, local, npy, suffix_len))
        suffix_crc = crc32_combine(zlib.crc32(local + npy), suffix_crc, suffix_len)
        suffix_len += len(local) + len(npy)
    chain.reverse()
    items = [{"t": "array", "name": m.name[:-4], "dtype": "|u1", "shape": [n]} for m, _, _, n in chain]
    header = fnn_header({"t": "list", "items": items})
    out = bytearray(header.local() + header.data)
    offsets = [0]
    for _m, local, npy, _ in chain:
        offsets.append(len(out))
        out += local + npy
    out += shared
    members = [header] + [m for m, *_ in chain]
    return bytes(out) + directory(members, offsets, len(out))


def duplicate_bomb() -> bytes:
    """Two entries of the same name: readers disagree about which one counts."""
    header = fnn_header(root_array(4))
    first = Member("arrays/<root>.npy", npy_header((4,)) + bytes(4))
    second = Member("arrays/<root>.npy", npy_header((4,)) + b"\xff" * 4)
    return zip_bytes([header, first, second])


def understated_bomb() -> bytes:
    """A deflated entry declaring 4 bytes of data (with their CRC) whose stream goes on to
    inflate 3 GiB: the reader must stop where the declared size ends and refuse the rest."""
    npy = npy_header((4,))
    data, _, _ = deflate_repeat(npy, bytes(16 * MIB), 192)
    crc = zlib.crc32(npy + bytes(4))
    return zip_bytes([fnn_header(root_array(4)),
                      Member("arrays/<root>.npy", data, zipfile.ZIP_DEFLATED, crc, len(npy) + 4)])


BOMBS = {
    "deflate": (deflate_bomb, r"decoding its entries \(as their sizes are declared\) needs 3\.0 GiB "
                r"\(\d+ bytes\), more than this load's limit of 256\.0 MiB .*max_bytes=\d+ or more"),
    "bzip2": (bzip2_bomb, r"'arrays/<root>\.npy' is compressed with bzip2; fnn writes and reads only stored or deflated"),
    "lzma": (lzma_bomb, r"is compressed with LZMA; fnn writes and reads only stored or deflated"),
    "json": (json_bomb, r"decoding its entries \(as their sizes are declared\) needs 2\.0 GiB .*limit of 256\.0 MiB"),
    "json-small": (lambda: json_bomb(2), r"parsing its header and reading its arrays needs 2\.8 GiB .*limit of 256\.0 MiB.*max_bytes="),
    "overlap": (overlap_bomb, r"the entry 'arrays/\[1\]\.npy' overlaps the entry before it"),
    "duplicate": (duplicate_bomb, r"the entry 'arrays/<root>\.npy' appears twice"),
    "understated": (understated_bomb, r"'arrays/<root>\.npy' inflates to more than its declared 132 bytes"),
}


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    files = {}
    for kind, (build, _) in BOMBS.items():
        files[kind] = d / f"{kind}.npz"
        files[kind].write_bytes(build())
    return files


_LOAD_UNDER_LIMIT = """
import json, resource, sys, time
from fnn import io as fio

with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
limit = vm + 192 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for kind, path in json.loads(sys.argv[1]).items():
    t = time.perf_counter()
    try:
        fio.load(path)
        outcome = "LOADED"
    except Exception as err:
        kind_of = "ValueError" if isinstance(err, ValueError) else type(err).__name__
        outcome = f"{kind_of}: {err}"
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
    print(json.dumps([kind, outcome, time.perf_counter() - t, grown]), flush=True)
"""


@pytest.fixture(scope="module")
def under_limit(bomb_files):
    """Load every bomb in one child process under RLIMIT_AS; results by kind."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    arg = json.dumps({k: str(p) for k, p in bomb_files.items()})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_LOAD_UNDER_LIMIT), arg],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    return {kind: (outcome, seconds, grown) for kind, outcome, seconds, grown in rows}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bomb_is_refused_under_an_address_space_limit(bomb_files, under_limit, kind):
    """Each bomb, loaded under RLIMIT_AS with 192 MiB of head-room, is refused with a
    ValueError naming the file and the problem (a MemoryError or a crash would mean an
    unbounded allocation), and the child's peak memory grew by less than 64 MiB."""
    outcome, _seconds, grown = under_limit[kind]
    assert outcome.startswith(f"ValueError: fnn.io.load: {bomb_files[kind]}: "), outcome[:300]
    assert re.search(BOMBS[kind][1], outcome), outcome[:400]
    assert grown < 64 * MIB, grown


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bomb_is_refused_in_process_with_little_memory(bomb_files, kind):
    """In this process too, each bomb is refused, with a tracemalloc peak under 40 MiB
    (the 28 MiB JSON header of json-small is read before its parse cost is charged)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=BOMBS[kind][1]):
            fio.load(bomb_files[kind])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * MIB, peak


def test_a_raised_max_bytes_gets_past_the_budget_but_not_past_the_checks(bomb_files):
    """max_bytes raises only the budget: the JSON bomb with max_bytes high enough for its
    declared size is still refused for its parse cost; method, overlap and duplicate
    checks do not depend on max_bytes."""
    with pytest.raises(ValueError, match=r"parsing its header .* needs \d+\.\d GiB"):
        fio.load(bomb_files["json"], max_bytes=3 * GIB)
    for kind in ("bzip2", "lzma", "overlap", "duplicate"):
        with pytest.raises(ValueError, match=BOMBS[kind][1]):
            fio.load(bomb_files[kind], max_bytes=2**62)


@pytest.mark.parametrize(
    "build",
    [lambda: deflate_bomb(2), lambda: bzip2_bomb(2), lambda: lzma_bomb(1), lambda: json_bomb(1),
     lambda: overlap_bomb(4, 2**16), duplicate_bomb],
    ids=["deflate", "bzip2", "lzma", "json", "overlap", "duplicate"],
)
def test_bombs_are_honest_zip_files(build):
    """Small versions of the bomb builders are valid archives for Python's zipfile: every
    entry inflates to exactly its declared size with its declared CRC (so the full-size
    bombs really hold what they declare)."""
    with zipfile.ZipFile(_stdio.BytesIO(build())) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                total = 0
                while chunk := f.read(MIB):
                    total += len(chunk)
            assert total == info.file_size, info.filename  # zipfile checked the CRC at the end


def test_crc32_combine_matches_zlib():
    """The CRC helper agrees with zlib on split inputs, including a repeated block."""
    a, b = os.urandom(1000), os.urandom(777)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert crc32_repeat(zlib.crc32(b), len(b), 5) == zlib.crc32(b * 5)
    assert lzma.is_check_supported(lzma.CHECK_NONE)
