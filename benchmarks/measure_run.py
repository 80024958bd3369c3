"""Wall time, peak memory and final accuracy of one whole ``train.py`` run.

    python benchmarks/measure_run.py                          # the default MNIST run
    python benchmarks/measure_run.py -- --model lenet5
    python benchmarks/measure_run.py -- --dataset cifar10 --data-dir ../shared/datasets

Everything after ``--`` goes to ``train.py``. The run happens in a fresh process
(this interpreter, the repository's ``train.py``), into a new run directory
(``--out``, default a fresh temporary one, deleted afterwards unless ``--keep``).
What is measured is what a user waits for: data loading, training, evaluation
and the report with its figures (unless ``--no-figures`` is passed on).

* wall time: from starting the process to its exit;
* peak memory: the memory in use by the run's processes (``train.py`` and the
  worker process it forks to run a shard of each batch, see minidl.data_parallel):
  the largest sum of their proportional set sizes (a page two processes share
  counts half in each), read from ``/proc`` every 50 ms, and never less than the
  largest single process's peak resident set (``getrusage``, the figure
  ``/usr/bin/time -v`` prints), which is printed beside it;
* accuracy: the last epoch's test accuracy from the run's ``metrics.csv``, or
  its validation accuracy where the run has no test set.

The run's own settings (seed, epochs, model) are printed with the figures, so a
reader can repeat them. Nothing here asserts anything: it is a measurement.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minidl import rundir  # noqa: E402


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from ``/proc`` (Linux); those that ended are left out."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _pss_kib(pid: int) -> int:
    """The proportional set size of ``pid`` in KiB (each shared page divided among the
    processes sharing it), 0 if it has ended."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def measure(train_args: list[str], out: Path) -> dict:
    """Run ``train.py train_args --out out --quiet`` and measure it."""
    command = [sys.executable, str(ROOT / "train.py"), *train_args, "--out", str(out), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    run = subprocess.Popen(command, stdout=sys.stderr)  # stdout is for the figures
    summed_kib = 0
    while run.poll() is None:
        summed_kib = max(summed_kib, sum(_pss_kib(pid) for pid in _tree(run.pid)))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    if run.returncode != 0:
        raise SystemExit(f"measure_run: train.py exited with status {run.returncode}")
    if peak_kib <= before:  # an earlier child was larger: the figure would not be this run's
        raise SystemExit("measure_run: cannot attribute the peak memory to this run")
    metrics = rundir.read_metrics(out)
    settings = rundir.read_settings(out)
    split, accuracy = rundir.final_accuracy(metrics) or ("none", float("nan"))
    return dict(command="python train.py " + " ".join(train_args), seconds=seconds,
                peak_mb=max(peak_kib, summed_kib) / 1024, main_peak_mb=peak_kib / 1024,
                split=split, accuracy=accuracy,
                epochs=len(metrics["epoch"]), epoch_seconds=metrics["seconds"],
                settings=settings)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after -- are passed to train.py.")
    parser.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args, rest = parser.parse_known_args()
    train_args = rest[1:] if rest[:1] == ["--"] else rest
    temporary = args.out is None
    out = Path(tempfile.mkdtemp(prefix="minidl-measure-")) / "run" if temporary else Path(args.out)
    try:
        figures = measure(train_args, out)
    finally:
        if temporary and not args.keep:
            shutil.rmtree(out.parent, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=1))
        return
    s = figures["settings"]
    print(f"{figures['command']}")
    print(f"  model {s.get('model')}, dataset {s.get('dataset')}, seed {s.get('seed')}, "
          f"{figures['epochs']} epochs")
    print(f"  {figures['split']} accuracy {figures['accuracy']:.4f}")
    print(f"  wall time {figures['seconds']:.1f} s (epochs: median "
          f"{sorted(figures['epoch_seconds'])[len(figures['epoch_seconds']) // 2]:.1f} s)")
    print(f"  peak resident memory {figures['peak_mb']:.0f} MB, all processes "
          f"(the main one alone: {figures['main_peak_mb']:.0f} MB)")
    if temporary and args.keep:
        print(f"  run directory {out}")


if __name__ == "__main__":
    main()
