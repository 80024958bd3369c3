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
import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence

import numpy as np

from datasets import DATASETS, DatasetError, load_dataset
from minidl import checks, io, rundir
from minidl.data import Augmentation
from minidl.inspect import colour_by_column
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


class ReportFailed(RuntimeError):
    """Training finished, but its report could not be drawn; the message says both."""


def flag(name: str) -> str:
    """The option of a setting: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the usage and the message on two lines; one line is enough.
        self.exit(EXIT_BAD_INPUT, f"{PROG}: {message} (see python {PROG} --help)\n")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, received {text!r}") from None


def _real(text: str) -> float:
    # nan and inf convert; the settings' checks then refuse them, naming the flag.
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a real number, received {text!r}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _attach_negative_numbers(parser: argparse.ArgumentParser,
                             argv: Sequence[str]) -> list[str]:
    """``--weight-decay -1e-4`` as ``--weight-decay=-1e-4``.

    argparse reads "-1e-4" or "-inf" after an option as another option ("expected
    one argument"); joined to its flag, the value reaches the checks, which say
    what is wrong with it.
    """
    numeric = {option for action in parser._actions if action.type in (_integer, _real)
               for option in action.option_strings}
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token in numeric:
            value = next(tokens, None)
            if value is not None and value.startswith("-") and _is_number(value):
                out.append(f"{token}={value}")
                continue
            out.append(token)
            if value is not None:
                out.append(value)
        else:
            out.append(token)
    return out


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
    add("--epochs", type=_integer, help="passes over the training set (recipe: 12 for LeNet)")
    add("--batch-size", type=_integer, help="images per training step (recipe: 64 for LeNet)")
    add("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
        help="sgd is SGD with Nesterov momentum (default: sgd)")
    add("--lr", type=_real, help="peak learning rate (recipe: per model and optimizer, e.g. 0.05 "
                                 "for LeNet with sgd); linear warm-up, then a cosine to 0")
    add("--momentum", type=_real, help="SGD momentum (recipe: 0.9)")
    add("--weight-decay", type=_real, help="L2 penalty, decoupled for adamw (recipe: 5e-4)")
    add("--warmup-epochs", type=_real, help="length of the linear warm-up (recipe: 0.5 for "
                                            "LeNet, at most half of --epochs)")
    add("--shift", type=_integer, help="augmentation: shift each training image by up to this "
                                       "many pixels, 0 for none (recipe: 2 for MNIST)")
    add("--flip", action=argparse.BooleanOptionalAction, default=None,
        help="augmentation: mirror training images left-right at random (recipe: off for digits)")
    add("--label-smoothing", type=_real, default=0.0, help="softmax cross-entropy smoothing "
                                                           "(default: 0)")
    add("--seed", type=_integer, default=0,
        help="the same seed gives the same numbers (default: 0)")
    add("--shards", type=_integer,
        help="cut each training batch into N pieces, run in processes of their own, one per "
             "core (default: 2 for a model without batch norm or dropout, else 1). The numbers "
             "depend on it, never on the number of cores; a resumed run keeps its own")
    add("--val-split", type=_integer, metavar="N",
        help="hold out the last N training images for validation (default: the dataset's: 0 for "
             "MNIST, 10000 = data_batch_5 for CIFAR-10)")
    add("--limit-train", type=_integer, metavar="N",
        help="train on the first N training images only")
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
    argv = _attach_negative_numbers(parser, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    for name in ("data_dir", "out", "resume", "eval"):
        # An empty path would silently mean "not given" (or the current directory).
        if getattr(args, name) == "":
            parser.error(f"{flag(name)}: expected a path, received an empty string")
    if args.eval and args.resume:
        parser.error("--eval and --resume: expected one of them (evaluate a checkpoint, or "
                     "continue a run), received both")
    for mode, why in (("eval", "evaluation writes nothing"),
                      ("resume", "a resumed run stays in its own directory")):
        if getattr(args, mode) and args.out:
            parser.error(f"--out: expected no --out with --{mode} ({why}), "
                         f"received --out {args.out}")
    # Which options were typed, so --resume can refuse settings it would otherwise ignore.
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    args.explicit = vars(parser.parse_args(argv))
    return args


# ============================================================== the settings
@contextlib.contextmanager
def reported_as(error: type[ValueError]) -> Iterator[None]:
    """Raise the ValueError of a check as ``error``: UsageError when the value came from
    the command line, RunDirError when it came from a run's files; main reports both
    as bad input, while any other ValueError stays a bug with its traceback."""
    try:
        yield
    except (UsageError, RunDirError):
        raise
    except ValueError as failure:
        raise error(str(failure)) from None


def models_for(dataset: str) -> str:
    return ", ".join(m for m, e in MODELS.items() if e.dataset == dataset) or "none is registered"


def check_settings(raw: dict[str, Any], owner: Callable[[str], str]) -> dict[str, Any]:
    """A run's settings, each checked by minidl's checks, as a new dict.

    ``owner(name)`` names a setting in messages: its flag for the command line,
    the checkpoint's key for a resumed run. Raises ValueError.
    """
    model = checks.one_of(raw["model"], MODELS, "model", owner("model"))
    dataset = checks.one_of(raw["dataset"], DATASETS, "dataset", owner("dataset"))
    if MODELS[model].dataset != dataset:
        raise ValueError(f"{owner('model')}: expected a model for {dataset} "
                         f"({models_for(dataset)}), received {model} "
                         f"(a {MODELS[model].dataset} model)")

    def count(name: str, minimum: int) -> int:
        return checks.integer(raw[name], name, owner(name), minimum=minimum)

    def optional_count(name: str, minimum: int) -> int | None:
        return None if raw[name] is None else count(name, minimum)

    settings = {
        "dataset": dataset, "model": model, "epochs": count("epochs", 1),
        "batch_size": count("batch_size", 1),
        "optimizer": checks.one_of(raw["optimizer"], OPTIMIZERS, "optimizer", owner("optimizer")),
        "lr": checks.real(raw["lr"], "lr", owner("lr"), minimum=0.0, strict_min=True),
        "momentum": checks.real(raw["momentum"], "momentum", owner("momentum"), minimum=0.0,
                                maximum=1.0, strict_max=True),
        "weight_decay": checks.real(raw["weight_decay"], "weight_decay", owner("weight_decay"),
                                    minimum=0.0),
        "warmup_epochs": checks.real(raw["warmup_epochs"], "warmup_epochs",
                                     owner("warmup_epochs"), minimum=0.0),
        "shift": count("shift", 0), "flip": checks.boolean(raw["flip"], "flip", owner("flip")),
        "label_smoothing": checks.real(raw["label_smoothing"], "label_smoothing",
                                       owner("label_smoothing"), minimum=0.0, maximum=1.0,
                                       strict_max=True),
        "seed": count("seed", 0), "val_split": optional_count("val_split", 0),
        "limit_train": optional_count("limit_train", 1),
    }
    if settings["warmup_epochs"] >= settings["epochs"]:
        raise ValueError(f"{owner('warmup_epochs')}: expected fewer warm-up epochs than the "
                         f"{settings['epochs']} epoch(s) of the run, received "
                         f"{settings['warmup_epochs']:g}")
    return settings


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: typed options, then the model's recipe; each value checked."""
    dataset, model = args.dataset, args.model
    if model is None:
        dataset = dataset or "mnist"
        if dataset not in DEFAULT_MODELS:
            raise UsageError(f"--model: expected a model for {dataset} ({models_for(dataset)}), "
                             f"received none")
        model = DEFAULT_MODELS[dataset]
    recipe = MODELS[model].recipe

    def pick(name: str, default: Any) -> Any:
        value = getattr(args, name)
        return default if value is None else value

    epochs = pick("epochs", recipe.epochs)
    # The recipe's warm-up is for its own length of run: a shorter run gets at most half
    # of its epochs of warm-up. A typed --warmup-epochs is taken as it is (and checked).
    warmup = recipe.warmup_epochs
    if isinstance(epochs, int) and epochs > 0:
        warmup = min(warmup, epochs / 2)
    raw = {"dataset": dataset or MODELS[model].dataset, "model": model, "epochs": epochs,
           "batch_size": pick("batch_size", recipe.batch_size), "optimizer": args.optimizer,
           "lr": pick("lr", recipe.lr.get(args.optimizer)),
           "momentum": pick("momentum", recipe.momentum),
           "weight_decay": pick("weight_decay", recipe.weight_decay),
           "warmup_epochs": pick("warmup_epochs", warmup),
           "shift": pick("shift", recipe.shift), "flip": pick("flip", recipe.flip),
           "label_smoothing": args.label_smoothing, "seed": args.seed,
           "val_split": args.val_split, "limit_train": args.limit_train}
    with reported_as(UsageError):
        return check_settings(raw, flag)


def settings_from_run(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The settings a run was started with, checked; refuses typed options that would
    change them. Returns them and the run directory."""
    path = rundir.checkpoint_path(args.resume)
    if path.is_file() and path.name != rundir.CHECKPOINT:
        # The run continues in the checkpoint's directory, from its checkpoint.npz.
        raise UsageError(f"--resume: expected a run directory or the {rundir.CHECKPOINT} in "
                         f"one, received {path}")
    saved = rundir.read_state(path).settings
    missing = [k for k in RUN_FIELDS if k not in saved]
    if missing:
        raise RunDirError(f"{path}: expected the run's settings {', '.join(missing)} in its "
                          f"metadata (key 'settings'), received none: was it written by "
                          f"{PROG}?")
    with reported_as(RunDirError):
        settings = check_settings(saved, lambda name: f"{path}: key 'settings'")
    clashes = [f"{flag(name)} {args.explicit[name]} (the run has {settings[name]})"
               for name in RUN_FIELDS if name in args.explicit
               and args.explicit[name] != settings[name]]
    if clashes:
        raise UsageError(f"--resume continues a run with its own settings; received "
                         f"{', '.join(clashes)}. Start a new run to change them.")
    return settings, path.parent


def check_out(out: Path) -> None:
    """Refuse a run directory that would overwrite something or cannot be created."""
    rundir.check_output_dir(out, "--out")
    if out.is_dir() and any(out.iterdir()):
        hint = (f"; continue it with --resume {out}" if (out / rundir.CHECKPOINT).exists()
                else "")
        raise UsageError(f"--out: expected a new or empty directory, received {out}, which "
                         f"already holds files{hint}")


def check_data_dir(data_dir: str | None) -> None:
    """Refuse a --data-dir that is not a directory (rather than download into a typo)."""
    if data_dir is None:
        return
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        what = "a file" if path.exists() else "a path that does not exist"
        raise UsageError(f"--data-dir: expected an existing directory holding <dataset>/, "
                         f"received {path}, {what}")


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
    check_data_dir(args.data_dir)
    shards = args.shards
    if shards is not None:
        with reported_as(UsageError):
            checks.integer(shards, "shards", "--shards", minimum=1)
    if args.resume:
        settings, out = settings_from_run(args)
        error: type[ValueError] = RunDirError
        owner = f"{out / rundir.CHECKPOINT}: key 'settings'"
        if shards is None:  # the run's own (1 for runs from before shards existed)
            shards = rundir.read_state(out / rundir.CHECKPOINT).trainer.shards
    else:
        settings = settings_from_args(args)
        out = Path(args.out) if args.out else Path("runs") / (
            f"{settings['model']}-{time.strftime('%Y%m%d-%H%M%S')}")
        check_out(out)
        error, owner = UsageError, "--val-split"

    dataset = load_dataset(settings["dataset"], args.data_dir, progress=not args.quiet)
    for note in dataset.notes:
        print(f"note: {note}")
    if settings["val_split"] is None:
        settings["val_split"] = dataset.default_val_split
    n = len(dataset.train_images)
    with reported_as(error):
        checks.integer(settings["val_split"], "val_split", owner, minimum=0, maximum=n - 1)
    train, val = dataset.holdout(settings["val_split"])
    if settings["limit_train"]:
        train = (train[0][:settings["limit_train"]], train[1][:settings["limit_train"]])
    test = None if dataset.test_images is None else (dataset.test_images, dataset.test_labels)

    steps = math.ceil(len(train[0]) / settings["batch_size"])
    model, optimizer, schedule = build(settings, steps)
    spec = input_spec(settings, dataset)
    augment = (Augmentation(settings["shift"], settings["flip"], spec.fill)
               if settings["shift"] or settings["flip"] else None)
    with reported_as(UsageError):  # --shards N for a model that needs whole batches
        trainer = Trainer(model, optimizer, epochs=settings["epochs"],
                          batch_size=settings["batch_size"], schedule=schedule,
                          seed=settings["seed"], input_spec=spec, augment=augment, run_dir=out,
                          settings=settings, callbacks=callbacks, progress=not args.quiet,
                          loss=SoftmaxCrossEntropy(label_smoothing=settings["label_smoothing"]),
                          shards=shards)
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
        for found in colour_by_column(model):
            means = " | ".join(f"{m:.3f}" for m in found.means)
            where = (f"by column (the next convolution has groups={found.columns}): {means}"
                     if found.columns > 1 else f"mean {means}")
            print(f"{found.layer}: colour specificity of the kernels (0: brightness only, "
                  f"2/3: one channel) {where}")
    return out


def check_model_fits(model: Any, spec: InputSpec, images: np.ndarray, path: Path) -> None:
    """Refuse a checkpoint whose model cannot read the images its own input spec prepares,
    or does not give one score per class, before a whole evaluation fails half-way."""
    params = model.parameters()
    dtype = params[0].dtype if params else np.dtype(np.float32)
    try:
        with np.errstate(all="ignore"):
            logits = model.forward(spec.prepare(images, dtype), training=False)
    except ValueError as error:  # a layer's check of its input: the model does not fit
        raise io.CheckpointError(f"{path}: expected a model that reads the {spec.model_shape} "
                                 f"images of its input spec, received one that refuses them "
                                 f"({error})") from None
    if logits.shape != (len(images), spec.num_classes):
        raise io.CheckpointError(f"{path}: expected a model giving {spec.num_classes} scores "
                                 f"(one per class of its input spec), received outputs of "
                                 f"shape {logits.shape[1:]}")


def evaluate_checkpoint(args: argparse.Namespace) -> None:
    """--eval: the checkpoint's model on the test set (validation when there is none)."""
    check_data_dir(args.data_dir)
    path = Path(args.eval)
    checkpoint = io.load(path)
    spec = rundir.read_input_spec(checkpoint, str(path))
    if spec is None:
        raise RunDirError(f"{path}: expected a checkpoint written by a training run (its metadata "
                          f"says how images are prepared), received one without an input spec")
    settings = rundir.TrainingState.from_meta(checkpoint.meta, str(path)).settings
    owner = f"{path}: key 'settings'"
    with reported_as(RunDirError):
        name = args.dataset or checks.one_of(settings.get("dataset", "mnist"), DATASETS,
                                             "dataset", owner)
    # Known before any data is read: a model for other images is refused at once.
    if DATASETS[name].image_shape != spec.shape:
        raise UsageError(f"--eval: expected a {name} model (images {DATASETS[name].image_shape})"
                         f", received {path}, whose images are {spec.shape}")
    dataset = load_dataset(name, args.data_dir, progress=not args.quiet)
    if len(dataset.class_names) != spec.num_classes:
        raise UsageError(f"--eval: expected a model for the {len(dataset.class_names)} classes "
                         f"of {name}, received {path}, whose input spec names "
                         f"{spec.num_classes} classes")
    if dataset.test_images is not None:
        split, (images, labels) = "test", (dataset.test_images, dataset.test_labels)
    else:
        split = "validation"
        with reported_as(RunDirError):
            count = checks.integer(settings.get("val_split") or dataset.default_val_split,
                                   "val_split", owner, minimum=1,
                                   maximum=len(dataset.train_images) - 1)
        _, (images, labels) = dataset.holdout(count)
    check_model_fits(checkpoint.model, spec, images[:1], path)
    result = evaluate(checkpoint.model, images, labels, input_spec=spec,
                      progress=not args.quiet)
    right = int(round(result.accuracy * len(labels)))
    print(f"{path}: {split} loss {result.loss:.4f}, {split} accuracy {result.accuracy:.4f} "
          f"({right}/{len(labels)})")


def describe_os_error(error: OSError) -> str:
    """``<file>: <reason>``, the file being the one the system refused."""
    target = error.filename2 if error.filename2 is not None else error.filename
    return f"{target}: {error.strerror}" if target is not None and error.strerror else str(error)


def draw_report(out: Path, quiet: bool) -> None:
    """Write the run's report; a failure is a ReportFailed that names the finished run."""
    from minidl.viz.report import ReportError, write_report  # only runs that draw need viz
    try:
        page = write_report(out, out)
    except (ReportError, RunDirError, io.CheckpointError, OSError) as error:
        reason = describe_os_error(error) if isinstance(error, OSError) else str(error)
        raise ReportFailed(f"training finished ({out / rundir.CHECKPOINT}), but the report "
                           f"failed: {reason}") from None
    if not quiet:
        print(f"report: {page}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
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
        hint = "Start a new run with a lower --lr" if args.resume else "Try a lower --lr"
        print(f"{PROG}: {error}. {hint}.", file=sys.stderr)
        return EXIT_STOPPED
    except ReportFailed as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_STOPPED
    except (UsageError, RunDirError, io.CheckpointError, DatasetError) as error:
        # The errors of bad input; any other exception is a bug and keeps its traceback.
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        # The file system refused (a full disk, a directory removed under the run).
        print(f"{PROG}: {describe_os_error(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
