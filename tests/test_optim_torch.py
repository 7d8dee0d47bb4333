"""Every optimizer's trajectory against torch.optim, with the parameters changed by hand
between runs (assigned or written in place), as a learner does between two cells.

Two ways of running twice: ``descend`` by name (a new optimizer each run, as a new
``torch.optim`` object each run) and one Optimizer instance given to both runs (its
state, e.g. Adam's moments and step counts, carries over, as a reused torch.optim
object's does). Each iteration's loss, parameters and grads must match PyTorch's.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ad_magic import Tensor
from ad_magic.optim import OPTIMIZERS, descend

torch = pytest.importorskip("torch", reason="PyTorch (pip install torch==2.13.0) is the reference for the optimizers")

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TARGET = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.0]])
STEPS = (6, 5)


def our_loss(w, b):
    """A smooth loss with a matrix and a vector parameter and a constant input."""
    X = Tensor(TARGET, requires_grad=False)
    return (((X @ w + b).tanh() - 0.5) ** 2).sum() + 0.1 * (w * w).sum()


def torch_loss(w, b):
    X = torch.tensor(TARGET)
    return (((X @ w + b).tanh() - 0.5) ** 2).sum() + 0.1 * (w * w).sum()


class TorchNewton:
    """Newton's method written with torch.autograd.functional.hessian, as ours is specified:
    θ ← θ − lr · (H + λI)⁻¹ ∇L over the parameters' values flattened together."""

    def __init__(self, params, lr, damping):
        self.params, self.lr, self.damping = params, lr, damping

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        shapes = [p.shape for p in self.params]
        sizes = [p.numel() for p in self.params]
        theta = torch.cat([p.detach().reshape(-1) for p in self.params])

        def flat_loss(t):
            return torch_loss(*(part.reshape(s) for part, s in zip(torch.split(t, sizes), shapes)))

        gradient = torch.autograd.functional.jacobian(flat_loss, theta)
        hessian = torch.autograd.functional.hessian(flat_loss, theta)
        system = (hessian + hessian.T) / 2 + self.damping * torch.eye(len(theta), dtype=theta.dtype)
        # Two correct runs through a (nearly) singular system part by its condition number:
        # compare well-posed steps only (a singular one: tests/test_newton.py).
        assume(float(torch.linalg.cond(system)) < 1e6)
        step = torch.linalg.solve(system, gradient) * self.lr
        with torch.no_grad():
            for p, part in zip(self.params, torch.split(step, sizes)):
                p -= part.reshape(p.shape)


def torch_optimizer(name, params, lr, opts):
    if name == "newton":
        return TorchNewton(params, lr, opts.get("damping", 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=opts.get("momentum", 0.9))
    betas = opts.get("betas", (0.9, 0.999))
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=opts.get("eps", 1e-8))


def torch_run(params, optimizer, steps):
    """descend's loop in PyTorch: (losses, values, grads) per iteration."""
    losses, values, grads = [], [], []
    for k in range(steps + 1):
        optimizer.zero_grad()
        loss = torch_loss(*params)
        loss.backward()
        losses.append(loss.item())
        values.append([p.detach().numpy().copy() for p in params])
        grads.append([p.grad.numpy().copy() for p in params])
        if k < steps:
            optimizer.step()
    return losses, values, grads


# Two float64 implementations add in different orders: after a few iterations a grad of
# 5e-4 may differ by 2e-13 (3.7e-10 relatively; hypothesis found it). A wrong update differs
# by many orders of magnitude more.
ATOL = 1e-11


def assert_same_run(history, theirs, rtol=1e-9):
    losses, values, grads = theirs
    np.testing.assert_allclose(history.losses, losses, rtol=rtol, atol=ATOL)
    for k in range(len(losses)):
        for ours, their in zip(history.params[k], values[k]):
            np.testing.assert_allclose(ours, their, rtol=rtol, atol=ATOL, err_msg=f"values at iteration {k}")
        for ours, their in zip(history.grads[k], grads[k]):
            np.testing.assert_allclose(ours, their, rtol=rtol, atol=ATOL, err_msg=f"grads at iteration {k}")


# Newton solves a linear system with the Hessian each step: rounding differences between two
# correct Hessians grow by its condition number, so its runs agree to fewer digits.
RTOL = {"newton": 1e-7}


options = {
    "sgd": st.just({}),
    "momentum": st.fixed_dictionaries({"momentum": st.sampled_from([0.0, 0.5, 0.9, 0.99])}),
    "adam": st.fixed_dictionaries({}, optional={
        "betas": st.tuples(st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.9, 0.99, 0.999])),
        "eps": st.sampled_from([1e-8, 1e-3]),
    }),
    "newton": st.fixed_dictionaries({}, optional={"damping": st.sampled_from([0.0, 0.5, 2.0])}),
}
data = st.floats(-1.5, 1.5, allow_nan=False, width=64)
starts = st.tuples(hnp.arrays(np.float64, (2, 2), elements=data), hnp.arrays(np.float64, (2,), elements=data))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("reuse", [False, True], ids=["new optimizer per run", "one optimizer for both runs"])
@SETTINGS
@given(options=st.data(), first=starts, second=starts, lr=st.sampled_from([0.01, 0.1, 0.3]),
       in_place=st.booleans())
def test_each_optimizers_trajectory_matches_torch_optim_after_the_parameters_were_changed_by_hand(
        name, reuse, options, first, second, lr, in_place):
    opts = options.draw(globals()["options"][name])
    w, b = Tensor(first[0], name="w"), Tensor(first[1], name="b")
    loss = our_loss(w, b)
    tw = torch.tensor(first[0], requires_grad=True)
    tb = torch.tensor(first[1], requires_grad=True)
    ours_opt = OPTIMIZERS[name]([w, b], lr=lr, **opts) if reuse else name
    their_opt = torch_optimizer(name, [tw, tb], lr, opts)

    assert_same_run(descend(loss, [w, b], ours_opt, lr=lr, steps=STEPS[0], **({} if reuse else opts)),
                    torch_run([tw, tb], their_opt, STEPS[0]), RTOL.get(name, 1e-10))
    # by hand, between the runs: the loss was built for the first start and is replayed
    if in_place:
        w.data[...], b.data[...] = second
    else:
        w.data, b.data = second[0].copy(), second[1].copy()
    with torch.no_grad():
        tw.copy_(torch.tensor(second[0]))
        tb.copy_(torch.tensor(second[1]))
    if not reuse:
        their_opt = torch_optimizer(name, [tw, tb], lr, opts)
    assert_same_run(descend(loss, [w, b], ours_opt, lr=lr, steps=STEPS[1], **({} if reuse else opts)),
                    torch_run([tw, tb], their_opt, STEPS[1]), RTOL.get(name, 1e-10))
