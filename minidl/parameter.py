"""Parameter: a trainable array and the gradient accumulated for it."""

from __future__ import annotations

import numpy as np


class Parameter:
    """A trainable array with a gradient of the same shape and dtype.

    Backward passes *add* into ``grad`` (``grad += ...``), so a parameter used
    twice in one graph receives the sum of both contributions; call
    ``zero_grad()`` (or the optimizer's) before each backward pass.

    Parameters
    ----------
    data : np.ndarray
        The initial value. Stored as given (no copy) so initialisers can fill it.
    name : str, optional
        A human-readable name, used in error messages and ``repr``.
    mask : np.ndarray of bool, optional
        Same shape as ``data``; where False the entry is structurally zero
        (an unconnected weight of a connection table). The optimizers keep such
        entries at exactly zero.
    """

    def __init__(self, data: np.ndarray, name: str | None = None,
                 mask: np.ndarray | None = None) -> None:
        data = np.asarray(data)
        if data.dtype.kind != "f":
            raise ValueError(
                f"Parameter{'(' + name + ')' if name else ''}: expected a floating-point "
                f"array, received dtype {data.dtype}")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != data.shape:
                raise ValueError(
                    f"Parameter{'(' + name + ')' if name else ''}: expected a mask of shape "
                    f"{data.shape}, received {mask.shape}")
            data *= mask
        self.data = data
        self.grad = np.zeros_like(data)
        self.name = name
        self.mask = mask

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        """Number of trainable entries (masked-out entries are not counted)."""
        return int(self.mask.sum()) if self.mask is not None else int(self.data.size)

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        label = f"{self.name}, " if self.name else ""
        return f"Parameter({label}shape={self.data.shape}, dtype={self.data.dtype})"
