"""Inspection: what every layer of a network learned.

Tools after Zeiler & Fergus (2013), Simonyan et al. (2013), Erhan et al. (2009),
Yosinski et al. (2015), Springenberg et al. (2014) and cuda-convnet:

* :func:`receptive_field`: which input window one position of a layer sees.
* :func:`top_patches`: the k dataset images that excite each feature map most,
  and the input crops behind those maxima.
* :func:`saliency`: ``|d score / d input|``, the class saliency map.
* :func:`guided_backprop`, :func:`deconvnet`: the same backward pass with the
  ReLUs' backward rule replaced (see :func:`relu_backward_rule`).
* :func:`maximize`: the input that maximises a feature map or a class score,
  by regularised gradient ascent.
* :func:`occlusion`: how much the class probability drops when a patch of the
  image is covered.
* :func:`weight_gradients`, :func:`weight_statistics`: per-layer weight
  gradients and cuda-convnet's mean ``|W|``, mean ``|dW|`` and their ratio.
* :func:`colour_specificity`: how much a first-layer kernel differs between
  the colour channels; :func:`colour_by_column` its mean over each column that
  the next convolution reads apart (AlexNet's two GPUs, Figure 3).

Conventions shared by every tool
--------------------------------
* Layers are named by the dotted names of ``model.named_modules()``
  (``conv1``, ``block.conv_a``); ``""`` is the model itself.
* Inputs are preprocessed floating-point images, ``(C, H, W)`` for one image
  or ``(N, C, H, W)`` for a batch, and are cast to the model's parameter dtype.
* The model runs in evaluation mode (``training=False``: dropout off, batch
  statistics frozen), keeping what backward needs only when a backward pass
  follows. Only :func:`weight_gradients` runs in training mode, as a training
  step would.
* Every tool leaves the model as it found it: parameter gradients, the layers'
  saved forward passes, buffers and the dropout generators are restored, so an
  inspection in the middle of training changes nothing that follows.
* Bad arguments raise ``ValueError`` saying what was expected and received.

Reaching inside a model
-----------------------
Tools that need one layer's output (or must start the backward pass at it)
put a temporary hook on that *instance*: its ``forward`` records the output
(and may stop the forward pass there, so only the layers up to it run), its
``backward`` receives the objective's gradient. The hook is removed on the way
out, error or not. The model's own ``forward`` and ``backward`` do the rest,
so Sequential, Graph, nesting and user layers with sublayers all work alike.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from minidl import checks
from minidl.containers import Graph, Sequential
from minidl.layers import Concat, Conv2D, Dense, Flatten, ReLU
from minidl.layers.base import Layer
from minidl.losses import softmax
from minidl.parameter import Parameter

__all__ = ["ReceptiveField", "receptive_field", "TopPatches", "top_patches", "saliency",
           "guided_backprop", "deconvnet", "relu_backward_rule", "Maximized", "maximize",
           "occlusion", "weight_gradients", "LayerStats", "weight_statistics",
           "channel_projections", "colour_specificity", "column_groups", "colour_by_column",
           "ColumnColour"]


# ------------------------------------------------------------------ plumbing
def _model_dtype(model: Layer) -> np.dtype:
    params = model.parameters()
    return params[0].dtype if params else np.dtype(np.float32)


def _find_layer(model: Layer, name: Any, owner: str) -> Layer:
    """The layer called ``name`` in ``model.named_modules()`` (``""`` is the model)."""
    modules = dict(model.named_modules())
    if name != "":
        checks.one_of(name, [n for n in modules if n], "layer_name", owner)
    return modules[name]


def _as_images(x: Any, model: Layer, owner: str, *, single: bool | None = None,
               name: str = "x") -> tuple[np.ndarray, bool]:
    """``(batch, was_single)``: ``x`` as an ``(N, C, H, W)`` array of the model's dtype.

    ``single=True`` accepts only one image ``(C, H, W)``, ``False`` only a batch.
    """
    shapes = {None: "(C, H, W) or (N, C, H, W)", True: "(C, H, W)", False: "(N, C, H, W)"}[single]
    ndims = {None: (3, 4), True: (3,), False: (4,)}[single]
    if not isinstance(x, np.ndarray) or x.ndim not in ndims:
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{owner}: expected {name} of shape {shapes}, received {got}")
    if x.dtype.kind != "f":
        raise ValueError(f"{owner}: expected {name} to be preprocessed floating-point images, "
                         f"received dtype {x.dtype} (scale and normalise them first)")
    if x.size == 0:
        raise ValueError(f"{owner}: expected {name} to hold at least one non-empty image, "
                         f"received shape {x.shape}")
    was_single = x.ndim == 3
    batch = x[None] if was_single else x
    return batch.astype(_model_dtype(model), copy=False), was_single


def _class_scores(model: Layer, out: np.ndarray, owner: str) -> np.ndarray:
    if out.ndim != 2:
        raise ValueError(f"{owner}: expected the model to output class scores of shape (N, K), "
                         f"received shape {out.shape}")
    return out


def _targets(target: Any, n: int, classes: int, single: bool, owner: str) -> np.ndarray:
    """One class index per image: an int for all of them, or (batch only) one int each."""
    if single or np.ndim(target) == 0:
        return np.full(n, checks.index(target, "target", owner, classes), np.intp)
    if np.ndim(target) != 1 or len(target) != n:
        raise ValueError(f"{owner}: expected target to be an int or {n} ints (one per image), "
                         f"received {checks.describe(target)}")
    return np.array([checks.index(t, "target", owner, classes) for t in target], np.intp)


@contextmanager
def _undisturbed(model: Layer) -> Iterator[None]:
    """Restore on exit what an inspection may change: the parameters' gradients, each
    layer's saved forward pass, the buffers and the state of every layer's generator."""
    modules = model.modules()
    grads = [(p, p.grad.copy()) for p in model.parameters()]
    caches = [(m, m._cache) for m in modules]
    buffers = [(m, name, value, np.array(value, copy=True))
               for m in modules for name, value in m._buffers.items()]
    generators = [(g, g.bit_generator.state) for m in modules for g in vars(m).values()
                  if isinstance(g, np.random.Generator)]
    try:
        yield
    finally:
        for p, grad in grads:
            p.grad[...] = grad
        for m, cache in caches:
            m._cache = cache
        for m, name, value, saved in buffers:
            if isinstance(value, np.ndarray):
                value[...] = saved
            setattr(m, name, value)
        for g, state in generators:
            g.bit_generator.state = state


class _Stop(Exception):
    """Raised by a hooked forward to end the forward pass at the layer inspected."""


class _Tap:
    """What a hooked layer saw: its last ``output``; ``gradient`` is handed to its backward
    instead of the upstream one, and ``reached`` says whether that backward ran."""

    def __init__(self) -> None:
        self.output: np.ndarray | None = None
        self.gradient: np.ndarray | None = None
        self.reached = False


@contextmanager
def _tap(layer: Layer, *, stop: bool = False) -> Iterator[_Tap]:
    """Hook one layer instance (not its class) for the duration of the block."""
    tap = _Tap()
    forward, backward = layer.forward, layer.backward
    own = {name: vars(layer)[name] for name in ("forward", "backward") if name in vars(layer)}

    def tapped_forward(x: Any, training: bool = True,
                       keep_for_backward: bool | None = None) -> np.ndarray:
        tap.output = forward(x, training=training, keep_for_backward=keep_for_backward)
        if stop:
            raise _Stop
        return tap.output

    def tapped_backward(dy: np.ndarray, *, input_grad: bool = True) -> Any:
        # With a gradient set, the model's backward starts from a zero output gradient,
        # so the upstream ``dy`` is zero: replacing it is exact.
        tap.reached = True
        return backward(dy if tap.gradient is None else tap.gradient, input_grad=input_grad)

    # object.__setattr__: a function is neither a Parameter nor a Layer, nothing to register.
    object.__setattr__(layer, "forward", tapped_forward)
    object.__setattr__(layer, "backward", tapped_backward)
    try:
        yield tap
    finally:
        for name in ("forward", "backward"):
            if name in own:
                object.__setattr__(layer, name, own[name])
            else:
                object.__delattr__(layer, name)


def _output_of(model: Layer, layer: Layer, batch: np.ndarray) -> np.ndarray:
    """``layer``'s output for ``batch`` in eval mode, running only the layers up to it."""
    with _tap(layer, stop=True) as tap:
        try:
            model.forward(batch, training=False, keep_for_backward=False)
        except _Stop:
            pass
    if tap.output is None:
        raise ValueError(f"{layer.label()}: expected the layer to run in the model's forward "
                         f"pass, but it did not")
    return tap.output


# ----------------------------------------------------------- receptive field
@dataclass(frozen=True)
class ReceptiveField:
    """The input window behind each output position of a layer.

    Output position ``(i, j)`` sees input rows ``offset[0] + i * stride[0]`` to
    ``offset[0] + i * stride[0] + size[0] - 1`` (inclusive), and likewise
    columns, in input pixel coordinates. Offsets are negative where padding
    puts the window partly outside the image.

    Attributes
    ----------
    size, stride, offset : (int, int)
        ``(rows, columns)`` each.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[int, int]

    def corner(self, i: int, j: int) -> tuple[int, int]:
        """``(top, left)`` of position ``(i, j)``'s window, unclipped (may be negative)."""
        owner = "ReceptiveField.corner"
        i = checks.integer(i, "i", owner, minimum=0)
        j = checks.integer(j, "j", owner, minimum=0)
        return self.offset[0] + i * self.stride[0], self.offset[1] + j * self.stride[1]

    def window(self, i: int, j: int, image_size: int | tuple[int, int]) -> tuple[slice, slice]:
        """Position ``(i, j)``'s input window clipped to an image of ``image_size = (H, W)``.

        Returns
        -------
        (rows, cols) : two slices with non-negative bounds, so
            ``image[..., rows, cols]`` is the part of the window inside the image.
        """
        h, w = checks.pair(image_size, "image_size", "ReceptiveField.window", 1)
        top, left = self.corner(i, j)
        rows = slice(max(top, 0), min(top + self.size[0], h))
        cols = slice(max(left, 0), min(left + self.size[1], w))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            raise ValueError(f"ReceptiveField.window: expected a position whose window overlaps "
                             f"the {h}x{w} image, received ({i}, {j})")
        return rows, cols


#: The input itself: each position sees one pixel.
_PIXEL = ReceptiveField((1, 1), (1, 1), (0, 0))


@dataclass(frozen=True)
class _NoGeometry:
    """Why a layer's output has no receptive field (it is carried to every later layer)."""

    reason: str


def _is_window_layer(layer: Layer) -> bool:
    return all(hasattr(layer, a) for a in ("kernel_size", "stride", "padding"))


def _slide(field: ReceptiveField, layer: Layer) -> ReceptiveField:
    """Compose ``field`` with a sliding window (kernel k, stride s, padding p, dilation d):
    one step of the layer is ``field.stride`` input pixels, so the window grows by
    ``d (k - 1)`` steps, starts ``p`` steps earlier, and the steps get ``s`` times longer."""
    kernel = checks.pair(layer.kernel_size, "kernel_size", layer.label(), 1)
    stride = checks.pair(layer.stride, "stride", layer.label(), 1)
    padding = checks.pair(layer.padding, "padding", layer.label(), 0)
    dilation = checks.pair(getattr(layer, "dilation", 1), "dilation", layer.label(), 1)
    steps = field.stride
    return ReceptiveField(
        tuple(r + d * (k - 1) * j for r, d, k, j in zip(field.size, dilation, kernel, steps)),
        tuple(j * s for j, s in zip(steps, stride)),
        tuple(o - p * j for o, p, j in zip(field.offset, padding, steps)))


def _leaf_geometry(layer: Layer, name: str, inputs: list[Any]) -> Any:
    """The output geometry of a layer that is not a container, from its inputs'."""
    for value in inputs:
        if isinstance(value, _NoGeometry):
            return value
    if len(inputs) > 1:  # a merge: its inputs must line up position by position
        if isinstance(layer, Concat) and layer.axis not in (1, -3):
            return _NoGeometry(f"'{name}' concatenates along axis {layer.axis}, not channels")
        if len(set(inputs)) > 1:
            return _NoGeometry(f"the branches joined by '{name}' see different input windows: "
                               + ", ".join(map(repr, inputs)))
        return inputs[0]
    if isinstance(layer, (Flatten, Dense)):
        return _NoGeometry(f"'{name}' ({type(layer).__name__}) does not output feature maps")
    if _is_window_layer(layer):
        return _slide(inputs[0], layer)
    if any(True for _ in layer.named_children()):
        return _NoGeometry(f"'{name}' ({type(layer).__name__}) has sublayers wired by its own "
                           f"forward(), which cannot be read")
    return inputs[0]  # element-wise, normalisation, dropout: the geometry is unchanged


def _geometry(layer: Layer, name: str, inputs: list[Any], found: dict[str, Any]) -> Any:
    """The geometry of ``layer``'s output; records every layer's under its name in ``found``."""
    def join(*parts: str) -> str:
        return ".".join(p for p in parts if p)

    if isinstance(layer, Sequential):
        value = inputs[0]
        for child_name, child in layer.named_children():
            value = _geometry(child, join(name, child_name), [value], found)
    elif isinstance(layer, Graph):
        values = {layer.input_name: inputs[0]}
        for node in layer.nodes:
            values[node.name] = _geometry(node.layer, join(name, node.name),
                                          [values[i] for i in node.inputs], found)
        value = values[layer.output]
    else:
        value = _leaf_geometry(layer, name, inputs)
    found[name] = value
    return value


def receptive_field(model: Layer, layer_name: str) -> ReceptiveField:
    """The receptive field of ``layer_name``'s output positions, in input pixels.

    Composed through every layer on the path from the input: any layer with
    ``kernel_size``, ``stride`` and ``padding`` (Conv2D, MaxPool2D, AvgPool2D)
    is a sliding window; element-wise layers, normalisation, dropout and
    merges change nothing. It depends on the model's wiring only, not on the
    input size.

    Parameters
    ----------
    model : Layer
        A Sequential or Graph, nested or not.
    layer_name : str
        A dotted name from ``model.named_modules()``.

    Returns
    -------
    ReceptiveField
        ``size``, ``stride`` and ``offset``, each ``(rows, cols)``.

    Raises
    ------
    ValueError
        Unknown layer; a layer whose output is not a feature map (Dense,
        Flatten and everything after them); branches of different geometry
        joined before it; a layer inside a user layer whose wiring is its own
        ``forward`` code.
    """
    owner = "receptive_field"
    _find_layer(model, layer_name, owner)
    found: dict[str, Any] = {}
    _geometry(model, "", [_PIXEL], found)
    value = found.get(layer_name, _NoGeometry(f"'{layer_name}' sits inside a layer with sublayers "
                                              f"wired by its own forward(), which cannot be read"))
    if isinstance(value, _NoGeometry):
        raise ValueError(f"{owner}: expected a layer whose output positions have a receptive "
                         f"field, received '{layer_name}': {value.reason}")
    return value


# ------------------------------------------------------------- top patches
@dataclass(frozen=True)
class TopPatches:
    """The k images that excite each channel of a layer most, and where.

    Attributes
    ----------
    indices : np.ndarray of int, ``(channels, k)``
        Image indices, strongest first (ties: the lower index first).
    positions : np.ndarray of int, ``(channels, k, 2)``
        ``(i, j)`` of the image's maximum in that channel's map (its first
        maximum in row-major order).
    values : np.ndarray, ``(channels, k)``
        The maximal activations.
    crops : np.ndarray, ``(channels, k, C, h, w)``
        The input window behind each maximum, ``(h, w) = receptive_field.size``.
        A window that reaches past the border is clipped to the image and the
        rest filled with ``fill``, each pixel kept where it lies in the window.
    receptive_field : ReceptiveField
    fill : float
        The value of crop pixels outside the image.
    """

    indices: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    crops: np.ndarray
    receptive_field: ReceptiveField
    fill: float


def top_patches(model: Layer, layer_name: str, images: np.ndarray, k: int = 9,
                batch_size: int = 256, fill: float = 0.0) -> TopPatches:
    """The top-k images per feature map of a layer and their input crops (Zeiler & Fergus).

    Each image counts with its *maximal* activation in the channel, so an
    image appears at most once per channel.

    Parameters
    ----------
    model : Layer
    layer_name : str
        A layer whose output is a feature map ``(N, channels, h, w)``.
    images : np.ndarray, ``(N, C, H, W)``
        Preprocessed floating-point images, N >= k.
    k : int
    batch_size : int
        Images per forward pass. The passes run in eval mode, keep nothing
        for backward and stop at the layer.
    fill : float
        Value of crop pixels outside the image. The default 0.0 is, for
        normalised inputs, the mean pixel, and exactly what the first
        convolution's zero padding shows the network.

    Returns
    -------
    TopPatches
    """
    owner = "top_patches"
    layer = _find_layer(model, layer_name, owner)
    batch, _ = _as_images(images, model, owner, single=False, name="images")
    n = batch.shape[0]
    k = checks.integer(k, "k", owner, minimum=1, maximum=n)
    batch_size = checks.integer(batch_size, "batch_size", owner, minimum=1)
    fill = checks.real(fill, "fill", owner)
    field = receptive_field(model, layer_name)  # before any work: its errors are the likely ones

    values = indices = flat_positions = None
    width = 0
    with _undisturbed(model):
        for start in range(0, n, batch_size):
            maps = _output_of(model, layer, batch[start:start + batch_size])
            if maps.ndim != 4:
                raise ValueError(f"{owner}: expected '{layer_name}' to output feature maps "
                                 f"(N, C, h, w), received shape {maps.shape}")
            m, c, h, width = maps.shape
            flat = maps.reshape(m, c, h * width)
            where = flat.argmax(axis=2)                                    # (m, c)
            best = np.take_along_axis(flat, where[..., None], axis=2)[..., 0]
            # Merge this batch's candidates with the best so far, per channel.
            cand = [best.T, np.broadcast_to(np.arange(start, start + m), (c, m)), where.T]
            if values is not None:
                cand = [np.concatenate(pair, axis=1)
                        for pair in zip((values, indices, flat_positions), cand)]
            order = np.lexsort((cand[1], -cand[0]), axis=-1)[:, :k]       # value down, index up
            values, indices, flat_positions = (np.take_along_axis(a, order, axis=1) for a in cand)

    rows, cols = np.divmod(flat_positions, width)
    crops = np.full((len(values), k) + batch.shape[1:2] + field.size, fill, batch.dtype)
    for ch, r in np.ndindex(len(values), k):
        i, j = int(rows[ch, r]), int(cols[ch, r])
        top, left = field.corner(i, j)
        wr, wc = field.window(i, j, batch.shape[2:])
        crops[ch, r, :, wr.start - top:wr.stop - top, wc.start - left:wc.stop - left] = \
            batch[indices[ch, r], :, wr, wc]
    return TopPatches(indices.astype(np.int64), np.stack([rows, cols], axis=-1).astype(np.int64),
                      values.copy(), crops, field, fill)


# ------------------------------------------------ gradients with respect to the input
@contextmanager
def relu_backward_rule(model: Layer, rule: str) -> Iterator[Layer]:
    """Set ``backward_rule`` on every ReLU of ``model`` for a ``with`` block.

    Each ReLU gets its previous rule back on exit, also when the block raises.
    Other activations (LeakyReLU, Tanh, ...) keep their true gradient.

    Parameters
    ----------
    rule : {"gradient", "guided", "deconvnet"}
        See :class:`minidl.layers.ReLU`.
    """
    checks.one_of(rule, ReLU.BACKWARD_RULES, "rule", "relu_backward_rule")
    relus = [m for m in model.modules() if isinstance(m, ReLU)]
    previous = [relu.backward_rule for relu in relus]
    try:
        for relu in relus:
            relu.backward_rule = rule
        yield model
    finally:
        for relu, old in zip(relus, previous):
            relu.backward_rule = old


def _input_gradient(model: Layer, x: Any, target: Any, rule: str,
                    owner: str) -> tuple[np.ndarray, bool]:
    """d logit_target / d x for each image, one forward and one backward pass."""
    batch, single = _as_images(x, model, owner)
    with _undisturbed(model), relu_backward_rule(model, rule):
        scores = _class_scores(model, model.forward(batch, training=False, keep_for_backward=True),
                               owner)
        targets = _targets(target, len(batch), scores.shape[1], single, owner)
        dscores = np.zeros_like(scores)
        # Images do not interact in eval mode, so one pass gives each its own gradient.
        dscores[np.arange(len(batch)), targets] = 1
        dx = np.ascontiguousarray(model.backward(dscores))
    return dx, single


def saliency(model: Layer, x: np.ndarray, target: int | Sequence[int]) -> np.ndarray:
    """Class saliency map (Simonyan et al. 2013): ``max_c |d score_target / d x[c]|``.

    Parameters
    ----------
    model : Layer
        Outputs class scores ``(N, K)`` (logits, before any softmax).
    x : np.ndarray
        One image ``(C, H, W)`` or a batch ``(N, C, H, W)``.
    target : int or sequence of int
        The class whose score is differentiated; for a batch, one for all
        images or one per image.

    Returns
    -------
    np.ndarray
        ``(H, W)`` for one image, ``(N, H, W)`` for a batch: the largest
        absolute derivative over the channels of each pixel.
    """
    dx, single = _input_gradient(model, x, target, "gradient", "saliency")
    out = np.abs(dx).max(axis=1)
    return out[0] if single else out


def guided_backprop(model: Layer, x: np.ndarray, target: int | Sequence[int]) -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2014) of the target's score to the input.

    The backward pass of :func:`saliency`, but every ReLU passes the gradient
    only where its forward input was positive *and* the incoming gradient is
    positive. Max-pooling routes to its recorded maxima as usual.

    Returns
    -------
    np.ndarray
        The input-shaped signal, ``(C, H, W)`` or ``(N, C, H, W)`` like ``x``.
    """
    dx, single = _input_gradient(model, x, target, "guided", "guided_backprop")
    return dx[0] if single else dx


def deconvnet(model: Layer, x: np.ndarray, target: int | Sequence[int]) -> np.ndarray:
    """Zeiler & Fergus's deconvnet projection of the target's score to the input.

    The backward pass of :func:`saliency`, but every ReLU passes the positive
    part of the incoming gradient whatever its forward input was; the
    convolutions use their transposed filters and max-pooling its switches
    (the recorded maxima), which is what their backward passes do anyway.

    Returns
    -------
    np.ndarray
        The input-shaped signal, ``(C, H, W)`` or ``(N, C, H, W)`` like ``x``.
    """
    dx, single = _input_gradient(model, x, target, "deconvnet", "deconvnet")
    return dx[0] if single else dx


# -------------------------------------------------- activation maximisation
@dataclass(frozen=True)
class Maximized:
    """Result of :func:`maximize`.

    Attributes
    ----------
    image : np.ndarray, ``(C, H, W)``
        The input found, in the model's input space and dtype.
    objective : np.ndarray of float64, ``(steps,)``
        The objective at each step, for the (jittered) image that step
        differentiated, before its update.
    """

    image: np.ndarray
    objective: np.ndarray


def _clip_bounds(clip: Any, channels: int, owner: str) -> tuple[np.ndarray, np.ndarray] | None:
    if clip is None:
        return None
    if not isinstance(clip, (tuple, list)) or len(clip) != 2:
        raise ValueError(f"{owner}: expected clip to be None or a pair (low, high), "
                         f"received {checks.describe(clip)}")
    bounds = []
    for name, value in zip(("low", "high"), clip):
        array = np.asarray(value, dtype=np.float64) if np.ndim(value) else None
        if array is None:
            array = np.full(channels, checks.real(value, f"clip {name}", owner))
        elif array.shape != (channels,) or not np.isfinite(array).all():
            raise ValueError(f"{owner}: expected clip {name} to be a real number or {channels} "
                             f"finite numbers (one per channel), received {checks.describe(value)}")
        bounds.append(array.reshape(channels, 1, 1))
    if not (bounds[0] < bounds[1]).all():
        raise ValueError(f"{owner}: expected clip low < high, received {clip!r}")
    return bounds[0], bounds[1]


def maximize(model: Layer, layer_name: str, channel: int, input_shape: tuple[int, int, int], *,
             steps: int = 100, lr: float = 0.1, l2: float = 1e-3, blur: float = 0.5,
             blur_every: int = 4, jitter: int = 2, clip: tuple[Any, Any] | None = None,
             rng: np.random.Generator | int | None = None, start: float = 0.5,
             position: str = "mean") -> Maximized:
    """The input that maximises a channel's activation or a class score.

    Gradient ascent from a random start (Erhan et al. 2009), with the
    regularisers of Yosinski et al. (2015). Each step:

    1. roll the image by a random shift of up to ``jitter`` pixels;
    2. one forward and one backward pass give the objective's gradient, which
       is rolled back so the shift is undone;
    3. ``x += lr * g / rms(g)``: the gradient is divided by its root mean
       square, so ``lr`` is a step in input units whatever the layer's scale;
    4. L2 decay ``x *= 1 - l2`` (towards 0, the mean image for normalised
       inputs);
    5. every ``blur_every`` steps, a Gaussian blur of width ``blur`` over the
       spatial axes (``scipy.ndimage.gaussian_filter``, channels apart);
    6. clipping to ``clip``.

    Parameters
    ----------
    model : Layer
    layer_name : str
        The layer whose output channel is maximised; for the last layer (class
        scores ``(1, K)``) the objective is the class's logit.
    position : {"mean", "centre"}
        For a feature map: the mean of ``output[0, channel]`` over its
        positions, or the one unit at its centre. The centre unit sees only its
        receptive field, so the image shows a pattern of that size (Yosinski et
        al. 2015); a first layer's mean is maximised by a flat image.
    channel : int
        Channel (or class) index.
    input_shape : (C, H, W)
        The model runs forward and backward in full, so every layer must
        accept this size.
    steps, lr, l2 : int, float, float
        Number of steps, step size (input units), decay per step in [0, 1).
    blur, blur_every : float, int
        Gaussian width in pixels (0 turns blurring off) and period in steps.
    jitter : int
        Largest shift in pixels (0: none).
    clip : (low, high), optional
        The valid pixel range; each bound a number or one per channel. For
        normalised inputs pass the normalised range of ``[0, 1]`` pixels,
        ``((0 - mean) / std, (1 - mean) / std)``. None: no clipping.
    rng : numpy Generator or int seed, optional
        Source of the start and the shifts: the same seed gives the same image.
    start : float
        Standard deviation of the random start, in input units. Near 0 the input
        is the mean image, where a ReLU network's units can all be off, and a
        zero gradient would never move (after clipping, when given).

    Returns
    -------
    Maximized
        ``image (C, H, W)`` and ``objective (steps,)``.
    """
    owner = "maximize"
    layer = _find_layer(model, layer_name, owner)
    channel = checks.integer(channel, "channel", owner, minimum=0)
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_))
                       and s > 0 for s in input_shape)):
        raise ValueError(f"{owner}: expected input_shape to be (C, H, W) with positive ints, "
                         f"received {checks.describe(input_shape)}")
    shape = tuple(int(s) for s in input_shape)
    steps = checks.integer(steps, "steps", owner, minimum=1)
    lr = checks.real(lr, "lr", owner, minimum=0.0, strict_min=True)
    l2 = checks.real(l2, "l2", owner, minimum=0.0, maximum=1.0, strict_max=True)
    blur = checks.real(blur, "blur", owner, minimum=0.0)
    blur_every = checks.integer(blur_every, "blur_every", owner, minimum=1)
    jitter = checks.integer(jitter, "jitter", owner, minimum=0)
    bounds = _clip_bounds(clip, shape[0], owner)
    rng = checks.rng_from(rng, owner)
    start = checks.real(start, "start", owner, minimum=0.0)
    checks.one_of(position, ("mean", "centre"), "position", owner)
    dtype = _model_dtype(model)

    x = rng.normal(0.0, start, shape).astype(dtype)
    if bounds is not None:
        x = np.clip(x, *bounds).astype(dtype)
    objective = np.empty(steps)
    with _undisturbed(model), _tap(layer) as tap:
        for step in range(steps):
            shift = (tuple(int(s) for s in rng.integers(-jitter, jitter + 1, 2)) if jitter
                     else (0, 0))
            out = model.forward(np.roll(x, shift, axis=(1, 2))[None], training=False,
                                keep_for_backward=True)
            act = tap.output
            if act is None or act.ndim < 2:
                got = None if act is None else act.shape
                raise ValueError(f"{owner}: expected '{layer_name}' to output (N, channels, ...) "
                                 f"in the forward pass, received {got}")
            checks.index(channel, "channel", owner, act.shape[1])
            # The unit(s) maximised: every position of the map, or its centre one.
            where: tuple[Any, ...] = (0, channel)
            if position == "centre" and act.ndim == 4:
                where += (act.shape[2] // 2, act.shape[3] // 2)
            objective[step] = float(np.mean(act[where], dtype=np.float64))
            tap.gradient = np.zeros_like(act)
            tap.gradient[where] = 1 / np.size(act[where])
            tap.reached = False
            # The objective's gradient enters at the layer (the tap hands it over), while
            # the model's output, not part of the objective, sends back zeros.
            grad = model.backward(np.zeros_like(out))
            if not tap.reached:
                raise ValueError(f"{owner}: expected '{layer_name}' to lead to the model's output, "
                                 f"received a layer whose backward pass never runs")
            grad = np.roll(grad[0], (-shift[0], -shift[1]), axis=(1, 2))
            rms = float(np.sqrt(np.mean(np.square(grad, dtype=np.float64))))
            if rms > 0:
                x += (lr / rms) * grad
            if l2:
                x *= 1 - l2
            if blur and (step + 1) % blur_every == 0:
                x = gaussian_filter(x, sigma=(0, blur, blur)).astype(dtype, copy=False)
            if bounds is not None:
                x = np.clip(x, *bounds).astype(dtype, copy=False)
    return Maximized(x, objective)


# ---------------------------------------------------------------- occlusion
def occlusion(model: Layer, x: np.ndarray, target: int, patch: int, stride: int = 1,
              fill: float | Sequence[float] = 0.0, batch_size: int = 256) -> np.ndarray:
    """Drop of the target's softmax probability as a patch covers each place (Zeiler & Fergus).

    Parameters
    ----------
    model : Layer
        Outputs class scores ``(N, K)``; their softmax is the probability.
    x : np.ndarray, ``(C, H, W)``
        One preprocessed image.
    target : int
    patch : int
        Side of the square patch, at most ``min(H, W)``.
    stride : int
        Step between patch positions.
    fill : float or sequence of C floats
        The patch's value (per channel if a sequence). 0.0 is the mean pixel
        of normalised inputs.
    batch_size : int
        Occluded images per forward pass (eval mode, keeping nothing).

    Returns
    -------
    np.ndarray of float64, ``(rows, cols)``
        ``rows = (H - patch) // stride + 1``, likewise ``cols``; entry ``(i, j)``
        is ``p(target | x) - p(target | x occluded)`` with the patch over rows
        ``i*stride .. i*stride + patch - 1`` and columns ``j*stride ..
        j*stride + patch - 1``. Positive where covering the patch hurts.
    """
    owner = "occlusion"
    batch, _ = _as_images(x, model, owner, single=True)
    c, h, w = batch.shape[1:]
    patch = checks.integer(patch, "patch", owner, minimum=1, maximum=min(h, w))
    stride = checks.integer(stride, "stride", owner, minimum=1)
    batch_size = checks.integer(batch_size, "batch_size", owner, minimum=1)
    if np.ndim(fill):
        values = np.asarray(fill)
        if values.shape != (c,) or values.dtype.kind not in "iuf" or not np.isfinite(values).all():
            raise ValueError(f"{owner}: expected fill to be a real number or {c} finite numbers "
                             f"(one per channel), received {checks.describe(fill)}")
        fill_value = values.astype(batch.dtype).reshape(c, 1, 1)
    else:
        fill_value = np.asarray(checks.real(fill, "fill", owner), batch.dtype)

    def probability(images: np.ndarray) -> np.ndarray:
        scores = _class_scores(model, model.forward(images, training=False), owner)
        return softmax(scores.astype(np.float64), axis=1)  # float64: small drops stay exact

    rows, cols = (h - patch) // stride + 1, (w - patch) // stride + 1
    drops = np.empty(rows * cols)
    with _undisturbed(model):
        base = probability(batch)
        target = checks.index(target, "target", owner, base.shape[1])
        for start in range(0, rows * cols, batch_size):
            places = range(start, min(start + batch_size, rows * cols))
            occluded = np.repeat(batch, len(places), axis=0)
            for image, place in zip(occluded, places):
                top, left = divmod(place, cols)
                image[:, top * stride:top * stride + patch,
                      left * stride:left * stride + patch] = fill_value
            drops[start:start + len(places)] = base[0, target] - probability(occluded)[:, target]
    return drops.reshape(rows, cols)


# ---------------------------------------------------------- weight statistics
def weight_gradients(model: Layer, loss: Any, x: np.ndarray,
                     y: np.ndarray) -> dict[str, np.ndarray]:
    """The weight gradient of every Conv2D for one batch, for a weight-gradient montage.

    One forward and backward pass in training mode, as a training step would
    run (dropout on, batch statistics). Afterwards the parameters' gradients,
    the layers' saved forward passes, the buffers (running statistics) and
    the dropout generators are restored, so calling it between two training
    steps does not change training. ``loss`` itself keeps this batch's values.

    Parameters
    ----------
    model : Layer
    loss : a loss with ``forward(prediction, target)`` and ``backward()``
    x : np.ndarray, ``(N, C, H, W)``
    y : targets as ``loss`` expects them

    Returns
    -------
    dict of str to np.ndarray
        Layer name to ``d loss / d weight`` of that batch, shaped like the
        weight, in ``named_modules`` order (empty when there is no Conv2D).
    """
    owner = "weight_gradients"
    batch, _ = _as_images(x, model, owner, single=False)
    if not (callable(getattr(loss, "forward", None)) and callable(getattr(loss, "backward", None))):
        raise ValueError(f"{owner}: expected a loss with forward(prediction, target) and "
                         f"backward(), received {type(loss).__name__}")
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, Conv2D)]
    with _undisturbed(model):
        model.zero_grad()
        loss.forward(model.forward(batch, training=True, keep_for_backward=True), y)
        model.backward(loss.backward(), input_grad=False)
        return {name: conv.weight.grad.copy() for name, conv in convs}


@dataclass(frozen=True)
class LayerStats:
    """cuda-convnet's per-layer weight statistics.

    Attributes
    ----------
    name : str
    mean_abs_weight, mean_abs_grad : float
        Means of ``|W|`` and ``|dW|`` over the weight's trainable entries
        (a connection table's absent entries are left out).
    ratio : float
        ``mean_abs_grad / mean_abs_weight``: roughly the relative size of one
        update (times the learning rate). When ``mean_abs_weight`` is 0:
        ``inf`` if ``mean_abs_grad > 0``, else 0.0 (nothing moves); never NaN.
    """

    name: str
    mean_abs_weight: float
    mean_abs_grad: float
    ratio: float


def weight_statistics(model: Layer) -> list[LayerStats]:
    """Mean ``|W|``, mean ``|dW|`` and their ratio for every layer with a ``weight``.

    Uses the current ``.grad``, i.e. that of the last backward pass (call it
    after a training step, before the next ``zero_grad``).

    Returns
    -------
    list of LayerStats
        In ``named_modules`` order.
    """
    out = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, Parameter):
            continue
        # A connection table's absent entries are structural zeros, not small weights.
        w, g = ((weight.data, weight.grad) if weight.mask is None
                else (weight.data[weight.mask], weight.grad[weight.mask]))
        mean_w = float(np.mean(np.abs(w), dtype=np.float64))
        mean_g = float(np.mean(np.abs(g), dtype=np.float64))
        if mean_w > 0:
            ratio = mean_g / mean_w
        else:
            ratio = float("inf") if mean_g > 0 else 0.0
        out.append(LayerStats(name, mean_w, mean_g, ratio))
    return out


# --------------------------------------------------------------- projections
def channel_projections(model: Layer, layer_name: str, images: np.ndarray,
                        targets: np.ndarray, rule: str = "guided") -> np.ndarray:
    """Project one activation of a layer per image back to the input.

    The gradient of ``layer(images)[n, c_n, i_n, j_n]`` with respect to
    ``images[n]``, with every ReLU's backward pass replaced by ``rule`` (see
    :func:`relu_backward_rule`): with ``"guided"`` this is the
    guided-backpropagation projection of a feature-map maximum that Zeiler &
    Fergus's Figure 2 shows beside its patches. One forward pass (eval mode)
    and one backward pass for the whole batch; images do not interact.

    Parameters
    ----------
    model : Layer
    layer_name : str
        A layer in ``model.named_modules()`` whose output is ``(N, C, h, w)``.
    images : np.ndarray, ``(N, C_in, H, W)``
        Preprocessed images.
    targets : np.ndarray of int, ``(N, 3)``
        ``(channel, i, j)`` of the activation projected for each image.
    rule : {"gradient", "guided", "deconvnet"}

    Returns
    -------
    np.ndarray, ``(N, C_in, H, W)``
        In the model's dtype. The model is left as it was found.
    """
    owner = "channel_projections"
    layer = _find_layer(model, layer_name, owner)
    batch, _ = _as_images(images, model, owner, single=False, name="images")
    targets = np.asarray(targets)
    if targets.shape != (len(batch), 3) or targets.dtype.kind not in "iu":
        raise ValueError(f"{owner}: expected targets of {len(batch)} (channel, i, j) ints, "
                         f"received {targets.dtype} {targets.shape}")
    with _undisturbed(model), relu_backward_rule(model, rule), _tap(layer) as tap:
        out = model.forward(batch, training=False, keep_for_backward=True)
        act = tap.output
        if act is None or act.ndim != 4:
            raise ValueError(f"{owner}: expected '{layer_name}' to output feature maps "
                             f"(N, C, h, w), received {None if act is None else act.shape}")
        if ((targets < 0) | (targets >= np.array(act.shape[1:]))).any():
            raise ValueError(f"{owner}: expected (channel, i, j) within {act.shape[1:]}, "
                             f"received {targets.min(axis=0)}..{targets.max(axis=0)}")
        tap.gradient = np.zeros_like(act)
        tap.gradient[np.arange(len(batch)), targets[:, 0], targets[:, 1], targets[:, 2]] = 1
        # The gradient enters at the layer; the output, not part of it, sends back zeros.
        return np.ascontiguousarray(model.backward(np.zeros_like(out)))



# ------------------------------------------------------------- colour in the kernels
def colour_specificity(weight: Any) -> np.ndarray:
    """How colour-specific each kernel of a first layer is, from 0 to 1.

    For a kernel ``W`` of shape ``(C, kh, kw)``, with ``M`` its mean over the
    channels at each position, the share of its energy that differs between the
    channels::

        score = sum (W - M)**2 / sum W**2

    0 means the same pattern in every channel: the kernel sees only brightness
    (colour-agnostic). A kernel on one channel alone scores ``1 - 1/C`` (2/3
    for RGB); opponent colours (red against green) score up to 1. AlexNet's two
    GPUs learned kernels "largely colour-agnostic" on one and "largely
    colour-specific" on the other (Krizhevsky et al. 2012, section 6.1).

    Parameters
    ----------
    weight : np.ndarray or Parameter
        ``(out_channels, C, kh, kw)``.

    Returns
    -------
    np.ndarray of float64, ``(out_channels,)``; 0 for an all-zero kernel.
    """
    w = weight.data if isinstance(weight, Parameter) else weight
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"colour_specificity: expected a conv weight (out_channels, C, kh, kw), "
                         f"received shape {w.shape}")
    total = np.square(w).sum(axis=(1, 2, 3))
    deviation = np.square(w - w.mean(axis=1, keepdims=True)).sum(axis=(1, 2, 3))
    return np.divide(deviation, total, out=np.zeros_like(total), where=total > 0)


class ColumnColour(NamedTuple):
    """The colour specificity of a first layer's kernels, per column."""

    #: the convolution's name in ``model.named_modules()``
    layer: str
    #: how many columns the next convolution reads its maps in (that layer's ``groups``)
    columns: int
    #: ``(out_channels,)``: :func:`colour_specificity` of each kernel
    scores: np.ndarray
    #: the mean score of each column's kernels (one value without columns)
    means: tuple[float, ...]


def column_groups(model: Layer, conv: Conv2D) -> int:
    """How many columns the next convolution reads ``conv``'s maps in (its ``groups``).

    AlexNet's two GPUs: each second layer read only its own first layer's maps,
    so the first layer's kernels split into columns that learn apart. The next
    convolution is the first one after ``conv`` in the tree walk that reads
    ``conv.out_channels`` maps; 1 without one.
    """
    found = False
    for _, layer in model.named_modules():
        if not isinstance(layer, Conv2D):
            continue
        if found and layer.in_channels == conv.out_channels:
            return layer.groups
        found = found or layer is conv
    return 1


def colour_by_column(model: Layer) -> list[ColumnColour]:
    """:func:`colour_specificity` of every fully connected convolution that reads a
    3-channel image, with the mean of each column (see :func:`column_groups`).

    Krizhevsky et al. (2012) saw AlexNet's two columns specialise on ImageNet,
    one "largely colour-agnostic", the other "largely colour-specific": the two
    means say whether a model did the same.
    """
    found = []
    for name, conv in model.named_modules():
        if not (isinstance(conv, Conv2D) and conv.in_channels == 3 and conv.groups == 1
                and (conv.connections is None or np.asarray(conv.connections).all())):
            continue
        scores = colour_specificity(conv.weight)
        columns = column_groups(model, conv)
        size = conv.out_channels // columns
        means = tuple(float(scores[k * size:(k + 1) * size].mean()) for k in range(columns))
        found.append(ColumnColour(name, columns, scores, means))
    return found

