"""Optimizers and learning-rate schedules.

Optimizers
----------
:class:`SGD` (with momentum, Nesterov momentum and L2 weight decay), :class:`Adam`
(L2 weight decay added to the gradient) and :class:`AdamW` (decoupled weight
decay). The update rules follow PyTorch's ``torch.optim`` exactly (single
parameter group, ``dampening=0``, no ``amsgrad``/``maximize``).

All updates happen **in place** on ``p.data`` (layers hold references to those
arrays, so they are never rebound) and are computed in the parameter's own dtype:
a float32 parameter and its optimizer buffers stay float32. For a parameter with
a ``mask`` the gradient is masked before it enters any buffer and the masked-out
entries of ``p.data`` are set to exactly ``0`` after every update, so
structurally-zero weights stay zero under momentum and weight decay. ``p.grad``
is only read, never modified.

State-dict format
-----------------
``Optimizer.state_dict()`` returns a dict with exactly two entries, designed to
be stored without pickle (e.g. the arrays with ``np.savez`` and the scalars with
``json``)::

    {
        "arrays":  {"<buffer>.<index>": np.ndarray, ...},
        "scalars": {"type": "SGD", "num_params": 3, "step": 10, "lr": 0.1,
                    "momentum": 0.9, "nesterov": False, "weight_decay": 0.0},
    }

``<index>`` is the position of the parameter in the list given to the
optimizer; the buffer names are ``momentum`` (SGD, present once a step has been
taken with ``momentum > 0``) and ``exp_avg`` / ``exp_avg_sq`` (Adam, AdamW,
always present). Every scalar is a plain ``int``, ``float``, ``bool``, ``str`` or
list of floats (Adam's ``betas``), so ``json.dumps(state["scalars"])`` works. The
arrays are copies: later steps do not modify a saved state.

``load_state_dict`` checks everything (optimizer type, number of parameters,
scalar names and values, buffer names, shapes and dtypes) before changing
anything, then restores the step count, the learning rate, the
hyper-parameters and copies of the buffers, so that training resumed from a
saved state is bit-identical to an uninterrupted run.

Learning-rate schedules
-----------------------
:class:`StepLR`, :class:`CosineLR` and :class:`LinearWarmup` work with any
:class:`Optimizer`: they only set ``optimizer.lr``. The schedule's counter
starts at 0 and the optimizer's ``lr`` is set to the step-0 value when the
schedule is built. Call ``scheduler.step()`` once per unit of the schedule
(usually once per iteration, *after* ``optimizer.step()``; or once per epoch,
in which case ``step_size`` / ``total_steps`` count epochs)::

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = CosineLR(opt, total_steps=1000, warmup_steps=50)
    for batch in batches:
        opt.zero_grad()
        ...  # forward + backward
        opt.step()
        sched.step()
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from minidl.parameter import Parameter

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "LRScheduler",
    "StepLR",
    "CosineLR",
    "LinearWarmup",
]


# ---------------------------------------------------------------------------
# scalar validation helpers
# ---------------------------------------------------------------------------

def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _real(name: str, value: Any, *, owner: str, minimum: float | None = None,
          strict: bool = False, maximum: float | None = None,
          strict_max: bool = False) -> float:
    """Return ``value`` as a finite Python float, checking its bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise ValueError(f"{owner}: expected {name} to be a real number, "
                         f"received {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: expected a finite {name}, received {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{owner}: expected {name} {'>' if strict else '>='} {minimum}, "
                         f"received {value!r}")
    if maximum is not None and (value >= maximum if strict_max else value > maximum):
        raise ValueError(f"{owner}: expected {name} {'<' if strict_max else '<='} {maximum}, "
                         f"received {value!r}")
    return value


def _integer(name: str, value: Any, *, owner: str, minimum: int) -> int:
    """Return ``value`` as a Python int >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{owner}: expected {name} to be an integer, "
                         f"received {_describe(value)}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{owner}: expected {name} >= {minimum}, received {value}")
    return value


def _boolean(name: str, value: Any, *, owner: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: expected {name} to be a bool, received {_describe(value)}")
    return bool(value)


# ---------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------

class Optimizer:
    """Base class of the optimizers.

    Subclasses define ``_buffer_names`` and ``_hyper_names``, implement
    ``_validate_hyper`` (check and normalise hyper-parameters),
    ``_expected_buffers`` (which buffers exist for a given state) and
    ``_update`` (the in-place update of one parameter).

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to optimise. Must be non-empty, contain only
        :class:`~minidl.parameter.Parameter` objects and no duplicates. The
        order defines the indices used in :meth:`state_dict`.
    lr : float
        Learning rate, finite and > 0. The attribute ``lr`` may later be set
        to any finite value >= 0 (learning-rate schedules do so).

    Attributes
    ----------
    params : list of Parameter
    lr : float
    step_count : int
        Number of calls to :meth:`step` so far.
    """

    _buffer_names: tuple[str, ...] = ()
    _hyper_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        owner = type(self).__name__
        if isinstance(params, Parameter):
            raise ValueError(f"{owner}: expected an iterable of Parameter, "
                             f"received a single {params!r}; wrap it in a list")
        try:
            params = list(params)
        except TypeError:
            raise ValueError(f"{owner}: expected an iterable of Parameter, "
                             f"received {_describe(params)}") from None
        if not params:
            raise ValueError(f"{owner}: expected a non-empty iterable of Parameter, "
                             f"received an empty one")
        seen: dict[int, int] = {}
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise ValueError(f"{owner}: expected every item of params to be a Parameter, "
                                 f"received {type(p).__name__} at index {i}")
            if id(p) in seen:
                raise ValueError(f"{owner}: expected distinct parameters, received {p!r} "
                                 f"twice (indices {seen[id(p)]} and {i})")
            seen[id(p)] = i
        self.params: list[Parameter] = params
        self._lr = _real("lr", lr, owner=owner, minimum=0.0, strict=True)
        self.step_count: int = 0
        self._buffers: dict[str, list[np.ndarray | None]] = {
            name: [None] * len(params) for name in self._buffer_names}

    # -- learning rate ------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate used by the next :meth:`step`."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _real("lr", value, owner=type(self).__name__, minimum=0.0)

    # -- training -----------------------------------------------------------
    def zero_grad(self) -> None:
        """Set the gradient of every parameter to zero (in place)."""
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        """Apply one update to every parameter, in place, from its ``grad``."""
        self.step_count += 1
        for i, p in enumerate(self.params):
            if p.grad.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}: expected the gradient of {p!r} "
                                 f"(index {i}) to have shape {p.data.shape}, "
                                 f"received {p.grad.shape}")
            grad = p.grad
            if p.mask is not None:
                grad = grad * p.mask            # new array; p.grad is left untouched
            if grad.dtype != p.data.dtype:
                grad = grad.astype(p.data.dtype)
            self._update(i, p, grad)
            if p.mask is not None:
                np.putmask(p.data, ~p.mask, 0)

    def _update(self, index: int, p: Parameter, grad: np.ndarray) -> None:
        raise NotImplementedError

    # -- hyper-parameters -----------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The hyper-parameters other than ``lr``, as JSON-able values."""
        return {name: getattr(self, name) for name in self._hyper_names}

    @classmethod
    def _validate_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        return dict(values)

    def _expected_buffers(self, hyper: dict[str, Any], step_count: int) -> set[str]:
        """Buffer names (without index) that exist for the given state."""
        return set(self._buffer_names)

    # -- checkpointing ----------------------------------------------------------
    def state_dict(self) -> dict[str, dict[str, Any]]:
        """Return the optimizer's state (see the module docstring for the format).

        Returns
        -------
        dict
            ``{"arrays": {"<buffer>.<index>": np.ndarray}, "scalars": {...}}``;
            the arrays are copies and the scalars are JSON-serialisable.
        """
        arrays: dict[str, np.ndarray] = {}
        for name, bufs in self._buffers.items():
            for i, buf in enumerate(bufs):
                if buf is not None:
                    arrays[f"{name}.{i}"] = buf.copy()
        scalars: dict[str, Any] = {
            "type": type(self).__name__,
            "num_params": len(self.params),
            "step": self.step_count,
            "lr": self._lr,
        }
        scalars.update(self.hyperparameters())
        return {"arrays": arrays, "scalars": scalars}

    def load_state_dict(self, state: dict[str, dict[str, Any]]) -> None:
        """Restore a state produced by :meth:`state_dict`.

        Everything is validated before anything is changed. The learning rate,
        step count and hyper-parameters are taken from ``state`` (they replace
        the values given to the constructor); buffers are copied.

        Raises
        ------
        ValueError
            If the state has the wrong layout, comes from another optimizer
            type or another number of parameters, has missing or unexpected
            scalars or buffers, or a buffer of the wrong shape or dtype.
        """
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict) or set(state) != {"arrays", "scalars"}:
            got = sorted(state) if isinstance(state, dict) else _describe(state)
            raise ValueError(f"{owner}: expected a dict with keys ['arrays', 'scalars'], "
                             f"received {got}")
        arrays, scalars = state["arrays"], state["scalars"]
        for key, part in (("arrays", arrays), ("scalars", scalars)):
            if not isinstance(part, dict):
                raise ValueError(f"{owner}: expected state[{key!r}] to be a dict, "
                                 f"received {_describe(part)}")

        expected_scalars = {"type", "num_params", "step", "lr", *self._hyper_names}
        missing = sorted(expected_scalars - set(scalars))
        unexpected = sorted(set(scalars) - expected_scalars)
        if missing or unexpected:
            raise ValueError(f"{owner}: expected scalars {sorted(expected_scalars)}, "
                             f"received {sorted(scalars)} (missing {missing}, "
                             f"unexpected {unexpected})")
        if scalars["type"] != type(self).__name__:
            raise ValueError(f"{owner}: expected a state of optimizer type "
                             f"{type(self).__name__!r}, received {scalars['type']!r}")
        num_params = _integer("scalar 'num_params'", scalars["num_params"], owner=owner,
                              minimum=0)
        if num_params != len(self.params):
            raise ValueError(f"{owner}: expected a state for {len(self.params)} parameters "
                             f"(scalar 'num_params'), received {num_params}")
        step_count = _integer("scalar 'step'", scalars["step"], owner=owner, minimum=0)
        lr = _real("scalar 'lr'", scalars["lr"], owner=owner, minimum=0.0)
        hyper = type(self)._validate_hyper({n: scalars[n] for n in self._hyper_names})

        present = self._expected_buffers(hyper, step_count)
        expected_keys = {f"{name}.{i}" for name in present for i in range(len(self.params))}
        missing = sorted(expected_keys - set(arrays), key=_key_order)
        unexpected = sorted(set(arrays) - expected_keys, key=str)
        if missing or unexpected:
            raise ValueError(
                f"{owner}: expected {len(expected_keys)} buffers "
                f"({', '.join(sorted(present)) or 'none'} for each of the "
                f"{len(self.params)} parameters at step {step_count}), received "
                f"{len(arrays)} (missing {missing}, unexpected {unexpected})")
        new_buffers: dict[str, list[np.ndarray | None]] = {
            name: [None] * len(self.params) for name in self._buffer_names}
        for key in sorted(expected_keys, key=_key_order):
            name, index = key.rsplit(".", 1)
            p = self.params[int(index)]
            value = arrays[key]
            if not isinstance(value, np.ndarray):
                raise ValueError(f"{owner}: expected buffer {key!r} to be a numpy array, "
                                 f"received {type(value).__name__}")
            if value.shape != p.data.shape:
                raise ValueError(f"{owner}: expected buffer {key!r} to have shape "
                                 f"{p.data.shape} (parameter {p!r}), received {value.shape}")
            if value.dtype != p.data.dtype:
                raise ValueError(f"{owner}: expected buffer {key!r} to have dtype "
                                 f"{p.data.dtype} (parameter {p!r}), received {value.dtype}")
            new_buffers[name][int(index)] = value.copy()

        # everything checked: commit
        self._lr = lr
        self.step_count = step_count
        for name, value in hyper.items():
            setattr(self, name, value)
        self._buffers = new_buffers

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return (f"{type(self).__name__}({len(self.params)} parameters, lr={self._lr!r}"
                f"{', ' + hyper if hyper else ''})")


def _key_order(key: str) -> tuple[str, int]:
    name, _, index = key.rpartition(".")
    return (name, int(index)) if index.isdigit() else (key, -1)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and L2 weight decay.

    Same rule as ``torch.optim.SGD`` with ``dampening=0``::

        g = grad + weight_decay * p
        buf = g                      (first step)
        buf = momentum * buf + g     (later steps)
        g = g + momentum * buf       (nesterov)   or   g = buf   (plain momentum)
        p -= lr * g

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        Learning rate, finite and > 0.
    momentum : float, default 0
        Momentum factor, finite and >= 0.
    nesterov : bool, default False
        Use Nesterov momentum (requires ``momentum > 0``).
    weight_decay : float, default 0
        L2 penalty added to the gradient, finite and >= 0.
    """

    _buffer_names = ("momentum",)
    _hyper_names = ("momentum", "nesterov", "weight_decay")

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        hyper = self._validate_hyper(
            {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay})
        self.momentum: float = hyper["momentum"]
        self.nesterov: bool = hyper["nesterov"]
        self.weight_decay: float = hyper["weight_decay"]

    @classmethod
    def _validate_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        owner = cls.__name__
        momentum = _real("momentum", values["momentum"], owner=owner, minimum=0.0)
        nesterov = _boolean("nesterov", values["nesterov"], owner=owner)
        weight_decay = _real("weight_decay", values["weight_decay"], owner=owner, minimum=0.0)
        if nesterov and momentum == 0.0:
            raise ValueError(f"{owner}: expected momentum > 0 when nesterov=True, "
                             f"received momentum={momentum!r}")
        return {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}

    def _expected_buffers(self, hyper: dict[str, Any], step_count: int) -> set[str]:
        return {"momentum"} if hyper["momentum"] != 0.0 and step_count > 0 else set()

    def _update(self, index: int, p: Parameter, grad: np.ndarray) -> None:
        g = grad
        if self.weight_decay != 0.0:
            g = g + self.weight_decay * p.data
        if self.momentum != 0.0:
            bufs = self._buffers["momentum"]
            buf = bufs[index]
            if buf is None:
                buf = bufs[index] = np.array(g, copy=True)
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (``torch.optim.Adam``).

    At step ``t`` (starting at 1)::

        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
        Learning rate, finite and > 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, finite and >= 0.
    weight_decay : float, default 0
        L2 penalty added to the gradient, finite and >= 0.
    """

    _buffer_names = ("exp_avg", "exp_avg_sq")
    _hyper_names = ("betas", "eps", "weight_decay")
    _decoupled = False

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        hyper = self._validate_hyper({"betas": betas, "eps": eps, "weight_decay": weight_decay})
        self.betas: tuple[float, float] = hyper["betas"]
        self.eps: float = hyper["eps"]
        self.weight_decay: float = hyper["weight_decay"]
        for name in self._buffer_names:
            self._buffers[name] = [np.zeros_like(p.data) for p in self.params]

    @classmethod
    def _validate_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        owner = cls.__name__
        betas = values["betas"]
        if not isinstance(betas, (tuple, list, np.ndarray)) or len(betas) != 2:
            raise ValueError(f"{owner}: expected betas to be a pair (beta1, beta2), "
                             f"received {_describe(betas)}")
        b1 = _real("betas[0]", betas[0], owner=owner, minimum=0.0, maximum=1.0,
                   strict_max=True)
        b2 = _real("betas[1]", betas[1], owner=owner, minimum=0.0, maximum=1.0,
                   strict_max=True)
        eps = _real("eps", values["eps"], owner=owner, minimum=0.0)
        weight_decay = _real("weight_decay", values["weight_decay"], owner=owner, minimum=0.0)
        return {"betas": (b1, b2), "eps": eps, "weight_decay": weight_decay}

    def hyperparameters(self) -> dict[str, Any]:
        """``betas`` (as a list, the JSON form), ``eps`` and ``weight_decay``."""
        return {"betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def _update(self, index: int, p: Parameter, grad: np.ndarray) -> None:
        beta1, beta2 = self.betas
        t = self.step_count
        if self.weight_decay != 0.0:
            if self._decoupled:
                p.data *= 1.0 - self.lr * self.weight_decay
            else:
                grad = grad + self.weight_decay * p.data
        m = self._buffers["exp_avg"][index]
        v = self._buffers["exp_avg_sq"][index]
        m *= beta1
        m += (1.0 - beta1) * grad
        v *= beta2
        v += (1.0 - beta2) * (grad * grad)
        step_size = self.lr / (1.0 - beta1 ** t)
        denom = np.sqrt(v) / math.sqrt(1.0 - beta2 ** t)
        denom += self.eps
        p.data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``).

    Before the Adam update (without any L2 term in the gradient) the parameter
    is shrunk: ``p *= 1 - lr * weight_decay``.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 1e-2
        Decoupled decay coefficient, finite and >= 0.
    """

    _decoupled = True

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# ---------------------------------------------------------------------------
# learning-rate schedules
# ---------------------------------------------------------------------------

class LRScheduler:
    """Base class of the learning-rate schedules.

    A schedule is a function ``lr_at(t)`` of the number ``t`` of calls to
    :meth:`step` so far (``last_step``). The schedule remembers the
    optimizer's ``lr`` at construction as ``base_lr`` and immediately sets
    ``optimizer.lr = lr_at(0)``; each :meth:`step` increments ``last_step``
    and sets ``optimizer.lr = lr_at(last_step)``. Values are computed in
    closed form (not by repeated multiplication), so they do not drift.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose ``lr`` attribute is driven.
    """

    _hyper_names: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"{type(self).__name__}: expected an Optimizer, "
                             f"received {_describe(optimizer)}")
        self.optimizer = optimizer
        self.base_lr: float = optimizer.lr
        self.last_step: int = 0

    def _start(self) -> None:
        """Called by subclasses at the end of ``__init__``: apply ``lr_at(0)``."""
        self.optimizer.lr = self.lr_at(0)

    def lr_at(self, step: int) -> float:
        """The learning rate after ``step`` calls to :meth:`step`."""
        raise NotImplementedError

    def get_lr(self) -> float:
        """The current learning rate, ``lr_at(last_step)``."""
        return self.lr_at(self.last_step)

    def step(self) -> float:
        """Advance the schedule by one unit and set the optimizer's ``lr``.

        Returns
        -------
        float
            The new learning rate.
        """
        self.last_step += 1
        lr = self.get_lr()
        self.optimizer.lr = lr
        return lr

    def hyperparameters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._hyper_names}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: type, ``base_lr``, ``last_step`` and the settings."""
        state: dict[str, Any] = {"type": type(self).__name__, "base_lr": self.base_lr,
                                 "last_step": self.last_step}
        state.update(self.hyperparameters())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` and set the optimizer's ``lr``.

        The schedule's settings are taken from ``state`` (they replace those
        given to the constructor).
        """
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict):
            raise ValueError(f"{owner}: expected a dict, received {_describe(state)}")
        expected = {"type", "base_lr", "last_step", *self._hyper_names}
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"{owner}: expected keys {sorted(expected)}, received "
                             f"{sorted(state)} (missing {missing}, unexpected {unexpected})")
        if state["type"] != type(self).__name__:
            raise ValueError(f"{owner}: expected a state of schedule type "
                             f"{type(self).__name__!r}, received {state['type']!r}")
        base_lr = _real("'base_lr'", state["base_lr"], owner=owner, minimum=0.0, strict=True)
        last_step = _integer("'last_step'", state["last_step"], owner=owner, minimum=0)
        hyper = self._validate_hyper({n: state[n] for n in self._hyper_names}, base_lr)
        self.base_lr = base_lr
        self.last_step = last_step
        for name, value in hyper.items():
            setattr(self, name, value)
        self.optimizer.lr = self.get_lr()

    def _validate_hyper(self, values: dict[str, Any], base_lr: float) -> dict[str, Any]:
        return dict(values)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return (f"{type(self).__name__}(base_lr={self.base_lr!r}, last_step={self.last_step}"
                f"{', ' + hyper if hyper else ''})")


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    ``lr_at(t) = base_lr * gamma ** (t // step_size)``.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Number of :meth:`step` calls between decays, >= 1.
    gamma : float, default 0.1
        Decay factor, finite and > 0.
    """

    _hyper_names = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        hyper = self._validate_hyper({"step_size": step_size, "gamma": gamma}, self.base_lr)
        self.step_size: int = hyper["step_size"]
        self.gamma: float = hyper["gamma"]
        self._start()

    def _validate_hyper(self, values: dict[str, Any], base_lr: float) -> dict[str, Any]:
        owner = type(self).__name__
        return {"step_size": _integer("step_size", values["step_size"], owner=owner, minimum=1),
                "gamma": _real("gamma", values["gamma"], owner=owner, minimum=0.0,
                               strict=True)}

    def lr_at(self, step: int) -> float:
        return self.base_lr * self.gamma ** (step // self.step_size)


class CosineLR(LRScheduler):
    """Linear warm-up followed by a cosine decay to ``min_lr``.

    With ``W = warmup_steps`` and ``T = total_steps``::

        lr_at(t) = base_lr * (t + 1) / W                                   for t < W
        lr_at(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - W) / (T - W))) / 2
                                                                           for W <= t <= T
        lr_at(t) = min_lr                                                  for t > T

    So the first update already uses ``base_lr / W`` (no wasted step), the
    warm-up reaches ``base_lr`` at ``t = W - 1``, the decay starts from
    ``base_lr`` at ``t = W`` and ends exactly at ``min_lr`` at ``t = T``.

    Parameters
    ----------
    optimizer : Optimizer
        Its current ``lr`` is the peak learning rate ``base_lr``.
    total_steps : int
        ``T``, >= 1 and > ``warmup_steps``.
    warmup_steps : int, default 0
        ``W``, >= 0.
    min_lr : float, default 0
        Final learning rate, in ``[0, base_lr]``.
    """

    _hyper_names = ("total_steps", "warmup_steps", "min_lr")

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int = 0,
                 min_lr: float = 0.0) -> None:
        super().__init__(optimizer)
        hyper = self._validate_hyper(
            {"total_steps": total_steps, "warmup_steps": warmup_steps, "min_lr": min_lr},
            self.base_lr)
        self.total_steps: int = hyper["total_steps"]
        self.warmup_steps: int = hyper["warmup_steps"]
        self.min_lr: float = hyper["min_lr"]
        self._start()

    def _validate_hyper(self, values: dict[str, Any], base_lr: float) -> dict[str, Any]:
        owner = type(self).__name__
        total = _integer("total_steps", values["total_steps"], owner=owner, minimum=1)
        warmup = _integer("warmup_steps", values["warmup_steps"], owner=owner, minimum=0)
        if warmup >= total:
            raise ValueError(f"{owner}: expected warmup_steps < total_steps ({total}), "
                             f"received {warmup}")
        min_lr = _real("min_lr", values["min_lr"], owner=owner, minimum=0.0,
                       maximum=base_lr)
        return {"total_steps": total, "warmup_steps": warmup, "min_lr": min_lr}

    def lr_at(self, step: int) -> float:
        w, t_total = self.warmup_steps, self.total_steps
        if step < w:
            return self.base_lr * (step + 1) / w
        if step >= t_total:
            return self.min_lr
        progress = (step - w) / (t_total - w)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LinearWarmup(LRScheduler):
    """Linear warm-up, then a constant learning rate.

    ``lr_at(t) = base_lr * (t + 1) / warmup_steps`` for ``t < warmup_steps``,
    ``base_lr`` afterwards.

    Parameters
    ----------
    optimizer : Optimizer
    warmup_steps : int
        >= 1.
    """

    _hyper_names = ("warmup_steps",)

    def __init__(self, optimizer: Optimizer, warmup_steps: int) -> None:
        super().__init__(optimizer)
        hyper = self._validate_hyper({"warmup_steps": warmup_steps}, self.base_lr)
        self.warmup_steps: int = hyper["warmup_steps"]
        self._start()

    def _validate_hyper(self, values: dict[str, Any], base_lr: float) -> dict[str, Any]:
        return {"warmup_steps": _integer("warmup_steps", values["warmup_steps"],
                                         owner=type(self).__name__, minimum=1)}

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        return self.base_lr
