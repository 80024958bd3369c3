"""The sections of the report about the model and its results.

Each function takes the :class:`~minidl.viz.run.RunView`, the
:class:`~minidl.viz.page.Figures` writer and what else it needs, and returns
``(html, notes)``: the section and, in HTML, anything it could not draw and why.
Nothing here assumes a dataset: image size, channels and class names come
from the run's input spec and predictions.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from minidl import rundir
from minidl.inspect import colour_by_column, column_groups
from minidl.layers import Conv2D
from minidl.layers.base import Layer
from minidl.viz.features import FeatureRecord, feature_map_grid, feature_records, trace
from minidl.viz.grids import channel_grid, image_grid, kernel_grid
from minidl.viz.page import (Figures, esc, grid_cols, missing, pct, plural, scale_for,
                             section)
from minidl.viz.plots import confusion_matrix, confusion_svg, curves_svg
from minidl.viz.run import RunView

Section = tuple[str, list[str]]

_KERNEL_TILE = 36           # a kernel tile (5x5 -> scale 7)
_CHANNEL_MAX_HEIGHT = 1400  # a cross-channel grid; taller ones scroll in the page
_FEATURE_TILE = 48          # one feature map
_FEATURE_ROW = 440          # width of one layer's feature-map grid
_IMAGE_TILE = 56            # a sample image


# ----------------------------------------------------------------- helpers
def leaves(model: Layer) -> list[tuple[str, Layer]]:
    """Every layer without sublayers, with its dotted name, in the walk's order."""
    return [(name or model.name or model.default_name, layer)
            for name, layer in model.named_modules() if next(layer.named_children(), None) is None]


def convolutions(model: Layer) -> list[tuple[str, Conv2D]]:
    return [(name, layer) for name, layer in leaves(model) if isinstance(layer, Conv2D)]


def connected_pairs(conv: Conv2D) -> tuple[int, int, int]:
    """(output maps, input maps, connected pairs) of a convolution."""
    n, m = conv.out_channels, conv.in_channels
    if conv.connections is not None:
        return n, m, int(np.asarray(conv.connections).sum())
    return n, m, n * m // conv.groups


def displayable(images: np.ndarray) -> np.ndarray:
    """Raw images ``(n, C, H, W)`` as ``(n, H, W)`` grey or ``(n, H, W, 3)`` colour 0..255."""
    if images.dtype != np.uint8:  # float data: each image stretched to 0..255 on its own
        flat = images.reshape(len(images), -1).astype(np.float64)
        lo, hi = flat.min(axis=1), flat.max(axis=1)
        span = np.where(hi > lo, hi - lo, 1.0)
        images = np.rint((images - lo[:, None, None, None]) / span[:, None, None, None] * 255
                         ).astype(np.uint8)
    return images[:, 0] if images.shape[1] == 1 else images[:, :3].transpose(0, 2, 3, 1)


def class_name(names: tuple[str, ...] | None, label: int) -> str:
    return names[label] if names is not None and 0 <= label < len(names) else str(label)


def probe(view: RunView) -> tuple[dict[str, Any], str | None]:
    """Run one blank input through the model: each leaf's output shape and input source."""
    if view.spec is None:
        return {}, None
    x = np.empty(view.spec.model_shape, np.float32)
    x[...] = np.asarray(view.spec.fill, np.float32)[:, None, None]
    try:
        return {r.name: r for r in trace(view.model, x)}, None
    except ValueError as error:
        return {}, str(error)


# ------------------------------------------------------------------ the model
def summary_section(view: RunView, records: dict[str, Any]) -> Section:
    facts = []
    preds = view.predictions
    if preds is not None:
        right = int((preds.predicted == preds.labels).sum())
        n = len(preds.labels)
        facts.append(f"{preds.split} accuracy <b>{pct(right / n)}</b> ({right}/{n}, from "
                     f"predictions.npz)")
    elif view.metrics is not None and rundir.final_accuracy(view.metrics) is not None:
        split, value = rundir.final_accuracy(view.metrics)
        facts.append(f"{split} accuracy <b>{pct(value)}</b> (last epoch, from "
                     f"{esc(view.metrics_origin)})")
    if view.metrics is not None:
        facts.append(f"{plural(len(view.metrics['epoch']), 'epoch')} recorded")
    facts.append(f"{view.model.num_parameters():,} trainable parameters")
    spec = view.spec
    if spec is not None:
        c, h, w = spec.shape
        kind = "grey" if c == 1 else ("RGB" if c == 3 else f"{c}-channel")
        mean = ", ".join(f"{m:.4g}" for m in spec.mean)
        std = ", ".join(f"{s:.4g}" for s in spec.std)
        text = (f"input: {kind} {h}x{w} images scaled to [0, 1] and normalised per channel as "
                f"(x - mean) / std, mean ({mean}), std ({std})")
        if spec.pad:
            text += f", padded by {spec.pad} to {h + 2 * spec.pad}x{w + 2 * spec.pad}"
        facts.append(text + f"; {spec.num_classes} classes")
    parts = ["<p>" + "; ".join(facts) + ".</p>"]
    parts.append('<table class="layers"><thead><tr><th>#</th><th>layer</th><th>what it is</th>'
                 '<th>output (C, H, W)</th><th>parameters</th></tr></thead><tbody>')
    for i, (name, layer) in enumerate(leaves(view.model), 1):
        rec = records.get(name)
        shape = f"({', '.join(str(s) for s in rec.output.shape[1:])})" if rec is not None else ""
        count = layer.num_parameters()
        parts.append(f"<tr><td>{i}</td><td><code>{esc(name)}</code></td>"
                     f"<td><code>{esc(repr(layer))}</code></td><td>{shape}</td>"
                     f"<td class=\"num\">{f'{count:,}' if count else '&ndash;'}</td></tr>")
    parts.append(f'<tr class="total"><td></td><td colspan="3">total (entries a connection '
                 f'table removes are not counted)</td><td class="num">'
                 f'{view.model.num_parameters():,}</td></tr></tbody></table>')
    if view.settings:
        parts.append('<h3>Settings of the run</h3><table class="args"><tbody>')
        for key, value in view.settings.items():
            parts.append(f"<tr><th>{esc(key)}</th><td><code>{esc(json.dumps(value))}</code>"
                         f"</td></tr>")
        parts.append("</tbody></table>")
    return section("model", "The model", *parts), []


# ---------------------------------------------------------------- connections
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
<span class="swatch"></span> tiles with a cross are pairs that are not connected at all.
A layer reading a single input map has one slice per kernel; its kernels are laid out in rows.</p>
"""


def _pair_note(conv: Conv2D) -> str:
    n, m, _ = connected_pairs(conv)
    if conv.connections is not None:
        table = np.asarray(conv.connections, bool)
        reads = sorted(set(int(c) for c in table.sum(axis=1)))
        counts = ", ".join(str(c) for c in reads[:-1]) + (" or " if len(reads) > 1 else "") + \
            str(reads[-1])
        return (f"A connection table: each output map reads {counts} of the {m} input maps; "
                f"the weights of the other pairs are held at zero and not trained.")
    if conv.groups > 1:
        g = conv.groups
        return (f"groups={g}: output maps 0&ndash;{n // g - 1} read input maps "
                f"0&ndash;{m // g - 1}, the next {n // g} read the next {m // g}, and so on "
                f"({g} blocks on the diagonal).")
    if m == 1:
        return "One input map, so each kernel is a single 2-D slice."
    return f"Fully connected: every output map is a sum over all {m} input maps."


def _row_sum(conv: Conv2D) -> str:
    """How row ``o`` of the grid makes output map ``o``, in words."""
    n, _, k = connected_pairs(conv)
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
    text = f"Its input maps come from <code>{esc(src)}</code> ({what}"
    if shape is not None and len(shape) == 3:
        text += f", {shape[0]} maps of {shape[1]}x{shape[2]}"
    return text + ")."


def connections_section(view: RunView, figures: Figures, records: dict[str, Any]) -> Section:
    parts = [_EXPLANATION]
    convs = convolutions(view.model)
    if not convs:
        parts.append("<p>This model has no convolution layers.</p>")
    for name, conv in convs:
        w = conv.weight.data.astype(np.float64)
        peak = np.abs(w).max(axis=(1, 2, 3), keepdims=True)
        scaled = w / np.where(peak > 0, peak, 1.0)  # per-kernel symmetric scale
        out, _, kh, kw = w.shape
        n, m, k = connected_pairs(conv)
        if m == 1:
            # One column of tiles would be a tall thin strip: lay the kernels out in rows.
            grid = kernel_grid(scaled, normalize="symmetric", ncols=min(out, 8),
                               scale=scale_for(max(kh, kw), _KERNEL_TILE))
            layout = f"kernels 0&ndash;{n - 1}, left to right, top to bottom"
        else:
            scale = int(np.clip((_CHANNEL_MAX_HEIGHT - (out + 1)) // (out * kh), 2, 7))
            grid = channel_grid(scaled, connections=conv.connections, groups=conv.groups,
                                scale=scale, normalize="symmetric")
            layout = f"rows: output maps 0&ndash;{n - 1}<br>columns: input maps 0&ndash;{m - 1}"
        tag = figures.png(f"channels-{name}", grid,
                          f"{name}: {n} kernels by {plural(m, 'input map')}")
        parts.append(
            f'<div class="conn"><figure><div class="scroll">{tag}</div><figcaption>{layout}'
            f'</figcaption></figure><div class="text">'
            f'<h3><code>{esc(name)}</code>: {esc(repr(conv))}</h3>'
            f'<p class="pairs"><b>{plural(n, "output map")} x {plural(m, "input map")}, '
            f'{k} of {n * m} pairs connected.</b></p>'
            f'<p>Each of the {n} kernels has shape ({conv.weight.shape[1]}, {kh}, {kw})'
            + (f" (its group's {conv.weight.shape[1]} of the {m} input maps)"
               if conv.groups > 1 else "")
            + f"; output map <i>o</i> = bias[o] + {_row_sum(conv)}.</p>"
            f'<p>{_pair_note(conv)} {_source_note(name, records)}</p></div></div>')
    return section("connections", "How the feature maps are connected", *parts), []


# ---------------------------------------------------------- first-layer kernels
def first_layer_convolutions(model: Layer) -> list[tuple[str, Conv2D]]:
    """Convolutions that read a 1- or 3-channel image with every pair connected."""
    return [(name, conv) for name, conv in convolutions(model)
            if conv.in_channels in (1, 3) and conv.groups == 1
            and (conv.connections is None or np.asarray(conv.connections).all())]


def _per_row(count: int, most: int) -> int:
    """Tiles per row: at most ``most``, and dividing ``count`` when some number can, so
    that each column of kernels fills whole rows."""
    return next((n for n in range(min(most, count), 0, -1) if count % n == 0), most)


def _stack_blocks(grid: np.ndarray, rows_per_block: int, tile: int, border: int,
                  gap: int = 8) -> np.ndarray:
    """Cut a bordered grid into blocks of whole tile rows and stack them with a white gap."""
    pitch = tile + border
    cuts = range(border, grid.shape[0] - border, rows_per_block * pitch)
    pieces = []
    for top in cuts:
        block = grid[top - border:top + rows_per_block * pitch]
        pieces.append(block)
        pieces.append(np.full((gap,) + grid.shape[1:], 255, np.uint8))
    return np.concatenate(pieces[:-1])


def kernels_section(view: RunView, figures: Figures) -> Section:
    parts = ["<p>The convolutions that read the image itself, one tile per kernel, 16 a row, as "
             "cuda-convnet's <code>shownet.py --show-filters</code> draws them and as in "
             "Krizhevsky et al. (2012), Figure 3. A kernel reading a colour image is "
             "three-dimensional, one 2-D slice per colour channel, so it <i>is</i> a colour "
             "image: drawn here in colour, then as a grey strip of its red, green and blue "
             "slices side by side. Normalisation: one min-max over all the kernels of the "
             "layer (<code>shownet.py</code>'s, and Figure 3's), so tiles can be compared; "
             "each weight is a block of pixels (nearest neighbour).</p>"]
    found = first_layer_convolutions(view.model)
    colour = {c.layer: c for c in colour_by_column(view.model)}  # the 3-channel ones
    if not found:
        parts.append("<p>No convolution here reads a 1- or 3-channel image with full "
                     "connections; see the cross-channel grids above.</p>")
    for name, conv in found:
        weight = conv.weight.data
        out, c, kh, kw = weight.shape
        columns = column_groups(view.model, conv)
        per_column = out // columns
        scale = scale_for(max(kh, kw), _KERNEL_TILE)
        ncols = _per_row(per_column, 16)
        grid = kernel_grid(weight, scale=scale, ncols=ncols, normalize="global",
                           border_color=0)
        if columns > 1:
            grid = _stack_blocks(grid, per_column // ncols, kh * scale, 1)
        tag = figures.png(f"kernels-{name}", grid, f"{name}: {out} kernels")
        caption = f"<code>{esc(name)}</code>: {out} kernels of {c}x{kh}x{kw}"
        text = ""
        if name in colour:
            score, means = colour[name].scores, colour[name].means
            if columns > 1:
                caption += (f"; the next convolution reads them in {columns} columns "
                            f"(<code>groups={columns}</code>), drawn top to bottom")
                text = ("<p>Colour specificity (the share of a kernel's energy that differs "
                        "between its red, green and blue slices: 0 for a kernel that sees "
                        "only brightness, 2/3 for one on a single channel), mean per column: "
                        + "; ".join(f"column {k + 1} (kernels {k * per_column}&ndash;"
                                    f"{(k + 1) * per_column - 1}): <b>{m:.3f}</b>"
                                    for k, m in enumerate(means))
                        + ". On ImageNet, AlexNet's two GPUs learned largely colour-agnostic "
                          "kernels on one and largely colour-specific ones on the other.</p>")
            else:
                text = (f"<p>Colour specificity (see above) of these kernels: mean "
                        f"<b>{float(score.mean()):.3f}</b>, from {float(score.min()):.3f} to "
                        f"{float(score.max()):.3f}.</p>")
            grey_cols = _per_row(per_column, 8)
            grey = kernel_grid(weight, scale=max(2, scale - 2), ncols=grey_cols,
                               normalize="global", rgb=False, border_color=0)
            if columns > 1:
                grey = _stack_blocks(grey, per_column // grey_cols, kh * max(2, scale - 2), 1)
            grey_tag = figures.png(f"kernels-{name}-rgb-slices", grey,
                                   f"{name}: R, G and B slices of each kernel")
            parts.append(f"<figure>{tag}<figcaption>{caption}</figcaption></figure>"
                         f"<figure>{grey_tag}<figcaption>the same kernels, each as its R, G "
                         f"and B slices side by side</figcaption></figure>{text}")
        else:
            parts.append(f"<figure>{tag}<figcaption>{caption}</figcaption></figure>")
    return section("kernels", "First-layer kernels", *parts), []


# ---------------------------------------------------------------- feature maps
def pick_samples(labels: np.ndarray, count: int) -> list[int]:
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
    label = f"<code>{esc(rec.name)}</code>"
    if rec.activation:
        label += f" &rarr; <code>{esc(rec.activation)}</code>"
    elif isinstance(rec.layer, Conv2D):
        label += " (no activation)"
    else:
        label += f" ({type(rec.layer).__name__})"
    return f"{label}: {plural(c, 'map')} of {h}x{w}"


def sample_heading(split: str, index: int, label: int, predicted: int,
                   names: tuple[str, ...] | None) -> str:
    """``Test image #3: true “cat”, predicted “dog” (wrong)`` (the number is an index)."""
    verdict = "correct" if label == predicted else "wrong"
    return (f"{esc(split.capitalize())} image #{index}: true &ldquo;"
            f"{esc(class_name(names, label))}&rdquo;, predicted &ldquo;"
            f"{esc(class_name(names, predicted))}&rdquo; ({verdict})")


def features_section(view: RunView, figures: Figures, samples: int) -> Section:
    title = "Feature maps"
    preds, spec = view.predictions, view.spec
    if preds is None or spec is None:
        return section("features", title, missing("Not drawn: no sample images (see above).")), []
    if len(preds.sample_images) == 0:
        note = "predictions.npz holds no sample images."
        return section("features", title, missing("Not drawn: " + note)), [note]
    if samples < 1:
        return section("features", title, "<p>Not drawn: no samples were asked for.</p>"), []
    parts = ["<p>A few images run through the trained network. Each grid holds the maps of one "
             "layer, one tile per map, in channel order: after a convolution (and the activation "
             "that follows it, which is what the next layer reads) and after each pooling layer. "
             "Each grid is scaled over its whole layer: black is the layer's lowest value, white "
             "its highest, so the maps of a layer can be compared. Pooling keeps the number of "
             "maps and shrinks them; the next convolution sums over them.</p>"]
    x_all = spec.prepare(preds.sample_images)
    shown = displayable(preds.sample_images)
    labels = preds.labels[preds.sample_index]
    for pos in pick_samples(labels, samples):
        t = int(preds.sample_index[pos])
        try:
            recs = feature_records(view.model, x_all[pos])
        except ValueError as error:
            note = f"Feature maps: the model rejects the images ({esc(error)})."
            parts.append(missing(note))
            return section("features", title, *parts), [note]
        parts.append(f'<div class="sample"><h3>{sample_heading(preds.split, t, int(labels[pos]), int(preds.predicted[t]), spec.class_names)}'
                     f'</h3><div class="row">')
        image = shown[pos]
        scale = scale_for(max(image.shape[:2]), _IMAGE_TILE)
        tag = figures.png(f"input-{t}", image_grid(image[None], ncols=1, scale=scale,
                                                    normalize=None), f"image {t}", enlarge=False)
        parts.append(f"<figure>{tag}<figcaption>input: {image.shape[0]}x{image.shape[1]}"
                     + (f" (the model reads it padded by {spec.pad})" if spec.pad else "")
                     + "</figcaption></figure>")
        for rec in recs:
            c, h, w = rec.maps.shape
            scale = scale_for(max(h, w), _FEATURE_TILE)
            grid = feature_map_grid(rec.maps, ncols=grid_cols(c, h * scale, _FEATURE_ROW),
                                    scale=scale)
            tag = figures.png(f"features-{t}-{rec.name}", grid,
                              f"{rec.name}: {c} maps of image {t}", enlarge=False)
            parts.append(f"<figure>{tag}<figcaption>{_feature_caption(rec)}</figcaption></figure>")
        parts.append("</div></div>")
    return section("features", title, *parts), []


# --------------------------------------------------------------------- results
def curves_section(view: RunView, figures: Figures) -> Section:
    title = "Training curves"
    if view.metrics is None:
        return section("curves", title, missing("Not drawn: no per-epoch metrics.")), []
    m = view.metrics
    tag = figures.svg("curves", curves_svg(m["epoch"], rundir.metric_series(m, "loss"),
                                           rundir.metric_series(m, "acc")),
                      "loss and accuracy by epoch")
    return section("curves", title,
                   f"<figure>{tag}<figcaption>Loss and accuracy by epoch (from "
                   f"{esc(view.metrics_origin)}). The train values are averages over each epoch "
                   f"while the weights change; validation and test values are measured at its "
                   f"end.</figcaption></figure>"), []


def _class_names(view: RunView) -> tuple[str, ...]:
    preds = view.predictions
    k = preds.probabilities.shape[1] if preds is not None else 0
    if view.spec is not None:
        k = max(k, view.spec.num_classes)
    if preds is not None:
        k = max(k, int(max(preds.labels.max(initial=0), preds.predicted.max(initial=0))) + 1)
    names = view.spec.class_names if view.spec is not None else ()
    return tuple(class_name(names, i) for i in range(k))


def confusion_section(view: RunView, figures: Figures) -> Section:
    title = "Confusion matrix"
    preds = view.predictions
    if preds is None:
        return section("confusion", title, missing("Not drawn: no predictions.")), []
    names = _class_names(view)
    matrix = confusion_matrix(preds.labels.astype(np.int64), preds.predicted.astype(np.int64),
                              num_classes=len(names))
    cell = 40 if max(len(n) for n in names) <= 3 else 52
    tag = figures.svg("confusion", confusion_svg(matrix, labels=list(names), cell=cell),
                      "confusion matrix")
    return section("confusion", title,
                   f"<figure>{tag}<figcaption>Rows: true class; columns: predicted class; "
                   f"{int(matrix.sum())} {esc(preds.split)} images, {int(np.trace(matrix))} on "
                   f"the diagonal.</figcaption></figure>"), []


def misclassified_section(view: RunView, figures: Figures) -> Section:
    title = "Misclassified images"
    preds = view.predictions
    if preds is None:
        return section("misclassified", title, missing("Not drawn: no predictions.")), []
    wrong = int((preds.labels != preds.predicted).sum())
    images = preds.misclassified_images
    n = len(preds.labels)
    if len(images) == 0:
        return section("misclassified", title, f"<p>No stored misclassified images ({wrong} "
                                               f"of {n} {esc(preds.split)} images are wrong)."
                                               f"</p>"), []
    names = _class_names(view)
    shown = displayable(images)
    scale = scale_for(max(shown.shape[1:3]), _IMAGE_TILE, most=4)
    ncols = min(10, len(images))
    tag = figures.png("misclassified", image_grid(shown, ncols=ncols, scale=scale,
                                                  normalize=None),
                      f"misclassified {preds.split} images", enlarge=False)
    cells = []
    for t in preds.misclassified_index.tolist():
        true, pred = int(preds.labels[t]), int(preds.predicted[t])
        conf = (f"<br><small>{100 * float(preds.probabilities[t, pred]):.0f}%</small>"
                if pred < preds.probabilities.shape[1] else "")
        cells.append(f'<td title="{esc(preds.split)} image #{t}">{esc(names[true])}&rarr;'
                     f'{esc(names[pred])}{conf}</td>')
    rows = ["<tr>" + "".join(cells[i:i + ncols]) + "</tr>" for i in range(0, len(cells), ncols)]
    pitch = shown.shape[1] * scale + 1  # tile + border of the grid: table rows line up with it
    return section(
        "misclassified", title,
        f"<p>The first {len(images)} of the {wrong} misclassified {esc(preds.split)} images "
        f"({pct(wrong / n)} of {n}), in data-set order, left to right and top to bottom. Beside "
        f"the grid, in the same places: true&rarr;predicted and the probability the network "
        f"gave its (wrong) answer.</p>"
        f'<div class="pair">{tag}<table class="wrong" style="--pitch:{pitch - 1}px"><tbody>'
        + "".join(rows) + "</tbody></table></div>"), []
