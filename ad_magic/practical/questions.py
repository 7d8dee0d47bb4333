"""The practical's questions, part by part, for :func:`ad_magic.practical.check`.

Each question is a function of the student's namespace, registered in ``PARTS`` (and
``QUESTIONS``, by key) with the names it needs and the earlier questions it relies on
(``after``); it builds the practical's own examples with the student's ``Tensor``,
``add``, ``mul``, … and raises :class:`Wrong` (one sentence saying what is wrong, and a
hint) when an answer is wrong. The runner (time limit, statuses, causes, the report) is
:mod:`ad_magic.practical` itself.

Part B judges the student's ``backward()`` on its own: for the seed, the zeroing and the
order, correct rules of ours replace theirs on the question's graph and their
``backward()`` runs once under the adapters' observation
(:func:`~ad_magic.adapters.observe.observe_backward`, the same that the stepper shows):
the grad the output had when its rule ran, the grads each rule found before adding to
them, the order of the calls and the line that made each. A wrong rule is so reported at
its rule and a wrong ``backward()`` at its step; the order is judged on a graph where
every wrong order gives a wrong gradient. B10 finds every other operation the student
wrote and compares its rule with finite differences.
"""
from __future__ import annotations

import inspect
import math
import os
import re
import traceback
import types

import numpy as np

from ..adapters import AdapterError, observe_backward
from ..engine.formatting import format_value, short_repr

__all__ = ["PARTS", "QUESTIONS", "Question", "Wrong", "DEEP_CHAIN", "where", "none_operands"]

DEEP_CHAIN = 3000           # nodes in Part B's deep chain: past Python's recursion limit
_OWN_FILES = {os.path.abspath(__file__), os.path.join(os.path.dirname(os.path.abspath(__file__)), "__init__.py")}


class Wrong(Exception):
    """A question's answer is wrong: ``message`` says what, ``hint`` how to fix it."""

    def __init__(self, message, hint=""):
        super().__init__(message)
        self.message, self.hint = message, hint




PARTS = {"A": [], "B": [], "C": [], "D": []}
QUESTIONS = {}              # key -> Question, in the practical's order


class Question:
    def __init__(self, part, key, title, needs, function, on_error="", on_recursion="", after=(), points=1):
        self.part, self.key, self.title, self.needs = part, key, title, needs
        self.function, self.on_error, self.on_recursion = function, on_error, on_recursion
        self.after, self.points = tuple(after), points


def question(part, key, title, needs, on_error="", on_recursion="", after=(), points=1):
    """Register a question; ``on_error`` is the hint for an exception it raises,
    ``on_recursion`` the hint for a RecursionError (seen, with the function that recursed);
    ``after`` lists the earlier questions whose failure would make this one fail too (its
    failure then *follows from* theirs); ``points`` is what it is worth."""
    def register(function):
        for before in after:
            if before not in QUESTIONS:
                raise ValueError(f"question {key} comes after {before}, which is not registered before it")
        q = Question(part, key, title, needs, function, on_error, on_recursion, after, points)
        PARTS[part].append(q)
        QUESTIONS[key] = q
        return function
    return register


def _num(value, what):
    """``value`` as a float array, or Wrong naming ``what``."""
    if value is None:
        raise Wrong(f"{what} is None", "")
    try:
        array = np.array(value, dtype=np.float64, copy=True)   # the student's += may change theirs later
    except Exception:
        raise Wrong(f"{what} is {short_repr(value, 60)}, not a number or an array of numbers") from None
    return array


def _f(x):
    return format_value(np.asarray(x, dtype=np.float64))


def _close(a, b, tol=1e-6):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol)


def _grad(t, what):
    if not hasattr(t, "grad"):
        raise Wrong(f"{what} has no grad attribute", "set self.grad = None in Tensor.__init__")
    g = t.grad
    if g is None:
        raise Wrong(f"{what}.grad is None after backward()",
                    "backward() sets every node's grad to zero (np.zeros_like(node.data)) before it runs the rules")
    return _num(g, f"{what}.grad")


def _ids(collection, what):
    try:
        return [id(x) for x in collection]
    except TypeError:
        raise Wrong(f"{what} is {short_repr(collection, 60)}, which is not a collection of tensors") from None


def _is_tensor(ns, value, what):
    T = ns["Tensor"]
    if not isinstance(value, T):
        raise Wrong(f"{what} returned {short_repr(value, 60)} ({type(value).__name__}), expected a Tensor",
                    "create the result with Tensor(...) and return it")
    return value


def _call_backward(t, what="y"):
    method = getattr(t, "backward", None)
    if not callable(method):
        raise Wrong(f"{what} has no backward() method", "add def backward(self): ... to your Tensor class")
    method()


def _zero(*tensors):
    for t in tensors:
        t.grad = np.zeros_like(np.asarray(t.data, dtype=np.float64))


def _run_rule(out, what):
    rule = getattr(out, "_backward", None)
    if not callable(rule):
        raise Wrong(f"{what} has no _backward to call", "in the op, define def _backward(): ... and attach it: "
                                                         "out._backward = _backward")
    rule()


# -- Part A ----------------------------------------------------------------------------

@question("A", "A1", "Tensor(data): data, grad, _parents, _function", ["Tensor"])
def _fields(ns):
    T = ns["Tensor"]
    a = T(2.0)
    if not isinstance(getattr(a, "data", None), np.ndarray):
        raise Wrong(f"Tensor(2.0).data is {short_repr(getattr(a, 'data', None), 60)}, expected a NumPy array",
                    "store self.data = np.asarray(data, dtype=float)")
    b = T([1, 2])
    if np.asarray(b.data).dtype.kind != "f":
        raise Wrong(f"Tensor([1, 2]).data has dtype {b.data.dtype}, expected floats",
                    "convert with np.asarray(data, dtype=float): integer arrays cannot hold gradients' fractions")
    if not _close(a.data, 2.0):
        raise Wrong(f"Tensor(2.0).data is {short_repr(a.data, 60)}, expected 2.0")
    if np.shape(T([[1, 2], [3, 4]]).data) != (2, 2):
        raise Wrong("Tensor([[1, 2], [3, 4]]).data does not have shape (2, 2)", "np.asarray keeps the nesting")
    if not hasattr(a, "grad"):
        raise Wrong("Tensor(2.0) has no grad attribute: your class has no `grad` attribute",
                    "a new tensor has no gradient yet: self.grad = None in Tensor.__init__")
    if a.grad is not None:
        raise Wrong(f"Tensor(2.0).grad is {short_repr(a.grad, 60)}, expected None",
                    "a new tensor has no gradient yet: self.grad = None")
    if not hasattr(a, "_parents"):
        raise Wrong("Tensor(2.0) has no _parents attribute: your class has no `_parents` attribute",
                    "self._parents = set(_parents) in Tensor.__init__")
    if not isinstance(a._parents, (set, frozenset)):
        raise Wrong(f"Tensor(2.0)._parents is a {type(a._parents).__name__}, expected a set",
                    "self._parents = set(_parents): a tensor used twice is one parent")
    if a._parents:
        raise Wrong(f"Tensor(2.0)._parents is {short_repr(a._parents, 60)}, expected an empty set",
                    "a tensor you create yourself is a leaf: no parents")
    if not hasattr(a, "_function"):
        raise Wrong("Tensor(2.0) has no _function attribute: your class has no `_function` attribute",
                    "store it in Tensor.__init__: self._function = _function (None by default, for a leaf)")
    if a._function is not None:
        raise Wrong(f"Tensor(2.0)._function is {short_repr(a._function, 60)}, expected None",
                    "a leaf was made by no function: self._function = None by default")


@question("A", "A2", "__repr__ shows the data", ["Tensor"])
def _repr(ns):
    text = repr(ns["Tensor"](2.0))
    if " object at 0x" in text:
        raise Wrong(f"repr(Tensor(2.0)) is Python's default {text}",
                    "define __repr__(self) returning e.g. f\"Tensor(data={self.data}, grad={self.grad})\"")
    if "2" not in text:
        raise Wrong(f"repr(Tensor(2.0)) is {text!r}, which does not show the data 2.0",
                    "put self.data in the text __repr__ returns")


@question("A", "A3", "add and mul record _function and _parents", ["Tensor", "add", "mul"], after=["A1"])
def _record(ns):
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    a, b = T(2.0), T(3.0)
    for name, op, value in (("add", add, 5.0), ("mul", mul, 6.0)):
        c = _is_tensor(ns, op(a, b), f"{name}(a, b)")
        if not _close(c.data, value):
            raise Wrong(f"{name}(a, b) with a = 2 and b = 3 has data {_f(c.data)}, expected {value}",
                        "compute the output's data from t1.data and t2.data")
        if not hasattr(c, "_function"):
            raise Wrong(f"{name}(a, b) has no _function: your class has no `_function` attribute",
                        "store it in Tensor.__init__ (self._function = _function, None for a leaf) and create the "
                        f"output with Tensor(..., _function={name!r})")
        if c._function != name:
            raise Wrong(f"{name}(a, b)._function is {short_repr(c._function, 60)}, expected {name!r}",
                        f"create the output with Tensor(..., _function={name!r})")
        if not hasattr(c, "_parents"):
            raise Wrong(f"{name}(a, b) has no _parents: your class has no `_parents` attribute",
                        "store them in Tensor.__init__: self._parents = set(_parents)")
        if sorted(_ids(c._parents, f"{name}(a, b)._parents")) != sorted([id(a), id(b)]):
            raise Wrong(f"{name}(a, b)._parents is {short_repr(c._parents, 60)}, expected the set {{a, b}}",
                        "create the output with Tensor(..., _parents=(t1, t2))")
    if not (_close(a.data, 2.0) and _close(b.data, 3.0)):
        raise Wrong("add or mul changed its inputs' data", "compute a new array; do not write into t1.data")
    square = mul(a, a)
    parents = square._parents
    if not isinstance(parents, (set, frozenset)):
        ids = _ids(parents, "mul(x, x)._parents")
        if len(ids) != len(set(ids)):
            raise Wrong(f"mul(x, x)._parents is a {type(parents).__name__} holding x twice; the practical asks "
                        "for a set, where x counts once",
                        "store self._parents = set(_parents) in Tensor.__init__")
        raise Wrong(f"mul(x, x)._parents is a {type(parents).__name__}, expected a set",
                    "store self._parents = set(_parents) in Tensor.__init__")
    if _ids(parents, "mul(x, x)._parents") != [id(a)]:
        raise Wrong(f"mul(x, x)._parents is {short_repr(parents, 60)}, expected {{x}}")


@question("A", "A4", "the operators + and * (with tensors and numbers)", ["Tensor", "add", "mul"],
          after=["A3"])
def _operators(ns):
    T = ns["Tensor"]
    a, b = T(2.0), T(3.0)
    for text, build, value, function in (("a + b", lambda: a + b, 5.0, "add"), ("a * b", lambda: a * b, 6.0, "mul"),
                                         ("a + 1", lambda: a + 1, 3.0, "add"), ("4 * a", lambda: 4 * a, 8.0, "mul"),
                                         ("1 + a", lambda: 1 + a, 3.0, "add"), ("a * 4", lambda: a * 4, 8.0, "mul")):
        try:
            c = build()
        except TypeError as exc:
            number = "1" in text or "4" in text
            dunder = {"a + b": "__add__", "a * b": "__mul__", "a + 1": "__add__", "a * 4": "__mul__",
                      "1 + a": "__radd__", "4 * a": "__rmul__"}[text]
            raise Wrong(f"{text} raised TypeError: {exc}",
                        f"define {dunder}" + (": turn a number into a Tensor first, other = other if "
                                              "isinstance(other, Tensor) else Tensor(other)" if number else
                                              f" calling {function}(self, other)")) from None
        c = _is_tensor(ns, c, text)
        if not _close(c.data, value) or getattr(c, "_function", None) != function:
            raise Wrong(f"{text} gave data {_f(c.data)} and _function {short_repr(getattr(c, '_function', None), 60)}, "
                        f"expected {value} and {function!r}", f"let the operator call {function}(self, other)")


def _quadratic(ns):
    """f = x·x + 4·x + 2 built with add and mul, and the tensors it is made of."""
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    x, four, two = T(3.0), T(4.0), T(2.0)
    xx = mul(x, x)
    fx = mul(four, x)
    s = add(xx, fx)
    f = add(s, two)
    names = {id(x): "x", id(four): "the constant 4", id(two): "the constant 2", id(xx): "x·x", id(fx): "4·x",
             id(s): "x·x + 4·x", id(f): "f"}
    edges = {(id(x), id(xx)), (id(four), id(fx)), (id(x), id(fx)), (id(xx), id(s)), (id(fx), id(s)),
             (id(s), id(f)), (id(two), id(f))}
    return f, names, edges


@question("A", "A5", "trace_graph of x² + 4x + 2", ["Tensor", "add", "mul", "trace_graph"], after=["A3"])
def _trace(ns):
    f, names, expected_edges = _quadratic(ns)
    if not _close(f.data, 23.0):
        raise Wrong(f"x·x + 4·x + 2 at x = 3 is {_f(f.data)}, expected 23", "check add and mul's data first (A3)")
    result = ns["trace_graph"](f)
    if not isinstance(result, tuple) or len(result) != 2:
        raise Wrong(f"trace_graph(f) returned {short_repr(result, 60)}, expected a pair (nodes, edges)",
                    "return nodes, edges")
    nodes, edges = result
    node_ids = set(_ids(nodes, "nodes"))
    try:
        edge_ids = {(id(p), id(c)) for p, c in edges}
    except (TypeError, ValueError):
        raise Wrong(f"the edges are {short_repr(edges, 60)}; each edge should be a pair (parent, child)",
                    "edges.add((parent, child))") from None
    missing = [names[i] for i in names if i not in node_ids]
    if missing:
        raise Wrong(f"trace_graph(f) misses {', '.join(missing)} among the nodes ({len(node_ids)} of 7 found)",
                    "walk _parents from f until no new tensor appears; every tensor reached is a node")
    if node_ids - set(names):
        raise Wrong(f"trace_graph(f) returned {len(node_ids - set(names))} node(s) that are not in f's graph",
                    "collect only the tensors reached through _parents")
    if edge_ids == {(c, p) for p, c in expected_edges}:
        raise Wrong("the edges point from child to parent",
                    "an edge is (parent, child): for each child and each p in child._parents, add (p, child)")
    absent = expected_edges - edge_ids
    if absent:
        p, c = sorted(absent, key=lambda e: names[e[0]])[0]
        shared = p == next(i for i, n in names.items() if n == "x")
        raise Wrong(f"the edge from {names[p]} to {names[c]} is missing ({len(absent)} of 7 missing)",
                    "x feeds two operations: add the edge (parent, child) even when the parent was already "
                    "visited; only skip walking its parents again" if shared else
                    "add (p, child) for every p in child._parents")
    if edge_ids - expected_edges:
        raise Wrong(f"trace_graph(f) returned {len(edge_ids - expected_edges)} edge(s) that are not in f's graph",
                    "an edge is (parent, child) with parent in child._parents")


# -- Part B ----------------------------------------------------------------------------

def _by_hand(ns, op, expect, name):
    T = ns["Tensor"]
    p, q = T(2.0), T(3.0)
    out = _is_tensor(ns, ns[op](p, q), f"{op}(p, q)")
    _zero(p, q)
    out.grad = np.ones_like(np.asarray(out.data, dtype=np.float64))
    _run_rule(out, f"{op}(p, q)")
    got = (_num(p.grad, "p.grad"), _num(q.grad, "q.grad"))
    if _close(got[0], expect[0]) and _close(got[1], expect[1]):
        # again, with grads that already hold something: a rule adds to them
        p.grad = np.asarray(10.0)
        q.grad = np.asarray(10.0)
        _run_rule(out, f"{op}(p, q)")
        again = (_num(p.grad, "p.grad"), _num(q.grad, "q.grad"))
        if not (_close(again[0], 10 + expect[0]) and _close(again[1], 10 + expect[1])):
            raise Wrong(f"with p.grad = 10 beforehand, {op}'s _backward left p.grad = {_f(again[0])}, expected "
                        f"{10 + expect[0]:g}: it overwrites the grad instead of adding to it",
                        "write p.grad += ... (or p.grad = p.grad + ...): a tensor used twice gets two contributions")
        return
    if _close(got[0], 0) and _close(got[1], 0):
        if _same_rule(getattr(out, "_backward", None), getattr(T(0.0), "_backward", None)):
            raise Wrong(f"{op}(p, q)._backward is still the one every new Tensor gets, which does nothing: "
                        f"{op} does not attach its rule",
                        f"in {op}, attach the rule to the output: out._backward = _backward")
        parents = getattr(out, "_parents", None)
        if parents is not None and sorted(_ids(parents, f"{op}(p, q)._parents")) != sorted([id(p), id(q)]):
            raise Wrong(f"{op}'s _backward ran, but p.grad and q.grad stayed 0: {op}(p, q)._parents are not p "
                        "and q themselves, so its rule updated other tensors",
                        "keep the inputs themselves as parents (Tensor(..., _parents=(t1, t2))), not copies")
        raise Wrong(f"{op}'s _backward ran but left p.grad and q.grad at 0 ({op}(p, q) with out.grad = 1)",
                    "the rule must add into the inputs' own grads: t1.grad += ... and t2.grad += ... (not into "
                    "a local variable or out.grad)")
    if op == "mul" and _close(got[0], 2.0) and _close(got[1], 3.0):
        raise Wrong("p.grad is 2.0 and q.grad is 3.0 after out._backward() for out = p·q, expected 3.0 and 2.0",
                    "mul's rule uses each operand's own value: for out = a·b, ∂L/∂a = ∂L/∂out · b, so "
                    "a.grad += out.grad * b.data and b.grad += out.grad * a.data")
    raise Wrong(f"after out._backward() for out = {name} with p = 2, q = 3 and out.grad = 1: p.grad = {_f(got[0])}, "
                f"q.grad = {_f(got[1])}, expected {expect[0]:g} and {expect[1]:g}",
                "each parent receives out.grad times ∂out/∂parent")


@question("B", "B1", "mul's _backward, by hand", ["Tensor", "mul"], after=["A3"])
def _mul_rule(ns):
    _by_hand(ns, "mul", (3.0, 2.0), "p·q")


@question("B", "B2", "add's _backward, by hand", ["Tensor", "add"], after=["A3"])
def _add_rule(ns):
    _by_hand(ns, "add", (1.0, 1.0), "p + q")





# Watching the student's backward(): the graph's rules are replaced by correct ones of ours,
# and their backward() runs once under the adapters' observation (observe_backward), which
# records each rule's call in their order, the grads it found on entry and the line that
# called it. What backward() gets wrong (the seed, the zeroing, the order) is then
# backward()'s own, whatever their rules.

_OBSERVE_LIMIT = 10.0       # seconds after which a backward still running is stopped


def _chain_rule(out, a, b, da, db):
    """A correct rule for ``out`` = op(a, b) with local derivatives ``da``, ``db``: each
    input's grad gets out.grad times its local derivative added. A grad that is None stays
    None, and a None out.grad makes its inputs' None, so that the checks see it."""
    def _backward():
        g = getattr(out, "grad", None)
        for t, local in ((a, da), (b, db)):
            before = getattr(t, "grad", None)
            if before is None or g is None:
                t.grad = None
                continue
            t.grad = np.asarray(before, dtype=np.float64) + np.asarray(g, dtype=np.float64) * local
    return _backward


def _op(ns, name, a, b):
    """``name``(a, b) with the student's add or mul, its rule replaced by a correct one."""
    out = _is_tensor(ns, ns[name](a, b), f"{name}(…)")
    if name == "mul":
        out._backward = _chain_rule(out, a, b, np.asarray(b.data, dtype=np.float64),
                                    np.asarray(a.data, dtype=np.float64))
    else:
        out._backward = _chain_rule(out, a, b, 1.0, 1.0)
    return out


def _observe(out, what):
    """The student's ``what.backward()``, run once under the adapters' observation: the
    :class:`~ad_magic.adapters.observe.Observation` (every field is put back afterwards).
    Their own error is raised as theirs; a loop stopped at the limit is Wrong."""
    if not callable(getattr(out, "backward", None)):
        raise Wrong(f"{what} has no backward() method", "add def backward(self): ... to your Tensor class")
    try:
        seen = observe_backward(out, timeout=_OBSERVE_LIMIT)
    except AdapterError as exc:
        raise Wrong(f"the graph of {what} could not be read: {str(exc).rstrip('.')}",
                    "keep each tensor's inputs in self._parents and its rule in self._backward, as the "
                    "practical's Tensor does") from None
    if seen.error is not None:
        raise seen.error[0]
    if seen.timed_out:
        if seen.calls:        # named by the line that kept calling the rules (the rules are ours)
            message = (f"{what}.backward() was stopped after {seen.seconds:.2g} s, having run the graph's _backward "
                       f"rules {len(seen.calls)} times"
                       + (f" (your code called them at {seen.calls[-1].called_at})" if seen.calls[-1].called_at else "")
                       + ": a loop that does not end")
        else:
            message = seen.problems[-1].rstrip("?.") if seen.problems else f"{what}.backward() did not finish"
        raise Wrong(message, "look for a while loop whose condition never becomes false, or a graph walk that "
                             "revisits nodes (keep a set of visited ones)")
    return seen


def _left(seen, t, what):
    """The grad the student's backward left on ``t``, as :func:`_grad` reads ``t.grad``."""
    if not hasattr(t, "grad"):
        raise Wrong(f"{what} has no grad attribute", "set self.grad = None in Tensor.__init__")
    g = seen.grad(t)
    if g is None:
        raise Wrong(f"{what}.grad is None after backward()",
                    "backward() sets every node's grad to zero (np.zeros_like(node.data)) before it runs the rules")
    return g


def _called_at(call):
    """" (your code called it at line N of backward)" for a rule's call, or ""."""
    return f" (your code called it at {call.called_at})" if call is not None and call.called_at else ""


def _shown(value):
    return "None" if value is None else _f(value)


@question("B", "B3", "backward() seeds the output's grad with ones", ["Tensor", "add", "mul"], after=["A3"])
def _seed(ns):
    T = ns["Tensor"]
    for shape_text, x, k in (("a number", T(2.0), T(3.0)), ("a vector", T([1.0, 2.0, 3.0]), T([2.0, 2.0, 2.0]))):
        y = _op(ns, "mul", x, k)
        seen = _observe(y, "y")
        want = np.ones(np.shape(y.data))
        own = next((c for c in seen.calls if c.node is seen.root), None)
        if own is None:
            after = seen.grads[seen.root]
            if after is None or not _close(after, want):
                raise Wrong(f"for y = x·k ({shape_text}), y.backward() never ran y's own _backward and left "
                            f"y.grad = {_shown(after)}",
                            "backward() sets self.grad = np.ones_like(self.data), then runs every node's "
                            "_backward, the output's own first")
            raise Wrong(f"for y = x·k ({shape_text}), y.backward() never ran y's own _backward",
                        "the output is a node of the graph too: its _backward is the first to run")
        g = own.upstream
        if g is None:
            raise Wrong(f"y.grad was None when y's _backward ran{_called_at(own)}: backward() never seeded the "
                        "output", "after zeroing the grads, set the output's own: self.grad = np.ones_like(self.data)")
        if np.shape(g) != want.shape:
            raise Wrong(f"for y = x·k ({shape_text}, shape {want.shape}), y.grad was {_f(g)} of shape {np.shape(g)} "
                        f"when y's _backward ran{_called_at(own)}",
                        "seed with an array of the output's shape: self.grad = np.ones_like(self.data)")
        if not _close(g, want):
            zero = _close(g, np.zeros(want.shape))
            raise Wrong(f"y.grad was {_f(g)} when y's _backward ran{_called_at(own)}, expected "
                        f"{_f(want)}" + (": the output's grad is never seeded" if zero else ""),
                        "∂y/∂y = 1: after setting every grad to zero, backward() sets the output's grad to ones "
                        "(self.grad = np.ones_like(self.data))" if zero else
                        "the output's grad is ∂y/∂y = 1: self.grad = np.ones_like(self.data)")


@question("B", "B4", "backward() sets every grad to zero first", ["Tensor", "add", "mul"], after=["A3"])
def _zeroing(ns):
    T = ns["Tensor"]
    for stale in (None, 100.0):
        x, k, m = T(2.0), T(3.0), T(1.0)
        y = _op(ns, "mul", x, k)
        z = _op(ns, "add", y, m)
        if stale is not None:
            for t in (x, k, m, y, z):
                t.grad = np.asarray(stale)
        seen = _observe(z, "z")
        graph = seen.root.graph
        for t, name in ((y, "y"), (m, "m"), (x, "x"), (k, "k")):     # in the order the rules reach them
            node = graph.node(t)
            first = next((c for c in seen.calls if c.node is not node and node in c.grads), None)
            if first is None:
                continue
            before = first.grads[node]          # as the first rule that adds to it found it
            if before is None:
                raise Wrong(f"for z = x·k + m, {name}.grad was None when the first rule added to it"
                            f"{_called_at(first)}: backward() did not set it to zero",
                            "a grad is None until something sets it: before running the rules, backward() sets "
                            "every node's grad to np.zeros_like(node.data)")
            if not _close(before, np.zeros(np.shape(t.data))):
                raise Wrong(f"for z = x·k + m, {name}.grad still held {_f(before)} from before when the first rule "
                            f"added to it{_called_at(first)}",
                            "set every node's grad to zero at the start of backward(), also the ones that already "
                            "hold something (not only those that are None)")
        if not seen.calls:
            raise Wrong("backward() ran none of the graph's _backward rules",
                        "run node._backward() for every node, from the output back to the leaves")


# The order is judged on a graph where only one order is right: c = a + b₃ with a = 2x and
# b₁ = 3a, b₂ = b₁/2, b₃ = 2b₂. Any order that runs a node's rule before one of its users'
# (a before b₁, as a breadth-first walk always does: a is one step from c, b₁ four) or a rule
# twice, or not at all, gives a wrong x.grad, whatever the order of a set; the order the
# observation saw then names what went wrong.
_CHAIN = (("b1", 3.0), ("b2", 0.5), ("b3", 2.0))
_USERS = {"a": ["b1", "c"], "b1": ["b2"], "b2": ["b3"], "b3": ["c"]}     # who uses each node's output


@question("B", "B5", "backward() runs each rule once, after every node that uses its output",
          ["Tensor", "add", "mul"], after=["B3", "B4"])
def _order(ns):
    T = ns["Tensor"]
    x = T(1.0)
    a = _op(ns, "mul", x, T(2.0))
    names = {id(x): "x", id(a): "a"}
    node = a
    for name, factor in _CHAIN:
        node = _op(ns, "mul", node, T(factor))
        names[id(node)] = name
    c = _op(ns, "add", a, node)
    names[id(c)] = "c"
    seen = _observe(c, "c")
    g = _left(seen, x, "x")
    if _close(g, 8.0):
        return
    ran = [names.get(id(n.source), "?") for n in seen.order]
    calls = {}
    for name, call in zip(ran, seen.calls):
        calls.setdefault(name, []).append(call)
    graph = "for c = a + b₃ with a = 2x, b₁ = 3a, b₂ = b₁/2, b₃ = 2b₂ at x = 1"
    for name in ("c", "b3", "b2", "b1", "a"):
        if name not in ran:
            raise Wrong(f"{graph}, x.grad is {_f(g)}, expected 8: backward() never ran {name}'s _backward",
                        "run the _backward of every node reached from the output (a topological order of the "
                        "whole graph)")
        if ran.count(name) > 1:
            raise Wrong(f"{graph}, x.grad is {_f(g)}, expected 8: backward() ran {name}'s _backward "
                        f"{ran.count(name)} times{_called_at(calls[name][1])}",
                        "run each node's rule once: keep a set of visited nodes while you build the order")
    if ran == ["a", "b1", "b2", "b3", "c"]:
        raise Wrong(f"{graph}, x.grad is {_f(g)}, expected 8: the rules ran parents first (a, b1, b2, b3, c)"
                    f"{_called_at(seen.calls[0])}",
                    "a topological order lists parents before children; backward() must run it reversed "
                    "(for node in reversed(order)), so each node's grad is complete before its rule runs")
    for name in ("a", "b1", "b2", "b3"):
        late = [u for u in _USERS[name] if ran.index(u) > ran.index(name)]
        if late:
            due = {"a": "4", "b1": "1", "b2": "2", "b3": "1"}[name]
            bfs = name == "a" and late == ["b1"] and ran.index("c") < ran.index("a") < ran.index("b2")
            raise Wrong(f"{graph}, x.grad is {_f(g)}, expected 8: {name}'s _backward ran before {late[0]}'s"
                        f"{_called_at(calls[name][0])}, but {late[0]} uses {name}, so {name} passed on a grad of "
                        f"{_shown(calls[name][0].upstream)} where {due} was due",
                        ("you visit the graph breadth first (a queue, level by level): a, one step from c, runs "
                         "before the longer path through b₃, b₂, b₁ has added to its grad. " if bfs else "")
                        + "Build a topological order (each node after its parents, e.g. a depth-first walk with "
                          "a stack that appends a node once all its parents are in) and run it reversed")
    raise Wrong(f"{graph}, x.grad is {_f(g)}, expected 8", "check the seed and the zeroing (B3, B4)")


def _nine(ns):
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    x = T(2.0)
    y = add(add(mul(x, x), mul(T(5.0), x)), T(-1.0))
    return x, y


def _same_rule(a, b) -> bool:
    """True when two rules are the same code (e.g. the default lambda every new Tensor gets)."""
    if not (callable(a) and callable(b)):
        return False
    a, b = getattr(a, "__func__", a), getattr(b, "__func__", b)
    return a is b or (getattr(a, "__code__", None) is not None and getattr(a, "__code__", None) is
                      getattr(b, "__code__", None))


@question("B", "B6", "backward(): d(x·x + 5x − 1)/dx at 2 is 9", ["Tensor", "add", "mul"],
          after=["B1", "B2", "B3", "B4", "B5"])
def _backward_nine(ns):
    x, y = _nine(ns)
    _call_backward(y)
    g = _grad(x, "x")
    if not _close(g, 9.0):
        raise Wrong(f"x.grad is {_f(g)}, expected 9",
                    "x is used three times, so its grad is the sum of three contributions: check that backward() "
                    "runs every node's _backward exactly once, from the output back to the leaves")
    out = _grad(y, "y")
    if not _close(out, 1.0):
        raise Wrong(f"y.grad is {_f(out)} after y.backward(), expected 1",
                    "backward() sets the output's own grad to one: self.grad = np.ones_like(self.data)")


@question("B", "B7", "backward() twice gives the same grads", ["Tensor", "add", "mul"], after=["B4"])
def _idempotent(ns):
    x, y = _nine(ns)
    _call_backward(y)
    first = _grad(x, "x")
    _call_backward(y)
    second = _grad(x, "x")
    if not _close(first, second):
        raise Wrong(f"x.grad is {_f(first)} after one backward() and {_f(second)} after a second one",
                    "grads are not reset: backward() must set every node's grad to zero before seeding the "
                    "output (the practical's backward is idempotent; PyTorch accumulates instead)")


@question("B", "B8", "a reused node's grads sum", ["Tensor", "add", "mul"], after=["B1", "B2", "B3", "B4", "B5"])
def _reused(ns):
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    x = T(3.0)
    y = add(x, x)
    _call_backward(y)
    g = _grad(x, "x")
    if not _close(g, 2.0):
        raise Wrong(f"for y = x + x, x.grad is {_f(g)}, expected 2",
                    "x is both operands of add: its rule adds into t1.grad and t2.grad, which are both x.grad, "
                    "so x receives two contributions")
    x = T(3.0)
    z = mul(add(x, T(1.0)), x)
    _call_backward(z)
    g = _grad(x, "x")
    if not _close(g, 7.0):
        raise Wrong(f"for z = (x + 1)·x at x = 3, x.grad is {_f(g)}, expected 2x + 1 = 7",
                    "x is used by two operations: both rules' contributions must reach x.grad; check that each "
                    "rule adds into its own inputs' grads")


@question("B", "B9", f"a deep chain ({DEEP_CHAIN:,} nodes) does not hit the recursion limit",
          ["Tensor", "add"], after=["B2", "B3", "B4", "B5"],
          on_recursion="backward() walks the graph with a recursive function (a topological sort that calls "
                       "itself per parent); walk it with an explicit stack (a list you push and pop) instead")
def _deep(ns):
    T, add = ns["Tensor"], ns["add"]
    x = T(0.5)
    y = x
    one = T(1.0)
    for _ in range(DEEP_CHAIN):
        y = add(y, one)
    _call_backward(y)
    g = _grad(x, "x")
    if not _close(g, 1.0):
        raise Wrong(f"for x + 1 + 1 + … ({DEEP_CHAIN:,} additions), x.grad is {_f(g)}, expected 1",
                    "each add passes its grad on unchanged to both inputs")


# -- your own operation (Part B: "another function of your choice") --------------------

_PRACTICAL_NAMES = {"Tensor", "add", "mul", "matvec", "relu", "trace_graph", "backward", "gradient_descent",
                    "topological_order", "mlp", "regression_loss", "train", "my_function", "check"}
_OWN_METHODS = {"__init__", "__repr__", "__str__", "__add__", "__radd__", "__mul__", "__rmul__", "backward",
                "__hash__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__",
                "__iter__", "__getitem__", "__setitem__", "__float__", "__int__", "__array__", "__format__",
                "__getattr__", "__setattr__", "__repr_svg__", "_repr_svg_", "_repr_html_", "zero_grad"}
_DERIVATIVES = {"tanh": "tanh'(x) = 1 − tanh²(x) = 1 − out²", "sigmoid": "σ'(x) = σ(x)·(1 − σ(x)) = out·(1 − out)",
                "exp": "exp'(x) = exp(x) = out", "log": "log'(x) = 1/x", "pow": "d(xⁿ)/dx = n·xⁿ⁻¹",
                "sub": "∂(a − b)/∂a = 1, ∂(a − b)/∂b = −1", "div": "∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = −a/b²",
                "neg": "d(−x)/dx = −1", "sin": "sin'(x) = cos(x)", "cos": "cos'(x) = −sin(x)",
                "sqrt": "d√x/dx = 1/(2√x)", "square": "d(x²)/dx = 2x", "abs": "d|x|/dx = sign(x)",
                "softplus": "softplus'(x) = σ(x)"}
_UNARY_POINTS = (-2.0, -0.5, 0.0, 0.5, 1.0, 2.5, -20.0, 20.0)
_BINARY_POINTS = ((2.0, 3.0), (0.5, -1.5), (-1.0, 2.0), (3.0, 0.5), (1.5, 1.0), (0.0, 2.0), (2.0, 0.0))
_EXPONENTS = (2.0, 3.0, 0.5, -1.0)
_BASES = (0.5, 1.5, 3.0, -2.0, 0.0)


def _plain_name(name):
    key = name.strip("_").lower()
    key = {"truediv": "div", "rtruediv": "div", "rsub": "sub", "rpow": "pow", "power": "pow", "divide": "div",
           "subtract": "sub", "negative": "neg", "logistic": "sigmoid"}.get(key, key)
    return key


def _student_code(function) -> bool:
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    path = os.path.abspath(code.co_filename)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return not path.startswith(here + os.sep) and "site-packages" not in path and "dist-packages" not in path


def _required(function, skip=0):
    try:
        params = list(inspect.signature(function).parameters.values())[skip:]
    except (TypeError, ValueError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None
    return sum(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _own_operations(ns):
    """Every operation the student wrote beyond the practical's: (label, name, call, arity)
    where ``call(*tensors_or_numbers)`` builds it; module functions and Tensor methods alike,
    whatever their names, in a fixed order."""
    T = ns["Tensor"]
    found, seen = [], set()
    for name in sorted(vars(T)):
        value = vars(T)[name]
        if name in _OWN_METHODS or (name.startswith("_") and not name.startswith("__")):
            continue
        if isinstance(value, types.FunctionType) and _student_code(value) and id(value) not in seen:
            n = _required(value, 1)
            if n in (0, 1):
                seen.add(id(value))
                found.append((f"Tensor.{name}", name, (lambda m: lambda t, *rest: m(t, *rest))(value), n + 1))
    for name in sorted(k for k in ns if isinstance(k, str)):
        value = ns[name]
        if name in _PRACTICAL_NAMES or name.startswith("_") or not isinstance(value, types.FunctionType):
            continue
        if _student_code(value) and id(value) not in seen:
            n = _required(value)
            if n in (1, 2):
                seen.add(id(value))
                found.append((name, name, value, n))
    return found


def _in_graph(out, inputs):
    """True when every one of ``inputs`` is reached from ``out`` through _parents."""
    wanted = {id(t) for t in inputs}
    stack, visited = [out], set()
    while stack and wanted:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        wanted.discard(id(node))
        try:
            stack.extend(getattr(node, "_parents", ()) or ())
        except TypeError:
            return False
    return not wanted


def _reference_backward(out, seed):
    """The chain rule over ``out``'s graph with the student's own rules, run by us (zeroed
    grads, ``seed`` on the output, each rule once, users before what they use): what their
    rules give, whatever their backward() does."""
    order, visited = [], set()
    stack = [(out, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in list(getattr(node, "_parents", ()) or ()) if id(p) not in visited)
    for node in order:
        node.grad = np.zeros_like(np.asarray(node.data, dtype=np.float64))
    out.grad = np.array(seed, dtype=np.float64)
    for node in reversed(order):
        rule = getattr(node, "_backward", None)
        if callable(rule):
            rule()


def _numeric_grad(f, x, eps=1e-6):
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (f(up) - f(down)) / (2 * eps)
    return grad


def _numeric(f, point, index, eps):
    up, down = [np.array(p, dtype=np.float64) for p in point], [np.array(p, dtype=np.float64) for p in point]
    up[index] = up[index] + eps
    down[index] = down[index] - eps
    return (f(up) - f(down)) / (2 * eps)


def _check_operation(ns, label, name, call, arity):
    """None when the rule of ``call`` matches finite differences wherever it is smooth, else
    Wrong; "skip" when it is not an operation on tensors (a helper of another kind)."""
    T = ns["Tensor"]
    forms = []
    if arity == 1:
        forms = [("tensor", [(p,) for p in _UNARY_POINTS] + [(np.array([-1.0, 0.0, 0.5, 2.0]),)])]
    else:
        forms = [("tensors", [tuple(p) for p in _BINARY_POINTS]), ("number", [(b, e) for e in _EXPONENTS
                                                                              for b in _BASES])]
    for form, points in forms:
        checked, failures = 0, None
        for point in points:
            tensors = [T(point[0])] + ([T(point[1])] if form == "tensors" else [])
            args = tensors + ([point[1]] if form == "number" else [])
            with np.errstate(all="ignore"):
                try:
                    out = call(*args)
                except NotImplementedError:
                    raise
                except Exception:
                    if checked:
                        continue
                    break
                if not isinstance(out, T) or not _in_graph(out, tensors):
                    break
                data = np.asarray(out.data, dtype=np.float64)
                if not np.all(np.isfinite(data)):
                    continue

                n = len(tensors)

                def value(values, args=args, n=n):
                    ins = [T(v) for v in values[:n]] + list(args[n:])
                    return float(np.sum(np.asarray(call(*ins).data, dtype=np.float64)))
                fixed = [np.asarray(t.data, dtype=np.float64) for t in tensors]
                _reference_backward(out, np.ones_like(data))
                for index, t in enumerate(tensors):
                    def one(array, index=index, fixed=fixed, value=value):
                        return value([array if i == index else f for i, f in enumerate(fixed)])
                    want, rough = _numeric_grad(one, fixed[index], 1e-6), _numeric_grad(one, fixed[index], 1e-4)
                    if not (np.all(np.isfinite(want)) and np.allclose(want, rough, rtol=1e-3, atol=1e-5)):
                        continue                        # not smooth here (a kink, a pole): no derivative to check
                    got = getattr(t, "grad", None)
                    got = None if got is None else np.asarray(got, dtype=np.float64)
                    if got is None or got.shape != np.shape(want) or not np.allclose(got, want, rtol=1e-4, atol=1e-6):
                        failures = failures or (point, index, got, want, out)
                    checked += 1
        if failures:
            point, index, got, want, out = failures
            where_text = ", ".join(f"{n} = {_f(p)}" for n, p in zip("xy" if form == "tensors" else "xn", point))
            rule = getattr(out, "_backward", None)
            code = getattr(rule, "__code__", None)
            line = f" (its rule: {code.co_name}, line {code.co_firstlineno})" if code is not None else ""
            formula = _DERIVATIVES.get(_plain_name(name))
            wrt = "x" if index == 0 else "y"
            raise Wrong(f"{label}: at {where_text}, its rule gives {wrt}.grad = {_f(got) if got is not None else None}"
                        f" where finite differences give {_f(want)}{line}",
                        (f"{formula}; " if formula else "") + "the rule adds out.grad × (the derivative at the "
                        "input) into the input's grad")
        if checked:
            return None
    return "skip"


class _OverBudget(BaseException):
    """A candidate took longer than a real operation would: it is something else (a demo, a loop)."""


class _budget:
    """At most ``seconds`` for the code inside (by SIGALRM, where the check runs in a
    process's main thread; without a limit elsewhere)."""

    def __init__(self, seconds):
        self.seconds, self.armed = seconds, False

    def __enter__(self):
        import signal
        import threading

        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            def over(signum, frame):
                raise _OverBudget()
            self.previous = signal.signal(signal.SIGALRM, over)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.armed = True
        return self

    def __exit__(self, *exc):
        if self.armed:
            import signal

            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


@question("B", "B10", "your own operation(s): each rule matches finite differences", ["Tensor"], after=["A3"])
def _own(ns):
    operations = _own_operations(ns)
    checked, todo = [], None
    for label, name, call, arity in operations:
        try:
            with _budget(2.0):
                outcome = _check_operation(ns, label, name, call, arity)
        except NotImplementedError as exc:
            todo = todo or exc
            continue
        except _OverBudget:
            continue
        if outcome is None:
            checked.append(label)
    if checked:
        return
    if todo is not None:
        raise todo
    raise Wrong("no operation of your own besides add, mul, matvec and relu was found (a function of tensors, or a "
                "Tensor method, returning a new Tensor)",
                "Part B asks for another function of your choice (tanh, exp, log, ** …): write it like mul, with "
                "its own _backward")


# -- Part C ----------------------------------------------------------------------------

def _parabola(ns):
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    return lambda x: mul(add(x, T(-3.0)), add(x, T(-3.0)))


def _number(value, what):
    """``value`` (a float, a NumPy number, or a one-element array or Tensor) as a float."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return float(value)
    data = getattr(value, "data", value)
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.size != 1:
        raise Wrong(f"{what} is {short_repr(value, 50)} ({type(value).__name__}), expected a number",
                    "append a float: losses.append(float(loss.data))")
    return float(array.reshape(-1)[0])


def _losses(losses, steps, function="gradient_descent"):
    if isinstance(losses, (str, bytes)) or not hasattr(losses, "__iter__") or hasattr(losses, "_parents"):
        raise Wrong(f"{function} returned {short_repr(losses, 60)} ({type(losses).__name__}), expected a list of "
                    f"{steps} numbers (the losses)", "append float(loss.data) at each step and return the list")
    values = [_number(v, f"the loss of step {i + 1}") for i, v in enumerate(losses)]
    if len(values) != steps:
        raise Wrong(f"{function}(..., steps={steps}) returned {len(values)} losses, expected {steps}",
                    "one loss per step: for _ in range(steps): ...")
    return values


@question("C", "C1", "gradient_descent returns one loss per step", ["Tensor", "add", "mul", "gradient_descent"],
          after=["B4", "B6"])
def _descent_losses(ns):
    _losses(ns["gradient_descent"](_parabola(ns), ns["Tensor"](0.0), lr=0.1, steps=20), 20)


@question("C", "C2", "the loss decreases and x reaches the minimum of (x − 3)²",
          ["Tensor", "add", "mul", "gradient_descent"], after=["B4", "B6"])
def _descent_minimum(ns):
    x = ns["Tensor"](0.0)
    losses = ns["gradient_descent"](_parabola(ns), x, lr=0.1, steps=100)
    value = _number(_num(x.data, "x.data"), "x.data")
    if value == 0.0:
        g = getattr(x, "grad", None)
        if g is None or _close(_num(g, "x.grad"), np.zeros(np.shape(g))):
            raise Wrong(f"x.data is still 0 after 100 steps, and x.grad is {short_repr(g, 60)}: no gradient reached x",
                        "each step builds the loss from x (loss = f(x)) and calls loss.backward() before updating")
        raise Wrong(f"x.data is still 0 after 100 steps although x.grad is {_f(g)}: the steps did not change the "
                    "x you were given",
                    "update the tensor you were given in place: x.data = x.data - lr * x.grad "
                    "(rebinding x to a new Tensor changes nothing outside the function)")
    if abs(value - 3.0) > abs(0.0 - 3.0):
        raise Wrong(f"x moved away from the minimum at 3: x.data is {value:.4g} after 100 steps",
                    "step against the gradient: x.data -= lr * x.grad")
    if abs(value - 3.0) > 1e-3:
        _, seen = _halving(ns)
        raise Wrong(f"x.data is {value:.6g} after 100 steps of lr = 0.1, expected 3 (to 0.001)",
                    seen or "each step is x ← x − lr · dL/dx with a fresh gradient")
    values = _losses(losses, 100)
    if any(b > a + 1e-12 for a, b in zip(values, values[1:])):
        raise Wrong("the losses do not decrease step after step", "record the loss before the update")


def _halving(ns):
    """Minimise x·x from 1 with lr = 0.25 for 3 steps (each step halves x): the path x took,
    and a hint for what it shows (None when it is right)."""
    T, mul = ns["Tensor"], ns["mul"]
    x = T(1.0)
    path = []

    def square(t):
        path.append(float(np.asarray(t.data, dtype=np.float64).reshape(-1)[0]))
        return mul(t, t)
    ns["gradient_descent"](square, x, lr=0.25, steps=3)
    value = _number(_num(x.data, "x.data"), "x.data")
    if _close(value, 0.125):
        return path + [value], None
    path = path + [value]
    if len(path) != 4:
        return path, f"steps=3 asks for 3 evaluations of f and 3 updates; f was called {len(path) - 1} times"
    if _close(path[1], 0.5) and not _close(path[2], 0.25):
        g = (path[1] - path[2]) / 0.25
        if _close(g, 2 * path[0] + 2 * path[1]):
            return path, (f"the second step used a gradient of {_f(g)} = 2·1 + 2·0.5: the first step's gradient "
                          "was still counted and the new one was added to it; each step uses only the gradient of "
                          "its own loss (backward() sets every grad to zero first)")
    if _close(path[1], 1.5):
        return path, "step against the gradient: x.data = x.data - lr * x.grad"
    return path, ("each step needs the gradient at the current x only: build the loss from the current x, call "
                  "loss.backward(), then x.data = x.data - lr * x.grad")


@question("C", "C3", "each step uses a fresh gradient", ["Tensor", "mul", "gradient_descent"],
          after=["B4", "B6", "C2"])
def _descent_fresh(ns):
    path, hint = _halving(ns)
    if hint is not None:
        raise Wrong(f"minimising x·x from x = 1 with lr = 0.25, x went {' → '.join(_f(v) for v in path)}, expected "
                    "1.0 → 0.5 → 0.25 → 0.125 (each step halves x)", hint)


@question("C", "C4", "gradient descent on a function of your own", ["Tensor", "gradient_descent", "my_function"],
          after=["B6", "B10", "C2"])
def _descent_own(ns):
    T, f = ns["Tensor"], ns["my_function"]
    start = ns.get("my_start", 1.0)
    lr, steps = ns.get("my_lr", 0.1), ns.get("my_steps", 50)
    try:
        start = float(np.asarray(getattr(start, "data", start), dtype=np.float64).reshape(-1)[0])
        lr, steps = float(lr), int(steps)
    except (TypeError, ValueError, IndexError):
        raise Wrong(f"my_start, my_lr and my_steps are {short_repr(start)}, {short_repr(lr)} and {short_repr(steps)}, "
                    "expected numbers", "e.g. my_start, my_lr, my_steps = 2.0, 0.1, 50") from None
    out = _is_tensor(ns, f(T(start)), "my_function(Tensor(my_start))")
    if np.size(out.data) != 1:
        raise Wrong(f"my_function(Tensor(my_start)) has data of shape {np.shape(out.data)}, expected one number",
                    "a loss to minimise is one number")
    for point in (start, start + 0.5, start - 0.7):
        x = T(point)
        with np.errstate(all="ignore"):
            y = f(x)
            if not np.all(np.isfinite(np.asarray(y.data, dtype=np.float64))):
                continue
            _reference_backward(y, np.ones_like(np.asarray(y.data, dtype=np.float64)))
            want = _numeric(lambda v: float(np.sum(np.asarray(f(T(v[0])).data, dtype=np.float64))),
                            [np.asarray(point)], 0, 1e-6)
        got = getattr(x, "grad", None)
        if np.isfinite(want) and (got is None or not _close(_num(got, "x.grad"), want, 1e-4)):
            raise Wrong(f"at x = {_f(point)}, the rules of my_function's graph give x.grad = "
                        f"{'None' if got is None else _f(got)} where finite differences give {_f(want)}",
                        "one of the operations it uses has a wrong _backward (B10 checks your own ones)")
    x = T(start)
    values = _losses(ns["gradient_descent"](f, x, lr=lr, steps=steps), steps)
    if not all(math.isfinite(v) for v in values):
        raise Wrong(f"the loss became {values[-1]} during the descent", "lower my_lr")
    if not values[-1] < values[0]:
        raise Wrong(f"from my_start = {_f(start)} with my_lr = {lr:g}, the loss went from {values[0]:.4g} to "
                    f"{values[-1]:.4g} in {steps} steps: it did not fall",
                    "choose a function with a minimum (e.g. (x − 2)² + tanh(x)), a start away from it and a "
                    "learning rate small enough")


# -- Part D ----------------------------------------------------------------------------

_W = np.array([[1.0, 2.0, 0.5], [-1.0, 0.5, -3.0]])
_V = np.array([1.0, 2.0, -1.0])


def _check_grad(got, want, what, transposed_hint, hint):
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        raise Wrong(f"{what} has shape {got.shape}, expected {want.shape}",
                    transposed_hint if got.shape == want.shape[::-1] else hint)
    if not np.allclose(got, want, rtol=1e-4, atol=1e-6):
        if want.ndim == 2 and np.allclose(got, want.T.reshape(got.shape) if want.T.shape == got.shape else got + 1):
            raise Wrong(f"{what} is transposed", transposed_hint)
        raise Wrong(f"{what} is {_one_line(got)}, finite differences give {_one_line(want)}", hint)


def _one_line(array):
    return " ".join(np.array2string(np.asarray(array), precision=3, separator=", ").split())


@question("D", "D1", "matvec(W, v) computes W @ v and records it", ["Tensor", "matvec"], after=["A3"])
def _matvec_forward(ns):
    T = ns["Tensor"]
    W, v = T(_W), T(_V)
    out = _is_tensor(ns, ns["matvec"](W, v), "matvec(W, v)")
    if not _close(out.data, _W @ _V):
        raise Wrong(f"matvec(W, v) has data {short_repr(out.data, 60)}, expected {_W @ _V}", "use W.data @ v.data")
    if not hasattr(out, "_function"):
        raise Wrong("matvec(W, v) has no _function: your class has no `_function` attribute",
                    "store it in Tensor.__init__ and create the output with _function='matvec'")
    if not isinstance(out._function, str):
        raise Wrong(f"matvec(W, v)._function is {short_repr(out._function, 60)}, not a string",
                    "create the output with _function='matvec'")
    if sorted(_ids(out._parents, "matvec(W, v)._parents")) != sorted([id(W), id(v)]):
        raise Wrong(f"matvec(W, v)._parents is {short_repr(out._parents, 60)}, expected {{W, v}}",
                    "create the output with _parents=(W, v)")


_W_HINT = "∂L/∂W = outer(∂L/∂out, v), of W's shape (2, 3): W.grad += np.outer(out.grad, v.data)"
_V_HINT = "∂L/∂v = Wᵀ ∂L/∂out, of v's shape (3,): v.grad += W.data.T @ out.grad"


@question("D", "D2", "matvec's gradients match finite differences", ["Tensor", "matvec"], after=["D1"])
def _matvec_grad(ns):
    T, matvec = ns["Tensor"], ns["matvec"]
    g = np.array([0.5, -2.0])
    W, v = T(_W), T(_V)
    out = matvec(W, v)
    _zero(W, v)
    out.grad = g.copy()
    try:
        _run_rule(out, "matvec(W, v)")
    except ValueError as exc:    # shapes that do not fit: the line that raised, or what it left, says which side
        line = where(exc)
        w_done = W.grad is not None and not _close(_num(W.grad, "W.grad"), np.zeros(_W.shape))
        v_done = v.grad is not None and np.shape(v.grad) == _V.shape and not _close(_num(v.grad, "v.grad"),
                                                                                      np.zeros(_V.shape))
        if "v.grad" in line or ("W.grad" not in line and w_done and not v_done):
            side = "v.grad"
        elif "W.grad" in line or (v_done and not w_done):
            side = "W.grad"
        else:
            side = None
        hint = {"v.grad": _V_HINT, "W.grad": _W_HINT + " (np.outer(v.data, out.grad) is its transpose)",
                None: _W_HINT + "; " + _V_HINT}[side]
        raise Wrong(f"matvec's _backward raised ValueError{' on ' + side if side else ''}: {exc}{line}", hint) from None
    want_W = _numeric_grad(lambda w: float(np.sum(g * np.asarray(matvec(T(w), T(_V)).data))), _W)
    want_v = _numeric_grad(lambda x: float(np.sum(g * np.asarray(matvec(T(_W), T(x)).data))), _V)
    _check_grad(_num(W.grad, "W.grad"), want_W, "W.grad", "W.grad is transposed: " + _W_HINT, _W_HINT)
    _check_grad(_num(v.grad, "v.grad"), want_v, "v.grad", _V_HINT, _V_HINT + " (not W.data @ …)")


@question("D", "D3", "relu's value and gradient, also at 0", ["Tensor", "relu"], after=["A3"])
def _relu(ns):
    T, relu = ns["Tensor"], ns["relu"]
    a = np.array([-2.0, -0.5, 0.0, 1.5, 3.0])
    x = T(a)
    out = _is_tensor(ns, relu(x), "relu(x)")
    if not _close(out.data, np.maximum(a, 0)):
        raise Wrong(f"relu(x) for x = {a} has data {short_repr(out.data, 60)}, expected {np.maximum(a, 0)}",
                    "np.maximum(x.data, 0)")
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    _zero(x)
    out.grad = g.copy()
    _run_rule(out, "relu(x)")
    got = _num(x.grad, "x.grad")
    want = g * (a > 0)          # at 0, as PyTorch: no gradient
    if got.shape != want.shape:
        raise Wrong(f"x.grad has shape {got.shape}, expected {want.shape}", "x.grad += out.grad * (x.data > 0)")
    if np.allclose(got, g * (a < 0)):
        raise Wrong(f"x.grad is {got}, expected {want}: the gradient flows where x < 0",
                    "ReLU's gradient is on the wrong side: it passes ∂L/∂out where the input is positive "
                    "(x.data > 0) and blocks it where it is negative")
    if np.allclose(got, g * (a >= 0)):
        raise Wrong(f"for x = {a} and out.grad = {g}, x.grad at x = 0 is {_f(got[2])}, expected 0",
                    "at 0 ReLU has no derivative; the convention (PyTorch's) is 0: pass the grad only where "
                    "x.data > 0, not >= 0")
    if not np.allclose(got, want):
        raise Wrong(f"for x = {a} and out.grad = {g}, x.grad is {got}, expected {want}",
                    "x.grad += out.grad * (x.data > 0)")


@question("D", "D4", "backward() through relu(matvec(W, v))", ["Tensor", "matvec", "relu"],
          after=["B3", "B6", "D2", "D3"])
def _mlp_layer(ns):
    T, matvec, relu = ns["Tensor"], ns["matvec"], ns["relu"]
    W, v = T(_W), T(_V)
    out = relu(matvec(W, v))
    _call_backward(out, "relu(matvec(W, v))")
    want_W = _numeric_grad(lambda w: float(np.sum(np.asarray(relu(matvec(T(w), T(_V))).data))), _W)
    want_v = _numeric_grad(lambda x: float(np.sum(np.asarray(relu(matvec(T(_W), T(x))).data))), _V)
    seed = getattr(out, "grad", None)
    if seed is not None and np.shape(seed) != np.shape(out.data):
        hint = (f"after backward(), the output's grad has shape {np.shape(seed)} but its data {np.shape(out.data)}: "
                "seed it with np.ones_like(self.data) (an array, not the number 1)")
    else:
        hint = ("backward() must run relu's rule, then matvec's, from the output back (D2 and D3 check each rule "
                "on its own)")
    _check_grad(_grad(W, "W"), want_W, "W.grad", hint, hint)
    _check_grad(_grad(v, "v"), want_v, "v.grad", hint, hint)


# The 2-layer MLP regression: y = sin(x) on [-2, 2], one hidden layer of 6 ReLU units.
_MLP_X = np.linspace(-2.0, 2.0, 10).reshape(-1, 1)
_MLP_Y = np.sin(_MLP_X)
_MLP_SHAPES = (("W1", (6, 1)), ("b1", (6,)), ("W2", (1, 6)), ("b2", (1,)))


def _mlp_start():
    rng = np.random.default_rng(3)
    return [rng.normal(0.0, 0.8, shape) if name.startswith("W") else np.full(shape, 0.1)
            for name, shape in _MLP_SHAPES]


def _mlp_numpy(values, x):
    W1, b1, W2, b2 = values
    return W2 @ np.maximum(W1 @ x + b1, 0.0) + b2


def _mlp_loss_numpy(values):
    return float(np.mean([np.sum((_mlp_numpy(values, x) - y) ** 2) for x, y in zip(_MLP_X, _MLP_Y)]))


@question("D", "D5", "mlp(x, W1, b1, W2, b2) computes W2·relu(W1·x + b1) + b2",
          ["Tensor", "matvec", "relu", "add", "mlp"], after=["D1", "D3"])
def _mlp_forward(ns):
    T = ns["Tensor"]
    values = _mlp_start()
    x = np.array([0.7])
    out = _is_tensor(ns, ns["mlp"](T(x), *[T(v) for v in values]), "mlp(x, W1, b1, W2, b2)")
    want = _mlp_numpy(values, x)
    got = _num(out.data, "mlp(...).data")
    if not _close(got.reshape(want.shape) if got.size == want.size else got, want):
        raise Wrong(f"mlp(x, W1, b1, W2, b2) at x = 0.7 has data {short_repr(out.data, 60)}, expected {_f(want)}",
                    "the hidden layer is h = relu(matvec(W1, x) + b1), the output matvec(W2, h) + b2")


@question("D", "D6", "the regression loss and its grads match finite differences",
          ["Tensor", "matvec", "relu", "add", "mlp", "regression_loss"], after=["B1", "B2", "D4", "D5"])
def _mlp_grads(ns):
    T, loss_of = ns["Tensor"], ns["regression_loss"]
    values = _mlp_start()
    params = [T(v) for v in values]
    loss = _is_tensor(ns, loss_of(params, _MLP_X, _MLP_Y), "regression_loss(params, X, Y)")
    want = _mlp_loss_numpy(values)
    if np.size(loss.data) != 1 or not _close(float(np.sum(np.asarray(loss.data, dtype=np.float64))), want):
        raise Wrong(f"regression_loss(params, X, Y) is {short_repr(loss.data, 50)}, expected {_f(want)} (the mean "
                    "over the 10 samples of the squared error)",
                    "add up (mlp(x, *params) − y)² over the samples and multiply by 1/N")
    _call_backward(loss, "regression_loss(...)")
    for (name, _), p, start in zip(_MLP_SHAPES, params, values):
        def f(v, name=name):
            trial = [v if n == name else s for (n, _), s in zip(_MLP_SHAPES, values)]
            return _mlp_loss_numpy(trial)
        numeric = _numeric_grad(f, start)
        _check_grad(_grad(p, name), numeric, f"{name}.grad",
                    f"{name}.grad must have {name}'s shape {start.shape}",
                    "each sample's graph adds its part into the parameters' grads: check that regression_loss "
                    "builds one graph over all samples, and that every rule adds (+=)")


@question("D", "D7", "training the MLP: the loss falls", ["Tensor", "matvec", "relu", "add", "mlp",
                                                          "regression_loss", "train"], after=["D6", "C2"])
def _mlp_training(ns):
    T = ns["Tensor"]
    values = _mlp_start()
    params = [T(v.copy()) for v in values]
    steps = 60
    losses = _losses(ns["train"](params, _MLP_X, _MLP_Y, lr=0.1, steps=steps), steps, "train")
    moved = [name for (name, _), p, v in zip(_MLP_SHAPES, params, values)
             if not np.allclose(np.asarray(p.data, dtype=np.float64), v)]
    if not moved:
        raise Wrong(f"after train(params, X, Y, lr=0.1, steps={steps}) the parameters' data are as they were "
                    f"(the loss went from {losses[0]:.4g} to {losses[-1]:.4g})",
                    "update each parameter in place: p.data = p.data - lr * p.grad (a new Tensor bound to a loop "
                    "variable changes nothing outside it)")
    if not all(math.isfinite(v) for v in losses) or losses[-1] > losses[0]:
        raise Wrong(f"the loss went from {losses[0]:.4g} to {losses[-1]:.4g} in {steps} steps of lr = 0.1",
                    "step against the gradient: p.data = p.data - lr * p.grad, with the grads of the current loss")
    if losses[-1] > 0.5 * losses[0]:
        still = [name for (name, _) in _MLP_SHAPES if name not in moved]
        raise Wrong(f"the loss went only from {losses[0]:.4g} to {losses[-1]:.4g} in {steps} steps of lr = 0.1"
                    + (f"; {', '.join(still)} never changed" if still else ""),
                    "update every parameter (W1, b1, W2, b2) at every step, with the grads of that step's loss")


def none_operands(exc):
    """"t1.grad" (or the names) that were None on the line where ``exc`` was raised, read
    from that frame of the student's code; "" when none is found."""
    tb, frame_tb = exc.__traceback__, None
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) not in _OWN_FILES:
            frame_tb = tb
        tb = tb.tb_next
    if frame_tb is None:
        return ""
    frame = frame_tb.tb_frame
    line = traceback.extract_tb(frame_tb, limit=1)[0].line or ""
    scope = {**frame.f_globals, **frame.f_locals}
    found = []
    for text in re.findall(r"[A-Za-z_][\w.]*", line):
        head, *rest = text.split(".")
        if head not in scope or text in found:
            continue
        value = scope[head]
        try:
            for part in rest:
                value = getattr(value, part)
        except Exception:
            continue
        if value is None:
            found.append(text)
    return " and ".join(found)


def where(exc) -> str:
    """Where the student's code raised: " (in function, line N: code)" of its deepest frame, or ""."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) not in _OWN_FILES]
    if not frames:
        return ""
    f = frames[-1]
    return f" (in {f.name}, line {f.lineno}" + (f": {f.line.strip()}" if f.line else "") + ")"
