"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam and AdamW.

The update rules follow PyTorch's ``torch.optim`` exactly (one parameter
group, ``dampening=0``, no ``amsgrad``/``maximize``), to the last bit in float64.

All updates happen **in place** on ``p.data`` (layers hold references to those
arrays, so they are never rebound) and are computed in the parameter's own dtype:
a float32 parameter and its optimizer buffers stay float32. For a parameter with
a ``mask`` the gradient is masked before it enters any buffer and the masked-out
entries of ``p.data`` are set to exactly ``0`` after every update, so
structurally-zero weights stay zero under momentum and weight decay. ``p.grad``
is only read, never modified.

Learning-rate schedules live in :mod:`minidl.schedules`; they set ``optimizer.lr``.

State-dict format
-----------------
``Optimizer.state_dict()`` returns two entries, designed to be stored without
pickle (the arrays with ``np.savez``, the scalars with ``json``)::

    {
        "arrays":  {"<buffer>.<index>": np.ndarray, ...},
        "scalars": {"type": "SGD", "num_params": 3, "step": 10, "lr": 0.1,
                    "momentum": 0.9, "nesterov": False, "weight_decay": 0.0},
    }

``<index>`` is the position of the parameter in the list given to the
optimizer. The buffers exist from construction on: ``momentum`` for SGD with
``momentum > 0``, ``exp_avg`` and ``exp_avg_sq`` for Adam and AdamW. (A zero
momentum buffer gives exactly PyTorch's first step, ``buf = g``.) Every scalar is
a plain ``int``, ``float``, ``bool``, ``str`` or list of floats (Adam's
``betas``). The arrays are copies.

``load_state_dict`` checks everything (optimizer type, number of parameters,
scalars, buffer names, shapes and dtypes) before changing anything, so training
resumed from a saved state is bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from minidl import checks
from minidl.parameter import Parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


class Optimizer:
    """Base class of the optimizers.

    Subclasses define ``_hyper_names``, implement ``_validate_hyper`` (check and
    normalise hyper-parameters), ``_buffer_names_for`` (which buffers those
    hyper-parameters need) and ``_update`` (the in-place update of one parameter).

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to optimise (``model.parameters()`` lists a tied one once).
        Must be non-empty, contain only :class:`~minidl.parameter.Parameter`
        objects and no duplicates. The order defines the indices in :meth:`state_dict`.
    lr : float
        Learning rate, finite and > 0. The attribute ``lr`` may later be set to
        any finite value >= 0 (learning-rate schedules do so).

    Attributes
    ----------
    params : list of Parameter
    lr : float
    step_count : int
        Number of calls to :meth:`step` so far.
    """

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
                             f"received {checks.describe(params)}") from None
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
                                 f"twice (indices {seen[id(p)]} and {i}); model.parameters() "
                                 f"lists a tied parameter once")
            seen[id(p)] = i
        self.params: list[Parameter] = params
        self._lr = checks.real(lr, "lr", owner, minimum=0.0, strict_min=True)
        self.step_count: int = 0
        self._buffers: dict[str, list[np.ndarray]] = {}

    def _create_buffers(self) -> None:
        """Zero buffers for the current hyper-parameters (called by subclasses' __init__)."""
        self._buffers = {name: [np.zeros_like(p.data) for p in self.params]
                         for name in self._buffer_names_for(self.hyperparameters())}

    # -- learning rate ------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate used by the next :meth:`step`."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = checks.real(value, "lr", type(self).__name__, minimum=0.0)

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

    # -- hyper-parameters ---------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The hyper-parameters other than ``lr``, as JSON-able values."""
        return {name: getattr(self, name) for name in self._hyper_names}

    @classmethod
    def _validate_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        return dict(values)

    @staticmethod
    def _buffer_names_for(hyper: dict[str, Any]) -> tuple[str, ...]:
        return ()

    # -- checkpointing ------------------------------------------------------
    def state_dict(self) -> dict[str, dict[str, Any]]:
        """The optimizer's state (see the module docstring for the format)."""
        arrays = {f"{name}.{i}": buf.copy()
                  for name, bufs in self._buffers.items() for i, buf in enumerate(bufs)}
        scalars: dict[str, Any] = {"type": type(self).__name__, "num_params": len(self.params),
                                   "step": self.step_count, "lr": self._lr}
        scalars.update(self.hyperparameters())
        return {"arrays": arrays, "scalars": scalars}

    def load_state_dict(self, state: dict[str, dict[str, Any]]) -> None:
        """Restore a state produced by :meth:`state_dict`; nothing changes unless all of it checks.

        The learning rate, step count and hyper-parameters are taken from
        ``state`` (they replace the values given to the constructor); buffers are
        copied.

        Raises
        ------
        ValueError
            If the state has the wrong layout, comes from another optimizer type
            or another number of parameters, has missing or unexpected scalars or
            buffers, or a buffer of the wrong shape or dtype.
        """
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict) or set(state) != {"arrays", "scalars"}:
            got = sorted(state) if isinstance(state, dict) else checks.describe(state)
            raise ValueError(f"{owner}: expected a dict with keys ['arrays', 'scalars'], "
                             f"received {got}")
        arrays, scalars = state["arrays"], state["scalars"]
        for key, part in (("arrays", arrays), ("scalars", scalars)):
            if not isinstance(part, dict):
                raise ValueError(f"{owner}: expected state[{key!r}] to be a dict, "
                                 f"received {checks.describe(part)}")

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
        num_params = checks.integer(scalars["num_params"], "scalar 'num_params'", owner,
                                    minimum=0)
        if num_params != len(self.params):
            raise ValueError(f"{owner}: expected a state for {len(self.params)} parameters "
                             f"(scalar 'num_params'), received {num_params}")
        step_count = checks.integer(scalars["step"], "scalar 'step'", owner, minimum=0)
        lr = checks.real(scalars["lr"], "scalar 'lr'", owner, minimum=0.0)
        hyper = type(self)._validate_hyper({n: scalars[n] for n in self._hyper_names})

        names = self._buffer_names_for(hyper)
        expected_keys = [f"{name}.{i}" for name in names for i in range(len(self.params))]
        missing = [k for k in expected_keys if k not in arrays]
        unexpected = sorted(set(arrays) - set(expected_keys), key=str)
        if missing or unexpected:
            raise ValueError(
                f"{owner}: expected {len(expected_keys)} buffers "
                f"({', '.join(names) or 'none'} for each of the {len(self.params)} "
                f"parameters), received {len(arrays)} (missing {missing}, "
                f"unexpected {unexpected})")
        new_buffers: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for key in expected_keys:
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
            new_buffers[name].append(value.copy())

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


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and L2 weight decay.

    Same rule as ``torch.optim.SGD`` with ``dampening=0``::

        g = grad + weight_decay * p
        buf = momentum * buf + g     (buf starts at zero, so the first step gives buf = g)
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

    _hyper_names = ("momentum", "nesterov", "weight_decay")

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        hyper = self._validate_hyper(
            {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay})
        self.momentum: float = hyper["momentum"]
        self.nesterov: bool = hyper["nesterov"]
        self.weight_decay: float = hyper["weight_decay"]
        self._create_buffers()

    @classmethod
    def _validate_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        owner = cls.__name__
        momentum = checks.real(values["momentum"], "momentum", owner, minimum=0.0)
        nesterov = checks.boolean(values["nesterov"], "nesterov", owner)
        weight_decay = checks.real(values["weight_decay"], "weight_decay", owner, minimum=0.0)
        if nesterov and momentum == 0.0:
            raise ValueError(f"{owner}: expected momentum > 0 when nesterov=True, "
                             f"received momentum={momentum!r}")
        return {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}

    @staticmethod
    def _buffer_names_for(hyper: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum",) if hyper["momentum"] != 0.0 else ()

    def _update(self, index: int, p: Parameter, grad: np.ndarray) -> None:
        g = grad
        if self.weight_decay != 0.0:
            g = g + self.weight_decay * p.data
        if self.momentum != 0.0:
            buf = self._buffers["momentum"][index]
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
        self._create_buffers()

    @classmethod
    def _validate_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        owner = cls.__name__
        betas = values["betas"]
        if not isinstance(betas, (tuple, list, np.ndarray)) or len(betas) != 2:
            raise ValueError(f"{owner}: expected betas to be a pair (beta1, beta2), "
                             f"received {checks.describe(betas)}")
        b1 = checks.real(betas[0], "betas[0]", owner, minimum=0.0, maximum=1.0, strict_max=True)
        b2 = checks.real(betas[1], "betas[1]", owner, minimum=0.0, maximum=1.0, strict_max=True)
        eps = checks.real(values["eps"], "eps", owner, minimum=0.0)
        weight_decay = checks.real(values["weight_decay"], "weight_decay", owner, minimum=0.0)
        return {"betas": (b1, b2), "eps": eps, "weight_decay": weight_decay}

    @staticmethod
    def _buffer_names_for(hyper: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

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
