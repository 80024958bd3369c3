"""Element-wise activations and dropout.

Each keeps the least backward needs: a boolean mask for ReLU and LeakyReLU, the
output for Tanh and Sigmoid (whose derivatives are functions of it), the
scaled mask for Dropout. All of them keep the memory order of their input.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from minidl import checks, parallel
from minidl.layers.base import Layer, keeps


class MaskCache(NamedTuple):
    positive: np.ndarray  #: bool, the input's shape: where the input was > 0


class OutputCache(NamedTuple):
    y: np.ndarray  #: the output, from which the derivative follows


class DropoutCache(NamedTuple):
    #: the input's shape; ``scale`` is None when the layer was the identity
    #: (evaluation mode, or p = 0)
    shape: tuple[int, ...]
    scale: np.ndarray | None  #: 0 or 1/(1-p) for each entry


class ReLU(Layer):
    """``max(x, 0)``; the gradient at exactly 0 is 0 (as in PyTorch).

    Attributes
    ----------
    backward_rule : {"gradient", "guided", "deconvnet"}
        What ``backward`` passes on, given the upstream gradient ``dy`` and the
        forward input ``x``:

        * ``"gradient"`` (default): ``dy`` where ``x > 0``, the true derivative.
          Training needs this one.
        * ``"guided"``: ``dy`` where ``x > 0`` *and* ``dy > 0`` (guided
          backpropagation, Springenberg et al. 2014).
        * ``"deconvnet"``: ``max(dy, 0)`` whatever ``x`` was (the rectification of
          Zeiler and Fergus's deconvnet).

        An inspection setting, not part of the layer: it is in neither the config
        nor the state dict. Set it with :func:`minidl.inspect.relu_backward_rule`,
        which sets it on every ReLU of a model for a ``with`` block and always
        restores it.

    Shape
    -----
    any shape; output has the input's shape.
    """

    per_example = True

    default_name = "relu"
    #: The values ``backward_rule`` accepts.
    BACKWARD_RULES = ("gradient", "guided", "deconvnet")

    def __init__(self) -> None:
        super().__init__()
        self.backward_rule = "gradient"
        self._zeros: np.ndarray | None = None  # one sample of zeros, see forward

    @property
    def backward_rule(self) -> str:
        return self._backward_rule

    @backward_rule.setter
    def backward_rule(self, rule: str) -> None:
        self._backward_rule = checks.one_of(rule, self.BACKWARD_RULES, "backward_rule",
                                            self.label())

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        self._check_float(x)
        keep = keeps(training, keep_for_backward)
        y = np.empty_like(x)
        positive = np.empty_like(x, dtype=bool) if keep else None
        zero = x.dtype.type(0)
        # Against an array of zeros (one sample, broadcast over the batch) NumPy's
        # maximum runs its vectorised loop; against the scalar 0 it took nearly twice
        # as long.
        sample = (1,) + x.shape[1:] if x.ndim else ()
        zeros = self._zeros
        if zeros is None or zeros.shape != sample or zeros.dtype != x.dtype:
            zeros = self._zeros = np.zeros(sample, x.dtype)

        def chunk(part: Any) -> None:
            # maximum, not x * mask: -inf * False would be NaN.
            np.maximum(x[part], zeros, out=y[part])
            if positive is not None:
                np.greater(x[part], zero, out=positive[part])

        parallel.run(chunk, _batch_chunks(x))
        self._cache = MaskCache(positive) if keep else None
        return y

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        positive, = self._saved()
        self._check_dy(dy, positive.shape)
        if not input_grad:
            return None
        if self._backward_rule == "guided":
            return np.maximum(dy, dy.dtype.type(0)) * positive
        if self._backward_rule == "deconvnet":
            return np.maximum(dy, dy.dtype.type(0))
        dx = np.empty_like(dy)

        def chunk(part: Any) -> None:
            np.multiply(dy[part], positive[part], out=dx[part])

        parallel.run(chunk, _batch_chunks(dy))
        return dx


def _batch_chunks(x: np.ndarray) -> list[tuple[Any]]:
    """Index pieces of the batch for the workers; a small array is one piece.

    Split along the batch axis, not the flat memory: a channel-major array's batch
    slices are views, its flattening would be a copy.
    """
    if x.ndim == 0:
        return [(...,)]
    return [(slice(start, stop),)
            for start, stop in parallel.chunks(len(x), x[:1].nbytes, minimum_bytes=1 << 22)]


class LeakyReLU(Layer):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    Shape
    -----
    any shape; output has the input's shape.
    """

    per_example = True

    default_name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = checks.real(negative_slope, "negative_slope", "LeakyReLU")

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        self._check_float(x)
        positive = x > 0
        self._cache = MaskCache(positive) if keeps(training, keep_for_backward) else None
        return np.where(positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        positive, = self._saved()
        self._check_dy(dy, positive.shape)
        if not input_grad:
            return None
        return np.where(positive, dy, dy * dy.dtype.type(self.negative_slope))


class Tanh(Layer):
    """Hyperbolic tangent; ``dx = dy * (1 - y**2)``.

    Shape
    -----
    any shape; output has the input's shape.
    """

    per_example = True

    default_name = "tanh"

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        self._check_float(x)
        y = np.tanh(x)
        self._cache = OutputCache(y) if keeps(training, keep_for_backward) else None
        return y

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        y, = self._saved()
        self._check_dy(dy, y.shape)
        return dy * (1 - y * y) if input_grad else None


class Sigmoid(Layer):
    """Logistic function, computed without overflow; ``dx = dy * y * (1 - y)``.

    Shape
    -----
    any shape; output has the input's shape.
    """

    per_example = True

    default_name = "sigmoid"

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        self._check_float(x)
        # exp of a non-positive number never overflows.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        self._cache = OutputCache(y) if keeps(training, keep_for_backward) else None
        return y

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        y, = self._saved()
        self._check_dy(dy, y.shape)
        return dy * y * (1 - y) if input_grad else None


class Dropout(Layer):
    """Inverted dropout: zero each entry with probability ``p``, scale the rest by ``1/(1-p)``.

    The identity when ``training`` is False, so evaluation needs no rescaling.

    Parameters
    ----------
    p : float in [0, 1)
    rng : numpy Generator or int seed, optional
        Source of the masks; pass one for reproducible training. The trainer
        saves and restores its state with each checkpoint.

    Shape
    -----
    any shape; output has the input's shape.
    """

    default_name = "dropout"

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        self.p = checks.real(p, "p", "Dropout", minimum=0.0, maximum=1.0, strict_max=True)
        self.rng = checks.rng_from(rng, "Dropout")

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p}

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        self._check_float(x)
        keep = keeps(training, keep_for_backward)
        if not training or self.p == 0:
            self._cache = DropoutCache(x.shape, None) if keep else None
            return x
        # Drawn in the logical (C) order whatever the memory order, so the same
        # seed gives the same mask for the same entries.
        draws = self.rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
        scale = ((draws >= self.p) / x.dtype.type(1 - self.p)).astype(x.dtype, copy=False)
        self._cache = DropoutCache(x.shape, scale) if keep else None
        return x * scale

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        shape, scale = self._saved()
        self._check_dy(dy, shape)
        if not input_grad:
            return None
        return dy if scale is None else dy * scale
