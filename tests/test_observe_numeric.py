"""A rule for an op ad_magic's registry does not know is judged too: the call that made the
node (recorded while the cell ran) is run again, in a forked copy of the process, with each
input's numbers moved by ±h, and the chain rule is checked against that measured derivative."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ad_magic.adapters import adapt, observe_backward, recording
from ad_magic.widgets.stepper import BackwardStepper

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the derivative is measured in a forked copy")

TAPE = []          # a tape the forward appends to: measuring must not add to it
SCALE = {"softplus": 1.0, "sin": 1.0}    # what the rules multiply their derivative by (1: right)


class Node:
    """The practical's shape, with ops the registry does not know (softplus, cube_root, clamp0)."""

    def __init__(self, data, parents=(), function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = tuple(parents)
        self._function = function
        self._backward = lambda: None

    def __mul__(self, other):
        other = other if isinstance(other, Node) else Node(other)
        out = Node(self.data * other.data, (self, other), "mul")

        def _backward():
            self.grad += out.grad * other.data
            other.grad += out.grad * self.data
        out._backward = _backward
        return out

    def softplus(self):
        out = Node(np.log1p(np.exp(self.data)), (self,), "softplus")
        TAPE.append(out)

        def _backward():
            self.grad += out.grad / (1 + np.exp(-self.data)) * SCALE["softplus"]
        out._backward = _backward
        return out

    def cube_root(self):
        return _made(np.cbrt(self.data), self)       # a helper builds the node from a finished value

    def clamp0(self):
        out = Node(np.maximum(self.data, 0.0), (self,), "clamp0")

        def _backward():
            self.grad += out.grad * (self.data > 0)
        out._backward = _backward
        return out

    def total(self):
        out = Node(self.data.sum(), (self,), "sum")

        def _backward():
            self.grad += out.grad * np.ones_like(self.data)
        out._backward = _backward
        return out

    def backward(self):
        order, seen = [], set()

        def visit(node):
            if node not in seen:
                seen.add(node)
                for p in node._parents:
                    visit(p)
                order.append(node)
        visit(self)
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()


def _made(value, parent):
    out = Node(value, (parent,), "cube_root")

    def _backward():
        parent.grad += out.grad / (3 * np.cbrt(parent.data) ** 2)
    out._backward = _backward
    return out


class Value:
    """micrograd's shape: a Python float, children in a set, an op string; ``sin`` is unknown."""

    def __init__(self, data, _children=(), _op=""):
        self.data, self.grad = data, 0.0
        self._prev, self._op = set(_children), _op
        self._backward = lambda: None

    def __add__(self, other):
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def sin(self):
        out = Value(math.sin(self.data), (self,), "sin")

        def _backward():
            self.grad += math.cos(self.data) * out.grad * SCALE["sin"]
        out._backward = _backward
        return out

    def backward(self):
        topo, seen = [], set()

        def build(v):
            if v not in seen:
                seen.add(v)
                for child in v._prev:
                    build(child)
                topo.append(v)
        build(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()


def observed(make, **options):
    """Build the graph while recording it (as %%autodiff does), then observe its backward."""
    with recording(globals()) as seen:
        out, leaf = make()
    return observe_backward(adapt(out, recording=seen), **options), leaf


def softplus_graph():
    x = Node([0.5, -1.0, 2.0])
    return (x.softplus() * x).total(), x


@pytest.fixture(autouse=True)
def _right_rules():
    SCALE.update(softplus=1.0, sin=1.0)
    yield
    SCALE.update(softplus=1.0, sin=1.0)


def test_a_right_rule_for_an_unknown_op_is_measured_and_agrees():
    observation, x = observed(softplus_graph)
    assert observation.problems == []
    [step] = [s for s in observation.steps if getattr(s, "function", None) == "softplus"]
    assert step.ok and step.expected is not None and step.expected.numeric
    assert step.remark == ("softplus is not in ad_magic's op registry: this rule is checked against the derivative "
                           "of your forward softplus, measured numerically")
    want = np.log1p(np.exp(x.data)) + x.data / (1 + np.exp(-x.data))        # d/dx softplus(x)·x
    assert np.allclose(observation.grad(x), want)


def test_a_wrong_rule_for_an_unknown_op_is_named_with_the_measured_numbers():
    SCALE["softplus"] = 2.0
    observation, x = observed(softplus_graph)
    [step] = [s for s in observation.steps if getattr(s, "function", None) == "softplus"]
    assert not step.ok
    sigmoid = 1 / (1 + np.exp(-x.data))
    want = x.data * sigmoid                                 # upstream (x) times the derivative
    assert np.allclose(step.expected.contributions[step.node.parents[0]], want, rtol=1e-6)
    assert observation.problems == [step.note]
    assert step.note.startswith("softplus's _backward added [")
    assert "(with the derivative of your forward softplus, measured numerically)" in step.note


def test_measuring_runs_the_forward_in_a_copy_so_nothing_changes_here():
    TAPE.clear()
    observation, x = observed(softplus_graph)
    assert len(TAPE) == 1                  # the cell's own softplus, none of the re-runs
    assert observation.problems == [] and x.grad is None


def test_a_python_float_node_with_a_set_of_children_is_measured():
    def make():
        a = Value(0.7)
        return a.sin() + a, a

    SCALE["sin"] = -1.0
    observation, a = observed(make)
    assert len(observation.problems) == 1
    assert "sin's _backward added -0.7648" in observation.problems[0]
    assert "the chain rule gives 0.7648" in observation.problems[0]
    SCALE["sin"] = 1.0
    observation, a = observed(make)
    assert observation.problems == [] and math.isclose(observation.grad(a), math.cos(0.7) + 1)


def test_a_node_built_by_a_helper_is_measured_through_the_call_that_computed_it():
    def make():
        x = Node([8.0, 27.0])
        return (x.cube_root() * x).total(), x

    observation, x = observed(make)
    [step] = [s for s in observation.steps if getattr(s, "function", None) == "cube_root"]
    assert step.expected is not None and step.expected.numeric and step.ok       # cube_root, not _made
    assert observation.problems == []


def test_at_a_kink_any_subgradient_passes():
    def make():
        x = Node([0.0, 1.5, -2.0])
        return (x.clamp0() * x).total(), x

    observation, x = observed(make)
    [step] = [s for s in observation.steps if getattr(s, "function", None) == "clamp0"]
    assert step.ok and observation.problems == []
    want = step.expected.contributions[step.node.parents[0]]
    assert np.isnan(want[0]) and np.allclose(want[1:], [1.5, 0.0])     # no verdict at the kink alone


def test_next_to_a_kink_a_wrong_rule_is_still_caught():
    def make():
        x = Node([0.0, 1.5, -2.0])
        return (x.softplus().clamp0() * x).total(), x

    SCALE["softplus"] = 3.0
    observation, x = observed(make)
    [step] = [s for s in observation.steps if getattr(s, "function", None) == "softplus"]
    assert not step.ok and "measured numerically" in step.note


def test_without_a_recording_the_step_says_why_it_is_not_checked():
    SCALE["softplus"] = 2.0
    out, x = softplus_graph()
    stepper = BackwardStepper(out, names={x: "x"})
    [step] = [s for s in stepper.steps if getattr(s, "function", None) == "softplus"]
    assert step.ok                                       # no verdict: nothing to measure against
    assert "this rule is not checked: softplus is not in ad_magic's op registry, and its derivative can be " \
           "measured only under %%autodiff" in step.remark


def test_the_magic_names_a_wrong_rule_for_an_op_of_the_students_own(magic_shell):
    ip = magic_shell()
    ip.user_ns.update(Node=Node, SCALE=SCALE)
    SCALE["softplus"] = 2.0
    from IPython.utils.capture import capture_output
    with capture_output() as cap:
        result = ip.run_cell("%%autodiff y\nx = Node([0.5, -1.0])\ny = (x.softplus() * x).total()\n")
    assert result.success, result.error_in_exec
    shown = cap.stdout + "".join(str(o.data) for o in cap.outputs)
    assert "measured numerically" in shown and "softplus's _backward added [0.6225, -0.5379]" in shown
