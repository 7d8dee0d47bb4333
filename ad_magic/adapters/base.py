"""One interface for graphs built by other code: :class:`ForeignNode` and its steps.

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

import contextlib

import numpy as np

from ..engine import OPS
from ..engine.formatting import format_number, format_value

__all__ = ["ForeignNode", "ForeignGraph", "AdapterError", "numeric", "label"]

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


class ForeignGraph:
    """Every node reachable from a root, wrapped once, in topological order (iterative).

    ``order`` lists the nodes parents first, the root last; ``node(obj)`` finds the
    node wrapping ``obj`` (the object itself, or the node).
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

    def _expand(self, node):
        """Read ``node``'s inputs once (a generator of parents can be read only once)."""
        if node.expanded:
            return
        node.expanded = True
        adapter = self.adapter
        operands_of = getattr(adapter, "operands_of", None)
        if operands_of is None:      # PyTorch: nodes only, in operand order
            parents = tuple(self._wrap(p) for p in adapter.parents_of(node))
            node.parents = adapter.arrange(node, parents)
            node.operands = node.parents
            node.kind = adapter.canonical(node)
            return
        operands = tuple(o if isinstance(o, np.ndarray) else self._wrap(o) for o in operands_of(node))
        nodes = tuple(o for o in operands if isinstance(o, ForeignNode))
        node.parents, node.operands = nodes, operands
        if not nodes:
            node._function = None
            return
        shown, claimed, constants, inferred = adapter.label_of(node, len(operands))
        node._function, node.inferred = shown, inferred
        operands = operands + tuple(constants)
        node.operands = node.stored = operands
        from .rules import arrange

        fits = {}
        hidden = getattr(adapter, "hidden_constants", None)
        for kind in (k for k in dict.fromkeys((claimed, inferred)) if k in OPS):
            arranged = None
            if hidden is not None and len(OPS[kind].inputs) == len(operands) + 1:
                # a constant kept only by the rule (x ** 3 with _prev = (x,)) comes before reading
                # the one parent as both operands (x ** x, which coincides with it at x = 3)
                for constant in hidden(node):
                    arranged = arrange(OPS[kind], node, operands + (constant,))
                    if arranged is not None:
                        break
            if arranged is None:
                arranged = arrange(OPS[kind], node, operands)
            if arranged is not None:
                fits[kind] = arranged
        if claimed in fits:
            node.kind = claimed
        elif inferred in fits:
            node.kind = inferred
            node.remark = (f"it is labelled {shown!r}, but its value is {inferred} of its inputs and its rule "
                           f"was written for {inferred}: it is stepped as {inferred}")
        else:
            node.kind = claimed if claimed in OPS else None
        if node.kind in fits:
            node.operands = fits[node.kind]
            node.parents = tuple(p for p in node.operands if isinstance(p, ForeignNode))

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
            state[id(node)] = "open"    # open nodes are the path from the root to here
            stack.append((node, True))
            self._expand(node)
            for p in reversed(node.parents):
                seen = state.get(id(p))
                if seen == "open":
                    raise AdapterError(
                        f"this graph has a cycle: {describe(p)} is a parent of {describe(node)}, which is itself "
                        f"one of the inputs {describe(p)} was computed from; a computation graph cannot loop back "
                        "(check which objects your operations store as parents).")
                if seen is None:
                    stack.append((p, False))
        return order

    def order_from(self, node):
        """The nodes ``node`` depends on, parents first, ``node`` last."""
        return self.order if node is self.root else self._topological(node)

    def node(self, obj):
        """The node wrapping ``obj`` (KeyError when ``obj`` is not in this graph). An adapter
        may know ``obj`` under another key (a PyTorch tensor is its grad_fn's node)."""
        if isinstance(obj, ForeignNode):
            if obj.graph is self:
                return obj
            obj = obj.source
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

    # -- leaving the student's objects as they were
    @contextlib.contextmanager
    def preserved(self):
        """Put back every field of every node when the block ends, however it ends."""
        saved = [_fields(n.source) for n in self.order]
        try:
            yield self
        finally:
            for node, fields in zip(self.order, saved):
                _restore(node.source, fields)

    # -- backward, the graph's own way
    def backward_steps(self, root, grad=None):
        """Zero every grad, seed ``root``'s with ones (or ``grad``), and run each node's own
        rule, children before parents, yielding a ForeignStep after each. Nothing changes
        until the first step is asked for.

        Afterwards the grads hold the result; a rule that raises ends the pass with a step
        holding the exception, and every field of every node is put back as it was (also
        when the steps are abandoned halfway)."""
        if root.graph is not self:
            raise ValueError("backward_steps: the node belongs to another graph")
        adapter = self.adapter
        order = self.order_from(root)
        runnable = [n for n in order if n.parents]
        if runnable and not any(adapter.has_backward(n) for n in runnable):
            from .contract import RULES

            looked = "/".join(RULES) if getattr(adapter, "operands_of", None) else "_backward"
            raise AdapterError(f"no node of this graph has a backward rule yet ({adapter.kind}; looked for "
                               f"{looked}): give each operation's output a _backward closure first.")
        if grad is None and root.size != 1:
            raise ValueError(f"backward_steps: the output has shape {root.shape}, not a single value; "
                             "pass grad=… (an array of that shape)")
        seed = np.ones(root.shape) if grad is None else numeric(grad, "grad")
        if seed.shape != root.shape:
            raise ValueError(f"backward_steps: grad has shape {seed.shape} but the output has shape {root.shape}")
        return self._pass(root, order, runnable, seed)

    def _pass(self, root, order, runnable, seed):
        adapter = self.adapter
        saved = [_fields(n.source) for n in order]
        finished = False
        try:
            prepare = getattr(adapter, "prepare", None)   # e.g. PyTorch: run its engine once, recording each node
            if prepare is not None:
                prepare(root, order, seed)
            for node in order:
                adapter.set_grad(node, np.zeros(node.shape))
            adapter.set_grad(root, seed)
            watch_all = len(order) <= CHECK_ALL_NODES
            for step in self._steps(reversed(runnable), order if watch_all else None):
                yield step
                if step.error is not None:
                    return
            finished = True
        finally:
            if not finished:      # the student's code raised, or the steps were abandoned: as it was
                for node, fields in zip(order, saved):
                    _restore(node.source, fields)

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


def _fields(obj):
    """Every field of ``obj`` (its ``__dict__`` and slots), to put back later."""
    state = None
    try:
        state = dict(vars(obj))
    except TypeError:
        pass
    slots = {}
    for klass in type(obj).__mro__:
        names = getattr(klass, "__slots__", ())
        for name in (names,) if isinstance(names, str) else names:
            if name in ("__dict__", "__weakref__") or name in slots:
                continue
            try:
                slots[name] = (True, object.__getattribute__(obj, name))
            except AttributeError:
                slots[name] = (False, None)
            except Exception:
                continue
    return state, slots


def _restore(obj, fields):
    state, slots = fields
    if state is not None:
        try:
            current = vars(obj)
            current.clear()
            current.update(state)
        except Exception:
            pass
    for name, (present, value) in slots.items():
        try:
            if present:
                object.__setattr__(obj, name, value)
            elif hasattr(obj, name):
                object.__delattr__(obj, name)
        except Exception:
            pass


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
