"""Losses: SoftmaxCrossEntropy (fused, log-sum-exp stable, label smoothing) and MSE."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp

from minidl.gradcheck import check_loss
from minidl.losses import MSE, SoftmaxCrossEntropy


def direct_cross_entropy(logits: np.ndarray, labels: np.ndarray, smoothing: float = 0.0):
    """The textbook formula, in float64, fine for small logits: loss and gradient."""
    n, k = logits.shape
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    target = (1 - smoothing) * np.eye(k)[labels] + smoothing / k
    loss = -(target * np.log(probs)).sum(axis=1).mean()
    return loss, (probs - target) / n


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.4], ids=["plain", "smooth-0.1", "smooth-0.4"])
@pytest.mark.parametrize("n, k", [(1, 2), (4, 5), (7, 10)], ids=["1x2", "4x5", "7x10"])
def test_cross_entropy_gradcheck(n: int, k: int, smoothing: float, rng: np.random.Generator) -> None:
    logits = rng.standard_normal((n, k)) * 2
    labels = rng.integers(0, k, size=n)
    check_loss(SoftmaxCrossEntropy(label_smoothing=smoothing), logits, labels,
               rng=rng).raise_if_failed()


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.4], ids=["plain", "smooth-0.1", "smooth-0.4"])
def test_cross_entropy_matches_the_direct_formula(smoothing: float, rng: np.random.Generator) -> None:
    logits = rng.standard_normal((6, 4))
    labels = np.array([0, 3, 1, 1, 2, 3])
    loss_fn = SoftmaxCrossEntropy(label_smoothing=smoothing)
    loss = loss_fn.forward(logits, labels)
    expected_loss, expected_grad = direct_cross_entropy(logits, labels, smoothing)
    assert isinstance(loss, float)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(loss_fn.backward(), expected_grad, rtol=1e-10, atol=1e-15)


def test_cross_entropy_of_a_hand_computed_example() -> None:
    # Two classes with logits (0, log 3): p = (1/4, 3/4).
    loss = SoftmaxCrossEntropy()
    value = loss.forward(np.array([[0.0, np.log(3.0)]]), np.array([1]))
    assert value == pytest.approx(-np.log(0.75), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), [[0.25, -0.25]], rtol=1e-14)


def test_label_smoothing_of_a_uniform_prediction_is_log_k() -> None:
    # Uniform logits: every class has probability 1/K whatever the target mix.
    loss = SoftmaxCrossEntropy(label_smoothing=0.3)
    assert loss.forward(np.zeros((3, 5)), np.array([0, 2, 4])) == pytest.approx(np.log(5), rel=1e-14)
    # Smoothing changes the gradient: the target class is pulled by (1 - eps) + eps/K only.
    np.testing.assert_allclose(loss.backward()[0], np.array([0.2 - 0.7 - 0.06, 0.2 - 0.06, 0.2 - 0.06,
                                                             0.2 - 0.06, 0.2 - 0.06]) / 3, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("magnitude", [1e3, 1e4], ids=["1e3", "1e4"])
def test_cross_entropy_is_stable_for_huge_logits(magnitude: float, dtype,
                                                 rng: np.random.Generator) -> None:
    logits = (rng.standard_normal((8, 10)) * magnitude).astype(dtype)
    logits[0, 3] = magnitude          # one certain, correct prediction ...
    logits[1] = -magnitude            # ... and a row of equal, very negative logits
    labels = rng.integers(0, 10, size=8)
    labels[0], labels[1] = 3, 5
    loss_fn = SoftmaxCrossEntropy()
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise",
                                                under="ignore"):
        warnings.simplefilter("error")
        loss = loss_fn.forward(logits, labels)
        grad = loss_fn.backward()
    z = logits.astype(np.float64)
    reference = np.mean(logsumexp(z, axis=1) - z[np.arange(8), labels])   # the safe way
    assert np.isfinite(loss)
    assert loss == pytest.approx(reference, rel=1e-12 if dtype == np.float64 else 1e-6)
    assert grad.dtype == dtype
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-6)
    assert np.all(np.abs(grad) <= 1 / 8 + 1e-7)


def test_cross_entropy_perfect_prediction_has_zero_loss_and_gradient() -> None:
    loss = SoftmaxCrossEntropy()
    assert loss.forward(np.array([[1e4, -1e4]]), np.array([0])) == 0.0
    np.testing.assert_array_equal(loss.backward(), [[0.0, 0.0]])


@pytest.mark.parametrize("label_dtype", [np.uint8, np.int32, np.int64])
def test_cross_entropy_accepts_any_integer_labels(label_dtype, rng: np.random.Generator) -> None:
    logits = rng.standard_normal((5, 10))
    labels = np.array([9, 0, 3, 3, 7])
    expected = SoftmaxCrossEntropy().forward(logits, labels)
    assert SoftmaxCrossEntropy().forward(logits, labels.astype(label_dtype)) == expected


def test_cross_entropy_float32_gradient_stays_float32(rng: np.random.Generator) -> None:
    loss = SoftmaxCrossEntropy(label_smoothing=0.1)
    loss.forward(rng.standard_normal((3, 4)).astype(np.float32), np.array([0, 1, 2]))
    assert loss.backward().dtype == np.float32


def test_mse_values_and_gradient(rng: np.random.Generator) -> None:
    prediction = rng.standard_normal((3, 4))
    target = rng.standard_normal((3, 4))
    mse = MSE()
    value = mse.forward(prediction, target)
    assert isinstance(value, float)
    assert value == pytest.approx(np.mean((prediction - target) ** 2), rel=1e-14)
    np.testing.assert_allclose(mse.backward(), 2 * (prediction - target) / 12, rtol=1e-14)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2, 2)], ids=["1d", "2d", "4d"])
def test_mse_gradcheck(shape, rng: np.random.Generator) -> None:
    check_loss(MSE(), rng.standard_normal(shape), rng.standard_normal(shape),
               rng=rng).raise_if_failed()


def test_mse_float32_gradient_stays_float32(rng: np.random.Generator) -> None:
    mse = MSE()
    mse.forward(rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((2, 3)))
    assert mse.backward().dtype == np.float32


def test_softmax_is_stable_and_normalised() -> None:
    from minidl.losses import softmax
    p = softmax(np.array([[1e4, 0.0, -1e4], [1.0, 2.0, 3.0]]))
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
