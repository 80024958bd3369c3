"""The real MNIST: the copy embedded in the repository, or $MINIDL_DATA/mnist/ when set.

Nothing is ever downloaded here: these tests run on a machine without network.
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from datasets import MD5_CHECKSUMS, MNIST_FILES, load_mnist
from datasets.registry import EMBEDDED_ROOT, data_root


def _mnist_root() -> Path:
    root = data_root("mnist")
    missing = [n for n in MNIST_FILES.values() if not (root / "mnist" / n).is_file()]
    if missing and root != EMBEDDED_ROOT:
        pytest.skip(f"MINIDL_DATA points at {root}, whose mnist/ lacks {', '.join(missing)}")
    return root


@pytest.fixture(scope="module")
def mnist():
    # No mirrors: loading what is on disk must never touch the network.
    return load_mnist(_mnist_root(), download=False, progress=False, mirrors=())


def test_shapes_and_dtypes(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8


def test_labels(mnist):
    (_, y_train), (_, y_test) = mnist
    for labels in (y_train, y_test):
        assert labels.max() <= 9
        counts = np.bincount(labels, minlength=10)
        assert len(counts) == 10 and (counts > 0).all()
    assert np.bincount(y_test).sum() == 10000
    # Well-known values of the published files.
    assert y_train[0] == 5 and y_test[0] == 7
    assert list(y_train[:5]) == [5, 0, 4, 1, 9]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_pixels_look_like_digits(mnist):
    (x_train, _), (x_test, _) = mnist
    for images in (x_train, x_test):
        assert images.min() == 0 and images.max() == 255
        assert 30 < images.mean() < 37  # mostly black background, about 33 on average
    # Digits are centred: the border is almost entirely black.
    assert x_train[:, 0, :].mean() < 0.1 and x_test[:, 0, :].max() == 0


def test_files_on_disk_are_not_checksummed():
    """A structurally valid file whose MD5 is not the published one still loads.

    The shared copy's training images were rebuilt (see its README); when the
    file here is that copy, this exercises exactly that case.
    """
    root = _mnist_root()
    name = MNIST_FILES["train_images"]
    digest = hashlib.md5((root / "mnist" / name).read_bytes()).hexdigest()
    if digest == MD5_CHECKSUMS[name]:
        pytest.skip(f"{name} here is the published file; nothing rebuilt to check")
    # Checksums that every file would fail: they must not be consulted for files on disk.
    (x_train, _), _ = load_mnist(root, download=False, progress=False, mirrors=(),
                                 checksums={n: "0" * 32 for n in MNIST_FILES.values()})
    assert x_train.shape == (60000, 28, 28)
