"""``python -m minidl.viz RUN_DIR_OR_CHECKPOINT [--out DIR] [--samples N]``: write a run's report.

Exit codes: 0 on success; 2 for a bad command line, a source that cannot be
read (missing path, a directory without a checkpoint, not a minidl checkpoint)
or an output directory that cannot be written, reported as one line on stderr.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import NoReturn, Sequence

from minidl import checks, io, rundir
from minidl.rundir import RunDirError
from minidl.viz.report import DEFAULT_SAMPLES, ReportError, default_out_dir, write_report

PROG = "python -m minidl.viz"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: {message} (see {PROG} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog=PROG,
        description="Draw a training run as one static HTML page: model summary, how the "
                    "feature maps of each convolution are connected (cross-channel kernel "
                    "grids), first-layer kernels, feature maps of sample images, training "
                    "curves, confusion matrix and misclassified images. The page uses relative "
                    "links only and opens from the file system.")
    parser.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a run directory written by train.py or minidl.training, or a "
                             "checkpoint .npz (then only the weights and the model summary can "
                             "be drawn)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="where to write report.html and its figures (default: the run "
                             "directory itself; for a checkpoint NAME.npz, a directory "
                             "NAME-report next to it)")
    # Text, converted below, so that the shared check words the message.
    parser.add_argument("--samples", default=str(DEFAULT_SAMPLES), metavar="N",
                        help="number of sample images to draw feature maps for "
                             f"(default: {DEFAULT_SAMPLES})")
    parser.add_argument("--maximize-steps", default=None, metavar="N",
                        help="gradient-ascent steps per activation-maximisation image (default: "
                             "a budget of passes shared by all of them; 0 leaves them out)")
    args = parser.parse_args(argv)
    samples: object = args.samples
    steps: object = args.maximize_steps
    with contextlib.suppress(ValueError):
        samples = int(args.samples)
    with contextlib.suppress(TypeError, ValueError):
        steps = int(args.maximize_steps)
    try:
        samples = checks.integer(samples, "samples", "--samples", minimum=0)
        if steps is not None:
            steps = checks.integer(steps, "maximize_steps", "--maximize-steps", minimum=0)
    except ValueError as error:
        parser.error(str(error))
    try:
        if args.out is not None:
            out = rundir.check_output_dir(args.out, "--out")
        else:
            out = default_out_dir(args.source)  # checked by write_report, after the source
        page = write_report(args.source, out, samples=samples, maximize_steps=steps)
    except (ReportError, RunDirError, io.CheckpointError, OSError) as error:
        # Bad input; any other exception is a bug and keeps its traceback.
        print(f"{PROG}: {_describe(error)}", file=sys.stderr)
        return 2
    print(page)
    return 0


def _describe(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        # The file system refused (--out unusable, a full disk): the file and the reason.
        target = error.filename2 if error.filename2 is not None else error.filename
        return f"{target}: {error.strerror}" if target is not None else error.strerror
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
