"""Benchmark: fnn.save / fnn.load against NumPy's own np.savez / np.load on the same data.

fnn's reader checks every entry before reading it (zip directory, overlaps, the
memory budget, each .npy header against the JSON header, CRCs) and returns
read-only arrays; this measures what that costs against NumPy reading the same
archive. The tree is one float32 array of ``--mb`` megabytes of random values
plus a small network. Each case runs interleaved (fnn, numpy, fnn, numpy, ...)
so both see the same machine state.

Run:  python benchmarks/io.py [--mb 256] [--repeats 5]

Prints the median seconds of each and the ratio fnn / numpy, for stored and
compressed files. fnn's save also fsyncs the file and its directory (so a crash
cannot lose it), which np.savez does not: small stored saves are dominated by it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import fnn


def _seconds(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _np_load_all(path: Path) -> None:
    with np.load(path, allow_pickle=False) as f:
        for k in f.files:
            f[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="size of the big array in MB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    big = rng.standard_normal(args.mb * 2**20 // 4, dtype=np.float32)
    net = fnn.init([fnn.Dense(64), fnn.Tanh(), fnn.Dense(10)], (32,), key=0)
    tree = {"big": big, "net": net}
    arrays = {"big": big, **{p: a for p, a in fnn.tree.leaves_with_path(net)}}
    print(f"{args.mb} MB float32 array + a small network; median of {args.repeats}")
    with tempfile.TemporaryDirectory() as d:
        for compress in (False, True):
            ours = Path(d) / f"fnn_{compress}.npz"
            theirs = Path(d) / f"np_{compress}.npz"
            savez = np.savez_compressed if compress else np.savez
            cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
                "save": (
                    lambda o=ours, c=compress: fnn.save(o, tree, compress=c),
                    lambda t=theirs, f=savez: f(t, **arrays),
                ),
                "load": (lambda o=ours: fnn.load(o), lambda t=theirs: _np_load_all(t)),
            }
            rows: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cases}
            for _ in range(args.repeats):
                for what, (fnn_case, np_case) in cases.items():
                    rows[what][0].append(_seconds(fnn_case))
                    rows[what][1].append(_seconds(np_case))
            kind = "compressed" if compress else "stored"
            for what, (a, b) in rows.items():
                ma, mb = statistics.median(a), statistics.median(b)
                print(f"{kind:10s} {what}: fnn {ma:.3f} s, numpy {mb:.3f} s, ratio {ma / mb:.2f}")


if __name__ == "__main__":
    main()
