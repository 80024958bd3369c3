"""Getting dataset files: the one place the datasets touch the network.

:func:`fetch` streams a URL to a hidden temporary file beside its target (with
a tqdm bar), checks it against the announced Content-Length and an optional
MD5, and only then renames it into place (:func:`minidl.atomic.atomic_open`),
so a failed or interrupted download never leaves a partial file that a later
run would take for the real one. Every failure becomes a :class:`DownloadError`
whose reason is short enough to list one line per URL tried.

:func:`missing_files` decides what needs downloading (a directory where a file
belongs is an error, not a missing file) and :func:`extract_tar` unpacks an
archive without letting it write anything but files and directories inside
its target.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from minidl.atomic import atomic_open

__all__ = ["DownloadError", "fetch", "exists_as_file", "missing_files", "ArchiveError",
           "extract_tar"]

# Some servers (the original MNIST site among them) reject urllib's default agent.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) minidl-datasets/0.1"
_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """One URL could not be fetched.

    ``str(error)`` is the reason alone (``"HTTP 404 Not Found"``, ``"timed out
    after 30 s"``, ``"MD5 mismatch: ..."``); ``url`` and ``reason`` are kept
    as attributes so callers can phrase the message for their dataset.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(reason)
        self.url = url
        self.reason = reason


def fetch(url: str, target: str | os.PathLike, *, md5: str | None = None,
          timeout: float = 30.0, progress: bool = True) -> Path:
    """Download ``url`` to ``target``, atomically.

    Parameters
    ----------
    url : str
        The address (http, https or file).
    target : str or os.PathLike
        Destination file; its directory must exist. An existing file is
        replaced only once the download is complete and verified.
    md5 : str, optional
        Expected MD5 hex digest of the content; None skips the check.
    timeout : float
        Seconds to wait on the connection and on each read.
    progress : bool
        Show a tqdm progress bar (on stderr) named after the target file.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    DownloadError
        On an HTTP error status, a refused connection or unknown host, a
        timeout, fewer or more bytes than the Content-Length announced, an
        MD5 mismatch, or a failure writing the file. Nothing is left behind.
    """
    target = Path(target)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=timeout) as response, \
                atomic_open(target) as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            digest = hashlib.md5()
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=target.name, disable=not progress, leave=False) as bar:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            # Raising inside atomic_open removes the temporary file.
            if total is not None and received != total:
                raise DownloadError(url, f"expected {total} bytes, received {received} "
                                         f"(the connection ended early)")
            if md5 is not None and digest.hexdigest() != md5.lower():
                raise DownloadError(url, f"MD5 mismatch: expected {md5}, "
                                         f"received {digest.hexdigest()}")
    except urllib.error.HTTPError as err:
        raise DownloadError(url, f"HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            reason = f"timed out after {timeout:g} s"
        elif isinstance(err.reason, OSError):  # refused, unknown host, TLS failure, ...
            reason = f"cannot connect: {err.reason}"
        else:
            reason = str(err.reason)
        raise DownloadError(url, reason) from err
    except TimeoutError as err:
        raise DownloadError(url, f"timed out after {timeout:g} s") from err
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise DownloadError(url, f"{type(err).__name__}: {err}") from err
    return target


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def exists_as_file(path: Path, error: Callable[[str], Exception]) -> bool:
    """Whether a regular file is at ``path``: True if so, False if nothing is.

    Anything else in its place (a directory, a pipe, ...) is not "missing":
    a download could not replace it, so it is reported at once by raising
    ``error(message)``, the message naming the path.

    Parameters
    ----------
    path : Path
        Where the file belongs. A symbolic link counts as what it points to
        (a dangling one as nothing).
    error : callable
        Builds the exception to raise from a message (the dataset's error class).

    Returns
    -------
    bool
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise error(f"{path}: expected a file in a directory, but {path.parent} or one of "
                    f"its parents is a file") from None
    if not stat.S_ISREG(mode):
        kind = next((k for is_kind, k in _KINDS if is_kind(mode)), "something else")
        raise error(f"{path}: expected a file, received {kind}; remove it and put "
                    f"the file there instead")
    return True


def missing_files(directory: Path, names: Iterable[str],
                  error: Callable[[str], Exception]) -> list[str]:
    """The ``names`` that do not exist in ``directory``, in the order given.

    Something other than a regular file where one of them belongs raises
    ``error(message)``, as in :func:`exists_as_file`; the directory need not exist.
    """
    return [name for name in names if not exists_as_file(directory / name, error)]


class ArchiveError(RuntimeError):
    """An archive is unreadable or holds a member that must not be extracted;
    the message names the archive and the member."""


def _destination(member: tarfile.TarInfo, target: Path, archive: Path) -> Path | None:
    """Where ``member`` goes under ``target`` (None for the target itself), or ArchiveError."""
    def refuse(why: str) -> ArchiveError:
        return ArchiveError(f"{archive}: refused member {member.name!r}: {why}; "
                            f"nothing was extracted")

    # A crafted name could point anywhere; only plain relative names are accepted.
    path = PurePosixPath(member.name)
    if not member.name or path.is_absolute():
        raise refuse("expected a relative path, received an absolute one"
                     if member.name else "expected a name, received an empty one")
    if ".." in path.parts:
        raise refuse("expected a path inside the target directory, received one with '..'")
    # Links could point outside the target (or let a later member write through
    # them), devices and pipes have no place in a dataset: only files and directories.
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        raise refuse(f"expected a regular file or a directory, received a {kind} link "
                     f"to {member.linkname!r}")
    if member.ischr() or member.isblk():
        raise refuse("expected a regular file or a directory, received a device")
    if member.isfifo():
        raise refuse("expected a regular file or a directory, received a FIFO")
    if not (member.isreg() or member.isdir()):
        raise refuse(f"expected a regular file or a directory, received tar type "
                     f"{member.type!r}")
    if not path.parts:  # "." or "./": the target directory itself
        if member.isdir():
            return None
        raise refuse("expected a file name, received the target directory itself")
    destination = target.joinpath(*path.parts)
    # Implied by the checks above; kept so that no later change can forget it.
    if os.path.commonpath([target, destination]) != os.fspath(target):
        raise refuse(f"expected a path inside {target}")
    return destination


def extract_tar(archive: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Extract a tar archive (plain, gzip, bzip2 or xz) into ``target``, safely.

    Every member is checked before anything is written: only relative paths
    without ``..`` that stay inside ``target``, and only regular files and
    directories, are accepted; one symbolic or hard link, device, FIFO,
    absolute path or ``..`` refuses the whole archive. Files are written
    atomically with the usual permissions (the archive's owners, modes and
    times are ignored) and replace files of the same name.

    Parameters
    ----------
    archive : str or os.PathLike
        The tar file.
    target : str or os.PathLike
        The directory to extract into; created if needed.

    Returns
    -------
    list of Path
        The regular files written, in archive order.

    Raises
    ------
    ArchiveError
        If a member is refused (naming it; nothing is written then), or the
        archive is corrupt or truncated, or a file cannot be written.
    """
    archive = Path(archive)
    target = Path(os.path.abspath(target))
    written = []
    try:
        # Streaming mode ("r|*") reads the compressed archive once per pass
        # instead of seeking back and forth in it.
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                _destination(member, target, archive)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                destination = _destination(member, target, archive)
                if destination is None:
                    continue
                if member.isdir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, atomic_open(destination) as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                written.append(destination)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        # gzip.BadGzipFile is an OSError; a truncated stream raises EOFError or ReadError.
        raise ArchiveError(f"{archive}: cannot extract into {target} "
                           f"({type(err).__name__}: {err})") from err
    return written
