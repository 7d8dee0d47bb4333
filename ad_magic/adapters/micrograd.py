"""micrograd's ``Value``: ``data`` and ``grad`` are floats, ``_prev`` the set of inputs,
``_op`` the operation's symbol (``''`` for a leaf; ``'+'``, ``'*'``, ``'ReLU'``,
``'**2'``…), ``_backward`` its closure, and an optional ``label``."""
from __future__ import annotations

import numpy as np

from .base import CANONICAL, AdapterError, ForeignNode, _short

__all__ = ["MicrogradAdapter", "looks_like"]


def looks_like(obj) -> bool:
    try:
        return hasattr(obj, "_prev") and hasattr(obj, "_op") and hasattr(obj, "data")
    except Exception:
        return False


class MicrogradAdapter:
    kind = "micrograd"
    unordered = True

    def node(self, graph, obj):
        if not isinstance(obj.data, (int, float, np.number)) or isinstance(obj.data, bool):
            raise AdapterError(f"{type(obj).__name__}.data is {_short(obj.data)} "
                               f"({type(obj.data).__name__}), not a number.")
        label = getattr(obj, "label", None)
        return ForeignNode(graph, obj, obj._op or None, label if isinstance(label, str) and label else None)

    def parents_of(self, node):
        return tuple(node.source._prev)

    def arrange(self, node, parents):
        return parents

    def canonical(self, node):
        op = node._function
        if not op:
            return None
        if op.startswith("**"):
            return "pow"
        return CANONICAL.get(op.lower())

    def constants(self, node):
        op = node._function or ""
        if op.startswith("**"):
            try:
                return (np.float64(float(op[2:])),)
            except ValueError:
                raise AdapterError(f"micrograd op {op!r}: cannot read the exponent") from None
        return ()

    def data(self, node):
        return np.asarray(float(node.source.data))

    def grad(self, node):
        g = node.source.grad
        return None if g is None else np.asarray(float(g))

    def set_grad(self, node, value):
        node.source.grad = float(np.asarray(value).reshape(-1)[0])

    def has_backward(self, node):
        return callable(getattr(node.source, "_backward", None))

    def run_backward(self, node):
        node.source._backward()
