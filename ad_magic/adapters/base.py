"""One interface for graphs built by other code: :class:`ForeignNode` and its steps.

An adapter (``practical.py``, ``micrograd.py``, ``torch.py``) wraps each node of someone
else's graph in a :class:`ForeignNode`, which shows the public surface of ad_magic's
``Tensor`` that the drawing and the stepper read (``data``, ``grad``, ``parents``,
``_function``, ``name``, ``requires_grad``, ``is_leaf``, ``shape``, …), reading the wrapped
object live: after the student's code changed a grad, the node shows the new one.

:meth:`ForeignGraph.backward_steps` runs the graph's *own* ``_backward`` closures,
children before parents, and yields a :class:`ForeignStep` per closure saying what it
changed. When the node's operation is one ad_magic knows (``add``, ``mul``, ``relu``,
``matvec``, …), the step also compares each change with the chain rule computed from the
same upstream grad, so a wrong rule shows at the very step where it goes wrong
(``step.note``); a closure that raises becomes a step with the exception and the line.
"""
from __future__ import annotations

import itertools
import os
import traceback

import numpy as np

from ..engine import OPS
from ..formatting import format_number, format_value

__all__ = ["ForeignNode", "ForeignGraph", "ForeignStep", "ForeignTerm", "AdapterError", "numeric"]

# The names other code gives operations, mapped to ad_magic's op registry.
CANONICAL = {
    "add": "add", "+": "add", "sub": "sub", "-": "sub", "mul": "mul", "*": "mul",
    "div": "div", "/": "div", "truediv": "div", "pow": "pow", "**": "pow", "neg": "neg",
    "exp": "exp", "log": "log", "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu",
    "matmul": "matmul", "matvec": "matmul", "@": "matmul", "mm": "matmul", "mv": "matmul",
}
_SYMMETRIC = {"add", "mul"}
CHECK_ALL_NODES = 500        # up to this many nodes, every grad is compared after each closure
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
                arranged = _arrange(OPS[node.kind], node, self.adapter.constants(node))
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


# --------------------------------------------------------------------------- steps

class ForeignTerm:
    """One chain-rule term of a step (the interface of the engine's ChainTerm)."""

    __slots__ = ("parent", "operand", "factor_text", "expression", "_factor")

    def __init__(self, parent, operand, factor_text, expression, factor):
        self.parent, self.operand, self.factor_text = parent, operand, factor_text
        self.expression, self._factor = expression, factor

    @property
    def factor(self):
        return self._factor

    def __repr__(self):
        return f"ForeignTerm({self.operand}: ∂L/∂{self.operand} += {self.expression})"


class ForeignStep:
    """One closure of a foreign graph has run (the interface of the engine's BackwardStep).

    * ``index``, ``node``, ``function``, ``parents`` (the node's distinct parents),
      ``rule``, ``terms`` as in :class:`ad_magic.steps.BackwardStep`;
    * ``changes``: ``{parent: (before, after)}`` for every grad the closure changed;
    * ``expected``: ``{parent: the chain rule's contribution}`` when the op is known;
    * ``ok``: False when a contribution differs from the chain rule, a grad of a
      non-parent changed, or the closure raised; ``note`` says what, in one sentence;
    * ``error`` / ``where``: the closure's exception and the line it came from.
    """

    def __init__(self, index, node, before, after, upstream, *, error=None, note=None, watched=()):
        self.index, self.node, self.error = index, node, error
        self.function = node._function
        self.op = OPS.get(node.kind) if node.kind else None
        self.parents = tuple(dict.fromkeys(p for p in node.parents if p.requires_grad))
        self.where = _where(error) if error is not None else None
        self.changes = {}
        for n in watched:
            old, new = before.get(id(n)), after.get(id(n))
            if not _same(old, new):
                self.changes[n] = (old, new)
        judged = getattr(node.graph.adapter, "checks_rules", True)   # PyTorch's own rules need no checking
        self.expected = _expected(node, upstream) if judged and error is None and note is None else None
        if self.expected is not None:
            self.expected.bind(self.changes, before)
        self.terms = self._terms()
        self.note = note
        if error is not None:
            self.note = (f"your _backward raised {type(error).__name__}: {error}"
                         + (f" ({self.where})" if self.where else ""))
        elif note is None:
            self.note = self._judge()
        self.ok = self.note is None

    @property
    def rule(self):
        formula = self.op.formula if self.op is not None else f"out = {self.function}(…)"
        return ";  ".join([formula] + [f"∂L/∂{t.operand} += {t.expression}" for t in self.terms])

    def _terms(self):
        op, expected = self.op, self.expected
        if op is None or expected is None or expected.operands is None:
            describe = getattr(self.node.graph.adapter, "rule_text", None)
            text = describe(self.node) if describe is not None else f"your rule for {self.function!r}"
            return tuple(ForeignTerm(p, "abc"[i] if i < 3 else f"x{i}", None, text, None)
                         for i, p in enumerate(self.parents))
        terms = []
        for i, operand in enumerate(expected.operands):
            if not isinstance(operand, ForeignNode) or not operand.requires_grad:
                continue
            text = op.derivatives[i] if op.elementwise else None
            # The stepper multiplies the factor out: given only when the student's rule agrees.
            factor = expected.locals[i] if op.elementwise and expected.agrees(operand) else None
            terms.append(ForeignTerm(operand, op.inputs[i], text, op.expression(i), factor))
        return tuple(terms)

    def _judge(self):
        strays = [n for n in self.changes if n not in self.parents]
        if strays:
            who = ", ".join(_label(n) for n in strays[:3])
            return (f"this _backward changed the grad of {who}, which is not one of its inputs; "
                    "a rule adds only into its own parents' grads.")
        expected = self.expected
        if expected is None or expected.operands is None:
            return None
        for parent in self.parents:
            if not expected.agrees(parent):
                return expected.explain(parent, *expected.change(parent))
        return None

    def __repr__(self):
        try:
            state = "ok" if self.ok else f"WRONG: {self.note}"
            return f"ForeignStep({self.index}, {self.function!r}: {state})"
        except Exception as exc:
            return f"<ForeignStep {self.index} (repr failed: {type(exc).__name__})>"


def _label(node) -> str:
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


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def _where(exc) -> str | None:
    """"file, line N: code" of the deepest frame outside ad_magic and NumPy."""
    frames = traceback.extract_tb(exc.__traceback__)
    keep = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)
            and os.sep + "numpy" + os.sep not in f.filename]
    if not keep:
        return None
    f = keep[-1]
    code = f" — {f.line.strip()}" if f.line else ""
    return f"in {f.name}, line {f.lineno}{code}"


# --------------------------------------------------------------------------- the chain rule

class _Expected:
    """What the chain rule says each parent should receive at one step."""

    def __init__(self, node, upstream, operands, contributions, locals_):
        self.node, self.upstream, self.operands = node, upstream, operands
        self.contributions, self.locals = contributions, locals_
        self.pieces = {}          # parent -> each operand's contribution (x * x: two)
        self._verdict = {}
        self._changes, self._before = {}, {}

    def bind(self, changes, before):
        """The step's own record: {node: (old, new)} for changed grads, and every old grad."""
        self._changes, self._before = changes, before

    def change(self, parent):
        """(old, new) grad of ``parent`` around this step (equal when it did not change)."""
        if parent in self._changes:
            return self._changes[parent]
        old = self._before.get(id(parent))
        return old, old

    def agrees(self, parent) -> bool:
        if self.operands is None:
            return True
        verdict = self._verdict.get(parent)
        if verdict is None:
            verdict = self._verdict[parent] = self._compare(parent)
        return verdict

    def _compare(self, parent):
        want = self.contributions.get(parent)
        if want is None:
            return True
        old, new = self.change(parent)
        if old is None or new is None or new.shape != np.shape(parent.data):
            return False
        return np.allclose(new - old, want, rtol=1e-6, atol=1e-9, equal_nan=True)

    def explain(self, parent, old, new) -> str:
        want = self.contributions[parent]
        who = _label(parent)
        fn = self.node._function
        if new is None:
            return f"after {fn}'s _backward, the grad of {who} is None; add into it (+=) instead."
        if new.shape != np.shape(parent.data):
            return (f"after {fn}'s _backward, the grad of {who} has shape {new.shape} but its data has shape "
                    f"{np.shape(parent.data)}" + ("; is it transposed?" if new.shape[::-1] == np.shape(parent.data)
                                                  else "."))
        got = new - old if old is not None and old.shape == new.shape else new
        text = (f"{fn}'s _backward added {format_value(got)} to the grad of {who}, "
                f"but the chain rule gives {format_value(want)}")
        pieces = [want] + self.pieces.get(parent, [])
        if old is not None and np.any(old != 0) and any(np.allclose(new, c) for c in pieces):
            return text + ": it overwrote the grad (=) instead of adding to it (+=)."
        return text + "."


def _expected(node, upstream):
    """The chain rule's contribution to each parent, for ops the registry knows."""
    op = OPS.get(node.kind) if node.kind else None
    if op is None or upstream is None or not node.parents:
        return None
    params = node.graph.adapter.constants(node)          # e.g. micrograd's exponent in "**2"
    operands = _arrange(op, node, params)
    if operands is None:
        return _Expected(node, upstream, None, {}, None)
    datas = [p.data if isinstance(p, ForeignNode) else p for p in operands]
    out = node.data
    args = op.prepare(*datas) if op.prepare is not None and op.params else None
    contributions, locals_, pieces = {}, [], {}
    with np.errstate(all="ignore"):
        for i, p in enumerate(operands):
            if op.elementwise:
                locals_.append(op.local(i, out, tuple(datas)))
            if not isinstance(p, ForeignNode):
                continue
            try:
                c, _ = op.input_grad(i, upstream, out, tuple(datas), args)
            except Exception:
                return _Expected(node, upstream, None, {}, None)
            c = np.asarray(c, dtype=np.float64)
            contributions[p] = c if p not in contributions else contributions[p] + c
            pieces.setdefault(p, []).append(c)
    expected = _Expected(node, upstream, operands, contributions, locals_ or None)
    expected.pieces = pieces
    return expected


def _arrange(op, node, params):
    """The node's parents (and constants) in operand order: the arrangement whose forward
    gives the node's data (a set of parents has no order; ``x * x`` has one parent)."""
    n = len(op.inputs)
    parents = list(node.parents)
    candidates = []
    if len(parents) + len(params) == n:
        candidates = [tuple(parents) + tuple(params)]
        if node.graph.adapter.unordered and not params:
            candidates += [c for c in itertools.permutations(parents) if c != candidates[0]]
    elif len(parents) == 1 and n == 2 and not params:
        candidates = [(parents[0], parents[0])]
    out = node.data
    matches = []
    for c in candidates:
        datas = [p.data if isinstance(p, ForeignNode) else p for p in c]
        try:
            with np.errstate(all="ignore"):
                value = op.compute(datas, op.prepare(*datas) if op.prepare is not None and op.params else None)
        except Exception:
            continue
        if np.shape(value) == np.shape(out) and np.allclose(value, out, rtol=1e-6, atol=1e-9, equal_nan=True):
            matches.append(c)
    if not matches or (len(matches) > 1 and op.name not in _SYMMETRIC):
        return None      # nothing fits, or two orders fit with different rules (a - b with a == b)
    return matches[0]
