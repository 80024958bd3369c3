"""The Layer contract every layer and container follows.

A layer computes ``y = forward(x)`` and, given the upstream gradient ``dy``,
``dx = backward(dy)``. ``backward`` *adds* the parameter gradients into
``Parameter.grad`` (so a parameter used twice gets the sum).

Two things a forward pass must know, kept apart:

* ``training``: the layer's *mode*. Dropout drops and batch normalisation uses
  the batch's statistics only when it is True.
* ``keep_for_backward``: whether a backward pass will follow, so the layer
  keeps what backward needs (by default: only in training). Plain evaluation
  keeps nothing; the inspection tools ask for evaluation-mode semantics *with*
  a backward pass: ``forward(x, training=False, keep_for_backward=True)``.

Layers found by the walk
------------------------
Assigning a :class:`Layer` or a :class:`Parameter` to an attribute registers it,
as in PyTorch, so a user's own layer can hold sublayers and write its own
``forward`` and ``backward``::

    class Residual(Layer):
        def __init__(self, channels):
            super().__init__()
            self.conv = Conv2D(channels, channels, 3, padding=1)
            self.relu = ReLU()

        def forward(self, x, training=True, keep_for_backward=None):
            return x + self.relu.forward(self.conv.forward(x, training, keep_for_backward),
                                         training, keep_for_backward)

        def backward(self, dy, *, input_grad=True):
            return dy + self.conv.backward(self.relu.backward(dy))

:meth:`Layer.named_modules` is the one walk over the tree: parameters, state
dicts, the trainer, the pictures and the inspection tools all use it. A layer
object may appear only once in a tree (it keeps one forward pass for its
backward); tie weights by sharing a :class:`Parameter` between two layers.

Memory layout
-------------
Every array is *logically* NCHW. A convolution returns its output as a
transposed view of channel-major memory ``(C, N, H, W)`` (what its matrix
product produces), and element-wise layers and pooling keep that memory order,
so the next convolution reads it without a copy. Nothing depends on the memory
order but speed.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from minidl.parameter import Parameter

# Every concrete layer registers itself by class name, so a model can be rebuilt
# from its JSON description (see minidl.config) without importing anything by path.
LAYER_REGISTRY: dict[str, type["Layer"]] = {}


def keeps(training: bool, keep_for_backward: bool | None) -> bool:
    """Whether a forward pass keeps what backward needs: by default only in training."""
    return bool(training) if keep_for_backward is None else bool(keep_for_backward)


def is_channel_major(x: np.ndarray) -> bool:
    """True when a logically NCHW array lies in memory as ``(C, N, H, W)``."""
    return x.ndim == 4 and x.transpose(1, 0, 2, 3).flags.c_contiguous


def new_nchw(allocate: Callable[[tuple[int, ...], Any], np.ndarray],
             shape: tuple[int, int, int, int], dtype: Any, channel_major: bool) -> np.ndarray:
    """An array of logical shape ``(N, C, H, W)`` from ``allocate(shape, dtype)``
    (``np.zeros``, ``np.empty``, a per-thread work array), lying in memory as
    ``(C, N, H, W)`` if ``channel_major``."""
    if not channel_major:
        return allocate(shape, dtype)
    n, c, h, w = shape
    return allocate((c, n, h, w), dtype).transpose(1, 0, 2, 3)


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


class Layer:
    """Base class: registration of parameters and sublayers, the tree walk, state dicts.

    Subclasses implement ``forward(x, training=True, keep_for_backward=None)``,
    ``backward(dy, *, input_grad=True)`` and ``get_config()`` (the constructor
    arguments, JSON-serialisable).
    """

    #: Prefix for automatic names in containers ("conv" -> conv1, conv2, ...).
    default_name = "layer"

    #: True when, in training, each example's output and gradients depend only on that
    #: example and the parameters (no batch statistics, no random draws), so a batch may
    #: be cut into shards (see :mod:`minidl.data_parallel`). False unless a layer says so.
    per_example = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LAYER_REGISTRY[cls.__name__] = cls

    def __init__(self) -> None:
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_children", {})
        self._cache: Any = None
        self.name: str | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if "_params" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attribute {name!r}")
        params, children, buffers = self._params, self._children, self._buffers
        if isinstance(value, Parameter):
            children.pop(name, None)
            params[name] = value
        elif isinstance(value, Layer):
            params.pop(name, None)
            children[name] = value
            if value.name is None:
                value.name = name
        elif name in buffers:
            buffers[name] = value
        elif name in params or name in children:
            # e.g. ``self.bias = None``: the attribute no longer holds a parameter.
            params.pop(name, None)
            children.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._params, self._children, self._buffers):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """A non-trainable array saved in the state dict (batch-norm running statistics)."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    # -- computation --------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """Gradient with respect to the input; adds parameter gradients.

        ``input_grad=False`` skips the input gradient (returns None): a container
        asks this of its first layer when nobody needs the gradient of the data.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement backward()")

    def __call__(self, x: np.ndarray, training: bool = True,
                 keep_for_backward: bool | None = None) -> np.ndarray:
        return self.forward(x, training=training, keep_for_backward=keep_for_backward)

    # -- the tree -----------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Layer"]]:
        """Direct sublayers, in the order they were assigned (containers: their order)."""
        yield from list(self._children.items())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Layer"]]:
        """This layer (named ``prefix``) and every layer below it, depth first, dotted names.

        Raises ``ValueError`` if one layer object appears twice in the tree: it
        would keep only one of its two forward passes, and its gradients would
        be silently wrong.
        """
        seen: dict[int, str] = {}

        def walk(layer: Layer, name: str) -> Iterator[tuple[str, Layer]]:
            if id(layer) in seen:
                raise ValueError(
                    f"{self.label()}: expected each layer object once in the model, received "
                    f"{layer!r} at both '{seen[id(layer)] or '(the model)'}' and '{name}' "
                    f"(a layer keeps one forward pass for its backward; build a second layer, "
                    f"or share its Parameters to tie weights)")
            seen[id(layer)] = name
            yield name, layer
            for child_name, child in layer.named_children():
                yield from walk(child, _join(name, child_name))

        yield from walk(self, prefix)

    def modules(self) -> list["Layer"]:
        return [layer for _, layer in self.named_modules()]

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter of the tree once, by dotted name (a tied one under its first name)."""
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._params.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield _join(module_name, name), param

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._buffers.items():
                yield _join(module_name, name), buffer

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def num_parameters(self) -> int:
        """Trainable entries, each tied parameter once (entries a connection table removes
        are not counted)."""
        return sum(p.size for p in self.parameters())

    # -- state --------------------------------------------------------------
    def _state_entries(self) -> Iterator[tuple[str, Any]]:
        """(name, Parameter or buffer) for every entry, tied parameters under each name.

        The order is PyTorch's: a layer's parameters, then its buffers, then its sublayers'.
        """
        for module_name, module in self.named_modules():
            for name, param in module._params.items():
                yield _join(module_name, name), param
            for name, buffer in module._buffers.items():
                yield _join(module_name, name), buffer

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed by PyTorch's dotted names."""
        return {name: np.array(entry.data if isinstance(entry, Parameter) else entry, copy=True)
                for name, entry in self._state_entries()}

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers in place, after checking every entry.

        Nothing is written unless every name and shape matches (with
        ``strict=False`` extra and missing names are allowed).
        """
        own = dict(self._state_entries())
        if not isinstance(state, dict):
            raise ValueError(f"{self.label()}: expected a state dict (a dict of arrays), "
                             f"received {type(state).__name__}")
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            raise ValueError(
                f"{self.label()}: state dict does not match the model: "
                f"missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}")
        for name, entry in own.items():
            if name not in state:
                continue
            target = entry.data if isinstance(entry, Parameter) else np.asarray(entry)
            value = np.asarray(state[name])
            if value.shape != target.shape:
                raise ValueError(f"{self.label()}: entry '{name}': expected shape "
                                 f"{target.shape}, received {value.shape}")
            if value.dtype.kind not in "fiu":
                raise ValueError(f"{self.label()}: entry '{name}': expected a numeric array, "
                                 f"received dtype {value.dtype}")
            if target.dtype.kind in "iu" and value.dtype.kind == "f":
                raise ValueError(f"{self.label()}: entry '{name}': expected an integer array, "
                                 f"received dtype {value.dtype}")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ValueError(f"{self.label()}: entry '{name}': expected finite values, "
                                 f"received NaN or infinity")
        for name, entry in own.items():
            if name in state:
                if isinstance(entry, Parameter):
                    entry.data[...] = state[name]
                    if entry.mask is not None:
                        entry.data *= entry.mask
                else:
                    entry[...] = state[name]

    # -- description --------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values."""
        return {}

    def label(self) -> str:
        """Short description used in error messages: ``conv2: Conv2D(in_channels=6, ...)``."""
        text = f"{type(self).__name__}({self._label_args()})"
        return f"{self.name}: {text}" if self.name else text

    def _label_args(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if k not in ("dtype", "weight_init"))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- helpers for subclasses ---------------------------------------------
    def _saved(self) -> Any:
        if self._cache is None:
            raise RuntimeError(
                f"{self.label()}: backward() needs a forward pass that kept what backward "
                f"needs: call forward() in training mode, or with keep_for_backward=True, first")
        return self._cache

    def _check_dy(self, dy: Any, expected: tuple[int, ...]) -> None:
        """Reject an upstream gradient that is not an array of the output's shape."""
        if not isinstance(dy, np.ndarray) or dy.shape != tuple(expected):
            got = dy.shape if isinstance(dy, np.ndarray) else type(dy).__name__
            raise ValueError(f"{self.label()}: expected a gradient of shape {tuple(expected)}, "
                             f"received {got}")
        if dy.dtype.kind != "f":
            raise ValueError(f"{self.label()}: expected a floating-point gradient, "
                             f"received dtype {dy.dtype}")

    def _check_float(self, x: Any, dtype: np.dtype | None = None) -> np.ndarray:
        """Reject non-arrays and non-float dtypes; with ``dtype``, require it exactly."""
        if not isinstance(x, np.ndarray):
            raise ValueError(
                f"{self.label()}: expected a NumPy array, received {type(x).__name__}")
        if x.dtype.kind != "f":
            want = np.dtype(dtype).name if dtype is not None else "a floating-point dtype"
            raise ValueError(
                f"{self.label()}: expected input of dtype {want}, received {x.dtype} "
                f"(convert with x.astype(np.float32), scaling images to [0, 1])")
        if dtype is not None and x.dtype != dtype:
            raise ValueError(
                f"{self.label()}: expected input of dtype {np.dtype(dtype).name} "
                f"(the layer's dtype), received {x.dtype}")
        return x

    def _check_images(self, x: Any, channels: int | None = None,
                      dtype: np.dtype | None = None) -> np.ndarray:
        """Reject anything but a non-empty float batch ``(N, C, H, W)`` (``C`` fixed if given)."""
        c = "C" if channels is None else str(channels)
        if not isinstance(x, np.ndarray) or x.ndim != 4 or (channels is not None
                                                            and x.shape[1] != channels):
            got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"{self.label()}: expected input of shape (N, {c}, H, W), "
                             f"received {got}")
        if x.shape[0] == 0:
            raise ValueError(f"{self.label()}: expected a batch of at least one image, "
                             f"received {x.shape}")
        return self._check_float(x, dtype)

