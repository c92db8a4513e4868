"""Files written by fnn 0.1.0 load bit for bit in this version (the format's promise, tested).

``tests/golden/v0.1.0`` was written once by ``tests/golden/make_golden.py`` at the
0.1.0 release; ``expected.npz`` holds the same arrays by path, saved with plain
NumPy, and the network's output on a fixed input.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import fnn

GOLDEN = Path(__file__).parent / "golden" / "v0.1.0"


@pytest.fixture(scope="module")
def expected():
    with np.load(GOLDEN / "expected.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _by_path(tree):
    return dict(fnn.tree.leaves_with_path(tree))


def _assert_bits(prefix, loaded, expected):
    want = {k[len(prefix) + 1 :]: v for k, v in expected.items() if k.startswith(prefix + "/")}
    got = _by_path(loaded)
    assert sorted(got) == sorted(want)
    for path, array in want.items():
        assert got[path].dtype == array.dtype, path
        assert np.array_equal(got[path], array), path
        assert not got[path].flags.writeable, path


def test_network_of_every_layer_kind_loads_bit_for_bit(expected):
    """Every parameter and state array of the 0.1.0 network comes back with the same bits."""
    back = fnn.load(GOLDEN / "network.npz")
    assert isinstance(back["net"], fnn.Network) and isinstance(back["pooled"], fnn.Network)
    _assert_bits("network", back["net"], expected)
    _assert_bits("pooled", back["pooled"], expected)
    kinds = {type(layer).__name__ for layer in back["net"].layers + back["pooled"].layers}
    assert len(kinds) == 18


def test_loaded_network_computes_what_0_1_0_computed(expected):
    """The loaded networks' outputs on the saved input match 0.1.0's to float round-off."""
    back = fnn.load(GOLDEN / "network.npz")
    x = expected["input"]
    np.testing.assert_allclose(fnn.forward(back["net"], x), expected["output"], rtol=1e-12)
    small = x[:, :5, :5, :1].astype(np.float32)
    np.testing.assert_allclose(
        fnn.forward(back["pooled"], small), expected["pooled_output"], rtol=1e-5
    )


def test_optimizer_states_load_bit_for_bit(expected):
    """0.1.0's Adam state (two updates) and momentum-SGD state load with the same bits."""
    back = fnn.load(GOLDEN / "opt_state.npz")
    _assert_bits("adam", back["adam"], expected)
    _assert_bits("sgd", back["sgd"], expected)


def _by_hand_adam_step(p, g, m, v, t, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    return p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps), m, v


def test_0_1_0_optimizer_states_resume_as_0_1_0_would(expected):
    """fnn.optim.adam(1e-2).update accepts the loaded 0.1.0 Adam state (two updates taken) and
    makes update 3 by the paper's formulas, computed here by hand; running statistics stay.
    The loaded momentum-SGD state (no update yet) takes its first step: b = g, θ − lr·b."""
    back = fnn.load(GOLDEN / "opt_state.npz")
    nets = fnn.load(GOLDEN / "network.npz")
    net, x = nets["net"], expected["input"]
    y = np.eye(3)[[0, 1, 2, 0]]
    _, g = fnn.value_and_grad(net, x, y, fnn.losses.mse, key=fnn.random.key(12))
    new, state = fnn.optim.adam(1e-2).update(g, back["adam"], net)
    assert int(state.count) == 3
    old_m, old_v = _by_path(back["adam"].slots["mu"]), _by_path(back["adam"].slots["nu"])
    grads, got, state_paths = _by_path(g), _by_path(new), fnn.tree.state_paths(net)
    got_m, got_v = _by_path(state.slots["mu"]), _by_path(state.slots["nu"])
    for path, p in fnn.tree.leaves_with_path(net):
        if path in state_paths:
            assert got[path] is p and np.array_equal(got_m[path], old_m[path]), path
            continue
        want, m, v = _by_hand_adam_step(p, grads[path], old_m[path], old_v[path], 3)
        np.testing.assert_allclose(got[path], want, rtol=1e-12, atol=1e-15, err_msg=path)
        np.testing.assert_allclose(got_m[path], m, rtol=1e-12, atol=1e-18, err_msg=path)
        np.testing.assert_allclose(got_v[path], v, rtol=1e-12, atol=1e-24, err_msg=path)

    pooled = nets["pooled"]
    xs = x[:, :5, :5, :1].astype(np.float32)
    gp = fnn.grad(pooled, xs, np.eye(2, dtype=np.float32)[[0, 1, 1, 0]], fnn.losses.mse)
    new_p, sgd_state = fnn.optim.sgd(0.1, momentum=0.9).update(gp, back["sgd"], pooled)
    assert int(sgd_state.count) == 1
    for (path, p), (_, gl), (_, q) in zip(fnn.tree.leaves_with_path(pooled),
                                          fnn.tree.leaves_with_path(gp),
                                          fnn.tree.leaves_with_path(new_p), strict=True):
        np.testing.assert_allclose(q, p - np.float32(0.1) * (np.float32(0.9) * 0 + gl), rtol=1e-6,
                                   err_msg=path)


def test_history_json_loads():
    """A 0.1.0 history.json (as ``fnn train`` writes it) becomes the same History."""
    d = json.loads((GOLDEN / "history.json").read_text())
    h = fnn.History.from_dict(d)
    assert h.epochs == (0, 1)
    assert h.loss == tuple(d["logs"]["loss"])
    assert h["val_accuracy"] == tuple(d["logs"]["val_accuracy"])
    assert h.to_dict() == d


def test_optimizer_configuration_is_refused_with_the_migration():
    """A 0.1.0 optimizer *configuration* (not its state) cannot be rebuilt by 0.2, whose
    optimizers are chains of gradient transformations: load says so and points to the fix."""
    with pytest.raises(ValueError, match=r"0\.1\.0 optimizer configuration.*migration"):
        fnn.load(GOLDEN / "optimizer.npz")
