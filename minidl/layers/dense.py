"""Dense (fully connected) layer and Flatten."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from minidl import checks, parallel
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

    per_example = True

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
        w = self.weight.data
        y = np.empty((len(x), self.out_features), x.dtype)

        def chunk(start: int, stop: int) -> None:
            np.matmul(x[start:stop], w.T, out=y[start:stop])
            if self.bias is not None:
                y[start:stop] += self.bias.data

        parallel.run(chunk, self._chunks(len(x), x.itemsize))
        return y

    def _chunks(self, n: int, itemsize: int) -> list[tuple[int, int]]:
        return parallel.chunks(n, (self.in_features + self.out_features) * itemsize,
                               minimum_bytes=1 << 20)

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        x, = self._saved()
        self._check_dy(dy, (x.shape[0], self.out_features))
        pieces = self._chunks(len(x), dy.itemsize)
        partial_dw = np.empty((len(pieces),) + self.weight.shape, dy.dtype)
        dx = np.empty(x.shape, dy.dtype) if input_grad else None
        w = self.weight.data

        def chunk(index: int, start: int, stop: int) -> None:
            np.matmul(dy[start:stop].T, x[start:stop], out=partial_dw[index])
            if dx is not None:
                np.matmul(dy[start:stop], w, out=dx[start:stop])

        parallel.run(chunk, [(i, start, stop) for i, (start, stop) in enumerate(pieces)])
        # Summed in chunk order, so the result does not depend on which thread ran what.
        self.weight.grad += partial_dw[0] if len(pieces) == 1 else partial_dw.sum(axis=0)
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=0)
        return dx


class Flatten(Layer):
    """Flatten every dimension but the batch.

    Shape
    -----
    input ``(N, d1, d2, ...)``, output ``(N, d1 * d2 * ...)``. The order is C's
    (row-major), as in PyTorch, so dense weights carry over.
    """

    per_example = True

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
