"""Sequential and Graph: composition, names, state dicts, fan-out and merges."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import Graph, Sequential
from minidl.gradcheck import check_layer
from minidl.layers import (Add, Concat, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Tanh)
from models.lenet import LENET5_C3_TABLE, lenet, lenet5


def small_cnn(dtype=np.float64, seed: int = 0) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(Conv2D(1, 3, 3, padding=1, dtype=dtype, rng=rng), ReLU(), MaxPool2D(2),
                      Conv2D(3, 4, 3, dtype=dtype, rng=rng), Tanh(), Flatten(),
                      Dense(4, 5, dtype=dtype, rng=rng), ReLU(), Dense(5, 3, dtype=dtype, rng=rng))


# -- Sequential -----------------------------------------------------------------------

def test_sequential_equals_composing_the_layers_by_hand(rng: np.random.Generator) -> None:
    model = small_cnn()
    layers = list(model)
    x = rng.standard_normal((2, 1, 6, 6))
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    grads = {n: p.grad.copy() for n, p in model.named_parameters()}

    model.zero_grad()
    h = x
    for layer in layers:
        h = layer.forward(h)
    np.testing.assert_array_equal(y, h)
    g = dy
    for layer in reversed(layers):
        g = layer.backward(g)
    np.testing.assert_array_equal(dx, g)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, grads[name])


def test_sequential_gradcheck(rng: np.random.Generator) -> None:
    model = small_cnn()
    check_layer(model, rng.standard_normal((2, 1, 6, 6)), rng=rng).raise_if_failed()


def test_automatic_names_count_per_kind() -> None:
    model = small_cnn()
    assert [name for name, _ in model.named_children()] == [
        "conv1", "relu1", "pool1", "conv2", "tanh1", "flatten1", "fc1", "relu2", "fc2"]
    assert [name for name, _ in model.named_parameters()] == [
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert model["conv2"] is model[3]
    assert model[3].name == "conv2"


def test_lenet_parameter_names() -> None:
    assert [n for n, _ in lenet(rng=0).named_parameters()] == [
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias",
        "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    names = [n for n, _ in lenet5(rng=0).named_parameters()]
    assert names[:4] == ["c1.weight", "c1.bias", "c3.weight", "c3.bias"]
    assert names[-2:] == ["output.weight", "output.bias"]


def test_explicit_names_and_automatic_names_skip_taken_ones() -> None:
    model = Sequential(("features", Conv2D(1, 2, 3, rng=0)), ReLU(), Conv2D(2, 2, 3, rng=0),
                       ("conv1", Conv2D(2, 2, 1, rng=0)))
    # The unnamed conv would be conv1, but that name is chosen explicitly later on.
    assert [n for n, _ in model.named_children()] == ["features", "relu1", "conv2", "conv1"]
    assert [n for n, _ in model.named_parameters()][:2] == ["features.weight", "features.bias"]


def test_nested_containers_have_dotted_names() -> None:
    inner = Sequential(Conv2D(1, 2, 3, rng=0), ReLU())
    model = Sequential(("block", inner), Flatten(), Dense(2, 2, rng=0))
    assert [n for n, _ in model.named_parameters()] == [
        "block.conv1.weight", "block.conv1.bias", "fc1.weight", "fc1.bias"]


def test_sequential_rejects_duplicate_and_dotted_names_and_merges() -> None:
    with pytest.raises(ValueError, match="expected unique layer names, received 'a' twice"):
        Sequential(("a", ReLU()), ("a", Tanh()))
    with pytest.raises(ValueError, match="without dots"):
        Sequential(("a.b", ReLU()))
    with pytest.raises(ValueError, match="Add joins branches; use it in a Graph"):
        Sequential(ReLU(), Add())
    with pytest.raises(ValueError, match="expected Layer instances"):
        Sequential(ReLU(), "relu")
    with pytest.raises(KeyError, match="no layer named 'conv9'"):
        small_cnn()["conv9"]


def test_the_same_layer_object_cannot_be_used_twice() -> None:
    # A layer keeps one forward pass for its backward: a second use would
    # silently give wrong gradients, so it is refused.
    dense = Dense(3, 3, rng=0)
    with pytest.raises(ValueError, match="expected each layer object once in the model, received "
                                         r"Dense\(3, 3\) at both 'fc1' and 'fc2'"):
        Sequential(dense, Tanh(), dense)
    graph = Graph().add("a", dense, "input")
    with pytest.raises(ValueError, match="at both 'a' and 'b'"):
        graph.add("b", dense, "a")
    assert [node.name for node in graph.nodes] == ["a"]  # the refused node was not kept


def test_input_grad_false_returns_none_and_fills_parameter_grads(rng: np.random.Generator) -> None:
    model = small_cnn()
    x = rng.standard_normal((2, 1, 6, 6))
    dy = rng.standard_normal(model.forward(x).shape)
    model.backward(dy)
    expected = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    assert model.backward(dy, input_grad=False) is None
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, expected[name])


def test_sequential_backward_twice_doubles_the_gradient(rng: np.random.Generator) -> None:
    model = small_cnn()
    x = rng.standard_normal((2, 1, 6, 6))
    dy = rng.standard_normal(model.forward(x).shape)
    model.zero_grad()
    model.backward(dy)
    once = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.backward(dy)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[name], rtol=1e-14, err_msg=name)


# -- state dicts ----------------------------------------------------------------------------

def test_state_dict_round_trip_gives_identical_outputs(rng: np.random.Generator) -> None:
    source, target = lenet(rng=1), lenet(rng=2)
    x = rng.random((2, 1, 28, 28)).astype(np.float32)
    assert not np.array_equal(source.forward(x), target.forward(x))
    state = source.state_dict()
    assert list(state) == [n for n, _ in source.named_parameters()]
    target.load_state_dict(state)
    np.testing.assert_array_equal(source.forward(x), target.forward(x))
    for name, p in target.named_parameters():
        np.testing.assert_array_equal(p.data, state[name])


def test_state_dict_holds_copies(rng: np.random.Generator) -> None:
    model = small_cnn()
    state = model.state_dict()
    state["conv1.weight"][...] = 123.0
    assert not np.any(model["conv1"].weight.data == 123.0)
    model.load_state_dict(state)
    state["conv1.weight"][...] = 0.0                # loading copied the values in
    assert np.all(model["conv1"].weight.data == 123.0)


def test_load_state_dict_shape_mismatch_names_the_entry_and_writes_nothing() -> None:
    model = lenet(rng=0)
    before = model.state_dict()
    state = lenet(rng=1).state_dict()
    state["conv1.weight"] = np.zeros((6, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"'conv1\.weight': expected shape \(6, 1, 5, 5\), "
                                         r"received \(6, 1, 3, 3\)") as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert message.startswith("Sequential")
    assert len(message) < 200, message          # names the model, without dumping its config
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_missing_and_unexpected_keys() -> None:
    model = small_cnn()
    state = model.state_dict()
    del state["fc1.bias"]
    state["fc9.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"missing \['fc1\.bias'\], unexpected \['fc9\.weight'\]"):
        model.load_state_dict(state)
    state = model.state_dict()
    del state["conv2.weight"]
    with pytest.raises(ValueError, match=r"missing \['conv2\.weight'\], unexpected nothing"):
        model.load_state_dict(state)
    # strict=False loads what matches and ignores the rest.
    other = small_cnn(seed=5)
    partial = other.state_dict()
    del partial["fc2.weight"]
    partial["extra"] = np.zeros(1)
    model.load_state_dict(partial, strict=False)
    np.testing.assert_array_equal(model["fc1"].weight.data, other["fc1"].weight.data)
    assert not np.array_equal(model["fc2"].weight.data, other["fc2"].weight.data)


def test_load_state_dict_rejects_non_numeric_arrays() -> None:
    model = Sequential(Dense(2, 2, rng=0))
    state = model.state_dict()
    state["fc1.bias"] = np.array(["a", "b"])
    with pytest.raises(ValueError, match=r"'fc1\.bias': expected a numeric array, received dtype <U1"):
        model.load_state_dict(state)


def test_load_state_dict_keeps_unconnected_weights_at_zero() -> None:
    model = Sequential(Conv2D(6, 16, 5, connections=LENET5_C3_TABLE, rng=0))
    state = {"conv1.weight": np.ones((16, 6, 5, 5), np.float32), "conv1.bias": np.zeros(16, np.float32)}
    model.load_state_dict(state)
    weight = model["conv1"].weight
    assert np.all(weight.data[~weight.mask] == 0) and np.all(weight.data[weight.mask] == 1)


# -- Graph ----------------------------------------------------------------------------------

def residual_block(channels: int = 3, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add("conv_a", Conv2D(channels, channels, 3, padding=1, dtype=np.float64, rng=rng), "input")
    g.add("relu", ReLU(), "conv_a")
    g.add("conv_b", Conv2D(channels, channels, 3, padding=1, dtype=np.float64, rng=rng), "relu")
    g.add("sum", Add(), ["conv_b", "input"])
    return g


def two_branch_block(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add("stem", Conv2D(2, 3, 3, padding=1, dtype=np.float64, rng=rng), "input")
    g.add("act", Tanh(), "stem")
    g.add("left", Conv2D(3, 2, 1, dtype=np.float64, rng=rng), "act")
    g.add("right", Conv2D(3, 4, 3, padding=1, dtype=np.float64, rng=rng), "act")
    g.add("join", Concat(), ["left", "right"])
    return g


def test_residual_block_gradcheck_and_values(rng: np.random.Generator) -> None:
    g = residual_block()
    for name in ("conv_a", "conv_b"):
        g[name].bias.data[...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 3, 5, 4))
    y = g.forward(x)
    conv_a, conv_b = g["conv_a"], g["conv_b"]
    np.testing.assert_allclose(y, conv_b.forward(np.maximum(conv_a.forward(x), 0)) + x, rtol=1e-14)
    result = check_layer(g, x, rng=rng)
    result.raise_if_failed()
    assert {e.name for e in result.entries} == {"input", "conv_a.weight", "conv_a.bias",
                                                "conv_b.weight", "conv_b.bias"}


def test_two_branch_concat_gradcheck_and_values(rng: np.random.Generator) -> None:
    g = two_branch_block()
    x = rng.standard_normal((2, 2, 4, 5))
    y = g.forward(x)
    assert y.shape == (2, 6, 4, 5)
    h = np.tanh(g["stem"].forward(x))
    np.testing.assert_allclose(y[:, :2], g["left"].forward(h), rtol=1e-14)
    np.testing.assert_allclose(y[:, 2:], g["right"].forward(h), rtol=1e-14)
    check_layer(g, x, rng=rng).raise_if_failed()


def test_a_value_used_twice_gets_the_sum_of_gradients(rng: np.random.Generator) -> None:
    g = Graph().add("double", Add(), ["input", "input"])
    x = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(g.forward(x), 2 * x)
    dy = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(g.backward(dy), 2 * dy)

    # Fan-out from an inner node: "a" feeds both branches.
    g = Graph()
    g.add("a", Dense(3, 3, dtype=np.float64, rng=0), "input")
    g.add("b", Tanh(), "a")
    g.add("c", Dense(3, 3, dtype=np.float64, rng=1), "a")
    g.add("sum", Add(), ["b", "c"])
    check_layer(g, rng.standard_normal((2, 3)), rng=rng).raise_if_failed()


def test_graph_output_node_and_dead_branches(rng: np.random.Generator) -> None:
    g = Graph()
    g.add("a", Dense(3, 4, dtype=np.float64, rng=0), "input")
    g.add("b", Tanh(), "a")
    g.add("unused", Dense(4, 2, dtype=np.float64, rng=1), "b")
    g.output = "b"
    x = rng.standard_normal((2, 3))
    np.testing.assert_allclose(g.forward(x), np.tanh(g["a"].forward(x)), rtol=1e-15)
    g.zero_grad()
    g.backward(np.ones((2, 4)))
    assert np.all(g["unused"].weight.grad == 0)     # does not reach the output
    assert np.any(g["a"].weight.grad != 0)
    check_layer(g, x, rng=rng).raise_if_failed()


def test_graph_nested_names_and_input_grad_false(rng: np.random.Generator) -> None:
    g = Graph()
    g.add("block", Sequential(Conv2D(1, 2, 3, padding=1, dtype=np.float64, rng=0), ReLU()), "input")
    g.add("res", residual_block(2), "block")
    assert [n for n, _ in g.named_parameters()] == [
        "block.conv1.weight", "block.conv1.bias", "res.conv_a.weight", "res.conv_a.bias",
        "res.conv_b.weight", "res.conv_b.bias"]
    x = rng.standard_normal((1, 1, 4, 4))
    dy = rng.standard_normal(g.forward(x).shape)
    g.zero_grad()
    dx = g.backward(dy)
    expected = {n: p.grad.copy() for n, p in g.named_parameters()}
    assert dx.shape == x.shape
    g.zero_grad()
    assert g.backward(dy, input_grad=False) is None
    for name, p in g.named_parameters():
        np.testing.assert_array_equal(p.grad, expected[name], err_msg=name)
    check_layer(g, x, rng=rng).raise_if_failed()


def test_graph_with_a_custom_input_name(rng: np.random.Generator) -> None:
    g = Graph("image").add("relu", ReLU(), "image").add("drop", Dropout(0.5, rng=0), "relu")
    x = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(g.forward(x, training=False), np.maximum(x, 0))


def test_graph_errors() -> None:
    g = Graph().add("a", ReLU(), "input")
    with pytest.raises(ValueError, match=r"Graph\.add\('b'\): expected inputs among the existing "
                                         r"nodes \['a', 'input'\], received \['nope'\]"):
        g.add("b", ReLU(), "nope")
    with pytest.raises(ValueError, match="expected unique layer names, received 'a' twice"):
        g.add("a", Tanh(), "input")
    with pytest.raises(ValueError, match="expected unique layer names, received 'input' twice"):
        g.add("input", Tanh(), "a")
    with pytest.raises(ValueError, match=r"Graph\.add\('s'\): expected several inputs for Add, "
                                         r"received \['a'\]"):
        g.add("s", Add(), "a")
    with pytest.raises(ValueError, match=r"Graph\.add\('t'\): expected one input for Tanh, "
                                         r"received \['a', 'input'\]"):
        g.add("t", Tanh(), ["a", "input"])
    with pytest.raises(ValueError, match="expected inputs among the existing nodes"):
        g.add("t", Tanh(), [])
    with pytest.raises(ValueError, match="expected a Layer, received str"):
        g.add("t", "tanh", "a")
    with pytest.raises(ValueError, match="expected at least one node, received an empty graph"):
        Graph().forward(np.zeros((1, 2)))
    with pytest.raises(KeyError, match="no node named 'zzz'"):
        g["zzz"]
