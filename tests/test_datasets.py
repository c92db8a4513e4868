"""Tests for fnn.datasets: IDX files, finding and downloading MNIST-style sets, toys, helpers."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnn import datasets as ds
from fnn.datasets import images

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_debian_fashion = pytest.mark.skipif(
    not all((DEBIAN_FASHION / f"{s}.gz").is_file() for s in images._STEMS),
    reason="Debian's dataset-fashion-mnist package is not installed",
)


# ---------------------------------------------------------------------------
# Helpers


def make_fake(directory: Path, marker: int = 7, gz: bool = True, n_train: int = 3, n_test: int = 2):
    """Write a tiny MNIST-layout set whose pixels all equal ``marker``; return the content hashes."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = [
        np.full((n_train, 28, 28), marker, np.uint8),
        np.arange(n_train, dtype=np.uint8) % 10,
        np.full((n_test, 28, 28), marker, np.uint8),
        np.arange(n_test, dtype=np.uint8) % 10,
    ]
    hashes = {}
    for stem, array in zip(images._STEMS, arrays, strict=True):
        path = directory / (f"{stem}.gz" if gz else stem)
        ds.write_idx(path, array)
        raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
        hashes[stem] = hashlib.sha256(raw).hexdigest()
    return hashes


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Point every search location into tmp_path: explicit, $FNN_DATA, cache, system."""
    root = {
        "explicit": tmp_path / "explicit",
        "env": tmp_path / "env",
        "cache": tmp_path / "xdg",
        "system": tmp_path / "system",
        "home": tmp_path / "home",
    }
    monkeypatch.setenv("FNN_DATA", str(root["env"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root["cache"]))
    monkeypatch.setenv("HOME", str(root["home"]))
    monkeypatch.setattr(images, "_SYSTEM_DIRS", {"mnist": (), "fashion-mnist": (str(root["system"]),)})
    return root


def marker_of(data) -> int:
    return int(data.x_train[0, 0, 0])


# ---------------------------------------------------------------------------
# IDX


_idx_dtypes = st.sampled_from(["u1", "i1", ">i2", "<i4", "f4", ">f8"]).map(np.dtype)


@given(
    hnp.arrays(_idx_dtypes, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)),
    st.booleans(),
)
def test_idx_round_trip(tmp_path_factory, array, gz):
    """write_idx then read_idx gives the same values, shape and (native) dtype, read-only,
    whether plain or gzip-compressed."""
    path = tmp_path_factory.mktemp("idx") / ("a.gz" if gz else "a")
    ds.write_idx(path, array)
    back = ds.read_idx(path)
    assert back.shape == array.shape
    assert back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)
    assert not back.flags.writeable


def test_idx_layout_is_the_published_one(tmp_path):
    """The bytes follow the IDX spec: zero bytes, type code, rank, big-endian dims and data."""
    ds.write_idx(tmp_path / "a", np.array([[1, 2]], dtype=np.int16))
    assert (tmp_path / "a").read_bytes().hex() == "00000b02" + "00000001" + "00000002" + "00010002"


def test_idx_gzip_detected_by_content(tmp_path):
    """A gzip file without the .gz suffix still reads (detection is by magic bytes)."""
    ds.write_idx(tmp_path / "a.gz", np.arange(3, dtype=np.uint8))
    os.rename(tmp_path / "a.gz", tmp_path / "plain-name")
    assert ds.read_idx(tmp_path / "plain-name").tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", r"not an IDX file \(magic number 01000801"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", r"not an IDX file"),
        (b"\x00\x00", r"not an IDX file \(magic number 0000;"),
        (b"", r"magic number missing"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", r"truncated header \(2 dimensions expected\)"),
        (
            b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02",
            r"truncated: shape \(3,\) needs 3 data bytes, found 2",
        ),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", r"trailing bytes after the 1 data bytes"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x02" + b"\x00" * 7, r"needs 8 data bytes, found 7"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_idx_errors(tmp_path, data, match, gz):
    """Wrong magic numbers, truncated headers or data and trailing bytes are ValueErrors naming the file."""
    path = tmp_path / "bad.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=r"read_idx: .*bad\.idx: .*" + match):
        ds.read_idx(path)


@given(cut=st.integers(1, 60))
def test_truncated_gzip(cut, tmp_path_factory):
    """A gzip stream cut short is a ValueError (corrupted stream or truncated data), never garbage."""
    path = tmp_path_factory.mktemp("gz") / "a.gz"
    ds.write_idx(path, np.arange(200, dtype=np.int32))
    data = path.read_bytes()
    path.write_bytes(data[: max(2, len(data) - cut)])
    with pytest.raises(ValueError, match=r"read_idx: .*a\.gz: (corrupted gzip stream|truncated)"):
        ds.read_idx(path)


@pytest.mark.parametrize("bad", [np.zeros(2, np.float16), np.zeros(2, np.int64), [1, 2]])
def test_write_idx_rejects_other_dtypes(tmp_path, bad):
    """IDX has six element types; anything else is a TypeError with the fix."""
    with pytest.raises(TypeError, match=r"write_idx: expected an array of uint8.*astype"):
        ds.write_idx(tmp_path / "x", bad)


def test_missing_idx_file(tmp_path):
    """A missing file is a FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        ds.read_idx(tmp_path / "nope")


# ---------------------------------------------------------------------------
# Finding MNIST-style files


def test_search_order(places):
    """explicit directory, then $FNN_DATA/<name>, then the cache, then the system copy."""
    make_fake(places["system"], marker=4)
    assert marker_of(ds.fashion_mnist(download=False)) == 4
    make_fake(places["cache"] / "fnn" / "fashion-mnist", marker=3)
    assert marker_of(ds.fashion_mnist(download=False)) == 3
    make_fake(places["env"] / "fashion-mnist", marker=2, gz=False)
    assert marker_of(ds.fashion_mnist(download=False)) == 2
    make_fake(places["explicit"], marker=1)
    assert marker_of(ds.fashion_mnist(places["explicit"], download=False)) == 1


def test_cache_defaults_to_home(places, monkeypatch):
    """Without (or with a relative) $XDG_CACHE_HOME the cache is ~/.cache/fnn/<name>."""
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    monkeypatch.delenv("FNN_DATA")
    make_fake(places["home"] / ".cache" / "fnn" / "mnist", marker=5)
    assert marker_of(ds.mnist(download=False)) == 5


def test_incomplete_directory_is_skipped(places):
    """A directory missing one of the four files does not count; the next place is used."""
    make_fake(places["env"] / "mnist", marker=2)
    make_fake(places["explicit"], marker=1)
    (places["explicit"] / "t10k-labels-idx1-ubyte.gz").unlink()
    assert marker_of(ds.mnist(places["explicit"], download=False)) == 2


def test_not_found_lists_the_places(places):
    """Without files and without download, the error lists every place searched."""
    with pytest.raises(
        FileNotFoundError,
        match=r"fnn.datasets.mnist: MNIST not found; .*explicit.*env/mnist.*xdg/fnn/mnist.*download=True",
    ):
        ds.mnist(places["explicit"], download=False)


def test_loaded_record(places):
    """The record holds uint8 images, int64 labels, class names, unpacks like a tuple, read-only."""
    make_fake(places["explicit"], marker=9)
    data = ds.fashion_mnist(places["explicit"], download=False)
    x_train, y_train, x_test, y_test = data
    assert x_train.shape == (3, 28, 28) and x_train.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_train.tolist() == [0, 1, 2]
    assert x_test.shape == (2, 28, 28) and y_test.tolist() == [0, 1]
    assert data.class_names[9] == "Ankle boot"
    assert not any(a.flags.writeable for a in data)


def test_mixed_up_files_are_refused(places):
    """Labels in place of images (or mismatched counts) are a clear ValueError."""
    make_fake(places["explicit"])
    ds.write_idx(places["explicit"] / "train-images-idx3-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"training files hold images uint8 \(3,\).*mixed up"):
        ds.mnist(places["explicit"], download=False)


# ---------------------------------------------------------------------------
# Downloading (file:// URLs only: tests use no network)


def test_download_verifies_and_renames(tmp_path):
    """A correct file arrives under its name; nothing else is left in the directory."""
    src = tmp_path / "server" / "f.gz"
    src.parent.mkdir()
    src.write_bytes(gzip.compress(b"payload"))
    out = tmp_path / "out"
    out.mkdir()
    sha = hashlib.sha256(b"payload").hexdigest()
    assert ds.download(src.as_uri(), out / "f.gz", content_sha256=sha) == out / "f.gz"
    assert os.listdir(out) == ["f.gz"]
    assert gzip.decompress((out / "f.gz").read_bytes()) == b"payload"


@pytest.mark.parametrize(
    ("url_name", "kw", "error", "match"),
    [
        (
            "f.gz",
            {"content_sha256": "0" * 64},
            ValueError,
            r"content SHA-256 [0-9a-f]{64}, expected 0{64}.*Nothing was kept",
        ),
        ("f.gz", {"content_sha256": "0" * 64, "max_bytes": 5}, ValueError, r"exceeds 5 bytes"),
        ("missing.gz", {"content_sha256": "0" * 64}, OSError, r"No such file"),
        ("broken.gz", {"content_sha256": "0" * 64}, ValueError, r"corrupted gzip stream"),
    ],
)
def test_download_failures_leave_nothing(tmp_path, url_name, kw, error, match):
    """Checksum mismatch, oversize, corrupt or unreachable downloads raise and leave no file,
    and an existing file of that name is untouched."""
    server = tmp_path / "server"
    server.mkdir()
    (server / "f.gz").write_bytes(gzip.compress(b"payload" * 10))
    (server / "broken.gz").write_bytes(gzip.compress(b"payload" * 10)[:-12])
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.gz").write_bytes(b"old")
    with pytest.raises(error, match=match):
        ds.download((server / url_name).as_uri(), out / "keep.gz", **kw)
    assert os.listdir(out) == ["keep.gz"]
    assert (out / "keep.gz").read_bytes() == b"old"


def test_loader_downloads_when_missing(places, monkeypatch):
    """With nothing on disk, the loader downloads each file into the cache, verifies it,
    and later calls find it there without downloading."""
    server = places["explicit"].parent / "server"
    hashes = make_fake(server, marker=6)
    monkeypatch.setattr(images, "_MNIST", attrs.evolve(images._MNIST, sha256=hashes))
    data = ds.mnist(base_url=server.as_uri())
    assert marker_of(data) == 6
    cache = places["cache"] / "fnn" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(f"{s}.gz" for s in images._STEMS)
    again = ds.mnist(base_url=(server / "gone").as_uri())
    assert marker_of(again) == 6


def test_loader_checksum_mismatch_leaves_nothing(places):
    """Files whose content differs from the published hashes are refused and not kept."""
    server = places["explicit"].parent / "server"
    make_fake(server)
    target = places["explicit"]
    with pytest.raises(
        ValueError,
        match=r"could not download train-images-idx3-ubyte\.gz .*content SHA-256.*expected ba891046",
    ):
        ds.mnist(target, base_url=server.as_uri())
    assert os.listdir(target) == []


def test_loader_unreachable_mirror(places):
    """An unreachable mirror is an OSError saying where to put the files by hand."""
    with pytest.raises(OSError, match=r"could not download .*Put the four files"):
        ds.mnist(places["explicit"], base_url=(places["explicit"].parent / "void").as_uri())


@needs_debian_fashion
def test_fashion_download_verifies_the_real_checksums(tmp_path, monkeypatch):
    """Downloading Debian's copy through file:// passes the built-in SHA-256 of every file
    (Debian recompressed the archives; the content hashes are what match)."""
    monkeypatch.setattr(images, "_SYSTEM_DIRS", {"mnist": (), "fashion-mnist": ()})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FNN_DATA", raising=False)
    data = ds.fashion_mnist(tmp_path / "d", base_url=DEBIAN_FASHION.as_uri())
    assert sorted(os.listdir(tmp_path / "d")) == sorted(f"{s}.gz" for s in images._STEMS)
    assert data.x_train.shape == (60000, 28, 28)


@needs_debian_fashion
def test_real_fashion_mnist(monkeypatch, tmp_path):
    """The installed Fashion-MNIST has the documented shapes, dtypes and balanced labels 0-9."""
    monkeypatch.setenv("FNN_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    data = ds.fashion_mnist(download=False)
    assert data.x_train.shape == (60000, 28, 28) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (10000, 28, 28)
    assert data.y_train.shape == (60000,) and data.y_train.dtype == np.int64
    assert np.bincount(data.y_train).tolist() == [6000] * 10
    assert np.bincount(data.y_test).tolist() == [1000] * 10
    assert int(data.x_train.max()) == 255 and int(data.x_train.min()) == 0


# ---------------------------------------------------------------------------
# images_to_float


@pytest.mark.parametrize(
    ("layout", "shape"), [("flat", (2, 12)), ("nhwc", (2, 3, 4, 1)), ("hw", (2, 3, 4))]
)
def test_images_to_float_layouts(layout, shape):
    """Pixels map to [0, 1] (255 -> 1) in the requested layout and dtype."""
    x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    out = ds.images_to_float(x, layout=layout, dtype=np.float64)
    assert out.shape == shape and out.dtype == np.float64
    np.testing.assert_array_equal(out.reshape(2, 3, 4), x / 255.0)
    assert not out.flags.writeable


@pytest.mark.parametrize(
    ("x", "kw", "error", "match"),
    [
        (np.zeros((2, 3, 3)), {}, TypeError, r"expected uint8 images, got float64"),
        (np.zeros((2, 9), np.uint8), {}, ValueError, r"\(batch, height, width\), got \(2, 9\)"),
        (np.zeros((2, 3, 3), np.uint8), {"layout": "nchw"}, ValueError, r"layout must be one of"),
    ],
)
def test_images_to_float_errors(x, kw, error, match):
    """Non-uint8 input, wrong rank or an unknown layout are refused clearly."""
    with pytest.raises(error, match=match):
        ds.images_to_float(x, **kw)


# ---------------------------------------------------------------------------
# Toy sets


def test_xor_points():
    """The four XOR points and their labels."""
    x, y = ds.xor(dtype=np.float64)
    assert x.dtype == np.float64 and x.shape == (4, 2) and y.shape == (4, 1)
    np.testing.assert_array_equal(y[:, 0], np.logical_xor(x[:, 0], x[:, 1]))


@given(
    st.integers(0, 2**32),
    st.integers(1, 50),
    st.sampled_from([(0, 100), (5000, 10000)]),
    st.floats(-5, 5),
)
def test_linear_regression(seed, n, bounds, bias):
    """Integer inputs in [low, high), exact targets x + 2y + 3z + bias, same key same data."""
    low, high = bounds
    x, y = ds.linear_regression(seed, n, low=low, high=high, bias=bias, dtype=np.float64)
    assert x.shape == (n, 3) and y.shape == (n, 1)
    assert (x >= low).all() and (x < high).all() and (x == np.round(x)).all()
    np.testing.assert_allclose(y[:, 0], x @ [1.0, 2.0, 3.0] + bias, rtol=1e-12, atol=1e-9)
    x2, y2 = ds.linear_regression(seed, n, low=low, high=high, bias=bias, dtype=np.float64)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


@given(st.integers(0, 2**32), st.integers(1, 30), st.floats(0, 0.3))
def test_two_spirals(seed, n, noise):
    """2n points, labels n zeros then n ones, radius at most 1 without noise; deterministic."""
    x, y = ds.two_spirals(seed, n, noise=noise)
    assert x.shape == (2 * n, 2) and x.dtype == np.float32
    assert y.tolist() == [0] * n + [1] * n
    if noise == 0:
        assert (np.hypot(x[:, 0], x[:, 1]) <= 1 + 1e-6).all()
        np.testing.assert_array_equal(x[:n], -x[n:])  # the arms are point reflections
    assert np.array_equal(ds.two_spirals(seed, n, noise=noise)[0], x)


def test_toys_depend_on_the_key():
    """Different keys give different data."""
    assert not np.array_equal(ds.two_spirals(0, 20)[0], ds.two_spirals(1, 20)[0])
    assert not np.array_equal(ds.linear_regression(0, 20)[0], ds.linear_regression(1, 20)[0])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: ds.linear_regression(0, 0),
            ValueError,
            r"linear_regression: n must be a positive int, got 0",
        ),
        (lambda: ds.linear_regression(0, 5, low=3, high=3), ValueError, r"need low < high"),
        (lambda: ds.linear_regression(-1, 5), TypeError, r"key must be"),
        (lambda: ds.two_spirals(0, 0), ValueError, r"n_per_class must be a positive int"),
        (lambda: ds.two_spirals(0, 3, noise=-1.0), ValueError, r"need noise >= 0"),
        (lambda: ds.two_spirals(0, 3, turns=0.0), ValueError, r"turns > 0"),
    ],
)
def test_toy_errors(call, error, match):
    """Impossible toy configurations are refused with the parameter named."""
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------
# train_val_split and one_hot


@given(st.integers(2, 40), st.floats(0.01, 0.99), st.integers(0, 2**32))
def test_train_val_split_partitions(n, fraction, seed):
    """The parts partition the examples, keep x and y rows paired and in order, have
    ceil(fraction * n) validation rows, and the same key gives the same split."""
    n_val = math.ceil(fraction * n)
    x = np.arange(2 * n).reshape(n, 2)
    y = np.arange(n) * 10
    if n_val >= n:
        with pytest.raises(ValueError, match="leaves no training examples"):
            ds.train_val_split(x, y, val_fraction=fraction, key=seed)
        return
    x_tr, y_tr, x_va, y_va = ds.train_val_split(x, y, val_fraction=fraction, key=seed)
    assert len(y_va) == n_val and len(y_tr) == n - n_val
    assert sorted(y_tr.tolist() + y_va.tolist()) == y.tolist()
    np.testing.assert_array_equal(x_tr[:, 0] * 5, y_tr)
    np.testing.assert_array_equal(x_va[:, 0] * 5, y_va)
    assert (np.diff(y_tr) > 0).all() and (np.diff(y_va) > 0).all()
    again = ds.train_val_split(x, y, val_fraction=fraction, key=seed)
    assert all(np.array_equal(a, b) for a, b in zip(again, (x_tr, y_tr, x_va, y_va), strict=True))
    assert not any(a.flags.writeable for a in again)


@pytest.mark.parametrize(
    ("args", "kw", "error", "match"),
    [
        (
            (np.zeros((4, 2)), np.zeros(3)),
            {"val_fraction": 0.5, "key": 0},
            ValueError,
            r"x has 4 examples but y has 3",
        ),
        (
            (np.zeros((4, 2)), np.zeros(4)),
            {"val_fraction": 0.0, "key": 0},
            ValueError,
            r"val_fraction must be in \(0, 1\), got 0.0",
        ),
        (
            (np.zeros((4, 2)), np.zeros(4)),
            {"val_fraction": 1, "key": 0},
            ValueError,
            r"val_fraction must be in \(0, 1\)",
        ),
        (
            (np.zeros((4, 2)), np.zeros(4)),
            {"val_fraction": True, "key": 0},
            ValueError,
            r"val_fraction",
        ),
        (
            ([1, 2], np.zeros(2)),
            {"val_fraction": 0.5, "key": 0},
            TypeError,
            r"x must be an array with a batch axis",
        ),
        (
            (np.zeros((4, 2)), np.zeros(4)),
            {"val_fraction": 0.5, "key": "a"},
            TypeError,
            r"key must be",
        ),
    ],
)
def test_train_val_split_errors(args, kw, error, match):
    """Mismatched lengths, fractions outside (0, 1) and non-arrays are refused clearly."""
    with pytest.raises(
        error, match=r"train_val_split: .*" + match if "key" not in match else match
    ):
        ds.train_val_split(*args, **kw)


@given(
    hnp.arrays(
        np.int64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0), elements=st.integers(0, 6)
    ),
    st.integers(7, 9),
)
def test_one_hot_property(labels, num_classes):
    """Each row has a single 1, at the label's position; shape gains a class axis."""
    out = ds.one_hot(labels, num_classes)
    assert out.shape == (*labels.shape, num_classes) and out.dtype == np.float32
    np.testing.assert_array_equal(out.sum(axis=-1), np.ones(labels.shape))
    if labels.size:
        np.testing.assert_array_equal(out.argmax(axis=-1), labels)
    assert not out.flags.writeable


@pytest.mark.parametrize(
    ("labels", "k", "error", "match"),
    [
        (
            np.array([0.0, 1.0]),
            2,
            TypeError,
            r"labels must be integers, got dtype float64; use labels.astype",
        ),
        (np.array([0, 3, 1]), 3, ValueError, r"label 3 at index \(1,\) is outside \[0, 3\)"),
        (np.array([[0], [-1]]), 3, ValueError, r"label -1 at index \(1, 0\)"),
        (np.array([0]), 0, ValueError, r"num_classes must be a positive int, got 0"),
        (np.array([True]), 2, TypeError, r"got dtype bool"),
    ],
)
def test_one_hot_errors(labels, k, error, match):
    """Non-integer or out-of-range labels and bad class counts are refused with the fix."""
    with pytest.raises(error, match=r"one_hot: .*" + match):
        ds.one_hot(labels, k)


# ---------------------------------------------------------------------------
# Hostile IDX files (issue 16): absurd headers, FIFOs, negative labels.


def _idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


def _peak_bytes(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("dims", "match"),
    [
        ((1,) * 200, r"rank 200 is absurd"),
        ((1,) * 65, r"rank 65 is absurd"),
        ((0, 2**32 - 1, 2**32 - 1), r"dimensions \(0, 4294967295, 4294967295\) are absurd"),
        ((2**32 - 1, 2**32 - 1), r"declares 18446744065119617025 data bytes"),
        ((2**31,), r"declares 2147483648 data bytes"),
    ],
)
def test_absurd_idx_headers_are_refused_before_reading(tmp_path, dims, match, gz):
    """A header declaring an absurd rank, an absurd shape or more data than the file (or
    max_bytes) can hold is a ValueError naming the file, raised before any data is read:
    peak memory stays far below what the header declares."""
    data = _idx_header(0x08, dims) + b"\x07" * 64
    path = tmp_path / "bad.idx"
    path.write_bytes(gzip.compress(data) if gz else data)

    def read():
        with pytest.raises(ValueError, match=r"read_idx: .*bad\.idx: .*" + match):
            ds.read_idx(path)

    assert _peak_bytes(read) < 1 << 20


def test_idx_declared_size_is_checked_against_max_bytes(tmp_path):
    """A truthful gzip bomb (4 MiB of zeros in a few KiB) is refused before decompression
    when it declares more than max_bytes, with the fix in the message; with a larger
    max_bytes it reads."""
    path = tmp_path / "bomb.gz"
    ds.write_idx(path, np.zeros((4, 1 << 20), np.uint8))
    assert path.stat().st_size < 1 << 14

    def read():
        with pytest.raises(ValueError, match=r"declares 4194304 data bytes, more than max_bytes=1048576; pass max_bytes="):
            ds.read_idx(path, max_bytes=1 << 20)

    assert _peak_bytes(read) < 1 << 20
    assert ds.read_idx(path, max_bytes=1 << 23).shape == (4, 1 << 20)
    with pytest.raises(ValueError, match="max_bytes must be a positive int"):
        ds.read_idx(path, max_bytes=0)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_read_idx_refuses_a_fifo_at_once(tmp_path):
    """A FIFO (or any file that is not a regular file) is refused at once with a ValueError;
    read_idx never blocks waiting for a writer."""
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            ds.read_idx(fifo)
        except Exception as err:  # recorded for the assertion below
            outcome.append(err)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # blocked in open(): unblock it before failing
        with open(fifo, "wb"):
            pass
        thread.join(5)
        pytest.fail("read_idx blocked on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError)
    assert re.search(r"read_idx: .*pipe: not a regular file \(a FIFO\)", str(outcome[0]))
    with pytest.raises(ValueError, match=r"not a regular file \(a directory\)"):
        ds.read_idx(tmp_path)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([0, -1, 2], np.int8), r"training labels must be in 0\.\.9, found -1"),
        (np.array([0, 1, 10], np.int16), r"training labels must be in 0\.\.9, found 10"),
        (np.array([0.0, 1.5, 2.0], np.float32), r"training labels must be integers, the file holds float32"),
    ],
)
def test_label_files_out_of_range_or_not_integer_are_refused(places, labels, match):
    """The case of issue 16: an int8 label file with -1 loaded as label -1 (only labels too
    large were refused); float label files were truncated to integers. Both are refused."""
    make_fake(places["explicit"])
    ds.write_idx(places["explicit"] / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match=match):
        ds.mnist(places["explicit"], download=False)
