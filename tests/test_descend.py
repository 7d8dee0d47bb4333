"""descend(): the one headless gradient-descent loop (the explorer and the magic use it)."""

import math

import numpy as np
import pytest

from ad_magic import Tensor
from ad_magic.optim import SGD, Adam, DescentHistory, Momentum, descend


def quadratic():
    x, y = Tensor(3.0, name="x"), Tensor(-2.0, name="y")
    return x, y, (x - 1) ** 2 + 10 * (y + 0.5) ** 2


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_descend_on_a_recorded_graph_reaches_the_minimum(optimizer):
    x, y, loss = quadratic()
    history = descend(loss, [x, y], optimizer, lr=0.02 if optimizer != "adam" else 0.1, steps=400)
    assert isinstance(history, DescentHistory) and history.stopped is None
    assert len(history) == 401 == len(history.params) == len(history.grads)
    assert history.losses[-1] < 1e-6 < history.losses[0]
    assert x.item() == pytest.approx(1.0, abs=1e-3) and y.item() == pytest.approx(-0.5, abs=1e-3)
    np.testing.assert_allclose([float(v) for v in history.params[-1]], [x.item(), y.item()])


def test_replay_matches_rebuilding_the_loss_each_iteration():
    x, y, loss = quadratic()
    replayed = descend(loss, [x, y], "momentum", lr=0.01, steps=30)
    a, b = Tensor(3.0), Tensor(-2.0)
    rebuilt = descend(lambda: (a - 1) ** 2 + 10 * (b + 0.5) ** 2, [a, b], "momentum", lr=0.01, steps=30)
    np.testing.assert_allclose(replayed.losses, rebuilt.losses, rtol=1e-12)


def test_history_records_the_values_before_each_update_and_the_grads_there():
    x = Tensor(2.0)
    history = descend(x * x, x, "sgd", lr=0.25, steps=3)
    assert [float(v[0]) for v in history.params] == [2.0, 1.0, 0.5, 0.25]
    assert [float(g[0]) for g in history.grads] == [4.0, 2.0, 1.0, 0.5]
    assert history[1].iteration == 1 and history[1].loss == 1.0
    assert [r.loss for r in history] == history.losses


def test_callback_sees_each_iteration_with_grads_set():
    x = Tensor(1.0)
    loss = (x - 3) ** 2
    seen = []
    descend(loss, x, lr=0.1, steps=4, callback=lambda k, t: seen.append((k, t is loss, float(x.grad))))
    assert [k for k, *_ in seen] == [0, 1, 2, 3, 4]
    assert all(same for _, same, _ in seen)
    assert seen[0][2] == -4.0


def test_a_callable_loss_may_change_its_graph():
    x = Tensor(3.0)

    def huber():
        return x * x if abs(x.item()) < 1 else 2 * x - 1 if x.item() > 0 else -2 * x - 1

    history = descend(huber, x, lr=0.3, steps=20)
    assert history.losses[-1] < 0.01


def test_diverging_run_stops_with_a_hint_and_finite_params():
    x = Tensor(1.0)
    history = descend(x * x, x, "sgd", lr=1.5, steps=5000)
    assert history.stopped_at is not None
    assert "try a smaller learning rate, e.g. lr=0.15" in history.stopped
    assert math.isfinite(x.item())


def test_optimizer_options_and_instances():
    x = Tensor(1.0)
    h = descend(x * x, x, "momentum", lr=0.1, steps=3, momentum=0.5)
    assert isinstance(h.optimizer, Momentum) and h.optimizer.momentum == 0.5
    z = Tensor(1.0)
    opt = Adam([z], lr=0.05)
    assert descend(z * z, z, opt, steps=2).optimizer is opt
    assert isinstance(descend(z * z, z, SGD, lr=0.1, steps=1).optimizer, SGD)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"optimizer": "rmsprop"}, ValueError, "unknown optimizer 'rmsprop'; choose one of sgd, momentum, adam"),
        ({"lr": 0}, ValueError, "lr must be a positive finite number, got 0"),
        ({"lr": -1.0}, ValueError, "lr must be a positive finite number"),
        ({"lr": float("inf")}, ValueError, "lr must be a positive finite number"),
        ({"steps": 0}, ValueError, "steps must be a whole number of at least 1"),
        ({"steps": 2.5}, ValueError, "steps must be a whole number"),
        ({"momentum": 0.5}, TypeError, "SGD does not take these options"),
    ],
)
def test_bad_options_are_one_sentence_and_change_nothing(kwargs, error, message):
    x = Tensor(2.0)
    loss = x * x
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        descend(loss, x, **kwargs)
    assert x.item() == 2.0 and loss.item() == 4.0


def test_bad_losses_and_params():
    x, other = Tensor(2.0), Tensor(1.0)
    with pytest.raises(ValueError, match=r"params\[0\] is not in the loss's graph"):
        descend(x * x, other)
    with pytest.raises(ValueError, match=r"single value .* got shape \(2,\)"):
        descend(Tensor([1.0, 2.0]) * x, x)
    with pytest.raises(ValueError, match="must be a leaf Tensor"):
        descend(x * x, x * 2)
    with pytest.raises(ValueError, match="params is empty"):
        descend(x * x, [])
    with pytest.raises(TypeError, match="loss must be a scalar Tensor or a function"):
        descend(3.0, x)
    with pytest.raises(TypeError, match="must be a Tensor, got float"):
        descend(lambda: 3.0, x)
    assert x.item() == 2.0


def test_adam_counts_steps_per_parameter():
    """A parameter first updated at step 2 gets the bias correction of its own first step."""
    a, b = Tensor(1.0), Tensor(1.0)
    opt = Adam([a, b], lr=0.1)
    a.grad = 1.0
    opt.step()
    b.grad = 1.0
    opt.step()
    # b's first update: m̂ = g, v̂ = g², so the step is lr · g/(|g| + eps) ≈ lr
    assert b.item() == pytest.approx(0.9, abs=1e-6)
    assert opt.t == [2, 1]


def test_a_loss_that_is_not_finite_at_the_start_does_not_blame_the_learning_rate():
    x = Tensor(-1.0)
    with np.errstate(all="ignore"):
        history = descend(x.log(), x, lr=0.1, steps=5)
    assert history.stopped_at == 0
    assert "starting point" in history.stopped and "learning rate" not in history.stopped


# ------------------------------------------------------------------ the data the user set

def test_descent_starts_from_the_data_the_user_set():
    x = Tensor(3.0)
    loss = (x - 1) ** 2
    x.data = 5.0                                   # after the loss was built
    history = descend(loss, [x], lr=0.1, steps=2)
    assert history.losses[0] == 16.0 and float(history.grads[0][0]) == 8.0
    assert float(history.params[0][0]) == 5.0
    assert history.losses == pytest.approx([16.0, 10.24, 6.5536])


def test_descent_starts_from_a_constants_new_data():
    x = Tensor(0.0)
    target = Tensor(1.0, requires_grad=False)
    loss = (x - target * 2) ** 2
    target.data = 3.0                              # the data moved: the minimum is now at 6
    history = descend(loss, [x], lr=0.25, steps=40)
    assert history.losses[0] == 36.0 and x.item() == pytest.approx(6.0)


def test_a_second_descent_continues_from_where_the_first_left_the_parameters():
    x = Tensor(3.0)
    loss = (x - 1) ** 2
    first = descend(loss, [x], lr=0.1, steps=5)
    second = descend(loss, [x], lr=0.1, steps=5)
    assert second.losses[0] == pytest.approx(first.losses[-1], rel=1e-15)


def test_a_parameter_listed_twice_is_refused_before_anything_changes():
    x = Tensor(3.0, name="x")
    y = Tensor(1.0, name="y")
    loss = (x - 1) ** 2 + y * y
    with pytest.raises(ValueError, match=r"^descend: the parameter 'x' is listed twice \(params\[0\] and "
                                         r"params\[2\]\).*list each parameter once$"):
        descend(loss, [x, y, x], lr=0.1, steps=3)
    assert x.item() == 3.0 and y.item() == 1.0 and x.grad is None
    with pytest.raises(ValueError, match="listed twice"):
        SGD([x, x], lr=0.1)


def test_an_optimizer_made_for_other_tensors_is_refused_rather_than_leaving_the_loss_flat():
    x, other = Tensor(3.0, name="x"), Tensor(0.0, name="other")
    loss = (x - 1) ** 2
    with pytest.raises(ValueError, match=r"^descend: the SGD given does not update params\[0\] \('x'\)"):
        descend(loss, [x], SGD([other], lr=0.1), steps=3)
    with pytest.raises(ValueError, match="also updates 'other', which is not in params"):
        descend(loss, [x], SGD([x, other], lr=0.1), steps=3)
    assert x.item() == 3.0 and other.item() == 0.0
    opt = SGD([x], lr=0.25)                          # the right tensors: accepted, and it moves
    assert descend(loss, [x], opt, steps=1).losses == [4.0, 1.0]


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), True, "0.1", None])
def test_a_learning_rate_that_is_not_a_positive_number_is_refused(lr):
    x = Tensor(2.0)
    loss = x * x
    with pytest.raises(ValueError, match=r"^descend: lr must be a positive finite number, got"):
        descend(loss, x, lr=lr)
    assert x.item() == 2.0


def test_a_misspelt_optimizer_name_suggests_the_right_one():
    x = Tensor(2.0)
    with pytest.raises(ValueError, match=r"unknown optimizer 'adma'; choose one of sgd, momentum, adam, newton "
                                         r"\(did you mean 'adam'\?\)"):
        descend(x * x, x, "adma")


def test_a_loss_that_is_not_a_single_value_or_needs_no_gradient_is_refused():
    x = Tensor([1.0, 2.0])
    with pytest.raises(ValueError, match=r"single value .* shape \(2,\)"):
        descend(x * x, x)
    c = Tensor(2.0, requires_grad=False)
    with pytest.raises(ValueError, match="does not depend on any tensor that needs a gradient"):
        descend(c * c, x)
    with pytest.raises(ValueError, match="does not depend on any tensor that needs a gradient"):
        descend(lambda: c * c, x)
    np.testing.assert_array_equal(x.data, [1.0, 2.0])


def test_a_parameter_that_is_a_constant_or_a_result_is_refused():
    x = Tensor(2.0)
    c = Tensor(1.0, requires_grad=False)
    h = x * 3
    for bad in (c, h):
        with pytest.raises(ValueError, match=r"params\[0\] must be a leaf Tensor that requires a gradient"):
            descend(h * c, [bad])
    assert x.item() == 2.0


def test_a_parameter_whose_shape_changed_is_refused_and_nothing_changes():
    x = Tensor(3.0)
    loss = (x - 1) ** 2
    x.data = [5.0, 6.0]
    with pytest.raises(ValueError, match=r"change shape from \(\) to \(2,\)"):
        descend(loss, [x], lr=0.1, steps=3)
    np.testing.assert_array_equal(x.data, [5.0, 6.0])
    assert loss.item() == 4.0


def test_a_graph_with_a_hand_written_rule_is_refused_before_anything_changes():
    x = Tensor(2.0)
    out = Tensor(x.data ** 2)
    out._backward, out._function, out._parents = (lambda: None), "square", {x}
    loss = out * 2 + x
    with pytest.raises(ValueError, match="cannot be replayed .*'square'.* pass a function that builds the loss"):
        descend(loss, [x], steps=3)
    assert x.item() == 2.0 and loss.item() == 10.0


def test_a_loss_function_must_use_every_parameter_at_the_first_iteration():
    x, unused = Tensor(2.0, name="x"), Tensor(5.0, name="unused")
    with pytest.raises(ValueError, match=r"params\[1\] is not in the graph of the loss the function returned"):
        descend(lambda: x * x, [x, unused], steps=3)
    assert x.item() == 2.0 and unused.item() == 5.0 and x.grad is None


@pytest.mark.parametrize("as_function", [False, True])
def test_after_a_stopped_run_each_parameters_data_and_grad_are_of_the_same_iteration(as_function):
    x = Tensor(1.0)
    history = descend((lambda: x * x) if as_function else x * x, x, "sgd", lr=1e308, steps=10)
    assert history.stopped is not None and "non-finite" in history.stopped
    assert x.item() == float(history.params[-1][0]) == 1.0
    assert float(x.grad) == float(history.grads[-1][0]) == 2.0


@pytest.mark.parametrize("as_function", [False, True])
def test_after_a_run_each_parameters_data_and_grad_are_of_the_last_iteration(as_function):
    x = Tensor(3.0)
    loss = (x - 1) ** 2
    history = descend((lambda: (x - 1) ** 2) if as_function else loss, x, "momentum", lr=0.05, steps=7)
    assert x.item() == float(history.params[-1][0])
    assert float(x.grad) == float(history.grads[-1][0]) == pytest.approx(2 * (x.item() - 1))
    if not as_function:
        assert loss.item() == history.losses[-1]
