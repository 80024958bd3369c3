"""Training curves and confusion matrices as SVG.

* :func:`curves_svg` draws **one SVG with two panels side by side**: loss by
  epoch (left) and accuracy by epoch (right), one line per series (train,
  validation, test: :func:`minidl.rundir.metric_series`), "nice" 1-2-5 ticks,
  axis labels, a title and a legend. :func:`write_curves` writes it to one file.
* :func:`confusion_matrix` counts (true, predicted) pairs;
  :func:`confusion_svg` draws them as a heat-map table with the counts written
  in the cells.
* :func:`weight_stats_svg` draws cuda-convnet's per-layer weight statistics
  (mean ``|W|``, mean ``|dW|`` and their ratio by epoch) as three panels with
  one line per layer, on a log scale where the values span more than a decade.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from minidl.viz.svg import Element, svg_document, write_svg

__all__ = ["nice_ticks", "line_chart", "curves_svg", "write_curves", "confusion_matrix",
           "confusion_svg", "weight_stats_svg", "LAYER_COLORS"]

SERIES_COLORS = {"train": "#1f77b4", "val": "#2ca02c", "test": "#d62728"}  # blue, green, red
#: One colour per layer in plots with a line per layer (ten that stay apart, then repeated).
LAYER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf")
_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_MAX_MARKERS = 40  # draw point markers only while they do not clutter the line


# ---------------------------------------------------------------------- ticks
def nice_ticks(lo: float, hi: float, max_ticks: int = 6, integer: bool = False) -> list[float]:
    """Round tick values covering ``[lo, hi]`` with a step of 1, 2 or 5 x 10^k.

    The smallest such step giving at most ``max_ticks`` ticks is used; the
    first tick is at or below ``lo`` and the last at or above ``hi``. A
    degenerate range (``lo == hi``, e.g. a single epoch or a constant series)
    is widened around the value first. ``integer=True`` keeps steps >= 1.

    Returns
    -------
    list[float]
        At least two ticks, ascending, rounded to the step's decimals.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"expected a finite range, received [{lo}, {hi}]")
    if max_ticks < 2:
        raise ValueError(f"expected max_ticks >= 2, received {max_ticks}")
    lo, hi = min(lo, hi), max(lo, hi)
    if not math.isfinite(hi - lo):
        raise ValueError(f"expected a range narrower than 1e308, received [{lo}, {hi}]")
    # Constant up to rounding noise (or absurdly narrow): widen around the value.
    if hi - lo <= max(1e-9 * max(abs(lo), abs(hi)), 1e-200):
        lo = hi = lo / 2 + hi / 2
        pad = 1.0 if integer or abs(lo) < 1e-100 else abs(lo) * 0.1
        lo, hi = lo - pad, hi + pad
    exponent = math.floor(math.log10((hi - lo) / max_ticks)) - 1
    while True:
        for mantissa in (1, 2, 5):
            step = mantissa * 10.0 ** exponent
            if integer and step < 1:
                continue
            # A little slack so 0.3 / 0.1 = 2.9999999999999996 counts as 3.
            first = math.floor(lo / step + 1e-9)
            last = math.ceil(hi / step - 1e-9)
            if last - first + 1 <= max_ticks:
                decimals = max(0, -exponent)
                return [round(k * step, decimals) + 0.0 for k in range(first, last + 1)]
        exponent += 1


def _tick_label(value: float, ticks: Sequence[float]) -> str:
    step = ticks[1] - ticks[0]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if decimals > 6 or abs(value) >= 1e7:  # extreme scales: scientific notation
        return f"{value:.6g}"
    text = f"{value:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text  # never "-0.0"


# ----------------------------------------------------------------- line chart
def line_chart(parent: Element, xs: Sequence[float], series: Mapping[str, Sequence[float]], *,
               x: float = 0, y: float = 0, width: float = 420, height: float = 300,
               title: str = "", xlabel: str = "", ylabel: str = "",
               integer_x: bool = False, log_y: bool = False,
               colors: Mapping[str, str] | None = None, legend: bool = True) -> Element:
    """Draw a line chart into ``parent`` at ``(x, y)`` and return its ``<g>``.

    Parameters
    ----------
    xs : sequence of float
        Shared x values, one per point.
    series : mapping of label -> sequence of float
        One line per entry, each as long as ``xs``; non-finite values are left
        out. Colours come from ``colors``, else ``SERIES_COLORS`` by label,
        else a default cycle.
    integer_x : bool
        Use integer x ticks (epochs).
    log_y : bool
        A logarithmic y axis with ticks at powers of ten; values <= 0 are
        left out like non-finite ones.
    colors : mapping of label -> colour, optional
    legend : bool
        Draw the legend (off when several panels share one drawn elsewhere).

    Returns
    -------
    Element
        The panel group: class ``title``, ``xtick``/``ytick`` labels,
        ``xlabel``/``ylabel``, one ``polyline`` per series (``data-series``),
        a ``legend`` group.
    """
    xs_arr = np.asarray(xs, dtype=np.float64)
    if xs_arr.ndim != 1 or xs_arr.size == 0 or not np.isfinite(xs_arr).all():
        raise ValueError(f"line_chart: expected at least one finite x value, received {list(xs)}")
    arrays = {}
    for label, values in series.items():
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != xs_arr.shape:
            raise ValueError(f"line_chart: expected {xs_arr.size} values for series {label!r}, "
                             f"received {arr.size}")
        if log_y:  # plotted as log10, ticked at whole decades
            with np.errstate(divide="ignore", invalid="ignore"):
                arr = np.where(arr > 0, np.log10(np.where(arr > 0, arr, 1.0)), np.nan)
        arrays[label] = arr
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()] + [np.empty(0)])
    ylo, yhi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    xt = nice_ticks(xs_arr.min(), xs_arr.max(), max_ticks=8, integer=integer_x)
    yt = nice_ticks(float(ylo), float(yhi), max_ticks=6, integer=log_y)

    left, right, top, bottom = 58, 14, 46, 44  # room for tick labels, title and legend
    pw, ph = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return left + (v - xt[0]) / (xt[-1] - xt[0]) * pw

    def py(v: float) -> float:
        return top + ph - (v - yt[0]) / (yt[-1] - yt[0]) * ph

    g = parent.add("g", class_="panel", transform=f"translate({x:g},{y:g})")
    g.add("text", title, class_="title", x=left + pw / 2, y=18, text_anchor="middle",
          font_size=14, font_weight="bold")
    for t in yt:
        g.add("line", x1=left, x2=left + pw, y1=py(t), y2=py(t), stroke="#e6e6e6")
        g.add("text", f"{10.0 ** t:g}" if log_y else _tick_label(t, yt), class_="ytick",
              x=left - 6, y=py(t) + 4, text_anchor="end")
    for t in xt:
        g.add("line", x1=px(t), x2=px(t), y1=top + ph, y2=top + ph + 4, stroke="#333")
        g.add("text", _tick_label(t, xt), class_="xtick", x=px(t), y=top + ph + 17,
              text_anchor="middle")
    g.add("path", d=f"M{left},{top} V{top + ph:g} H{left + pw:g}", fill="none", stroke="#333")
    g.add("text", xlabel, class_="xlabel", x=left + pw / 2, y=height - 8, text_anchor="middle")
    g.add("text", ylabel, class_="ylabel", x=14, y=top + ph / 2, text_anchor="middle",
          transform=f"rotate(-90 14 {top + ph / 2:g})")

    cycle = ["#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    colors = {label: (colors or {}).get(label) or SERIES_COLORS.get(label, cycle[i % len(cycle)])
              for i, label in enumerate(arrays)}
    if legend:
        key = g.add("g", class_="legend")
        lx = left + pw
        for label in reversed(list(arrays)):  # right-aligned, so laid out from the right
            lx -= 14 + 7 * len(label) + 18  # rough text width at font-size 12
            key.add("line", x1=lx, x2=lx + 18, y1=34, y2=34, stroke=colors[label],
                    stroke_width=2)
            key.add("text", label, x=lx + 22, y=38)
    for label, arr in arrays.items():
        ok = np.isfinite(arr)
        points = " ".join(f"{px(a):.2f},{py(b):.2f}" for a, b in zip(xs_arr[ok], arr[ok]))
        g.add("polyline", points=points, fill="none", stroke=colors[label], stroke_width=2,
              stroke_linejoin="round", class_="series").set("data-series", label)
        if ok.sum() <= _MAX_MARKERS:  # also makes a single point visible
            for a, b in zip(xs_arr[ok], arr[ok]):
                g.add("circle", cx=px(a), cy=py(b), r=2.5, fill=colors[label], class_="marker")
    return g


# --------------------------------------------------------------------- curves
def curves_svg(epochs: Sequence[float], loss: Mapping[str, Sequence[float]],
               accuracy: Mapping[str, Sequence[float]], *, title: str | None = None,
               width: float = 840, height: float = 320) -> Element:
    """Loss and accuracy by epoch as one SVG with two panels, one line per series.

    Parameters
    ----------
    epochs : sequence of float
        The x values, at least one.
    loss, accuracy : mapping of series name -> values
        E.g. ``{"train": [...], "val": [...], "test": [...]}``, each as long as
        ``epochs`` (see :func:`minidl.rundir.metric_series`); non-finite values
        are left out.
    title : str, optional
        A heading above both panels.

    Returns
    -------
    Element
        The ``<svg>`` root; write it with :func:`minidl.viz.write_svg`.
    """
    if len(epochs) == 0:
        raise ValueError("curves_svg: expected at least one epoch, received none")
    for name, series in (("loss", loss), ("accuracy", accuracy)):
        if not series:
            raise ValueError(f"curves_svg: expected at least one {name} series, received none")
    head = 28 if title else 0
    root = svg_document(width, height + head, font_family=_FONT, font_size=12)
    root.add("rect", width="100%", height="100%", fill="white")
    if title:
        root.add("text", title, class_="heading", x=width / 2, y=20, text_anchor="middle",
                 font_size=16, font_weight="bold")
    half = width / 2
    for i, (label, series) in enumerate((("loss", loss), ("accuracy", accuracy))):
        line_chart(root, epochs, series, x=i * half, y=head, width=half, height=height,
                   title=label.capitalize(), xlabel="epoch", ylabel=label, integer_x=True)
    return root


def write_curves(path: str | os.PathLike, epochs: Sequence[float],
                 loss: Mapping[str, Sequence[float]], accuracy: Mapping[str, Sequence[float]],
                 *, title: str | None = None) -> Path:
    """Write :func:`curves_svg` to ``path``."""
    return write_svg(path, curves_svg(epochs, loss, accuracy, title=title))


# ----------------------------------------------------------- confusion matrix
def _labels_array(values: object, name: str, num_classes: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"confusion_matrix: expected {name} as a 1-D array of integer class "
                         f"labels, received shape {arr.shape} and dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"confusion_matrix: expected {name} in [0, {num_classes - 1}], "
                         f"received values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Count how often each true class was predicted as each class.

    Shape
    -----
    y_true, y_pred : (N,) integer labels in ``[0, num_classes)``.
    Returns : (num_classes, num_classes) int64, ``[true, predicted]``; the
    diagonal holds the correct predictions and each row sums to that class's count.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"confusion_matrix: expected num_classes >= 1, received {num_classes!r}")
    t = _labels_array(y_true, "y_true", num_classes)
    p = _labels_array(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: expected y_true and y_pred of the same length, "
                         f"received {t.size} and {p.size}")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _heat(fraction: float) -> str:
    """White (0) to dark blue (1) as ``#rrggbb``."""
    low, high = np.array([247, 251, 255]), np.array([8, 48, 107])
    r, g, b = np.rint(low + fraction * (high - low)).astype(int)
    return f"#{r:02x}{g:02x}{b:02x}"


def confusion_svg(matrix: np.ndarray, *, labels: Sequence[str] | None = None,
                  title: str = "Confusion matrix", cell: float = 40) -> Element:
    """Draw a confusion matrix as a heat-map table with the counts in the cells.

    Rows are true classes (axis label "true", left), columns predicted classes
    (axis label "predicted", top). Cell shade is proportional to count / max
    count (an all-zero matrix is all white); counts are written on every cell.

    Parameters
    ----------
    matrix : np.ndarray of int
        ``(K, K)`` non-negative counts, e.g. from :func:`confusion_matrix`.
    labels : sequence of str, optional
        Class names; default ``"0"`` .. ``"K-1"``.
    cell : float
        Cell size in pixels.

    Returns
    -------
    Element
        The ``<svg>`` root. Cells are ``rect.cell`` with ``data-true`` and
        ``data-pred``; counts are ``text.count``.
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.size == 0 or m.dtype.kind not in "iu":
        raise ValueError(f"confusion_svg: expected a square (K, K) integer matrix, received "
                         f"shape {m.shape} and dtype {m.dtype}")
    if m.min() < 0:
        raise ValueError(f"confusion_svg: expected non-negative counts, received {m.min()}")
    k = m.shape[0]
    labels = [str(i) for i in range(k)] if labels is None else [str(s) for s in labels]
    if len(labels) != k:
        raise ValueError(f"confusion_svg: expected {k} labels, received {len(labels)}")
    left, top = 64, 72  # axis label + class labels
    width, height = left + k * cell + 16, top + k * cell + 16
    root = svg_document(width, height, font_family=_FONT, font_size=12)
    root.add("rect", width="100%", height="100%", fill="white")
    root.add("text", title, class_="title", x=left + k * cell / 2, y=20, text_anchor="middle",
             font_size=14, font_weight="bold")
    root.add("text", "predicted", class_="xlabel", x=left + k * cell / 2, y=44,
             text_anchor="middle")
    cy = top + k * cell / 2
    root.add("text", "true", class_="ylabel", x=18, y=cy, text_anchor="middle",
             transform=f"rotate(-90 18 {cy:g})")
    peak = int(m.max())
    font = max(8, min(13, cell * 0.32))
    for i, name in enumerate(labels):
        root.add("text", name, class_="col-label", x=left + (i + 0.5) * cell, y=top - 8,
                 text_anchor="middle")
        root.add("text", name, class_="row-label", x=left - 8, y=top + (i + 0.5) * cell + 4,
                 text_anchor="end")
    for i in range(k):
        for j in range(k):
            fraction = m[i, j] / peak if peak else 0.0
            x, y = left + j * cell, top + i * cell
            rect = root.add("rect", class_="cell", x=x, y=y, width=cell, height=cell,
                            fill=_heat(fraction), stroke="#ffffff")
            rect.set("data-true", i).set("data-pred", j)
            rect.add("title", f"true {labels[i]}, predicted {labels[j]}: {m[i, j]}")
            root.add("text", str(m[i, j]), class_="count", x=x + cell / 2,
                     y=y + cell / 2 + font / 3, text_anchor="middle", font_size=font,
                     fill="#ffffff" if fraction > 0.5 else "#222222")
    return root


# ---------------------------------------------------------- weight statistics
#: The panels of :func:`weight_stats_svg`: (column of weight_stats.csv, title, y label).
_WEIGHT_PANELS = (("mean_abs_weight", "Mean |W|", "mean |W|"),
                  ("mean_abs_grad", "Mean |dW| (last step)", "mean |dW|"),
                  ("ratio", "Ratio |dW| / |W|", "mean |dW| / mean |W|"))


def _spans_decades(values: list[np.ndarray]) -> bool:
    """True when the positive finite values span more than a factor of ten."""
    flat = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values] + [np.empty(0)])
    return flat.size > 0 and bool(flat.max() > 10 * flat.min())


def weight_stats_svg(stats: Mapping[str, Mapping[str, Sequence[float]]], *,
                     width: float = 1020, height: float = 300) -> Element:
    """cuda-convnet's per-layer weight statistics by epoch, as three panels.

    Mean ``|W|``, mean ``|dW|`` of the epoch's last step and their ratio (about
    the relative size of one update, before the learning rate), one line per
    layer in the same colour in every panel, with one legend above them. A
    panel whose values span more than a factor of ten has a log scale (its
    y label says so); non-finite values (a ratio over an all-zero weight) and,
    on a log scale, zeros are left out.

    Parameters
    ----------
    stats : mapping of layer name -> {column: values}
        :func:`minidl.rundir.read_weight_stats`' form: for each layer,
        ``"epoch"``, ``"mean_abs_weight"``, ``"mean_abs_grad"`` and ``"ratio"``,
        one value per epoch it was recorded in.

    Returns
    -------
    Element
        The ``<svg>`` root; panels are ``g.panel`` (see :func:`line_chart`),
        legend entries ``g.legend > text``.
    """
    if not stats:
        raise ValueError("weight_stats_svg: expected statistics for at least one layer, "
                         "received none")
    columns = ("epoch",) + tuple(key for key, _, _ in _WEIGHT_PANELS)
    for layer, series in stats.items():
        lengths = {len(series.get(key, ())) for key in columns}
        if any(key not in series for key in columns) or len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"weight_stats_svg: expected columns {', '.join(columns)} of one "
                             f"non-zero length for layer {layer!r}, received "
                             f"{ {k: len(v) for k, v in series.items()} }")
    epochs = sorted({float(e) for series in stats.values() for e in series["epoch"]})
    where = {e: i for i, e in enumerate(epochs)}
    colors = {layer: LAYER_COLORS[i % len(LAYER_COLORS)] for i, layer in enumerate(stats)}

    # The legend: one entry per layer, laid out left to right and wrapped to the width.
    entries, line, lx = [], 0, 12.0
    for layer in stats:
        step = 18 + 6 + 7 * len(layer) + 18  # swatch, gap, rough text width, space
        if lx + step > width - 12 and lx > 12:
            line, lx = line + 1, 12.0
        entries.append((layer, lx, 20 + 18 * line))
        lx += step
    head = 20 + 18 * (line + 1)
    root = svg_document(width, height + head, font_family=_FONT, font_size=12)
    root.add("rect", width="100%", height="100%", fill="white")
    key = root.add("g", class_="legend")
    for layer, lx, ly in entries:
        key.add("line", x1=lx, x2=lx + 18, y1=ly - 4, y2=ly - 4, stroke=colors[layer],
                stroke_width=2)
        key.add("text", layer, x=lx + 24, y=ly)

    panel = width / len(_WEIGHT_PANELS)
    for i, (column, title, ylabel) in enumerate(_WEIGHT_PANELS):
        series = {}
        for layer, values in stats.items():
            aligned = np.full(len(epochs), np.nan)
            for e, v in zip(values["epoch"], values[column]):
                aligned[where[float(e)]] = v
            series[layer] = aligned
        log = _spans_decades(list(series.values()))
        line_chart(root, epochs, series, x=i * panel, y=head, width=panel, height=height,
                   title=title, xlabel="epoch", ylabel=ylabel + (" (log scale)" if log else ""),
                   integer_x=True, log_y=log, colors=colors, legend=False)
    return root
