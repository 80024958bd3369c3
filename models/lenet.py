"""LeNet models: the 1998 network, the modern variant, and Caffe's wider one."""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl import Sequential
from minidl.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from minidl import checks


def _c3_table() -> np.ndarray:
    """LeNet-5's C3 connections (LeCun et al. 1998, Table I): rows are the 16 C3
    maps, columns the 6 S2 maps they read."""
    table = np.zeros((16, 6), dtype=bool)
    for o in range(6):                      # three contiguous S2 maps
        table[o, [(o + i) % 6 for i in range(3)]] = True
    for o in range(6, 12):                  # four contiguous maps
        table[o, [(o - 6 + i) % 6 for i in range(4)]] = True
    for o, reads in zip(range(12, 15), ([0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5])):
        table[o, reads] = True              # four, in two pairs
    table[15] = True                        # all six
    return table


LENET5_C3_TABLE = _c3_table()


def lenet5(rng: np.random.Generator | int | None = None, dtype: Any = np.float32) -> Sequential:
    """LeNet-5 as in LeCun et al. (1998), on 32x32 inputs (MNIST padded by 2).

    C1 6@5x5, S2 2x2 subsampling, C3 16@5x5 with the Table I connection table,
    S4, C5 120@5x5 (a convolution over the 5x5 S4 maps), F6 84, 10 outputs;
    tanh activations. Differences from the paper, on purpose: S2/S4 are plain
    average pooling (the paper multiplies each sum by a trainable coefficient
    and adds a bias before a sigmoid), the activation is plain tanh rather than
    the scaled 1.7159 tanh(2x/3), and the Euclidean RBF output layer is replaced
    by 10 linear outputs trained with softmax cross-entropy.
    """
    rng = checks.rng_from(rng, "lenet5")
    kw = dict(rng=rng, dtype=dtype, weight_init="lecun_uniform")
    return Sequential(
        ("c1", Conv2D(1, 6, 5, **kw)), ("tanh1", Tanh()), ("s2", AvgPool2D(2)),
        ("c3", Conv2D(6, 16, 5, connections=LENET5_C3_TABLE, **kw)), ("tanh2", Tanh()),
        ("s4", AvgPool2D(2)),
        ("c5", Conv2D(16, 120, 5, **kw)), ("tanh3", Tanh()), ("flatten", Flatten()),
        ("f6", Dense(120, 84, **kw)), ("tanh4", Tanh()),
        ("output", Dense(84, 10, **kw)))


def lenet(rng: np.random.Generator | int | None = None, dtype: Any = np.float32) -> Sequential:
    """The modern LeNet on 28x28 inputs: ReLU, max pooling, full connections.

    conv 1->6 5x5 pad 2, ReLU, maxpool 2, conv 6->16 5x5, ReLU, maxpool 2,
    dense 400-120-84-10. He initialisation before ReLUs, LeCun for the output.
    """
    rng = checks.rng_from(rng, "lenet")
    kw = dict(rng=rng, dtype=dtype)
    return Sequential(
        Conv2D(1, 6, 5, padding=2, **kw), ReLU(), MaxPool2D(2),
        Conv2D(6, 16, 5, **kw), ReLU(), MaxPool2D(2), Flatten(),
        Dense(400, 120, **kw), ReLU(), Dense(120, 84, **kw), ReLU(),
        # No ReLU follows the output layer, so He's factor of 2 would only inflate
        # the initial logits (to a loss near 5 instead of ln 10); LeCun keeps them calm.
        Dense(84, 10, rng=rng, dtype=dtype, weight_init="lecun_uniform"))


def lenet_caffe(rng: np.random.Generator | int | None = None, dtype: Any = np.float32) -> Sequential:
    """Caffe's wider LeNet on 28x28 inputs: conv 20@5x5, pool, conv 50@5x5, pool, 500, 10."""
    rng = checks.rng_from(rng, "lenet_caffe")
    kw = dict(rng=rng, dtype=dtype)
    return Sequential(
        Conv2D(1, 20, 5, **kw), MaxPool2D(2), Conv2D(20, 50, 5, **kw), MaxPool2D(2), Flatten(),
        Dense(800, 500, **kw), ReLU(), Dense(500, 10, rng=rng, dtype=dtype, weight_init="lecun_uniform"))
