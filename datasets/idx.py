"""The IDX file format: read and write n-dimensional arrays (gzip or plain).

An IDX file is a 4-byte magic number -- two zero bytes, a type code and the
number of dimensions -- then one big-endian 32-bit unsigned size per
dimension, then the values in C order, big-endian for multi-byte types.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import BinaryIO

import numpy as np

from minidl.atomic import atomic_open

__all__ = ["IDXError", "IDX_TYPES", "read_idx", "write_idx"]

#: IDX type code -> big-endian numpy dtype of one value.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """A file is not a valid IDX file; the message names the file and the problem."""


def _describe_dims(dims: tuple[int, ...]) -> str:
    return " x ".join(str(d) for d in dims)


# Deflate cannot compress better than about 1032:1, which bounds how much data
# a gzip file of a given size can hold (checked before allocating the array).
_MAX_DEFLATE_RATIO = 1032


def _fill(stream: BinaryIO, buffer: memoryview) -> int:
    """Read into ``buffer`` until it is full or the stream ends; return the bytes read."""
    filled = 0
    while filled < len(buffer):
        n = stream.readinto(buffer[filled:])
        if not n:
            break
        filled += n
    return filled


def _count_rest(stream: BinaryIO) -> int:
    """Consume the stream and return how many bytes were left."""
    count = 0
    while chunk := stream.read(1 << 20):
        count += len(chunk)
    return count


def _parse(stream: BinaryIO, name: str, capacity: int) -> np.ndarray:
    """Decode an IDX stream holding at most ``capacity`` bytes."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise IDXError(f"{name}: expected a 4-byte IDX magic number, "
                       f"received {len(magic)} bytes")
    if magic[0] != 0 or magic[1] != 0:
        raise IDXError(f"{name}: expected an IDX magic number starting with two zero "
                       f"bytes, received 0x{magic.hex()}")
    code, ndim = magic[2], magic[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise IDXError(f"{name}: expected an IDX type code ({known}), received 0x{code:02X}")
    if ndim < 1:
        raise IDXError(f"{name}: expected at least 1 dimension, received 0")
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise IDXError(f"{name}: expected {4 * ndim} bytes of sizes for {ndim} dimensions, "
                       f"received {len(raw_dims)}")
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    dtype = IDX_TYPES[code]
    expected = int(np.prod(dims, dtype=object)) * dtype.itemsize  # Python ints: no overflow

    def length_error(received: int) -> IDXError:
        return IDXError(f"{name}: expected {expected} bytes of data for "
                        f"{_describe_dims(dims)} {dtype.name} values, received {received}")

    if expected > capacity:
        # A corrupt header must not make us allocate an absurd array.
        raise length_error(_count_rest(stream))
    buffer = np.empty(expected, dtype=np.uint8)
    received = _fill(stream, memoryview(buffer))
    if received < expected:
        raise length_error(received)
    # Reading past the end also makes gzip verify the CRC of the last member.
    trailing = _count_rest(stream)
    if trailing:
        raise length_error(expected + trailing)
    values = buffer.view(dtype).reshape(dims)
    # Reading straight into our own buffer keeps single-byte data copy-free and writable.
    return values if dtype.isnative else values.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file into a native-endian array.

    Parameters
    ----------
    path : str or os.PathLike
        The file. It is decompressed when it starts with the gzip magic bytes,
        whatever its name.

    Returns
    -------
    np.ndarray
        A new, writable array with the file's dtype and shape.

    Raises
    ------
    IDXError
        If the header is malformed, the data length is not exactly the product
        of the dimensions times the item size, or the gzip stream is corrupt.
    OSError
        If the file cannot be opened.
    """
    name = os.fspath(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        size = os.fstat(raw.fileno()).st_size
        if not compressed:
            return _parse(raw, name, size)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, name, size * _MAX_DEFLATE_RATIO)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            # Truncated streams raise EOFError, bad CRCs BadGzipFile, garbled data zlib.error.
            raise IDXError(f"{name}: expected a complete gzip stream, "
                           f"received corrupt or truncated gzip data ({err})") from err


def _idx_code(dtype: np.dtype) -> int:
    for code, idx_dtype in IDX_TYPES.items():
        if dtype.kind == idx_dtype.kind and dtype.itemsize == idx_dtype.itemsize:
            return code
    names = ", ".join(t.newbyteorder("=").name for t in IDX_TYPES.values())
    raise ValueError(f"write_idx: expected an array of dtype {names}, received {dtype}")


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write an array as an IDX file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; replaced only once the whole file is written.
    array : np.ndarray
        At least one dimension; dtype uint8, int8, int16, int32, float32 or
        float64 (any byte order).
    compress : bool, optional
        Gzip the file. By default, compress when ``path`` ends with ``.gz``.

    Raises
    ------
    ValueError
        If the dtype has no IDX type, or the shape cannot be stored.
    """
    array = np.asarray(array)
    code = _idx_code(array.dtype)
    if array.ndim < 1 or array.ndim > 255:
        raise ValueError(f"write_idx: expected 1 to 255 dimensions, received {array.ndim}")
    if any(d > 0xFFFFFFFF for d in array.shape):
        raise ValueError(f"write_idx: expected dimensions below 2**32, received {array.shape}")
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    with atomic_open(path) as f:
        if compress:
            # mtime=0 makes the output reproducible; level 6 is much faster than 9
            # for about the same size.
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=6,
                               mtime=0) as gz:
                gz.write(header)
                gz.write(body)
        else:
            f.write(header)
            f.write(body)
