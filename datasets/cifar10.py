"""CIFAR-10 in the official binary layout: read, validate, download, load.

The files live in ``<root>/cifar10/cifar-10-batches-bin/``: five training
batches ``data_batch_1.bin`` .. ``data_batch_5.bin``, ``test_batch.bin`` and the
class names in ``batches.meta.txt``. Each batch is 10,000 records of 3073
bytes: one label byte (0-9), then the 1024 red, 1024 green and 1024 blue
values of a 32 x 32 image, each plane row-major -- which is exactly an NCHW
uint8 array once the label column is dropped.

Files found on disk are validated by structure (exact size, label range, the
names file's layout); the published MD5 is checked on the downloaded archive.
The training set is required; a missing test batch is reported, never
substituted.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minidl import checks

from .download import (ArchiveError, DownloadError, exists_as_file, extract_tar, fetch,
                       missing_files)
from .mnist import default_data_root

__all__ = ["CIFAR10_URL", "CIFAR10_MD5", "CIFAR10Error", "CIFAR10", "read_batch",
           "read_class_names", "download_cifar10", "load_cifar10"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
#: MD5 of the archive at CIFAR10_URL, checked on downloaded bytes only.
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"

ARCHIVE_NAME = "cifar-10-binary.tar.gz"
#: The directory the archive unpacks to, inside ``<root>/cifar10/``.
BATCHES_DIR = "cifar-10-batches-bin"
TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
#: Records in each batch file; tests may shrink it.
BATCH_RECORDS = 10000
IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + int(np.prod(IMAGE_SHAPE))  # 3073
NUM_CLASSES = 10


class CIFAR10Error(RuntimeError):
    """CIFAR-10 could not be made available: files missing, a download failed, or a
    file on disk is malformed. The message names the directory or file."""


@dataclass(frozen=True, eq=False)
class CIFAR10:
    """The CIFAR-10 training set and, when present, the test set.

    Attributes
    ----------
    train_images : np.ndarray
        uint8, shape (50000, 3, 32, 32), NCHW with channels in RGB order.
    train_labels : np.ndarray
        uint8 in 0..9, shape (50000,).
    test_images : np.ndarray or None
        uint8, shape (10000, 3, 32, 32); None when ``test_batch.bin`` is absent.
    test_labels : np.ndarray or None
        uint8 in 0..9, shape (10000,); None when ``test_batch.bin`` is absent.
    class_names : list of str
        The ten names from ``batches.meta.txt``, indexed by label.
    test_missing : str or None
        None when the test set was loaded, else a sentence saying which file is
        missing from which directory (for reports and logs).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    class_names: list[str]
    test_missing: str | None = None


def _require_file(path: Path) -> None:
    """Raise FileNotFoundError if nothing is at ``path``, CIFAR10Error if it is not a file."""
    if not exists_as_file(path, CIFAR10Error):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))


def _read_records(path: Path, records: int) -> np.ndarray:
    """The file as a validated (records, 3073) uint8 table: label column, then pixels."""
    _require_file(path)
    expected = records * RECORD_BYTES

    def size_error(received: int) -> CIFAR10Error:
        note = " (truncated)" if received < expected else ""
        return CIFAR10Error(f"{path}: expected {expected} bytes ({records} records of "
                            f"{RECORD_BYTES} bytes), received {received}{note}")

    # Checked before reading, so a wrong file is not read whole for nothing.
    size = path.stat().st_size
    if size != expected:
        raise size_error(size)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size != expected:  # the file changed since it was measured
        raise size_error(raw.size)
    table = raw.reshape(records, RECORD_BYTES)
    labels = table[:, 0]
    if labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise CIFAR10Error(f"{path}: expected labels in 0..{NUM_CLASSES - 1}, "
                           f"received {labels[bad]} at record {bad}")
    return table


def read_batch(path: str | os.PathLike, records: int = BATCH_RECORDS,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file.

    Parameters
    ----------
    path : str or os.PathLike
        A file of ``records`` records, each 1 label byte and 3072 pixel bytes.
    records : int
        The number of records the file must hold (10,000 for the official
        batches).

    Returns
    -------
    images : np.ndarray
        uint8, shape (records, 3, 32, 32), C-contiguous, channels in RGB order.
    labels : np.ndarray
        uint8 in 0..9, shape (records,).

    Raises
    ------
    CIFAR10Error
        If the size is not exactly ``records * 3073`` bytes, a label is above 9
        (naming the record), or ``path`` is not a file (a directory, say).
    OSError
        If the file does not exist or cannot be read.
    ValueError
        If ``records`` is not a positive integer.
    """
    records = checks.integer(records, "records", "read_batch", minimum=1)
    table = _read_records(Path(path), records)
    images = np.ascontiguousarray(table[:, 1:].reshape(records, *IMAGE_SHAPE))
    return images, table[:, 0].copy()


def _describe_lines(names: list[str]) -> str:
    """What is wrong with a names file whose stripped lines are ``names``."""
    count = sum(1 for name in names if name)
    if count != NUM_CLASSES:
        return f"{count} non-empty line{'s' if count != 1 else ''}"
    first_empty = names.index("") + 1
    return f"an empty line {first_empty} before the last name"


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Read the class names from ``batches.meta.txt``.

    Parameters
    ----------
    path : str or os.PathLike
        A UTF-8 text file: ten non-empty lines (the names of labels 0..9, in
        order), then nothing but empty lines. Surrounding spaces are ignored.

    Returns
    -------
    list of str
        The ten names.

    Raises
    ------
    CIFAR10Error
        If the file is not laid out that way, is not text, or is not a file.
    OSError
        If the file does not exist or cannot be read.
    """
    path = Path(path)
    _require_file(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CIFAR10Error(f"{path}: expected UTF-8 text, received byte "
                           f"0x{err.object[err.start]:02x} at offset {err.start}") from None
    names = [line.strip() for line in text.splitlines()]
    if len(names) < NUM_CLASSES or not all(names[:NUM_CLASSES]) or any(names[NUM_CLASSES:]):
        raise CIFAR10Error(f"{path}: expected {NUM_CLASSES} class names, one a line, then "
                           f"only empty lines; received {_describe_lines(names)}")
    return names[:NUM_CLASSES]


def _cifar10_dir(root: str | os.PathLike | None) -> Path:
    """``<root>/cifar10``: where the archive is unpacked."""
    base = Path(root).expanduser() if root is not None else default_data_root()
    return base / "cifar10"


def _manual_instructions(base: Path, url: str, md5: str | None) -> str:
    directory = base / BATCHES_DIR
    checksum = f" (md5 {md5})" if md5 else ""
    return (f"\nTo install CIFAR-10 by hand, fetch {url}{checksum} elsewhere and extract it "
            f"into {base} (tar -xzf {ARCHIVE_NAME} -C {base}), so that {directory} holds "
            f"{TRAIN_FILES[0]} .. {TRAIN_FILES[-1]}, {TEST_FILE} and {META_FILE};\n"
            f"or point the `root` argument or the MINIDL_DATA environment variable at a "
            f"directory whose '{base.name}/{BATCHES_DIR}' subdirectory holds them.")


_REQUIRED_FILES = (*TRAIN_FILES, META_FILE)


def download_cifar10(root: str | os.PathLike | None = None, *, url: str = CIFAR10_URL,
                     md5: str | None = CIFAR10_MD5, progress: bool = True,
                     timeout: float = 30.0) -> Path:
    """Download and unpack the CIFAR-10 binary archive into ``<root>/cifar10/``.

    Nothing is fetched when every file is already there. Otherwise the archive
    is downloaded atomically (MD5 checked), extracted safely (see
    :func:`datasets.download.extract_tar`: links, devices, absolute paths and
    ``..`` are refused) and removed; extracted files replace those present.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Data root; defaults to :func:`datasets.mnist.default_data_root`.
    url : str
        Where the ``.tar.gz`` archive is fetched from.
    md5 : str or None
        Its expected MD5 hex digest; None skips the check.
    progress : bool
        Show a tqdm progress bar.
    timeout : float
        Seconds to wait on the connection and on each read.

    Returns
    -------
    Path
        The ``cifar-10-batches-bin`` directory.

    Raises
    ------
    CIFAR10Error
        If the download fails (naming the URL, the reason and how to install
        the files by hand), the archive is refused or lacks the training files,
        or something other than a file stands where a file belongs (no
        download is tried then).
    ValueError
        If ``progress`` is not a bool or ``timeout`` is not positive.
    """
    progress = checks.boolean(progress, "progress", "download_cifar10")
    timeout = checks.real(timeout, "timeout", "download_cifar10", 0, strict_min=True)
    base = _cifar10_dir(root)
    directory = base / BATCHES_DIR
    if not missing_files(directory, (*_REQUIRED_FILES, TEST_FILE), CIFAR10Error):
        return directory
    manual = _manual_instructions(base, url, md5)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CIFAR10Error(f"cannot create the CIFAR-10 directory {base}: {err}."
                           + manual) from err
    archive = base / ARCHIVE_NAME
    try:
        fetch(url, archive, md5=md5, timeout=timeout, progress=progress)
    except DownloadError as err:
        raise CIFAR10Error(f"could not download CIFAR-10 from {url}: {err}." + manual) from err
    try:
        extract_tar(archive, base)
    except ArchiveError as err:
        raise CIFAR10Error(f"{err}." + manual) from err
    finally:
        archive.unlink(missing_ok=True)
    still_missing = missing_files(directory, _REQUIRED_FILES, CIFAR10Error)
    if still_missing:
        raise CIFAR10Error(f"the archive from {url} was extracted into {base}, but "
                           f"{directory} lacks {', '.join(still_missing)}." + manual)
    return directory


def load_cifar10(root: str | os.PathLike | None = None, download: bool = True,
                 progress: bool = True, *, url: str = CIFAR10_URL,
                 md5: str | None = CIFAR10_MD5, timeout: float = 30.0) -> CIFAR10:
    """Load CIFAR-10 from ``<root>/cifar10/cifar-10-batches-bin/``.

    The network is used only when a training file (or the names file) is
    missing. A missing ``test_batch.bin`` alone is not: the training set
    loads, the test fields are None and ``test_missing`` says why, so a run
    can hold out a training batch for validation instead.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Data root; defaults to :func:`datasets.mnist.default_data_root`
        (``$MINIDL_DATA``, else a per-user cache).
    download : bool
        Download the archive when training files are missing (see
        :func:`download_cifar10`). When False, that is an error.
    progress : bool
        Show the download progress bar.
    url, md5, timeout
        Passed to :func:`download_cifar10`.

    Returns
    -------
    CIFAR10
        uint8 images (50000, 3, 32, 32) and labels (50000,) for training;
        (10000, 3, 32, 32) and (10000,) for testing, or None with
        ``test_missing`` set.

    Raises
    ------
    CIFAR10Error
        If a training file is missing (``download=False``) or cannot be
        downloaded, or any file present is malformed or not a file. Checksums
        are not verified for files already on disk.
    ValueError
        If ``download`` or ``progress`` is not a bool.
    """
    download = checks.boolean(download, "download", "load_cifar10")
    progress = checks.boolean(progress, "progress", "load_cifar10")
    base = _cifar10_dir(root)
    directory = base / BATCHES_DIR
    # The test batch is included so a directory in its place is reported too.
    missing = missing_files(directory, (*_REQUIRED_FILES, TEST_FILE), CIFAR10Error)
    required_missing = [name for name in missing if name != TEST_FILE]
    if required_missing:
        if not download:
            raise CIFAR10Error(f"CIFAR-10 file(s) missing from {directory}: "
                               f"{', '.join(required_missing)} (download=False)."
                               + _manual_instructions(base, url, md5))
        download_cifar10(base.parent, url=url, md5=md5, progress=progress, timeout=timeout)

    records = BATCH_RECORDS
    count = records * len(TRAIN_FILES)
    # Filled batch by batch: no list of batches to concatenate, so no second copy.
    train_images = np.empty((count, *IMAGE_SHAPE), dtype=np.uint8)
    train_labels = np.empty(count, dtype=np.uint8)
    for i, name in enumerate(TRAIN_FILES):
        table = _read_records(directory / name, records)
        rows = slice(i * records, (i + 1) * records)
        train_images[rows] = table[:, 1:].reshape(records, *IMAGE_SHAPE)
        train_labels[rows] = table[:, 0]
    class_names = read_class_names(directory / META_FILE)

    if exists_as_file(directory / TEST_FILE, CIFAR10Error):
        test_images, test_labels = read_batch(directory / TEST_FILE, records)
        test_missing = None
    else:
        test_images = test_labels = None
        test_missing = (f"{TEST_FILE} is missing from {directory}, so only validation can be "
                        f"reported (for example on a held-out training batch).")
    return CIFAR10(train_images, train_labels, test_images, test_labels, class_names,
                   test_missing)
