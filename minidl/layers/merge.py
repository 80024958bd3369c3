"""Layers that join branches of a Graph: Add and Concat.

They take a *list* of inputs and return a list of input gradients.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from minidl.layers.base import Layer, keeps


class AddCache(NamedTuple):
    count: int                   #: number of inputs
    shape: tuple[int, ...]       #: their (common) shape


class ConcatCache(NamedTuple):
    axis: int                    #: the (non-negative) axis joined along
    splits: np.ndarray           #: where each input ends along it, but the last
    shape: tuple[int, ...]       #: the output's shape


class _Merge(Layer):
    """Base of the joins; its name starts with ``_`` so no description can name it."""

    per_example = True

    #: Graph nodes with several inputs need a layer that takes a list.
    takes_list = True

    def _check_inputs(self, xs: Any) -> list[np.ndarray]:
        if not isinstance(xs, (list, tuple)) or len(xs) < 2:
            got = f"{len(xs)} input(s)" if isinstance(xs, (list, tuple)) else type(xs).__name__
            raise ValueError(f"{self.label()}: expected a list of at least 2 arrays, received {got}")
        for x in xs:
            self._check_float(x)
        return list(xs)



class Add(_Merge):
    """Element-wise sum of its inputs (a residual connection's join).

    Shape
    -----
    every input has the same shape; the output has it too.
    """

    default_name = "add"

    def forward(self, xs: Sequence[np.ndarray], training: bool = True,  # type: ignore[override]
                keep_for_backward: bool | None = None) -> np.ndarray:
        xs = self._check_inputs(xs)
        shapes = [x.shape for x in xs]
        if len(set(shapes)) != 1:
            raise ValueError(f"{self.label()}: expected inputs of one shape, received {shapes}")
        self._cache = AddCache(len(xs), shapes[0]) if keeps(training, keep_for_backward) else None
        out = xs[0] + xs[1]
        for x in xs[2:]:
            out += x
        return out

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> list[np.ndarray] | None:  # type: ignore[override]
        count, shape = self._saved()
        self._check_dy(dy, shape)
        # Each input receives the whole upstream gradient.
        return [dy] * count if input_grad else None


class Concat(_Merge):
    """Concatenate inputs along ``axis`` (channels by default).

    Shape
    -----
    inputs ``(N, C_i, ...)`` equal except along ``axis``; output ``(N, sum C_i, ...)``.
    """

    default_name = "concat"

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        if not isinstance(axis, int) or isinstance(axis, bool) or axis == 0:
            raise ValueError(f"Concat: expected a non-batch axis (an int other than 0), received {axis!r}")
        self.axis = axis

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def forward(self, xs: Sequence[np.ndarray], training: bool = True,  # type: ignore[override]
                keep_for_backward: bool | None = None) -> np.ndarray:
        xs = self._check_inputs(xs)
        ndims = {x.ndim for x in xs}
        if len(ndims) != 1 or not -xs[0].ndim <= self.axis < xs[0].ndim:
            raise ValueError(f"{self.label()}: expected inputs of equal rank with axis {self.axis}, "
                             f"received shapes {[x.shape for x in xs]}")
        axis = self.axis % xs[0].ndim
        rest = {x.shape[:axis] + x.shape[axis + 1:] for x in xs}
        if len(rest) != 1:
            raise ValueError(f"{self.label()}: expected shapes equal except along axis {self.axis}, "
                             f"received {[x.shape for x in xs]}")
        sizes = [x.shape[axis] for x in xs]
        out = np.concatenate(xs, axis=axis)
        self._cache = (ConcatCache(axis, np.cumsum(sizes)[:-1], out.shape)
                       if keeps(training, keep_for_backward) else None)
        return out

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> list[np.ndarray] | None:  # type: ignore[override]
        axis, splits, shape = self._saved()
        self._check_dy(dy, shape)
        return np.split(dy, splits, axis=axis) if input_grad else None
