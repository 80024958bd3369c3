"""Draw the README's pictures from real checkpoints, with minidl alone.

    python docs/make_figures.py runs/<default run>/checkpoint.npz [runs/<lenet5 run>/checkpoint.npz]

Writes docs/conv1-kernels.png (the first layer's kernels, one tile each, like
Krizhevsky et al. 2012, Figure 3), docs/conv2-channels.png (the second layer's
kernels, one row per output map and one column per input map) and, from a
LeNet-5 checkpoint, docs/c3-channels.png (the same view of C3, where the 1998
connection table leaves pairs unconnected: those tiles are drawn empty).

From the default run's directory (the first checkpoint's), the report's own
inspection figures, copied under stable names: docs/top-patches.png and
docs/guided-backprop.png (the second convolution's top-9 patches per channel and
their projections), docs/sample.png, docs/saliency.png and docs/occlusion.png
(one test image and its two maps), docs/maximized-classes.png (activation
maximisation of each class score) and docs/weight-stats.svg.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from minidl import io, rundir
from minidl.layers import Conv2D
from minidl.viz import channel_grid, kernel_grid, write_png, write_report

DOCS = Path(__file__).resolve().parent


def convs(model):
    return [(name, layer) for name, layer in model.named_modules() if isinstance(layer, Conv2D)]


def inspection_figures(run: Path, second_conv: str) -> None:
    """Draw the run's report in a scratch directory and keep one figure of each kind."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        write_report(run, out)
        sample = min(int(p.stem.split("-")[1]) for p in out.glob("saliency-*.png"))
        for target, source in (("top-patches.png", f"patches-{second_conv}.png"),
                               ("guided-backprop.png", f"projections-{second_conv}.png"),
                               ("sample.png", f"attribution-{sample}.png"),
                               ("saliency.png", f"saliency-{sample}.png"),
                               ("occlusion.png", f"occlusion-{sample}.png"),
                               ("maximized-classes.png", "maximized-classes.png"),
                               ("weight-stats.svg", "weight-stats.svg")):
            shutil.copyfile(out / source, DOCS / target)


def main(paths: list[str]) -> None:
    if not paths:
        raise SystemExit(__doc__)
    first, second = convs(io.load(paths[0]).model)[:2]
    write_png(DOCS / "conv1-kernels.png", kernel_grid(first[1].weight.data, scale=12, ncols=6, border=2))
    write_png(DOCS / "conv2-channels.png", channel_grid(second[1].weight.data, scale=6, border=2))
    if len(paths) > 1:
        _, c3 = convs(io.load(paths[1]).model)[1]
        write_png(DOCS / "c3-channels.png",
                  channel_grid(c3.weight.data, connections=c3.connections, scale=6, border=2))
    run = Path(paths[0]).parent
    if not (run / rundir.PREDICTIONS).is_file():
        raise SystemExit(f"{run}: expected the run directory of {paths[0]}, with its "
                         f"{rundir.PREDICTIONS}, for the inspection figures")
    inspection_figures(run, second[0])
    print(f"wrote figures in {DOCS}")


if __name__ == "__main__":
    main(sys.argv[1:])
