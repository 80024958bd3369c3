"""Bad input: every documented error, matched by its message.

A message names the layer, what it expected and what it received, e.g.
``Conv2D(in_channels=6, out_channels=16): expected input of shape (N, 6, H, W),
received (28, 28)``. Nothing else (IndexError, AttributeError, TypeError, a
NumPy broadcasting error) may escape, and the checks survive ``python -O``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from minidl import Graph, Sequential
from minidl.layers import (Add, AvgPool2D, Concat, Conv2D, Dense, Dropout, Flatten, LeakyReLU,
                           MaxPool2D, ReLU, Sigmoid, Tanh)
from minidl.losses import MSE, SoftmaxCrossEntropy
from models.lenet import LENET5_C3_TABLE, lenet, lenet5

REPO = Path(__file__).resolve().parents[1]

C6 = "Conv2D(in_channels=6, out_channels=16)"
CONV = re.escape(C6)


def f32(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def raises_value_error(fn: Callable[[], Any], match: str) -> ValueError:
    """Exactly ValueError (not a NumPy subclass such as AxisError), with the message."""
    with pytest.raises(ValueError, match=match) as info:
        fn()
    assert type(info.value) is ValueError, f"{type(info.value).__name__}: {info.value}"
    return info.value


# -- forward: bad input --------------------------------------------------------------

FORWARD_ERRORS = [
    # wrong rank and wrong channel count
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), f32(28, 28),
                 CONV + r": expected input of shape \(N, 6, H, W\), received \(28, 28\)", id="conv-rank-2"),
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), f32(6, 28, 28),
                 CONV + r": expected input of shape \(N, 6, H, W\), received \(6, 28, 28\)",
                 id="conv-rank-3-no-batch"),
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), f32(2, 3, 28, 28),
                 CONV + r": expected input of shape \(N, 6, H, W\), received \(2, 3, 28, 28\)",
                 id="conv-wrong-channels"),
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), np.zeros((2, 28, 28, 6), np.float32),
                 CONV + r": expected input of shape \(N, 6, H, W\), received \(2, 28, 28, 6\)",
                 id="conv-nhwc-instead-of-nchw"),
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), [[0.0]],
                 CONV + r": expected input of shape \(N, 6, H, W\), received list", id="conv-list"),
    # dtypes
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), np.zeros((1, 6, 8, 8), np.int64),
                 CONV + r": expected input of dtype float32, received int64", id="conv-int64"),
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), np.zeros((1, 6, 8, 8), np.uint8),
                 CONV + r": expected input of dtype float32, received uint8 \(convert with "
                        r"x\.astype\(np\.float32\)", id="conv-uint8-mnist-pixels"),
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), np.zeros((1, 6, 8, 8), object),
                 CONV + r": expected input of dtype float32, received object", id="conv-object"),
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), np.zeros((1, 6, 8, 8), np.float64),
                 CONV + r": expected input of dtype float32 \(the layer's dtype\), received float64",
                 id="conv-float64-into-float32"),
    pytest.param(lambda: Conv2D(6, 16, 5, dtype=np.float64, rng=0), f32(1, 6, 8, 8),
                 CONV + r": expected input of dtype float64 \(the layer's dtype\), received float32",
                 id="conv-float32-into-float64"),
    # too small
    pytest.param(lambda: Conv2D(6, 16, 5, padding=1, rng=0), f32(1, 6, 2, 8),
                 CONV + r": expected input at least 5x5 after padding \(1, 1\) \(kernel_size \(5, 5\)\), "
                        r"received 2x8 \(4x10 after padding\)", id="conv-smaller-than-kernel"),
    pytest.param(lambda: Conv2D(6, 16, 5, rng=0), f32(0, 6, 8, 8),
                 CONV + r": expected a batch of at least one image, received \(0, 6, 8, 8\)",
                 id="conv-empty-batch"),
    pytest.param(lambda: Dense(400, 120, rng=0), f32(2, 16, 5, 5),
                 r"Dense\(in_features=400, out_features=120, bias=True\): expected input of shape "
                 r"\(N, 400\), received \(2, 16, 5, 5\)", id="dense-not-flattened"),
    pytest.param(lambda: Dense(400, 120, rng=0), f32(2, 256),
                 r"Dense.*: expected input of shape \(N, 400\), received \(2, 256\)", id="dense-wrong-features"),
    pytest.param(lambda: Dense(4, 2, rng=0), np.zeros((2, 4), np.int32),
                 r"Dense.*: expected input of dtype float32, received int32", id="dense-int32"),
    pytest.param(lambda: Dense(4, 2, rng=0), np.zeros((2, 4)),
                 r"Dense.*: expected input of dtype float32 \(the layer's dtype\), received float64",
                 id="dense-float64-into-float32"),
    pytest.param(lambda: MaxPool2D(3), f32(1, 1, 2, 5),
                 r"MaxPool2D\(kernel_size=\[3, 3\], stride=\[3, 3\], padding=\[0, 0\], ceil_mode=False\): "
                 r"expected input at "
                 r"least 3x3 after padding \(0, 0\), received 2x5: the pooling window does not fit",
                 id="maxpool-window-does-not-fit"),
    pytest.param(lambda: AvgPool2D((2, 4), padding=(0, 1)), f32(1, 1, 4, 1),
                 r"AvgPool2D.*: expected input at least 2x4 after padding \(0, 1\), received 4x1",
                 id="avgpool-window-does-not-fit"),
    pytest.param(lambda: MaxPool2D(2), f32(4, 28, 28),
                 r"MaxPool2D.*: expected input of shape \(N, C, H, W\), received \(4, 28, 28\)",
                 id="maxpool-rank-3"),
    pytest.param(lambda: AvgPool2D(2), np.zeros((1, 1, 4, 4), np.int64),
                 r"AvgPool2D.*: expected input of dtype a floating-point dtype, received int64",
                 id="avgpool-int64"),
    pytest.param(lambda: MaxPool2D(2), np.zeros((1, 1, 4, 4), object),
                 r"MaxPool2D.*: expected input of dtype a floating-point dtype, received object",
                 id="maxpool-object"),
    pytest.param(Flatten, f32(5),
                 r"Flatten\(\): expected input of shape \(N, \.\.\.\) with at least 2 dimensions, "
                 r"received \(5,\)", id="flatten-rank-1"),
    pytest.param(Flatten, np.zeros((2, 3), np.int64),
                 r"Flatten\(\): expected input of dtype a floating-point dtype, received int64",
                 id="flatten-int64"),
    pytest.param(ReLU, np.zeros((2, 3), np.int64),
                 r"ReLU\(\): expected input of dtype a floating-point dtype, received int64", id="relu-int64"),
    pytest.param(ReLU, [1.0, -1.0], r"ReLU\(\): expected a NumPy array, received list", id="relu-list"),
    pytest.param(lambda: LeakyReLU(0.1), np.zeros(3, bool),
                 r"LeakyReLU\(negative_slope=0\.1\): expected input of dtype a floating-point dtype, "
                 r"received bool", id="leaky-relu-bool"),
    pytest.param(Tanh, np.zeros(3, object), r"Tanh\(\): expected .* received object", id="tanh-object"),
    pytest.param(Sigmoid, np.zeros(3, complex), r"Sigmoid\(\): expected .* received complex128",
                 id="sigmoid-complex"),
    pytest.param(lambda: Dropout(0.5), np.zeros(3, np.int8), r"Dropout\(p=0\.5\): expected .* received int8",
                 id="dropout-int8"),
    pytest.param(Add, [f32(2, 3)], r"Add\(\): expected a list of at least 2 arrays, received 1 input\(s\)",
                 id="add-one-input"),
    pytest.param(Add, f32(2, 3), r"Add\(\): expected a list of at least 2 arrays, received ndarray",
                 id="add-not-a-list"),
    pytest.param(Add, [f32(2, 3), f32(2, 4)],
                 r"Add\(\): expected inputs of one shape, received \[\(2, 3\), \(2, 4\)\]", id="add-shapes"),
    pytest.param(Add, [f32(2, 3), np.zeros((2, 3), np.int64)],
                 r"Add\(\): expected input of dtype a floating-point dtype, received int64", id="add-int"),
    pytest.param(Concat, [f32(2, 3, 4, 4), f32(2, 3, 5, 4)],
                 r"Concat\(axis=1\): expected shapes equal except along axis 1, received "
                 r"\[\(2, 3, 4, 4\), \(2, 3, 5, 4\)\]", id="concat-shapes"),
    pytest.param(Concat, [f32(2, 3, 4, 4), f32(2, 3, 4)],
                 r"Concat\(axis=1\): expected inputs of equal rank with axis 1", id="concat-rank"),
    pytest.param(lambda: Concat(3), [f32(2, 3), f32(2, 3)],
                 r"Concat\(axis=3\): expected inputs of equal rank with axis 3, received shapes",
                 id="concat-axis-out-of-range"),
]


@pytest.mark.parametrize("make, x, match", FORWARD_ERRORS)
def test_forward_rejects_bad_input(make, x, match) -> None:
    layer = make()
    raises_value_error(lambda: layer.forward(x), match)


def test_errors_inside_a_model_name_the_layer() -> None:
    raises_value_error(lambda: lenet(rng=0).forward(f32(28, 28)),
                       r"^conv1: Conv2D\(in_channels=1, out_channels=6\): expected input of shape "
                       r"\(N, 1, H, W\), received \(28, 28\)$")
    # LeNet-5 wants 32x32: on 28x28 the C5 maps are only 4x4 for a 5x5 kernel.
    raises_value_error(lambda: lenet5(rng=0).forward(f32(2, 1, 28, 28)),
                       r"^c5: Conv2D\(in_channels=16, out_channels=120\): expected input at least 5x5 "
                       r"after padding \(0, 0\) \(kernel_size \(5, 5\)\), received 4x4")
    g = Graph().add("conv", Conv2D(3, 4, 3, rng=0), "input")
    raises_value_error(lambda: g.forward(f32(1, 1, 5, 5)),
                       r"^conv: Conv2D\(in_channels=3, out_channels=4\): expected input of shape "
                       r"\(N, 3, H, W\), received \(1, 1, 5, 5\)")


# -- constructors ---------------------------------------------------------------------

CONSTRUCTOR_ERRORS = [
    pytest.param(lambda: Conv2D(1, 6, 0), r"Conv2D\(in_channels=1, out_channels=6\): expected kernel_size "
                 r">= 1, received 0", id="conv-kernel-0"),
    pytest.param(lambda: Conv2D(1, 6, (3, 0)), r"expected kernel_size >= 1, received \(3, 0\)",
                 id="conv-kernel-3x0"),
    pytest.param(lambda: Conv2D(1, 6, 3, padding=-1), r"Conv2D\(in_channels=1, out_channels=6\): "
                 r"expected padding >= 0, received -1", id="conv-negative-padding"),
    pytest.param(lambda: Conv2D(1, 6, 3, stride=0), r"expected stride >= 1, received 0", id="conv-stride-0"),
    pytest.param(lambda: Conv2D(1, 6, 2.5), r"expected kernel_size as an int or a pair of ints, "
                 r"received 2\.5", id="conv-kernel-float"),
    pytest.param(lambda: Conv2D(1, 6, (3, 3, 3)), r"expected kernel_size as an int or a pair of ints",
                 id="conv-kernel-triple"),
    pytest.param(lambda: Conv2D(0, 6, 3), r"Conv2D\(in_channels=0, out_channels=6\): expected in_channels >= 1, received 0",
                 id="conv-in-channels-0"),
    pytest.param(lambda: Conv2D(1, "6", 3), r"expected out_channels to be an integer, received '6' \(str\)",
                 id="conv-out-channels-str"),
    pytest.param(lambda: Conv2D(6, 16, 3, groups=4),
                 r"Conv2D\(in_channels=6, out_channels=16\): expected in_channels and out_channels "
                 r"divisible by groups=4, received in_channels=6, out_channels=16", id="conv-groups-in"),
    pytest.param(lambda: Conv2D(4, 6, 3, groups=4), r"divisible by groups=4, received in_channels=4, "
                 r"out_channels=6", id="conv-groups-out"),
    pytest.param(lambda: Conv2D(6, 16, 3, groups=0), r"expected groups >= 1, received 0",
                 id="conv-groups-0"),
    pytest.param(lambda: Conv2D(6, 16, 5, connections=LENET5_C3_TABLE.T),
                 CONV + r": expected a connection table of shape \(16, 6\) \(out_channels, in_channels\), "
                        r"received \(6, 16\)", id="table-transposed"),
    pytest.param(lambda: Conv2D(6, 16, 5, connections=LENET5_C3_TABLE[:, :5]),
                 r"expected a connection table of shape \(16, 6\) .* received \(16, 5\)", id="table-wrong-shape"),
    pytest.param(lambda: Conv2D(6, 16, 5, connections=np.where(np.arange(16)[:, None] == 3, False,
                                                               LENET5_C3_TABLE)),
                 CONV + r": expected every output map to read at least one input map, received a "
                        r"connection table where output map\(s\) \[3\] read nothing", id="table-empty-row"),
    pytest.param(lambda: Conv2D(6, 16, 5, connections=LENET5_C3_TABLE.astype(float)),
                 CONV + r": expected a boolean connection table \(or 0/1 integers\), received dtype float64", id="table-float"),
    pytest.param(lambda: Conv2D(2, 2, 3, connections=[[1, 2], [0, 1]]),
                 r"expected a boolean connection table \(or 0/1 integers\), received integers other than 0 and 1", id="table-int-not-0-1"),
    pytest.param(lambda: Conv2D(2, 2, 3, connections=[["yes", "no"], ["no", "yes"]]),
                 r"expected a boolean connection table \(or 0/1 integers\), received dtype <U3", id="table-strings"),
    pytest.param(lambda: Conv2D(2, 2, 3, groups=2, connections=[[1, 0], [0, 1]]),
                 r"expected groups=1 with a connection table, received groups=2", id="table-with-groups"),
    pytest.param(lambda: Conv2D(2, 2, 3, dtype=np.int32), r"expected dtype to be a floating-point dtype, received int32",
                 id="conv-int-dtype"),
    pytest.param(lambda: Conv2D(2, 2, 3, dtype="not-a-dtype"),
                 r"expected dtype to be a floating-point dtype, received 'not-a-dtype' \(str\)", id="conv-bad-dtype"),
    pytest.param(lambda: MaxPool2D(0), r"MaxPool2D\(kernel_size=0\): expected kernel_size >= 1, received 0",
                 id="maxpool-kernel-0"),
    pytest.param(lambda: MaxPool2D(2, stride=0), r"expected stride >= 1, received 0", id="maxpool-stride-0"),
    pytest.param(lambda: MaxPool2D(2, padding=-1), r"expected padding >= 0, received -1",
                 id="maxpool-negative-padding"),
    pytest.param(lambda: MaxPool2D(2, padding=2),
                 r"MaxPool2D\(kernel_size=2\): expected padding at most half the kernel size \(1, 1\), "
                 r"received \(2, 2\)", id="maxpool-padding-over-half"),
    pytest.param(lambda: AvgPool2D((3, 2), padding=(1, 2)),
                 r"AvgPool2D\(kernel_size=\(3, 2\)\): expected padding at most half the kernel size "
                 r"\(1, 1\), received \(1, 2\)", id="avgpool-padding-over-half"),
    pytest.param(lambda: Dense(0, 3), r"Dense\(in_features=0, out_features=3\): expected in_features >= 1, received 0",
                 id="dense-0"),
    pytest.param(lambda: Dense(3, 2.0), r"Dense\(in_features=3, out_features=2\.0\): expected out_features to be an integer, received 2\.0",
                 id="dense-float-features"),
    pytest.param(lambda: Dense(3, 2, dtype=np.int64), r"Dense\(in_features=3, out_features=2\): expected dtype to be a floating-point dtype, received int64",
                 id="dense-int-dtype"),
    pytest.param(lambda: Dropout(1), r"Dropout: expected p < 1, received 1\.0", id="dropout-p-1"),
    pytest.param(lambda: Dropout(1.0), r"Dropout: expected p < 1, received 1\.0", id="dropout-p-1.0"),
    pytest.param(lambda: Dropout(-0.1), r"Dropout: expected p >= 0, received -0\.1",
                 id="dropout-negative"),
    pytest.param(lambda: Dropout("0.5"), r"Dropout: expected p to be a real number, received '0\.5' \(str\)", id="dropout-str"),
    pytest.param(lambda: Dropout(0.5, rng="seed"), r"expected rng to be a numpy Generator, an int seed or None",
                 id="dropout-bad-rng"),
    pytest.param(lambda: LeakyReLU(float("nan")), r"LeakyReLU: expected a finite negative_slope, received nan",
                 id="leaky-nan"),
    pytest.param(lambda: LeakyReLU("0.1"), r"LeakyReLU: expected negative_slope to be a real number, received '0\.1' \(str\)",
                 id="leaky-str"),
    pytest.param(lambda: Concat(0), r"Concat: expected a non-batch axis \(an int other than 0\), received 0",
                 id="concat-batch-axis"),
    pytest.param(lambda: SoftmaxCrossEntropy(1.0),
                 r"SoftmaxCrossEntropy: expected label_smoothing < 1, received 1\.0", id="smoothing-1"),
    pytest.param(lambda: SoftmaxCrossEntropy("0.1"),
                 r"SoftmaxCrossEntropy: expected label_smoothing to be a real number, received '0\.1' \(str\)",
                 id="smoothing-str"),
]


@pytest.mark.parametrize("make, match", CONSTRUCTOR_ERRORS)
def test_constructor_rejects_bad_arguments(make, match) -> None:
    raises_value_error(make, match)


# -- losses ---------------------------------------------------------------------------------

LOGITS = np.zeros((3, 10), np.float32)
LOSS_ERRORS = [
    pytest.param(SoftmaxCrossEntropy, LOGITS, np.array([1, 10, 2]),
                 r"SoftmaxCrossEntropy: expected labels in \[0, 9\], received \[10\]", id="label-too-big"),
    pytest.param(SoftmaxCrossEntropy, LOGITS, np.array([1, -1, 2]),
                 r"SoftmaxCrossEntropy: expected labels in \[0, 9\], received \[-1\]", id="label-negative"),
    pytest.param(SoftmaxCrossEntropy, LOGITS, np.array([1, 2]),
                 r"SoftmaxCrossEntropy: expected labels of shape \(3,\) to match the logits, received \(2,\)",
                 id="labels-wrong-length"),
    pytest.param(SoftmaxCrossEntropy, LOGITS, np.array([[1], [2], [3]]),
                 r"expected labels of shape \(3,\) to match the logits, received \(3, 1\)", id="labels-2d"),
    pytest.param(SoftmaxCrossEntropy, LOGITS, np.array([1.0, 2.0, 3.0]),
                 r"SoftmaxCrossEntropy: expected integer labels, received dtype float64", id="labels-float"),
    pytest.param(SoftmaxCrossEntropy, LOGITS, np.array([True, False, True]),
                 r"SoftmaxCrossEntropy: expected integer labels, received dtype bool", id="labels-bool"),
    pytest.param(SoftmaxCrossEntropy, LOGITS, None,
                 r"SoftmaxCrossEntropy: expected integer labels, received dtype object", id="labels-none"),
    pytest.param(SoftmaxCrossEntropy, np.zeros(10, np.float32), np.array([1]),
                 r"SoftmaxCrossEntropy: expected floating-point logits of shape \(N, K\), received shape "
                 r"\(10,\), dtype float32", id="logits-rank-1"),
    pytest.param(SoftmaxCrossEntropy, np.zeros((3, 10, 1, 1), np.float32), np.array([1, 2, 3]),
                 r"expected floating-point logits of shape \(N, K\), received shape \(3, 10, 1, 1\)",
                 id="logits-rank-4"),
    pytest.param(SoftmaxCrossEntropy, np.zeros((3, 10), np.int64), np.array([1, 2, 3]),
                 r"expected floating-point logits of shape \(N, K\), received shape \(3, 10\), dtype int64",
                 id="logits-int"),
    pytest.param(SoftmaxCrossEntropy, [[0.0, 1.0]], np.array([1]),
                 r"expected floating-point logits of shape \(N, K\), received list", id="logits-list"),
    pytest.param(SoftmaxCrossEntropy, np.zeros((0, 10)), np.zeros(0, np.int64),
                 r"SoftmaxCrossEntropy: expected at least one example, received 0", id="empty-batch"),
    pytest.param(MSE, np.zeros((3, 2)), np.zeros((2, 3)),
                 r"MSE: expected a target of shape \(3, 2\), received \(2, 3\)", id="mse-shape"),
    pytest.param(MSE, np.zeros((3, 2), np.int64), np.zeros((3, 2)),
                 r"MSE: expected a floating-point prediction array, received int64", id="mse-int-prediction"),
    pytest.param(MSE, np.zeros((3, 2)), np.full((3, 2), "a"),
                 r"MSE: expected a numeric target, received dtype <U1", id="mse-string-target"),
    pytest.param(MSE, np.zeros((0, 2)), np.zeros((0, 2)),
                 r"MSE: expected at least one element, received shape \(0, 2\)", id="mse-empty"),
]


@pytest.mark.parametrize("make, prediction, target, match", LOSS_ERRORS)
def test_losses_reject_bad_input(make, prediction, target, match) -> None:
    loss = make()
    raises_value_error(lambda: loss.forward(prediction, target), match)


# -- backward: before forward, and a dy of the wrong shape -----------------------------------

# (id, layer factory, a valid input)
EVERY_LAYER = [
    ("Conv2D", lambda: Conv2D(2, 3, 3, rng=0), f32(2, 2, 5, 5)),
    ("Conv2D-table", lambda: Conv2D(2, 3, 3, connections=[[1, 0], [0, 1], [1, 1]], rng=0), f32(1, 2, 4, 4)),
    ("MaxPool2D", lambda: MaxPool2D(2), f32(2, 3, 4, 4)),
    ("MaxPool2D-overlap-pad", lambda: MaxPool2D(3, stride=2, padding=1), f32(1, 2, 5, 5)),
    ("AvgPool2D", lambda: AvgPool2D(2, padding=1), f32(2, 3, 4, 4)),
    ("Dense", lambda: Dense(4, 3, rng=0), f32(2, 4)),
    ("Flatten", Flatten, f32(2, 3, 4)),
    ("ReLU", ReLU, f32(2, 3)),
    ("LeakyReLU", LeakyReLU, f32(2, 3)),
    ("Tanh", Tanh, f32(2, 3)),
    ("Sigmoid", Sigmoid, f32(2, 3)),
    ("Dropout", lambda: Dropout(0.5, rng=0), f32(2, 3)),
    ("Add", Add, [f32(2, 3), f32(2, 3)]),
    ("Concat", Concat, [f32(2, 3), f32(2, 1)]),
    ("Sequential", lambda: Sequential(Conv2D(1, 2, 3, rng=0), ReLU(), Flatten()), f32(2, 1, 4, 4)),
    ("Graph", lambda: Graph().add("relu", ReLU(), "input").add("sum", Add(), ["relu", "input"]), f32(2, 3)),
]
EVERY_LAYER_IDS = [entry[0] for entry in EVERY_LAYER]


@pytest.mark.parametrize("entry", EVERY_LAYER, ids=EVERY_LAYER_IDS)
def test_backward_before_forward_is_a_runtime_error(entry) -> None:
    _, make, _ = entry
    layer = make()
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward pass that kept what "
                                           r"backward needs") as info:
        layer.backward(np.zeros((2, 3), np.float32))
    if not isinstance(layer, (Sequential, Graph)):
        assert str(info.value).startswith(layer.label() + ": ")


@pytest.mark.parametrize("make", [SoftmaxCrossEntropy, MSE], ids=["SoftmaxCrossEntropy", "MSE"])
def test_loss_backward_before_forward_is_a_runtime_error(make) -> None:
    with pytest.raises(RuntimeError, match=rf"^{make.__name__}: backward\(\) called before forward\(\)$"):
        make().backward()


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("entry", [e for e in EVERY_LAYER if e[0] not in ("Sequential", "Graph")],
                         ids=[i for i in EVERY_LAYER_IDS if i not in ("Sequential", "Graph")])
def test_backward_rejects_a_gradient_of_the_wrong_shape(entry, training: bool) -> None:
    _, make, x = entry
    layer = make()
    y = layer.forward(x, training=training, keep_for_backward=True)
    prefix = re.escape(layer.label()) + r": expected a gradient of shape " + re.escape(str(y.shape))
    for bad in (np.zeros(y.shape + (1,), np.float32), np.zeros(y.shape[::-1] + (2,), np.float32),
                np.zeros((y.shape[0] + 1,) + y.shape[1:], np.float32), np.zeros((), np.float32)):
        raises_value_error(lambda: layer.backward(bad), prefix + r", received " + re.escape(str(bad.shape)))
    raises_value_error(lambda: layer.backward(y.tolist()), prefix + r", received list")
    raises_value_error(lambda: layer.backward(None), prefix + r", received NoneType")


def test_containers_pass_a_wrong_gradient_to_the_layer_that_names_it() -> None:
    model = lenet(rng=0)
    model.forward(f32(2, 1, 28, 28))
    raises_value_error(lambda: model.backward(f32(2, 9)),
                       r"^fc3: Dense\(in_features=84, out_features=10, bias=True\): expected a gradient "
                       r"of shape \(2, 10\), received \(2, 9\)$")


# -- nothing else escapes ------------------------------------------------------------------------

GARBAGE = {
    "None": None, "float": 3.0, "str": "abc", "nested-list": [[1.0, 2.0]], "numpy-scalar": np.float32(1.0),
    "0-d": np.zeros((), np.float32), "empty-1d": np.zeros(0, np.float32), "1-d": np.ones(3, np.float32),
    "2-d": np.ones((2, 3), np.float32), "3-d": np.ones((2, 3, 4), np.float32),
    "5-d": np.ones((1, 2, 3, 4, 5), np.float32), "int": np.ones((2, 2, 5, 5), np.int64),
    "uint8": np.ones((2, 2, 5, 5), np.uint8), "bool": np.ones((2, 2, 5, 5), bool),
    "complex": np.ones((2, 2, 5, 5), complex), "object": np.ones((2, 2, 5, 5), object),
    "strings": np.full((2, 2, 5, 5), "a"), "datetime": np.zeros((2, 2, 5, 5), "datetime64[s]"),
    "float64": np.ones((2, 2, 5, 5)), "empty-batch": np.zeros((0, 2, 5, 5), np.float32),
    "zero-size-map": np.zeros((1, 2, 0, 0), np.float32), "tiny-map": np.ones((1, 2, 1, 1), np.float32),
}


def _assert_only_our_value_error(call: Callable[[], Any], label: str) -> None:
    try:
        with np.errstate(all="ignore"):
            call()
    except ValueError as error:
        assert type(error) is ValueError, f"{type(error).__name__} escaped: {error}"
        assert str(error).startswith(label), f"message does not name {label!r}: {error}"
    except Exception as error:  # noqa: BLE001 - this is what the test looks for
        pytest.fail(f"{type(error).__name__} escaped from {label}: {error}")


@pytest.mark.parametrize("entry", EVERY_LAYER, ids=EVERY_LAYER_IDS)
def test_nothing_but_a_value_error_escapes_forward(entry) -> None:
    _, make, _ = entry
    for name, value in GARBAGE.items():
        for packed in (False, True):
            layer = make()
            x = [value, value] if packed else value
            label = layer.label() if not isinstance(layer, (Sequential, Graph)) else ""
            _assert_only_our_value_error(lambda: layer.forward(x), label)


@pytest.mark.parametrize("entry", [e for e in EVERY_LAYER if e[0] not in ("Sequential", "Graph")],
                         ids=[i for i in EVERY_LAYER_IDS if i not in ("Sequential", "Graph")])
def test_nothing_but_a_value_error_escapes_backward(entry) -> None:
    _, make, x = entry
    for name, value in GARBAGE.items():
        if isinstance(value, np.ndarray) and value.dtype.kind not in "f":
            continue     # a gradient of the right shape but a non-float dtype is not checked
        layer = make()
        layer.forward(x)
        _assert_only_our_value_error(lambda: layer.backward(value), layer.label())


def test_nothing_but_a_value_error_escapes_the_losses() -> None:
    logits = np.zeros((3, 4))
    for name, value in GARBAGE.items():
        _assert_only_our_value_error(lambda: SoftmaxCrossEntropy().forward(value, np.zeros(3, int)),
                                     "SoftmaxCrossEntropy")
        _assert_only_our_value_error(lambda: SoftmaxCrossEntropy().forward(logits, value),
                                     "SoftmaxCrossEntropy")
        _assert_only_our_value_error(lambda: MSE().forward(value, value), "MSE")
        _assert_only_our_value_error(lambda: MSE().forward(logits, value), "MSE")


@pytest.mark.parametrize("make", [
    lambda v: Conv2D(2, 2, v), lambda v: Conv2D(2, 2, 3, stride=v), lambda v: Conv2D(2, 2, 3, padding=v),
    lambda v: Conv2D(v, 2, 3), lambda v: Conv2D(2, 2, 3, groups=v), lambda v: Conv2D(2, 2, 3, connections=v),
    lambda v: Conv2D(2, 2, 3, dtype=v), lambda v: MaxPool2D(v), lambda v: AvgPool2D(2, stride=v),
    lambda v: MaxPool2D(3, padding=v), lambda v: Dense(v, 2), lambda v: Dense(2, 2, dtype=v),
    lambda v: Dropout(v), lambda v: LeakyReLU(v), lambda v: Concat(v), lambda v: SoftmaxCrossEntropy(v),
], ids=["conv-kernel", "conv-stride", "conv-padding", "conv-in", "conv-groups", "conv-connections",
        "conv-dtype", "maxpool-kernel", "avgpool-stride", "maxpool-padding", "dense-in", "dense-dtype",
        "dropout-p", "leaky-slope", "concat-axis", "smoothing"])
def test_nothing_but_a_value_error_escapes_constructors(make) -> None:
    for value in (None, "3", 2.5, -1, 0, (1, 2, 3), (), [], float("nan"), float("inf"), (2, "a"),
                  10 ** 30, [[True]], np.zeros((2, 2))):
        _assert_only_our_value_error(lambda: make(value), "")


# -- python -O ---------------------------------------------------------------------------

OPTIMISED_SCRIPT = r"""
import numpy as np
from minidl.layers import Conv2D, MaxPool2D
from minidl.losses import SoftmaxCrossEntropy
assert False, "this line runs only without -O"
cases = [
    lambda: Conv2D(6, 16, 5).forward(np.zeros((28, 28), np.float32)),
    lambda: Conv2D(6, 16, 5).forward(np.zeros((1, 6, 8, 8), np.float64)),
    lambda: MaxPool2D(2, padding=2),
    lambda: SoftmaxCrossEntropy().forward(np.zeros((2, 10)), np.array([0, 10])),
]
for case in cases:
    try:
        case()
    except ValueError as error:
        print("ValueError:", error)
    else:
        print("no error")
"""


def test_checks_survive_python_dash_O() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-O", "-c", OPTIMISED_SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4, proc.stdout
    assert all(line.startswith("ValueError: ") for line in lines), proc.stdout
    assert "expected input of shape (N, 6, H, W), received (28, 28)" in lines[0]
    assert "expected input of dtype float32 (the layer's dtype), received float64" in lines[1]
    assert "expected padding at most half the kernel size" in lines[2]
    assert "expected labels in [0, 9], received [10]" in lines[3]
