"""Tests of fnn.train.progress: plain per-epoch lines off a terminal, silence when disabled."""

from fnn.train.progress import Progress, format_logs


def test_plain_lines_when_not_a_terminal(capsys):
    """Under pytest stderr is not a terminal: one line per epoch on stdout."""
    p = Progress(True, total_epochs=3, steps=2)
    p.start(1)
    p.step()
    p.step()
    p.end(1, {"loss": 0.25, "val_accuracy": 0.875}, 1.26)
    assert capsys.readouterr().out == "epoch 1/3  loss 0.25  val_accuracy 0.875  (1.3s)\n"


def test_disabled_prints_nothing(capsys):
    """progress=False prints nothing at all."""
    p = Progress(False, total_epochs=1, steps=1)
    p.start(1)
    p.step()
    p.end(1, {"loss": 1.0}, 0.1)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_format_logs():
    """Logs are shown with 4 significant digits in insertion order."""
    assert format_logs({"loss": 1 / 3, "lr": 0.001}) == "loss 0.3333  lr 0.001"
