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
