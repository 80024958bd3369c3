"""How are feature maps connected between two convolution layers?

With 32 maps in layer 1 and 64 kernels in layer 2 (``Conv2D(32, 64, 3)``):

* each kernel is three-dimensional, ``(32, 3, 3)``: it spans all 32 input maps;
* output map ``o`` is ``bias[o] + sum over c of correlate(input map c, W[o, c])`` --
  a SUM over every input map, not an average, and not 32 x 64 separate outputs:
  there are exactly 64 output maps;
* ``groups`` restricts the connection to blocks, and a connection table (LeNet-5's
  C3) to any chosen pairs; unconnected weights stay exactly zero while training;
* pooling keeps the number of maps and pools each map on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from minidl import Sequential
from minidl.layers import Conv2D, MaxPool2D, ReLU
from models.lenet import LENET5_C3_TABLE


@pytest.fixture
def conv_32_to_64(rng: np.random.Generator) -> Conv2D:
    conv = Conv2D(32, 64, 3, dtype=np.float64, rng=rng)
    conv.bias.data[...] = rng.standard_normal(64)
    return conv


def correlate_maps(x_n: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D correlation of each input map with its kernel slice: shape (C, H', W')."""
    return np.array([signal.correlate(x_n[c], kernel[c], mode="valid") for c in range(len(kernel))])


def test_32_maps_and_64_kernels_give_64_maps_each_a_sum_over_all_32(conv_32_to_64, rng) -> None:
    conv = conv_32_to_64
    x = rng.standard_normal((2, 32, 7, 6))
    y = conv.forward(x)

    # 64 output maps -- not 32 x 64 = 2048 separate ones.
    assert y.shape == (2, 64, 5, 4)
    # Each of the 64 kernels is 3-D: it has one 3x3 slice per input map.
    assert conv.weight.shape == (64, 32, 3, 3)

    for n in range(2):
        for o in range(64):
            per_map = correlate_maps(x[n], conv.weight.data[o])      # (32, 5, 4)
            np.testing.assert_allclose(y[n, o], conv.bias.data[o] + per_map.sum(axis=0),
                                       rtol=1e-10, atol=1e-12)


def test_it_is_a_sum_not_an_average(conv_32_to_64, rng) -> None:
    conv = conv_32_to_64
    x = rng.standard_normal((1, 32, 5, 5))
    y = conv.forward(x)[0]
    bias = conv.bias.data[:, None, None]
    average = np.array([correlate_maps(x[0], conv.weight.data[o]).mean(axis=0) for o in range(64)])
    # The average over maps is the layer's output (minus bias) divided by 32 ...
    np.testing.assert_allclose(y - bias, 32 * average, rtol=1e-10, atol=1e-12)
    # ... so it is not what the layer computes.
    assert not np.allclose(y, bias + average)
    assert np.median(np.abs((y - bias) / average)) == pytest.approx(32)


def test_every_output_map_depends_on_every_input_map(conv_32_to_64, rng) -> None:
    conv = conv_32_to_64
    x = rng.standard_normal((1, 32, 5, 5))
    y = conv.forward(x)
    for c in (0, 13, 31):
        x2 = x.copy()
        x2[:, c] += 1.0
        changed = np.any(conv.forward(x2) != y, axis=(0, 2, 3))
        assert changed.all()             # all 64 outputs read input map c: full connection


def test_number_of_weights_is_64_kernels_of_32_by_3_by_3(conv_32_to_64) -> None:
    assert conv_32_to_64.num_parameters() == 64 * 32 * 3 * 3 + 64


def test_groups_2_splits_the_maps_into_two_blocks(rng: np.random.Generator) -> None:
    conv = Conv2D(32, 64, 3, groups=2, dtype=np.float64, rng=rng)
    assert conv.weight.shape == (64, 16, 3, 3)     # each kernel spans 16 maps, not 32
    x = rng.standard_normal((2, 32, 6, 6))
    y = conv.forward(x)

    second_half = x.copy()
    second_half[:, 16:] = rng.standard_normal((2, 16, 6, 6))
    y2 = conv.forward(second_half)
    np.testing.assert_array_equal(y2[:, :32], y[:, :32])    # outputs 0..31 read maps 0..15 only
    assert np.all(np.any(y2[:, 32:] != y[:, 32:], axis=(0, 2, 3)))

    first_half = x.copy()
    first_half[:, :16] = rng.standard_normal((2, 16, 6, 6))
    y3 = conv.forward(first_half)
    np.testing.assert_array_equal(y3[:, 32:], y[:, 32:])    # outputs 32..63 read maps 16..31 only
    assert np.all(np.any(y3[:, :32] != y[:, :32], axis=(0, 2, 3)))

    # Within a block it is still a sum over the block's maps.
    o = 40
    expected = correlate_maps(x[1, 16:], conv.weight.data[o]).sum(axis=0) + conv.bias.data[o]
    np.testing.assert_allclose(y[1, o], expected, rtol=1e-10, atol=1e-12)


def test_connection_table_output_ignores_unconnected_input_maps(rng: np.random.Generator) -> None:
    conv = Conv2D(6, 16, 5, connections=LENET5_C3_TABLE, dtype=np.float64, rng=rng)
    conv.bias.data[...] = rng.standard_normal(16)
    x = rng.standard_normal((2, 6, 14, 14))             # the S2 maps of LeNet-5
    y = conv.forward(x)
    assert y.shape == (2, 16, 10, 10)
    for c in range(6):
        x2 = x.copy()
        x2[:, c] = rng.standard_normal((2, 14, 14)) * 10
        changed = np.any(conv.forward(x2) != y, axis=(0, 2, 3))
        # Output o changes exactly when it reads input map c.
        np.testing.assert_array_equal(changed, LENET5_C3_TABLE[:, c])
    # And each output is the sum over the maps it reads.
    for o in (0, 6, 12, 15):
        reads = np.flatnonzero(LENET5_C3_TABLE[o])
        expected = conv.bias.data[o] + sum(signal.correlate(x[0, c], conv.weight.data[o, c], "valid")
                                           for c in reads)
        np.testing.assert_allclose(y[0, o], expected, rtol=1e-10, atol=1e-12)


def test_unconnected_weights_stay_exactly_zero_through_sgd_steps(rng: np.random.Generator) -> None:
    conv = Conv2D(6, 16, 5, connections=LENET5_C3_TABLE, dtype=np.float64, rng=rng)
    unconnected = ~conv.weight.mask
    assert unconnected.sum() == (96 - 60) * 25
    start = conv.weight.data.copy()
    for _ in range(3):
        x = rng.standard_normal((2, 6, 9, 9))
        y = conv.forward(x)
        conv.zero_grad()
        conv.backward(rng.standard_normal(y.shape))           # d(sum(G * y)) / dy = G
        assert np.all(conv.weight.grad[unconnected] == 0)      # exactly, not approximately
        assert np.all(conv.weight.grad[~unconnected] != 0)
        for p in conv.parameters():
            p.data -= 0.1 * p.grad                             # a plain SGD step, by hand
    assert np.all(conv.weight.data[unconnected] == 0)
    assert np.all(conv.weight.data[~unconnected] != start[~unconnected])


def test_pooling_keeps_the_maps_so_the_next_conv_still_reads_all_of_them(rng) -> None:
    conv1 = Conv2D(1, 32, 3, padding=1, dtype=np.float64, rng=rng)
    pool = MaxPool2D(2)
    conv2 = Conv2D(32, 64, 3, dtype=np.float64, rng=rng)
    model = Sequential(conv1, ReLU(), pool, conv2)
    x = rng.standard_normal((2, 1, 10, 10))
    h = pool.forward(np.maximum(conv1.forward(x), 0))
    assert h.shape == (2, 32, 5, 5)                     # pooling: 32 maps in, 32 maps out
    y = model.forward(x)
    assert y.shape == (2, 64, 3, 3)
    expected = conv2.bias.data[7] + correlate_maps(h[1], conv2.weight.data[7]).sum(axis=0)
    np.testing.assert_allclose(y[1, 7], expected, rtol=1e-10, atol=1e-12)
