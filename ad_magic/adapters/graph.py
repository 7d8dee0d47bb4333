"""The graph of a foreign node: :class:`ForeignGraph` wraps every node of another
library's graph once, orders them, runs the graph's own rules step by step
(:meth:`ForeignGraph.backward_steps`) and puts every field back afterwards
(:meth:`ForeignGraph.preserved`). See ``base.py`` for the node and the whole story.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..engine import OPS
from .base import AdapterError, ForeignNode, describe, numeric
from .contract import RULES
from .rules import arrange, expected
from .steps import ForeignStep

__all__ = ["ForeignGraph", "node_for"]

CHECK_ALL_NODES = 500        # up to this many nodes, every grad is compared after each closure


class ForeignGraph:
    """Every node reachable from a root, wrapped once, in topological order (iterative).

    ``order`` lists the nodes parents first, the root last; ``node(obj)`` finds the
    node wrapping ``obj`` (the object itself, or the node).
    """

    def __init__(self, adapter, root_source):
        self.adapter = adapter
        self._by_id = {}
        self.display = {}       # node -> the name a caller gave it (the steps' notes use it)
        self._measured = None   # node -> the measured derivative of an op the registry does not know
        root = self._wrap(root_source)
        self.root = root
        self.order = self._topological(root)
        adapter.built(self.order)     # e.g. PyTorch: intermediate values, parents first

    def measured_rule(self, node):
        """The derivative of ``node``'s op measured from the student's forward
        (``numeric.py``): ``{parent: (J, rtol) or None}``, or a reason (a sentence) when
        nothing was measured. Measured once for every node of the graph that needs it
        (one forked copy of the process), when a step first asks."""
        if self._measured is None:
            from .numeric import numeric_rules

            unknown = []
            for n in self.order:
                if n.parents:
                    rule = expected(n, np.ones(n.shape))
                    if rule is None or rule.operands is None:
                        unknown.append(n)
            self._measured = numeric_rules(self, unknown) if unknown else {}
        return self._measured.get(node)

    def unmeasured(self, node):
        """Why the derivative of ``node``'s op was not measured (a sentence), or None."""
        found = self.measured_rule(node)
        return found if isinstance(found, str) else None

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
        operands = tuple(o if isinstance(o, np.ndarray) else self._wrap(o) for o in adapter.operands_of(node))
        recording = getattr(adapter, "recording", None)
        if not node.ordered and recording is not None and len(operands) > 1:
            # a set of parents: in the order the cell made them (reading order), those it did not see last
            made = [recording.position(o.source) if isinstance(o, ForeignNode) else None for o in operands]
            operands = tuple(o for _, o in sorted(zip(made, operands), key=lambda pair: (pair[0] is None,
                                                                                       pair[0] or 0)))
        nodes = tuple(o for o in operands if isinstance(o, ForeignNode))
        node.parents, node.operands = nodes, operands
        if not nodes:
            node._function = None
            return
        shown, claimed, constants, inferred = adapter.label_of(node, len(operands))
        node._function, node.inferred = shown, inferred
        operands = operands + tuple(constants)
        node.operands = node.stored = operands
        fits = {}
        hidden = adapter.hidden_constants
        for kind in (k for k in dict.fromkeys((claimed, inferred)) if k in OPS):
            arranged = None
            if len(OPS[kind].inputs) == len(operands) + 1:
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
            node.remark = "; ".join(filter(None, (node.remark, (
                f"it is labelled {shown!r}, but its value is {inferred} of its inputs and its rule "
                f"was written for {inferred}: it is stepped as {inferred}"))))
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
            node = self._by_id.get(id(self.adapter.alias(obj)))
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
        kept = getattr(self.adapter, "kept", None)     # what fields do not hold (a PyTorch leaf's .grad)
        try:
            with kept(self.order) if kept is not None else contextlib.nullcontext():
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
            looked = "/".join(RULES) if getattr(adapter, "operands_of", None) else "_backward"
            raise AdapterError(f"no node of this graph has a backward rule yet ({adapter.kind}; looked for "
                               f"{looked}): give each operation's output a _backward closure first, or, if a "
                               "function of yours runs the whole backward pass, pass it: "
                               "BackwardStepper(out, backward=my_backward).")
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


def node_for(output, obj):
    """The node of ``output``'s graph standing for ``obj`` (the student's own object, or the
    node itself); for ad_magic's Tensor, ``obj`` as it is. KeyError when it is not in the graph."""
    if isinstance(output, ForeignNode):
        return output.graph.node(obj)
    return obj


def _fields(obj):
    """Every field of ``obj`` (its ``__dict__`` and slots), to put back later: the objects
    they hold, and the contents of those that can change in place (an array a rule adds
    into with ``+=``, a list of grads written item by item, a set of parents cleared)."""
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
    values = list((state or {}).values()) + [value for present, value in slots.values() if present]
    contents = [(value, _contents(value)) for value in values if _contents(value) is not None]
    return state, slots, contents


def _contents(value):
    """A copy of what ``value`` holds when it can change in place, else None."""
    if isinstance(value, np.ndarray):
        return value.copy() if value.flags.writeable else None
    if isinstance(value, (list, dict, set)):
        return type(value)(value)
    return None


def _restore(obj, fields):
    state, slots, contents = fields
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
    for value, held in contents:       # what was changed in place, put back in place
        try:
            if isinstance(value, np.ndarray):
                if value.shape == held.shape and not np.array_equal(value, held, equal_nan=True):
                    value[...] = held
            elif isinstance(value, list):
                value[:] = held
            else:
                value.clear()
                value.update(held)
        except Exception:
            pass


def _copy(grad):
    return None if grad is None else np.array(grad, dtype=np.float64, copy=True)
