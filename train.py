#!/usr/bin/env python
"""Train a LeNet on MNIST with minidl, evaluate it, checkpoint it, draw what it learned.

    python train.py                       # the default run (see --help)
    python train.py --epochs 1 --limit-train 5000
    python train.py --resume runs/lenet-20261121-101500
    python train.py --eval runs/lenet-20261121-101500/checkpoint.npz

The run directory holds checkpoint.npz (the state after the last completed
epoch, or at the moment of a Ctrl-C: always resumable), metrics.csv, args.json,
predictions.npz (test-set predictions and sample digits, for the report) and
the figures.
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from datasets import MNISTError, load_mnist
from minidl import io
from minidl.atomic import atomic_open, atomic_write_bytes
from minidl.data import batch_indices, images_to_tensor, random_shift
from minidl.layers import Dropout
from minidl.losses import SoftmaxCrossEntropy, softmax
from minidl.optim import SGD, Adam, AdamW
from minidl.schedules import CosineLR
from models import MODELS

# Pixel statistics of the MNIST training set (after scaling to [0, 1]).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"]
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3}
# The fields of the arguments that define a run (what --resume restores).
RUN_FIELDS = ["model", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
              "warmup_epochs", "shift", "label_smoothing", "seed", "limit_train"]


class TrainingStopped(Exception):
    """The run cannot continue (a NaN loss); the message says why and what was kept."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train a LeNet on MNIST with minidl (NumPy, hand-written backward passes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet",
                        help="lenet: modern LeNet (ReLU, max pooling); lenet5: the 1998 network with "
                             "its C3 connection table; lenet-caffe: the wider 20/50/500 variant")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the training set")
    parser.add_argument("--batch-size", type=int, default=64, help="images per training step")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                        help="sgd is SGD with Nesterov momentum")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: 0.05 for sgd, 0.002 for adam/adamw); "
                             "it warms up linearly, then follows a cosine to 0")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="L2 penalty (decoupled for adamw)")
    parser.add_argument("--warmup-epochs", type=float, default=0.5, help="linear warm-up length")
    parser.add_argument("--shift", type=int, default=2,
                        help="augmentation: shift each training digit by up to this many pixels (0: off)")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="softmax cross-entropy smoothing")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same numbers")
    parser.add_argument("--data-dir", default=None,
                        help="directory holding mnist/ (default: $MINIDL_DATA, else ~/.cache/minidl); "
                             "MNIST is downloaded there when missing")
    parser.add_argument("--out", default=None, help="run directory (default: runs/<model>-<date>-<time>)")
    parser.add_argument("--resume", metavar="RUN", default=None,
                        help="continue a run from its directory or checkpoint.npz (its own settings apply)")
    parser.add_argument("--eval", metavar="CHECKPOINT", default=None,
                        help="only evaluate a checkpoint on the test set and exit")
    parser.add_argument("--limit-train", type=int, default=None, metavar="N",
                        help="train on the first N training images only (quick runs)")
    parser.add_argument("--no-figures", action="store_true", help="skip drawing the figures at the end")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    # Which options were typed, so --resume can refuse settings it would otherwise ignore.
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    args.explicit = vars(parser.parse_args(argv))
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer, received {getattr(args, name)}")
    if args.limit_train is not None and args.limit_train < 1:
        parser.error(f"--limit-train: expected a positive integer, received {args.limit_train}")
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]
    if not (args.lr > 0 and math.isfinite(args.lr)):
        parser.error(f"--lr: expected a positive finite number, received {args.lr}")
    return args


# -- data ---------------------------------------------------------------------

def input_spec(model_name: str) -> dict[str, float]:
    """How raw digits become model inputs; stored in the checkpoint for evaluation and drawing."""
    return {"mean": MNIST_MEAN, "std": MNIST_STD, "pad": 2 if model_name == "lenet5" else 0}


def prepare(images: np.ndarray, spec: dict[str, float]) -> np.ndarray:
    return images_to_tensor(images, spec["mean"], spec["std"], int(spec["pad"]))


def load_data(data_dir: str | None, quiet: bool) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    try:
        return load_mnist(data_dir, progress=not quiet)
    except MNISTError as error:
        raise SystemExit(f"train.py: cannot load MNIST: {error}") from None


# -- evaluation ---------------------------------------------------------------

def evaluate(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 1000,
             quiet: bool = False, desc: str = "eval") -> tuple[float, float, np.ndarray, np.ndarray]:
    """Mean loss, accuracy, predicted labels and softmax probabilities over ``x``."""
    loss = SoftmaxCrossEntropy()
    total, predictions, probabilities = 0.0, [], []
    for index in tqdm(batch_indices(len(x), batch_size), desc=desc, leave=False, disable=quiet,
                      unit="batch", dynamic_ncols=True):
        logits = model.forward(x[index], training=False)
        total += loss.forward(logits, y[index]) * len(index)
        predictions.append(logits.argmax(axis=1))
        probabilities.append(softmax(logits).astype(np.float32, copy=False))
    predicted = np.concatenate(predictions)
    return total / len(x), float((predicted == y).mean()), predicted, np.concatenate(probabilities)


# -- the run ------------------------------------------------------------------

def build(args: argparse.Namespace, steps_per_epoch: int) -> tuple[Any, Any, CosineLR]:
    model = MODELS[args.model](rng=np.random.default_rng([args.seed, 0]))
    params = model.parameters()
    if args.optimizer == "sgd":
        optimizer = SGD(params, lr=args.lr, momentum=args.momentum, nesterov=args.momentum > 0,
                        weight_decay=args.weight_decay)
    else:
        optimizer = OPTIMIZERS[args.optimizer](params, lr=args.lr, weight_decay=args.weight_decay)
    total = args.epochs * steps_per_epoch
    warmup = min(int(args.warmup_epochs * steps_per_epoch), total - 1)
    schedule = CosineLR(optimizer, total_steps=total, warmup_steps=warmup)
    return model, optimizer, schedule


def dropout_states(model: Any) -> list[dict[str, Any]]:
    return [layer.rng.bit_generator.state for layer in _layers(model) if isinstance(layer, Dropout)]


def set_dropout_states(model: Any, states: list[dict[str, Any]]) -> None:
    for layer, state in zip([l for l in _layers(model) if isinstance(l, Dropout)], states):
        layer.rng.bit_generator.state = state


def _layers(model: Any) -> list[Any]:
    return model.modules()


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6f}" if isinstance(row[k], float) else row[k]) for k in METRIC_COLUMNS})
    _write_text(path, buffer.getvalue())


def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_predictions(path: Path, x_test_raw: np.ndarray, y_test: np.ndarray, predicted: np.ndarray,
                     probabilities: np.ndarray) -> None:
    """What the report needs from the data, so drawing needs neither models/ nor datasets/."""
    samples = np.concatenate([np.flatnonzero(y_test == digit)[:2] for digit in range(10)])
    wrong = np.flatnonzero(predicted != y_test)[:100]
    with atomic_open(path) as handle:
        np.savez_compressed(handle, test_labels=y_test.astype(np.uint8), test_predictions=predicted.astype(np.uint8),
                            test_probabilities=probabilities.astype(np.float32),
                            sample_index=samples, sample_images=x_test_raw[samples],
                            misclassified_index=wrong, misclassified_images=x_test_raw[wrong])


class InterruptFlag:
    """Turn the first Ctrl-C into a request the training loop honours between steps.

    Stopping between steps means the saved checkpoint is exactly the state after
    a whole number of steps, so a resumed run reproduces an uninterrupted one.
    A second Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "InterruptFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def default_out(model: str) -> Path:
    return Path("runs") / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def run(args: argparse.Namespace, on_step: Callable[[int, int], None] | None = None) -> Path:
    """Train (or resume) and return the run directory.

    ``on_step(epoch, step)`` is called after every optimizer step (tests use it to
    simulate an interruption).
    """
    resume_meta: dict[str, Any] | None = None
    if args.resume:
        checkpoint_path = Path(args.resume)
        if checkpoint_path.is_dir():
            checkpoint_path = checkpoint_path / "checkpoint.npz"
        resume_meta = io.read_meta(checkpoint_path)["meta"]
        saved = resume_meta["args"]
        clashes = [f"--{name.replace('_', '-')} {args.explicit[name]} (the run has {saved[name]})"
                   for name in RUN_FIELDS if name in getattr(args, "explicit", {})
                   and args.explicit[name] != saved[name]]
        if clashes:
            raise SystemExit(f"train.py: --resume continues a run with its own settings; "
                             f"received {', '.join(clashes)}. Start a new run to change them.")
        for name in RUN_FIELDS:
            setattr(args, name, saved[name])
        out = checkpoint_path.parent
    else:
        out = Path(args.out) if args.out else default_out(args.model)
        if (out / "checkpoint.npz").exists():
            raise SystemExit(f"train.py: {out} already holds a run; use --resume {out} or another --out")

    (x_train_raw, y_train), (x_test_raw, y_test) = load_data(args.data_dir, args.quiet)
    out.mkdir(parents=True, exist_ok=True)  # only once there is something to train on
    if args.limit_train:
        x_train_raw, y_train = x_train_raw[:args.limit_train], y_train[:args.limit_train]
    spec = input_spec(args.model)
    x_train, x_test = prepare(x_train_raw, spec), prepare(x_test_raw, spec)
    fill = -spec["mean"] / spec["std"]
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)

    model, optimizer, schedule = build(args, steps_per_epoch)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=args.label_smoothing)
    rows: list[dict[str, float]] = []
    epoch, start_step = 0, 0
    sums = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    if resume_meta is not None:
        io.load(checkpoint_path, model, optimizer)
        schedule.load_state_dict(resume_meta["schedule"])
        set_dropout_states(model, resume_meta["dropout_rng"])
        rows = resume_meta["metrics"]
        epoch, start_step = resume_meta["epoch"], resume_meta["step"]
        sums = resume_meta["sums"]
        print(f"resuming {out} at epoch {epoch + 1}, step {start_step}/{steps_per_epoch}")
    run_args = {name: getattr(args, name) for name in RUN_FIELDS}
    _write_text(out / "args.json", json.dumps(run_args, indent=2) + "\n")

    def checkpoint(at_epoch: int, at_step: int, partial: dict[str, float]) -> None:
        io.save(out / "checkpoint.npz", model, optimizer, meta={
            "args": run_args, "input": spec, "epoch": at_epoch, "step": at_step, "sums": partial,
            "metrics": rows, "schedule": schedule.state_dict(), "dropout_rng": dropout_states(model),
            "classes": list(range(10))})

    if not args.quiet:
        print(f"{args.model}: {model.num_parameters():,} parameters; {len(x_train):,} training images, "
              f"{args.epochs} epochs of {steps_per_epoch} steps; run directory {out}")
    with InterruptFlag() as interrupt:
        while epoch < args.epochs:
            # Each epoch's order and each batch's shifts come from generators derived
            # from (seed, epoch[, step]): a resumed run redraws exactly the same ones.
            batches = batch_indices(len(x_train), args.batch_size, np.random.default_rng([args.seed, 1, epoch]))
            bar = tqdm(total=steps_per_epoch, initial=start_step, desc=f"epoch {epoch + 1}/{args.epochs}",
                       leave=False, disable=args.quiet, unit="step", dynamic_ncols=True)
            started = time.perf_counter() - sums["seconds"]
            for step in range(start_step, steps_per_epoch):
                if interrupt.requested:
                    bar.close()
                    sums["seconds"] = time.perf_counter() - started
                    checkpoint(epoch, step, sums)
                    print(f"\ninterrupted: saved a resumable checkpoint at epoch {epoch + 1}, step "
                          f"{step}/{steps_per_epoch}; continue with: python train.py --resume {out}")
                    raise KeyboardInterrupt
                index = batches[step]
                xb = x_train[index]
                if args.shift:
                    xb = random_shift(xb, args.shift, np.random.default_rng([args.seed, 2, epoch, step]), fill)
                yb = y_train[index]
                optimizer.zero_grad()
                with np.errstate(over="ignore", invalid="ignore"):
                    # A diverging run overflows; the finite-loss check below reports it.
                    logits = model.forward(xb, training=True)
                    loss = loss_fn.forward(logits, yb)
                if not math.isfinite(loss):
                    bar.close()
                    kept = (f"the last good checkpoint, {out / 'checkpoint.npz'} (end of epoch {epoch}), "
                            f"is untouched" if (out / "checkpoint.npz").exists() else
                            "no checkpoint had been saved yet")
                    raise TrainingStopped(
                        f"the training loss became {loss} at epoch {epoch + 1}, step {step + 1} "
                        f"(learning rate {optimizer.lr:.3g}); stopped without saving: {kept}. "
                        f"Try a lower --lr.")
                model.backward(loss_fn.backward(), input_grad=False)
                optimizer.step()
                schedule.step()
                sums["loss"] += loss * len(index)
                sums["correct"] += int((logits.argmax(axis=1) == yb).sum())
                sums["seen"] += len(index)
                bar.update(1)
                if step % 20 == 0 or step == steps_per_epoch - 1:
                    bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.4f}",
                                    acc=f"{sums['correct'] / sums['seen']:.4f}", refresh=False)
                if on_step is not None:
                    on_step(epoch, step)
            bar.close()
            test_loss, test_acc, predicted, probabilities = evaluate(model, x_test, y_test, quiet=args.quiet)
            seconds = time.perf_counter() - started
            rows.append({"epoch": epoch + 1, "train_loss": sums["loss"] / sums["seen"],
                         "train_acc": sums["correct"] / sums["seen"], "test_loss": test_loss,
                         "test_acc": test_acc, "seconds": seconds})
            epoch, start_step = epoch + 1, 0
            sums = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            checkpoint(epoch, 0, sums)
            write_metrics(out / "metrics.csv", rows)
            save_predictions(out / "predictions.npz", x_test_raw, y_test, predicted, probabilities)
            r = rows[-1]
            tqdm.write(f"epoch {r['epoch']:>2}/{args.epochs}  train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f}  "
                       f"test loss {r['test_loss']:.4f} acc {r['test_acc']:.4f}  {r['seconds']:.1f}s")
    if rows and not args.quiet:
        total = sum(r["seconds"] for r in rows)
        print(f"done: test accuracy {rows[-1]['test_acc']:.4f} after {len(rows)} epochs, "
              f"{total:.1f}s of training and evaluation; checkpoint {out / 'checkpoint.npz'}")
    return out


def draw_figures(out: Path, quiet: bool) -> None:
    try:
        from minidl.viz.report import write_report
    except ImportError:
        return
    page = write_report(out, out)
    if not quiet:
        print(f"figures and report: {page}")


def evaluate_checkpoint(path: str, data_dir: str | None, quiet: bool) -> None:
    checkpoint = io.load(path)
    spec = checkpoint.meta.get("input", input_spec(""))
    _, (x_test_raw, y_test) = load_data(data_dir, quiet)
    loss, acc, _, _ = evaluate(checkpoint.model, prepare(x_test_raw, spec), y_test, quiet=quiet)
    print(f"{path}: test loss {loss:.4f}, test accuracy {acc:.4f} ({int(round(acc * len(y_test)))}/{len(y_test)})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.eval:
            evaluate_checkpoint(args.eval, args.data_dir, args.quiet)
            return 0
        out = run(args)
        if not args.no_figures:
            draw_figures(out, args.quiet)
    except io.CheckpointError as error:
        print(f"train.py: {error}", file=sys.stderr)
        return 2
    except TrainingStopped as error:
        print(f"train.py: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # The training loop has already said what it saved; this is an early Ctrl-C
        # (while loading data, say) or a second one.
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
