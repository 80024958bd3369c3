"""minidl: a small deep-learning framework in NumPy with hand-written backward passes.

Every layer carries its own forward and backward pass; there is no autograd.
"""

from minidl import gradcheck, init, layers, losses, optim
from minidl.config import from_json, layer_from_config, layer_to_config, to_json
from minidl.containers import Graph, Sequential
from minidl.parameter import Parameter

__all__ = ["Parameter", "Sequential", "Graph", "layers", "losses", "optim", "init", "gradcheck",
           "layer_to_config", "layer_from_config", "to_json", "from_json"]
__version__ = "0.1.0"
