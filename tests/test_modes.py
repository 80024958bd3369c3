"""Mode (training or evaluation) and keeping what backward needs are two separate things.

Also: every array is logically NCHW, whatever its memory order, and a layer's
results do not depend on that order.
"""

from __future__ import annotations

import numpy as np
import pytest

from minidl import Graph, Sequential
from minidl.gradcheck import check_layer
from minidl.layers import (Add, AvgPool2D, Concat, Conv2D, Dense, Dropout, Flatten, LeakyReLU,
                           MaxPool2D, ReLU, Sigmoid, Tanh)
from minidl.layers.base import is_channel_major
from models import lenet

SPATIAL = [
    ("Conv2D", lambda: Conv2D(3, 4, 3, padding=1, rng=0, dtype=np.float64)),
    ("Conv2D-groups-stride", lambda: Conv2D(4, 6, 3, stride=2, groups=2, rng=0,
                                            dtype=np.float64)),
    ("MaxPool2D", lambda: MaxPool2D(2)),
    ("MaxPool2D-overlap-pad", lambda: MaxPool2D(3, stride=2, padding=1)),
    ("AvgPool2D-overlap", lambda: AvgPool2D(3, stride=2)),
    ("ReLU", ReLU), ("LeakyReLU", LeakyReLU), ("Tanh", Tanh), ("Sigmoid", Sigmoid),
    ("Dropout", lambda: Dropout(0.3, rng=0)),
]


def channels_for(make) -> int:
    layer = make()
    return getattr(layer, "in_channels", 4)


@pytest.mark.parametrize("name, make", SPATIAL, ids=[n for n, _ in SPATIAL])
def test_evaluation_keeps_nothing_and_backward_then_says_so(name, make, rng) -> None:
    layer = make()
    x = rng.standard_normal((2, channels_for(make), 6, 6))
    layer.forward(x)                                    # training: keeps what backward needs
    assert layer._cache is not None
    layer.forward(x, training=False)                    # evaluation: keeps nothing, not even
    assert layer._cache is None                         # the stale cache of the last step
    with pytest.raises(RuntimeError, match="keep_for_backward=True"):
        layer.backward(np.ones_like(x[:, :, :3, :3]))


@pytest.mark.parametrize("name, make", SPATIAL, ids=[n for n, _ in SPATIAL])
def test_evaluation_with_a_backward_pass_gives_exact_gradients(name, make, rng) -> None:
    layer = make()
    x = rng.uniform(0.1, 1.0, (2, channels_for(make), 6, 6)) * rng.choice([-1, 1], (2, 1, 6, 6))
    check_layer(layer, x, rng=rng, training=False).raise_if_failed()


def test_dropout_in_evaluation_with_a_backward_pass_is_the_identity(rng) -> None:
    layer = Dropout(0.5, rng=0)
    x = rng.standard_normal((3, 4))
    y = layer.forward(x, training=False, keep_for_backward=True)
    dy = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_evaluating_lenet_on_1000_digits_leaves_no_caches(rng) -> None:
    model = lenet(rng=0)
    x = rng.standard_normal((64, 1, 28, 28), dtype=np.float32)
    model.forward(x)                                         # a training step's caches
    model.forward(rng.standard_normal((1000, 1, 28, 28), dtype=np.float32), training=False)
    assert [name for name, layer in model.named_modules() if layer._cache is not None] == []


def test_containers_pass_keep_for_backward_down(rng) -> None:
    g = Graph().add("conv", Conv2D(2, 2, 3, padding=1, rng=0, dtype=np.float64), "input")
    g.add("drop", Dropout(0.5, rng=0), "conv").add("sum", Add(), ["drop", "input"])
    model = Sequential(g, Flatten(), Dense(2 * 5 * 5, 3, rng=0, dtype=np.float64))
    x = rng.standard_normal((2, 2, 5, 5))
    model.forward(x, training=False, keep_for_backward=True)
    leaves = [layer for layer in model.modules() if next(layer.named_children(), None) is None]
    assert len(leaves) == 5 and all(layer._cache is not None for layer in leaves)
    check_layer(model, x, rng=rng, training=False).raise_if_failed()


# -- memory order ----------------------------------------------------------------------

def channel_major_copy(x: np.ndarray) -> np.ndarray:
    """The same logical array, laid out (C, N, H, W) in memory."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


@pytest.mark.parametrize("name, make", [e for e in SPATIAL if e[0] != "Dropout"],
                         ids=[n for n, _ in SPATIAL if n != "Dropout"])
def test_results_do_not_depend_on_the_memory_order(name, make, rng) -> None:
    x = rng.standard_normal((3, channels_for(make), 7, 7))
    a, b = make(), make()
    ya, yb = a.forward(x), b.forward(channel_major_copy(x))
    np.testing.assert_array_equal(ya, yb)
    dy = rng.standard_normal(ya.shape)
    np.testing.assert_array_equal(a.backward(dy), b.backward(channel_major_copy(dy)))
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.grad, pb.grad)


@pytest.mark.parametrize("make", [lambda: MaxPool2D(2), lambda: MaxPool2D(3, 2, ceil_mode=True)],
                         ids=["2x2", "3x3-s2-ceil"])
def test_maxpool_gradient_in_the_other_memory_order_than_its_input(make, rng) -> None:
    x = rng.standard_normal((3, 4, 7, 7))
    a, b = make(), make()
    dy = rng.standard_normal(a.forward(x).shape)
    b.forward(channel_major_copy(x))
    np.testing.assert_array_equal(a.backward(dy), b.backward(dy))
    np.testing.assert_array_equal(a.backward(channel_major_copy(dy)), b.backward(dy))


def test_dropout_draws_the_same_mask_whatever_the_memory_order(rng) -> None:
    x = rng.standard_normal((3, 4, 5, 5))
    np.testing.assert_array_equal(Dropout(0.5, rng=1).forward(x),
                                  Dropout(0.5, rng=1).forward(channel_major_copy(x)))


def test_convolution_output_stays_channel_major_through_relu_and_pooling(rng) -> None:
    # What makes a network fast without transposes: the next convolution reads
    # its input in the memory order the previous one wrote it.
    model = Sequential(Conv2D(1, 4, 3, rng=0), ReLU(), MaxPool2D(2), Conv2D(4, 4, 3, rng=0))
    x = rng.standard_normal((5, 1, 12, 12), dtype=np.float32)
    for name, layer in model.named_children():
        x = layer.forward(x)
        assert is_channel_major(x), name


def test_concat_and_add_accept_mixed_memory_orders(rng) -> None:
    x = rng.standard_normal((2, 3, 4, 4))
    cm = channel_major_copy(x)
    np.testing.assert_array_equal(Add().forward([x, cm]), 2 * x)
    np.testing.assert_array_equal(Concat().forward([x, cm]), np.concatenate([x, x], axis=1))


def test_floating_point_error_settings_reach_the_worker_threads(rng) -> None:
    # The trainer silences overflow warnings around a diverging forward pass; the
    # convolution's chunks run on worker threads, whose NumPy settings are their own.
    import warnings
    conv = Conv2D(3, 8, 3, padding=1, rng=0)
    conv.weight.data[...] = 1e30
    x = np.full((64, 3, 32, 32), 1e30, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="ignore", invalid="ignore"):
            y = conv.forward(x)
    assert not np.isfinite(y).all()
