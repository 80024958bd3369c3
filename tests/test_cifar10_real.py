"""The real CIFAR-10, when present under $MINIDL_DATA/cifar10/ (never downloaded here).

Run with e.g. ``MINIDL_DATA=../shared/datasets python -m pytest tests/test_cifar10_real.py``.
Where ``test_batch.bin`` is absent (as on the shared machines), the test set is
checked on the exact prefix ``test_batch.first-1017.bin`` and ``test_labels.txt``
kept beside the official directory, when they are there.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from datasets.cifar10 import BATCHES_DIR, TRAIN_FILES, load_cifar10, read_batch

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck"]
#: The training set's published per-channel statistics, on 0..255.
MEAN = (125.31, 122.95, 113.87)
STD = (62.99, 62.09, 66.70)
FIRST_TEST_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


def _cifar10_root() -> Path:
    root = os.environ.get("MINIDL_DATA")
    if not root:
        pytest.skip("MINIDL_DATA is not set; point it at a directory holding "
                    f"cifar10/{BATCHES_DIR}/")
    directory = Path(root) / "cifar10" / BATCHES_DIR
    missing = [n for n in (*TRAIN_FILES, "batches.meta.txt") if not (directory / n).is_file()]
    if missing:
        pytest.skip(f"real CIFAR-10 not found in {directory} (missing {', '.join(missing)})")
    return Path(root)


@pytest.fixture(scope="module")
def cifar():
    # An unreachable URL: loading what is on disk must never touch the network.
    return load_cifar10(_cifar10_root(), progress=False, url="http://127.0.0.1:9/none.tar.gz")


def test_shapes_dtypes_and_names(cifar):
    assert cifar.train_images.shape == (50000, 3, 32, 32)
    assert cifar.train_labels.shape == (50000,)
    assert cifar.train_images.dtype == cifar.train_labels.dtype == np.uint8
    assert cifar.class_names == NAMES
    if cifar.test_images is not None:
        assert cifar.test_images.shape == (10000, 3, 32, 32)
        assert cifar.test_labels.shape == (10000,)


def test_training_labels_are_balanced(cifar):
    assert np.bincount(cifar.train_labels, minlength=10).tolist() == [5000] * 10


def test_published_channel_statistics(cifar):
    # Exact moments from the histogram of each channel (no float copy of 150 MB).
    values = np.arange(256, dtype=np.float64)
    for channel in range(3):
        counts = np.bincount(cifar.train_images[:, channel].ravel(), minlength=256)
        n = counts.sum()
        mean = counts @ values / n
        std = np.sqrt(counts @ (values - mean) ** 2 / n)
        assert (round(mean, 2), round(std, 2)) == (MEAN[channel], STD[channel])


def test_missing_test_batch_is_reported(cifar):
    directory = _cifar10_root() / "cifar10" / BATCHES_DIR
    if (directory / "test_batch.bin").is_file():
        assert cifar.test_missing is None
        assert np.bincount(cifar.test_labels).tolist() == [1000] * 10
        assert cifar.test_labels[:10].tolist() == FIRST_TEST_LABELS
    else:
        assert cifar.test_images is None and cifar.test_labels is None
        assert "test_batch.bin" in cifar.test_missing and str(directory) in cifar.test_missing


def test_test_set_prefix_beside_the_directory(cifar):
    base = _cifar10_root() / "cifar10"
    prefix, labels_txt = base / "test_batch.first-1017.bin", base / "test_labels.txt"
    if not (prefix.is_file() and labels_txt.is_file()):
        pytest.skip(f"{prefix.name} and {labels_txt.name} are not in {base}")
    images, labels = read_batch(prefix, records=1017)
    assert images.shape == (1017, 3, 32, 32) and images.dtype == np.uint8
    assert labels[:10].tolist() == FIRST_TEST_LABELS
    all_labels = np.loadtxt(labels_txt, dtype=np.uint8)
    assert all_labels.shape == (10000,)
    np.testing.assert_array_equal(labels, all_labels[:1017])
    if cifar.test_images is not None:  # the full test batch starts with the same records
        np.testing.assert_array_equal(images, cifar.test_images[:1017])
        np.testing.assert_array_equal(all_labels, cifar.test_labels)
