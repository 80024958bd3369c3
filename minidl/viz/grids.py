"""Pictures of convolution weights and feature maps as uint8 image grids.

Three views, all returning arrays ready for :func:`minidl.viz.write_png`:

* :func:`kernel_grid` - one tile per output kernel, the whole 3-D kernel in one
  picture (grayscale for 1 input channel, colour for 3), like the first-layer
  kernels of AlexNet (Krizhevsky et al. 2012, Figure 3).
* :func:`channel_grid` - for deeper layers: row ``o``, column ``c`` shows the
  2-D slice ``weight[o, c]`` that correlates input map ``c`` into output map
  ``o``; unconnected pairs (connection table or groups) are drawn as empty tiles.
* :func:`image_grid` - any stack of 2-D images (feature maps, sample digits).

Normalisation (weights to 0..255), the ``normalize`` argument
-------------------------------------------------------------
* ``"tile"`` (default): ``round(255 * (x - min) / (max - min))`` over each tile;
  a colour tile is normalised over its three channels jointly so colours keep
  their relations.
* ``"global"``: the same min-max, once over everything drawn, so tiles are
  comparable (``shownet.py``'s view, and Figure 3's).
* ``"symmetric"``: one scale over everything drawn, ``round(127.5 + 127.5 * x /
  max|x|)``, so zero is mid-grey, tiles are comparable and sign is visible.
* A tile without contrast (constant, e.g. all zeros) is drawn mid-grey (128);
  no division by zero happens.

Layout
------
Tiles are upscaled by an integer ``scale`` (nearest neighbour: each weight
becomes a ``scale x scale`` block) and separated by ``border`` pixels of
``border_color``, including an outer frame: a grid of ``nrows x ncols`` tiles of
``th x tw`` pixels is ``nrows*th + (nrows+1)*border`` high and
``ncols*tw + (ncols+1)*border`` wide. Unused cells of the last row show the
border colour.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from minidl import checks

__all__ = ["kernel_grid", "channel_grid", "image_grid", "EMPTY_COLOR", "CROSS_COLOR"]

#: Fill of an unconnected tile in :func:`channel_grid`: a pale blue. Its R, G, B
#: differ, so no (grey) kernel tile can ever have this colour.
EMPTY_COLOR = (222, 232, 250)
#: The thin diagonal cross drawn over an unconnected tile: a muted red.
CROSS_COLOR = (205, 85, 70)

_MID_GREY = 127.5  # rounds to 128


# ----------------------------------------------------------------- validation
def _color(value: object, channels: int, name: str) -> np.ndarray:
    """A colour as uint8: shape () for grayscale, (3,) for RGB (an int means grey)."""
    arr = np.asarray(value)
    ok_shape = arr.shape == () or (channels == 3 and arr.shape == (3,))
    if not ok_shape or arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > 255:
        want = "an int 0-255" if channels == 1 else "an int 0-255 or an (r, g, b) triple"
        raise ValueError(f"expected {name} as {want}, received {value!r}")
    return np.broadcast_to(arr.astype(np.uint8), (channels,) if channels == 3 else ())


def _finite_float(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise ValueError(f"expected numeric {what}, received dtype {array.dtype}")
    array = array.astype(np.float64)
    bad = array.size - int(np.isfinite(array).sum())
    if bad:
        raise ValueError(f"expected finite {what}, received {bad} NaN or infinite values")
    return array


def _conv_weight(weight: object, func: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The weight as float64 ``(out, in, kh, kw)`` plus a Parameter's mask, if any."""
    mask = None
    if not isinstance(weight, np.ndarray) and hasattr(weight, "data"):  # a Parameter
        mask = getattr(weight, "mask", None)
        weight = weight.data
    w = np.asarray(weight)
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(
            f"{func}: expected a conv weight of shape (out_channels, in_channels, kh, kw), "
            f"received shape {w.shape}")
    return _finite_float(w, "weights"), mask


# -------------------------------------------------------------- normalisation
def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _minmax_each(tiles: np.ndarray) -> np.ndarray:
    """Min-max normalise each ``tiles[i]`` on its own to 0..255; constant tiles -> 128."""
    flat = tiles.reshape(len(tiles), -1)
    lo = flat.min(axis=1)
    span = flat.max(axis=1) - lo
    flat_tile = span == 0
    # Dividing by 1 for constant tiles keeps numpy quiet; their value is replaced below.
    scaled = (flat - lo[:, None]) / np.where(flat_tile, 1.0, span)[:, None] * 255
    scaled[flat_tile] = _MID_GREY
    return _to_uint8(scaled).reshape(tiles.shape)


def _symmetric(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Map ``values`` to 0..255 with zero at mid-grey, scaled by ``max|reference|``."""
    peak = float(np.abs(reference).max()) if reference.size else 0.0
    if peak == 0:
        return np.full(values.shape, 128, np.uint8)
    return _to_uint8(_MID_GREY + _MID_GREY * values / peak)


_NORMALIZE = ("tile", "global", "symmetric")


def _normalized(tiles: np.ndarray, reference: np.ndarray, normalize: str) -> np.ndarray:
    """``tiles`` to 0..255 by one of the rules in the module docstring.

    The global rules take their scale from ``reference`` (the tiles that count).
    """
    if normalize == "tile":
        return _minmax_each(tiles)
    if normalize == "symmetric":
        return _symmetric(tiles, reference)
    if reference.size == 0:
        return np.full(tiles.shape, 128, np.uint8)
    lo, hi = float(reference.min()), float(reference.max())
    if hi == lo:
        return np.full(tiles.shape, 128, np.uint8)
    return _to_uint8((tiles - lo) / (hi - lo) * 255)


# --------------------------------------------------------------------- layout
def _upscale(tiles: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of ``(N, h, w[, 3])`` tiles by an integer factor."""
    return tiles.repeat(scale, axis=1).repeat(scale, axis=2) if scale > 1 else tiles


def _assemble(tiles: np.ndarray, ncols: int, border: int, background: np.ndarray) -> np.ndarray:
    """Place ``(N, th, tw[, 3])`` uint8 tiles row by row on a bordered canvas."""
    n, th, tw = tiles.shape[:3]
    nrows = -(-n // ncols)
    canvas = np.empty((nrows * th + (nrows + 1) * border,
                       ncols * tw + (ncols + 1) * border) + tiles.shape[3:], np.uint8)
    canvas[...] = background
    for i, tile in enumerate(tiles):
        row, col = divmod(i, ncols)
        top, left = border + row * (th + border), border + col * (tw + border)
        canvas[top:top + th, left:left + tw] = tile
    return canvas


def _default_ncols(n: int) -> int:
    return math.isqrt(n - 1) + 1  # ceil(sqrt(n)), exact for integers


# ---------------------------------------------------------------- kernel_grid
def kernel_grid(weight: np.ndarray, *, scale: int = 4, border: int = 1,
                ncols: int | None = None, border_color: int | Sequence[int] = 255,
                normalize: str = "tile", rgb: bool = True) -> np.ndarray:
    """Draw each output kernel of a conv weight as one tile (first-layer style).

    With ``normalize="global"``, 16 columns and black borders this is the view of
    cuda-convnet's ``shownet.py --show-filters`` and of Krizhevsky et al. (2012),
    Figure 3.

    Parameters
    ----------
    weight : np.ndarray or Parameter
        Conv weight ``(out_channels, in_channels, kh, kw)`` with ``in_channels``
        1 (drawn grayscale) or 3 (channels drawn as R, G, B).
    scale : int
        Nearest-neighbour upscaling factor (so a 5x5 kernel is visible).
    border : int
        Width in pixels of the lines between tiles and of the outer frame.
    normalize : {"tile", "global", "symmetric"}
        ``"tile"``: each kernel min-max scaled on its own (weak kernels look as
        strong as strong ones). ``"global"``: one min-max over all the kernels
        (``shownet.py``'s, so Figure 3's), tiles comparable. ``"symmetric"``:
        one scale over all, zero at mid-grey, so the sign is visible.
    rgb : bool
        With 3 input channels: True draws a kernel as one colour tile; False as a
        grey strip of its R, G and B slices side by side (``shownet.py --no-rgb``),
        each strip ``3 * kw`` wide.
    ncols : int, optional
        Tiles per row; default ``ceil(sqrt(out_channels))``, a near-square grid.
    border_color : int or (r, g, b)
        Colour of borders and unused cells; default white.

    Shape
    -----
    Returns ``(H, W)`` if ``in_channels == 1`` (or ``rgb=False``) else ``(H, W, 3)``,
    with ``H = nrows*kh*scale + (nrows+1)*border`` and
    ``W = ncols*tw*scale + (ncols+1)*border``, ``tw = kw`` (``3 * kw`` for a grey strip).

    Returns
    -------
    np.ndarray of uint8

    Raises
    ------
    ValueError
        For a non-4-D or non-finite weight, ``in_channels`` other than 1 or 3
        (use :func:`channel_grid`), or invalid layout arguments.
    """
    w, _ = _conv_weight(weight, "kernel_grid")
    out, in_ch, kh, kw = w.shape
    if in_ch not in (1, 3):
        raise ValueError(
            f"kernel_grid: expected a weight with 1 (grayscale) or 3 (RGB) input channels, "
            f"received {in_ch} input channels in shape {w.shape}; use channel_grid to draw "
            f"each (output, input) slice as its own tile")
    scale = checks.integer(scale, "scale", "kernel_grid", minimum=1)
    border = checks.integer(border, "border", "kernel_grid", minimum=0)
    ncols = _default_ncols(out) if ncols is None else checks.integer(ncols, "ncols", "kernel_grid", minimum=1)
    checks.one_of(normalize, _NORMALIZE, "normalize", "kernel_grid")
    checks.boolean(rgb, "rgb", "kernel_grid")
    if in_ch == 1:
        tiles = w[:, 0]                                               # (out, kh, kw)
    elif rgb:
        tiles = w.transpose(0, 2, 3, 1)                               # (out, kh, kw, 3)
    else:
        tiles = w.transpose(0, 2, 1, 3).reshape(out, kh, 3 * kw)      # R | G | B
    pixels = _normalized(tiles, tiles, normalize)
    background = _color(border_color, 3 if pixels.ndim == 4 else 1, "border_color")
    return _assemble(_upscale(pixels, scale), ncols, border, background)


# --------------------------------------------------------------- channel_grid
def _ungroup(array: np.ndarray, groups: int) -> np.ndarray:
    """Spread ``(out, in/groups, ...)`` onto ``(out, in, ...)`` at the true input columns.

    Output ``o`` belongs to group ``g = o // (out/groups)`` and its slice ``j``
    reads input map ``g*(in/groups) + j``; all other entries are zero/False.
    """
    out, per_group = array.shape[:2]
    full = np.zeros((out, per_group * groups) + array.shape[2:], array.dtype)
    out_per_group = out // groups
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        full[rows, g * per_group:(g + 1) * per_group] = array[rows]
    return full


def _empty_tile(height: int, width: int, fill: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """A flat ``fill`` tile with a one-pixel diagonal cross in ``cross``."""
    tile = np.empty((height, width, 3), np.uint8)
    tile[...] = fill
    t = np.linspace(0.0, 1.0, 2 * max(height, width))  # dense enough to leave no gaps
    rows = np.rint(t * (height - 1)).astype(int)
    cols = np.rint(t * (width - 1)).astype(int)
    tile[rows, cols] = cross
    tile[rows, width - 1 - cols] = cross
    return tile


def channel_grid(weight: np.ndarray, *, connections: np.ndarray | None = None, groups: int = 1,
                 scale: int = 4, border: int = 1, normalize: str = "tile",
                 border_color: int | Sequence[int] = 255,
                 empty_color: Sequence[int] = EMPTY_COLOR,
                 cross_color: Sequence[int] = CROSS_COLOR) -> np.ndarray:
    """Draw every (output kernel, input map) slice of a conv weight as its own tile.

    Row ``o``, column ``c`` shows ``weight[o, c]`` in grey: the 2-D kernel that
    correlates input map ``c`` into output map ``o`` (output map ``o`` is the
    sum over its row). LeNet-5's C3 weight ``(16, 6, 5, 5)`` becomes a grid of
    16 rows x 6 columns of 5x5 tiles.

    An unconnected pair is drawn *empty*: a flat pale blue (``empty_color``)
    with a thin diagonal cross (``cross_color``). Kernel tiles are always grey
    (R = G = B), so an empty tile cannot be mistaken for a kernel.

    Parameters
    ----------
    weight : np.ndarray or Parameter
        Conv weight ``(out_channels, in_channels // groups, kh, kw)``. For a
        Parameter with a ``mask`` and no ``connections``, the pairs whose mask
        slice is all False are drawn empty.
    connections : array_like of bool, optional
        Connection table ``(out_channels, in_channels)``; False pairs are drawn
        empty whatever their weight values.
    groups : int
        For a grouped convolution: the weight's slices are placed at their true
        input-map columns (``in_channels = weight.shape[1] * groups``) and the
        pairs outside each output's group are drawn empty, so the block
        structure shows.
    scale, border, border_color
        As in :func:`kernel_grid`.
    normalize : {"tile", "global", "symmetric"}
        As in :func:`kernel_grid`, a tile being one slice; the global scales are
        taken over the connected slices only.
    empty_color, cross_color : (r, g, b)
        The style of unconnected tiles.

    Shape
    -----
    Returns ``(H, W, 3)`` with ``H = out*kh*scale + (out+1)*border`` and
    ``W = in_channels*kw*scale + (in_channels+1)*border``.

    Returns
    -------
    np.ndarray of uint8
    """
    w, mask = _conv_weight(weight, "channel_grid")
    groups = checks.integer(groups, "groups", "channel_grid", minimum=1)
    scale = checks.integer(scale, "scale", "channel_grid", minimum=1)
    border = checks.integer(border, "border", "channel_grid", minimum=0)
    checks.one_of(normalize, _NORMALIZE, "normalize", "channel_grid")
    out, per_group, kh, kw = w.shape
    if out % groups:
        raise ValueError(
            f"channel_grid: expected out_channels divisible by groups, received "
            f"out_channels={out} and groups={groups}")
    in_ch = per_group * groups
    table = _ungroup(np.ones((out, per_group), bool), groups)
    if connections is not None:
        table &= checks.connection_table(connections, (out, in_ch), "channel_grid",
                                          axes="(out_channels, in_channels)")
    elif mask is not None:
        mask = checks.connection_table(mask, w.shape, "channel_grid", "Parameter mask")
        table &= _ungroup(mask.any(axis=(2, 3)), groups)
    slices = _ungroup(w, groups).reshape(out * in_ch, kh, kw)
    connected = table.reshape(-1)
    gray = _normalized(slices, slices[connected], normalize)
    tiles = np.repeat(_upscale(gray, scale)[..., None], 3, axis=3)
    tiles[~connected] = _empty_tile(kh * scale, kw * scale,
                                    _color(empty_color, 3, "empty_color"),
                                    _color(cross_color, 3, "cross_color"))
    return _assemble(tiles, in_ch, border, _color(border_color, 3, "border_color"))


# ----------------------------------------------------------------- image_grid
def image_grid(images: np.ndarray, *, ncols: int | None = None, scale: int = 1, border: int = 1,
               normalize: str | None = "per_image",
               border_color: int | Sequence[int] = 255) -> np.ndarray:
    """Lay out a stack of images (feature maps of a layer, sample digits) in a grid.

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W)`` grayscale or ``(N, H, W, 3)`` RGB images.
    ncols : int, optional
        Images per row; default ``ceil(sqrt(N))``.
    scale, border, border_color
        As in :func:`kernel_grid`.
    normalize : {"per_image", "global", None}
        ``"per_image"``: each image min-max scaled to 0..255 on its own (a
        constant image becomes mid-grey). ``"global"``: one min-max over all
        images, so brightness is comparable (images are intensities, so unlike
        weights no symmetric scale). ``None``: values already are 0..255
        intensities (uint8 is used as is; other types must lie in [0, 255]
        and are rounded).

    Shape
    -----
    Returns ``(H', W')`` for grayscale input, ``(H', W', 3)`` for RGB, with the
    same geometry as :func:`kernel_grid`.

    Returns
    -------
    np.ndarray of uint8
    """
    arr = np.asarray(images)
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] == 3)) or 0 in arr.shape:
        raise ValueError(
            f"image_grid: expected a non-empty stack of shape (N, H, W) or (N, H, W, 3), "
            f"received shape {arr.shape}")
    if normalize not in ("per_image", "global", None):
        raise ValueError(
            f"image_grid: expected normalize 'per_image', 'global' or None, received {normalize!r}")
    scale = checks.integer(scale, "scale", "image_grid", minimum=1)
    border = checks.integer(border, "border", "image_grid", minimum=0)
    ncols = _default_ncols(len(arr)) if ncols is None else checks.integer(ncols, "ncols", "image_grid", minimum=1)
    if normalize is None and arr.dtype == np.uint8:
        pixels = arr
    else:
        values = _finite_float(arr, "image values")
        if normalize == "per_image":
            pixels = _minmax_each(values)
        elif normalize == "global":
            pixels = _minmax_each(values[None])[0]
        elif values.min() < 0 or values.max() > 255:
            raise ValueError(
                f"image_grid: expected values in [0, 255] with normalize=None, received range "
                f"[{values.min():g}, {values.max():g}]")
        else:
            pixels = _to_uint8(values)
    channels = 3 if arr.ndim == 4 else 1
    return _assemble(_upscale(pixels, scale), ncols, border,
                     _color(border_color, channels, "border_color"))
