"""What a report is drawn from: a run directory or a bare checkpoint, read through
:mod:`minidl.rundir`, with a note for everything that is missing and why."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minidl import io, rundir
from minidl.layers.base import Layer
from minidl.rundir import InputSpec, Predictions, RunDirError
from minidl.viz.page import esc


class ReportError(ValueError):
    """The source is not something a report can be drawn from (missing, not a checkpoint)."""


@dataclass
class RunView:
    """Everything read from the source.

    ``kind`` is ``"run"`` (a run directory) or ``"checkpoint"`` (a bare file);
    ``spec`` says how images become inputs (None when the checkpoint does not
    record it); ``metrics`` is ``{column: values}`` from metrics.csv or the
    checkpoint's copy; ``notes`` explain, in HTML, what is missing and why.
    """

    kind: str
    source: Path
    checkpoint: Path
    model: Layer
    spec: InputSpec | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, list[float]] | None = None
    metrics_origin: str = ""
    predictions: Predictions | None = None
    weight_stats: dict[str, dict[str, list[float]]] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        model = self.settings.get("model") or type(self.model).__name__
        dataset = self.settings.get("dataset")
        return f"{model} on {dataset}" if dataset else str(model)


def open_run(source: str | os.PathLike) -> RunView:
    """Read a run directory (or a checkpoint file) for drawing.

    Raises
    ------
    ReportError
        If ``source`` does not exist, is a directory without a checkpoint, or is
        not a readable minidl checkpoint. Anything else missing or damaged
        becomes a note, and the report draws what it can.
    """
    path = Path(source)
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory (expected a run directory or a "
                          f"checkpoint .npz)")
    if path.is_dir():
        kind, checkpoint = "run", path / rundir.CHECKPOINT
        if not checkpoint.is_file():
            raise ReportError(f"{path}: expected a run directory holding {rundir.CHECKPOINT}, "
                              f"received a directory without one")
    else:
        kind, checkpoint = "checkpoint", path
    try:
        loaded = io.load(checkpoint)
    except io.CheckpointError as error:
        raise ReportError(f"not a minidl checkpoint: {error}") from None
    view = RunView(kind, path, checkpoint, loaded.model)

    state = None
    try:
        state = rundir.TrainingState.from_meta(loaded.meta, str(checkpoint))
        view.spec, view.settings = state.input, dict(state.settings)
    except RunDirError as error:
        view.notes.append(f"The checkpoint holds no readable training state ({esc(error)}): "
                          f"what the images are and how they were prepared is unknown, so "
                          f"nothing that needs input images is drawn.")
    if kind == "run":
        _read_run_files(view, path)
    if view.metrics is None and state is not None and state.metrics:
        view.metrics = rundir.metrics_from_rows(state.metrics)
        view.metrics_origin = "the checkpoint's metadata"
    if view.metrics is None:
        where = rundir.METRICS if kind == "run" else "the checkpoint's metadata"
        view.notes.append(f"Training curves: no per-epoch metrics in {where} (a run interrupted "
                          f"before its first epoch ended has none).")
    if kind == "checkpoint":
        hint = ""
        if (path.parent / rundir.PREDICTIONS).is_file():
            hint = (f" This checkpoint sits in a run directory: <code>python -m minidl.viz "
                    f"{esc(path.parent.name or '.')}</code> draws the full report.")
        view.notes.append("A bare checkpoint holds the weights and the model's description but "
                          "no data: feature maps and the dataset patches need input images, "
                          "the confusion matrix and the misclassified images need predictions. "
                          "Give the run directory for those." + hint)
    return view


def _read_run_files(view: RunView, path: Path) -> None:
    if (path / rundir.SETTINGS).is_file():
        try:
            view.settings = rundir.read_settings(path)
        except RunDirError as error:
            view.notes.append(f"{esc(error)}; the checkpoint's copy of the settings is used.")
    if (path / rundir.METRICS).is_file():
        try:
            view.metrics, view.metrics_origin = rundir.read_metrics(path), rundir.METRICS
        except RunDirError as error:
            view.notes.append(f"{esc(error)}.")
    if (path / rundir.PREDICTIONS).is_file():
        try:
            view.predictions = rundir.read_predictions(path)
        except RunDirError as error:
            view.notes.append(f"{esc(error)}: feature maps, the confusion matrix and the "
                              f"misclassified images are left out.")
    else:
        view.notes.append(f"No {rundir.PREDICTIONS} in the run directory (it is written after "
                          f"each completed epoch): feature maps, the confusion matrix and the "
                          f"misclassified images need it and are left out.")
    if (path / rundir.WEIGHT_STATS).is_file():
        try:
            view.weight_stats = rundir.read_weight_stats(path)
        except RunDirError as error:
            view.notes.append(f"{esc(error)}.")
