"""What a race (DescentExplorer.compare) starts from and leaves behind: every optimizer
from the parameters' data as it is now, and afterwards one consistent state — each
parameter's data and grad those of the first optimizer's last iteration."""
from __future__ import annotations

import numpy as np
import pytest

from ad_magic import Tensor
from ad_magic.landscapes import ill_conditioned, landscape_of, rosenbrock
from ad_magic.optim import SGD, descend
from ad_magic.widgets import DescentExplorer

RACE = ["sgd", "momentum", "adam"]


def bowl():
    a, b = Tensor(-1.5, name="a"), Tensor(1.0, name="b")
    return a, b, (a - 1.0) ** 2 + 10.0 * (b + 0.5) ** 2


def bowl_function(a, b):
    return lambda: (a - 1.0) ** 2 + 10.0 * (b + 0.5) ** 2


def state(*params):
    return [(float(p.data), None if p.grad is None else float(p.grad)) for p in params]


def last_state(history):
    return [(float(v), float(g)) for v, g in zip(history.params[-1], history.grads[-1])]


@pytest.mark.parametrize("as_function", [False, True])
def test_every_optimizer_of_a_race_starts_from_the_data_the_user_set(as_function):
    a, b, loss = bowl()
    a.data, b.data = 2.0, 0.0                       # after the loss was built
    e = DescentExplorer.compare(bowl_function(a, b) if as_function else loss, [a, b], optimizers=RACE,
                                lr=0.01, steps=5, controls=False)
    expected = (2.0 - 1.0) ** 2 + 10.0 * 0.5 ** 2
    assert [h.losses[0] for h in e.histories.values()] == [expected] * 3
    for h in e.histories.values():
        assert [float(v) for v in h.params[0]] == [2.0, 0.0]
        assert [float(g) for g in h.grads[0]] == [2.0, 10.0]


@pytest.mark.parametrize("as_function", [False, True])
def test_after_a_race_each_parameters_data_and_grad_are_the_first_optimizers_last(as_function):
    a, b, loss = bowl()
    e = DescentExplorer.compare(bowl_function(a, b) if as_function else loss, [a, b],
                                optimizers=["momentum", "sgd", "adam"], lr=0.02, steps=7, controls=False)
    first = e.histories["momentum"]
    assert state(a, b) == last_state(first)
    assert last_state(first) != last_state(e.histories["adam"])     # (the last run ended elsewhere)
    if not as_function:
        assert loss.item() == first.losses[-1]


@pytest.mark.parametrize("as_function", [False, True])
def test_a_rerun_of_another_optimizer_leaves_the_first_optimizers_last_state(as_function):
    a, b, loss = bowl()
    e = DescentExplorer.compare(bowl_function(a, b) if as_function else loss, [a, b], optimizers=["sgd", "adam"],
                                lr=0.02, steps=6)
    e.hyperparameters["adam"]["lr"].value = 0.2       # re-runs adam only
    assert state(a, b) == last_state(e.histories["sgd"])
    e.start_inputs[0].value = 0.5                     # re-runs both from a new start
    assert e.histories["adam"].params[0][0] == 0.5
    assert state(a, b) == last_state(e.histories["sgd"])


def test_each_run_of_a_race_is_the_run_descend_gives_alone_from_the_changed_data():
    a, b, loss = bowl()
    a.data = 0.0
    e = DescentExplorer.compare(loss, [a, b], optimizers=RACE, lr=0.03, steps=10, controls=False)
    for name, history in e.histories.items():
        x, y = Tensor(0.0), Tensor(1.0)
        alone = descend((x - 1.0) ** 2 + 10.0 * (y + 0.5) ** 2, [x, y], name, lr=0.03, steps=10)
        np.testing.assert_allclose(history.losses, alone.losses, rtol=1e-12)


def test_a_bad_learning_rate_for_the_last_optimizer_changes_nothing():
    a, b, loss = bowl()
    a.grad = 7.0
    with pytest.raises(ValueError, match="lr must be a positive finite number, got -1"):
        DescentExplorer.compare(loss, [a, b], optimizers=["sgd", "adam"], lr={"sgd": 0.1, "adam": -1}, steps=5)
    assert state(a, b) == [(-1.5, 7.0), (1.0, None)]


def test_a_race_refuses_a_parameter_listed_twice_and_an_optimizer_made_for_other_tensors():
    a, b, loss = bowl()
    with pytest.raises(ValueError, match="the parameter 'a' is listed twice"):
        DescentExplorer.compare(loss, [a, b, a], optimizers=["sgd", "adam"], lr=0.1, steps=5)
    other = Tensor(0.0)
    with pytest.raises(ValueError, match=r"the SGD given does not update params\[0\] \('a'\)"):
        DescentExplorer.compare(loss, [a, b], optimizers=[SGD([other], lr=0.1), "adam"], steps=5)
    assert state(a, b) == [(-1.5, None), (1.0, None)]


def test_a_run_that_raises_puts_the_parameters_back_as_they_were():
    a, b = Tensor(-1.5, name="a"), Tensor(1.0, name="b")
    calls = []

    def loss_fn():
        calls.append(1)
        if len(calls) > 8:                             # in the second optimizer's run
            raise RuntimeError("the data went away")
        return (a - 1.0) ** 2 + 10.0 * (b + 0.5) ** 2
    b.grad = 3.0
    with pytest.raises(RuntimeError, match="the data went away"):
        DescentExplorer.compare(loss_fn, [a, b], optimizers=["sgd", "adam"], lr=0.01, steps=5)
    assert state(a, b) == [(-1.5, None), (1.0, 3.0)]


def test_landscape_of_an_ill_conditioned_quadratic_knows_its_condition_number():
    x, y = Tensor(-4.0), Tensor(1.0)
    for condition in (50, 2.5):
        landscape = landscape_of(ill_conditioned(x, y, condition=condition))
        assert landscape.parameters == {"condition": float(condition)}
        assert landscape(0.0, 1.0) == condition / 2
    assert landscape_of(ill_conditioned(condition=50)(x, y)).parameters["condition"] == 50.0
    assert landscape_of(ill_conditioned(x, y)).parameters["condition"] == 10.0


def test_a_loss_merely_named_after_a_landscape_is_not_that_landscape():
    x, y = Tensor(1.0), Tensor(2.0)
    mine = x * y
    mine.name = "rosenbrock"
    assert landscape_of(mine) is None
    assert landscape_of(rosenbrock(x, y)) is rosenbrock
