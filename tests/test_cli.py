"""Tests of the command line: fnn train and fnn evaluate, at toy size.

Every failure is one line on stderr and exit code 2 (issue 13); each case of the
issue has a row in FAILURES or a test of its own.
"""

import argparse
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

import fnn
from fnn import cli, parallel

TOY = ["--epochs", "1", "--limit", "200", "--no-progress"]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def no_network(monkeypatch):
    """Every download fails at once, as on a machine without a network."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def empty_data_env(tmp_path, monkeypatch):
    """No dataset files anywhere fnn looks (Debian's Fashion-MNIST folder aside)."""
    monkeypatch.setenv("FNN_DATA", str(tmp_path / "fnn-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_train_then_evaluate_spirals(tmp_path, capsys):
    """fnn train saves a loadable model and history; fnn evaluate reports its accuracy."""
    out = tmp_path / "run"
    code = cli.main(
        ["train", "--epochs", "3", "--limit", "300", "--no-progress", "--out", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "Dense(units=64)" in text
    net = fnn.load(out / "model.npz")
    assert isinstance(net, fnn.Network) and net.input_shape == (2,)
    history = json.loads((out / "history.json").read_text())
    assert len(history["logs"]["loss"]) == 3
    assert (
        cli.main(["evaluate", str(out / "model.npz"), "--dataset", "spirals", "--limit", "100"])
        == 0
    )
    report = capsys.readouterr().out
    assert "accuracy" in report and "loss" in report


def test_default_job_is_2_64_64_2():
    """The default job (README's picture) trains a 2-64-64-2 MLP on two spirals."""
    args = cli._parser().parse_args(["train"])
    assert args.dataset == "spirals" and cli.DEFAULTS["spirals"]["layers"] == "64,64"
    net = cli.build_mlp(2, cli._hidden_sizes("64,64"), 2, "relu", 0)
    assert [layer.w.shape for layer in net.layers if hasattr(layer, "w")] == [(2, 64), (64, 64), (64, 2)]


def test_same_seed_same_model(tmp_path, capsys):
    """Two runs with the same seed save bit-identical parameters."""
    args = ["train", "--epochs", "2", "--limit", "200", "--no-progress"]
    cli.main([*args, "--out", str(tmp_path / "a")])
    cli.main([*args, "--out", str(tmp_path / "b")])
    a, b = fnn.load(tmp_path / "a" / "model.npz"), fnn.load(tmp_path / "b" / "model.npz")
    assert all(
        np.array_equal(x, y) for x, y in zip(fnn.tree.leaves(a), fnn.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize(("epochs", "words"), [("1", "1 epoch"), ("2", "2 epochs")])
def test_epoch_count_is_spelled_right(tmp_path, capsys, epochs, words):
    """The run's summary says "1 epoch" and "2 epochs"."""
    assert cli.main(["train", "--epochs", epochs, "--limit", "100", "--no-progress",
                     "--out", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(f", {words}"), first


# (argv, pattern of the one stderr line); {tmp} is a fresh folder, {file} a file in it.
FAILURES = [
    (["train", "--dataset", "cifar"], r"^fnn train: error: argument --dataset: unknown dataset 'cifar'; choose from fashion-mnist, mnist, spirals \(see fnn train --help\)$"),
    (["train", "--layers", "64,,64"], r"argument --layers: expected comma-separated positive widths such as 64,64, got '64,,64'"),
    (["train", "--layers", "64,x"], r"argument --layers: expected comma-separated positive widths"),
    (["train", "--layers", "0,8"], r"argument --layers: expected comma-separated positive widths"),
    (["train", "--layers", ""], r"argument --layers: expected comma-separated positive widths"),
    (["train", "--epochs", "0"], r"argument --epochs: expected a positive whole number, got '0'"),
    (["train", "--batch-size", "-3"], r"argument --batch-size: expected a positive whole number"),
    (["train", "--lr", "-1"], r"argument --lr: expected a positive number, got '-1'"),
    (["train", "--lr", "nan"], r"argument --lr: expected a positive number, got 'nan'"),
    (["train", "--val-fraction", "1.5"], r"argument --val-fraction: expected a fraction between 0 and 1"),
    (["train", "--limit", "0"], r"argument --limit: expected a positive whole number"),
    (["train", "--threads", "0"], r"argument --threads: expected a positive whole number"),
    (["train", "--activation", "swish"], r"argument --activation: invalid choice: 'swish'"),
    (["train", "--data-dir", "{tmp}/nonexistent"], r"argument --data-dir: '.*nonexistent' does not exist; give the folder holding the data files"),
    (["train", "--data-dir", "{file}"], r"argument --data-dir: '.*' is a file; give the folder"),
    (["train", "--out", "{file}/sub", *TOY], r"^fnn train: error: cannot write to --out '.*sub' \(.*\); choose another folder$"),
    (["train", "--frobnicate"], r"^fnn train: error: unrecognized arguments: --frobnicate"),
    ([], r"^fnn: error: the following arguments are required: COMMAND"),
    (["evaluate", "{tmp}/none.npz", "--dataset", "spirals"], r"^fnn evaluate: error: no such file '.*none\.npz'; fnn train saves runs/<dataset>/model\.npz$"),
    (["evaluate", "{tmp}", "--dataset", "spirals"], r"is a folder; pass the model file in it"),
    (["evaluate", "{file}", "--dataset", "spirals"], r"is not a model file: fnn evaluate takes a model \.npz"),
    (["evaluate", "{tmp}/m.npz"], r"the following arguments are required: --dataset"),
]


@pytest.mark.parametrize(("argv", "pattern"), FAILURES, ids=[" ".join(a) or "(none)" for a, _ in FAILURES])
def test_failures_are_one_line_and_exit_2(tmp_path, capsys, argv, pattern):
    """Each bad invocation returns 2 and prints one line naming the problem; nothing trains."""
    (tmp_path / "file").write_text("not a model")
    argv = [a.format(tmp=tmp_path, file=tmp_path / "file") for a in argv]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert re.search(pattern, line), line
    assert "test accuracy" not in captured.out


def test_out_is_checked_before_training(tmp_path, capsys, monkeypatch):
    """An --out that cannot be written stops the run before any data is read or trained."""
    monkeypatch.setattr(cli, "load_split", lambda *a: pytest.fail("data loaded before --out was checked"))
    (tmp_path / "file").write_text("")
    assert cli.main(["train", "--out", str(tmp_path / "file" / "run"), *TOY]) == 2
    assert "cannot write to --out" in _one_line(capsys.readouterr().err)


def test_out_is_created(tmp_path, capsys):
    """A missing --out folder (with missing parents) is created."""
    out = tmp_path / "a" / "b" / "c"
    assert cli.main(["train", "--out", str(out), *TOY]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["curve.png", "history.json", "model.npz"]


def test_both_dataset_spellings():
    """fashion-mnist (the command's spelling) and fashion_mnist (Python's) are the same name."""
    parse = cli._parser().parse_args
    assert parse(["train", "--dataset", "fashion_mnist"]).dataset == "fashion-mnist"
    assert parse(["train", "--dataset", "Fashion-MNIST"]).dataset == "fashion-mnist"
    assert parse(["evaluate", "m.npz", "--dataset", "fashion_mnist"]).dataset == "fashion-mnist"


@pytest.mark.parametrize(("dataset", "install"), [
    ("mnist", r"; put the four files"),
    ("fashion_mnist", r"; install it with apt-get install dataset-fashion-mnist, or put the four files"),
])
def test_missing_dataset_is_one_line(empty_data_env, no_network, capsys, monkeypatch, dataset, install):
    """A data set that is neither on disk nor downloadable: one line saying where fnn looked,
    why the download failed and how to install it."""
    data_dir = empty_data_env / "data"
    data_dir.mkdir()
    name = dataset.replace("_", "-")
    if name == "fashion-mnist":  # pretend Debian's package is not installed either
        monkeypatch.setitem(fnn.datasets.images._SYSTEM_DIRS, "fashion-mnist", ())
    code = cli.main(["train", "--dataset", dataset, "--data-dir", str(data_dir), "--out",
                     str(empty_data_env / "out"), *TOY])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    title = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}[name]
    assert re.search(rf"^fnn train: error: {title} is not on this machine \(looked in {re.escape(str(data_dir))}, "
                     rf".*fnn-data/{name}, .*cache/fnn/{name}.*\) and downloading it failed "
                     rf"\(Name or service not known\){install}", line), line
    assert line.endswith("in a folder and pass --data-dir FOLDER")


def test_evaluate_says_what_kind_of_file_it_got(tmp_path, capsys):
    """A history.json or curve.png given to evaluate is named as such, with the model next to it."""
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), *TOY]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(out / "history.json"), "--dataset", "spirals"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert re.search(r"history\.json is a JSON file \(fnn train's history\.json\?\), not a model: fnn evaluate "
                     r"takes a model \.npz written by fnn train or fnn\.save; the model saved next to it is "
                     r".*run/model\.npz$", line), line
    assert cli.main(["evaluate", str(out / "curve.png"), "--dataset", "spirals"]) == 2
    assert "curve.png is a PNG image" in _one_line(capsys.readouterr().err)
    assert cli.main(["evaluate", str(out / "model"), "--dataset", "spirals", "--limit", "50"]) == 0


def test_evaluate_on_the_wrong_dataset(tmp_path, capsys):
    """A model built for other inputs, or for another number of classes, is refused by name."""
    wide = fnn.init([fnn.Dense(4), fnn.ReLU(), fnn.Dense(10)], (784,), key=0)
    fnn.save(tmp_path / "wide.npz", wide)
    assert cli.main(["evaluate", str(tmp_path / "wide.npz"), "--dataset", "spirals"]) == 2
    assert re.search(r"^fnn evaluate: error: the spirals examples have shape \(2,\) but the model was built for "
                     r"\(784,\); was it trained on another data set\?", _one_line(capsys.readouterr().err))
    three = fnn.init([fnn.Dense(3)], (2,), key=0)
    fnn.save(tmp_path / "three.npz", three)
    assert cli.main(["evaluate", str(tmp_path / "three.npz"), "--dataset", "spirals"]) == 2
    assert "the model gives (3,) outputs per example but spirals has 2 classes" in _one_line(
        capsys.readouterr().err)
    fnn.save(tmp_path / "tree.npz", {"w": np.zeros(2)})
    assert cli.main(["evaluate", str(tmp_path / "tree.npz"), "--dataset", "spirals"]) == 2
    assert "holds a dict, not a Network" in _one_line(capsys.readouterr().err)


def test_unexpected_errors_are_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    """An error fnn did not foresee is still one line (type and message); --debug raises it."""

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "fit", broken)
    argv = ["train", "--out", str(tmp_path), *TOY]
    assert cli.main(argv) == 2
    assert re.search(r"^fnn train: error: RuntimeError: disk on fire \(run again with --debug for the traceback\)$",
                     _one_line(capsys.readouterr().err))
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli.main([*argv, "--debug"])


def test_interrupt_is_one_line(tmp_path, capsys, monkeypatch):
    """Ctrl-C during training prints one line and returns 130."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "fit", interrupted)
    assert cli.main(["train", "--out", str(tmp_path), *TOY]) == 130
    assert _one_line(capsys.readouterr().err) == "fnn train: interrupted"


def test_threads_flag_runs_training_inside_fnn_threads(tmp_path, capsys, monkeypatch):
    """--threads N trains and evaluates inside fnn.threads(N); without it nothing is set."""
    seen = []
    real_fit = cli.fit

    def spy(*args, **kwargs):
        seen.append((parallel.threads_set(), parallel.num_threads()))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(cli, "fit", spy)
    assert cli.main(["train", "--out", str(tmp_path / "a"), "--threads", "1", *TOY]) == 0
    assert cli.main(["train", "--out", str(tmp_path / "b"), *TOY]) == 0
    assert seen == [(True, 1), (False, 1)]
    assert not parallel.threads_set()
    assert "1 BLAS thread" in capsys.readouterr().out
    assert cli.main(["evaluate", str(tmp_path / "a" / "model.npz"), "--dataset", "spirals",
                     "--threads", "1", "--limit", "50"]) == 0


def _actions(parser):
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, action


def test_every_flag_has_help_and_its_default():
    """Every argument of both commands has help text, and every option that takes a value
    says its default (or that it is required)."""
    actions = list(_actions(cli._parser()))
    assert len(actions) > 15
    for command, action in actions:
        assert action.help and len(action.help) > 10, (command, action.dest)
        takes_value = action.option_strings and action.nargs != 0
        if takes_value and not action.required:
            assert "default" in action.help, (command, action.dest, action.help)


def test_help_exits_0_and_shows_defaults(capsys):
    """--help prints the usage with the defaults and returns 0."""
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: spirals)" in text and "64,64 for spirals" in text and "--threads N" in text
    assert cli.main(["--help"]) == 0


def test_python_m_fnn_prints_no_traceback(tmp_path):
    """As a process: a bad flag and an unwritable --out are one stderr line each, exit code 2."""
    (tmp_path / "file").write_text("")
    for argv in (["train", "--layers", "64,,64"], ["train", "--out", str(tmp_path / "file" / "x")]):
        run = subprocess.run([sys.executable, "-m", "fnn", *argv], capture_output=True, text=True,
                             timeout=120, check=False)
        assert run.returncode == 2, run.stderr
        assert _one_line(run.stderr).startswith("fnn train: error: ")
