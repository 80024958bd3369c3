"""Stride-1 convolution through the Fourier transform, for Conv2D.

A cross-correlation is a product in the frequency domain, so the sum over input
maps becomes, at each frequency, a small complex matrix product
``(O, C) @ (C, N)``. For a 5x5 kernel on a 16x16 map with 32 maps in and out,
that is about a seventh of the multiplications of the direct sum; with many maps
and larger kernels that pays for the transforms (Conv2D.uses_fft decides).

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
    # A reused buffer, cleared: a fresh one costs page faults out of all proportion.
    grid = parallel.scratch("kernel_grid", weight.shape[:2] + size, weight.dtype)
    grid.fill(0)
    rows, cols = _tap_positions(weight.shape[2:], padding, size)
    grid[:, :, rows, cols] = weight
    # O maps "of C // groups images": the spectrum's layout is then the one asked for.
    return spectrum(grid, size, groups)


def spectrum(maps: np.ndarray, size: tuple[int, int], groups: int,
             reuse: str | None = None) -> np.ndarray:
    """Channel-major maps, zero-extended to ``size`` and transformed, frequency-major.

    ``reuse`` names a scratch buffer (see minidl.parallel.scratch) to write into,
    for a spectrum used before the next one of that name; else a new array.

    Shape
    -----
    ``maps`` ``(C, N, H, W)`` with ``H <= Fh``, ``W <= Fw``; returns ``(Fh * (Fw // 2 + 1),
    groups, C // groups, N)`` complex.
    """
    c, n, h, w = maps.shape
    flat = np.ascontiguousarray(maps).reshape(c * n, h, w)
    frequencies = size[0] * (size[1] // 2 + 1)
    out = _array((frequencies, c * n), np.result_type(maps.dtype, np.complex64), reuse)

    def chunk(start: int, stop: int) -> None:
        # Transformed and turned frequency-major while this chunk is still in cache.
        spec = scipy.fft.rfft2(flat[start:stop], s=size)
        out[:, start:stop] = spec.reshape(stop - start, frequencies).T

    parallel.run(chunk, _map_chunks(c * n, size, out.itemsize))
    return out.reshape(frequencies, groups, c // groups, n)


def from_spectrum(spec: np.ndarray, size: tuple[int, int], out_hw: tuple[int, int],
                  out: np.ndarray, bias: np.ndarray | None = None,
                  shift: tuple[int, int] = (0, 0)) -> None:
    """Back to channel-major maps: the inverse transform, rolled by ``shift`` and cropped
    to ``out_hw``, plus ``bias``.

    Shape
    -----
    ``spec`` ``(Fh * (Fw // 2 + 1), groups, maps per group, N)``; ``out`` ``(maps, N,
    H_out, W_out)``, C-contiguous, written; ``bias`` ``(maps,)`` or None.
    """
    frequencies, g, per_group, n = spec.shape
    flat = spec.reshape(frequencies, g * per_group * n)
    out_maps = out.reshape(g * per_group * n, *out_hw)
    map_bias = None if bias is None else np.repeat(bias, n)[:, None, None]

    def chunk(start: int, stop: int) -> None:
        part = np.ascontiguousarray(flat[:, start:stop].T).reshape(stop - start, size[0], -1)
        grid = scipy.fft.irfft2(part, s=size, overwrite_x=True)
        if shift != (0, 0):
            grid = np.roll(grid, shift, axis=(1, 2))
        crop = grid[:, :out_hw[0], :out_hw[1]]
        if map_bias is None:
            out_maps[start:stop] = crop
        else:
            np.add(crop, map_bias[start:stop], out=out_maps[start:stop])

    parallel.run(chunk, _map_chunks(len(out_maps), size, spec.itemsize))


def taps_from_grid(spec: np.ndarray, kernel: tuple[int, int], padding: tuple[int, int],
                   size: tuple[int, int]) -> np.ndarray:
    """A weight gradient from its spectrum: inverse transform, read at the taps.

    Shape
    -----
    ``spec`` ``(Fh * (Fw // 2 + 1), groups, O // groups, C // groups)``; returns
    ``(O, C // groups, kh, kw)``.
    """
    _, g, og, cg = spec.shape
    out = np.empty((g * og, cg) + tuple(kernel), spec.real.dtype)
    # Tap m sits at (m - padding) mod F: rolling the grid by the padding brings them
    # to the corner.
    from_spectrum(spec, size, tuple(kernel), out, shift=padding)
    return out


def products(left: np.ndarray, right: np.ndarray, reuse: str | None = None) -> np.ndarray:
    """``left @ right`` at every frequency and group, the frequencies in chunks on the workers.

    ``reuse``: as for :func:`spectrum`.

    Shape
    -----
    ``left`` ``(F, groups, a, b)``, ``right`` ``(F, groups, b, c)``; returns ``(F, groups, a, c)``.
    """
    out = _array(left.shape[:3] + right.shape[3:], np.result_type(left, right), reuse)
    per_frequency = out[0].nbytes + left[0].nbytes + right[0].nbytes

    def chunk(start: int, stop: int) -> None:
        np.matmul(left[start:stop], right[start:stop], out=out[start:stop])

    parallel.run(chunk, parallel.chunks(len(out), per_frequency, minimum_bytes=1 << 18))
    return out


def _array(shape: tuple[int, ...], dtype: np.dtype, reuse: str | None) -> np.ndarray:
    # A new array of megabytes costs a page fault per page on its first writing, as
    # much as the transform itself; a scratch buffer is paid for once.
    return np.empty(shape, dtype) if reuse is None else parallel.scratch(reuse, shape, dtype)


def _map_chunks(count: int, size: tuple[int, int], complex_bytes: int) -> list[tuple[int, int]]:
    """Pieces of ``count`` maps whose grids and spectra fit in a core's cache together."""
    per_map = size[0] * size[1] * complex_bytes  # the spectrum and the real grid, about
    return parallel.chunks(count, per_map, target_bytes=1 << 19, minimum_bytes=1 << 17)
