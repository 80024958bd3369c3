"""Every script in examples/ runs, as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from minidl import rundir

ROOT = Path(__file__).resolve().parents[1]


def test_training_on_your_own_arrays_fits_in_a_short_script(tmp_path) -> None:
    script = ROOT / "examples" / "train_on_arrays.py"
    code = [line for line in script.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) <= 25  # about 20 lines, docstring and imports included
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, str(script), str(run)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    accuracy = float(done.stdout.strip().splitlines()[-1].split()[-1])
    assert accuracy > 0.8  # three classes: chance is 1/3
    report = subprocess.run([sys.executable, "-m", "minidl.viz", str(run)], capture_output=True,
                            text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    page = (run / rundir.REPORT).read_text()
    assert "&ldquo;middle&rdquo;" in page and "could not show" not in page


def _tiny_colour_run(run: Path) -> None:
    """A two-column run on a few random colour images: enough for the figures."""
    import numpy as np

    from minidl.optim import SGD
    from minidl.rundir import InputSpec
    from minidl.training import Trainer
    from models import two_column
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    y = np.arange(40) % 10
    model = two_column(rng=0)
    spec = InputSpec((3, 32, 32), (0.5,) * 3, (0.25,) * 3, tuple("abcdefghij"))
    Trainer(model, SGD(model.parameters(), lr=0.01), epochs=1, batch_size=20, seed=0,
            input_spec=spec, run_dir=run, progress=False).fit((x, y), test=(x, y))


def test_the_docs_figures_script_draws_from_runs(tmp_path) -> None:
    mnist = tmp_path / "mnist"
    done = subprocess.run([sys.executable, "train.py", "--epochs", "1", "--limit-train", "256",
                           "--out", str(mnist), "--quiet", "--no-figures"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    colour = tmp_path / "colour"
    _tiny_colour_run(colour)
    out = tmp_path / "docs"
    done = subprocess.run([sys.executable, "docs/make_figures.py", "--lenet", str(mnist),
                           "--two-column", str(colour), "--cifar", str(colour), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "conv1 colour specificity, mean per column: 0." in done.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "conv1-kernels.png", "conv2-channels.png", "top-patches.png", "guided-backprop.png",
        "sample.png", "saliency.png", "occlusion.png", "maximized-classes.png",
        "weight-stats.svg", "cifar-kernels.png", "cifar-kernels-rgb.png",
        "two-column-kernels.png"])
    bad = subprocess.run([sys.executable, "docs/make_figures.py", "--lenet", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "expected a run directory written by train.py" in bad.stderr
