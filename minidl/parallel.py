"""Splitting work over the cores that NumPy's BLAS was given.

NumPy runs matrix products on several threads (OpenBLAS), but copies and
element-wise operations on one. A convolution is both: gathering the im2col
columns is a copy, the product is BLAS. So minidl splits the batch into
cache-sized chunks and runs them on the calling thread and a small pool of
helper threads (NumPy releases the GIL in copies, ufuncs and BLAS calls), with
BLAS itself held to one thread meanwhile, so the total never exceeds the threads
the user gave BLAS (``OPENBLAS_NUM_THREADS``, or all cores). Every layer's
products go through :func:`run`, so BLAS's own threads, which cost more to wake
than a small product takes, are never used by minidl; NumPy code outside minidl
keeps them.

The number of workers is read from OpenBLAS when minidl can find and control it
(NumPy's own wheels ship it). With any other BLAS, or with one thread, the
chunks run one after another on the calling thread: the same numbers, no
parallelism. ``set_num_threads(1)`` turns it off.

Determinism: a result never depends on which worker ran a chunk. Each chunk
writes its own slice of the output; sums over chunks are taken in chunk order
by the caller (see :func:`run`).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import math
import os
import queue
import re
import threading
from typing import Any, Callable, Iterator, Sequence

import numpy as np

__all__ = ["num_threads", "set_num_threads", "run", "inline", "chunks", "scratch", "blas_threads"]


class _OpenBLAS:
    """The OpenBLAS that NumPy loaded, found in the process's memory map (Linux)."""

    def __init__(self) -> None:
        self.get: Callable[[], int] | None = None
        self.set: Callable[[int], None] | None = None
        try:
            with open("/proc/self/maps", encoding="utf-8") as maps:
                paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so[.\d]*)", maps.read())))
        except OSError:
            return
        for path in paths:
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            # NumPy's wheels prefix the symbols (scipy_openblas..., 64-bit integers).
            for get_name, set_name in (("scipy_openblas_get_num_threads64_",
                                        "scipy_openblas_set_num_threads64_"),
                                       ("openblas_get_num_threads", "openblas_set_num_threads")):
                get, set_ = getattr(library, get_name, None), getattr(library, set_name, None)
                if get is not None and set_ is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    set_.restype, set_.argtypes = None, [ctypes.c_int]
                    self.get, self.set = get, set_
                    return


_BLAS = _OpenBLAS()  # numpy, imported above, has loaded the BLAS it looks for
_BLAS_THREADS = _BLAS.get() if _BLAS.get is not None else 1
_lock = threading.Lock()
_workers = max(1, _BLAS_THREADS) if _BLAS.set is not None else 1


def num_threads() -> int:
    """How many chunks run at once (1: no threading)."""
    return _workers


def set_num_threads(count: int) -> None:
    """Use ``count`` worker threads (at most BLAS's own count; 1 turns threading off)."""
    global _workers
    from minidl import checks
    count = checks.integer(count, "count", "minidl.parallel.set_num_threads", minimum=1)
    with _lock:
        _workers = min(count, max(1, _BLAS_THREADS)) if _BLAS.set is not None else 1
        _helpers.stop()


@contextlib.contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Hold BLAS to ``count`` threads inside the block (no effect without control)."""
    if _BLAS.set is None or _BLAS.get is None:
        yield
        return
    before = _BLAS.get()
    _BLAS.set(count)
    try:
        yield
    finally:
        _BLAS.set(before)


class _Helpers:
    """The helper threads: the calling thread is the other worker.

    Each waits on one queue for a function to run. Lighter than a
    ThreadPoolExecutor, whose futures cost a small piece's time again per call.
    """

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []

    def submit(self, job: Callable[[], None]) -> None:
        if not self.threads:
            with _lock:
                while len(self.threads) < _workers - 1:
                    thread = threading.Thread(target=self._serve, daemon=True,
                                              name=f"minidl-{len(self.threads) + 1}")
                    thread.start()
                    self.threads.append(thread)
        self.jobs.put(job)

    def _serve(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()

    def stop(self) -> None:
        """End the threads (after the jobs already queued); new ones start when needed."""
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()
        self.threads = []


_helpers = _Helpers()
# A forked child has none of its parent's threads: it starts its own when it needs them.
os.register_at_fork(after_in_child=lambda: setattr(_helpers, "threads", []))


def run(task: Callable[..., Any], arguments: Sequence[Any]) -> list[Any]:
    """``[task(*a) for a in arguments]``, the calls spread over the workers.

    Results come back in the order of ``arguments``; an exception in any call is
    raised here (the first in argument order). Tasks must write disjoint outputs
    (they run concurrently).
    """
    arguments = list(arguments)
    # BLAS on one thread even inline: minidl's pieces are small, and waking BLAS's
    # threads for a small product costs more than the product (tens of times more on
    # a busy machine).
    with blas_threads(1):
        if _workers == 1 or len(arguments) < 2 or getattr(_local, "inline", False):
            return [task(*a) for a in arguments]
        return _Run(task, arguments).results


class _Run:
    """One call of :func:`run`: the calling thread and the helpers take the next call
    from one counter (``next`` on it is atomic under the GIL) until none is left.

    No thread waits for another to be woken before work starts, and the caller waits
    only for calls a helper has actually taken: a helper that wakes after the caller
    has taken every call finds nothing to do, and nobody waits for it. Waking a
    thread costs tens of microseconds here, as much as a small layer's whole piece.
    """

    def __init__(self, task: Callable[..., Any], arguments: list[Any]) -> None:
        self.task, self.arguments = task, arguments
        self.results: list[Any] = [None] * len(arguments)
        self.errors: dict[int, BaseException] = {}
        self.taken = itertools.count()
        self.finished = itertools.count(1)
        self.all_finished = threading.Event()
        # NumPy's floating-point error settings are per thread: carry the caller's over,
        # so np.errstate around a model's forward pass holds in its calls too.
        self.settings = np.geterr()
        for _ in range(min(_workers, len(arguments)) - 1):
            _helpers.submit(self.drain)
        self.drain()
        self.all_finished.wait()
        if self.errors:
            raise self.errors[min(self.errors)]

    def drain(self) -> None:
        count = len(self.arguments)
        with np.errstate(**self.settings):
            while (i := next(self.taken)) < count:
                try:
                    if not self.errors:  # after a failure the rest are only counted
                        self.results[i] = self.task(*self.arguments[i])
                except BaseException as error:  # re-raised by the caller
                    self.errors[i] = error
                finally:
                    if next(self.finished) == count:
                        self.all_finished.set()


@contextlib.contextmanager
def inline() -> Iterator[None]:
    """Inside the block, this thread's :func:`run` calls run one after another on it.

    For a data-parallel shard (:mod:`minidl.data_parallel`): the other cores are
    busy with the other shards. The numbers are the same either way.
    """
    before = getattr(_local, "inline", False)
    _local.inline = True
    try:
        yield
    finally:
        _local.inline = before


def chunks(n: int, per_item_bytes: int, target_bytes: int = 2 << 20,
           minimum_bytes: int = 0) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in pieces of about ``target_bytes``.

    Small pieces keep each one's working set in cache. Their number is even (two
    workers share it evenly) and depends on ``n`` and the sizes only, never on
    the number of workers, so results are the same however many threads run.
    Less than ``minimum_bytes`` of work in all is one piece: not worth a thread.
    """
    if n * per_item_bytes < minimum_bytes:
        return [(0, n)]
    count = 2 * -(-n * max(per_item_bytes, 1) // (2 * target_bytes))
    size = max(1, -(-n // count))
    return [(s, min(s + size, n)) for s in range(0, n, size)]


_local = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """A per-thread work array of ``shape`` (contents undefined), reused between calls.

    Allocating a few megabytes per chunk would cost page faults on every call.
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    size = math.prod(shape)  # not np.prod: this runs per piece, with the GIL held
    key = (name, np.dtype(dtype))
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(size, dtype)
    return buffer[:size].reshape(shape)

