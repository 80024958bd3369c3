"""Numerical gradient checks for layers, losses and whole models.

The analytic gradient of a scalar ``L`` is compared with central differences
along random directions ``d``:

    (L(x + eps d) - L(x - eps d)) / (2 eps)   vs   <dL/dx, d>

For a layer, ``L = sum(G * layer(x))`` with a random upstream gradient ``G``, so
every output element counts. Run checks in float64: in float32 the rounding
error of the difference quotient swamps the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from minidl.layers.base import Layer


@dataclass
class GradcheckEntry:
    """One directional comparison: ``name`` is ``input``, ``input[1]`` or a parameter name."""

    name: str
    numeric: float
    analytic: float
    #: Smallest denominator: the rounding noise of the difference quotient divided
    #: by the tolerance, so a derivative that is itself at noise level is compared
    #: against that noise rather than against its own (meaningless) size.
    floor: float = 0.0

    @property
    def error(self) -> float:
        scale = max(abs(self.numeric), abs(self.analytic), self.floor)
        return abs(self.numeric - self.analytic) / scale if scale > 0 else 0.0


@dataclass
class GradcheckResult:
    """All comparisons of one check; ``ok`` when every relative error is below ``tolerance``."""

    tolerance: float
    entries: list[GradcheckEntry] = field(default_factory=list)

    @property
    def max_error(self) -> float:
        return max((e.error for e in self.entries), default=0.0)

    @property
    def ok(self) -> bool:
        return bool(self.entries) and self.max_error < self.tolerance

    def failures(self) -> list[GradcheckEntry]:
        return [e for e in self.entries if not e.error < self.tolerance]

    def __str__(self) -> str:
        rows = [f"  {e.name:<24} numeric {e.numeric: .10e}  analytic {e.analytic: .10e}  "
                f"rel. error {e.error:.2e}{'  FAIL' if not e.error < self.tolerance else ''}"
                for e in self.entries]
        head = "gradient check passed" if self.ok else "gradient check FAILED"
        return f"{head} (max relative error {self.max_error:.2e}, tolerance {self.tolerance:.0e})\n" + "\n".join(rows)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise AssertionError(str(self))


def _require_float64(name: str, array: np.ndarray) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
        got = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(f"gradcheck: expected float64 arrays (float32 is too coarse for finite "
                         f"differences), received {got} for '{name}'")


def check_scalar_function(f: Callable[[], float],
                          wrt: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]],
                          *, rng: np.random.Generator, eps: float = 1e-6, directions: int = 3,
                          tolerance: float = 1e-6) -> GradcheckResult:
    """Compare analytic gradients of ``f()`` with central differences.

    Parameters
    ----------
    f : callable
        Recomputes the scalar from the current contents of the arrays in ``wrt``.
    wrt : sequence of (name, array, analytic_gradient, mask)
        Arrays are perturbed in place and restored exactly afterwards; ``mask``
        (or None) limits directions to entries that exist.
    """
    result = GradcheckResult(tolerance)
    for name, array, grad, mask in wrt:
        _require_float64(name, array)
        if grad is None or grad.shape != array.shape:
            got = None if grad is None else grad.shape
            raise ValueError(f"gradcheck: expected an analytic gradient of shape {array.shape} "
                             f"for '{name}', received {got}")
        original = array.copy()
        for _ in range(directions):
            d = rng.standard_normal(array.shape)
            if mask is not None:
                d *= mask
            try:
                array[...] = original + eps * d
                plus = f()
                array[...] = original - eps * d
                minus = f()
            finally:
                array[...] = original
            numeric = (plus - minus) / (2 * eps)
            # f(x +- eps d) carry rounding errors of a few machine epsilons of their
            # O(1) intermediate values; divided by 2 eps they are the noise floor of
            # the numeric derivative.
            noise = 16 * np.finfo(np.float64).eps * max(abs(plus), abs(minus), 1.0) / (2 * eps)
            result.entries.append(GradcheckEntry(name, float(numeric), float(np.vdot(grad, d)),
                                                 floor=float(noise / tolerance)))
    return result


def check_layer(layer: Layer, x: np.ndarray | Sequence[np.ndarray], *,
                rng: np.random.Generator | None = None, eps: float = 1e-6, directions: int = 3,
                tolerance: float = 1e-6, training: bool = True,
                prepare: Callable[[], None] | None = None) -> GradcheckResult:
    """Check a layer's input and parameter gradients.

    Parameters
    ----------
    layer : Layer
        Built with ``dtype=np.float64``.
    x : array, or list of arrays for merge layers
        float64 inputs, away from kinks (ReLU near 0, max-pooling ties).
    prepare : callable, optional
        Called before every forward pass, e.g. to reseed a Dropout layer so each
        evaluation uses the same mask.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    inputs = list(x) if isinstance(x, (list, tuple)) else [x]
    packed = isinstance(x, (list, tuple))

    def run() -> np.ndarray:
        if prepare is not None:
            prepare()
        return layer.forward(inputs if packed else inputs[0], training=training,
                             keep_for_backward=True)

    y = run()
    upstream = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(upstream)
    dxs = dx if packed else [dx]
    wrt: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]] = [
        (f"input[{i}]" if packed else "input", a, g, None) for i, (a, g) in enumerate(zip(inputs, dxs))]
    wrt += [(name, p.data, p.grad.copy(), p.mask) for name, p in layer.named_parameters()]
    return check_scalar_function(lambda: float(np.vdot(upstream, run())), wrt, rng=rng, eps=eps,
                                 directions=directions, tolerance=tolerance)


def check_model(model: Layer, loss: Any, x: np.ndarray, target: np.ndarray, *,
                rng: np.random.Generator | None = None, eps: float = 1e-6, directions: int = 3,
                tolerance: float = 1e-6, training: bool = True) -> GradcheckResult:
    """Check a whole model followed by a loss, with respect to the input and every parameter."""
    rng = rng if rng is not None else np.random.default_rng(0)

    def run() -> float:
        return loss.forward(model.forward(x, training=training, keep_for_backward=True), target)

    run()
    model.zero_grad()
    dx = model.backward(loss.backward())
    wrt = [("input", x, dx, None)]
    wrt += [(name, p.data, p.grad.copy(), p.mask) for name, p in model.named_parameters()]
    return check_scalar_function(run, wrt, rng=rng, eps=eps, directions=directions, tolerance=tolerance)


def check_loss(loss: Any, prediction: np.ndarray, target: np.ndarray, *,
               rng: np.random.Generator | None = None, eps: float = 1e-6, directions: int = 3,
               tolerance: float = 1e-6) -> GradcheckResult:
    """Check a loss's gradient with respect to its prediction."""
    rng = rng if rng is not None else np.random.default_rng(0)
    loss.forward(prediction, target)
    grad = loss.backward()
    return check_scalar_function(lambda: loss.forward(prediction, target),
                                 [("prediction", prediction, grad, None)], rng=rng, eps=eps,
                                 directions=directions, tolerance=tolerance)
