"""One interface for graphs built by other code: :class:`ForeignNode` (its graph,
:class:`~ad_magic.adapters.graph.ForeignGraph`, is in ``graph.py``).

An adapter (``contract.py`` for students' classes and micrograd-style values,
``torch.py``) wraps each node of someone else's graph in a :class:`ForeignNode`, which
shows the public surface of ad_magic's ``Tensor`` that the drawing and the stepper read
(``data``, ``grad``, ``parents``, ``_function``, ``name``, ``requires_grad``, ``is_leaf``,
``shape``, …), reading the wrapped object live: after the student's code changed a grad,
the node shows the new one.

:meth:`ForeignGraph.backward_steps` runs the graph's *own* rules (``_backward``
closures), children before parents, and yields a :class:`ForeignStep` per rule saying
what it changed (``steps.py``). When the node's operation is one ad_magic knows (``add``,
``mul``, ``relu``, ``matvec``, …), the step also compares each change with the chain rule
computed from the same upstream grad (``rules.py``, from the op registry), so a wrong rule
shows at the very step where it goes wrong (``step.note``); a rule that raises becomes a
step with the exception and the line.

Looking never changes the student's graph: drawing only reads it, and
:meth:`ForeignGraph.preserved` (used by the timeline) puts back every field of every
node — grads included — when stepping ends, also when the student's code raised halfway.
A graph whose parents loop back is one :class:`AdapterError` naming two nodes of the loop.
"""
from __future__ import annotations

import numpy as np

from ..engine.formatting import format_number, format_value, short_repr

__all__ = ["Adapter", "ForeignNode", "AdapterError", "numeric", "label", "describe"]


class AdapterError(TypeError):
    """An object that looks like a tensor but cannot be drawn or stepped (one sentence)."""


def numeric(value, where: str):
    """``value`` as a float ndarray, or an AdapterError naming ``where`` and what it was."""
    if isinstance(value, (str, bytes)) or value is None:
        raise AdapterError(f"{where} is {short_repr(value)} ({type(value).__name__}), not numbers; "
                           "store a number or a NumPy array there.")
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise AdapterError(f"{where} cannot be read as numbers: {type(exc).__name__}: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise AdapterError(f"{where} is {short_repr(value)} ({type(value).__name__}), not numbers; "
                           "store a number or a NumPy array there.")
    return array.astype(np.float64) if array.dtype.kind != "f" else array


# --------------------------------------------------------------------------- the adapter protocol

class Adapter:
    """The adapter protocol, declared once: how one library's graph is read. One adapter
    instance serves one adapted graph (:class:`~ad_magic.adapters.graph.ForeignGraph`),
    which calls these methods and nothing else. ``StudentAdapter`` (``contract.py``: any
    class, read by the structure of its fields, ``structure.py``) and ``TorchAdapter``
    (``torch.py``) implement it; the defaults here are what an adapter says when it has
    nothing to add.

    Reading the graph (each node once, when the graph is built):

    * ``node(graph, obj)`` — a :class:`ForeignNode` wrapping ``obj`` (name, requires_grad);
    * ``operands_of(node)`` — its inputs as stored: objects to wrap, and constants as
      arrays; it sets ``node.ordered`` False when they have no order (a set);
    * ``label_of(node, n_operands)`` — (what its op node shows, the op registry's name or
      None, constants its label holds such as the 2 of ``"**2"``, the op its rule's own
      name tells or None);
    * ``hidden_constants(node)`` — numbers its rule keeps that its inputs do not;
    * ``scope(node)`` — the module calls that made it, outermost first;
    * ``built(order)`` — called once with every node, parents first;
    * ``alias(obj)`` — the object a caller's ``obj`` is drawn as (itself, or e.g. a
      PyTorch tensor's ``grad_fn``).

    Values and rules (read live: after the library's code changed a grad, the node shows it):

    * ``data(node)``, ``grad(node)`` (a float array, or None), ``set_grad(node, value)``;
    * ``has_backward(node)``, ``run_backward(node)`` (the library's own rule, adding into
      its inputs' grads), ``rule_name(node)``, ``rule_text(node)`` (how a step names a
      rule whose op ad_magic does not know);
    * ``prepare(root, order, seed)`` — before a backward pass is stepped;
    * ``checks_rules`` — False when the rules are the library's own (PyTorch) and need no
      comparing with the chain rule.
    """

    kind = "foreign"
    checks_rules = True

    def node(self, graph, obj):
        raise NotImplementedError

    def operands_of(self, node) -> tuple:
        raise NotImplementedError

    def label_of(self, node, n_operands):
        return node._function or "?", None, (), None

    def hidden_constants(self, node) -> list:
        return []

    def scope(self, node) -> tuple:
        return ()

    def built(self, order) -> None:
        return None

    def alias(self, obj):
        return obj

    def data(self, node):
        raise NotImplementedError

    def grad(self, node):
        raise NotImplementedError

    def set_grad(self, node, value) -> None:
        raise NotImplementedError

    def read_as_made(self) -> bool:
        """True when some of the graph was read as it was made (a recording), because the
        library's code erased it since: its own backward() can no longer be run on it."""
        return False

    def grad_field(self, obj):
        """Where ``obj`` (the library's own object) keeps its grad, as a path of attribute
        names (``("grad",)``, ``("g",)``), or None when the adapter does not know: what the
        tracer watches while the library's own backward runs."""
        return None

    def has_backward(self, node) -> bool:
        raise NotImplementedError

    def run_backward(self, node) -> None:
        raise NotImplementedError

    def rule_name(self, node) -> str:
        return "_backward"

    def rule_text(self, node) -> str:
        return f"your rule for {node._function!r}"

    def prepare(self, root, order, seed) -> None:
        return None


# --------------------------------------------------------------------------- nodes

class ForeignNode:
    """One node of another library's graph, seen through ad_magic's Tensor surface.

    ``source`` is the wrapped object; ``graph`` the :class:`ForeignGraph` it belongs to.
    ``data`` and ``grad`` are read from ``source`` each time (as float arrays).
    ``operands`` are its inputs in operand order (nodes, and constants such as the 2 of
    ``x ** 2``); ``kind`` the op registry's name of its operation when known.
    """

    __slots__ = ("source", "graph", "parents", "_function", "kind", "name", "requires_grad", "_index",
                 "operands", "ordered", "expanded", "remark", "inferred", "stored")

    def __init__(self, graph, source, function, name, requires_grad=True):
        self.graph, self.source = graph, source
        self._function = function
        self.kind = None            # the op registry's name for it, when known
        self.name = name
        self.requires_grad = requires_grad
        self.parents = ()
        self.operands = ()
        self.ordered = True         # False when the parents were a set (no operand order)
        self.expanded = False
        self.remark = None          # the op its label claims and the one its value and rule show differ
        self.inferred = None        # the op the rule's own name tells (``__mul__`` -> mul)
        self.stored = ()            # its inputs as stored (with constants from its label), before ordering

    # -- the Tensor surface the renderer reads
    @property
    def data(self) -> np.ndarray:
        return self.graph.adapter.data(self)

    @property
    def grad(self):
        return self.graph.adapter.grad(self)

    @property
    def is_leaf(self) -> bool:
        return not self.parents

    @property
    def _scope(self) -> tuple:
        """The module calls that made this node (outermost first), when the library says
        (see :func:`ad_magic.nn.module_scope`; PyTorch: ``track_modules``)."""
        return self.graph.adapter.scope(self)

    @property
    def _parents(self):
        return set(self.parents)

    @property
    def shape(self) -> tuple:
        return tuple(np.shape(self.data))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def dtype(self):
        return self.data.dtype

    def item(self) -> float:
        return float(self.data.reshape(-1)[0])

    def backward_steps(self, grad=None):
        """Run the graph's own rules from this node (see ForeignGraph.backward_steps)."""
        return self.graph.backward_steps(self, grad)

    def backward(self, grad=None):
        """Run the graph's own rules to the end: the grads keep the result (as the
        class's own backward() would leave them); a rule that raises puts every field
        back as it was and raises."""
        for step in self.backward_steps(grad):
            if step.error is not None:
                raise step.error

    def forward_steps(self):
        """Not available: replaying needs each op's forward rule, which only ad_magic's Tensor records."""
        raise TypeError(f"forward replay needs ad_magic's Tensor; this {self.graph.adapter.kind} graph records no "
                        "forward rules to replay: run the code that built it again instead.")

    def forward(self):
        return self.forward_steps()

    def __repr__(self):
        try:
            kind = self.graph.adapter.kind
            what = f"{self._function}" if self._function else "leaf"
            return f"<{kind} node {self.name or ''} {what}: data {format_value(self.data)}>".replace("  ", " ")
        except Exception as exc:
            return f"<foreign node (repr failed: {type(exc).__name__})>"


def describe(node) -> str:
    """A node in an error message: its class, its name if any, its value."""
    cls = type(node.source).__name__
    try:
        value = format_value(node.data)
    except Exception:
        value = "?"
    name = f" {node.name!r}" if node.name else ""
    return f"the {cls}{name} (data {value})"


def label(node) -> str:
    """How a step's note names a node: the caller's name, its own, its op's result or its value."""
    given = node.graph.display.get(node)
    if given:
        return given
    if node.name:
        return node.name
    if node._function:
        return f"the {node._function} result"
    try:
        return f"the leaf {format_number(node.item())}" if node.size == 1 else f"a leaf of shape {node.shape}"
    except Exception:
        return "a leaf"
