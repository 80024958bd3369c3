"""The run directory's one owner: input spec, training state, metrics, predictions, stats."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minidl import io, rundir
from minidl.layers import Dense
from minidl.rundir import (InputSpec, Predictions, Progress, RunDirError, TrainerSettings,
                           TrainingState)

HEADER = ",".join(rundir.METRIC_COLUMNS)
SPEC = InputSpec((3, 2, 2), (0.5, 0.25, 0.0), (0.25, 0.5, 1.0), ("a", "b"))


# ------------------------------------------------------------------ input spec
def test_prepare_scales_normalises_per_channel_and_pads() -> None:
    images = np.zeros((1, 3, 2, 2), np.uint8)
    images[0, :, 0, 1] = 255
    x = InputSpec((3, 2, 2), (0.5, 0.25, 0.0), (0.25, 0.5, 1.0), ("a", "b"), pad=1).prepare(images)
    assert x.shape == (1, 3, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 1, 2], [2.0, 1.5, 1.0])      # (1 - mean) / std
    np.testing.assert_allclose(x[0, :, 1, 1], [-2.0, -0.5, 0.0])    # (0 - mean) / std
    np.testing.assert_allclose(x[0, :, 0, 0], [-2.0, -0.5, 0.0])    # padding is a black pixel
    assert SPEC.fill == (-2.0, -0.5, -0.0) and SPEC.model_shape == (3, 2, 2)


def test_prepare_uses_float_images_as_they_are_and_keeps_the_dtype() -> None:
    images = np.full((2, 3, 2, 2), 0.5)
    x = SPEC.prepare(images, np.float64)
    assert x.dtype == np.float64
    np.testing.assert_allclose(x[0, :, 0, 0], [0.0, 0.5, 0.5])


@pytest.mark.parametrize("images, words", [
    (np.zeros((2, 1, 2, 2), np.uint8), r"expected images of shape \(N, 3, 2, 2\), received "
                                       r"\(2, 1, 2, 2\)"),
    (np.zeros((2, 3, 2, 2), np.int32), "expected uint8 or floating-point images, received dtype "
                                       "int32"),
    ([1, 2], "received list"),
])
def test_prepare_refuses_other_images(images, words) -> None:
    with pytest.raises(ValueError, match=words):
        SPEC.prepare(images)


@pytest.mark.parametrize("kwargs, words", [
    (dict(shape=(3, 2)), "expected shape \\(C, H, W\\)"),
    (dict(mean=(0.5,)), "expected mean to be 3 finite numbers"),
    (dict(std=(1.0, 0.0, 1.0)), "expected std > 0"),
    (dict(std=(1.0, float("nan"), 1.0)), "expected std to be 3 finite numbers"),
    (dict(class_names=()), "expected class_names to be non-empty strings"),
    (dict(pad=-1), "expected pad to be an int >= 0"),
])
def test_input_spec_checks_its_fields(kwargs, words) -> None:
    fields = dict(shape=(3, 2, 2), mean=(0, 0, 0), std=(1, 1, 1), class_names=("a",))
    with pytest.raises(ValueError, match="InputSpec: " + words):
        InputSpec(**{**fields, **kwargs})


def test_input_spec_round_trips_and_names_the_source_of_bad_dicts() -> None:
    assert InputSpec.from_dict(SPEC.to_dict()) == SPEC
    with pytest.raises(RunDirError, match=r"^here: expected input spec keys .*missing std"):
        InputSpec.from_dict({"shape": [1, 2, 2], "mean": [0], "class_names": ["a"]}, "here")
    with pytest.raises(RunDirError, match=r"^there: InputSpec: expected mean"):
        InputSpec.from_dict({**SPEC.to_dict(), "mean": "dark"}, "there")


# ------------------------------------------------------------- training state
def state() -> TrainingState:
    return TrainingState(trainer=TrainerSettings(2, 4, 0, 8),
                         settings={"model": "m"}, input=SPEC,
                         progress=Progress(epoch=1),
                         schedule=None, rng_states={}, metrics=[])


def test_training_state_round_trips_through_a_checkpoint(tmp_path) -> None:
    path = io.save(tmp_path / rundir.CHECKPOINT, Dense(2, 2), meta=state().to_meta())
    assert rundir.read_state(path) == state()
    assert rundir.read_state(rundir.checkpoint_path(tmp_path)) == state()
    assert rundir.read_input_spec(io.load(path), str(path)) == SPEC


@pytest.mark.parametrize("change, words", [
    (lambda m: m.clear(), "expected the metadata of a training run .* received none .*"
                          "minidl.io.save holds weights but no run to resume"),
    (lambda m: m.update(version=7), "expected training metadata version 1, received 7"),
    (lambda m: m.pop("progress"), "expected training metadata key\\(s\\) progress"),
    (lambda m: m["progress"].pop("step"), "expected key 'progress.step'"),
    (lambda m: m["trainer"].update(epochs="2"), "expected 'trainer.epochs' to be an integer, "
                                                "received '2'"),
    (lambda m: m.update(settings=3), "expected 'settings' to be a JSON object, received int"),
    (lambda m: m.update(metrics=[{"epoch": 1}]), "expected 'metrics' to be a list of rows"),
    (lambda m: m["input"].pop("std"), "key 'input': expected input spec keys .*missing std"),
])
def test_malformed_training_state_names_the_file_and_the_key(tmp_path, change, words) -> None:
    meta = state().to_meta()
    change(meta)
    path = io.save(tmp_path / rundir.CHECKPOINT, Dense(2, 2), meta=meta)
    with pytest.raises(RunDirError, match=f"^{path}: {words}"):
        rundir.read_state(path)


# ---------------------------------------------------------------------- metrics
def test_metrics_round_trip_with_empty_cells_for_missing_splits(tmp_path) -> None:
    rows = [{"epoch": 1, "train_loss": 1.5, "train_acc": 0.5, "val_loss": None, "val_acc": None,
             "test_loss": 1.25, "test_acc": 0.75, "seconds": 2.0}]
    rundir.write_metrics(tmp_path, rows)
    assert (tmp_path / rundir.METRICS).read_text().splitlines() == [
        HEADER, "1,1.500000,0.500000,,,1.250000,0.750000,2.000000"]
    read = rundir.read_metrics(tmp_path)
    assert read["epoch"] == [1.0] and read["test_acc"] == [0.75] and math.isnan(read["val_acc"][0])
    assert list(read) == list(rundir.METRIC_COLUMNS)
    from_rows = rundir.metrics_from_rows(rows)
    assert from_rows["test_acc"] == [0.75] and math.isnan(from_rows["val_loss"][0])


def test_read_metrics_columns_any_order_with_extras(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("seconds,epoch,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,"
                    "note\n1.5,1,0.1,2.0,0.5,,,1.9,0.55,warmup\n1.25,2,0.05,1.0,0.8,,,,0.82,\n\n")
    m = rundir.read_metrics(path)
    assert m["epoch"] == [1.0, 2.0]
    assert m["train_loss"] == [2.0, 1.0] and m["seconds"] == [1.5, 1.25]
    assert m["lr"] == [0.1, 0.05]
    assert "note" not in m  # a non-numeric extra column is skipped
    assert m["test_loss"][0] == 1.9 and math.isnan(m["test_loss"][1])


def test_read_metrics_missing_column(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,train_loss,train_acc,test_acc,seconds\n1,2,0.5,0.5,1\n")
    with pytest.raises(RunDirError, match=r"expected columns epoch,.*received header.*"
                                          r"missing: val_loss, val_acc, test_loss"):
        rundir.read_metrics(path)
    path.write_text("")
    with pytest.raises(RunDirError, match=r"\(empty file\)"):
        rundir.read_metrics(path)


def test_read_metrics_bad_number(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(HEADER + "\n1,2,0.5,,,2,0.5,1\n\n2,oops,0.5,,,2,0.5,1\n")
    with pytest.raises(RunDirError, match=r"expected a number in column 'train_loss' on line 4, "
                                          r"received 'oops'"):
        rundir.read_metrics(path)
    path.write_text(HEADER + "\n1,2,0.5,,,2,0.5,1\n,2,0.5,,,2,0.5,1\n")
    with pytest.raises(RunDirError, match=r"column 'epoch' on line 3, received an empty cell"):
        rundir.read_metrics(path)


# ----------------------------------------------------------- the other files
def test_settings_round_trip_and_malformed_settings(tmp_path) -> None:
    rundir.write_settings(tmp_path, {"lr": 0.1, "model": "lenet"})
    assert rundir.read_settings(tmp_path) == {"lr": 0.1, "model": "lenet"}
    (tmp_path / rundir.SETTINGS).write_text("{not json")
    with pytest.raises(RunDirError, match=r"args.json: expected JSON, received malformed text"):
        rundir.read_settings(tmp_path)
    (tmp_path / rundir.SETTINGS).write_text("[1, 2]")
    with pytest.raises(RunDirError, match=r"args.json: expected a JSON object of settings, "
                                          r"received list"):
        rundir.read_settings(tmp_path)


def test_predictions_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    predicted = np.where(rng.random(40) < 0.3, (labels + 1) % 3, labels)
    images = rng.integers(0, 256, (40, 3, 4, 4), dtype=np.uint8)
    written = Predictions.from_evaluation("validation", images, labels, predicted,
                                          rng.random((40, 3)).astype(np.float32), per_class=2)
    assert written.sample_index.tolist() == [i for c in range(3)
                                             for i in np.flatnonzero(labels == c)[:2]]
    np.testing.assert_array_equal(written.misclassified_index, np.flatnonzero(predicted != labels))
    rundir.write_predictions(tmp_path, written)
    read = rundir.read_predictions(tmp_path)
    assert read.split == "validation"
    np.testing.assert_array_equal(written.probe_images, images[:40])
    assert len(Predictions.from_evaluation("test", images, labels, predicted,
                                           written.probabilities, probe=10).probe_images) == 10
    for name in ("labels", "predicted", "probabilities", "sample_index", "sample_images",
                 "misclassified_index", "misclassified_images", "probe_images"):
        np.testing.assert_array_equal(getattr(read, name), getattr(written, name), err_msg=name)


def test_damaged_predictions_are_named(tmp_path) -> None:
    (tmp_path / rundir.PREDICTIONS).write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RunDirError, match="predictions.npz: expected a readable .npz"):
        rundir.read_predictions(tmp_path)
    np.savez(tmp_path / rundir.PREDICTIONS, labels=np.zeros(3))
    with pytest.raises(RunDirError, match="predictions.npz: expected arrays .*missing split"):
        rundir.read_predictions(tmp_path)


def test_weight_stats_append_and_replace_repeated_epochs(tmp_path) -> None:
    rundir.append_weight_stats(tmp_path, 1, [("conv1", 0.5, 0.01, 0.02), ("fc1", 0.2, 0.002, 0.01)])
    rundir.append_weight_stats(tmp_path, 2, [("conv1", 0.6, 0.02, 1 / 30), ("fc1", 0.3, 0.003, 0.01)])
    rundir.append_weight_stats(tmp_path, 2, [("conv1", 0.7, 0.07, 0.1), ("fc1", 0.3, 0.003, 0.01)])
    stats = rundir.read_weight_stats(tmp_path)
    assert stats["conv1"]["epoch"] == [1.0, 2.0]
    assert stats["conv1"]["mean_abs_weight"] == [0.5, 0.7]  # the repeated epoch was replaced
    assert stats["fc1"]["ratio"] == [0.01, 0.01]
    (tmp_path / rundir.WEIGHT_STATS).write_text("epoch,layer\n1,conv1\n")
    with pytest.raises(RunDirError, match="weight_stats.csv: expected columns epoch,layer,"):
        rundir.read_weight_stats(tmp_path)
