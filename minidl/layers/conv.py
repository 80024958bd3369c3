"""Conv2D: 2-D cross-correlation whose kernels span the input maps.

Output map ``o`` at ``(i, j)`` is

    bias[o] + sum_c sum_m sum_n W[o, c, m, n] * X[c, i*s + m, j*s + n]

a *sum* over every input map it is connected to. ``groups`` connects maps in
blocks (as in AlexNet's two-GPU split); ``connections`` is an arbitrary boolean
table (as in LeNet-5's C3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from minidl import init as initializers
from minidl.layers.base import Layer, float_dtype, pair, rng_from
from minidl.parameter import Parameter


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """``floor((size + 2 * padding - kernel) / stride) + 1`` (PyTorch's formula)."""
    return (size + 2 * padding - kernel) // stride + 1


class Conv2D(Layer):
    """2-D convolution (cross-correlation) over NCHW inputs.

    Parameters
    ----------
    in_channels, out_channels : int
        Number of input and output feature maps.
    kernel_size, stride, padding : int or (int, int)
        Zero padding is added on both sides.
    groups : int
        Input and output maps are split into ``groups`` blocks; output block g
        reads only input block g. ``in_channels`` and ``out_channels`` must be
        divisible by it.
    connections : array-like of bool, shape (out_channels, in_channels), optional
        Output map o reads input map c only where ``connections[o, c]``. The
        unconnected weights are held at exactly zero and initialisation uses the
        true fan-in. Requires ``groups == 1``.
    bias : bool
    weight_init : str
        Name of an initialiser in :mod:`minidl.init`.
    dtype : numpy dtype
        float32 by default; float64 for gradient checks.
    rng : numpy Generator or int seed, optional
        For the weight initialisation.

    Shape
    -----
    input ``(N, in_channels, H, W)``, output ``(N, out_channels, H_out, W_out)`` with
    ``H_out = floor((H + 2 * padding[0] - kernel_size[0]) / stride[0]) + 1`` (and
    likewise for W). ``weight``: ``(out_channels, in_channels // groups, kh, kw)``,
    ``bias``: ``(out_channels,)``.
    """

    default_name = "conv"

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0, groups: int = 1,
                 connections: Any = None, bias: bool = True,
                 weight_init: str = "he_uniform", dtype: Any = np.float32,
                 rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        owner = f"Conv2D(in_channels={in_channels!r}, out_channels={out_channels!r})"
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels),
                           ("groups", groups)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{owner}: expected {arg} to be a positive int, received {value!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = pair(kernel_size, "kernel_size", owner, 1)
        self.stride = pair(stride, "stride", owner, 1)
        self.padding = pair(padding, "padding", owner, 0)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{owner}: expected in_channels and out_channels divisible by groups={groups}, "
                f"received in_channels={in_channels}, out_channels={out_channels}")
        self.dtype = float_dtype(dtype, owner)
        self.connections = self._check_connections(connections, owner)
        self.weight_init = weight_init

        kh, kw = self.kernel_size
        shape = (out_channels, in_channels // groups, kh, kw)
        mask = None
        if self.connections is not None:
            mask = np.broadcast_to(self.connections[:, :, None, None], shape).copy()
        weight = initializers.get(weight_init)(
            shape, rng=rng_from(rng), dtype=self.dtype, groups=groups, mask=self.connections)
        self.weight = self.add_parameter("weight", Parameter(weight, "weight", mask=mask))
        self.bias = (self.add_parameter("bias", Parameter(np.zeros(out_channels, self.dtype), "bias"))
                     if bias else None)

    def _check_connections(self, connections: Any, owner: str) -> np.ndarray | None:
        if connections is None:
            return None
        table = np.asarray(connections)
        if table.dtype != bool and not (table.dtype.kind in "iu" and np.isin(table, (0, 1)).all()):
            raise ValueError(f"{owner}: expected a boolean connection table, received dtype {table.dtype}")
        table = table.astype(bool)
        if self.groups != 1:
            raise ValueError(f"{owner}: expected groups=1 with a connection table, received groups={self.groups}")
        expected = (self.out_channels, self.in_channels)
        if table.shape != expected:
            raise ValueError(f"{owner}: expected a connection table of shape {expected} "
                             f"(out_channels, in_channels), received {table.shape}")
        empty = np.flatnonzero(~table.any(axis=1))
        if empty.size:
            raise ValueError(f"{owner}: expected every output map to read at least one input map, "
                             f"received a connection table where output map(s) {empty.tolist()} read nothing")
        return table

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "in_channels": self.in_channels, "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size), "stride": list(self.stride),
            "padding": list(self.padding), "groups": self.groups,
            "connections": None if self.connections is None else self.connections.astype(int).tolist(),
            "bias": self.bias is not None, "weight_init": self.weight_init,
            "dtype": self.dtype.name}
        return config

    def _label_args(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}"

    def __repr__(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={self.kernel_size}"]
        if self.stride != (1, 1):
            parts.append(f"stride={self.stride}")
        if self.padding != (0, 0):
            parts.append(f"padding={self.padding}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.connections is not None:
            parts.append(f"connections={int(self.connections.sum())}/{self.connections.size}")
        if self.bias is None:
            parts.append("bias=False")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return f"Conv2D({', '.join(parts)})"

    # -- computation --------------------------------------------------------
    def _effective_weight(self) -> np.ndarray:
        # Multiplying by the mask makes unconnected pairs absent even if someone
        # wrote into the weight by hand; the array is tiny, so this is cheap.
        w = self.weight.data
        return w if self.weight.mask is None else w * self.weight.mask

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        x = self._check_input(x)
        n, c, h, w = x.shape
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph, pw = self.padding
        ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
        g = self.groups

        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        # im2col, transposed: rows are (channel, m, n), columns are (image, i, j).
        # Channel-major rows let each group be a contiguous block, and contiguous
        # runs along j make the gather close to a memcpy.
        cols = np.ascontiguousarray(windows.transpose(1, 4, 5, 0, 2, 3)).reshape(
            g, (c // g) * kh * kw, n * ho * wo)
        wmat = self._effective_weight().reshape(g, self.out_channels // g, -1)
        out = np.matmul(wmat, cols).reshape(self.out_channels, n * ho * wo)
        if self.bias is not None:
            out += self.bias.data[:, None]
        self._cache = (cols, x.shape)
        return np.ascontiguousarray(out.reshape(self.out_channels, n, ho, wo).transpose(1, 0, 2, 3))

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        cols, (n, c, h, w) = self._saved()
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph, pw = self.padding
        g = self.groups
        ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
        self._check_dy(dy, (n, self.out_channels, ho, wo))

        dy_t = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(g, self.out_channels // g, -1)
        if self.bias is not None:
            self.bias.grad += dy_t.sum(axis=2).reshape(-1)
        dw = np.matmul(dy_t, cols.transpose(0, 2, 1)).reshape(self.weight.shape)
        if self.weight.mask is not None:
            dw *= self.weight.mask
        self.weight.grad += dw
        if not input_grad:
            return None

        wmat = self._effective_weight().reshape(g, self.out_channels // g, -1)
        dcols = np.matmul(wmat.transpose(0, 2, 1), dy_t).reshape(c, kh, kw, n, ho, wo)
        # Scatter the columns back: one vectorised slice-add per kernel offset,
        # which sums overlapping windows correctly without np.add.at.
        dxp = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=dy.dtype)
        for m in range(kh):
            rows = slice(m, m + sh * (ho - 1) + 1, sh)
            for k in range(kw):
                dxp[:, :, rows, k:k + sw * (wo - 1) + 1:sw] += dcols[:, m, k]
        return np.ascontiguousarray(dxp[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3))

    def _check_input(self, x: Any) -> np.ndarray:
        c = self.in_channels
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != c:
            got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"{self.label()}: expected input of shape (N, {c}, H, W), received {got}")
        self._check_float(x, self.dtype)
        kh, kw = self.kernel_size
        ph, pw = self.padding
        hp, wp = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
        if hp < kh or wp < kw:
            raise ValueError(
                f"{self.label()}: expected input at least {kh}x{kw} after padding {self.padding} "
                f"(kernel_size {self.kernel_size}), received {x.shape[2]}x{x.shape[3]} "
                f"({hp}x{wp} after padding)")
        if x.shape[0] == 0:
            raise ValueError(f"{self.label()}: expected a batch of at least one image, received {x.shape}")
        return x
