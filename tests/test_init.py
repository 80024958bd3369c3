"""Tests of minidl.init: fans, initialiser statistics, masks, determinism, errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from minidl import init
from minidl.parameter import Parameter

ALL = ["he_normal", "he_uniform", "glorot_normal", "glorot_uniform",
       "lecun_normal", "lecun_uniform"]


def expected_std(name: str, fan_in, fan_out):
    fan_in = np.asarray(fan_in, dtype=np.float64)
    fan_out = np.asarray(fan_out, dtype=np.float64)
    if name.startswith("he"):
        return np.sqrt(2.0 / fan_in)
    if name.startswith("glorot"):
        return np.sqrt(2.0 / (fan_in + fan_out))
    return np.sqrt(1.0 / fan_in)


# ---------------------------------------------------------------------------
# fans
# ---------------------------------------------------------------------------

def test_fans_dense():
    assert init.fans((10, 20)) == (20, 10)


def test_fans_conv2d():
    assert init.fans((8, 4, 3, 3)) == (4 * 9, 8 * 9)


def test_fans_conv1d_and_conv3d():
    assert init.fans((8, 4, 5)) == (20, 40)
    assert init.fans((8, 4, 2, 3, 3)) == (4 * 18, 8 * 18)


def test_fans_grouped_conv():
    # 8 outputs, 4 groups: each input map feeds only the 2 outputs of its group
    assert init.fans((8, 2, 3, 3), groups=4) == (2 * 9, 2 * 9)
    # depthwise
    assert init.fans((6, 1, 5, 5), groups=6) == (25, 25)


def test_fans_masked_conv_table():
    table = np.array([[1, 1, 1, 0, 0, 0],
                      [1, 1, 1, 1, 1, 1],
                      [0, 0, 0, 0, 0, 1],
                      [1, 0, 1, 0, 1, 0]], dtype=bool)
    fan_in, fan_out = init.fans((4, 6, 5, 5), mask=table)
    assert fan_in.shape == (4, 1, 1, 1)
    assert fan_out.shape == (1, 6, 1, 1)
    np.testing.assert_array_equal(fan_in.ravel(), np.array([3, 6, 1, 3]) * 25)
    np.testing.assert_array_equal(fan_out.ravel(), np.array([3, 2, 3, 1, 2, 2]) * 25)
    # broadcastable to the weight shape
    assert np.broadcast_shapes(fan_in.shape, fan_out.shape, (4, 6, 5, 5)) == (4, 6, 5, 5)


def test_fans_full_shape_mask_matches_table():
    rng = np.random.default_rng(1)
    table = rng.random((5, 7)) < 0.5
    full = np.broadcast_to(table[:, :, None, None], (5, 7, 3, 3)).copy()
    a_in, a_out = init.fans((5, 7, 3, 3), mask=table)
    b_in, b_out = init.fans((5, 7, 3, 3), mask=full)
    np.testing.assert_array_equal(a_in, b_in)
    np.testing.assert_array_equal(a_out, b_out)


def test_fans_masked_dense():
    table = np.array([[1, 0, 1], [1, 1, 1]], dtype=bool)
    fan_in, fan_out = init.fans((2, 3), mask=table)
    assert fan_in.shape == (2, 1) and fan_out.shape == (1, 3)
    np.testing.assert_array_equal(fan_in.ravel(), [2, 3])
    np.testing.assert_array_equal(fan_out.ravel(), [2, 1, 2])


def test_fans_accepts_01_int_mask():
    fan_in, _ = init.fans((2, 3), mask=np.array([[1, 0, 1], [0, 0, 1]]))
    np.testing.assert_array_equal(fan_in.ravel(), [2, 1])


@pytest.mark.parametrize("kwargs, message", [
    (dict(shape=(10,)), "2 to 5 dimensions"),
    (dict(shape=7), "at least 2 dimensions"),
    (dict(shape=(1, 2, 3, 4, 5, 6)), "2 to 5 dimensions"),
    (dict(shape=(4, 0, 3, 3)), "positive ints"),
    (dict(shape=(4, 2.5)), "positive ints"),
    (dict(shape=(6, 2, 3, 3), groups=4), "divisible by groups"),
    (dict(shape=(6, 2, 3, 3), groups=0), "expected groups >= 1, received 0"),
    (dict(shape=(4, 6, 3, 3), mask=np.ones((6, 4), bool)), "mask of shape (4, 6)"),
    (dict(shape=(4, 2, 3, 3), groups=2, mask=np.ones((4, 2), bool)), "groups=1 with a"),
    (dict(shape=(2, 2), mask=np.full((2, 2), 0.5)), "boolean mask"),
])
def test_fans_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        init.fans(**kwargs)


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape, groups", [((128, 64, 3, 3), 1), ((256, 512), 1),
                                           ((128, 16, 3, 3), 4)])
def test_empirical_std(name, shape, groups):
    w = init.get(name)(shape, rng=np.random.default_rng(0), groups=groups)
    if len(shape) == 2:
        fan_in, fan_out = shape[1], shape[0]
    else:
        receptive = shape[2] * shape[3]
        fan_in, fan_out = shape[1] * receptive, shape[0] // groups * receptive
    std = float(expected_std(name, fan_in, fan_out))
    assert w.shape == shape
    assert abs(w.std() / std - 1) < 0.02
    assert abs(w.mean()) < 0.02 * std
    if name.endswith("uniform"):
        limit = math.sqrt(3) * std
        assert np.abs(w).max() <= limit * (1 + 1e-6)
        assert np.abs(w).max() > 0.99 * limit


@pytest.mark.parametrize("name", ["he_normal", "he_uniform", "lecun_normal", "lecun_uniform"])
def test_masked_rows_use_their_true_fan_in(name):
    # rows 0..199 read 3 of 12 inputs, rows 200..399 read 6 of them
    out, cin, k = 400, 12, 5
    table = np.zeros((out, cin), dtype=bool)
    rng = np.random.default_rng(3)
    for o in range(out):
        n = 3 if o < out // 2 else 6
        table[o, rng.choice(cin, n, replace=False)] = True
    w = init.get(name)((out, cin, k, k), rng=np.random.default_rng(4), mask=table)
    full = np.broadcast_to(table[:, :, None, None], w.shape)
    for rows, n in ((slice(0, out // 2), 3), (slice(out // 2, out), 6)):
        values = w[rows][full[rows]]
        assert values.size == (out // 2) * n * k * k
        std = float(expected_std(name, n * k * k, 0))
        assert abs(values.std() / std - 1) < 0.03, (n, values.std(), std)


@pytest.mark.parametrize("name", ALL)
def test_masked_normalised_values_have_unit_std(name):
    # per-entry std from the true fans (covers Glorot's per-entry fan_in + fan_out)
    rng = np.random.default_rng(5)
    table = rng.random((300, 40)) < rng.uniform(0.1, 0.9, size=(300, 1))
    table[:, 0] = True  # every row reads something
    shape = (300, 40, 3, 3)
    w = init.get(name)(shape, rng=np.random.default_rng(6), mask=table)
    rows = table.sum(axis=1)[:, None, None, None] * 9
    cols = table.sum(axis=0)[None, :, None, None] * 9
    std = np.broadcast_to(expected_std(name, rows, cols), shape)
    full = np.broadcast_to(table[:, :, None, None], shape)
    z = w[full] / std[full]
    assert abs(z.std() - 1) < 0.02
    assert np.all(w[~full] == 0)


@pytest.mark.parametrize("name", ALL)
def test_masked_entries_exactly_zero(name):
    table = np.random.default_rng(0).random((16, 8)) < 0.3
    table[:, 0] = True
    w = init.get(name)((16, 8, 3, 3), rng=np.random.default_rng(1), mask=table)
    full = np.broadcast_to(table[:, :, None, None], w.shape)
    assert np.all(w[~full] == 0) and not np.any(np.signbit(w[~full]))
    assert np.all(w[full] != 0)


def test_row_with_no_connection_is_zero_without_warnings():
    table = np.array([[1, 1], [0, 0]], dtype=bool)
    with np.errstate(all="raise"):
        w = init.he_normal((2, 2, 3, 3), rng=np.random.default_rng(0), mask=table)
    assert np.all(w[1] == 0) and np.all(np.isfinite(w))


def test_gain_overrides_default():
    w = init.he_normal((256, 256), rng=np.random.default_rng(0), gain=3.0)
    assert abs(w.std() / (3.0 / math.sqrt(256)) - 1) < 0.02
    w = init.glorot_uniform((256, 256), rng=np.random.default_rng(0), gain=2.0)
    assert abs(w.std() / (2.0 * math.sqrt(2 / 512)) - 1) < 0.02


# ---------------------------------------------------------------------------
# determinism, dtype, lookup
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_determinism(name):
    fn = init.get(name)
    a = fn((8, 4, 3, 3), rng=np.random.default_rng(42))
    b = fn((8, 4, 3, 3), rng=np.random.default_rng(42))
    c = fn((8, 4, 3, 3), rng=42)
    d = fn((8, 4, 3, 3), rng=np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, d)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_dtype_respected(name, dtype):
    w = init.get(name)((6, 5), rng=np.random.default_rng(0), dtype=dtype)
    assert w.dtype == dtype
    w64 = init.get(name)((6, 5), rng=np.random.default_rng(0), dtype=np.float64)
    np.testing.assert_array_equal(w, w64.astype(dtype))


def test_default_dtype_is_float32_and_default_rng_works():
    w = init.he_normal((4, 3))
    assert w.dtype == np.float32 and w.shape == (4, 3)


def test_get_and_names():
    assert init.names() == sorted(ALL)
    for name in ALL:
        assert init.get(name) is getattr(init, name)
    assert init.get("HE_NORMAL") is init.he_normal
    assert init.get(init.lecun_uniform) is init.lecun_uniform


def test_get_unknown_lists_valid_names():
    with pytest.raises(ValueError, match="expected one of .*'he_normal'.*received 'kaiming'"):
        init.get("kaiming")
    with pytest.raises(ValueError, match="received 3"):
        init.get(3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dtype=np.int32), "floating-point dtype"),
    (dict(dtype="nonsense"), "floating-point dtype"),
    (dict(rng=np.random.RandomState(0)), "expected rng to be a numpy Generator"),
    (dict(rng="seed"), "expected rng to be a numpy Generator, an int seed or None, received 'seed'"),
    (dict(gain=0.0), "expected gain > 0, received 0.0"),
    (dict(gain="big"), "expected gain to be a real number, received 'big'"),
    (dict(groups=3), "divisible by groups"),
    (dict(mask=np.ones((3, 3), bool)), "mask of shape"),
])
def test_initialiser_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        init.he_normal((4, 2, 3, 3), **kwargs)


def test_errors_name_the_initialiser():
    with pytest.raises(ValueError, match="^glorot_uniform: expected"):
        init.glorot_uniform((5,))


# ---------------------------------------------------------------------------
# init_parameter
# ---------------------------------------------------------------------------

def test_init_parameter_in_place_with_mask():
    table = np.array([[1, 0, 1], [0, 1, 1]], dtype=bool)
    full = np.broadcast_to(table[:, :, None, None], (2, 3, 3, 3)).copy()
    p = Parameter(np.ones((2, 3, 3, 3), dtype=np.float32), name="w", mask=full)
    data = p.data
    out = init.init_parameter(p, "glorot_normal", rng=np.random.default_rng(0))
    assert out is p and p.data is data and p.data.dtype == np.float32
    assert np.all(p.data[~full] == 0) and np.all(p.data[full] != 0)
    np.testing.assert_array_equal(
        p.data, init.glorot_normal((2, 3, 3, 3), rng=np.random.default_rng(0), mask=table))


def test_init_parameter_rejects_non_parameter():
    with pytest.raises(ValueError, match="expected a Parameter"):
        init.init_parameter(np.zeros((2, 2)))
