"""A backward() that computes every grad itself (no rule per node: local derivatives kept as
numbers beside the inputs, multiplied in one central loop) is judged term by term: what each
line changed is matched to the node that line names whose input it is, and judged as that
node's rule."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from student_corpus import load

from ad_magic.adapters import AdapterError, ForeignStep, observe_backward

LOCAL_OF_LOG = {"f": lambda x: 1 / x}      # the local derivative the class keeps for log (right: 1/x)


class Num:
    """Central rules: each result keeps (input, local derivative) pairs; backward() multiplies."""

    def __init__(self, value, pairs=(), op=None):
        self.value, self.pairs, self.op, self.g = float(value), tuple(pairs), op, 0.0

    def __mul__(self, other):
        return type(self)(self.value * other.value, ((self, other.value), (other, self.value)), "mul")

    def __add__(self, other):
        return type(self)(self.value + other.value, ((self, 1.0), (other, 1.0)), "add")

    def log(self):
        return type(self)(math.log(self.value), ((self, LOCAL_OF_LOG["f"](self.value)),), "log")

    def order(self):
        found, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for parent, _ in v.pairs:
                    visit(parent)
                found.append(v)
        visit(self)
        return found

    def backward(self):
        self.g = 1.0
        for node in reversed(self.order()):
            for parent, local in node.pairs:
                parent.g += local * node.g


class WrongOrder(Num):
    def backward(self):
        self.g = 1.0
        for node in self.order():           # parents first: every grad read before it is complete
            for parent, local in node.pairs:
                parent.g += local * node.g


def graph(cls=Num):
    a, b = cls(3.0), cls(0.25)
    return (a * b + a).log() * b, a, b


@pytest.fixture(autouse=True)
def _right_local():
    LOCAL_OF_LOG["f"] = lambda x: 1 / x
    yield
    LOCAL_OF_LOG["f"] = lambda x: 1 / x


def test_each_node_s_terms_computed_inline_are_a_step_of_that_node():
    out, a, b = graph()
    observation = observe_backward(out)
    assert observation.problems == []
    rules = [s for s in observation.steps if isinstance(s, ForeignStep)]
    assert [s.function for s in rules] == ["mul", "log", "add", "mul"]        # reversed topological
    assert all(s.ok for s in rules)
    assert [s.remark for s in rules][:2] == [
        "your backward computed these terms itself (the node has no rule of its own): judged as mul's rule",
        "your backward computed these terms itself (the node has no rule of its own): judged as log's rule"]
    assert [getattr(s, "kind", None) for s in observation.steps[:1]] == ["seed"]
    assert math.isclose(observation.grad(a), b.value / (a.value * b.value + a.value) * (b.value + 1))


def test_a_wrong_local_derivative_is_named_at_its_node():
    LOCAL_OF_LOG["f"] = lambda x: 1 / x ** 2
    out, a, b = graph()
    observation = observe_backward(out)
    [log] = [s for s in observation.steps if isinstance(s, ForeignStep) and s.function == "log"]
    assert not log.ok
    assert log.note == ("your backward, computing log's terms, added 0.01778 to the grad of the add result, but "
                        "the chain rule gives 0.06667.")
    assert observation.problems == [log.note]


def test_a_central_loop_in_the_wrong_order_is_named():
    out, a, b = graph(WrongOrder)
    observation = observe_backward(out)
    assert any("ran before the rule of" in p and "reverse topological order" in p for p in observation.problems), \
        observation.problems


def test_the_corpus_class_with_numbers_beside_its_inputs_is_judged_term_by_term():
    module = load("local_grads_numbers")
    out, inputs = module.build()
    observation = observe_backward(out, backward=lambda: module.backward(out, inputs))
    rules = [s for s in observation.steps if isinstance(s, ForeignStep)]
    assert len(rules) == 4 and all(s.ok and s.expected is not None for s in rules)
    assert observation.problems == []
    out.retro()
    assert np.isclose(observation.grad(inputs["a"]), inputs["a"].gradiente)


class InlineForever(Num):
    def backward(self):
        self.g = 1.0
        while True:                          # forgets to stop: adds the same terms again and again
            for node in reversed(self.order()):
                for parent, local in node.pairs:
                    parent.g += local * node.g


def test_a_central_loop_that_never_ends_is_stopped_as_a_runaway_not_at_the_time_limit():
    out, a, b = graph(InlineForever)
    observation = observe_backward(out, timeout=60)
    assert observation.timed_out and observation.seconds < 30
    assert "its rules had run" in observation.problems[-1] and "a loop that does not end" in observation.problems[-1]


class Op:
    """Rules kept on op classes, called by one central loop: `vjp(inputs, out_grad)` returns grads."""

    @classmethod
    def apply(cls, *args):
        return Arr(cls.forward(*(a.arr for a in args)), cls, args)


class Times(Op):
    forward = staticmethod(lambda a, b: a * b)
    SLIP = {"on": False}

    @staticmethod
    def vjp(inputs, out_grad):
        a, b = inputs
        return out_grad * b.arr, out_grad * (a.arr if not Times.SLIP["on"] else b.arr)


class Plus(Op):
    forward = staticmethod(lambda a, b: a + b)

    @staticmethod
    def vjp(inputs, out_grad):
        return out_grad, out_grad


class Arr:
    def __init__(self, arr, op=None, args=()):
        self.arr, self.op, self.args, self.adj = np.asarray(arr, dtype=float), op, tuple(args), None

    def __mul__(self, other):
        return Times.apply(self, other)

    def __add__(self, other):
        return Plus.apply(self, other)


def central_backward(out):
    order, seen = [], set()

    def visit(n):
        if id(n) not in seen:
            seen.add(id(n))
            for a in n.args:
                visit(a)
            order.append(n)
    visit(out)
    for n in order:
        n.adj = np.zeros_like(n.arr)
    out.adj = np.ones_like(out.arr)
    for n in reversed(order):
        if n.op is not None:
            for a, g in zip(n.args, n.op.vjp(n.args, n.adj)):
                a.adj = a.adj + g


@pytest.mark.parametrize("slip", [False, True])
def test_a_loop_header_names_the_node_whose_terms_its_body_adds(slip):
    Times.SLIP["on"] = slip
    try:
        u, v = Arr(2.0), Arr(3.0)
        out = (u * v + u) * v
        observation = observe_backward(out, backward=lambda: central_backward(out))
    finally:
        Times.SLIP["on"] = False
    rules = [s for s in observation.steps if isinstance(s, ForeignStep)]
    assert [s.function for s in rules] == ["Times", "Plus", "Times"]       # the op classes' names
    assert all(s.expected is not None and s.expected.operands is not None for s in rules)   # judged
    if not slip:
        assert observation.problems == [] and all(s.ok for s in rules)
    else:
        assert observation.problems and "computing Times's terms" in observation.problems[0]


class Guarded:
    """A grad behind a property with a setter, and a rule in a field no spelling list has."""

    def __init__(self, v, ins=()):
        self._v, self._g, self.ins, self._bw = float(v), 0.0, tuple(ins), None

    @property
    def grad(self):
        return self._g

    @grad.setter
    def grad(self, g):
        self._g = g

    def __mul__(self, other):
        out = Guarded(self._v * other._v, (self, other))

        def bw():
            self.grad += other._v * out.grad
            other.grad += self._v * out.grad
        out._bw = bw
        return out

    def backward(self):
        self.grad = 1.0
        self._bw()


def test_a_rule_in_a_field_of_its_own_writing_through_a_property_is_one_step_of_its_node():
    a, b = Guarded(2.0), Guarded(3.0)
    observation = observe_backward(a * b)
    assert observation.problems == []
    [rule] = [s for s in observation.steps if isinstance(s, ForeignStep)]
    assert rule.ok and rule.remark is None and len(rule.changes) == 2


class Kept:
    """Grads kept off the nodes, in a dict of the graph's: nothing on a node to watch."""

    def __init__(self, value, inputs=()):
        self.value, self.inputs = float(value), tuple(inputs)

    def __mul__(self, other):
        return Kept(self.value * other.value, (self, other))


def test_grads_kept_off_the_nodes_are_refused_in_one_sentence_not_observed_as_nothing():
    a, b = Kept(2.0), Kept(3.0)
    out, grads = a * b, {}

    def backward():
        grads[id(out)] = 1.0
        grads[id(a)], grads[id(b)] = b.value, a.value

    with pytest.raises(AdapterError, match=r"^Kept keeps no grad on its nodes .*grads kept elsewhere \(a dict on a "
                                           r"graph object\) cannot be observed"):
        observe_backward(out, backward=backward)


@dataclasses.dataclass(frozen=True, eq=False)
class Boxed:
    """A frozen node whose grad is a mutable one-element box."""

    val: float
    ins: tuple = ()
    grad: list = dataclasses.field(default_factory=lambda: [0.0])

    def backward(self):
        self.grad[0] = 1.0
        a, b = self.ins
        a.grad[0] += b.val * self.grad[0]
        b.grad[0] += a.val * self.grad[0]


def test_a_grad_kept_in_a_one_element_box_is_the_scalar_s_grad():
    a, b = Boxed(2.0), Boxed(3.0)
    out = Boxed(6.0, (a, b))
    observation = observe_backward(out, backward=out.backward)      # no rule per node: one backward
    assert observation.problems == []
    assert observation.grad(a).shape == () and float(observation.grad(a)) == 3.0
    assert a.grad == [0.0] and out.grad == [0.0]          # looked at, put back
