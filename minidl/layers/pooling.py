"""Max and average pooling over NCHW inputs.

Pooling keeps the number of maps: each map is pooled on its own, so it does not
change how the next convolution connects maps.

The forward passes (and average pooling's backward) run over one strided view
per kernel offset: for offset ``(m, n)`` the output positions whose window has
an input pixel there, and those pixels. Padding and, in ceil mode, the part of
a last window past the input have no pixel, so they are skipped rather than
materialised in a padded copy. Max pooling with windows of 3x3 and more takes
them one axis at a time instead (along the rows, then down the columns), and
on narrow outputs works on copies with the batch innermost. Max pooling's
backward sends each window's gradient to the one pixel its index names, all
windows in one pass. The work is split into chunks that run on
:mod:`minidl.parallel`'s workers.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from minidl import checks, parallel
from minidl.layers.base import Layer, is_channel_major, keeps, new_nchw


class MaxPoolCache(NamedTuple):
    """What MaxPool2D.backward needs from forward."""

    #: ``(N, C, H_out, W_out)`` int8/int32: which kernel offset ``m * kw + n`` of each
    #: window held its first maximum.
    index: np.ndarray
    input_shape: tuple[int, int, int, int]


class AvgPoolCache(NamedTuple):
    """What AvgPool2D.backward needs from forward: only the input's shape."""

    input_shape: tuple[int, int, int, int]


def pooled_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of a pooling window sliding over ``size`` (PyTorch's rule).

    ``floor((size + 2 padding - kernel) / stride) + 1``; with ``ceil_mode`` the
    division rounds up, so a last, partial window covers what is left, unless it
    would start in the right padding (then it is dropped).
    """
    span = size + 2 * padding - kernel
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    return out - 1 if (out - 1) * stride >= size + padding else out


class _Offset(NamedTuple):
    """One kernel offset ``k = m * kw + n``: ``out[..., out_rows, out_cols]`` are the
    output positions whose window has an input pixel at that offset, and they read
    ``x[..., in_rows, in_cols]``."""

    k: int
    out: tuple[slice, slice]
    inp: tuple[slice, slice]


def _span(offset: int, stride: int, pad: int, size: int, out: int) -> tuple[slice, slice] | None:
    """Output positions ``i`` whose window, at ``offset``, lands on an input pixel
    (``0 <= i * stride + offset - pad < size``), and the input pixels they read."""
    first = max(0, -(-(pad - offset) // stride))
    last = min(out - 1, (size - 1 + pad - offset) // stride)
    if last < first:
        return None
    start = first * stride + offset - pad
    return slice(first, last + 1), slice(start, start + (last - first) * stride + 1, stride)


#: Inputs smaller than this are pooled on one thread. Each of pooling's NumPy calls does
#: little work, so two workers mostly wait for each other's hold on the GIL: at 1.2 MB
#: (LeNet's first pooling at batch 64) the forward pass took 0.49 ms on two threads and
#: 0.39 ms on one; at 2.4 MB, 0.73 ms against 1.1 ms.
SPLIT_BYTES = 1 << 21


class _Pool2D(Layer):
    default_name = "pool"
    per_example = True

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, ceil_mode: bool = False) -> None:
        super().__init__()
        owner = f"{type(self).__name__}(kernel_size={kernel_size!r})"
        self.kernel_size = checks.pair(kernel_size, "kernel_size", owner, 1)
        self.stride = self.kernel_size if stride is None else checks.pair(stride, "stride", owner, 1)
        self.padding = checks.pair(padding, "padding", owner, 0)
        self.ceil_mode = checks.boolean(ceil_mode, "ceil_mode", owner)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{owner}: expected padding at most half the kernel size "
                             f"{tuple(k // 2 for k in self.kernel_size)}, received {self.padding}")

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "ceil_mode": self.ceil_mode}

    def __repr__(self) -> str:
        extra = "" if self.padding == (0, 0) else f", padding={self.padding}"
        extra += ", ceil_mode=True" if self.ceil_mode else ""
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
        return (pooled_size(h, kh, sh, ph, self.ceil_mode),
                pooled_size(w, kw, sw, pw, self.ceil_mode))

    def _offsets(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> list[_Offset]:
        """The kernel offsets that reach the input, in row-major order."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        rows = [_span(m, sh, ph, in_hw[0], out_hw[0]) for m in range(kh)]
        cols = [_span(k, sw, pw, in_hw[1], out_hw[1]) for k in range(kw)]
        return [_Offset(m * kw + k, (r[0], c[0]), (r[1], c[1]))
                for m, r in enumerate(rows) for k, c in enumerate(cols)
                if r is not None and c is not None]

    @staticmethod
    def _chunks(x: np.ndarray) -> list[tuple[int, int]]:
        n, c, h, w = x.shape
        return parallel.chunks(n, c * h * w * x.itemsize, minimum_bytes=SPLIT_BYTES)


class MaxPool2D(_Pool2D):
    """Max pooling; the gradient of a window goes to its first maximum.

    "First" is in row-major order within the window, as in PyTorch and Caffe.
    This matters on MNIST, whose flat regions make ties common. Padding, and in
    ceil mode the part of a last window past the input, are never selected.

    Parameters
    ----------
    kernel_size, stride, padding : int or (int, int)
        ``stride`` defaults to ``kernel_size``; padding at most half the kernel.
    ceil_mode : bool
        Round the output size up (cuda-convnet's and Caffe's pooling: 3x3 windows
        with stride 2 take 32 pixels to 16, not 15).

    Shape
    -----
    input ``(N, C, H, W)``, output ``(N, C, H_out, W_out)`` with
    ``H_out = floor((H + 2 * padding - kernel_size) / stride) + 1`` (``ceil`` in ceil
    mode, see :func:`pooled_size`).
    """

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        ho, wo = self._geometry(x)
        channel_major = is_channel_major(x)
        out = new_nchw(np.empty, x.shape[:2] + (ho, wo), x.dtype, channel_major)
        keep = keeps(training, keep_for_backward)
        index = None
        if keep:
            index = new_nchw(np.empty, out.shape, _index_dtype(math.prod(self.kernel_size)),
                             channel_major)
        # Narrow outputs: every operation would run along rows of a few numbers. In
        # copies with the batch innermost in memory the same operations run along the
        # batch (see BATCH_INNERMOST_WIDTH).
        if wo <= BATCH_INNERMOST_WIDTH:
            self._forward_offsets(x, out, index, batch_innermost=True)
        elif min(self.kernel_size) >= SEPARABLE_KERNEL:
            self._forward_separable(x, out, index)
        else:
            self._forward_offsets(x, out, index, batch_innermost=False)
        self._cache = MaxPoolCache(index, x.shape) if keep else None
        return out

    def _forward_offsets(self, x: np.ndarray, out: np.ndarray, index: np.ndarray | None,
                         batch_innermost: bool) -> None:
        """``out`` (and ``index``, if given) over one strided view per kernel offset, on
        the input as it lies or, with ``batch_innermost``, on a copy of each piece of
        the batch with the batch innermost in memory (written back at the end)."""
        n, c, h, w = x.shape
        ho, wo = out.shape[2:]
        offsets = self._offsets((h, w), (ho, wo))
        # Offsets in row-major order and a strict comparison: the first maximum wins.
        whole = offsets[0].out == (slice(0, ho), slice(0, wo))
        # a window of -inf (or NaN) keeps its first pixel, never padding
        first = 0 if whole else self._first_offsets((ho, wo))

        def chunk(start: int, stop: int) -> None:
            source, o, where_all = x[start:stop], out[start:stop], None
            if index is not None:
                where_all = index[start:stop]
            if batch_innermost:
                # Per-thread work arrays, reused: fresh megabytes would cost page faults.
                size = stop - start
                source = _scratch_batch_innermost("pool_source", (size, c, h, w), x.dtype)
                source[...] = x[start:stop]
                o = _scratch_batch_innermost("pool_best", (size, c, ho, wo), x.dtype)
                if index is not None:
                    where_all = _scratch_batch_innermost("pool_index", (size, c, ho, wo),
                                                         index.dtype)
            if where_all is not None:
                where_all[...] = first
            if whole:  # the first offset reaches every window: start from it
                o[...] = source[:, :, offsets[0].inp[0], offsets[0].inp[1]]
            else:
                o[...] = -np.inf
            for offset in offsets[1:] if whole else offsets:
                view = source[:, :, offset.inp[0], offset.inp[1]]
                best = o[:, :, offset.out[0], offset.out[1]]
                if where_all is not None:
                    # A window's index is the last offset that beat the maximum so far;
                    # offsets come in increasing order, so that is the largest such k.
                    where = where_all[:, :, offset.out[0], offset.out[1]]
                    np.maximum(where, np.multiply(view > best, offset.k, dtype=where.dtype),
                               out=where)
                np.maximum(best, view, out=best)
            if batch_innermost:
                out[start:stop] = o
                if index is not None:
                    index[start:stop] = where_all

        parallel.run(chunk, self._chunks(x))

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        index, (n, c, h, w) = self._saved()
        self._check_dy(dy, index.shape)
        if not input_grad:
            return None
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = index.shape[2:]
        # Each window's gradient goes to the pixel its index names, at flat position
        # (window's corner) + (offset's shift) within its map. np.bincount sums what
        # overlapping windows send to one pixel, in one pass, in window order.
        shift = (np.arange(kh)[:, None] * w + np.arange(kw)).ravel()
        corner = (np.arange(ho) * sh - ph)[:, None] * w + (np.arange(wo) * sw - pw)
        # Maps in the memory order of the forward input, so dx comes out in it too.
        channel_major = is_channel_major(index)
        where_max, grad = _maps(index, channel_major), _maps(dy, channel_major)
        dx = np.empty((c, n, h, w) if channel_major else (n, c, h, w), dy.dtype)
        dx_maps = dx.reshape(-1, h * w)
        overlap = self._overlapping()

        def chunk(start: int, stop: int) -> None:
            target = np.take(shift, where_max[start:stop])
            target += corner
            target += (np.arange(stop - start) * (h * w))[:, None, None]
            if not overlap:  # each pixel is in one window at most: a plain scatter
                dx_maps[start:stop] = 0
                dx_maps[start:stop].ravel()[target.ravel()] = grad[start:stop].ravel()
                return
            dx_maps[start:stop] = np.bincount(
                target.ravel(), weights=grad[start:stop].ravel(),
                minlength=(stop - start) * h * w).reshape(stop - start, h * w)

        parallel.run(chunk, parallel.chunks(len(dx_maps), h * w * dy.itemsize,
                                            minimum_bytes=SPLIT_BYTES))
        return dx.transpose(1, 0, 2, 3) if channel_major else dx

    def _forward_separable(self, x: np.ndarray, out: np.ndarray,
                           index: np.ndarray | None) -> None:
        """``out`` (and ``index``, if given) by windows taken one axis at a time.

        First along each input row: the maximum of every row's window and the first
        column holding it; then down the columns of those: the first row whose maximum
        is the largest. That is the window's first maximum in row-major order, with
        ``kh + kw`` passes over the data instead of ``kh * kw``, and the first passes
        run along whole rows (see SEPARABLE_KERNEL).
        """
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = out.shape[2:]
        channel_major = is_channel_major(x)
        along_rows = _window_steps(kw, sw, pw, w, wo)
        down_columns = _window_steps(kh, sh, ph, h, ho)

        def chunk(start: int, stop: int) -> None:
            # The rows' maxima live only within the piece: per-thread work arrays.
            shape = (stop - start, c, h, wo)
            best = new_nchw(functools.partial(parallel.scratch, "pool_rows"), shape, x.dtype,
                            channel_major)
            first = None
            if index is not None:
                first = new_nchw(functools.partial(parallel.scratch, "pool_row_index"), shape,
                                 _index_dtype(kw), channel_major)
            _running_max(x[start:stop], best, first, along_rows, axis=3)
            _running_max(best, out[start:stop], None if index is None else index[start:stop],
                         down_columns, axis=2, carried=first, scale=kw)

        parallel.run(chunk, self._chunks(x))

    def _first_offsets(self, out_hw: tuple[int, int]) -> np.ndarray:
        """``(H_out, W_out)``: the first offset of each window on an input pixel."""
        (_, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        rows = np.maximum(0, ph - np.arange(out_hw[0]) * sh)
        cols = np.maximum(0, pw - np.arange(out_hw[1]) * sw)
        return rows[:, None] * kw + cols


#: Max pooling's forward pass takes windows one axis at a time (separably) when they are
#: at least this many pixels high and wide, and its output is wider than
#: BATCH_INNERMOST_WIDTH. Measured at batch 128 on one core: 3x3 windows with stride 2
#: on 32x32 maps (the 80sec nets' first pooling), 21.6 ms to 15.6 ms; but 2x2 windows
#: with stride 2 on 28x28 maps, 0.39 ms to 0.42 ms (two passes instead of four, on
#: more data).
SEPARABLE_KERNEL = 3


class _Step(NamedTuple):
    """One kernel offset ``t`` along one axis: output positions ``assign`` meet their
    first pixel at this offset (reading input positions ``assign_from``), positions
    ``update`` have met one before (reading ``update_from``)."""

    t: int
    assign: slice
    assign_from: slice
    update: slice
    update_from: slice


@functools.lru_cache(maxsize=256)
def _window_steps(kernel: int, stride: int, pad: int, size: int, out: int) -> tuple[_Step, ...]:
    """For each offset along one axis that reaches the input, which windows it opens
    and which it continues.

    Window ``i``'s first pixel is at offset ``max(0, pad - i * stride)``; those windows
    form the start of the offset's span, since that first offset falls as ``i`` grows.
    """
    steps = []
    for t in range(kernel):
        span = _span(t, stride, pad, size, out)
        if span is None:
            continue
        positions, sources = span
        opened = sum(1 for i in range(positions.start, positions.stop)
                     if max(0, pad - i * stride) == t)
        cut = positions.start + opened
        steps.append(_Step(t, slice(positions.start, cut),
                           slice(sources.start, sources.start + opened * stride, stride),
                           slice(cut, positions.stop),
                           slice(sources.start + opened * stride, sources.stop, stride)))
    return tuple(steps)


def _running_max(source: np.ndarray, best: np.ndarray, where: np.ndarray | None,
                 steps: tuple[_Step, ...], axis: int, carried: np.ndarray | None = None,
                 scale: int = 1) -> None:
    """Maxima of windows along one ``axis`` (2: rows, 3: columns) of a 4-D ``source``.

    ``best`` gets each window's maximum; ``where`` (if given) the offset ``t`` of its
    first maximum, or, with ``carried``, ``t * scale + carried`` read at that maximum
    (the column found by the pass along the other axis). Offsets come in increasing
    order and a later one must be strictly larger to win, so the first maximum is the
    last winner, which is the largest value ``where`` takes.

    Shape
    -----
    ``source`` and ``carried`` ``(n, C, H, W)``; ``best`` and ``where`` the same with
    ``axis`` of the output's length.
    """
    def along(a: np.ndarray, part: slice) -> np.ndarray:
        return a[:, :, part] if axis == 2 else a[..., part]

    for step in steps:
        if step.assign.start < step.assign.stop:  # windows whose first pixel is here
            along(best, step.assign)[...] = along(source, step.assign_from)
            if where is not None:
                spot = along(where, step.assign)
                if carried is None:
                    spot[...] = step.t
                else:
                    np.add(along(carried, step.assign_from), step.t * scale, out=spot)
        if step.update.start < step.update.stop:
            view, target = along(source, step.update_from), along(best, step.update)
            if where is not None:
                spot = along(where, step.update)
                beats = view > target
                if carried is None:
                    label = np.multiply(beats, step.t, dtype=spot.dtype)
                else:
                    label = np.add(along(carried, step.update_from), step.t * scale,
                                   dtype=spot.dtype)
                    label *= beats
                np.maximum(spot, label, out=spot)
            np.maximum(target, view, out=target)


def _index_dtype(offsets: int) -> type:
    """The smallest index type that holds ``offsets`` kernel offsets."""
    return np.int8 if offsets < 128 else np.int32


#: Max pooling's forward pass works on copies with the batch innermost in memory when
#: the output is at most this wide. Measured on one core at batch 128 (benchmarks' nets):
#: 3x3 windows, stride 2, to 3 and 7 columns took 5.4 and 9.1 ms, and 0.65 and 2.3 ms
#: so; to 15 columns, 19 ms and 23 ms so (the copy costs more than it saves).
BATCH_INNERMOST_WIDTH = 8


def _scratch_batch_innermost(name: str, shape: tuple[int, int, int, int],
                             dtype: Any) -> np.ndarray:
    """A per-thread work array (see parallel.scratch) of logical shape ``(N, C, H, W)``
    lying in memory as ``(C, H, W, N)``."""
    n, c, h, w = shape
    return parallel.scratch(name, (c, h, w, n), dtype).transpose(3, 0, 1, 2)


def _maps(a: np.ndarray, channel_major: bool) -> np.ndarray:
    """A logically NCHW array as a contiguous stack of maps ``(maps, H, W)``, ordered
    ``(C, N)`` if ``channel_major`` else ``(N, C)``; a view when it already lies so."""
    if channel_major:
        a = a.transpose(1, 0, 2, 3)
    return np.ascontiguousarray(a).reshape(-1, *a.shape[2:])


class AvgPool2D(_Pool2D):
    """Average pooling; zero padding counts in the average (PyTorch's default).

    In ceil mode the part of a last window past the padded input does not count:
    such a window averages what it covers (PyTorch's ``ceil_mode=True``, and
    cuda-convnet's average pooling over a border window).

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode
        As for :class:`MaxPool2D`.

    Shape
    -----
    input ``(N, C, H, W)``, output ``(N, C, H_out, W_out)``, as for :class:`MaxPool2D`.
    """

    def _divisor(self, h: int, w: int, out_hw: tuple[int, int], dtype: Any) -> Any:
        """How many cells each window averages: ``kh * kw``, less for a ceil-mode overhang."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        counts = []
        for size, kernel, stride, out in ((h + 2 * ph, kh, sh, out_hw[0]),
                                          (w + 2 * pw, kw, sw, out_hw[1])):
            start = np.arange(out) * stride
            counts.append(np.minimum(start + kernel, size) - start)
        if (counts[0] == kh).all() and (counts[1] == kw).all():
            return dtype.type(1 / (kh * kw))
        return (1 / (counts[0][:, None] * counts[1][None, :])).astype(dtype)

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        ho, wo = self._geometry(x)
        offsets = self._offsets(x.shape[2:], (ho, wo))
        out = new_nchw(np.zeros, x.shape[:2] + (ho, wo), x.dtype, is_channel_major(x))
        divisor = self._divisor(x.shape[2], x.shape[3], (ho, wo), x.dtype)

        def chunk(start: int, stop: int) -> None:
            o = out[start:stop]
            for offset in offsets:  # zero padding adds nothing: skipped
                o[:, :, offset.out[0], offset.out[1]] += x[start:stop, :, offset.inp[0],
                                                           offset.inp[1]]
            o *= divisor

        parallel.run(chunk, self._chunks(x))
        self._cache = AvgPoolCache(x.shape) if keeps(training, keep_for_backward) else None
        return out

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        (n, c, h, w), = self._saved()
        ho, wo = self._output_hw(h, w)
        self._check_dy(dy, (n, c, ho, wo))
        if not input_grad:
            return None
        share = dy * self._divisor(h, w, (ho, wo), dy.dtype)
        dx = new_nchw(np.zeros, (n, c, h, w), dy.dtype, is_channel_major(dy))
        offsets = self._offsets((h, w), (ho, wo))
        overlap = self._overlapping()

        def chunk(start: int, stop: int) -> None:
            for offset in offsets:
                target = dx[start:stop, :, offset.inp[0], offset.inp[1]]
                part = share[start:stop, :, offset.out[0], offset.out[1]]
                if overlap:
                    target += part
                else:
                    target[...] = part

        parallel.run(chunk, self._chunks(dx))
        return dx
