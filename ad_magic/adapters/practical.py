"""The practical's shape: a student's own ``Tensor``.

A node has ``data`` (numbers or a NumPy array), ``grad`` (None or an array), ``_parents``
(a set, list or tuple of nodes), ``_function`` (None for a leaf, else a string such as
``"mul"``) and ``_backward`` (a closure that adds into its parents' grads). An optional
``name`` (or ``label``) is shown.
"""
from __future__ import annotations

import numpy as np

from .base import CANONICAL, AdapterError, ForeignNode, _short, numeric

__all__ = ["PracticalAdapter", "looks_like"]


def looks_like(obj) -> bool:
    """Has the practical's two defining attributes, ``data`` and ``_parents``."""
    try:
        return hasattr(obj, "_parents") and hasattr(obj, "data")
    except Exception:
        return False


def _type_name(obj) -> str:
    return type(obj).__name__


class PracticalAdapter:
    kind = "practical"
    unordered = True            # a set of parents has no operand order

    def node(self, graph, obj):
        cls = _type_name(obj)
        numeric(getattr(obj, "data", None), f"{cls}.data")          # one clear sentence, now
        function = getattr(obj, "_function", None)
        if function is not None and not isinstance(function, str):
            raise AdapterError(f"{cls}._function is {_short(function)} ({_type_name(function)}); "
                               "it must be None (a leaf) or the operation's name as a string, e.g. 'mul'.")
        name = getattr(obj, "name", None) or getattr(obj, "label", None)
        return ForeignNode(graph, obj, function or None, name if isinstance(name, str) and name else None)

    def parents_of(self, node):
        obj = node.source
        parents = getattr(obj, "_parents", ())
        if parents is None:
            return ()
        if isinstance(parents, (str, bytes)) or not hasattr(parents, "__iter__"):
            raise AdapterError(f"{_type_name(obj)}._parents is {_short(parents)} ({_type_name(parents)}), "
                               "which is not a set, list or tuple of tensors.")
        parents = tuple(parents)
        for p in parents:
            if not looks_like(p):
                raise AdapterError(f"{_type_name(obj)}._parents holds {_short(p)} ({_type_name(p)}), "
                                   "which is not a tensor (it has no data and _parents).")
        return parents

    def arrange(self, node, parents):
        return parents

    def canonical(self, node):
        f = node._function
        return CANONICAL.get(f.lower()) if f else None

    def constants(self, node):
        return ()

    def data(self, node):
        return numeric(node.source.data, f"{_type_name(node.source)}.data")

    def grad(self, node):
        g = getattr(node.source, "grad", None)
        if g is None:
            return None
        try:
            return np.asarray(g, dtype=np.float64)
        except Exception:
            return None

    def set_grad(self, node, value):
        node.source.grad = value

    def has_backward(self, node):
        return callable(getattr(node.source, "_backward", None))

    def run_backward(self, node):
        node.source._backward()
