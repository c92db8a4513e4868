"""Words for character-level language models: the system word list and a character vocabulary.

- `words`: the system word list (``/usr/share/dict/words``, Debian's
  ``wamerican``), lower-cased, letters a-z only, deduplicated, split into
  train/validation/test by a hash of each word (deterministic, no key).
- `CharVocab`: characters ↔ integer ids with one *boundary* token ``"."``
  (id 0) that starts every context, ends every word and pads; its
  `CharVocab.sequences` and `CharVocab.windows` build the next-character data
  of sequence models and of fixed-context models.

Example:
    >>> vocab = CharVocab()
    >>> x, y, mask = vocab.sequences(["ab", "c"])
    >>> x.tolist(), y.tolist(), mask.astype(int).tolist()
    ([[0, 1, 2], [0, 3, 0]], [[1, 2, 0], [3, 0, 0]], [[1, 1, 1], [1, 1, 0]])
    >>> vocab.decode(y[0])
    'ab'
"""

from __future__ import annotations

import hashlib
import os
import string
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fnn import _arrays
from fnn.datasets._checks import open_regular
from fnn.datasets._checks import positive as _positive
from fnn.tree import readonly

__all__ = ["CharVocab", "Words", "words"]

WORDS_PATH = Path("/usr/share/dict/words")
_INSTALL = (
    "install the word list with 'apt-get install wamerican' (Debian, Ubuntu; "
    "'dnf install words' on Fedora), or pass path= to a text file of one word per line"
)


def _word_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(
            f"fnn.datasets.Words: each part must be a sequence of str, got {value!r:.60}"
        )
    if not all(isinstance(w, str) for w in value):
        raise TypeError("fnn.datasets.Words: each part must hold only str")
    return tuple(value)


@attrs.frozen
class Words:
    """The train/validation/test parts of a word list; unpacks like a tuple of three.

    Attributes:
        train: the training words, sorted.
        validation: the validation words, sorted.
        test: the test words, sorted.

    Example:
        >>> train, validation, test = Words(["b", "a"], ["c"], [])
        >>> train, len(test)
        (('b', 'a'), 0)
    """

    train: tuple[str, ...] = attrs.field(converter=_word_tuple)
    validation: tuple[str, ...] = attrs.field(converter=_word_tuple)
    test: tuple[str, ...] = attrs.field(converter=_word_tuple)

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        return iter((self.train, self.validation, self.test))


def _fraction(who: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{who}: {name} must be a number in [0, 1), got {value!r}")
    real = _arrays.real(value)
    if not 0 <= real < 1:
        raise ValueError(f"{who}: {name} must be in [0, 1), got {_arrays.short(value)}")
    return real


def _unit_hash(word: str) -> float:
    """The first 8 bytes of the word's SHA-256, as a fraction in [0, 1)."""
    return int.from_bytes(hashlib.sha256(word.encode("ascii")).digest()[:8], "big") / 2.0**64


def _read_words(who: str, path: Path, max_bytes: int) -> set[str]:
    try:
        f = open_regular(path, who, "words reads a text file of one word per line")
    except FileNotFoundError:
        raise FileNotFoundError(f"{who}: {path} not found; {_INSTALL}") from None
    with f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(
            f"{who}: {path} is larger than max_bytes={max_bytes}; a word list is a few MB. "
            "Pass a larger max_bytes if the file really is a word list"
        )
    # Undecodable bytes become U+FFFD, which no kept word holds: such lines are dropped.
    found = set()
    for line in data.decode("utf-8", errors="replace").splitlines():
        word = line.strip()
        if word.isascii() and word.isalpha():  # ASCII letters only: a-z after lower()
            found.add(word.lower())
    if not found:
        raise ValueError(
            f"{who}: {path} holds no word of letters a-z; expected a word list (one word per "
            "line), such as Debian's wamerican"
        )
    return found


def words(
    path: str | os.PathLike[str] | None = None,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_bytes: int = 64 << 20,
) -> Words:
    """The system word list, cleaned, in a deterministic train/validation/test split.

    Reads ``path`` (``/usr/share/dict/words`` by default, Debian's package
    ``wamerican``), one word per line; lower-cases each line and keeps it only
    if it is ASCII letters (so only words of ``a``-``z`` remain: no
    apostrophes, hyphens, digits or accents); removes duplicates ("Bill" and
    "bill" become one word). The wamerican list of 2020 gives 73,445 words.

    **Split.** Deterministic without a key: a word's part depends only on the
    word itself. With ``u`` the first 8 bytes of the SHA-256 of the word read
    as a fraction in [0, 1), the word goes to validation if ``u <
    val_fraction``, to test if ``u < val_fraction + test_fraction``, and to
    training otherwise. So the same list splits the same way on every machine
    and Python version, and a word keeps its part when the list gains or
    loses other words. The parts' sizes are close to the fractions, not
    exactly equal to them. Each part is sorted alphabetically.

    Args:
        path: the word list; ``None`` for ``/usr/share/dict/words``.
        val_fraction: the expected share of validation words, in [0, 1).
        test_fraction: the expected share of test words, in [0, 1); the two
            fractions sum to less than 1.
        max_bytes: refuse a file larger than this (64 MiB by default).

    Returns:
        A `Words` record ``(train, validation, test)`` of tuples of str.

    Raises:
        FileNotFoundError: no such file; the message names the package
            ``wamerican`` to install.
        ValueError: not a regular file (a FIFO or directory is refused at
            once), larger than ``max_bytes``, no word of letters a-z in it, or
            fractions outside [0, 1) or summing to 1 or more.
        TypeError: a fraction or ``max_bytes`` of the wrong kind.

    Example:
        >>> train, validation, test = words()  # doctest: +SKIP
        >>> len(train), len(validation), len(test), validation[:3]  # doctest: +SKIP
        (58626, 7309, 7510, ('aachen', 'abbots', 'abbr'))
    """
    who = "fnn.datasets.words"
    val = _fraction(who, "val_fraction", val_fraction)
    test = _fraction(who, "test_fraction", test_fraction)
    if val + test >= 1:
        raise ValueError(
            f"{who}: val_fraction + test_fraction must be below 1 (some words must be left for "
            f"training), got {val} + {test}"
        )
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int | np.integer):
        raise TypeError(f"{who}: max_bytes must be a positive int, got {max_bytes!r}")
    limit = _positive(who, "max_bytes", max_bytes)
    if path is None:
        path = WORDS_PATH
    elif not isinstance(path, str | os.PathLike):
        raise TypeError(f"{who}: path must be a str or a path, got {type(path).__name__}")
    found = _read_words(who, Path(path), limit)
    parts: tuple[list[str], list[str], list[str]] = ([], [], [])
    for word in sorted(found):
        u = _unit_hash(word)
        parts[1 if u < val else 2 if u < val + test else 0].append(word)
    return Words(*parts)


def _check_letters(instance: CharVocab, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"fnn.datasets.CharVocab: letters must be a non-empty str, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"fnn.datasets.CharVocab: letters must be distinct, got {value!r}")


def _check_boundary(instance: CharVocab, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or len(value) != 1:
        raise TypeError(
            f"fnn.datasets.CharVocab: boundary must be one character, got {value!r}"
        )
    if value in instance.letters:
        raise ValueError(
            f"fnn.datasets.CharVocab: the boundary {value!r} is also one of the letters; "
            "choose a character no word holds"
        )


def _word_list(who: str, value: object) -> list[str]:
    if isinstance(value, str):
        raise TypeError(
            f"{who}: words must be a list of str, got the str {value!r:.40}; pass [word] "
            "(or use encode for one word)"
        )
    if not isinstance(value, Sequence) or not all(isinstance(w, str) for w in value):
        raise TypeError(f"{who}: words must be a list or tuple of str, got {value!r:.60}")
    if not value:
        raise ValueError(f"{who}: words is empty; pass at least one word")
    return list(value)


@attrs.frozen
class CharVocab:
    """Characters ↔ integer ids for character-level models, with one boundary token.

    Id 0 is the **boundary** token (``"."`` by default), ids ``1..len(letters)``
    the letters in order, so ``size = len(letters) + 1`` (27 for a-z). The one
    boundary token does three jobs, as in Karpathy's *makemore*:

    - it **starts** every context: a model predicts a word's first letter from
      the boundary alone;
    - it **ends** every word: after the last letter the target is the boundary,
      so a model learns where words stop, and sampling stops when it draws it;
    - it **pads** shorter words in a batch; the mask `sequences` returns marks
      the real positions, and the losses ignore the rest (``y = (labels,
      mask)``, see `fnn.losses`). With causal models (an LSTM, causal
      attention) padding after a word cannot change the predictions within it.

    Args:
        letters: the characters of the words, each once (``a``-``z`` by default).
        boundary: one character not among the letters (``"."``).

    Raises:
        TypeError: ``letters`` is not a non-empty str, or ``boundary`` not one character.
        ValueError: repeated letters, or the boundary among them.

    Example:
        >>> vocab = CharVocab()
        >>> vocab.size, vocab.encode("cab").tolist(), vocab.decode([3, 1, 2, 0, 0])
        (27, [3, 1, 2], 'cab')
    """

    BOUNDARY: ClassVar[int] = 0

    letters: str = attrs.field(default=string.ascii_lowercase, validator=_check_letters)
    boundary: str = attrs.field(default=".", validator=_check_boundary)

    @property
    def size(self) -> int:
        """The number of ids: the letters plus the boundary token."""
        return len(self.letters) + 1

    @classmethod
    def from_words(cls, words: Sequence[str], boundary: str = ".") -> CharVocab:
        """The vocabulary of the characters found in ``words``, sorted.

        Example:
            >>> CharVocab.from_words(["bad", "cab"]).letters
            'abcd'
        """
        found = _word_list("fnn.datasets.CharVocab.from_words", words)
        return cls("".join(sorted(set("".join(found)))), boundary)

    def _ids(self, who: str, text: list[str]) -> np.ndarray:
        """The ids of every character of ``text`` (concatenated), int64."""
        joined = "".join(text)
        codes = np.frombuffer(joined.encode("utf-32-le"), np.uint32).astype(np.int64)
        table = np.array([ord(c) for c in self.letters], np.int64)
        order = np.argsort(table)
        pos = np.searchsorted(table[order], codes)
        pos[pos == len(table)] = 0
        ids = order[pos] + 1
        bad = table[ids - 1] != codes
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            char = joined[k]
            word = next(w for w, end in zip(text, np.cumsum([len(w) for w in text]), strict=True)
                        if k < end)
            raise ValueError(
                f"{who}: {word!r} holds {char!r}, which is not in the vocabulary "
                f"({self.letters!r}); filter the words, or build the vocabulary with "
                "CharVocab.from_words(words)"
            )
        return ids

    def encode(self, word: str) -> np.ndarray:
        """The ids of the letters of ``word`` (no boundary token), int64, read-only.

        Raises:
            TypeError: ``word`` is not a str.
            ValueError: a character outside the vocabulary (names it and the word).

        Example:
            >>> CharVocab().encode("zoo").tolist()
            [26, 15, 15]
        """
        who = "fnn.datasets.CharVocab.encode"
        if not isinstance(word, str):
            raise TypeError(f"{who}: word must be a str, got {type(word).__name__}")
        return readonly(self._ids(who, [word]))

    def decode(self, ids: Any) -> str:
        """The letters of ``ids`` up to the first boundary id (the end of the word).

        Args:
            ids: a 1-d sequence of integer ids, e.g. a row of `sequences`'
                targets or ids a model sampled.

        Returns:
            The word; ``""`` if the first id is the boundary.

        Raises:
            TypeError: ``ids`` are not integers.
            ValueError: not 1-d, or an id outside ``0..size-1``.

        Example:
            >>> CharVocab().decode([8, 9, 0, 5])
            'hi'
        """
        who = "fnn.datasets.CharVocab.decode"
        a = np.asarray(_arrays.plain(who, "ids", ids))
        if a.dtype.kind not in "iu" and not (a.dtype.kind == "f" and a.size == 0):
            raise TypeError(f"{who}: ids must be integers, got dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError(
                f"{who}: ids must be 1-d (one word), got shape {a.shape}; decode rows one at a "
                "time: [vocab.decode(row) for row in ids]"
            )
        if a.size and (a.min() < 0 or a.max() >= self.size):
            bad = a[(a < 0) | (a >= self.size)][0]
            raise ValueError(f"{who}: id {bad} is outside 0..{self.size - 1} (the vocabulary size)")
        stop = np.flatnonzero(a == self.BOUNDARY)
        end = int(stop[0]) if stop.size else a.size
        return "".join(self.letters[int(i) - 1] for i in a[:end])

    def sequences(
        self, words: Sequence[str], length: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Next-character data for sequence models: inputs, targets and a mask, ``(n, length)``.

        For a word of letters ``c_1 … c_m`` (ids) and the boundary ``0``:
        ``x = [0, c_1, …, c_m, 0, …]`` and ``y = [c_1, …, c_m, 0, 0, …]``: at
        step ``t`` the model has read ``x[:t+1]`` and must predict ``y[t]``
        (the next letter, or the boundary after the last). ``mask[t]`` is true
        for ``t ≤ m``: the ``m + 1`` predictions of the word; later steps are
        padding (boundary ids), which the losses skip given ``(y, mask)``.

        Args:
            words: the words, each of this vocabulary's letters.
            length: the number of steps; ``None`` for the longest word + 1.

        Returns:
            ``(x, y, mask)``: read-only int64 ``(n, length)`` ids, int64 ``(n,
            length)`` targets, bool ``(n, length)``.

        Raises:
            TypeError: ``words`` is not a list of str, ``length`` not an int.
            ValueError: no words, a character outside the vocabulary, or a word
                too long for ``length`` (needs ``length >= len(word) + 1``).

        Example:
            >>> x, y, mask = CharVocab().sequences(["hi"], length=4)
            >>> x.tolist(), y.tolist(), mask.tolist()
            ([[0, 8, 9, 0]], [[8, 9, 0, 0]], [[True, True, True, False]])
        """
        who = "fnn.datasets.CharVocab.sequences"
        found = _word_list(who, words)
        lengths = np.array([len(w) for w in found], np.int64)
        longest = int(lengths.max())
        if length is None:
            steps = longest + 1
        else:
            if isinstance(length, bool) or not isinstance(length, int | np.integer):
                raise TypeError(f"{who}: length must be an int, got {type(length).__name__}")
            steps = _positive(who, "length", length)
            if longest + 1 > steps:
                word = found[int(lengths.argmax())]
                too_long = int((lengths + 1 > steps).sum())
                raise ValueError(
                    f"{who}: {too_long} word(s) do not fit length={steps}, e.g. {word!r} "
                    f"({longest} letters needs length {longest + 1}: its letters and the end); "
                    f"pass length={longest + 1}, or keep the words with len(w) < {steps}"
                )
        ids = self._ids(who, found)
        rows = np.repeat(np.arange(len(found)), lengths)
        starts = np.cumsum(lengths) - lengths
        cols = np.arange(ids.size) - np.repeat(starts, lengths)
        y = np.zeros((len(found), steps), np.int64)
        y[rows, cols] = ids  # the boundary (0) follows each word's last letter
        x = np.zeros_like(y)
        x[rows, cols + 1] = ids  # shifted right behind the starting boundary
        mask = np.arange(steps) <= lengths[:, None]
        return readonly(x), readonly(y), readonly(mask)

    def windows(self, words: Sequence[str], context: int) -> tuple[np.ndarray, np.ndarray]:
        """Next-character data for fixed-context models: the ``context`` previous ids → the next.

        Every prediction of `sequences` (each letter and each word's end) becomes one
        row: the ``context`` ids before it, padded on the left with the boundary
        (Bengio et al. 2003; ``context=1`` gives the bigram pairs).

        Args:
            words: the words, each of this vocabulary's letters.
            context: how many previous ids each row holds, ``>= 1``.

        Returns:
            ``(x, y)``: read-only int64 ``(N, context)`` and ``(N,)``, with ``N =
            Σ (len(word) + 1)``, in word order.

        Raises:
            TypeError, ValueError: as `sequences`, or ``context`` not a positive int.

        Example:
            >>> x, y = CharVocab().windows(["hi"], 2)
            >>> x.tolist(), y.tolist()
            ([[0, 0], [0, 8], [8, 9]], [8, 9, 0])
        """
        who = "fnn.datasets.CharVocab.windows"
        if isinstance(context, bool) or not isinstance(context, int | np.integer):
            raise TypeError(f"{who}: context must be an int, got {type(context).__name__}")
        k = _positive(who, "context", context)
        x_seq, y_seq, mask = self.sequences(_word_list(who, words))
        padded = np.concatenate([np.zeros((len(x_seq), k - 1), np.int64), x_seq], axis=1)
        windows = sliding_window_view(padded, k, axis=1)  # (n, steps, k): the k ids up to t
        return readonly(windows[mask]), readonly(y_seq[mask])

