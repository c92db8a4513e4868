"""Next-character language models on English words: bigram counts, an MLP, an LSTM, a transformer.

Data: ``fnn.datasets.words()``, Debian's word list (wamerican) lower-cased to
words of a-z, split by a hash of each word (58,626 training and 7,309
validation words). ``CharVocab`` maps the letters to ids 1-26 and uses id 0
(``.``) to start each context, end each word and pad (the mask marks the real
positions). Every model predicts, for each validation word, each of its letters
and then its end from the letters before; the table reports the mean
negative log-likelihood of those predictions in nats per character (the same
66,503 validation predictions for every model, from 532,805 training ones),
and each model's training wall time:

- bigram counts: the next letter's frequency after the previous one in the
  training words, add-one smoothed (computed exactly: counted, not trained);
- MLP (Bengio et al. 2003): embeddings of the previous 3 ids, concatenated,
  ``Dense(256)``, ``Tanh``, ``Dense(27)``;
- LSTM: ``Embedding(27, 64)``, ``LSTM(256)``, ``Dense(27)`` over whole words;
- transformer: ``Embedding(27, 64)``, ``PositionalEmbedding(23)``, two causal
  pre-norm blocks, each ``Residual([LayerNorm(), MultiHeadAttention(4,
  causal=True)])`` then ``Residual([LayerNorm(), Dense(256), GELU(),
  Dense(64)])``, a final ``LayerNorm()`` and ``Dense(27)``.

The neural models are trained with ``fnn.fit`` (Adam, cross-entropy; the
sequence models on ``(x, (y, mask))`` pairs, so padding never counts), all
under ``fnn.threads(1)``. Then 10 new words are sampled from the best model
with an explicit key: the same key gives the same words.

Measured with ``OPENBLAS_NUM_THREADS=1 python examples/char_lm.py`` (one
thread; machine shared: a 2-core machine with another training job on the other
core, so the wall times are upper bounds; epochs: MLP 10, LSTM 6, transformer 8,
Adam lr 3e-3)::

    58,626 training and 7,309 validation words, sequences of 23 steps, vocabulary 27 ('.' = end)
      MLP, 3 previous ids: validation 2.1250 nats/char in 17.7 s
      LSTM(256): validation 1.7756 nats/char in 348.1 s
      transformer, 2 causal blocks: validation 1.9326 nats/char in 319.2 s

    model                                params  val nats/char  train s
    bigram counts (add-one)                 729         2.4985      0.1
    MLP, 3 previous ids                  19,915         2.1250     17.7
    LSTM(256)                           337,371         1.7756    348.1
    transformer, 2 causal blocks        105,051         1.9326    319.2

    (uniform guessing: 3.2958 nats/char)
    10 words sampled from the best model (LSTM(256), key=2026):
      curious pretension instillons grappies flinching stespowed tightness childing pertuat electrolys
    total wall time 690 s

Every neural model beats the bigram table; the LSTM is best at these sizes
and epochs. Some sampled words are real English words (curious, flinching,
tightness), the others English-looking new strings.

``--toy`` trains tiny models on a few hundred words for two epochs (what the
tests run). ``--threads N`` changes the thread count.
"""  # noqa: E501 (the sampled words, as printed)

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

import fnn
from fnn.datasets import CharVocab

SPARSE = fnn.losses.sparse_softmax_cross_entropy
SAMPLE_KEY = 2026


@attrs.frozen
class Config:
    """Sizes and training of the neural models (full size or toy)."""

    context: int = 3  # the MLP's previous ids
    emb: int = 16  # the MLP's embedding width
    hidden: int = 256  # the MLP's hidden layer
    lstm_emb: int = 64
    units: int = 256  # the LSTM's width
    d_model: int = 64  # the transformer's width
    heads: int = 4
    epochs: dict[str, int] = attrs.field(
        factory=lambda: {"MLP": 10, "LSTM": 6, "transformer": 8}
    )
    batch: dict[str, int] = attrs.field(
        factory=lambda: {"MLP": 256, "LSTM": 64, "transformer": 64}
    )
    lr: float = 3e-3
    train_every: int = 1  # keep every n-th training word (toy: a small subset)
    val_every: int = 1


FULL = Config()
TOY = Config(
    context=2, emb=4, hidden=16, lstm_emb=8, units=16, d_model=16, heads=2,
    epochs={"MLP": 2, "LSTM": 2, "transformer": 2},
    batch={"MLP": 64, "LSTM": 16, "transformer": 16}, lr=1e-2, train_every=200, val_every=100,
)


@attrs.frozen
class Result:
    """One row of the table."""

    name: str
    params: int
    val_loss: float
    seconds: float
    model: Any  # a Network, or the bigram log-probability table


def load(cfg: Config) -> tuple[CharVocab, tuple[str, ...], tuple[str, ...], int]:
    """The vocabulary, training and validation words, and the sequence length (longest + 1)."""
    split = fnn.datasets.words()
    train, val = split.train[:: cfg.train_every], split.validation[:: cfg.val_every]
    length = max(len(w) for w in (*split.train, *split.validation, *split.test)) + 1
    return CharVocab(), train, val, length


def bigram(vocab: CharVocab, train: Sequence[str], val: Sequence[str]) -> Result:
    """Add-one smoothed bigram frequencies; the validation loss of the exact table."""
    t0 = time.perf_counter()
    x, y = vocab.windows(train, 1)
    counts = np.bincount(x[:, 0] * vocab.size + y, minlength=vocab.size**2)
    counts = counts.reshape(vocab.size, vocab.size) + 1.0
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    xv, yv = vocab.windows(val, 1)
    loss = -float(logp[xv[:, 0], yv].mean())
    return Result("bigram counts (add-one)", logp.size, loss, time.perf_counter() - t0, logp)


def mlp_layers(vocab: CharVocab, cfg: Config) -> list[fnn.Layer]:
    return [
        fnn.Embedding(vocab.size, cfg.emb), fnn.Flatten(), fnn.Dense(cfg.hidden), fnn.Tanh(),
        fnn.Dense(vocab.size),
    ]


def lstm_layers(vocab: CharVocab, cfg: Config) -> list[fnn.Layer]:
    return [fnn.Embedding(vocab.size, cfg.lstm_emb), fnn.LSTM(cfg.units), fnn.Dense(vocab.size)]


def transformer_layers(vocab: CharVocab, cfg: Config, length: int) -> list[fnn.Layer]:
    d = cfg.d_model

    def block() -> list[fnn.Layer]:
        return [
            fnn.Residual([fnn.LayerNorm(), fnn.MultiHeadAttention(cfg.heads, causal=True)]),
            fnn.Residual([fnn.LayerNorm(), fnn.Dense(4 * d), fnn.GELU(), fnn.Dense(d)]),
        ]

    return [
        fnn.Embedding(vocab.size, d), fnn.PositionalEmbedding(length), *block(), *block(),
        fnn.LayerNorm(), fnn.Dense(vocab.size),
    ]


def train(
    name: str, layers: list[fnn.Layer], data: tuple[Any, Any], val: tuple[Any, Any],
    cfg: Config, key: int, progress: bool,
) -> Result:
    """Train with fit (Adam); the validation loss of the final network, over the whole set."""
    x = data[0]
    net = fnn.init(layers, x.shape[1:], key=key)
    t0 = time.perf_counter()
    net, _, _ = fnn.fit(
        net, fnn.optim.adam(cfg.lr), SPARSE, data, epochs=cfg.epochs[name], key=key,
        batch_size=cfg.batch[name], progress=progress, train_metrics=False,
    )
    seconds = time.perf_counter() - t0
    val_loss = fnn.evaluate(net, *val, SPARSE, batch_size=1024)["loss"]
    return Result(name, fnn.tree.size(net), val_loss, seconds, net)


NextProbs = Callable[[np.ndarray, int], np.ndarray]


def next_probs(result: Result, kind: str, context: int) -> NextProbs:
    """``f(ids, t) -> (n, vocab)``: the model's next-id probabilities after ``ids[:, :t+1]``."""
    if kind == "bigram":
        probs = np.exp(result.model)
        return lambda ids, t: probs[ids[:, t]]

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    if kind == "window":

        def window(ids: np.ndarray, t: int) -> np.ndarray:
            padded = np.concatenate([np.zeros((len(ids), context), ids.dtype), ids], axis=1)
            return softmax(fnn.forward(result.model, padded[:, t + 1 : t + 1 + context]))

        return window
    # A causal sequence model: the prediction at step t reads ids[:, :t+1] only.
    return lambda ids, t: softmax(fnn.forward(result.model, ids)[:, t].astype(np.float64))


def sample(
    probs: NextProbs, vocab: CharVocab, length: int, key: fnn.random.KeyLike, n: int = 10
) -> list[str]:
    """``n`` words drawn letter by letter until the end token (or ``length - 1`` letters).

    Step ``t`` draws every word's next id by inverting its cumulative distribution at
    uniform numbers from ``fnn.random.generator(key)``: the same key gives the same words.
    """
    rng = fnn.random.generator(key)
    ids = np.zeros((n, length), np.int64)  # the boundary starts every word, and pads
    done = np.zeros(n, bool)
    for t in range(length - 1):
        p = probs(ids, t)
        cdf = np.cumsum(p, axis=1)
        u = rng.random(n) * cdf[:, -1]
        nxt = np.minimum((cdf <= u[:, None]).sum(axis=1), vocab.size - 1)
        nxt[done] = 0
        ids[:, t + 1] = nxt
        done |= nxt == 0
        if done.all():
            break
    return [vocab.decode(row[1:]) for row in ids]


def table(results: Sequence[Result]) -> str:
    lines = [f"{'model':<34} {'params':>8} {'val nats/char':>14} {'train s':>8}"]
    for r in results:
        lines.append(f"{r.name:<34} {r.params:>8,} {r.val_loss:>14.4f} {r.seconds:>8.1f}")
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None, *, cfg: Config | None = None
) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="tiny models on a few hundred words")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--progress", action="store_true", help="show fit's progress bars")
    args = parser.parse_args(argv)
    cfg = cfg or (TOY if args.toy else FULL)
    start = time.perf_counter()
    vocab, train_words, val_words, length = load(cfg)
    print(f"{len(train_words):,} training and {len(val_words):,} validation words, "
          f"sequences of {length} steps, vocabulary {vocab.size} ({vocab.boundary!r} = end)")
    seq_train = vocab.sequences(train_words, length)
    seq_val = vocab.sequences(val_words, length)
    win_train = vocab.windows(train_words, cfg.context)
    win_val = vocab.windows(val_words, cfg.context)
    results = [bigram(vocab, train_words, val_words)]
    kinds = {results[0].name: "bigram"}
    with fnn.threads(args.threads):
        runs = [
            (f"MLP, {cfg.context} previous ids", "MLP", mlp_layers(vocab, cfg), win_train,
             win_val, "window"),
            (f"LSTM({cfg.units})", "LSTM", lstm_layers(vocab, cfg),
             (seq_train[0], seq_train[1:]), (seq_val[0], seq_val[1:]), "sequence"),
            ("transformer, 2 causal blocks", "transformer",
             transformer_layers(vocab, cfg, length), (seq_train[0], seq_train[1:]),
             (seq_val[0], seq_val[1:]), "sequence"),
        ]
        for i, (label, name, layers, data, val, kind) in enumerate(runs):
            r = train(name, layers, data, val, cfg, key=i, progress=args.progress)
            results.append(attrs.evolve(r, name=label))
            kinds[label] = kind
            print(f"  {label}: validation {r.val_loss:.4f} nats/char in {r.seconds:.1f} s",
                  flush=True)
        print()
        print(table(results))
        best = min(results, key=lambda r: r.val_loss)
        words = sample(next_probs(best, kinds[best.name], cfg.context), vocab, length,
                       key=SAMPLE_KEY)
    uniform = math.log(vocab.size)
    print(f"\n(uniform guessing: {uniform:.4f} nats/char)")
    print(f"10 words sampled from the best model ({best.name}, key={SAMPLE_KEY}):")
    print("  " + " ".join(words))
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    return {"results": results, "words": words, "best": best, "vocab": vocab,
            "length": length, "kinds": kinds, "cfg": cfg}


if __name__ == "__main__":
    main()
