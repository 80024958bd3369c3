"""Datasets by name: uint8 images ``(N, C, H, W)``, labels, class names, normalisation.

    dataset = load_dataset("mnist")                  # the copy embedded in the repository
    dataset = load_dataset("cifar10", "/data")       # /data/cifar10/cifar-10-batches-bin/
    (x_train, y_train), val = dataset.holdout(10000)

Where the files are looked for, first match wins:

1. ``data_dir`` (``train.py --data-dir``), when given;
2. ``$MINIDL_DATA``, when set;
3. for MNIST, the copy embedded in this repository (``datasets/embedded/mnist``,
   checked against its ``SHA256SUMS``); for the others the per-user cache
   (``$XDG_CACHE_HOME/minidl`` or ``~/.cache/minidl``), downloaded there when missing.

A new dataset needs a loader returning a :class:`Dataset` and one entry in
:data:`DATASETS`; the trainer and ``train.py`` need no change.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .cifar10 import CIFAR10Error, load_cifar10
from .idx import IDXError
from .mnist import MNISTError, default_data_root, load_mnist

__all__ = ["Dataset", "DatasetError", "DATASETS", "EMBEDDED_ROOT", "load_dataset", "data_root"]

#: The repository's own copy of MNIST lives in EMBEDDED_ROOT / "mnist".
EMBEDDED_ROOT = Path(__file__).resolve().parent / "embedded"


class DatasetError(RuntimeError):
    """A dataset could not be loaded; the message names the file or directory and why."""


@dataclass
class Dataset:
    """A dataset in memory, images kept as uint8 until a batch is drawn.

    ``mean`` and ``std`` are per channel on the scale of ``pixel / 255``.
    ``test_images`` and ``test_labels`` are None when the test set is absent
    (``notes`` then says so). ``default_val_split`` is how many images at the end
    of the training set are held out for validation by default.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    default_val_split: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    def holdout(self, count: int) -> tuple[tuple[np.ndarray, np.ndarray],
                                           tuple[np.ndarray, np.ndarray] | None]:
        """``(train, validation)``: the last ``count`` training images become validation data.

        ``count=0`` gives ``(all training data, None)``. The arrays are views.
        """
        n = len(self.train_images)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 <= count < n:
            raise ValueError(f"{self.name}: expected a validation split from 0 to {n - 1} images, "
                             f"received {count!r}")
        if count == 0:
            return (self.train_images, self.train_labels), None
        cut = n - count
        return ((self.train_images[:cut], self.train_labels[:cut]),
                (self.train_images[cut:], self.train_labels[cut:]))


def data_root(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The directory whose ``<name>/`` subdirectory holds the dataset (see the module doc)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("MINIDL_DATA")
    if env:
        return Path(env).expanduser()
    # default_data_root() is the per-user cache here, since $MINIDL_DATA is unset.
    return EMBEDDED_ROOT if name == "mnist" else default_data_root()


def _verify_embedded(directory: Path) -> None:
    """Refuse an embedded file that does not match the checksum the repository records."""
    sums = directory / "SHA256SUMS"
    try:
        lines = sums.read_text(encoding="utf-8").split("\n")
    except OSError as error:
        raise DatasetError(f"{sums}: cannot read the recorded checksums ({error})") from None
    for line in filter(None, (line.strip() for line in lines)):
        expected, _, name = line.partition("  ")
        path = directory / name
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as error:
            raise DatasetError(f"{path}: cannot read the embedded file ({error}); restore it "
                               f"with: git checkout -- {path}") from None
        if digest != expected:
            raise DatasetError(f"{path}: expected SHA-256 {expected} (recorded in {sums.name}), "
                               f"received {digest}; restore it with: git checkout -- {path}")


def _mnist(root: Path, progress: bool) -> Dataset:
    if root == EMBEDDED_ROOT:
        _verify_embedded(root / "mnist")
    (x_train, y_train), (x_test, y_test) = load_mnist(root, progress=progress)
    return Dataset("mnist", x_train[:, None], y_train, x_test[:, None], y_test,
                   tuple(str(d) for d in range(10)), mean=(0.1307,), std=(0.3081,))


def _cifar10(root: Path, progress: bool) -> Dataset:
    data = load_cifar10(root, progress=progress)
    notes = [data.test_missing] if data.test_missing else []
    # The published per-channel statistics of the training set, on the 0..1 scale.
    return Dataset("cifar10", data.train_images, data.train_labels, data.test_images,
                   data.test_labels, tuple(data.class_names),
                   mean=(125.31 / 255, 122.95 / 255, 113.87 / 255),
                   std=(62.99 / 255, 62.09 / 255, 66.70 / 255),
                   default_val_split=10000, notes=notes)


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its loader, a one-line description for ``--help`` and the
    shape ``(C, H, W)`` of its images (known before loading, so a model for other
    images can be refused without reading any data)."""

    load: Callable[[Path, bool], Dataset]
    description: str
    image_shape: tuple[int, int, int]


DATASETS: dict[str, DatasetEntry] = {
    "mnist": DatasetEntry(_mnist, "MNIST digits, 1x28x28, 60,000 training and 10,000 test "
                                  "images (embedded in the repository)", (1, 28, 28)),
    "cifar10": DatasetEntry(_cifar10, "CIFAR-10, 3x32x32 colour, 50,000 training images "
                                      "(data_batch_5 held out for validation by default) "
                                      "and 10,000 test images", (3, 32, 32)),
}


def _one_line(message: str) -> str:
    """A loader's message on one line: a download failure lists one mirror a line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    for line in lines[1:]:
        text += (" " if text.endswith((":", ".")) else "; ") + line
    return text


def load_dataset(name: str, data_dir: str | os.PathLike | None = None,
                 progress: bool = True) -> Dataset:
    """Load a registered dataset.

    Raises
    ------
    DatasetError
        For any failure (unknown name, a missing, unreadable or malformed file, a
        failed download), as one line naming the file or directory and why.
    """
    if name not in DATASETS:
        raise DatasetError(f"expected a dataset among {', '.join(sorted(DATASETS))}, "
                           f"received {name!r}")
    entry = DATASETS[name]
    root = data_root(name, data_dir)
    try:
        dataset = entry.load(root, progress)
    except (MNISTError, CIFAR10Error, IDXError, OSError) as error:
        # OSError: a file the loader found but cannot read (permissions, I/O error).
        raise DatasetError(f"cannot load {name}: {_one_line(str(error))}") from None
    if dataset.image_shape != entry.image_shape:
        raise DatasetError(f"cannot load {name}: expected images of shape {entry.image_shape}, "
                           f"received {dataset.image_shape} from {root}")
    return dataset
