"""Feature maps: what each convolution and pooling layer makes of one input.

:func:`feature_maps` runs one preprocessed input through a model in eval mode
(``training=False``), layer by layer, and returns the maps after every
convolution and every pooling layer, each as ``(C, H, W)``.
:func:`feature_map_grid` turns one layer's maps into a uint8 picture.

Which activations are reported
------------------------------
A convolution is usually followed by its nonlinearity (``conv -> relu``), and
the maps people want to see are the ones the next layer actually reads: the
output *after* that activation. So by default (``after_activation=True``) a
Conv2D whose output goes only to an elementwise activation (ReLU, LeakyReLU,
Tanh, Sigmoid) is reported once, under the convolution's name, with the
activation applied; the activation is not reported separately. With
``after_activation=False`` the raw convolution output (bias included, before
any nonlinearity) is reported instead. Pooling outputs are reported as they
are. Dense layers, Flatten, Dropout and merges are run but not reported.

Containers
----------
* :class:`~minidl.containers.Sequential`: the layers in order.
* :class:`~minidl.containers.Graph`: every node in its forward order, each
  node's output computed once and shared by the nodes reading it; a
  convolution node is folded with its activation only when that activation is
  the *only* node reading it.
* Containers nested in either are walked too; reported names are dotted
  (``block.conv_a``), as in ``named_parameters``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from minidl.containers import Graph, Sequential
from minidl.layers import AvgPool2D, Conv2D, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Tanh
from minidl.layers.base import Layer
from minidl.viz.grids import image_grid

__all__ = ["feature_maps", "feature_map_grid", "ACTIVATIONS", "POOLING"]

#: Elementwise activations folded into the convolution they follow.
ACTIVATIONS = (ReLU, LeakyReLU, Tanh, Sigmoid)
#: Layers whose output is reported as feature maps along with Conv2D.
POOLING = (MaxPool2D, AvgPool2D)

_INPUT_KEY = ""  # the model's input; no layer can be called "" (names are non-empty)


@dataclass
class LayerRecord:
    """One leaf layer as it ran: where its input came from and what it produced.

    ``inputs`` are the names of the records (or ``""`` for the model's input)
    whose outputs the layer read; ``output`` is the whole batch.
    """

    name: str
    layer: Layer
    inputs: list[str]
    output: np.ndarray


@dataclass
class FeatureRecord:
    """A reported feature-map entry with the details a report wants to caption.

    ``name`` is the conv or pooling layer's name; ``activation`` the name of
    the activation folded into it (or None); ``maps`` is ``(C, H, W)``;
    ``source`` names the record that fed the layer (``""`` = model input).
    """

    name: str
    layer: Layer
    activation: str | None
    activation_layer: Layer | None
    maps: np.ndarray
    source: str


# --------------------------------------------------------------------- tracing
def _is_container(layer: Layer) -> bool:
    return isinstance(layer, (Sequential, Graph))


def _run_layer(layer: Layer, xs: list[np.ndarray], keys: list[str], name: str,
               records: list[LayerRecord]) -> tuple[np.ndarray, str]:
    if _is_container(layer):
        if len(xs) != 1:
            raise ValueError(f"{name}: expected one input for a container, received {len(xs)}")
        return _run_container(layer, xs[0], keys[0], name + ".", records)
    y = layer.forward(xs if len(xs) > 1 else xs[0], training=False)
    records.append(LayerRecord(name, layer, list(keys), y))
    return y, name


def _run_container(model: Layer, x: np.ndarray, key: str, prefix: str,
                   records: list[LayerRecord]) -> tuple[np.ndarray, str]:
    if isinstance(model, Sequential):
        for name, layer in model.named_children():
            x, key = _run_layer(layer, [x], [key], prefix + name, records)
        return x, key
    # A Graph: its public wiring gives each node's inputs and the output node.
    values: dict[str, tuple[np.ndarray, str]] = {model.input_name: (x, key)}
    for node in model.nodes:
        args = [values[i] for i in node.inputs]
        values[node.name] = _run_layer(node.layer, [a for a, _ in args], [k for _, k in args],
                                       prefix + node.name, records)
    return values[model.output]


def _batch_of_one(model: Layer, image: Any) -> np.ndarray:
    x = np.asarray(image)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"feature_maps: expected one input of shape (C, H, W) or (1, C, H, W), "
                         f"received shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"feature_maps: expected a preprocessed floating-point input, received "
                         f"dtype {x.dtype} (scale and normalise images first, e.g. with "
                         f"minidl.data.images_to_tensor)")
    params = model.parameters()
    # Layers insist on their own dtype: run in the model's (float32 unless built otherwise).
    return x.astype(params[0].dtype, copy=False) if params else x


def trace(model: Layer, image: Any) -> list[LayerRecord]:
    """Run one input through ``model`` in eval mode and record every leaf layer.

    Parameters
    ----------
    model : Layer
        A Sequential, a Graph (possibly nested) or a single layer.
    image : np.ndarray
        One preprocessed input, ``(C, H, W)`` or ``(1, C, H, W)``, floating point;
        it is cast to the model's parameter dtype.

    Returns
    -------
    list of LayerRecord
        In forward order, with each layer's whole output (batch of one).
    """
    x = _batch_of_one(model, image)
    records: list[LayerRecord] = []
    if _is_container(model):
        _run_container(model, x, _INPUT_KEY, "", records)
    else:
        _run_layer(model, [x], [_INPUT_KEY], model.name or model.default_name, records)
    return records


def feature_records(model: Layer, image: Any, *,
                    after_activation: bool = True) -> list[FeatureRecord]:
    """Like :func:`feature_maps`, with the folded activation and the source layer named."""
    records = trace(model, image)
    readers: dict[str, list[LayerRecord]] = {}
    for record in records:
        for key in set(record.inputs):
            readers.setdefault(key, []).append(record)
    out = []
    for record in records:
        if isinstance(record.layer, Conv2D):
            act = None
            following = readers.get(record.name, [])
            if (after_activation and len(following) == 1
                    and isinstance(following[0].layer, ACTIVATIONS)):
                act = following[0]
            value = record.output if act is None else act.output
            out.append(FeatureRecord(record.name, record.layer, act and act.name,
                                     act and act.layer, np.array(value[0]), record.inputs[0]))
        elif isinstance(record.layer, POOLING):
            out.append(FeatureRecord(record.name, record.layer, None, None,
                                     np.array(record.output[0]), record.inputs[0]))
    return out


def feature_maps(model: Layer, image: Any, *,
                 after_activation: bool = True) -> list[tuple[str, np.ndarray]]:
    """The feature maps of one input after every convolution and pooling layer.

    Parameters
    ----------
    model : Layer
        A Sequential or Graph (nested containers are walked), or a single layer.
    image : np.ndarray
        One input already preprocessed as the model expects (for the MNIST
        models: ``(img/255 - mean)/std``, padded): ``(C, H, W)`` or
        ``(1, C, H, W)``, floating point.
    after_activation : bool
        True (default): a convolution followed only by an elementwise
        activation is reported with that activation applied (what the next
        layer reads), under the convolution's name. False: the raw
        convolution output.

    Returns
    -------
    list of (layer_name, maps)
        In forward order; ``maps`` is a float array ``(C, H, W)``, a copy.

    Shape
    -----
    For the modern LeNet on a 28x28 digit: conv1 ``(6, 28, 28)``, pool1
    ``(6, 14, 14)``, conv2 ``(16, 10, 10)``, pool2 ``(16, 5, 5)``.

    Raises
    ------
    ValueError
        If the input is not one floating-point ``(C, H, W)`` array, or a
        layer rejects it (the layer's own message).
    """
    return [(r.name, r.maps) for r in feature_records(model, image, after_activation=after_activation)]


# ------------------------------------------------------------------- drawing
def feature_map_grid(maps: np.ndarray, *, ncols: int | None = None, scale: int = 2,
                     border: int = 1, normalize: str | None = "global",
                     border_color: int | Sequence[int] = 255) -> np.ndarray:
    """Draw one layer's feature maps ``(C, H, W)`` as a grid, one tile per map.

    Parameters
    ----------
    maps : np.ndarray
        ``(C, H, W)`` activations, e.g. an entry of :func:`feature_maps`.
    ncols : int, optional
        Maps per row; default ``ceil(sqrt(C))``.
    scale, border, border_color
        As in :func:`minidl.viz.image_grid` (nearest-neighbour upscaling).
    normalize : {"global", "per_image", None}
        ``"global"`` (default): one min-max over the layer, so brightness is
        comparable between maps (a map that stays at zero after ReLU is dark,
        not mid-grey). ``"per_image"``: each map stretched on its own.

    Returns
    -------
    np.ndarray of uint8, ``(H', W')``
        ``H' = nrows*H*scale + (nrows+1)*border`` and likewise for the width.
    """
    arr = np.asarray(maps)
    if arr.ndim != 3:
        raise ValueError(f"feature_map_grid: expected maps of shape (C, H, W), received shape "
                         f"{arr.shape}")
    return image_grid(arr, ncols=ncols, scale=scale, border=border, normalize=normalize,
                      border_color=border_color)
