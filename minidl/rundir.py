"""The run directory: the one owner of its file names, columns and metadata keys.

A training run (:mod:`minidl.training`) writes, and the report (:mod:`minidl.viz`)
reads, a directory holding:

=====================  ========================================================
``checkpoint.npz``     the state after the last completed epoch, or at a Ctrl-C
                       (a :mod:`minidl.io` checkpoint whose metadata is the
                       *training state* below): always resumable
``metrics.csv``        one row per epoch, columns :data:`METRIC_COLUMNS`; the
                       val/test cells are empty when there is no such split
``args.json``          the settings that define the run (what created it)
``predictions.npz``    the last evaluation's predictions, probabilities, sample
                       and misclassified images: what the report needs
``weight_stats.csv``   per epoch and layer: mean |W|, mean |dW| of the last step
                       and their ratio (cuda-convnet printed these)
``report.html``        the report, with its figures beside it
=====================  ========================================================

Every reader checks what it reads and raises :class:`RunDirError` naming the
file and the key, so a damaged or foreign run directory is one clear sentence.
"""

from __future__ import annotations

import csv
import dataclasses
import io as _io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from minidl import checks, io
from minidl.atomic import atomic_open, atomic_write_bytes

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.csv"
SETTINGS = "args.json"
PREDICTIONS = "predictions.npz"
WEIGHT_STATS = "weight_stats.csv"
REPORT = "report.html"

#: Columns of metrics.csv, in order. ``seconds`` is the epoch's wall time,
#: training and evaluation included.
METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                  "test_acc", "seconds")
#: Columns of weight_stats.csv.
WEIGHT_STAT_COLUMNS = ("epoch", "layer", "mean_abs_weight", "mean_abs_grad", "ratio")

#: The training state stored as a checkpoint's metadata (written by the trainer).
STATE_FORMAT = "minidl-run"
STATE_VERSION = 1
_STATE_KEYS = ("format", "version", "trainer", "settings", "input", "progress", "schedule",
               "rng_states", "metrics")


class RunDirError(ValueError):
    """A run directory, or a file in it, is missing or malformed; the message names both."""


# ================================================================== input spec
@dataclass(frozen=True)
class InputSpec:
    """How raw images become model inputs, and what the classes are called.

    Parameters
    ----------
    shape : (C, H, W)
        Shape of one raw image.
    mean, std : tuple of float, one per channel
        Normalisation on the scale of ``pixel / 255``: the model sees
        ``(pixel / 255 - mean) / std``.
    class_names : tuple of str
        One name per class, in label order.
    pad : int
        Zero-padding (in normalised units: the value of a black pixel) added on
        every side after normalising; LeNet-5 reads 28x28 digits as 32x32.

    Raw images are uint8 ``0..255`` (scaled to [0, 1] first) or already floating
    point (used as they are, then normalised and padded).
    """

    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    pad: int = 0

    def __post_init__(self) -> None:
        owner = "InputSpec"
        shape = tuple(self.shape)
        if len(shape) != 3 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in shape):
            raise ValueError(f"{owner}: expected shape (C, H, W) of positive ints, "
                             f"received {self.shape!r}")
        c = shape[0]
        for name in ("mean", "std"):
            values = tuple(getattr(self, name))
            if len(values) != c or not all(isinstance(v, (int, float, np.floating))
                                           and math.isfinite(v) for v in values):
                raise ValueError(f"{owner}: expected {name} to be {c} finite numbers (one per "
                                 f"channel), received {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if min(self.std) <= 0:
            raise ValueError(f"{owner}: expected std > 0 for every channel, received {self.std}")
        names = tuple(self.class_names)
        if len(names) < 1 or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"{owner}: expected class_names to be non-empty strings, "
                             f"received {self.class_names!r}")
        if not isinstance(self.pad, (int, np.integer)) or isinstance(self.pad, bool) or self.pad < 0:
            raise ValueError(f"{owner}: expected pad to be an int >= 0, received {self.pad!r}")
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "pad", int(self.pad))

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def model_shape(self) -> tuple[int, int, int]:
        """``(C, H + 2 pad, W + 2 pad)``: what the model reads."""
        c, h, w = self.shape
        return c, h + 2 * self.pad, w + 2 * self.pad

    @property
    def fill(self) -> tuple[float, ...]:
        """The normalised value of a black pixel, per channel (padding, shifted-in borders)."""
        return tuple(-m / s for m, s in zip(self.mean, self.std))

    def prepare(self, images: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """Raw images ``(N, C, H, W)`` -> normalised, padded model inputs of ``dtype``.

        Shape
        -----
        ``(N, C, H, W)`` in, ``(N, C, H + 2 pad, W + 2 pad)`` out.
        """
        if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[1:] != self.shape:
            got = images.shape if isinstance(images, np.ndarray) else type(images).__name__
            raise ValueError(f"InputSpec.prepare: expected images of shape (N, {', '.join(map(str, self.shape))}), "
                             f"received {got}")
        dtype = np.dtype(dtype)
        x = images.astype(dtype)
        if images.dtype == np.uint8:
            x *= dtype.type(1 / 255)
        elif images.dtype.kind != "f":
            raise ValueError(f"InputSpec.prepare: expected uint8 or floating-point images, "
                             f"received dtype {images.dtype}")
        mean = np.asarray(self.mean, dtype)[:, None, None]
        scale = np.asarray([1 / s for s in self.std], dtype)[:, None, None]
        x -= mean
        x *= scale
        if self.pad:
            p = self.pad
            padded = np.empty(x.shape[:2] + (x.shape[2] + 2 * p, x.shape[3] + 2 * p), dtype)
            padded[...] = np.asarray(self.fill, dtype)[:, None, None]
            padded[:, :, p:-p, p:-p] = x
            x = padded
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "mean": list(self.mean), "std": list(self.std),
                "class_names": list(self.class_names), "pad": self.pad}

    @classmethod
    def from_dict(cls, value: Any, source: str = "input spec") -> "InputSpec":
        """Rebuild from :meth:`to_dict`; ``source`` names where it came from in errors."""
        if not isinstance(value, dict):
            raise RunDirError(f"{source}: expected the input spec as a JSON object, "
                              f"received {type(value).__name__}")
        missing = [k for k in ("shape", "mean", "std", "class_names") if k not in value]
        if missing:
            raise RunDirError(f"{source}: expected input spec keys shape, mean, std, class_names, "
                              f"received {sorted(value)} (missing {', '.join(missing)})")
        try:
            return cls(tuple(value["shape"]), tuple(value["mean"]), tuple(value["std"]),
                       tuple(value["class_names"]), value.get("pad", 0))
        except (TypeError, ValueError) as error:
            raise RunDirError(f"{source}: {error}") from None


# ============================================================= training state
@dataclass(frozen=True)
class TrainerSettings:
    """What a resumed run must share with the run it continues."""

    epochs: int
    batch_size: int
    seed: int
    train_size: int
    #: Pieces each batch was cut into (minidl.data_parallel); checkpoints written
    #: before shards existed were trained on whole batches.
    shards: int = 1


@dataclass
class Progress:
    """Where a run stands: ``epoch`` epochs complete and ``step`` steps of the next one,
    with the running sums of that partial epoch (loss times images, right answers,
    images seen, seconds spent)."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0


@dataclass
class TrainingState:
    """What a checkpoint's metadata holds besides the weights and optimizer buffers.

    ``settings`` is whatever the caller recorded (train.py's arguments);
    ``rng_states`` the bit-generator state of every layer that draws random
    numbers (dropout), by layer name; ``metrics`` the rows of every epoch so far.
    """

    trainer: TrainerSettings
    settings: dict[str, Any]
    input: InputSpec | None
    progress: Progress
    schedule: dict[str, Any] | None
    rng_states: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def to_meta(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "version": STATE_VERSION,
                "trainer": dataclasses.asdict(self.trainer), "settings": self.settings,
                "input": None if self.input is None else self.input.to_dict(),
                "progress": dataclasses.asdict(self.progress), "schedule": self.schedule,
                "rng_states": self.rng_states, "metrics": self.metrics}

    @classmethod
    def from_meta(cls, meta: Any, source: str) -> "TrainingState":
        """Validate a checkpoint's metadata; ``source`` (the file) is named in every error."""
        if not isinstance(meta, dict):
            raise RunDirError(f"{source}: expected training metadata (a JSON object), received "
                              f"{type(meta).__name__}")
        if meta.get("format") != STATE_FORMAT:
            raise RunDirError(
                f"{source}: expected the metadata of a training run (format '{STATE_FORMAT}'), "
                f"received {'none' if not meta else 'keys ' + ', '.join(sorted(map(str, meta)))}"
                f" (a checkpoint saved with minidl.io.save holds weights but no run to resume)")
        if meta.get("version") != STATE_VERSION:
            raise RunDirError(f"{source}: expected training metadata version {STATE_VERSION}, "
                              f"received {meta.get('version')!r}")
        missing = [k for k in _STATE_KEYS if k not in meta]
        if missing:
            raise RunDirError(f"{source}: expected training metadata key(s) "
                              f"{', '.join(missing)}, received none")
        trainer = TrainerSettings(**_require_dict(meta, "trainer", TrainerSettings, source))
        progress = Progress(**_require_dict(meta, "progress", Progress, source))
        for key in ("settings", "rng_states"):
            if not isinstance(meta[key], dict):
                raise RunDirError(f"{source}: expected '{key}' to be a JSON object, "
                                  f"received {type(meta[key]).__name__}")
        if meta["schedule"] is not None and not isinstance(meta["schedule"], dict):
            raise RunDirError(f"{source}: expected 'schedule' to be a JSON object or null, "
                              f"received {type(meta['schedule']).__name__}")
        rows = meta["metrics"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) and set(METRIC_COLUMNS) <= set(r)
                                                 for r in rows):
            raise RunDirError(f"{source}: expected 'metrics' to be a list of rows with the "
                              f"columns {', '.join(METRIC_COLUMNS)}")
        for number, row in enumerate(rows, 1):
            for column in METRIC_COLUMNS:
                value = row[column]
                if value is not None and (isinstance(value, bool)
                                          or not isinstance(value, (int, float))):
                    raise RunDirError(f"{source}: expected a number or null in 'metrics', row "
                                      f"{number}, column '{column}', received {value!r}")
        spec = None if meta["input"] is None else InputSpec.from_dict(
            meta["input"], f"{source}: key 'input'")
        return cls(trainer, dict(meta["settings"]), spec, progress, meta["schedule"],
                   dict(meta["rng_states"]), list(rows))


#: The smallest value of each counter in the training state (the rest are >= 0).
_AT_LEAST_ONE = {"trainer": ("epochs", "batch_size", "train_size", "shards")}

#: Fields that checkpoints of earlier versions lack; they take the dataclass's default.
_ADDED_LATER = {"trainer": ("shards",)}


def _require_dict(meta: dict[str, Any], key: str, kind: type, source: str) -> dict[str, Any]:
    """``meta[key]`` checked to hold a count (an int >= 0, or >= 1 for a size) or a finite
    number >= 0 for each field of the dataclass ``kind``."""
    value = meta[key]
    if not isinstance(value, dict):
        raise RunDirError(f"{source}: expected '{key}' to be a JSON object, "
                          f"received {type(value).__name__}")
    out = {}
    for item in dataclasses.fields(kind):
        if item.name not in value and item.name in _ADDED_LATER.get(key, ()):
            out[item.name] = item.default  # the file was written before the field existed
            continue
        if item.name not in value:
            raise RunDirError(f"{source}: expected key '{key}.{item.name}', received keys "
                              f"{sorted(value)}")
        name = f"'{key}.{item.name}'"
        try:
            if item.type in ("int", int):
                least = 1 if item.name in _AT_LEAST_ONE.get(key, ()) else 0
                out[item.name] = checks.integer(value[item.name], name, source, minimum=least)
            else:
                out[item.name] = checks.real(value[item.name], name, source, minimum=0.0)
        except ValueError as error:
            raise RunDirError(str(error)) from None
    return out


def checkpoint_path(run: str | os.PathLike) -> Path:
    """``run`` itself when it is a file, else ``run/checkpoint.npz``."""
    path = Path(run)
    return path / CHECKPOINT if path.is_dir() else path


def check_output_dir(path: str | os.PathLike, owner: str) -> Path:
    """Refuse, before anything is computed, a directory that cannot be made or written.

    ``path`` is an existing directory, or a path whose nearest existing parent is
    a directory; either must be writable. ``owner`` names it in messages (the
    flag, e.g. ``"--out"``). Whether an existing directory may hold files is the
    caller's rule.

    Raises
    ------
    RunDirError
        If ``path`` is a file, lies inside a file, or cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{owner}: expected a directory, received {path}, an existing file")
    existing = path if path.is_dir() else next((p for p in path.parents if p.exists()), Path("."))
    if not existing.is_dir():
        raise RunDirError(f"{owner}: expected a path where a directory can be made, "
                          f"received {path}, inside the file {existing}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"{owner}: expected a directory that can be written, received "
                          f"{path}, but {existing} is not writable")
    return path


def read_state(checkpoint: str | os.PathLike) -> TrainingState:
    """The training state of a checkpoint (without building the model)."""
    document = io.read_document(checkpoint)
    return TrainingState.from_meta(document.get("meta"), str(checkpoint))


def read_input_spec(checkpoint: io.Checkpoint | dict[str, Any], source: str) -> InputSpec | None:
    """The input spec of a loaded checkpoint's metadata, or None when it records none."""
    meta = checkpoint.meta if isinstance(checkpoint, io.Checkpoint) else checkpoint
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT or meta.get("input") is None:
        return None
    return InputSpec.from_dict(meta["input"], f"{source}: key 'input'")


# ==================================================================== metrics
def metric_row(epoch: int, train_loss: float, train_acc: float,
               val: tuple[float, float] | None, test: tuple[float, float] | None,
               seconds: float) -> dict[str, Any]:
    """One row of metrics.csv; ``val`` and ``test`` are ``(loss, accuracy)`` or None."""
    return dict(zip(METRIC_COLUMNS, (epoch, train_loss, train_acc,
                                     *(val or (None, None)), *(test or (None, None)), seconds)))


def final_accuracy(metrics: dict[str, list[float]]) -> tuple[str, float] | None:
    """``("test", acc)`` of the last epoch, or ``("val", acc)`` without a test set; None if
    nothing was measured. ``metrics`` is :func:`read_metrics`'s (or
    :func:`metrics_from_rows`') form."""
    for split in ("test", "val"):
        values = metrics.get(f"{split}_acc") or []
        if values and math.isfinite(values[-1]):
            return split, float(values[-1])
    return None


def metric_series(metrics: dict[str, list[float]], kind: str) -> dict[str, list[float]]:
    """``{"train": ..., "val": ..., "test": ...}`` of ``kind`` ("loss" or "acc"), the splits
    with at least one measured (finite) value only."""
    out = {}
    for split in ("train", "val", "test"):
        values = metrics.get(f"{split}_{kind}")
        if values is not None and any(math.isfinite(v) for v in values):
            out[split] = list(values)
    return out


def format_row(row: dict[str, Any], epochs: int) -> str:
    """One epoch's row as the line a training run prints."""
    text = (f"epoch {row['epoch']:>2}/{epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.4f}")
    for split in ("val", "test"):
        if row[f"{split}_loss"] is not None:
            text += f"  {split} loss {row[f'{split}_loss']:.4f} acc {row[f'{split}_acc']:.4f}"
    return text + f"  {row['seconds']:.1f}s"


def format_metrics(rows: Sequence[dict[str, Any]]) -> str:
    """The text of metrics.csv: a header, then one line per epoch (empty cells for None)."""
    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    for row in rows:
        writer.writerow(["" if row.get(k) is None else
                         (f"{row[k]:.6f}" if isinstance(row[k], float) else row[k])
                         for k in METRIC_COLUMNS])
    return buffer.getvalue()


def write_metrics(run: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    return atomic_write_bytes(Path(run) / METRICS, format_metrics(rows).encode("utf-8"))


def read_metrics(path: str | os.PathLike) -> dict[str, list[float]]:
    """A metrics CSV as one list of floats per column; empty cells become NaN.

    ``path`` is the file or the run directory. Extra numeric columns are kept.

    Raises
    ------
    RunDirError
        If a column of :data:`METRIC_COLUMNS` is missing or a cell is not a number.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError) as error:
        raise RunDirError(f"{path}: cannot read ({error})") from None
    missing = [name for name in METRIC_COLUMNS if name not in header]
    if missing:
        raise RunDirError(f"{path}: expected columns {','.join(METRIC_COLUMNS)}, received header "
                          f"{','.join(header) or '(empty file)'} (missing: {', '.join(missing)})")
    metrics: dict[str, list[float]] = {}
    for index, name in enumerate(header):
        values = []
        for line, row in rows:
            cell = row[index].strip() if index < len(row) else ""
            try:
                values.append(math.nan if cell == "" else float(cell))
            except ValueError:
                if name in METRIC_COLUMNS:
                    raise RunDirError(f"{path}: expected a number in column {name!r} on line "
                                      f"{line}, received {cell!r}") from None
                break  # a text column (e.g. notes) is not a metric
            if name == "epoch" and math.isnan(values[-1]):
                raise RunDirError(f"{path}: expected a number in column 'epoch' on line {line}, "
                                  f"received an empty cell")
        else:
            metrics[name] = values
    return metrics


def metrics_from_rows(rows: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """The checkpoint's copy of the metrics, in :func:`read_metrics`'s form."""
    return {k: [math.nan if r.get(k) is None else float(r[k]) for r in rows]
            for k in METRIC_COLUMNS}


# ============================================================ weight statistics
def append_weight_stats(run: str | os.PathLike, epoch: int,
                        stats: Sequence[tuple[str, float, float, float]]) -> Path:
    """Add one epoch's rows (layer, mean |W|, mean |dW|, ratio) to weight_stats.csv.

    Rows of this epoch or later already in the file (a resumed run repeating an
    epoch) are replaced, so the file always describes one history.
    """
    path = Path(run) / WEIGHT_STATS
    kept: list[list[str]] = []
    if path.is_file():
        read_weight_stats(run)  # a damaged file is reported, not half-read
        with open(path, newline="", encoding="utf-8") as handle:
            kept = [row for row in list(csv.reader(handle))[1:] if row and float(row[0]) < epoch]
    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(WEIGHT_STAT_COLUMNS)
    writer.writerows(kept)
    for layer, weight, grad, ratio in stats:
        writer.writerow([epoch, layer, f"{weight:.6g}", f"{grad:.6g}", f"{ratio:.6g}"])
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def read_weight_stats(run: str | os.PathLike) -> dict[str, dict[str, list[float]]]:
    """weight_stats.csv as ``{layer: {"epoch": [...], "mean_abs_weight": [...], ...}}``."""
    path = Path(run) / WEIGHT_STATS
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or list(reader.fieldnames) != list(WEIGHT_STAT_COLUMNS):
                raise RunDirError(f"{path}: expected columns {','.join(WEIGHT_STAT_COLUMNS)}, "
                                  f"received {','.join(reader.fieldnames or []) or '(empty file)'}")
            out: dict[str, dict[str, list[float]]] = {}
            for row in reader:
                series = out.setdefault(row["layer"], {k: [] for k in WEIGHT_STAT_COLUMNS
                                                       if k != "layer"})
                for key in series:
                    series[key].append(float(row[key]))
    except (OSError, UnicodeDecodeError) as error:
        raise RunDirError(f"{path}: cannot read ({error})") from None
    except (ValueError, TypeError) as error:
        if isinstance(error, RunDirError):
            raise
        raise RunDirError(f"{path}: expected numbers in every row ({error})") from None
    return out


# =================================================================== settings
def write_settings(run: str | os.PathLike, settings: dict[str, Any]) -> Path:
    text = json.dumps(settings, indent=2, allow_nan=False) + "\n"
    return atomic_write_bytes(Path(run) / SETTINGS, text.encode("utf-8"))


def read_settings(run: str | os.PathLike) -> dict[str, Any]:
    path = Path(run) / SETTINGS
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise RunDirError(f"{path}: cannot read ({error})") from None
    except json.JSONDecodeError as error:
        raise RunDirError(f"{path}: expected JSON, received malformed text ({error})") from None
    if not isinstance(value, dict):
        raise RunDirError(f"{path}: expected a JSON object of settings, "
                          f"received {type(value).__name__}")
    return value


# ================================================================ predictions
@dataclass
class Predictions:
    """One evaluation, kept for the report.

    ``split`` names the data (``"test"`` or ``"validation"``); ``labels``,
    ``predicted`` ``(N,)`` and ``probabilities`` ``(N, K)`` cover all of it;
    ``sample_index`` / ``sample_images`` a few images of each class and
    ``misclassified_index`` / ``misclassified_images`` the first wrong ones, as
    raw images ``(n, C, H, W)`` (uint8, or float when the data was float);
    ``probe_images`` are the first images of the split (images ``0 .. P-1``, so
    their labels are ``labels[:P]``), a fixed set for the inspection tools (the
    dataset patches that excite each feature map most).
    """

    split: str
    labels: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    sample_index: np.ndarray
    sample_images: np.ndarray
    misclassified_index: np.ndarray
    misclassified_images: np.ndarray
    probe_images: np.ndarray

    @classmethod
    def from_evaluation(cls, split: str, images: np.ndarray, labels: np.ndarray,
                        predicted: np.ndarray, probabilities: np.ndarray, *,
                        per_class: int = 2, wrong: int = 100,
                        probe: int = 1000) -> "Predictions":
        classes = np.unique(labels)
        samples = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in classes]
                                 ) if len(labels) else np.zeros(0, np.int64)
        misclassified = np.flatnonzero(predicted != labels)[:wrong]
        return cls(split, labels, predicted, probabilities, samples, images[samples],
                   misclassified, images[misclassified], images[:probe])


_PREDICTION_ARRAYS = ("labels", "predicted", "probabilities", "sample_index", "sample_images",
                      "misclassified_index", "misclassified_images", "probe_images")


def write_predictions(run: str | os.PathLike, predictions: Predictions) -> Path:
    path = Path(run) / PREDICTIONS
    p = predictions
    with atomic_open(path) as handle:
        np.savez_compressed(
            handle, split=np.frombuffer(p.split.encode("utf-8"), np.uint8),
            labels=p.labels.astype(np.int64), predicted=p.predicted.astype(np.int64),
            probabilities=p.probabilities.astype(np.float32),
            sample_index=p.sample_index.astype(np.int64), sample_images=p.sample_images,
            misclassified_index=p.misclassified_index.astype(np.int64),
            misclassified_images=p.misclassified_images, probe_images=p.probe_images)
    return path


def read_predictions(run: str | os.PathLike) -> Predictions:
    """Read and check predictions.npz: every array present, shapes that agree, indices in range."""
    path = Path(run) / PREDICTIONS
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {name: archive[name] for name in archive.files}
    except Exception as error:  # zip, pickle, truncation and OS errors alike: one message
        raise RunDirError(f"{path}: expected a readable .npz of predictions, received "
                          f"{type(error).__name__}: {error}") from None
    missing = [k for k in ("split",) + _PREDICTION_ARRAYS if k not in data]
    if missing:
        raise RunDirError(f"{path}: expected arrays {', '.join(('split',) + _PREDICTION_ARRAYS)}, "
                          f"received {sorted(data)} (missing {', '.join(missing)})")
    n = len(data["labels"])
    if data["labels"].ndim != 1 or data["predicted"].shape != (n,):
        raise RunDirError(f"{path}: expected 'labels' and 'predicted' of one length, received "
                          f"shapes {data['labels'].shape} and {data['predicted'].shape}")
    if data["probabilities"].ndim != 2 or len(data["probabilities"]) != n:
        raise RunDirError(f"{path}: expected 'probabilities' of shape ({n}, K), "
                          f"received {data['probabilities'].shape}")
    for index, images in (("sample_index", "sample_images"),
                          ("misclassified_index", "misclassified_images")):
        idx, img = data[index], data[images]
        if img.ndim != 4 or len(idx) != len(img):
            raise RunDirError(f"{path}: expected '{images}' of shape (n, C, H, W) matching "
                              f"'{index}', received {img.shape} for {len(idx)} indices")
        if idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n):
            raise RunDirError(f"{path}: expected '{index}' to hold indices below {n}")
    probe = data["probe_images"]
    if probe.ndim != 4 or len(probe) > n:
        raise RunDirError(f"{path}: expected 'probe_images' of shape (P, C, H, W) with P <= "
                          f"{n}, received {probe.shape}")
    try:
        split = data["split"].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise RunDirError(f"{path}: expected 'split' to be UTF-8 text") from None
    return Predictions(split, *(data[k] for k in _PREDICTION_ARRAYS))
