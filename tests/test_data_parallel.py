"""minidl.data_parallel: a batch cut into shards, run in worker processes, summed in order."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from minidl import Graph, Sequential, data_parallel, parallel, rundir
from minidl.data_parallel import ShardedForward, ShardedStep, default_shards, shard_bounds
from minidl.layers import (Add, AvgPool2D, BatchNorm2D, Concat, Conv2D, Dense, Dropout, Flatten,
                           LeakyReLU, LocalResponseNorm, MaxPool2D, ReLU, Sigmoid, Tanh)
from minidl.losses import MSE, SoftmaxCrossEntropy
from minidl.optim import SGD
from minidl.rundir import RunDirError
from minidl.training import Trainer

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="worker processes need os.fork")
#: The trainer starts worker processes only where there are cores for them.
needs_two_cores = pytest.mark.skipif(data_parallel.default_processes(2) < 2,
                                     reason="one core (or no fork): the trainer starts no worker")


def net(seed: int = 0, dtype: type = np.float64) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(Conv2D(2, 4, 3, padding=1, rng=rng, dtype=dtype), ReLU(), MaxPool2D(2),
                      Conv2D(4, 6, 3, rng=rng, dtype=dtype), Tanh(), Flatten(),
                      Dense(6 * 2 * 2, 3, rng=rng, dtype=dtype))


def batch(n: int, seed: int = 1, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, 8, 8)).astype(dtype), rng.integers(0, 3, n)


def run(shards: int, processes: int, n: int = 7, steps: int = 2, dtype: type = np.float64,
        loss=None) -> tuple[list[float], np.ndarray, list[np.ndarray]]:
    """Losses of ``steps`` calls, the last output, and the gradients summed over the calls."""
    model = net(dtype=dtype)
    values = []
    with ShardedStep(model, loss or SoftmaxCrossEntropy(), shards, processes) as step:
        for i in range(steps):
            x, y = batch(n, seed=i, dtype=dtype)
            value, out = step(x, y)
            values.append(value)
    return values, out, [p.grad.copy() for p in model.parameters()]


def same(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and all(
        np.array_equal(g, h) for g, h in zip(a[2], b[2]))


def test_shard_bounds_cover_the_batch_in_near_equal_pieces():
    assert shard_bounds(7, 2) == [(0, 3), (3, 7)]
    assert shard_bounds(64, 2) == [(0, 32), (32, 64)]
    assert shard_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard_bounds(1, 4) == [(0, 1)]


@needs_fork
@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numbers_do_not_depend_on_the_number_of_processes(shards, dtype):
    alone = run(shards, 1, dtype=dtype)
    for processes in range(2, shards + 1):
        assert same(run(shards, processes, dtype=dtype), alone)


def test_shards_give_the_gradient_of_the_whole_batch_mean():
    whole = run(1, 1, steps=1)
    for shards in (2, 3, 7):
        cut = run(shards, 1, steps=1)
        np.testing.assert_allclose(cut[0], whole[0], rtol=1e-14)
        np.testing.assert_allclose(cut[1], whole[1], rtol=1e-13, atol=1e-15)
        for g, h in zip(cut[2], whole[2]):
            np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-15)


def test_mse_shards_are_weighted_by_their_size():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 2, 8, 8))
    target = rng.standard_normal((5, 3))
    grads = []
    for shards in (1, 2):
        model = net()
        value, _ = ShardedStep(model, MSE(), shards, 1)(x, target)
        grads.append((value, [p.grad.copy() for p in model.parameters()]))
    np.testing.assert_allclose(grads[1][0], grads[0][0], rtol=1e-14)
    for g, h in zip(grads[1][1], grads[0][1]):
        np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-15)


@needs_fork
def test_gradients_accumulate_across_calls_like_a_backward_pass():
    once = run(2, 2, steps=1)
    model = net()
    x, y = batch(7, seed=0)
    with ShardedStep(model, SoftmaxCrossEntropy(), 2, 2) as step:
        step(x, y)
        step(x, y)
    for g, h in zip(model.parameters(), once[2]):
        np.testing.assert_allclose(g.grad, 2 * h, rtol=1e-15)


@needs_fork
def test_the_worker_sees_the_parameters_of_each_step():
    """An optimizer step between calls changes the weights the worker computes with."""
    model, reference = net(), net()
    opts = [SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (model, reference)]
    with ShardedStep(model, SoftmaxCrossEntropy(), 2, 2) as step, \
            ShardedStep(reference, SoftmaxCrossEntropy(), 2, 1) as alone:
        for i in range(4):
            x, y = batch(8, seed=i)
            for s, opt in ((step, opts[0]), (alone, opts[1])):
                opt.zero_grad()
                s(x, y)
                opt.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        assert np.array_equal(p.data, q.data)


@needs_fork
def test_batches_of_other_sizes_and_shapes_restart_the_workers_as_needed():
    model = net()
    step = ShardedStep(model, SoftmaxCrossEntropy(), 2, 2)
    reference = ShardedStep(net(), SoftmaxCrossEntropy(), 2, 1)
    try:
        for n in (4, 9, 1, 3):
            x, y = batch(n, seed=n)
            assert step(x, y)[0] == reference(x, y)[0]
    finally:
        step.close()
    assert all(p.grad.any() for p in model.parameters())


@needs_fork
def test_an_error_in_a_worker_is_raised_here_and_the_next_step_works():
    model = net()
    x, y = batch(8)
    bad = y.copy()
    bad[-1] = 7  # only in the second shard, which the worker runs
    with ShardedStep(model, SoftmaxCrossEntropy(), 2, 2) as step:
        with pytest.raises(ValueError, match=r"expected labels in \[0, 2\], received \[7\] "
                                             r"\(in worker process 1\)"):
            step(x, bad)
        model.zero_grad()
        value, _ = step(x, y)
    reference = net()
    assert value == ShardedStep(reference, SoftmaxCrossEntropy(), 2, 1)(x, y)[0]
    for p, q in zip(model.parameters(), reference.parameters()):
        assert np.array_equal(p.grad, q.grad)


def test_a_worker_error_keeps_its_built_in_type_or_becomes_a_runtime_error():
    assert type(data_parallel._worker_error("ValueError\nbad", 1)) is ValueError
    assert str(data_parallel._worker_error("ValueError\nbad", 1)) == "bad (in worker process 1)"
    for report in ("UnicodeDecodeError\nodd", "LinAlgError\nsingular", "SystemExit\n3"):
        error = data_parallel._worker_error(report, 2)
        assert type(error) is RuntimeError
        assert str(error) == report.replace("\n", ": ") + " (in worker process 2)"


@needs_fork
def test_a_killed_worker_is_reported_and_replaced():
    model = net()
    x, y = batch(8)
    with ShardedStep(model, SoftmaxCrossEntropy(), 2, 2) as step:
        step(x, y)
        (worker,) = step._workers
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="worker process 1 ended in the middle of a step"):
            step(x, y)
        model.zero_grad()
        step(x, y)
        assert step._workers[0].pid != worker.pid


@needs_fork
def test_close_ends_the_worker_processes():
    step = ShardedStep(net(), SoftmaxCrossEntropy(), 2, 2)
    step(*batch(6))
    pid = step._workers[0].pid
    step.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@needs_fork
def test_a_non_finite_loss_skips_backward():
    model = net()
    model.parameters()[-2].data[...] = np.inf  # the last Dense weight
    with ShardedStep(model, SoftmaxCrossEntropy(), 2, 2) as step:
        value, _ = step(*batch(6))
    assert not np.isfinite(value)
    assert not any(p.grad.any() for p in model.parameters())


@pytest.mark.parametrize("layer", [BatchNorm2D(2, dtype=np.float64), Dropout(0.5, rng=0)])
def test_layers_needing_the_whole_batch_refuse_shards(layer):
    model = Sequential(layer, Flatten(), Dense(128, 3, rng=0, dtype=np.float64))
    assert default_shards(model) == 1
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}\) need the whole batch in "
                                         rf"training .* received shards=2"):
        ShardedStep(model, SoftmaxCrossEntropy(), 2)
    ShardedStep(model, SoftmaxCrossEntropy(), 1)(*batch(4))


def test_which_layers_are_per_example():
    per_example = [Conv2D(2, 2, 3, rng=0), Dense(2, 2, rng=0), Flatten(), ReLU(), LeakyReLU(),
                   Tanh(), Sigmoid(), MaxPool2D(2), AvgPool2D(2), LocalResponseNorm(3), Add(),
                   Concat(), Sequential(ReLU()), Graph()]
    assert all(layer.per_example for layer in per_example)
    assert not BatchNorm2D(2).per_example and not Dropout(0.5).per_example
    assert default_shards(net()) == data_parallel.DEFAULT_SHARDS


def test_processes_are_checked():
    with pytest.raises(ValueError, match="processes"):
        ShardedStep(net(), SoftmaxCrossEntropy(), 2, 3)
    with pytest.raises(ValueError, match="shards"):
        ShardedStep(net(), SoftmaxCrossEntropy(), 0)


def test_one_thread_or_no_fork_means_one_process(monkeypatch):
    assert data_parallel.default_processes(1) == 1
    monkeypatch.setattr(parallel, "num_threads", lambda: 1)
    assert data_parallel.default_processes(2) == 1


# ------------------------------------------------------------------------- evaluation
@needs_fork
def test_sharded_forward_is_the_evaluation_mode_output_for_any_model():
    rng = np.random.default_rng(4)
    model = Sequential(Conv2D(2, 4, 3, rng=rng, dtype=np.float64), BatchNorm2D(4, dtype=np.float64),
                       ReLU(), Dropout(0.5, rng=rng), Flatten(), Dense(144, 3, rng=rng,
                                                                       dtype=np.float64))
    model.forward(batch(16)[0])  # running statistics that are not 0 and 1
    x = batch(9, seed=6)[0]
    whole = model.forward(x, training=False)
    with ShardedForward(model, 3) as here, ShardedForward(model, 3, 3) as apart:
        for _ in range(2):  # the second call reuses the workers
            alone, spread = here(x), apart(x)
            np.testing.assert_allclose(alone, whole, rtol=1e-13, atol=1e-15)
            assert np.array_equal(alone, spread)
    assert all(layer._cache is None for layer in model.modules())


@needs_fork
def test_sharded_forward_follows_the_parameters_and_running_statistics_between_calls():
    rng = np.random.default_rng(5)
    model = Sequential(Conv2D(2, 4, 3, rng=rng, dtype=np.float64), BatchNorm2D(4, dtype=np.float64),
                       Flatten(), Dense(144, 3, rng=rng, dtype=np.float64))
    x = batch(8, seed=2)[0]
    with ShardedForward(model, 2, 2) as forward:
        forward(x)
        model.forward(batch(16)[0])  # training mode: new running statistics
        model.parameters()[0].data *= 2
        np.testing.assert_allclose(forward(x), model.forward(x, training=False), rtol=1e-13)


@needs_fork
def test_evaluate_gives_the_same_figures_whatever_the_processes(monkeypatch):
    from minidl.training import evaluate
    model = net()
    x, y = batch(23, seed=8)
    two = evaluate(model, x, y, batch_size=10)
    monkeypatch.setattr(data_parallel, "default_processes", lambda shards: 1)
    one = evaluate(model, x, y, batch_size=10)
    whole = evaluate(model, x, y, batch_size=10, shards=1)
    assert two.loss == one.loss and np.array_equal(two.probabilities, one.probabilities)
    assert two.accuracy == whole.accuracy
    np.testing.assert_allclose(two.loss, whole.loss, rtol=1e-13)


# ------------------------------------------------------------------------- the trainer
def images(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = batch(n, seed=5)
    return x, y


def fit(tmp_path, name: str, shards: int | None, epochs: int = 2, resume: bool = False,
        model=None):
    model = model or net()
    trainer = Trainer(model, SGD(model.parameters(), lr=0.05, momentum=0.9), epochs=epochs,
                      batch_size=10, seed=0, run_dir=tmp_path / name, progress=False,
                      shards=shards)
    trainer.fit(images(45), val=images(12), resume=resume)
    return trainer, model


@needs_two_cores
def test_trainer_numbers_do_not_depend_on_the_cores(tmp_path, monkeypatch):
    _, two = fit(tmp_path, "two", None)
    monkeypatch.setattr(data_parallel, "default_processes", lambda shards: 1)
    trainer, one = fit(tmp_path, "one", None)
    assert trainer.shards == 2
    for p, q in zip(two.parameters(), one.parameters()):
        assert np.array_equal(p.data, q.data)


def test_trainer_records_shards_and_a_resume_keeps_them(tmp_path):
    fit(tmp_path, "run", 3, epochs=1)
    assert rundir.read_state(tmp_path / "run" / rundir.CHECKPOINT).trainer.shards == 3
    with pytest.raises(RunDirError, match=r"shards=2 \(the run has 3\)"):
        fit(tmp_path, "run", 2, epochs=1, resume=True)
    fit(tmp_path, "run", 3, epochs=1, resume=True)


def test_a_checkpoint_from_before_shards_resumes_as_whole_batches(tmp_path):
    fit(tmp_path, "run", 1, epochs=1)
    path = tmp_path / "run" / rundir.CHECKPOINT
    meta = rundir.read_state(path).to_meta()
    del meta["trainer"]["shards"]
    state = rundir.TrainingState.from_meta(meta, str(path))
    assert state.trainer.shards == 1


def test_trainer_refuses_shards_with_batch_norm():
    model = Sequential(BatchNorm2D(2), Flatten(), Dense(128, 3, rng=0))
    with pytest.raises(ValueError, match="received shards=2"):
        Trainer(model, SGD(model.parameters(), lr=0.1), epochs=1, shards=2)
    assert Trainer(model, SGD(model.parameters(), lr=0.1), epochs=1).shards == 1


@needs_two_cores
def test_ctrl_c_reaches_the_workers_too_and_resume_is_bit_identical(tmp_path):
    """A terminal's Ctrl-C goes to every process of the group: the worker ignores it, the
    trainer saves a checkpoint between two steps, and the resumed run ends as a straight one."""
    from callbacks import At
    from minidl.training import TrainingInterrupted

    _, straight = fit(tmp_path, "straight", None, epochs=3)
    model = net()
    trainer = Trainer(model, SGD(model.parameters(), lr=0.05, momentum=0.9), epochs=3,
                      batch_size=10, seed=0, run_dir=tmp_path / "cut", progress=False)

    def ctrl_c():
        assert trainer._step._workers, "the trainer runs a shard in a worker process"
        for worker in trainer._step._workers:
            os.kill(worker.pid, signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    trainer.callbacks.append(At(2, 2, ctrl_c))
    with pytest.raises(TrainingInterrupted, match="saved a resumable checkpoint"):
        trainer.fit(images(45), val=images(12))
    assert trainer._step._workers == []  # ended with the run
    _, resumed = fit(tmp_path, "cut", None, epochs=3, resume=True)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert np.array_equal(p.data, q.data)
