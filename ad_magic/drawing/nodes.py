"""What drawing draws: a node of a computation graph, and the hook that turns anything
else into one.

A node is ad_magic's own :class:`~ad_magic.engine.Tensor`, or any object with the same
surface (``data``, ``grad``, ``name``, ``parents``, ``_parents``, ``_function``,
``is_leaf``, ``requires_grad``) registered as a :class:`Node`; such an object belongs
to a graph object (``node.graph``) that orders its nodes (``graph.order_from(node)``).
The adapters layer, above this one, registers its node class and its :func:`adapt`
here when it is imported (``ad_magic`` imports it), so the drawing entry points accept
anything drawable without importing the adapters.
"""
from __future__ import annotations

import abc

from ..engine import Tensor, topological_order

__all__ = ["Node", "register_adapter", "as_node", "node_names", "is_node", "graph_order"]


class Node(abc.ABC):  # noqa: B024  (an interface by registration: no abstract method to call)
    """The node interface drawing reads (see the module docstring); ``Tensor`` is one,
    and another class becomes one with ``Node.register(cls)``."""


Node.register(Tensor)

_adapter: dict = {}


def register_adapter(adapt, adapt_names) -> None:
    """Register how anything drawable becomes a node: ``adapt(obj, what)`` returns a node
    (or raises naming ``what`` needed it) and ``adapt_names(node, names)`` re-keys a names
    dict by the node's graph."""
    _adapter["adapt"], _adapter["adapt_names"] = adapt, adapt_names


def is_node(obj) -> bool:
    """True for a Tensor or another registered node."""
    return isinstance(obj, Node)


def as_node(obj, what: str = "this"):
    """``obj`` as a node: a node as it is, anything else through the registered adapter.
    Without one, anything but a node is a TypeError in one sentence naming ``what``."""
    adapt = _adapter.get("adapt")
    if adapt is not None:
        return adapt(obj, what)
    if isinstance(obj, Node):
        return obj
    raise TypeError(f"{what} needs a Tensor (the result of a computation), got {type(obj).__name__}; "
                    "wrap a value in Tensor(...) first.")


def node_names(node, names):
    """``names`` (keyed by the original objects, or by name) re-keyed by ``node``'s graph."""
    adapt_names = _adapter.get("adapt_names")
    if adapt_names is None or isinstance(node, Tensor):
        return names
    return adapt_names(node, names)


def graph_order(output) -> list:
    """Every node of ``output``'s graph, parents before children, ``output`` last."""
    if isinstance(output, Tensor):
        return topological_order(output)
    return list(output.graph.order_from(output))
