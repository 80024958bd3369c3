"""The README's "Measured" table: every figure it quotes, measured again.

    python benchmarks/measured.py --data-dir ../shared/datasets \\
        --torch-python /path/to/venv-with-torch/bin/python
    python benchmarks/measured.py --rows mnist lenet5 report-lenet     # some rows only

Each row is one command run in a fresh process on this machine: whole
``train.py`` runs (timed with ``measure_run.py``: wall time from start to exit,
data loading and figures included, and peak resident memory), the report drawn
again on a finished run, the same CIFAR-10 run in PyTorch (``train_torch.py``,
only with ``--torch-python``), and the two-column net over three seeds with the
colour specificity of each column's first-layer kernels.

A row's figures are kept in ``OUT/<row>/result.json`` beside its run directory
``OUT/<row>/run``, so an interrupted measurement keeps its finished rows and the
table can be printed again (``--table-only``); ``--again`` measures the named
rows anew. A row whose run has not finished is measured from the start. The table
goes to standard output in Markdown, for the README. Nothing here asserts a
figure: it is a measurement, and what it prints is what this machine gave.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minidl import io, rundir  # noqa: E402
from minidl.inspect import colour_by_column  # noqa: E402


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    #: the command as the README shows it (DIR: the data directory)
    command: str
    #: the data and seed the figure comes from
    data: str
    #: measures the row: (row, options, its directory) -> figures
    measure: Callable[["Row", argparse.Namespace, Path], dict[str, Any]]
    #: arguments to train.py (for training rows)
    train_args: tuple[str, ...] = ()
    #: the row whose run this one reads (report and PyTorch rows)
    source: str = ""


# ------------------------------------------------------------------ measurements

def _data_args(options: argparse.Namespace, row: Row) -> list[str]:
    args = list(row.train_args)
    if "--data-dir" in args:
        if options.data_dir is None:
            raise SystemExit(f"measured: row {row.name} needs --data-dir (the directory "
                             f"holding cifar10/)")
        args[args.index("--data-dir") + 1] = options.data_dir
    return args


def timed_run(row: Row, options: argparse.Namespace, where: Path) -> dict[str, Any]:
    """A whole ``train.py`` run, timed from start to exit, figures included."""
    run = where / "run"
    shutil.rmtree(run, ignore_errors=True)
    # measure_run in a process of its own: the peak memory it reads is the largest of
    # its children's, and this process has had other children.
    command = [sys.executable, str(ROOT / "benchmarks" / "measure_run.py"), "--json",
               "--out", str(run), "--", *_data_args(options, row)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measured: {' '.join(command)} failed")
    figures = json.loads(done.stdout)
    figures["train_seconds"] = sum(figures.pop("epoch_seconds"))
    return figures


def finished_run(row: Row, options: argparse.Namespace, where: Path) -> dict[str, Any]:
    """A ``train.py`` run whose result, not its time, is the figure; a run that has
    finished already is read, not repeated."""
    run = where / "run"
    if not _finished(run):
        shutil.rmtree(run, ignore_errors=True)
        command = [sys.executable, str(ROOT / "train.py"), *_data_args(options, row),
                   "--out", str(run), "--quiet"]
        if subprocess.run(command).returncode != 0:
            raise SystemExit(f"measured: {' '.join(command)} failed")
    metrics = rundir.read_metrics(run)
    split, accuracy = rundir.final_accuracy(metrics)
    model = io.load(rundir.checkpoint_path(run)).model
    colour = [dict(layer=c.layer, columns=c.columns, means=list(c.means))
              for c in colour_by_column(model)]
    return dict(split=split, accuracy=accuracy, epochs=len(metrics["epoch"]),
                train_seconds=sum(metrics["seconds"]), colour=colour)


def _finished(run: Path) -> bool:
    try:
        settings = rundir.read_settings(run)
        return len(rundir.read_metrics(run)["epoch"]) == settings["epochs"]
    except (OSError, ValueError, KeyError):
        return False


def report_time(row: Row, options: argparse.Namespace, where: Path) -> dict[str, Any]:
    """``python -m minidl.viz RUN`` on the source row's finished run, in a fresh process."""
    run = where.parent / row.source / "run"
    if not _finished(run):
        raise SystemExit(f"measured: row {row.name} reads the run of row {row.source}: "
                         f"measure that first")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "minidl.viz", str(run)], cwd=ROOT,
                          stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"measured: the report of {run} failed")
    return dict(seconds=seconds)


def torch_run(row: Row, options: argparse.Namespace, where: Path) -> dict[str, Any]:
    """The source row's run in PyTorch (``train_torch.py``): its epochs' seconds and
    final accuracy (the table sets them against the source row's as it stands)."""
    if options.torch_python is None:
        raise SystemExit(f"measured: row {row.name} needs --torch-python")
    command = [options.torch_python, str(ROOT / "benchmarks" / "train_torch.py"),
               *_data_args(options, row)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measured: {' '.join(command)} failed:\n{done.stderr}")
    (where / "output.txt").write_text(done.stdout)
    version = re.search(r"PyTorch (\S+),", done.stdout)
    accuracy = re.findall(r"(val|test) loss \S+ acc (\S+)", done.stdout.splitlines()[-2])
    total = re.search(r"done: (\S+)s of training and evaluation", done.stdout)
    if version is None or not accuracy or total is None:
        raise SystemExit(f"measured: unexpected output of {' '.join(command)}")
    return dict(version=version.group(1), split=accuracy[-1][0], accuracy=float(accuracy[-1][1]),
                train_seconds=float(total.group(1)))


# ------------------------------------------------------------------ the rows

_CIFAR_DATA = "CIFAR-10 batches 1-4, validation on data_batch_5"
ROWS = [
    Row("mnist", "default run", "python train.py", "embedded MNIST, seed 0", timed_run),
    Row("lenet5", "LeNet-5 (1998)", "python train.py --model lenet5", "embedded MNIST, seed 0",
        timed_run, ("--model", "lenet5")),
    Row("report-lenet", "report of the default run alone", "python -m minidl.viz RUN",
        "the default run above", report_time, source="mnist"),
    Row("cifar10", "CIFAR-10 default (convnet-80sec-bn)",
        "python train.py --dataset cifar10 --data-dir DIR", f"{_CIFAR_DATA}, seed 0",
        timed_run, ("--dataset", "cifar10", "--data-dir", "DIR")),
    Row("report-cifar", "report of the CIFAR-10 run alone", "python -m minidl.viz RUN",
        "the CIFAR-10 run above", report_time, source="cifar10"),
    Row("cifar10-torch", "the same CIFAR-10 run in PyTorch",
        "TORCH_PYTHON benchmarks/train_torch.py --dataset cifar10 --data-dir DIR",
        f"{_CIFAR_DATA}, seed 0", torch_run, ("--dataset", "cifar10", "--data-dir", "DIR"),
        source="cifar10"),
    Row("cifar10-80sec", "cuda-convnet's 80sec net as it is",
        "python train.py --dataset cifar10 --data-dir DIR --model convnet-80sec",
        f"{_CIFAR_DATA}, seed 0", timed_run,
        ("--dataset", "cifar10", "--data-dir", "DIR", "--model", "convnet-80sec")),
    *(Row(f"two-column-s{seed}", f"two-column net, seed {seed}",
          f"python train.py --model two-column --data-dir DIR --seed {seed} --no-figures",
          f"{_CIFAR_DATA}, seed {seed}", finished_run,
          ("--model", "two-column", "--data-dir", "DIR", "--seed", str(seed), "--no-figures"))
      for seed in (0, 1, 2)),
]
BY_NAME = {row.name: row for row in ROWS}


# ------------------------------------------------------------------ the table

def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


def describe(row: Row, figures: dict[str, Any], out: Path) -> str:
    """The result cell of a row (``out``: where the rows' figures are kept)."""
    if row.measure is timed_run:
        split = "test" if figures["split"] == "test" else "validation"
        return (f"{100 * figures['accuracy']:.2f}% {split} accuracy after {figures['epochs']} "
                f"epochs; {_duration(figures['seconds'])} wall time (data, training, "
                f"evaluation, figures), {_duration(figures['train_seconds'])} of it training "
                f"and evaluation; peak memory {figures['peak_mb']:.0f} MB"
                + (f" (all processes; the main one {figures['main_peak_mb']:.0f} MB)"
                   if "main_peak_mb" in figures else ""))
    if row.measure is report_time:
        return f"{_duration(figures['seconds'])} (a fresh process: reading, inspecting, drawing)"
    if row.measure is torch_run:
        # Against the minidl run as it stands, which may have been measured again since.
        minidl = json.loads((out / row.source / "result.json").read_text())["train_seconds"]
        ratio = minidl / figures["train_seconds"]
        return (f"PyTorch {figures['version']}: {100 * figures['accuracy']:.2f}% validation "
                f"accuracy; {_duration(figures['train_seconds'])} of training and evaluation "
                f"against minidl's {_duration(minidl)} (minidl/PyTorch {ratio:.2f}x)")
    colour = "; ".join(f"mean colour specificity of {c['layer']}'s kernels: "
                       + ", ".join(f"column {k + 1} {m:.3f}" for k, m in enumerate(c["means"]))
                       for c in figures["colour"])
    return (f"{100 * figures['accuracy']:.2f}% validation accuracy after {figures['epochs']} "
            f"epochs ({_duration(figures['train_seconds'])} of training and evaluation); "
            f"{colour}")


def table(out: Path) -> str:
    lines = ["| what | command | data | result |", "| --- | --- | --- | --- |"]
    for row in ROWS:
        result = out / row.name / "result.json"
        if result.is_file():
            cell = describe(row, json.loads(result.read_text()), out)
            lines.append(f"| {row.what} | `{row.command}` | {row.data} | {cell} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", choices=list(BY_NAME), default=list(BY_NAME),
                        help="the rows to measure (default: all, in this order)")
    parser.add_argument("--out", default="runs/measured",
                        help="where the runs and each row's figures are kept")
    parser.add_argument("--data-dir", default=None, help="the directory holding cifar10/")
    parser.add_argument("--torch-python", default=None,
                        help="an interpreter with PyTorch, for the PyTorch row")
    parser.add_argument("--again", action="store_true", help="measure the rows anew")
    parser.add_argument("--table-only", action="store_true",
                        help="measure nothing; print the table of the rows measured")
    options = parser.parse_args()
    out = Path(options.out).resolve()
    if not options.table_only:
        for name in options.rows:
            row, where = BY_NAME[name], out / name
            result = where / "result.json"
            if result.is_file() and not options.again:
                continue
            where.mkdir(parents=True, exist_ok=True)
            print(f"measured: {name}: {row.command}", file=sys.stderr, flush=True)
            figures = row.measure(row, options, where)
            result.write_text(json.dumps(figures, indent=1) + "\n")
    print(table(out))


if __name__ == "__main__":
    main()
