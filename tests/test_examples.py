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
