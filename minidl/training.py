"""The run: epochs of steps, evaluation, checkpoints, bit-exact resume, Ctrl-C, NaN stop.

Train a classifier on NumPy arrays::

    trainer = Trainer(model, SGD(model.parameters(), lr=0.05, momentum=0.9),
                      epochs=5, batch_size=64, seed=0, run_dir="runs/mine")
    history = trainer.fit((x_train, y_train), val=(x_val, y_val))

What happens, in order, for each epoch ``e`` and step ``s``:

* the training images are shuffled by ``default_rng([seed, 1, e])``;
* a batch is drawn, prepared by the input spec (uint8 images are scaled,
  normalised and padded only now, so a dataset stays uint8 in memory),
  augmented with ``default_rng([seed, 2, e, s])``, run forward and backward
  (cut into ``shards`` pieces, run in as many processes as there are cores: see
  :mod:`minidl.data_parallel`), and the optimizer and the schedule take one step;
* a non-finite loss stops the run (:class:`TrainingStopped`) without saving:
  the last checkpoint, of the last completed epoch, stays as it was;
* a first Ctrl-C is honoured between two steps: a checkpoint of exactly that
  position is saved and :class:`TrainingInterrupted` is raised; a second Ctrl-C
  interrupts at once;
* after the last step the model is evaluated (evaluation mode, nothing kept
  for backward) on the validation and test data, a row of metrics is added,
  and, with a ``run_dir``, the checkpoint, ``metrics.csv``, ``predictions.npz``
  and ``weight_stats.csv`` are written (names owned by :mod:`minidl.rundir`).

Because every random draw comes from ``(seed, epoch, step)`` or from a state
stored in the checkpoint (dropout's generators), ``fit(..., resume=True)``
continues a run to bit-identical numbers.

Hooks: pass :class:`Callback` objects; ``on_epoch_end(trainer, epoch, metrics)``
is where Keras's and Lightning's users look. Setting ``trainer.stop_training``
ends the run after the current epoch.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from minidl import checks, io, rundir
from minidl.data_parallel import ShardedForward, ShardedStep, default_shards
from minidl.layers.base import Layer
from minidl.losses import SoftmaxCrossEntropy, softmax
from minidl.optim import Optimizer
from minidl.rundir import (InputSpec, Predictions, Progress, RunDirError, TrainerSettings,
                           TrainingState)
from minidl.schedules import LRScheduler

__all__ = ["Trainer", "Callback", "Evaluation", "evaluate", "TrainingStopped",
           "TrainingInterrupted"]


class TrainingStopped(RuntimeError):
    """The run cannot continue (a non-finite loss); the message says why and what was kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C was honoured between two steps; the message says where the checkpoint is.

    ``run_dir`` is the run directory holding it (None when training had none).
    """

    def __init__(self, message: str, run_dir: Path | None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


class Callback:
    """Hooks into :meth:`Trainer.fit`; override the ones you need. ``epoch`` counts from 1."""

    def on_train_begin(self, trainer: "Trainer") -> None:
        pass

    def on_step_end(self, trainer: "Trainer", epoch: int, step: int, loss: float) -> None:
        """After the optimizer step ``step`` (from 0) of epoch ``epoch``."""

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict[str, Any]) -> None:
        """After evaluation; ``metrics`` is the row just added (the columns of metrics.csv)."""

    def on_train_end(self, trainer: "Trainer") -> None:
        pass


@dataclass
class Evaluation:
    """Plain cross-entropy, accuracy, predicted labels ``(N,)`` and probabilities ``(N, K)``."""

    loss: float
    accuracy: float
    predicted: np.ndarray
    probabilities: np.ndarray


class _InterruptFlag:
    """Turn the first Ctrl-C into a request honoured between steps; a second one interrupts.

    Stopping between steps makes the saved checkpoint the state after a whole
    number of steps, so a resumed run reproduces an uninterrupted one.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_InterruptFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _prepare(images: np.ndarray, spec: InputSpec | None, dtype: np.dtype) -> np.ndarray:
    if spec is not None:
        return spec.prepare(images, dtype)
    return images.astype(dtype, copy=False)


def evaluate(model: Layer, images: np.ndarray, labels: np.ndarray, *,
             input_spec: InputSpec | None = None, batch_size: int = 1000,
             progress: bool = False, desc: str = "eval", shards: int | None = None
             ) -> Evaluation:
    """Evaluate a classifier in evaluation mode, keeping nothing for backward.

    ``images`` are raw (prepared by ``input_spec`` batch by batch) or, without a
    spec, already the model's float inputs; ``labels`` are integers. The loss
    is the plain cross-entropy whatever the training loss was. Each batch is cut
    into ``shards`` pieces run in processes of their own when there are cores for
    them (:class:`~minidl.data_parallel.ShardedForward`); by default as the model
    would be trained (:func:`~minidl.data_parallel.default_shards`: 2 for a model
    without batch norm or dropout, whose small layers leave a core idle; whole
    batches for the others, whose layers keep both cores busy).
    """
    params = model.parameters()
    dtype = params[0].dtype if params else np.dtype(np.float32)
    criterion = SoftmaxCrossEntropy()
    total, predicted, probabilities = 0.0, [], []
    with ShardedForward(model, default_shards(model) if shards is None else shards) as forward:
        for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False,
                          disable=not progress, unit="batch", dynamic_ncols=True):
            stop = start + batch_size
            logits = forward(_prepare(images[start:stop], input_spec, dtype))
            total += criterion.forward(logits, labels[start:stop]) * len(logits)
            predicted.append(logits.argmax(axis=1))
            probabilities.append(softmax(logits).astype(np.float32, copy=False))
    predicted_all = np.concatenate(predicted)
    return Evaluation(total / len(images), float((predicted_all == labels).mean()),
                      predicted_all, np.concatenate(probabilities))


class Trainer:
    """Train a classifier: the loop, evaluation, checkpoints and resume.

    Parameters
    ----------
    model : Layer
        Maps a batch ``(N, C, H, W)`` (as prepared by ``input_spec``) to logits ``(N, K)``.
    optimizer : Optimizer
        Over ``model.parameters()``.
    epochs, batch_size : int
    loss : optional
        The training loss (default :class:`~minidl.losses.SoftmaxCrossEntropy`);
        evaluation always reports the plain cross-entropy.
    schedule : LRScheduler, optional
        Stepped once per training step.
    seed : int
        Shuffling and augmentation are drawn from it (see the module doc).
    input_spec : InputSpec, optional
        How raw images become inputs (uint8 images need one). Without it, float
        arrays are used as they are, in the model's dtype.
    augment : callable ``(x, rng) -> x``, optional
        Applied to each prepared training batch, e.g. :class:`minidl.data.Augmentation`.
    run_dir : path, optional
        Where checkpoints, metrics and predictions go; nothing is written without it.
    settings : dict, optional
        JSON-serialisable description of the run (stored in ``args.json`` and the
        checkpoint; ``train.py`` stores its arguments there).
    callbacks : sequence of Callback
    progress : bool
        tqdm bars and one line per epoch.
    eval_batch_size : int
    shards : int, optional
        Pieces each training batch is cut into, run forward and backward in
        processes of their own when there are cores for them, their gradients
        summed (:mod:`minidl.data_parallel`). Default: 2 when every layer allows it
        (no batch normalisation, no dropout), else 1. The numbers depend on
        ``shards``, never on the number of cores. A resume refuses shards other than
        the run's (``rundir.read_state(path).trainer.shards``; 1 for runs from before
        shards existed).
    """

    def __init__(self, model: Layer, optimizer: Optimizer, *, epochs: int, batch_size: int = 64,
                 loss: Any = None, schedule: LRScheduler | None = None, seed: int = 0,
                 input_spec: InputSpec | None = None,
                 augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 run_dir: str | Path | None = None, settings: dict[str, Any] | None = None,
                 callbacks: Sequence[Callback] = (), progress: bool = True,
                 eval_batch_size: int = 1000, shards: int | None = None) -> None:
        owner = "Trainer"
        if not isinstance(model, Layer):
            raise ValueError(f"{owner}: expected a minidl Layer as the model, "
                             f"received {type(model).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"{owner}: expected a minidl Optimizer, "
                             f"received {type(optimizer).__name__}")
        if schedule is not None and not isinstance(schedule, LRScheduler):
            raise ValueError(f"{owner}: expected schedule to be an LRScheduler or None, "
                             f"received {type(schedule).__name__}")
        if input_spec is not None and not isinstance(input_spec, InputSpec):
            raise ValueError(f"{owner}: expected input_spec to be an InputSpec or None, "
                             f"received {type(input_spec).__name__}")
        self.model = model
        self.optimizer = optimizer
        self.epochs = checks.integer(epochs, "epochs", owner, minimum=1)
        self.batch_size = checks.integer(batch_size, "batch_size", owner, minimum=1)
        self.seed = checks.integer(seed, "seed", owner, minimum=0)
        self.eval_batch_size = checks.integer(eval_batch_size, "eval_batch_size", owner, minimum=1)
        self.loss = loss if loss is not None else SoftmaxCrossEntropy()
        self.schedule = schedule
        self.input_spec = input_spec
        self.augment = augment
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.settings = dict(settings or {})
        self.callbacks = list(callbacks)
        self.progress = checks.boolean(progress, "progress", owner)
        params = model.parameters()
        self.dtype = params[0].dtype if params else np.dtype(np.float32)
        self.history: list[dict[str, Any]] = []
        self.stop_training = False
        self._step = ShardedStep(model, self.loss,
                                 default_shards(model) if shards is None else shards)
        self.shards = self._step.shards

    # -- data -----------------------------------------------------------------
    def _check_split(self, data: Any, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        if data is None:
            return None
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(f"Trainer.fit: expected {name} as a pair (images, labels), "
                             f"received {type(data).__name__}")
        x, y = data
        if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
            got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"Trainer.fit: expected {name} images as a non-empty array "
                             f"(N, ...), received {got}")
        y = np.asarray(y)
        if y.shape != (len(x),) or y.dtype.kind not in "iu":
            raise ValueError(f"Trainer.fit: expected {name} labels as {len(x)} integers, "
                             f"received {y.dtype} {y.shape}")
        if self.input_spec is None and x.dtype.kind != "f":
            raise ValueError(f"Trainer.fit: expected float {name} images, or an input_spec to "
                             f"prepare {x.dtype} images, received dtype {x.dtype} and no spec")
        if self.input_spec is not None and tuple(x.shape[1:]) != self.input_spec.shape:
            raise ValueError(f"Trainer.fit: expected {name} images of shape (N, "
                             f"{', '.join(map(str, self.input_spec.shape))}) as the input spec "
                             f"says, received {x.shape}")
        return x, y

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Raw images -> model inputs (the input spec's preparation, in the model's dtype)."""
        return _prepare(images, self.input_spec, self.dtype)

    def evaluate(self, images: np.ndarray, labels: np.ndarray, desc: str = "eval") -> Evaluation:
        """:func:`evaluate` with this trainer's model, input spec, batch size and shards."""
        self._step.close()  # one worker process at a time: the evaluation forks its own
        return evaluate(self.model, images, labels, input_spec=self.input_spec,
                        batch_size=self.eval_batch_size, progress=self.progress, desc=desc,
                        shards=self.shards)

    # -- state ----------------------------------------------------------------------
    def _rng_layers(self) -> dict[str, Any]:
        return {name or "(model)": layer for name, layer in self.model.named_modules()
                if isinstance(getattr(layer, "rng", None), np.random.Generator)}

    def _trainer_settings(self, train_size: int) -> TrainerSettings:
        return TrainerSettings(self.epochs, self.batch_size, self.seed, train_size, self.shards)

    def _state(self, progress: Progress, train_size: int) -> TrainingState:
        return TrainingState(
            trainer=self._trainer_settings(train_size), settings=self.settings,
            input=self.input_spec, progress=progress,
            schedule=self.schedule.state_dict() if self.schedule is not None else None,
            rng_states={name: layer.rng.bit_generator.state
                        for name, layer in self._rng_layers().items()},
            metrics=self.history)

    def _save(self, run_dir: Path, state: TrainingState) -> Path:
        return io.save(run_dir / rundir.CHECKPOINT, self.model, self.optimizer,
                       meta=state.to_meta())

    def _restore(self, train_size: int) -> Progress:
        if self.run_dir is None:
            raise ValueError("Trainer.fit: resume=True needs a run_dir holding a checkpoint")
        path = self.run_dir / rundir.CHECKPOINT
        state = rundir.read_state(path)
        ours = dataclasses.asdict(self._trainer_settings(train_size))
        theirs = dataclasses.asdict(state.trainer)
        clashes = [f"{k}={ours[k]} (the run has {theirs[k]})" for k in ours
                   if theirs[k] != ours[k]]
        if clashes:
            raise RunDirError(f"{path}: a resumed run continues with its own settings; received "
                              f"{', '.join(clashes)}")
        if (state.schedule is None) != (self.schedule is None):
            raise RunDirError(f"{path}: expected {'a' if state.schedule else 'no'} learning-rate "
                              f"schedule, as the run had, received "
                              f"{'one' if self.schedule else 'none'}")
        steps = math.ceil(train_size / self.batch_size)
        if state.progress.step >= steps or state.progress.epoch > self.epochs:
            raise RunDirError(f"{path}: expected a position within the run ({self.epochs} "
                              f"epochs of {steps} steps), received epoch "
                              f"{state.progress.epoch}, step {state.progress.step} (key "
                              f"'progress')")
        layers = self._rng_layers()
        if set(layers) != set(state.rng_states):
            raise RunDirError(f"{path}: expected random-number states for the layers "
                              f"{sorted(layers)}, received {sorted(state.rng_states)}")
        if (self.run_dir / rundir.WEIGHT_STATS).is_file():
            # Read now, so that a damaged file stops the run before, not after, an epoch.
            rundir.read_weight_stats(self.run_dir)
        io.load(path, self.model, self.optimizer)
        if self.schedule is not None:
            try:
                self.schedule.load_state_dict(state.schedule)
            except ValueError as error:
                raise RunDirError(f"{path}: key 'schedule': {error}") from None
        for name, layer in layers.items():
            try:
                layer.rng.bit_generator.state = state.rng_states[name]
            except (TypeError, ValueError, KeyError) as error:
                raise RunDirError(f"{path}: key 'rng_states.{name}': {error}") from None
        self.history = list(state.metrics)
        return state.progress

    # -- the loop ---------------------------------------------------------------------
    def fit(self, train: tuple[np.ndarray, np.ndarray],
            val: tuple[np.ndarray, np.ndarray] | None = None,
            test: tuple[np.ndarray, np.ndarray] | None = None, *,
            resume: bool = False) -> list[dict[str, Any]]:
        """Train for the remaining epochs; returns the metric rows of every epoch so far.

        ``train``, ``val`` and ``test`` are ``(images, labels)`` pairs; images are
        raw (prepared per batch), labels integers. With ``resume=True`` the run
        continues from ``run_dir/checkpoint.npz``.

        Raises
        ------
        TrainingStopped
            On a non-finite training loss (nothing is saved).
        TrainingInterrupted
            On Ctrl-C, after saving a resumable checkpoint (with a ``run_dir``).
        RunDirError, io.CheckpointError
            When the run directory already holds a run (without ``resume``), or
            its checkpoint cannot be resumed with these settings.
        """
        x_train, y_train = self._check_split(train, "train")  # type: ignore[misc]
        val = self._check_split(val, "val")
        test = self._check_split(test, "test")
        n = len(x_train)
        steps = math.ceil(n / self.batch_size)
        progress = Progress()
        if resume:
            progress = self._restore(n)
        elif self.run_dir is not None and (self.run_dir / rundir.CHECKPOINT).exists():
            raise RunDirError(f"{self.run_dir}: already holds a run ({rundir.CHECKPOINT}); "
                              f"resume it or choose another directory")
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not resume or not (self.run_dir / rundir.SETTINGS).exists():
                # A resumed run keeps its files as they are until an epoch ends.
                rundir.write_settings(self.run_dir, self.settings)

        self.stop_training = False
        for callback in self.callbacks:
            callback.on_train_begin(self)
        with _InterruptFlag() as interrupt, self._step:  # the step's processes end with fit
            while progress.epoch < self.epochs and not self.stop_training:
                self._train_epoch(x_train, y_train, progress, steps, interrupt)
                row = self._end_epoch(progress, val, test, n)
                progress = Progress(epoch=progress.epoch + 1)
                for callback in self.callbacks:
                    callback.on_epoch_end(self, progress.epoch, row)
        for callback in self.callbacks:
            callback.on_train_end(self)
        return self.history

    def _train_epoch(self, x: np.ndarray, y: np.ndarray, progress: Progress, steps: int,
                     interrupt: _InterruptFlag) -> None:
        """Run the remaining steps of epoch ``progress.epoch``, updating ``progress``."""
        epoch = progress.epoch
        order = np.random.default_rng([self.seed, 1, epoch]).permutation(len(x))
        bar = tqdm(total=steps, initial=progress.step, desc=f"epoch {epoch + 1}/{self.epochs}",
                   leave=False, disable=not self.progress, unit="step", dynamic_ncols=True)
        started = time.perf_counter() - progress.seconds
        try:
            for step in range(progress.step, steps):
                progress.step = step
                if interrupt.requested:
                    progress.seconds = time.perf_counter() - started
                    self._interrupted(progress, steps, len(x))
                index = order[step * self.batch_size:(step + 1) * self.batch_size]
                xb, yb = self.prepare(x[index]), y[index]
                if self.augment is not None:
                    xb = self.augment(xb, np.random.default_rng([self.seed, 2, epoch, step]))
                self.optimizer.zero_grad()
                value, logits = self._step(xb, yb)
                if not math.isfinite(value):
                    self._stopped(value, epoch, step)
                self.optimizer.step()
                if self.schedule is not None:
                    self.schedule.step()
                progress.loss_sum += value * len(index)
                progress.correct += int((logits.argmax(axis=1) == yb).sum())
                progress.seen += len(index)
                bar.update(1)
                if step % 20 == 0 or step == steps - 1:
                    bar.set_postfix(loss=f"{progress.loss_sum / progress.seen:.4f}",
                                    acc=f"{progress.correct / progress.seen:.4f}", refresh=False)
                for callback in self.callbacks:
                    callback.on_step_end(self, epoch + 1, step, value)
        finally:
            bar.close()
        progress.step = steps
        progress.seconds = time.perf_counter() - started

    def _interrupted(self, progress: Progress, steps: int, train_size: int) -> None:
        where = f"epoch {progress.epoch + 1}, step {progress.step}/{steps}"
        if self.run_dir is None:
            raise TrainingInterrupted(f"interrupted at {where} (no run_dir: nothing saved)", None)
        path = self._save(self.run_dir, self._state(progress, train_size))
        raise TrainingInterrupted(f"interrupted: saved a resumable checkpoint at {where} "
                                  f"in {path}", self.run_dir)

    def _stopped(self, value: float, epoch: int, step: int) -> None:
        kept = "no checkpoint had been saved yet"
        if self.run_dir is None:
            kept = "nothing is saved without a run_dir"
        elif (self.run_dir / rundir.CHECKPOINT).exists():
            kept = (f"the last good checkpoint, {self.run_dir / rundir.CHECKPOINT} (end of epoch "
                    f"{epoch}), is untouched")
        raise TrainingStopped(
            f"the training loss became {value} at epoch {epoch + 1}, step {step + 1} (learning "
            f"rate {self.optimizer.lr:.3g}); stopped without saving: {kept}")

    def _end_epoch(self, progress: Progress, val: tuple[np.ndarray, np.ndarray] | None,
                   test: tuple[np.ndarray, np.ndarray] | None, train_size: int) -> dict[str, Any]:
        """Evaluate, add the epoch's row, save what the run directory holds; returns the row."""
        started = time.perf_counter()
        results = {name: self.evaluate(*data, desc=name) if data is not None else None
                   for name, data in (("val", val), ("test", test))}
        epoch = progress.epoch + 1
        row = rundir.metric_row(
            epoch, progress.loss_sum / progress.seen, progress.correct / progress.seen,
            *((r.loss, r.accuracy) if r is not None else None for r in results.values()),
            seconds=progress.seconds + time.perf_counter() - started)
        self.history.append(row)
        if self.run_dir is not None:
            # Imported here: minidl.inspect brings in SciPy, which a command line that
            # only checks its arguments (or a run without a directory) need not load.
            from minidl.inspect import weight_statistics
            self._save(self.run_dir, self._state(Progress(epoch=epoch), train_size))
            rundir.write_metrics(self.run_dir, self.history)
            rundir.append_weight_stats(self.run_dir, epoch, [
                (s.name or "(model)", s.mean_abs_weight, s.mean_abs_grad, s.ratio)
                for s in weight_statistics(self.model)])
            # The report shows the test set's predictions, or validation's without one.
            for split, data, result in (("test", test, results["test"]),
                                        ("validation", val, results["val"])):
                if data is not None and result is not None:
                    rundir.write_predictions(self.run_dir, Predictions.from_evaluation(
                        split, data[0], data[1], result.predicted, result.probabilities))
                    break
        if self.progress:
            tqdm.write(rundir.format_row(row, self.epochs))
        return row
