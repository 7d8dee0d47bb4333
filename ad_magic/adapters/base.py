"""One interface for graphs built by other code: :class:`ForeignNode` and its steps.

An adapter (``practical.py``, ``micrograd.py``, ``torch.py``) wraps each node of someone
else's graph in a :class:`ForeignNode`, which shows the public surface of ad_magic's
``Tensor`` that the drawing and the stepper read (``data``, ``grad``, ``parents``,
``_function``, ``name``, ``requires_grad``, ``is_leaf``, ``shape``, …), reading the wrapped
object live: after the student's code changed a grad, the node shows the new one.

:meth:`ForeignGraph.backward_steps` runs the graph's *own* ``_backward`` closures,
children before parents, and yields a :class:`ForeignStep` per closure saying what it
changed (``steps.py``). When the node's operation is one ad_magic knows (``add``, ``mul``,
``relu``, ``matvec``, …), the step also compares each change with the chain rule computed
from the same upstream grad (``rules.py``, from the op registry), so a wrong rule shows at
the very step where it goes wrong (``step.note``); a closure that raises becomes a step
with the exception and the line.
"""
from __future__ import annotations

import numpy as np

from ..engine import OPS
from ..formatting import format_number, format_value

__all__ = ["ForeignNode", "ForeignGraph", "AdapterError", "numeric", "label"]

# The names other code gives operations, mapped to ad_magic's op registry.
CANONICAL = {
    "add": "add", "+": "add", "sub": "sub", "-": "sub", "mul": "mul", "*": "mul",
    "div": "div", "/": "div", "truediv": "div", "pow": "pow", "**": "pow", "neg": "neg",
    "exp": "exp", "log": "log", "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu",
    "matmul": "matmul", "matvec": "matmul", "@": "matmul", "mm": "matmul", "mv": "matmul",
}
CHECK_ALL_NODES = 500        # up to this many nodes, every grad is compared after each closure


class AdapterError(TypeError):
    """An object that looks like a tensor but cannot be drawn or stepped (one sentence)."""


def numeric(value, where: str):
    """``value`` as a float ndarray, or an AdapterError naming ``where`` and what it was."""
    if isinstance(value, (str, bytes)) or value is None:
        raise AdapterError(f"{where} is {_short(value)} ({type(value).__name__}), not numbers; "
                           "store a number or a NumPy array there.")
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise AdapterError(f"{where} cannot be read as numbers: {type(exc).__name__}: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise AdapterError(f"{where} is {_short(value)} ({type(value).__name__}), not numbers; "
                           "store a number or a NumPy array there.")
    return array.astype(np.float64) if array.dtype.kind != "f" else array


def _short(value) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- nodes

class ForeignNode:
    """One node of another library's graph, seen through ad_magic's Tensor surface.

    ``source`` is the wrapped object; ``graph`` the :class:`ForeignGraph` it belongs to.
    ``data`` and ``grad`` are read from ``source`` each time (as float arrays).
    """

    __slots__ = ("source", "graph", "parents", "_function", "kind", "name", "requires_grad", "_index")

    def __init__(self, graph, source, function, name, requires_grad=True):
        self.graph, self.source = graph, source
        self._function = function
        self.kind = None            # the op registry's name for it, when known
        self.name = name
        self.requires_grad = requires_grad
        self.parents = ()

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
        scope = getattr(self.graph.adapter, "scope", None)
        return scope(self) if scope is not None else ()

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
        """Run the graph's own ``_backward`` closures from this node (see ForeignGraph)."""
        return self.graph.backward_steps(self, grad)

    def backward(self, grad=None):
        for _ in self.backward_steps(grad):
            pass

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


class ForeignGraph:
    """Every node reachable from a root, wrapped once, in topological order (iterative).

    ``order`` lists the nodes parents first, the root last; ``node(obj)`` finds the
    node wrapping ``obj``.
    """

    def __init__(self, adapter, root_source):
        self.adapter = adapter
        self._by_id = {}
        self.display = {}       # node -> the name a caller gave it (the steps' notes use it)
        root = self._wrap(root_source)
        self.root = root
        self.order = self._topological(root)
        built = getattr(adapter, "built", None)   # e.g. PyTorch: intermediate values, parents first
        if built is not None:
            built(self.order)

    def _wrap(self, obj):
        node = self._by_id.get(id(obj))
        if node is None:
            node = self.adapter.node(self, obj)
            self._by_id[id(obj)] = node
            node._index = len(self._by_id)
        return node

    def _topological(self, root):
        order, state = [], {}
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                if state.get(id(node)) != "done":
                    state[id(node)] = "done"
                    order.append(node)
                continue
            if id(node) in state:
                continue
            state[id(node)] = "open"
            stack.append((node, True))
            parents = tuple(self._wrap(p) for p in self.adapter.parents_of(node))
            node.parents = self.adapter.arrange(node, parents)
            node.kind = self.adapter.canonical(node)
            if node.kind in OPS:   # operand order (a set has none): the order whose forward gives the data
                from .rules import arrange

                arranged = arrange(OPS[node.kind], node, self.adapter.constants(node))
                if arranged is not None:
                    node.parents = tuple(p for p in arranged if isinstance(p, ForeignNode))
            for p in reversed(node.parents):
                if id(p) not in state:
                    stack.append((p, False))
        return order

    def order_from(self, node):
        """The nodes ``node`` depends on, parents first, ``node`` last."""
        return self.order if node is self.root else self._topological(node)

    def node(self, obj):
        """The node wrapping ``obj`` (KeyError when ``obj`` is not in this graph). An adapter
        may know ``obj`` under another key (a PyTorch tensor is its grad_fn's node)."""
        if isinstance(obj, ForeignNode) and obj.graph is self:
            return obj
        node = self._by_id.get(id(obj))
        if node is None:
            alias = getattr(self.adapter, "alias", None)
            if alias is not None:
                node = self._by_id.get(id(alias(obj)))
        if node is None:
            raise KeyError("not a node of this graph")
        return node

    def names(self, names) -> dict:
        """A ``{object: name}`` (or ``{name: object}``) dict re-keyed by this graph's nodes."""
        out = {}
        for key, value in (names or {}).items():
            for obj, name in ((key, value), (value, key)):
                if not isinstance(name, str):
                    continue
                try:
                    node = self.node(obj)
                except (KeyError, TypeError):
                    continue
                out.setdefault(node, name)
        self.display.update(out)
        return out

    # -- backward, the graph's own way
    def backward_steps(self, root, grad=None):
        """Zero every grad, seed ``root``'s with ones (or ``grad``), and run each node's own
        ``_backward``, children before parents, yielding a ForeignStep after each.

        A closure that raises ends the pass with a step holding the exception."""
        if root.graph is not self:
            raise ValueError("backward_steps: the node belongs to another graph")
        adapter = self.adapter
        order = self.order_from(root)
        runnable = [n for n in order if n.parents]
        if runnable and not any(adapter.has_backward(n) for n in runnable):
            raise AdapterError(f"no node of this graph has a _backward rule yet ({adapter.kind}); "
                               "give each operation's output a _backward closure first.")
        if grad is None and root.size != 1:
            raise ValueError(f"backward_steps: the output has shape {root.shape}, not a single value; "
                             "pass grad=… (an array of that shape)")
        seed = np.ones(root.shape) if grad is None else numeric(grad, "grad")
        if seed.shape != root.shape:
            raise ValueError(f"backward_steps: grad has shape {seed.shape} but the output has shape {root.shape}")
        prepare = getattr(adapter, "prepare", None)   # e.g. PyTorch: run its engine once, recording each node
        if prepare is not None:
            prepare(root, order, seed)
        for node in order:
            adapter.set_grad(node, np.zeros(node.shape))
        adapter.set_grad(root, seed)
        watch_all = len(order) <= CHECK_ALL_NODES
        return self._steps(reversed(runnable), order if watch_all else None)

    def _steps(self, nodes, everything):
        from .steps import ForeignStep

        adapter = self.adapter
        for index, node in enumerate(nodes, 1):
            watched = everything if everything is not None else list(dict.fromkeys(node.parents + (node,)))
            before = {id(n): _copy(n.grad) for n in watched}
            upstream = before.get(id(node))
            if not adapter.has_backward(node):
                yield ForeignStep(index, node, before, {}, upstream,
                                  error=None, note=f"{node._function} has no _backward rule, so no grad flows "
                                                   "to its inputs from here.")
                continue
            try:
                adapter.run_backward(node)
            except Exception as exc:  # the student's own error: shown at its step, ends the pass
                yield ForeignStep(index, node, before, {}, upstream, error=exc)
                return
            after = {id(n): _copy(n.grad) for n in watched}
            yield ForeignStep(index, node, before, after, upstream, watched=watched)


def _copy(grad):
    return None if grad is None else np.array(grad, dtype=np.float64, copy=True)


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
