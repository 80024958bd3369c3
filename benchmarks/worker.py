"""One benchmark in one framework, in this process only; prints one JSON line.

    python benchmarks/worker.py --framework minidl --workload lenet-train-64 --blocks 9

Run by benchmarks/bench.py, which starts a fresh process for every measurement
(see there). The network is built from minidl's model registry; PyTorch gets the
same network with the same weights (:func:`to_torch`). Batches are real images,
prepared before timing starts, so only the step is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from datasets import load_dataset  # noqa: E402
from minidl import layers as L  # noqa: E402
from minidl.data_parallel import ShardedForward, ShardedStep, default_shards  # noqa: E402
from minidl.losses import SoftmaxCrossEntropy  # noqa: E402
from minidl.optim import SGD  # noqa: E402
from minidl.rundir import InputSpec  # noqa: E402
from models import MODELS  # noqa: E402

#: name -> (model, batch size, kind); "train" times a training step, "infer" one pass
#: over 10,000 images in evaluation mode (batches of INFER_BATCH).
WORKLOADS: dict[str, tuple[str, int, str]] = {
    "lenet-train-64": ("lenet", 64, "train"),
    "lenet-train-128": ("lenet", 128, "train"),
    "lenet-infer-10000": ("lenet", 10000, "infer"),
    "convnet-80sec-train-128": ("convnet-80sec", 128, "train"),
    "convnet-80sec-bn-train-128": ("convnet-80sec-bn", 128, "train"),
    "convnet-18pct-train-128": ("convnet-18pct", 128, "train"),
    "two-column-train-128": ("two-column", 128, "train"),
    "convnet-80sec-infer-10000": ("convnet-80sec", 10000, "infer"),
}
INFER_BATCH = 500
BATCHES = 16  # distinct real batches cycled through while timing


def real_batches(model_name: str, batch: int, count: int, data_dir: str | None
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` batches of prepared float32 images and their labels, from the model's dataset
    (MNIST: the training set; CIFAR-10: its training batches)."""
    entry = MODELS[model_name]
    dataset = load_dataset(entry.dataset, data_dir, progress=False)
    spec = InputSpec(dataset.image_shape, dataset.mean, dataset.std, dataset.class_names,
                     pad=entry.recipe.pad)
    order = np.random.default_rng(0).permutation(len(dataset.train_images))
    xs, ys = [], []
    for i in range(count):
        index = order[(i * batch) % len(order):][:batch]
        xs.append(spec.prepare(dataset.train_images[index]))
        ys.append(dataset.train_labels[index].astype(np.int64))
    return xs, ys


def time_blocks(step: Callable[[int], None], blocks: int, steps: int, warmup: int) -> list[float]:
    """Milliseconds per step, one value per block of ``steps`` steps, after ``warmup`` steps."""
    for i in range(warmup):
        step(i)
    out = []
    for b in range(blocks):
        start = time.perf_counter()
        for i in range(steps):
            step(b * steps + i)
        out.append((time.perf_counter() - start) / steps * 1e3)
    return out


# -------------------------------------------------------------------------- minidl
def minidl_run(model_name: str, batch: int, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    model = MODELS[model_name].build(rng=np.random.default_rng(0))
    shards = default_shards(model) if args.shards is None else args.shards
    if kind == "infer":
        xs, _ = real_batches(model_name, INFER_BATCH, batch // INFER_BATCH, args.data_dir)
        # As minidl.training.evaluate runs it: batches in shards, as the model trains.
        with ShardedForward(model, shards) as forward:
            def step(_: int) -> None:
                for x in xs:
                    forward(x)
            blocks = time_blocks(step, args.blocks, 1, args.warmup_passes)
            return {"block_ms": blocks, "layers": [], "shards": shards,
                    "processes": forward.processes}

    xs, ys = real_batches(model_name, batch, BATCHES, args.data_dir)
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    # The step as minidl.training.Trainer runs it: the batch in shards, in worker processes
    # when there are cores for them (minidl.data_parallel).
    with ShardedStep(model, SoftmaxCrossEntropy(), shards) as forward_backward:
        def step(i: int) -> None:
            opt.zero_grad()
            forward_backward(xs[i % BATCHES], ys[i % BATCHES])
            opt.step()
        blocks = time_blocks(step, args.blocks, args.steps, args.warmup)
        processes = forward_backward.processes

    layers = []
    x = xs[0]
    for name, layer in model.named_children():
        y = layer.forward(x)
        dy = np.ones_like(y)
        first = not layers  # like the training step: no gradient for the data
        fwd = statistics.median(time_blocks(lambda _: layer.forward(x), 5, 3, 2))
        bwd = statistics.median(time_blocks(
            lambda _: layer.backward(dy, input_grad=not first), 5, 3, 2))
        layers.append({"name": name, "forward_ms": fwd, "backward_ms": bwd})
        x = y
    return {"block_ms": blocks, "layers": layers, "shards": shards, "processes": processes}


# ------------------------------------------------------------------------- PyTorch
def to_torch(model: Any) -> Any:
    """The same network in PyTorch, with the same weights (state-dict names and layouts agree)."""
    import torch
    nn = torch.nn
    modules = OrderedDict()
    for name, layer in model.named_children():
        if isinstance(layer, L.Conv2D):
            module = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                               layer.stride, layer.padding, groups=layer.groups,
                               bias=layer.bias is not None)
        elif isinstance(layer, (L.MaxPool2D, L.AvgPool2D)):
            cls = nn.MaxPool2d if isinstance(layer, L.MaxPool2D) else nn.AvgPool2d
            module = cls(layer.kernel_size, layer.stride, layer.padding,
                         ceil_mode=layer.ceil_mode)
        elif isinstance(layer, L.Dense):
            module = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        elif isinstance(layer, L.BatchNorm2D):
            module = nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
        elif isinstance(layer, L.LocalResponseNorm):
            module = nn.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k)
        else:
            simple = {L.ReLU: nn.ReLU, L.Tanh: nn.Tanh, L.Sigmoid: nn.Sigmoid,
                      L.Flatten: nn.Flatten}
            if type(layer) not in simple:
                raise ValueError(f"to_torch: no PyTorch counterpart for {layer!r}")
            module = simple[type(layer)]()
        modules[name] = module
    net = nn.Sequential(modules)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    return net


def torch_run(model_name: str, batch: int, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    torch.set_num_threads(args.threads)
    net = to_torch(MODELS[model_name].build(rng=np.random.default_rng(0)))
    if kind == "infer":
        xs, _ = real_batches(model_name, INFER_BATCH, batch // INFER_BATCH, args.data_dir)
        txs = [torch.from_numpy(x) for x in xs]
        net.eval()

        def step(_: int) -> None:
            with torch.no_grad():
                for x in txs:
                    net(x)
        return {"block_ms": time_blocks(step, args.blocks, 1, args.warmup_passes), "layers": []}

    xs, ys = real_batches(model_name, batch, BATCHES, args.data_dir)
    txs, tys = [torch.from_numpy(x) for x in xs], [torch.from_numpy(y) for y in ys]
    loss = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)

    def step(i: int) -> None:
        opt.zero_grad()
        loss(net(txs[i % BATCHES]), tys[i % BATCHES]).backward()
        opt.step()
    blocks = time_blocks(step, args.blocks, args.steps, args.warmup)

    layers = []
    x = txs[0]
    for name, module in net.named_children():
        first = not layers
        inp = x.detach().requires_grad_(not first)
        y = module(inp)
        dy = torch.ones_like(y)

        def forward(_: int) -> None:
            module(inp)

        def backward(_: int) -> None:
            out = module(inp)
            out.backward(dy)
        fwd = statistics.median(time_blocks(forward, 5, 3, 2))
        both = statistics.median(time_blocks(backward, 5, 3, 2))
        layers.append({"name": name, "forward_ms": fwd, "backward_ms": max(both - fwd, 0.0)})
        x = y.detach()
    return {"block_ms": blocks, "layers": layers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["minidl", "torch"], required=True)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--steps", type=int, default=20, help="training steps per block")
    parser.add_argument("--warmup", type=int, default=10, help="training steps before timing")
    parser.add_argument("--warmup-passes", type=int, default=1, help="inference passes before timing")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--shards", type=int, default=None,
                        help="minidl: pieces each training batch is cut into (default: the "
                             "Trainer's, 2 when the model allows it)")
    args = parser.parse_args()
    model_name, batch, kind = WORKLOADS[args.workload]
    run = minidl_run if args.framework == "minidl" else torch_run
    result = run(model_name, batch, kind, args)
    if args.framework == "minidl":
        from minidl import parallel
        result["threads"] = parallel.num_threads()
    else:
        import torch
        result["threads"] = torch.get_num_threads()
    result.update(framework=args.framework, workload=args.workload)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
