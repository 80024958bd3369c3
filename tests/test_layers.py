"""Dense, Flatten, activations, Dropout, Add and Concat: gradient checks in
float64, values against direct formulas, and dtype preservation for every layer."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import pytest

from minidl.gradcheck import check_layer
from minidl.layers import (Add, AvgPool2D, Concat, Conv2D, Dense, Dropout, Flatten, LeakyReLU,
                           MaxPool2D, ReLU, Sigmoid, Tanh)
from models.lenet import LENET5_C3_TABLE


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values with |x| >= 0.1: far from the kink of ReLU-like functions."""
    return rng.choice([-1.0, 1.0], size=shape) * (0.1 + rng.random(shape))


# -- Dense ------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("batch", [1, 3], ids=["batch1", "batch3"])
def test_dense_gradcheck(bias: bool, batch: int, rng: np.random.Generator) -> None:
    dense = Dense(5, 4, bias=bias, dtype=np.float64, rng=rng)
    if bias:
        dense.bias.data[...] = rng.standard_normal(4)
    result = check_layer(dense, rng.standard_normal((batch, 5)), rng=rng)
    result.raise_if_failed()
    assert {e.name for e in result.entries} == {"input", "weight"} | ({"bias"} if bias else set())


def test_dense_forward_and_backward_formulas(rng: np.random.Generator) -> None:
    dense = Dense(4, 3, dtype=np.float64, rng=rng)
    dense.bias.data[...] = rng.standard_normal(3)
    x = rng.standard_normal((5, 4))
    y = dense.forward(x)
    np.testing.assert_allclose(y, x @ dense.weight.data.T + dense.bias.data, rtol=1e-14)
    dy = rng.standard_normal((5, 3))
    dx = dense.backward(dy)
    np.testing.assert_allclose(dx, dy @ dense.weight.data, rtol=1e-14)
    np.testing.assert_allclose(dense.weight.grad, dy.T @ x, rtol=1e-14)
    np.testing.assert_allclose(dense.bias.grad, dy.sum(axis=0), rtol=1e-14)
    assert dense.weight.shape == (3, 4)          # PyTorch's Linear layout


# -- Flatten ----------------------------------------------------------------------

def test_flatten_is_row_major_and_backward_restores_the_shape(rng: np.random.Generator) -> None:
    flatten = Flatten()
    x = rng.standard_normal((2, 3, 4, 5))
    y = flatten.forward(x)
    np.testing.assert_array_equal(y, x.reshape(2, 60))
    assert y[1, 1 * 20 + 2 * 5 + 3] == x[1, 1, 2, 3]   # C order: channel, row, column
    dy = rng.standard_normal((2, 60))
    np.testing.assert_array_equal(flatten.backward(dy), dy.reshape(2, 3, 4, 5))


def test_flatten_gradcheck(rng: np.random.Generator) -> None:
    check_layer(Flatten(), rng.standard_normal((2, 3, 2, 2)), rng=rng).raise_if_failed()


# -- activations ------------------------------------------------------------------

ACTIVATIONS = [
    ("relu", ReLU, lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    ("leaky-relu-0.01", lambda: LeakyReLU(), lambda x: np.where(x > 0, x, 0.01 * x),
     lambda x: np.where(x > 0, 1.0, 0.01)),
    ("leaky-relu-0.2", lambda: LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x),
     lambda x: np.where(x > 0, 1.0, 0.2)),
    ("tanh", Tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    ("sigmoid", Sigmoid, lambda x: 1 / (1 + np.exp(-x)),
     lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
]
ACTIVATION_IDS = [a[0] for a in ACTIVATIONS]


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5)], ids=["2d", "4d"])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=ACTIVATION_IDS)
def test_activation_gradcheck(activation, shape, rng: np.random.Generator) -> None:
    _, make, _, _ = activation
    check_layer(make(), away_from_zero(rng, shape) * 2, rng=rng).raise_if_failed()


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=ACTIVATION_IDS)
def test_activation_matches_formula(activation, rng: np.random.Generator) -> None:
    _, make, f, df = activation
    layer = make()
    x = away_from_zero(rng, (4, 6)) * 3
    np.testing.assert_allclose(layer.forward(x), f(x), rtol=1e-12, atol=1e-15)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), dy * df(x), rtol=1e-10, atol=1e-15)


def test_relu_gradient_at_exactly_zero_is_zero() -> None:
    relu = ReLU()
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.forward(x), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


def test_relu_follows_its_input_through_shapes_dtypes_and_layouts(rng) -> None:
    """ReLU keeps one sample of zeros between calls: a new shape, dtype or memory
    layout must still give max(x, 0) exactly, NaN kept and -inf sent to 0."""
    relu = ReLU()
    cases = [rng.standard_normal((4, 3, 5, 5)).astype(np.float32),
             rng.standard_normal((2, 3, 5, 5)).astype(np.float32),          # smaller batch
             rng.standard_normal((3, 4, 5, 5)).transpose(1, 0, 2, 3),       # channel-major, float64
             rng.standard_normal((4, 7)).astype(np.float32),
             np.array([[np.nan, -np.inf, np.inf, -0.0, 2.0]], dtype=np.float32),
             np.array(-3.0), np.zeros((0, 5), np.float32)]
    for x in cases:
        y = relu.forward(x)
        assert y.dtype == x.dtype and y.shape == x.shape
        np.testing.assert_array_equal(y, np.where(np.isnan(x), x, np.where(x > 0, x, 0)))
        np.testing.assert_array_equal(relu.backward(np.ones_like(x)), (x > 0).astype(x.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("make", [Sigmoid, Tanh], ids=["sigmoid", "tanh"])
def test_saturating_activations_are_stable_at_1000(make, dtype) -> None:
    layer = make()
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]], dtype=dtype)
    # Overflow, division by zero and invalid operations are errors here; underflow
    # of exp(-1000) to 0 is the correct, harmless, result.
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise",
                                                under="ignore"):
        warnings.simplefilter("error")
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
    assert y.dtype == dtype and dx.dtype == dtype
    low = 0.0 if make is Sigmoid else -1.0
    assert y[0, 0] == low and y[0, -1] == 1.0          # exact limits
    assert y[0, 2] == (0.5 if make is Sigmoid else 0.0)
    assert np.all(np.isfinite(dx))
    assert dx[0, 0] == 0.0 and dx[0, -1] == 0.0


def test_sigmoid_is_symmetric(rng: np.random.Generator) -> None:
    x = rng.standard_normal(50) * 20
    sigmoid = Sigmoid()
    np.testing.assert_allclose(sigmoid.forward(-x), 1 - sigmoid.forward(x), atol=1e-15)


def test_leaky_relu_keeps_its_slope_in_float32() -> None:
    layer = LeakyReLU(0.25)
    y = layer.forward(np.array([[-4.0, 4.0]], dtype=np.float32))
    np.testing.assert_array_equal(y, np.array([[-1.0, 4.0]], dtype=np.float32))


# -- Dropout ----------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_gradcheck_in_training_mode_with_a_fixed_mask(p: float, rng) -> None:
    dropout = Dropout(p)

    def reseed() -> None:
        dropout.rng = np.random.default_rng(1234)   # the same mask on every evaluation

    x = rng.standard_normal((4, 3, 5))
    result = check_layer(dropout, x, rng=rng, prepare=reseed, training=True)
    result.raise_if_failed()
    # The mask really was applied (the check is not of the identity).
    reseed()
    y = dropout.forward(x)
    assert np.any(y == 0) and not np.allclose(y, x)


def test_dropout_is_the_identity_in_eval_mode(rng: np.random.Generator) -> None:
    dropout = Dropout(0.5, rng=0)
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(dropout.forward(x, training=False, keep_for_backward=True), x)
    dy = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(dropout.backward(dy), dy)
    check_layer(dropout, x, rng=rng, training=False).raise_if_failed()


def test_dropout_p0_is_the_identity_in_training(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(Dropout(0.0).forward(x, training=True), x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.7])
def test_dropout_inverted_scaling_keeps_the_mean(p: float) -> None:
    dropout = Dropout(p, rng=3)
    x = np.ones((1000, 1000))
    y = dropout.forward(x)
    kept = y != 0
    # Survivors are scaled by exactly 1 / (1 - p); about a fraction p is dropped.
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-15)
    assert abs((~kept).mean() - p) < 5e-3
    assert abs(y.mean() - 1.0) < 1e-2
    # The gradient goes through the same mask and scale.
    dx = dropout.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx, y)


def test_dropout_same_seed_same_mask_and_masks_change_between_calls() -> None:
    x = np.ones((20, 30))
    a, b = Dropout(0.5, rng=7), Dropout(0.5, rng=7)
    first = a.forward(x)
    np.testing.assert_array_equal(first, b.forward(x))
    second = a.forward(x)
    np.testing.assert_array_equal(second, b.forward(x))
    assert not np.array_equal(first, second)
    c = Dropout(0.5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(c.forward(x), first)


def test_dropout_float32_mask_keeps_float32() -> None:
    dropout = Dropout(0.3, rng=0)
    y = dropout.forward(np.ones((10, 10), np.float32))
    assert y.dtype == np.float32
    assert dropout.backward(np.ones((10, 10), np.float32)).dtype == np.float32


# -- Add and Concat ----------------------------------------------------------------

@pytest.mark.parametrize("count", [2, 3])
def test_add_gradcheck_and_values(count: int, rng: np.random.Generator) -> None:
    xs = [rng.standard_normal((2, 3, 4)) for _ in range(count)]
    add = Add()
    np.testing.assert_allclose(add.forward(xs), sum(xs), rtol=1e-15)
    dy = rng.standard_normal((2, 3, 4))
    dxs = add.backward(dy)
    assert len(dxs) == count
    for dx in dxs:
        np.testing.assert_array_equal(dx, dy)
    result = check_layer(Add(), xs, rng=rng)
    result.raise_if_failed()
    assert {e.name for e in result.entries} == {f"input[{i}]" for i in range(count)}


def test_add_does_not_modify_its_inputs(rng: np.random.Generator) -> None:
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    a0 = a.copy()
    Add().forward([a, b])
    np.testing.assert_array_equal(a, a0)


@pytest.mark.parametrize("axis, shapes", [
    (1, [(2, 3, 4, 4), (2, 1, 4, 4)]),
    (1, [(2, 2, 3, 3), (2, 3, 3, 3), (2, 1, 3, 3)]),
    (-1, [(2, 3, 2), (2, 3, 4)]),
    (2, [(2, 2, 1, 3), (2, 2, 2, 3)]),
], ids=["channels-2-inputs", "channels-3-inputs", "last-axis", "rows"])
def test_concat_gradcheck_and_values(axis: int, shapes, rng: np.random.Generator) -> None:
    xs = [rng.standard_normal(s) for s in shapes]
    concat = Concat(axis)
    y = concat.forward(xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=axis))
    dy = rng.standard_normal(y.shape)
    dxs = concat.backward(dy)
    for x, dx, piece in zip(xs, dxs, np.split(dy, np.cumsum([x.shape[axis] for x in xs])[:-1],
                                              axis=axis)):
        assert dx.shape == x.shape
        np.testing.assert_array_equal(dx, piece)
    check_layer(Concat(axis), xs, rng=rng).raise_if_failed()


# -- dtype: every layer in float32 and float64 --------------------------------------

def _image(dtype, rng, shape=(2, 6, 8, 8)):
    return rng.standard_normal(shape).astype(dtype)


# (id, factory(dtype), input factory(dtype, rng))
ALL_LAYERS: list[tuple[str, Callable[[Any], Any], Callable[[Any, np.random.Generator], Any]]] = [
    ("Conv2D", lambda dt: Conv2D(6, 4, 3, padding=1, dtype=dt, rng=0), _image),
    ("Conv2D-groups", lambda dt: Conv2D(6, 4, 3, stride=2, groups=2, dtype=dt, rng=0), _image),
    ("Conv2D-table", lambda dt: Conv2D(6, 16, 5, connections=LENET5_C3_TABLE, dtype=dt, rng=0),
     _image),
    ("Conv2D-no-bias", lambda dt: Conv2D(6, 2, (3, 2), bias=False, dtype=dt, rng=0), _image),
    ("MaxPool2D", lambda dt: MaxPool2D(2), _image),
    ("MaxPool2D-overlap-pad", lambda dt: MaxPool2D(3, stride=2, padding=1), _image),
    ("AvgPool2D", lambda dt: AvgPool2D(2), _image),
    ("AvgPool2D-pad", lambda dt: AvgPool2D(3, stride=2, padding=1), _image),
    ("Dense", lambda dt: Dense(5, 3, dtype=dt, rng=0), lambda dt, rng: _image(dt, rng, (4, 5))),
    ("Flatten", lambda dt: Flatten(), _image),
    ("ReLU", lambda dt: ReLU(), _image),
    ("LeakyReLU", lambda dt: LeakyReLU(0.1), _image),
    ("Tanh", lambda dt: Tanh(), _image),
    ("Sigmoid", lambda dt: Sigmoid(), _image),
    ("Dropout", lambda dt: Dropout(0.5, rng=0), _image),
    ("Add", lambda dt: Add(), lambda dt, rng: [_image(dt, rng), _image(dt, rng)]),
    ("Concat", lambda dt: Concat(), lambda dt, rng: [_image(dt, rng), _image(dt, rng, (2, 3, 8, 8))]),
]
ALL_LAYER_IDS = [entry[0] for entry in ALL_LAYERS]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("entry", ALL_LAYERS, ids=ALL_LAYER_IDS)
def test_every_layer_keeps_its_dtype(entry, dtype, rng: np.random.Generator) -> None:
    _, make, make_input = entry
    layer = make(dtype)
    x = make_input(dtype, rng)
    for _, p in layer.named_parameters():
        assert p.data.dtype == dtype and p.grad.dtype == dtype
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    for g in (dx if isinstance(dx, list) else [dx]):
        assert g.dtype == dtype
    for name, p in layer.named_parameters():
        assert p.grad.dtype == dtype, name
        assert np.any(p.grad != 0), name
    assert layer.forward(x, training=False).dtype == dtype


def test_float32_is_the_default_dtype() -> None:
    assert Conv2D(1, 2, 3, rng=0).weight.dtype == np.float32
    assert Dense(2, 3, rng=0).weight.dtype == np.float32
    assert Conv2D(1, 2, 3, rng=0).bias.dtype == np.float32


# -- gradients accumulate -----------------------------------------------------------

PARAMETRIC = [
    ("Conv2D", lambda: Conv2D(2, 3, 3, padding=1, dtype=np.float64, rng=0), (2, 2, 5, 5)),
    ("Conv2D-table", lambda: Conv2D(3, 2, 3, connections=[[1, 0, 1], [0, 1, 1]],
                                    dtype=np.float64, rng=0), (2, 3, 5, 5)),
    ("Dense", lambda: Dense(4, 3, dtype=np.float64, rng=0), (3, 4)),
]


@pytest.mark.parametrize("entry", PARAMETRIC, ids=[p[0] for p in PARAMETRIC])
def test_backward_twice_without_zero_grad_doubles_the_gradient(entry, rng) -> None:
    _, make, shape = entry
    layer = make()
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(layer.forward(x).shape)
    dx_once = layer.backward(dy)
    once = [p.grad.copy() for p in layer.parameters()]
    dx_twice = layer.backward(dy)
    np.testing.assert_array_equal(dx_once, dx_twice)   # the input gradient is not accumulated
    for p, g in zip(layer.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-15)
    layer.zero_grad()
    assert all(np.all(p.grad == 0) for p in layer.parameters())


def test_a_parameter_shared_by_two_layers_gets_the_sum(rng: np.random.Generator) -> None:
    from minidl import Sequential

    first = Dense(4, 4, dtype=np.float64, rng=1)
    second = Dense(4, 4, dtype=np.float64, rng=2)
    second.weight = first.weight   # tie the weights
    model = Sequential(first, Tanh(), second)
    x = rng.standard_normal((3, 4))
    dy = rng.standard_normal((3, 4))
    model.forward(x)
    model.zero_grad()
    model.backward(dy)
    # The sum of the two layers' own contributions ...
    h = np.tanh(x @ first.weight.data.T + first.bias.data)
    dh = (dy @ first.weight.data) * (1 - h ** 2)
    np.testing.assert_allclose(first.weight.grad, dy.T @ h + dh.T @ x, rtol=1e-12)
    # ... which is the true derivative: the checker perturbs the one shared array.
    check_layer(model, x, rng=rng).raise_if_failed()
