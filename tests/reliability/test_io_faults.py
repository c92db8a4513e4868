"""Faults around fnn.save / fnn.load that tests/test_io.py does not already cover.

- a save killed with SIGKILL in the middle of writing leaves the previous file
  intact and loadable (tests/test_io.py covers an in-process exception in the
  writer; here every later stage of the write fails too);
- hostile files declaring huge shapes (in the JSON header, in an entry's .npy
  header, or behind lying zip sizes of a compressed entry) are refused before
  anything of that size is allocated, also under a hard address-space limit;
- headers nested deeper than Python can parse are a ValueError, not a
  RecursionError, and so is saving such a tree.

(Truncation, flipped bytes, wrong versions and pickled payloads are in
tests/test_io.py.)
"""

from __future__ import annotations

import io as _stdio
import json
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fnn
from fnn import io as fio
from fnn.io import encode

REPO = Path(__file__).resolve().parents[2]
TEMP_NAME = re.compile(r"^\.m\.npz\..+\.tmp$")  # the hidden temp file save writes beside the target


def entries_of(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def npy_bytes(array):
    buf = _stdio.BytesIO()
    np.lib.format.write_array(buf, array)
    return buf.getvalue()


def write_entries(path, entries, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def header_of(entries):
    raw = np.lib.format.read_array(_stdio.BytesIO(entries["fnn-header.npy"]))
    return json.loads(raw.tobytes().decode())


def with_header(entries, header):
    out = dict(entries)
    out["fnn-header.npy"] = npy_bytes(np.frombuffer(json.dumps(header).encode(), np.uint8))
    return out


def run_python(code, *args, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


# ---------------------------------------------------------------------------
# Interrupted saves.

_SLOW_SAVE = """
import sys, time
import numpy as np
import fnn
from fnn import io as fio
from fnn.io import encode

class SlowFile:
    '''Forwards to the real temp file, announcing and pausing on every write.'''
    def __init__(self, f):
        self.f = f
    def write(self, b):
        n = self.f.write(b)
        print("WRITING", flush=True)
        time.sleep(0.05)
        return n
    def __getattr__(self, name):
        return getattr(self.f, name)

from fnn.io import encode
real = encode._write_npz
encode._write_npz = lambda f, entries, compress: real(SlowFile(f), entries, compress)
fio.save(sys.argv[1], {"w": np.arange(300_000, dtype=np.float64), "version": 2})
print("DONE", flush=True)
"""


def test_sigkill_mid_save_keeps_the_previous_file(tmp_path):
    """A process killed (SIGKILL) while fnn.save is writing leaves the previous file byte
    for byte and loadable; what remains of the dead writer is only its hidden temp file,
    which load never reads, and which the next save to that target removes once it is
    ten minutes old (the dead writer's lock died with it)."""
    target = fio.save(tmp_path / "m", {"w": np.arange(3.0), "version": 1})
    before = target.read_bytes()
    proc = run_python(_SLOW_SAVE, target)
    try:
        assert proc.stdout.readline().strip() == "WRITING", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == before
    loaded = fio.load(target)
    assert loaded["version"] == 1 and loaded["w"].tolist() == [0.0, 1.0, 2.0]
    others = [p for p in tmp_path.iterdir() if p != target]
    assert len(others) == 1 and TEMP_NAME.match(others[0].name), others
    fio.save(target, {"version": 3})  # the temp file is fresh: kept (its writer might be alive)
    assert fio.load(target) == {"version": 3} and others[0].exists()
    old = time.time() - 601
    os.utime(others[0], (old, old))
    fio.save(target, {"version": 4})  # now stale and unlocked: removed
    assert fio.load(target) == {"version": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


@pytest.mark.parametrize("stage", ["fsync", "chmod", "replace"])
def test_failure_at_any_later_stage_keeps_the_previous_file(tmp_path, monkeypatch, stage):
    """An OSError after the bytes are written (fsync, chmod or the final rename) leaves the
    previous file intact and no temp file behind."""
    target = fio.save(tmp_path / "m", {"version": 1})
    before = target.read_bytes()
    real = getattr(os, stage)

    def failing(*args, **kw):
        if stage != "replace" or str(args[0]).endswith(".tmp"):
            raise OSError(f"injected {stage} failure")
        return real(*args, **kw)

    monkeypatch.setattr(encode.os, stage, failing)
    with pytest.raises(OSError, match=f"injected {stage} failure"):
        fio.save(target, {"version": 2})
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


# ---------------------------------------------------------------------------
# Huge declared shapes.

HUGE = 400_000_000  # bytes an honest reader would have to allocate (uint8)


@pytest.fixture
def small_file(tmp_path):
    return fio.save(tmp_path / "m", {"w": np.arange(4, dtype=np.uint8)})


def _huge_npy_entry():
    buf = _stdio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": (HUGE,)})
    return buf.getvalue() + bytes(4)


def _patch_zip_sizes(path, name, size):
    """Rewrite the uncompressed size of entry ``name`` in both zip headers (a lie)."""
    raw = bytearray(Path(path).read_bytes())
    target = name.encode()
    for sig, name_len_at, name_at, size_at in ((b"PK\x03\x04", 26, 30, 22), (b"PK\x01\x02", 28, 46, 24)):
        i = raw.find(sig)
        while i >= 0:
            n = struct.unpack_from("<H", raw, i + name_len_at)[0]
            if raw[i + name_at:i + name_at + n] == target:
                struct.pack_into("<I", raw, i + size_at, size)
            i = raw.find(sig, i + 4)
    Path(path).write_bytes(bytes(raw))


def make_hostile(path, how):
    """Rewrite ``path`` (a saved {"w": uint8[4]}) so it declares HUGE elements for w."""
    name = "arrays/['w'].npy"
    entries = entries_of(path)
    header = header_of(entries)
    if how == "json-shape":
        header["tree"]["items"][0][1]["shape"] = [HUGE]
        write_entries(path, with_header(entries, header))
    elif how == "npy-shape":
        entries[name] = _huge_npy_entry()
        header["tree"]["items"][0][1]["shape"] = [HUGE]
        write_entries(path, with_header(entries, header))
    elif how == "deflated-lying-sizes":
        entries[name] = _huge_npy_entry()
        header["tree"]["items"][0][1]["shape"] = [HUGE]
        write_entries(path, with_header(entries, header), zipfile.ZIP_DEFLATED)
        _patch_zip_sizes(path, name, len(entries[name]) - 4 + HUGE)
    return path


HOSTILE = ["json-shape", "npy-shape", "deflated-lying-sizes"]


@pytest.mark.parametrize("how", HOSTILE)
def test_huge_declared_shape_is_refused_without_allocating(small_file, how):
    """A file declaring 400 MB for a 4-byte array is a ValueError naming the file, and the
    load never allocates more than a few hundred kB (tracemalloc peak)."""
    make_hostile(small_file, how)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"fnn\.io\.load: .*m\.npz: "):
            fio.load(small_file)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, peak


_LOAD_UNDER_LIMIT = """
import resource, sys
import numpy as np
from fnn import io as fio

with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
limit = vm + 128 * 2**20  # 128 MB of head-room: far below the 400 MB the files declare
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for path in sys.argv[1:]:
    try:
        fio.load(path)
    except ValueError as err:
        print("ValueError", err)
    else:
        print("LOADED", path)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_hostile_files_under_an_address_space_limit(tmp_path):
    """Under RLIMIT_AS with 128 MB of head-room, every hostile file is still refused with a
    ValueError (a MemoryError or a crash would mean an unbounded allocation)."""
    paths = []
    for how in HOSTILE:
        p = fio.save(tmp_path / how, {"w": np.arange(4, dtype=np.uint8)})
        paths.append(make_hostile(p, how))
    proc = run_python(_LOAD_UNDER_LIMIT, *paths)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(HOSTILE) and all(line.startswith("ValueError fnn.io.load:") for line in lines), out


# ---------------------------------------------------------------------------
# Nesting beyond Python's recursion limit.


def test_deeply_nested_json_header_is_a_value_error(small_file):
    """A header of 100,000 nested JSON lists is refused as a bad file, not a RecursionError."""
    entries = entries_of(small_file)
    text = ("[" * 100_000 + "]" * 100_000).encode()
    entries["fnn-header.npy"] = npy_bytes(np.frombuffer(text, np.uint8))
    write_entries(small_file, entries)
    with pytest.raises(ValueError, match=r"fnn\.io\.load: .*m\.npz: the header nests deeper"):
        fio.load(small_file)


def test_deeply_nested_tree_nodes_are_a_value_error(small_file):
    """Valid JSON whose tree nodes nest 600 deep (deeper than load can rebuild) is refused."""
    entries = entries_of(small_file)
    node = "1"
    for _ in range(600):
        node = '{"t": "list", "items": [' + node + "]}"
    text = '{"format": "fnn", "format_version": 1, "tree": ' + node + "}"
    entries = {"fnn-header.npy": npy_bytes(np.frombuffer(text.encode(), np.uint8))}
    write_entries(small_file, entries)
    with pytest.raises(ValueError, match=r"fnn\.io\.load: .*m\.npz: the (tree|header) nests deeper"):
        fio.load(small_file)


def test_saving_a_too_deep_tree_is_a_value_error(tmp_path):
    """Saving a list nested 5,000 deep is a ValueError naming fnn.io.save, and writes nothing."""
    tree = 1
    for _ in range(5000):
        tree = [tree]
    with pytest.raises(ValueError, match=r"fnn\.io\.save: the tree nests deeper"):
        fnn.save(tmp_path / "deep", tree)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Files that name code: load resolves names, it never imports.

_HOST_APP = """
import json, os, sys
import fnn

try:
    fnn.load(os.environ["FNN_TEST_FILE"])
except ValueError as err:
    print("ValueError", err)
else:
    print("LOADED")
print("MODULES", json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "fnn")))
"""


def _file_naming(path, node):
    """A ~370-byte fnn file whose whole tree is ``node`` (written by hand, not by save)."""
    header = {"format": "fnn", "format_version": 1, "fnn_version": "0.1.0", "tree": node}
    write_entries(path, {"fnn-header.npy": npy_bytes(np.frombuffer(json.dumps(header).encode(), np.uint8))})
    return path


def test_a_file_naming_fnn_main_does_not_run_the_command_line(tmp_path):
    """The ~370-byte file naming a class under ``fnn.__main__``, loaded by a host program
    started as ``app.py train --out D``: load refuses it with a ValueError naming the unknown
    class and how to register it; fnn.__main__ and fnn.cli are never imported (0.1.0
    imported fnn/__main__.py, which ran the CLI with the host's argv and trained a model
    into D), and nothing is written."""
    evil = _file_naming(tmp_path / "evil.npz", {"t": "attrs", "class": "fnn.__main__.Pwn", "fields": {}})
    assert evil.stat().st_size < 400
    app = tmp_path / "app.py"
    app.write_text(_HOST_APP)
    out_dir = tmp_path / "D"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "FNN_TEST_FILE": str(evil)}
    proc = subprocess.run([sys.executable, str(app), "train", "--out", str(out_dir)], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ValueError fnn.io.load: "), proc.stdout
    assert "unknown class 'fnn.__main__.Pwn'" in lines[0] and "fnn.io.register(" in lines[0]
    modules = json.loads(lines[1].removeprefix("MODULES "))
    assert "fnn.__main__" not in modules and "fnn.cli" not in modules
    assert not out_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.py", "evil.npz"]


@pytest.mark.parametrize(
    "name",
    [
        "fnn.cli.main",  # a public module `import fnn` does not import
        "fnn.no_such_module.Thing",
        "fnn.layers._im2col.im2col",  # a private module
        "fnn.losses._check_pred",  # a private function of an imported public module
        "fnn.tree._children",
        "os.system",
        "builtins.eval",
        "fnn.__main__",
    ],
)
def test_names_outside_the_allow_list_are_refused_without_importing(tmp_path, monkeypatch, name):
    """A ref to anything but a registered name or a class/function exported in a public
    fnn module's __all__ that is already imported is refused (ValueError naming it and how
    to register it), and no module is imported by the attempt."""
    monkeypatch.delitem(sys.modules, "fnn.cli", raising=False)  # as in a process that never ran it
    path = _file_naming(tmp_path / "f.npz", {"t": "list", "items": [{"t": "ref", "name": name}]})
    fnn_modules = lambda: {m for m in sys.modules if m.split(".")[0] in ("fnn", "os", "builtins")}  # noqa: E731
    before = fnn_modules()
    with pytest.raises(ValueError, match=rf"unknown function '{re.escape(name)}' at \[0\].*fnn\.io\.register"):
        fio.load(path)
    assert fnn_modules() == before
