"""Tests of fnn.parallel: fnn.threads sets BLAS and fnn's own thread counts for a block only."""

import threading

import numpy as np
import pytest
import threadpoolctl

import fnn
from fnn import parallel


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
