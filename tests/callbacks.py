"""Callbacks the training tests share."""

from __future__ import annotations

from typing import Callable

from minidl.training import Callback


class At(Callback):
    """Calls ``action`` after step ``step`` of epoch ``epoch`` (epochs count from 1)."""

    def __init__(self, epoch: int, step: int, action: Callable[[], object]) -> None:
        self.where, self.action = (epoch, step), action

    def on_step_end(self, trainer, epoch, step, loss):
        if (epoch, step) == self.where:
            self.action()
