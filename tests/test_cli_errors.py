"""Every bad input to ``train.py`` or ``python -m minidl.viz`` ends in one clear line.

One table: each row is a command line, a setup that builds the bad input in
``tmp_path``, the exit status and words the message must hold. Every row is run
as a subprocess (from the repository root, without ``MINIDL_DATA``, so MNIST is
the embedded copy) and must end in exactly one line on stderr, starting with the
program's name, and a non-zero exit; never a traceback. Nothing may be lost
either: every file under ``tmp_path`` before the command (a run directory, a
checkpoint, a data file) has the same bytes afterwards, and a failed command
creates nothing: among others for ``--out`` naming an existing run, ``--resume``
with a clashing flag, a ``--resume`` whose data fails to load, and a resumed run
that stops on a non-finite loss.

Most rows fail before anything is loaded. Rows that need a real run directory
copy one trained once for the module (``{run}``; ``{ckpt}`` is its checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from datasets.idx import write_idx
from minidl import Sequential, io, rundir
from minidl.layers import Dense, Flatten
from minidl.rundir import InputSpec, Progress, TrainerSettings, TrainingState

ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k != "MINIDL_DATA"}  # the embedded MNIST
EMBEDDED_MNIST = ROOT / "datasets" / "embedded" / "mnist"
META = "__meta__"  # the checkpoint's JSON document (minidl.io's format)
TRAIN = ("train.py",)
VIZ = ("-m", "minidl.viz")
PROGRAMS = {TRAIN: "train.py: ", VIZ: "python -m minidl.viz: "}
#: Appended to every train.py row without --out, --resume or --eval, so that no
#: row, whatever it does, can write into the repository's runs/.
OUT = ("--out", "{tmp}/out")
#: A short run on a little data, for rows that fail only once data is loaded.
SHORT = ("--epochs", "1", "--limit-train", "256", "--quiet", "--no-figures")

Source = Callable[[], Path]  # the module's trained run directory (trained on first use)


# ================================================================= file makers
def read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def edit_checkpoint(path: Path, document: Callable[[dict], object] | None = None,
                    arrays: Callable[[dict], object] | None = None) -> None:
    """Rewrite a checkpoint in place, changing its JSON document and/or its arrays."""
    entries = read_npz(path)
    text = json.loads(entries[META].tobytes())
    if document is not None:
        document(text)
    entries[META] = np.frombuffer(json.dumps(text).encode(), np.uint8)
    if arrays is not None:
        arrays(entries)
    np.savez(path, **entries)


def edit_meta(change: Callable[[dict], object]) -> Callable[[Path, Source], None]:
    """A setup that applies ``change`` to the training state of ``{run}``'s checkpoint."""
    def setup(tmp: Path, source: Source) -> None:
        edit_checkpoint(tmp / "run" / rundir.CHECKPOINT, lambda d: change(d["meta"]))
    return setup


def set_document(text: bytes) -> Callable[[Path, Source], None]:
    """A setup that replaces ``{run}``'s checkpoint document by ``text``."""
    def setup(tmp: Path, source: Source) -> None:
        path = tmp / "run" / rundir.CHECKPOINT
        entries = read_npz(path)
        entries[META] = np.frombuffer(text, np.uint8)
        np.savez(path, **entries)
    return setup


def write_file(relative: str, data: bytes | Callable[[Source], bytes]) -> Callable:
    """A setup writing ``data`` (or ``data(source)``) to ``tmp/relative``."""
    def setup(tmp: Path, source: Source) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data(source) if callable(data) else data)
    return setup


def make_dir(relative: str) -> Callable[[Path, Source], None]:
    def setup(tmp: Path, source: Source) -> None:
        (tmp / relative).mkdir(parents=True)
    return setup


def locked_dir(tmp: Path, source: Source) -> None:
    """``{tmp}/locked``, a directory its owner cannot write into."""
    if os.geteuid() == 0:
        pytest.skip("permissions do not stop root: no unwritable directory can be made")
    (tmp / "locked").mkdir()
    (tmp / "locked").chmod(0o500)


def both(*setups: Callable[[Path, Source], None]) -> Callable[[Path, Source], None]:
    def setup(tmp: Path, source: Source) -> None:
        for one in setups:
            one(tmp, source)
    return setup


def truncated(source: Source) -> bytes:
    """The first half of a good checkpoint."""
    data = (source() / rundir.CHECKPOINT).read_bytes()
    return data[:len(data) // 2]


def random_bytes(size: int) -> bytes:
    return np.random.default_rng(11).integers(0, 256, size, dtype=np.uint8).tobytes()


def pickled_entry(tmp: Path, source: Source) -> None:
    """The run's checkpoint with one weight replaced by a pickled object array."""
    def change(entries: dict) -> None:
        evil = np.empty(1, dtype=object)
        evil[0] = {"not": "an array"}
        entries["model/conv1.weight"] = evil
    edit_checkpoint(tmp / "run" / rundir.CHECKPOINT, arrays=change)


def bare_save(relative: str) -> Callable[[Path, Source], None]:
    """What minidl.io.save writes for a model alone (weights, no training state), at
    ``tmp/relative``."""
    def setup(tmp: Path, source: Source) -> None:
        (tmp / relative).parent.mkdir(exist_ok=True)
        io.save(tmp / relative, io.load(source() / rundir.CHECKPOINT).model)
    return setup


def cifar_checkpoint(dataset: str) -> Callable[[Path, Source], None]:
    """A checkpoint of a tiny 3x32x32 classifier whose settings name ``dataset``."""
    def setup(tmp: Path, source: Source) -> None:
        model = Sequential(Flatten(), Dense(3 * 32 * 32, 10, rng=0))
        spec = InputSpec((3, 32, 32), (0.5,) * 3, (0.25,) * 3, tuple("abcdefghij"))
        state = TrainingState(TrainerSettings(1, 64, 0, 100), {"dataset": dataset}, spec,
                              Progress(epoch=1), None, {}, [])
        io.save(tmp / "cifar.npz", model, meta=state.to_meta())
    return setup


def diverging_run(tmp: Path, source: Source) -> None:
    """The run's checkpoint as if saved at the start of its epoch with weights so large
    (finite: a checkpoint refuses NaN) that the first step's loss overflows."""
    def weights(entries: dict) -> None:
        for name in entries:
            if name.startswith("model/"):
                entries[name] = np.full_like(entries[name], 1e30)

    def progress(document: dict) -> None:
        document["meta"]["progress"] = {"epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0,
                                        "seen": 0, "seconds": 0.0}
    edit_checkpoint(tmp / "run" / rundir.CHECKPOINT, progress, weights)


# --------------------------------------------------------------------- MNIST files
MNIST_NAMES = {"train_images": "train-images-idx3-ubyte.gz",
               "train_labels": "train-labels-idx1-ubyte.gz",
               "test_images": "t10k-images-idx3-ubyte.gz",
               "test_labels": "t10k-labels-idx1-ubyte.gz"}


def mnist(role: str, change: Callable[[Path], None]) -> Callable[[Path, Source], None]:
    """``{tmp}/data/mnist/`` with links to the good files, and ``change`` applied to the
    path of ``role``'s file (which is not created)."""
    def setup(tmp: Path, source: Source) -> None:
        directory = tmp / "data" / "mnist"
        directory.mkdir(parents=True)
        for key, name in MNIST_NAMES.items():
            if key != role:
                (directory / name).symlink_to(EMBEDDED_MNIST / name)
        change(directory / MNIST_NAMES[role])
    return setup


def gz_prefix(fraction: float) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        data = (EMBEDDED_MNIST / path.name).read_bytes()
        path.write_bytes(data[:int(len(data) * fraction)])
    return change


def gz_flipped(path: Path) -> None:
    data = bytearray((EMBEDDED_MNIST / path.name).read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def idx(array: np.ndarray) -> Callable[[Path], None]:
    return lambda path: write_idx(path, array)


def labels_with(value: int, count: int) -> np.ndarray:
    labels = np.zeros(count, np.uint8)
    labels[7] = value
    return labels


# ----------------------------------------------------------------- CIFAR-10 files
BATCH = 10000 * 3073  # bytes of one official batch


def cifar(*changes: tuple[str, Callable[[Path], None]]) -> Callable[[Path, Source], None]:
    """``{tmp}/data/cifar10/cifar-10-batches-bin/`` of well-formed files (sparse, all
    zeros, so cheap to make), with ``(name, change)`` applied instead for some."""
    def setup(tmp: Path, source: Source) -> None:
        directory = tmp / "data" / "cifar10" / "cifar-10-batches-bin"
        directory.mkdir(parents=True)
        changed = dict(changes)
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        for name in names + ["batches.meta.txt"]:
            if name in changed:
                changed[name](directory / name)
            elif name.endswith(".bin"):
                with open(directory / name, "wb") as handle:
                    handle.truncate(BATCH)
            else:
                (directory / name).write_text("\n".join("abcdefghij") + "\n")
    return setup


def sized(size: int, first: bytes = b"") -> Callable[[Path], None]:
    def change(path: Path) -> None:
        with open(path, "wb") as handle:
            handle.write(first)
            handle.truncate(size)
    return change


# ======================================================================= the table
@dataclass(frozen=True)
class Case:
    command: tuple[str, ...]
    setup: Callable[[Path, Source], None] | None
    status: int
    words: tuple[str, ...]
    creates: bool  # the command may add files (but never change one)
    env: dict[str, str]  # added to the environment


def case(id: str, *command: str, setup=None, status: int = 2, words=(), creates=False,
         env=None):
    if command[:1] == TRAIN and not {"--out", "--resume", "--eval"} & set(command):
        command += OUT
    return pytest.param(Case(command, setup, status, tuple(words), creates, env or {}), id=id)


#: Every download goes through a proxy that refuses at once: no row can reach the network.
NO_NETWORK = {name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy",
                                                      "HTTP_PROXY", "HTTPS_PROXY")}
NO_NETWORK.update(no_proxy="", NO_PROXY="")


NUMERIC = [  # flag, value, words
    ("--epochs", "0", ["--epochs", "expected epochs >= 1", "received 0"]),
    ("--epochs", "-3", ["--epochs", "expected epochs >= 1", "received -3"]),
    ("--epochs", "nan", ["--epochs", "expected an integer", "'nan'"]),
    ("--epochs", "2.5", ["--epochs", "expected an integer", "'2.5'"]),
    ("--epochs", "ten", ["--epochs", "expected an integer", "'ten'"]),
    ("--batch-size", "0", ["--batch-size", "expected batch_size >= 1", "received 0"]),
    ("--batch-size", "-64", ["--batch-size", "expected batch_size >= 1", "received -64"]),
    ("--batch-size", "inf", ["--batch-size", "expected an integer", "'inf'"]),
    ("--lr", "0", ["--lr", "expected lr > 0", "received 0.0"]),
    ("--lr", "-0.1", ["--lr", "expected lr > 0", "received -0.1"]),
    ("--lr", "nan", ["--lr", "expected a finite lr", "received nan"]),
    ("--lr", "inf", ["--lr", "expected a finite lr", "received inf"]),
    ("--lr", "fast", ["--lr", "expected a real number", "'fast'"]),
    ("--momentum", "-0.5", ["--momentum", "expected momentum >= 0", "received -0.5"]),
    ("--momentum", "nan", ["--momentum", "expected a finite momentum", "received nan"]),
    ("--momentum", "1", ["--momentum", "expected momentum < 1", "received 1.0"]),
    ("--momentum", "-inf", ["--momentum", "expected a finite momentum", "received -inf"]),
    ("--weight-decay", "nan", ["--weight-decay", "expected a finite weight_decay", "nan"]),
    ("--weight-decay", "-1e-4", ["--weight-decay", "expected weight_decay >= 0", "-0.0001"]),
    ("--weight-decay", "inf", ["--weight-decay", "expected a finite weight_decay", "inf"]),
    ("--warmup-epochs", "nan", ["--warmup-epochs", "expected a finite warmup_epochs", "nan"]),
    ("--warmup-epochs", "-1", ["--warmup-epochs", "expected warmup_epochs >= 0", "-1.0"]),
    ("--warmup-epochs", "inf", ["--warmup-epochs", "expected a finite warmup_epochs", "inf"]),
    ("--shift", "-2", ["--shift", "expected shift >= 0", "received -2"]),
    ("--shift", "two", ["--shift", "expected an integer", "'two'"]),
    ("--label-smoothing", "1.5", ["--label-smoothing", "expected label_smoothing < 1", "1.5"]),
    ("--label-smoothing", "-0.1", ["--label-smoothing", "expected label_smoothing >= 0"]),
    ("--label-smoothing", "nan", ["--label-smoothing", "expected a finite label_smoothing"]),
    ("--seed", "-1", ["--seed", "expected seed >= 0", "received -1"]),
    ("--seed", "0.5", ["--seed", "expected an integer", "'0.5'"]),
    ("--shards", "0", ["--shards", "expected shards >= 1", "received 0"]),
    ("--shards", "half", ["--shards", "expected an integer", "'half'"]),
    ("--val-split", "-1", ["--val-split", "expected val_split >= 0", "received -1"]),
    ("--val-split", "many", ["--val-split", "expected an integer", "'many'"]),
    ("--limit-train", "0", ["--limit-train", "expected limit_train >= 1", "received 0"]),
    ("--limit-train", "-100", ["--limit-train", "expected limit_train >= 1", "received -100"]),
    ("--limit-train", "1e3", ["--limit-train", "expected an integer", "'1e3'"]),
]

#: The rows of issue 11 (each once ended in a traceback or said the wrong thing):
#: out-is-a-file, out-inside-a-file, --momentum=-0.5, --momentum=nan,
#: --weight-decay=nan, --warmup-epochs=nan, --label-smoothing=1.5, resume-malformed-json,
#: resume-written-by-io-save, eval-metadata-a-number, eval-input-spec-lacks-a-key,
#: eval-random-bytes, mnist-directory-in-place-of-a-file, eval-no-model-description
#: and report-fails-after-training.
CASES = [
    # ------------------------------------------------------------ the command line
    *[case(f"{flag}={value}", *TRAIN, flag, value, words=words)
      for flag, value, words in NUMERIC],
    case("warmup-not-shorter-than-epochs", *TRAIN, "--epochs", "2", "--warmup-epochs", "2",
         words=["--warmup-epochs", "expected fewer warm-up epochs than the 2 epoch(s)",
                "received 2"]),
    case("warmup-longer-than-the-run", *TRAIN, "--epochs", "1", "--warmup-epochs", "1.5",
         words=["--warmup-epochs", "the 1 epoch(s) of the run", "received 1.5"]),
    case("val-split-the-whole-training-set", *TRAIN, "--val-split", "60000", *SHORT,
         words=["--val-split", "expected val_split <= 59999", "received 60000"]),
    case("val-split-beyond-the-training-set", *TRAIN, "--val-split", "100000", *SHORT,
         words=["--val-split", "expected val_split <= 59999", "received 100000"]),
    case("model-of-another-dataset", *TRAIN, "--model", "lenet", "--dataset", "cifar10",
         words=["--model", "expected a model for cifar10", "received lenet",
                "a mnist model"]),
    case("unknown-model", *TRAIN, "--model", "resnet50",
         words=["--model", "invalid choice", "'resnet50'", "lenet"]),
    case("unknown-optimizer", *TRAIN, "--optimizer", "rmsprop",
         words=["--optimizer", "invalid choice", "'rmsprop'", "adam"]),
    case("unknown-flag", *TRAIN, "--learning-rate", "0.1",
         words=["unrecognized arguments", "--learning-rate"]),
    case("empty-out", *TRAIN, "--out", "", words=["--out", "expected a path", "empty"]),
    case("empty-eval", *TRAIN, "--eval", "", words=["--eval", "expected a path", "empty"]),
    case("flag-without-value", *TRAIN, "--lr", words=["--lr", "expected one argument"]),
    case("eval-and-resume", *TRAIN, "--eval", "{tmp}/a.npz", "--resume", "{tmp}/run",
         words=["--eval", "--resume", "expected"]),
    case("resume-with-out", *TRAIN, "--resume", "{run}", "--out", "{tmp}/elsewhere",
         words=["--out", "--resume", "expected", "{tmp}/elsewhere"]),
    # --out
    case("out-is-a-file", *TRAIN, *SHORT, "--out", "{tmp}/notes.txt", setup=write_file(
        "notes.txt", b"keep me"), words=["--out", "expected a directory", "{tmp}/notes.txt",
                                         "an existing file"]),
    case("out-inside-a-file", *TRAIN, *SHORT, "--out", "{tmp}/notes.txt/run", setup=write_file(
        "notes.txt", b"keep me"), words=["--out", "inside the file", "{tmp}/notes.txt"]),
    case("out-non-empty-directory", *TRAIN, *SHORT, "--out", "{tmp}/photos", setup=write_file(
        "photos/cat.jpg", b"\xff\xd8"), words=["--out", "expected a new or empty directory",
                                              "{tmp}/photos", "already holds files"]),
    case("out-an-existing-run", *TRAIN, *SHORT, "--out", "{run}",
         words=["--out", "expected a new or empty directory", "--resume {run}"]),
    case("out-unwritable", *TRAIN, *SHORT, "--out", "{tmp}/locked/run", setup=locked_dir,
         words=["--out", "{tmp}/locked", "writable"]),
    # --data-dir
    case("data-dir-missing", *TRAIN, *SHORT, "--data-dir", "{tmp}/nowhere",
         words=["--data-dir", "expected an existing directory", "{tmp}/nowhere"]),
    case("data-dir-is-a-file", *TRAIN, *SHORT, "--data-dir", "{tmp}/notes.txt",
         setup=write_file("notes.txt", b"keep me"),
         words=["--data-dir", "expected", "directory", "{tmp}/notes.txt"]),

    # --------------------------------------------------------------- MNIST files
    case("mnist-truncated-gzip", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("train_images", gz_prefix(0.5)),
         words=["train-images-idx3-ubyte.gz", "expected a complete gzip stream", "truncated"]),
    case("mnist-corrupt-gzip", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("train_labels", gz_flipped),
         words=["train-labels-idx1-ubyte.gz", "expected", "gzip"]),
    case("mnist-not-gzip-nor-idx", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("train_images", lambda p: p.write_bytes(b"<html>404 Not Found</html>")),
         words=["train-images-idx3-ubyte.gz", "expected an IDX magic number", "received"]),
    case("mnist-empty-file", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("test_labels", lambda p: p.write_bytes(b"")),
         words=["t10k-labels-idx1-ubyte.gz", "expected a 4-byte IDX magic number",
                "received 0 bytes"]),
    case("mnist-wrong-magic", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("train_labels", idx(np.zeros((60000, 1, 1), np.uint8))),
         words=["train-labels-idx1-ubyte.gz", "expected IDX magic 2049", "3 dimensions"]),
    case("mnist-wrong-type", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("test_labels", idx(np.zeros(10000, np.int32))),
         words=["t10k-labels-idx1-ubyte.gz", "expected IDX magic 2049", "received int32"]),
    case("mnist-wrong-count", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("train_labels", idx(np.zeros(59999, np.uint8))),
         words=["train-labels-idx1-ubyte.gz", "expected labels of shape 60000",
                "received 59999"]),
    case("mnist-wrong-image-size", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("test_images", idx(np.zeros((10000, 32, 32), np.uint8))),
         words=["t10k-images-idx3-ubyte.gz", "expected images of shape 10000 x 28 x 28",
                "received 10000 x 32 x 32"]),
    case("mnist-label-out-of-range", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("test_labels", idx(labels_with(10, 10000))),
         words=["t10k-labels-idx1-ubyte.gz", "expected labels in 0..9", "received 10 at index 7"]),
    case("mnist-directory-in-place-of-a-file", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=mnist("train_images", lambda p: p.mkdir()),
         words=["train-images-idx3-ubyte.gz", "expected a file", "received a directory"]),
    case("mnist-directory-is-a-file", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=write_file("data/mnist", b"not a directory"),
         words=["{tmp}/data/mnist", "expected a file in a directory", "is a file"]),
    case("mnist-download-fails", *TRAIN, "--data-dir", "{tmp}/data", *SHORT,
         setup=make_dir("data"), env=NO_NETWORK, creates=True,
         words=["cannot load mnist", "could not download", "every mirror failed: http",
                "cannot connect", "To install MNIST by hand"]),
    case("mnist-bad-data-on-resume", *TRAIN, "--resume", "{run}", "--data-dir", "{tmp}/data",
         "--quiet", setup=mnist("test_images", gz_prefix(0.9)),
         words=["t10k-images-idx3-ubyte.gz", "expected a complete gzip stream"]),

    # --------------------------------------------------- CIFAR-10 files (through --eval)
    case("cifar-batch-of-wrong-size", *TRAIN, "--eval", "{tmp}/cifar.npz", "--dataset",
         "cifar10", "--data-dir", "{tmp}/data", "--quiet",
         setup=both(cifar_checkpoint("cifar10"), cifar(("data_batch_1.bin", sized(3073 * 7)))),
         words=["data_batch_1.bin", "expected 30730000 bytes", "received 21511 (truncated)"]),
    case("cifar-label-above-9", *TRAIN, "--eval", "{tmp}/cifar.npz", "--data-dir",
         "{tmp}/data", "--quiet",
         setup=both(cifar_checkpoint("cifar10"),
                    cifar(("data_batch_1.bin", sized(BATCH, b"\x0c")))),
         words=["data_batch_1.bin", "expected labels in 0..9", "received 12 at record 0"]),
    case("cifar-malformed-names-file", *TRAIN, "--eval", "{tmp}/cifar.npz", "--data-dir",
         "{tmp}/data", "--quiet",
         setup=both(cifar_checkpoint("cifar10"),
                    cifar(("batches.meta.txt", lambda p: p.write_text("cat\ndog\n")))),
         words=["batches.meta.txt", "expected 10 class names", "received 2 non-empty lines"]),
    case("cifar-directory-in-place-of-a-batch", *TRAIN, "--eval", "{tmp}/cifar.npz",
         "--data-dir", "{tmp}/data", "--quiet",
         setup=both(cifar_checkpoint("cifar10"), cifar(("data_batch_4.bin", Path.mkdir))),
         words=["data_batch_4.bin", "expected a file", "received a directory"]),
    case("cifar-batches-directory-is-a-file", *TRAIN, "--eval", "{tmp}/cifar.npz",
         "--data-dir", "{tmp}/data", "--quiet",
         setup=both(cifar_checkpoint("cifar10"),
                    write_file("data/cifar10/cifar-10-batches-bin", b"x")),
         words=["cifar-10-batches-bin", "expected a file in a directory", "is a file"]),
    case("cifar-download-fails", *TRAIN, "--eval", "{tmp}/cifar.npz", "--data-dir",
         "{tmp}/data", "--quiet", setup=both(cifar_checkpoint("cifar10"), make_dir("data")),
         env=NO_NETWORK, creates=True,
         words=["cannot load cifar10", "could not download CIFAR-10", "cannot connect"]),
    case("cifar-data-dir-missing", *TRAIN, "--eval", "{tmp}/cifar.npz", "--data-dir",
         "{tmp}/nowhere", setup=cifar_checkpoint("cifar10"),
         words=["--data-dir", "expected an existing directory", "{tmp}/nowhere"]),

    # ----------------------------------------------------------------- checkpoints
    case("eval-missing-file", *TRAIN, "--eval", "{tmp}/nope.npz",
         words=["{tmp}/nope.npz", "expected a checkpoint file", "does not exist"]),
    case("eval-a-directory", *TRAIN, "--eval", "{tmp}",
         words=["{tmp}", "expected a checkpoint file", "is a directory"]),
    case("eval-random-bytes", *TRAIN, "--eval", "{tmp}/noise.npz",
         setup=write_file("noise.npz", random_bytes(5000)),
         words=["{tmp}/noise.npz", "expected a .npz checkpoint", "not one"]),
    case("eval-zip-of-random-bytes", *TRAIN, "--eval", "{tmp}/noise.npz",
         setup=write_file("noise.npz", b"PK\x03\x04" + random_bytes(5000)),
         words=["{tmp}/noise.npz", "expected a complete .npz checkpoint"]),
    case("eval-empty-file", *TRAIN, "--eval", "{tmp}/empty.npz",
         setup=write_file("empty.npz", b""),
         words=["{tmp}/empty.npz", "expected a .npz checkpoint", "0 byte(s)"]),
    case("eval-truncated", *TRAIN, "--eval", "{tmp}/half.npz",
         setup=write_file("half.npz", truncated),
         words=["{tmp}/half.npz", "expected a complete .npz checkpoint", "truncated"]),
    case("eval-pickled-object-array", *TRAIN, "--eval", "{ckpt}", setup=pickled_entry,
         words=["{ckpt}", "pickled object array", "allow_pickle=False"]),
    case("eval-npz-of-something-else", *TRAIN, "--eval", "{tmp}/other.npz",
         setup=lambda tmp, source: np.savez(tmp / "other.npz", weights=np.zeros(3)),
         words=["{tmp}/other.npz", "expected a minidl checkpoint", "'weights'"]),
    case("eval-malformed-json", *TRAIN, "--eval", "{ckpt}", setup=set_document(b"{'model': "),
         words=["{ckpt}", "expected JSON metadata", "received unreadable bytes"]),
    case("eval-document-a-number", *TRAIN, "--eval", "{ckpt}", setup=set_document(b"42"),
         words=["{ckpt}", "expected format 'minidl-checkpoint'", "received 42"]),
    case("eval-metadata-a-number", *TRAIN, "--eval", "{ckpt}",
         setup=lambda tmp, source: edit_checkpoint(tmp / "run" / rundir.CHECKPOINT,
                                                   lambda d: d.update(meta=7)),
         words=["{ckpt}", "expected the metadata (key 'meta') to be a JSON object",
                "received int"]),
    case("eval-no-model-description", *TRAIN, "--eval", "{ckpt}",
         setup=lambda tmp, source: edit_checkpoint(tmp / "run" / rundir.CHECKPOINT,
                                                   lambda d: d.pop("model")),
         words=["{ckpt}", "expected a model description (key 'model')", "received none"]),
    case("eval-model-description-unknown-layer", *TRAIN, "--eval", "{ckpt}",
         setup=lambda tmp, source: edit_checkpoint(
             tmp / "run" / rundir.CHECKPOINT, lambda d: d["model"].update({"class": "Magic"})),
         words=["{ckpt}", "cannot rebuild the model", "Magic"]),
    case("eval-newer-version", *TRAIN, "--eval", "{ckpt}",
         setup=lambda tmp, source: edit_checkpoint(tmp / "run" / rundir.CHECKPOINT,
                                                   lambda d: d.update(version=99)),
         words=["{ckpt}", "expected checkpoint version 2", "received 99"]),
    case("eval-weight-of-wrong-shape", *TRAIN, "--eval", "{ckpt}",
         setup=lambda tmp, source: edit_checkpoint(
             tmp / "run" / rundir.CHECKPOINT,
             arrays=lambda e: e.update({"model/conv1.weight": np.zeros((6, 1, 3, 3), np.float32)})),
         words=["{ckpt}", "expected the weights of the model's own description",
                "'conv1.weight'", "expected shape (6, 1, 5, 5)", "received (6, 1, 3, 3)"]),
    case("eval-input-spec-lacks-a-key", *TRAIN, "--eval", "{ckpt}",
         setup=edit_meta(lambda m: m["input"].pop("std")),
         words=["{ckpt}", "key 'input'", "missing std"]),
    case("eval-input-spec-not-an-object", *TRAIN, "--eval", "{ckpt}",
         setup=edit_meta(lambda m: m.update(input=[1, 28, 28])),
         words=["{ckpt}", "key 'input'", "expected the input spec as a JSON object",
                "received list"]),
    case("eval-input-spec-bad-std", *TRAIN, "--eval", "{ckpt}",
         setup=edit_meta(lambda m: m["input"].update(std=[0.0])),
         words=["{ckpt}", "key 'input'", "expected std > 0"]),
    case("eval-written-by-io-save", *TRAIN, "--eval", "{tmp}/bare.npz",
         setup=bare_save("bare.npz"),
         words=["{tmp}/bare.npz", "expected a checkpoint written by a training run",
                "without an input spec"]),
    case("eval-settings-name-an-unknown-dataset", *TRAIN, "--eval", "{ckpt}",
         setup=edit_meta(lambda m: m["settings"].update(dataset="imagenet")),
         words=["{ckpt}", "key 'settings'", "expected dataset to be one of", "'imagenet'"]),
    case("eval-model-for-another-dataset", *TRAIN, "--eval", "{tmp}/cifar.npz",
         setup=cifar_checkpoint("mnist"),
         words=["--eval", "expected a mnist model", "{tmp}/cifar.npz", "(3, 32, 32)"]),
    case("eval-mnist-model-on-cifar10", *TRAIN, "--eval", "{ckpt}", "--dataset", "cifar10",
         words=["--eval", "expected a cifar10 model", "{ckpt}", "(1, 28, 28)"]),
    case("eval-model-that-refuses-its-input", *TRAIN, "--eval", "{ckpt}",
         setup=edit_meta(lambda m: m["input"].update(pad=3)),
         words=["{ckpt}", "expected a model", "(1, 34, 34)"]),
    case("eval-model-with-wrong-class-count", *TRAIN, "--eval", "{ckpt}",
         setup=edit_meta(lambda m: m["input"].update(class_names=list("abc"))),
         words=["{ckpt}", "expected", "3 classes", "10"]),
    # --resume
    case("resume-missing", *TRAIN, "--resume", "{tmp}/nope",
         words=["{tmp}/nope", "expected a checkpoint file", "does not exist"]),
    case("resume-directory-without-checkpoint", *TRAIN, "--resume", "{tmp}/empty",
         setup=make_dir("empty"),
         words=["{tmp}/empty/checkpoint.npz", "expected a checkpoint file", "does not exist"]),
    case("resume-clashing-flag", *TRAIN, "--resume", "{run}", "--lr", "0.5",
         words=["--resume continues a run with its own settings", "--lr 0.5",
                "the run has 0.05"]),
    case("resume-clashing-model", *TRAIN, "--resume", "{run}", "--model", "lenet5",
         words=["--resume", "--model lenet5", "the run has lenet"]),
    case("resume-clashing-shards", *TRAIN, "--resume", "{run}", "--shards", "3", "--quiet",
         words=["a resumed run continues with its own settings", "shards=3 (the run has 2)"]),
    case("resume-random-bytes", *TRAIN, "--resume", "{run}",
         setup=write_file("run/checkpoint.npz", random_bytes(3000)),
         words=["{ckpt}", "expected a .npz checkpoint", "not one"]),
    case("resume-truncated", *TRAIN, "--resume", "{run}",
         setup=write_file("run/checkpoint.npz", truncated),
         words=["{ckpt}", "expected a complete .npz checkpoint", "truncated"]),
    case("resume-malformed-json", *TRAIN, "--resume", "{run}", setup=set_document(b"{\"a\": 1,"),
         words=["{ckpt}", "expected JSON metadata", "received unreadable bytes"]),
    case("resume-written-by-io-save", *TRAIN, "--resume", "{tmp}/bare",
         setup=bare_save("bare/checkpoint.npz"),
         words=["{tmp}/bare/checkpoint.npz", "expected the metadata of a training run",
                "minidl.io.save holds weights but no run to resume"]),
    case("resume-metadata-a-list", *TRAIN, "--resume", "{run}",
         setup=lambda tmp, source: edit_checkpoint(tmp / "run" / rundir.CHECKPOINT,
                                                   lambda d: d.update(meta=[1, 2])),
         words=["{ckpt}", "expected the metadata (key 'meta') to be a JSON object"]),
    case("resume-without-settings", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m.update(settings={})),
         words=["{ckpt}", "expected the run's settings", "was it written by train.py"]),
    case("resume-unknown-model", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["settings"].update(model="alexnet")),
         words=["{ckpt}", "key 'settings'", "expected model to be one of", "'alexnet'"]),
    case("resume-model-for-another-dataset", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["settings"].update(dataset="cifar10")),
         words=["{ckpt}", "settings", "expected", "cifar10"]),
    case("resume-setting-out-of-range", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["settings"].update(lr=-1)),
         words=["{ckpt}", "settings", "expected lr > 0", "received -1"]),
    case("resume-setting-of-wrong-type", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["settings"].update(batch_size="64")),
         words=["{ckpt}", "settings", "expected batch_size to be an integer", "'64'"]),
    case("resume-negative-progress", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["progress"].update(step=-4)),
         words=["{ckpt}", "'progress.step'", "expected", "received -4"]),
    case("resume-position-beyond-the-run", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["progress"].update(step=99)),
         words=["{ckpt}", "expected a position within the run (1 epochs of 4 steps)",
                "step 99"]),
    case("resume-damaged-weight-stats", *TRAIN, "--resume", "{run}",
         setup=write_file("run/weight_stats.csv", b"epoch,layer,mean_abs_weight,mean_abs_grad,"
                                                  b"ratio\none,conv1,0.1,0.01,0.1\n"),
         words=["{run}/weight_stats.csv", "expected numbers in every row"]),
    case("resume-a-checkpoint-outside-its-run", *TRAIN, "--resume", "{tmp}/saved.npz",
         setup=lambda tmp, source: shutil.copy(source() / rundir.CHECKPOINT, tmp / "saved.npz"),
         words=["--resume", "expected a run directory or the checkpoint.npz in one",
                "{tmp}/saved.npz"]),
    case("resume-metrics-not-numbers", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["metrics"][0].update(test_acc="97%")),
         words=["{ckpt}", "expected a number or null in 'metrics'", "'test_acc'", "'97%'"]),
    case("resume-other-training-size", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["trainer"].update(train_size=1000)),
         words=["{ckpt}", "train_size=256 (the run has 1000)"]),
    case("resume-bad-schedule", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["schedule"].update(last_step="x")),
         words=["{ckpt}", "key 'schedule'", "expected 'last_step' to be an integer"]),
    case("resume-weights-of-another-model", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["settings"].update(model="lenet-caffe")),
         words=["{ckpt}", "expected the weights of the model given, received others",
                "fc3.weight"]),
    case("resume-optimizer-of-another-kind", *TRAIN, "--resume", "{run}",
         setup=edit_meta(lambda m: m["settings"].update(optimizer="adam")),
         words=["{ckpt}", "optimizer", "expected"]),
    case("resume-nan-stop-keeps-the-run", *TRAIN, "--resume", "{run}", "--quiet",
         setup=diverging_run, status=1,
         words=["the training loss became", "{ckpt}", "is untouched", "lower --lr"]),
    case("report-fails-after-training", *TRAIN, "--resume", "{run}", "--quiet",
         setup=make_dir("run/report.html"), status=1, creates=True,
         words=["training finished", "{ckpt}", "the report failed", "report.html"]),

    # ---------------------------------------------------------- python -m minidl.viz
    case("viz-no-source", *VIZ, words=["the following arguments are required",
                                       "RUN_DIR_OR_CHECKPOINT"]),
    case("viz-missing-source", *VIZ, "{tmp}/nope",
         words=["{tmp}/nope", "no such file or directory", "expected a run directory"]),
    case("viz-directory-without-checkpoint", *VIZ, "{tmp}/empty", setup=make_dir("empty"),
         words=["{tmp}/empty", "expected a run directory holding checkpoint.npz"]),
    case("viz-not-a-checkpoint", *VIZ, "{tmp}/noise.npz",
         setup=write_file("noise.npz", random_bytes(4000)),
         words=["{tmp}/noise.npz", "not a minidl checkpoint", "expected a .npz checkpoint"]),
    case("viz-truncated-checkpoint", *VIZ, "{tmp}/half.npz",
         setup=write_file("half.npz", truncated),
         words=["{tmp}/half.npz", "expected a complete .npz checkpoint"]),
    case("viz-negative-samples", *VIZ, "{run}", "--samples", "-1",
         words=["--samples", "expected samples >= 0", "received -1"]),
    case("viz-samples-text", *VIZ, "{run}", "--samples", "few",
         words=["--samples", "expected samples to be an integer", "'few'"]),
    case("viz-out-inside-a-file", *VIZ, "{run}", "--out", "{tmp}/notes.txt/report",
         setup=write_file("notes.txt", b"keep me"),
         words=["--out", "{tmp}/notes.txt", "inside the file"]),
    case("viz-out-is-a-file", *VIZ, "{run}", "--out", "{tmp}/notes.txt",
         setup=write_file("notes.txt", b"keep me"),
         words=["--out", "expected a directory", "{tmp}/notes.txt"]),
    case("viz-unknown-flag", *VIZ, "{run}", "--format", "pdf",
         words=["unrecognized arguments", "--format"]),
]


# ======================================================================== the test
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One real run directory (one epoch on 256 images), copied by the rows that need it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    done = subprocess.run([sys.executable, *TRAIN, *SHORT, "--out", str(out)], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root``: a file's bytes, None for a directory or a link."""
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        regular = path.is_file() and not path.is_symlink()
        out[str(path.relative_to(root))] = path.read_bytes() if regular else None
    return out


@pytest.mark.parametrize("row", CASES)
def test_bad_input_ends_in_one_clear_line(row: Case, tmp_path: Path, request) -> None:
    fill = {"tmp": str(tmp_path), "run": str(tmp_path / "run"),
            "ckpt": str(tmp_path / "run" / rundir.CHECKPOINT)}
    if any("{run}" in part or "{ckpt}" in part for part in row.command):
        shutil.copytree(request.getfixturevalue("trained_run"), tmp_path / "run")
    if row.setup is not None:
        row.setup(tmp_path, lambda: request.getfixturevalue("trained_run"))
    before = snapshot(tmp_path)

    command = [part.format(**fill) for part in row.command]
    done = subprocess.run([sys.executable, *command], cwd=ROOT, env={**ENV, **row.env},
                          capture_output=True, text=True, timeout=120)

    lines = done.stderr.strip().splitlines()
    assert done.returncode == row.status, done.stderr
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    program = PROGRAMS[TRAIN if command[0] == "train.py" else VIZ]
    assert lines[0].startswith(program), lines[0]
    for word in row.words:
        assert word.format(**fill) in lines[0], f"{word.format(**fill)!r} not in {lines[0]!r}"
    after = snapshot(tmp_path)
    assert {name: after.get(name) for name in before} == before, "a file was changed or removed"
    if not row.creates:
        assert sorted(after) == sorted(before), "a failed command created files"
