"""The IDX reader and writer: round trips and every kind of corrupt file."""

import gzip
import os

import numpy as np
import pytest

from datasets import IDXError, read_idx, write_idx


def _raw_idx(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """Hand-built IDX bytes, so corrupt cases do not depend on write_idx."""
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, ">u4").tobytes() + payload


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2)])
@pytest.mark.parametrize("suffix", [".idx", ".idx.gz"])
def test_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        array = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        array = rng.standard_normal(shape).astype(dtype)
    path = tmp_path / f"a{suffix}"
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == suffix.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    assert os.listdir(tmp_path) == [path.name]  # the temporary file is gone


def test_multibyte_types_are_big_endian_on_disk(tmp_path):
    path = tmp_path / "a.idx"
    write_idx(path, np.array([1, 258], dtype="<i4"))
    assert path.read_bytes() == bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + b"\0\0\0\x01\0\0\x01\x02"
    np.testing.assert_array_equal(read_idx(path), [1, 258])


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_plain = tmp_path / "plain.gz"
    write_idx(gz_named_plain, array, compress=False)
    plain_named_gz = tmp_path / "compressed.idx"
    write_idx(plain_named_gz, array, compress=True)
    assert plain_named_gz.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(gz_named_plain), array)
    np.testing.assert_array_equal(read_idx(plain_named_gz), array)


def test_zero_sized_dimension(tmp_path):
    path = tmp_path / "empty.idx"
    write_idx(path, np.zeros((0, 28), dtype=np.uint8))
    assert read_idx(path).shape == (0, 28)


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "a.idx.gz"
    write_idx(path, np.zeros(5, dtype=np.uint8))
    write_idx(path, np.ones(3, dtype=np.float32))
    np.testing.assert_array_equal(read_idx(path), np.ones(3, dtype=np.float32))


@pytest.mark.parametrize("dtype", ["int64", "uint16", "bool", "complex64"])
def test_write_rejects_dtypes_without_idx_type(tmp_path, dtype):
    with pytest.raises(ValueError, match=f"received {dtype}"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=dtype))
    assert os.listdir(tmp_path) == []


def test_write_rejects_scalars(tmp_path):
    with pytest.raises(ValueError, match="expected 1 to 255 dimensions, received 0"):
        write_idx(tmp_path / "a.idx", np.uint8(3))


# Each corrupt case: (file bytes, a regular expression the message must match).
_CORRUPT = {
    "too_short": (b"\0\0", r"expected a 4-byte IDX magic number, received 2 bytes"),
    "bad_magic": (b"\x12\x34\x08\x01" + b"\0\0\0\x01" + b"x",
                  r"expected an IDX magic number starting with two zero bytes, "
                  r"received 0x12340801"),
    "bad_type": (_raw_idx(0x0A, (1,), b"x"), r"expected an IDX type code \(.*\), received 0x0A"),
    "zero_dims": (bytes([0, 0, 0x08, 0]), r"expected at least 1 dimension, received 0"),
    "short_header": (bytes([0, 0, 0x08, 3]) + b"\0\0\0\x02",
                     r"expected 12 bytes of sizes for 3 dimensions, received 4"),
    "truncated": (_raw_idx(0x08, (10, 28, 28), bytes(1000)),
                  r"expected 7840 bytes of data for 10 x 28 x 28 uint8 values, received 1000"),
    "truncated_multibyte": (_raw_idx(0x0E, (4,), bytes(31)),
                            r"expected 32 bytes of data for 4 float64 values, received 31"),
    "trailing": (_raw_idx(0x08, (2, 3), bytes(6) + b"junk"),
                 r"expected 6 bytes of data for 2 x 3 uint8 values, received 10"),
    "huge_header": (_raw_idx(0x0C, (0xFFFFFFFF, 0xFFFFFFFF), bytes(8)),
                    r"expected \d+ bytes of data for 4294967295 x 4294967295 int32 values, "
                    r"received 8"),
}


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", list(_CORRUPT))
def test_corrupt_files_are_named_and_explained(tmp_path, case, compressed):
    content, pattern = _CORRUPT[case]
    path = tmp_path / f"{case}.idx"
    path.write_bytes(gzip.compress(content) if compressed else content)
    with pytest.raises(IDXError, match=pattern) as info:
        read_idx(path)
    assert str(info.value).startswith(str(path) + ": ")
    assert isinstance(info.value, ValueError)


def test_truncated_gzip_stream(tmp_path):
    good = gzip.compress(_raw_idx(0x08, (100, 28, 28), np.arange(78400, dtype=np.uint8).tobytes()))
    path = tmp_path / "cut.idx.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(IDXError, match=r"cut\.idx\.gz: expected a complete gzip stream, "
                                       r"received corrupt or truncated gzip data"):
        read_idx(path)


def test_gzip_with_bad_crc(tmp_path):
    good = bytearray(gzip.compress(_raw_idx(0x08, (4,), b"abcd")))
    good[-8] ^= 0xFF  # the CRC32 sits in the 8-byte trailer
    path = tmp_path / "crc.idx.gz"
    path.write_bytes(bytes(good))
    with pytest.raises(IDXError, match=r"crc\.idx\.gz: expected a complete gzip stream"):
        read_idx(path)


def test_garbled_deflate_data(tmp_path):
    good = bytearray(gzip.compress(_raw_idx(0x08, (64,), bytes(range(64)))))
    good[10:14] = b"\xff\xff\xff\xff"  # the first bytes of the deflate stream
    path = tmp_path / "garbled.gz"
    path.write_bytes(bytes(good))
    with pytest.raises(IDXError, match=r"garbled\.gz: expected a complete gzip stream"):
        read_idx(path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.idx")


def test_package_imports_nothing_from_models():
    # datasets may use minidl (always installed) but must not depend on the models.
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, datasets, datasets.cifar10, datasets.download; "
            "sys.exit(sorted(m for m in sys.modules if m.split('.')[0] == 'models') or 0)")
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
