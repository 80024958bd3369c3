"""minidl: a small deep-learning framework in NumPy with hand-written backward passes."""

from minidl.parameter import Parameter

__all__ = ["Parameter"]
__version__ = "0.1.0"
