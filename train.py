#!/usr/bin/env python
"""Train a model with minidl, evaluate it, checkpoint it, draw what it learned.

    python train.py                                   # LeNet on MNIST (see --help)
    python train.py --dataset cifar10 --data-dir D    # D/cifar10/cifar-10-batches-bin/
    python train.py --resume runs/lenet-20261121-101500
    python train.py --eval runs/lenet-20261121-101500/checkpoint.npz

A thin command line over minidl.training: it picks the dataset (datasets/),
the model and its recipe (models/), checks every argument with minidl's own
checks before anything is loaded or written, and hands the run to a Trainer.
Every error a user can cause ends in one line on stderr and a non-zero exit
status: 2 for bad input, 1 when training stops on a non-finite loss or the
report cannot be drawn, 130 on Ctrl-C (after saving a resumable checkpoint).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Sequence

import numpy as np

from datasets import DATASETS, DatasetError, load_dataset
from minidl import checks, io, rundir
from minidl.data import Augmentation
from minidl.losses import SoftmaxCrossEntropy
from minidl.optim import SGD, Adam, AdamW
from minidl.rundir import InputSpec, RunDirError
from minidl.schedules import CosineLR
from minidl.training import Callback, Trainer, TrainingInterrupted, TrainingStopped, evaluate
from models import DEFAULT_MODELS, MODELS

PROG = "train.py"
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
#: The settings that define a run: stored in it, restored by --resume.
RUN_FIELDS = ("dataset", "model", "epochs", "batch_size", "optimizer", "lr", "momentum",
              "weight_decay", "warmup_epochs", "shift", "flip", "label_smoothing", "seed",
              "val_split", "limit_train")
EXIT_STOPPED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(ValueError):
    """A bad command line; the message is the one line the user sees."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the usage and the message on two lines; one line is enough.
        self.exit(EXIT_BAD_INPUT, f"{PROG}: {message} (see python {PROG} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    models = ", ".join(f"{name} ({entry.dataset}: {entry.description})"
                       for name, entry in MODELS.items())
    parser = _Parser(
        prog=PROG, description="Train a model with minidl (NumPy, hand-written backward passes). "
        "Settings left out take the model's recipe (models/__init__.py).")
    add = parser.add_argument
    add("--dataset", choices=sorted(DATASETS), default=None,
        help="default: the dataset of --model, else mnist. "
             + "; ".join(f"{name}: {entry.description}" for name, entry in DATASETS.items()))
    add("--model", choices=sorted(MODELS), default=None,
        help=f"default: {', '.join(f'{m} for {d}' for d, m in DEFAULT_MODELS.items())}. {models}")
    add("--epochs", type=int, help="passes over the training set (recipe: 12 for LeNet)")
    add("--batch-size", type=int, help="images per training step (recipe: 64 for LeNet)")
    add("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
        help="sgd is SGD with Nesterov momentum (default: sgd)")
    add("--lr", type=float, help="peak learning rate (recipe: per model and optimizer, e.g. 0.05 "
                                 "for LeNet with sgd); linear warm-up, then a cosine to 0")
    add("--momentum", type=float, help="SGD momentum (recipe: 0.9)")
    add("--weight-decay", type=float, help="L2 penalty, decoupled for adamw (recipe: 5e-4)")
    add("--warmup-epochs", type=float, help="length of the linear warm-up (recipe: 0.5)")
    add("--shift", type=int, help="augmentation: shift each training image by up to this many "
                                  "pixels, 0 for none (recipe: 2 for MNIST)")
    add("--flip", action=argparse.BooleanOptionalAction, default=None,
        help="augmentation: mirror training images left-right at random (recipe: off for digits)")
    add("--label-smoothing", type=float, default=0.0, help="softmax cross-entropy smoothing "
                                                           "(default: 0)")
    add("--seed", type=int, default=0, help="the same seed gives the same numbers (default: 0)")
    add("--val-split", type=int, metavar="N",
        help="hold out the last N training images for validation (default: the dataset's: 0 for "
             "MNIST, 10000 = data_batch_5 for CIFAR-10)")
    add("--limit-train", type=int, metavar="N", help="train on the first N training images only")
    add("--data-dir", metavar="DIR", help="directory holding <dataset>/ (default: $MINIDL_DATA, "
        "else the MNIST copy in datasets/embedded, else ~/.cache/minidl, downloading when missing)")
    add("--out", metavar="DIR", help="run directory, new or empty "
                                     "(default: runs/<model>-<date>-<time>)")
    add("--resume", metavar="RUN", help="continue a run from its directory or checkpoint "
                                        "(with its own settings)")
    add("--eval", metavar="CHECKPOINT", help="only evaluate a checkpoint and exit")
    add("--no-figures", action="store_true", help="skip the report at the end")
    add("--quiet", action="store_true", help="no progress bars")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Which options were typed, so --resume can refuse settings it would otherwise ignore.
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    args.explicit = vars(parser.parse_args(argv))
    return args


# ============================================================== the settings
def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: typed options, then the model's recipe; each value checked."""
    dataset, model = args.dataset, args.model
    if model is not None and dataset is not None and MODELS[model].dataset != dataset:
        fitting = [m for m, e in MODELS.items() if e.dataset == dataset]
        raise UsageError(f"--model: expected a model for {dataset} ({', '.join(fitting)}), "
                         f"received {model} (a {MODELS[model].dataset} model)")
    if model is None:
        dataset = dataset or "mnist"
        if dataset not in DEFAULT_MODELS:
            raise UsageError(f"--model: expected a model for {dataset}, received none")
        model = DEFAULT_MODELS[dataset]
    dataset = MODELS[model].dataset
    recipe = MODELS[model].recipe

    def pick(name: str, default: Any) -> Any:
        value = getattr(args, name)
        return default if value is None else value

    lr = pick("lr", recipe.lr.get(args.optimizer))
    settings = {
        "dataset": dataset, "model": model,
        "epochs": checks.integer(pick("epochs", recipe.epochs), "epochs", "--epochs", minimum=1),
        "batch_size": checks.integer(pick("batch_size", recipe.batch_size), "batch_size",
                                     "--batch-size", minimum=1),
        "optimizer": args.optimizer,
        "lr": checks.real(lr, "lr", "--lr", minimum=0.0, strict_min=True),
        "momentum": checks.real(pick("momentum", recipe.momentum), "momentum", "--momentum",
                                minimum=0.0, maximum=1.0, strict_max=True),
        "weight_decay": checks.real(pick("weight_decay", recipe.weight_decay), "weight_decay",
                                    "--weight-decay", minimum=0.0),
        "warmup_epochs": checks.real(pick("warmup_epochs", recipe.warmup_epochs),
                                     "warmup_epochs", "--warmup-epochs", minimum=0.0),
        "shift": checks.integer(pick("shift", recipe.shift), "shift", "--shift", minimum=0),
        "flip": pick("flip", recipe.flip),
        "label_smoothing": checks.real(args.label_smoothing, "label_smoothing",
                                       "--label-smoothing", minimum=0.0, maximum=1.0,
                                       strict_max=True),
        "seed": checks.integer(args.seed, "seed", "--seed", minimum=0),
        "val_split": (None if args.val_split is None else
                      checks.integer(args.val_split, "val_split", "--val-split", minimum=0)),
        "limit_train": (None if args.limit_train is None else
                        checks.integer(args.limit_train, "limit_train", "--limit-train",
                                       minimum=1)),
    }
    if settings["warmup_epochs"] >= settings["epochs"]:
        raise UsageError(f"--warmup-epochs: expected fewer warm-up epochs than --epochs "
                         f"({settings['epochs']}), received {settings['warmup_epochs']:g}")
    return settings


def settings_from_run(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The settings a run was started with; refuses typed options that would change them."""
    path = rundir.checkpoint_path(args.resume)
    state = rundir.read_state(path)
    saved = state.settings
    missing = [k for k in RUN_FIELDS if k not in saved]
    if missing:
        raise RunDirError(f"{path}: expected the run's settings {', '.join(missing)} in its "
                          f"metadata (key 'settings'), received none: was it written by "
                          f"{PROG}?")
    flags = {"batch_size": "batch-size", "weight_decay": "weight-decay",
             "warmup_epochs": "warmup-epochs", "label_smoothing": "label-smoothing",
             "val_split": "val-split", "limit_train": "limit-train"}
    clashes = [f"--{flags.get(name, name)} {args.explicit[name]} (the run has {saved[name]})"
               for name in RUN_FIELDS if name in args.explicit
               and args.explicit[name] != saved[name]]
    if clashes:
        raise UsageError(f"--resume continues a run with its own settings; received "
                         f"{', '.join(clashes)}. Start a new run to change them.")
    if saved["model"] not in MODELS:
        raise RunDirError(f"{path}: expected a model among {', '.join(MODELS)}, "
                          f"received {saved['model']!r}")
    return {k: saved[k] for k in RUN_FIELDS}, path.parent


def check_out(out: Path) -> None:
    """Refuse a run directory that would overwrite something or cannot be created."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: expected a directory, received {out}, an existing file")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out: expected a path where a directory can be made, "
                                 f"received {out}, inside the file {parent}")
            break
    if out.is_dir() and any(out.iterdir()):
        hint = (f"; continue it with --resume {out}" if (out / rundir.CHECKPOINT).exists()
                else "")
        raise UsageError(f"--out: expected a new or empty directory, received {out}, which "
                         f"already holds files{hint}")


# ==================================================================== the run
def build(settings: dict[str, Any], steps_per_epoch: int) -> tuple[Any, Any, CosineLR]:
    """The model, its optimizer and the learning-rate schedule of a run."""
    model = MODELS[settings["model"]].build(rng=np.random.default_rng([settings["seed"], 0]))
    params = model.parameters()
    if settings["optimizer"] == "sgd":
        optimizer = SGD(params, lr=settings["lr"], momentum=settings["momentum"],
                        nesterov=settings["momentum"] > 0, weight_decay=settings["weight_decay"])
    else:
        optimizer = OPTIMIZERS[settings["optimizer"]](params, lr=settings["lr"],
                                                      weight_decay=settings["weight_decay"])
    total = settings["epochs"] * steps_per_epoch
    warmup = min(int(settings["warmup_epochs"] * steps_per_epoch), total - 1)
    return model, optimizer, CosineLR(optimizer, total_steps=total, warmup_steps=warmup)


def input_spec(settings: dict[str, Any], dataset: Any) -> InputSpec:
    return InputSpec(dataset.image_shape, dataset.mean, dataset.std, dataset.class_names,
                     pad=MODELS[settings["model"]].recipe.pad)


def run(args: argparse.Namespace, callbacks: Sequence[Callback] = ()) -> Path:
    """Train (or resume) and return the run directory."""
    if args.resume:
        settings, out = settings_from_run(args)
    else:
        settings = settings_from_args(args)
        out = Path(args.out) if args.out else Path("runs") / (
            f"{settings['model']}-{time.strftime('%Y%m%d-%H%M%S')}")
        check_out(out)

    dataset = load_dataset(settings["dataset"], args.data_dir, progress=not args.quiet)
    for note in dataset.notes:
        print(f"note: {note}")
    if settings["val_split"] is None:
        settings["val_split"] = dataset.default_val_split
    n = len(dataset.train_images)
    checks.integer(settings["val_split"], "val_split", "--val-split", minimum=0, maximum=n - 1)
    train, val = dataset.holdout(settings["val_split"])
    if settings["limit_train"]:
        train = (train[0][:settings["limit_train"]], train[1][:settings["limit_train"]])
    test = None if dataset.test_images is None else (dataset.test_images, dataset.test_labels)

    steps = math.ceil(len(train[0]) / settings["batch_size"])
    model, optimizer, schedule = build(settings, steps)
    spec = input_spec(settings, dataset)
    augment = (Augmentation(settings["shift"], settings["flip"], spec.fill)
               if settings["shift"] or settings["flip"] else None)
    trainer = Trainer(model, optimizer, epochs=settings["epochs"],
                      batch_size=settings["batch_size"], schedule=schedule, seed=settings["seed"],
                      input_spec=spec, augment=augment, run_dir=out, settings=settings,
                      callbacks=callbacks, progress=not args.quiet,
                      loss=SoftmaxCrossEntropy(label_smoothing=settings["label_smoothing"]))
    if not args.quiet:
        held = f", {len(val[0]):,} held out for validation" if val is not None else ""
        print(f"{settings['model']} on {settings['dataset']}: {model.num_parameters():,} "
              f"parameters; {len(train[0]):,} training images{held}; {settings['epochs']} epochs "
              f"of {steps} steps; run directory {out}"
              + (" (resuming)" if args.resume else ""))
    rows = trainer.fit(train, val, test, resume=bool(args.resume))
    if rows and not args.quiet:
        metrics = rundir.metrics_from_rows(rows)
        split, accuracy = rundir.final_accuracy(metrics) or ("no", math.nan)
        print(f"done: {split} accuracy {accuracy:.4f} after {len(rows)} epochs, "
              f"{sum(metrics['seconds']):.1f}s of training and evaluation; "
              f"checkpoint {out / rundir.CHECKPOINT}")
    return out


def evaluate_checkpoint(args: argparse.Namespace) -> None:
    """--eval: the checkpoint's model on the test set (validation when there is none)."""
    path = Path(args.eval)
    checkpoint = io.load(path)
    spec = rundir.read_input_spec(checkpoint, str(path))
    if spec is None:
        raise RunDirError(f"{path}: expected a checkpoint written by a training run (its metadata "
                          f"says how images are prepared), received one without an input spec")
    settings = rundir.TrainingState.from_meta(checkpoint.meta, str(path)).settings
    name = args.dataset or settings.get("dataset", "mnist")
    dataset = load_dataset(name, args.data_dir, progress=not args.quiet)
    if dataset.image_shape != spec.shape:
        raise UsageError(f"--eval: expected a {name} model, received {path}, whose images are "
                         f"{spec.shape}")
    if dataset.test_images is not None:
        split, (images, labels) = "test", (dataset.test_images, dataset.test_labels)
    else:
        split = "validation"
        _, held = dataset.holdout(settings.get("val_split") or dataset.default_val_split)
        images, labels = held
    result = evaluate(checkpoint.model, images, labels, input_spec=spec,
                      progress=not args.quiet)
    right = int(round(result.accuracy * len(labels)))
    print(f"{path}: {split} loss {result.loss:.4f}, {split} accuracy {result.accuracy:.4f} "
          f"({right}/{len(labels)})")


def draw_report(out: Path, quiet: bool) -> None:
    from minidl.viz.report import write_report
    page = write_report(out, out)
    if not quiet:
        print(f"report: {page}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path | None = None
    try:
        if args.eval:
            evaluate_checkpoint(args)
            return 0
        out = run(args)
        if not args.no_figures:
            draw_report(out, args.quiet)
    except TrainingInterrupted as error:
        print(f"\n{error}; continue with: python {PROG} --resume {error.run_dir}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        # Before training began (loading data, say), or a second Ctrl-C.
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingStopped as error:
        print(f"{PROG}: {error}. Try a lower --lr.", file=sys.stderr)
        return EXIT_STOPPED
    except (ValueError, DatasetError, OSError) as error:
        # minidl's checks, the run directory and checkpoint readers raise ValueError subclasses.
        stage = ""
        if out is not None and not args.no_figures and (out / rundir.CHECKPOINT).exists():
            stage = f"training finished ({out / rundir.CHECKPOINT}), but the report failed: "
        print(f"{PROG}: {stage}{error}", file=sys.stderr)
        return EXIT_STOPPED if stage else EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
