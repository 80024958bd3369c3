"""CIFAR-10 models: Krizhevsky's cuda-convnet nets, and a two-column net in AlexNet's manner.

cuda-convnet's example layer files (``layers-80sec.cfg``, ``layers-18pct.cfg``)
describe 5x5 convolutions with padding 2 of 32, 32 and 64 maps on 32x32x3
images, each followed by an overlapping 3x3 pooling of stride 2 (max, then
average), which cuda-convnet sizes by rounding up: 32 -> 16 -> 8 -> 4, so the
last maps are 64 x 4 x 4. ``ceil_mode=True`` reproduces that.

Differences from cuda-convnet, on purpose:

* initialisation: He (uniform) before ReLUs and LeCun for the output layer,
  where cuda-convnet draws Gaussians of hand-set widths (``initW`` 1e-4 for
  conv1, 0.01 for conv2 and conv3, 0.1 for the fc layers);
* 18pct's ``rnorm`` normalises each map over a 3x3 spatial neighbourhood; minidl's
  :class:`~minidl.layers.LocalResponseNorm` normalises across channels (AlexNet's
  and cuda-convnet's ``cmrnorm``), which is used here with the same size, scale
  and power (``size=3, alpha=5e-5, beta=0.75``);
* the training recipe (SGD with Nesterov momentum, cosine schedule, crops and
  flips) is minidl's, not cuda-convnet's step schedule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl import checks
from minidl.containers import Sequential
from minidl.layers import (AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, LocalResponseNorm,
                           MaxPool2D, ReLU)


def _conv(in_channels: int, out_channels: int, rng: np.random.Generator, dtype: Any,
          **kwargs: Any) -> Conv2D:
    return Conv2D(in_channels, out_channels, 5, padding=2, rng=rng, dtype=dtype, **kwargs)


def _pool(kind: type) -> Any:
    return kind(3, stride=2, ceil_mode=True)


def convnet_80sec(rng: np.random.Generator | int | None = None,
                  dtype: Any = np.float32) -> Sequential:
    """cuda-convnet's ``layers-80sec.cfg``: 145,578 parameters.

    conv 3->32 5x5, max-pool 3/2, ReLU; conv 32->32 5x5, ReLU, avg-pool 3/2;
    conv 32->64 5x5, ReLU, avg-pool 3/2; dense 1024->64, ReLU; dense 64->10.
    (cuda-convnet applies conv1's ReLU after its pooling: the same function, on
    a quarter of the values.)
    """
    rng = checks.rng_from(rng, "convnet_80sec")
    return Sequential(
        _conv(3, 32, rng, dtype), _pool(MaxPool2D), ReLU(),
        _conv(32, 32, rng, dtype), ReLU(), _pool(AvgPool2D),
        _conv(32, 64, rng, dtype), ReLU(), _pool(AvgPool2D), Flatten(),
        Dense(64 * 4 * 4, 64, rng=rng, dtype=dtype), ReLU(),
        Dense(64, 10, rng=rng, dtype=dtype, weight_init="lecun_uniform"))


def convnet_18pct(rng: np.random.Generator | int | None = None,
                  dtype: Any = np.float32) -> Sequential:
    """cuda-convnet's ``layers-18pct.cfg`` (18% test error): 89,578 parameters.

    As :func:`convnet_80sec` with response normalisation after the first two
    poolings, and no hidden dense layer: the 64 x 4 x 4 maps go straight to 10
    outputs.
    """
    rng = checks.rng_from(rng, "convnet_18pct")
    return Sequential(
        _conv(3, 32, rng, dtype), _pool(MaxPool2D), ReLU(),
        LocalResponseNorm(3, alpha=5e-5, beta=0.75, k=1.0),
        _conv(32, 32, rng, dtype), ReLU(), _pool(AvgPool2D),
        LocalResponseNorm(3, alpha=5e-5, beta=0.75, k=1.0),
        _conv(32, 64, rng, dtype), ReLU(), _pool(AvgPool2D), Flatten(),
        Dense(64 * 4 * 4, 10, rng=rng, dtype=dtype, weight_init="lecun_uniform"))


def convnet_80sec_bn(rng: np.random.Generator | int | None = None,
                     dtype: Any = np.float32) -> Sequential:
    """:func:`convnet_80sec` with batch normalisation before each convolution's ReLU.

    The first one comes after the max pooling, where ReLU is in the 80sec net:
    on a quarter of the values, which makes it four times cheaper. The
    convolutions lose their biases (the normalisation's shift takes their place):
    145,578 - 128 + 2 * 128 = 145,706 parameters. Chosen as the CIFAR-10 default
    by measurement (README, "Measured"): with the same 15 epochs it ends about
    three points above the plain 80sec net for a few per cent more time a step.
    """
    rng = checks.rng_from(rng, "convnet_80sec_bn")
    return Sequential(
        _conv(3, 32, rng, dtype, bias=False), _pool(MaxPool2D), BatchNorm2D(32, dtype=dtype),
        ReLU(),
        _conv(32, 32, rng, dtype, bias=False), BatchNorm2D(32, dtype=dtype), ReLU(),
        _pool(AvgPool2D),
        _conv(32, 64, rng, dtype, bias=False), BatchNorm2D(64, dtype=dtype), ReLU(),
        _pool(AvgPool2D), Flatten(),
        Dense(64 * 4 * 4, 64, rng=rng, dtype=dtype), ReLU(),
        Dense(64, 10, rng=rng, dtype=dtype, weight_init="lecun_uniform"))


def two_column(rng: np.random.Generator | int | None = None,
               dtype: Any = np.float32) -> Sequential:
    """A two-column net in AlexNet's manner (Krizhevsky et al. 2012, Figure 2).

    conv1 has 64 kernels that all see the three colour channels; kernels 0-31 are
    column 1 (AlexNet's GPU 1), 32-63 column 2. conv2 reads only its own
    column's maps (``groups=2``, Caffe's ``group: 2``), so each column's first
    layer feeds only its own second layer, as on two GPUs; conv3 and the dense
    layers read both columns. Batch normalisation before each ReLU keeps the
    columns training at a common pace; the first one, as in
    :func:`convnet_80sec_bn`, comes after the max pooling, on a quarter of the
    values.
    """
    rng = checks.rng_from(rng, "two_column")
    return Sequential(
        ("conv1", _conv(3, 64, rng, dtype)), ("pool1", _pool(MaxPool2D)),
        ("bn1", BatchNorm2D(64, dtype=dtype)), ("relu1", ReLU()),
        ("conv2", _conv(64, 64, rng, dtype, groups=2)), ("bn2", BatchNorm2D(64, dtype=dtype)),
        ("relu2", ReLU()), ("pool2", _pool(MaxPool2D)),
        ("conv3", Conv2D(64, 128, 3, padding=1, rng=rng, dtype=dtype)),
        ("bn3", BatchNorm2D(128, dtype=dtype)), ("relu3", ReLU()), ("pool3", _pool(MaxPool2D)),
        ("flatten", Flatten()),
        ("fc1", Dense(128 * 4 * 4, 10, rng=rng, dtype=dtype, weight_init="lecun_uniform")))
