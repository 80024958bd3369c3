"""The report's sections on what every layer learned, built on :mod:`minidl.inspect`.

Each section function takes the :class:`~minidl.viz.run.RunView`, the
:class:`~minidl.viz.page.Figures` writer and what else it needs, and returns
``(html, notes)`` like those of :mod:`minidl.viz.sections`:

* :func:`patches_section`: for every convolution, the top-9 probe images'
  patches of each channel, one row per channel (Zeiler & Fergus 2013, Fig. 2),
  beside each patch's guided-backpropagation projection (Springenberg et al.
  2014) cropped to the same window.
* :func:`attribution_section`: saliency (Simonyan et al. 2013) and occlusion
  (Zeiler & Fergus) maps of the sample images.
* :func:`maximization_section`: the inputs that maximise each channel of each
  convolution and each class score (Erhan et al. 2009, Yosinski et al. 2015).
* :func:`weights_section`: cuda-convnet's weight statistics by epoch and every
  convolution's weight gradient for one batch (Caffe's LeNet notebook).

Drawing stays bounded whatever the network: at most :data:`MAX_CHANNELS`
channels of a layer are drawn (all of them when there are no more; else the
strongest on the probe images, see :func:`inspect_layers`), the probe set is
the run's first 1000 images of the evaluated split, and the occlusion patch's
stride keeps the number of positions near :data:`_OCCLUSION_POSITIONS` per side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minidl import inspect
from minidl.layers import Conv2D, ReLU
from minidl.layers.base import Layer
from minidl.losses import SoftmaxCrossEntropy
from minidl.rundir import InputSpec
from minidl.viz.grids import EMPTY_COLOR, channel_grid, image_grid, kernel_grid
from minidl.viz.page import Figures, esc, grid_cols, missing, plural, scale_for, section
from minidl.viz.plots import weight_stats_svg
from minidl.viz.run import RunView
from minidl.viz.sections import class_name, pick_samples, sample_heading

__all__ = ["MAX_CHANNELS", "TOP_K", "MAXIMIZE_STEPS", "MAXIMIZE_PASSES", "InspectedLayer",
           "inspect_layers", "patches_section", "attribution_section",
           "maximization_steps", "maximization_section", "weights_section"]

Section = tuple[str, list[str]]

#: Most channels of one layer drawn in the patch, maximisation and gradient figures.
MAX_CHANNELS = 16
#: Patches per channel (Zeiler & Fergus show nine).
TOP_K = 9
#: Gradient-ascent steps per activation-maximisation image, at most.
MAXIMIZE_STEPS = 100
#: Forward and backward passes all the maximisation images of a report share: with
#: many images each gets fewer steps (never fewer than :data:`MAXIMIZE_MIN_STEPS`).
MAXIMIZE_PASSES = 3200
MAXIMIZE_MIN_STEPS = 20
#: Seed of every maximisation: the same start for each channel, so they compare.
MAXIMIZE_SEED = 0

_PATCH_TILE = 40        # a top patch or its projection
_MAP_TILE = 96          # a sample image, its saliency and occlusion maps
_MAX_TILE = 64          # an activation-maximisation image
_MAX_ROW = 960          # width of a layer's grid of maximisation images
_GRADIENT_TILE = 36     # a weight-gradient slice, as the kernels above
_GRADIENT_MAX_WIDTH = 1000
_OCCLUSION_POSITIONS = 24
_CLASSES_A_ROW = 10     # class images per picture, labelled beneath


# ------------------------------------------------------------ channel choice
@dataclass
class InspectedLayer:
    """A convolution, the channels the report draws for it, and its top patches.

    Attributes
    ----------
    name : str
        Dotted name in ``model.named_modules()``.
    conv : Conv2D
    channels : list of int
        The channels drawn, ascending; at most :data:`MAX_CHANNELS`.
    chosen : str
        HTML: which channels these are and why (all of them, the strongest, the first).
    patches : inspect.TopPatches or None
        The top patches of *every* channel on the probe images; None without them.
    problem : str or None
        HTML: why there are no patches, when there are probe images but
        :func:`minidl.inspect.top_patches` refused the layer.
    """

    name: str
    conv: Conv2D
    channels: list[int]
    chosen: str
    patches: inspect.TopPatches | None = None
    problem: str | None = None


def _convolutions(model: Layer) -> list[tuple[str, Conv2D]]:
    # named_modules' names, which minidl.inspect takes; "" (a bare Conv2D model) has no
    # class scores to inspect.
    return [(name, m) for name, m in model.named_modules() if name and isinstance(m, Conv2D)]


def _probe_inputs(view: RunView) -> np.ndarray | None:
    preds, spec = view.predictions, view.spec
    if preds is None or spec is None or len(preds.probe_images) == 0:
        return None
    return spec.prepare(preds.probe_images)


def inspect_layers(view: RunView, k: int = TOP_K) -> list[InspectedLayer]:
    """Every convolution with the channels to draw and its top patches on the probe images.

    A layer with at most :data:`MAX_CHANNELS` channels has all of them drawn.
    A wider one has the :data:`MAX_CHANNELS` channels whose ``k`` strongest
    probe activations are largest on average (dead or rarely used channels
    would show nothing), or without probe images its first ones.

    Parameters
    ----------
    view : RunView
        Its predictions' probe images (prepared by its input spec) are searched.
    k : int
        Patches per channel (fewer when there are fewer probe images).

    Returns
    -------
    list of InspectedLayer
        In ``named_modules`` order.
    """
    probe = _probe_inputs(view)
    found = []
    for name, conv in _convolutions(view.model):
        layer = InspectedLayer(name, conv, list(range(conv.out_channels)), "")
        if probe is not None:
            try:
                layer.patches = inspect.top_patches(view.model, name, probe, k=min(k, len(probe)))
            except ValueError as error:
                layer.problem = esc(error)
        n = conv.out_channels
        if n <= MAX_CHANNELS:
            layer.chosen = "every channel"
        elif layer.patches is not None:
            strength = layer.patches.values.astype(np.float64).mean(axis=1)
            order = np.lexsort((np.arange(n), -strength))  # strongest first; ties by index
            layer.channels = sorted(int(c) for c in order[:MAX_CHANNELS])
            layer.chosen = (f"the {MAX_CHANNELS} of its {n} channels whose "
                            f"{len(layer.patches.values[0])} strongest activations on the probe "
                            f"images are largest on average, in channel order")
        else:
            layer.channels = list(range(MAX_CHANNELS))
            layer.chosen = f"its first {MAX_CHANNELS} of {n} channels"
        found.append(layer)
    return found


def _channel_list(channels: list[int]) -> str:
    """``0&ndash;15`` for a run, else ``1, 4, 7``."""
    if channels == list(range(channels[0], channels[0] + len(channels))) and len(channels) > 2:
        return f"{channels[0]}&ndash;{channels[-1]}"
    return ", ".join(str(c) for c in channels)


# ------------------------------------------------------------------ pictures
@dataclass(frozen=True)
class _Display:
    """How model inputs become pixels: undo the normalisation, then map
    ``[low, high]`` (of ``pixel / 255`` for uint8 data) to 0..255."""

    spec: InputSpec
    low: float = 0.0
    high: float = 1.0

    @classmethod
    def of(cls, view: RunView) -> "_Display":
        preds = view.predictions
        raw = preds.probe_images if preds is not None else np.zeros(0, np.uint8)
        if raw.dtype == np.uint8 or raw.size == 0:
            return cls(view.spec)
        low, high = float(raw.min()), float(raw.max())  # float data: its own range
        return cls(view.spec, low, high if high > low else low + 1.0)

    def pixels(self, x: np.ndarray) -> np.ndarray:
        """Model inputs ``(..., C, h, w)`` -> float pixels 0..255 of the same shape."""
        shape = (-1, 1, 1)
        v = x * np.asarray(self.spec.std).reshape(shape) + np.asarray(self.spec.mean).reshape(shape)
        return np.clip((v - self.low) / (self.high - self.low) * 255, 0, 255)


def _picture(channels_first: np.ndarray) -> np.ndarray:
    """``(n, C, h, w)`` -> ``(n, h, w)`` grey for one channel, ``(n, h, w, 3)`` for colour
    (the first three channels of wider inputs)."""
    if channels_first.shape[1] == 1:
        return channels_first[:, 0]
    if channels_first.shape[1] >= 3:
        return channels_first[:, :3].transpose(0, 2, 3, 1)
    return channels_first[:, 0]


def _rgb(tiles: np.ndarray) -> np.ndarray:
    """Grey ``(n, h, w)`` or colour ``(n, h, w, 3)`` tiles as colour."""
    return np.repeat(tiles[..., None], 3, axis=-1) if tiles.ndim == 3 else tiles


def _symmetric_each(signal: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Each ``(C, h, w)`` tile of ``signal (n, C, h, w)`` mapped to 0..255 with zero at
    mid-grey, by its own largest magnitude inside the image (colour channels jointly)."""
    peak = np.abs(np.where(inside[:, None], signal, 0.0)).max(axis=(1, 2, 3), keepdims=True)
    return 127.5 + 127.5 * signal / np.where(peak > 0, peak, 1.0)


def _diverging(values: np.ndarray, peak: float) -> np.ndarray:
    """``(h, w)`` -> ``(h, w, 3)`` uint8: white at 0, red towards +peak, blue towards -peak."""
    t = np.clip(values / peak, -1.0, 1.0) if peak > 0 else np.zeros_like(values)
    pos, neg = np.maximum(t, 0.0), np.maximum(-t, 0.0)
    rgb = np.stack([1 - neg, 1 - pos - neg, 1 - pos], axis=-1) * 255
    return np.rint(rgb).astype(np.uint8)


def _uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _with_outside(tiles: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Colour tiles with the pixels outside the image painted the report's empty colour."""
    out = _rgb(_uint8(tiles)).copy()
    out[~inside] = EMPTY_COLOR
    return out


# ---------------------------------------------------------- projections
def _crop(signal: np.ndarray, field: inspect.ReceptiveField, positions: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Each image's receptive-field window at its position: ``(n, C, h, w)`` crops (zero
    outside the image) and the ``(n, h, w)`` mask of the pixels inside it."""
    n, c, height, width = signal.shape
    crops = np.zeros((n, c) + field.size, signal.dtype)
    inside = np.zeros((n,) + field.size, bool)
    for t, (i, j) in enumerate(positions.tolist()):
        top, left = field.corner(i, j)
        rows, cols = field.window(i, j, (height, width))
        r = slice(rows.start - top, rows.stop - top)
        q = slice(cols.start - left, cols.stop - left)
        crops[t, :, r, q] = signal[t, :, rows, cols]
        inside[t, r, q] = True
    return crops, inside


# ------------------------------------------------------------------ patches
def _rows_table(labels: list[str], pitch: int) -> str:
    """A column of row labels whose rows line up with a grid of ``pitch``-pixel rows."""
    cells = "".join(f'<tr><td style="height:{pitch - 1}px;padding:0 .4em;'
                    f'vertical-align:middle;text-align:right">{label}</td></tr>'
                    for label in labels)
    return f'<table style="margin:0;font-size:.85em"><tbody>{cells}</tbody></table>'


def _no_relu_note(model: Layer) -> str:
    if any(isinstance(m, ReLU) for m in model.modules()):
        return ""
    return (" This model has no ReLU, so the guided projection is the plain gradient of the "
            "activation.")


def patches_section(view: RunView, figures: Figures, layers: list[InspectedLayer]) -> Section:
    """Top patches and their guided-backpropagation projections, for every convolution.

    Parameters
    ----------
    view : RunView
    figures : Figures
        Writes ``patches-<conv>.png`` and ``projections-<conv>.png``: ``rows x k``
        tiles of the receptive field's size, one row per drawn channel.
    layers : list of InspectedLayer
        From :func:`inspect_layers`: the channels to draw and their top patches.

    Returns
    -------
    (html, notes)
    """
    title = "What excites each channel: top patches"
    anchor = "patches"
    if not layers:
        return section(anchor, title, "<p>This model has no convolution layers.</p>"), []
    preds, spec = view.predictions, view.spec
    if preds is None or spec is None:
        return section(anchor, title, missing(
            "Not drawn: the dataset patches need the run's probe images (predictions.npz) "
            "and its input spec (see above).")), []
    if len(preds.probe_images) == 0:
        note = "Top patches: predictions.npz holds no probe images."
        return section(anchor, title, missing("Not drawn: " + note[len("Top patches: "):])), [note]
    probe = spec.prepare(preds.probe_images)
    display = _Display.of(view)
    parts = [f"<p>For every convolution: the {TOP_K} of the run's {len(probe)} probe images "
             f"(the first images of the {esc(preds.split)} split) whose largest activation in "
             f"a channel is highest, cut to that activation's receptive field, one row per "
             f"channel, strongest on the left (Zeiler &amp; Fergus 2013, Figure 2); beside "
             f"them, the same windows of each activation's guided-backpropagation projection "
             f"to the input (Springenberg et al. 2014), which shows the pixels it responds "
             f"to.</p><p>The activations are the convolution's outputs before its "
             f"nonlinearity. Patches are the images' own pixels; each projection is scaled on "
             f"its own, mid-grey zero, lighter positive. "
             f'<span class="swatch"></span> marks the part of a window outside the '
             f"image (padding).{_no_relu_note(view.model)}</p>"]
    notes = []
    for layer in layers:
        head = (f"<h3><code>{esc(layer.name)}</code>: "
                f"{plural(layer.conv.out_channels, 'channel')}</h3>")
        tp = layer.patches
        if tp is None:
            why = layer.problem or "no probe images"
            text = f"<code>{esc(layer.name)}</code>: no patches ({why})."
            parts.append(head + missing(text))
            notes.append("Top patches: " + text)
            continue
        field, channels = tp.receptive_field, layer.channels
        k = tp.indices.shape[1]
        positions = tp.positions[channels].reshape(-1, 2)
        indices = tp.indices[channels].reshape(-1)
        targets = np.column_stack([np.repeat(channels, k), positions])
        try:
            projections = inspect.channel_projections(view.model, layer.name, probe[indices], targets)
        except ValueError as error:
            text = f"<code>{esc(layer.name)}</code>: no projections ({esc(error)})."
            parts.append(head + missing(text))
            notes.append("Top patches: " + text)
            continue
        crops, inside = _crop(probe[indices], field, positions)
        pcrops, _ = _crop(projections, field, positions)
        scale = scale_for(max(field.size), _PATCH_TILE)
        patch_tiles = _with_outside(_picture(display.pixels(crops.astype(np.float64))), inside)
        proj_tiles = _with_outside(_picture(_symmetric_each(pcrops.astype(np.float64), inside)),
                                   inside)
        alt = f"{layer.name}: top {k} patches of {len(channels)} channels"
        patch_tag = figures.png(f"patches-{layer.name}", image_grid(
            patch_tiles, ncols=k, scale=scale, normalize=None), alt, enlarge=False)
        proj_tag = figures.png(f"projections-{layer.name}", image_grid(
            proj_tiles, ncols=k, scale=scale, normalize=None),
            f"{layer.name}: guided-backpropagation projections", enlarge=False)
        h, w = field.size
        pitch = h * scale + 1
        parts.append(
            f'<div class="sample">{head}<p>Receptive field {h}x{w} input pixels (stride '
            f"{field.stride[0]}). Rows: {layer.chosen}, channels {_channel_list(channels)} "
            f'(numbered on the left).</p><div class="pair">'
            f'{_rows_table([str(c) for c in channels], pitch)}'
            f"<figure>{patch_tag}<figcaption>top {k} patches</figcaption></figure>"
            f"<figure>{proj_tag}<figcaption>their guided-backpropagation projections"
            f"</figcaption></figure></div></div>")
    return section(anchor, title, *parts), notes


# -------------------------------------------------------------- attribution
def _occlusion_geometry(height: int, width: int) -> tuple[int, int]:
    """An odd patch about a quarter of the image side, and a stride that keeps about
    :data:`_OCCLUSION_POSITIONS` positions per side."""
    side = min(height, width)
    patch = max(1, min(side, (side // 4) | 1))
    stride = max(1, math.ceil((side - patch + 1) / _OCCLUSION_POSITIONS))
    return patch, stride


def _occlusion_image(drops: np.ndarray, patch: int, stride: int, height: int,
                     width: int) -> np.ndarray:
    """The ``(rows, cols)`` map as an image-sized one: each pixel takes the position whose
    patch centre is nearest (the border takes the outermost positions)."""
    def nearest(size: int, count: int) -> np.ndarray:
        centre = (np.arange(size) - (patch - 1) / 2) / stride
        return np.clip(np.floor(centre + 0.5), 0, count - 1).astype(np.intp)

    return drops[np.ix_(nearest(height, drops.shape[0]), nearest(width, drops.shape[1]))]


def attribution_section(view: RunView, figures: Figures, samples: int) -> Section:
    """Saliency and occlusion maps of ``samples`` sample images of different classes.

    Writes ``attribution-<t>.png`` (the model's input), ``saliency-<t>.png`` and
    ``occlusion-<t>.png`` for each, ``t`` the image's index in the evaluated
    split; both maps are for the image's true class.

    Returns
    -------
    (html, notes)
    """
    title = "Which pixels decide: saliency and occlusion"
    anchor = "attribution"
    preds, spec = view.predictions, view.spec
    if preds is None or spec is None:
        return section(anchor, title, missing("Not drawn: no sample images (see above).")), []
    if len(preds.sample_images) == 0:
        note = "Saliency and occlusion: predictions.npz holds no sample images."
        return section(anchor, title, missing(note)), [note]
    if samples < 1:
        return section(anchor, title, "<p>Not drawn: no samples were asked for.</p>"), []
    labels = preds.labels[preds.sample_index]
    picks = pick_samples(labels, samples)
    x = spec.prepare(preds.sample_images[picks])
    targets = labels[picks].astype(np.intp)
    _, height, width = spec.model_shape
    patch, stride = _occlusion_geometry(height, width)
    try:
        maps = inspect.saliency(view.model, x, targets)
        drops = [inspect.occlusion(view.model, image, int(t), patch, stride, fill=0.0)
                 for image, t in zip(x, targets)]
    except ValueError as error:
        note = f"Saliency and occlusion: the model rejects the sample images ({esc(error)})."
        return section(anchor, title, missing(note)), [note]
    display = _Display.of(view)
    scale = scale_for(max(height, width), _MAP_TILE)
    parts = [f"<p>For a few sample images of different classes, both for the image's true "
             f"class. <b>Saliency</b> (Simonyan et al. 2013): |d score / d pixel|, the "
             f"derivative of the class's score (its logit, before the softmax) with respect to "
             f"each input pixel from one backward pass, the largest over colour channels; black "
             f"is 0, white the image's largest value. <b>Occlusion</b> (Zeiler &amp; Fergus "
             f"2013): a {patch}x{patch} patch of the mean pixel (0 after normalisation) slides "
             f"over the image in steps of {stride}, and each pixel shows how much the class's "
             f"probability drops when the patch is centred on it: red where covering it hurts, "
             f"blue where it helps, white no change, scaled to the image's largest change "
             f"(given below each map). The model reads the image as shown"
             + (f", padded by {spec.pad}" if spec.pad else "") + ".</p>",
             '<div class="row">']
    shown = _picture(display.pixels(x.astype(np.float64)))
    for n, pos in enumerate(picks):
        t = int(preds.sample_index[pos])
        label = int(labels[pos])
        heading = sample_heading(preds.split, t, label, int(preds.predicted[t]), spec.class_names)
        name = esc(class_name(spec.class_names, label))
        image_tag = figures.png(f"attribution-{t}", image_grid(
            _uint8(shown[n:n + 1]), ncols=1, scale=scale, normalize=None),
            f"{preds.split} image {t}", enlarge=False)
        top = float(maps[n].max())
        grey = _uint8(maps[n:n + 1] * (255 / top if top > 0 else 0.0))  # black is 0, not the min
        saliency_tag = figures.png(f"saliency-{t}", image_grid(
            grey, ncols=1, scale=scale, normalize=None), f"saliency of image {t}", enlarge=False)
        peak = float(np.abs(drops[n]).max())
        heat = _diverging(_occlusion_image(drops[n], patch, stride, height, width), peak)
        occlusion_tag = figures.png(f"occlusion-{t}", image_grid(
            heat[None], ncols=1, scale=scale, normalize=None),
            f"occlusion map of image {t}", enlarge=False)
        parts.append(
            f'<div class="sample" style="margin-right:2em"><h3>{heading}</h3>'
            f'<div class="row"><figure>{image_tag}<figcaption>the input</figcaption></figure>'
            f"<figure>{saliency_tag}<figcaption>saliency of &ldquo;{name}&rdquo;</figcaption>"
            f"</figure><figure>{occlusion_tag}<figcaption>occlusion: largest change "
            f"{peak:.3f}</figcaption></figure></div></div>")
    parts.append("</div>")
    return section(anchor, title, *parts), []


# ------------------------------------------------------------- maximisation
def _clip_range(spec: InputSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalised values of 0 and 1 pixels, per channel: the valid input range."""
    return (tuple((0 - m) / s for m, s in zip(spec.mean, spec.std)),
            tuple((1 - m) / s for m, s in zip(spec.mean, spec.std)))


def _maximize_all(model: Layer, layer_name: str, targets: list[int], spec: InputSpec,
                  steps: int, position: str = "mean") -> tuple[np.ndarray, list[int]]:
    """The maximising images ``(n, C, H, W)`` and the targets whose ascent never moved."""
    images, stuck = [], []
    for target in targets:
        found = inspect.maximize(model, layer_name, target, spec.model_shape, steps=steps,
                                 clip=_clip_range(spec), rng=MAXIMIZE_SEED, position=position)
        images.append(found.image)
        if np.ptp(found.objective) == 0:
            stuck.append(target)
    return np.stack(images), stuck


def _stuck_note(stuck: list[int], what: str) -> str:
    if not stuck:
        return ""
    return (f" The ascent never moved for {what} {_channel_list(stuck)}: the gradient at the "
            f"random start is zero (every ReLU between them and the input is off there), so "
            f"the start is shown.")


def maximization_steps(images: int) -> int:
    """Steps per image when ``images`` images share :data:`MAXIMIZE_PASSES` passes,
    between :data:`MAXIMIZE_MIN_STEPS` and :data:`MAXIMIZE_STEPS`."""
    return int(np.clip(MAXIMIZE_PASSES // max(images, 1), MAXIMIZE_MIN_STEPS, MAXIMIZE_STEPS))


def maximization_section(view: RunView, figures: Figures, layers: list[InspectedLayer],
                         steps: int | None = None) -> Section:
    """Activation maximisation of the drawn channels of every convolution and of each class.

    Writes ``maximized-<conv>.png`` (one tile per drawn channel) and
    ``maximized-classes.png`` (ten classes a picture, named beneath). Only for
    run directories: a bare checkpoint's report stays quick.

    Parameters
    ----------
    steps : int, optional
        Gradient-ascent steps per image; default :func:`maximization_steps` of
        the number of images.

    Returns
    -------
    (html, notes)
    """
    title = "What each channel and class wants to see: activation maximisation"
    anchor = "maximization"
    spec = view.spec
    if spec is None:
        return section(anchor, title, missing(
            "Not drawn: the input spec (image size, normalisation) is unknown (see above).")), []
    if view.kind != "run":
        return section(anchor, title, missing(
            "Not drawn from a bare checkpoint: thousands of passes through the network, kept "
            "for run directories (<code>python -m minidl.viz RUN_DIR</code>).")), []
    if steps == 0:
        return section(anchor, title, "<p>Not drawn: no steps were asked for "
                                      "(<code>--maximize-steps 0</code>).</p>"), []
    if steps is None:
        steps = maximization_steps(sum(len(layer.channels) for layer in layers)
                                   + spec.num_classes)
    display = _Display(spec)
    _, height, width = spec.model_shape
    low, high = _clip_range(spec)
    bounds = ", ".join(f"{lo:.3g}..{hi:.3g}" for lo, hi in zip(low, high))
    parts = [f"<p>The input that maximises one unit of a channel, the one at the centre of "
             f"its map, or a class's score (logit), found by {steps} steps of gradient ascent "
             f"from a random image (Erhan et al. 2009), regularised as in Yosinski et al. "
             f"(2015): random shifts of up to 2 pixels, L2 decay towards the mean image, a "
             f"light blur every few steps, and clipping to the valid pixels (normalised "
             f"range {bounds}, i.e. pixels 0 to 1). Shown as pixels, not stretched; the model's "
             f"full {height}x{width} input. A centre unit sees only its receptive field, so "
             f"the pattern it wants fills that window and the rest keeps its random start.</p>"]
    notes = []
    scale = scale_for(max(height, width), _MAX_TILE)
    tile = max(height, width) * scale
    for layer in layers:
        try:
            images, stuck = _maximize_all(view.model, layer.name, layer.channels, spec, steps,
                                          position="centre")
        except ValueError as error:
            text = f"<code>{esc(layer.name)}</code>: not maximised ({esc(error)})."
            parts.append(missing(text))
            notes.append("Activation maximisation: " + text)
            continue
        tiles = _uint8(_picture(display.pixels(images.astype(np.float64))))
        n = len(tiles)
        tag = figures.png(f"maximized-{layer.name}", image_grid(
            tiles, ncols=grid_cols(n, tile, _MAX_ROW), scale=scale, normalize=None),
            f"{layer.name}: images that maximise {n} channels", enlarge=False)
        parts.append(f"<figure>{tag}<figcaption><code>{esc(layer.name)}</code>, "
                     f"{layer.chosen}: channels {_channel_list(layer.channels)}, left to right "
                     f"and top to bottom.{_stuck_note(stuck, 'channels')}</figcaption></figure>")

    classes = spec.num_classes
    try:
        images, stuck = _maximize_all(view.model, "", list(range(classes)), spec, steps)
    except ValueError as error:
        text = f"Class images: not drawn ({esc(error)})."
        parts.append(missing(text))
        return section(anchor, title, *parts), notes + ["Activation maximisation: " + text]
    tiles = _uint8(_picture(display.pixels(images.astype(np.float64))))
    scale = scale_for(max(height, width), _MAP_TILE)
    parts.append(f"<h3>Classes</h3><p>The image each class's score is highest for (Simonyan et "
                 f"al. 2013's class model images), named below each.{_stuck_note(stuck, 'classes')}"
                 f"</p>")
    pitch = max(height, width) * scale + 1  # tile + the grid's border: labels line up
    for start in range(0, classes, _CLASSES_A_ROW):
        shown = range(start, min(start + _CLASSES_A_ROW, classes))
        names = [class_name(spec.class_names, c) for c in shown]
        stem = "maximized-classes" + (f"-{start}" if start else "")
        tag = figures.png(stem, image_grid(tiles[shown.start:shown.stop], ncols=len(shown),
                                           scale=scale, normalize=None),
                          "the images the classes " + ", ".join(names) + " score highest",
                          enlarge=False)
        cells = "".join(f'<td style="width:{pitch - 1}px;padding:0;text-align:center">'
                        f"&ldquo;{esc(name)}&rdquo;</td>" for name in names)
        parts.append(f'<figure>{tag}<table style="margin:0;font-size:.85em"><tbody><tr>{cells}'
                     f"</tr></tbody></table></figure>")
    return section(anchor, title, *parts), notes


# ------------------------------------------------------------------ weights
def _gradient_grid(layer: InspectedLayer, grad: np.ndarray) -> tuple[np.ndarray, str]:
    """A layer's dW drawn like its weights, one symmetric scale over the layer (zero =
    mid-grey), for the channels the report draws (every kernel of a grouped layer, whose
    grid needs them all to place its blocks)."""
    conv = layer.conv
    out, _, kh, kw = grad.shape
    m = conv.in_channels
    rows = layer.channels if conv.groups == 1 else list(range(out))
    peak = float(np.abs(grad).max())
    # Scaled by the whole layer's largest |dW|, so a bounded drawing keeps the same scale.
    scaled = grad[rows] / (peak if peak > 0 else 1.0)
    scale = scale_for(max(kh, kw), _GRADIENT_TILE)
    full = conv.groups == 1 and (conv.connections is None or np.asarray(conv.connections).all())
    if m in (1, 3) and full:
        # One slice (or one colour kernel) per output map: rows of tiles, not a thin column.
        grid = kernel_grid(scaled, normalize="symmetric", ncols=min(len(rows), 16), scale=scale)
        return grid, f"kernels {_channel_list(rows)}, left to right, top to bottom"
    scale = int(np.clip((_GRADIENT_MAX_WIDTH - (m + 1)) // (m * kw), 1, scale))
    connections = None if conv.connections is None else np.asarray(conv.connections)[rows]
    grid = channel_grid(scaled, connections=connections, groups=conv.groups, scale=scale,
                        normalize="symmetric")
    return grid, (f"rows: output maps {_channel_list(rows)}<br>columns: input maps "
                  f"0&ndash;{m - 1}")


def weights_section(view: RunView, figures: Figures, layers: list[InspectedLayer]) -> Section:
    """The weight-statistics plot and every convolution's weight gradient for one batch.

    Writes ``weight-stats.svg`` (from weight_stats.csv) and ``gradients-<conv>.png``
    (d loss / d W on the sample images, the drawn channels' kernels).

    Returns
    -------
    (html, notes)
    """
    title = "Weight statistics and weight gradients"
    anchor = "weights"
    parts: list[str] = []
    notes: list[str] = []
    if view.weight_stats:
        tag = figures.svg("weight-stats", weight_stats_svg(view.weight_stats),
                          "mean |W|, mean |dW| and their ratio per layer by epoch")
        parts.append(f"<p>For every layer with weights, as cuda-convnet printed at each "
                     f"checkpoint: the mean |W| at the end of each epoch, the mean |dW| of that "
                     f"epoch's last training step, and their ratio, roughly how far one step "
                     f"moves the weights relative to their size (times the learning rate); "
                     f"from weight_stats.csv.</p><figure>{tag}</figure>")
    else:
        where = ("the run directory" if view.kind == "run" else "a bare checkpoint")
        parts.append(missing(f"Weight statistics: not drawn, no weight_stats.csv in {where} "
                             f"(the trainer writes it after each epoch; older runs have none)."))

    preds, spec = view.predictions, view.spec
    if not layers:
        return section(anchor, title, *parts), notes
    if preds is None or spec is None or len(preds.sample_images) == 0:
        parts.append(missing("Weight gradients: not drawn, they need the run's sample images "
                             "and labels (predictions.npz) and its input spec."))
        return section(anchor, title, *parts), notes
    x = spec.prepare(preds.sample_images)
    y = preds.labels[preds.sample_index].astype(np.int64)
    try:
        grads = inspect.weight_gradients(view.model, SoftmaxCrossEntropy(), x, y)
    except ValueError as error:
        text = f"Weight gradients: the model rejects the sample images ({esc(error)})."
        return section(anchor, title, *parts, missing(text)), notes + [text]
    parts.append(f"<h3>Weight gradients of one batch</h3><p>d loss / d W of every convolution "
                 f"for one batch of the {len(x)} sample images with their labels (one forward "
                 f"and backward pass in training mode, plain cross-entropy, the weights "
                 f"untouched), drawn like the weights above: one symmetric scale per layer, "
                 f"mid-grey zero, lighter positive, so the tiles of a layer compare; the "
                 f"kernels of the channels drawn above.</p>")
    for layer in layers:
        grad = grads[layer.name].astype(np.float64)
        grid, layout = _gradient_grid(layer, grad)
        tag = figures.png(f"gradients-{layer.name}", grid,
                          f"{layer.name}: weight gradient of one batch", enlarge=False)
        where = np.unravel_index(np.abs(grad).argmax(), grad.shape)
        per_kernel = np.abs(grad).mean(axis=(1, 2, 3))
        # Beside the grid, as in the connections section: no tall column beside empty space.
        parts.append(
            f'<div class="conn"><figure><div class="scroll">{tag}</div><figcaption>{layout}'
            f'</figcaption></figure><div class="text"><h3><code>{esc(layer.name)}</code>: '
            f"d loss / d W of shape ({', '.join(map(str, grad.shape))})</h3>"
            f"<p>Largest |dW| {np.abs(grad).max():.3g}, in kernel {where[0]}, input map "
            f"{where[1]}; mean |dW| {np.abs(grad).mean():.3g}. The kernel this batch moves "
            f"most is {int(per_kernel.argmax())} (mean |dW| {per_kernel.max():.3g}), the "
            f"least {int(per_kernel.argmin())} ({per_kernel.min():.3g}).</p></div></div>")
    return section(anchor, title, *parts), notes
