"""A static HTML report of a training run: weights, connections, feature maps, results.

:func:`write_report` reads a run directory written by ``train.py`` (or a bare
checkpoint) and writes one ``report.html`` plus its figures into ``out_dir``.
The page uses relative links only, no scripts and no network, so it opens from
the file system in any browser; the same inputs give byte-identical files.

Files written
-------------
``<conv>`` and ``<layer>`` stand for layer names, ``<t>`` for a test-set index.

``report.html``
    The page.
``channels-<conv>.png``
    For every Conv2D: the cross-channel grid (row = output kernel, column =
    input map; unconnected pairs drawn as empty pale-blue tiles with a cross).
    Each row (one 3-D kernel) is scaled by its own largest |weight|, zero =
    mid-grey, so within a row you see how much each input map adds to the sum.
    A first layer on a 1-channel image gives a single column; it is drawn
    anyway so every layer's connections are shown the same way.
``kernels-<conv>.png``
    For every Conv2D with 1 or 3 input channels (and all pairs connected): the
    first-layer view, one tile per whole kernel (Krizhevsky et al. 2012, Fig. 3).
``input-<t>.png``, ``features-<t>-<layer>.png``
    For a few sample test digits: the digit as the model sees it (normalised,
    padded) and the maps after every convolution (after its activation, see
    :mod:`minidl.viz.features`) and every pooling layer.
``curves.svg``
    Loss and accuracy by epoch (from ``metrics.csv``, else from the
    checkpoint's metadata).
``confusion.svg``, ``misclassified.png``
    From ``predictions.npz``; the true and predicted labels of the misclassified
    digits are listed in the page, in grid order.

Figures that cannot be drawn (a bare checkpoint has no test digits, an
interrupted run may have no ``predictions.npz``) are left out and the page
says what is missing and why.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minidl import io
from minidl.containers import Graph, Sequential
from minidl.data import images_to_tensor
from minidl.layers import Conv2D
from minidl.layers.base import Layer
from minidl.viz.features import FeatureRecord, feature_map_grid, feature_records, trace
from minidl.viz.grids import EMPTY_COLOR, channel_grid, image_grid, kernel_grid
from minidl.viz.plots import (REQUIRED_COLUMNS, confusion_matrix, confusion_svg, curves_svg,
                              read_metrics)
from minidl.atomic import atomic_write_bytes
from minidl.viz.png import write_png
from minidl.viz.svg import write_svg

__all__ = ["write_report", "default_out_dir", "ReportError", "REPORT_NAME"]

REPORT_NAME = "report.html"
CHECKPOINT_NAME = "checkpoint.npz"
PREDICTION_KEYS = ("test_labels", "test_predictions", "sample_index", "sample_images",
                   "misclassified_index", "misclassified_images")
DEFAULT_DIGITS = 3

# Layout targets, in pixels of the PNG files.
_KERNEL_TILE = 30          # a first-layer kernel tile (5x5 -> scale 6)
_CHANNEL_MAX_HEIGHT = 1400  # a cross-channel grid; taller ones scroll in the page
_FEATURE_TILE = 48         # one feature map
_FEATURE_ROW = 440         # width of one layer's feature-map grid
_DISPLAY_MAX = (560, 900)  # (width, height) up to which small PNGs are enlarged by CSS


class ReportError(ValueError):
    """The source is not something a report can be drawn from (missing, not a checkpoint)."""


def default_out_dir(source: str | os.PathLike) -> Path:
    """Where the report goes by default.

    A run directory: the directory itself (next to its checkpoint and metrics,
    as ``train.py`` does). A bare checkpoint ``dir/name.npz``: a new directory
    ``dir/name-report`` beside it, so the figures do not mix with other files.
    """
    path = Path(source)
    return path if path.is_dir() else path.with_name(f"{path.stem}-report")


# ====================================================================== inputs
@dataclass
class _Run:
    """Everything read from the source, plus notes on what is missing."""

    kind: str                        # "run" or "checkpoint"
    source: Path
    checkpoint: Path
    model: Layer
    meta: dict[str, Any]
    args: dict[str, Any] | None = None
    metrics: dict[str, list[float]] | None = None
    metrics_origin: str = ""
    predictions: dict[str, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)


def _open(source: str | os.PathLike) -> _Run:
    path = Path(source)
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory (expected a run directory or a "
                          f"checkpoint .npz)")
    if path.is_dir():
        kind, checkpoint = "run", path / CHECKPOINT_NAME
        if not checkpoint.is_file():
            raise ReportError(f"{path}: expected a run directory holding {CHECKPOINT_NAME}, "
                              f"received a directory without one")
    else:
        kind, checkpoint = "checkpoint", path
    try:
        loaded = io.load(checkpoint)
    except io.CheckpointError as error:
        raise ReportError(f"not a minidl checkpoint: {error}") from None
    meta = loaded.meta if isinstance(loaded.meta, dict) else {}
    run = _Run(kind, path, checkpoint, loaded.model, meta)

    # Arguments: args.json of the run, else the checkpoint's copy.
    if kind == "run" and (path / "args.json").is_file():
        try:
            run.args = json.loads((path / "args.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            run.notes.append(f"args.json could not be read ({_esc(error)}); using the checkpoint's copy.")
    if not isinstance(run.args, dict):
        run.args = meta.get("args") if isinstance(meta.get("args"), dict) else None

    # Training history: metrics.csv of the run, else the checkpoint's metadata.
    if kind == "run" and (path / "metrics.csv").is_file():
        try:
            run.metrics, run.metrics_origin = read_metrics(path / "metrics.csv"), "metrics.csv"
        except (OSError, ValueError) as error:
            run.notes.append(f"metrics.csv could not be read ({_esc(error)}).")
    if run.metrics is None:
        rows = meta.get("metrics")
        if isinstance(rows, list) and rows and all(
                isinstance(r, dict) and all(k in r for k in REQUIRED_COLUMNS) for r in rows):
            run.metrics = {k: [float(r[k]) for r in rows] for k in REQUIRED_COLUMNS}
            run.metrics_origin = "the checkpoint's metadata"
    if run.metrics is not None and not run.metrics.get("epoch"):
        run.metrics = None
    if run.metrics is None:
        where = "metrics.csv" if kind == "run" else "the checkpoint's metadata"
        run.notes.append(f"Training curves: no per-epoch metrics in {where} (a run interrupted "
                         f"before its first epoch ended has none).")

    # Test-set predictions and sample digits.
    if kind == "run":
        file = path / "predictions.npz"
        if file.is_file():
            try:
                run.predictions = _read_predictions(file)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                run.notes.append(f"predictions.npz could not be used ({_esc(error)}); feature maps, "
                                 f"the confusion matrix and the misclassified digits are left out.")
        else:
            run.notes.append("No predictions.npz in the run directory (it is written after each "
                             "completed epoch): feature maps, the confusion matrix and the "
                             "misclassified digits need its test digits and are left out.")
    else:
        hint = ""
        if (path.parent / "predictions.npz").is_file():
            hint = (f" This checkpoint sits in a run directory: <code>python -m minidl.viz "
                    f"{html.escape(path.parent.name or '.')}</code> draws the full report.")
        run.notes.append("A bare checkpoint holds the weights and the model's description but no "
                         "data: feature maps (which need input digits), the confusion matrix and "
                         "the misclassified digits (which need test-set predictions) cannot be "
                         "drawn. Give the run directory, which has predictions.npz, for "
                         "those." + hint)
    return run


def _read_predictions(file: Path) -> dict[str, np.ndarray]:
    with np.load(file, allow_pickle=False) as archive:
        data = {name: archive[name] for name in archive.files}
    missing = [k for k in PREDICTION_KEYS if k not in data]
    if missing:
        raise ValueError(f"missing entries {', '.join(missing)}")
    n = len(data["test_labels"])
    if data["test_predictions"].shape != (n,):
        raise ValueError(f"test_predictions has shape {data['test_predictions'].shape}, "
                         f"expected ({n},)")
    for index, images in (("sample_index", "sample_images"),
                          ("misclassified_index", "misclassified_images")):
        idx, img = data[index], data[images]
        if img.dtype != np.uint8 or img.ndim != 3 or len(idx) != len(img):
            raise ValueError(f"{images} must be uint8 (N, H, W) matching {index}, received "
                             f"{img.dtype} {img.shape} for {len(idx)} indices")
        if idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{index} must hold test-set indices below {n}")
    probs = data.get("test_probabilities")
    if probs is not None and (probs.ndim != 2 or len(probs) != n):
        del data["test_probabilities"]
    return data


# ===================================================================== helpers
def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _leaves(model: Layer) -> list[tuple[str, Layer]]:
    """Every layer without sublayers, with its dotted name, in the walk's order."""
    return [(name or model.name or model.default_name, layer)
            for name, layer in model.named_modules() if next(layer.named_children(), None) is None]


def _connected_pairs(conv: Conv2D) -> tuple[int, int, int]:
    """(output maps, input maps, connected pairs) of a convolution."""
    n, m = conv.out_channels, conv.in_channels
    if conv.connections is not None:
        return n, m, int(np.asarray(conv.connections).sum())
    return n, m, n * m // conv.groups


def _display(image: np.ndarray) -> tuple[int, int]:
    """Displayed (width, height): small images enlarged by a whole factor (at most 2)."""
    h, w = image.shape[:2]
    factor = max(1, min(2, _DISPLAY_MAX[0] // w, _DISPLAY_MAX[1] // h))
    return w * factor, h * factor


def _grid_cols(count: int, tile: int, width: int) -> int:
    """Columns for ``count`` tiles of ``tile`` px in about ``width`` px, rows evenly filled."""
    most = max(1, width // (tile + 1))
    rows = math.ceil(count / most)
    return math.ceil(count / rows)


class _Files:
    """Writes the figures with unique, URL-safe names and returns their <img> tags."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.taken: set[str] = set()

    def name(self, stem: str, suffix: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
        name, k = f"{base}{suffix}", 1
        while name.lower() in self.taken:
            k += 1
            name = f"{base}-{k}{suffix}"
        self.taken.add(name.lower())
        return name

    def png(self, stem: str, image: np.ndarray, alt: str, enlarge: bool = True) -> str:
        name = self.name(stem, ".png")
        write_png(self.out_dir / name, image)
        w, h = _display(image) if enlarge else (image.shape[1], image.shape[0])
        return (f'<img class="px" src="{name}" width="{w}" height="{h}" alt="{_esc(alt)}">')

    def svg(self, stem: str, root: Any, alt: str) -> str:
        name = self.name(stem, ".svg")
        write_svg(self.out_dir / name, root)
        return (f'<img src="{name}" width="{_esc(root.attrs["width"])}" '
                f'height="{_esc(root.attrs["height"])}" alt="{_esc(alt)}">')


# ==================================================================== sections
def _input_spec(run: _Run) -> tuple[dict[str, float], bool]:
    spec = run.meta.get("input")
    if isinstance(spec, dict) and all(isinstance(spec.get(k), (int, float)) for k in ("mean", "std")):
        return {"mean": float(spec["mean"]), "std": float(spec["std"]),
                "pad": int(spec.get("pad", 0) or 0)}, True
    return {"mean": 0.0, "std": 1.0, "pad": 0}, False


def _prepare(images: np.ndarray, spec: dict[str, float]) -> np.ndarray:
    return images_to_tensor(images, spec["mean"], spec["std"], int(spec["pad"]))


def _probe(run: _Run, spec: dict[str, float]) -> tuple[dict[str, Any], str | None]:
    """Run one blank digit through the model: each leaf's output shape and input source."""
    convs = [l for _, l in _leaves(run.model) if isinstance(l, Conv2D)]
    channels = convs[0].in_channels if convs else 1
    size = 28 + 2 * int(spec["pad"])
    x = np.full((channels, size, size), -spec["mean"] / spec["std"], np.float32)
    try:
        records = trace(run.model, x)
    except ValueError as error:
        return {}, str(error)
    return {r.name: r for r in records}, None


def _summary_section(run: _Run, records: dict[str, Any], spec_known: bool,
                     spec: dict[str, float]) -> str:
    parts = ['<section id="model"><h2>The model</h2>']
    facts = []
    preds = run.predictions
    if preds is not None:
        right = int((preds["test_predictions"] == preds["test_labels"]).sum())
        n = len(preds["test_labels"])
        facts.append(f"test accuracy <b>{_pct(right / n)}</b> ({right}/{n}, from predictions.npz)")
    elif run.metrics is not None:
        facts.append(f"test accuracy <b>{_pct(run.metrics['test_acc'][-1])}</b> "
                     f"(last epoch, from {_esc(run.metrics_origin)})")
    if run.metrics is not None:
        facts.append(f"{len(run.metrics['epoch'])} epoch(s) recorded")
    facts.append(f"{run.model.num_parameters():,} trainable parameters")
    if spec_known:
        facts.append(f"input: 28x28 digits scaled to [0, 1], normalised as (x - {spec['mean']:g}) "
                     f"/ {spec['std']:g}" + (f", padded by {spec['pad']} to "
                                              f"{28 + 2 * spec['pad']}x{28 + 2 * spec['pad']}"
                                              if spec["pad"] else ""))
    parts.append("<p>" + "; ".join(facts) + ".</p>")

    parts.append('<table class="layers"><thead><tr><th>#</th><th>layer</th><th>what it is</th>'
                 '<th>output (C, H, W)</th><th>parameters</th></tr></thead><tbody>')
    for i, (name, layer) in enumerate(_leaves(run.model), 1):
        rec = records.get(name)
        shape = f"({', '.join(str(s) for s in rec.output.shape[1:])})" if rec is not None else ""
        count = layer.num_parameters()
        parts.append(f"<tr><td>{i}</td><td><code>{_esc(name)}</code></td>"
                     f"<td><code>{_esc(repr(layer))}</code></td><td>{shape}</td>"
                     f"<td class=\"num\">{f'{count:,}' if count else '&ndash;'}</td></tr>")
    parts.append(f'<tr class="total"><td></td><td colspan="3">total (entries a connection table '
                 f'removes are not counted)</td><td class="num">{run.model.num_parameters():,}'
                 f'</td></tr></tbody></table>')
    if run.args:
        parts.append('<h3>Training arguments</h3><table class="args"><tbody>')
        for key, value in run.args.items():
            parts.append(f"<tr><th>{_esc(key)}</th><td><code>{_esc(json.dumps(value))}</code>"
                         f"</td></tr>")
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "\n".join(parts)


_EXPLANATION = """
<p>A convolution layer with <i>M</i> input maps and <i>N</i> kernels is <b>not</b> <i>M</i> &times;
<i>N</i> separate filters, and it does not average its inputs. Each kernel is three-dimensional,
<code>(M, kh, kw)</code>: it spans all its input maps, with one 2-D slice per input map. Output map
<i>o</i> is</p>
<p class="formula">output[o] = bias[o] + &Sigma;<sub>c</sub> correlate(input[c], W[o, c])</p>
<p>a <b>sum</b> over the connected input maps of 2-D correlations (no division by <i>M</i>), so
a layer produces exactly <i>N</i> maps. By default every output map reads every input map (full
connection). Two things restrict it: <code>groups</code> splits the maps into blocks where output
block <i>g</i> reads only input block <i>g</i> (AlexNet split its layers across two GPUs this way),
and a connection table (LeNet-5, 1998) lists, for each output map, which input maps it reads.
Pooling between two convolutions works on each map on its own: it shrinks the maps but keeps their
number, and does not change how the next convolution connects them.</p>
<p>In each grid below, row <i>o</i> is kernel <i>o</i> and column <i>c</i> is input map <i>c</i>;
the tile is the slice <code>W[o, c]</code>, and output map <i>o</i> is the sum over its row.
Grey is a zero weight, lighter positive, darker negative; each row is scaled by its own kernel's
largest |weight|, so a faint tile is an input map that contributes little to that sum.
<span class="swatch"></span> tiles with a cross are pairs that are not connected at all.</p>
"""


def _pair_note(conv: Conv2D) -> str:
    n, m, k = _connected_pairs(conv)
    if conv.connections is not None:
        table = np.asarray(conv.connections, bool)
        reads = sorted(set(int(c) for c in table.sum(axis=1)))
        counts = ", ".join(str(c) for c in reads[:-1]) + (" or " if len(reads) > 1 else "") + \
            str(reads[-1])
        return (f"A connection table: each output map reads {counts} of the {m} input maps; "
                f"the weights of the other pairs are held at zero and not trained.")
    if conv.groups > 1:
        g = conv.groups
        return (f"groups={g}: output maps {0}&ndash;{n // g - 1} read input maps "
                f"0&ndash;{m // g - 1}, the next {n // g} read the next {m // g}, and so on "
                f"({g} blocks on the diagonal).")
    if m == 1:
        return "One input map, so each kernel is a single 2-D slice."
    return f"Fully connected: every output map is a sum over all {m} input maps."


def _row_sum(conv: Conv2D) -> str:
    """How row ``o`` of the grid makes output map ``o``, in words."""
    n, m, k = _connected_pairs(conv)
    if k == n:
        return "the one 2-D correlation in row <i>o</i> (nothing to sum)"
    if k % n == 0 and conv.connections is None:
        return f"the sum of the {k // n} 2-D correlations in row <i>o</i>"
    return "the sum of the 2-D correlations in row <i>o</i>, over its connected tiles"


def _source_note(conv_name: str, records: dict[str, Any]) -> str:
    rec = records.get(conv_name)
    if rec is None:
        return ""
    src = rec.inputs[0]
    if src == "":
        return "Its input maps are the channels of the input image."
    prod = records.get(src)
    what = type(prod.layer).__name__ if prod is not None else "layer"
    shape = prod.output.shape[1:] if prod is not None else None
    text = f"Its input maps come from <code>{_esc(src)}</code> ({what}"
    if shape is not None and len(shape) == 3:
        text += f", {shape[0]} maps of {shape[1]}x{shape[2]}"
    return text + ")."


def _connections_section(run: _Run, files: _Files, records: dict[str, Any]) -> str:
    parts = ['<section id="connections"><h2>How the feature maps are connected</h2>', _EXPLANATION]
    convs = [(n, l) for n, l in _leaves(run.model) if isinstance(l, Conv2D)]
    if not convs:
        parts.append("<p>This model has no convolution layers.</p>")
    for name, conv in convs:
        w = conv.weight.data.astype(np.float64)
        peak = np.abs(w).max(axis=(1, 2, 3), keepdims=True)
        scaled = w / np.where(peak > 0, peak, 1.0)  # per-kernel symmetric scale
        out, kh = w.shape[0], w.shape[2]
        scale = int(np.clip((_CHANNEL_MAX_HEIGHT - (out + 1)) // (out * kh), 2, 6))
        grid = channel_grid(scaled, connections=conv.connections, groups=conv.groups,
                            scale=scale, per_tile=False)
        n, m, k = _connected_pairs(conv)
        tag = files.png(f"channels-{name}", grid,
                        f"{name}: {n} kernels (rows) by {_plural(m, 'input map')} (columns)")
        kh_, kw_ = conv.kernel_size
        parts.append(
            f'<div class="conn"><figure><div class="scroll">{tag}</div><figcaption>rows: '
            f'output maps 0&ndash;{n - 1}<br>'
            + (f'columns: input maps 0&ndash;{m - 1}' if m > 1 else 'column: the input map')
            + '</figcaption>'
            f'</figure><div class="text">'
            f'<h3><code>{_esc(name)}</code>: {_esc(repr(conv))}</h3>'
            f'<p class="pairs"><b>{_plural(n, "output map")} x {_plural(m, "input map")}, '
            f'{k} of {n * m} pairs connected.</b></p>'
            f'<p>Each of the {n} kernels has shape ({conv.weight.shape[1]}, {kh_}, {kw_})'
            + (f" (its group's {conv.weight.shape[1]} of the {m} input maps)"
               if conv.groups > 1 else "")
            + f"; output map <i>o</i> = bias[o] + {_row_sum(conv)}.</p>"
            f'<p>{_pair_note(conv)} {_source_note(name, records)}</p>'
            f'</div></div>')
    parts.append("</section>")
    return "\n".join(parts)


def _kernels_section(run: _Run, files: _Files) -> str:
    parts = ['<section id="kernels"><h2>First-layer kernels</h2>',
             "<p>Convolutions that read the image itself (1 or 3 channels), one tile per kernel "
             "as in Krizhevsky et al. (2012), Figure 3: each tile is min-max scaled on its own, "
             "dark = its most negative weight, light = its most positive. A 3-channel kernel is "
             "drawn in colour.</p>"]
    drawn = 0
    for name, conv in _leaves(run.model):
        if not isinstance(conv, Conv2D) or conv.groups != 1 or conv.in_channels not in (1, 3):
            continue
        if conv.connections is not None and not np.asarray(conv.connections).all():
            continue
        out, _, kh, kw = conv.weight.shape
        scale = max(1, round(_KERNEL_TILE / max(kh, kw)))
        rows = math.ceil(out / 12)
        grid = kernel_grid(conv.weight.data, scale=scale, ncols=math.ceil(out / rows))
        tag = files.png(f"kernels-{name}", grid, f"{name}: {out} kernels")
        parts.append(f"<figure>{tag}<figcaption><code>{_esc(name)}</code>: {out} kernels of "
                     f"{conv.in_channels}x{kh}x{kw}</figcaption></figure>")
        drawn += 1
    if not drawn:
        parts.append("<p>No convolution here reads 1 or 3 channels with full connections; "
                     "see the cross-channel grids above.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _pick_samples(labels: np.ndarray, count: int) -> list[int]:
    """Positions of ``count`` samples of different classes, spread over the classes present."""
    firsts: list[int] = []
    seen: set[int] = set()
    for pos, label in enumerate(labels.tolist()):
        if label not in seen:
            seen.add(label)
            firsts.append(pos)
    if len(firsts) <= count:
        return firsts
    picks = np.linspace(0, len(firsts) - 1, count).round().astype(int)
    return [firsts[i] for i in picks]


def _feature_caption(rec: FeatureRecord) -> str:
    c, h, w = rec.maps.shape
    label = f"<code>{_esc(rec.name)}</code>"
    if rec.activation:
        label += f" &rarr; <code>{_esc(rec.activation)}</code>"
    elif isinstance(rec.layer, Conv2D):
        label += " (no activation)"
    else:
        label += f" ({type(rec.layer).__name__})"
    return f"{label}: {c} map{'s' if c != 1 else ''} of {h}x{w}"


def _features_section(run: _Run, files: _Files, spec: dict[str, float], spec_known: bool,
                      digits: int) -> tuple[str, str | None]:
    head = '<section id="features"><h2>Feature maps</h2>'
    preds = run.predictions
    if preds is None:
        return (head + "<p class=\"missing\">Not drawn: no test digits (see above).</p></section>",
                None)
    images, index = preds["sample_images"], preds["sample_index"]
    if len(images) == 0:
        return head + "<p class=\"missing\">Not drawn: predictions.npz holds no sample digits." \
            "</p></section>", "predictions.npz holds no sample digits."
    if digits < 1:
        return head + "<p>Not drawn: no sample digits were asked for.</p></section>", None
    labels = preds["test_labels"][index]
    parts = [head, "<p>A few test digits run through the trained network. Each grid holds the "
             "maps of one layer, one tile per map, in channel order: after a convolution (and "
             "the activation that follows it, which is what the next layer reads) and after "
             "each pooling layer. Each grid is scaled over its whole layer: black is the layer's "
             "lowest value, white its highest, so the maps of a layer can be compared. Pooling "
             "keeps the number of maps and shrinks them; the next convolution sums over them."
             "</p>"]
    if not spec_known:
        parts.append("<p class=\"missing\">The checkpoint does not record how digits were "
                     "preprocessed; assumed x = pixel/255, no padding.</p>")
    x_all = _prepare(images, spec)
    for pos in _pick_samples(labels, digits):
        t = int(index[pos])
        try:
            recs = feature_records(run.model, x_all[pos])
        except ValueError as error:
            parts.append(f"<p class=\"missing\">Not drawn: the model rejects the digits "
                         f"({_esc(error)}).</p></section>")
            return "\n".join(parts), f"Feature maps: the model rejects the digits ({error})."
        label, predicted = int(preds["test_labels"][t]), int(preds["test_predictions"][t])
        verdict = "correct" if label == predicted else "wrong"
        parts.append(f'<div class="digit"><h3>Test digit {t}: a {label}, predicted {predicted} '
                     f'({verdict})</h3><div class="row">')
        x = x_all[pos]
        scale = max(1, round(_FEATURE_TILE / max(x.shape[1:])))
        tag = files.png(f"input-{t}", image_grid(x, ncols=1, scale=scale, normalize="global"),
                        f"test digit {t}", enlarge=False)
        parts.append(f"<figure>{tag}<figcaption>input: {x.shape[1]}x{x.shape[2]}"
                     f"</figcaption></figure>")
        for rec in recs:
            c, h, w = rec.maps.shape
            scale = int(np.clip(round(_FEATURE_TILE / max(h, w)), 1, 12))
            ncols = _grid_cols(c, h * scale, _FEATURE_ROW)
            grid = feature_map_grid(rec.maps, ncols=ncols, scale=scale)
            tag = files.png(f"features-{t}-{rec.name}", grid,
                            f"{rec.name}: {c} maps of digit {t}", enlarge=False)
            parts.append(f"<figure>{tag}<figcaption>{_feature_caption(rec)}</figcaption></figure>")
        parts.append("</div></div>")
    parts.append("</section>")
    return "\n".join(parts), None


def _curves_section(run: _Run, files: _Files) -> str:
    head = '<section id="curves"><h2>Training curves</h2>'
    if run.metrics is None:
        return head + "<p class=\"missing\">Not drawn: no per-epoch metrics.</p></section>"
    tag = files.svg("curves", curves_svg(run.metrics), "loss and accuracy by epoch")
    return (head + f"<figure>{tag}"
            f"<figcaption>Loss and accuracy by epoch, train and test "
            f"(from {_esc(run.metrics_origin)}). The train values are averages over each "
            f"epoch while the weights change; the test values are measured at its end."
            f"</figcaption></figure></section>")


def _num_classes(run: _Run) -> int:
    preds = run.predictions
    assert preds is not None
    classes = run.meta.get("classes")
    if isinstance(classes, list) and classes:
        n = len(classes)
    elif "test_probabilities" in preds:
        n = preds["test_probabilities"].shape[1]
    else:
        n = 0
    top = int(max(preds["test_labels"].max(initial=0), preds["test_predictions"].max(initial=0)))
    return max(n, top + 1)


def _confusion_section(run: _Run, files: _Files) -> str:
    head = '<section id="confusion"><h2>Confusion matrix</h2>'
    preds = run.predictions
    if preds is None:
        return head + "<p class=\"missing\">Not drawn: no test-set predictions.</p></section>"
    k = _num_classes(run)
    matrix = confusion_matrix(preds["test_labels"].astype(np.int64),
                              preds["test_predictions"].astype(np.int64), num_classes=k)
    tag = files.svg("confusion", confusion_svg(matrix), "confusion matrix")
    return (head + f"<figure>{tag}<figcaption>Rows: true class; columns: predicted class; "
            f"{int(matrix.sum())} test digits, {int(np.trace(matrix))} on the diagonal."
            f"</figcaption></figure></section>")


def _misclassified_section(run: _Run, files: _Files) -> str:
    head = '<section id="misclassified"><h2>Misclassified digits</h2>'
    preds = run.predictions
    if preds is None:
        return head + "<p class=\"missing\">Not drawn: no test-set predictions.</p></section>"
    labels, predicted = preds["test_labels"], preds["test_predictions"]
    wrong = int((labels != predicted).sum())
    index, images = preds["misclassified_index"], preds["misclassified_images"]
    if len(images) == 0:
        return head + f"<p>No stored misclassified digits ({wrong} of {len(labels)} test " \
            f"digits are misclassified).</p></section>"
    ncols = min(10, len(images))
    grid = image_grid(images, ncols=ncols, scale=2, normalize=None)
    tag = files.png("misclassified", grid, "misclassified test digits", enlarge=False)
    probs = preds.get("test_probabilities")
    cells = []
    for t in index.tolist():
        true, pred = int(labels[t]), int(predicted[t])
        conf = f"<br><small>{100 * float(probs[t, pred]):.0f}%</small>" \
            if probs is not None and pred < probs.shape[1] else ""
        cells.append(f'<td title="test digit {t}">{true}&rarr;{pred}{conf}</td>')
    rows = ["<tr>" + "".join(cells[i:i + ncols]) + "</tr>" for i in range(0, len(cells), ncols)]
    pitch = 28 * 2 + 1  # tile + border of the grid above: table rows line up with its rows
    return (head + f"<p>The first {len(images)} of the {wrong} misclassified test digits "
            f"({_pct(wrong / len(labels))} of {len(labels)}), in test-set order, left to right "
            f"and top to bottom. Beside the grid, in the same places: true&rarr;predicted"
            + (" and the probability the network gave its (wrong) answer" if probs is not None
               else "") + ".</p>"
            f'<div class="pair">{tag}'
            f'<table class="wrong" style="--pitch:{pitch - 1}px"><tbody>' + "".join(rows)
            + "</tbody></table></div></section>")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
 max-width:1200px;margin:1.5em auto;padding:0 1em;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
 margin-top:2em}h3{font-size:1.05em;margin:.3em 0}
nav a{margin-right:1em}
img.px{image-rendering:crisp-edges;image-rendering:pixelated}
img{max-width:none}
code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.9em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.2em .55em;text-align:left;vertical-align:top}
td.num{text-align:right}tr.total td{font-weight:bold}
table.wrong{margin:0}table.wrong td{width:var(--pitch);height:var(--pitch);padding:0;text-align:center;
 vertical-align:middle;font-size:.85em;line-height:1.15;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:0 1.2em 1em 0;vertical-align:top}
figcaption{font-size:.85em;color:#555;max-width:560px}
.conn{display:flex;gap:.5em;align-items:flex-start;border-top:1px solid #eee;padding:1em 0}
.conn .text{max-width:560px}
.scroll{max-height:720px;overflow:auto;flex:none}
.pair{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.digit{border-top:1px solid #eee;padding-top:.6em}
.row{display:flex;flex-wrap:wrap;align-items:flex-start}
.notes{background:#fff8e1;border-left:4px solid #e0a800;padding:.5em 1em}
.missing{color:#8a5a00}
.formula{font-family:Georgia,serif;font-size:1.1em;margin-left:2em}
.swatch{display:inline-block;width:1em;height:1em;vertical-align:-.15em;
 border:1px solid #999;background:rgb%s}
""" % (str(tuple(EMPTY_COLOR)).replace(" ", ""),)


# ======================================================================= entry
def write_report(source: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                 digits: int = DEFAULT_DIGITS) -> Path:
    """Draw a run's figures and write ``report.html`` into ``out_dir``.

    Parameters
    ----------
    source : str or Path
        A run directory written by ``train.py`` (``checkpoint.npz``, and when
        present ``metrics.csv``, ``args.json``, ``predictions.npz``), or a
        checkpoint file. A file is always read as a bare checkpoint, even
        inside a run directory: weights, model summary and, when its metadata
        holds them, training curves; the page says what is missing and why.
    out_dir : str or Path, optional
        Created if needed. Default: :func:`default_out_dir`.
    digits : int
        How many sample test digits to draw feature maps for (of different
        classes, spread over the classes present).

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.

    Raises
    ------
    ReportError
        If ``source`` does not exist, is a directory without ``checkpoint.npz``
        or is not a readable minidl checkpoint.
    """
    run = _open(source)
    out = Path(out_dir) if out_dir is not None else default_out_dir(source)
    out.mkdir(parents=True, exist_ok=True)
    files = _Files(out)
    spec, spec_known = _input_spec(run)
    if not spec_known:
        run.notes.append("The checkpoint does not record the input preprocessing "
                         "(meta['input']); digits are assumed to be scaled to [0, 1] only.")
    records, probe_error = _probe(run, spec)
    if probe_error:
        run.notes.append(f"A 28x28 digit could not be run through the model ({_esc(probe_error)}); "
                         f"output shapes are left out.")

    body = [_summary_section(run, records, spec_known, spec),
            _connections_section(run, files, records),
            _kernels_section(run, files)]
    features, note = _features_section(run, files, spec, spec_known, digits)
    if note:
        run.notes.append(_esc(note))
    body += [features, _curves_section(run, files), _confusion_section(run, files),
             _misclassified_section(run, files)]

    model_name = (run.args or {}).get("model") or type(run.model).__name__
    what = ("run directory" if run.kind == "run" else "checkpoint")
    title = f"minidl report: {model_name}"
    notes = ""
    if run.notes:
        notes = ('<div class="notes" id="missing"><b>What this report could not show, and why'
                 '</b><ul>' + "".join(f"<li>{n}</li>" for n in run.notes) + "</ul></div>")
    nav = ('<nav><a href="#model">Model</a><a href="#connections">Connections</a>'
           '<a href="#kernels">First-layer kernels</a><a href="#features">Feature maps</a>'
           '<a href="#curves">Curves</a><a href="#confusion">Confusion</a>'
           '<a href="#misclassified">Misclassified</a></nav>')
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="source">Drawn from the {what} <code>{_esc(run.source.name or run.source)}'
        f"</code> by <code>python -m minidl.viz</code>.</p>",
        nav, notes, *body, "</body>", "</html>", ""])
    return atomic_write_bytes(out / REPORT_NAME, page.encode("utf-8"))
