"""What the widgets call each tensor: the user's names, else the tensor's own.

The ``%%autodiff`` magic passes the cell's variable names; a user may pass a dict keyed
either way (``{x: "x"}`` or ``{"x": x}``). :func:`normalize_names` turns either into
``{tensor: name}``, and :class:`DisplayNames` answers "what is this tensor called?".
"""
from __future__ import annotations

from .adapters.base import ForeignNode
from .engine import Tensor
from .formatting import format_number

__all__ = ["normalize_names", "DisplayNames"]


def normalize_names(names) -> dict:
    """{tensor: name} from a dict keyed either way ({tensor: name} or {name: tensor})."""
    if not names:
        return {}
    if not hasattr(names, "items"):
        raise TypeError(f"names must be a dict mapping tensors to names, got {type(names).__name__}")
    out = {}
    for key, value in names.items():
        if isinstance(key, (Tensor, ForeignNode)) and value is not None:
            out[key] = str(value)
        elif isinstance(value, (Tensor, ForeignNode)) and key is not None:
            out.setdefault(value, str(key))
    return out


class DisplayNames:
    """Display names: the user's names, else ``tensor.name``, else the value of a
    one-element constant (``3.0``), else None (a caption then keeps the rule's letters)."""

    def __init__(self, names: dict):
        self._by_id = {id(t): n for t, n in names.items()}

    def __call__(self, t) -> str | None:
        name = self._by_id.get(id(t)) or t.name
        if name:
            return str(name)
        if not t.requires_grad and t.is_leaf and t.size == 1:
            return format_number(t.item())
        return None
