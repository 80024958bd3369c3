"""minidl.training.Trainer as a library, on small synthetic data (train.py's tests use MNIST)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from minidl import Sequential, io, rundir
from minidl.data import Augmentation
from minidl.layers import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from minidl.optim import SGD
from minidl.rundir import InputSpec, RunDirError
from minidl.schedules import CosineLR
from callbacks import At
from minidl.training import (Callback, Trainer, TrainingInterrupted, TrainingStopped, evaluate)

SPEC = InputSpec((1, 8, 8), (0.5,), (0.25,), ("bright left", "bright right"))


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 8x8 images whose label is the brighter half: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 100, (n, 1, 8, 8)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 0, :, 4 * label:4 * label + 4] += 150
    return images, labels


def model(seed: int = 0) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(Conv2D(1, 4, 3, padding=1, rng=rng), BatchNorm2D(4), ReLU(), MaxPool2D(2),
                      Flatten(), Dropout(0.3, rng=rng), Dense(64, 2, rng=rng))


def trainer(run_dir=None, epochs: int = 3, callbacks=(), seed: int = 0) -> Trainer:
    net = model(seed)
    optimizer = SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    schedule = CosineLR(optimizer, total_steps=epochs * 5, warmup_steps=2)
    return Trainer(net, optimizer, epochs=epochs, batch_size=16, schedule=schedule, seed=seed,
                   input_spec=SPEC, augment=Augmentation(shift=1, fill=SPEC.fill),
                   run_dir=run_dir, settings={"note": "test"}, callbacks=callbacks,
                   progress=False)


TRAIN, VAL = data(80), data(40, seed=1)


def test_fit_learns_and_reports_every_column() -> None:
    rows = trainer().fit(TRAIN, val=VAL)
    assert [list(r) for r in rows] == [list(rundir.METRIC_COLUMNS)] * 3
    assert rows[-1]["val_acc"] > 0.9 and rows[-1]["test_acc"] is None
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_without_a_run_directory_nothing_is_written(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    trainer(epochs=1).fit(TRAIN)
    assert list(tmp_path.iterdir()) == []


def test_a_run_directory_gets_every_file_through_rundir(tmp_path) -> None:
    run = tmp_path / "run"
    trainer(run, epochs=2).fit(TRAIN, val=VAL)
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [rundir.CHECKPOINT, rundir.METRICS, rundir.SETTINGS, rundir.PREDICTIONS,
         rundir.WEIGHT_STATS])
    assert rundir.read_settings(run) == {"note": "test"}
    predictions = rundir.read_predictions(run)
    assert predictions.split == "validation" and len(predictions.labels) == 40
    stats = rundir.read_weight_stats(run)
    assert sorted(stats) == ["bn1", "conv1", "fc1"] and stats["conv1"]["epoch"] == [1.0, 2.0]
    state = rundir.read_state(run / rundir.CHECKPOINT)
    assert state.input == SPEC and state.progress.epoch == 2
    assert set(state.rng_states) == {"dropout1"}



@pytest.mark.parametrize("where", [(1, 2), (2, 4), (3, 0)])
def test_resume_after_ctrl_c_is_bit_identical_with_dropout_and_batch_norm(tmp_path, where) -> None:
    straight = trainer(tmp_path / "straight")
    straight.fit(TRAIN, val=VAL)
    ctrl_c = At(*where, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(TrainingInterrupted, match="saved a resumable checkpoint") as info:
        trainer(tmp_path / "cut", callbacks=[ctrl_c]).fit(TRAIN, val=VAL)
    assert info.value.run_dir == tmp_path / "cut"
    resumed = trainer(tmp_path / "cut")          # fresh objects, as a new process would build
    rows = resumed.fit(TRAIN, val=VAL, resume=True)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in straight.history]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert list(a) == list(b)  # batch norm's running statistics included
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path) -> None:
    run = tmp_path / "run"
    t = trainer(run)

    def poison():
        t.model["fc1"].weight.data[...] = np.inf

    t.callbacks.append(At(2, 1, poison))
    with pytest.raises(TrainingStopped, match=r"became nan at epoch 2, step 3 .*\(end of epoch 1\), is untouched"):
        t.fit(TRAIN)
    assert rundir.read_state(run / rundir.CHECKPOINT).progress.epoch == 1
    assert all(np.isfinite(v).all() for v in io.load(run / rundir.CHECKPOINT).model.state_dict()
               .values() if v.dtype.kind == "f")


def test_callbacks_see_every_epoch_and_can_stop_training() -> None:
    seen = []

    class Watch(Callback):
        def on_train_begin(self, trainer):
            seen.append("begin")

        def on_epoch_end(self, trainer, epoch, metrics):
            seen.append((epoch, round(metrics["train_loss"], 6) == round(
                trainer.history[-1]["train_loss"], 6)))
            trainer.stop_training = epoch == 2

        def on_train_end(self, trainer):
            seen.append("end")

    rows = trainer(callbacks=[Watch()]).fit(TRAIN)
    assert seen == ["begin", (1, True), (2, True), "end"] and len(rows) == 2


def test_a_run_directory_holding_a_run_is_refused_and_kept(tmp_path) -> None:
    run = tmp_path / "run"
    trainer(run, epochs=1).fit(TRAIN)
    before = (run / rundir.CHECKPOINT).read_bytes()
    with pytest.raises(RunDirError, match="already holds a run"):
        trainer(run, epochs=1).fit(TRAIN)
    assert (run / rundir.CHECKPOINT).read_bytes() == before


def test_resume_refuses_other_settings_and_foreign_checkpoints(tmp_path) -> None:
    run = tmp_path / "run"
    trainer(run, epochs=1).fit(TRAIN)
    with pytest.raises(RunDirError, match=r"epochs=2 \(the run has 1\)"):
        trainer(run, epochs=2).fit(TRAIN, resume=True)
    other = tmp_path / "other"
    other.mkdir()
    io.save(other / rundir.CHECKPOINT, model())  # minidl.io.save: weights, no run
    with pytest.raises(RunDirError, match="minidl.io.save holds weights but no run to resume"):
        trainer(other).fit(TRAIN, resume=True)


def test_evaluation_keeps_nothing_and_matches_a_direct_computation() -> None:
    t = trainer()
    t.fit(TRAIN)
    result = evaluate(t.model, VAL[0], VAL[1], input_spec=SPEC, batch_size=7)
    assert all(layer._cache is None for layer in t.model.modules())
    logits = t.model.forward(SPEC.prepare(VAL[0]), training=False)
    np.testing.assert_array_equal(result.predicted, logits.argmax(axis=1))
    assert result.accuracy == pytest.approx((logits.argmax(axis=1) == VAL[1]).mean())


def test_float_arrays_train_without_a_spec_and_bad_data_is_named() -> None:
    net = Sequential(Flatten(), Dense(4, 2, rng=0))
    t = Trainer(net, SGD(net.parameters(), lr=0.1), epochs=1, batch_size=4, progress=False)
    x = np.random.default_rng(0).standard_normal((12, 1, 2, 2)).astype(np.float32)
    t.fit((x, np.arange(12) % 2))
    with pytest.raises(ValueError, match="expected float train images, or an input_spec to "
                                         "prepare uint8 images"):
        t.fit((x.astype(np.uint8), np.arange(12) % 2))
    with pytest.raises(ValueError, match=r"expected train labels as 12 integers, received "
                                         r"float64 \(12,\)"):
        t.fit((x, np.zeros(12)))
    with pytest.raises(ValueError, match="Trainer: expected epochs >= 1, received 0"):
        Trainer(net, SGD(net.parameters(), lr=0.1), epochs=0)
