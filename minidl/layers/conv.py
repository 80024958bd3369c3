"""Conv2D: 2-D cross-correlation whose kernels span the input maps.

Output map ``o`` at ``(i, j)`` is

    bias[o] + sum_c sum_m sum_n W[o, c, m, n] * X[c, i*s + m, j*s + n]

a *sum* over every input map it is connected to. ``groups`` connects maps in
blocks (as in AlexNet's two-GPU split); ``connections`` is an arbitrary boolean
table (as in LeNet-5's C3).

Two algorithms compute it: im2col (here: gathered columns times the weights, in
cache-sized pieces of the batch) and, for stride 1 where it costs less, products
in the frequency domain (:mod:`minidl.layers.conv_fft`); see Conv2D.algorithm.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minidl import checks, parallel
from minidl import init as initializers
from minidl.layers import conv_fft
from minidl.layers.base import Layer, keeps
from minidl.parameter import Parameter


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """``floor((size + 2 * padding - kernel) / stride) + 1`` (PyTorch's formula)."""
    return (size + 2 * padding - kernel) // stride + 1


class ConvCache(NamedTuple):
    """What Conv2D.backward needs from forward."""

    #: the input, zero-padded and channel-major: ``(C, N, H + 2 ph, W + 2 pw)``. Backward
    #: gathers the im2col columns again from it, chunk by chunk, rather than keeping
    #: them: they are ``kh * kw`` times larger and would not stay in cache.
    padded: np.ndarray
    #: the input's shape ``(N, C, H, W)``.
    input_shape: tuple[int, int, int, int]


class FFTConvCache(NamedTuple):
    """What Conv2D.backward needs from a forward pass through the Fourier transform."""

    #: the input's spectrum, ``(frequencies, groups, C // groups, N)`` (see conv_fft).
    input_spectrum: np.ndarray
    #: the weights' spectrum, ``(frequencies, groups, O // groups, C // groups)``.
    kernel_spectrum: np.ndarray
    input_shape: tuple[int, int, int, int]


def _im2col(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
            out_hw: tuple[int, int], groups: int) -> np.ndarray:
    """The columns of a channel-major padded chunk, in a per-thread scratch buffer.

    Shape
    -----
    ``xp`` ``(C, n, Hp, Wp)``; returns ``(groups, C // groups * kh * kw, n * H_out * W_out)``:
    row ``(c, m, k)``, column ``(image, i, j)`` holds ``xp[c, image, i*sh + m, j*sw + k]``.
    Channel-major rows make each group a contiguous block of rows; image-major columns make
    ``W @ cols`` the output already in ``(C, N, H, W)`` memory order.
    """
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    c, n = xp.shape[:2]
    # The windows as a view (c, m, k, image, i, j) -> xp[c, image, i*sh + m, j*sw + k],
    # built directly: sliding_window_view's checks cost more than a small chunk's copy.
    sc, sn, sy, sx = xp.strides
    windows = as_strided(xp, (c, kh, kw, n, ho, wo), (sc, sy, sx, sn, sy * sh, sx * sw),
                         writeable=False)
    cols = parallel.scratch("cols", (c, kh, kw, n, ho, wo), xp.dtype)
    np.copyto(cols, windows)
    return cols.reshape(groups, c // groups * kh * kw, n * ho * wo)


def _product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out = a @ b`` (2-D), letting the other worker run meanwhile.

    np.matmul keeps the GIL for a result of at most 500 numbers (NumPy releases it
    above that size), as LeNet's first weight gradient, 25 x 6: the other worker then
    waits the whole product. np.dot always releases it, but takes a slow path when an
    operand is not contiguous as a whole, as a piece of dy (``b``, transposed) is:
    so ``b`` is copied first, which for LeNet's conv1 costs a twentieth of what it
    saves. Once the result is larger, np.matmul needs no copy and is used.
    """
    if out.size <= 500:
        np.dot(a, np.ascontiguousarray(b.T).T, out=out)
    else:
        np.matmul(a, b, out=out)


def _correlate(x_cm: np.ndarray, wmat: np.ndarray, kernel: tuple[int, int],
               stride: tuple[int, int], padding: tuple[int, int], padded: np.ndarray | None,
               out: np.ndarray, bias: np.ndarray | None = None) -> None:
    """``out = wmat (*) pad(x_cm) + bias``, the cross-correlation, chunk by chunk of the batch.

    Each chunk copies its share of the input into ``padded``'s interior, gathers its
    im2col columns and multiplies them by each group's weights straight into ``out``.

    Shape
    -----
    ``x_cm`` ``(C, N, H, W)``; ``wmat`` ``(groups, O // groups, C // groups * kh * kw)``;
    ``padded`` ``(C, N, H + 2 ph, W + 2 pw)`` with zero borders, or None when ``padding``
    is 0; ``out`` ``(O, N, H_out, W_out)``, written; ``bias`` ``(O,)`` or None.
    """
    (kh, kw), (ph, pw) = kernel, padding
    c, n, h, w = x_cm.shape
    g, og = wmat.shape[:2]
    ho, wo = out.shape[2:]
    xp = x_cm if padded is None else padded
    outs = out.reshape(g, og, n, ho * wo)
    column_bias = None if bias is None else bias[:, None, None, None]

    def chunk(start: int, stop: int) -> None:
        if padded is not None:  # the chunk's share of the padding copy
            padded[:, start:stop, ph:ph + h, pw:pw + w] = x_cm[:, start:stop]
        cols = _im2col(xp[:, start:stop], kernel, stride, (ho, wo), g)
        for group in range(g):
            np.matmul(wmat[group], cols[group],
                      out=outs[group, :, start:stop].reshape(og, -1))
        if column_bias is not None:
            out[:, start:stop] += column_bias

    parallel.run(chunk, parallel.chunks(n, c * kh * kw * ho * wo * x_cm.itemsize))


def _input_grad_wide(wmat: np.ndarray, dy: np.ndarray, dxp: np.ndarray,
                     kernel: tuple[int, int]) -> None:
    """Write a stride-1 convolution's input gradient for a chunk of the batch into ``dxp``.

    Each ``dy`` row is stretched to the padded width ``Wp`` with zeros, so that tap
    ``(m, k)`` carries output position ``j`` of a row to ``j + k`` of the same row. The
    columns' gradient ``W^T @ dy`` over these wide rows then lines up with the input's
    columns after a shift of ``k``: a strided view sums the ``kw`` taps of each kernel
    row in one NumPy call, and ``kh`` slice-adds place the kernel rows. (Widening the
    rows alone costs ``Wp / W_out`` times the product; also padding every image to
    ``Hp`` rows, to sum all taps in one call, cost ``Hp / H_out`` times more again.)

    Shape
    -----
    ``wmat`` ``(groups, O // groups, C // groups * kh * kw)``; ``dy`` ``(groups,
    O // groups, n, H_out, W_out)``; ``dxp`` ``(C, n, Hp, Wp)``, written: the padded
    input's gradient.
    """
    (kh, kw), (g, og, n, ho, wo) = kernel, dy.shape
    c, _, _, wp = dxp.shape
    rows = parallel.scratch("dy_rows", (g, og, n, ho, wp), dy.dtype)
    rows[..., :wo] = dy
    rows[..., wo:] = 0
    # Row (c, m, k) of ``grads`` is read k places back: the kw - 1 zeros before the first
    # image stand for the row's left edge (later rows find their zeros at the right end
    # of the row before, where dy was widened).
    lead = kw - 1
    grads = parallel.scratch("dcols", (g, wmat.shape[2], lead + n * ho * wp), dy.dtype)
    grads[..., :lead] = 0
    for group in range(g):
        np.matmul(wmat[group].T, rows[group].reshape(og, -1), out=grads[group, :, lead:])
    # taps[c, m, q, k] = grads[(c, m, k), lead + q - k], q indexing (image, row, column)
    grads = grads.reshape(c * kh * kw, -1)
    row, item = grads.strides
    taps = as_strided(grads[:, lead:], (c, kh, n * ho * wp, kw),
                      (kh * kw * row, kw * row, item, row - item), writeable=False)
    kernel_rows = parallel.scratch("kernel_rows", (c, kh, n, ho, wp), dy.dtype)
    np.add.reduce(taps, axis=3, out=kernel_rows.reshape(c, kh, -1))
    dxp[:, :, :ho] = kernel_rows[:, 0]
    dxp[:, :, ho:] = 0
    for m in range(1, kh):
        dxp[:, :, m:m + ho] += kernel_rows[:, m]


#: What transforming one grid point of one map costs, counted in multiply-adds of
#: the direct sum (see Conv2D.uses_fft).
FFT_TRANSFORM_COST = 130


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

    Attributes
    ----------
    algorithm : {"auto", "im2col", "fft"}
        How the sums are computed: gathered im2col columns times the weights, or
        (stride 1 only) products in the frequency domain (:mod:`minidl.layers.conv_fft`),
        which need several times fewer multiplications for many maps and larger
        kernels. ``"auto"`` (default) takes the Fourier transform where it costs
        less (:meth:`uses_fft`). Both compute the same function, to rounding; a
        setting of the computation, it is in neither the config nor the state dict.

    Shape
    -----
    input ``(N, in_channels, H, W)``, output ``(N, out_channels, H_out, W_out)`` with
    ``H_out = floor((H + 2 * padding[0] - kernel_size[0]) / stride[0]) + 1`` (and
    likewise for W). ``weight``: ``(out_channels, in_channels // groups, kh, kw)``,
    ``bias``: ``(out_channels,)``.
    """

    per_example = True

    default_name = "conv"
    #: The values ``algorithm`` accepts.
    ALGORITHMS = ("auto", "im2col", "fft")

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0, groups: int = 1,
                 connections: Any = None, bias: bool = True,
                 weight_init: str = "he_uniform", dtype: Any = np.float32,
                 rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        owner = f"Conv2D(in_channels={in_channels!r}, out_channels={out_channels!r})"
        self.in_channels = checks.integer(in_channels, "in_channels", owner, minimum=1)
        self.out_channels = checks.integer(out_channels, "out_channels", owner, minimum=1)
        self.groups = checks.integer(groups, "groups", owner, minimum=1)
        self.kernel_size = checks.pair(kernel_size, "kernel_size", owner, 1)
        self.stride = checks.pair(stride, "stride", owner, 1)
        self.padding = checks.pair(padding, "padding", owner, 0)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{owner}: expected in_channels and out_channels divisible by groups={groups}, "
                f"received in_channels={in_channels}, out_channels={out_channels}")
        self.dtype = checks.float_dtype(dtype, owner)
        self.connections = self._check_connections(connections, owner)
        self.weight_init = weight_init
        self.algorithm = "auto"

        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        mask = None
        if self.connections is not None:
            mask = np.broadcast_to(self.connections[:, :, None, None], shape).copy()
        weight = initializers.get(weight_init)(
            shape, rng=checks.rng_from(rng, owner), dtype=self.dtype, groups=self.groups,
            mask=self.connections)
        self.weight = Parameter(weight, "weight", mask=mask)
        self.bias = Parameter(np.zeros(self.out_channels, self.dtype), "bias") if bias else None
        # Zero-bordered padded copies reused from call to call ("input" for forward passes
        # that keep nothing, "grad" for the input gradient): only interiors are rewritten,
        # where np.pad would allocate and clear a new array each time.
        self._reused: dict[str, np.ndarray] = {}

    def _check_connections(self, connections: Any, owner: str) -> np.ndarray | None:
        if connections is None:
            return None
        if self.groups != 1:
            raise ValueError(f"{owner}: expected groups=1 with a connection table, "
                             f"received groups={self.groups}")
        table = checks.connection_table(connections, (self.out_channels, self.in_channels),
                                        owner, axes="(out_channels, in_channels)")
        empty = np.flatnonzero(~table.any(axis=1))
        if empty.size:
            raise ValueError(f"{owner}: expected every output map to read at least one input "
                             f"map, received a connection table where output map(s) "
                             f"{empty.tolist()} read nothing")
        return table

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @algorithm.setter
    def algorithm(self, algorithm: str) -> None:
        algorithm = checks.one_of(algorithm, self.ALGORITHMS, "algorithm", self.label())
        if algorithm == "fft" and self.stride != (1, 1):
            raise ValueError(f"{self.label()}: expected stride (1, 1) for algorithm='fft', "
                             f"received stride {self.stride}")
        self._algorithm = algorithm

    def uses_fft(self, input_shape: tuple[int, int, int, int]) -> bool:
        """Whether an input of shape ``(N, C, H, W)`` goes through the Fourier transform."""
        if self._algorithm != "auto":
            return self._algorithm == "fft"
        if self.stride != (1, 1):
            return False
        # In multiply-adds of the direct sum: the direct sum against the frequency
        # products (4 real for each complex one) plus the transforms and the reordering
        # around them, about FFT_TRANSFORM_COST per grid point of each map transformed:
        # input and output maps of every image, and the kernels once per batch (so a
        # batch of a few images, as the inspection tools pass, stays with im2col).
        # Fitted on forward and backward passes of the benchmark nets' layers at batch
        # 128, which it sends the faster way: 80sec's conv2 and conv3 to the transform;
        # conv1s, LeNet's layers, and 3x3 kernels on 8x8 maps to im2col.
        n, _, h, w = input_shape
        (kh, kw), g = self.kernel_size, self.groups
        fh, fw = conv_fft.grid_size((h, w), self.padding)
        ho, wo = self._output_hw(h, w)
        pairs = self.out_channels * (self.in_channels // g)
        direct = n * pairs * kh * kw * ho * wo
        maps = n * (self.in_channels + self.out_channels) + pairs
        transform = n * 4 * pairs * fh * (fw // 2 + 1) + FFT_TRANSFORM_COST * maps * fh * fw
        return direct >= transform

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

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        x = self._check_input(x)
        n, c, h, w = x.shape
        g = self.groups
        ho, wo = self._output_hw(h, w)
        keep = keeps(training, keep_for_backward)
        x_cm = x.transpose(1, 0, 2, 3)                          # (C, N, H, W): a view
        if self.uses_fft(x.shape):
            return self._forward_fft(x_cm, keep)
        padded = None
        if self.padding != (0, 0):
            # Kept for backward, the padded input must be our own; otherwise reuse a buffer.
            padded = self._padded_buffer("input", x_cm.shape, self.padding, x.dtype, fresh=keep)
        wmat = self._effective_weight().reshape(g, self.out_channels // g, -1)
        out = np.empty((self.out_channels, n, ho, wo), x.dtype)
        _correlate(x_cm, wmat, self.kernel_size, self.stride, self.padding, padded, out,
                   None if self.bias is None else self.bias.data)
        self._cache = ConvCache(x_cm if padded is None else padded, x.shape) if keep else None
        return out.transpose(1, 0, 2, 3)                      # logical NCHW, no copy

    def _forward_fft(self, x_cm: np.ndarray, keep: bool) -> np.ndarray:
        """forward's output through the Fourier transform (see conv_fft); the spectra are
        what backward needs."""
        c, n, h, w = x_cm.shape
        size = conv_fft.grid_size((h, w), self.padding)
        kernels = conv_fft.kernel_spectrum(self._effective_weight(), self.groups,
                                           self.padding, size)
        inputs = conv_fft.spectrum(x_cm, size, self.groups)
        out = np.empty((self.out_channels, n) + self._output_hw(h, w), x_cm.dtype)
        conv_fft.from_spectrum(conv_fft.products(kernels.conj(), inputs, reuse="fft_out"),
                               size, out.shape[2:], out,
                               None if self.bias is None else self.bias.data)
        self._cache = FFTConvCache(inputs, kernels, (n, c, h, w)) if keep else None
        return out.transpose(1, 0, 2, 3)

    def _backward_fft(self, dy_cm: np.ndarray, input_grad: bool) -> np.ndarray | None:
        """backward through the Fourier transform, from what _forward_fft kept."""
        inputs, kernels, (n, c, h, w) = self._cache
        size = conv_fft.grid_size((h, w), self.padding)
        grads = conv_fft.spectrum(dy_cm, size, self.groups, reuse="fft_grads")
        conjugate = np.conjugate(grads, out=parallel.scratch("fft_conj", grads.shape, grads.dtype))
        dw_spectrum = conv_fft.products(conjugate, inputs.swapaxes(2, 3))
        dw = conv_fft.taps_from_grid(dw_spectrum, self.kernel_size, self.padding, size)
        if self.weight.mask is not None:
            dw = dw * self.weight.mask
        self.weight.grad += dw
        if not input_grad:
            return None
        dx = np.empty((c, n, h, w), dy_cm.dtype)
        conv_fft.from_spectrum(conv_fft.products(kernels.swapaxes(2, 3), grads, reuse="fft_out"),
                               size, (h, w), dx)
        return dx.transpose(1, 0, 2, 3)

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        cache = self._saved()
        n, c, h, w = cache.input_shape
        ho, wo = self._output_hw(h, w)
        self._check_dy(dy, (n, self.out_channels, ho, wo))
        # Free when dy is channel-major in memory (as a convolution's output is).
        dy_cm = np.ascontiguousarray(dy.transpose(1, 0, 2, 3))   # (O, N, H_out, W_out)
        if self.bias is not None:
            self.bias.grad += dy_cm.reshape(self.out_channels, -1).sum(axis=1)
        if isinstance(cache, FFTConvCache):
            return self._backward_fft(dy_cm, input_grad)

        xp = cache.padded
        (kh, kw), (sh, sw), (ph, pw), g = self.kernel_size, self.stride, self.padding, self.groups
        og = self.out_channels // g
        dys = dy_cm.reshape(g, og, n, ho * wo)
        wmat = self._effective_weight().reshape(g, og, -1)
        pieces = parallel.chunks(n, c * kh * kw * ho * wo * dy.itemsize)
        # dW transposed, (columns) @ (dy)^T: the long side of the product is then its
        # rows, which BLAS runs half again as fast as the other way round.
        partial_dw = np.empty((len(pieces), g, wmat.shape[2], og), dy.dtype)
        # dx, by the cheaper of two ways (measured on the benchmark's nets): with stride 1
        # and no more output maps than input maps, a correlation of dy after the weight
        # gradient; otherwise the columns' gradient scattered back in the same chunks.
        stride1 = (sh, sw) == (1, 1)
        correlate = (input_grad and stride1 and self.out_channels <= self.in_channels
                     and (ph, pw) <= (kh - 1, kw - 1))
        dxp = None
        if stride1 and input_grad and not correlate:
            dxp = np.empty(xp.shape, dy.dtype)  # written whole by _input_grad_wide
        elif input_grad and not correlate:
            dxp = np.zeros(xp.shape, dy.dtype)  # the columns' gradient is added into it

        def chunk(index: int, start: int, stop: int) -> None:
            cols = _im2col(xp[:, start:stop], self.kernel_size, self.stride, (ho, wo), g)
            dyk = dys[:, :, start:stop].reshape(g, og, -1)
            for group in range(g):
                _product(cols[group], dyk[group].T, partial_dw[index, group])
            if dxp is None:
                return
            if stride1:
                _input_grad_wide(wmat, dyk.reshape(g, og, stop - start, ho, wo),
                                 dxp[:, start:stop], self.kernel_size)
                return
            dcols = parallel.scratch("dcols", cols.shape, dy.dtype)
            for group in range(g):
                np.matmul(wmat[group].T, dyk[group], out=dcols[group])
            # Scatter the columns back: one vectorised slice-add per kernel offset,
            # which sums overlapping windows correctly without np.add.at.
            dcols = dcols.reshape(c, kh, kw, stop - start, ho, wo)
            target = dxp[:, start:stop]
            for m in range(kh):
                rows = slice(m, m + sh * (ho - 1) + 1, sh)
                for k in range(kw):
                    target[:, :, rows, k:k + sw * (wo - 1) + 1:sw] += dcols[:, m, k]

        parallel.run(chunk, [(i, start, stop) for i, (start, stop) in enumerate(pieces)])
        # Summed in chunk order, so the result does not depend on which thread ran what.
        dw = partial_dw.sum(axis=0).transpose(0, 2, 1).reshape(self.weight.shape)
        if self.weight.mask is not None:
            dw *= self.weight.mask
        self.weight.grad += dw
        if correlate:
            return self._input_grad_by_correlation(dy_cm, (h, w))
        if dxp is None:
            return None
        return dxp[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)

    def _input_grad_by_correlation(self, dy_cm: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """dx for stride 1: dy, zero-padded by ``kernel - 1 - padding``, cross-correlated
        with the kernels flipped in space and transposed in channels.

        The same im2col and matrix product as the forward pass: a copy of
        ``O * kh * kw`` rows where scattering adds ``C * kh * kw`` rows back, so it
        is the faster way when there are no more output maps than input maps.

        Shape
        -----
        ``dy_cm`` ``(O, N, H_out, W_out)``; returns dx as logical ``(N, C, H, W)``.
        """
        (kh, kw), (ph, pw), g = self.kernel_size, self.padding, self.groups
        og, cg = self.out_channels // g, self.in_channels // g
        flipped = (self._effective_weight().reshape(g, og, cg, kh, kw)[..., ::-1, ::-1]
                   .transpose(0, 2, 1, 3, 4).reshape(g, cg, og * kh * kw))
        border = (kh - 1 - ph, kw - 1 - pw)
        padded = None
        if border != (0, 0):
            padded = self._padded_buffer("grad", dy_cm.shape, border, dy_cm.dtype, fresh=False)
        dx = np.empty((self.in_channels, dy_cm.shape[1]) + hw, dy_cm.dtype)
        _correlate(dy_cm, flipped, self.kernel_size, (1, 1), border, padded, dx)
        return dx.transpose(1, 0, 2, 3)

    def _output_hw(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)

    def _padded_buffer(self, name: str, shape: tuple[int, int, int, int],
                       padding: tuple[int, int], dtype: Any, fresh: bool) -> np.ndarray:
        """A ``(C, N, H + 2 ph, W + 2 pw)`` array with zero borders, for an input of
        ``shape`` ``(C, N, H, W)``; its interior is filled chunk by chunk. ``fresh`` gives
        a new one (it will be kept for backward); else the layer's buffer ``name``, reused:
        its borders stay zero, since only interiors are ever written."""
        (ph, pw), (c, n, h, w) = padding, shape
        shape = (c, n, h + 2 * ph, w + 2 * pw)
        if fresh:
            return np.zeros(shape, dtype)
        buffer = self._reused.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._reused[name] = np.zeros(shape, dtype)
        return buffer

    def _check_input(self, x: Any) -> np.ndarray:
        x = self._check_images(x, self.in_channels, self.dtype)
        kh, kw = self.kernel_size
        ph, pw = self.padding
        hp, wp = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
        if hp < kh or wp < kw:
            raise ValueError(
                f"{self.label()}: expected input at least {kh}x{kw} after padding {self.padding} "
                f"(kernel_size {self.kernel_size}), received {x.shape[2]}x{x.shape[3]} "
                f"({hp}x{wp} after padding)")
        return x
