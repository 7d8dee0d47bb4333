"""Beyond first derivatives: the plain chain rule (`ops.input_gradient`) is what the fast
backward computes, for every op; `grad(..., create_graph=True)` records gradients that can
be differentiated again, and its second derivatives agree with PyTorch for every op of the
registry (a new op without a case here fails `test_every_op_has_a_second_derivative_case`)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_registry import CASES

import ad_magic
from ad_magic import Tensor
from ad_magic.engine import OPS, elementwise
from ad_magic.engine.functional import grad, hessian
from ad_magic.engine.ops import input_gradient, shape_of
from ad_magic.nn import MLP, mse_loss

torch = pytest.importorskip("torch")

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEST_ONLY_OPS = {"cube", "fma", "bad", "broken", "wave"}   # declared and removed by test_registry


def _torch_index(index):
    if isinstance(index, np.ndarray):
        return torch.as_tensor(index)
    return index


def _torch_sum(reduce):
    def call(a, axis, keepdims):
        if axis is None:
            out = getattr(a, reduce)()
            return out.reshape((1,) * a.ndim) if keepdims else out
        return getattr(a, reduce)(dim=axis, keepdim=keepdims)
    return call


def _torch_scatter(a, shape, index):
    full = torch.zeros(shape, dtype=torch.float64)
    if isinstance(index, np.ndarray):
        return full.index_put((torch.as_tensor(index),), a, accumulate=True)
    full[index] = a
    return full


# The same calls in PyTorch, for every op of the registry (CASES gives their inputs).
TORCH = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "neg": lambda a: -a,
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
    "relu": lambda a: a.relu(),
    "matmul": lambda a, b: a @ b,
    "linear": lambda x, W, b: x @ W + b,
    "sum": _torch_sum("sum"),
    "mean": _torch_sum("mean"),
    "reshape": lambda a, shape: a.reshape(shape),
    "transpose": lambda a, axes: a.permute(tuple(reversed(range(a.ndim))) if axes is None else tuple(axes)),
    "getitem": lambda a, index: a[_torch_index(index)],
    "scatter_add": _torch_scatter,
}


def test_every_op_has_a_second_derivative_case():
    assert set(TORCH) == set(OPS) - TEST_ONLY_OPS, "give each new op a PyTorch twin here (and a case in test_registry)"


# --------------------------------------------------------------------------- the plain rule

@pytest.mark.parametrize("name", sorted(TORCH))
def test_the_fast_backward_is_the_plain_chain_rule(name):
    """backward()'s generated fast path (`Op.input_grad`) gives what `input_gradient`, the
    readable rule, gives — on arrays, and on Tensors (recorded) — over random shapes that broadcast."""
    op = OPS[name]

    @SETTINGS
    @given(CASES[name][0], st.integers(0, 2**32 - 1))
    def check(data, seed):
        inputs, params = data
        leaves = [Tensor(x) for x in inputs]
        out = CASES[name][1](*leaves, **params)
        g = np.random.default_rng(seed).standard_normal(out.shape)
        datas = tuple(leaf._data for leaf in leaves)
        for i in range(len(leaves)):
            fast, _ = op.input_grad(i, g, out._data, datas, out._args)
            plain = input_gradient(op, i, g, out._data, datas, out._args)
            recorded = input_gradient(op, i, Tensor(g, requires_grad=False), out, tuple(leaves), out._args)
            assert isinstance(recorded, Tensor)
            assert np.shape(fast) == np.shape(plain) == recorded.shape == shape_of(datas[i])
            np.testing.assert_allclose(plain, fast, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(recorded.data, fast, rtol=1e-13, atol=1e-13)

    check()


# --------------------------------------------------------------------------- second derivatives

def _hvp_ours(name, inputs, params, w, vs):
    leaves = [Tensor(x) for x in inputs]
    loss = (CASES[name][1](*leaves, **params) * w).sum()
    first = grad(loss, leaves, create_graph=True)
    pairing = sum(((g * v).sum() for g, v in zip(first, vs)), Tensor(0.0, requires_grad=False))
    second = grad(pairing, leaves)
    return [g.data for g in first], [h.data for h in second]


def _hvp_torch(name, inputs, params, w, vs):
    leaves = [torch.tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in inputs]
    loss = (TORCH[name](*leaves, **params) * torch.as_tensor(w)).sum()
    first = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
    first = [torch.zeros_like(x) if g is None else g for g, x in zip(first, leaves)]
    pairing = sum((g * torch.as_tensor(v)).sum() for g, v in zip(first, vs))
    if not pairing.requires_grad:       # a gradient that is constant: its derivative is zero
        return [g.detach().numpy() for g in first], [np.zeros(x.shape) for x in leaves]
    second = torch.autograd.grad(pairing, leaves, allow_unused=True)
    return ([g.detach().numpy() for g in first],
            [np.zeros(x.shape) if h is None else h.numpy() for h, x in zip(second, leaves)])


@pytest.mark.parametrize("name", sorted(TORCH))
def test_second_derivatives_agree_with_pytorch(name):
    """Hessian-vector products, float64, at random points and in random directions: the
    gradient of ⟨∇L, v⟩ with L = Σ w · op(inputs), as PyTorch computes it."""
    @SETTINGS
    @given(CASES[name][0], st.integers(0, 2**32 - 1))
    def check(data, seed):
        inputs, params = data
        rng = np.random.default_rng(seed)
        out_shape = CASES[name][1](*[Tensor(x) for x in inputs], **params).shape
        w = rng.standard_normal(out_shape)
        vs = [rng.standard_normal(np.shape(x)) for x in inputs]
        first, second = _hvp_ours(name, inputs, params, w, vs)
        first_t, second_t = _hvp_torch(name, inputs, params, w, vs)
        for ours, theirs in zip(first + second, first_t + second_t):
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-10)

    check()


def test_grad_of_grad_of_x_to_the_y():
    """HIPS autograd's test: d/dx and d/dy of d(x**y)/dx, and the second derivative in x."""
    x, y = Tensor(1.7), Tensor(2.3)
    (dx,) = grad(x ** y, x, create_graph=True)
    assert dx.item() == pytest.approx(2.3 * 1.7 ** 1.3)
    ddx, dxdy = grad(dx, [x, y])
    assert ddx.item() == pytest.approx(2.3 * 1.3 * 1.7 ** 0.3)
    assert dxdy.item() == pytest.approx(1.7 ** 1.3 + 2.3 * 1.7 ** 1.3 * np.log(1.7))
    # three levels deep: d³/dx³ x**y = y (y-1) (y-2) x**(y-3)
    (d2,) = grad(dx, x, create_graph=True)
    (d3,) = grad(d2, x)
    assert d3.item() == pytest.approx(2.3 * 1.3 * 0.3 * 1.7 ** -0.7)


def test_hessian_of_a_small_mlp_loss_equals_pytorch():
    model = MLP([2, 3, 1], seed=4)
    X = np.random.default_rng(1).standard_normal((5, 2))
    Y = np.random.default_rng(2).standard_normal((5, 1))
    params = model.parameters()
    ours = hessian(mse_loss(model(Tensor(X, requires_grad=False)), Y), params)

    shapes = [p.shape for p in params]
    sizes = [p.size for p in params]

    def loss(theta):
        W1, b1, W2, b2 = (t.reshape(s) for t, s in zip(torch.split(theta, sizes), shapes))
        hidden = (torch.as_tensor(X) @ W1 + b1).relu()
        return ((hidden @ W2 + b2 - torch.as_tensor(Y)) ** 2).mean()

    theta = torch.as_tensor(np.concatenate([p.data.reshape(-1) for p in params]))
    theirs = torch.autograd.functional.hessian(loss, theta).numpy()
    assert [p.shape for p in params] == [(2, 3), (3,), (3, 1), (1,)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert np.abs(ours).max() > 0.1


def test_grad_leaves_dot_grad_alone_and_is_a_tuple():
    x = Tensor([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    before = x.grad.copy()
    result = grad(y * 3, x)
    assert isinstance(result, tuple) and len(result) == 1
    np.testing.assert_allclose(result[0].data, 3 * before)
    np.testing.assert_allclose(x.grad, before)
    assert not result[0].requires_grad
    assert ad_magic.grad is grad


def test_grad_outputs_weigh_a_non_scalar_output():
    x = Tensor([1.0, 2.0, 3.0])
    (g,) = grad(x * x, x, grad_outputs=np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(g.data, [2.0, 0.0, -6.0])
    with pytest.raises(ValueError, match=r"^grad: outputs\[0\] has shape \(3,\), not a single value"):
        grad(x * x, x)


def test_several_outputs_add_up_and_an_unused_input_gets_zeros():
    x, y, z = Tensor(2.0), Tensor(3.0), Tensor([1.0, 1.0])
    gx, gz = grad([x * y, x * x], [x, z])
    assert gx.item() == pytest.approx(3.0 + 4.0)
    np.testing.assert_allclose(gz.data, [0.0, 0.0])


def test_a_constant_gradient_differentiates_to_zero():
    x = Tensor([1.0, -2.0])
    (g,) = grad((3 * x).sum(), x, create_graph=True)
    (h,) = grad(g.sum(), x)
    np.testing.assert_allclose(g.data, [3.0, 3.0])
    np.testing.assert_allclose(h.data, [0.0, 0.0])


def test_grad_of_a_grad_without_create_graph_is_one_sentence():
    x = Tensor(2.0)
    (g,) = grad(x ** 3, x)
    with pytest.raises(ValueError) as info:
        grad(g, x)
    message = str(info.value)
    assert "create_graph=True" in message and "\n" not in message and message.count(". ") == 0


def test_bad_arguments_are_one_sentence_each():
    x = Tensor(1.0)
    with pytest.raises(TypeError, match=r"^grad: inputs\[1\] is float 2.0, not a Tensor$"):
        grad(x * x, [x, 2.0])
    with pytest.raises(ValueError, match=r"^grad: inputs\[0\] does not require a gradient"):
        grad(x * x, Tensor(1.0, requires_grad=False))
    with pytest.raises(ValueError, match=r"^grad: got 2 grad_outputs for 1 outputs"):
        grad(x * x, x, grad_outputs=[1.0, 2.0])


def test_a_hand_written_rule_is_refused_by_name():
    x = Tensor(2.0)
    y = x * 1.0
    y._backward = lambda: None
    with pytest.raises(ValueError, match=r"^grad: node 'mul' was made by a hand-written rule"):
        grad(y, x)


def test_hessian_vector_products_match_the_full_hessian():
    """For a small function the Hessian from grad of grad is symmetric and equals PyTorch's."""
    rng = np.random.default_rng(3)
    a, M = rng.standard_normal(3), rng.standard_normal((3, 3))
    x = Tensor(a)
    f = ((Tensor(M, requires_grad=False) @ x).sigmoid() * x.exp()).sum() / (x * x + 1).sum()
    ours = hessian(f, x)
    M_t = torch.as_tensor(M)
    theirs = torch.autograd.functional.hessian(
        lambda t: ((M_t @ t).sigmoid() * t.exp()).sum() / (t * t + 1).sum(), torch.as_tensor(a)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours, ours.T, rtol=1e-10, atol=1e-12)


def test_a_derivative_that_takes_arrays_only_is_named_when_recorded():
    try:
        wave = elementwise("wave", "out = sin(a)", np.sin, ("cos(a)", lambda out, a: np.cos(a)))
        x = Tensor([0.0, 1.0])
        (g,) = grad(wave(x).sum(), x)                     # first order: arrays, fine
        np.testing.assert_allclose(g.data, np.cos([0.0, 1.0]))
        with pytest.raises(TypeError, match=r"^grad: the derivative of 'wave' for input a cannot be recorded"):
            grad(wave(x).sum(), x, create_graph=True)
    finally:
        OPS.pop("wave", None)
