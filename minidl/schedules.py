"""Learning-rate schedules: StepLR, CosineLR (with linear warm-up) and LinearWarmup.

They work with any :class:`~minidl.optim.Optimizer`: they only set
``optimizer.lr``. The schedule's counter starts at 0 and the optimizer's ``lr``
is set to the step-0 value when the schedule is built. Call ``step()`` once per
unit of the schedule (usually once per iteration, *after* ``optimizer.step()``;
or once per epoch, in which case ``step_size`` / ``total_steps`` count epochs)::

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = CosineLR(opt, total_steps=1000, warmup_steps=50)
    for batch in batches:
        opt.zero_grad()
        ...  # forward + backward
        opt.step()
        sched.step()

Values are computed in closed form from the step count (not by repeated
multiplication), so they do not drift and a restored schedule continues exactly.
"""

from __future__ import annotations

import math
from typing import Any

from minidl import checks
from minidl.optim import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineLR", "LinearWarmup"]


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
                             f"received {checks.describe(optimizer)}")
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
            raise ValueError(f"{owner}: expected a dict, received {checks.describe(state)}")
        expected = {"type", "base_lr", "last_step", *self._hyper_names}
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"{owner}: expected keys {sorted(expected)}, received "
                             f"{sorted(state)} (missing {missing}, unexpected {unexpected})")
        if state["type"] != type(self).__name__:
            raise ValueError(f"{owner}: expected a state of schedule type "
                             f"{type(self).__name__!r}, received {state['type']!r}")
        base_lr = checks.real(state["base_lr"], "'base_lr'", owner, minimum=0.0, strict_min=True)
        last_step = checks.integer(state["last_step"], "'last_step'", owner, minimum=0)
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
        return {"step_size": checks.integer(values["step_size"], "step_size", owner, minimum=1),
                "gamma": checks.real(values["gamma"], "gamma", owner, minimum=0.0,
                                     strict_min=True)}

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
        total = checks.integer(values["total_steps"], "total_steps", owner, minimum=1)
        warmup = checks.integer(values["warmup_steps"], "warmup_steps", owner, minimum=0)
        if warmup >= total:
            raise ValueError(f"{owner}: expected warmup_steps < total_steps ({total}), "
                             f"received {warmup}")
        min_lr = checks.real(values["min_lr"], "min_lr", owner, minimum=0.0, maximum=base_lr)
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
        return {"warmup_steps": checks.integer(values["warmup_steps"], "warmup_steps",
                                               type(self).__name__, minimum=1)}

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        return self.base_lr
