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
* peak memory: the largest resident set size of the process (``getrusage`` of
  the finished child, so the same figure ``/usr/bin/time -v`` prints);
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


def measure(train_args: list[str], out: Path) -> dict:
    """Run ``train.py train_args --out out --quiet`` and measure it."""
    command = [sys.executable, str(ROOT / "train.py"), *train_args, "--out", str(out), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(command, stdout=sys.stderr)  # stdout is for the figures
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    if done.returncode != 0:
        raise SystemExit(f"measure_run: train.py exited with status {done.returncode}")
    if peak_kib <= before:  # an earlier child was larger: the figure would not be this run's
        raise SystemExit("measure_run: cannot attribute the peak memory to this run")
    metrics = rundir.read_metrics(out)
    settings = rundir.read_settings(out)
    split, accuracy = rundir.final_accuracy(metrics) or ("none", float("nan"))
    return dict(command="python train.py " + " ".join(train_args), seconds=seconds,
                peak_mb=peak_kib / 1024, split=split, accuracy=accuracy,
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
    print(f"  peak resident memory {figures['peak_mb']:.0f} MB")
    if temporary and args.keep:
        print(f"  run directory {out}")


if __name__ == "__main__":
    main()
