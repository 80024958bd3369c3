"""train.py end to end on real MNIST: accuracy, determinism, resume, Ctrl-C, NaN stop, CLI."""

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import train
from minidl import io

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("MINIDL_DATA")
needs_mnist = pytest.mark.skipif(
    not DATA or not (Path(DATA) / "mnist" / "t10k-labels-idx1-ubyte.gz").exists(),
    reason="real MNIST not found: set MINIDL_DATA to a directory holding mnist/ (CI uses ../shared/datasets)")


def metrics(out):
    with open(Path(out) / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def without_time(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def quick(out, *extra):
    return train.parse_args(["--limit-train", "1280", "--epochs", "2", "--out", str(out), "--quiet",
                             "--no-figures", *extra])


def test_help_explains_every_flag():
    result = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ["--model", "--epochs", "--batch-size", "--optimizer", "--lr", "--seed", "--data-dir",
                 "--out", "--resume", "--eval", "--limit-train"]:
        assert flag in result.stdout


def test_bad_flags_are_refused():
    result = subprocess.run([sys.executable, "train.py", "--epochs", "0"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "--epochs: expected a positive integer, received 0" in result.stderr


@needs_mnist
def test_one_epoch_on_a_few_thousand_images_learns(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "train.py", "--epochs", "1", "--limit-train", "6000", "--out", str(out), "--quiet",
         "--no-figures", "--data-dir", DATA], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = metrics(out)
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"]
    # Chance is 0.10; one short epoch of a working LeNet reaches about 0.94.
    assert float(rows[0]["test_acc"]) >= 0.92
    predictions = np.load(out / "predictions.npz", allow_pickle=False)
    assert predictions["test_predictions"].shape == (10000,)
    assert predictions["sample_images"].shape == (20, 28, 28)
    accuracy = (predictions["test_predictions"] == predictions["test_labels"]).mean()
    assert accuracy == pytest.approx(float(rows[0]["test_acc"]), abs=1e-6)
    # --eval rebuilds the model from the checkpoint alone and agrees with the run.
    result = subprocess.run([sys.executable, "train.py", "--eval", str(out / "checkpoint.npz"), "--quiet",
                             "--data-dir", DATA], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"test accuracy {float(rows[0]['test_acc']):.4f}" in result.stdout


@needs_mnist
def test_same_seed_same_numbers(tmp_path):
    a = train.run(quick(tmp_path / "a"))
    b = train.run(quick(tmp_path / "b"))
    c = train.run(quick(tmp_path / "c", "--seed", "1"))
    assert without_time(metrics(a)) == without_time(metrics(b))
    assert without_time(metrics(a)) != without_time(metrics(c))


@needs_mnist
@pytest.mark.parametrize("interrupt_at", [(0, 7), (0, 19), (1, 3)], ids=["mid-epoch", "epoch-end", "second-epoch"])
def test_ctrl_c_then_resume_gives_the_uninterrupted_numbers(tmp_path, interrupt_at):
    straight = train.run(quick(tmp_path / "straight"))

    def press_ctrl_c(epoch, step):
        if (epoch, step) == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT, as from the keyboard

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train.run(quick(out), on_step=press_ctrl_c)
    meta = io.read_meta(out / "checkpoint.npz")["meta"]
    assert (meta["epoch"], meta["step"]) == (interrupt_at[0] + (interrupt_at[1] == 19), (interrupt_at[1] + 1) % 20)
    train.run(train.parse_args(["--resume", str(out), "--quiet", "--no-figures"]))
    assert without_time(metrics(out)) == without_time(metrics(straight))
    final_a = io.load(straight / "checkpoint.npz").model.state_dict()
    final_b = io.load(out / "checkpoint.npz").model.state_dict()
    for name in final_a:
        np.testing.assert_array_equal(final_a[name], final_b[name], err_msg=name)


@needs_mnist
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    diverged = []
    original_forward = train.SoftmaxCrossEntropy.forward

    def forward(self, logits, labels):
        if diverged:
            logits = logits.copy()
            logits[0, 0] = np.nan  # as if the network had blown up
        return original_forward(self, logits, labels)

    def diverge_after(epoch, step):
        if (epoch, step) == (1, 2):
            diverged.append(True)

    monkeypatch.setattr(train.SoftmaxCrossEntropy, "forward", forward)
    with pytest.raises(train.TrainingStopped, match=r"became nan at epoch 2, step 4 .*untouched"):
        train.run(quick(out), on_step=diverge_after)
    checkpoint = io.load(out / "checkpoint.npz")
    assert checkpoint.meta["epoch"] == 1 and checkpoint.meta["step"] == 0
    assert all(np.isfinite(v).all() for v in checkpoint.model.state_dict().values())
    assert len(metrics(out)) == 1


@needs_mnist
def test_diverging_learning_rate_stops_with_a_clear_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", "--epochs", "1", "--limit-train", "2000", "--lr", "1000", "--out",
         str(tmp_path / "run"), "--quiet", "--no-figures", "--data-dir", DATA],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "the training loss became nan" in result.stderr and "Try a lower --lr" in result.stderr
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@needs_mnist
def test_existing_run_directory_is_not_overwritten(tmp_path):
    out = train.run(quick(tmp_path / "run", "--epochs", "1"))
    before = (out / "checkpoint.npz").read_bytes()
    with pytest.raises(SystemExit, match="already holds a run; use --resume"):
        train.run(quick(out))
    assert (out / "checkpoint.npz").read_bytes() == before


@needs_mnist
def test_resume_refuses_settings_it_would_ignore(tmp_path):
    out = train.run(quick(tmp_path / "run", "--epochs", "1"))
    with pytest.raises(SystemExit, match=r"own settings; received --epochs 5 \(the run has 1\)"):
        train.run(train.parse_args(["--resume", str(out), "--epochs", "5", "--quiet", "--no-figures"]))
    # Repeating the run's own value is fine (and there is nothing left to do).
    train.run(train.parse_args(["--resume", str(out), "--epochs", "1", "--quiet", "--no-figures"]))
    assert len(metrics(out)) == 1
