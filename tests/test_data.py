"""Batching, shuffling and augmentation (shifts, flips)."""

import numpy as np
import pytest

from minidl.data import Augmentation, batch_indices, random_flip, random_shift


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


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_indices: expected batch_size >= 1, received 0"):
        batch_indices(10, 0)


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


def test_random_shift_fill_can_differ_per_channel():
    x = np.zeros((40, 3, 4, 4), np.float32)
    shifted = random_shift(x, 2, np.random.default_rng(0), fill=(1.0, 2.0, 3.0))
    for c, value in enumerate((1.0, 2.0, 3.0)):
        assert set(np.unique(shifted[:, c]).tolist()) == {0.0, value}


def test_random_shift_equals_padding_then_cropping():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 2, 6, 7))
    shifted = random_shift(x, 3, np.random.default_rng(9), fill=-5.0)
    dy, dx = np.random.default_rng(9).integers(-3, 4, size=(2, 30))
    padded = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)), constant_values=-5.0)
    for i in range(30):  # the image moves by (dy, dx): crop the padded one at (3 - dy, 3 - dx)
        top, left = 3 - dy[i], 3 - dx[i]
        np.testing.assert_array_equal(shifted[i], padded[i, :, top:top + 6, left:left + 7])


def test_random_flip_mirrors_about_half_of_the_images():
    x = np.arange(1000 * 3 * 2 * 4, dtype=np.float64).reshape(1000, 3, 2, 4)
    flipped = random_flip(x.copy(), np.random.default_rng(0))
    mirrored = (flipped == x[:, :, :, ::-1]).all(axis=(1, 2, 3))
    kept = (flipped == x).all(axis=(1, 2, 3))
    assert (mirrored ^ kept).all() and 450 < mirrored.sum() < 550


def test_augmentation_is_determined_by_the_generator():
    x = np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32)
    aug = Augmentation(shift=2, flip=True, fill=(0.0, 1.0, 2.0))
    a = aug(x.copy(), np.random.default_rng([0, 2, 3, 4]))
    b = aug(x.copy(), np.random.default_rng([0, 2, 3, 4]))
    c = aug(x.copy(), np.random.default_rng([0, 2, 3, 5]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert aug.to_dict() == {"shift": 2, "flip": True}
    with pytest.raises(ValueError, match="Augmentation: expected shift >= 0, received -1"):
        Augmentation(shift=-1)
    with pytest.raises(ValueError, match="Augmentation: expected flip to be a bool"):
        Augmentation(flip="yes")
