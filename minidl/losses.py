"""Losses: fused softmax cross-entropy, and mean squared error.

A loss is the end of the chain: ``forward(prediction, target) -> float`` and
``backward() -> d loss / d prediction``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minidl import checks


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits, with the maximum subtracted so nothing overflows.

    Shape
    -----
    any shape; the result has it too and sums to 1 along ``axis``.
    """
    exp = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return exp / exp.sum(axis=axis, keepdims=True)


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer class labels.

    Softmax and the log are fused through log-sum-exp with the row maximum
    subtracted, so logits of magnitude 1e4 neither overflow nor give log(0).
    The gradient is ``(softmax(logits) - onehot(labels)) / N``.

    Parameters
    ----------
    label_smoothing : float in [0, 1)
        Mix the one-hot target with the uniform distribution (as in PyTorch).

    Shape
    -----
    logits ``(N, K)`` floating point, labels ``(N,)`` integers in ``[0, K)``;
    ``forward`` returns a Python float, ``backward`` an array ``(N, K)``.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = checks.real(label_smoothing, "label_smoothing", "SoftmaxCrossEntropy",
                                           minimum=0.0, maximum=1.0, strict_max=True)
        self._cache: Any = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        logits, labels = self._check(logits, labels)
        n, k = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        log_probs = shifted - np.log(total)
        rows = np.arange(n)
        nll = -log_probs[rows, labels]
        if self.label_smoothing:
            eps = self.label_smoothing
            nll = (1 - eps) * nll - eps * log_probs.mean(axis=1)
        self._cache = (exp / total, labels)
        return float(nll.mean(dtype=np.float64))

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("SoftmaxCrossEntropy: backward() called before forward()")
        probs, labels = self._cache
        n, k = probs.shape
        grad = probs.copy()
        eps = self.label_smoothing
        grad[np.arange(n), labels] -= 1 - eps
        if eps:
            grad -= eps / k
        grad /= n
        return grad

    def _check(self, logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(logits, np.ndarray) or logits.ndim != 2 or logits.dtype.kind != "f":
            got = (f"shape {logits.shape}, dtype {logits.dtype}" if isinstance(logits, np.ndarray)
                   else type(logits).__name__)
            raise ValueError(f"SoftmaxCrossEntropy: expected floating-point logits of shape (N, K), "
                             f"received {got}")
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu":
            raise ValueError(f"SoftmaxCrossEntropy: expected integer labels, received dtype {labels.dtype}")
        n, k = logits.shape
        if labels.shape != (n,):
            raise ValueError(f"SoftmaxCrossEntropy: expected labels of shape ({n},) to match the "
                             f"logits, received {labels.shape}")
        if n and (labels.min() < 0 or labels.max() >= k):
            bad = labels[(labels < 0) | (labels >= k)]
            raise ValueError(f"SoftmaxCrossEntropy: expected labels in [0, {k - 1}], "
                             f"received {bad[:5].tolist()}")
        if n == 0:
            raise ValueError("SoftmaxCrossEntropy: expected at least one example, received 0")
        return logits, labels.astype(np.intp, copy=False)


class MSE:
    """Mean squared error over every element.

    Shape
    -----
    prediction and target of the same shape; ``forward`` returns a float,
    ``backward`` ``2 * (prediction - target) / size``.
    """

    def __init__(self) -> None:
        self._cache: Any = None

    def forward(self, prediction: np.ndarray, target: np.ndarray) -> float:
        if not isinstance(prediction, np.ndarray) or prediction.dtype.kind != "f":
            raise ValueError(f"MSE: expected a floating-point prediction array, "
                             f"received {getattr(prediction, 'dtype', type(prediction).__name__)}")
        target = np.asarray(target)
        if target.shape != prediction.shape:
            raise ValueError(f"MSE: expected a target of shape {prediction.shape}, received {target.shape}")
        if target.dtype.kind not in "biuf":
            raise ValueError(f"MSE: expected a numeric target, received dtype {target.dtype}")
        if prediction.size == 0:
            raise ValueError(f"MSE: expected at least one element, received shape {prediction.shape}")
        diff = prediction - target.astype(prediction.dtype, copy=False)
        self._cache = diff
        return float(np.mean(diff.astype(np.float64) ** 2))

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("MSE: backward() called before forward()")
        diff = self._cache
        return diff * diff.dtype.type(2 / diff.size)
