"""The one walk over the model tree: user-defined layers, tied weights, reuse refused."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import Graph, Sequential
from minidl.gradcheck import check_model
from minidl.layers import Add, Conv2D, Dense, Flatten, Layer, ReLU, Tanh
from minidl.losses import SoftmaxCrossEntropy
from minidl.optim import SGD


class Residual(Layer):
    """A residual block written as a PyTorch user would: sublayers as attributes."""

    def __init__(self, channels: int, rng: np.random.Generator) -> None:
        super().__init__()
        self.conv = Conv2D(channels, channels, 3, padding=1, rng=rng, dtype=np.float64)
        self.relu = ReLU()

    def forward(self, x, training=True, keep_for_backward=None):
        y = self.conv.forward(x, training, keep_for_backward)
        return x + self.relu.forward(y, training, keep_for_backward)

    def backward(self, dy, *, input_grad=True):
        dx = self.conv.backward(self.relu.backward(dy), input_grad=input_grad)
        return dy + dx if input_grad else None


def residual_net(rng: np.random.Generator) -> Sequential:
    return Sequential(("block1", Residual(2, rng)), ("block2", Residual(2, rng)), Flatten(),
                      Dense(2 * 4 * 4, 3, rng=rng, dtype=np.float64))


def test_a_users_layer_is_found_by_the_walk(rng) -> None:
    model = residual_net(rng)
    assert [name for name, _ in model.named_modules()] == [
        "", "block1", "block1.conv", "block1.relu", "block2", "block2.conv", "block2.relu",
        "flatten1", "fc1"]
    assert list(model.state_dict()) == [
        "block1.conv.weight", "block1.conv.bias", "block2.conv.weight", "block2.conv.bias",
        "fc1.weight", "fc1.bias"]
    assert model.num_parameters() == 2 * (2 * 2 * 9 + 2) + 32 * 3 + 3
    assert model["block1"].conv.name == "conv"  # named after its attribute


def test_a_users_residual_block_passes_a_gradient_check(rng) -> None:
    model = residual_net(rng)
    x = rng.standard_normal((3, 2, 4, 4))
    check_model(model, SoftmaxCrossEntropy(), x, np.array([0, 2, 1]), rng=rng).raise_if_failed()


def test_assigning_none_or_a_plain_value_unregisters() -> None:
    dense = Dense(2, 2, rng=0)
    dense.bias = None
    assert list(dense.state_dict()) == ["weight"]
    block = Residual(1, np.random.default_rng(0))
    block.relu = "not a layer any more"
    assert [name for name, _ in block.named_children()] == ["conv"]
    del block.conv
    assert list(block.named_children()) == []


def test_assigning_before_super_init_is_a_clear_error() -> None:
    class Forgetful(Layer):
        def __init__(self) -> None:
            self.dense = Dense(2, 2)

    with pytest.raises(AttributeError, match=r"Forgetful: call super\(\).__init__\(\) before "
                                             r"assigning attribute 'dense'"):
        Forgetful()


@pytest.mark.parametrize("build", [
    lambda d: Sequential(Sequential(d), Sequential(Tanh(), d)),
    lambda d: Sequential(("a", d), ("inner", Sequential(d))),
    lambda d: Graph().add("a", d, "input").add("b", Sequential(Tanh(), d), "a"),
], ids=["two-nested", "outer-and-nested", "graph-and-nested"])
def test_a_layer_object_used_twice_anywhere_in_the_tree_is_refused(build) -> None:
    # Before, only direct children were compared and this gave wrong gradients.
    with pytest.raises(ValueError, match=r"expected each layer object once in the model, "
                                         r"received Dense\(3, 3\) at both '.+' and '.+'"):
        build(Dense(3, 3, rng=0))


def test_a_users_layer_holding_one_layer_twice_is_refused_by_the_walk() -> None:
    class Twice(Layer):
        def __init__(self) -> None:
            super().__init__()
            self.first = self.second = Dense(2, 2)

    with pytest.raises(ValueError, match="at both 'first' and 'second'"):
        Twice().parameters()


def tied_model(rng: np.random.Generator) -> Sequential:
    first = Dense(3, 3, rng=rng, dtype=np.float64)
    second = Dense(3, 3, rng=rng, dtype=np.float64)
    second.weight = first.weight  # tie the weights: one Parameter, two layers
    return Sequential(first, Tanh(), second)


def test_tied_parameters_are_listed_and_counted_once(rng) -> None:
    model = tied_model(rng)
    assert [name for name, _ in model.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.bias"]
    assert model.num_parameters() == 9 + 3 + 3
    # The state dict names every use, as PyTorch's does, so it loads into PyTorch.
    assert list(model.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    SGD(model.parameters(), lr=0.1)  # accepted: no duplicates


def test_tied_parameters_get_the_sum_of_both_gradients(rng) -> None:
    model = tied_model(rng)
    x = rng.standard_normal((4, 3))
    check_model(model, SoftmaxCrossEntropy(), x, np.array([0, 1, 2, 0]), rng=rng).raise_if_failed()


def test_graph_wiring_is_public_and_output_is_checked() -> None:
    g = Graph().add("conv", Conv2D(2, 2, 3, padding=1), "input").add("relu", ReLU(), "conv")
    g.add("sum", Add(), ["relu", "input"])
    assert [(n.name, n.inputs) for n in g.nodes] == [
        ("conv", ("input",)), ("relu", ("conv",)), ("sum", ("relu", "input"))]
    assert g.output == "sum"
    g.output = "relu"
    assert g.output == "relu"
    with pytest.raises(ValueError, match=r"Graph: expected output to be one of the nodes "
                                         r"\['conv', 'relu', 'sum'\], received 'nope'"):
        g.output = "nope"
    assert g.output == "relu"
    with pytest.raises(ValueError, match="expected at least one node"):
        _ = Graph().output
