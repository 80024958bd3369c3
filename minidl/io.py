"""Checkpoints that cannot hurt you: .npz arrays plus JSON metadata, no pickle.

A checkpoint holds the model's weights (``model/<name>``, PyTorch's names and
layouts, e.g. ``model/conv1.weight`` of shape ``(out, in, kh, kw)``), the
optimizer's buffers (``optimizer/<key>``), and one JSON document
(``__meta__``) with the model's own description, so ``load(path)`` rebuilds it
with minidl alone. Files are read with ``allow_pickle=False``: an array holding
pickled objects is refused and nothing in it runs. Saves go to a temporary file
in the same directory, flushed and renamed, so an interrupted save leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minidl.atomic import atomic_open
from minidl.config import layer_from_config, layer_to_config
from minidl.layers.base import Layer

FORMAT = "minidl-checkpoint"
#: 2: optimizer buffers exist from the start (version 1 created them at the first step).
VERSION = 2
_META = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, unsafe or does not match the model."""


@dataclass
class Checkpoint:
    """What :func:`load` returns: the model, the optimizer state and the user's metadata."""

    model: Layer
    meta: dict[str, Any] = field(default_factory=dict)
    optimizer_state: dict[str, Any] | None = None


def save(path: str | os.PathLike, model: Layer, optimizer: Any = None,
         meta: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : str or Path
        Destination, conventionally ``*.npz``. Its directory must exist.
    model : Layer
        Any layer or container; its weights and JSON description are stored.
    optimizer : Optimizer, optional
        Its ``state_dict()`` (buffers and JSON-able scalars) is stored.
    meta : dict, optional
        JSON-serialisable extras (epoch, metrics, RNG states, ...).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {f"model/{k}": v for k, v in model.state_dict().items()}
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION,
                                "model": layer_to_config(model), "meta": meta or {}}
    if optimizer is not None:
        state = optimizer.state_dict()
        arrays.update({f"optimizer/{k}": np.asarray(v) for k, v in state["arrays"].items()})
        document["optimizer"] = state["scalars"]
    try:
        text = json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: expected JSON-serialisable metadata, received {error}") from None
    arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    for name, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: expected numeric arrays, received dtype {value.dtype} "
                                  f"for '{name}'")

    # Ctrl-C or a full disk in mid-save drops the partial file and keeps the old one.
    with atomic_open(path) as handle:
        np.savez(handle, **arrays)
    return path


def load(path: str | os.PathLike, model: Layer | None = None, optimizer: Any = None) -> Checkpoint:
    """Read a checkpoint, check it completely, then restore it.

    With ``model=None`` the model is rebuilt from the checkpoint's own
    description. With a model, names and shapes must match exactly. With an
    optimizer, its state is restored too (it must hold the same parameters).
    Nothing is modified unless everything checks out.
    """
    path = Path(path)
    arrays = _read_arrays(path)
    document = _document(arrays, path)
    weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    buffers = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    whose = "the model given" if model is not None else "the model's own description"
    if model is None:
        try:
            model = layer_from_config(document["model"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: cannot rebuild the model from its description "
                                  f"({error})") from None
    try:
        model.load_state_dict(weights)
    except ValueError as error:
        raise CheckpointError(f"{path}: expected the weights of {whose}, received others: "
                              f"{error}") from None

    optimizer_state = None
    if "optimizer" in document:
        optimizer_state = {"arrays": buffers, "scalars": document["optimizer"]}
    if optimizer is not None:
        if optimizer_state is None:
            raise CheckpointError(f"{path}: expected optimizer state, received a checkpoint without one")
        try:
            optimizer.load_state_dict(optimizer_state)
        except ValueError as error:
            raise CheckpointError(f"{path}: optimizer: {error}") from None
    return Checkpoint(model=model, meta=document["meta"], optimizer_state=optimizer_state)


def read_document(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's JSON document (``format``, ``version``, ``model``, ``meta``, and
    ``optimizer`` when present), checked, without building anything."""
    path = Path(path)
    return _document(_read_arrays(path), path)


def _document(arrays: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    """Decode and check the JSON document stored under ``__meta__``."""
    if _META not in arrays:
        raise CheckpointError(f"{path}: expected a minidl checkpoint with a '{_META}' entry, "
                              f"received entries {sorted(arrays)[:8]}")
    try:
        document = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: expected JSON metadata, received unreadable bytes "
                              f"({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected format '{FORMAT}', received "
                              f"{document.get('format') if isinstance(document, dict) else document!r}")
    if document.get("version") != VERSION:
        raise CheckpointError(f"{path}: expected checkpoint version {VERSION}, "
                              f"received {document.get('version')!r}")
    if not isinstance(document.get("model"), dict):
        raise CheckpointError(f"{path}: expected a model description (key 'model'), received "
                              f"{'none' if 'model' not in document else type(document['model']).__name__}")
    if not isinstance(document.get("meta", {}), dict):
        raise CheckpointError(f"{path}: expected the metadata (key 'meta') to be a JSON object, "
                              f"received {type(document['meta']).__name__}")
    document.setdefault("meta", {})
    if "optimizer" in document and not isinstance(document["optimizer"], dict):
        raise CheckpointError(f"{path}: expected the optimizer's scalars (key 'optimizer') to be "
                              f"a JSON object, received {type(document['optimizer']).__name__}")
    return document


_ZIP_MAGIC = b"PK\x03\x04"


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointError(f"{path}: expected a checkpoint file, received a path that "
                              f"{'is a directory' if path.is_dir() else 'does not exist'}")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error})") from None
    if magic != _ZIP_MAGIC:
        # np.load would try to unpickle anything that is neither .npy nor .npz.
        raise CheckpointError(f"{path}: expected a .npz checkpoint (a zip archive), received a "
                              f"file that is not one ({len(magic)} byte(s) read: {magic!r})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            # Read every array now: zip CRCs are checked on read, so a truncated
            # or altered file fails here rather than half-way through a restore.
            return {name: archive[name] for name in archive.files}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise CheckpointError(f"{path}: refusing to load: it contains a pickled object array, "
                                  f"and checkpoints are read with allow_pickle=False") from None
        raise CheckpointError(f"{path}: expected a complete .npz checkpoint, received an unreadable file "
                              f"({error})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as error:
        raise CheckpointError(f"{path}: expected a complete .npz checkpoint, received a truncated or "
                              f"corrupt file ({type(error).__name__}: {error})") from None
