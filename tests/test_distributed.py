"""fnn.distributed on a real (local, multi-process) Dask cluster, and sweep without Dask.

One ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` serves
the whole module; the tests that need it are skipped when the ``dask`` extra is
not installed. Sweep tests on a ``ProcessPoolExecutor`` run either way.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fnn
from fnn import distributed as fd
from fnn import tree
from fnn.distributed._grad import slice_sizes
from fnn.random import fold_in
from tests import distributed_jobs as jobs
from tests.conftest import load_example

CE = fnn.losses.sparse_softmax_cross_entropy
ONE_TRIP = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# The local cluster's scheduler runs on an event-loop thread of this process and draws from the
# `random` module while Hypothesis generates examples; Hypothesis notices the global random
# state moving and warns, though the strategies never touch it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
)


@pytest.fixture(scope="module")
def client():
    d = pytest.importorskip("distributed", reason="the dask extra is not installed")
    dask = pytest.importorskip("dask")
    # A task whose worker dies is retried once, then reported (KilledWorker): the default of
    # three retries would only make the killed-worker tests slower.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), \
            fd.local_cluster(2) as cluster, d.Client(cluster) as c:
        yield c


def _worker_environment() -> tuple[str | None, int]:
    import os

    import threadpoolctl

    blas = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), max(blas, default=1)


def test_local_cluster_workers_keep_glibcs_adaptive_malloc_and_one_thread(client):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536, which made fnn's steps 1.7x slower on
    the workers (every array over 128 KiB mmapped afresh); local_cluster starts them without it."""
    import dask

    assert dask.config.get("distributed.nanny.pre-spawn-environ").get("MALLOC_TRIM_THRESHOLD_")
    assert sorted(client.nthreads().values()) == [1, 1]
    for worker, (malloc, blas) in client.run(_worker_environment).items():
        assert malloc is None, worker
        assert blas == 1, worker


@pytest.mark.parametrize("bad, error", [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_local_cluster_refuses_a_bad_worker_count(bad, error):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    with pytest.raises(error, match=r"fnn\.distributed\.local_cluster: n_workers"):
        fd.local_cluster(bad)


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as p:
        yield p


def close(a: Any, b: Any, rtol: float = 1e-12) -> bool:
    """Leafwise |a - b| <= rtol·|b| + rtol·s with s the largest |entry| of the whole tree ``b``:
    relative error rtol, with an absolute floor at rtol times the tree's scale for entries that
    are small because larger terms cancelled (e.g. behind a LayerNorm), where round-off is
    relative to the cancelled terms."""
    tree.check_same_structure(a, b)
    scale = max((float(np.max(np.abs(y), initial=0.0)) for y in tree.leaves(b)), default=0.0)
    return all(
        np.allclose(x, y, rtol=rtol, atol=rtol * scale)
        for x, y in zip(tree.leaves(a), tree.leaves(b), strict=True)
    )


def bits(t: Any) -> list[bytes]:
    return [a.tobytes() for a in tree.leaves(t)]


def readonly(t: Any) -> bool:
    return all(not a.flags.writeable for a in tree.leaves(t))


def snapshot(*arrays: np.ndarray) -> list[tuple[bytes, bool]]:
    return [(a.tobytes(), a.flags.writeable) for a in arrays]


@st.composite
def problems(draw):
    """A random float64 MLP or CNN, data with an uneven number of rows, and a shard count 1-5."""
    k = draw(st.integers(1, 5))
    n = draw(st.integers(k, 23))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    d_out = draw(st.integers(1, 3))
    if draw(st.booleans()):
        d_in = draw(st.integers(1, 6))
        act = draw(st.sampled_from([fnn.Tanh(), fnn.ReLU(), fnn.Sigmoid()]))
        layers = [fnn.Dense(draw(st.integers(1, 6))), act, fnn.LayerNorm(), fnn.Dense(d_out)]
        in_shape: tuple[int, ...] = (d_in,)
    else:
        in_shape = (draw(st.integers(3, 6)), draw(st.integers(3, 6)), draw(st.integers(1, 2)))
        layers = [fnn.Conv2D(draw(st.integers(1, 3)), draw(st.integers(1, 3)), padding="same"),
                  fnn.ReLU(), fnn.MaxPool2D(2), fnn.Flatten(), fnn.Dense(d_out)]
    net = fnn.init(layers, in_shape, key=draw(st.integers(0, 99)), dtype=np.float64)
    x = rng.normal(size=(n, *in_shape))
    if d_out > 1 and draw(st.booleans()):
        return net, x, rng.integers(0, d_out, n), CE, k
    return net, x, rng.normal(size=(n, d_out)), fnn.losses.mse, k


# ---------------------------------------------------------------------------
# Gradients and steps equal one process.


@ONE_TRIP
@given(problem=problems())
def test_value_and_grad_equals_one_process(client, problem):
    """For 1-5 shards of uneven sizes, random MLPs and CNNs: the loss and gradient combined
    from the workers equal fnn.value_and_grad on all rows (float64, rtol 1e-12); the gradient
    is read-only and no input changed."""
    net, x, y, loss_fn, k = problem
    before = snapshot(x, y, *tree.leaves(net))
    shards = fd.shard(client, x, y, k)
    assert shards.sizes == tuple(len(b) for b in np.array_split(x, k)) and shards.n == len(x)
    loss, grads = fd.value_and_grad(client, net, shards, loss_fn)
    loss1, grads1 = fnn.value_and_grad(net, x, y, loss_fn)
    assert loss == pytest.approx(loss1, rel=1e-12)
    assert close(grads, grads1) and readonly(grads)
    assert snapshot(x, y, *tree.leaves(net)) == before


def test_value_and_grad_is_deterministic(client):
    """The same inputs give the same bits (shards are combined in a fixed order)."""
    x, y = jobs.toy_data(40)
    net = fnn.init([fnn.Dense(5), fnn.Tanh(), fnn.Dense(3)], (4,), key=1, dtype=np.float64)
    shards = fd.shard(client, x, y, k=5)
    first = fd.value_and_grad(client, net, shards, CE)
    for _ in range(2):
        again = fd.value_and_grad(client, net, shards, CE)
        assert again[0] == first[0] and bits(again[1]) == bits(first[1])


def test_twenty_steps_equal_one_process_training(client):
    """20 data-parallel Adam steps on 3 shards give the network, optimizer state and losses of
    20 full-batch steps in one process (float64, round-off only)."""
    x, y = jobs.toy_data(45)
    net = fnn.init([fnn.Dense(6), fnn.Tanh(), fnn.LayerNorm(), fnn.Dense(3)], (4,), key=2,
                   dtype=np.float64)
    opt = fnn.optim.adam(0.05)
    shards = fd.shard(client, x, y, k=3)
    net_d, state_d, net_1, state_1 = net, None, net, opt.init(net)
    for _ in range(20):
        net_d, state_d, loss_d = fd.step(client, net_d, opt, state_d, shards, CE)
        loss_1, grads, new = fnn.value_and_grad(net_1, x, y, CE, with_state=True)
        net_1, state_1 = opt.update(grads, state_1, new)
        assert loss_d == pytest.approx(loss_1, rel=1e-12)
    assert close(net_d, net_1, rtol=1e-12) and close(state_d, state_1, rtol=1e-12)
    assert readonly(net_d) and readonly(state_d)
    assert loss_d < 0.9 * fnn.loss(net, x, y, CE)


def test_fit_exact_equals_fnn_fit(client):
    """fit(mode="exact") draws fnn.fit's batches (a short last batch included) and gives its
    network, optimizer state and history (loss, metrics, validation, lr) to round-off."""
    x, y = jobs.toy_data(50)
    xv, yv = jobs.toy_data(20)
    net = fnn.init([fnn.Dense(8), fnn.ReLU(), fnn.LayerNorm(), fnn.Dense(3)], (4,), key=4,
                   dtype=np.float64)
    opt = fnn.optim.sgd(0.2, momentum=0.9)
    kw = dict(epochs=3, key=7, batch_size=16, validation=(xv, yv),
              metrics=[fnn.metrics.accuracy])
    before = snapshot(x, y, xv, yv, *tree.leaves(net))
    net_d, state_d, hist_d = fd.fit(client, net, opt, CE, (x, y), mode="exact", k=3, **kw)
    net_1, state_1, hist_1 = fnn.fit(net, opt, CE, (x, y), progress=False, **kw)
    assert close(net_d, net_1, rtol=1e-12) and close(state_d, state_1, rtol=1e-12)
    assert readonly(net_d) and readonly(state_d)
    assert hist_d.epochs == hist_1.epochs == (0, 1, 2)
    assert set(hist_d.logs) == set(hist_1.logs)
    for name in hist_1.logs:
        np.testing.assert_allclose(hist_d[name], hist_1[name], rtol=1e-12, err_msg=name)
    assert snapshot(x, y, xv, yv, *tree.leaves(net)) == before


def test_fit_resumes_like_one_run(client):
    """Two exact epochs then one resumed (start_epoch=2, the returned state) equal three epochs."""
    x, y = jobs.toy_data(30)
    net = fnn.init([fnn.Dense(4), fnn.Tanh(), fnn.Dense(3)], (4,), key=5, dtype=np.float64)
    opt = fnn.optim.adam(0.01)
    full = fd.fit(client, net, opt, CE, (x, y), epochs=3, key=1, batch_size=8)
    part = fd.fit(client, net, opt, CE, (x, y), epochs=2, key=1, batch_size=8)
    rest = fd.fit(client, part[0], opt, CE, (x, y), epochs=1, key=1, batch_size=8,
                  opt_state=part[1], start_epoch=2)
    assert bits(rest[0]) == bits(full[0]) and rest[2].loss == full[2].loss[2:]


def test_fit_sharded_full_batch_equals_fnn_fit(client):
    """Sharded mode with one step per epoch (batch_size >= rows) uses every row of every shard
    each step: its training equals fnn.fit with one full batch, to round-off."""
    x, y = jobs.toy_data(37)
    net = fnn.init([fnn.Dense(5), fnn.Tanh(), fnn.Dense(3)], (4,), key=6, dtype=np.float64)
    opt = fnn.optim.adam(0.05)
    net_d, _, hist_d = fd.fit(client, net, opt, CE, (x, y), mode="sharded", k=3, epochs=4,
                              key=2, batch_size=64)
    net_1, _, hist_1 = fnn.fit(net, opt, CE, (x, y), epochs=4, key=2, batch_size=64,
                               progress=False)
    assert close(net_d, net_1, rtol=1e-12)
    np.testing.assert_allclose(hist_d.loss, hist_1.loss, rtol=1e-12)


def test_fit_sharded_trains_and_is_reproducible(client):
    """Sharded mode on data left on the workers lowers the loss, uses ceil(N/B) steps per epoch
    and gives the same bits for the same key."""
    x, y = jobs.toy_data(60)
    shards = fd.shard(client, x, y, k=2)
    net = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(3)], (4,), key=8, dtype=np.float64)
    opt = fnn.optim.adam(0.02)
    a = fd.fit(client, net, opt, CE, shards, mode="sharded", epochs=4, key=3, batch_size=16,
               validation=(x, y), metrics=[fnn.metrics.accuracy])
    b = fd.fit(client, net, opt, CE, shards, mode="sharded", epochs=4, key=3, batch_size=16)
    assert bits(a[0]) == bits(b[0]) and a[2].loss == b[2].loss
    assert int(a[1].count) == 4 * 4
    assert a[2].loss[-1] < a[2].loss[0] and "val_accuracy" in a[2].logs


@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6), data=st.data())
def test_sharded_slices_use_every_row_once_and_balance_the_steps(sizes, data):
    """In sharded mode each shard's slices cover its rows exactly once per epoch, and every
    step gets floor(N/S) or ceil(N/S) rows in total (none empty), for any shard sizes."""
    n = sum(sizes)
    steps = data.draw(st.integers(1, n))
    per_shard = [slice_sizes(m, steps, sum(sizes[:i])) for i, m in enumerate(sizes)]
    assert [sum(p) for p in per_shard] == sizes
    totals = [sum(p[s] for p in per_shard) for s in range(steps)]
    assert set(totals) <= {n // steps, -(-n // steps)}


# ---------------------------------------------------------------------------
# The documented differences: BatchNorm and dropout.


def test_batchnorm_per_shard_statistics_as_documented(client):
    """With BatchNorm, each shard normalises with its own statistics: the result differs from one
    process and equals the size-weighted combination of per-shard computations. The kept
    running_mean equals one process's; running_var is the pooled within-shard variance."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 3)) + np.arange(12)[:, None] / 4  # shard means differ
    y = rng.normal(size=(12, 2))
    net = fnn.init([fnn.Dense(4), fnn.BatchNorm(momentum=0.5), fnn.Dense(2)], (3,), key=0,
                   dtype=np.float64)
    shards = fd.shard(client, x, y, k=2)
    loss, grads, new = fd.value_and_grad(client, net, shards, fnn.losses.mse, with_state=True)
    loss1, grads1, new1 = fnn.value_and_grad(net, x, y, fnn.losses.mse, with_state=True)
    assert loss != pytest.approx(loss1, rel=1e-6) and not close(grads, grads1, rtol=1e-6)
    parts = [fnn.value_and_grad(net, xb, yb, fnn.losses.mse, with_state=True)
             for xb, yb in zip(np.array_split(x, 2), np.array_split(y, 2), strict=True)]
    assert loss == pytest.approx(0.5 * parts[0][0] + 0.5 * parts[1][0], rel=1e-12)
    assert close(grads, tree.map(lambda a, b: 0.5 * a + 0.5 * b, parts[0][1], parts[1][1]))
    bn, bn1 = new.layers[1], new1.layers[1]
    np.testing.assert_allclose(bn.running_mean, bn1.running_mean, rtol=1e-12)
    h = [fnn.forward(fnn.Network(net.layers[:1], (3,), np.float64), xb)
         for xb in np.array_split(x, 2)]
    pooled = 0.5 * h[0].var(axis=0) + 0.5 * h[1].var(axis=0)
    np.testing.assert_allclose(bn.running_var, 0.5 * net.layers[1].running_var + 0.5 * pooled,
                               rtol=1e-12)
    assert (bn.running_var < bn1.running_var).all()
    assert readonly(new)
    one = fd.value_and_grad(client, net, fd.shard(client, x, y, k=1), fnn.losses.mse,
                            with_state=True)
    assert close(one[1], grads1) and close(one[2], new1)


def test_dropout_masks_come_from_per_shard_keys(client):
    """With dropout, shard i uses fold_in(key, i): the result equals the combination of per-shard
    runs with those keys, differs from one process with `key`, and repeats bit for bit."""
    x, y = jobs.toy_data(20)
    net = fnn.init([fnn.Dense(16), fnn.Dropout(0.5), fnn.Dense(3)], (4,), key=0,
                   dtype=np.float64)
    shards = fd.shard(client, x, y, k=2)
    loss, grads = fd.value_and_grad(client, net, shards, CE, key=9)
    parts = [fnn.value_and_grad(net, xb, yb, CE, key=fold_in(fnn.random.key(9), i))
             for i, (xb, yb) in enumerate(zip(np.array_split(x, 2), np.array_split(y, 2),
                                              strict=True))]
    assert loss == pytest.approx(0.5 * parts[0][0] + 0.5 * parts[1][0], rel=1e-12)
    assert close(grads, tree.map(lambda a, b: 0.5 * a + 0.5 * b, parts[0][1], parts[1][1]))
    assert loss != pytest.approx(fnn.value_and_grad(net, x, y, CE, key=9)[0], rel=1e-6)
    assert fd.value_and_grad(client, net, shards, CE, key=9)[0] == loss


# ---------------------------------------------------------------------------
# Sweeps.

CONFIGS = [{"lr": lr, "width": w} for lr in (0.05, 0.2) for w in (3, 8)] + [{"lr": 0.1, "width": 5}]


def sequential(configs, train_fn, key):
    with fnn.threads(1):
        return [train_fn(c, fold_in(fnn.random.key(key), i)) for i, c in enumerate(configs)]


@pytest.mark.parametrize("executor", ["dask", "processes"])
def test_sweep_equals_sequential_loop_in_order(executor, request):
    """A sweep's results equal the sequential loop bit for bit (config i gets fold_in(key, i)),
    come in config order, report each run once as it finishes, and the networks gathered from
    the workers are read-only."""
    ex = request.getfixturevalue("client" if executor == "dask" else "pool")
    seen: list[int] = []
    trials = fd.sweep(ex, CONFIGS, jobs.train_small, key=11, progress=lambda t: seen.append(t.index))
    expected = sequential(CONFIGS, jobs.train_small, 11)
    assert sorted(seen) == list(range(len(CONFIGS)))
    assert [t.index for t in trials] == list(range(len(CONFIGS)))
    assert [t.config for t in trials] == CONFIGS
    for t, (loss, net) in zip(trials, expected, strict=True):
        assert t.ok and t.key == fold_in(fnn.random.key(11), t.index) and t.seconds >= 0
        assert t.value[0] == loss and bits(t.value[1]) == bits(net)
        assert readonly(t.value[1])


def test_sweep_progress_prints_a_line_per_run(pool, capsys):
    """progress=True prints one line per finished run naming the config."""
    fd.sweep(pool, [0, 2, 4], jobs.fail_on_odd, key=0)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all("fnn.distributed.sweep" in line and "ok" in line for line in out)
    assert {f"configs[{i}]" for i in range(3)} == {line.split()[3] for line in out}


def test_workers_blas_is_pinned_to_one_thread(client, pool):
    """Dask's workers run BLAS with one thread, and so does every sweep run (blas_threads=1)."""
    assert all(v and set(v) == {1} for v in client.run(jobs.worker_blas_threads).values())
    for ex in (client, pool):
        trials = fd.sweep(ex, [0, 1], jobs.blas_threads, key=0, progress=False)
        assert all(t.value and set(t.value) == {1} for t in trials)


@pytest.mark.parametrize("executor", ["dask", "processes", "threads"])
def test_a_failing_config_is_named_and_the_others_kept(executor, request):
    """A train_fn raising on some configs: SweepError names each failing index and its error,
    and its trials keep every result in order; errors='return' returns them without raising."""
    if executor == "threads":
        ex = ThreadPoolExecutor(2)
    else:
        ex = request.getfixturevalue("client" if executor == "dask" else "pool")
    configs = [0, 1, 2, 3, 4]
    with pytest.raises(fd.SweepError, match=r"2 of 5 configs failed.*configs\[1\] = 1: "
                                            r"ValueError: odd config 1.*configs\[3\]") as info:
        fd.sweep(ex, configs, jobs.fail_on_odd, key=0, progress=False)
    trials = info.value.trials
    assert [t.value for t in trials] == [0, None, 4, None, 16]
    assert [t.ok for t in trials] == [True, False, True, False, True]
    assert "odd config 3" in trials[3].traceback
    again = fd.sweep(ex, configs, jobs.fail_on_odd, key=0, progress=False, errors="return")
    assert [(t.value, t.error) for t in again] == [(t.value, t.error) for t in trials]
    if executor == "threads":
        ex.shutdown()


def test_unpicklable_config_or_train_fn_is_refused_before_running(client, pool):
    """A config or train_fn that cannot be pickled for a worker process is a TypeError naming
    it, raised before anything runs."""
    lock = threading.Lock()
    for ex in (client, pool):
        with pytest.raises(TypeError, match=r"configs\[1\] cannot be pickled"):
            fd.sweep(ex, [1, lock, 3], jobs.fail_on_odd, key=0, progress=False)
    with pytest.raises(TypeError, match=r"train_fn cannot be pickled.*module level"):
        fd.sweep(pool, [1], lambda c, k: c, key=0, progress=False)
    # A thread pool copies nothing: the same config is fine there.
    with ThreadPoolExecutor(1) as threads:
        trials = fd.sweep(threads, [lock], lambda c, k: type(c).__name__, key=0, progress=False)
    assert trials[0].value == "lock"


def test_a_killed_process_pool_worker_is_reported(tmp_path):
    """Killing a process of a ProcessPoolExecutor mid-sweep breaks the pool: the lost runs are
    reported (named, as failures), the finished ones kept; no result goes missing."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        with pytest.raises(fd.SweepError, match=r"configs\[1\] = 'die'.*lost") as info:
            fd.sweep(ex, ["a", "die", "b"], jobs.die_always, key=0, progress=False)
    trials = info.value.trials
    assert [t.index for t in trials] == [0, 1, 2] and not trials[1].ok
    for t in trials:
        assert t.value == t.config if t.ok else "lost" in t.error


def test_a_dask_run_that_kills_every_worker_is_reported(client):
    """A config whose run kills each worker it lands on: after the scheduler's allowed retries it
    is reported as lost (KilledWorker), naming the config; the other results are kept."""
    trials = fd.sweep(client, ["a", "die", "b"], jobs.die_always, key=0, progress=False,
                      errors="return")
    assert [t.value for t in trials] == ["a", None, "b"]
    assert "KilledWorker" in trials[1].error and "lost" in trials[1].error
    client.wait_for_workers(2, timeout=60)


def test_a_killed_dask_worker_is_retried(client, tmp_path):
    """A Dask worker process killed mid-run: the scheduler runs the task again on a live
    worker, and every result comes back, in order."""
    marker = str(tmp_path / "died")
    configs = [("ok", marker), ("die", marker), ("ok", marker), ("ok", marker)]
    trials = fd.sweep(client, configs, jobs.die_once, key=0, progress=False)
    assert (tmp_path / "died").exists()  # the worker really died once
    assert [t.value for t in trials] == ["ok", "die", "ok", "ok"]
    client.wait_for_workers(2, timeout=60)


def test_sweep_fashion_example_toy_run(client, capsys):
    """examples/sweep_fashion.py in toy mode: a 2 x 2 grid on the cluster prints the accuracy
    table and both wall times, and the sweep equals the sequential run bit for bit."""
    out = load_example("sweep_fashion").main(lrs=(1e-3, 1e-2), widths=(8, 16), n_train=300,
                                             epochs=2, toy=True, client=client)
    assert out["identical"] and len(out["sweep"]) == 4
    assert all(0.0 <= a <= 1.0 for a in out["sweep"])
    text = capsys.readouterr().out
    assert "lr \\ width" in text and "sequential" in text and "bit for bit: True" in text


def test_runs_lost_to_client_restart_are_reported(client):
    """client.restart() mid-sweep cancels the runs in flight: each is reported as lost (named,
    never missing) and the run that had finished is kept."""

    def restart_after_first(trial):
        if trial.index == 0:
            client.restart()

    trials = fd.sweep(client, [0.0, 30.0, 30.0], jobs.sleep_then, key=0, errors="return",
                      progress=restart_after_first)
    assert trials[0].ok and trials[0].value == 0.0
    assert [t.ok for t in trials[1:]] == [False, False]
    assert all("lost" in t.error for t in trials[1:])
    client.wait_for_workers(2, timeout=60)


# ---------------------------------------------------------------------------
# Bad input.


def test_no_workers_is_a_value_error():
    """A cluster without workers: shard and sweep say so instead of waiting forever."""
    d = pytest.importorskip("distributed")
    x, y = jobs.toy_data(4)
    with d.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, \
            d.Client(cluster) as c:
        with pytest.raises(ValueError, match="no workers"):
            fd.shard(c, x, y)
        with pytest.raises(ValueError, match="no workers"):
            fd.sweep(c, [1], jobs.fail_on_odd, key=0)


def test_bad_shards_are_refused(client):
    """More shards than rows, x/y lengths that differ, pre-split parts of different dtypes or
    row shapes (arrays or futures), and a network that does not fit the rows: a clear error."""
    x, y = jobs.toy_data(5)
    with pytest.raises(ValueError, match="6 shards but only 5 rows"):
        fd.shard(client, x, y, k=6)
    with pytest.raises(ValueError, match="x has 5 rows but y has 4"):
        fd.shard(client, x, y[:4])
    with pytest.raises(TypeError, match="k must be an int"):
        fd.shard(client, x, y, k=2.0)
    with pytest.raises(ValueError, match=r"different dtypes.*shard 1 is float32"):
        fd.shard(client, [x[:2], x[2:].astype(np.float32)], [y[:2], y[2:]])
    xf = client.scatter([x[:2], x[2:].astype(np.float32)])
    with pytest.raises(ValueError, match="different dtypes"):
        fd.shard(client, xf, [y[:2], y[2:]])
    with pytest.raises(ValueError, match="different row shapes"):
        fd.shard(client, [x[:2], x[2:, :3]], [y[:2], y[2:]])
    with pytest.raises(ValueError, match="shard 1 has 3 rows of x but 2 of y"):
        fd.shard(client, [x[:2], x[2:]], [y[:2], y[2:4]])
    with pytest.raises(TypeError, match="not a NumPy array"):
        fd.shard(client, client.scatter([[1.0], [2.0]]), [y[:1], y[1:2]])
    parts = fd.shard(client, [x[:2], x[2:]], [y[:2], y[2:]])
    assert parts.sizes == (2, 3) and parts.x_row == ((4,), np.dtype(np.float64))
    net = fnn.init([fnn.Dense(3)], (3,), key=0)
    with pytest.raises(ValueError, match=r"rows of shape \(4,\) but the network takes \(3,\)"):
        fd.value_and_grad(client, net, parts, CE)


def test_bad_arguments_name_the_function(client):
    """Wrong kinds of client, net, loss, shards, mode or data raise errors naming the function."""
    x, y = jobs.toy_data(8)
    net = fnn.init([fnn.Dense(3)], (4,), key=0, dtype=np.float64)
    shards = fd.shard(client, x, y)
    opt = fnn.optim.sgd(0.1)
    cases = [
        (lambda: fd.shard("tcp://x", x, y), TypeError, "shard: client must be a dask"),
        (lambda: fd.value_and_grad(client, "net", shards, CE), TypeError, "net must be"),
        (lambda: fd.value_and_grad(client, net, shards, "mse"), TypeError, "loss_fn must be"),
        (lambda: fd.value_and_grad(client, net, (x, y), CE), TypeError, "shards must come"),
        (lambda: fd.step(client, net, "sgd", None, shards, CE), TypeError, "opt must be"),
        (lambda: fd.fit(client, net, opt, CE, (x, y), epochs=1, key=0, mode="fast"),
         ValueError, "mode must be"),
        (lambda: fd.fit(client, net, opt, CE, shards, epochs=1, key=0, mode="exact"),
         TypeError, "mode='exact'.*needs data"),
        (lambda: fd.fit(client, net, opt, CE, (x, y), epochs=-1, key=0), ValueError, "epochs"),
        (lambda: fd.fit(client, net, opt, CE, (x, y[:3]), epochs=1, key=0), ValueError, "rows"),
        (lambda: fd.fit(client, net, opt, CE, (x, y), epochs=1, key=0, metrics="accuracy"),
         TypeError, "metrics must be"),
        (lambda: fd.sweep(object(), [1], jobs.fail_on_odd, key=0), TypeError, "executor must"),
        (lambda: fd.sweep(client, 3, jobs.fail_on_odd, key=0), TypeError, "configs must"),
        (lambda: fd.sweep(client, [1], "fn", key=0), TypeError, "train_fn must"),
        (lambda: fd.sweep(client, [1], jobs.fail_on_odd, key=0, errors="ignore"), ValueError,
         "errors must"),
    ]
    for call, kind, pattern in cases:
        with pytest.raises(kind, match=pattern):
            call()


def test_a_worker_side_error_keeps_its_type(client):
    """A bad target found on a worker comes back as the loss's own ValueError."""
    x, y = jobs.toy_data(8)
    net = fnn.init([fnn.Dense(3)], (4,), key=0, dtype=np.float64)
    shards = fd.shard(client, x, y.astype(np.float64)[:, None])
    with pytest.raises(ValueError, match="sparse_softmax_cross_entropy"):
        fd.value_and_grad(client, net, shards, CE)


def test_missing_extra_is_an_import_error_naming_it(monkeypatch):
    """Without the distributed package every cluster function says how to install the extra;
    fnn.distributed itself imports fine."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    x, y = jobs.toy_data(4)
    with pytest.raises(ImportError, match=r'pip install "fnn\[dask\]"'):
        fd.shard(object(), x, y)
    with pytest.raises(TypeError, match="executor must be"):
        fd.sweep(object(), [1], jobs.fail_on_odd, key=0)


def test_trial_and_shards_pickle():
    """A Trial (the result a sweep hands back) pickles; its value keeps read-only arrays."""
    net = fnn.init([fnn.Dense(2)], (3,), key=0)
    t = fd.Trial(0, {"lr": 0.1}, fnn.random.key(0), value=net)
    back = pickle.loads(pickle.dumps(t, protocol=4))
    assert back.ok and back.config == {"lr": 0.1} and readonly(back.value)
