"""Models as JSON: describe any layer or container, and rebuild it.

``layer_to_config(model)`` gives ``{"class": "Sequential", "config": {...}}``
(Keras's get_config idea); ``layer_from_config`` rebuilds a fresh model from it.
Only registered minidl layer classes can be named, so a description cannot
make minidl run anything else.
"""

from __future__ import annotations

import json
from typing import Any

from minidl.layers.base import LAYER_REGISTRY, Layer


def layer_to_config(layer: Layer) -> dict[str, Any]:
    """``{"class": <class name>, "config": <constructor arguments>}``."""
    return {"class": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(description: dict[str, Any]) -> Layer:
    """Build a new layer (or container) from :func:`layer_to_config`'s output.

    Weights are freshly initialised; load a state dict to restore trained ones.
    """
    import minidl.containers  # noqa: F401  (registers Sequential and Graph)
    import minidl.layers  # noqa: F401  (registers the layers)

    if not isinstance(description, dict) or "class" not in description:
        raise ValueError(f"expected a layer description with a 'class' entry, received {description!r:.200}")
    name = description["class"]
    cls = LAYER_REGISTRY.get(name)
    if cls is None or name.startswith("_"):
        known = sorted(n for n in LAYER_REGISTRY if not n.startswith("_"))
        raise ValueError(f"expected a minidl layer class (one of {known}), received '{name}'")
    config = description.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{name}: expected a config dict, received {type(config).__name__}")
    from_config = getattr(cls, "from_config", None)
    try:
        return from_config(config) if from_config is not None else cls(**config)
    except TypeError as error:
        raise ValueError(f"{name}: the config does not match the constructor: {error}") from None


def to_json(layer: Layer) -> str:
    return json.dumps(layer_to_config(layer))


def from_json(text: str) -> Layer:
    return layer_from_config(json.loads(text))
