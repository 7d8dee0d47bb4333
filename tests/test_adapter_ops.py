"""Every op of the registry on foreign data: its local derivative and its step text on
Python floats, NumPy scalars, 0-d arrays, vectors and matrices, directly and through the
adapters (a student's node whose op is that op, stepped by BackwardStepper)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ad_magic.adapters import adapt
from ad_magic.engine.ops import OPS
from ad_magic.widgets.stepper import BackwardStepper

ELEMENTWISE = sorted(name for name, op in OPS.items() if op.elementwise)
STRUCTURAL = sorted(name for name, op in OPS.items() if not op.elementwise)
KINDS = {
    "python float": lambda v: float(v),
    "numpy scalar": lambda v: np.float64(v),
    "0-d array": lambda v: np.array(v),
    "vector": lambda v: np.array([v, v * 0.5 + 0.25, v + 0.75]),
    "matrix": lambda v: np.array([[v, v + 0.5], [v * 0.25 + 0.5, 1.5]]),
}
POSITIVE = {"log", "pow"}        # inputs where the op is defined (a positive base, a positive argument)


class Node:
    """A student's node: data of any kind, ``_parents`` in order, ``_function`` the op's name."""

    def __init__(self, data, parents=(), function=None):
        self.data = data
        self.grad = None
        self._parents = tuple(parents)
        self._function = function
        self._backward = lambda: None


def student_graph(op, datas, args=None, grad=None):
    """Leaves holding ``datas`` (kept in their own kind) and one node of ``op`` whose rule is
    the registry's chain rule, as a correct student would write it."""
    leaves = [Node(d) for d in datas]
    arrays = tuple(np.asarray(d, dtype=float) for d in datas)
    out_data = op.compute(list(arrays), args)
    out = Node(out_data, leaves, op.name)

    def _backward():
        g = np.asarray(out.grad, dtype=float)
        for i, leaf in enumerate(leaves):
            c, _ = op.input_grad(i, g, np.asarray(out_data), arrays, args)
            leaf.grad = leaf.grad + c
    out._backward = _backward
    return leaves, out


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(ELEMENTWISE), kind=st.sampled_from(sorted(KINDS)),
       value=st.floats(0.2, 2.0), other=st.floats(0.2, 2.0))
def test_every_elementwise_op_on_every_kind_of_data(name, kind, value, other):
    op = OPS[name]
    make = KINDS[kind]
    values = (value, other)[: len(op.inputs)]
    datas = tuple(make(v if name not in POSITIVE else abs(v)) for v in values)
    if name == "relu":
        datas = (make(value - 1.1),)          # both sides of zero, never zero itself
    arrays = tuple(np.asarray(d, dtype=float) for d in datas)
    # directly: the local derivative and the chain rule on this kind of data
    out = op.compute(list(datas), None)
    for i in range(len(datas)):
        local = op.local(i, out, datas)
        assert np.shape(local) == np.shape(out) and np.all(np.isfinite(local))
        g = np.ones(np.shape(out)) if np.ndim(out) else make(1.0)
        c, _ = op.input_grad(i, g, out, datas, None)
        assert np.shape(c) == np.shape(datas[i])
    # through the adapters: drawn, stepped, the step's text and factors from the registry
    leaves, node = student_graph(op, datas)
    size = np.size(op.compute(list(arrays), None))
    stepper = BackwardStepper(node, grad=None if size == 1 else np.ones(np.shape(node.data)), forward=True)
    step = stepper.steps[0]
    assert step.ok, step.note
    assert step.rule.startswith(op.formula)
    caption = stepper.caption_text(stepper.n_steps)
    assert caption.startswith(f"{name}: ") and "∂L/∂" in caption
    for term in step.terms:
        assert term.factor_text in op.derivatives
        want = op.local(op.inputs.index(term.operand), np.asarray(node.data, dtype=float), arrays)
        assert np.allclose(term.factor, want)
    for leaf in leaves:
        assert leaf.grad is None                              # the student's objects are left as they were
        assert stepper.card_text(leaf)


STRUCTURAL_CASES = {
    "matmul": [((np.ones((2, 3)), np.arange(3.0)), None), ((np.arange(3.0), np.arange(3.0) + 1), None),
               ((np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(3, 2)), None)],
    "linear": [((np.arange(3.0), np.ones((3, 2)), np.array([0.5, -0.5])), None)],
    "sum": [((np.arange(3.0),), None), ((np.arange(4.0).reshape(2, 2),), None), ((np.array(2.5),), None),
            ((2.5,), None), ((np.float64(2.5),), None)],
    "mean": [((np.arange(3.0),), None), ((np.arange(4.0).reshape(2, 2),), None), ((np.array(2.5),), None),
             ((2.5,), None)],
    "transpose": [((np.arange(6.0).reshape(2, 3),), None)],
    "reshape": [((np.arange(4.0),), ((2, 2),))],
    "getitem": [((np.arange(4.0),), (slice(1, 3),))],
    "scatter_add": [((np.arange(2.0),), ((4,), slice(1, 3)))],
}


def test_every_structural_op_has_cases():
    assert sorted(STRUCTURAL_CASES) == STRUCTURAL


@pytest.mark.parametrize("name, datas, extra", [(n, d, e) for n, cases in STRUCTURAL_CASES.items() for d, e in cases],
                         ids=lambda x: x if isinstance(x, str) else "")
def test_every_structural_op_through_the_adapters(name, datas, extra):
    op = OPS[name]
    arrays = tuple(np.asarray(d, dtype=float) for d in datas)
    args = op.prepare(*arrays, *(extra or ())) if op.prepare is not None else None
    leaves, node = student_graph(op, datas, args)
    size = np.size(node.data)
    stepper = BackwardStepper(node, grad=None if size == 1 else np.ones(np.shape(node.data)))
    step = stepper.steps[0]
    assert step.ok, step.note
    assert stepper.caption_text(1) and stepper.rule_text(1)
    wrapped = adapt(node)
    if extra is None:             # the op is recognised, its operands arranged and its rule checked
        assert wrapped.kind == name and step.rule.startswith(op.formula)
    else:                         # its parameters (a shape, an index) are not stored: stepped without a verdict
        assert "your rule for" in step.rule
    for leaf, array in zip(leaves, arrays):
        assert np.shape(stepper.grads_at(stepper.n_steps, leaf)) == np.shape(array)
        assert leaf.grad is None
