"""minidl.inspect: receptive fields, top patches, saliency, guided backprop and deconvnet,
activation maximisation, occlusion and weight statistics.

Small float64 nets, checked against brute force, central differences or values
computed by hand. One of them holds a Dropout layer: the tools run in evaluation
mode, so they give the same answer twice and the answer of a dropout-free pass.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from minidl import Graph, Sequential, inspect, to_json
from minidl.layers import (Add, AvgPool2D, Concat, Conv2D, Dense, Dropout, Flatten, MaxPool2D,
                           ReLU, Tanh)
from minidl.layers.base import Layer, keeps
from minidl.losses import SoftmaxCrossEntropy, softmax
from minidl.viz.features import trace

F64 = dict(dtype=np.float64)


def small_net(seed: int = 0) -> Sequential:
    """2x8x8 images -> 3 classes, with a Dropout that only training would apply."""
    rng = np.random.default_rng(seed)
    return Sequential(
        Conv2D(2, 4, 3, padding=1, rng=rng, **F64), ReLU(), MaxPool2D(2),   # 4 x 4x4
        Conv2D(4, 5, 3, rng=rng, **F64), ReLU(), Dropout(0.5, rng=seed),     # 5 x 2x2
        Flatten(), Dense(20, 3, rng=rng, **F64))


def graph_net(seed: int = 0) -> Graph:
    """1x6x6 images -> 4 classes: a stem, two 3x3 branches (one a nested Sequential), a sum."""
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add("stem", Conv2D(1, 3, 3, padding=1, rng=rng, **F64), "input")
    g.add("relu", ReLU(), "stem")
    g.add("a", Conv2D(3, 3, 3, padding=1, rng=rng, **F64), "relu")
    g.add("b", Sequential(Conv2D(3, 3, 3, padding=1, rng=rng, **F64), Tanh()), "relu")
    g.add("sum", Add(), ["a", "b"])
    g.add("pool", MaxPool2D(2), "sum")
    g.add("flat", Flatten(), "pool")
    g.add("fc", Dense(27, 4, rng=rng, **F64), "flat")
    return g


def prefix(model: Sequential, name: str, x: np.ndarray, keep: bool = False) -> tuple:
    """The layers of a Sequential up to ``name`` and its output, run one by one in eval mode."""
    layers = []
    for child_name, layer in model.named_children():
        x = layer.forward(x, training=False, keep_for_backward=keep)
        layers.append(layer)
        if child_name == name:
            return layers, x
    raise KeyError(name)


# ----------------------------------------------------------------- receptive field
def test_receptive_field_composes_convolutions_and_pooling_by_hand() -> None:
    model = Sequential(Conv2D(1, 2, 5, padding=2, **F64), ReLU(), MaxPool2D(2),
                       Conv2D(2, 2, 3, stride=2, padding=1, **F64),
                       AvgPool2D(3, stride=2, padding=1))
    expected = {  # size, stride, offset: the window grows by (k - 1) steps and starts p steps early
        "conv1": ((5, 5), (1, 1), (-2, -2)),
        "relu1": ((5, 5), (1, 1), (-2, -2)),
        "pool1": ((6, 6), (2, 2), (-2, -2)),
        "conv2": ((10, 10), (4, 4), (-4, -4)),
        "pool2": ((18, 18), (8, 8), (-8, -8)),
    }
    for name, (size, stride, offset) in expected.items():
        assert inspect.receptive_field(model, name) == inspect.ReceptiveField(size, stride, offset)
    field = inspect.receptive_field(model, "conv2")
    assert field.window(0, 0, (28, 28)) == (slice(0, 6), slice(0, 6))       # clipped top-left
    assert field.window(2, 6, (28, 28)) == (slice(4, 14), slice(20, 28))    # clipped right
    with pytest.raises(ValueError, match="overlaps the 28x28 image"):
        field.window(9, 0, (28, 28))


def test_receptive_field_is_exactly_where_the_input_reaches_each_position(rng) -> None:
    # A linear net: the gradient of one output position is nonzero exactly on its window.
    model = Sequential(Conv2D(2, 3, (3, 5), stride=(1, 2), padding=(1, 2), rng=rng, **F64),
                       AvgPool2D(2, stride=1), Conv2D(3, 2, 3, stride=2, padding=1, rng=rng, **F64),
                       AvgPool2D(3, stride=2, padding=1))
    x = rng.standard_normal((1, 2, 13, 17))
    for name in ("conv1", "pool1", "conv2", "pool2"):
        field = inspect.receptive_field(model, name)
        layers, y = prefix(model, name, x, keep=True)
        for i, j in np.ndindex(*y.shape[2:]):
            dy = np.zeros_like(y)
            dy[0, 1, i, j] = 1
            for layer in reversed(layers):
                dy = layer.backward(dy)
            reached = np.abs(dy[0]).max(axis=0) > 0
            rows, cols = field.window(i, j, x.shape[2:])
            expected = np.zeros_like(reached)
            expected[rows, cols] = True
            np.testing.assert_array_equal(reached, expected, err_msg=f"{name} at {(i, j)}")


def test_receptive_field_in_a_graph_needs_branches_that_agree() -> None:
    g = graph_net()
    three = inspect.ReceptiveField((3, 3), (1, 1), (-1, -1))
    five = inspect.ReceptiveField((5, 5), (1, 1), (-2, -2))
    assert inspect.receptive_field(g, "stem") == three
    assert inspect.receptive_field(g, "b.conv1") == five
    assert inspect.receptive_field(g, "sum") == five
    assert inspect.receptive_field(g, "pool") == inspect.ReceptiveField((6, 6), (2, 2), (-2, -2))

    residual = Graph()
    residual.add("conv", Conv2D(1, 1, 3, padding=1, **F64), "input")
    residual.add("sum", Add(), ["conv", "input"])
    residual.add("cat", Concat(axis=2), ["conv", "conv"])
    assert inspect.receptive_field(residual, "conv") == three
    with pytest.raises(ValueError, match="branches joined by 'sum' see different input windows"):
        inspect.receptive_field(residual, "sum")
    with pytest.raises(ValueError, match="'cat' concatenates along axis 2, not channels"):
        inspect.receptive_field(residual, "cat")


@pytest.mark.parametrize("name, match", [
    ("flatten1", r"'flatten1' \(Flatten\) does not output feature maps"),
    ("fc1", r"received 'fc1': 'flatten1' \(Flatten\) does not output feature maps"),
    ("conv9", r"expected layer_name to be one of 'conv1', 'relu1', .*received 'conv9'"),
    (3, r"expected layer_name to be one of .*received 3$"),
])
def test_receptive_field_refuses_what_has_none(name, match) -> None:
    with pytest.raises(ValueError, match=match):
        inspect.receptive_field(small_net(), name)


class _Residual(Layer):
    """A user layer whose sublayers are wired by its own forward (base.py's example).

    (Named with a leading underscore: kept out of the layer names a config may use.)
    """

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        self.conv = Conv2D(2, 2, 3, padding=1, rng=rng, **F64)
        self.relu = ReLU()

    def forward(self, x, training=True, keep_for_backward=None):
        return x + self.relu.forward(self.conv.forward(x, training, keep_for_backward),
                                     training, keep_for_backward)

    def backward(self, dy, *, input_grad=True):
        return dy + self.conv.backward(self.relu.backward(dy))


def test_layers_inside_a_user_layer_can_be_inspected_but_have_no_receptive_field(rng) -> None:
    model = Sequential(("res", _Residual(rng)), Flatten(), Dense(32, 3, rng=rng, **F64))
    with pytest.raises(ValueError, match=r"'res' \(_Residual\) has sublayers wired by its own"):
        inspect.receptive_field(model, "res")
    with pytest.raises(ValueError, match="'res.conv' sits inside a layer with sublayers"):
        inspect.receptive_field(model, "res.conv")

    x = rng.standard_normal((1, 2, 4, 4))
    np.testing.assert_allclose(inspect.saliency(model, x, [1]),
                               np.abs(numeric_gradient(model, x, [1])).max(axis=1),
                               rtol=1e-6, atol=1e-9)
    result = inspect.maximize(model, "res.conv", 1, (2, 4, 4), steps=2, blur=0.0, jitter=0, rng=0,
                              start=0.01)
    start = np.random.default_rng(0).normal(0.0, 0.01, (1, 2, 4, 4))
    conv = model["res"].conv
    assert result.objective[0] == pytest.approx(conv.forward(start)[0, 1].mean(), rel=1e-12)
    assert "forward" not in vars(conv) and "backward" not in vars(conv)


# --------------------------------------------------------------------- top patches
def brute_force_top(maps: np.ndarray, k: int) -> tuple[list, list, list]:
    """Per channel: sort images by (max activation descending, index ascending)."""
    n, c = maps.shape[:2]
    indices, positions, values = [], [], []
    for ch in range(c):
        best = [(maps[n_, ch].max(), n_) for n_ in range(n)]
        chosen = [n_ for _, n_ in sorted(best, key=lambda t: (-t[0], t[1]))[:k]]
        indices.append(chosen)
        positions.append([np.unravel_index(maps[n_, ch].argmax(), maps.shape[2:]) for n_ in chosen])
        values.append([maps[n_, ch].max() for n_ in chosen])
    return indices, positions, values


def crop_by_padding(image: np.ndarray, field: inspect.ReceptiveField, i: int, j: int,
                    fill: float) -> np.ndarray:
    pad = max(field.size)
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    top, left = (o + p * s + pad for o, p, s in zip(field.offset, (i, j), field.stride))
    return padded[:, top:top + field.size[0], left:left + field.size[1]]


@pytest.mark.parametrize("layer_name", ["conv1", "pool1", "relu2"])
def test_top_patches_match_brute_force(layer_name, rng) -> None:
    model = small_net()
    images = rng.standard_normal((23, 2, 8, 8))
    images[4] *= 3                       # zero biases: image 4 tops every channel, and its
    images[[9, 14]] = images[4]          # copies tie with it: the lower index comes first
    result = inspect.top_patches(model, layer_name, images, k=4, batch_size=5, fill=-7.0)

    # Batched alike, so that the copies' activations are equal to the last bit here too.
    maps = np.concatenate([prefix(model, layer_name, images[s:s + 5])[1] for s in range(0, 23, 5)])
    indices, positions, values = brute_force_top(maps, 4)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_array_equal(result.positions, positions)
    np.testing.assert_array_equal(result.values, values)
    field = inspect.receptive_field(model, layer_name)
    assert result.receptive_field == field and result.fill == -7.0
    assert result.crops.shape == (maps.shape[1], 4, 2) + field.size
    for ch, r in np.ndindex(*result.indices.shape):
        expected = crop_by_padding(images[indices[ch][r]], field, *positions[ch][r], -7.0)
        np.testing.assert_array_equal(result.crops[ch, r], expected)
    assert any(list(row[:3]) == [4, 9, 14] for row in result.indices)    # the tie was tested

    again = inspect.top_patches(model, layer_name, images, k=4, batch_size=5, fill=-7.0)
    np.testing.assert_array_equal(again.indices, result.indices)
    np.testing.assert_array_equal(again.crops, result.crops)


def test_top_patches_of_a_nested_graph_layer_match_a_traced_forward_pass(rng) -> None:
    g = graph_net()
    images = rng.standard_normal((11, 1, 6, 6))
    result = inspect.top_patches(g, "b.conv1", images, k=3, batch_size=4)
    maps = np.stack([next(r.output[0] for r in trace(g, image) if r.name == "b.conv1")
                     for image in images])
    indices, positions, values = brute_force_top(maps, 3)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_array_equal(result.positions, positions)
    np.testing.assert_allclose(result.values, values, rtol=1e-12)
    field = inspect.receptive_field(g, "b.conv1")
    expected = crop_by_padding(images[indices[0][0]], field, *positions[0][0], 0.0)
    np.testing.assert_array_equal(result.crops[0, 0], expected)          # the default fill: 0


# ------------------------------------------------------------------------ saliency
def numeric_gradient(model, x: np.ndarray, targets: list[int], eps: float = 1e-6) -> np.ndarray:
    """Central differences of logit[n, targets[n]] with respect to every input entry."""
    grad = np.zeros_like(x)
    rows = np.arange(len(x))
    for index in np.ndindex(*x.shape[1:]):
        for sign in (1, -1):
            shifted = x.copy()
            shifted[(slice(None),) + index] += sign * eps
            scores = model.forward(shifted, training=False)
            grad[(slice(None),) + index] += sign * scores[rows, targets]
    return grad / (2 * eps)


@pytest.mark.parametrize("make, shape", [(small_net, (2, 2, 8, 8)), (graph_net, (2, 1, 6, 6))],
                         ids=["sequential-dropout", "graph"])
def test_saliency_is_the_largest_absolute_derivative_over_channels(make, shape, rng) -> None:
    model = make()
    x = rng.standard_normal(shape)
    targets = [2, 0]
    result = inspect.saliency(model, x, targets)
    expected = np.abs(numeric_gradient(model, x, targets)).max(axis=1)
    assert result.shape == (2,) + shape[2:]
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-9)
    assert np.abs(result).max() > 1e-3                                     # not vacuous
    np.testing.assert_allclose(inspect.saliency(model, x[1], 0), result[1], rtol=1e-12)
    np.testing.assert_array_equal(inspect.saliency(model, x, targets), result)   # eval: same twice


# ---------------------------------------------- guided backpropagation and deconvnet
def hand_net() -> Sequential:
    """Two pixels [a, b] -> 1x1 conv to 3 maps -> ReLU -> max over the pair -> one score.

    With x = [1, -2]: pre-activations [1, -2], [-1, 2], [-9, -12]; each map's pool
    switch is at position 0, 1 and 0 (the first of two zeros); the score's weights
    [3, -4, 5] arrive at the ReLU outputs as [3, 0], [0, -4], [5, 0]:

    * gradient: [3, 0], [0, -4], [0, 0] pass (input > 0) -> dx = [3, 4]
    * guided:   [3, 0] passes (input > 0 and gradient > 0) -> dx = [3, 0]
    * deconvnet: [3, 0], [0, 0], [5, 0] pass (gradient > 0) -> dx = [3 + 5, 0]
    """
    conv = Conv2D(1, 3, 1, **F64)
    conv.weight.data[:] = np.array([1.0, -1.0, 1.0]).reshape(3, 1, 1, 1)
    conv.bias.data[:] = [0.0, 0.0, -10.0]
    dense = Dense(3, 1, bias=False, **F64)
    dense.weight.data[:] = [[3.0, -4.0, 5.0]]
    return Sequential(conv, ReLU(), MaxPool2D((1, 2)), Flatten(), dense)


@pytest.mark.parametrize("tool, expected", [
    (inspect.guided_backprop, [3.0, 0.0]),
    (inspect.deconvnet, [8.0, 0.0]),
])
def test_guided_backprop_and_deconvnet_by_hand(tool, expected) -> None:
    model = hand_net()
    x = np.array([[[1.0, -2.0]]])                                           # (C, H, W) = (1, 1, 2)
    np.testing.assert_array_equal(tool(model, x, 0), np.reshape(expected, (1, 1, 2)))
    np.testing.assert_array_equal(inspect.saliency(model, x, 0), [[3.0, 4.0]])
    batch = np.stack([x, -x])
    assert tool(model, batch, [0, 0]).shape == (2, 1, 1, 2)
    np.testing.assert_array_equal(tool(model, batch, 0)[0], np.reshape(expected, (1, 1, 2)))
    assert all(relu.backward_rule == "gradient" for relu in model if isinstance(relu, ReLU))


def test_relu_backward_rule_is_an_inspection_setting_that_is_always_restored() -> None:
    g = graph_net()
    relus = [m for m in g.modules() if isinstance(m, ReLU)]
    relus[0].backward_rule = "deconvnet"             # a previous setting comes back, not a default
    with pytest.raises(RuntimeError, match="inside"):
        with inspect.relu_backward_rule(g, "guided"):
            assert [r.backward_rule for r in relus] == ["guided"]
            raise RuntimeError("inside")
    assert [r.backward_rule for r in relus] == ["deconvnet"]
    assert ReLU().backward_rule == "gradient"
    assert to_json(ReLU()) == '{"class": "ReLU", "config": {}}'      # not part of the layer
    with pytest.raises(ValueError, match=r"ReLU\(\): expected backward_rule to be one of "
                                         r"'gradient', 'guided', 'deconvnet', received 'guide'"):
        ReLU().backward_rule = "guide"
    with pytest.raises(ValueError, match="relu_backward_rule: expected rule to be one of"):
        with inspect.relu_backward_rule(g, "zeiler"):
            pass


# ------------------------------------------------------------ activation maximisation
NORMALISED_RANGE = ([-0.5, -1.0], [2.5, 1.0])    # per channel: (0 - mean) / std, (1 - mean) / std


@pytest.mark.parametrize("layer_name, channel", [("conv2", 1), ("fc1", 2)])
def test_maximize_raises_the_objective_within_the_pixel_range(layer_name, channel) -> None:
    model = small_net()
    result = inspect.maximize(model, layer_name, channel, (2, 8, 8), steps=40, lr=0.1, l2=1e-3,
                              blur=0.5, blur_every=4, jitter=1, clip=NORMALISED_RANGE, rng=3)
    assert result.image.shape == (2, 8, 8) and result.image.dtype == np.float64
    assert result.objective.shape == (40,)
    assert result.objective[-5:].mean() > result.objective[:5].mean() + 0.5
    low, high = (np.reshape(bound, (2, 1, 1)) for bound in NORMALISED_RANGE)
    assert (result.image >= low).all() and (result.image <= high).all()
    assert ((result.image == low) | (result.image == high)).any()          # the range binds


def test_one_maximize_step_by_hand() -> None:
    # Shift, gradient, shift back, normalised step, L2 decay, blur: for one of the shifts.
    model = small_net()
    lr, l2, sigma = 0.3, 0.1, 0.7
    result = inspect.maximize(model, "conv2", 2, (2, 8, 8), steps=1, lr=lr, l2=l2, blur=sigma,
                              blur_every=1, jitter=2, rng=4, start=0.01)
    x0 = np.random.default_rng(4).normal(0.0, 0.01, (2, 8, 8))     # the small random start
    matches = []
    for shift in itertools.product(range(-2, 3), repeat=2):
        layers, y = prefix(model, "conv2", np.roll(x0, shift, axis=(1, 2))[None], keep=True)
        dy = np.zeros_like(y)
        dy[0, 2] = 1 / y[0, 2].size
        for layer in reversed(layers):
            dy = layer.backward(dy)
        g = np.roll(dy[0], (-shift[0], -shift[1]), axis=(1, 2))
        expected = gaussian_filter((x0 + lr * g / np.sqrt(np.mean(g * g))) * (1 - l2),
                                   (0, sigma, sigma))
        if np.allclose(result.image, expected, rtol=1e-10, atol=1e-13):
            matches.append(shift)
            assert result.objective[0] == pytest.approx(y[0, 2].mean(), rel=1e-12)
    assert len(matches) == 1 and matches != [(0, 0)]


def test_maximize_is_deterministic_for_a_seed() -> None:
    model = graph_net()
    kwargs = dict(steps=12, jitter=2, clip=(-1.0, 1.0))
    first = inspect.maximize(model, "sum", 2, (1, 6, 6), rng=5, **kwargs)
    second = inspect.maximize(model, "sum", 2, (1, 6, 6), rng=np.random.default_rng(5), **kwargs)
    other = inspect.maximize(model, "sum", 2, (1, 6, 6), rng=6, **kwargs)
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.objective, second.objective)
    assert np.abs(first.image - other.image).max() > 1e-3


def test_maximize_objective_is_the_mean_of_the_channel_and_the_logit() -> None:
    model = small_net()
    for name, channel in [("conv2", 3), ("fc1", 1)]:
        result = inspect.maximize(model, name, channel, (2, 8, 8), steps=1, blur=0.0, jitter=0,
                                  rng=0, start=0.01)
        start = np.random.default_rng(0).normal(0.0, 0.01, (1, 2, 8, 8))
        out = prefix(model, name, start)[1]
        assert result.objective[0] == pytest.approx(out[0, channel].mean(), rel=1e-12)


# ------------------------------------------------------------------------ occlusion
def test_occlusion_matches_a_direct_loop(rng) -> None:
    model = small_net()
    x = rng.standard_normal((2, 8, 8))
    fill = [0.5, -0.25]
    result = inspect.occlusion(model, x, 1, patch=3, stride=2, fill=fill, batch_size=4)
    p = softmax(model.forward(x[None], training=False))[0, 1]
    expected = np.zeros((3, 3))                       # (8 - 3) // 2 + 1 places each way
    for i in range(3):
        for j in range(3):
            covered = x.copy()
            for c in range(2):
                covered[c, 2 * i:2 * i + 3, 2 * j:2 * j + 3] = fill[c]
            expected[i, j] = p - softmax(model.forward(covered[None], training=False))[0, 1]
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-15)
    assert np.abs(expected).max() > 1e-4
    np.testing.assert_array_equal(inspect.occlusion(model, x, 1, 3, 2, fill, 4), result)
    assert inspect.occlusion(model, x, 1, patch=8).shape == (1, 1)


# --------------------------------------------------------------- weight statistics
def test_weight_gradients_are_one_training_step_that_leaves_training_undisturbed(rng) -> None:
    x, y = rng.standard_normal((6, 2, 8, 8)), rng.integers(0, 3, 6)
    inspected, control = small_net(seed=1), small_net(seed=1)
    loss = SoftmaxCrossEntropy()
    stale = [rng.standard_normal(p.shape) for p in inspected.parameters()]
    for p, g in zip(inspected.parameters(), stale):
        p.grad[...] = g

    grads = inspect.weight_gradients(inspected, loss, x, y)

    assert list(grads) == ["conv1", "conv2"]
    for p, g in zip(inspected.parameters(), stale):                        # grads given back
        np.testing.assert_array_equal(p.grad, g)
    control.zero_grad()                                                     # the step by hand,
    loss.forward(control.forward(x), y)                                     # dropout on
    control.backward(loss.backward())
    np.testing.assert_allclose(grads["conv1"], control["conv1"].weight.grad, rtol=1e-12)
    np.testing.assert_allclose(grads["conv2"], control["conv2"].weight.grad, rtol=1e-12)
    # The dropout generator was rewound: the next training step is the control's first one.
    inspected.zero_grad()
    loss.forward(inspected.forward(x), y)
    inspected.backward(loss.backward())
    np.testing.assert_array_equal(inspected["conv2"].weight.grad, control["conv2"].weight.grad)


class _RunningMean(Layer):
    """The identity, tracking its inputs' mean in training as batch norm's running statistics do.

    (Named with a leading underscore: kept out of the layer names a config may use.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("running_mean", np.zeros(1))
        self.register_buffer("count", np.array(0))

    def forward(self, x, training=True, keep_for_backward=None):
        if training:
            self.running_mean = 0.9 * self.running_mean + 0.1 * x.mean()   # a new array
            self.count += 1                                                # in place
        self._cache = () if keeps(training, keep_for_backward) else None
        return x

    def backward(self, dy, *, input_grad=True):
        self._saved()
        return dy if input_grad else None


def test_weight_gradients_give_back_the_buffers_a_training_pass_updates(rng) -> None:
    model = Sequential(_RunningMean(), Conv2D(1, 2, 3, rng=rng, **F64), Flatten(),
                       Dense(8, 2, rng=rng, **F64))
    tracker = model[0]
    model.forward(rng.standard_normal((2, 1, 4, 4)))                       # one training pass
    before, running_mean = model.state_dict(), tracker.running_mean
    inspect.weight_gradients(model, SoftmaxCrossEntropy(), rng.standard_normal((3, 1, 4, 4)),
                             np.array([0, 1, 1]))
    after = model.state_dict()
    assert {"layer1.running_mean", "layer1.count"} <= set(after) and list(after) == list(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    assert tracker.running_mean is running_mean and int(tracker.count) == 1


def test_weight_statistics_by_hand() -> None:
    table = np.array([[1, 0], [1, 1]], bool)
    model = Sequential(Conv2D(2, 2, 1, connections=table, **F64), ReLU(), Flatten(),
                       Dense(2, 2, **F64))
    conv, dense = model["conv1"], model["fc1"]
    conv.weight.data[:] = (np.array([[2.0, 99.0], [-4.0, 6.0]]) * table).reshape(2, 2, 1, 1)
    conv.weight.grad[:] = np.array([[0.3, 0.0], [0.0, -0.6]]).reshape(2, 2, 1, 1)
    dense.weight.data[:] = 0.0
    stats = inspect.weight_statistics(model)
    assert [s.name for s in stats] == ["conv1", "fc1"]
    assert stats[0].mean_abs_weight == pytest.approx(4.0)                   # the absent entry
    assert stats[0].mean_abs_grad == pytest.approx(0.3)                     # is left out
    assert stats[0].ratio == pytest.approx(0.075)
    assert (stats[1].mean_abs_weight, stats[1].ratio) == (0.0, 0.0)         # 0 / 0: nothing moves
    dense.weight.grad[:] = 1.0
    assert inspect.weight_statistics(model)[1].ratio == float("inf")


# ------------------------------------------------------------ the model is left alone
TOOLS = {
    "top_patches": lambda m, x: inspect.top_patches(m, "relu2", x, k=2, batch_size=2),
    "saliency": lambda m, x: inspect.saliency(m, x, 1),
    "guided_backprop": lambda m, x: inspect.guided_backprop(m, x, 1),
    "maximize": lambda m, x: inspect.maximize(m, "conv2", 0, (2, 8, 8), steps=3, rng=0),
    "occlusion": lambda m, x: inspect.occlusion(m, x[0], 1, patch=4, stride=4),
}


@pytest.mark.parametrize("tool", list(TOOLS.values()), ids=list(TOOLS))
def test_inspection_between_forward_and_backward_changes_nothing(tool, rng) -> None:
    model, control = small_net(), small_net()
    x, y = rng.standard_normal((3, 2, 8, 8)), rng.integers(0, 3, 3)
    steps = []
    for net, inspect_now in ((model, True), (control, False)):
        loss = SoftmaxCrossEntropy()
        value = loss.forward(net.forward(x), y)
        if inspect_now:
            tool(net, x)
        net.backward(loss.backward())
        steps.append((value, [p.grad.copy() for p in net.parameters()],
                      net["dropout1"].rng.random()))
    assert steps[0][0] == steps[1][0]
    for a, b in zip(steps[0][1], steps[1][1]):
        np.testing.assert_array_equal(a, b)
    assert steps[0][2] == steps[1][2]
    assert "forward" not in vars(model["relu2"]) and "forward" not in vars(model["conv2"])


# ----------------------------------------------------------------- bad arguments
X = np.zeros((2, 8, 8))


@pytest.mark.parametrize("call, match", [
    (lambda m: inspect.top_patches(m, "conv7", X[None]), r"top_patches: expected layer_name"),
    (lambda m: inspect.top_patches(m, "conv1", X), r"expected images of shape \(N, C, H, W\), "
                                                    r"received shape \(2, 8, 8\)"),
    (lambda m: inspect.top_patches(m, "conv1", X[None], k=2), r"expected k <= 1, received 2"),
    (lambda m: inspect.top_patches(m, "fc1", X[None], k=1), r"'flatten1' \(Flatten\) does not"),
    (lambda m: inspect.saliency(m, X[0], 0), r"saliency: expected x of shape \(C, H, W\) or "
                                             r"\(N, C, H, W\), received shape \(8, 8\)"),
    (lambda m: inspect.saliency(m, X.astype(np.uint8), 0), r"received dtype uint8"),
    (lambda m: inspect.saliency(m, np.zeros((1, 8, 8)), 0),
     r"conv1: Conv2D\(in_channels=2, out_channels=4\): expected input of shape \(N, 2, H, W\)"),
    (lambda m: inspect.saliency(m, X, 3), r"saliency: expected target in 0\.\.2, received 3"),
    (lambda m: inspect.saliency(m, X, [0]), r"expected target to be an integer, received \[0\]"),
    (lambda m: inspect.deconvnet(m, np.stack([X, X]), [0, 1, 2]),
     r"deconvnet: expected target to be an int or 2 ints"),
    (lambda m: inspect.guided_backprop(m, X, -1), r"expected target in 0\.\.2, received -1"),
    (lambda m: inspect.maximize(m, "conv2", 5, (2, 8, 8), steps=1),
     r"maximize: expected channel in 0\.\.4, received 5"),
    (lambda m: inspect.maximize(m, "fc1", 3, (2, 8, 8), steps=1), r"expected channel in 0\.\.2"),
    (lambda m: inspect.maximize(m, "nope", 0, (2, 8, 8)), r"maximize: expected layer_name"),
    (lambda m: inspect.maximize(m, "conv1", 0, (8, 8)), r"expected input_shape to be \(C, H, W\)"),
    (lambda m: inspect.maximize(m, "conv1", 0, (2, 8, 8), clip=(1.0, 0.0)),
     r"expected clip low < high"),
    (lambda m: inspect.maximize(m, "conv1", 0, (2, 8, 8), clip=(0.0, [1.0, 2.0, 3.0])),
     r"expected clip high to be a real number or 2 finite numbers"),
    (lambda m: inspect.occlusion(m, X, 0, patch=9), r"occlusion: expected patch <= 8, received 9"),
    (lambda m: inspect.occlusion(m, X[None], 0, patch=2), r"expected x of shape \(C, H, W\)"),
    (lambda m: inspect.occlusion(m, X, 0, patch=2, fill=[0.0]), r"expected fill to be a real "
                                                                  r"number or 2 finite numbers"),
    (lambda m: inspect.weight_gradients(m, "loss", X[None], [0]), r"expected a loss with forward"),
])
def test_bad_arguments_are_value_errors(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call(small_net())


def test_a_layer_that_does_not_reach_the_output_cannot_be_maximised() -> None:
    g = graph_net()
    g.add("side", ReLU(), "stem")
    g.output = "fc"
    with pytest.raises(ValueError, match="expected 'side' to lead to the model's output"):
        inspect.maximize(g, "side", 0, (1, 6, 6), steps=1)
    assert "backward" not in vars(g["side"])


def test_colour_specificity_from_grey_to_opponent_colours(rng) -> None:
    from minidl.inspect import colour_specificity
    x = rng.standard_normal((5, 5))
    kernels = np.stack([np.stack([x, x, x]), np.stack([x, 0 * x, 0 * x]),
                        np.stack([x, -x, 0 * x]), np.zeros((3, 5, 5))])
    np.testing.assert_allclose(colour_specificity(kernels), [0, 2 / 3, 1, 0], atol=1e-12)
    w = rng.standard_normal((6, 3, 5, 5))
    direct = [((k - k.mean(axis=0)) ** 2).sum() / (k ** 2).sum() for k in w]
    np.testing.assert_allclose(colour_specificity(w), direct, rtol=1e-12)
    with pytest.raises(ValueError, match=r"expected a conv weight \(out_channels, C, kh, kw\)"):
        colour_specificity(w[0])


def test_colour_by_column_splits_the_first_layer_as_the_next_convolution_reads_it() -> None:
    from minidl.inspect import colour_by_column, colour_specificity
    from models import two_column
    model = two_column(rng=0, dtype=np.float64)
    w = model["conv1"].weight.data
    w[:32] = w[:32].mean(axis=1, keepdims=True)     # column 1: grey kernels
    w[32:, 1:] = 0                                  # column 2: red only
    found, = colour_by_column(model)
    assert (found.layer, found.columns) == ("conv1", 2)
    np.testing.assert_allclose(found.means, (0.0, 2 / 3), atol=1e-12)
    np.testing.assert_array_equal(found.scores, colour_specificity(w))
    plain = Sequential(Conv2D(3, 4, 3, rng=0), ReLU(), Conv2D(4, 4, 3, rng=0),
                       Conv2D(4, 2, 1, groups=2, rng=0))
    found, = colour_by_column(plain)  # conv3's groups are not conv1's columns
    assert found.columns == 1 and len(found.means) == 1
    assert colour_by_column(Sequential(Conv2D(1, 4, 3, rng=0))) == []


def test_maximize_of_a_centre_unit_uses_that_unit_only() -> None:
    model = small_net()
    result = inspect.maximize(model, "conv2", 3, (2, 8, 8), steps=1, blur=0.0, jitter=0, rng=0,
                              start=0.01, position="centre")
    start = np.random.default_rng(0).normal(0.0, 0.01, (1, 2, 8, 8))
    out = prefix(model, "conv2", start)[1]
    h, w = out.shape[2:]
    assert result.objective[0] == pytest.approx(out[0, 3, h // 2, w // 2], rel=1e-12)
    with pytest.raises(ValueError, match="expected position to be one of 'mean', 'centre'"):
        inspect.maximize(model, "conv2", 3, (2, 8, 8), position="corner")


def test_maximize_starts_where_units_are_alive() -> None:
    # A ReLU network with negative first-layer biases is dead at the mean image: from a
    # near-zero start the gradient is exactly zero and the ascent never moves.
    rng = np.random.default_rng(0)
    model = Sequential(Conv2D(1, 3, 3, rng=rng, **F64), ReLU(), Conv2D(3, 2, 3, rng=rng, **F64))
    model[0].bias.data[...] = -0.5
    dead = inspect.maximize(model, "conv2", 1, (1, 8, 8), steps=20, rng=0, start=1e-3)
    alive = inspect.maximize(model, "conv2", 1, (1, 8, 8), steps=20, rng=0)
    assert np.ptp(dead.objective) == 0
    assert alive.objective[-1] > alive.objective[0]
