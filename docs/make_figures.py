"""Draw the README's pictures from real runs, with minidl alone.

    python docs/make_figures.py --lenet runs/<default MNIST run> --lenet5 runs/<lenet5 run> \\
        --cifar runs/<default CIFAR-10 run> --two-column runs/<two-column run>

Each option is a run directory written by ``train.py``; the figures of the runs
given are (re)written, the others left as they are.

* ``--lenet``: docs/conv1-kernels.png (the first layer's kernels, one tile
  each), docs/conv2-channels.png (the second layer's kernels, one row per output
  map and one column per input map) and, from the run's report, the inspection
  figures under stable names: docs/top-patches.png and docs/guided-backprop.png
  (the second convolution's top-9 patches per channel and their projections),
  docs/sample.png, docs/saliency.png and docs/occlusion.png (one test image and
  its two maps), docs/maximized-classes.png and docs/weight-stats.svg.
* ``--lenet5``: docs/c3-channels.png (the same view of C3, where the 1998
  connection table leaves pairs unconnected: those tiles are drawn empty).
* ``--cifar``: docs/cifar-kernels.png and docs/cifar-kernels-rgb.png, the
  report's colour view of the first layer's kernels (Krizhevsky et al. 2012,
  Figure 3) and its grey view of their R, G and B slices.
* ``--two-column``: docs/two-column-kernels.png, the two columns' kernels as
  two blocks, top and bottom, and their mean colour specificity, printed.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from minidl import io, rundir
from minidl.inspect import colour_by_column
from minidl.layers import Conv2D
from minidl.viz import channel_grid, kernel_grid, write_png, write_report

DOCS = Path(__file__).resolve().parent


def convs(model):
    return [(name, layer) for name, layer in model.named_modules() if isinstance(layer, Conv2D)]


def checkpoint(run: Path) -> Path:
    path = run / rundir.CHECKPOINT
    if not (run / rundir.PREDICTIONS).is_file() or not path.is_file():
        raise SystemExit(f"{run}: expected a run directory written by train.py, with its "
                         f"{rundir.CHECKPOINT} and {rundir.PREDICTIONS}")
    return path


def copy_report_figures(run: Path, out: Path, names: dict[str, str]) -> None:
    """Draw the run's report in a scratch directory and keep ``{docs name: report name}``."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch)
        write_report(run, report)
        for target, source in names.items():
            if "{sample}" in source:
                sample = min(int(p.stem.split("-")[1]) for p in report.glob("saliency-*.png"))
                source = source.format(sample=sample)
            shutil.copyfile(report / source, out / target)


def lenet_figures(run: Path, out: Path) -> dict[str, str]:
    """Draw the kernels; return the report figures wanted, ``{docs name: report name}``."""
    first, second = convs(io.load(checkpoint(run)).model)[:2]
    write_png(out / "conv1-kernels.png",
              kernel_grid(first[1].weight.data, scale=12, ncols=6, border=2))
    write_png(out / "conv2-channels.png", channel_grid(second[1].weight.data, scale=6, border=2))
    return {"top-patches.png": f"patches-{second[0]}.png",
            "guided-backprop.png": f"projections-{second[0]}.png",
            "sample.png": "attribution-{sample}.png",
            "saliency.png": "saliency-{sample}.png",
            "occlusion.png": "occlusion-{sample}.png",
            "maximized-classes.png": "maximized-classes.png",
            "weight-stats.svg": "weight-stats.svg"}


def lenet5_figures(run: Path, out: Path) -> dict[str, str]:
    _, c3 = convs(io.load(checkpoint(run)).model)[1]
    write_png(out / "c3-channels.png",
              channel_grid(c3.weight.data, connections=c3.connections, scale=6, border=2))
    return {}


def colour_figures(run: Path, prefix: str, grey: bool) -> dict[str, str]:
    """Print the colour specificity; return the report figures wanted."""
    model = io.load(checkpoint(run)).model
    first = convs(model)[0][0]
    names = {f"{prefix}-kernels.png": f"kernels-{first}.png"}
    if grey:
        names[f"{prefix}-kernels-rgb.png"] = f"kernels-{first}-rgb-slices.png"
    for found in colour_by_column(model):
        means = ", ".join(f"{m:.3f}" for m in found.means)
        print(f"{run}: {found.layer} colour specificity, mean per column: {means}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("lenet", "lenet5", "cifar", "two-column"):
        parser.add_argument(f"--{name}", type=Path, metavar="RUN")
    parser.add_argument("--out", type=Path, default=DOCS, help="default: docs/")
    args = parser.parse_args()
    if not any((args.lenet, args.lenet5, args.cifar, args.two_column)):
        parser.error("expected at least one run directory")
    args.out.mkdir(parents=True, exist_ok=True)
    wanted: dict[Path, dict[str, str]] = {}  # one report per run, however often it is named
    for run, draw in ((args.lenet, lambda r: lenet_figures(r, args.out)),
                      (args.lenet5, lambda r: lenet5_figures(r, args.out)),
                      (args.cifar, lambda r: colour_figures(r, "cifar", grey=True)),
                      (args.two_column, lambda r: colour_figures(r, "two-column", grey=False))):
        if run is not None:
            wanted.setdefault(run.resolve(), {}).update(draw(run))
    for run, names in wanted.items():
        if names:
            copy_report_figures(run, args.out, names)
    print(f"wrote figures in {args.out}")


if __name__ == "__main__":
    main()
