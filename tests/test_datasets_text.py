"""Tests for fnn.datasets.text: the word list, its split, and the character vocabulary."""

from __future__ import annotations

import hashlib
import os
import re
import string
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import datasets as ds
from fnn.datasets.text import WORDS_PATH

needs_wamerican = pytest.mark.skipif(
    not WORDS_PATH.is_file(),
    reason="the system word list is not installed (apt-get install wamerican); CI installs it",
)

lower_words = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=12)


def unit_hash(word: str) -> float:
    """The split rule, written again from its documentation."""
    return int(hashlib.sha256(word.encode()).hexdigest()[:16], 16) / 2**64


def write_list(path, lines, encoding="utf-8"):
    path.write_bytes("\n".join(lines).encode(encoding) + b"\n")
    return path


# ---------------------------------------------------------------------------
# words()


@needs_wamerican
def test_system_word_list_is_cleaned_and_split_as_documented():
    """The system list: every word is a-z only, each once over all parts, each part sorted,
    and each word is in the part its hash gives; the parts are about 80/10/10 %."""
    parts = ds.words()
    everything = [w for part in parts for w in part]
    assert len(everything) == len(set(everything)) > 50_000
    assert all(re.fullmatch("[a-z]+", w) for w in everything)
    for part in parts:
        assert list(part) == sorted(part)
    for name, part, lo, hi in [("validation", parts.validation, 0.0, 0.1),
                               ("test", parts.test, 0.1, 0.2)]:
        assert all(lo <= unit_hash(w) < hi for w in part), name
        assert abs(len(part) / len(everything) - 0.1) < 0.01, name
    assert all(unit_hash(w) >= 0.2 for w in parts.train[:2000])


@needs_wamerican
def test_system_word_list_is_deterministic_and_read_quickly():
    """Two calls give equal parts (no key, no hash randomisation); reading takes < 3 s."""
    t0 = time.perf_counter()
    first = ds.words()
    assert time.perf_counter() - t0 < 3.0
    assert ds.words() == first


def test_words_keeps_only_letters_lower_cased_and_deduplicated(tmp_path):
    """Mixed case merges, and lines with apostrophes, hyphens, digits, accents, spaces, a
    Kelvin sign (which lower-cases to ASCII 'k') or undecodable bytes are dropped."""
    lines = ["Apple", "apple", "APPLE", "bob's", "co-op", "r2d2", "café", "two words",
             "\u212aelvin", "", "  zebra  ", "Zebra", "x"]
    path = write_list(tmp_path / "w", lines)
    with path.open("ab") as f:
        f.write(b"caf\xe9\nokay\n")  # a Latin-1 line among UTF-8 ones
    parts = ds.words(path, val_fraction=0.0, test_fraction=0.0)
    assert parts.train == ("apple", "okay", "x", "zebra")
    assert parts.validation == parts.test == ()


@given(st.sets(lower_words, min_size=1, max_size=30), st.sets(lower_words, max_size=30))
def test_a_words_part_depends_on_the_word_only(tmp_path_factory, base, extra):
    """Adding words to the list never moves a word to another part."""
    d = tmp_path_factory.mktemp("w")
    small = ds.words(write_list(d / "a", sorted(base)), val_fraction=0.3, test_fraction=0.3)
    big = ds.words(write_list(d / "b", sorted(base | extra)), val_fraction=0.3, test_fraction=0.3)
    for part_small, part_big in zip(small, big, strict=True):
        assert set(part_small) == set(part_big) & base


@given(st.sets(lower_words, min_size=1, max_size=40),
       st.floats(0, 0.5), st.floats(0, 0.49))
def test_split_follows_the_hash_rule(tmp_path_factory, found, val, test):
    """Each word is in validation iff u < val, in test iff val <= u < val + test (u its hash)."""
    path = write_list(tmp_path_factory.mktemp("w") / "w", sorted(found))
    parts = ds.words(path, val_fraction=val, test_fraction=test)
    for w in found:
        u = unit_hash(w)
        expected = parts.validation if u < val else parts.test if u < val + test else parts.train
        assert w in expected


def test_missing_word_list_names_the_package(tmp_path):
    """A missing file is a FileNotFoundError naming the path and the Debian package."""
    with pytest.raises(FileNotFoundError, match=r"words: .*nothere not found; install the word "
                       r"list with 'apt-get install wamerican'"):
        ds.words(tmp_path / "nothere")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_or_directory_is_refused_at_once(tmp_path):
    """A FIFO without a writer is refused at once (no hang), as is a directory."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"words: not a regular file \(a FIFO\)"):
        ds.words(fifo)
    assert time.perf_counter() - t0 < 2
    with pytest.raises(ValueError, match=r"not a regular file \(a directory\)"):
        ds.words(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "err", "pattern"),
    [
        ({"val_fraction": 1.0}, ValueError, r"val_fraction must be in \[0, 1\), got 1.0"),
        ({"test_fraction": -0.1}, ValueError, r"test_fraction must be in \[0, 1\)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, ValueError, r"must be below 1"),
        ({"val_fraction": float("nan")}, ValueError, r"val_fraction"),
        ({"val_fraction": "0.1"}, TypeError, r"val_fraction must be a number"),
        ({"max_bytes": 0}, ValueError, r"max_bytes must be a positive int"),
        ({"max_bytes": 1.5}, TypeError, r"max_bytes must be a positive int"),
        ({"max_bytes": 10}, ValueError, r"larger than max_bytes=10"),
    ],
)
def test_bad_arguments_name_the_fix(tmp_path, kwargs, err, pattern):
    """Fractions outside [0, 1) or summing to 1, a bad max_bytes, or a file beyond it."""
    path = write_list(tmp_path / "w", ["alpha", "beta", "gamma"])
    with pytest.raises(err, match=rf"fnn.datasets.words: .*{pattern}"):
        ds.words(path, **kwargs)


def test_a_file_without_words_is_refused(tmp_path):
    """A file with no word of letters a-z (here: digits and punctuation) is a ValueError."""
    path = write_list(tmp_path / "w", ["123", "a-b", "..."])
    with pytest.raises(ValueError, match=r"holds no word of letters a-z.*wamerican"):
        ds.words(path)
    with pytest.raises(TypeError, match=r"path must be a str or a path"):
        ds.words(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# CharVocab


@given(st.lists(st.text(alphabet=string.ascii_lowercase, max_size=10), min_size=1, max_size=8))
def test_encode_decode_round_trip(found):
    """decode(encode(w)) == w, ids are 1..26 in alphabetical order, and decoding stops at the
    first boundary id whatever follows."""
    vocab = ds.CharVocab()
    for w in found:
        ids = vocab.encode(w)
        assert ids.dtype == np.int64 and not ids.flags.writeable
        assert ids.tolist() == [string.ascii_lowercase.index(c) + 1 for c in w]
        assert vocab.decode(ids) == w
        assert vocab.decode(np.concatenate([ids, [0, 5, 0]])) == w


@given(st.lists(st.text(alphabet=string.ascii_lowercase, max_size=10), min_size=1, max_size=8),
       st.integers(0, 3))
def test_sequences_shift_targets_by_one(found, extra):
    """sequences: x starts with the boundary and holds the letters; y is x shifted left by one
    (the letters, then the boundary); mask is true for the len(w) + 1 predictions; padding is
    the boundary id; the default length fits the longest word."""
    vocab = ds.CharVocab()
    longest = max(map(len, found))
    x, y, mask = vocab.sequences(found, length=longest + 1 + extra)
    assert x.shape == y.shape == mask.shape == (len(found), longest + 1 + extra)
    assert mask.dtype == bool and not x.flags.writeable and not mask.flags.writeable
    for i, w in enumerate(found):
        m = len(w)
        assert vocab.decode(y[i]) == w
        assert x[i, 0] == 0 and (x[i, 1 : m + 1] == y[i, :m]).all()
        assert mask[i].sum() == m + 1 and mask[i, : m + 1].all()
        assert not x[i, m + 1 :].any() and not y[i, m:].any()
    x2, _, _ = vocab.sequences(found)
    assert x2.shape[1] == longest + 1


@given(st.lists(st.text(alphabet="abc", max_size=6), min_size=1, max_size=5), st.integers(1, 4))
def test_windows_are_the_previous_ids(found, k):
    """windows(words, k) equals a plain loop: for each letter and each word's end, the k ids
    before it (boundary-padded on the left) and the id itself."""
    vocab = ds.CharVocab("abc")
    x, y = vocab.windows(found, k)
    rows, targets = [], []
    for w in found:
        ids = [0] * k + [1 + "abc".index(c) for c in w] + [0]
        for t in range(len(w) + 1):
            rows.append(ids[t : t + k])
            targets.append(ids[t + k])
    assert x.tolist() == rows and y.tolist() == targets
    assert x.shape == (sum(len(w) + 1 for w in found), k)


def test_from_words_and_a_custom_boundary():
    """from_words sorts the letters found; any single character not among them can be the
    boundary; non-ASCII letters work."""
    vocab = ds.CharVocab.from_words(["éa", "ba"], boundary="#")
    assert vocab.letters == "abé" and vocab.size == 4
    assert vocab.encode("bé").tolist() == [2, 3]
    x, y, mask = vocab.sequences(["éa"])
    assert y.tolist() == [[3, 1, 0]] and vocab.decode(y[0]) == "éa"
    assert x.tolist() == [[0, 3, 1]] and mask.all()


@pytest.mark.parametrize(
    ("call", "err", "pattern"),
    [
        (lambda v: v.encode("Abc"), ValueError, r"encode: 'Abc' holds 'A', which is not in the "
         r"vocabulary .*CharVocab.from_words"),
        (lambda v: v.encode(3), TypeError, r"encode: word must be a str"),
        (lambda v: v.sequences(["ok", "a.b"]), ValueError, r"sequences: 'a.b' holds '.'"),
        (lambda v: v.sequences("word"), TypeError, r"words must be a list of str, got the str"),
        (lambda v: v.sequences([]), ValueError, r"words is empty"),
        (lambda v: v.sequences(["abc", "de"], length=3), ValueError,
         r"1 word\(s\) do not fit length=3, e.g. 'abc' \(3 letters needs length 4.*length=4"),
        (lambda v: v.sequences(["a"], length=0), ValueError, r"length must be a positive int"),
        (lambda v: v.sequences(["a"], length=2.0), TypeError, r"length must be an int"),
        (lambda v: v.windows(["a"], 0), ValueError, r"windows: context must be a positive int"),
        (lambda v: v.windows(["a"], None), TypeError, r"windows: context must be an int"),
        (lambda v: v.decode([[1, 2]]), ValueError, r"decode: ids must be 1-d.*for row in ids"),
        (lambda v: v.decode([1, 27]), ValueError, r"decode: id 27 is outside 0..26"),
        (lambda v: v.decode([-1]), ValueError, r"decode: id -1 is outside"),
        (lambda v: v.decode([1.0]), TypeError, r"decode: ids must be integers"),
        (lambda v: ds.CharVocab("aba"), ValueError, r"letters must be distinct"),
        (lambda v: ds.CharVocab("", "."), TypeError, r"letters must be a non-empty str"),
        (lambda v: ds.CharVocab("ab", "a"), ValueError, r"the boundary 'a' is also one of"),
        (lambda v: ds.CharVocab("ab", ".."), TypeError, r"boundary must be one character"),
    ],
)
def test_vocab_errors_name_the_fix(call, err, pattern):
    """Unknown characters, words too long, wrong kinds and shapes: errors name the method."""
    with pytest.raises(err, match=pattern):
        call(ds.CharVocab())


def test_words_record_unpacks_and_checks_its_parts():
    """Words unpacks as (train, validation, test) and refuses a bare str as a part."""
    train, validation, test = ds.Words(["a"], ("b",), [])
    assert (train, validation, test) == (("a",), ("b",), ())
    with pytest.raises(TypeError, match="each part must be a sequence of str"):
        ds.Words("abc", [], [])
