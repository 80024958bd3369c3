"""LocalResponseNorm and BatchNorm2D: gradient checks, loop and formula references,
running statistics, state dicts, memory order and argument checks.

LocalResponseNorm's window is PyTorch's for every size: channels
``c - size//2 .. c + (size-1)//2``, clipped, with alpha divided by size.
BatchNorm2D is PyTorch's BatchNorm2d: biased batch variance for normalising,
unbiased for running_var.
"""

from __future__ import annotations

import numpy as np
import pytest

from minidl import layer_from_config, layer_to_config
from minidl.gradcheck import check_layer
from minidl.layers import BatchNorm2D, LocalResponseNorm
from minidl.layers.base import is_channel_major


def channel_major_copy(x: np.ndarray) -> np.ndarray:
    """The same logical array, laid out (C, N, H, W) in memory."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


# -- LocalResponseNorm ---------------------------------------------------------------------

def lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """Direct loop over channels: window c - size//2 .. c + (size-1)//2, clipped."""
    channels = x.shape[1]
    y = np.empty_like(x)
    for c in range(channels):
        total = np.zeros_like(x[:, 0])
        for other in range(c - size // 2, c + (size - 1) // 2 + 1):
            if 0 <= other < channels:
                total += x[:, other] ** 2
        y[:, c] = x[:, c] / (k + alpha / size * total) ** beta
    return y


# (id, size, channels): odd and even sizes, size 1, windows wider than the channel axis.
LRN_CASES = [
    ("size1", 1, 4),
    ("size2-even", 2, 5),
    ("size3", 3, 6),
    ("size4-even", 4, 7),
    ("size5", 5, 8),
    ("size5-more-than-C", 5, 3),
    ("size6-even-more-than-C", 6, 4),
    ("size4-single-channel", 4, 1),
]
LRN_IDS = [case[0] for case in LRN_CASES]


@pytest.mark.parametrize("name, size, channels", LRN_CASES, ids=LRN_IDS)
def test_lrn_gradient_check(name, size, channels, rng) -> None:
    # alpha large enough that the normalisation is far from the identity, so a wrong
    # cross-channel term cannot hide below the tolerance.
    layer = LocalResponseNorm(size, alpha=1.5 * size, beta=0.75, k=1.3)
    x = rng.standard_normal((2, channels, 3, 4))
    check_layer(layer, x, rng=rng).raise_if_failed()


@pytest.mark.parametrize("name, size, channels", LRN_CASES, ids=LRN_IDS)
def test_lrn_forward_matches_a_loop_over_the_window(name, size, channels, rng) -> None:
    x = rng.standard_normal((2, channels, 3, 4)) * 2
    for alpha, beta, k in [(1e-4, 0.75, 1.0), (3.0, 1.25, 0.5), (0.7, 0.0, 2.0)]:
        y = LocalResponseNorm(size, alpha=alpha, beta=beta, k=k).forward(x)
        np.testing.assert_allclose(y, lrn_reference(x, size, alpha, beta, k), rtol=1e-13)


def test_lrn_even_window_reaches_back_further_than_forward() -> None:
    # size=2: channel c is normalised by channels c-1 and c, not c+1 (PyTorch's window).
    x = np.array([1.0, 10.0, 1.0]).reshape(1, 3, 1, 1)
    y = LocalResponseNorm(2, alpha=2.0, beta=1.0, k=1.0).forward(x).ravel()
    # denominators 1 + (2/2) * window sum: channel 0: 1; channel 1: 1 + 100; channel 2: 100 + 1
    np.testing.assert_allclose(y, [1 / 2, 10 / 102, 1 / 102], rtol=1e-15)


def test_lrn_alexnet_and_cuda_convnet_mappings_in_the_docstring_hold(rng) -> None:
    x = rng.standard_normal((2, 9, 3, 3)) * 20
    padded = np.pad(x ** 2, ((0, 0), (2, 2), (0, 0), (0, 0)))
    window5 = sum(padded[:, i:i + 9] for i in range(5))            # channels c-2 .. c+2
    # AlexNet paper: k=2, n=5, alpha=1e-4 (not divided by n), beta=0.75.
    paper = x / (2 + 1e-4 * window5) ** 0.75
    np.testing.assert_allclose(LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0).forward(x),
                               paper, rtol=1e-13)
    # cuda-convnet cmrnorm: denom = 1 + (scale / size) * sum, output = x * denom ** -pow.
    scale, power = 0.001, 0.75
    convnet = x * (1 + scale / 5 * window5) ** -power
    np.testing.assert_allclose(LocalResponseNorm(5, alpha=scale, beta=power, k=1.0).forward(x),
                               convnet, rtol=1e-13)


def test_lrn_float32_stays_float32_and_accurate_next_to_a_huge_channel(rng) -> None:
    # Channel 0 dwarfs the rest; windows far from it must still be summed accurately
    # (a difference of running sums over all channels would lose them in its rounding).
    x = np.abs(rng.standard_normal((2, 24, 3, 3))).astype(np.float32)
    x[:, 0] *= 3000
    layer32, layer64 = LocalResponseNorm(3, alpha=3.0, beta=0.75), LocalResponseNorm(3, alpha=3.0)
    y32 = layer32.forward(x)
    y64 = layer64.forward(x.astype(np.float64))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=2e-6)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx32, dx64 = layer32.backward(dy), layer64.backward(dy.astype(np.float64))
    assert dx32.dtype == np.float32
    np.testing.assert_allclose(dx32, dx64, rtol=1e-4, atol=1e-6 * np.abs(dx64).max())


def test_lrn_results_and_memory_order_follow_the_input(rng) -> None:
    x = rng.standard_normal((3, 7, 5, 4))
    a, b = LocalResponseNorm(4, alpha=2.0), LocalResponseNorm(4, alpha=2.0)
    ya, yb = a.forward(x), b.forward(channel_major_copy(x))
    np.testing.assert_array_equal(ya, yb)
    assert ya.flags.c_contiguous and is_channel_major(yb)
    dy = rng.standard_normal(x.shape)
    dxa, dxb = a.backward(dy), b.backward(channel_major_copy(dy))
    np.testing.assert_array_equal(dxa, dxb)


def test_lrn_evaluation_keeps_nothing_unless_asked(rng) -> None:
    layer = LocalResponseNorm(3, alpha=1.0)
    x = rng.standard_normal((2, 4, 3, 3))
    y = layer.forward(x, training=False)
    with pytest.raises(RuntimeError, match="keep_for_backward=True"):
        layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(layer.forward(x, training=False, keep_for_backward=True), y)
    assert layer.backward(np.ones_like(y)).shape == x.shape
    assert layer.backward(np.ones_like(y), input_grad=False) is None
    assert layer.parameters() == [] and layer.state_dict() == {}


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 0}, r"LocalResponseNorm\(size=0\): expected size >= 1, received 0"),
    ({"size": 2.0}, r"expected size to be an integer, received 2\.0"),
    ({"size": True}, r"expected size to be an integer, received True \(bool\)"),
    ({"size": 3, "alpha": -1.0}, r"expected alpha >= 0, received -1\.0"),
    ({"size": 3, "beta": -0.5}, r"expected beta >= 0, received -0\.5"),
    ({"size": 3, "k": 0.0}, r"expected k > 0, received 0\.0"),
    ({"size": 3, "k": "1"}, r"expected k to be a real number, received '1' \(str\)"),
    ({"size": 3, "alpha": float("nan")}, r"expected a finite alpha, received nan"),
])
def test_lrn_rejects_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        LocalResponseNorm(**kwargs)


def test_lrn_rejects_bad_input_and_gradient(rng) -> None:
    layer = LocalResponseNorm(3)
    with pytest.raises(ValueError,
                       match=r"expected input of shape \(N, C, H, W\), received \(2, 3\)"):
        layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="received int64"):
        layer.forward(np.zeros((1, 2, 3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="expected a batch of at least one image"):
        layer.forward(np.zeros((0, 2, 3, 3)))
    layer.forward(rng.standard_normal((1, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"expected a gradient of shape \(1, 2, 3, 3\)"):
        layer.backward(np.zeros((1, 2, 3, 4)))


def test_lrn_config_round_trip(rng) -> None:
    layer = LocalResponseNorm(5, alpha=5e-4, beta=0.5, k=2.0)
    rebuilt = layer_from_config(layer_to_config(layer))
    assert isinstance(rebuilt, LocalResponseNorm)
    assert layer_to_config(rebuilt) == {"class": "LocalResponseNorm", "config": {
        "size": 5, "alpha": 5e-4, "beta": 0.5, "k": 2.0}}
    x = rng.standard_normal((2, 6, 3, 3))
    np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))


# -- BatchNorm2D ---------------------------------------------------------------------------

def batchnorm(channels: int, rng: np.random.Generator, dtype=np.float64, **kwargs) -> BatchNorm2D:
    """A BatchNorm2D whose weight and bias are not the trivial ones and zeros."""
    layer = BatchNorm2D(channels, dtype=dtype, **kwargs)
    layer.weight.data[...] = rng.uniform(0.5, 2.0, channels)
    layer.bias.data[...] = rng.standard_normal(channels)
    return layer


def bn_formula(x, mean, var, weight, bias, eps):
    shape = (1, -1, 1, 1)
    return ((x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * weight.reshape(shape)
            + bias.reshape(shape))


@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (1, 3, 2, 3), (5, 2, 1, 1)],
                         ids=["batch4", "batch1-spatial", "batch5-1x1"])
def test_bn_gradient_check_in_training(shape, rng) -> None:
    layer = batchnorm(shape[1], rng)
    x = rng.standard_normal(shape) * 2 + 1
    check_layer(layer, x, rng=rng).raise_if_failed()


def test_bn_gradient_check_in_evaluation_with_a_backward_pass(rng) -> None:
    layer = batchnorm(3, rng)
    layer.running_mean[...] = rng.standard_normal(3)
    layer.running_var[...] = rng.uniform(0.5, 2.0, 3)
    x = rng.standard_normal((2, 3, 3, 3))
    check_layer(layer, x, rng=rng, training=False).raise_if_failed()


def test_bn_training_normalises_with_the_biased_batch_variance(rng) -> None:
    layer = batchnorm(3, rng, eps=1e-3)
    x = rng.standard_normal((4, 3, 5, 2)) * 3 + 2
    expected = bn_formula(x, x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)),
                          layer.weight.data, layer.bias.data, 1e-3)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


def test_bn_running_statistics_use_the_unbiased_variance(rng) -> None:
    layer = batchnorm(2, rng, momentum=0.3)
    mean, var = np.zeros(2), np.ones(2)
    for _ in range(3):
        x = rng.standard_normal((3, 2, 2, 2)) * 2 + 5
        layer.forward(x)
        mean = 0.7 * mean + 0.3 * x.mean(axis=(0, 2, 3))
        var = 0.7 * var + 0.3 * x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-13)
    assert layer.num_batches_tracked.shape == () and layer.num_batches_tracked == 3
    assert layer.num_batches_tracked.dtype == np.int64


def test_bn_evaluation_uses_the_running_statistics_and_changes_nothing(rng) -> None:
    layer = batchnorm(3, rng, eps=1e-4)
    for _ in range(2):
        layer.forward(rng.standard_normal((4, 3, 2, 2)) + 1)
    before = layer.state_dict()
    x = rng.standard_normal((2, 3, 4, 4))
    y = layer.forward(x, training=False)
    np.testing.assert_allclose(y, bn_formula(x, before["running_mean"], before["running_var"],
                                             before["weight"], before["bias"], 1e-4), rtol=1e-12)
    after = layer.state_dict()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    assert layer._cache is None
    # One value per channel is fine in evaluation.
    assert layer.forward(x[:1, :, :1, :1], training=False).shape == (1, 3, 1, 1)


def test_bn_state_dict_has_pytorchs_keys_shapes_and_dtypes() -> None:
    state = BatchNorm2D(5).state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    for key in ("weight", "bias", "running_mean", "running_var"):
        assert state[key].shape == (5,) and state[key].dtype == np.float32, key
    np.testing.assert_array_equal(state["weight"], 1)
    np.testing.assert_array_equal(state["bias"], 0)
    np.testing.assert_array_equal(state["running_mean"], 0)
    np.testing.assert_array_equal(state["running_var"], 1)
    counter = state["num_batches_tracked"]
    assert counter.shape == () and counter.dtype == np.int64 and counter == 0
    assert [name for name, _ in BatchNorm2D(5).named_parameters()] == ["weight", "bias"]


def test_bn_state_dict_round_trip(rng) -> None:
    source = batchnorm(3, rng, dtype=np.float32)
    for _ in range(3):
        source.forward(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 2 + 1)
    target = BatchNorm2D(3)
    target.load_state_dict(source.state_dict())
    assert target.num_batches_tracked == 3
    x = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(target.forward(x, training=False),
                                  source.forward(x, training=False))
    with pytest.raises(ValueError, match="'num_batches_tracked': expected an integer array"):
        target.load_state_dict({**source.state_dict(), "num_batches_tracked": np.array(1.0)})


def test_bn_float32_stays_float32_and_keeps_the_variance_of_offset_data(rng) -> None:
    layer = BatchNorm2D(2)
    # A mean 2000 times the spread: E[x**2] - E[x]**2 in float32 would lose the variance,
    # and an uncorrected float32 mean (a few ulps of 1000 off) would shift every output.
    x = (rng.standard_normal((8, 2, 6, 6)) * 0.5 + 1000).astype(np.float32)
    y = layer.forward(x)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dy)
    assert y.dtype == dx.dtype == np.float32
    assert layer.weight.grad.dtype == layer.running_var.dtype == np.float32
    exact = x.astype(np.float64)
    np.testing.assert_allclose(layer.running_var,
                               0.9 + 0.1 * exact.var(axis=(0, 2, 3), ddof=1), rtol=1e-6)
    np.testing.assert_allclose(y, bn_formula(exact, exact.mean(axis=(0, 2, 3)),
                                             exact.var(axis=(0, 2, 3)), np.ones(2), np.zeros(2),
                                             1e-5), atol=5e-6)


def test_bn_results_and_memory_order_follow_the_input(rng) -> None:
    x = rng.standard_normal((3, 4, 5, 5))
    dy = rng.standard_normal(x.shape)
    for training in (True, False):
        a, b = batchnorm(4, np.random.default_rng(1)), batchnorm(4, np.random.default_rng(1))
        ya = a.forward(x, training=training, keep_for_backward=True)
        yb = b.forward(channel_major_copy(x), training=training, keep_for_backward=True)
        np.testing.assert_array_equal(ya, yb)
        assert ya.flags.c_contiguous and is_channel_major(yb)
        np.testing.assert_array_equal(a.backward(dy), b.backward(channel_major_copy(dy)))
        for pa, pb in zip(a.parameters(), b.parameters()):
            np.testing.assert_array_equal(pa.grad, pb.grad)
        np.testing.assert_array_equal(a.running_var, b.running_var)


def test_bn_backward_adds_parameter_gradients_and_can_skip_the_input(rng) -> None:
    layer = batchnorm(2, rng)
    x, dy = rng.standard_normal((3, 2, 2, 2)), rng.standard_normal((3, 2, 2, 2))
    layer.forward(x)
    layer.backward(dy)
    once = layer.weight.grad.copy(), layer.bias.grad.copy()
    assert layer.backward(dy, input_grad=False) is None
    np.testing.assert_allclose(layer.weight.grad, 2 * once[0])
    np.testing.assert_allclose(layer.bias.grad, 2 * once[1])
    np.testing.assert_allclose(once[1], dy.sum(axis=(0, 2, 3)))


def test_bn_training_without_keeping_updates_statistics_but_keeps_no_cache(rng) -> None:
    layer = BatchNorm2D(2, dtype=np.float64)
    layer.forward(rng.standard_normal((2, 2, 3, 3)) + 3, training=True, keep_for_backward=False)
    assert layer._cache is None and layer.num_batches_tracked == 1
    assert np.all(layer.running_mean > 0.1)
    with pytest.raises(RuntimeError, match="keep_for_backward=True"):
        layer.backward(np.zeros((2, 2, 3, 3)))


def test_bn_training_needs_more_than_one_value_per_channel() -> None:
    layer = BatchNorm2D(3, dtype=np.float64)
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel in training "
                                         r"mode \(N \* H \* W > 1\), received input of shape "
                                         r"\(1, 3, 1, 1\)"):
        layer.forward(np.ones((1, 3, 1, 1)))
    assert layer.num_batches_tracked == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"num_features": 0}, r"BatchNorm2D\(num_features=0\): expected num_features >= 1, received 0"),
    ({"num_features": 2.0}, r"expected num_features to be an integer, received 2\.0"),
    ({"num_features": 3, "eps": 0.0}, r"expected eps > 0, received 0\.0"),
    ({"num_features": 3, "momentum": 1.5}, r"expected momentum <= 1, received 1\.5"),
    ({"num_features": 3, "momentum": -0.1}, r"expected momentum >= 0, received -0\.1"),
    ({"num_features": 3, "dtype": np.int32}, r"expected dtype to be a floating-point dtype, "
                                             r"received int32"),
])
def test_bn_rejects_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        BatchNorm2D(**kwargs)


def test_bn_rejects_bad_input(rng) -> None:
    layer = BatchNorm2D(3)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\), "
                                         r"received \(2, 4, 5, 5\)"):
        layer.forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\), "
                                         r"received \(2, 3\)"):
        layer.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected input of dtype float32 \(the layer's dtype\), "
                                         r"received float64"):
        layer.forward(np.zeros((2, 3, 2, 2)))
    layer.forward(rng.standard_normal((2, 3, 2, 2)).astype(np.float32))
    with pytest.raises(ValueError, match=r"expected a gradient of shape \(2, 3, 2, 2\)"):
        layer.backward(np.zeros((2, 3, 2, 1), np.float32))


def test_bn_config_round_trip(rng) -> None:
    layer = BatchNorm2D(4, eps=1e-3, momentum=0.2, dtype=np.float64)
    config = layer_to_config(layer)
    assert config == {"class": "BatchNorm2D", "config": {
        "num_features": 4, "eps": 1e-3, "momentum": 0.2, "dtype": "float64"}}
    rebuilt = layer_from_config(config)
    assert isinstance(rebuilt, BatchNorm2D) and rebuilt.dtype == np.float64
    assert layer_to_config(rebuilt) == config
