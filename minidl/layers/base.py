"""The Layer contract every layer and container follows.

A layer computes ``y = forward(x)`` and, given the upstream gradient ``dy``,
``dx = backward(dy)``. ``backward`` *adds* the parameter gradients into
``Parameter.grad`` (so a layer used twice gets the sum) and keeps from ``forward``
only what it needs.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from minidl.parameter import Parameter

# Every concrete layer registers itself by class name, so a model can be rebuilt
# from its JSON description (see minidl.config) without importing anything by path.
LAYER_REGISTRY: dict[str, type["Layer"]] = {}


class Layer:
    """Base class: parameters, state dicts, configs and input checks.

    Subclasses implement ``forward(x, training=True)``, ``backward(dy)`` and
    ``get_config()`` (the constructor arguments, JSON-serialisable).
    """

    #: Prefix for automatic names in containers ("conv" -> conv1, conv2, ...).
    default_name = "layer"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        LAYER_REGISTRY[cls.__name__] = cls

    def __init__(self) -> None:
        self._params: dict[str, Parameter] = {}
        self._cache: Any = None
        self.name: str | None = None

    # -- computation --------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """Gradient with respect to the input; adds parameter gradients.

        ``input_grad=False`` skips the input gradient (returns None): a container
        asks this of its first layer when nobody needs the gradient of the data.
        """
        raise NotImplementedError

    def __call__(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        return self.forward(x, training=training)

    # -- parameters ---------------------------------------------------------
    def add_parameter(self, name: str, param: Parameter) -> Parameter:
        self._params[name] = param
        return param

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, param in self._params.items():
            yield prefix + name, param

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def num_parameters(self) -> int:
        """Trainable entries (entries a connection table removes are not counted)."""
        return sum(p.size for p in self.parameters())

    # -- state --------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter array, keyed by dotted name."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into the parameters in place, after checking every entry.

        Nothing is written unless every name and shape matches (with
        ``strict=False`` extra and missing names are allowed).
        """
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            raise ValueError(
                f"{self.label()}: state dict does not match the model: "
                f"missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}")
        for name, param in own.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if value.shape != param.data.shape:
                raise ValueError(
                    f"{self.label()}: entry '{name}': expected shape {param.data.shape}, "
                    f"received {value.shape}")
            if value.dtype.kind not in "fiu":
                raise ValueError(
                    f"{self.label()}: entry '{name}': expected a numeric array, "
                    f"received dtype {value.dtype}")
        for name, param in own.items():
            if name in state:
                param.data[...] = state[name]
                if param.mask is not None:
                    param.data *= param.mask

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
            raise RuntimeError(f"{self.label()}: backward() called before forward()")
        return self._cache

    def _check_dy(self, dy: Any, expected: tuple[int, ...]) -> None:
        """Reject an upstream gradient that is not an array of the output's shape."""
        if not isinstance(dy, np.ndarray) or dy.shape != tuple(expected):
            got = dy.shape if isinstance(dy, np.ndarray) else type(dy).__name__
            raise ValueError(f"{self.label()}: expected a gradient of shape {tuple(expected)}, received {got}")
        if dy.dtype.kind != "f":
            raise ValueError(f"{self.label()}: expected a floating-point gradient, received dtype {dy.dtype}")

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


def pair(value: int | tuple[int, int] | list[int], what: str, owner: str,
         minimum: int) -> tuple[int, int]:
    """Normalise an int-or-pair argument and validate it (``kernel_size=5`` -> (5, 5))."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        out = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{owner}: expected {what} as an int or a pair of ints, received {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{owner}: expected {what} >= {minimum}, received {value!r}")
    return out


def float_dtype(dtype: Any, owner: str) -> np.dtype:
    """A layer's ``dtype`` argument as a floating-point NumPy dtype, or a clear error."""
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{owner}: expected a floating-point dtype, received {dtype!r}") from None
    if result.kind != "f":
        raise ValueError(f"{owner}: expected a floating-point dtype, received {result}")
    return result


def rng_from(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Accept a Generator, a seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise ValueError(f"expected rng to be a numpy Generator, an int seed or None, received {rng!r}")
