"""ad_magic — reverse-mode automatic differentiation you can watch.

A small NumPy engine (`Tensor`, `backward()`), graph drawing, widgets that step through
backpropagation and gradient descent, and the `%%autodiff` IPython magic
(``%load_ext ad_magic``).
"""

from .engine import Tensor, add, mul, no_grad, trace_graph, topological_order, unbroadcast
from .gradcheck import gradcheck

__version__ = "0.1.0"

__all__ = [
    "Tensor", "add", "mul", "no_grad", "trace_graph", "topological_order", "unbroadcast",
    "gradcheck",
]
