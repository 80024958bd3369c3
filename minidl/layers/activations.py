"""Element-wise activations and dropout.

Each keeps the least backward needs: a boolean mask for ReLU and Dropout, the
output for Tanh and Sigmoid (whose derivatives are functions of it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl.layers.base import Layer, rng_from


class _Elementwise(Layer):
    def _check(self, x: Any) -> np.ndarray:
        return self._check_float(x)


class ReLU(_Elementwise):
    """``max(x, 0)``; the gradient at exactly 0 is 0 (as in PyTorch).

    Shape
    -----
    any shape; output has the input's shape.
    """

    default_name = "relu"

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check(x)
        self._cache = x > 0
        # maximum, not x * mask: -inf * False would be NaN.
        return np.maximum(x, x.dtype.type(0))

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        positive = self._saved()
        self._check_dy(dy, positive.shape)
        return dy * positive if input_grad else None


class LeakyReLU(_Elementwise):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    Shape
    -----
    any shape; output has the input's shape.
    """

    default_name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if (isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float, np.number))
                or not np.isfinite(float(negative_slope))):
            raise ValueError(f"LeakyReLU: expected a finite negative_slope, received {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check(x)
        positive = x > 0
        self._cache = positive
        return np.where(positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        positive = self._saved()
        self._check_dy(dy, positive.shape)
        if not input_grad:
            return None
        return np.where(positive, dy, dy * dy.dtype.type(self.negative_slope))


class Tanh(_Elementwise):
    """Hyperbolic tangent; ``dx = dy * (1 - y**2)``.

    Shape
    -----
    any shape; output has the input's shape.
    """

    default_name = "tanh"

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check(x)
        y = np.tanh(x)
        self._cache = y
        return y

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        y = self._saved()
        self._check_dy(dy, y.shape)
        return dy * (1 - y * y) if input_grad else None


class Sigmoid(_Elementwise):
    """Logistic function, computed without overflow; ``dx = dy * y * (1 - y)``.

    Shape
    -----
    any shape; output has the input's shape.
    """

    default_name = "sigmoid"

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check(x)
        # exp of a non-positive number never overflows.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        self._cache = y
        return y

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        y = self._saved()
        self._check_dy(dy, y.shape)
        return dy * y * (1 - y) if input_grad else None


class Dropout(_Elementwise):
    """Inverted dropout: zero each entry with probability ``p``, scale the rest by ``1/(1-p)``.

    The identity when ``training`` is False, so evaluation needs no rescaling.

    Parameters
    ----------
    p : float in [0, 1)
    rng : numpy Generator or int seed, optional
        Source of the masks; pass one for reproducible training.

    Shape
    -----
    any shape; output has the input's shape.
    """

    default_name = "dropout"

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p < 1:
            raise ValueError(f"Dropout: expected p in [0, 1), received {p!r}")
        self.p = float(p)
        self.rng = rng_from(rng)
        self._identity = False

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p}

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._check(x)
        if not training or self.p == 0:
            self._cache = x.shape
            self._identity = True
            return x
        self._identity = False
        keep = self.rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64) >= self.p
        scale = (keep / x.dtype.type(1 - self.p)).astype(x.dtype, copy=False)
        self._cache = scale
        return x * scale

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        saved = self._saved()
        if self._identity:
            self._check_dy(dy, saved)
            return dy if input_grad else None
        scale = saved
        self._check_dy(dy, scale.shape)
        return dy * scale if input_grad else None
