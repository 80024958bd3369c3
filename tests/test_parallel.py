"""minidl.parallel: the batch split into chunks, and layers that give the same
numbers however the batch is split and however many threads run the pieces."""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np
import pytest

from minidl import parallel
from minidl.layers import AvgPool2D, Conv2D, Dense, MaxPool2D, ReLU


@pytest.mark.parametrize("n, per_item, target", [(1, 10, 100), (7, 10, 20), (100, 3, 50),
                                                  (64, 1 << 20, 2 << 20), (5, 0, 10)])
def test_chunks_cover_the_range_once_in_order(n: int, per_item: int, target: int) -> None:
    pieces = parallel.chunks(n, per_item, target_bytes=target)
    covered = [i for start, stop in pieces for i in range(start, stop)]
    assert covered == list(range(n))
    assert all(stop > start for start, stop in pieces)
    sizes = [stop - start for start, stop in pieces]
    assert len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0]  # equal, but for the last


def test_chunks_below_the_minimum_are_one_piece() -> None:
    assert parallel.chunks(10, 100, target_bytes=10, minimum_bytes=1001) == [(0, 10)]
    assert len(parallel.chunks(10, 100, target_bytes=10, minimum_bytes=1000)) == 10


def test_chunks_depend_on_sizes_only_not_on_threads() -> None:
    before = parallel.num_threads()
    try:
        parallel.set_num_threads(1)
        one = parallel.chunks(1000, 4096)
        parallel.set_num_threads(2)
        two = parallel.chunks(1000, 4096)
    finally:
        parallel.set_num_threads(before)
    assert one == two and len(one) % 2 == 0


def test_run_keeps_the_order_of_its_arguments_and_raises_what_a_call_raised() -> None:
    assert parallel.run(lambda a, b: a * b, [(i, 2) for i in range(9)]) == [2 * i for i in range(9)]

    def fails(i: int) -> int:
        if i == 3:
            raise KeyError("three")
        return i

    with pytest.raises(KeyError, match="three"):
        parallel.run(fails, [(i,) for i in range(6)])


def test_run_shares_the_calls_between_the_calling_thread_and_a_helper() -> None:
    if parallel.num_threads() < 2:
        pytest.skip("one worker here: one BLAS thread, or a BLAS minidl cannot control")
    ran_on = []

    def slow(i: int) -> int:
        ran_on.append(threading.get_ident())
        time.sleep(0.02)  # time.sleep releases the GIL, as NumPy's work does
        return i

    assert parallel.run(slow, [(i,) for i in range(8)]) == list(range(8))
    assert threading.get_ident() in ran_on and len(set(ran_on)) == 2


def test_run_does_not_wait_for_a_helper_that_took_no_call() -> None:
    """With the helper busy elsewhere, the caller runs every call itself and returns:
    it waits only for calls a helper has taken."""
    if parallel.num_threads() < 2:
        pytest.skip("one worker here: one BLAS thread, or a BLAS minidl cannot control")
    release = threading.Event()
    parallel._helpers.submit(lambda: release.wait(30))   # keeps the one helper busy
    done = []
    runner = threading.Thread(target=lambda: done.append(parallel.run(lambda i: i * i,
                                                                       [(i,) for i in range(6)])))
    try:
        runner.start()
        runner.join(10)  # a liveness bound, not a timing: the old run waited for the helper
        assert done == [[i * i for i in range(6)]]
    finally:
        release.set()
        runner.join()


def test_run_raises_the_first_failure_in_argument_order_after_every_taken_call_ended() -> None:
    finished = []

    def work(i: int) -> int:
        if i in (2, 5):
            raise ValueError(f"call {i}")
        time.sleep(0.01)
        finished.append(i)
        return i

    with pytest.raises(ValueError, match="call 2"):
        parallel.run(work, [(i,) for i in range(8)])
    ended = list(finished)
    time.sleep(0.05)
    assert finished == ended  # nothing was still running when run returned


def test_set_num_threads_refuses_a_bad_count() -> None:
    with pytest.raises(ValueError, match="count"):
        parallel.set_num_threads(0)


def test_scratch_is_reused_and_grows() -> None:
    a = parallel.scratch("test", (4, 5), np.float64)
    b = parallel.scratch("test", (2, 3), np.float64)
    assert np.shares_memory(a, b) and b.shape == (2, 3)
    c = parallel.scratch("test", (50, 50), np.float64)
    assert c.shape == (50, 50)
    assert parallel.scratch("test", (2, 3), np.float32).dtype == np.float32


# -- layers: one piece per image against the whole batch at once --------------------------

def _fft(conv: Conv2D) -> Conv2D:
    conv.algorithm = "fft"
    return conv


LAYERS: dict[str, Callable[[], tuple[object, tuple[int, ...]]]] = {
    "conv-s1-p1": lambda: (Conv2D(3, 4, 3, padding=1, dtype=np.float64, rng=1), (5, 3, 6, 7)),
    "conv-s2-groups": lambda: (Conv2D(4, 6, (3, 2), stride=2, groups=2, dtype=np.float64,
                                      rng=1), (5, 4, 7, 6)),
    "conv-table": lambda: (Conv2D(3, 2, 3, connections=[[1, 0, 1], [0, 1, 1]],
                                  dtype=np.float64, rng=1), (5, 3, 5, 5)),
    "conv-fft-groups": lambda: (_fft(Conv2D(4, 6, 3, padding=1, groups=2, dtype=np.float64,
                                            rng=1)), (5, 4, 6, 7)),
    "dense": lambda: (Dense(12, 5, dtype=np.float64, rng=1), (7, 12)),
    "relu": lambda: (ReLU(), (5, 3, 4, 4)),
    "maxpool-ceil": lambda: (MaxPool2D(3, stride=2, ceil_mode=True), (5, 3, 6, 6)),
    "avgpool-p1": lambda: (AvgPool2D(3, stride=2, padding=1), (5, 3, 7, 6)),
}


def _forward_backward(name: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    layer, shape = LAYERS[name]()
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    y = layer.forward(x)
    dx = layer.backward(rng.standard_normal(y.shape))
    return y, dx, [p.grad.copy() for p in layer.parameters()]


def _one_image_per_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    split = parallel.chunks
    monkeypatch.setattr(parallel, "chunks", lambda n, per_item, target_bytes=0, minimum_bytes=0:
                        split(n, per_item, target_bytes=1))


@pytest.mark.parametrize("name", LAYERS)
def test_a_layer_split_into_pieces_gives_the_whole_batch_numbers(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _forward_backward(name)
    _one_image_per_piece(monkeypatch)
    pieces = _forward_backward(name)
    # Equal to rounding, not to the bit: BLAS blocks a product by its shape, and the
    # parameter gradients are sums over the batch in a different order.
    for split, whole_batch in zip(pieces[:2] + tuple(pieces[2]), whole[:2] + tuple(whole[2])):
        np.testing.assert_allclose(split, whole_batch, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", LAYERS)
def test_a_layer_gives_the_same_bits_on_one_thread_and_on_two(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _one_image_per_piece(monkeypatch)
    before = parallel.num_threads()
    try:
        parallel.set_num_threads(1)
        one = _forward_backward(name)
        parallel.set_num_threads(2)
        two = _forward_backward(name)
    finally:
        parallel.set_num_threads(before)
    for a, b in zip(one[:2] + tuple(one[2]), two[:2] + tuple(two[2])):
        np.testing.assert_array_equal(a, b)
