"""Weight and image grids: geometry, tile contents, normalisation, empty tiles."""

import warnings

import numpy as np
import pytest

from minidl.parameter import Parameter
from minidl.viz import (CROSS_COLOR, EMPTY_COLOR, channel_grid, encode_png, image_grid,
                        kernel_grid)


def lenet_c3_table() -> np.ndarray:
    """LeCun et al. 1998, Table I: which of the 6 S2 maps each of the 16 C3 maps reads."""
    table = np.zeros((16, 6), bool)
    for o in range(6):
        table[o, [o % 6, (o + 1) % 6, (o + 2) % 6]] = True
    for o in range(6, 12):
        table[o, [(o - 6 + k) % 6 for k in range(4)]] = True
    table[12, [0, 1, 3, 4]] = True
    table[13, [1, 2, 4, 5]] = True
    table[14, [0, 2, 3, 5]] = True
    table[15] = True
    return table


def tile(canvas, row, col, th, tw, border):
    """The pixels of grid cell (row, col) for tiles of th x tw pixels."""
    top, left = border + row * (th + border), border + col * (tw + border)
    return canvas[top:top + th, left:left + tw]


def minmax(k):
    return np.rint((k - k.min()) / (k.max() - k.min()) * 255).astype(np.uint8)


def upscale(k, s):
    return k.repeat(s, axis=0).repeat(s, axis=1)


def is_grey(pixels):
    return (pixels[..., 0] == pixels[..., 1]) & (pixels[..., 1] == pixels[..., 2])


RNG = np.random.default_rng(0)


# ----------------------------------------------------------------- kernel_grid
def test_kernel_grid_alexnet_geometry():
    w = RNG.normal(size=(96, 3, 11, 11))
    g = kernel_grid(w, scale=1, border=1)
    assert g.dtype == np.uint8
    assert g.shape == (10 * 11 + 11, 10 * 11 + 11, 3)  # 10 x 10 grid, 11 border lines
    # Border lines (rows and columns 0, 12, 24, ...) are white; 4 unused cells too.
    lines = np.arange(11) * 12
    assert (g[lines] == 255).all() and (g[:, lines] == 255).all()
    for cell in range(96, 100):
        assert (tile(g, cell // 10, cell % 10, 11, 11, 1) == 255).all()


@pytest.mark.parametrize("out,ncols,scale,border,expected", [
    (6, None, 4, 1, (2 * 20 + 3, 3 * 20 + 4)),    # ceil(sqrt(6)) = 3 columns
    (6, 6, 2, 0, (10, 60)),
    (1, None, 1, 2, (5 + 4, 5 + 4)),
    (10, 4, 3, 1, (3 * 15 + 4, 4 * 15 + 5)),
    (16, None, 1, 1, (4 * 5 + 5, 4 * 5 + 5)),
])
def test_kernel_grid_geometry_grayscale(out, ncols, scale, border, expected):
    g = kernel_grid(RNG.normal(size=(out, 1, 5, 5)), ncols=ncols, scale=scale, border=border)
    assert g.shape == expected and g.dtype == np.uint8


def test_kernel_grid_tiles_are_normalised_kernels():
    w = RNG.normal(size=(7, 1, 5, 3))
    g = kernel_grid(w, scale=3, border=1)  # 3 columns
    for o in range(7):
        expected = upscale(minmax(w[o, 0]), 3)
        np.testing.assert_array_equal(tile(g, o // 3, o % 3, 15, 9, 1), expected)


def test_kernel_grid_rgb_channels_normalised_jointly():
    w = RNG.normal(size=(4, 3, 5, 5))
    w[1, 2] *= 10  # blue dominates kernel 1
    g = kernel_grid(w, scale=1, border=1)
    for o in range(4):
        expected = minmax(w[o].transpose(1, 2, 0))
        np.testing.assert_array_equal(tile(g, o // 2, o % 2, 5, 5, 1), expected)
    t = tile(g, 0, 1, 5, 5, 1)
    assert t[..., 2].std() > 3 * t[..., 0].std()  # joint scale keeps the channel ratio


def test_kernel_grid_tile_vs_symmetric():
    w = RNG.normal(size=(4, 1, 5, 5))
    w[3] *= 0.01  # a weak kernel
    local = kernel_grid(w, scale=1, border=1)
    shared = kernel_grid(w, scale=1, border=1, normalize="symmetric")
    weak_local, weak_shared = tile(local, 1, 1, 5, 5, 1), tile(shared, 1, 1, 5, 5, 1)
    assert weak_local.min() == 0 and weak_local.max() == 255
    assert np.abs(weak_shared.astype(int) - 128).max() <= 3  # near zero -> near mid-grey
    peak = np.abs(w).max()
    for o in range(4):
        expected = np.rint(127.5 + 127.5 * w[o, 0] / peak).astype(np.uint8)
        np.testing.assert_array_equal(tile(shared, o // 2, o % 2, 5, 5, 1), expected)


def test_kernel_grid_constant_kernels_no_nan_no_warning():
    w = RNG.normal(size=(4, 3, 3, 3))
    w[0] = 0.0
    w[2] = 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = kernel_grid(w, scale=2, border=1)
        zeros = kernel_grid(np.zeros((4, 1, 3, 3)), normalize="symmetric")
        zeros_local = kernel_grid(np.zeros((4, 1, 3, 3)))
    assert (tile(g, 0, 0, 6, 6, 1) == 128).all()
    assert (tile(g, 1, 0, 6, 6, 1) == 128).all()
    assert tile(g, 0, 1, 6, 6, 1).max() == 255
    np.testing.assert_array_equal(zeros, zeros_local)
    assert (tile(zeros, 0, 0, 12, 12, 1) == 128).all()


def test_kernel_grid_rejects_other_channel_counts():
    with pytest.raises(ValueError, match="channel_grid") as info:
        kernel_grid(RNG.normal(size=(16, 6, 5, 5)))
    assert "expected" in str(info.value) and "received 6" in str(info.value)


@pytest.mark.parametrize("bad,kwargs,words", [
    (np.zeros((4, 5, 5)), {}, ["(out_channels, in_channels, kh, kw)", "(4, 5, 5)"]),
    (np.zeros((0, 1, 5, 5)), {}, ["received shape (0, 1, 5, 5)"]),
    (np.full((2, 1, 3, 3), np.nan), {}, ["finite", "18 NaN"]),
    (np.zeros((2, 1, 3, 3)), {"scale": 0}, ["scale >= 1", "received 0"]),
    (np.zeros((2, 1, 3, 3)), {"scale": 1.5}, ["scale", "1.5"]),
    (np.zeros((2, 1, 3, 3)), {"border": -1}, ["border >= 0", "received -1"]),
    (np.zeros((2, 1, 3, 3)), {"ncols": 0}, ["ncols >= 1"]),
    (np.zeros((2, 1, 3, 3)), {"border_color": (1, 2, 3)}, ["border_color", "int 0-255"]),
    (np.zeros((2, 3, 3, 3)), {"border_color": 300}, ["border_color", "300"]),
])
def test_kernel_grid_validation(bad, kwargs, words):
    with pytest.raises(ValueError) as info:
        kernel_grid(bad, **kwargs)
    message = str(info.value)
    assert "expected" in message and "received" in message
    for word in words:
        assert word in message


def test_kernel_grid_accepts_parameter_and_border_color():
    data = RNG.normal(size=(3, 3, 2, 2))
    g = kernel_grid(Parameter(data.copy()), border_color=(10, 20, 30), scale=1)
    np.testing.assert_array_equal(g, kernel_grid(data, border_color=(10, 20, 30), scale=1))
    assert (g[0] == (10, 20, 30)).all()


# ---------------------------------------------------------------- channel_grid
def test_channel_grid_lenet_c3_geometry_and_tiles():
    w = RNG.normal(size=(16, 6, 5, 5))
    g = channel_grid(w)  # scale 4, border 1
    assert g.shape == (16 * 20 + 17, 6 * 20 + 7, 3) and g.dtype == np.uint8
    for o in range(16):
        for c in range(6):
            t = tile(g, o, c, 20, 20, 1)
            assert is_grey(t).all()
            np.testing.assert_array_equal(t[..., 0], upscale(minmax(w[o, c]), 4))


def assert_empty_tile(t):
    """The documented empty style: only EMPTY_COLOR and CROSS_COLOR, with a diagonal cross."""
    h, w = t.shape[:2]
    empty = (t == EMPTY_COLOR).all(-1)
    cross = (t == CROSS_COLOR).all(-1)
    assert (empty | cross).all()
    assert not is_grey(t).any()
    assert cross[0, 0] and cross[-1, -1] and cross[0, -1] and cross[-1, 0]
    assert cross[h // 2, (w - 1) // 2] or cross[h // 2, w // 2]
    assert empty[0, w // 2] and empty[h // 2, 0]  # mostly background
    assert empty.sum() > cross.sum()


def test_channel_grid_connection_table():
    table = lenet_c3_table()
    w = RNG.normal(size=(16, 6, 5, 5)) * table[:, :, None, None]
    g = channel_grid(w, connections=table)
    for o in range(16):
        for c in range(6):
            t = tile(g, o, c, 20, 20, 1)
            if table[o, c]:
                assert is_grey(t).all()
                np.testing.assert_array_equal(t[..., 0], upscale(minmax(w[o, c]), 4))
            else:
                assert_empty_tile(t)
    # Values at unconnected pairs are never drawn.
    noisy = w + 5 * RNG.normal(size=w.shape) * ~table[:, :, None, None]
    np.testing.assert_array_equal(channel_grid(noisy, connections=table), g)
    # A Parameter's mask implies the same table.
    mask = np.broadcast_to(table[:, :, None, None], w.shape)
    np.testing.assert_array_equal(channel_grid(Parameter(w.copy(), mask=mask)), g)


def test_channel_grid_symmetric_scale_ignores_unconnected():
    table = lenet_c3_table()
    w = RNG.normal(size=(16, 6, 5, 5))
    w[~table] = 1000.0  # must not flatten the connected tiles
    g = channel_grid(w, connections=table, normalize="symmetric", scale=1, border=1)
    peak = np.abs(w[table]).max()
    o, c = 15, 3
    expected = np.rint(127.5 + 127.5 * w[o, c] / peak).astype(np.uint8)
    np.testing.assert_array_equal(tile(g, o, c, 5, 5, 1)[..., 1], expected)


def test_channel_grid_constant_slice_and_odd_shapes():
    w = RNG.normal(size=(2, 3, 3, 5))
    w[1, 1] = 0.0
    table = np.array([[1, 0, 1], [1, 1, 0]])  # 0/1 ints are accepted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = channel_grid(w, connections=table, scale=2, border=2)
    assert g.shape == (2 * 6 + 3 * 2, 3 * 10 + 4 * 2, 3)
    assert (tile(g, 1, 1, 6, 10, 2) == 128).all()
    assert_empty_tile(tile(g, 0, 1, 6, 10, 2))
    assert_empty_tile(tile(g, 1, 2, 6, 10, 2))


def test_channel_grid_grouped_layout():
    w = RNG.normal(size=(8, 2, 3, 3))  # groups=4: in_channels = 8, 2 outputs per group
    g = channel_grid(w, groups=4, scale=2, border=1)
    assert g.shape == (8 * 6 + 9, 8 * 6 + 9, 3)
    for o in range(8):
        group = o // 2
        for c in range(8):
            t = tile(g, o, c, 6, 6, 1)
            if c // 2 == group:
                np.testing.assert_array_equal(t[..., 2], upscale(minmax(w[o, c % 2]), 2))
            else:
                assert_empty_tile(t)
    # Combined with a table over the full (8, 8) pairs.
    table = np.ones((8, 8), bool)
    table[0, 0] = False
    g2 = channel_grid(w, groups=4, connections=table, scale=2, border=1)
    assert_empty_tile(tile(g2, 0, 0, 6, 6, 1))
    np.testing.assert_array_equal(tile(g2, 0, 1, 6, 6, 1), tile(g, 0, 1, 6, 6, 1))


@pytest.mark.parametrize("kwargs,words", [
    ({"groups": 3}, ["divisible by groups", "out_channels=8", "groups=3"]),
    ({"groups": 0}, ["groups >= 1"]),
    ({"connections": np.ones((8, 3), bool)}, ["(8, 2)", "(8, 3)"]),
    ({"connections": np.full((8, 2), 0.5)}, ["boolean connection table", "float64"]),
    ({"empty_color": 7000}, ["empty_color"]),
])
def test_channel_grid_validation(kwargs, words):
    with pytest.raises(ValueError) as info:
        channel_grid(RNG.normal(size=(8, 2, 3, 3)), **kwargs)
    message = str(info.value)
    assert "expected" in message and "received" in message
    for word in words:
        assert word in message


def test_deterministic_bytes():
    w = np.random.default_rng(5).normal(size=(16, 6, 5, 5))
    table = lenet_c3_table()
    first = encode_png(channel_grid(w, connections=table))
    assert first == encode_png(channel_grid(w.copy(), connections=table.copy()))
    k = np.random.default_rng(5).normal(size=(96, 3, 11, 11))
    assert encode_png(kernel_grid(k)) == encode_png(kernel_grid(k.copy()))


# ------------------------------------------------------------------ image_grid
def test_image_grid_geometry_and_per_image():
    images = RNG.random((10, 28, 28))
    g = image_grid(images, scale=1, border=1)
    assert g.shape == (3 * 28 + 4, 4 * 28 + 5)  # ceil(sqrt(10)) = 4 columns, 3 rows
    for i in range(10):
        np.testing.assert_array_equal(tile(g, i // 4, i % 4, 28, 28, 1), minmax(images[i]))
    assert (tile(g, 2, 3, 28, 28, 1) == 255).all()  # unused cell


def test_image_grid_global_and_none():
    images = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)])
    images[0, 0, 0] = 0.0
    g = image_grid(images, normalize="global", ncols=2, border=0)
    assert g.shape == (4, 8)
    assert g[0, 0] == 0 and g[0, 1] == 85 and (g[:, 4:] == 255).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = image_grid(np.zeros((3, 2, 2)), normalize="global")
        flat_each = image_grid(np.zeros((3, 2, 2)))
    assert (tile(flat, 0, 0, 2, 2, 1) == 128).all()
    np.testing.assert_array_equal(flat, flat_each)
    raw = RNG.integers(0, 256, (3, 5, 5), dtype=np.uint8)
    g = image_grid(raw, normalize=None, scale=2, ncols=3)
    np.testing.assert_array_equal(tile(g, 0, 2, 10, 10, 1), upscale(raw[2], 2))
    np.testing.assert_array_equal(image_grid(raw.astype(float), normalize=None, scale=2, ncols=3),
                                  g)
    with pytest.raises(ValueError, match=r"expected values in \[0, 255\].*received range"):
        image_grid(raw - 1.0, normalize=None)


def test_image_grid_rgb():
    images = RNG.random((2, 3, 3, 3))
    g = image_grid(images, border=1, border_color=(0, 0, 255))
    assert g.shape == (3 + 2, 2 * 3 + 3, 3)
    np.testing.assert_array_equal(tile(g, 0, 1, 3, 3, 1), minmax(images[1]))
    assert (g[0] == (0, 0, 255)).all()


@pytest.mark.parametrize("bad,kwargs,words", [
    (np.zeros((5, 5)), {}, ["(N, H, W)", "(5, 5)"]),
    (np.zeros((2, 5, 5, 4)), {}, ["(N, H, W, 3)", "(2, 5, 5, 4)"]),
    (np.zeros((0, 5, 5)), {}, ["non-empty", "(0, 5, 5)"]),
    (np.zeros((2, 5, 5)), {"normalize": "minmax"}, ["'per_image'", "'minmax'"]),
    (np.array([[[np.inf]]]), {}, ["finite", "1 NaN or infinite"]),
])
def test_image_grid_validation(bad, kwargs, words):
    with pytest.raises(ValueError) as info:
        image_grid(bad, **kwargs)
    message = str(info.value)
    assert "expected" in message and "received" in message
    for word in words:
        assert word in message


def test_kernel_grid_global_minmax_is_shownets_normalisation():
    w = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2) - 5
    grid = kernel_grid(w, scale=1, border=1, ncols=2, normalize="global", border_color=0)
    expected = np.rint((w - w.min()) / (w.max() - w.min()) * 255).astype(np.uint8)
    assert grid.shape == (4, 7, 3)
    np.testing.assert_array_equal(grid[1:3, 1:3], expected[0].transpose(1, 2, 0))
    np.testing.assert_array_equal(grid[1:3, 4:6], expected[1].transpose(1, 2, 0))
    assert (grid[0] == 0).all()  # black borders, as shownet.py draws them


def test_kernel_grid_grey_strips_put_r_g_b_side_by_side():
    w = RNG.normal(size=(4, 3, 5, 5))
    grid = kernel_grid(w, scale=2, border=1, ncols=2, normalize="global", rgb=False)
    assert grid.shape == (2 * 10 + 3, 2 * 30 + 3)  # each tile 3 * kw wide, grey
    tile = grid[1:11, 1:31]
    scaled = np.rint((w - w.min()) / (w.max() - w.min()) * 255)
    for c in range(3):
        np.testing.assert_array_equal(tile[::2, 10 * c:10 * c + 10:2], scaled[0, c])
    with pytest.raises(ValueError, match="expected normalize to be one of 'tile', 'global', "
                                         "'symmetric'"):
        kernel_grid(w, normalize="kernel")


def test_channel_grid_global_minmax_over_connected_slices_only():
    table = lenet_c3_table()
    w = RNG.normal(size=(16, 6, 5, 5))
    w[~table] = -1000.0  # must not set the global minimum
    g = channel_grid(w, connections=table, normalize="global", scale=1, border=1)
    lo, hi = w[table].min(), w[table].max()
    o, c = 15, 3
    expected = np.rint((w[o, c] - lo) / (hi - lo) * 255).astype(np.uint8)
    np.testing.assert_array_equal(tile(g, o, c, 5, 5, 1)[..., 1], expected)
    with pytest.raises(ValueError, match="channel_grid: expected normalize to be one of"):
        channel_grid(w, normalize="per_tile")
