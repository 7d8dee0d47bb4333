"""ad_magic — reverse-mode automatic differentiation you can watch.

A small NumPy engine (`Tensor`, `backward()`), graph drawing, widgets that step through
backpropagation and gradient descent, and the `%%autodiff` IPython magic
(``%load_ext ad_magic``).
"""

from .engine import Tensor, add, enable_grad, mul, no_grad, topological_order, trace_graph, unbroadcast
from .gradcheck import gradcheck
from .graph import GraphView, draw_computation_graph

__version__ = "0.2.0"

__all__ = [
    "Tensor", "add", "mul", "no_grad", "enable_grad", "trace_graph", "topological_order", "unbroadcast",
    "gradcheck", "draw_computation_graph", "GraphView",
]


def load_ipython_extension(ip):
    """``%load_ext ad_magic``: register the ``%%autodiff`` and ``%autodiff`` magics."""
    from .magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip):
    """``%unload_ext ad_magic``: remove the magics again."""
    from .magics import unload_ipython_extension as unload

    unload(ip)
