"""Tests for fnn.io.encode: what save refuses (and how it says so), nesting depth, file modes
without touching the umask, symbolic links, and temp files left by dead writers."""

from __future__ import annotations

import enum
import fcntl
import json
import os
import stat
import threading
import time
import zipfile

import numpy as np
import pytest

import fnn
from fnn import io as fio
from fnn.io import encode, spec


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


class Real(float):
    pass


def _cycle():
    a: list = [1]
    a.append({"again": a})
    return a


# ---------------------------------------------------------------------------
# Values save cannot store: the error names the path and what can be stored.


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ({"s": "a\ud800b"}, ValueError, r"the str at \['s'\] is not valid Unicode .*UTF-8"),
        ({"\udcff": 1}, ValueError, r"the str at \['\\udcff'\] is not valid Unicode"),
        ({"n": [10**5000]}, ValueError, r"the int at \['n'\]\[0\] has 16610 bits; .* store it as a str"),
        ({"c": Color.RED}, TypeError, r"cannot save a Color \(a subclass of int\) at \['c'\]; .*int\(\.\.\.\)"),
        ({"c": [Name("x")]}, TypeError, r"cannot save a Name \(a subclass of str\) at \['c'\]\[0\]"),
        ((Real(1.5),), TypeError, r"cannot save a Real \(a subclass of float\) at \[0\]"),
        ({Color.RED: 1}, TypeError, r"cannot save the dict key <Color.RED: 1> \(Color\) at <root>; dict keys must be str or int"),
        ({"x": np.longdouble(1) / 3}, TypeError, r"the float128 scalar .* at \['x'\]; store it as a 0-d array"),
        (np.complex128(1j), TypeError, r"the complex128 scalar .* at <root>; store it as a 0-d array"),
        ({"m": np.ma.masked_array([1.0, 2.0], mask=[0, 1])}, TypeError, r"a masked array at \['m'\]; the mask would be lost"),
        (_cycle(), ValueError, r"the tree contains itself at \[1\]\['again'\] \(a cycle\)"),
        ({"s": {1, 2}}, TypeError, r"cannot save a set at \['s'\]; fnn files hold arrays of bool, .* registered or exported functions"),
        ({"b": b"raw"}, TypeError, r"cannot save a bytes at \['b'\]; fnn files hold"),
        ({"d": np.datetime64("2020-01-01")}, TypeError, r"dtype datetime64\[D\] at \['d'\]; only bool, integer, float and complex"),
        ({"k": fnn.train.STOP}, TypeError, r"cannot save a Signal at \['k'\]"),
    ],
)
def test_unsavable_values_name_their_path_and_write_nothing(tmp_path, value, error, match):
    """Every value fnn files cannot give back identically is refused before anything is
    written, with a message naming fnn.io.save, the value's path in the tree and the fix."""
    with pytest.raises(error, match=r"^fnn\.io\.save: .*" + match):
        fio.save(tmp_path / "m", value)
    assert os.listdir(tmp_path) == []


GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "v0.1.0")


@pytest.mark.parametrize("name", ["network.npz", "opt_state.npz"])
def test_golden_trees_are_written_as_0_1_0_wrote_them(tmp_path, name):
    """The trees of the 0.1.0 golden files (a network of every 0.1.0 layer kind, Adam and
    momentum states), loaded and saved again, give the same zip entries byte for byte as the
    files 0.1.0 wrote: same names, same arrays, same JSON header but for the version string."""
    original = os.path.join(GOLDEN, name)
    written = fio.save(tmp_path / "again", fio.load(original))
    with zipfile.ZipFile(original) as old, zipfile.ZipFile(written) as new:
        assert new.namelist() == old.namelist()
        for entry in old.namelist():
            want = old.read(entry)
            if entry == "fnn-header.npy":
                want = want.replace(b'"fnn_version":"0.1.0"', f'"fnn_version":"{fnn.__version__}"'.encode())
            assert new.read(entry) == want, entry


def test_save_follows_the_tree_walk_of_fnn_tree(tmp_path):
    """save encodes the tree along fnn.tree's walk: a subclass of list or dict (a container
    to fnn.tree) is refused by name, a shared array is written at each of its paths, and an
    exported loss object inside a dict is written by name (not as its fields)."""
    import collections

    with pytest.raises(TypeError, match=r"cannot save a OrderedDict at \['od'\]"):
        fio.save(tmp_path / "od", {"od": collections.OrderedDict(a=np.zeros(1))})
    a = np.arange(3.0)
    back = fio.load(fio.save(tmp_path / "s", {"x": a, "y": [a], "loss": fnn.losses.mse}))
    np.testing.assert_array_equal(back["y"][0], a)
    assert back["loss"] is fnn.losses.mse
    assert os.listdir(tmp_path) == ["s.npz"]


class Tagged(np.ndarray):
    """An ndarray subclass (as np.matrix or a unit-carrying array would be)."""


def test_ndarray_subclasses_are_stored_as_their_data(tmp_path):
    """An ndarray subclass is stored as its plain array (the loaded value is an ndarray with
    the same bits); only masked arrays, which would lose their mask, are refused."""
    m = np.arange(6.0).reshape(2, 3).view(Tagged)
    back = fio.load(fio.save(tmp_path / "m", {"m": m}))["m"]
    assert type(back) is np.ndarray and back.shape == (2, 3)
    np.testing.assert_array_equal(back, np.asarray(m))


# ---------------------------------------------------------------------------
# Depth: what save writes, load reads.


def _nested(depth):
    tree = 7
    for _ in range(depth):
        tree = [tree]
    return tree


def _call_at_stack_depth(frames, fn):
    if frames == 0:
        return fn()
    return _call_at_stack_depth(frames - 1, fn)


def test_save_and_load_agree_on_depth(tmp_path):
    """A tree MAX_DEPTH (100) containers deep saves and loads, even when load is called with
    500 frames already on the stack; one level deeper is refused by save (nothing written),
    and a file one level deeper (written by hand) is refused by load."""
    deepest = _nested(spec.MAX_DEPTH)
    path = fio.save(tmp_path / "ok", deepest)
    assert _call_at_stack_depth(500, lambda: fio.load(path)) == deepest
    with pytest.raises(ValueError, match=r"fnn\.io\.save: the tree nests deeper than 100 levels at \[0\]"):
        fio.save(tmp_path / "deep", _nested(spec.MAX_DEPTH + 1))
    assert sorted(os.listdir(tmp_path)) == ["ok.npz"]
    node: object = 7
    for _ in range(spec.MAX_DEPTH + 1):
        node = {"t": "list", "items": [node]}
    header = {"format": "fnn", "format_version": 1, "tree": node}
    np.savez(tmp_path / "hand.npz", **{"fnn-header": np.frombuffer(json.dumps(header).encode(), np.uint8)})
    with pytest.raises(ValueError, match=r"hand\.npz: the tree nests deeper than 100 levels"):
        fio.load(tmp_path / "hand.npz")


# ---------------------------------------------------------------------------
# File modes: the umask is never changed.


@pytest.fixture
def umask_027():
    """Run with umask 027 (set here, single-threaded, and restored)."""
    set_umask = os.umask  # the real one, even if a test patches os.umask
    old = set_umask(0o027)
    yield 0o027
    set_umask(old)


def test_save_never_calls_os_umask(tmp_path, monkeypatch, umask_027):
    """save creates new files with the umask applied by the kernel (0o666 & ~umask) and never
    calls os.umask, which changes process-wide state other threads rely on; an existing
    file's permission bits are kept."""

    def forbidden(*args):
        raise AssertionError("fnn.save called os.umask")

    monkeypatch.setattr(os, "umask", forbidden)
    path = fio.save(tmp_path / "new", {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask_027
    os.chmod(path, 0o600)
    fio.save(path, {"a": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and fio.load(path) == {"a": 2}


def test_a_thread_saving_never_changes_another_threads_file_modes(tmp_path, umask_027):
    """While one thread saves in a loop, files another thread creates all get
    0o666 & ~umask (0.1.0's save briefly set the umask to 022, so they could get 0o644)."""
    stop = threading.Event()
    saves = []

    def saver():
        while not stop.is_set():
            saves.append(fio.save(tmp_path / "s", {"n": len(saves)}))

    thread = threading.Thread(target=saver)
    thread.start()
    modes = set()
    try:
        deadline = time.monotonic() + 1.0
        i = 0
        while time.monotonic() < deadline or len(saves) < 20:
            p = tmp_path / f"other{i}"
            p.write_bytes(b"x")
            modes.add(stat.S_IMODE(p.stat().st_mode))
            p.unlink()
            i += 1
    finally:
        stop.set()
        thread.join()
    assert modes == {0o666 & ~umask_027}, sorted(map(oct, modes))


# ---------------------------------------------------------------------------
# Symbolic links and other file kinds.


def test_saving_to_a_symlink_replaces_the_link(tmp_path):
    """Saving to a path that is a symbolic link replaces the link itself with the new file;
    the file the link pointed to keeps its bytes (a 'latest' link never overwrites the
    checkpoint it names). A dangling link is replaced the same way."""
    real = fio.save(tmp_path / "ckpt1", {"step": 1})
    before = real.read_bytes()
    link = tmp_path / "latest.npz"
    link.symlink_to(real.name)
    fio.save(link, {"step": 2})
    assert not link.is_symlink() and fio.load(link) == {"step": 2}
    assert real.read_bytes() == before
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to("nowhere.npz")
    fio.save(dangling, {"step": 3})
    assert not dangling.is_symlink() and not (tmp_path / "nowhere.npz").exists()


def test_saving_over_a_directory_or_fifo_is_refused(tmp_path):
    """A target that exists and is a directory or a FIFO is refused with a clear error
    (0.1.0 replaced a FIFO with the file)."""
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(IsADirectoryError, match=r"fnn\.io\.save: .*d\.npz' is a directory"):
        fio.save(tmp_path / "d", {"a": 1})
    os.mkfifo(tmp_path / "f.npz")
    with pytest.raises(ValueError, match=r"fnn\.io\.save: .*f\.npz' exists and is not a regular file"):
        fio.save(tmp_path / "f", {"a": 1})
    assert stat.S_ISFIFO(os.lstat(tmp_path / "f.npz").st_mode)


# ---------------------------------------------------------------------------
# Temp files left by dead writers.


def _old_temp(tmp_path, name, age=3600.0):
    p = tmp_path / name
    p.write_bytes(b"partial")
    t = time.time() - age
    os.utime(p, (t, t))
    return p


def test_stale_temp_files_are_removed_and_live_ones_kept(tmp_path):
    """A save removes temp files of its target left by dead writers (save's naming, older
    than ten minutes, nobody holding the writer's lock); it keeps recent ones, locked ones
    (a writer still alive) and anything not named like its own temp files."""
    stale = _old_temp(tmp_path, ".m.npz.0123456789abcdef.tmp")
    stale_010 = _old_temp(tmp_path, ".m.npz.k2_x9abc.tmp")  # 0.1.0's mkstemp name
    recent = _old_temp(tmp_path, ".m.npz.fedcba9876543210.tmp", age=5.0)
    locked = _old_temp(tmp_path, ".m.npz.aaaaaaaaaaaaaaaa.tmp")
    other_target = _old_temp(tmp_path, ".n.npz.0123456789abcdef.tmp")
    foreign = _old_temp(tmp_path, ".m.npz.backup")
    fd = os.open(locked, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fio.save(tmp_path / "m", {"a": 1})
    finally:
        os.close(fd)
    left = {p.name for p in tmp_path.iterdir()}
    assert stale.name not in left and stale_010.name not in left
    assert {recent.name, locked.name, other_target.name, foreign.name, "m.npz"} == left


def test_the_temp_file_is_locked_while_written(tmp_path, monkeypatch):
    """While save writes, its temp file is locked (flock), so a concurrent save's cleanup
    cannot take it for a dead writer's, however long the write takes."""
    seen = []
    real = encode._write_npz

    def spying(f, entries, compress):
        (tmp,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        fd = os.open(tmp, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append(tmp.name)
        finally:
            os.close(fd)
        return real(f, entries, compress)

    monkeypatch.setattr(encode, "_write_npz", spying)
    fio.save(tmp_path / "m", {"a": 1})
    assert len(seen) == 1 and encode._temp_pattern(tmp_path / "m.npz").fullmatch(seen[0])


def test_compressed_files_are_deflated(tmp_path):
    """compress=True deflates every entry; compress must be a bool."""
    path = fio.save(tmp_path / "c", {"w": np.zeros(1000)}, compress=True)
    with zipfile.ZipFile(path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    with pytest.raises(TypeError, match=r"fnn\.io\.save: compress must be a bool, got str"):
        fio.save(tmp_path / "c", {}, compress="yes")
