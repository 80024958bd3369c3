"""minidl: a small deep-learning framework in NumPy with hand-written backward passes.

Every layer carries its own forward and backward pass; there is no autograd.
"""

from minidl import checks, gradcheck, init, layers, losses, optim, schedules
from minidl.config import from_json, layer_from_config, layer_to_config, to_json
from minidl.containers import Graph, Node, Sequential
from minidl.layers.base import Layer
from minidl.parameter import Parameter

__all__ = ["Parameter", "Layer", "Sequential", "Graph", "Node", "layers", "losses", "optim",
           "schedules", "init", "gradcheck", "checks", "layer_to_config", "layer_from_config",
           "to_json", "from_json"]
__version__ = "0.2.0"
