"""Tests of minidl.schedules: values in closed form, state round trips, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from minidl import optim, schedules
from minidl.parameter import Parameter


def make_params():
    rng = np.random.default_rng(0)
    return [Parameter(rng.standard_normal(s)) for s in [(3, 4), (5,)]]


def lrs(scheduler, n):
    """Learning rates in effect for the first n optimizer steps."""
    out = [scheduler.optimizer.lr]
    for _ in range(n - 1):
        out.append(scheduler.step())
    return out


def test_step_lr_values():
    opt = optim.SGD(make_params(), lr=1.0)
    sched = schedules.StepLR(opt, step_size=3, gamma=0.5)
    assert lrs(sched, 10) == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    assert sched.get_lr() == opt.lr == 0.125 and sched.last_step == 9
    assert sched.lr_at(30) == 1.0 * 0.5 ** 10


def test_cosine_lr_values():
    opt = optim.SGD(make_params(), lr=0.4)
    sched = schedules.CosineLR(opt, total_steps=10, warmup_steps=4, min_lr=0.1)
    values = lrs(sched, 14)
    # warm-up: base * (t + 1) / W
    assert values[:4] == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=1e-15)
    # cosine from base at t = W to min_lr at t = T
    for t in range(4, 11):
        expected = 0.1 + 0.3 * 0.5 * (1 + math.cos(math.pi * (t - 4) / 6))
        assert values[t] == pytest.approx(expected, rel=1e-14)
    assert values[4] == 0.4
    assert values[7] == pytest.approx(0.25, rel=1e-14)   # half-way
    assert values[10] == 0.1 and values[11:] == [0.1] * 3
    assert all(a >= b for a, b in zip(values[3:], values[4:]))


def test_cosine_lr_without_warmup_ends_at_zero():
    opt = optim.Adam(make_params(), lr=0.01)
    sched = schedules.CosineLR(opt, total_steps=5)
    values = lrs(sched, 7)
    assert values[0] == 0.01 and values[5] == 0.0 and values[6] == 0.0


def test_linear_warmup_values():
    opt = optim.SGD(make_params(), lr=0.3)
    assert lrs(schedules.LinearWarmup(opt, warmup_steps=3), 6) == pytest.approx(
        [0.1, 0.2, 0.3, 0.3, 0.3, 0.3], abs=1e-15)


def test_schedule_sets_lr_at_construction_and_drives_updates():
    p = Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = schedules.LinearWarmup(opt, warmup_steps=2)
    assert opt.lr == 0.5
    p.grad[:] = 1.0
    opt.step()
    sched.step()
    opt.step()
    assert p.data[0] == -1.5


@pytest.mark.parametrize("make", [
    lambda o: schedules.StepLR(o, step_size=2, gamma=0.3),
    lambda o: schedules.CosineLR(o, total_steps=8, warmup_steps=2, min_lr=0.01),
    lambda o: schedules.LinearWarmup(o, warmup_steps=5),
])
def test_schedule_state_round_trip(make):
    opt = optim.SGD(make_params(), lr=0.2)
    sched = make(opt)
    for _ in range(3):
        sched.step()
    state = json.loads(json.dumps(sched.state_dict()))
    assert state["last_step"] == 3 and state["base_lr"] == 0.2

    opt2 = optim.SGD(make_params(), lr=0.7)
    sched2 = make(opt2)
    sched2.load_state_dict(state)
    assert opt2.lr == opt.lr and sched2.base_lr == 0.2
    assert [sched2.step() for _ in range(6)] == [sched.step() for _ in range(6)]


def test_schedule_load_errors():
    opt = optim.SGD(make_params(), lr=0.2)
    cos = schedules.CosineLR(opt, total_steps=8)
    step_state = schedules.StepLR(optim.SGD(make_params(), lr=0.2), step_size=2).state_dict()
    with pytest.raises(ValueError, match=r"expected keys .*missing \['min_lr', 'total_steps', "
                                         r"'warmup_steps'\], unexpected \['gamma', 'step_size'\]"):
        cos.load_state_dict(step_state)
    state = cos.state_dict()
    state["type"] = "StepLR"
    with pytest.raises(ValueError, match="expected a state of schedule type 'CosineLR', "
                                         "received 'StepLR'"):
        cos.load_state_dict(state)
    state = cos.state_dict()
    state["last_step"] = -2
    with pytest.raises(ValueError, match="expected 'last_step' >= 0, received -2"):
        cos.load_state_dict(state)
    state = cos.state_dict()
    state["warmup_steps"] = 8
    with pytest.raises(ValueError, match="expected warmup_steps < total_steps"):
        cos.load_state_dict(state)
    with pytest.raises(ValueError, match="expected a dict"):
        cos.load_state_dict([1, 2])


@pytest.mark.parametrize("make, message", [
    (lambda o: schedules.StepLR(o, step_size=0), "expected step_size >= 1, received 0"),
    (lambda o: schedules.StepLR(o, step_size=2.5), "expected step_size to be an integer"),
    (lambda o: schedules.StepLR(o, step_size=2, gamma=0.0), "expected gamma > 0"),
    (lambda o: schedules.CosineLR(o, total_steps=0), "expected total_steps >= 1, received 0"),
    (lambda o: schedules.CosineLR(o, total_steps=5, warmup_steps=5),
     r"expected warmup_steps < total_steps \(5\), received 5"),
    (lambda o: schedules.CosineLR(o, total_steps=5, warmup_steps=-1), "expected warmup_steps >= 0"),
    (lambda o: schedules.CosineLR(o, total_steps=5, min_lr=1.0), "expected min_lr <= 0.1"),
    (lambda o: schedules.CosineLR(o, total_steps=5, min_lr=-1e-3), "expected min_lr >= 0"),
    (lambda o: schedules.LinearWarmup(o, warmup_steps=0), "expected warmup_steps >= 1"),
    (lambda o: schedules.StepLR("sgd", step_size=1), "expected an Optimizer, received 'sgd'"),
])
def test_schedule_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make(optim.SGD(make_params(), lr=0.1))
