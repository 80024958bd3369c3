"""The gradient checker itself: it passes on whole LeNet models, FAILS on
corrupted gradients, refuses float32, and leaves the checked arrays untouched."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import Sequential
from minidl.gradcheck import (GradcheckResult, check_layer, check_loss, check_model,
                              check_scalar_function)
from minidl.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from minidl.losses import MSE, SoftmaxCrossEntropy
from models.lenet import lenet, lenet5


class ScaledInputGradConv(Conv2D):
    """A Conv2D whose input gradient is 0.1% too large."""

    def backward(self, dy, *, input_grad=True):
        dx = super().backward(dy, input_grad=input_grad)
        return None if dx is None else dx * 1.001


class ShiftedWeightGradConv(Conv2D):
    """A Conv2D that adds 1e-3 to its weight gradient."""

    def backward(self, dy, *, input_grad=True):
        dx = super().backward(dy, input_grad=input_grad)
        self.weight.grad += 1e-3
        return dx


class ForgottenBiasDense(Dense):
    """A Dense layer that forgets the bias gradient."""

    def backward(self, dy, *, input_grad=True):
        saved = self.bias.grad.copy()
        dx = super().backward(dy, input_grad=input_grad)
        self.bias.grad[...] = saved
        return dx


# -- whole models -------------------------------------------------------------------

@pytest.mark.parametrize("build, hw", [(lenet, 28), (lenet5, 32)], ids=["lenet-28x28", "lenet5-32x32"])
def test_whole_lenet_with_softmax_cross_entropy(build, hw, rng: np.random.Generator) -> None:
    model = build(rng=0, dtype=np.float64)
    # Non-zero biases, so every bias gradient is exercised away from the initial zero.
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.data[...] = 0.1 * rng.standard_normal(p.shape)
    x = rng.random((2, 1, hw, hw))
    labels = np.array([3, 7])
    result = check_model(model, SoftmaxCrossEntropy(), x, labels, rng=rng)
    result.raise_if_failed()
    names = {e.name for e in result.entries}
    assert names == {"input"} | {name for name, _ in model.named_parameters()}


def test_model_with_mse_and_label_smoothing_variants(rng: np.random.Generator) -> None:
    model = Sequential(Conv2D(2, 3, 3, padding=1, dtype=np.float64, rng=1), Tanh(),
                       Flatten(), Dense(48, 5, dtype=np.float64, rng=2))
    x = rng.standard_normal((3, 2, 4, 4))
    check_model(model, MSE(), x, rng.standard_normal((3, 5)), rng=rng).raise_if_failed()
    check_model(model, SoftmaxCrossEntropy(label_smoothing=0.2), x, np.array([0, 4, 2]),
                rng=rng).raise_if_failed()


# -- the checker fails when it should ---------------------------------------------------

def _conv_case(cls, rng):
    conv = cls(2, 3, 3, padding=1, dtype=np.float64, rng=1)
    conv.bias.data[...] = rng.standard_normal(3)
    return conv, rng.standard_normal((2, 2, 5, 5))


@pytest.mark.parametrize("cls, bad_entry", [(ScaledInputGradConv, "input"),
                                            (ShiftedWeightGradConv, "weight")],
                         ids=["dx-scaled-by-1.001", "weight-grad-plus-1e-3"])
def test_check_layer_fails_on_a_corrupted_gradient(cls, bad_entry, rng) -> None:
    conv, x = _conv_case(cls, rng)
    result = check_layer(conv, x, rng=rng)
    assert not result.ok
    assert result.max_error > 1e-6
    assert {e.name for e in result.failures()} == {bad_entry}
    with pytest.raises(AssertionError, match="gradient check FAILED"):
        result.raise_if_failed()
    assert bad_entry in str(result) and "FAIL" in str(result)


def test_the_same_check_passes_on_the_honest_layer(rng: np.random.Generator) -> None:
    conv, x = _conv_case(Conv2D, rng)
    result = check_layer(conv, x, rng=rng)
    assert result.ok and result.max_error < 1e-6
    result.raise_if_failed()          # does not raise


def test_check_layer_fails_on_a_forgotten_bias_gradient(rng: np.random.Generator) -> None:
    dense = ForgottenBiasDense(4, 3, dtype=np.float64, rng=0)
    result = check_layer(dense, rng.standard_normal((2, 4)), rng=rng)
    assert not result.ok
    assert {e.name for e in result.failures()} == {"bias"}


def test_check_model_fails_on_a_corrupted_layer_inside(rng: np.random.Generator) -> None:
    model = Sequential(ShiftedWeightGradConv(1, 2, 3, dtype=np.float64, rng=0), ReLU(),
                       MaxPool2D(2), Flatten(), Dense(8, 3, dtype=np.float64, rng=1))
    result = check_model(model, SoftmaxCrossEntropy(), rng.random((2, 1, 6, 6)), np.array([0, 2]),
                         rng=rng)
    assert not result.ok
    assert {e.name for e in result.failures()} == {"conv1.weight"}
    with pytest.raises(AssertionError):
        result.raise_if_failed()


def test_check_loss_fails_on_a_wrong_gradient(rng: np.random.Generator) -> None:
    class HalfMSE(MSE):
        def backward(self):
            return super().backward() * 0.5

    result = check_loss(HalfMSE(), rng.standard_normal((3, 2)), rng.standard_normal((3, 2)), rng=rng)
    assert not result.ok
    with pytest.raises(AssertionError):
        result.raise_if_failed()


def test_check_scalar_function_on_a_known_function(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4))
    good = check_scalar_function(lambda: float(np.sum(x ** 3)), [("x", x, 3 * x ** 2, None)], rng=rng)
    assert good.ok
    bad = check_scalar_function(lambda: float(np.sum(x ** 3)), [("x", x, 3 * x ** 2 + 1e-4, None)],
                                rng=rng)
    assert not bad.ok


def test_check_scalar_function_only_probes_unmasked_entries(rng: np.random.Generator) -> None:
    x = rng.standard_normal(6)
    mask = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    wrong_where_masked = np.where(mask, 2 * x, 99.0)
    result = check_scalar_function(lambda: float(np.sum(x ** 2)),
                                   [("x", x, wrong_where_masked, mask)], rng=rng)
    assert result.ok


def test_an_empty_result_is_not_ok() -> None:
    assert not GradcheckResult(1e-6).ok


# -- float64 only ----------------------------------------------------------------------

def test_check_layer_refuses_a_float32_layer(rng: np.random.Generator) -> None:
    conv = Conv2D(2, 3, 3, rng=0)            # float32, the default
    with pytest.raises(ValueError, match=r"gradcheck: expected float64 .* received float32 for 'input'"):
        check_layer(conv, rng.standard_normal((1, 2, 4, 4)).astype(np.float32), rng=rng)


def test_check_layer_refuses_float32_parameters(rng: np.random.Generator) -> None:
    # A float32 layer fed float64 is refused by the layer itself, naming the dtype ...
    with pytest.raises(ValueError, match="expected input of dtype float32"):
        check_layer(Dense(3, 2, rng=0), rng.standard_normal((2, 3)), rng=rng)
    # ... and float32 parameters are refused by the checker.
    model = Sequential(Flatten(), Dense(3, 2, rng=0))
    with pytest.raises(ValueError, match=r"gradcheck: expected float64"):
        check_model(model, MSE(), rng.standard_normal((2, 3)).astype(np.float32),
                    np.zeros((2, 2), np.float32), rng=rng)


def test_check_layer_refuses_float32_inputs_to_parameterless_layers(rng) -> None:
    with pytest.raises(ValueError, match="gradcheck: expected float64"):
        check_layer(MaxPool2D(2), rng.standard_normal((1, 1, 4, 4)).astype(np.float32), rng=rng)


def test_check_loss_refuses_float32(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="gradcheck: expected float64"):
        check_loss(SoftmaxCrossEntropy(), rng.standard_normal((2, 3)).astype(np.float32),
                   np.array([0, 1]), rng=rng)


# -- the checker leaves arrays as it found them ----------------------------------------------

def test_check_layer_restores_inputs_and_parameters_exactly(rng: np.random.Generator) -> None:
    conv = Conv2D(2, 3, 3, dtype=np.float64, rng=0)
    x = rng.standard_normal((2, 2, 5, 5))
    x_before = x.copy()
    params_before = {n: p.data.copy() for n, p in conv.named_parameters()}
    check_layer(conv, x, rng=rng).raise_if_failed()
    np.testing.assert_array_equal(x, x_before)
    for name, p in conv.named_parameters():
        np.testing.assert_array_equal(p.data, params_before[name])


def test_masked_weights_stay_zero_through_a_check(rng: np.random.Generator) -> None:
    conv = Conv2D(3, 2, 3, connections=[[1, 0, 1], [0, 1, 0]], dtype=np.float64, rng=0)
    check_layer(conv, rng.standard_normal((1, 3, 4, 4)), rng=rng).raise_if_failed()
    assert np.all(conv.weight.data[~conv.weight.mask] == 0)
