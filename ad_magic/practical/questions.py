"""The practical's questions, part by part, for :func:`ad_magic.practical.check`.

Each question is a function of the student's namespace, registered in ``PARTS`` with the
names it needs; it builds the practical's own examples with the student's ``Tensor``,
``add``, ``mul``, … and raises :class:`Wrong` (one sentence saying what is wrong, and a
hint) when an answer is wrong. The runner (time limit, statuses, the report) is
:mod:`ad_magic.practical` itself.
"""
from __future__ import annotations

import os
import traceback

import numpy as np

from ..engine.formatting import format_value, short_repr

__all__ = ["PARTS", "Question", "Wrong", "DEEP_CHAIN", "where"]

DEEP_CHAIN = 3000           # nodes in Part B's deep chain: past Python's recursion limit
_OWN_FILES = {os.path.abspath(__file__), os.path.join(os.path.dirname(os.path.abspath(__file__)), "__init__.py")}


class Wrong(Exception):
    """A question's answer is wrong: ``message`` says what, ``hint`` how to fix it."""

    def __init__(self, message, hint=""):
        super().__init__(message)
        self.message, self.hint = message, hint




PARTS = {"A": [], "B": [], "C": [], "D": []}


class Question:
    def __init__(self, part, key, title, needs, function, on_error="", on_recursion=""):
        self.part, self.key, self.title, self.needs = part, key, title, needs
        self.function, self.on_error, self.on_recursion = function, on_error, on_recursion


def question(part, key, title, needs, on_error="", on_recursion=""):
    """Register a question; ``on_error`` is the hint for an exception it raises,
    ``on_recursion`` the hint for a RecursionError (seen, with the function that recursed)."""
    def register(function):
        PARTS[part].append(Question(part, key, title, needs, function, on_error, on_recursion))
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


@question("A", "A3", "add and mul record _function and _parents", ["Tensor", "add", "mul"])
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


@question("A", "A4", "the operators + and * (with tensors and numbers)", ["Tensor", "add", "mul"])
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


@question("A", "A5", "trace_graph of x² + 4x + 2", ["Tensor", "add", "mul", "trace_graph"])
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


@question("B", "B1", "mul's _backward, by hand", ["Tensor", "mul"])
def _mul_rule(ns):
    _by_hand(ns, "mul", (3.0, 2.0), "p·q")


@question("B", "B2", "add's _backward, by hand", ["Tensor", "add"])
def _add_rule(ns):
    _by_hand(ns, "add", (1.0, 1.0), "p + q")


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


def _overwriting(ns):
    """Which of add's and mul's rules overwrites a grad that already holds something (seen
    by running it with p.grad = q.grad = 10): "add's _backward left p.grad = 1 where 10 + 1
    = 11 was due", or None when both add into the grads."""
    T = ns["Tensor"]
    for op, expect in (("mul", (3.0, 2.0)), ("add", (1.0, 1.0))):
        if op not in ns:
            continue
        try:
            p, q = T(2.0), T(3.0)
            out = ns[op](p, q)
            out.grad = np.ones_like(np.asarray(out.data, dtype=np.float64))
            p.grad, q.grad = np.asarray(10.0), np.asarray(10.0)
            out._backward()
            got = np.asarray(p.grad, dtype=np.float64)
        except Exception:
            continue
        if _close(got, expect[0]):
            return (f"{op}'s _backward overwrites the grads (=) instead of adding to them (+=): with p.grad = 10 "
                    f"beforehand it left p.grad = {_f(got)} where 10 + {expect[0]:g} = {10 + expect[0]:g} was due")
    return None


_ACCUMULATE = "x is used three times, so its grad is the sum of three contributions; "


@question("B", "B3", "backward(): d(x·x + 5x − 1)/dx at 2 is 9", ["Tensor", "add", "mul"])
def _backward_nine(ns):
    x, y = _nine(ns)
    _call_backward(y)
    g = _grad(x, "x")
    if not _close(g, 9.0):
        seen = _overwriting(ns)
        raise Wrong(f"x.grad is {_f(g)}, expected 9", _ACCUMULATE + seen if seen else
                    "check that backward() seeds the output's grad with ones, zeroes the others, and runs every "
                    "node's _backward from the output back to the leaves")
    out = _grad(y, "y")
    if not _close(out, 1.0):
        raise Wrong(f"y.grad is {_f(out)} after y.backward(), expected 1",
                    "backward() sets the output's own grad to one: self.grad = np.ones_like(self.data)")


@question("B", "B4", "backward() twice gives the same grads", ["Tensor", "add", "mul"])
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


@question("B", "B5", "a reused node's grads sum", ["Tensor", "add", "mul"])
def _reused(ns):
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    x = T(3.0)
    y = add(x, x)
    _call_backward(y)
    g = _grad(x, "x")
    if not _close(g, 2.0):
        raise Wrong(f"for y = x + x, x.grad is {_f(g)}, expected 2",
                    _overwriting(ns) or "x is both operands of add: its rule adds into t1.grad and t2.grad, "
                                         "which are both x.grad, so x receives two contributions")
    x = T(3.0)
    z = mul(add(x, T(1.0)), x)
    _call_backward(z)
    g = _grad(x, "x")
    if not _close(g, 7.0):
        raise Wrong(f"for z = (x + 1)·x at x = 3, x.grad is {_f(g)}, expected 2x + 1 = 7",
                    _overwriting(ns) or "x is used by two operations: both rules' contributions must reach "
                                         "x.grad; check that each rule adds into its own inputs' grads")


def _logged(rule, name, ran):
    def logged():
        ran.append(name)
        return rule()
    return logged


@question("B", "B6", "backward() runs children before parents", ["Tensor", "add", "mul"])
def _order(ns):
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    x = T(1.0)
    a = mul(x, T(2.0))
    b = mul(a, T(3.0))
    c = add(a, b)
    ran = []
    for name, node in (("a", a), ("b", b), ("c", c)):
        rule = getattr(node, "_backward", None)
        if callable(rule):
            node._backward = _logged(rule, name, ran)
    _call_backward(c)
    g = _grad(x, "x")
    in_order = all(n in ran for n in "abc") and ran.index("c") < ran.index("b") < ran.index("a")
    if _close(g, 8.0) and in_order:
        return
    if in_order:
        raise Wrong(f"the rules ran in a right order (c, b, a), but x.grad is {_f(g)}, expected 8",
                    _overwriting(ns) or "a is used by b and by c: both rules' contributions must reach a.grad")
    if ran[:3] == ["a", "b", "c"]:
        raise Wrong(f"for c = a + 3a with a = 2x, the rules ran in the order {', '.join(ran)}: parents first",
                    "the topological order lists parents before children; backward() runs it reversed "
                    "(for node in reversed(order)) so each node's grad is complete before its rule runs")
    order = ", ".join(ran)
    raise Wrong(f"for c = a + 3a with a = 2x, x.grad is {_f(g)}, expected 8 (rules ran: {order or 'none'})",
                "a node's rule must run only after every node that uses it has added to its grad: build a "
                "topological order (parents before children) and run it reversed")


@question("B", "B7", f"a deep chain ({DEEP_CHAIN:,} nodes) does not hit the recursion limit",
          ["Tensor", "add"],
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


# -- Part C ----------------------------------------------------------------------------

def _parabola(ns):
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    return lambda x: mul(add(x, T(-3.0)), add(x, T(-3.0)))


@question("C", "C1", "gradient_descent returns one loss per step", ["Tensor", "add", "mul", "gradient_descent"])
def _descent_losses(ns):
    losses = ns["gradient_descent"](_parabola(ns), ns["Tensor"](0.0), lr=0.1, steps=20)
    try:
        values = [float(np.asarray(v, dtype=np.float64)) for v in losses]
    except Exception:
        raise Wrong(f"gradient_descent returned {short_repr(losses, 60)}, expected a list of 20 numbers (the losses)",
                    "append float(loss.data) at each step and return the list") from None
    if len(values) != 20:
        raise Wrong(f"gradient_descent(..., steps=20) returned {len(values)} losses, expected 20",
                    "one loss per step: for _ in range(steps): ...")


@question("C", "C2", "the loss decreases and x reaches the minimum of (x − 3)²",
          ["Tensor", "add", "mul", "gradient_descent"])
def _descent_minimum(ns):
    x = ns["Tensor"](0.0)
    losses = ns["gradient_descent"](_parabola(ns), x, lr=0.1, steps=100)
    value = float(_num(x.data, "x.data"))
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
        raise Wrong(f"x.data is {value:.6g} after 100 steps of lr = 0.1, expected 3 (to 0.001)",
                    "each step is x ← x − lr · dL/dx with a fresh gradient")
    values = [float(np.asarray(v, dtype=np.float64)) for v in losses]
    if any(b > a + 1e-12 for a, b in zip(values, values[1:])):
        raise Wrong("the losses do not decrease step after step", "record the loss before the update")


@question("C", "C3", "each step uses a fresh gradient", ["Tensor", "mul", "gradient_descent"])
def _descent_fresh(ns):
    T, mul = ns["Tensor"], ns["mul"]
    x = T(1.0)
    ns["gradient_descent"](lambda x: mul(x, x), x, lr=0.25, steps=3)
    value = float(_num(x.data, "x.data"))
    if not _close(value, 0.125):
        raise Wrong(f"minimising x·x from x = 1 with lr = 0.25, x.data is {value:.6g} after 3 steps, expected "
                    "0.125 (each step halves x)",
                    "each step needs the gradient at the current x only: call loss.backward() on a loss built "
                    "from the current x, and do not let grads from earlier steps add up")


# -- Part D ----------------------------------------------------------------------------

_W = np.array([[1.0, 2.0, 0.5], [-1.0, 0.5, -3.0]])
_V = np.array([1.0, 2.0, -1.0])


def _numeric_grad(f, x, eps=1e-6):
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (f(up) - f(down)) / (2 * eps)
    return grad


def _check_grad(got, want, what, transposed_hint, hint):
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        raise Wrong(f"{what} has shape {got.shape}, expected {want.shape}",
                    transposed_hint if got.shape == want.shape[::-1] else hint)
    if not np.allclose(got, want, rtol=1e-4, atol=1e-6):
        if want.ndim == 2 and np.allclose(got, want.T.reshape(got.shape) if want.T.shape == got.shape else got + 1):
            raise Wrong(f"{what} is transposed", transposed_hint)
        raise Wrong(f"{what} is {np.array2string(got, precision=3)}, finite differences give "
                    f"{np.array2string(want, precision=3)}", hint)


@question("D", "D1", "matvec(W, v) computes W @ v and records it", ["Tensor", "matvec"])
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


@question("D", "D2", "matvec's gradients match finite differences", ["Tensor", "matvec"])
def _matvec_grad(ns):
    T, matvec = ns["Tensor"], ns["matvec"]
    g = np.array([0.5, -2.0])
    W, v = T(_W), T(_V)
    out = matvec(W, v)
    _zero(W, v)
    out.grad = g.copy()
    try:
        _run_rule(out, "matvec(W, v)")
    except ValueError as exc:    # shapes that do not fit: most often a transposed outer product
        raise Wrong(f"matvec's _backward raised ValueError: {exc}{where(exc)}",
                    "∂L/∂W = outer(∂L/∂out, v) has W's shape (2, 3): W.grad += np.outer(out.grad, v.data); "
                    "np.outer(v.data, out.grad) is its transpose") from None
    want_W = _numeric_grad(lambda w: float(np.sum(g * np.asarray(matvec(T(w), T(_V)).data))), _W)
    want_v = _numeric_grad(lambda x: float(np.sum(g * np.asarray(matvec(T(_W), T(x)).data))), _V)
    _check_grad(_num(W.grad, "W.grad"), want_W, "W.grad",
                "matvec's gradient is transposed: ∂L/∂W = outer(∂L/∂out, v), i.e. "
                "W.grad += np.outer(out.grad, v.data), which has W's shape",
                "∂L/∂W = outer(∂L/∂out, v): W.grad += np.outer(out.grad, v.data)")
    _check_grad(_num(v.grad, "v.grad"), want_v, "v.grad",
                "∂L/∂v = Wᵀ ∂L/∂out: v.grad += W.data.T @ out.grad",
                "∂L/∂v = Wᵀ ∂L/∂out: v.grad += W.data.T @ out.grad (not W.data @ …)")


@question("D", "D3", "relu's value and gradient", ["Tensor", "relu"])
def _relu(ns):
    T, relu = ns["Tensor"], ns["relu"]
    a = np.array([-2.0, -0.5, 1.5, 3.0])
    x = T(a)
    out = _is_tensor(ns, relu(x), "relu(x)")
    if not _close(out.data, np.maximum(a, 0)):
        raise Wrong(f"relu(x) for x = {a} has data {short_repr(out.data, 60)}, expected {np.maximum(a, 0)}",
                    "np.maximum(x.data, 0)")
    g = np.array([1.0, 2.0, 3.0, 4.0])
    _zero(x)
    out.grad = g.copy()
    _run_rule(out, "relu(x)")
    got = _num(x.grad, "x.grad")
    want = _numeric_grad(lambda d: float(np.sum(g * np.asarray(relu(T(d)).data))), a)
    if got.shape == want.shape and np.allclose(got, g * (a < 0)):
        raise Wrong(f"x.grad is {got}, expected {want}: the gradient flows where x < 0",
                    "ReLU's gradient is on the wrong side: it passes ∂L/∂out where the input is positive "
                    "(x.data > 0) and blocks it where it is negative")
    _check_grad(got, want, "x.grad", "", "x.grad += out.grad * (x.data > 0)")


@question("D", "D4", "backward() through relu(matvec(W, v))", ["Tensor", "matvec", "relu"])
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


def where(exc) -> str:
    """Where the student's code raised: " (in function, line N: code)" of its deepest frame, or ""."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) not in _OWN_FILES]
    if not frames:
        return ""
    f = frames[-1]
    return f" (in {f.name}, line {f.lineno}" + (f": {f.line.strip()}" if f.line else "") + ")"
