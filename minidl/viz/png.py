"""A minimal PNG encoder: 8-bit grayscale and RGB images, ``zlib`` + ``struct`` only.

A PNG file is a signature followed by chunks ``length | type | data | crc``:
``IHDR`` (size and pixel format), one ``IDAT`` (the zlib-compressed, filtered
scanlines) and an empty ``IEND``. Each scanline is prefixed by a filter byte
(0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth); filtering turns smooth images into
runs of small numbers that compress well.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from minidl.atomic import atomic_write_bytes

__all__ = ["encode_png", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2}  # samples per pixel -> PNG colour type (0 grey, 2 RGB)
_MAX_SIDE = 2**31 - 1  # the PNG specification's limit on width and height


def _check_image(image: object) -> np.ndarray:
    """Validate an image for PNG encoding and return it as ``(H, W, channels)``."""
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"encode_png: expected a numpy uint8 array of shape (H, W) or (H, W, 3), "
            f"received {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"encode_png: expected dtype uint8, received {image.dtype} "
            f"(convert with np.clip(x, 0, 255).astype(np.uint8))")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(
            f"encode_png: expected shape (H, W) for grayscale or (H, W, 3) for RGB, "
            f"received shape {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"encode_png: expected a non-empty image, received shape {image.shape}")
    if height > _MAX_SIDE or width > _MAX_SIDE:
        raise ValueError(
            f"encode_png: expected height and width below 2**31, received shape {image.shape}")
    return image.reshape(height, width, -1)


def _filtered_rows(raw: np.ndarray, bpp: int) -> np.ndarray:
    """All five PNG filters applied to every scanline.

    Shape
    -----
    raw : (H, row_bytes) uint8, the unfiltered scanlines.
    Returns : (5, H, row_bytes) uint8, indexed by filter type.
    """
    x = raw.astype(np.int16)
    a = np.zeros_like(x)  # the byte one pixel to the left (0 before the row starts)
    a[:, bpp:] = x[:, :-bpp]
    b = np.zeros_like(x)  # the byte above (0 on the first row)
    b[1:] = x[:-1]
    c = np.zeros_like(x)  # the byte above-left
    c[:, bpp:] = b[:, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    # Paeth predictor: the neighbour closest to a + b - c, ties broken a, b, c.
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    out = np.stack([x, x - a, x - b, x - (a + b) // 2, x - paeth])
    return (out & 0xFF).astype(np.uint8)  # arithmetic is modulo 256


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(image: np.ndarray, *, filter_type: int | None = None) -> bytes:
    """Encode an 8-bit grayscale or RGB image as PNG bytes.

    Parameters
    ----------
    image : np.ndarray of uint8
        Grayscale ``(H, W)`` or RGB ``(H, W, 3)``; row 0 is the top of the picture.
    filter_type : int, optional
        Force one PNG filter (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) on every
        row. By default each row gets the filter whose output has the smallest
        sum of absolute values (as signed bytes), the usual heuristic for
        small files.

    Returns
    -------
    bytes
        A complete PNG file (signature, IHDR, one IDAT, IEND). The output is
        deterministic for a given image and zlib version.

    Raises
    ------
    ValueError
        If ``image`` is not a non-empty uint8 array of shape ``(H, W)`` or
        ``(H, W, 3)``, or ``filter_type`` is not one of 0-4.
    """
    pixels = _check_image(image)
    if filter_type is not None and not (isinstance(filter_type, (int, np.integer))
                                        and 0 <= filter_type <= 4):
        raise ValueError(f"encode_png: expected filter_type None or 0-4, received {filter_type!r}")
    height, width, bpp = pixels.shape
    raw = np.ascontiguousarray(pixels).reshape(height, width * bpp)
    candidates = _filtered_rows(raw, bpp)
    if filter_type is None:
        scores = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)
        choice = scores.argmin(axis=0)  # ties go to the lower filter type
    else:
        choice = np.full(height, int(filter_type))
    rows = candidates[choice, np.arange(height)]
    scanlines = np.concatenate([choice.astype(np.uint8)[:, None], rows], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[bpp], 0, 0, 0)
    return (_SIGNATURE
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 9))
            + _chunk(b"IEND", b""))


def write_png(path: str | os.PathLike, image: np.ndarray, *,
              filter_type: int | None = None) -> Path:
    """Encode ``image`` (see :func:`encode_png`) and write it atomically to ``path``.

    Shape
    -----
    image : (H, W) or (H, W, 3), uint8.

    Returns
    -------
    pathlib.Path
        The path written. The image is validated before any file is touched.
    """
    return atomic_write_bytes(path, encode_png(image, filter_type=filter_type))
