"""One rule, one spelling: layers, init, optim and viz share minidl.checks."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import checks, init
from minidl.layers import Conv2D, Dense, Dropout
from minidl.viz import channel_grid

TABLE = np.array([[1, 0], [1, 1], [0, 1]])


@pytest.mark.parametrize("table, accepted", [
    (TABLE.astype(bool), True),
    (TABLE, True),                       # 0/1 integers
    (TABLE.astype(np.uint8), True),
    (TABLE.astype(float), False),        # floats are refused everywhere
    (TABLE * 2, False),                  # integers other than 0 and 1
    (TABLE.astype(str), False),
], ids=["bool", "int", "uint8", "float", "int-2", "str"])
def test_every_connection_table_check_accepts_the_same_things(table, accepted) -> None:
    users = [
        lambda: Conv2D(2, 3, 3, connections=table),
        lambda: init.he_uniform((3, 2, 3, 3), mask=table),
        lambda: init.fans((3, 2, 3, 3), mask=table),
        lambda: channel_grid(np.ones((3, 2, 3, 3)), connections=table),
    ]
    for use in users:
        if accepted:
            use()
        else:
            with pytest.raises(ValueError, match="expected a boolean .*received"):
                use()


@pytest.mark.parametrize("rng", [True, False, "seed", 1.5, np.random.RandomState(0), -1])
def test_every_rng_argument_refuses_the_same_things(rng) -> None:
    for use in (lambda: Conv2D(1, 2, 3, rng=rng), lambda: Dense(2, 2, rng=rng),
                lambda: Dropout(0.5, rng=rng), lambda: init.he_normal((2, 2), rng=rng)):
        with pytest.raises(ValueError, match="rng"):
            use()


@pytest.mark.parametrize("rng", [None, 0, 7, np.int64(3), np.random.default_rng(1)])
def test_every_rng_argument_accepts_the_same_things(rng) -> None:
    Conv2D(1, 2, 3, rng=rng), Dense(2, 2, rng=rng), Dropout(0.5, rng=rng)
    init.he_normal((2, 2), rng=rng)


@pytest.mark.parametrize("dtype", [None, np.int32, "int8", "nonsense", bool])
def test_a_dtype_must_be_named_and_floating_point(dtype) -> None:
    # Conv2D(dtype=None) used to give float64 silently (np.dtype(None) is float64).
    for use in (lambda: Conv2D(1, 2, 3, dtype=dtype), lambda: Dense(2, 2, dtype=dtype),
                lambda: init.he_normal((2, 2), dtype=dtype)):
        with pytest.raises(ValueError, match="expected dtype to be a floating-point dtype"):
            use()


def test_messages_name_owner_expectation_and_value() -> None:
    with pytest.raises(ValueError, match=r"^--lr: expected lr > 0, received -1\.0$"):
        checks.real(-1.0, "lr", "--lr", minimum=0.0, strict_min=True)
    with pytest.raises(ValueError, match=r"^x: expected n to be an integer, received True \(bool\)$"):
        checks.integer(True, "n", "x")
    with pytest.raises(ValueError, match=r"^x: expected a finite v, received nan$"):
        checks.real(float("nan"), "v", "x")
    with pytest.raises(ValueError, match=r"^x: expected flag to be a bool, received 1$"):
        checks.boolean(1, "flag", "x")
    with pytest.raises(ValueError, match=r"^x: expected mode to be one of 'a', 'b', received 'c'"):
        checks.one_of("c", ["a", "b"], "mode", "x")
    with pytest.raises(ValueError, match=r"^x: expected channel in 0\.\.3, received 4$"):
        checks.index(4, "channel", "x", 4)
