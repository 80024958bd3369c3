"""Throughput of a modern LeNet in minidl, and in PyTorch when it is importable.

    python benchmarks/bench_lenet.py [--batch-sizes 64 128] [--rounds 15]

The network: conv 1->6 5x5 pad 2, ReLU, maxpool 2, conv 6->16 5x5, ReLU,
maxpool 2, dense 400-120-84-10. A training step is forward, softmax
cross-entropy, backward and an SGD-with-momentum update. minidl and PyTorch run
in alternating blocks with a short pause between them, so both see the same
machine load; the figures are medians and the comparison is a ratio from the
same run. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minidl  # noqa: E402
from minidl.losses import SoftmaxCrossEntropy  # noqa: E402
from minidl.optim import SGD  # noqa: E402
from models import lenet  # noqa: E402

try:
    import torch
except ImportError:  # the comparison is optional
    torch = None


def minidl_step(model: minidl.Sequential, loss: SoftmaxCrossEntropy, opt: SGD, x: np.ndarray,
                y: np.ndarray) -> None:
    opt.zero_grad()
    loss.forward(model.forward(x), y)
    # Like PyTorch with an input that does not require grad: no gradient for the data.
    model.backward(loss.backward(), input_grad=False)
    opt.step()


def torch_lenet() -> "torch.nn.Module":
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def time_block(fn, steps: int) -> float:
    """Seconds per call, over one block of ``steps`` calls."""
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def per_layer(model: minidl.Sequential, x: np.ndarray, repeats: int) -> list[tuple[str, float, float]]:
    """Median forward and backward milliseconds of each layer at this input."""
    rows = []
    for name, layer in model.named_children():
        y = layer.forward(x)
        dy = np.ones_like(y)
        fwd = statistics.median(time_block(lambda: layer.forward(x), 5) for _ in range(repeats))
        bwd = statistics.median(time_block(lambda: layer.backward(dy), 5) for _ in range(repeats))
        rows.append((name, fwd * 1e3, bwd * 1e3))
        x = y
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--rounds", type=int, default=15, help="alternating blocks per framework")
    parser.add_argument("--steps", type=int, default=10, help="training steps per block")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    args = parser.parse_args()
    use_torch = torch is not None and not args.no_torch
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, {os.cpu_count()} cores"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if use_torch else
             ", PyTorch not importable: no comparison"))

    for batch in args.batch_sizes:
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        model = lenet(rng=0)
        print(f"\nbatch {batch}: per-layer median ms (forward / backward)")
        for name, fwd, bwd in per_layer(model, x, repeats=7):
            print(f"  {name:<10} {fwd:7.3f} / {bwd:7.3f}")

        loss = SoftmaxCrossEntropy()
        opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
        ours = []
        theirs = []
        if use_torch:
            tnet = torch_lenet()
            topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            tloss = torch.nn.CrossEntropyLoss()

            def torch_step() -> None:
                topt.zero_grad()
                tloss(tnet(tx), ty).backward()
                topt.step()
            time_block(torch_step, 3)  # warm-up
        time_block(lambda: minidl_step(model, loss, opt, x, y), 3)
        for _ in range(args.rounds):
            ours.append(time_block(lambda: minidl_step(model, loss, opt, x, y), args.steps))
            time.sleep(0.05)
            if use_torch:
                theirs.append(time_block(torch_step, args.steps))
                time.sleep(0.05)
        m = statistics.median(ours)
        line = f"  training step: minidl {m * 1e3:.2f} ms = {batch / m:,.0f} images/s"
        if use_torch:
            t = statistics.median(theirs)
            line += f"; PyTorch {t * 1e3:.2f} ms = {batch / t:,.0f} images/s; ratio minidl/PyTorch {m / t:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
