"""Conv2D: gradient checks over a matrix of configurations, and the fast
(im2col) convolution against the formula written as loops and against SciPy.

    y[n, o, i, j] = b[o] + sum_c sum_m sum_k W[o, c, m, k] * Xpad[n, c, i*s + m, j*s + k]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from scipy import signal

from minidl.gradcheck import check_layer
from minidl.layers import Conv2D
from models.lenet import LENET5_C3_TABLE


@dataclass(frozen=True)
class ConvCase:
    id: str
    in_channels: int
    out_channels: int
    kernel_size: Any
    hw: tuple[int, int]
    batch: int = 2
    kwargs: dict = field(default_factory=dict)
    algorithm: str = "auto"

    def build(self, dtype: Any = np.float64, rng: Any = 0) -> Conv2D:
        conv = Conv2D(self.in_channels, self.out_channels, self.kernel_size, dtype=dtype,
                      rng=rng, **self.kwargs)
        conv.algorithm = self.algorithm
        return conv

    def input(self, rng: np.random.Generator, dtype: Any = np.float64) -> np.ndarray:
        return rng.standard_normal((self.batch, self.in_channels, *self.hw)).astype(dtype)


# Small on purpose: the whole matrix runs in well under a second.
CASES = [
    ConvCase("k3-s1-p0", 2, 3, 3, (6, 6)),
    ConvCase("k3-s2-p0", 2, 3, 3, (7, 7), kwargs=dict(stride=2)),
    ConvCase("k3-s1-p1", 2, 3, 3, (5, 5), kwargs=dict(padding=1)),
    ConvCase("k3-s2-p1", 2, 3, 3, (6, 7), kwargs=dict(stride=2, padding=1)),
    ConvCase("k3-s1-p2", 2, 2, 3, (4, 5), kwargs=dict(padding=2)),
    ConvCase("k3x2-s1-p1x0", 2, 3, (3, 2), (5, 6), kwargs=dict(padding=(1, 0))),
    # No more outputs than inputs with stride 1: dx is a correlation of dy (see backward).
    ConvCase("k3x2-s1-p1x0-fewer-outputs", 3, 2, (3, 2), (5, 6), kwargs=dict(padding=(1, 0))),
    ConvCase("k3-s1-p1-as-many-outputs", 3, 3, 3, (4, 5), kwargs=dict(padding=1)),
    ConvCase("table-s1-p1-fewer-outputs", 3, 2, 3, (5, 6),
             kwargs=dict(connections=[[1, 0, 1], [0, 1, 0]], padding=1)),
    # Padding wider than kernel - 1 with stride 1: dx is scattered, not correlated.
    ConvCase("k1x1-s1-p1", 2, 3, 1, (3, 4), kwargs=dict(padding=1)),
    ConvCase("k2x3-s1-p2x1", 2, 2, (2, 3), (4, 5), kwargs=dict(padding=(2, 1))),
    ConvCase("k3x2-nonsquare-input", 2, 3, (3, 2), (5, 7)),
    ConvCase("k2x3-s2x1-p1x0", 3, 2, (2, 3), (7, 6), kwargs=dict(stride=(2, 1), padding=(1, 0))),
    ConvCase("k3x2-s2-p2-odd-input", 1, 2, (3, 2), (7, 5), kwargs=dict(stride=2, padding=2)),
    ConvCase("k5-odd-9x7", 2, 2, 5, (9, 7), kwargs=dict(stride=2)),
    ConvCase("k1x1", 3, 4, 1, (3, 4)),
    ConvCase("kernel-covers-input", 2, 3, 4, (4, 4)),
    ConvCase("batch-of-1", 2, 3, 3, (5, 6), batch=1),
    ConvCase("groups-2", 4, 6, 3, (5, 5), kwargs=dict(groups=2, padding=1)),
    ConvCase("groups-3-s2", 3, 6, (3, 2), (7, 6), kwargs=dict(groups=3, stride=2)),
    ConvCase("groups-3-fewer-outputs", 6, 3, 3, (5, 4), kwargs=dict(groups=3)),
    ConvCase("lenet5-c3-table", 6, 16, 5, (6, 7), kwargs=dict(connections=LENET5_C3_TABLE)),
    ConvCase("table-p1-s2", 3, 2, 3, (5, 6),
             kwargs=dict(connections=[[1, 0, 1], [0, 1, 0]], stride=2, padding=1)),
    ConvCase("bias-false", 2, 3, 3, (5, 5), kwargs=dict(bias=False)),
    ConvCase("bias-false-groups-2-p1", 4, 2, 3, (4, 5), kwargs=dict(bias=False, groups=2, padding=1)),
]
# The small cases take im2col under "auto"; every stride-1 one again through the
# Fourier transform (minidl.layers.conv_fft), which the big nets' convolutions take.
CASES += [replace(case, id=f"{case.id}-fft", algorithm="fft") for case in CASES
          if case.kwargs.get("stride", 1) in (1, (1, 1))]
CASE_IDS = [case.id for case in CASES]


def randomise_bias(conv: Conv2D, rng: np.random.Generator) -> None:
    """The initial bias is zero; a random one makes the bias gradient count."""
    if conv.bias is not None:
        conv.bias.data[...] = rng.standard_normal(conv.bias.shape)


def conv_by_loops(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                  stride: tuple[int, int], padding: tuple[int, int], groups: int) -> np.ndarray:
    """The convolution formula as explicit loops, one output element at a time."""
    n_img, c_in, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    xpad = np.zeros((n_img, c_in, h + 2 * ph, w + 2 * pw))
    xpad[:, :, ph:ph + h, pw:pw + w] = x
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    out_per_group = c_out // groups
    y = np.zeros((n_img, c_out, ho, wo))
    for n in range(n_img):
        for o in range(c_out):
            group = o // out_per_group
            for i in range(ho):
                for j in range(wo):
                    total = 0.0 if bias is None else float(bias[o])
                    for c in range(c_per_group):
                        channel = group * c_per_group + c
                        for m in range(kh):
                            for k in range(kw):
                                total += weight[o, c, m, k] * xpad[n, channel, i * sh + m, j * sw + k]
                    y[n, o, i, j] = total
    return y


def conv_by_scipy(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                  stride: tuple[int, int], padding: tuple[int, int], groups: int) -> np.ndarray:
    """Sum over input maps of scipy's 2-D correlation; every s-th element for stride s."""
    (sh, sw), (ph, pw) = stride, padding
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    c_out, c_per_group = weight.shape[:2]
    out_per_group = c_out // groups
    outputs = []
    for n in range(x.shape[0]):
        maps = []
        for o in range(c_out):
            group = o // out_per_group
            acc = sum(signal.correlate(xpad[n, group * c_per_group + c], weight[o, c], mode="valid")
                      for c in range(c_per_group))[::sh, ::sw]
            maps.append(acc + (0.0 if bias is None else bias[o]))
        outputs.append(maps)
    return np.array(outputs)


def reference_args(conv: Conv2D) -> tuple:
    bias = None if conv.bias is None else conv.bias.data
    return conv.weight.data, bias, conv.stride, conv.padding, conv.groups


# -- gradient checks ------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradcheck_input_weight_and_bias(case: ConvCase, rng: np.random.Generator) -> None:
    conv = case.build(rng=rng)
    randomise_bias(conv, rng)
    result = check_layer(conv, case.input(rng), rng=rng, eps=1e-6, tolerance=1e-6)
    result.raise_if_failed()
    checked = {entry.name for entry in result.entries}
    assert checked == {"input", "weight"} | ({"bias"} if conv.bias is not None else set())


# -- the fast convolution against the formula -------------------------------------

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_matches_the_formula_as_loops(case: ConvCase, rng: np.random.Generator) -> None:
    conv = case.build(rng=rng)
    randomise_bias(conv, rng)
    x = case.input(rng)
    np.testing.assert_allclose(conv.forward(x), conv_by_loops(x, *reference_args(conv)),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_matches_scipy_correlate_summed_over_maps(case: ConvCase,
                                                          rng: np.random.Generator) -> None:
    conv = case.build(rng=rng)
    randomise_bias(conv, rng)
    x = case.input(rng)
    np.testing.assert_allclose(conv.forward(x), conv_by_scipy(x, *reference_args(conv)),
                               rtol=1e-12, atol=1e-12)


def test_loops_and_scipy_references_agree_with_each_other(rng: np.random.Generator) -> None:
    # Guards the references themselves: two independent formulations of one formula.
    x = rng.standard_normal((2, 4, 7, 6))
    weight = rng.standard_normal((6, 2, 3, 2))
    bias = rng.standard_normal(6)
    a = conv_by_loops(x, weight, bias, (2, 1), (1, 2), 2)
    b = conv_by_scipy(x, weight, bias, (2, 1), (1, 2), 2)
    assert a.shape == (2, 6, 4, 9)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("algorithm", ["im2col", "fft"])
def test_input_gradient_matches_the_transposed_formula(algorithm: str,
                                                       rng: np.random.Generator) -> None:
    """dx is the full correlation of dy with the flipped kernel (stride 1), summed over outputs."""
    conv = Conv2D(3, 4, (3, 2), dtype=np.float64, rng=rng)
    conv.algorithm = algorithm
    x = rng.standard_normal((2, 3, 6, 5))
    conv.forward(x)
    dy = rng.standard_normal((2, 4, 4, 4))
    dx = conv.backward(dy)
    w = conv.weight.data
    expected = np.zeros_like(x)
    for n in range(2):
        for c in range(3):
            expected[n, c] = sum(signal.convolve(dy[n, o], w[o, c], mode="full") for o in range(4))
    np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-12)
    # The weight gradient is the valid correlation of the input with dy.
    dw = np.array([[sum(signal.correlate(x[n, c], dy[n, o], mode="valid") for n in range(2))
                    for c in range(3)] for o in range(4)])
    np.testing.assert_allclose(conv.weight.grad, dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, dy.sum(axis=(0, 2, 3)), rtol=1e-12)


# -- shapes and bookkeeping -----------------------------------------------------------

@pytest.mark.parametrize("hw, kernel, stride, padding, expected", [
    ((28, 28), 5, 1, 2, (28, 28)),
    ((28, 28), 5, 1, 0, (24, 24)),
    ((32, 32), 5, 1, 0, (28, 28)),
    ((7, 6), (3, 2), 2, 1, (4, 4)),
    ((8, 5), 3, (3, 2), (0, 1), (2, 3)),
    ((5, 5), 5, 1, 0, (1, 1)),
], ids=["mnist-same", "mnist-valid", "lenet5-c1", "nonsquare-s2-p1", "stride3x2", "one-by-one"])
def test_output_size_follows_the_floor_formula(hw, kernel, stride, padding, expected,
                                              rng: np.random.Generator) -> None:
    conv = Conv2D(2, 3, kernel, stride=stride, padding=padding, rng=rng)
    y = conv.forward(rng.standard_normal((2, 2, *hw)).astype(np.float32))
    assert y.shape == (2, 3, *expected)
    kh, kw = conv.kernel_size
    assert conv.weight.shape == (3, 2, kh, kw)


def test_weight_layout_matches_pytorch_and_caffe() -> None:
    conv = Conv2D(6, 12, (5, 3), groups=3, rng=0)
    assert conv.weight.shape == (12, 2, 5, 3)   # (out, in // groups, kh, kw)
    assert conv.bias.shape == (12,)
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]
    assert conv.num_parameters() == 12 * 2 * 5 * 3 + 12


def test_bias_false_has_no_bias_parameter(rng: np.random.Generator) -> None:
    conv = Conv2D(2, 3, 3, bias=False, dtype=np.float64, rng=rng)
    assert conv.bias is None
    assert [name for name, _ in conv.named_parameters()] == ["weight"]
    x = rng.standard_normal((1, 2, 4, 4))
    np.testing.assert_allclose(conv.forward(x), conv_by_loops(x, conv.weight.data, None, (1, 1),
                                                              (0, 0), 1), rtol=1e-12, atol=1e-12)


def test_connection_table_zeroes_unconnected_weights_and_counts_only_connected() -> None:
    conv = Conv2D(6, 16, 5, connections=LENET5_C3_TABLE, rng=0)
    mask = conv.weight.mask
    assert mask.shape == conv.weight.shape
    assert np.array_equal(mask[:, :, 0, 0], LENET5_C3_TABLE)
    assert np.all(conv.weight.data[~mask] == 0)
    assert np.all(conv.weight.data[mask] != 0)
    # LeNet-5's C3 has 1,516 trainable parameters (60 kernels of 5x5, 16 biases).
    assert int(LENET5_C3_TABLE.sum()) == 60
    assert conv.num_parameters() == 60 * 25 + 16 == 1516


def test_weights_written_into_unconnected_slots_have_no_effect(rng: np.random.Generator) -> None:
    table = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    conv = Conv2D(2, 3, 3, connections=table, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 2, 5, 5))
    before = conv.forward(x)
    conv.weight.data[0, 1] = 100.0     # an unconnected pair, written by hand
    np.testing.assert_array_equal(conv.forward(x), before)


def test_input_grad_false_returns_none_and_same_parameter_grads(rng: np.random.Generator) -> None:
    conv = Conv2D(2, 4, 3, stride=2, padding=1, groups=2, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 2, 5, 6))
    dy = rng.standard_normal(conv.forward(x).shape)
    conv.backward(dy)
    grads = [p.grad.copy() for p in conv.parameters()]
    conv.zero_grad()
    assert conv.backward(dy, input_grad=False) is None
    for p, g in zip(conv.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)


def test_backward_leaves_its_arguments_untouched(rng: np.random.Generator) -> None:
    conv = Conv2D(2, 3, 3, padding=1, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 2, 4, 4))
    x_copy = x.copy()
    dy = rng.standard_normal(conv.forward(x).shape)
    dy_copy = dy.copy()
    conv.backward(dy)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dy, dy_copy)


def test_float32_result_is_close_to_float64(rng: np.random.Generator) -> None:
    conv64 = Conv2D(3, 5, 3, padding=1, dtype=np.float64, rng=1)
    conv32 = Conv2D(3, 5, 3, padding=1, rng=1)
    conv32.load_state_dict(conv64.state_dict())
    x = rng.standard_normal((2, 3, 6, 6))
    y32 = conv32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, conv64.forward(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel, padding", [(1, 1), (3, 1), (1, 0)])
def test_what_forward_keeps_survives_a_later_forward_pass(kernel, padding, rng) -> None:
    # A 1x1 kernel made the kept columns a view of the reused padding buffer: a later
    # forward pass (an inspection tool's, say) rewrote them under the first one's backward.
    conv = Conv2D(2, 3, kernel, padding=padding, rng=0, dtype=np.float64)
    x = rng.standard_normal((2, 2, 4, 4))
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape)
    conv.backward(dy)
    expected = conv.weight.grad.copy()
    conv.zero_grad()
    conv.forward(x)
    kept = conv._cache
    conv.forward(5 * x, keep_for_backward=False)
    conv._cache = kept
    conv.backward(dy)
    np.testing.assert_array_equal(conv.weight.grad, expected)


# -- the two algorithms --------------------------------------------------------------

@pytest.mark.parametrize("in_channels, out_channels, kernel, padding, hw, fft", [
    (32, 32, 5, 2, (16, 16), True),    # cuda-convnet 80sec's conv2
    (32, 64, 5, 2, (8, 8), True),      # its conv3
    (3, 32, 5, 2, (32, 32), False),    # its conv1: three maps in, transforms dominate
    (64, 128, 3, 1, (8, 8), False),    # the two-column net's conv3: 3x3 kernels
    (1, 6, 5, 2, (28, 28), False),     # LeNet's conv1
    (6, 16, 5, 0, (14, 14), False),    # LeNet's conv2
], ids=["80sec-conv2", "80sec-conv3", "80sec-conv1", "3x3-on-8x8", "lenet-conv1", "lenet-conv2"])
def test_auto_takes_the_fourier_transform_only_where_it_costs_less(
        in_channels, out_channels, kernel, padding, hw, fft) -> None:
    conv = Conv2D(in_channels, out_channels, kernel, padding=padding)
    batch = (128, in_channels) + hw
    assert conv.uses_fft(batch) is fft
    # A few images do not pay for transforming the kernels.
    assert not conv.uses_fft((2, in_channels) + hw)
    assert not Conv2D(in_channels, out_channels, kernel, stride=2, padding=padding).uses_fft(batch)
    conv.algorithm = "im2col"
    assert not conv.uses_fft(batch)


def test_fft_needs_stride_1_and_a_known_algorithm() -> None:
    with pytest.raises(ValueError, match=r"expected stride \(1, 1\).*received stride \(2, 2\)"):
        Conv2D(2, 2, 3, stride=2).algorithm = "fft"
    with pytest.raises(ValueError, match="algorithm"):
        Conv2D(2, 2, 3).algorithm = "winograd"


def test_fft_and_im2col_agree_in_float32_at_the_size_of_a_real_net(
        rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 32, 16, 16)).astype(np.float32)
    results = []
    for algorithm in ("im2col", "fft"):
        conv = Conv2D(32, 32, 5, padding=2, rng=0)
        conv.algorithm = algorithm
        y = conv.forward(x)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        dx = conv.backward(dy)
        assert y.dtype == dx.dtype == conv.weight.grad.dtype == np.float32
        results.append((y, dx, conv.weight.grad, conv.bias.grad))
    for a, b in zip(*results):
        # Relative to the largest value: the transform spreads rounding over a whole map.
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * np.abs(b).max())
