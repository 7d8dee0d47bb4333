"""forward() and forward_steps(): the mirror of backward — replay the recorded graph
from the leaves' current data, node by node, in place."""

import numpy as np
import pytest

from ad_magic import Tensor
from ad_magic.engine import ForwardStep, topological_order
from ad_magic.nn import MLP, mse_loss


def test_forward_recomputes_every_node_from_new_leaf_data():
    x = Tensor(2.0)
    h = x * x
    y = h + 4 * x + 2
    assert y.item() == 14.0
    x.data = 3.0
    assert y.forward() is y
    assert y.item() == 23.0 and h.item() == 9.0


def test_forward_then_backward_gives_the_new_point_grads():
    x = Tensor([1.0, -2.0, 0.5])
    y = ((x * x).sum() + x.tanh().sum()).log()
    x.data = np.array([0.3, 0.7, -1.1])
    y.forward().backward()
    fresh_x = Tensor(x.data.copy())
    fresh = ((fresh_x * fresh_x).sum() + fresh_x.tanh().sum()).log()
    fresh.backward()
    np.testing.assert_allclose(y.data, fresh.data)
    np.testing.assert_allclose(x.grad, fresh_x.grad)


def test_forward_replays_an_mlp_like_building_it_anew():
    rng = np.random.default_rng(0)
    model = MLP([3, 5, 1], seed=1)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    loss = mse_loss(model(Tensor(X, requires_grad=False)), Y)
    for p in model.parameters():
        p.data = p.data + 0.1
    replayed = loss.forward().item()
    rebuilt = mse_loss(model(Tensor(X, requires_grad=False)), Y).item()
    assert replayed == pytest.approx(rebuilt, rel=1e-12)


def test_forward_steps_name_each_node_and_its_new_value_in_order():
    x = Tensor(1.0, name="x")
    a = x * 5
    b = a.exp()
    x.data = 0.0
    steps = list(b.forward_steps())
    assert all(isinstance(s, ForwardStep) for s in steps)
    assert [s.node for s in steps] == [a, b]
    assert [s.index for s in steps] == [1, 2]
    assert [float(s.value) for s in steps] == [0.0, 1.0]
    assert steps[0].formula == "out = a · b" and steps[0].inputs[0] is x
    assert "mul" in repr(steps[0])


def test_forward_clears_stale_grads():
    x = Tensor(2.0)
    y = x * x
    y.backward()
    x.data = 5.0
    y.forward()
    assert x.grad is None and y.grad is None


def test_forward_follows_the_order_of_topological_order():
    x = Tensor([1.0, 2.0])
    y = ((x + 1) * (x - 1)).sum()
    order = [t for t in topological_order(y) if not t.is_leaf]
    assert [s.node for s in y.forward_steps()] == order


def test_a_leaf_that_changed_shape_is_a_clear_error_and_nothing_changes():
    x = Tensor([1.0, 2.0])
    w = Tensor([[1.0], [2.0]])
    h = x * 3
    y = (h @ w).sum()
    before = (h.data.copy(), y.item())
    x.data = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"forward: .* rebuild the graph|forward: matmul"):
        y.forward()
    np.testing.assert_array_equal(h.data, before[0])
    assert y.item() == before[1]


def test_a_leaf_that_broadcasts_to_a_new_shape_is_refused():
    x = Tensor([1.0, 2.0])
    y = x * 2
    x.data = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"mul would change shape from \(2,\) to \(3, 2\)"):
        y.forward()
    np.testing.assert_array_equal(y.data, [2.0, 4.0])


def test_forward_of_a_hand_written_op_says_it_cannot_be_replayed():
    a = Tensor([1.0, 2.0])
    out = Tensor(a.data ** 2)
    out._backward, out._function, out._parents = (lambda: None), "square", {a}
    with pytest.raises(ValueError, match="'square' was made by a hand-written operation"):
        (out * 2).forward()


def test_forward_of_a_deep_chain_does_not_recurse():
    x = Tensor(1.0)
    y = x
    for _ in range(20_000):
        y = y * 1.0 + 0.0
    x.data = 2.0
    assert y.forward().item() == 2.0


def test_forward_keeps_float32():
    x = Tensor(np.ones(3, dtype=np.float32))
    y = (x * 2.5).sum()
    x.data = np.full(3, 2.0, dtype=np.float32)
    assert y.forward().dtype == np.float32 and y.item() == 15.0


def test_forward_of_a_node_with_parents_but_no_rule_is_refused():
    a = Tensor([1.0, 2.0])
    out = Tensor(a.data ** 2)
    out._function, out._parents = "square", {a}  # no _backward: nothing says how to recompute it
    with pytest.raises(ValueError, match="'square' was made by a hand-written operation"):
        (out * 2).forward()


# ------------------------------------------------------------------ constants change too

def test_replay_uses_a_constants_new_data_as_a_rebuild_does():
    x = Tensor(2.0)
    c = Tensor(3.0, requires_grad=False)
    y = x * (c * 0.5) + c            # c * 0.5 needs no gradient, but depends on c
    assert y.item() == 6.0
    c.data = 1.0
    y.forward().backward()
    rebuilt_x = Tensor(2.0)
    rebuilt = rebuilt_x * (Tensor(1.0, requires_grad=False) * 0.5) + Tensor(1.0, requires_grad=False)
    rebuilt.backward()
    assert y.item() == rebuilt.item() == 2.0
    assert float(x.grad) == float(rebuilt_x.grad) == 0.5
    assert c.grad is None                       # a constant still gets no gradient


def test_a_new_mini_batch_is_replayed_through_the_constant_part_of_the_graph():
    rng = np.random.default_rng(3)
    X = Tensor(rng.standard_normal((6, 2)), requires_grad=False)
    Y = Tensor(rng.standard_normal((6, 1)), requires_grad=False)
    mean, std = X.mean(axis=0), (((X - X.mean(axis=0)) ** 2).mean(axis=0)) ** 0.5
    model = MLP([2, 4, 1], seed=0)
    loss = mse_loss(model((X - mean) / std), Y)    # standardised with the batch's own statistics
    X.data, Y.data = rng.standard_normal((6, 2)) * 5 + 1, rng.standard_normal((6, 1))
    loss.forward().backward()
    replayed = [p.grad.copy() for p in model.parameters()]
    X2, Y2 = Tensor(X.data, requires_grad=False), Tensor(Y.data, requires_grad=False)
    mean2, std2 = X2.mean(axis=0), (((X2 - X2.mean(axis=0)) ** 2).mean(axis=0)) ** 0.5
    rebuilt = mse_loss(model((X2 - mean2) / std2), Y2)
    rebuilt.backward()
    assert loss.item() == pytest.approx(rebuilt.item(), rel=1e-12)
    for g, p in zip(replayed, model.parameters()):
        np.testing.assert_allclose(g, p.grad, rtol=1e-12)


def test_a_constant_that_changed_shape_is_a_clear_error_and_nothing_changes():
    x = Tensor([1.0, 2.0])
    c = Tensor([3.0, 4.0], requires_grad=False)
    y = (x * (c + 1)).sum()
    c.data = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"forward: add would change shape from \(2,\) to \(3,\)"):
        y.forward()
    assert y.item() == 14.0


def test_a_parameter_that_changed_shape_is_a_clear_error_and_nothing_changes():
    x = Tensor(3.0)
    loss = (x - 1) ** 2
    x.data = [5.0, 6.0]
    with pytest.raises(ValueError, match=r"forward: sub would change shape from \(\) to \(2,\).*rebuild the graph"):
        loss.forward()
    assert loss.item() == 4.0


def test_no_grad_still_records_nothing():
    from ad_magic import no_grad
    c = Tensor(2.0, requires_grad=False)
    x = Tensor(1.0)
    with no_grad():
        d = x * c
    assert d.is_leaf and not d.requires_grad and d.parents == ()


def test_forward_steps_include_the_constant_nodes_in_order():
    x = Tensor(1.0, name="x")
    c = Tensor(2.0, requires_grad=False, name="c")
    k = c * c
    y = x * k
    c.data = 3.0
    steps = list(y.forward_steps())
    assert [s.node for s in steps] == [k, y] and [float(s.value) for s in steps] == [9.0, 9.0]
    assert not k.requires_grad and k.parents == (c, c)
