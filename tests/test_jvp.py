"""Forward mode: `ad_magic.jvp(f, primals, tangents)` agrees with `torch.func.jvp` for every
op of the registry and for a composed function; n forward passes fill the Jacobian column
by column as m reverse passes fill it row by row; `tangent_steps` shows each node's value
and tangent."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_higher_order import TORCH
from test_registry import CASES

import ad_magic
from ad_magic import Tensor
from ad_magic.engine.functional import grad, jvp, tangent_steps

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func's
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(TORCH))
def test_jvp_of_every_op_agrees_with_torch_func_jvp(name):
    @SETTINGS
    @given(CASES[name][0], st.integers(0, 2**32 - 1))
    def check(data, seed):
        inputs, params = data
        rng = np.random.default_rng(seed)
        tangents = tuple(rng.standard_normal(np.shape(x)) for x in inputs)
        out, tangent = jvp(lambda *xs: CASES[name][1](*xs, **params), tuple(inputs), tangents)
        their_out, their_tangent = torch.func.jvp(
            lambda *xs: TORCH[name](*xs, **params),
            tuple(torch.as_tensor(np.array(x, dtype=np.float64)) for x in inputs),
            tuple(torch.as_tensor(t) for t in tangents))
        np.testing.assert_allclose(out.data, their_out.numpy(), rtol=1e-12, atol=1e-12)
        assert tangent.shape == out.shape and not tangent.requires_grad
        np.testing.assert_allclose(tangent.data, their_tangent.numpy(), rtol=1e-10, atol=1e-12)

    check()


def small_network(x, W, b):
    h = (x @ W + b).tanh()
    return (h * h).sum(axis=1) / (1 + h.exp().mean()), h[0].sigmoid()


def test_jvp_of_a_composed_function_with_two_outputs_agrees_with_torch():
    rng = np.random.default_rng(7)
    primals = (rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2))
    tangents = tuple(rng.standard_normal(p.shape) for p in primals)
    outs, tangent_outs = ad_magic.jvp(small_network, primals, tangents)
    theirs, their_tangents = torch.func.jvp(small_network, tuple(map(torch.as_tensor, primals)),
                                            tuple(map(torch.as_tensor, tangents)))
    assert isinstance(outs, tuple) and len(tangent_outs) == 2
    for ours, their in zip(outs + tangent_outs, theirs + their_tangents):
        np.testing.assert_allclose(ours.data, their.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_n_forward_passes_give_the_jacobian_that_m_reverse_passes_give():
    """f: R³ → R²: three jvp passes fill the Jacobian column by column, two grad passes row by row."""
    def f(x):
        return (x[:2] * x[1:]).exp() + x.sum() ** 2

    point = np.array([0.3, -0.5, 0.8])
    columns = [jvp(f, (point,), (np.eye(3)[j],))[1].data for j in range(3)]
    x = Tensor(point)
    y = f(x)
    rows = [grad(y, x, grad_outputs=np.eye(2)[i])[0].data for i in range(2)]
    np.testing.assert_allclose(np.stack(columns, axis=1), np.stack(rows), rtol=1e-12)


def test_each_tangent_step_shows_the_value_the_tangent_and_the_terms_that_made_it():
    x, y = Tensor(2.0, name="x"), Tensor(3.0, name="y")
    out = x * y + x.exp()
    steps = list(tangent_steps(out, [(x, np.array(1.0)), (y, np.array(0.0))]))
    assert [s.node._function for s in steps] == ["mul", "exp", "add"]
    mul, exp, add = steps
    assert float(mul.value) == 6.0 and float(mul.tangent) == 3.0       # ∂(xy)/∂x = y
    assert float(exp.tangent) == pytest.approx(np.exp(2.0))
    assert float(add.tangent) == pytest.approx(3.0 + np.exp(2.0))
    assert [(i, p.name, float(t), float(c)) for i, p, t, c in mul.terms] == [(0, "x", 1.0, 3.0), (1, "y", 0.0, 0.0)]
    assert float(add.tangent) == sum(float(c) for _, _, _, c in add.terms)


def test_an_output_that_does_not_depend_on_the_inputs_has_a_zero_tangent():
    out, tangent = jvp(lambda x: Tensor([1.0, 2.0], requires_grad=False) * 3, (np.array(1.0),), (np.array(1.0),))
    np.testing.assert_allclose(tangent.data, [0.0, 0.0])


def test_mistakes_are_one_sentence():
    with pytest.raises(ValueError, match=r"^jvp: tangents\[0\] has shape \(2,\) but primals\[0\] has shape \(3,\)$"):
        jvp(lambda x: x.sum(), (np.zeros(3),), (np.zeros(2),))
    with pytest.raises(ValueError, match=r"^jvp: got 2 primals but 1 tangents"):
        jvp(lambda x, y: x * y, (1.0, 2.0), (1.0,))
    with pytest.raises(TypeError, match=r"^jvp: f must return a Tensor or a tuple of Tensors, got float 1.0$"):
        jvp(lambda x: 1.0, (1.0,), (1.0,))
    with pytest.raises(TypeError, match=r"^jvp: primals and tangents must be tuples"):
        jvp(lambda x: x, 1.0, 1.0)
