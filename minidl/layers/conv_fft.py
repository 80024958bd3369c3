"""Stride-1 convolution through the Fourier transform, for Conv2D.

A cross-correlation is a product in the frequency domain, so the sum over input
maps becomes, at each frequency, a small complex matrix product
``(O, C) @ (C, N)``. For a 5x5 kernel on a 16x16 map with 32 maps in and out,
that is about a seventh of the multiplications of the direct sum, and the
transforms themselves cost less than gathering im2col columns.

Padding without a padded copy: the input is transformed at the padded size
``(H + 2 ph, W + 2 pw)`` with its zeros *after* it (what ``rfft2(x, s=...)``
does), and the kernel is placed on that grid shifted back by the padding,
tap ``(m, k)`` at ``((m - ph) mod Fh, (k - pw) mod Fw)``. The circular
correlation then equals the padded one at every output position, since what
wraps around lands on zeros. Its adjoints give the input gradient (a circular
convolution with the same kernel grid) and the weight gradient (a circular
correlation of the input with dy, read back at the taps).

Results agree with the direct sum to rounding: about 1e-6 relative to the
largest value in float32, 1e-15 in float64 (see tests/test_conv.py).

Layout: maps stay channel-major ``(C, N, H, W)``; spectra are kept frequency-
major, ``(frequencies, groups, maps per group, N)``, so each frequency's matrix
product reads contiguous memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft

from minidl import parallel

__all__ = ["grid_size", "kernel_spectrum", "spectrum", "from_spectrum", "taps_from_grid",
           "products"]


def grid_size(hw: tuple[int, int], padding: tuple[int, int]) -> tuple[int, int]:
    """The transform size: the padded input, ``(H + 2 ph, W + 2 pw)``."""
    return hw[0] + 2 * padding[0], hw[1] + 2 * padding[1]


def _tap_positions(kernel: tuple[int, int], padding: tuple[int, int],
                   size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Grid rows ``(m - ph) mod Fh`` (as a column) and columns ``(k - pw) mod Fw``."""
    rows = (np.arange(kernel[0]) - padding[0]) % size[0]
    cols = (np.arange(kernel[1]) - padding[1]) % size[1]
    return rows[:, None], cols[None, :]


def kernel_spectrum(weight: np.ndarray, groups: int, padding: tuple[int, int],
                    size: tuple[int, int]) -> np.ndarray:
    """The weights placed on the grid and transformed.

    Shape
    -----
    ``weight`` ``(O, C // groups, kh, kw)``; returns ``(Fh * (Fw // 2 + 1), groups,
    O // groups, C // groups)`` complex.
    """
    o, cg, kh, kw = weight.shape
    grid = np.zeros((o, cg) + size, weight.dtype)
    rows, cols = _tap_positions((kh, kw), padding, size)
    grid[:, :, rows, cols] = weight
    spec = scipy.fft.rfft2(grid, workers=parallel.num_threads())
    return np.ascontiguousarray(spec.transpose(2, 3, 0, 1)).reshape(-1, groups, o // groups, cg)


def spectrum(maps: np.ndarray, size: tuple[int, int], groups: int) -> np.ndarray:
    """Channel-major maps, zero-extended to ``size`` and transformed, frequency-major.

    Shape
    -----
    ``maps`` ``(C, N, H, W)`` with ``H <= Fh``, ``W <= Fw``; returns ``(Fh * (Fw // 2 + 1),
    groups, C // groups, N)`` complex.
    """
    c, n = maps.shape[:2]
    spec = scipy.fft.rfft2(maps, s=size, workers=parallel.num_threads())
    return _frequency_major(spec).reshape(-1, groups, c // groups, n)


def from_spectrum(spec: np.ndarray, size: tuple[int, int], out_hw: tuple[int, int],
                  out: np.ndarray) -> None:
    """Back to channel-major maps: the inverse transform, cropped to ``out_hw``.

    Shape
    -----
    ``spec`` ``(Fh * (Fw // 2 + 1), groups, maps per group, N)``; ``out`` ``(maps, N,
    H_out, W_out)``, written.
    """
    f, g, per_group, n = spec.shape
    maps = spec.reshape(size[0], -1, g * per_group, n).transpose(2, 3, 0, 1)
    grid = scipy.fft.irfft2(maps, s=size, workers=parallel.num_threads())
    out[...] = grid[:, :, :out_hw[0], :out_hw[1]]


def taps_from_grid(spec: np.ndarray, kernel: tuple[int, int], padding: tuple[int, int],
                   size: tuple[int, int], dtype: Any) -> np.ndarray:
    """A weight gradient from its spectrum: inverse transform, read at the taps.

    Shape
    -----
    ``spec`` ``(Fh * (Fw // 2 + 1), groups, O // groups, C // groups)``; returns
    ``(O, C // groups, kh, kw)``.
    """
    f, g, og, cg = spec.shape
    maps = spec.reshape(size[0], -1, g * og, cg).transpose(2, 3, 0, 1)
    grid = scipy.fft.irfft2(maps, s=size, workers=parallel.num_threads())
    rows, cols = _tap_positions(kernel, padding, size)
    return grid[:, :, rows, cols].astype(dtype, copy=False)


def products(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right`` at every frequency and group, the frequencies in chunks on the workers.

    Shape
    -----
    ``left`` ``(F, groups, a, b)``, ``right`` ``(F, groups, b, c)``; returns ``(F, groups, a, c)``.
    """
    out = np.empty(left.shape[:3] + right.shape[3:], np.result_type(left, right))
    per_frequency = out[0].nbytes + left[0].nbytes + right[0].nbytes

    def chunk(start: int, stop: int) -> None:
        np.matmul(left[start:stop], right[start:stop], out=out[start:stop])

    parallel.run(chunk, parallel.chunks(len(out), per_frequency, minimum_bytes=1 << 18))
    return out


def _frequency_major(spec: np.ndarray) -> np.ndarray:
    """``(C, N, Fh, Fw')`` -> contiguous ``(Fh * Fw', C, N)``, copied in chunks of rows."""
    c, n, fh, fw = spec.shape
    out = np.empty((fh, fw, c, n), spec.dtype)

    def chunk(start: int, stop: int) -> None:
        out[start:stop] = spec[:, :, start:stop].transpose(2, 3, 0, 1)

    parallel.run(chunk, parallel.chunks(fh, fw * c * n * spec.itemsize, minimum_bytes=1 << 18))
    return out.reshape(fh * fw, c, n)
