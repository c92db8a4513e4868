"""fit(..., threads=n): the whole call runs inside fnn.threads(n); None leaves BLAS alone."""

import numpy as np
import pytest
import threadpoolctl

import fnn
from fnn import optim, parallel, tree
from fnn.train import fit


def _blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def _problem():
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = (x[:, :1] - x[:, 1:2]).astype(np.float32)
    net = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(1)], (3,), key=0)
    return net, (x, y)


def _run(threads, callbacks=()):
    net, data = _problem()
    return fit(net, optim.adam(1e-2), fnn.losses.mse, data, epochs=3, key=1, batch_size=16,
               progress=False, threads=threads, callbacks=callbacks)


def test_threads_apply_during_fit_and_are_restored():
    """Every epoch of fit(threads=1) sees one BLAS thread and fnn count 1; afterwards both
    are as before."""
    before = _blas_threads()
    seen = []
    _run(1, [lambda record: seen.append((parallel.threads_set(), set(_blas_threads())))])
    assert seen == [(True, {1})] * 3
    assert _blas_threads() == before and not parallel.threads_set()


def test_threads_none_changes_nothing():
    """With threads=None, fit runs outside any fnn.threads block and BLAS keeps its count."""
    before = _blas_threads()
    seen = []
    _run(None, [lambda record: seen.append((parallel.threads_set(), _blas_threads()))])
    assert seen == [(False, before)] * 3


def test_threads_argument_equals_a_with_block():
    """fit(threads=1) gives bit for bit what fit inside `with fnn.threads(1)` gives."""
    a, _, ha = _run(1)
    with fnn.threads(1):
        b, _, hb = _run(None)
    assert all(np.array_equal(u, v) for u, v in zip(tree.leaves(a), tree.leaves(b), strict=True))
    assert ha.loss == hb.loss


@pytest.mark.parametrize(("threads", "error", "match"), [
    (0, ValueError, r"fnn\.fit: threads must be >= 1, got 0"),
    (-2, ValueError, r"fnn\.fit: threads must be >= 1"),
    ("2", TypeError, r"fnn\.fit: threads must be an int, got str"),
    (1.5, TypeError, r"fnn\.fit: threads must be an int, got float"),
])
def test_bad_thread_counts_are_refused_before_training(threads, error, match):
    """A bad thread count is refused at the call, with no epoch run."""
    seen = []
    with pytest.raises(error, match=match):
        _run(threads, [seen.append])
    assert seen == []


def test_counts_restored_after_an_error_inside_fit():
    """An exception raised during training still restores the thread counts."""
    before = _blas_threads()

    def boom(record):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _run(1, [boom])
    assert _blas_threads() == before and not parallel.threads_set()
