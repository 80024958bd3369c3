"""MNIST: locate the four published IDX files, download missing ones, validate, load.

Files found on disk are validated by structure (type, dimensions, counts, exact
length, label range), not by checksum, so a locally rebuilt but well-formed
copy loads. Downloaded bytes are checked against the published MD5 sums
before they are moved into place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .download import DownloadError, fetch, missing_files
from .idx import IDXError, read_idx

__all__ = ["MNISTError", "MNIST_FILES", "MIRRORS", "MD5_CHECKSUMS", "EXPECTED_COUNTS",
           "default_data_root", "download_mnist", "load_mnist"]

#: Role -> published file name. Files live in ``<root>/mnist/``.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: Base URLs tried in order. The original site answers 403 to many scripts,
#: so it comes last.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Published MD5 of each file, checked on downloaded bytes only.
MD5_CHECKSUMS: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: Number of examples per split; tests may shrink these.
EXPECTED_COUNTS: dict[str, int] = {"train": 60000, "test": 10000}
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


class MNISTError(RuntimeError):
    """MNIST could not be made available: files missing, a download failed, or a
    file on disk is corrupt. The message names the directory and the file(s)."""


def default_data_root() -> Path:
    """The data root used when ``load_mnist`` gets no ``root``.

    ``$MINIDL_DATA`` if set and non-empty, else ``$XDG_CACHE_HOME/minidl`` (when
    that is an absolute path, per the XDG spec), else ``~/.cache/minidl``.
    """
    env = os.environ.get("MINIDL_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache and os.path.isabs(cache):
        return Path(cache) / "minidl"
    return Path.home() / ".cache" / "minidl"


def _mnist_dir(root: str | os.PathLike | None) -> Path:
    base = Path(root).expanduser() if root is not None else default_data_root()
    return base / "mnist"


def _manual_instructions(directory: Path, names: Sequence[str]) -> str:
    listed = "".join(f"\n  {directory / n}" for n in names)
    return (f"\nTo install MNIST by hand, put these files there:{listed}\n"
            f"or point the `root` argument or the MINIDL_DATA environment variable at a "
            f"directory whose 'mnist' subdirectory holds them.")


def download_mnist(root: str | os.PathLike | None = None, *,
                   mirrors: Sequence[str] | None = None,
                   checksums: Mapping[str, str | None] | None = None,
                   progress: bool = True, timeout: float = 30.0) -> Path:
    """Download the MNIST files missing from ``<root>/mnist/``.

    Each missing file is fetched from the first mirror that delivers it with
    the expected checksum. Files already present are left alone.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Data root; defaults to :func:`default_data_root`.
    mirrors : sequence of str, optional
        Base URLs tried in order; defaults to :data:`MIRRORS`.
    checksums : mapping, optional
        File name -> expected MD5 hex digest; defaults to :data:`MD5_CHECKSUMS`.
        A file mapped to None (or not listed) is not verified.
    progress : bool
        Show a tqdm progress bar per file.
    timeout : float
        Seconds to wait on a connection or a read.

    Returns
    -------
    Path
        The ``mnist`` directory.

    Raises
    ------
    MNISTError
        If a file cannot be fetched from any mirror (listing every URL and why
        it failed), the directory cannot be created, or something other than
        a file (a directory, say) stands where a file belongs (no download is
        tried then).
    """
    directory = _mnist_dir(root)
    mirrors = MIRRORS if mirrors is None else tuple(mirrors)
    checksums = MD5_CHECKSUMS if checksums is None else checksums
    missing = missing_files(directory, MNIST_FILES.values(), MNISTError)
    if not missing:
        return directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MNISTError(f"cannot create the MNIST directory {directory}: {err}."
                         + _manual_instructions(directory, missing)) from err
    for name in missing:
        failures = []
        for base in mirrors:
            url = base + ("" if base.endswith("/") else "/") + name
            try:
                fetch(url, directory / name, md5=checksums.get(name), timeout=timeout,
                      progress=progress)
                break
            except DownloadError as err:
                failures.append(f"\n  {url}: {err}")
        else:
            tried = "".join(failures) if failures else "\n  (no mirrors given)"
            raise MNISTError(
                f"could not download {name} into {directory}; every mirror failed:{tried}"
                + _manual_instructions(directory, missing))
    return directory


_REMEDY = "; delete it to download it again, or replace it by hand"


def _read_checked(path: Path, kind: str, magic: int, shape: tuple[int, ...]) -> np.ndarray:
    """Read one file and check its type (as given by ``magic``) and shape."""
    try:
        array = read_idx(path)
    except IDXError as err:
        raise MNISTError(f"{err}{_REMEDY}") from err
    except OSError as err:
        raise MNISTError(f"{path}: cannot read ({err})") from err
    if array.dtype != np.uint8 or array.ndim != len(shape):
        plural = "s" if len(shape) > 1 else ""
        raise MNISTError(
            f"{path}: expected IDX magic {magic} (unsigned bytes, {len(shape)} dimension"
            f"{plural}), received {array.dtype} with {array.ndim} dimension"
            f"{'s' if array.ndim != 1 else ''}{_REMEDY}")
    if array.shape != shape:
        raise MNISTError(f"{path}: expected {kind} of shape {' x '.join(map(str, shape))}, "
                         f"received {' x '.join(map(str, array.shape))}{_REMEDY}")
    return array


def _load_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one split's images and labels."""
    count = EXPECTED_COUNTS[split]
    images_path = directory / MNIST_FILES[f"{split}_images"]
    labels_path = directory / MNIST_FILES[f"{split}_labels"]
    images = _read_checked(images_path, "images", 2051, (count, *IMAGE_SHAPE))
    labels = _read_checked(labels_path, "labels", 2049, (count,))
    # Implied by the shape checks while the counts are fixed; kept as a safeguard.
    if len(images) != len(labels):
        raise MNISTError(f"{directory}: expected as many {split} labels as images "
                         f"({len(images)}), received {len(labels)}")
    if labels.size and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise MNISTError(f"{labels_path}: expected labels in 0..{NUM_CLASSES - 1}, "
                         f"received {labels[bad]} at index {bad}{_REMEDY}")
    return images, labels


def load_mnist(root: str | os.PathLike | None = None, download: bool = True,
               progress: bool = True, *, mirrors: Sequence[str] | None = None,
               checksums: Mapping[str, str | None] | None = None, timeout: float = 30.0,
               ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))``.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Data root; the files are read from ``<root>/mnist/``. Defaults to
        :func:`default_data_root` (``$MINIDL_DATA``, else a per-user cache).
    download : bool
        Download missing files (see :func:`download_mnist`). When False, a
        missing file is an error.
    progress : bool
        Show download progress bars.
    mirrors, checksums, timeout
        Passed to :func:`download_mnist`.

    Returns
    -------
    tuple
        uint8 images of shape (60000, 28, 28) and (10000, 28, 28); uint8
        labels in 0..9 of shape (60000,) and (10000,).

    Raises
    ------
    MNISTError
        If a file is missing (``download=False``), cannot be downloaded, is
        not a file (a directory in its place is reported, not downloaded
        over), or is structurally invalid. Checksums are not verified for
        files already on disk.
    """
    directory = _mnist_dir(root)
    missing = missing_files(directory, MNIST_FILES.values(), MNISTError)
    if missing:
        if not download:
            raise MNISTError(f"MNIST file(s) missing from {directory}: {', '.join(missing)} "
                             f"(download=False)." + _manual_instructions(directory, missing))
        download_mnist(directory.parent, mirrors=mirrors, checksums=checksums,
                       progress=progress, timeout=timeout)
    return _load_split(directory, "train"), _load_split(directory, "test")
