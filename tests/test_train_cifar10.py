"""train.py on the real CIFAR-10 (when $MINIDL_DATA holds cifar10/cifar-10-batches-bin/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minidl import rundir

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("MINIDL_DATA")
needs_cifar = pytest.mark.skipif(
    not DATA or not (Path(DATA) / "cifar10" / "cifar-10-batches-bin" / "data_batch_5.bin").is_file(),
    reason="CIFAR-10 not found: set MINIDL_DATA to a directory holding "
           "cifar10/cifar-10-batches-bin/ (CI uses ../shared/datasets)")


@needs_cifar
def test_a_short_cifar10_run_reports_validation_and_draws_colour_kernels(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "train.py", "--dataset", "cifar10", "--model", "two-column",
         "--epochs", "1", "--warmup-epochs", "0.2", "--lr", "0.005", "--limit-train", "512",
         "--val-split", "10000",
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    # This machine's copy has no test_batch.bin: one line says so, and the run goes on.
    if not (Path(DATA) / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin").is_file():
        assert "test_batch.bin is missing" in done.stdout
    # The mean colour specificity of each of conv1's two columns, printed at the end.
    assert "conv1: colour specificity of the kernels" in done.stdout
    assert "by column (the next convolution has groups=2): 0." in done.stdout
    metrics = rundir.read_metrics(out)
    assert 0.1 < metrics["val_acc"][0] <= 1.0          # data_batch_5, 10,000 images
    predictions = rundir.read_predictions(out)
    assert predictions.split in ("test", "validation") and len(predictions.labels) == 10000
    assert predictions.sample_images.shape[1:] == (3, 32, 32)
    assert predictions.sample_images.dtype == np.uint8
    state = rundir.read_state(out / rundir.CHECKPOINT)
    assert state.input.class_names[:2] == ("airplane", "automobile")
    assert state.input.shape == (3, 32, 32) and state.settings["flip"] is True
    page = (out / rundir.REPORT).read_text(encoding="utf-8")
    assert "column 1 (kernels 0&ndash;31)" in page and "&ldquo;" in page
    assert (out / "kernels-conv1.png").is_file() and (out / "kernels-conv1-rgb-slices.png").is_file()
