"""Max and average pooling over NCHW inputs.

Pooling keeps the number of maps: each map is pooled on its own, so it does not
change how the next convolution connects maps.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from minidl import checks
from minidl.layers.base import Layer, is_channel_major, keeps, zeros_nchw
from minidl.layers.conv import conv_output_size


class MaxPoolCache(NamedTuple):
    """What MaxPool2D.backward needs from forward."""

    #: ``(N, C, H_out, W_out)`` int8/int32: which kernel offset ``m * kw + n`` of each
    #: window held its first maximum.
    index: np.ndarray
    input_shape: tuple[int, int, int, int]


class AvgPoolCache(NamedTuple):
    """What AvgPool2D.backward needs from forward: only the input's shape."""

    input_shape: tuple[int, int, int, int]


class _Pool2D(Layer):
    default_name = "pool"

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        owner = f"{type(self).__name__}(kernel_size={kernel_size!r})"
        self.kernel_size = checks.pair(kernel_size, "kernel_size", owner, 1)
        self.stride = self.kernel_size if stride is None else checks.pair(stride, "stride", owner, 1)
        self.padding = checks.pair(padding, "padding", owner, 0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{owner}: expected padding at most half the kernel size "
                             f"{tuple(k // 2 for k in self.kernel_size)}, received {self.padding}")

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}

    def __repr__(self) -> str:
        extra = "" if self.padding == (0, 0) else f", padding={self.padding}"
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}{extra})"

    def _overlapping(self) -> bool:
        return any(s < k for s, k in zip(self.stride, self.kernel_size))

    def _geometry(self, x: Any) -> tuple[int, int]:
        x = self._check_images(x)
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        h, w = x.shape[2:]
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(
                f"{self.label()}: expected input at least {kh}x{kw} after padding {self.padding}, "
                f"received {h}x{w}: the pooling window does not fit")
        return self._output_hw(h, w)

    def _output_hw(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)

    def _pad(self, x: np.ndarray, value: float) -> np.ndarray:
        (ph, pw) = self.padding
        if not (ph or pw):
            return x
        n, c, h, w = x.shape
        xp = zeros_nchw((n, c, h + 2 * ph, w + 2 * pw), x.dtype, is_channel_major(x))
        if value:
            xp[...] = value
        xp[:, :, ph:ph + h, pw:pw + w] = x
        return xp

    def _unpad(self, dxp: np.ndarray, h: int, w: int) -> np.ndarray:
        (ph, pw) = self.padding
        return dxp[:, :, ph:ph + h, pw:pw + w] if ph or pw else dxp


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

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        ho, wo = self._geometry(x)
        xp = self._pad(x, -np.inf)
        # One strided view per kernel offset, each the size of the output: a running
        # maximum over kh * kw views is far cheaper than gathering windows.
        views = _offset_views(xp, self.kernel_size, self.stride, (ho, wo))
        out = views[0].copy(order="K")  # keeps a channel-major input channel-major
        if not keeps(training, keep_for_backward):
            self._cache = None
            for view in views[1:]:
                np.maximum(out, view, out=out)
            return out
        index = np.zeros_like(out, dtype=np.int8 if len(views) < 128 else np.int32)
        for k, view in enumerate(views[1:], start=1):
            # Strictly greater: a later equal value never displaces the first maximum.
            better = view > out
            index += better * (k - index)  # arithmetic: much faster than np.where/copyto
            np.maximum(out, view, out=out)
        self._cache = MaxPoolCache(index, x.shape)
        return out

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        index, (n, c, h, w) = self._saved()
        self._check_dy(dy, index.shape)
        if not input_grad:
            return None
        (ph, pw) = self.padding
        dxp = zeros_nchw((n, c, h + 2 * ph, w + 2 * pw), dy.dtype, is_channel_major(dy))
        overlap = self._overlapping()
        for k, view in enumerate(_offset_views(dxp, self.kernel_size, self.stride, index.shape[2:])):
            routed = dy * (index == k)
            if overlap:
                view += routed
            else:  # each input pixel is in at most one window
                view[...] = routed
        return self._unpad(dxp, h, w)


def _offset_views(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                  out_hw: tuple[int, int]) -> list[np.ndarray]:
    """``views[m * kw + n][..., i, j] is x[..., i * sh + m, j * sw + n]`` (writable views)."""
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    return [x[:, :, m:m + sh * (ho - 1) + 1:sh, k:k + sw * (wo - 1) + 1:sw]
            for m in range(kh) for k in range(kw)]


class AvgPool2D(_Pool2D):
    """Average pooling; zero padding counts in the average (PyTorch's default).

    Shape
    -----
    input ``(N, C, H, W)``, output ``(N, C, H_out, W_out)`` with
    ``H_out = floor((H + 2 * padding - kernel_size) / stride) + 1``;
    ``stride`` defaults to ``kernel_size``.
    """

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        ho, wo = self._geometry(x)
        (kh, kw) = self.kernel_size
        views = _offset_views(self._pad(x, 0.0), self.kernel_size, self.stride, (ho, wo))
        out = views[0].copy(order="K")
        for view in views[1:]:
            out += view
        out *= x.dtype.type(1 / (kh * kw))
        self._cache = AvgPoolCache(x.shape) if keeps(training, keep_for_backward) else None
        return out

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        (n, c, h, w), = self._saved()
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        ho, wo = self._output_hw(h, w)
        self._check_dy(dy, (n, c, ho, wo))
        if not input_grad:
            return None
        share = dy * dy.dtype.type(1 / (kh * kw))
        dxp = zeros_nchw((n, c, h + 2 * ph, w + 2 * pw), dy.dtype, is_channel_major(dy))
        overlap = self._overlapping()
        for view in _offset_views(dxp, self.kernel_size, self.stride, (ho, wo)):
            if overlap:
                view += share
            else:
                view[...] = share
        return self._unpad(dxp, h, w)
