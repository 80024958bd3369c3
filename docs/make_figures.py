"""Draw the README's pictures from real checkpoints, with minidl alone.

    python docs/make_figures.py runs/<default run>/checkpoint.npz [runs/<lenet5 run>/checkpoint.npz]

Writes docs/conv1-kernels.png (the first layer's kernels, one tile each, like
Krizhevsky et al. 2012, Figure 3), docs/conv2-channels.png (the second layer's
kernels, one row per output map and one column per input map) and, from a
LeNet-5 checkpoint, docs/c3-channels.png (the same view of C3, where the 1998
connection table leaves pairs unconnected: those tiles are drawn empty).
"""

from __future__ import annotations

import sys
from pathlib import Path

from minidl import io
from minidl.layers import Conv2D
from minidl.viz import channel_grid, kernel_grid, write_png

DOCS = Path(__file__).resolve().parent


def convs(model):
    return [(name, layer) for name, layer in model.named_modules() if isinstance(layer, Conv2D)]


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
    print(f"wrote figures in {DOCS}")


if __name__ == "__main__":
    main(sys.argv[1:])
