"""CIFAR-10 reading, validation, download and safe extraction, on synthetic files.

Each batch holds RECORDS records (BATCH_RECORDS is monkeypatched), and every
download is served by a local HTTP server on 127.0.0.1.
"""

import hashlib
import io
import os
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest
from local_http import LocalServer

import datasets.cifar10 as cifar10
from datasets import CIFAR10Error, download_cifar10, load_cifar10
from datasets.cifar10 import read_batch, read_class_names
from datasets.download import ArchiveError, extract_tar

RECORDS = 4
BATCHES = "cifar-10-batches-bin"
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck"]
#: The official batches.meta.txt: the names, then an empty line (61 bytes).
META = ("\n".join(NAMES) + "\n\n").encode()


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(cifar10, "BATCH_RECORDS", RECORDS)
    # A proxy from the environment would intercept requests to 127.0.0.1.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _batch(rng, count=RECORDS, labels=None) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Random images and labels, and their bytes in the official record format."""
    images = rng.integers(0, 256, size=(count, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8) if labels is None else labels
    table = np.concatenate([labels[:, None], images.reshape(count, -1)], axis=1)
    return images, labels, table.tobytes()


@pytest.fixture(scope="module")
def payload() -> dict:
    """A synthetic CIFAR-10: arrays, file bytes by name, the .tar.gz and its MD5."""
    rng = np.random.default_rng(10)
    files, train = {}, []
    for name in TRAIN_FILES:
        images, labels, data = _batch(rng)
        files[name] = data
        train.append((images, labels))
    test_images, test_labels, files["test_batch.bin"] = _batch(rng)
    files["batches.meta.txt"] = META
    archive = _tar_gz([_dir(BATCHES)]
                      + [_file(f"{BATCHES}/{name}", data) for name, data in files.items()]
                      + [_file(f"{BATCHES}/readme.html", b"<html></html>")])
    return {"files": files, "archive": archive, "md5": hashlib.md5(archive).hexdigest(),
            "train_images": np.concatenate([i for i, _ in train]),
            "train_labels": np.concatenate([lab for _, lab in train]),
            "test_images": test_images, "test_labels": test_labels}


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.devmajor, info.devminor = kind, linkname, 1, 3
    return info, None


def _tar_gz(members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return buffer.getvalue()


def _write_dataset(root: Path, files: dict[str, bytes], skip: tuple[str, ...] = ()) -> Path:
    directory = root / "cifar10" / BATCHES
    directory.mkdir(parents=True)
    for name, data in files.items():
        if name not in skip:
            (directory / name).write_bytes(data)
    return directory


def _tree(path: Path) -> list[str]:
    """Every file and directory under ``path``, relative, sorted (hidden ones included)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# --- Reading ----------------------------------------------------------------------------

def test_read_batch_layout(tmp_path):
    # Record r holds label r, then 3072 bytes whose values encode their own position.
    raw = np.zeros((3, 3073), dtype=np.uint8)
    raw[:, 0] = [0, 9, 5]
    raw[:, 1:] = (np.arange(3072) * 7 + np.arange(3)[:, None]) % 251
    path = tmp_path / "batch.bin"
    path.write_bytes(raw.tobytes())
    images, labels = read_batch(path, records=3)
    assert images.dtype == labels.dtype == np.uint8
    assert images.shape == (3, 3, 32, 32) and labels.shape == (3,)
    assert images.flags.c_contiguous and images.flags.writeable
    np.testing.assert_array_equal(labels, [0, 9, 5])
    # Plane c (red, green, blue), row y, column x is byte 1 + 1024 c + 32 y + x of the record.
    for r, c, y, x in [(0, 0, 0, 0), (1, 0, 0, 31), (2, 1, 0, 0), (0, 1, 5, 7), (1, 2, 31, 31)]:
        assert images[r, c, y, x] == raw[r, 1 + 1024 * c + 32 * y + x]


@pytest.mark.parametrize("size, note", [(5 * 3073 - 1, " (truncated)"), (3 * 3073, " (truncated)"),
                                        (5 * 3073 + 2, ""), (0, " (truncated)")])
def test_read_batch_wrong_size_is_named(tmp_path, size, note):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(size))
    with pytest.raises(CIFAR10Error) as info:
        read_batch(path, records=5)
    assert str(info.value) == (f"{path}: expected 15365 bytes (5 records of 3073 bytes), "
                               f"received {size}{note}")


def test_read_batch_label_out_of_range_names_the_record(tmp_path, rng):
    labels = np.array([3, 9, 10, 255], dtype=np.uint8)
    _, _, data = _batch(rng, 4, labels)
    path = tmp_path / "b.bin"
    path.write_bytes(data)
    with pytest.raises(CIFAR10Error, match=r"b\.bin: expected labels in 0\.\.9, "
                                           r"received 10 at record 2$"):
        read_batch(path, records=4)


def test_read_batch_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"read_batch: expected records >= 1, received 0"):
        read_batch(tmp_path / "b.bin", records=0)
    with pytest.raises(FileNotFoundError, match="b.bin"):
        read_batch(tmp_path / "b.bin", records=1)
    (tmp_path / "d.bin").mkdir()
    with pytest.raises(CIFAR10Error, match=r"d\.bin: expected a file, received a directory"):
        read_batch(tmp_path / "d.bin", records=1)


@pytest.mark.parametrize("content", [META, META.rstrip(b"\n"), META.replace(b"\n", b"\r\n"),
                                     META + b"\n  \n"], ids=["official", "no_final_newline",
                                                            "crlf", "more_empty_lines"])
def test_read_class_names(tmp_path, content):
    path = tmp_path / "batches.meta.txt"
    path.write_bytes(content)
    assert read_class_names(path) == NAMES


@pytest.mark.parametrize("content, received", [
    ("\n".join(NAMES[:9]) + "\n\n", "received 9 non-empty lines"),
    ("\n".join(NAMES + ["extra"]) + "\n", "received 11 non-empty lines"),
    ("\n".join(NAMES) + "\n\nextra\n", "received 11 non-empty lines"),
    ("\n".join(NAMES[:4] + [""] + NAMES[4:]) + "\n", "received an empty line 5 before the last"),
    ("", "received 0 non-empty lines"),
])
def test_read_class_names_layout_errors(tmp_path, content, received):
    path = tmp_path / "batches.meta.txt"
    path.write_text(content)
    with pytest.raises(CIFAR10Error) as info:
        read_class_names(path)
    message = str(info.value)
    assert message.startswith(f"{path}: expected 10 class names, one a line, then only "
                              f"empty lines; ")
    assert received in message


def test_read_class_names_binary_file(tmp_path):
    path = tmp_path / "batches.meta"
    path.write_bytes(b"\x80\x03cnumpy")  # the pickled meta file of the Python version
    with pytest.raises(CIFAR10Error, match=r"batches\.meta: expected UTF-8 text, "
                                           r"received byte 0x80 at offset 0"):
        read_class_names(path)


# --- Loading files on disk --------------------------------------------------------------

@pytest.fixture
def serve():
    servers = []

    def start(archive: bytes | None, status: int = 200, truncate: bool = False) -> str:
        """Serve ``archive`` as cifar-10-binary.tar.gz; returns its URL (server in .last)."""
        files = {} if archive is None else {"cifar-10-binary.tar.gz": archive}
        servers.append(LocalServer(files, status, truncate, prefix="kriz"))
        start.last = servers[-1]
        return servers[-1].url + "cifar-10-binary.tar.gz"

    yield start
    for s in servers:
        s.close()


def _assert_loaded(data, payload, with_test: bool = True):
    np.testing.assert_array_equal(data.train_images, payload["train_images"])
    np.testing.assert_array_equal(data.train_labels, payload["train_labels"])
    assert data.train_images.shape == (5 * RECORDS, 3, 32, 32)
    assert data.train_images.dtype == data.train_labels.dtype == np.uint8
    assert data.class_names == NAMES
    if with_test:
        np.testing.assert_array_equal(data.test_images, payload["test_images"])
        np.testing.assert_array_equal(data.test_labels, payload["test_labels"])
        assert data.test_missing is None


def test_files_on_disk_load_without_network(tmp_path, payload, serve):
    _write_dataset(tmp_path, payload["files"])
    url = serve(payload["archive"])
    # A wrong MD5: files on disk are validated by structure, never by checksum.
    data = load_cifar10(tmp_path, progress=False, url=url, md5="0" * 32)
    _assert_loaded(data, payload)
    assert serve.last.requests == []


def test_missing_test_batch_loads_training_set_without_network(tmp_path, payload, serve):
    directory = _write_dataset(tmp_path, payload["files"], skip=("test_batch.bin",))
    url = serve(payload["archive"])
    data = load_cifar10(tmp_path, progress=False, url=url)
    _assert_loaded(data, payload, with_test=False)
    assert data.test_images is None and data.test_labels is None
    assert data.test_missing.startswith(f"test_batch.bin is missing from {directory}, so only "
                                        f"validation can be reported")
    assert serve.last.requests == []
    assert not (directory / "test_batch.bin").exists()  # nothing substituted


def test_missing_training_file_without_download(tmp_path, payload):
    directory = _write_dataset(tmp_path, payload["files"], skip=("data_batch_4.bin",))
    with pytest.raises(CIFAR10Error) as info:
        load_cifar10(tmp_path, download=False)
    message = str(info.value)
    assert message.startswith(f"CIFAR-10 file(s) missing from {directory}: data_batch_4.bin "
                              f"(download=False).")
    assert cifar10.CIFAR10_URL in message and "MINIDL_DATA" in message


@pytest.mark.parametrize("name", ["data_batch_3.bin", "test_batch.bin", "batches.meta.txt"])
def test_directory_in_place_of_a_file_is_named_without_network(tmp_path, payload, serve, name):
    directory = _write_dataset(tmp_path, payload["files"], skip=(name, "data_batch_1.bin"))
    (directory / name).mkdir()
    url = serve(payload["archive"])
    # data_batch_1.bin is missing too, so only the check keeps this from downloading.
    for load in (lambda: load_cifar10(tmp_path, progress=False, url=url),
                 lambda: download_cifar10(tmp_path, progress=False, url=url)):
        with pytest.raises(CIFAR10Error) as info:
            load()
        assert str(info.value).startswith(f"{directory / name}: expected a file, "
                                          f"received a directory")
    assert serve.last.requests == []


@pytest.mark.parametrize("name, content, pattern", [
    ("data_batch_2.bin", bytes(RECORDS * 3073 - 5),
     rf"data_batch_2\.bin: expected {RECORDS * 3073} bytes \({RECORDS} records of 3073 bytes\), "
     rf"received {RECORDS * 3073 - 5} \(truncated\)"),
    ("test_batch.bin", bytes([12]) + bytes(RECORDS * 3073 - 1),
     r"test_batch\.bin: expected labels in 0\.\.9, received 12 at record 0"),
    ("batches.meta.txt", b"cat\ndog\n", r"batches\.meta\.txt: expected 10 class names"),
])
def test_malformed_files_on_disk_are_named(tmp_path, payload, name, content, pattern):
    directory = _write_dataset(tmp_path, payload["files"])
    (directory / name).write_bytes(content)
    with pytest.raises(CIFAR10Error, match=pattern) as info:
        load_cifar10(tmp_path, download=False)
    assert str(directory / name) in str(info.value)


def test_root_defaults_to_minidl_data(tmp_path, payload, monkeypatch):
    _write_dataset(tmp_path / "env", payload["files"])
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "env"))
    _assert_loaded(load_cifar10(download=False), payload)


# --- Downloading ------------------------------------------------------------------------

def test_download_success(tmp_path, payload, serve):
    url = serve(payload["archive"])
    data = load_cifar10(tmp_path, progress=False, url=url, md5=payload["md5"])
    _assert_loaded(data, payload)
    # The archive is gone; exactly its files are left, byte-identical, no temporaries.
    directory = tmp_path / "cifar10" / BATCHES
    assert _tree(tmp_path / "cifar10") == sorted(
        [BATCHES] + [f"{BATCHES}/{n}" for n in [*payload["files"], "readme.html"]])
    for name, content in payload["files"].items():
        assert (directory / name).read_bytes() == content
    assert len(serve.last.requests) == 1
    assert not serve.last.requests[0][1].startswith("Python-urllib")
    # Everything is there now: another call fetches nothing.
    assert download_cifar10(tmp_path, progress=False, url=url) == directory
    assert len(serve.last.requests) == 1


def test_download_replaces_partial_training_set(tmp_path, payload, serve):
    directory = _write_dataset(tmp_path, payload["files"], skip=TRAIN_FILES[2:])
    (directory / "test_batch.bin").write_bytes(bytes(RECORDS * 3073))  # to be replaced
    url = serve(payload["archive"])
    _assert_loaded(load_cifar10(tmp_path, progress=False, url=url, md5=payload["md5"]), payload)


def test_progress_bar_is_shown(tmp_path, payload, serve, capsys):
    url = serve(payload["archive"])
    download_cifar10(tmp_path, progress=True, url=url, md5=payload["md5"])
    assert "cifar-10-binary.tar.gz" in capsys.readouterr().err


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/kriz/cifar-10-binary.tar.gz"


def _assert_download_failed(tmp_path, info, url, reason):
    """One message: the URL, why it failed, how to install by hand; nothing left behind."""
    message = str(info.value)
    base = tmp_path / "cifar10"
    assert message.startswith(f"could not download CIFAR-10 from {url}: {reason}")
    assert "To install CIFAR-10 by hand" in message
    assert f"tar -xzf cifar-10-binary.tar.gz -C {base}" in message
    assert str(base / BATCHES) in message and "MINIDL_DATA" in message
    assert _tree(tmp_path) == ["cifar10"]


def test_offline_is_one_clear_error(tmp_path, closed_port_url):
    with pytest.raises(CIFAR10Error) as info:
        load_cifar10(tmp_path, progress=False, url=closed_port_url)
    _assert_download_failed(tmp_path, info, closed_port_url, "cannot connect: ")
    assert "Connection refused" in str(info.value)


def test_http_error_is_named(tmp_path, payload, serve):
    url = serve(payload["archive"], status=403)
    with pytest.raises(CIFAR10Error) as info:
        load_cifar10(tmp_path, progress=False, url=url)
    _assert_download_failed(tmp_path, info, url, "HTTP 403 Forbidden")


def test_md5_mismatch_leaves_nothing_behind(tmp_path, payload, serve):
    url = serve(payload["archive"])
    with pytest.raises(CIFAR10Error) as info:
        load_cifar10(tmp_path, progress=False, url=url, md5="0" * 32)
    _assert_download_failed(tmp_path, info, url,
                            f"MD5 mismatch: expected {'0' * 32}, received {payload['md5']}")


def test_truncated_download_leaves_nothing_behind(tmp_path, payload, serve):
    url = serve(payload["archive"], truncate=True)
    size = len(payload["archive"])
    with pytest.raises(CIFAR10Error) as info:
        # No MD5: the Content-Length check alone must catch it.
        load_cifar10(tmp_path, progress=False, url=url, md5=None)
    _assert_download_failed(tmp_path, info, url,
                            f"expected {size} bytes, received {size // 2}")


def test_archive_without_training_files(tmp_path, payload, serve):
    files = {n: d for n, d in payload["files"].items() if n != "data_batch_5.bin"}
    archive = _tar_gz([_file(f"{BATCHES}/{n}", d) for n, d in files.items()])
    url = serve(archive)
    with pytest.raises(CIFAR10Error, match=r"lacks data_batch_5\.bin\."):
        load_cifar10(tmp_path, progress=False, url=url, md5=None)
    assert not (tmp_path / "cifar10" / "cifar-10-binary.tar.gz").exists()


def test_corrupt_archive_is_named(tmp_path, payload, serve):
    url = serve(payload["archive"][:-100] + bytes(100))  # the gzip trailer and more, zeroed
    with pytest.raises(CIFAR10Error, match=r"cifar-10-binary\.tar\.gz: cannot extract into "):
        load_cifar10(tmp_path, progress=False, url=url, md5=None)
    assert not (tmp_path / "cifar10" / "cifar-10-binary.tar.gz").exists()


# Each unsafe member: (name, kind, linkname, what the refusal says). "{outside}" is
# replaced by a path next to the data root, which must stay untouched.
_UNSAFE = {
    "dotdot": (f"{BATCHES}/../../outside.bin", None, "",
               "expected a path inside the target directory, received one with '..'"),
    "absolute": ("{outside}", None, "", "expected a relative path, received an absolute one"),
    "symlink": (f"{BATCHES}/data_batch_1.bin", tarfile.SYMTYPE, "{outside}",
                "expected a regular file or a directory, received a symbolic link to '{outside}'"),
    "hardlink": (f"{BATCHES}/data_batch_1.bin", tarfile.LNKTYPE, "{outside}",
                 "expected a regular file or a directory, received a hard link to '{outside}'"),
    "char_device": (f"{BATCHES}/zero", tarfile.CHRTYPE, "",
                    "expected a regular file or a directory, received a device"),
    "block_device": (f"{BATCHES}/disk", tarfile.BLKTYPE, "",
                     "expected a regular file or a directory, received a device"),
    "fifo": (f"{BATCHES}/pipe", tarfile.FIFOTYPE, "",
             "expected a regular file or a directory, received a FIFO"),
}


@pytest.mark.parametrize("case", list(_UNSAFE))
def test_unsafe_archive_members_are_refused(tmp_path, payload, serve, case):
    root = tmp_path / "root"
    outside = str(tmp_path / "outside.bin")
    name, kind, linkname, why = (s.format(outside=outside) if isinstance(s, str) else s
                                 for s in _UNSAFE[case])
    safe = [_dir(BATCHES)] + [_file(f"{BATCHES}/{n}", d) for n, d in payload["files"].items()]
    bad = _file(name, b"evil") if kind is None else _special(name, kind, linkname)
    # Safe members on both sides: the refusal must come before anything is written.
    archive = _tar_gz(safe[:3] + [bad] + safe[3:])
    url = serve(archive)
    with pytest.raises(CIFAR10Error) as info:
        load_cifar10(root, progress=False, url=url, md5=hashlib.md5(archive).hexdigest())
    archive_path = root / "cifar10" / "cifar-10-binary.tar.gz"
    assert str(info.value).startswith(f"{archive_path}: refused member {name!r}: {why}; "
                                      f"nothing was extracted.")
    # Nothing extracted, the archive removed, nothing written outside.
    assert _tree(tmp_path) == ["root", "root/cifar10"]


def test_fifo_in_place_of_a_file_is_named(tmp_path, payload):
    directory = _write_dataset(tmp_path, payload["files"], skip=("data_batch_2.bin",))
    os.mkfifo(directory / "data_batch_2.bin")  # reading it would block forever
    with pytest.raises(CIFAR10Error, match=r"data_batch_2\.bin: expected a file, "
                                           r"received a named pipe"):
        load_cifar10(tmp_path, download=False)


def test_extract_tar_writes_only_inside_the_target(tmp_path, payload):
    # Names as `tar -C dir .` writes them: "./" first, then "./"-prefixed paths.
    setuid = _file("top.txt", b"top")
    setuid[0].mode = 0o4777
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz([_dir("."), _dir("./sub"), _file("./sub/x.bin", b"x"), setuid]))
    target = tmp_path / "out"
    written = extract_tar(archive, target)
    assert written == [target / "sub" / "x.bin", target / "top.txt"]
    assert _tree(target) == ["sub", "sub/x.bin", "top.txt"]
    assert (target / "top.txt").read_bytes() == b"top"
    # The archive's mode is ignored: a plain file with the usual permissions.
    assert (target / "top.txt").stat().st_mode & 0o7777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_extract_tar_refuses_archives_that_are_not_tar(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"not a tar file at all" * 40)
    with pytest.raises(ArchiveError, match=r"a\.tar\.gz: cannot extract into .*out \(ReadError"):
        extract_tar(archive, tmp_path / "out")
    assert _tree(tmp_path) == ["a.tar.gz"]
