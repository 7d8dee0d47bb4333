"""Drawing and stepping graphs that other code built: :func:`adapt`.

``adapt(obj)`` returns an ad_magic ``Tensor`` unchanged and wraps anything else that
looks like a node of a computation graph — a student's own ``Tensor`` from the practical,
a micrograd-style ``Value``, any class read by what its fields hold (``structure.py``, the
spellings of ``contract.py`` first), a PyTorch tensor (``torch.py``, when torch is
imported) — in a :class:`~ad_magic.adapters.base.ForeignNode` of one
:class:`~ad_magic.adapters.graph.ForeignGraph`, through one adapter protocol
(:class:`~ad_magic.adapters.base.Adapter`). The renderer, the stepper and the magic call
it at their entry points and see one interface. :func:`recording` (``watching.py``)
watches code build a graph, for what the objects themselves do not hold.

The adapters sit above the engine and drawing and import only those two: importing this
package registers :class:`ForeignNode` as a drawing node and :func:`adapt` as drawing's
way to turn anything drawable into one (``ad_magic`` imports it, so both always hold).
"""
from __future__ import annotations

import contextlib
import sys

from ..drawing.nodes import Node, register_adapter
from ..engine import Tensor
from .base import AdapterError, ForeignNode
from .contract import StudentAdapter, lone_output, looks_like, not_a_node, readable
from .graph import ForeignGraph, node_for
from .observe import Observation, observe_backward
from .steps import ForeignStep, ForeignTerm
from .watching import Recording, recording

__all__ = ["adapt", "adaptable", "adapt_names", "preserved", "recording", "Recording", "AdapterError", "ForeignNode",
           "ForeignStep", "ForeignTerm", "observe_backward", "Observation", "node_for"]


def _torch_tensor(obj) -> bool:
    torch = sys.modules.get("torch")   # only when the user imported torch: never imported here
    return torch is not None and isinstance(obj, torch.Tensor)


def _adapter_for(obj, recording=None, inputs=()):
    if _torch_tensor(obj):
        from .torch import TorchAdapter

        return TorchAdapter()
    if looks_like(obj) or readable(obj) or (recording is not None and recording.made(obj) is not None):
        return StudentAdapter(obj, recording=recording, inputs=inputs)
    return None


def adaptable(obj) -> bool:
    """True for a Tensor, an adapted node, or an object an adapter understands."""
    return isinstance(obj, (Tensor, ForeignNode)) or _adapter_for(obj) is not None


_PLAIN = (int, float, complex, bool, str, bytes, list, tuple, dict, set, frozenset, type(None))


def adapt(obj, what: str = "this", *, recording=None, inputs=()):
    """``obj`` as something the renderer and the stepper draw: a Tensor as it is, an
    adapted node as it is, another library's node wrapped (its whole graph at once).
    Anything else is a TypeError in one sentence naming ``what`` needed it.

    ``recording`` (from :func:`recording`) says which call made which node from which
    inputs, for graphs their objects do not hold (edges kept on the consumers, a graph
    erased by ``backward()``); ``inputs`` are nodes the caller knows are in the graph (the
    leaves it named), from which edges kept on the consumers are followed to ``obj``."""
    if isinstance(obj, (Tensor, ForeignNode)):
        return obj
    adapter = _adapter_for(obj, recording, inputs)
    if adapter is None:
        if isinstance(obj, tuple) and hasattr(type(obj), "_fields") and type(obj).__module__ != "builtins":
            raise AdapterError(f"{what}: {type(obj).__name__} is a NamedTuple, whose fields cannot be set, and "
                               "ad_magic writes the grads it steps into a node's grad field; make the node a class "
                               "(a @dataclass reads the same).")
        if isinstance(obj, _PLAIN) or type(obj).__module__ in ("numpy", "builtins"):
            raise TypeError(f"{what} needs a Tensor (the result of a computation), got {type(obj).__name__}; "
                            "wrap a value in Tensor(...) first.")
        raise AdapterError(not_a_node(obj, what))
    root = ForeignGraph(adapter, obj).root
    lone = lone_output(adapter, root)
    if lone is not None:
        raise AdapterError(lone)
    return root


def preserved(node):
    """A context in which ``node``'s graph may be stepped: when it ends, every field of
    the student's objects is as it was (for ad_magic's own Tensor: nothing to do)."""
    if isinstance(node, ForeignNode):
        return node.graph.preserved()
    return contextlib.nullcontext()


def adapt_names(node, names):
    """``names`` (keyed by the original objects, or by name) re-keyed by ``node``'s graph."""
    if not isinstance(node, ForeignNode) or not names:
        return names
    if not hasattr(names, "items"):
        raise TypeError(f"names must be a dict mapping tensors to names, got {type(names).__name__}")
    return node.graph.names(names)


Node.register(ForeignNode)
register_adapter(adapt, adapt_names)
