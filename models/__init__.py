"""Model definitions and their training recipes, by name.

Each entry says which dataset the model reads and the recipe ``train.py``
uses unless told otherwise (epochs, batch size, learning rate per optimizer,
augmentation, padding). A new model needs a builder ``f(rng=None, dtype=...)``
returning a minidl Layer, and one entry in :data:`MODELS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from minidl.layers.base import Layer
from models.lenet import LENET5_C3_TABLE, lenet, lenet5, lenet_caffe


@dataclass(frozen=True)
class Recipe:
    """Default training settings of a model (``train.py --help`` shows them)."""

    epochs: int
    batch_size: int
    #: peak learning rate per optimizer name
    lr: dict[str, float] = field(default_factory=dict)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5
    shift: int = 0
    flip: bool = False
    #: padding the input spec adds around each image (LeNet-5 reads 28x28 digits as 32x32)
    pad: int = 0


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[..., Layer]
    dataset: str
    description: str
    recipe: Recipe


_MNIST_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3}

MODELS: dict[str, ModelEntry] = {
    "lenet": ModelEntry(lenet, "mnist", "modern LeNet: ReLU, max pooling, 61,706 parameters",
                        Recipe(epochs=12, batch_size=64, lr=_MNIST_LR, shift=2)),
    "lenet5": ModelEntry(lenet5, "mnist", "LeNet-5 (1998) with its C3 connection table, on 32x32",
                         Recipe(epochs=12, batch_size=64, lr=_MNIST_LR, shift=2, pad=2)),
    # Caffe's LeNet has no nonlinearity between its convolutions and is wider: at 0.05
    # it diverged on some seeds, so it keeps Caffe's own rate.
    "lenet-caffe": ModelEntry(lenet_caffe, "mnist", "Caffe's wider LeNet: 20/50 maps, 500 hidden",
                              Recipe(epochs=12, batch_size=64,
                                     lr={"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}, shift=2)),
}

#: The model train.py uses for each dataset when --model is not given.
DEFAULT_MODELS: dict[str, str] = {"mnist": "lenet"}

__all__ = ["MODELS", "DEFAULT_MODELS", "ModelEntry", "Recipe", "lenet", "lenet5", "lenet_caffe",
           "LENET5_C3_TABLE"]

