"""Batching, shuffling, preprocessing and shift augmentation."""

import numpy as np
import pytest

from minidl.data import batch_indices, images_to_tensor, iterate, random_shift


def test_batches_cover_every_index_once():
    batches = batch_indices(10, 4, np.random.default_rng(0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert [len(b) for b in batch_indices(10, 4, drop_last=True)] == [4, 4]
    np.testing.assert_array_equal(np.concatenate(batch_indices(5, 2)), np.arange(5))


def test_shuffle_is_determined_by_the_generator():
    a = batch_indices(100, 10, np.random.default_rng(1))
    b = batch_indices(100, 10, np.random.default_rng(1))
    c = batch_indices(100, 10, np.random.default_rng(2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_bad_batch_size_and_length_mismatch():
    with pytest.raises(ValueError, match="expected a positive batch_size, received 0"):
        batch_indices(10, 0)
    with pytest.raises(ValueError, match="expected as many labels as inputs"):
        list(iterate(np.zeros((3, 2)), np.zeros(2), 2))


def test_images_to_tensor_scales_normalises_and_pads():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    x = images_to_tensor(images, mean=0.5, std=0.25, pad=1)
    assert x.shape == (1, 1, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, 1:3, 1:3], [[-2, 2], [-1.2, -0.4]], rtol=1e-6)
    np.testing.assert_allclose(x[0, 0, 0], -2)  # padding is a black pixel
    with pytest.raises(ValueError, match="expected uint8 images"):
        images_to_tensor(np.zeros((2, 2)))


def test_random_shift_moves_pixels_within_bounds():
    x = np.zeros((200, 1, 9, 9), np.float32)
    x[:, 0, 4, 4] = 1
    shifted = random_shift(x, 2, np.random.default_rng(0), fill=-1)
    rows, cols = np.nonzero(shifted[:, 0] == 1)[1:]
    assert (np.abs(rows - 4) <= 2).all() and (np.abs(cols - 4) <= 2).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 25  # every offset occurs
    assert (shifted == 1).sum() == 200  # the pixel is never lost at this size
    assert random_shift(x, 0, np.random.default_rng(0)) is x
    again = random_shift(x, 2, np.random.default_rng(0), fill=-1)
    np.testing.assert_array_equal(shifted, again)


def test_random_shift_fills_vacated_pixels():
    x = np.ones((50, 2, 5, 5), np.float32)
    shifted = random_shift(x, 1, np.random.default_rng(3), fill=7)
    assert set(np.unique(shifted).tolist()) <= {1.0, 7.0}
    assert (shifted[:, 0] == shifted[:, 1]).all()  # channels move together
