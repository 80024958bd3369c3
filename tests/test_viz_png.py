"""PNG encoder: decoded back by an independent decoder written here, pixel for pixel."""

import os
import struct
import zlib

import numpy as np
import pytest

from minidl.viz import encode_png, write_png

SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------ reference decoder
def parse_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into (type, data) chunks, checking every length and CRC."""
    assert data[:8] == SIGNATURE
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert len(body) == length
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    return chunks


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> tuple[np.ndarray, list[int]]:
    """Decode an 8-bit grayscale/RGB PNG; returns pixels and the filter type of each row."""
    chunks = parse_chunks(data)
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and chunks[-1][1] == b""
    assert b"IDAT" in kinds
    width, height, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0)
    assert color in (0, 2)
    bpp = 1 if color == 0 else 3
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    rows, filters, prev = [], [], bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        ftype, cur = line[0], bytearray(line[1:])
        filters.append(ftype)
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            elif ftype == 4:
                pred = paeth(a, b, c)
            else:
                raise AssertionError(f"unknown filter type {ftype}")
            cur[i] = (cur[i] + pred) & 0xFF
        rows.append(bytes(cur))
        prev = cur
    pixels = np.frombuffer(b"".join(rows), np.uint8).reshape(height, width, bpp)
    return (pixels[:, :, 0] if bpp == 1 else pixels), filters


# ----------------------------------------------------------------------- images
def _images():
    rng = np.random.default_rng(0)
    yield "gray random odd", rng.integers(0, 256, (7, 13), dtype=np.uint8)
    yield "rgb random odd", rng.integers(0, 256, (5, 11, 3), dtype=np.uint8)
    yield "gray 1x1", np.array([[200]], np.uint8)
    yield "rgb 1x1", np.array([[[1, 2, 3]]], np.uint8)
    yield "gray constant", np.full((9, 4), 77, np.uint8)
    yield "rgb constant", np.full((3, 6, 3), 255, np.uint8)
    yield "gray single row", rng.integers(0, 256, (1, 17), dtype=np.uint8)
    yield "rgb single column", rng.integers(0, 256, (10, 1, 3), dtype=np.uint8)
    ramp = (np.add.outer(np.arange(20), np.arange(30)) * 4 % 256).astype(np.uint8)
    yield "gray gradient", ramp
    yield "rgb gradient", np.stack([ramp, 255 - ramp, ramp // 2], -1)
    yield "non-contiguous", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)[::2, ::-1]


IMAGES = list(_images())


@pytest.mark.parametrize("name,image", IMAGES, ids=[n for n, _ in IMAGES])
def test_roundtrip_adaptive(name, image):
    decoded, filters = decode_png(encode_png(image))
    assert decoded.shape == image.shape
    np.testing.assert_array_equal(decoded, image)
    assert all(0 <= f <= 4 for f in filters)


@pytest.mark.parametrize("filter_type", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("name,image", IMAGES, ids=[n for n, _ in IMAGES])
def test_roundtrip_each_filter(name, image, filter_type):
    decoded, filters = decode_png(encode_png(image, filter_type=filter_type))
    assert filters == [filter_type] * image.shape[0]
    np.testing.assert_array_equal(decoded, image)


def test_ihdr_fields():
    chunks = parse_chunks(encode_png(np.zeros((5, 7, 3), np.uint8)))
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (7, 5, 8, 2, 0, 0, 0)
    chunks = parse_chunks(encode_png(np.zeros((5, 7), np.uint8)))
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (7, 5, 8, 0, 0, 0, 0)


def test_adaptive_filtering_keeps_files_small():
    # A smooth gradient: Sub/Up/Paeth turn rows into constants that compress well.
    y, x = np.mgrid[0:256, 0:256]
    image = np.stack([x, y, (x + y) // 2], -1).astype(np.uint8)
    adaptive = encode_png(image)
    unfiltered = encode_png(image, filter_type=0)
    assert len(adaptive) < len(unfiltered) / 4
    _, filters = decode_png(adaptive)
    assert set(filters) != {0}
    np.testing.assert_array_equal(decode_png(adaptive)[0], image)
    # A constant image is tiny whatever its size.
    assert len(encode_png(np.full((300, 300), 9, np.uint8))) < 1000


def test_deterministic():
    image = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    assert encode_png(image) == encode_png(image.copy())


@pytest.mark.parametrize("bad,expected_words", [
    (np.zeros((4, 4), np.float64), ["uint8", "float64"]),
    (np.zeros((4, 4), np.int32), ["uint8", "int32"]),
    (np.zeros(4, np.uint8), ["(H, W)", "(4,)"]),
    (np.zeros((2, 2, 2, 2), np.uint8), ["(H, W)", "(2, 2, 2, 2)"]),
    (np.zeros((4, 4, 4), np.uint8), ["(H, W, 3)", "(4, 4, 4)"]),
    (np.zeros((4, 4, 1), np.uint8), ["(H, W, 3)", "(4, 4, 1)"]),
    (np.zeros((0, 5), np.uint8), ["non-empty", "(0, 5)"]),
    (np.zeros((3, 0, 3), np.uint8), ["non-empty", "(3, 0, 3)"]),
    ([[1, 2], [3, 4]], ["numpy uint8 array", "list"]),
])
def test_bad_input_raises(bad, expected_words):
    with pytest.raises(ValueError) as info:
        encode_png(bad)
    message = str(info.value)
    assert "expected" in message and "received" in message
    for word in expected_words:
        assert word in message


@pytest.mark.parametrize("filter_type", [-1, 5, 1.0, "2"])
def test_bad_filter_type(filter_type):
    with pytest.raises(ValueError, match="expected filter_type"):
        encode_png(np.zeros((2, 2), np.uint8), filter_type=filter_type)


def test_write_png_atomic(tmp_path):
    image = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    path = tmp_path / "out.png"
    assert write_png(path, image) == path
    np.testing.assert_array_equal(decode_png(path.read_bytes())[0], image)
    # Overwriting replaces the file; no temporary files are left behind.
    write_png(str(path), image[:, :, 0])
    np.testing.assert_array_equal(decode_png(path.read_bytes())[0], image[:, :, 0])
    assert os.listdir(tmp_path) == ["out.png"]


def test_write_png_invalid_image_touches_nothing(tmp_path):
    path = tmp_path / "keep.png"
    path.write_bytes(b"old")
    with pytest.raises(ValueError):
        write_png(path, np.zeros((2, 2), np.float32))
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.png"]


def test_write_png_missing_directory_leaves_no_temp(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_png(tmp_path / "missing" / "x.png", np.zeros((2, 2), np.uint8))
    assert os.listdir(tmp_path) == []
