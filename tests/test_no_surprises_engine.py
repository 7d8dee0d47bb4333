"""What a hostile but reasonable user meets in the engine: their arrays are never shared
with a graph or written by us, a loop in a hand-edited graph is refused in one sentence,
NumPy's functions on tensors work or say what to use instead, numpy bools and axes
behave as in NumPy, an op may be declared again by re-running its cell, and a Module is
accepted wherever a list of parameters is."""

import numpy as np
import pytest

from ad_magic import Tensor
from ad_magic.engine import OPS, elementwise
from ad_magic.nn import MLP, Linear, mse_loss
from ad_magic.optim import SGD, Adam, Momentum, check_descent, descend

# --------------------------------------------------------------------------- the user's arrays


def test_changing_a_numpy_array_after_the_graph_was_built_changes_neither_its_value_nor_its_grads():
    w = Tensor([1.0, 2.0])
    X = np.array([3.0, 4.0])
    y = (w * X).sum()
    X[:] = [100.0, 100.0]
    y.backward()
    assert y.item() == 11.0
    np.testing.assert_array_equal(w.grad, [3.0, 4.0])   # the X that made y, not the new one
    assert y.forward().item() == 11.0                   # the replay uses it too


@pytest.mark.parametrize("index", [np.array([0, 1]), np.array([True, True, False])])
def test_changing_an_index_array_after_indexing_changes_neither_value_nor_grads(index):
    w = Tensor([1.0, 2.0, 3.0])
    y = (w[index] * w[index]).sum()
    index[...] = index[::-1]
    y.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 4.0, 0.0])
    assert y.forward().item() == 5.0


def test_a_new_minibatch_in_a_constant_tensor_is_still_replayed():
    w = Tensor([1.0, 2.0])
    X = Tensor([3.0, 4.0], requires_grad=False)
    y = (w * X).sum()
    X.data = np.array([5.0, 6.0])
    y.forward().backward()
    assert y.item() == 17.0
    np.testing.assert_array_equal(w.grad, [5.0, 6.0])


def test_descend_leaves_the_array_assigned_to_data_as_it_was():
    start = np.array([3.0, -2.0])
    x = Tensor([0.0, 0.0])
    x.data = start
    descend((x * x).sum(), [x], "sgd", lr=0.1, steps=5)
    np.testing.assert_array_equal(start, [3.0, -2.0])
    assert not np.allclose(x.data, start)


# Every way a user's array enters the engine; each returns (the loss, the parameters it is
# descended over). The property: after backward and descent, the user's array holds what
# it held, and writing into it afterwards changes no value in the graph.
def _through_constructor(a):
    w = Tensor(a)
    return (w * w).sum(), [w]


def _through_data_setter(a):
    w = Tensor(np.zeros_like(a))
    w.data = a
    return (w * w).sum(), [w]


def _through_an_operand(a):
    w = Tensor(np.ones_like(a))
    return (w * a + a * w - w @ a + np.tanh(w) * 0).sum(), [w]


def _through_a_unary_function(a):
    from ad_magic.engine.ops import exp
    w = Tensor(np.ones_like(a))
    return (exp(a) * w).sum(), [w]


def _through_a_module(a):
    net = Linear(2, 1, seed=0)
    return mse_loss(net(a.reshape(1, 2)), a[:1].reshape(1, 1)), net


def _through_mse_target(a):
    w = Tensor(np.ones_like(a))
    return mse_loss(w, a), [w]


@pytest.mark.parametrize("entry", [_through_constructor, _through_data_setter, _through_an_operand,
                                   _through_a_unary_function, _through_a_module, _through_mse_target])
def test_no_entry_point_shares_or_writes_the_users_array(entry):
    a = np.array([0.5, -1.5])
    loss, params = entry(a)
    value = loss.item()
    loss.backward()
    grads = [np.array(p.grad) for p in (params.parameters() if hasattr(params, "parameters") else params)]
    a[:] = [7.0, 9.0]
    loss.backward()
    assert loss.item() == value
    for p, g in zip(params.parameters() if hasattr(params, "parameters") else params, grads):
        np.testing.assert_array_equal(p.grad, g)
    a[:] = [0.5, -1.5]
    for optimizer in ("sgd", "momentum", "adam"):
        descend(loss, params, optimizer, lr=0.1, steps=3)
        np.testing.assert_array_equal(a, [0.5, -1.5])


# --------------------------------------------------------------------------- cycles


def _looped():
    x = Tensor(2.0, name="x")
    y = x * 3.0
    y.name = "y"
    h = y * 2.0
    h.name = "h"
    c = Tensor(1.0, name="c")
    y._parents = (h, c)     # y now depends on h, which depends on y
    return x, y, h


@pytest.mark.parametrize("run", ["backward", "forward", "backward_steps", "forward_steps"])
def test_a_graph_that_loops_back_is_refused_naming_two_of_its_nodes(run):
    x, y, h = _looped()
    before = y.item()
    with pytest.raises(ValueError, match=r"^this graph has a cycle: '(h|y)' .* is a parent of '(h|y)'"):
        result = getattr(h, run)()
        list(result) if run.endswith("steps") else None
    assert y.item() == before


def test_the_stepper_and_the_drawing_refuse_a_loop_and_change_nothing():
    from ad_magic import draw_computation_graph
    from ad_magic.widgets import BackwardStepper

    x, y, h = _looped()
    for look in (lambda: BackwardStepper(h, forward=True), lambda: draw_computation_graph(h)):
        with pytest.raises(ValueError, match="cycle"):
            look()
    assert y.item() == 6.0 and h.item() == 12.0


def test_a_diamond_is_not_a_cycle():
    x = Tensor(2.0)
    a = x * 3.0
    y = a * a + a
    y.backward()
    assert x.grad == pytest.approx(3 * (2 * 6 + 1))


# --------------------------------------------------------------------------- NumPy functions


def test_np_array_of_a_tensor_is_its_values():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.array(x)
    assert a.dtype == np.float64 and a.shape == (2, 2)
    a[0, 0] = 99.0
    assert x.data[0, 0] == 1.0
    assert np.asarray(Tensor(2.5)).item() == 2.5


def test_np_dot_of_tensors_is_the_recorded_product():
    W = Tensor([[1.0, 2.0], [3.0, 4.0]])
    x = Tensor([1.0, -1.0])
    y = np.dot(W, x)
    assert isinstance(y, Tensor) and y._function == "matmul"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 6.0])


def test_np_sum_and_np_mean_of_a_tensor_are_its_own_reductions():
    t = Tensor(np.ones((2, 3)))
    assert np.sum(t)._function == "sum" and np.sum(t).item() == 6.0
    np.testing.assert_array_equal(np.mean(t, axis=0).data, [1.0, 1.0, 1.0])
    with pytest.raises(np.exceptions.AxisError):
        np.sum(t, axis=5)


def test_numpy_arithmetic_on_a_tensor_is_recorded():
    x = Tensor([1.0, 2.0])
    for y in (np.array([2.0, 2.0]) * x, np.float64(2.0) * x, np.multiply(x, 2.0), np.exp(x) * 0 + 2 * x):
        assert isinstance(y, Tensor)
        y.sum().backward()
        np.testing.assert_allclose(x.grad, [2.0, 2.0])


@pytest.mark.parametrize("call", [lambda x: np.stack([x, x]), lambda x: np.concatenate([x, x]),
                                  lambda x: np.maximum(x, 0.0), lambda x: np.add.reduce(x)])
def test_numpy_functions_without_a_recorded_equivalent_say_what_to_use(call):
    with pytest.raises(TypeError, match=r"^np\.[a-z.]+ cannot record a graph .* t\.data"):
        call(Tensor([1.0, 2.0]))


# --------------------------------------------------------------------------- bools and axes


def test_a_numpy_bool_multiplies_like_a_python_bool():
    w = Tensor([1.0, 2.0])
    np.testing.assert_array_equal((w * (np.float64(2.5) > 1)).data, (True * w).data)
    np.testing.assert_array_equal((w * np.bool_(False)).data, [0.0, 0.0])


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_an_axis_out_of_range_is_numpys_axis_error(reduce):
    t = Tensor(np.ones((1, 2, 3, 4)))
    with pytest.raises(np.exceptions.AxisError, match=f"^{reduce}: axis 5 is out of range"):
        getattr(t, reduce)(axis=5)
    with pytest.raises(IndexError):
        getattr(t, reduce)(axis=-5)


# --------------------------------------------------------------------------- declaring an op again


def test_rerunning_the_cell_that_declares_an_op_works_and_the_newest_declaration_wins():
    try:
        for _ in range(2):   # the README's cell, run twice
            cube = elementwise("cube", "out = a³", lambda a: a**3, ("3a²", lambda out, a: 3 * a * a))
        x = Tensor(2.0)
        old = cube(x)
        cube2 = elementwise("cube", "out = a³", lambda a: a**3, ("3·a²", lambda out, a: 3 * a * a))
        assert OPS["cube"] is cube2.op
        new = cube2(x)
        new.backward()
        assert x.grad == 12.0
        old.backward()          # a node recorded before keeps the op that made it
        assert x.grad == 12.0 and old._op is cube.op
    finally:
        OPS.pop("cube", None)


def test_a_built_in_op_name_is_never_replaced():
    with pytest.raises(ValueError, match="'mul' is already registered .*built in"):
        elementwise("mul", "out = a * b", np.multiply, ("b", lambda o, a, b: b), ("a", lambda o, a, b: a))
    assert (Tensor(2.0) * 3.0).item() == 6.0


# --------------------------------------------------------------------------- a Module for params


def _model_loss():
    net = MLP([1, 3, 1], seed=0)
    X = np.linspace(-1, 1, 4).reshape(-1, 1)
    return net, mse_loss(net(X), np.sin(X))


@pytest.mark.parametrize("take", [
    lambda net, loss: descend(loss, net, "adam", lr=0.01, steps=2),
    lambda net, loss: check_descent(loss, net),
    lambda net, loss: SGD(net, lr=0.1),
    lambda net, loss: Momentum(net, lr=0.1),
    lambda net, loss: Adam(net),
])
def test_a_module_is_accepted_wherever_a_parameter_list_is(take):
    net, loss = _model_loss()
    take(net, loss)   # no "'MLP' object is not iterable"


def test_every_parameter_taking_entry_point_reads_params_through_one_function(monkeypatch):
    """The contract: optimizers, descend and check_descent (and so the explorer and the
    magic, which call check_descent) read their params through nn.parameter_list."""
    from ad_magic.engine import nn, optim

    seen = []
    real = nn.parameter_list

    def spy(params, who="descend"):
        seen.append(who)
        return real(params, who)

    monkeypatch.setattr(optim, "parameter_list", spy)
    net, loss = _model_loss()
    takes = (lambda: SGD(net, 0.1), lambda: Momentum(net, 0.1), lambda: Adam(net), lambda: check_descent(loss, net))
    for take in takes:
        before = len(seen)
        take()
        assert len(seen) > before
    with pytest.raises(TypeError, match="^Adam: params must be a Tensor, a list of Tensors or an nn.Module, got str"):
        Adam("net")


def test_the_explorer_reads_params_through_the_same_function(monkeypatch):
    from ad_magic.engine import nn
    from ad_magic.widgets.explorer import DescentExplorer

    seen = []
    real = nn.parameter_list
    monkeypatch.setattr(nn, "parameter_list", lambda params, who="descend": seen.append(who) or real(params, who))
    net, loss = _model_loss()
    explorer = DescentExplorer(loss, net, steps=2)
    assert "DescentExplorer" in seen and explorer.params == net.parameters()


def test_a_module_among_tensors_stands_for_its_parameters():
    net, loss = _model_loss()
    extra = Tensor(1.0)
    assert nn_list([net, extra]) == [*net.parameters(), extra]


def nn_list(params):
    from ad_magic.nn import parameter_list
    return parameter_list(params)
