"""Every writer creates or clearly refuses a missing folder before any work (issue 13)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fnn
from fnn import plot
from fnn.train import History
from tests.conftest import load_example

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def net():
    return fnn.init([fnn.Dense(3), fnn.Tanh(), fnn.Dense(2)], (2,), key=0)


def test_history_plot_refuses_a_missing_folder(tmp_path):
    """History.plot names the missing folder and the fix, and writes nothing."""
    h = History(epochs=(0, 1), logs={"loss": [0.9, 0.5]})
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError,
                       match=r"History\.plot: the folder '.*no/such' does not exist; create it first \(os\.makedirs"):
        h.plot(missing / "loss.png")
    assert not (tmp_path / "no").exists()
    assert h.plot(tmp_path / "loss.png") == str(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_history_plot_refuses_a_file_as_folder(tmp_path):
    """A "folder" that is a file is named as such."""
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match=r"History\.plot: '.*f' is a file, not a folder"):
        History(epochs=(0,), logs={"loss": [1.0]}).plot(tmp_path / "f" / "loss.png")


@pytest.mark.parametrize("name", ["activations", "first_layer_weights", "gradient_norms",
                                  "decision_boundary"])
def test_fnn_plot_writers_refuse_a_missing_folder(tmp_path, net, name):
    """Each fnn.plot function refuses a missing folder before drawing anything."""
    x = np.zeros((1, 2), np.float32)
    args = {
        "activations": (net, x),
        "first_layer_weights": (net,),
        "gradient_norms": (fnn.grad(net, np.zeros((4, 2)), np.zeros((4, 2)), fnn.losses.mse),),
        "decision_boundary": (net, np.zeros((4, 2)), np.array([0, 1, 0, 1])),
    }[name]
    with pytest.raises(FileNotFoundError, match=rf"fnn\.plot\.{name}: the folder '.*missing' does not exist"):
        getattr(plot, name)(*args, tmp_path / "missing" / "a.png")


def test_save_refuses_a_missing_folder(tmp_path, net):
    """fnn.save refuses a missing folder with its name and the fix (it does not create it)."""
    with pytest.raises(FileNotFoundError, match=r"fnn\.io\.save: the directory '.*missing' does not exist; create it first"):
        fnn.save(tmp_path / "missing" / "m.npz", net)
    assert not (tmp_path / "missing").exists()


def test_mnist_mlp_creates_its_out_dir_first(tmp_path, monkeypatch):
    """examples/mnist_mlp.py creates --out-dir (with parents) before reading any data."""
    example = load_example("mnist_mlp")
    seen = []

    def fake_load(dataset):
        seen.append((tmp_path / "a" / "b").is_dir())
        raise RuntimeError("stop after the folder check")

    monkeypatch.setattr(example, "load", fake_load)
    with pytest.raises(RuntimeError, match="stop after"):
        example.main(out_dir=str(tmp_path / "a" / "b"))
    assert seen == [True]


def test_mnist_mlp_refuses_a_bad_out_dir_before_loading(tmp_path, monkeypatch):
    """An --out-dir that cannot be created stops the example before the data is read."""
    example = load_example("mnist_mlp")
    monkeypatch.setattr(example, "load", lambda dataset: pytest.fail("data read before the check"))
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        example.main(out_dir=str(tmp_path / "file" / "sub"))


def test_mnist_mlp_script_bad_out_dir_is_one_line(tmp_path):
    """Run as a script, a bad --out-dir exits with code 2 and one error line, at once."""
    (tmp_path / "file").write_text("")
    env = {**os.environ, "FNN_DATA": str(tmp_path / "no-data")}
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mnist_mlp.py"), "--out-dir", str(tmp_path / "file" / "x")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert "--out-dir" in last and "cannot create the folder" in last
    assert "Traceback" not in run.stderr


def test_mnist_mlp_accepts_both_dataset_spellings():
    """fashion-mnist (the fnn command's spelling) and fashion_mnist name the same data set."""
    example = load_example("mnist_mlp")
    assert example.dataset_name("fashion-mnist") == example.dataset_name("fashion_mnist") == "fashion_mnist"
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        example.dataset_name("cifar")
