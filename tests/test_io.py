"""Checkpoints: round trip, refusal of pickles, truncation, mismatches, atomic saves."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from minidl import io
from minidl.losses import SoftmaxCrossEntropy
from minidl.optim import SGD, Adam
from models import lenet, lenet5


def trained(model, optimizer, rng, size=28, steps=2):
    loss = SoftmaxCrossEntropy()
    for _ in range(steps):
        x = rng.random((4, 1, size, size), dtype=np.float32)
        optimizer.zero_grad()
        loss.forward(model.forward(x), rng.integers(0, 10, 4))
        model.backward(loss.backward())
        optimizer.step()
    return x


def test_round_trip_rebuilds_the_model_from_its_own_description(tmp_path, rng):
    model = lenet5(rng=1)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = trained(model, optimizer, rng, size=32)
    path = io.save(tmp_path / "c.npz", model, optimizer, meta={"epoch": 3, "note": "ok"})
    checkpoint = io.load(path)  # no model given: built from the stored description
    assert checkpoint.meta == {"epoch": 3, "note": "ok"}
    np.testing.assert_array_equal(checkpoint.model.forward(x), model.forward(x))
    assert repr(checkpoint.model) == repr(model)
    # The C3 connection table came back with it.
    np.testing.assert_array_equal(checkpoint.model["c3"].connections, model["c3"].connections)


def test_optimizer_state_round_trip_continues_identically(tmp_path, rng):
    a = lenet(rng=0)
    opt_a = Adam(a.parameters(), lr=1e-3)
    trained(a, opt_a, rng)
    io.save(tmp_path / "c.npz", a, opt_a)
    b = lenet(rng=99)  # different weights, overwritten by the load
    opt_b = Adam(b.parameters(), lr=5.0)
    io.load(tmp_path / "c.npz", b, opt_b)
    trained(a, opt_a, np.random.default_rng(7))
    trained(b, opt_b, np.random.default_rng(7))
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)


def test_weights_use_pytorch_names_and_layouts(tmp_path):
    model = lenet(rng=0)
    io.save(tmp_path / "c.npz", model)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as archive:
        assert archive["model/conv1.weight"].shape == (6, 1, 5, 5)
        assert archive["model/conv2.weight"].shape == (16, 6, 5, 5)
        assert archive["model/fc1.weight"].shape == (120, 400)
        meta = json.loads(archive["__meta__"].tobytes())
    assert meta["model"]["class"] == "Sequential"


def test_pickled_object_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    array = np.empty(1, dtype=object)
    array[0] = Payload()
    good = tmp_path / "good.npz"
    io.save(good, lenet(rng=0))
    with np.load(good, allow_pickle=False) as archive:
        entries = {k: archive[k] for k in archive.files}
    entries["model/conv1.weight"] = array
    np.savez(tmp_path / "evil.npz", **entries)
    with pytest.raises(io.CheckpointError, match="pickled object"):
        io.load(tmp_path / "evil.npz")
    assert not marker.exists()
    # A plain pickle file pretending to be a checkpoint is refused too.
    (tmp_path / "plain.npz").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(io.CheckpointError):
        io.load(tmp_path / "plain.npz")
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_checkpoint_is_a_clear_error(tmp_path, keep):
    path = io.save(tmp_path / "c.npz", lenet(rng=0), meta={"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(io.CheckpointError, match="truncated or corrupt|unreadable"):
        io.load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(io.CheckpointError, match="does not exist"):
        io.load(tmp_path / "nope.npz")
    with pytest.raises(io.CheckpointError, match="is a directory"):
        io.load(tmp_path)


def test_mismatched_model_names_the_entry_and_changes_nothing(tmp_path):
    io.save(tmp_path / "c.npz", lenet(rng=0))
    other = lenet5(rng=0)
    before = other.state_dict()
    with pytest.raises(io.CheckpointError, match="missing .*c1.weight.*unexpected .*conv1.weight"):
        io.load(tmp_path / "c.npz", other)
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_shape_mismatch_names_the_entry(tmp_path):
    model = lenet(rng=0)
    state = {f"model/{k}": v for k, v in model.state_dict().items()}
    state["model/fc1.weight"] = np.zeros((120, 399), np.float32)
    with np.load(io.save(tmp_path / "c.npz", model), allow_pickle=False) as archive:
        state["__meta__"] = archive["__meta__"]
    np.savez(tmp_path / "bad.npz", **state)
    with pytest.raises(io.CheckpointError, match=r"'fc1.weight': expected shape \(120, 400\), received \(120, 399\)"):
        io.load(tmp_path / "bad.npz")


def test_not_a_minidl_checkpoint(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(io.CheckpointError, match="expected a minidl checkpoint"):
        io.load(tmp_path / "other.npz")


def test_optimizer_requested_but_absent(tmp_path):
    model = lenet(rng=0)
    io.save(tmp_path / "c.npz", model)
    with pytest.raises(io.CheckpointError, match="expected optimizer state"):
        io.load(tmp_path / "c.npz", model, SGD(model.parameters(), lr=0.1))


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = lenet(rng=0)
    path = io.save(tmp_path / "c.npz", model, meta={"epoch": 1})
    original = path.read_bytes()

    def broken_savez(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # Ctrl-C in mid-save

    monkeypatch.setattr(io.np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        io.save(path, lenet(rng=5), meta={"epoch": 2})
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]  # no temporary file left behind
    monkeypatch.undo()
    assert io.load(path).meta == {"epoch": 1}


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(io.CheckpointError, match="JSON-serialisable"):
        io.save(tmp_path / "c.npz", lenet(rng=0), meta={"bad": object()})
    with pytest.raises(io.CheckpointError, match="JSON-serialisable"):
        io.save(tmp_path / "c.npz", lenet(rng=0), meta={"nan": float("nan")})
    assert not (tmp_path / "c.npz").exists()
