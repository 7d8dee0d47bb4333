"""The engine's behaviour: the practical's parts A–D, backward semantics, bad input."""

import gc

import numpy as np
import pytest

from ad_magic import Tensor, add, gradcheck, mul, no_grad, topological_order, trace_graph
from ad_magic.engine import BackwardStep

# ---------------------------------------------------------------- Part A: the graph

def test_tensor_holds_float_array_and_graph_fields():
    t = Tensor([[1, 2], [3, 4]])
    assert isinstance(t.data, np.ndarray) and t.data.dtype == np.float64
    assert t.grad is None and t._parents == set() and t._function is None
    s = Tensor(3)
    assert isinstance(s.data, np.ndarray) and s.data.shape == () and float(s.data) == 3.0


def test_add_and_mul_record_function_and_parents():
    a, b = Tensor(2.0), Tensor(3.0)
    s, p = add(a, b), mul(a, b)
    assert s._function == "add" and s._parents == {a, b} and float(s.data) == 5.0
    assert p._function == "mul" and p._parents == {a, b} and float(p.data) == 6.0
    assert (a + b)._function == "add" and (a * b)._function == "mul"


def test_tensor_input_is_copied():
    array = np.array([1.0, 2.0])
    t = Tensor(array)
    array[0] = 99.0
    assert t.data[0] == 1.0


def test_trace_graph_of_the_practical_quadratic():
    x = Tensor(3.0, name="x")
    y = x * x + 4 * x + 2
    nodes, edges = trace_graph(y)
    assert x in nodes and y in nodes
    assert all(isinstance(n, Tensor) for n in nodes)
    for parent, child in edges:
        assert parent in child._parents
    # every (parent, child) pair is listed
    assert {(p, c) for c in nodes for p in c._parents} == edges
    assert float(y.data) == 9 + 12 + 2
    functions = sorted(n._function for n in nodes if n._function)
    assert functions == ["add", "add", "mul", "mul"]


def test_repr_is_plain_text_and_readable():
    x = Tensor(2.0, name="x")
    y = x * x
    y.backward()
    assert repr(y) == "Tensor(4.0, fn='mul', grad=1.0)"
    assert repr(x) == "Tensor(2.0, name='x', grad=4.0)"
    big = repr(Tensor(np.arange(1000.0)))
    assert "shape=(1000,)" in big and len(big) < 200


# ------------------------------------------------------------ Part B: backward

def test_practical_check_derivative_is_9_at_2():
    x = Tensor(2.0)
    y = x * x + 5 * x - 1
    y.backward()
    assert float(x.grad) == 9.0
    assert float(y.grad) == 1.0


def test_backward_is_idempotent():
    x = Tensor(2.0)
    y = x * x * x + x
    y.backward()
    first = float(x.grad)
    y.backward()
    assert float(x.grad) == first == 13.0


def test_grads_of_intermediate_nodes_are_kept():
    x = Tensor(3.0)
    u = x * 2
    y = u * u
    y.backward()
    assert float(u.grad) == 12.0 and float(x.grad) == 24.0


def test_reused_node_accumulates_over_all_uses():
    x = Tensor(1.5)
    h = x.tanh()
    y = h * h + h * 3 + h.exp()
    y.backward()
    t = np.tanh(1.5)
    expected_h = 2 * t + 3 + np.exp(t)
    assert np.isclose(float(h.grad), expected_h)
    assert np.isclose(float(x.grad), expected_h * (1 - t * t))


def test_node_reused_many_times():
    x = Tensor(1.0)
    total = x
    for _ in range(999):
        total = total + x
    total.backward()
    assert float(x.grad) == 1000.0


def test_backward_steps_run_every_rule_once_in_order():
    x = Tensor(2.0, name="x")
    y = x * x + 5 * x - 1
    steps = list(y.backward_steps())
    assert all(isinstance(s, BackwardStep) for s in steps)
    assert [s.index for s in steps] == list(range(1, len(steps) + 1))
    assert steps[0].node is y
    ran = [s.node for s in steps]
    assert len(set(map(id, ran))) == len(ran) == 4  # sub, add, mul, mul
    # children before parents
    position = {id(n): i for i, n in enumerate(ran)}
    for node in ran:
        for parent in node._parents:
            if id(parent) in position:
                assert position[id(parent)] > position[id(node)]
    assert float(x.grad) == 9.0


def test_backward_steps_describe_the_chain_rule():
    a, b = Tensor(2.0), Tensor(3.0)
    out = a * b
    (step,) = list(out.backward_steps())
    assert step.function == "mul" and step.parents == (a, b)
    ta, tb = step.terms
    assert ta.parent is a and ta.factor_text == "b" and float(ta.factor) == 3.0
    assert tb.parent is b and tb.factor_text == "a" and float(tb.factor) == 2.0
    assert "∂L/∂a += ∂L/∂out · b" in step.rule


def test_grads_not_reached_yet_are_none_while_stepping():
    x = Tensor(2.0)
    u = x * 3
    y = u + 1
    y.backward()
    steps = y.backward_steps()  # grads are cleared when the first step is asked for
    first = next(steps)
    assert first.node is y and float(u.grad) == 1.0 and x.grad is None
    second = next(steps)
    assert second.node is u and float(x.grad) == 3.0


def test_backward_on_a_leaf_sets_grad_one():
    x = Tensor(5.0)
    x.backward()
    assert float(x.grad) == 1.0


def test_deep_chain_of_a_million_nodes_does_not_recurse():
    x = Tensor(1.0)
    y = x
    for _ in range(500_000):
        y = y * 1.0000001 + 0.0
    y.backward()  # 10⁶ operations
    assert np.isclose(float(x.grad), 1.0000001 ** 500_000)
    assert len(topological_order(y, only_grad=True)) == 1_000_001


def test_graph_is_freed_without_the_cyclic_collector():
    gc.collect()
    gc.disable()
    try:
        x = Tensor(np.ones(3))
        y = ((x * x).tanh() + x).sum()
        steps = list(y.backward_steps())
        del y, steps
        assert gc.collect() == 0  # nothing was left for the cycle collector: no cycles
    finally:
        gc.enable()


def test_manual_backward_call_like_the_practical():
    a, b = Tensor(2.0), Tensor(3.0)
    out = a * b
    out.grad = 1.0
    out._backward()
    assert float(a.grad) == 3.0 and float(b.grad) == 2.0


def test_custom_operation_with_user_backward():
    x = Tensor(2.0)
    out = Tensor(np.sin(2.0))
    out._parents = {x}
    out._function = "sin"

    def _backward():
        x.grad += out.grad * np.cos(x.data)
    out._backward = _backward
    (out * 3).backward()
    assert np.isclose(float(x.grad), 3 * np.cos(2.0))


def test_no_grad_records_no_graph():
    x = Tensor(2.0)
    with no_grad():
        y = x * x + 1
    assert y._parents == set() and y._function is None and not y.requires_grad
    z = x * x
    assert z._parents == {x}
    with pytest.raises(ValueError, match="does not depend on any tensor that needs a gradient"):
        y.backward()


def test_constants_get_no_gradient_but_appear_in_graph():
    x = Tensor(2.0)
    y = 4 * x
    y.backward()
    (const,) = [p for p in y._parents if p is not x]
    assert float(const.data) == 4.0 and const.grad is None and not const.requires_grad


def test_reflected_operators_with_numbers_and_arrays():
    x = Tensor([1.0, 2.0])
    np.testing.assert_allclose((2 * x).data, [2, 4])
    np.testing.assert_allclose((x - 1).data, [0, 1])
    np.testing.assert_allclose((1 - x).data, [0, -1])
    np.testing.assert_allclose((1 / x).data, [1, 0.5])
    np.testing.assert_allclose((2 ** x).data, [2, 4])
    r = np.array([10.0, 20.0]) * x
    assert isinstance(r, Tensor)
    np.testing.assert_allclose(r.data, [10, 40])
    np.testing.assert_allclose((np.ones((2, 2)) @ x).data, [3, 3])


# ------------------------------------------------- Part C: gradient descent

def test_gradient_descent_minimises_a_function():
    x, y = Tensor(3.0), Tensor(-2.0)
    for _ in range(300):
        loss = (x - 1) ** 2 + 2 * (y + 0.5) ** 2 + (x * y).tanh()
        loss.backward()
        x.data -= 0.05 * x.grad
        y.data -= 0.05 * y.grad
    # gradient is ~0 at the end
    loss = (x - 1) ** 2 + 2 * (y + 0.5) ** 2 + (x * y).tanh()
    loss.backward()
    assert abs(float(x.grad)) < 1e-6 and abs(float(y.grad)) < 1e-6


# ---------------------------------------------------------------- gradcheck

def test_gradcheck_passes_for_correct_ops_and_reports_per_input():
    a = Tensor(np.random.default_rng(0).standard_normal((3, 2)), name="a")
    b = Tensor(np.random.default_rng(1).standard_normal(2), name="b")
    report = gradcheck(lambda a, b: (a * b).tanh().sum() + (a @ b).exp().mean(), a, b)
    assert report and report.passed
    assert set(report.max_rel_error) == {"a", "b"}
    assert max(report.max_rel_error.values()) < 1e-6
    assert "passed" in repr(report)


def test_gradcheck_catches_a_wrong_derivative():
    def bad_square(t):
        out = Tensor(t.data ** 2)
        out._parents = {t}
        out._function = "bad_square"

        def _backward():
            t.grad += out.grad * 3 * t.data  # wrong: should be 2·t
        out._backward = _backward
        return out

    x = Tensor([1.0, 2.0])
    report = gradcheck(lambda x: bad_square(x).sum(), x)
    assert not report
    assert report.max_rel_error["input 0"] > 0.1
    assert "MISMATCH" in repr(report)


def test_gradcheck_non_scalar_output_and_float32_input():
    x = Tensor(np.linspace(-1, 1, 5).astype(np.float32))
    report = gradcheck(lambda x: x.sigmoid() * 2, x, atol=1e-4, rtol=1e-3)
    assert report
    assert x.data.dtype == np.float32  # restored


# ----------------------------------------------------------------- bad input

def test_incompatible_shapes_name_the_op_and_both_shapes():
    with pytest.raises(ValueError, match=r"add: cannot broadcast shapes \(2, 3\) and \(4,\)"):
        Tensor(np.ones((2, 3))) + Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"mul: cannot broadcast shapes \(3,\) and \(2,\)"):
        Tensor(np.ones(3)) * np.ones(2)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(2, 3\) do not match"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="matmul: both operands need at least one dimension"):
        Tensor(2.0) @ Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(6,\) into shape \(4,\)"):
        Tensor(np.ones(6)).reshape(4)
    with pytest.raises(ValueError, match="sum: axis 2 is out of range"):
        Tensor(np.ones((2, 2))).sum(axis=2)


def test_non_numeric_data_is_a_type_error():
    with pytest.raises(TypeError, match="string"):
        Tensor("abc")
    with pytest.raises(TypeError, match="Tensor"):
        Tensor([object(), 1])
    with pytest.raises(TypeError, match="complex"):
        Tensor(1 + 2j)
    with pytest.raises(TypeError, match="mul: unsupported operand of type str"):
        mul(Tensor(1.0), "x")
    with pytest.raises(TypeError):
        Tensor(1.0) + "x"


def test_backward_on_non_scalar_needs_grad():
    y = Tensor(np.ones(3)) * 2
    with pytest.raises(ValueError, match=r"backward: the output has shape \(3,\), not a single value"):
        y.backward()
    with pytest.raises(ValueError, match=r"backward: grad has shape \(2,\) but the output has shape \(3,\)"):
        y.backward(np.ones(2))
    y.backward(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(y._prev[0].grad, [2.0, 4.0, 6.0])


def test_grad_setter_checks_shape():
    x = Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"Tensor.grad: shape \(2,\) does not match the tensor's shape \(3,\)"):
        x.grad = np.ones(2)


def test_repr_never_raises():
    t = Tensor(1.0)
    t._data = object()  # corrupt it on purpose
    assert repr(t) == "<Tensor (repr failed: TypeError)>"


def test_grads_held_by_the_caller_are_never_modified_in_place():
    # A later contribution is added in place only when nobody else holds the array.
    x = Tensor(np.ones(3))
    y = (x * 2 + x * 3 + x * 4).sum()
    seen = []
    for _ in y.backward_steps():
        if x.grad is not None:
            seen.append(x.grad)  # the very array object, not a copy
    values = sorted({float(g[0]) for g in seen})
    assert values == [4.0, 7.0, 9.0]  # 4, then 4 + 3, then 4 + 3 + 2: each held array kept its value
    np.testing.assert_array_equal(x.grad, [9.0, 9.0, 9.0])


def test_a_grad_shared_by_two_nodes_is_not_changed_through_the_other():
    a = Tensor(np.ones(2))
    u = a * 2
    v = u + 0  # add passes its grad through: v's grad array is also u's first contribution
    z = (v * 1 + u * 5).sum()
    z.backward()
    np.testing.assert_array_equal(v.grad, [1.0, 1.0])
    np.testing.assert_array_equal(u.grad, [6.0, 6.0])
    np.testing.assert_array_equal(a.grad, [12.0, 12.0])


def test_other_mistakes_get_one_clear_sentence():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError,
                       match=r"transpose: axes \(0, 0\) are not a permutation of the 2 axes of shape \(2, 3\)"):
        x.transpose(0, 0)
    with pytest.raises(IndexError, match=r"getitem: invalid index 5 for a tensor of shape \(2, 3\)"):
        x[5]
    with pytest.raises(TypeError, match="Tensor: name must be a string, got int"):
        Tensor(1.0, name=3)
    with pytest.raises(ValueError,
                       match=r"item: only a one-element tensor has a single value, this one has shape \(2, 3\)"):
        x.item()
    with pytest.raises(TypeError, match="gradcheck: the first argument must be a function, got int"):
        gradcheck(3, x)
    with pytest.raises(TypeError, match="gradcheck: input 0 is an ndarray, not a Tensor"):
        gradcheck(lambda a: a, np.ones(2))
    with pytest.raises(ValueError, match="gradcheck: input 0 has requires_grad=False"):
        gradcheck(lambda a: a, Tensor(1.0, requires_grad=False))
    with pytest.raises(TypeError, match="gradcheck: the function must return a Tensor, got float"):
        gradcheck(lambda a: 1.0, Tensor(1.0))
