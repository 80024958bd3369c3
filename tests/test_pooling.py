"""MaxPool2D and AvgPool2D: gradient checks away from ties, and exact
comparisons with loop references on tie-heavy inputs.

Max pooling sends a window's gradient to its FIRST maximum in row-major order
(PyTorch and Caffe); padding is minus infinity, so it is never selected.
Average pooling counts zero padding in the average (PyTorch's
count_include_pad=True).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from minidl.gradcheck import check_layer
from minidl.layers import AvgPool2D, MaxPool2D, pooling


@pytest.fixture(autouse=True, params=["offsets", "separable", "batch-innermost"])
def max_pooling_forward(request, monkeypatch) -> str:
    """Every test here runs through each of max pooling's forward passes, whatever the
    window: one kernel offset at a time along the rows of the input as it lies, windows
    taken one axis at a time (separably), and offsets on copies with the batch
    innermost (narrow outputs)."""
    monkeypatch.setattr(pooling, "BATCH_INNERMOST_WIDTH",
                        1 << 30 if request.param == "batch-innermost" else 0)
    monkeypatch.setattr(pooling, "SEPARABLE_KERNEL",
                        1 if request.param == "separable" else 1 << 30)
    return request.param

# (id, kernel_size, stride, padding, input (H, W))
POOL_CASES = [
    ("2x2-nonoverlapping", 2, None, 0, (6, 8)),
    ("2x2-odd-input-drops-last-row-and-column", 2, None, 0, (7, 5)),
    ("3x3-stride2-overlapping", 3, 2, 0, (7, 9)),
    ("3x3-stride2-padding1", 3, 2, 1, (6, 7)),
    ("2x2-stride1-padding1", 2, 1, 1, (4, 5)),
    ("3x2-stride2x1-nonsquare", (3, 2), (2, 1), 0, (7, 6)),
    ("2x3-padding1-nonsquare", (2, 3), (2, 2), (1, 1), (5, 7)),
    ("1x1-identity", 1, None, 0, (3, 4)),
    ("2x2-padding1-nonoverlapping", 2, None, 1, (5, 6)),
    ("2x2-stride3-gaps-between-windows", 2, 3, 0, (8, 7)),
    ("window-covers-input", (4, 3), None, 0, (4, 3)),
]
POOL_IDS = [case[0] for case in POOL_CASES]


def well_spaced(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random permutation of values 0.01 apart: no two entries tie, by far."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) - size / 2) * 0.01


def pool_geometry(kernel, stride, padding):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    kernel = pair(kernel)
    return kernel, pair(kernel if stride is None else stride), pair(padding)


def out_size(size, kernel, stride, padding, ceil_mode=False):
    """PyTorch's pooling output size, written out: floor, or ceil dropping a last window
    that would start in the right padding."""
    span = size + 2 * padding - kernel
    if not ceil_mode:
        return span // stride + 1
    out = math.ceil(span / stride) + 1
    return out - 1 if (out - 1) * stride >= size + padding else out


def maxpool_reference(x: np.ndarray, dy: np.ndarray | None, kernel, stride, padding,
                      ceil_mode=False):
    """Loop reference: the first maximum of each window, in row-major order, wins;
    positions in the padding or past the input are skipped (never selected)."""
    (kh, kw), (sh, sw), (ph, pw) = pool_geometry(kernel, stride, padding)
    n_img, channels, h, w = x.shape
    ho, wo = out_size(h, kh, sh, ph, ceil_mode), out_size(w, kw, sw, pw, ceil_mode)
    y = np.zeros((n_img, channels, ho, wo))
    dx = np.zeros_like(x, dtype=np.float64)
    for n in range(n_img):
        for c in range(channels):
            for i in range(ho):
                for j in range(wo):
                    best, where = None, None
                    for m in range(kh):
                        for k in range(kw):
                            r, s = i * sh + m - ph, j * sw + k - pw
                            if not (0 <= r < h and 0 <= s < w):
                                continue
                            if best is None or x[n, c, r, s] > best:   # strict: first max wins
                                best, where = x[n, c, r, s], (r, s)
                    y[n, c, i, j] = best
                    if dy is not None:
                        dx[n, c, where[0], where[1]] += dy[n, c, i, j]
    return y, dx


def avgpool_reference(x: np.ndarray, dy: np.ndarray | None, kernel, stride, padding,
                      ceil_mode=False):
    """Loop reference: window sum over the zero-padded input, divided by the number of
    window cells inside the padded input (kh * kw unless a ceil-mode window overhangs)."""
    (kh, kw), (sh, sw), (ph, pw) = pool_geometry(kernel, stride, padding)
    n_img, channels, h, w = x.shape
    ho, wo = out_size(h, kh, sh, ph, ceil_mode), out_size(w, kw, sw, pw, ceil_mode)
    y = np.zeros((n_img, channels, ho, wo))
    dx = np.zeros_like(x, dtype=np.float64)
    for n in range(n_img):
        for c in range(channels):
            for i in range(ho):
                for j in range(wo):
                    cells = [(i * sh + m - ph, j * sw + k - pw) for m in range(kh)
                             for k in range(kw)]
                    count = sum(1 for r, s in cells if r < h + ph and s < w + pw)
                    for r, s in cells:
                        if 0 <= r < h and 0 <= s < w:
                            y[n, c, i, j] += x[n, c, r, s] / count
                            if dy is not None:
                                dx[n, c, r, s] += dy[n, c, i, j] / count
    return y, dx


def integer_gradient(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Small integers: sums of them are exact in any order, so comparisons can be exact."""
    return rng.integers(-5, 6, size=shape).astype(np.float64)


# -- MaxPool2D ---------------------------------------------------------------------

@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_maxpool_gradcheck_away_from_ties(case, rng: np.random.Generator) -> None:
    _, kernel, stride, padding, hw = case
    pool = MaxPool2D(kernel, stride=stride, padding=padding)
    x = well_spaced(rng, (2, 3, *hw))
    result = check_layer(pool, x, rng=rng, eps=1e-6, tolerance=1e-6)
    result.raise_if_failed()
    assert [e.name for e in result.entries] == ["input"] * 3


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_maxpool_matches_reference_on_distinct_values(case, rng: np.random.Generator) -> None:
    _, kernel, stride, padding, hw = case
    pool = MaxPool2D(kernel, stride=stride, padding=padding)
    x = well_spaced(rng, (2, 3, *hw))
    y = pool.forward(x)
    dy = integer_gradient(rng, y.shape)
    y_ref, dx_ref = maxpool_reference(x, dy, kernel, stride, padding)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(pool.backward(dy), dx_ref)


def tie_heavy_inputs(rng: np.random.Generator, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    h, w = hw
    mnist_like = np.zeros((2, 2, h, w))
    # A small saturated stroke on a flat zero background, as in MNIST digits.
    mnist_like[:, :, h // 3:h // 3 + 2, 1:w - 1] = 1.0
    mnist_like[0, 1, h - 1, w - 1] = 0.5
    return {
        "integers-0-1-2": rng.integers(0, 3, size=(2, 3, h, w)).astype(np.float64),
        "mnist-like-flat-zeros": mnist_like,
        "all-equal": np.full((1, 2, h, w), 0.25),
        "all-negative-ties": -rng.integers(1, 3, size=(2, 2, h, w)).astype(np.float64),
    }


@pytest.mark.parametrize("kind", ["integers-0-1-2", "mnist-like-flat-zeros", "all-equal",
                                  "all-negative-ties"])
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_maxpool_ties_send_the_gradient_to_the_first_maximum(case, kind,
                                                             rng: np.random.Generator) -> None:
    _, kernel, stride, padding, hw = case
    x = tie_heavy_inputs(rng, hw)[kind]
    pool = MaxPool2D(kernel, stride=stride, padding=padding)
    y = pool.forward(x)
    dy = integer_gradient(rng, y.shape)
    y_ref, dx_ref = maxpool_reference(x, dy, kernel, stride, padding)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(pool.backward(dy), dx_ref)


def test_maxpool_tie_goes_to_top_left_of_a_flat_window() -> None:
    pool = MaxPool2D(2)
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[0.0, 3.0], [3.0, 3.0]]      # tie between (2,3), (3,2), (3,3)
    pool.forward(x)
    dx = pool.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((4, 4))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 3] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_maxpool_float32_ties_match_reference(rng: np.random.Generator) -> None:
    x = rng.integers(0, 3, size=(2, 3, 9, 8)).astype(np.float32)
    pool = MaxPool2D(3, stride=2, padding=1)
    y = pool.forward(x)
    dy = integer_gradient(rng, y.shape).astype(np.float32)
    dx = pool.backward(dy)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    y_ref, dx_ref = maxpool_reference(x.astype(np.float64), dy.astype(np.float64), 3, 2, 1)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("kernel, padding", [(3, 1), (2, 1), ((3, 2), (1, 1)), (5, 2)],
                         ids=["3x3-p1", "2x2-p1", "3x2-p1", "5x5-p2"])
def test_maxpool_never_selects_padding(kernel, padding, rng: np.random.Generator) -> None:
    # Every input is negative: zero padding would win every border window.
    x = -1.0 - rng.random((2, 2, 5, 6))
    pool = MaxPool2D(kernel, stride=1, padding=padding)
    y = pool.forward(x)
    assert np.all(y < 0) and np.all(np.isfinite(y))
    dy = integer_gradient(rng, y.shape)
    dx = pool.backward(dy)
    # All of dy lands inside the input: none is lost to the padding.
    np.testing.assert_array_equal(dx.sum(axis=(2, 3)), dy.sum(axis=(2, 3)))
    y_ref, dx_ref = maxpool_reference(x, dy, kernel, 1, padding)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("hw, ceil_mode, expected", [
    ((4, 4), False, [(0, 0), (0, 1), (1, 0), (1, 1)]),
    ((5, 5), True, [(0, 0), (0, 1), (0, 3), (1, 0), (1, 1), (1, 3), (3, 0), (3, 1), (3, 3)]),
], ids=["4x4", "5x5-ceil"])
def test_maxpool_window_of_minus_infinity_sends_its_gradient_to_its_first_pixel(
        hw, ceil_mode, expected) -> None:
    # No pixel beats -inf, so the index stays where it started: on the first pixel of
    # the window inside the input, never on padding (PyTorch's choice too).
    pool = MaxPool2D(3, stride=2, padding=1, ceil_mode=ceil_mode)
    y = pool.forward(np.full((1, 1, *hw), -np.inf))
    dx = pool.backward(np.ones_like(y))
    picked = np.zeros(hw)
    picked[tuple(np.array(expected).T)] = 1
    np.testing.assert_array_equal(dx[0, 0], picked)


@pytest.mark.parametrize("channel_major", [False, True], ids=["nchw", "channel-major"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_maxpool_gradient_is_exactly_dy_or_zero_even_when_infinite(channel_major, dtype) -> None:
    # Disjoint windows copy dy's bits (no product by a 0/1 mask): inf and NaN reach the
    # maximum's pixel alone, the other pixels are exactly 0.
    x = np.arange(2 * 3 * 4 * 4, dtype=dtype).reshape(2, 3, 4, 4)
    if channel_major:
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    pool = MaxPool2D(2)
    y = pool.forward(x)
    dy = np.ones_like(y)
    dy[0, 0, 0, 0], dy[1, 2, 1, 1], dy[0, 1, 1, 0] = np.inf, -np.inf, np.nan
    dx = pool.backward(dy)
    assert dx.dtype == dtype
    picked = np.zeros_like(x, dtype=bool)
    picked[:, :, 1::2, 1::2] = True           # the bottom-right pixel is each window's largest
    assert np.all(dx[~picked] == 0) and not np.any(np.signbit(dx[~picked]))
    np.testing.assert_array_equal(dx[:, :, 1::2, 1::2], dy)


def test_maxpool_ceil_mode_window_past_the_edge_sends_its_gradient_inside(rng) -> None:
    x = well_spaced(rng, (2, 2, 5, 5))
    pool = MaxPool2D(2, ceil_mode=True)          # 3x3 windows, the last ones one pixel wide
    y = pool.forward(x)
    dy = integer_gradient(rng, y.shape)
    dx = pool.backward(dy)
    expected = np.zeros_like(x)
    for n, c, i, j in np.ndindex(*y.shape):
        window = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        r, s = np.unravel_index(window.argmax(), window.shape)
        assert y[n, c, i, j] == window.max()
        expected[n, c, 2 * i + r, 2 * j + s] += dy[n, c, i, j]
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_backward_twice_accumulates_nothing_but_is_repeatable(rng) -> None:
    # Pooling has no parameters: a second backward returns the same dx.
    pool = MaxPool2D(2)
    x = well_spaced(rng, (1, 2, 4, 4))
    dy = rng.standard_normal(pool.forward(x).shape)
    np.testing.assert_array_equal(pool.backward(dy), pool.backward(dy))
    assert pool.parameters() == []


# -- AvgPool2D ---------------------------------------------------------------------

@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_avgpool_gradcheck(case, rng: np.random.Generator) -> None:
    _, kernel, stride, padding, hw = case
    pool = AvgPool2D(kernel, stride=stride, padding=padding)
    check_layer(pool, rng.standard_normal((2, 3, *hw)), rng=rng).raise_if_failed()


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_avgpool_matches_reference(case, rng: np.random.Generator) -> None:
    _, kernel, stride, padding, hw = case
    pool = AvgPool2D(kernel, stride=stride, padding=padding)
    x = rng.standard_normal((2, 3, *hw))
    y = pool.forward(x)
    dy = rng.standard_normal(y.shape)
    y_ref, dx_ref = avgpool_reference(x, dy, kernel, stride, padding)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pool.backward(dy), dx_ref, rtol=1e-12, atol=1e-14)


def test_avgpool_padding_counts_in_the_average() -> None:
    """count_include_pad=True: a corner window of ones sees 4 ones out of 9."""
    pool = AvgPool2D(3, stride=1, padding=1)
    y = pool.forward(np.ones((1, 1, 3, 3)))
    expected = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-15)
    dx = pool.backward(np.ones((1, 1, 3, 3)))
    # Each input sits in as many windows as it has in-bounds neighbours (itself included).
    np.testing.assert_allclose(dx[0, 0], expected, rtol=1e-15)


def test_avgpool_nonoverlapping_is_the_block_mean(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 6, 4))
    y = AvgPool2D(2).forward(x)
    np.testing.assert_allclose(y, x.reshape(2, 3, 3, 2, 2, 2).mean(axis=(3, 5)), rtol=1e-12)


# -- both -----------------------------------------------------------------------------

@pytest.mark.parametrize("layer_cls", [MaxPool2D, AvgPool2D])
def test_pooling_keeps_the_number_of_maps_and_pools_each_map_alone(layer_cls, rng) -> None:
    pool = layer_cls(2)
    x = well_spaced(rng, (2, 5, 6, 6))
    y = pool.forward(x)
    assert y.shape == (2, 5, 3, 3)
    x2 = x.copy()
    x2[:, 3] += 7.0                                  # change one map only
    y2 = pool.forward(x2)
    changed = np.any(y2 != y, axis=(0, 2, 3))
    assert changed.tolist() == [False, False, False, True, False]


@pytest.mark.parametrize("layer_cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("kernel, stride, padding, hw, expected", [
    (2, None, 0, (28, 28), (14, 14)),
    (2, None, 0, (7, 7), (3, 3)),
    (3, 2, 0, (13, 13), (6, 6)),
    (3, 2, 1, (14, 14), (7, 7)),
    ((3, 2), (2, 1), (1, 0), (6, 5), (3, 4)),
], ids=["mnist-2x2", "odd-floor", "overlap", "overlap-pad", "nonsquare"])
def test_pooling_output_size(layer_cls, kernel, stride, padding, hw, expected) -> None:
    pool = layer_cls(kernel, stride=stride, padding=padding)
    assert pool.forward(np.zeros((1, 2, *hw), np.float32)).shape == (1, 2, *expected)


@pytest.mark.parametrize("layer_cls", [MaxPool2D, AvgPool2D])
def test_pooling_input_grad_false_returns_none(layer_cls, rng) -> None:
    pool = layer_cls(2)
    y = pool.forward(rng.standard_normal((1, 1, 4, 4)))
    assert pool.backward(np.ones_like(y), input_grad=False) is None


# -- ceil mode (cuda-convnet's and Caffe's geometry) -----------------------------------------

CEIL_CASES = [
    ("3x3-stride2-32-gives-16", 3, 2, 0, (32, 32)),     # cuda-convnet: 32 -> 16 -> 8 -> 4
    ("3x3-stride2-16-gives-8", 3, 2, 0, (16, 16)),
    ("3x3-stride2-odd-input-no-overhang", 3, 2, 0, (7, 9)),
    ("2x2-odd-input-keeps-last-row", 2, None, 0, (7, 5)),
    ("3x3-stride2-padding1", 3, 2, 1, (6, 7)),
    ("last-window-would-start-in-padding", 2, 2, 1, (4, 5)),
    ("3x2-stride2x1-nonsquare", (3, 2), (2, 1), 0, (8, 6)),
]
CEIL_IDS = [case[0] for case in CEIL_CASES]


@pytest.mark.parametrize("layer_cls, reference", [(MaxPool2D, maxpool_reference),
                                                  (AvgPool2D, avgpool_reference)],
                         ids=["max", "avg"])
@pytest.mark.parametrize("case", CEIL_CASES, ids=CEIL_IDS)
def test_ceil_mode_matches_reference_and_gradcheck(case, layer_cls, reference, rng) -> None:
    _, kernel, stride, padding, hw = case
    layer = layer_cls(kernel, stride=stride, padding=padding, ceil_mode=True)
    x = well_spaced(rng, (2, 3) + hw)
    y = layer.forward(x)
    dy = integer_gradient(rng, y.shape)
    y_ref, dx_ref = reference(x, dy, kernel, stride, padding, ceil_mode=True)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), dx_ref, rtol=1e-12, atol=1e-12)
    check_layer(layer, x, rng=rng).raise_if_failed()


def test_cuda_convnet_geometry_32_16_8_4() -> None:
    x = np.zeros((1, 1, 32, 32))
    for expected in (16, 8, 4):
        x = MaxPool2D(3, stride=2, ceil_mode=True).forward(x)
        assert x.shape[2:] == (expected, expected)
    assert MaxPool2D(3, stride=2).forward(np.zeros((1, 1, 32, 32))).shape[2:] == (15, 15)
