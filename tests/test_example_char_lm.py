"""examples/char_lm.py: the table of next-character models, and sampling with an explicit key.

Skipped when the system word list (Debian's ``wamerican``) is not installed.
"""

import math
import re

import numpy as np
import pytest

from fnn.datasets.text import WORDS_PATH
from tests.conftest import load_example

pytestmark = pytest.mark.skipif(
    not WORDS_PATH.is_file(), reason=f"{WORDS_PATH} missing: apt-get install wamerican"
)

NAMES = ("bigram counts", "MLP", "LSTM", "transformer")


@pytest.fixture(scope="module")
def toy_run():
    """One run of the example at toy size (a few hundred words, tiny models), and its output."""
    import contextlib
    import io

    example = load_example("char_lm")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run = example.main(["--toy"])
    return example, run, out.getvalue()


def test_toy_run_prints_one_row_per_model(toy_run):
    """The printed table has its header and one row per model (bigram, MLP, LSTM, transformer),
    in that order, each with a parameter count, a finite validation loss below uniform guessing
    plus a margin and a training time; the best model's 10 sampled words follow."""
    example, run, out = toy_run
    results = run["results"]
    assert len(results) == len(NAMES)
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model"))
    assert lines[header].split() == ["model", "params", "val", "nats/char", "train", "s"]
    rows = lines[header + 1 : header + 1 + len(results)]
    for row, r, name in zip(rows, results, NAMES, strict=True):
        assert row.startswith(name) and r.name.startswith(name)
        numbers = re.findall(r"[\d,]+\.?\d*", row[34:])
        assert int(numbers[0].replace(",", "")) == r.params > 0
        assert float(numbers[1]) == pytest.approx(r.val_loss, abs=1e-4)
        assert math.isfinite(r.val_loss) and 0 < r.val_loss < 2 * math.log(27)
        assert r.seconds >= 0
    assert run["best"] is min(results, key=lambda r: r.val_loss)
    assert f"key={example.SAMPLE_KEY}" in out and " ".join(run["words"]) in out
    assert len(run["words"]) == 10
    assert all(re.fullmatch("[a-z]*", w) and len(w) < run["length"] for w in run["words"])


def test_every_model_is_scored_on_the_same_positions(toy_run):
    """The fixed-context data and the masked sequences hold the same predictions: each
    validation word's letters and its end, in the same order (so the nats/char compare)."""
    example, run, _ = toy_run
    vocab, cfg = run["vocab"], run["cfg"]
    val = example.load(cfg)[2]
    _, yw = vocab.windows(val, cfg.context)
    _, y, mask = vocab.sequences(val, run["length"])
    assert yw.shape == (int(mask.sum()),) == (sum(len(w) + 1 for w in val),)
    np.testing.assert_array_equal(yw, y[mask])


@pytest.mark.parametrize("model", range(4))
def test_sampling_is_deterministic_given_the_key(toy_run, model):
    """For every model of the table: the same key gives the same 10 words, another key other
    words; sampling does not change the model."""
    example, run, _ = toy_run
    result = run["results"][model]
    probs = example.next_probs(result, run["kinds"][result.name], run["cfg"].context)
    first = example.sample(probs, run["vocab"], run["length"], key=123)
    assert example.sample(probs, run["vocab"], run["length"], key=123) == first
    assert example.sample(probs, run["vocab"], run["length"], key=124) != first
    if result is run["best"]:
        assert example.sample(probs, run["vocab"], run["length"],
                              key=example.SAMPLE_KEY) == run["words"]


def test_sequence_model_probabilities_are_causal(toy_run):
    """The sampler reads the prediction at step t from the ids up to t: changing later ids
    leaves the next-id probabilities of the LSTM and the transformer unchanged."""
    example, run, _ = toy_run
    rng = np.random.default_rng(0)
    ids = rng.integers(0, run["vocab"].size, (3, run["length"]))
    later = ids.copy()
    later[:, 4:] = rng.integers(0, run["vocab"].size, (3, run["length"] - 4))
    for result in run["results"][2:]:
        probs = example.next_probs(result, "sequence", run["cfg"].context)
        np.testing.assert_allclose(probs(ids, 3), probs(later, 3), rtol=1e-5)
        np.testing.assert_allclose(probs(ids, 3).sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_full_size_every_neural_model_beats_the_bigram(capsys):
    """At full size (about 10-15 minutes on one thread) the MLP, the LSTM and the transformer
    each reach a lower validation loss than the bigram counts."""
    run = load_example("char_lm").main([])
    bigram, *neural = run["results"]
    assert all(r.val_loss < bigram.val_loss for r in neural), [r.val_loss for r in run["results"]]
