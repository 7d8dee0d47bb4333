"""Part D's networks and the optimizers."""

import numpy as np
import pytest

from ad_magic import Tensor, no_grad
from ad_magic.nn import MLP, Linear, Module, mse_loss
from ad_magic.optim import SGD, Adam, Momentum


def test_linear_shapes_and_parameters():
    layer = Linear(3, 2, seed=0)
    assert [p.shape for p in layer.parameters()] == [(3, 2), (2,)]
    y = layer(np.ones((5, 3)))
    assert y.shape == (5, 2)
    with pytest.raises(ValueError, match=r"Linear: expected inputs with last axis 3, got shape \(5, 4\)"):
        layer(np.ones((5, 4)))


def test_mlp_parameters_and_zero_grad():
    net = MLP([2, 8, 8, 1], seed=0)
    params = net.parameters()
    assert len(params) == 6 and len({id(p) for p in params}) == 6
    mse_loss(net(np.ones((4, 2))), np.zeros((4, 1))).backward()
    assert all(p.grad is not None for p in params)
    net.zero_grad()
    assert all(p.grad is None for p in params)


def test_module_collects_nested_parameters_once():
    class Twice(Module):
        def __init__(self):
            self.shared = Linear(2, 2, seed=1)
            self.blocks = [self.shared, Linear(2, 1, seed=2)]

    assert len(Twice().parameters()) == 4


def test_mse_loss_value_gradient_and_shape_check():
    p = Tensor([1.0, 2.0, 4.0])
    loss = mse_loss(p, [1.0, 1.0, 1.0])
    assert np.isclose(float(loss.data), (0 + 1 + 9) / 3)
    loss.backward()
    np.testing.assert_allclose(p.grad, [0, 2 / 3, 2])
    with pytest.raises(ValueError, match=r"mse_loss: prediction has shape \(3, 1\) but target has shape \(3,\)"):
        mse_loss(Tensor(np.ones((3, 1))), np.ones(3))


def test_two_layer_mlp_fits_noisy_sine():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (128, 1))
    Y = np.sin(X) + 0.05 * rng.standard_normal(X.shape)
    net = MLP([1, 32, 1], seed=0)
    opt = Adam(net.parameters(), lr=0.02)
    first = None
    for _ in range(600):
        loss = mse_loss(net(X), Y)
        first = first if first is not None else float(loss.data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with no_grad():
        final = float(mse_loss(net(X), Y).data)
    assert final < 0.01 < first


@pytest.mark.parametrize("make", [
    lambda p: SGD(p, lr=0.1),
    lambda p: Momentum(p, lr=0.05, momentum=0.9),
    lambda p: Adam(p, lr=0.1),
])
def test_optimizers_minimise_a_quadratic(make):
    x = Tensor([3.0, -2.0])
    opt = make([x])
    for _ in range(500):
        loss = ((x - Tensor([1.0, 0.5], requires_grad=False)) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(x.data, [1.0, 0.5], atol=1e-3)


def test_sgd_step_is_exactly_p_minus_lr_grad():
    x = Tensor([1.0, 2.0])
    (x * x).sum().backward()
    SGD([x], lr=0.25).step()
    np.testing.assert_allclose(x.data, [0.5, 1.0])


def test_scalar_parameters_update_too():
    x = Tensor(3.0)
    opt = SGD([x], lr=0.5)
    (x * x).backward()
    opt.step()
    assert float(x.data) == 0.0


def test_optimizer_bad_input():
    with pytest.raises(ValueError, match="SGD: lr must be a positive finite number, got -1"):
        SGD([Tensor(1.0)], lr=-1)
    with pytest.raises(ValueError, match="empty list of parameters"):
        Adam([], lr=0.1)
    with pytest.raises(TypeError, match="Momentum: parameter 0 is a float, not a Tensor"):
        Momentum([1.0], lr=0.1)


def test_layer_sizes_are_checked():
    with pytest.raises(ValueError, match="Linear: n_in must be a positive integer, got 0"):
        Linear(0, 2)
    with pytest.raises(ValueError, match=r"MLP: give at least an input and an output size, got \[3\]"):
        MLP([3])
