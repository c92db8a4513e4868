"""fnn._buffers: large arrays come from recycled blocks, reused only when nothing refers to them."""

import os
import threading

import numpy as np
import pytest

import fnn
from fnn import _buffers
from tests.forking import in_fork

pytestmark = pytest.mark.skipif(not _buffers._POOLING, reason="no exact reference counts here")

MIB = 1 << 20


def test_small_arrays_are_plain_numpy():
    a = _buffers.empty((10, 10), np.float32)
    assert a.base is None and a.shape == (10, 10) and a.dtype == np.float32


DERIVED = {
    "slice, transposed": lambda a: a[1:].T,
    "flat view as int32": lambda a: a.reshape(-1)[5:].view(np.int32),
    "view of a view": lambda a: a[::2][1:],
    "memoryview": memoryview,
}


@pytest.mark.parametrize("shape", [(70_000,), (3, 1000, 1000), (128, 26, 26, 16)])
@pytest.mark.parametrize("derive", DERIVED.values(), ids=DERIVED.keys())
def test_a_block_is_reused_only_after_every_view_of_it_is_gone(shape, derive):
    """While an array derived from a buffer lives (a slice, a transpose, a view of a view,
    a memoryview), no new buffer shares its memory and its values stay; once it is gone,
    the next request of that size gets the same block back (which is the point: no fresh
    pages)."""
    first = _buffers.empty(shape, np.float32)
    first[...] = 7.0
    kept, address = derive(first), first.ctypes.data
    del first
    other = _buffers.empty(shape, np.float32)
    other[...] = -1.0
    assert not np.shares_memory(np.asarray(kept), other)
    assert np.all(np.asarray(kept).view(np.float32) == 7.0)
    del other, kept
    assert _buffers.empty(shape, np.float32).ctypes.data == address


def test_large_arrays_start_on_a_huge_page():
    a = _buffers.empty((3 * MIB,), np.uint8)
    assert a.ctypes.data % (2 * MIB) == 0


def test_the_pool_never_holds_more_than_its_limit(monkeypatch):
    """Beyond LIMIT bytes, blocks are ordinary arrays (freed as usual), not kept."""
    monkeypatch.setattr(_buffers, "LIMIT", _buffers.held_bytes() + 8 * MIB)
    held = [_buffers.empty((3 * MIB,), np.uint8) for _ in range(6)]
    assert _buffers.held_bytes() <= _buffers.LIMIT
    assert len({a.ctypes.data for a in held}) == 6  # all distinct, all usable
    for i, a in enumerate(held):
        a[:] = i
    assert [int(a[0]) for a in held] == list(range(6))


def test_threads_never_share_a_block():
    """Buffers taken concurrently by several threads are distinct while they live."""
    barrier, taken = threading.Barrier(4), []

    def take():
        mine = [_buffers.empty((300_000,), np.float32) for _ in range(5)]
        barrier.wait(timeout=10)
        taken.extend(mine)

    workers = [threading.Thread(target=take) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len({a.ctypes.data for a in taken}) == 20


def test_results_a_caller_keeps_survive_later_steps():
    """A training step's outputs held by the caller (activations, gradients) are never
    overwritten by later steps that recycle blocks."""
    net = fnn.init([fnn.Conv2D(16, 3), fnn.ReLU(), fnn.MaxPool2D(2), fnn.Flatten(),
                    fnn.Dense(3)], (28, 28, 1), key=0)
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 28, 28, 1), np.float32), rng.integers(0, 3, 64)
    loss = fnn.losses.sparse_softmax_cross_entropy
    acts = fnn.activations(net, x)
    _, grads = fnn.value_and_grad(net, x, y, loss)
    saved = [a.copy() for a in acts], [g.copy() for g in fnn.tree.leaves(grads)]
    for _ in range(3):
        fnn.value_and_grad(net, x * 2, y, loss)
        fnn.activations(net, x * 3)
    assert all(np.array_equal(a, b) for a, b in zip(acts, saved[0], strict=True))
    leaves = fnn.tree.leaves(grads)
    assert all(np.array_equal(a, b) for a, b in zip(leaves, saved[1], strict=True))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_can_take_buffers_while_a_parent_thread_held_the_lock():
    """Forked while another thread of the parent held the pool's lock, the child still gets
    buffers (it starts with a new lock) instead of waiting forever."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with _buffers._LOCK:
            held.set()
            release.wait(timeout=30)

    def child():
        a = _buffers.empty((300_000,), np.float32)
        a[:] = 2.0
        return str(float(a.sum())).encode()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(timeout=10)
    result = in_fork(child, after_fork=release.set)
    holder.join()
    if result is None:
        pytest.fail("the forked child waited forever for the pool's lock")
    assert result == b"600000.0"


def test_release_buffers_hands_back_free_blocks_only():
    """fnn.release_buffers drops the blocks no array uses (the held bytes fall by what it
    returns) and keeps a block a caller's array still uses, whose values stay; afterwards
    buffers are made and pooled again, and a second call has nothing to release."""
    fnn.release_buffers()
    kept = _buffers.empty((3 * MIB,), np.float32)
    kept[...] = 5.0
    for _ in range(3):
        _buffers.empty((MIB,), np.float32)  # freed at once: its block returns to the pool
    _buffers.empty((2 * MIB + 7,), np.uint8)
    before = _buffers.held_bytes()
    freed = fnn.release_buffers()
    assert freed >= 4 * MIB + 2 * MIB
    assert _buffers.held_bytes() == before - freed >= kept.nbytes
    assert (kept == 5.0).all()
    block = kept
    while block.base is not None:  # the pool's block under the array
        block = block.base
    held_ids = {id(b) for bucket in _buffers._POOL.values() for b in bucket}
    block_id = id(block)
    del block  # (a reference of its own would keep the block in use)
    assert block_id in held_ids
    assert fnn.release_buffers() == 0
    again = _buffers.empty((MIB,), np.float32)
    assert _buffers.held_bytes() > before - freed and again.base is not None
    del kept, again
    assert fnn.release_buffers() >= 3 * 4 * MIB
    assert block_id not in {id(b) for bucket in _buffers._POOL.values() for b in bucket}
