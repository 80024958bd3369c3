"""LeNet models: parameter counts against the 1998 paper, shapes, descriptions."""

import json

import numpy as np
import pytest

from minidl import layer_from_config, layer_to_config
from models import LENET5_C3_TABLE, MODELS, lenet, lenet5, lenet_caffe


def counts(model):
    result = {}
    for name, param in model.named_parameters():
        layer = name.split(".")[0]
        result[layer] = result.get(layer, 0) + param.size
    return result


def test_lenet5_parameter_counts_match_the_paper():
    # LeCun et al. 1998, section II.B: C1 156, C3 1,516, C5 48,120, F6 10,164.
    # S2 and S4 have no trainable coefficients here (plain averaging), and the
    # output layer is a dense 84 -> 10 with biases (850) instead of the RBF units (840).
    assert counts(lenet5(rng=0)) == {"c1": 156, "c3": 1516, "c5": 48120, "f6": 10164, "output": 850}


def test_c3_table_is_table_one():
    table = LENET5_C3_TABLE
    assert table.shape == (16, 6)
    assert table.sum(axis=1).tolist() == [3] * 6 + [4] * 9 + [6]
    # Column view of Table I: S2 map 0 feeds C3 maps 0, 4, 5, 6, 9, 10, 11, 12, 14, 15.
    assert np.flatnonzero(table[:, 0]).tolist() == [0, 4, 5, 6, 9, 10, 11, 12, 14, 15]
    assert table.sum() == 60


def test_lenet_modern_counts():
    assert counts(lenet(rng=0)) == {"conv1": 156, "conv2": 2416, "fc1": 48120, "fc2": 10164, "fc3": 850}
    assert lenet(rng=0).num_parameters() == 61706  # the usual figure for this network


@pytest.mark.parametrize("name, size", [("lenet", 28), ("lenet5", 32), ("lenet-caffe", 28)])
def test_models_map_digits_to_ten_logits_and_round_trip(name, size):
    model = MODELS[name].build(rng=0)
    x = np.random.default_rng(0).random((3, 1, size, size), dtype=np.float32)
    y = model.forward(x, training=False)
    assert y.shape == (3, 10) and y.dtype == np.float32
    rebuilt = layer_from_config(json.loads(json.dumps(layer_to_config(model))))
    rebuilt.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(rebuilt.forward(x, training=False), y)


def test_same_seed_same_weights():
    a, b, c = lenet5(rng=3), lenet5(rng=3), lenet5(rng=4)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    assert not np.array_equal(a["c1"].weight.data, c["c1"].weight.data)


def test_lenet_caffe_is_wider():
    assert counts(lenet_caffe(rng=0)) == {"conv1": 520, "conv2": 25050, "fc1": 400500, "fc2": 5010}


# -- CIFAR-10 nets -------------------------------------------------------------------------

def test_cuda_convnet_nets_have_their_layer_files_geometry():
    from models import convnet_18pct, convnet_80sec
    # 5x5 convolutions with padding 2 of 32, 32, 64 maps; 3x3 stride-2 pooling rounded up
    # as cuda-convnet does: 32 -> 16 -> 8 -> 4, so 64 x 4 x 4 = 1024 features.
    assert counts(convnet_80sec(rng=0)) == {"conv1": 3 * 32 * 25 + 32, "conv2": 32 * 32 * 25 + 32,
                                            "conv3": 32 * 64 * 25 + 64, "fc1": 1024 * 64 + 64,
                                            "fc2": 64 * 10 + 10}
    assert counts(convnet_18pct(rng=0))["fc1"] == 1024 * 10 + 10
    assert convnet_80sec(rng=0).num_parameters() == 145578
    assert convnet_18pct(rng=0).num_parameters() == 89578


def test_the_batch_normalised_80sec_net_trades_conv_biases_for_normalisation():
    from models import convnet_80sec_bn
    from minidl.layers import BatchNorm2D, Conv2D, MaxPool2D
    model = convnet_80sec_bn(rng=0)
    assert model.num_parameters() == 145578 - (32 + 32 + 64) + 2 * (32 + 32 + 64) == 145706
    kinds = [type(layer) for layer in model]
    assert kinds.count(BatchNorm2D) == 3
    assert all(layer.bias is None for layer in model if isinstance(layer, Conv2D))
    # The first normalisation follows the max pooling, on a quarter of the values.
    assert kinds[:3] == [Conv2D, MaxPool2D, BatchNorm2D]


def test_two_column_net_splits_conv2_into_two_columns():
    from models import two_column
    model = two_column(rng=0)
    assert model["conv1"].weight.shape == (64, 3, 5, 5)      # every kernel sees R, G and B
    assert model["conv2"].groups == 2 and model["conv2"].weight.shape == (64, 32, 5, 5)
    assert model["conv3"].groups == 1                          # conv3 reads both columns
    assert model.num_parameters() == 150986


@pytest.mark.parametrize("name", ["convnet-80sec", "convnet-80sec-bn", "convnet-18pct",
                                  "two-column"])
def test_cifar_models_map_colour_images_to_ten_logits_and_round_trip(name):
    model = MODELS[name].build(rng=0)
    assert MODELS[name].dataset == "cifar10"
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    y = model.forward(x, training=False)
    assert y.shape == (2, 10) and y.dtype == np.float32
    rebuilt = layer_from_config(json.loads(json.dumps(layer_to_config(model))))
    rebuilt.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(rebuilt.forward(x, training=False), y)
