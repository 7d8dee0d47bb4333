"""ad_magic — reverse-mode automatic differentiation you can watch.

A small NumPy engine (`Tensor`, `backward()`), graph drawing, widgets that step through
backpropagation and gradient descent, and the `%%autodiff` IPython magic
(``%load_ext ad_magic``).

Subpackages by layer, each importing only the ones below it (``pyproject.toml``'s
import-linter contracts check this): ``engine`` (NumPy only), ``drawing``, ``adapters``,
``widgets`` (the timeline and widgets), ``practical``, ``magic``. Importing ``ad_magic``
loads the engine, drawing and the adapters, so a tensor always shows its graph and any
drawable object is drawn; the widgets, the practical and the magic load on use.
``ad_magic.nn``, ``ad_magic.optim`` and ``ad_magic.landscapes`` are the public paths of
the engine's modules of those names: the same module objects, registered under both names,
so a name patched or compared through either path is the one the code uses.
"""

import sys as _sys

from . import adapters as _adapters  # noqa: F401  (registers the adapters with drawing)
from .drawing import GraphView, draw_computation_graph
from .engine import (
    Tensor,
    add,
    enable_grad,
    landscapes,
    mul,
    nn,
    no_grad,
    optim,
    topological_order,
    trace_graph,
    unbroadcast,
)
from .engine.functional import grad, jvp
from .engine.gradcheck import gradcheck
from .engine.non_finite import NonFiniteWarning

for _module in (nn, optim, landscapes):
    _sys.modules.setdefault(f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}", _module)

__version__ = "0.4.0"

__all__ = [
    "Tensor", "add", "mul", "no_grad", "enable_grad", "trace_graph", "topological_order", "unbroadcast",
    "gradcheck", "grad", "jvp", "draw_computation_graph", "GraphView", "NonFiniteWarning",
]


def load_ipython_extension(ip):
    """``%load_ext ad_magic``: register the ``%%autodiff`` and ``%autodiff`` magics."""
    from .magic.magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip):
    """``%unload_ext ad_magic``: remove the magics again."""
    from .magic.magics import unload_ipython_extension as unload

    unload(ip)
