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


def test_history_json_loads():
    """A 0.1.0 history.json (as ``fnn train`` writes it) becomes the same History."""
    d = json.loads((GOLDEN / "history.json").read_text())
    h = fnn.History.from_dict(d)
    assert h.epochs == (0, 1)
    assert h.loss == tuple(d["logs"]["loss"])
    assert h["val_accuracy"] == tuple(d["logs"]["val_accuracy"])
    assert h.to_dict() == d
