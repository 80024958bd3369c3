"""minidl against PyTorch, each framework timed alone in a fresh process.

    python benchmarks/bench.py --torch-python /path/to/venv-with-torch/bin/python
    python benchmarks/bench.py --workloads lenet-train-64 --rounds 3 --markdown

Why separate processes: inside one process, the worker threads that OpenBLAS and
PyTorch leave spinning after a block steal the cores from the other framework's
next block, which once made minidl look 0.84x PyTorch when it was 2x.

How it measures: every workload runs ``--rounds`` times per framework, each time
in a new process (``benchmarks/worker.py``) with the same OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS, alternating the frameworks (minidl
first in odd rounds, PyTorch first in even ones) so that drift in the machine's
speed falls on both. Each process warms up, then times ``--blocks`` blocks; the
figures are the median over every block of every round, with the spread
(minimum and maximum), and their ratio; beside it, the ratio within each round
(the two frameworks' medians, measured one right after the other), whose spread
shows how far the machine's drift moves the verdict. Training blocks are
``--steps`` steps of forward, softmax cross-entropy, backward and an SGD step
(Nesterov momentum 0.9, weight decay 5e-4), on real batches (MNIST for LeNet;
CIFAR-10 for the CIFAR nets, from ``--data-dir`` or ``$MINIDL_DATA``); inference
blocks are one pass over 10,000 images in evaluation mode, in batches of 500.
minidl runs both as its Trainer and ``evaluate()`` do: a model without batch norm
or dropout has each batch cut into 2 shards, one per process (see
minidl.data_parallel; ``--shards 1`` times whole batches). PyTorch runs the same
network with the same weights, on its own intra-op threads.
PyTorch is never a dependency of minidl: without ``--torch-python`` (or torch in
this interpreter), only minidl is timed. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "benchmarks" / "worker.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from worker import WORKLOADS  # noqa: E402

DEFAULT_WORKLOADS = list(WORKLOADS)


def has_torch(python: str) -> bool:
    done = subprocess.run([python, "-c", "import torch"], capture_output=True)
    return done.returncode == 0


def run_worker(python: str, framework: str, workload: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    threads = str(args.threads)
    env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    command = [python, str(WORKER), "--framework", framework, "--workload", workload,
               "--blocks", str(args.blocks), "--steps", str(args.steps),
               "--threads", threads] + (
                   ["--shards", str(args.shards)] if args.shards and framework == "minidl" else [])
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"bench.py: {framework} {workload} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS),
                        default=DEFAULT_WORKLOADS)
    parser.add_argument("--torch-python", default=None,
                        help="an interpreter with PyTorch (default: this one, if it has torch)")
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per framework")
    parser.add_argument("--blocks", type=int, default=9, help="timed blocks per process")
    parser.add_argument("--steps", type=int, default=20, help="training steps per block")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--data-dir", default=None, help="directory holding cifar10/ "
                                                         "(default: $MINIDL_DATA)")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--no-layers", action="store_true", help="skip the per-layer tables")
    parser.add_argument("--shards", type=int, default=None,
                        help="pieces each minidl training batch is cut into (default: the "
                             "Trainer's: 2 when every layer allows it, else 1)")
    args = parser.parse_args()
    torch_python = args.torch_python or (sys.executable if has_torch(sys.executable) else None)
    if torch_python and not has_torch(torch_python):
        raise SystemExit(f"bench.py: --torch-python {torch_python} cannot import torch")
    frameworks = [("minidl", sys.executable)] + ([("torch", torch_python)] if torch_python else [])
    print(f"{args.threads} threads, {args.rounds} rounds x {args.blocks} blocks"
          + ("" if torch_python else "; PyTorch not available: minidl only"))

    rows = []
    for workload in args.workloads:
        blocks: dict[str, list[float]] = {name: [] for name, _ in frameworks}
        rounds: dict[str, list[float]] = {name: [] for name, _ in frameworks}
        layers: dict[str, list[dict]] = {}
        how = ""
        for r in range(args.rounds):
            order = frameworks if r % 2 == 0 else frameworks[::-1]
            for name, python in order:
                result = run_worker(python, name, workload, args)
                blocks[name] += result["block_ms"]
                rounds[name].append(statistics.median(result["block_ms"]))
                layers.setdefault(name, result["layers"])
                if "shards" in result:
                    how = (f"; minidl: {result['shards']} shard(s) per batch in "
                           f"{result['processes']} process(es)")
        unit = "ms per step" if "train" in workload else "ms per 10,000 images"
        print(f"\n{workload} ({unit}, median [min-max] over {len(blocks['minidl'])} blocks{how})")
        for name, _ in frameworks:
            print(f"  {name:<7} {summary(blocks[name])}")
        ratio, paired = None, []
        if torch_python:
            ratio = statistics.median(blocks["minidl"]) / statistics.median(blocks["torch"])
            # Each round times both frameworks one after the other: the ratio within a
            # round holds even when the machine's speed drifts between rounds.
            paired = [a / b for a, b in zip(rounds["minidl"], rounds["torch"])]
            print(f"  ratio minidl/PyTorch {ratio:.2f}x (round by round: "
                  f"{', '.join(f'{p:.2f}' for p in paired)})")
        if not args.no_layers and layers.get("minidl"):
            print("  per layer, forward / backward ms (one process):")
            theirs = {l["name"]: l for l in layers.get("torch", [])}
            for layer in layers["minidl"]:
                other = theirs.get(layer["name"])
                text = f"    {layer['name']:<10} minidl {layer['forward_ms']:7.2f} / " \
                       f"{layer['backward_ms']:7.2f}"
                if other:
                    text += f"   PyTorch {other['forward_ms']:7.2f} / {other['backward_ms']:7.2f}"
                print(text)
        rows.append((workload, unit, blocks, ratio, paired))

    if args.markdown:
        print("\n| workload | minidl | PyTorch | ratio | ratio round by round |\n"
              "| --- | --- | --- | --- | --- |")
        for workload, unit, blocks, ratio, paired in rows:
            med = {k: statistics.median(v) for k, v in blocks.items()}
            spread = {k: f"{min(v):.1f}-{max(v):.1f}" for k, v in blocks.items()}
            theirs = f"{med['torch']:.1f} ({spread['torch']})" if "torch" in med else "-"
            by_round = f"{min(paired):.2f}-{max(paired):.2f}" if paired else "-"
            print(f"| {workload} ({unit}) | {med['minidl']:.1f} ({spread['minidl']}) | {theirs} | "
                  f"{f'{ratio:.2f}x' if ratio else '-'} | {by_round} |")


if __name__ == "__main__":
    main()
