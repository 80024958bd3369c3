"""Max and average pooling over NCHW inputs.

Pooling keeps the number of maps: each map is pooled on its own, so it does not
change how the next convolution connects maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from minidl.layers.base import Layer, pair
from minidl.layers.conv import conv_output_size


class _Pool2D(Layer):
    default_name = "pool"

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        owner = f"{type(self).__name__}(kernel_size={kernel_size!r})"
        self.kernel_size = pair(kernel_size, "kernel_size", owner, 1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", owner, 1)
        self.padding = pair(padding, "padding", owner, 0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{owner}: expected padding at most half the kernel size "
                             f"{tuple(k // 2 for k in self.kernel_size)}, received {self.padding}")

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}

    def __repr__(self) -> str:
        extra = "" if self.padding == (0, 0) else f", padding={self.padding}"
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}{extra})"

    def _geometry(self, x: Any) -> tuple[int, int]:
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"{self.label()}: expected input of shape (N, C, H, W), received {got}")
        self._check_float(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        h, w = x.shape[2:]
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(
                f"{self.label()}: expected input at least {kh}x{kw} after padding {self.padding}, "
                f"received {h}x{w}: the pooling window does not fit")
        return conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)

    def _tiles(self) -> bool:
        """True when windows tile the input exactly: no overlap, no padding."""
        return self.stride == self.kernel_size and self.padding == (0, 0)

    def _check_dy(self, dy: Any, expected: tuple[int, ...]) -> None:
        if not isinstance(dy, np.ndarray) or dy.shape != expected:
            got = dy.shape if isinstance(dy, np.ndarray) else type(dy).__name__
            raise ValueError(f"{self.label()}: expected a gradient of shape {expected}, received {got}")


class MaxPool2D(_Pool2D):
    """Max pooling; the gradient of a window goes to its first maximum.

    "First" is in row-major order within the window, as in PyTorch and Caffe.
    This matters on MNIST, whose flat regions make ties common. Padding counts
    as minus infinity, so it is never selected.

    Shape
    -----
    input ``(N, C, H, W)``, output ``(N, C, H_out, W_out)`` with
    ``H_out = floor((H + 2 * padding - kernel_size) / stride) + 1``;
    ``stride`` defaults to ``kernel_size``.
    """

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        ho, wo = self._geometry(x)
        n, c = x.shape[:2]
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if self._tiles():
            # Non-overlapping fast path: a reshape exposes the windows.
            tiles = x[:, :, :ho * kh, :wo * kw].reshape(n, c, ho, kh, wo, kw)
            windows = tiles.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, kh * kw)
        else:
            xp = x
            if ph or pw:
                xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
            windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
            windows = windows.reshape(n, c, ho, wo, kh * kw)
        # argmax returns the first maximum in row-major window order.
        index = windows.argmax(axis=-1)
        out = np.take_along_axis(windows, index[..., None], axis=-1)[..., 0]
        self._cache = (index.astype(np.int32 if kh * kw > 127 else np.int8), x.shape, x.dtype)
        return out

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        index, shape, dtype = self._saved()
        n, c, h, w = shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = index.shape[2:]
        self._check_dy(dy, (n, c, ho, wo))
        if not input_grad:
            return None
        if self._tiles():
            onehot = index[..., None] == np.arange(kh * kw, dtype=index.dtype)
            dwin = (onehot * dy[..., None].astype(dtype, copy=False)).reshape(n, c, ho, wo, kh, kw)
            dx = np.zeros(shape, dtype=dtype)
            dx[:, :, :ho * kh, :wo * kw] = dwin.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho * kh, wo * kw)
            return dx
        dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dtype)
        for m in range(kh):
            rows = slice(m, m + sh * (ho - 1) + 1, sh)
            for k in range(kw):
                dxp[:, :, rows, k:k + sw * (wo - 1) + 1:sw] += np.where(index == m * kw + k, dy, 0)
        return dxp[:, :, ph:ph + h, pw:pw + w].copy() if ph or pw else dxp


class AvgPool2D(_Pool2D):
    """Average pooling; zero padding counts in the average (PyTorch's default).

    Shape
    -----
    input ``(N, C, H, W)``, output ``(N, C, H_out, W_out)`` with
    ``H_out = floor((H + 2 * padding - kernel_size) / stride) + 1``;
    ``stride`` defaults to ``kernel_size``.
    """

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        ho, wo = self._geometry(x)
        n, c = x.shape[:2]
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        self._cache = (x.shape, x.dtype, (ho, wo))
        if self._tiles():
            tiles = x[:, :, :ho * kh, :wo * kw].reshape(n, c, ho, kh, wo, kw)
            return tiles.mean(axis=(3, 5), dtype=x.dtype)
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        return windows.mean(axis=(4, 5), dtype=x.dtype)

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        shape, dtype, (ho, wo) = self._saved()
        n, c, h, w = shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        self._check_dy(dy, (n, c, ho, wo))
        if not input_grad:
            return None
        share = (dy / (kh * kw)).astype(dtype, copy=False)
        dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dtype)
        for m in range(kh):
            rows = slice(m, m + sh * (ho - 1) + 1, sh)
            for k in range(kw):
                dxp[:, :, rows, k:k + sw * (wo - 1) + 1:sw] += share
        return dxp[:, :, ph:ph + h, pw:pw + w].copy() if ph or pw else dxp
