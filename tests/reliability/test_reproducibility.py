"""Same key, same data, same bits: across processes and across a checkpoint.

The training job (``JOB`` below) is one source text, run both in this process
and in fresh ``python -c`` processes: a network with dropout (random in
training) and batch norm (state), Adam with a cosine learning-rate schedule,
shuffled mini-batches. Promises checked, bit for bit (array bytes, dtypes,
shapes):

- two processes given the same key produce the same parameters and optimizer
  state, equal to this process's;
- N epochs, a checkpoint (network, optimizer state, epoch, key) written with
  ``fnn.save``, then M more epochs in a NEW process from that checkpoint, equal
  N + M epochs without a break;
- the same holds in-process for other optimizers and schedules.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fnn
from fnn import optim

REPO = Path(__file__).resolve().parents[2]
N, M = 2, 2

JOB = """
import sys
import numpy as np
import fnn
from fnn import optim

KEY = fnn.random.key(2024)


def data():
    kx, ky = fnn.random.split(fnn.random.key(7))
    x = fnn.random.normal(kx, (48, 4), np.float32)
    y = fnn.random.generator(ky).integers(0, 3, 48)
    return x, y


def network():
    layers = [fnn.Dense(8), fnn.layers.BatchNorm(), fnn.ReLU(), fnn.layers.Dropout(0.3), fnn.Dense(3)]
    return fnn.init(layers, (4,), key=KEY)


def optimizer():
    return optim.adam(optim.cosine_decay(2e-2, total_steps=24, warmup_steps=3))


def train(net, opt, epochs, *, opt_state=None, start_epoch=0, key=KEY):
    x, y = data()
    net, state, _ = fnn.fit(net, opt, fnn.losses.sparse_softmax_cross_entropy, (x, y),
                            epochs=epochs, key=key, batch_size=10, opt_state=opt_state,
                            start_epoch=start_epoch, progress=False, train_metrics=False)
    return net, state


def main(mode, out, ckpt=None):
    if mode == "full":
        net, state = train(network(), optimizer(), N + M)
    elif mode == "first":
        net, state = train(network(), optimizer(), N)
        fnn.save(out, {"net": net, "opt_state": state, "epoch": N, "key": KEY})
        return
    else:  # resume from a checkpoint written by another process
        ck = fnn.load(ckpt)
        net, state = train(ck["net"], optimizer(), M, opt_state=ck["opt_state"],
                           start_epoch=ck["epoch"], key=ck["key"])
    fnn.save(out, {"net": net, "opt_state": state})


if __name__ == "__main__":
    main(*sys.argv[1:])
"""


def job_namespace() -> dict:
    ns: dict = {"__name__": "job", "N": N, "M": M}
    exec(compile(JOB, "<job>", "exec"), ns)
    return ns


def start(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    code = f"N, M = {N}, {M}\n" + JOB
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


def assert_bit_identical(a, b) -> None:
    """Same structure, and every leaf has the same dtype, shape and bytes."""
    fnn.tree.check_same_structure(a, b)
    for (path, x), (_, y) in zip(fnn.tree.leaves_with_path(a), fnn.tree.leaves_with_path(b),
                                 strict=True):
        assert (x.dtype, x.shape) == (y.dtype, y.shape), path
        assert x.tobytes() == y.tobytes(), f"{path} differs"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three fresh processes at once (two full runs, one first half), then the resumption."""
    d = tmp_path_factory.mktemp("repro")
    procs = [start("full", d / "full_a.npz"), start("full", d / "full_b.npz"),
             start("first", d / "ckpt.npz")]
    for p in procs:
        finish(p)
    finish(start("resume", d / "resumed.npz", d / "ckpt.npz"))
    return {name: fnn.load(d / f"{name}.npz") for name in ("full_a", "full_b", "resumed", "ckpt")}


@pytest.fixture(scope="module")
def in_process():
    job = job_namespace()
    net, state = job["train"](job["network"](), job["optimizer"](), N + M)
    return {"net": net, "opt_state": state}


def test_job_is_nontrivial(runs, in_process):
    """The job really trains, draws dropout masks and updates batch-norm statistics, so
    equality below is not equality of untouched values."""
    job = job_namespace()
    start_net = job["network"]()
    trained = runs["full_a"]["net"]
    assert not fnn.tree.allclose(trained.layers[0].w, start_net.layers[0].w)
    assert not fnn.tree.allclose(trained.layers[1].running_mean, start_net.layers[1].running_mean)
    assert int(runs["full_a"]["opt_state"].count) == (N + M) * 5  # 48 examples, batches of 10
    x, _ = job["data"]()
    k1, k2 = fnn.random.split(fnn.random.key(0))
    a = fnn.forward(trained, x, key=k1, training=True)
    b = fnn.forward(trained, x, key=k2, training=True)
    assert not np.array_equal(a, b)  # dropout is live in training mode


def test_same_key_same_bits_across_processes(runs, in_process):
    """Two processes and this one, same key and data: bit-identical parameters and
    optimizer state."""
    assert_bit_identical(runs["full_a"], runs["full_b"])
    assert_bit_identical(runs["full_a"], in_process)


def test_resume_in_a_new_process_equals_the_uninterrupted_run(runs, in_process):
    """N epochs, a checkpoint with fnn.save, M more epochs in a new process: the same bits as
    N + M epochs at once (network, Adam moments and step count, schedule position)."""
    assert runs["ckpt"]["epoch"] == N
    assert_bit_identical(runs["resumed"], runs["full_a"])
    assert_bit_identical(runs["resumed"], in_process)


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda: optim.sgd(optim.step_decay(0.1, step_size=4, factor=0.5), momentum=0.9, nesterov=True),
        lambda: optim.adamw(optim.exponential_decay(1e-2, 0.9, 3), weight_decay=0.05),
        lambda: optim.chain(optim.clip_by_global_norm(0.5), optim.rmsprop(optim.cosine_decay(1e-2, 20))),
    ],
    ids=["sgd-nesterov-step_decay", "adamw-exponential_decay", "clip-rmsprop-cosine"],
)
def test_resume_in_process_equals_uninterrupted(tmp_path, make_opt):
    """For other optimizers and schedules too, a checkpoint round trip through fnn.save
    between epoch N and N + 1 changes nothing."""
    job = job_namespace()
    net0 = job["network"]()
    full = job["train"](net0, make_opt(), N + M)
    net, state = job["train"](net0, make_opt(), N)
    path = fnn.save(tmp_path / "ck", {"net": net, "opt_state": state, "epoch": N})
    ck = fnn.load(path)
    resumed = job["train"](ck["net"], make_opt(), M, opt_state=ck["opt_state"], start_epoch=N)
    assert_bit_identical(resumed, full)


def test_different_keys_give_different_runs():
    """The key matters: another key gives other parameters (so the equalities above are not
    vacuous)."""
    job = job_namespace()
    a = job["train"](job["network"](), job["optimizer"](), 1)
    b = job["train"](job["network"](), job["optimizer"](), 1, key=fnn.random.key(2025))
    assert a[0].layers[0].w.tobytes() != b[0].layers[0].w.tobytes()
