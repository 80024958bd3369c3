"""The run ``python train.py ARGS`` would do, in PyTorch, to time minidl against it.

    /path/to/venv-with-torch/bin/python benchmarks/train_torch.py --dataset cifar10 \\
        --data-dir ../shared/datasets --epochs 15

Takes ``train.py``'s options and resolves them as ``train.py`` does (the model's
recipe for what is left out), then trains the same network from the same initial
weights (``train.build``, converted by ``worker.to_torch``) with the same
schedule, on the same batches: the same shuffling and the same augmentation,
drawn from the same generators, prepared by minidl's own NumPy code. Only the
network, the loss and the optimizer step are PyTorch's (SGD with Nesterov
momentum, as ``train.py`` builds it). Each epoch is then evaluated on the
validation images (and the test images, when present) in evaluation mode.

It prints one line per epoch, like ``train.py``, with its seconds of training
and evaluation; compare their sum with the ``seconds`` column of minidl's
``metrics.csv`` for the same options (``benchmarks/measure_run.py`` prints both
its whole wall time and its epochs'). PyTorch is never a dependency of minidl:
run this with an interpreter that has it. It writes nothing.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import train  # noqa: E402
from datasets import load_dataset  # noqa: E402
from minidl.data import Augmentation  # noqa: E402
from worker import to_torch  # noqa: E402

_UNSUPPORTED = ("resume", "eval", "out")


def evaluate(net, spec, images: np.ndarray, labels: np.ndarray, batch: int = 500
             ) -> tuple[float, float]:
    """Mean loss and accuracy in evaluation mode."""
    import torch
    net.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(spec.prepare(images[start:start + batch]))
            y = torch.from_numpy(labels[start:start + batch].astype(np.int64))
            logits = net(x)
            loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    net.train()
    return loss_sum / len(images), correct / len(images)


def main() -> None:
    import torch
    args = train.parse_args(sys.argv[1:])
    for name in _UNSUPPORTED:
        if getattr(args, name, None):
            raise SystemExit(f"train_torch: --{name} is train.py's alone")
    settings = train.settings_from_args(args)
    if settings["optimizer"] != "sgd":
        raise SystemExit("train_torch: expected --optimizer sgd (the only one mirrored here)")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    started = time.perf_counter()
    dataset = load_dataset(settings["dataset"], args.data_dir, progress=False)
    if settings["val_split"] is None:
        settings["val_split"] = dataset.default_val_split
    (x_train, y_train), val = dataset.holdout(settings["val_split"])
    if settings["limit_train"]:
        x_train, y_train = x_train[:settings["limit_train"]], y_train[:settings["limit_train"]]
    test = None if dataset.test_images is None else (dataset.test_images, dataset.test_labels)
    batch = settings["batch_size"]
    steps = math.ceil(len(x_train) / batch)
    model, _, schedule = train.build(settings, steps)
    spec = train.input_spec(settings, dataset)
    augment = (Augmentation(settings["shift"], settings["flip"], spec.fill)
               if settings["shift"] or settings["flip"] else None)

    net = to_torch(model)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=settings["label_smoothing"])
    momentum = settings["momentum"]
    opt = torch.optim.SGD(net.parameters(), lr=settings["lr"], momentum=momentum,
                          nesterov=momentum > 0, weight_decay=settings["weight_decay"])
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads: {settings['model']} "
          f"on {settings['dataset']}, {len(x_train):,} training images, "
          f"{settings['epochs']} epochs of {steps} steps; loaded in "
          f"{time.perf_counter() - started:.1f}s")
    total = 0.0
    for epoch in range(settings["epochs"]):
        start = time.perf_counter()
        order = np.random.default_rng([settings["seed"], 1, epoch]).permutation(len(x_train))
        loss_sum, correct = 0.0, 0
        for step in range(steps):
            index = order[step * batch:(step + 1) * batch]
            xb = spec.prepare(x_train[index])
            if augment is not None:
                xb = augment(xb, np.random.default_rng([settings["seed"], 2, epoch, step]))
            for group in opt.param_groups:
                group["lr"] = schedule.lr_at(epoch * steps + step)
            x, y = torch.from_numpy(xb), torch.from_numpy(y_train[index].astype(np.int64))
            opt.zero_grad()
            logits = net(x)
            loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
            loss_sum += float(loss) * len(index)
            correct += int((logits.argmax(1) == y).sum())
        line = (f"epoch {epoch + 1:>2}/{settings['epochs']}  train loss "
                f"{loss_sum / len(x_train):.4f} acc {correct / len(x_train):.4f}")
        for split, data in (("val", val), ("test", test)):
            if data is not None:
                loss_value, accuracy = evaluate(net, spec, *data)
                line += f"  {split} loss {loss_value:.4f} acc {accuracy:.4f}"
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{line}  {seconds:.1f}s", flush=True)
    print(f"done: {total:.1f}s of training and evaluation; "
          f"{time.perf_counter() - started:.1f}s wall time in all")


if __name__ == "__main__":
    main()
