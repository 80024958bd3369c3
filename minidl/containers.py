"""Containers: Sequential (a chain) and Graph (named nodes, fan-out, merges).

Both follow the Layer contract, so they nest and train like any layer. Names
are dotted: ``conv1.weight`` in a Sequential, ``block.conv_a.weight`` when a
container sits inside a Graph node called ``block``. A layer object may appear
only once anywhere in a model (nested containers included): it keeps one
forward pass for its backward. To tie weights, share a Parameter instead.
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from minidl.layers.base import Layer, keeps


def _check_name(name: Any, owner: str, taken: set[str]) -> str:
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{owner}: expected a non-empty name without dots, received {name!r}")
    if name in taken:
        raise ValueError(f"{owner}: expected unique layer names, received '{name}' twice")
    return name


def _check_tree(container: Layer) -> None:
    """Walk the whole tree once: the walk refuses a layer object met twice."""
    for _ in container.named_modules():
        pass


class Sequential(Layer):
    """Layers applied one after another.

    ``Sequential(Conv2D(1, 6, 5), ReLU(), ...)`` names the layers after their kind
    (``conv1``, ``relu1``, ``pool1``, ``fc1``, ...); pass ``("name", layer)`` pairs
    to choose names.

    Shape
    -----
    input: what the first layer takes; output: what the last layer returns.
    """

    per_example = True

    default_name = "sequential"

    def __init__(self, *layers: Layer | tuple[str, Layer]) -> None:
        super().__init__()
        self._layers: list[tuple[str, Layer]] = []
        chosen = {item[0] for item in layers if isinstance(item, tuple) and len(item) == 2}
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
                        if name not in taken and name not in chosen:
                            break
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential: expected Layer instances or (name, Layer) pairs, "
                                 f"received {type(layer).__name__}")
            if getattr(layer, "takes_list", False):
                raise ValueError(f"Sequential: {type(layer).__name__} joins branches; "
                                 f"use it in a Graph")
            taken.add(name)
            layer.name = name
            self._layers.append((name, layer))
        _check_tree(self)

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
            raise KeyError(f"Sequential has no layer named '{key}'; "
                           f"names: {[n for n, _ in self._layers]}")
        return self._layers[key][1]

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        yield from self._layers

    # -- computation --------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        for _, layer in self._layers:
            x = layer.forward(x, training=training, keep_for_backward=keep_for_backward)
        return x

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        for i in range(len(self._layers) - 1, -1, -1):
            dy = self._layers[i][1].backward(dy, input_grad=input_grad or i > 0)
        return dy

    # -- description --------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        from minidl.config import layer_to_config
        return {"layers": [{"name": name, **layer_to_config(layer)}
                           for name, layer in self._layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Sequential":
        from minidl.config import layer_from_config
        layers = config.get("layers")
        if not isinstance(layers, list) or not all(isinstance(i, dict) and "name" in i
                                                   for i in layers):
            raise ValueError(f"Sequential: expected 'layers' to be a list of named layer "
                             f"descriptions, received {layers!r:.120}")
        return cls(*[(item["name"], layer_from_config(item)) for item in layers])

    def _label_args(self) -> str:
        # Short: error messages name the container without dumping its whole config.
        return f"{len(self._layers)} layers"

    def __repr__(self) -> str:
        lines = [f"  ({name}): {layer!r}".replace("\n", "\n  ") for name, layer in self._layers]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


class Node(NamedTuple):
    """One node of a Graph: its name, its layer and the names of the values it reads."""

    name: str
    layer: Layer
    inputs: tuple[str, ...]


class GraphCache(NamedTuple):
    output: str  #: the node whose value the forward pass returned


class Graph(Layer):
    """A directed acyclic graph of named nodes with one input and one output.

    Add nodes in an order where each node's inputs already exist; that order is
    the forward order. One node may feed several others (their gradients are
    summed in backward), and ``Add`` / ``Concat`` nodes join branches::

        g = Graph()                                   # the input node is "input"
        g.add("conv", Conv2D(8, 8, 3, padding=1), "input")
        g.add("relu", ReLU(), "conv")
        g.add("sum", Add(), ["relu", "input"])        # a residual connection

    The output is the last node added unless ``output`` is set to a node's name.
    ``nodes`` lists the wiring: ``Node(name, layer, inputs)`` in forward order.

    Shape
    -----
    input: what the nodes reading ``input`` take; output: the output node's.
    """

    per_example = True

    default_name = "graph"

    def __init__(self, input_name: str = "input") -> None:
        super().__init__()
        self.input_name = _check_name(input_name, "Graph", set())
        self._nodes: list[Node] = []
        self._output: str | None = None

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The wiring, in forward order."""
        return tuple(self._nodes)

    @property
    def output(self) -> str:
        """The name of the node whose value ``forward`` returns."""
        if not self._nodes:
            raise ValueError("Graph: expected at least one node, received an empty graph")
        return self._output if self._output is not None else self._nodes[-1].name

    @output.setter
    def output(self, name: str | None) -> None:
        names = [node.name for node in self._nodes]
        if name is not None and name not in names:
            raise ValueError(f"Graph: expected output to be one of the nodes {names}, "
                             f"received {name!r}")
        self._output = name

    def add(self, name: str, layer: Layer, inputs: str | Sequence[str]) -> "Graph":
        """Add node ``name`` computing ``layer`` of ``inputs``; returns the graph."""
        names = {self.input_name} | {node.name for node in self._nodes}
        name = _check_name(name, "Graph.add", names)
        if not isinstance(layer, Layer):
            raise ValueError(f"Graph.add('{name}'): expected a Layer, "
                             f"received {type(layer).__name__}")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        unknown = [i for i in inputs if i not in names]
        if not inputs or unknown:
            raise ValueError(f"Graph.add('{name}'): expected inputs among the existing nodes "
                             f"{sorted(names)}, received {inputs}")
        takes_list = getattr(layer, "takes_list", False)
        if takes_list != (len(inputs) > 1):
            want = "several inputs" if takes_list else "one input"
            raise ValueError(f"Graph.add('{name}'): expected {want} for {type(layer).__name__}, "
                             f"received {inputs}")
        self._nodes.append(Node(name, layer, tuple(inputs)))
        try:
            _check_tree(self)
        except ValueError:
            self._nodes.pop()
            raise
        layer.name = name
        return self

    def __getitem__(self, name: str) -> Layer:
        for node in self._nodes:
            if node.name == name:
                return node.layer
        raise KeyError(f"Graph has no node named '{name}'; "
                       f"names: {[node.name for node in self._nodes]}")

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        for node in self._nodes:
            yield node.name, node.layer

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        out = self.output
        values: dict[str, np.ndarray] = {self.input_name: x}
        for name, layer, inputs in self._nodes:
            args = [values[i] for i in inputs]
            values[name] = layer.forward(args if len(args) > 1 else args[0], training=training,
                                         keep_for_backward=keep_for_backward)
        self._cache = GraphCache(out) if keeps(training, keep_for_backward) else None
        return values[out]

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        output, = self._saved()
        grads: dict[str, np.ndarray] = {output: dy}
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
        return {"input_name": self.input_name,
                "output": self.output if self._nodes else None,
                "nodes": [{"name": node.name, "inputs": list(node.inputs),
                           **layer_to_config(node.layer)} for node in self._nodes]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Graph":
        from minidl.config import layer_from_config
        nodes = config.get("nodes")
        if not isinstance(nodes, list) or not all(isinstance(n, dict) and "name" in n
                                                  and "inputs" in n for n in nodes):
            raise ValueError(f"Graph: expected 'nodes' to be a list of node descriptions with "
                             f"'name' and 'inputs', received {nodes!r:.120}")
        graph = cls(config.get("input_name", "input"))
        for node in nodes:
            graph.add(node["name"], layer_from_config(node), node["inputs"])
        graph.output = config.get("output")
        return graph

    def _label_args(self) -> str:
        return f"{len(self._nodes)} nodes"

    def __repr__(self) -> str:
        lines = [f"  ({node.name} <- {', '.join(node.inputs)}): {node.layer!r}".replace("\n", "\n  ")
                 for node in self._nodes]
        return "Graph(\n" + "\n".join(lines) + "\n)"
