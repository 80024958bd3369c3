"""Argument checks shared by every part of minidl: one spelling of each rule.

Every check takes the value, the argument's name and an ``owner`` (the thing
being built or called, e.g. ``"Conv2D(in_channels=6, out_channels=16)"`` or
``"--lr"``) and either returns the value normalised or raises ``ValueError``
saying ``"<owner>: expected <what>, received <value>"``. Layers, initialisers,
optimizers, schedules, pictures and the command line all call these, so the
same mistake gets the same message wherever it is made.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

__all__ = ["describe", "integer", "real", "boolean", "pair", "float_dtype", "rng_from",
           "connection_table", "one_of", "index"]


def describe(value: Any) -> str:
    """``repr`` of a value, with its type when the repr alone could mislead (``'3'`` vs ``3``)."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    if isinstance(value, (bool, np.bool_, str)) or not isinstance(value, (int, float, np.number)):
        return f"{text} ({type(value).__name__})"
    return text


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(value: Any, name: str, owner: str, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """``value`` as a Python int within ``[minimum, maximum]`` (bools are refused)."""
    if not _is_int(value):
        raise ValueError(f"{owner}: expected {name} to be an integer, received {describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: expected {name} >= {minimum}, received {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{owner}: expected {name} <= {maximum}, received {value}")
    return value


def real(value: Any, name: str, owner: str, minimum: float | None = None,
         maximum: float | None = None, *, strict_min: bool = False,
         strict_max: bool = False) -> float:
    """``value`` as a finite Python float within the given bounds (bools are refused).

    ``strict_min``/``strict_max`` exclude the bound itself (``lr > 0``, ``p < 1``).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise ValueError(f"{owner}: expected {name} to be a real number, "
                         f"received {describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: expected a finite {name}, received {value!r}")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        raise ValueError(f"{owner}: expected {name} {'>' if strict_min else '>='} {minimum:g}, "
                         f"received {value!r}")
    if maximum is not None and (value >= maximum if strict_max else value > maximum):
        raise ValueError(f"{owner}: expected {name} {'<' if strict_max else '<='} {maximum:g}, "
                         f"received {value!r}")
    return value


def boolean(value: Any, name: str, owner: str) -> bool:
    """``value`` as a bool; 0, 1, "yes" and the like are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: expected {name} to be a bool, received {describe(value)}")
    return bool(value)


def pair(value: Any, name: str, owner: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``minimum``, as a pair (``kernel_size=5`` -> (5, 5))."""
    if _is_int(value):
        out = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        out = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{owner}: expected {name} as an int or a pair of ints, "
                         f"received {describe(value)}")
    if min(out) < minimum:
        raise ValueError(f"{owner}: expected {name} >= {minimum}, received {value!r}")
    return out


def float_dtype(value: Any, owner: str, name: str = "dtype") -> np.dtype:
    """A floating-point NumPy dtype; ``None`` is refused (``np.dtype(None)`` is float64)."""
    if value is None:
        raise ValueError(f"{owner}: expected {name} to be a floating-point dtype such as "
                         f"np.float32, received None")
    try:
        result = np.dtype(value)
    except TypeError:
        raise ValueError(f"{owner}: expected {name} to be a floating-point dtype, "
                         f"received {describe(value)}") from None
    if result.kind != "f":
        raise ValueError(f"{owner}: expected {name} to be a floating-point dtype, "
                         f"received {result}")
    return result


def rng_from(value: Any, owner: str, name: str = "rng") -> np.random.Generator:
    """A NumPy Generator from a Generator, an int seed (not a bool) or None (fresh entropy)."""
    if isinstance(value, np.random.Generator):
        return value
    if value is None or _is_int(value):
        if value is not None and value < 0:
            raise ValueError(f"{owner}: expected {name} seed >= 0, received {value}")
        return np.random.default_rng(value)
    raise ValueError(f"{owner}: expected {name} to be a numpy Generator, an int seed or None, "
                     f"received {describe(value)}")


def connection_table(value: Any, shape: tuple[int, ...], owner: str,
                     name: str = "connection table", axes: str = "") -> np.ndarray:
    """A boolean array of exactly ``shape``; 0/1 integers are accepted, anything else refused.

    ``axes`` names the dimensions in messages, e.g. ``"(out_channels, in_channels)"``.
    """
    table = np.asarray(value)
    if table.dtype != bool:
        if table.dtype.kind not in "iu":
            raise ValueError(f"{owner}: expected a boolean {name} (or 0/1 integers), "
                             f"received dtype {table.dtype}")
        if not np.isin(table, (0, 1)).all():
            raise ValueError(f"{owner}: expected a boolean {name} (or 0/1 integers), "
                             f"received integers other than 0 and 1")
        table = table.astype(bool)
    if table.shape != tuple(shape):
        raise ValueError(f"{owner}: expected a {name} of shape {tuple(shape)}"
                         f"{' ' + axes if axes else ''}, received {table.shape}")
    return table


def one_of(value: Any, choices: Any, name: str, owner: str) -> Any:
    """``value`` if it is one of ``choices`` (compared with ==)."""
    options = list(choices)
    if not any(value == c and type(value) is type(c) for c in options):
        raise ValueError(f"{owner}: expected {name} to be one of "
                         f"{', '.join(repr(c) for c in options)}, received {describe(value)}")
    return value


def index(value: Any, name: str, owner: str, size: int) -> int:
    """An integer index into ``range(size)``."""
    try:
        result = operator.index(value)
    except TypeError:
        raise ValueError(f"{owner}: expected {name} to be an integer, "
                         f"received {describe(value)}") from None
    if isinstance(value, (bool, np.bool_)) or not 0 <= result < size:
        raise ValueError(f"{owner}: expected {name} in 0..{size - 1}, received {value!r}")
    return result
