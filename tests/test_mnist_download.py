"""MNIST download, validation and root resolution, against local HTTP servers only.

The expected split sizes are shrunk (EXPECTED_COUNTS is monkeypatched) so the
synthetic files are tiny; every server listens on 127.0.0.1.
"""

import hashlib
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from local_http import LocalServer

import datasets.mnist as mnist
from datasets import MNIST_FILES, MNISTError, default_data_root, load_mnist, write_idx

COUNTS = {"train": 30, "test": 20}


@pytest.fixture(autouse=True)
def small_mnist(monkeypatch):
    monkeypatch.setattr(mnist, "EXPECTED_COUNTS", dict(COUNTS))
    # A proxy from the environment would intercept requests to 127.0.0.1.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    # Nothing here may fall back to the real mirrors.
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/never-used/",))


def _synthetic_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in COUNTS.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % 10).astype(np.uint8)
    return arrays


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> dict:
    """Synthetic MNIST files: arrays, gzip bytes per file name, and their MD5s."""
    source = tmp_path_factory.mktemp("source")
    arrays = _synthetic_arrays()
    files = {}
    for role, name in MNIST_FILES.items():
        write_idx(source / name, arrays[role])
        files[name] = (source / name).read_bytes()
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in files.items()}
    return {"arrays": arrays, "files": files, "md5": md5}


@pytest.fixture
def start_mirror():
    mirrors = []

    def start(files: dict[str, bytes], status: int = 200) -> LocalServer:
        mirrors.append(LocalServer(files, status, prefix="mnist"))
        return mirrors[-1]

    yield start
    for m in mirrors:
        m.close()


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def _assert_loaded(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, role in ((x_train, "train_images"), (y_train, "train_labels"),
                      (x_test, "test_images"), (y_test, "test_labels")):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[role])


def test_download_success(tmp_path, payload, start_mirror):
    mirror = start_mirror(payload["files"])
    result = load_mnist(tmp_path, progress=False, mirrors=[mirror.url],
                        checksums=payload["md5"])
    _assert_loaded(result, payload["arrays"])
    # Exactly the four files, byte-identical, and no temporary files left.
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(MNIST_FILES.values())
    for name, data in payload["files"].items():
        assert (tmp_path / "mnist" / name).read_bytes() == data
    assert len(mirror.requests) == 4
    assert all(not agent.startswith("Python-urllib") for _, agent in mirror.requests)


def test_progress_bar_is_shown(tmp_path, payload, start_mirror, capsys):
    mirror = start_mirror(payload["files"])
    load_mnist(tmp_path, progress=True, mirrors=[mirror.url], checksums=payload["md5"])
    assert MNIST_FILES["train_images"] in capsys.readouterr().err


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, payload, start_mirror):
    mirror = start_mirror(payload["files"])
    wrong = {name: "0" * 32 for name in payload["md5"]}
    with pytest.raises(MNISTError, match=r"MD5 mismatch: expected 0{32}, received [0-9a-f]{32}"):
        load_mnist(tmp_path, progress=False, mirrors=[mirror.url], checksums=wrong)
    assert os.listdir(tmp_path / "mnist") == []


def test_failing_mirrors_fall_through_to_the_next(tmp_path, payload, start_mirror,
                                                  closed_port_url):
    forbidden = start_mirror(payload["files"], status=403)
    tampered = start_mirror({n: d[:-1] + bytes([d[-1] ^ 1]) for n, d in payload["files"].items()})
    good = start_mirror(payload["files"])
    result = load_mnist(tmp_path, progress=False, checksums=payload["md5"],
                        mirrors=[closed_port_url, forbidden.url, tampered.url, good.url])
    _assert_loaded(result, payload["arrays"])
    assert len(forbidden.requests) == len(tampered.requests) == len(good.requests) == 4
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(MNIST_FILES.values())


def test_module_level_mirrors_are_used_by_default(tmp_path, payload, start_mirror, monkeypatch):
    mirror = start_mirror(payload["files"])
    monkeypatch.setattr(mnist, "MIRRORS", (mirror.url,))
    monkeypatch.setattr(mnist, "MD5_CHECKSUMS", payload["md5"])
    _assert_loaded(load_mnist(tmp_path, progress=False), payload["arrays"])


def test_all_mirrors_failing_lists_every_url(tmp_path, payload, start_mirror, closed_port_url):
    forbidden = start_mirror(payload["files"], status=403)
    empty = start_mirror({})
    mirrors = [closed_port_url, forbidden.url, empty.url]
    with pytest.raises(MNISTError) as info:
        load_mnist(tmp_path, progress=False, mirrors=mirrors, checksums=payload["md5"])
    message = str(info.value)
    first = MNIST_FILES["train_images"]
    directory = tmp_path / "mnist"
    assert f"could not download {first} into {directory}" in message
    assert f"{closed_port_url}{first}: cannot connect: " in message
    assert f"{forbidden.url}{first}: HTTP 403 Forbidden" in message
    assert f"{empty.url}{first}: HTTP 404 Not Found" in message
    # Where to put the files by hand, and how to point elsewhere.
    for name in MNIST_FILES.values():
        assert str(directory / name) in message
    assert "MINIDL_DATA" in message and "`root`" in message
    assert os.listdir(directory) == []


def test_hanging_mirror_times_out(tmp_path, payload, start_mirror):
    # Listening but never accepting: the connection opens, no reply ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/mnist/"
        with pytest.raises(MNISTError, match=r"/mnist/train-images-idx3-ubyte\.gz: "
                                             r"timed out after 0\.2 s"):
            load_mnist(tmp_path, progress=False, mirrors=[silent_url], timeout=0.2)
        good = start_mirror(payload["files"])
        result = load_mnist(tmp_path, progress=False, mirrors=[silent_url, good.url],
                            checksums=payload["md5"], timeout=0.2)
    _assert_loaded(result, payload["arrays"])


def test_no_download_with_missing_files(tmp_path, payload):
    directory = tmp_path / "mnist"
    directory.mkdir()
    present = MNIST_FILES["train_labels"]
    (directory / present).write_bytes(payload["files"][present])
    with pytest.raises(MNISTError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert f"missing from {directory}" in message
    for name in MNIST_FILES.values():
        assert (name in message) == (name != present)


def test_present_files_need_no_network_nor_checksum(tmp_path, payload, start_mirror):
    directory = tmp_path / "mnist"
    directory.mkdir()
    for name, data in payload["files"].items():
        (directory / name).write_bytes(data)
    spy = start_mirror(payload["files"])
    # Checksums that match nothing: files on disk are validated by structure only.
    wrong = {name: "0" * 32 for name in payload["md5"]}
    result = load_mnist(tmp_path, mirrors=[spy.url, "http://127.0.0.1:9/"], checksums=wrong)
    _assert_loaded(result, payload["arrays"])
    assert spy.requests == []


def test_only_missing_files_are_downloaded(tmp_path, payload, start_mirror):
    directory = tmp_path / "mnist"
    directory.mkdir()
    present = MNIST_FILES["test_images"]
    (directory / present).write_bytes(payload["files"][present])
    mirror = start_mirror(payload["files"])
    load_mnist(tmp_path, progress=False, mirrors=[mirror.url], checksums=payload["md5"])
    requested = sorted(path.rsplit("/", 1)[-1] for path, _ in mirror.requests)
    assert requested == sorted(n for n in MNIST_FILES.values() if n != present)


def test_directory_in_place_of_a_file_is_named_without_network(tmp_path, payload,
                                                              start_mirror):
    directory = tmp_path / "mnist"
    directory.mkdir()
    blocked = MNIST_FILES["test_labels"]
    (directory / blocked).mkdir()
    spy = start_mirror(payload["files"])
    # Three files are missing as well: only the check keeps this from downloading.
    for load in (lambda: load_mnist(tmp_path, progress=False, mirrors=[spy.url]),
                 lambda: mnist.download_mnist(tmp_path, progress=False, mirrors=[spy.url])):
        with pytest.raises(MNISTError) as info:
            load()
        assert str(info.value).startswith(f"{directory / blocked}: expected a file, "
                                          f"received a directory")
        assert "mirror" not in str(info.value)
    assert spy.requests == []


def _write_split(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for role, name in MNIST_FILES.items():
        write_idx(directory / name, arrays[role])


@pytest.mark.parametrize("role, array, pattern", [
    ("train_images", np.zeros((30, 28, 28), np.int16),
     r"expected IDX magic 2051 \(unsigned bytes, 3 dimensions\), received int16"),
    ("train_labels", np.zeros((30, 1), np.uint8),
     r"expected IDX magic 2049 \(unsigned bytes, 1 dimension\), received uint8 with 2 "),
    ("test_images", np.zeros((20, 28, 27), np.uint8),
     r"expected images of shape 20 x 28 x 28, received 20 x 28 x 27"),
    ("train_images", np.zeros((31, 28, 28), np.uint8),
     r"expected images of shape 30 x 28 x 28, received 31 x 28 x 28"),
    ("test_labels", np.full(20, 10, np.uint8),
     r"expected labels in 0\.\.9, received 10 at index 0"),
])
def test_invalid_local_files_are_named(tmp_path, role, array, pattern):
    arrays = _synthetic_arrays()
    arrays[role] = array
    _write_split(tmp_path / "mnist", arrays)
    with pytest.raises(MNISTError, match=pattern) as info:
        load_mnist(tmp_path, download=False)
    assert str(tmp_path / "mnist" / MNIST_FILES[role]) in str(info.value)


def test_truncated_local_file_is_named(tmp_path):
    _write_split(tmp_path / "mnist", _synthetic_arrays())
    path = tmp_path / "mnist" / MNIST_FILES["train_images"]
    # A plain (not gzip) file whose header claims 30 x 28 x 28 but holds 100 bytes fewer.
    header = bytes([0, 0, 8, 3]) + np.asarray([30, 28, 28], ">u4").tobytes()
    path.write_bytes(header + bytes(30 * 784 - 100))
    with pytest.raises(MNISTError, match=rf"{path.name}: expected 23520 bytes of data for "
                                         rf"30 x 28 x 28 uint8 values, received 23420"):
        load_mnist(tmp_path, download=False)


def test_corrupt_gzip_local_file_is_named(tmp_path):
    _write_split(tmp_path / "mnist", _synthetic_arrays())
    path = tmp_path / "mnist" / MNIST_FILES["test_labels"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(MNISTError, match=rf"{path.name}: expected a complete gzip stream"):
        load_mnist(tmp_path, download=False)


def test_root_resolution(tmp_path, monkeypatch, payload):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "env"))
    assert default_data_root() == tmp_path / "env"
    _write_split(tmp_path / "env" / "mnist", _synthetic_arrays())
    _assert_loaded(load_mnist(download=False), _synthetic_arrays())

    monkeypatch.delenv("MINIDL_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_root() == tmp_path / "xdg" / "minidl"
    with pytest.raises(MNISTError, match=str(tmp_path / "xdg" / "minidl" / "mnist")):
        load_mnist(download=False)

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_root() == tmp_path / "home" / ".cache" / "minidl"
