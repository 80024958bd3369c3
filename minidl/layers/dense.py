"""Dense (fully connected) layer and Flatten."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from minidl import checks
from minidl import init as initializers
from minidl.layers.base import Layer, keeps
from minidl.parameter import Parameter


class DenseCache(NamedTuple):
    """What Dense.backward needs from forward."""

    x: np.ndarray  #: the input ``(N, in_features)``


class FlattenCache(NamedTuple):
    input_shape: tuple[int, ...]


class Dense(Layer):
    """``y = x @ weight.T + bias`` (PyTorch's Linear).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    weight_init : str
        Name of an initialiser in :mod:`minidl.init`.
    dtype : numpy dtype
    rng : numpy Generator or int seed, optional

    Shape
    -----
    input ``(N, in_features)``, output ``(N, out_features)``;
    ``weight``: ``(out_features, in_features)``, ``bias``: ``(out_features,)``.
    """

    default_name = "fc"

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_init: str = "he_uniform", dtype: Any = np.float32,
                 rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        owner = f"Dense(in_features={in_features!r}, out_features={out_features!r})"
        self.in_features = checks.integer(in_features, "in_features", owner, minimum=1)
        self.out_features = checks.integer(out_features, "out_features", owner, minimum=1)
        self.dtype = checks.float_dtype(dtype, owner)
        self.weight_init = weight_init
        weight = initializers.get(weight_init)((self.out_features, self.in_features),
                                               rng=checks.rng_from(rng, owner), dtype=self.dtype)
        self.weight = Parameter(weight, "weight")
        self.bias = Parameter(np.zeros(self.out_features, self.dtype), "bias") if bias else None

    def get_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "weight_init": self.weight_init,
                "dtype": self.dtype.name}

    def __repr__(self) -> str:
        extra = "" if self.bias is not None else ", bias=False"
        extra += "" if self.dtype == np.float32 else f", dtype={self.dtype.name}"
        return f"Dense({self.in_features}, {self.out_features}{extra})"

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.in_features:
            got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"{self.label()}: expected input of shape (N, {self.in_features}), "
                             f"received {got}")
        self._check_float(x, self.dtype)
        self._cache = DenseCache(x) if keeps(training, keep_for_backward) else None
        y = x @ self.weight.data.T
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        x, = self._saved()
        self._check_dy(dy, (x.shape[0], self.out_features))
        self.weight.grad += dy.T @ x
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=0)
        return dy @ self.weight.data if input_grad else None


class Flatten(Layer):
    """Flatten every dimension but the batch.

    Shape
    -----
    input ``(N, d1, d2, ...)``, output ``(N, d1 * d2 * ...)``. The order is C's
    (row-major), as in PyTorch, so dense weights carry over.
    """

    default_name = "flatten"

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"{self.label()}: expected input of shape (N, ...) with at least "
                             f"2 dimensions, received {got}")
        self._check_float(x)
        self._cache = FlattenCache(x.shape) if keeps(training, keep_for_backward) else None
        # An explicit size: reshape(0, -1) is ambiguous for an empty batch.
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        shape, = self._saved()
        self._check_dy(dy, (shape[0], int(np.prod(shape[1:]))))
        return dy.reshape(shape) if input_grad else None
