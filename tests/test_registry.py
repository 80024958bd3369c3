"""The dataset registry: where files are looked for, the embedded MNIST, the common form."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from datasets import registry
from datasets.registry import EMBEDDED_ROOT, DatasetError, data_root, load_dataset


def test_roots_data_dir_then_environment_then_embedded_or_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root("mnist") == EMBEDDED_ROOT  # a fresh clone trains with no network
    assert data_root("cifar10") == tmp_path / "cache" / "minidl"
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "env"))
    assert data_root("mnist") == data_root("cifar10") == tmp_path / "env"
    assert data_root("mnist", tmp_path / "flag") == tmp_path / "flag"


def test_embedded_mnist_is_verified_and_in_the_common_form(monkeypatch) -> None:
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    mnist = load_dataset("mnist", progress=False)
    assert mnist.train_images.shape == (60000, 1, 28, 28) and mnist.train_images.dtype == np.uint8
    assert mnist.test_images.shape == (10000, 1, 28, 28) and mnist.test_labels.shape == (10000,)
    assert mnist.class_names == tuple("0123456789") and mnist.image_shape == (1, 28, 28)
    assert mnist.mean == (0.1307,) and mnist.std == (0.3081,) and mnist.default_val_split == 0
    (train, val), (all_train, none) = mnist.holdout(5000), mnist.holdout(0)
    assert train[0].shape[0] == 55000 and val[0].shape[0] == 5000 and none is None
    assert all_train[0].shape[0] == 60000
    np.testing.assert_array_equal(val[1], mnist.train_labels[55000:])
    with pytest.raises(ValueError, match=r"expected a validation split from 0 to 59999 images, "
                                         r"received 60000"):
        mnist.holdout(60000)


def test_an_embedded_file_that_does_not_match_its_recorded_sum_is_refused(monkeypatch,
                                                                           tmp_path) -> None:
    copy = tmp_path / "embedded"
    shutil.copytree(EMBEDDED_ROOT, copy)
    target = copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.write_bytes(bytes(data))
    monkeypatch.setattr(registry, "EMBEDDED_ROOT", copy)
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz: expected SHA-256 \w+ "
                                           r"\(recorded in SHA256SUMS\), received \w+; restore "
                                           r"it with: git checkout"):
        load_dataset("mnist", progress=False)


def test_unknown_dataset_and_missing_files_are_one_dataset_error(tmp_path) -> None:
    with pytest.raises(DatasetError, match="expected a dataset among cifar10, mnist, received "
                                           "'imagenet'"):
        load_dataset("imagenet")
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").mkdir()  # a directory, not a file
    with pytest.raises(DatasetError, match="cannot load mnist: .*expected a file, received a "
                                           "directory"):
        load_dataset("mnist", tmp_path, progress=False)


def test_registry_file_lists_every_embedded_file() -> None:
    sums = (EMBEDDED_ROOT / "mnist" / "SHA256SUMS").read_text().split("\n")
    names = sorted(line.split("  ")[1] for line in sums if line)
    assert names == sorted(p.name for p in (EMBEDDED_ROOT / "mnist").glob("*.gz"))
