"""``python -m minidl.viz RUN_DIR_OR_CHECKPOINT [--out DIR]``: write a run's HTML report.

Exit codes: 0 on success; 2 for a bad command line or a source that cannot be
read (missing path, a directory without checkpoint.npz, not a minidl
checkpoint) or an output directory that cannot be written, reported as one
line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from minidl.io import CheckpointError
from minidl.viz.report import DEFAULT_DIGITS, ReportError, default_out_dir, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minidl.viz",
        description="Draw a training run as one static HTML page: model summary, how the "
                    "feature maps of each convolution are connected (cross-channel kernel "
                    "grids), first-layer kernels, feature maps of sample digits, training "
                    "curves, confusion matrix and misclassified digits. The page uses relative "
                    "links only and opens from the file system.")
    parser.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a run directory written by train.py, or a checkpoint .npz (then "
                             "only the weights and the model summary can be drawn)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="where to write report.html and its figures (default: the run "
                             "directory itself; for a checkpoint NAME.npz, a directory "
                             "NAME-report next to it)")
    parser.add_argument("--digits", type=int, default=DEFAULT_DIGITS, metavar="N",
                        help="number of sample test digits to draw feature maps for "
                             f"(default: {DEFAULT_DIGITS})")
    args = parser.parse_args(argv)
    if args.digits < 0:
        parser.error(f"--digits: expected a non-negative integer, received {args.digits}")
    out = args.out if args.out is not None else default_out_dir(args.source)
    try:
        page = write_report(args.source, out, digits=args.digits)
    except (ReportError, CheckpointError, OSError) as error:
        print(f"python -m minidl.viz: {error}", file=sys.stderr)
        return 2
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
