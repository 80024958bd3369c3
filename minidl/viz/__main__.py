"""``python -m minidl.viz RUN_DIR_OR_CHECKPOINT [--out DIR] [--samples N]``: write a run's report.

Exit codes: 0 on success; 2 for a bad command line, a source that cannot be
read (missing path, a directory without a checkpoint, not a minidl checkpoint)
or an output directory that cannot be written, reported as one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from minidl import checks
from minidl.viz.report import DEFAULT_SAMPLES, default_out_dir, write_report

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
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                        help="number of sample images to draw feature maps for "
                             f"(default: {DEFAULT_SAMPLES})")
    args = parser.parse_args(argv)
    try:
        samples = checks.integer(args.samples, "samples", "--samples", minimum=0)
        out = args.out if args.out is not None else default_out_dir(args.source)
        page = write_report(args.source, out, samples=samples)
    except (ValueError, OSError) as error:
        # ReportError, CheckpointError and RunDirError are ValueErrors; OSError: --out unusable.
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
