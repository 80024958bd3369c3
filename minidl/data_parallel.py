"""Data parallelism: a training batch cut into shards, each shard run forward and
backward in its own process, the gradients summed in shard order.

Why processes. :mod:`minidl.parallel` splits each layer's work over threads, but
between NumPy calls those threads wait for each other's hold on the GIL: with
LeNet's small layers, two threads ran a training step only 1.12x faster than one.
A second process has an interpreter of its own. It runs the whole network on one
shard while this process runs another: in the same hour, LeNet's training step at
batch 64 took 5.4 ms on whole batches and 4.5 ms on two shards
(``benchmarks/bench.py --shards 1``, and without).

How. On its first call a :class:`ShardedStep` (training) or :class:`ShardedForward`
(evaluation) forks worker processes (Linux only; elsewhere, and with one core, every
shard runs here, one after another). A worker holds a copy of the model made by the
fork. Each step:

1. this process copies the parameters (and batch norm's running statistics), and
   each worker's shard of the batch, into memory shared with the workers;
2. every process runs forward, the loss and backward on its shards; a worker
   writes its gradients into shared memory;
3. this process adds them, shard by shard, to the parameters' gradients.

Determinism. The numbers depend on the number of shards, never on how many
processes run them: every shard's gradients are computed from zero and added in
shard order, whichever process computed them. They differ from a whole batch's in
the last bits (sums taken in another order), as any change of summation does.

Which models. Only those whose every layer is
:attr:`~minidl.layers.Layer.per_example` in training: batch normalisation's
statistics and dropout's random draws need the whole batch in one place.
:func:`default_shards` says 1 for the others.
"""

from __future__ import annotations

import builtins
import contextlib
import math
import mmap
import os
import signal
import struct
import sys
import warnings
import weakref
from multiprocessing.connection import Connection, Pipe
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from minidl import checks, parallel
from minidl.layers.base import Layer

__all__ = ["ShardedStep", "ShardedForward", "run_shard", "default_shards", "default_processes",
           "whole_batch_layers", "shard_bounds"]

#: The default number of shards: one per core of the machines minidl was tuned on.
#: Fixed, not read from the machine, so that a seed gives the same numbers everywhere.
DEFAULT_SHARDS = 2


def whole_batch_layers(model: Layer) -> list[str]:
    """Names of the layers of ``model`` that need the whole batch in training (those
    not :attr:`~minidl.layers.Layer.per_example`), as ``"name (Type)"``."""
    return [f"{name or '(model)'} ({type(layer).__name__})"
            for name, layer in model.named_modules() if not layer.per_example]


def default_shards(model: Layer) -> int:
    """:data:`DEFAULT_SHARDS` when every layer of ``model`` allows cutting the batch, else 1."""
    return DEFAULT_SHARDS if not whole_batch_layers(model) else 1


def default_processes(shards: int) -> int:
    """Processes for ``shards`` shards: one per shard, up to the threads minidl may use
    (:func:`minidl.parallel.num_threads`: ``OPENBLAS_NUM_THREADS``, or the cores);
    1 where the process cannot fork safely (only Linux is trusted: macOS's system
    libraries do not survive a fork)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return 1
    return max(1, min(shards, parallel.num_threads(), len(os.sched_getaffinity(0))))


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: ``range(n)`` in ``min(shards, n)`` pieces whose sizes
    differ by at most one, larger ones first."""
    count = min(shards, n)
    return [(n * i // count, n * (i + 1) // count) for i in range(count)]


def run_shard(model: Layer, loss: Any, x: np.ndarray, y: np.ndarray,
              n: int) -> tuple[float, np.ndarray]:
    """Forward, loss and backward of one shard ``(x, y)`` of a batch of ``n``, adding the
    gradient of the *batch's* mean loss: the shard's own mean weighted by its share.
    No backward pass when the loss is not finite. Returns the shard's loss and output."""
    with np.errstate(over="ignore", invalid="ignore"):
        # A diverging run overflows; the caller's finite-loss check reports it.
        out = model.forward(x, training=True)
        value = loss.forward(out, y)
    if math.isfinite(value):
        dout = loss.backward()
        if len(x) != n:
            dout *= dout.dtype.type(len(x) / n)
        model.backward(dout, input_grad=False)
    return value, out


_S = TypeVar("_S", bound="_Shards")


class _Shards:
    """What :class:`ShardedStep` and :class:`ShardedForward` share: the shards, the
    worker processes running some of them, and their end."""

    def __init__(self, model: Layer, shards: int, processes: int | None, owner: str) -> None:
        if not isinstance(model, Layer):
            raise ValueError(f"{owner}: expected a minidl Layer as the model, "
                             f"received {type(model).__name__}")
        self.model = model
        self.loss: Any = None
        self.shards = checks.integer(shards, "shards", owner, minimum=1)
        self.processes = (default_processes(self.shards) if processes is None else
                          checks.integer(processes, "processes", owner, minimum=1,
                                         maximum=self.shards))
        self._workers: list[_Worker] = []
        self._layout: tuple[Any, ...] | None = None  # what the workers were forked for

    def _send(self, training: bool, params: list, x: np.ndarray, y: np.ndarray | None,
              bounds: list[tuple[int, int]]) -> bool:
        """Start the workers on their shards of ``(x, y)``; False when this process
        runs every shard itself."""
        remote = self._remote_shards(len(bounds))
        if not remote:
            return False
        ys = y if y is not None else np.zeros(len(x), np.int8)
        self._start(params, x, ys, max(b - a for a, b in bounds))
        for worker in self._workers:
            work = [(s, x[bounds[s][0]:bounds[s][1]], ys[bounds[s][0]:bounds[s][1]])
                    for s in remote.get(worker.index, [])]
            if work:
                worker.send(training, params, len(x), work)
        return True

    def _gather(self, run_here: Callable[[int, int, int], tuple[float, np.ndarray]],
                bounds: list[tuple[int, int]], remote: bool
                ) -> dict[int, tuple[float, np.ndarray]]:
        """``run_here(s, start, stop)`` for this process's shards, then every worker's
        answers: ``{shard: (loss, output)}``."""
        results: dict[int, tuple[float, np.ndarray]] = {}
        error: BaseException | None = None
        try:
            with parallel.inline() if remote else contextlib.nullcontext():
                for s, (a, b) in enumerate(bounds):
                    if s % self.processes == 0:
                        results[s] = run_here(s, a, b)
        except BaseException as failure:
            error = failure
        finally:
            # Every worker's answer is read, even after a failure here, so that the
            # next call starts with the workers idle.
            for worker in self._workers:
                try:
                    results.update(worker.receive())
                except BaseException as failure:
                    error = error or failure
        if error is not None:
            raise error
        return results

    # -- the workers -----------------------------------------------------------------
    def _remote_shards(self, count: int) -> dict[int, list[int]]:
        """Worker index (1 ...) -> the shards it runs; shard ``s`` runs in process
        ``s % processes``, 0 being this one."""
        remote: dict[int, list[int]] = {}
        for s in range(count):
            if s % self.processes:
                remote.setdefault(s % self.processes, []).append(s)
        return remote

    def _start(self, params: list, x: np.ndarray, y: np.ndarray, rows: int) -> None:
        """Fork the workers, unless those running fit this batch and these parameters."""
        buffers = _buffers(self.model)
        layout = (tuple(id(p) for p in params), tuple((p.shape, p.dtype) for p in params),
                  tuple((id(layer), name, getattr(layer, name).shape) for layer, name in buffers),
                  x.shape[1:], x.dtype, y.shape[1:], y.dtype)
        if self._workers and self._layout is not None:
            fits = self._layout[:-1] == layout and rows <= self._layout[-1]
            if fits and all(worker.alive for worker in self._workers):
                return
        self.close()
        remote = self._remote_shards(self.shards)
        self._workers = [_Worker(index, self.model, self.loss, shards, params, buffers, rows,
                                 (x.shape[1:], x.dtype), (y.shape[1:], y.dtype))
                         for index, shards in sorted(remote.items())]
        self._layout = (*layout, rows)

    def close(self) -> None:
        """End the worker processes (a later call forks new ones)."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the workers see their pipe close
            pass


class ShardedStep(_Shards):
    """A training step's forward pass, loss and backward pass over ``shards`` pieces
    of the batch, the pieces run in up to ``processes`` processes at once.

    ::

        step = ShardedStep(model, SoftmaxCrossEntropy(), shards=2)
        optimizer.zero_grad()
        value, logits = step(x, y)  # adds the batch's gradients to the parameters'
        optimizer.step()
        step.close()                # or ``with ShardedStep(...) as step:``

    Parameters
    ----------
    model : Layer
        Every layer :attr:`~minidl.layers.Layer.per_example` when ``shards > 1``.
    loss
        ``forward(prediction, target) -> float``, the *mean* over the examples, and
        ``backward() -> d loss / d prediction`` (the losses of :mod:`minidl.losses`).
    shards : int
        Pieces each batch is cut into (:func:`shard_bounds`); 1 is the plain step.
    processes : int, optional
        Processes running shards at once, this one included (default
        :func:`default_processes`); at most ``shards``.

    Shape
    -----
    ``x`` ``(N, ...)`` and ``y`` ``(N, ...)``; returns the loss (mean over the ``N``
    examples, a float) and the model's output ``(N, ...)``.
    """

    def __init__(self, model: Layer, loss: Any, shards: int = DEFAULT_SHARDS,
                 processes: int | None = None) -> None:
        super().__init__(model, shards, processes, "ShardedStep")
        self.loss = loss
        blocking = whole_batch_layers(model)
        if self.shards > 1 and blocking:
            raise ValueError(f"ShardedStep: expected shards=1 for a model whose layers "
                             f"{', '.join(blocking)} need the whole batch in training "
                             f"(batch statistics or random draws), received "
                             f"shards={self.shards}")
        self._local_grads: dict[int, list[np.ndarray]] = {}  # shard -> gradient arrays

    # -- the step -------------------------------------------------------------------
    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward, loss and backward over the batch ``(x, y)``; the gradients are added
        to the parameters' (zero them first for this batch's alone). When a shard's
        loss is not finite, no backward pass runs for it: the caller is to stop."""
        n = len(x)
        if len(y) != n:
            raise ValueError(f"ShardedStep: expected as many targets as inputs ({n}), "
                             f"received {len(y)}")
        bounds = shard_bounds(n, self.shards)
        if len(bounds) < 2:
            return run_shard(self.model, self.loss, x, y, n)
        params = self.model.parameters()
        remote = self._send(True, params, x, y, bounds)
        results = self._gather(lambda s, a, b: self._run_local(s, params, x[a:b], y[a:b], n),
                               bounds, remote)
        value = math.fsum(results[s][0] * (b - a) for s, (a, b) in enumerate(bounds)) / n
        if math.isfinite(value):
            for s in range(1, len(bounds)):
                grads = (self._workers[s % self.processes - 1].grads(s)
                         if s % self.processes else self._local_grads[s])
                for p, g in zip(params, grads):
                    p.grad += g
        return value, np.concatenate([results[s][1] for s in range(len(bounds))])

    def _run_local(self, s: int, params: list, x: np.ndarray, y: np.ndarray,
                   n: int) -> tuple[float, np.ndarray]:
        """Shard ``s`` in this process: shard 0 adds to the parameters' gradients, the
        others fill arrays of their own (from zero), added in shard order later."""
        if s == 0:
            return run_shard(self.model, self.loss, x, y, n)
        grads = self._local_grads.get(s)
        if grads is None or [g.shape for g in grads] != [p.shape for p in params]:
            grads = self._local_grads[s] = [np.zeros_like(p.grad) for p in params]
        saved = [p.grad for p in params]
        try:
            for p, g in zip(params, grads):
                g[...] = 0
                p.grad = g
            return run_shard(self.model, self.loss, x, y, n)
        finally:
            for p, g in zip(params, saved):
                p.grad = g


class ShardedForward(_Shards):
    """The model's evaluation-mode output, the batch cut into ``shards`` pieces run in
    up to ``processes`` processes at once. Any model: in evaluation mode every layer
    treats each example on its own (batch norm uses its running statistics, dropout
    is the identity).

    Each example's output is computed as in a batch of its shard's size; for most
    models that is bit for bit the whole batch's, for some (an FFT convolution,
    cache-sized pieces of a wide layer) it differs in the last bits.

    Shape
    -----
    ``x`` ``(N, ...)``; returns the model's output ``(N, ...)``.
    """

    def __init__(self, model: Layer, shards: int = DEFAULT_SHARDS,
                 processes: int | None = None) -> None:
        super().__init__(model, shards, processes, "ShardedForward")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        bounds = shard_bounds(len(x), self.shards)
        if len(bounds) < 2:
            return self.model.forward(x, training=False)
        remote = self._send(False, self.model.parameters(), x, None, bounds)
        results = self._gather(
            lambda s, a, b: (0.0, self.model.forward(x[a:b], training=False)), bounds, remote)
        return np.concatenate([results[s][1] for s in range(len(bounds))])


def _worker_error(report: str, index: int) -> Exception:
    """The exception a worker reported (its type's name, a newline, its message): the
    same built-in type when there is one that takes a message (a layer's ValueError
    stays a ValueError), else a RuntimeError naming the type."""
    kind, _, text = report.partition("\n")
    where = f" (in worker process {index})"
    error = getattr(builtins, kind, None)
    if isinstance(error, type) and issubclass(error, Exception):
        try:
            return error(text + where)
        except TypeError:  # a built-in that wants other arguments (UnicodeDecodeError)
            pass
    return RuntimeError(f"{kind}: {text}{where}")


def _buffers(model: Layer) -> list[tuple[Layer, str]]:
    """Every buffer of ``model`` (batch norm's running statistics) as (layer, attribute)."""
    return [(layer, name) for layer in model.modules() for name in layer._buffers]


#: The ends of the pipes this process holds to its workers: a new worker closes its
#: copies of them, or an older worker would never see its pipe close.
_OPEN_ENDS: weakref.WeakSet[Connection] = weakref.WeakSet()


class _Shared:
    """Arrays in one block of memory shared with the processes forked after it."""

    def __init__(self, layouts: Sequence[tuple[tuple[int, ...], Any]]) -> None:
        offsets, total = [], 0
        for shape, dtype in layouts:
            offsets.append(total)
            total += -(-math.prod(shape) * np.dtype(dtype).itemsize // 64) * 64
        self.memory = mmap.mmap(-1, max(total, 1))  # anonymous, MAP_SHARED
        self.arrays = [np.frombuffer(self.memory, np.dtype(dtype), math.prod(shape),
                                     offset).reshape(shape)
                       for (shape, dtype), offset in zip(layouts, offsets)]


class _Worker:
    """One forked process running the shards ``shards`` of every batch.

    Shared memory: the parameters and buffers (written here, read there), and per
    shard its inputs, targets (here -> there) and gradients (there -> here). The pipe carries
    the row counts one way and, back, each shard's loss and output, or an error.
    """

    def __init__(self, index: int, model: Layer, loss: Any, shards: list[int], params: list,
                 buffers: list[tuple[Layer, str]], rows: int,
                 x_layout: tuple[tuple[int, ...], Any],
                 y_layout: tuple[tuple[int, ...], Any]) -> None:
        self.index, self.buffers = index, buffers
        self.pending: list[int] = []  # the shards sent and not yet answered
        layouts: list[tuple[tuple[int, ...], Any]] = [(p.shape, p.dtype) for p in params]
        layouts += [(getattr(layer, name).shape, getattr(layer, name).dtype)
                    for layer, name in buffers]
        for _ in shards:
            layouts += [((rows, *x_layout[0]), x_layout[1]), ((rows, *y_layout[0]), y_layout[1])]
            layouts += [(p.shape, p.dtype) for p in params]
        self.shared = _Shared(layouts)
        arrays = iter(self.shared.arrays)
        self.params = [next(arrays) for _ in params]
        self.buffer_copies = [next(arrays) for _ in buffers]
        self.slots: dict[int, tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = {}
        for s in shards:
            self.slots[s] = (next(arrays), next(arrays), [next(arrays) for _ in params])
        here, there = Pipe(duplex=True)
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a process with threads may deadlock the
            # child in a lock one of them held. The child touches none of them: it
            # runs minidl.parallel inline and never uses the helper threads.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the worker: it never returns from here
            status = 1
            try:
                here.close()
                for end in list(_OPEN_ENDS):
                    end.close()
                for (layer, name), shared in zip(buffers, self.buffer_copies):
                    setattr(layer, name, shared)
                _serve(there, model, loss, params, self.params, self.slots)
                status = 0
            finally:
                os._exit(status)
        there.close()
        self.pid, self.conn = pid, here
        _OPEN_ENDS.add(here)

    @property
    def alive(self) -> bool:
        return self.pid is not None and not self.conn.closed

    def send(self, training: bool, params: list, n: int,
             work: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        """Copy the parameters and the shards of a batch of ``n`` over, and start the
        worker on them: a training step's forward and backward passes, or else the
        evaluation-mode forward pass."""
        for shared, p in zip(self.params, params):
            np.copyto(shared, p.data)
        for shared, (layer, name) in zip(self.buffer_copies, self.buffers):
            np.copyto(shared, getattr(layer, name))  # batch norm's running statistics
        rows = []
        for s, x, y in work:
            xs, ys, _ = self.slots[s]
            xs[:len(x)] = x
            ys[:len(y)] = y
            rows.append(len(x))
        self.conn.send_bytes(struct.pack(f"<?{2 + len(rows)}q", training, n, len(rows), *rows))
        self.pending = [s for s, _, _ in work]

    def receive(self) -> dict[int, tuple[float, np.ndarray]]:
        """Each shard's (loss, output) from the worker; raises the worker's error."""
        if not self.pending:
            return {}
        try:
            message = self.conn.recv_bytes()
        except (EOFError, OSError):
            self.stop()
            raise RuntimeError(f"ShardedStep: worker process {self.index} ended in the "
                               f"middle of a step (killed, or out of memory?)") from None
        sent, self.pending = self.pending, []
        if message[:1] == b"E":
            raise _worker_error(message[1:].decode("utf-8", "replace"), self.index)
        results, offset = {}, 1
        for s in sent:
            value, size, dtype_length = struct.unpack_from("<dqq", message, offset)
            offset += 24
            dtype = np.dtype(message[offset:offset + dtype_length].decode())
            offset += dtype_length
            (ndim,) = struct.unpack_from("<q", message, offset)
            shape = struct.unpack_from(f"<{ndim}q", message, offset + 8)
            offset += 8 + 8 * ndim
            out = np.frombuffer(message, dtype, size // dtype.itemsize, offset).reshape(shape)
            offset += size
            results[s] = (value, out)
        return results

    def grads(self, s: int) -> list[np.ndarray]:
        """Shard ``s``'s gradients, one array per parameter (valid after :meth:`receive`)."""
        return self.slots[s][2]

    def stop(self) -> None:
        """Close the pipe (the worker exits when it reads its end) and reap the process;
        a worker busy with a step nobody will read is killed."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        if self.pending:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _OPEN_ENDS.discard(self.conn)
        self.conn.close()
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _serve(conn: Connection, model: Layer, loss: Any, params: list,
           shared_params: list[np.ndarray],
           slots: dict[int, tuple[np.ndarray, np.ndarray, list[np.ndarray]]]) -> None:
    """The worker's loop: run the shards it is sent until its pipe closes."""
    # Ctrl-C reaches the whole process group: the parent decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for p, shared in zip(params, shared_params):
        p.data = shared
    with parallel.blas_threads(1), parallel.inline():
        while True:
            try:
                message = conn.recv_bytes()
            except (EOFError, OSError):
                return
            training, n, count = struct.unpack_from("<?qq", message)
            rows = struct.unpack_from(f"<{count}q", message, 17)
            parts = [b"K"]
            try:
                for s, size in zip(slots, rows):
                    xs, ys, grads = slots[s]
                    if training:
                        for p, g in zip(params, grads):
                            g[...] = 0
                            p.grad = g
                        value, out = run_shard(model, loss, xs[:size], ys[:size], n)
                    else:
                        value, out = 0.0, model.forward(xs[:size], training=False)
                    out = np.ascontiguousarray(out)
                    dtype = out.dtype.str.encode()
                    parts += [struct.pack("<dqq", value, out.nbytes, len(dtype)), dtype,
                              struct.pack(f"<q{out.ndim}q", out.ndim, *out.shape),
                              out.tobytes()]
                reply = b"".join(parts)
            except Exception as error:
                reply = b"E" + f"{type(error).__name__}\n{error}".encode("utf-8", "replace")
            try:
                conn.send_bytes(reply)
            except OSError:  # the parent stopped listening
                return
