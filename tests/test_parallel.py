"""Tests of fnn.parallel: fnn.threads sets BLAS and fnn's own thread counts for a block only."""

import itertools
import os
import threading

import numpy as np
import pytest
import threadpoolctl

import fnn
from fnn import parallel
from tests.forking import in_fork


def _blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_threads_sets_blas_and_restores_it():
    """Inside the block BLAS runs n threads and fnn's kernels see n; afterwards both are back."""
    before = _blas_threads()
    with fnn.threads(1):
        assert set(_blas_threads()) == {1}
        assert parallel.num_threads() == 1 and parallel.threads_set()
        with fnn.threads(2):
            assert parallel.num_threads() == 2
            assert set(_blas_threads()) == {2}
        assert parallel.num_threads() == 1
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before
    assert not parallel.threads_set() and parallel.num_threads() == 1


def test_threads_restores_after_an_error():
    """An exception inside the block still restores the previous counts."""
    before = _blas_threads()
    with pytest.raises(RuntimeError, match="boom"), fnn.threads(1):
        raise RuntimeError("boom")
    assert _blas_threads() == before and not parallel.threads_set()


def test_fnn_count_is_per_thread():
    """Another Python thread does not see this thread's fnn count (it is a context variable)."""
    seen = []
    with fnn.threads(1):
        t = threading.Thread(target=lambda: seen.append(parallel.threads_set()))
        t.start()
        t.join()
    assert seen == [False]


def test_same_bits_for_a_fixed_count():
    """The same product twice under the same count gives the same bits."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(64, 80)).astype(np.float32), rng.normal(size=(80, 48)).astype(np.float32)
    with fnn.threads(1):
        first = a @ b
        second = a @ b
    assert np.array_equal(first, second)


@pytest.mark.parametrize(
    ("n", "error", "match"),
    [
        (0, ValueError, "n must be >= 1"),
        (-2, ValueError, "n must be >= 1"),
        (1.5, TypeError, "positive int"),
        (True, TypeError, "positive int"),
        ("2", TypeError, "positive int"),
    ],
)
def test_bad_counts(n, error, match):
    """A thread count that is not a positive int is refused before anything changes."""
    before = _blas_threads()
    with pytest.raises(error, match=f"fnn.threads: .*{match}"):
        fnn.threads(n)  # refused at the call, before any with block
    assert _blas_threads() == before


def test_missing_threadpoolctl_names_the_extra(monkeypatch):
    """Without threadpoolctl the error says which extra to install."""
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError("no threadpoolctl")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"fnn\[threads\]"):
        fnn.threads(1)


# fnn.parallel.split and fnn.parallel.map (issue 15): the batch-chunk helpers of the kernels


@pytest.mark.parametrize("n_items", [0, 1, 2, 5, 128])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_split_covers_the_items_in_contiguous_balanced_chunks(n_items, count):
    """One chunk per thread (fewer when there are fewer items), contiguous, covering
    range(n_items), sizes differing by at most one."""
    with fnn.threads(count):
        chunks = parallel.split(n_items)
    assert chunks[0][0] == 0 and chunks[-1][1] == n_items
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
    assert len(chunks) == max(1, min(count, n_items))
    sizes = [b - a for a, b in chunks]
    assert max(sizes) - min(sizes) <= 1


def test_split_by_working_memory():
    """With item_bytes, chunks hold about 4 MiB at most and their number is a multiple of the
    thread count; outside a block there is one thread."""
    mib = 1 << 20
    assert parallel.split(128, item_bytes=mib // 4) == [(i, i + 16) for i in range(0, 128, 16)]
    assert len(parallel.split(128, item_bytes=mib)) == 32
    with fnn.threads(2):
        assert len(parallel.split(128, item_bytes=mib // 4)) == 8
        assert len(parallel.split(10, item_bytes=mib // 4)) == 2
    assert parallel.split(3, item_bytes=64 * mib) == [(0, 1), (1, 2), (2, 3)]


def test_map_runs_in_order_in_the_caller_outside_a_block():
    """Outside fnn.threads, map is a plain loop in the calling thread; BLAS is untouched."""
    me, before = threading.get_ident(), _blas_threads()
    seen = parallel.map(lambda i: (i * i, threading.get_ident(), _blas_threads()), [3, 1, 2])
    assert [s[0] for s in seen] == [9, 1, 4]
    assert all(s[1] == me and s[2] == before for s in seen)


def test_map_runs_items_concurrently_with_single_threaded_blas():
    """Inside fnn.threads(2) two items run at the same time (a two-party barrier passes),
    BLAS runs one thread meanwhile, and the block's BLAS count is back afterwards."""
    barrier = threading.Barrier(2)

    def item(i):
        barrier.wait(timeout=10)  # deadlocks (BrokenBarrierError) unless run concurrently
        return i, _blas_threads()

    with fnn.threads(2):
        out = parallel.map(item, [0, 1])
        assert set(_blas_threads()) == {2}
    assert [o[0] for o in out] == [0, 1]
    assert all(set(o[1]) == {1} for o in out)


def test_map_reraises_the_first_error_after_every_item_ended():
    """An error in one item is raised (the first in item order) once all items have ended,
    and the BLAS count is restored."""
    done = []

    def item(i):
        if i in (1, 3):
            raise RuntimeError(f"item {i}")
        done.append(i)

    with fnn.threads(2):
        with pytest.raises(RuntimeError, match="item 1"):
            parallel.map(item, [0, 1, 2, 3, 4])
        assert set(_blas_threads()) == {2}
    assert sorted(done) == [0, 2, 4]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: parallel.split(-1), ValueError, r"split: n_items must be >= 0"),
        (lambda: parallel.split(4, item_bytes=-2), ValueError, r"split: item_bytes must be >= 0"),
        (lambda: parallel.split(2.5), TypeError, r"split: n_items must be an int"),
        (lambda: parallel.split(True), TypeError, r"split: n_items must be an int"),
        (lambda: parallel.map(None, [1]), TypeError, r"map: fn must be callable"),
        (lambda: parallel.map(abs, 3), TypeError, r"map: items must be a sequence"),
    ],
)
def test_bad_arguments_of_the_chunk_helpers(call, error, match):
    """split and map refuse arguments of the wrong kind or sign, naming themselves."""
    with pytest.raises(error, match=f"fnn.parallel.{match}"):
        call()


def test_blas_count_can_differ_from_fnn_count():
    """fnn.threads(2, blas=1): fnn's kernels see two threads, BLAS runs one (a conv net's
    arrangement); afterwards both are back. A bad blas count is refused before any change."""
    before = _blas_threads()
    with fnn.threads(2, blas=1):
        assert parallel.num_threads() == 2 and set(_blas_threads()) == {1}
        out = parallel.map(lambda i: _blas_threads(), [0, 1])
        assert all(set(o) == {1} for o in out) and set(_blas_threads()) == {1}
    assert _blas_threads() == before
    with pytest.raises(ValueError, match=r"fnn.threads: blas must be >= 1"):
        fnn.threads(2, blas=0)
    with pytest.raises(TypeError, match=r"fnn.threads: blas must be a positive int"):
        fnn.threads(2, blas=1.5)
    assert _blas_threads() == before


def test_map_items_run_with_the_callers_error_settings_and_one_fnn_thread():
    """Every item, in the caller's thread or the pool's, runs under the caller's np.errstate
    (an overflow raises where the caller asked for it) and sees fnn's thread count as 1."""
    big = np.array([3e38], np.float32)

    def item(i):
        settings = np.geterr()
        try:
            big * np.float32(10)
        except FloatingPointError:
            return "raised", settings["over"], parallel.num_threads()
        return "no error", settings["over"], parallel.num_threads()

    with fnn.threads(2), np.errstate(over="raise"):
        out = parallel.map(item, [0, 1, 2, 3])
        assert parallel.num_threads() == 2  # the caller's count is back after map
    assert out == [("raised", "raise", 1)] * 4
    with fnn.threads(2), np.errstate(over="ignore"):
        assert parallel.map(item, [0, 1]) == [("no error", "ignore", 1)] * 2


def test_two_callers_mapping_at_once_each_get_their_own_results():
    """Two threads of the caller's program each run map inside fnn.threads(2) at the same
    time: the shared worker threads never mix up their items or their completions."""
    out = {}

    def caller(tag):
        with fnn.threads(2):
            out[tag] = [parallel.map(lambda i: (tag, i * i), list(range(6))) for _ in range(50)]

    callers = [threading.Thread(target=caller, args=(t,)) for t in "ab"]
    for c in callers:
        c.start()
    for c in callers:
        c.join(timeout=60)
    for tag in "ab":
        assert out[tag] == [[(tag, i * i) for i in range(6)]] * 50


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_map_works_in_a_forked_child():
    """A child forked after the worker threads started (they do not exist in it) starts its
    own: map inside fnn.threads(2) finishes there instead of waiting forever."""
    with fnn.threads(2):
        parallel.map(lambda i: i, [0, 1])  # the parent's workers exist now

    def child():
        with fnn.threads(2):
            return repr(parallel.map(lambda i: i + 1, [0, 1, 2])).encode()

    result = in_fork(child)
    if result is None:
        pytest.fail("map hung in the forked child")
    assert result == b"[1, 2, 3]"
