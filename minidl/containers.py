"""Containers: Sequential (a chain) and Graph (named nodes, fan-out, merges).

Both follow the Layer contract, so they nest and train like any layer. Names
are dotted: ``conv1.weight`` in a Sequential, ``block.conv_a.weight`` when a
container sits inside a Graph node called ``block``.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from minidl.layers.base import Layer


def _check_name(name: Any, owner: str, taken: set[str]) -> str:
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{owner}: expected a non-empty name without dots, received {name!r}")
    if name in taken:
        raise ValueError(f"{owner}: expected unique layer names, received '{name}' twice")
    return name


class Sequential(Layer):
    """Layers applied one after another.

    ``Sequential(Conv2D(1, 6, 5), ReLU(), ...)`` names the layers after their kind
    (``conv1``, ``relu1``, ``pool1``, ``fc1``, ...); pass ``("name", layer)`` pairs
    to choose names.

    Shape
    -----
    input: what the first layer takes; output: what the last layer returns.
    """

    default_name = "sequential"

    def __init__(self, *layers: Layer | tuple[str, Layer]) -> None:
        super().__init__()
        self._layers: list[tuple[str, Layer]] = []
        counts: dict[str, int] = {}
        taken: set[str] = set()
        for item in layers:
            if isinstance(item, tuple) and len(item) == 2:
                name, layer = item
                name = _check_name(name, "Sequential", taken)
            else:
                layer = item
                if isinstance(layer, Layer):
                    # Count per kind, skipping names a user already chose.
                    while True:
                        counts[layer.default_name] = counts.get(layer.default_name, 0) + 1
                        name = f"{layer.default_name}{counts[layer.default_name]}"
                        if name not in taken and not any(
                                isinstance(i, tuple) and i[0] == name for i in layers):
                            break
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential: expected Layer instances or (name, Layer) pairs, "
                                 f"received {type(layer).__name__}")
            if getattr(layer, "takes_list", False):
                raise ValueError(f"Sequential: {type(layer).__name__} joins branches; use it in a Graph")
            if any(layer is other for _, other in self._layers):
                raise ValueError(f"Sequential: expected each layer object once, received {layer!r} "
                                 f"more than once (a layer keeps one forward pass for its backward; "
                                 f"build a second layer instead)")
            taken.add(name)
            layer.name = name
            self._layers.append((name, layer))

    # -- access -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return (layer for _, layer in self._layers)

    def __getitem__(self, key: int | str) -> Layer:
        if isinstance(key, str):
            for name, layer in self._layers:
                if name == key:
                    return layer
            raise KeyError(f"Sequential has no layer named '{key}'; names: {[n for n, _ in self._layers]}")
        return self._layers[key][1]

    def named_layers(self) -> list[tuple[str, Layer]]:
        return list(self._layers)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for name, layer in self._layers:
            yield from layer.named_parameters(f"{prefix}{name}.")

    # -- computation --------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        for _, layer in self._layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        last = len(self._layers) - 1
        for i in range(last, -1, -1):
            dy = self._layers[i][1].backward(dy, input_grad=input_grad or i > 0)
        return dy

    # -- description --------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        from minidl.config import layer_to_config
        return {"layers": [{"name": name, **layer_to_config(layer)} for name, layer in self._layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Sequential":
        from minidl.config import layer_from_config
        return cls(*[(item["name"], layer_from_config(item)) for item in config["layers"]])

    def _label_args(self) -> str:
        # Short: error messages name the container without dumping its whole config.
        return f"{len(self._layers)} layers"

    def __repr__(self) -> str:
        lines = [f"  ({name}): {layer!r}".replace("\n", "\n  ") for name, layer in self._layers]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


class Graph(Layer):
    """A directed acyclic graph of named nodes with one input and one output.

    Add nodes in an order where each node's inputs already exist; that order is
    the forward order. One node may feed several others (their gradients are
    summed in backward), and ``Add`` / ``Concat`` nodes join branches::

        g = Graph()                                   # the input node is "input"
        g.add("conv", Conv2D(8, 8, 3, padding=1), "input")
        g.add("relu", ReLU(), "conv")
        g.add("sum", Add(), ["relu", "input"])        # a residual connection

    The output is the last node added unless ``output`` is set.

    Shape
    -----
    input: what the nodes reading ``input`` take; output: the output node's.
    """

    default_name = "graph"

    def __init__(self, input_name: str = "input") -> None:
        super().__init__()
        self.input_name = _check_name(input_name, "Graph", set())
        self._nodes: list[tuple[str, Layer, list[str]]] = []
        self.output: str | None = None

    def add(self, name: str, layer: Layer, inputs: str | Sequence[str]) -> "Graph":
        """Add node ``name`` computing ``layer`` of ``inputs``; returns the graph."""
        names = {self.input_name} | {n for n, _, _ in self._nodes}
        name = _check_name(name, "Graph.add", names)
        if not isinstance(layer, Layer):
            raise ValueError(f"Graph.add('{name}'): expected a Layer, received {type(layer).__name__}")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        unknown = [i for i in inputs if i not in names]
        if not inputs or unknown:
            raise ValueError(f"Graph.add('{name}'): expected inputs among the existing nodes "
                             f"{sorted(names)}, received {inputs}")
        if any(layer is other for _, other, _ in self._nodes):
            raise ValueError(f"Graph.add('{name}'): expected each layer object once, received "
                             f"{layer!r} more than once (a layer keeps one forward pass for its "
                             f"backward; build a second layer instead)")
        takes_list = getattr(layer, "takes_list", False)
        if takes_list != (len(inputs) > 1):
            want = "several inputs" if takes_list else "one input"
            raise ValueError(f"Graph.add('{name}'): expected {want} for {type(layer).__name__}, "
                             f"received {inputs}")
        layer.name = name
        self._nodes.append((name, layer, inputs))
        return self

    def _output_name(self) -> str:
        if not self._nodes:
            raise ValueError("Graph: expected at least one node, received an empty graph")
        return self.output if self.output is not None else self._nodes[-1][0]

    def __getitem__(self, name: str) -> Layer:
        for node, layer, _ in self._nodes:
            if node == name:
                return layer
        raise KeyError(f"Graph has no node named '{name}'")

    def named_layers(self) -> list[tuple[str, Layer]]:
        return [(name, layer) for name, layer, _ in self._nodes]

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        # Graph.add refuses a layer object twice, so every node owns its parameters.
        for name, layer, _ in self._nodes:
            yield from layer.named_parameters(f"{prefix}{name}.")

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        out = self._output_name()
        values: dict[str, np.ndarray] = {self.input_name: x}
        for name, layer, inputs in self._nodes:
            args = [values[i] for i in inputs]
            values[name] = layer.forward(args if len(args) > 1 else args[0], training=training)
        self._cache = [name for name, _, _ in self._nodes]
        return values[out]

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        self._saved()
        grads: dict[str, np.ndarray] = {self._output_name(): dy}
        for name, layer, inputs in reversed(self._nodes):
            if name not in grads:
                continue  # this node does not reach the output
            need = input_grad or any(i != self.input_name for i in inputs)
            dxs = layer.backward(grads.pop(name), input_grad=need)
            if dxs is None:
                continue
            if len(inputs) == 1:
                dxs = [dxs]
            for source, dx in zip(inputs, dxs):
                # Fan-out: a value read by several nodes gets the sum of their gradients.
                grads[source] = grads[source] + dx if source in grads else dx
        return grads.get(self.input_name) if input_grad else None

    def get_config(self) -> dict[str, Any]:
        from minidl.config import layer_to_config
        return {"input_name": self.input_name, "output": self._output_name() if self._nodes else None,
                "nodes": [{"name": name, "inputs": inputs, **layer_to_config(layer)}
                          for name, layer, inputs in self._nodes]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Graph":
        from minidl.config import layer_from_config
        graph = cls(config.get("input_name", "input"))
        for node in config["nodes"]:
            graph.add(node["name"], layer_from_config(node), node["inputs"])
        graph.output = config.get("output")
        return graph

    def _label_args(self) -> str:
        return f"{len(self._nodes)} nodes"

    def __repr__(self) -> str:
        lines = [f"  ({name} <- {', '.join(inputs)}): {layer!r}".replace("\n", "\n  ")
                 for name, layer, inputs in self._nodes]
        return "Graph(\n" + "\n".join(lines) + "\n)"
