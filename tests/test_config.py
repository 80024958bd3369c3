"""Configs: every layer and container round-trips through JSON and rebuilds an
equivalent model; unknown classes are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minidl import Graph, Sequential, from_json, to_json
from minidl.config import layer_from_config, layer_to_config
from minidl.layers import (Add, AvgPool2D, Concat, Conv2D, Dense, Dropout, Flatten, LeakyReLU,
                           MaxPool2D, ReLU, Sigmoid, Tanh)
from models.lenet import LENET5_C3_TABLE, lenet, lenet5, lenet_caffe


def residual_graph() -> Graph:
    g = Graph("image")
    g.add("conv_a", Conv2D(2, 2, 3, padding=1, rng=0), "image")
    g.add("relu", ReLU(), "conv_a")
    g.add("conv_b", Conv2D(2, 2, 3, padding=1, rng=1), "relu")
    g.add("sum", Add(), ["conv_b", "image"])
    g.add("branch", Conv2D(2, 3, 1, bias=False, rng=2), "sum")
    g.add("join", Concat(), ["sum", "branch"])
    g.add("tail", Tanh(), "join")
    g.output = "join"
    return g


# (id, factory, input shape or list of shapes)
LAYERS = [
    ("Conv2D", lambda: Conv2D(2, 4, 3, rng=0), (2, 2, 5, 5)),
    ("Conv2D-all-options", lambda: Conv2D(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=2,
                                          bias=False, weight_init="glorot_uniform",
                                          dtype=np.float64, rng=0), (2, 4, 6, 5)),
    ("Conv2D-table", lambda: Conv2D(6, 16, 5, connections=LENET5_C3_TABLE, rng=0), (1, 6, 6, 6)),
    ("MaxPool2D", lambda: MaxPool2D(3, stride=2, padding=1), (1, 2, 6, 6)),
    ("AvgPool2D", lambda: AvgPool2D((2, 3), padding=(1, 1)), (1, 2, 6, 6)),
    ("Dense", lambda: Dense(3, 4, rng=0), (2, 3)),
    ("Dense-no-bias-f64", lambda: Dense(3, 4, bias=False, dtype=np.float64, rng=0), (2, 3)),
    ("Flatten", Flatten, (2, 3, 2)),
    ("ReLU", ReLU, (2, 3)),
    ("LeakyReLU", lambda: LeakyReLU(0.3), (2, 3)),
    ("Tanh", Tanh, (2, 3)),
    ("Sigmoid", Sigmoid, (2, 3)),
    ("Dropout", lambda: Dropout(0.25, rng=0), (2, 3)),
    ("Add", Add, [(2, 3), (2, 3)]),
    ("Concat", lambda: Concat(-1), [(2, 3), (2, 1)]),
    ("Sequential-small", lambda: Sequential(("c", Conv2D(1, 2, 3, rng=0)), ReLU(), Flatten()),
     (2, 1, 4, 4)),
    ("Sequential-lenet", lambda: lenet(rng=0), (2, 1, 28, 28)),
    ("Sequential-lenet5", lambda: lenet5(rng=0), (2, 1, 32, 32)),
    ("Sequential-lenet-caffe", lambda: lenet_caffe(rng=0), (1, 1, 28, 28)),
    ("Graph-residual-concat", residual_graph, (2, 2, 4, 4)),
    ("Sequential-nested-graph", lambda: Sequential(("block", residual_graph()), Flatten()),
     (1, 2, 3, 3)),
]
IDS = [entry[0] for entry in LAYERS]


def make_input(shape, dtype, rng):
    if isinstance(shape, list):
        return [rng.standard_normal(s).astype(dtype) for s in shape]
    return rng.standard_normal(shape).astype(dtype)


def dtype_of(layer) -> np.dtype:
    params = layer.parameters()
    return params[0].dtype if params else np.dtype(np.float32)


@pytest.mark.parametrize("entry", LAYERS, ids=IDS)
def test_config_round_trips_through_json(entry) -> None:
    _, make, _ = entry
    layer = make()
    config = layer_to_config(layer)
    assert config["class"] == type(layer).__name__
    text = json.dumps(config)
    assert json.loads(text) == config              # plain JSON types only
    rebuilt = layer_from_config(json.loads(text))
    assert type(rebuilt) is type(layer)
    assert layer_to_config(rebuilt) == config
    assert to_json(rebuilt) == to_json(layer)
    assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in layer.named_parameters()]
    for (_, a), (_, b) in zip(layer.named_parameters(), rebuilt.named_parameters()):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert (a.mask is None) == (b.mask is None)


@pytest.mark.parametrize("entry", LAYERS, ids=IDS)
def test_rebuilt_layer_with_copied_state_gives_identical_outputs(entry, rng) -> None:
    _, make, shape = entry
    layer = make()
    rebuilt = from_json(to_json(layer))
    rebuilt.load_state_dict(layer.state_dict())
    x = make_input(shape, dtype_of(layer), rng)
    np.testing.assert_array_equal(rebuilt.forward(x, training=False), layer.forward(x, training=False))


def test_rebuilt_model_gets_fresh_weights_until_the_state_is_loaded(rng) -> None:
    model = lenet5(rng=0)
    rebuilt = from_json(to_json(model))
    x = rng.random((1, 1, 32, 32)).astype(np.float32)
    assert not np.array_equal(rebuilt.forward(x), model.forward(x))
    # The connection table survives the trip, so unconnected weights stay zero.
    c3 = rebuilt["c3"]
    assert np.array_equal(c3.connections, LENET5_C3_TABLE)
    assert np.all(c3.weight.data[~c3.weight.mask] == 0)


def test_graph_config_keeps_input_name_output_and_wiring() -> None:
    config = layer_to_config(residual_graph())["config"]
    assert config["input_name"] == "image"
    assert config["output"] == "join"
    assert [(n["name"], n["inputs"]) for n in config["nodes"]] == [
        ("conv_a", ["image"]), ("relu", ["conv_a"]), ("conv_b", ["relu"]),
        ("sum", ["conv_b", "image"]), ("branch", ["sum"]), ("join", ["sum", "branch"]),
        ("tail", ["join"])]


@pytest.mark.parametrize("name", ["Conv3D", "os.system", "_Pool2D", "Layer", ""],
                         ids=["Conv3D", "os.system", "_Pool2D", "Layer", "empty-string"])
def test_unknown_class_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=rf"expected a minidl layer class \(one of \[.*'Conv2D'.*\]\), "
                                         rf"received '{name}'"):
        layer_from_config({"class": name, "config": {}})


def test_bad_descriptions_are_refused_with_a_value_error() -> None:
    with pytest.raises(ValueError, match="expected a layer description with a 'class' entry"):
        layer_from_config({"config": {}})
    with pytest.raises(ValueError, match="expected a layer description with a 'class' entry"):
        layer_from_config(["Conv2D"])
    with pytest.raises(ValueError, match="Conv2D: expected a config dict, received list"):
        layer_from_config({"class": "Conv2D", "config": [1, 2, 3]})
    with pytest.raises(ValueError, match="Dense: the config does not match the constructor"):
        layer_from_config({"class": "Dense", "config": {"in_features": 2, "out_features": 3,
                                                        "colour": "red"}})
    with pytest.raises(ValueError, match="expected kernel_size >= 1"):
        layer_from_config({"class": "MaxPool2D", "config": {"kernel_size": 0}})
