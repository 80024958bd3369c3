"""Weight initialisers aware of grouped convolutions and connection tables.

Weight layouts (PyTorch): a dense weight is ``(out_features, in_features)``; a
convolution weight is ``(out_channels, in_channels // groups, *kernel)`` with
one to three kernel dimensions.

Every initialiser has the signature::

    init(shape, *, rng=None, dtype=np.float32, groups=1, mask=None, gain=None) -> np.ndarray

and draws from a zero-mean normal or uniform distribution whose standard
deviation is ``gain / sqrt(fan)``:

=================  =============================  ===============
initialiser        ``fan``                        default ``gain``
=================  =============================  ===============
``he_*``           ``fan_in``                     ``sqrt(2)``
``glorot_*``       ``(fan_in + fan_out) / 2``     ``1``
``lecun_*``        ``fan_in``                     ``1``
=================  =============================  ===============

i.e. He ``sqrt(2 / fan_in)``, Glorot ``sqrt(2 / (fan_in + fan_out))`` and LeCun
``sqrt(1 / fan_in)``. The uniform variants draw from ``[-limit, limit]`` with
``limit = sqrt(3) * std`` (same variance). Passing ``gain`` replaces the
default multiplier (e.g. ``gain=sqrt(2 / (1 + a**2))`` for a leaky ReLU of
slope ``a`` with ``he_normal``).

With a connection ``mask`` the fans are computed per weight entry from the
connections that really exist (see :func:`fans`), and masked-out entries are
exactly ``0``.

Determinism: the numbers depend only on the generator's state, the shape and
the distribution; they are drawn in float64 and then rounded to ``dtype``, so
the same seed gives the same values (up to that rounding) for every dtype.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from minidl import checks
from minidl.parameter import Parameter

__all__ = [
    "fans",
    "he_normal",
    "he_uniform",
    "glorot_normal",
    "glorot_uniform",
    "lecun_normal",
    "lecun_uniform",
    "get",
    "names",
    "init_parameter",
]

Initializer = Callable[..., np.ndarray]


# ---------------------------------------------------------------------------
# argument checking
# ---------------------------------------------------------------------------

def _check_shape(shape: Any, owner: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        raise ValueError(f"{owner}: expected a weight shape with at least 2 dimensions "
                         f"((out, in) or (out, in_per_group, *kernel)), received {shape!r}")
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{owner}: expected a shape (tuple of ints), "
                         f"received {shape!r}") from None
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"{owner}: expected a shape of positive ints, received {shape!r}")
    dims = tuple(int(d) for d in dims)
    if not 2 <= len(dims) <= 5:
        raise ValueError(f"{owner}: expected a weight shape with 2 to 5 dimensions "
                         f"((out, in) or (out, in_per_group, *kernel)), received {dims}")
    return dims


def _check_groups(groups: Any, shape: tuple[int, ...], owner: str) -> int:
    groups = checks.integer(groups, "groups", owner, minimum=1)
    if shape[0] % groups:
        raise ValueError(f"{owner}: expected out_channels (shape[0] = {shape[0]}) to be "
                         f"divisible by groups, received groups={groups}")
    return groups


def _check_mask(mask: Any, shape: tuple[int, ...], groups: int, owner: str) -> np.ndarray:
    """Return the mask as a boolean array of the full weight ``shape``."""
    if groups != 1:
        raise ValueError(f"{owner}: expected groups=1 with a connection mask, "
                         f"received groups={groups}")
    table_shape = shape[:2]
    full = np.shape(mask) == shape and len(shape) > 2
    table = checks.connection_table(mask, shape if full else table_shape, owner, "mask",
                                    "(a connection table, or the full weight shape)")
    if full:
        return table
    return np.broadcast_to(table.reshape(table_shape + (1,) * (len(shape) - 2)), shape)


def _check_gain(gain: Any, default: float, owner: str) -> float:
    if gain is None:
        return default
    return checks.real(gain, "gain", owner, minimum=0.0, strict_min=True)


# ---------------------------------------------------------------------------
# fans
# ---------------------------------------------------------------------------

def fans(shape: Sequence[int], groups: int = 1,
         mask: np.ndarray | None = None) -> tuple[Any, Any]:
    """Fan-in and fan-out of a dense or convolution weight.

    Parameters
    ----------
    shape : tuple of int
        ``(out, in)`` for a dense weight, ``(out, in_per_group, *kernel)``
        (1 to 3 kernel dimensions) for a convolution weight.
    groups : int, default 1
        Number of convolution groups; ``shape[0]`` must be divisible by it.
    mask : array of bool, optional
        Connection mask (requires ``groups == 1``): either a table of shape
        ``(out, in)`` (True where output ``o`` reads input ``i``) or a mask of
        the full weight shape (e.g. ``Parameter.mask``).

    Returns
    -------
    fan_in, fan_out
        Without a mask, two ints: ``fan_in = in_per_group * receptive`` and
        ``fan_out = (out // groups) * receptive``, with ``receptive`` the
        product of the kernel dimensions (1 for a dense weight).

        With a mask, two int arrays broadcastable to ``shape``: ``fan_in`` of
        shape ``(out, 1, ...)`` holds, per output, the number of connected
        weights it reads (for a table: number of inputs read * receptive);
        ``fan_out`` of shape ``(1, in, ...)`` holds, per input, the number of
        connected weights reading it (number of outputs reading it *
        receptive). An output that reads nothing has ``fan_in == 0``.

    Raises
    ------
    ValueError
        On a malformed shape, ``groups`` not dividing ``shape[0]``, a mask with
        ``groups != 1``, or a mask of the wrong shape or dtype.
    """
    owner = "fans"
    dims = _check_shape(shape, owner)
    groups = _check_groups(groups, dims, owner)
    receptive = math.prod(dims[2:])
    if mask is None:
        return dims[1] * receptive, (dims[0] // groups) * receptive
    full = _check_mask(mask, dims, groups, owner)
    fan_in = full.sum(axis=tuple(range(1, len(dims))), keepdims=True, dtype=np.int64)
    fan_out = full.sum(axis=(0,) + tuple(range(2, len(dims))), keepdims=True, dtype=np.int64)
    return fan_in, fan_out


# ---------------------------------------------------------------------------
# initialisers
# ---------------------------------------------------------------------------

def _std(kind: str, fan_in: Any, fan_out: Any, gain: float) -> Any:
    """``gain / sqrt(fan)``; 0 where the fan is 0 (entries that are masked out)."""
    fan = np.asarray(fan_in if kind == "fan_in" else (fan_in + fan_out) / 2.0, dtype=np.float64)
    with np.errstate(divide="ignore"):
        std = np.where(fan > 0, gain / np.sqrt(np.where(fan > 0, fan, 1.0)), 0.0)
    return std if std.ndim else float(std)


def _make(name: str, kind: str, default_gain: float, distribution: str,
          formula: str) -> Initializer:
    def initializer(shape: Sequence[int], *, rng: np.random.Generator | int | None = None,
                    dtype: Any = np.float32, groups: int = 1, mask: np.ndarray | None = None,
                    gain: float | None = None) -> np.ndarray:
        dims = _check_shape(shape, name)
        groups_ = _check_groups(groups, dims, name)
        full = _check_mask(mask, dims, groups_, name) if mask is not None else None
        dt = checks.float_dtype(dtype, name)
        gain_ = _check_gain(gain, default_gain, name)
        gen = checks.rng_from(rng, name)
        fan_in, fan_out = fans(dims, groups_, full)
        std = _std(kind, fan_in, fan_out, gain_)
        if distribution == "normal":
            values = gen.standard_normal(dims) * std
        else:
            values = gen.uniform(-1.0, 1.0, dims) * (math.sqrt(3.0) * std)
        if full is not None:
            values = np.where(full, values, 0.0)
        return values.astype(dt)

    initializer.__name__ = initializer.__qualname__ = name
    dist_text = ("a normal distribution N(0, std**2)" if distribution == "normal" else
                 "a uniform distribution U(-limit, limit), limit = sqrt(3) * std")
    initializer.__doc__ = f"""Draw a weight from {dist_text}, with {formula}.

    Parameters
    ----------
    shape : tuple of int
        ``(out, in)`` or ``(out, in_per_group, *kernel)``.
    rng : numpy.random.Generator or int, optional
        Source of randomness (an int is used as a seed). ``None`` uses a fresh,
        unseeded generator (not reproducible).
    dtype : floating dtype, default float32
        Values are drawn in float64 and rounded to this dtype.
    groups : int, default 1
        Convolution groups (used for the fans).
    mask : array of bool, optional
        Connection table ``(out, in)`` or full-shape mask (``groups`` must be
        1). Fans are computed per entry from the real connections (see
        :func:`fans`) and masked-out entries are exactly 0.
    gain : float, optional
        Replaces the default gain ({default_gain:.6g}) in ``std = gain / sqrt(fan)``.

    Returns
    -------
    np.ndarray
        A new array of the given shape and dtype.
    """
    return initializer


_SQRT2 = math.sqrt(2.0)
he_normal = _make("he_normal", "fan_in", _SQRT2, "normal", "std = sqrt(2 / fan_in)")
he_uniform = _make("he_uniform", "fan_in", _SQRT2, "uniform", "std = sqrt(2 / fan_in)")
glorot_normal = _make("glorot_normal", "fan_avg", 1.0, "normal",
                      "std = sqrt(2 / (fan_in + fan_out))")
glorot_uniform = _make("glorot_uniform", "fan_avg", 1.0, "uniform",
                       "std = sqrt(2 / (fan_in + fan_out))")
lecun_normal = _make("lecun_normal", "fan_in", 1.0, "normal", "std = sqrt(1 / fan_in)")
lecun_uniform = _make("lecun_uniform", "fan_in", 1.0, "uniform", "std = sqrt(1 / fan_in)")

_REGISTRY: dict[str, Initializer] = {f.__name__: f for f in (
    he_normal, he_uniform, glorot_normal, glorot_uniform, lecun_normal, lecun_uniform)}


def names() -> list[str]:
    """The names accepted by :func:`get`, sorted."""
    return sorted(_REGISTRY)


def get(name: str | Initializer) -> Initializer:
    """Look an initialiser up by name (for model configs).

    Parameters
    ----------
    name : str or callable
        One of :func:`names` (``"he_normal"``, ``"glorot_uniform"``, ...;
        case-insensitive). A callable is returned unchanged.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if callable(name):
        return name
    if isinstance(name, str) and name.lower() in _REGISTRY:
        return _REGISTRY[name.lower()]
    raise ValueError(f"init.get: expected one of {names()}, received {name!r}")


def init_parameter(param: Parameter, method: str | Initializer = "he_normal", *,
                   rng: np.random.Generator | int | None = None, groups: int = 1,
                   gain: float | None = None) -> Parameter:
    """Fill a :class:`Parameter`'s data in place, honouring its ``mask``.

    The array object is kept (``param.data[...] = values``) and its dtype is
    used. ``param.grad`` is not touched.

    Parameters
    ----------
    param : Parameter
    method : str or callable, default "he_normal"
        Name understood by :func:`get`, or an initialiser.
    rng, groups, gain
        As for the initialisers.

    Returns
    -------
    Parameter
        ``param`` itself.
    """
    if not isinstance(param, Parameter):
        raise ValueError(f"init_parameter: expected a Parameter, "
                         f"received {type(param).__name__}")
    fn = get(method)
    param.data[...] = fn(param.data.shape, rng=rng, dtype=param.data.dtype, groups=groups,
                         mask=param.mask, gain=gain)
    return param
