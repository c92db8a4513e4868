"""Tests for fnn.io.decode and fnn.io.archive: the memory budget and its defaults, the bound
on what parsing a header takes, read-only results, and files that are not regular files.

(The memory bombs themselves, under an address-space limit, are in
tests/reliability/test_io_bombs.py.)
"""

from __future__ import annotations

import io as _stdio
import json
import os
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn import io as fio
from fnn.io import archive


def npy_bytes(array) -> bytes:
    buf = _stdio.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def file_with_header(path, header: dict, arrays: dict[str, np.ndarray] | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fnn-header.npy", npy_bytes(np.frombuffer(json.dumps(header).encode(), np.uint8)))
        for name, a in (arrays or {}).items():
            zf.writestr(name + ".npy", npy_bytes(a))
    return path


def tree_file(path, tree_node, arrays=None):
    return file_with_header(path, {"format": "fnn", "format_version": 1, "tree": tree_node}, arrays)


# ---------------------------------------------------------------------------
# Everything loaded is read-only or immutable.


def test_a_scalar_node_holding_a_list_is_refused(tmp_path):
    """A 'scalar' node must hold one number of its dtype's kind; 0.1.0 built a writeable
    array from a list (dtype.type([1, 2]))."""
    for value, dtype in [([1.0, 2.0], "<f8"), ({"x": 1}, "<i8"), (True, "<f4"), (1.5, "<i4"),
                         (300, "|i1"), (1e300, "<f4"), ("1", "<i8"), ([True], "|b1")]:
        path = tree_file(tmp_path / "s.npz", {"t": "scalar", "dtype": dtype, "value": value})
        with pytest.raises(ValueError, match=r"s\.npz: malformed .* scalar at <root>"):
            fio.load(path)


def test_everything_loaded_is_read_only_or_immutable(tmp_path):
    """Arrays come back read-only, and the flag cannot be turned back on (their memory
    belongs to a read-only array load allocated); scalars come back as NumPy scalars."""
    tree = {"w": np.arange(6.0).reshape(2, 3), "f": np.asfortranarray(np.eye(2)), "s": np.float32(2.5),
            "n": fnn.init([fnn.Dense(2)], (3,), key=0), "e": np.zeros((0, 3), np.int8)}
    back = fio.load(fio.save(tmp_path / "t", tree))
    for leaf in fnn.tree.leaves(back):
        assert not leaf.flags.writeable
        with pytest.raises(ValueError, match="WRITEABLE"):
            leaf.flags.writeable = True
    assert type(back["s"]) is np.float32 and back["s"] == np.float32(2.5)
    assert back["f"].flags.f_contiguous


# ---------------------------------------------------------------------------
# Files that are not regular files are refused at once.


def test_a_fifo_is_refused_without_blocking(tmp_path):
    """load given a FIFO (nobody writing to it) returns at once with a ValueError: 0.1.0
    said 'no such file', and a reader that opens it blocking would wait forever."""
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    result = []

    def run():
        try:
            fio.load(fifo)
        except Exception as err:  # the test inspects whatever came
            result.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # unblock the reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("fnn.load blocked on a FIFO")
    (err,) = result
    assert isinstance(err, ValueError) and "pipe.npz' is a FIFO" in str(err), err


def test_devices_and_directories_are_refused(tmp_path):
    """A link to a character device (/dev/zero: endless) is refused before reading it, and
    a directory is an IsADirectoryError."""
    if os.path.exists("/dev/zero"):
        (tmp_path / "zero.npz").symlink_to("/dev/zero")
        with pytest.raises(ValueError, match=r"zero\.npz' is a character device"):
            fio.load(tmp_path / "zero.npz")
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(IsADirectoryError, match=r"fnn\.io\.load: .*d\.npz' is a directory"):
        fio.load(tmp_path / "d")


# ---------------------------------------------------------------------------
# The budget: max_bytes.


@pytest.mark.parametrize(
    ("max_bytes", "error", "match"),
    [(True, TypeError, "got bool"), ("1e9", TypeError, "got str"), (1e9, TypeError, "got float"),
     (0, ValueError, "must be positive, got 0"), (-5, ValueError, "got -5")],
)
def test_max_bytes_must_be_a_positive_int(tmp_path, max_bytes, error, match):
    """max_bytes is None or a positive int (NumPy ints accepted)."""
    path = fio.save(tmp_path / "t", {"a": 1})
    with pytest.raises(error, match=r"fnn\.io\.load: max_bytes .*" + match):
        fio.load(path, max_bytes=max_bytes)
    assert fio.load(path, max_bytes=np.int64(10**6)) == {"a": 1}


def _header_heavy_trees():
    """Legitimate trees whose JSON header dominates the file (the worst case for the budget)."""
    keys = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    return {
        "small ints": list(range(30_000)),
        "zeros": [0] * 30_000,
        "1-char keys": {k: i for i, k in enumerate(keys)},
        "int keys": {i: 0 for i in range(20_000)},
        "empty strings": [""] * 30_000,
        "nones": [None] * 30_000,
        "empty lists": [[] for _ in range(10_000)],
        "empty tuples": [() for _ in range(10_000)],
        "floats": [i / 7 for i in range(20_000)],
        "dtypes": [np.dtype(">f8")] * 5_000,
        "scalars": [np.float32(i) for i in range(5_000)],
        "unicode": ["\U0001f600" * 3 + str(i) for i in range(10_000)],
        "network": fnn.init([fnn.Dense(3), fnn.Tanh()] * 50, (3,), key=0),
    }


@pytest.mark.parametrize("kind", sorted(_header_heavy_trees()))
def test_uncompressed_files_load_within_64_times_their_size(tmp_path, monkeypatch, kind):
    """With the 256 MiB floor removed, a file save writes uncompressed loads under the bare
    ratio limit (64 x its size), even when its JSON header dominates; and the memory the
    load really takes (tracemalloc peak) stays below what the budget charged."""
    tree = _header_heavy_trees()[kind]
    path = fio.save(tmp_path / "t", tree)
    size = path.stat().st_size
    monkeypatch.setattr(archive, "MIN_BUDGET", 0)
    with zipfile.ZipFile(path) as zf:
        raw = np.lib.format.read_array(_stdio.BytesIO(zf.read("fnn-header.npy"))).tobytes()
        arrays = sum(i.file_size for i in zf.infolist() if i.filename != "fnn-header.npy")
    charged = archive.header_cost(raw) + arrays
    assert charged <= archive.RATIO * size
    tracemalloc.start()
    try:
        back = fio.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= charged + 2**20, (peak, charged)
    assert fnn.tree.allclose(back, tree) if kind == "network" else back == tree


def test_compressed_files_of_random_weights_load_by_default(tmp_path, monkeypatch):
    """A compressed checkpoint of real weights (ratio near 1) and Adam moments at zero loads
    under the bare ratio limit too."""
    net = fnn.init([fnn.Dense(64), fnn.Tanh(), fnn.Dense(64)], (32,), key=0)
    ckpt = {"net": net, "opt": fnn.optim.adam(1e-3).init(net)}
    path = fio.save(tmp_path / "c", ckpt, compress=True)
    monkeypatch.setattr(archive, "MIN_BUDGET", 0)
    assert fnn.tree.allclose(fio.load(path)["net"], net)


def test_highly_compressed_data_beyond_the_budget_needs_max_bytes(tmp_path, monkeypatch):
    """Compressed zeros beyond 64 x the file size (and the floor) are refused before anything
    is inflated, with the exact max_bytes that loads them; that max_bytes does."""
    monkeypatch.setattr(archive, "MIN_BUDGET", 2**20)
    zeros = np.zeros(2**20)  # 8 MiB of zeros: a file of a few kB
    path = fio.save(tmp_path / "z", {"z": zeros}, compress=True)
    with pytest.raises(ValueError, match=r"z\.npz: decoding its entries .* needs 8\.0 MiB .* more than this "
                                         r"load's limit of 1\.0 MiB \(1048576 bytes\), max_bytes \(by default max\(256 MiB, 64 × "
                                         r"the file's .*\)\).* load it with max_bytes=(\d+) or more") as info:
        fio.load(path)
    need = _suggested(info.value)
    with pytest.raises(
        ValueError, match=r"parsing its header and reading its arrays needs .*\(the max_bytes given\)"
    ) as info:
        fio.load(path, max_bytes=need)  # the declared sizes fit; the header's parse cost does not
    np.testing.assert_array_equal(fio.load(path, max_bytes=_suggested(info.value))["z"], zeros)


def _suggested(err: BaseException) -> int:
    """The max_bytes a budget error tells the caller to pass."""
    return int(str(err).rsplit("max_bytes=", 1)[1].split()[0])


# ---------------------------------------------------------------------------
# The bound on parsing a JSON header.

_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-300, 10**6), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=3)),
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=2), kids, max_size=3)),
    max_leaves=6,
)


@settings(max_examples=25)
@given(_json_values, st.integers(2_000, 20_000))
def test_parse_cost_bounds_what_json_loads_takes(value, copies):
    """For any JSON value repeated thousands of times (so the per-item costs dominate),
    the memory json.loads takes (tracemalloc peak) is at most parse_cost of the text."""
    text = json.dumps([value] * copies).encode()
    tracemalloc.start()
    try:
        parsed = json.loads(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del parsed
    assert peak <= archive.parse_cost(text), (peak, archive.parse_cost(text), len(text))


@pytest.mark.parametrize(
    "item", ["[]", "[[]]", "[[[]]]", "{}", '{"a":{}}', '{"":0}', "[0]", '""', "0", "[[0]]", '{"a":[]}',
             '{"t":"list","items":[]}', '"\\ud83d\\ude00"', "1e308", "null"],
)
def test_parse_cost_bounds_adversarial_headers(item):
    """The bound also holds for the shapes that cost json.loads the most per byte."""
    text = ("[" + ",".join([item] * 50_000) + "]").encode()
    tracemalloc.start()
    try:
        parsed = json.loads(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del parsed
    assert peak <= archive.parse_cost(text), (peak / len(text), archive.parse_cost(text) / len(text))
