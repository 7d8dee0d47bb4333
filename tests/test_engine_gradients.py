"""Every operation's gradient against central finite differences, over random shapes
that broadcast (hypothesis). The reference differences are computed here, in float64,
independently of the engine's own gradcheck."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ad_magic import Tensor
from ad_magic.engine import transpose

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def central_difference(f, arrays, i, eps=1e-6):
    """∂ sum(f(*arrays) · w) / ∂ arrays[i] with a fixed random weight w, in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out = np.asarray(f(*[Tensor(a) for a in arrays]).data)
    w = np.random.default_rng(1).standard_normal(out.shape)
    x = arrays[i]
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        keep = x[idx]
        x[idx] = keep + eps
        plus = (np.asarray(f(*[Tensor(a) for a in arrays]).data) * w).sum()
        x[idx] = keep - eps
        minus = (np.asarray(f(*[Tensor(a) for a in arrays]).data) * w).sum()
        x[idx] = keep
        grad[idx] = (plus - minus) / (2 * eps)
    return grad, w


def check_gradients(f, *arrays, rtol=1e-5, atol=1e-6):
    tensors = [Tensor(a) for a in arrays]
    out = f(*tensors)
    expected_shapes = [t.shape for t in tensors]
    for i in range(len(arrays)):
        numeric, w = central_difference(f, arrays, i)
        out = f(*tensors)
        out.backward(w)
        assert tensors[i].grad is not None
        assert tensors[i].grad.shape == expected_shapes[i]
        np.testing.assert_allclose(tensors[i].grad, numeric, rtol=rtol, atol=atol)


floats = st.floats(-3, 3, allow_nan=False, allow_infinity=False, width=64)


def arrays_for(shapes, elements=floats):
    return st.tuples(*[hnp.arrays(np.float64, s, elements=elements) for s in shapes])


@st.composite
def broadcast_pair(draw, elements=floats):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    return draw(arrays_for(shapes.input_shapes, elements))


@st.composite
def one_array(draw, elements=floats, min_dims=0):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=4))
    return draw(hnp.arrays(np.float64, shape, elements=elements))


@SETTINGS
@given(broadcast_pair())
def test_add_sub_mul_broadcast(pair):
    a, b = pair
    check_gradients(lambda x, y: x + y, a, b)
    check_gradients(lambda x, y: x - y, a, b)
    check_gradients(lambda x, y: x * y, a, b)


@SETTINGS
@given(broadcast_pair(elements=st.floats(0.5, 3)))
def test_div_broadcast(pair):
    a, b = pair
    check_gradients(lambda x, y: x / y, a, b, rtol=1e-4)


@SETTINGS
@given(broadcast_pair(elements=st.floats(0.3, 2)))
def test_pow_tensor_exponent(pair):
    a, b = pair
    check_gradients(lambda x, y: x ** y, a, b, rtol=1e-4)


@SETTINGS
@given(one_array(), st.sampled_from([0, 1, 2, 3, -1, 0.5, 2.5]))
def test_pow_constant_exponent(a, c):
    if c != int(c) or c < 0:
        a = np.abs(a) + 0.5  # real powers need a positive base
    check_gradients(lambda x: x ** c, a, rtol=1e-4)


@SETTINGS
@given(one_array())
def test_unary_elementwise(a):
    check_gradients(lambda x: -x, a)
    check_gradients(lambda x: x.exp(), a, rtol=1e-5)
    check_gradients(lambda x: x.tanh(), a)
    check_gradients(lambda x: x.sigmoid(), a)


@SETTINGS
@given(one_array(elements=st.floats(0.1, 5)))
def test_log(a):
    check_gradients(lambda x: x.log(), a, rtol=1e-4)


@SETTINGS
@given(one_array(elements=st.floats(-3, 3).filter(lambda v: abs(v) > 1e-3)))
def test_relu_away_from_kink(a):
    check_gradients(lambda x: x.relu(), a)


@SETTINGS
@given(broadcast_pair())
def test_constants_on_either_side(pair):
    a, b = pair
    check_gradients(lambda x: 2 * x - 1, a)
    check_gradients(lambda x: b + x * b, a)  # an array constant broadcasting with x
    check_gradients(lambda x: 1 / (x * x + 1), a)
    check_gradients(lambda x: 3 - x, a)


@st.composite
def matmul_shapes(draw):
    n, m, k, batch = (draw(st.integers(1, 4)) for _ in range(4))
    kind = draw(st.sampled_from(["vv", "mv", "vm", "mm", "bm", "bb", "vb", "bv"]))
    return {
        "vv": ((n,), (n,)),
        "mv": ((m, n), (n,)),
        "vm": ((n,), (n, k)),
        "mm": ((m, n), (n, k)),
        "bm": ((batch, m, n), (n, k)),
        "bb": ((batch, m, n), (batch, n, k)),
        "vb": ((n,), (batch, n, k)),
        "bv": ((batch, m, n), (n,)),
    }[kind]


@SETTINGS
@given(matmul_shapes(), st.data())
def test_matmul_every_shape_combination(shapes, data):
    a, b = data.draw(arrays_for(shapes))
    check_gradients(lambda x, y: x @ y, a, b)
    assert (Tensor(a) @ Tensor(b)).shape == np.matmul(a, b).shape


@st.composite
def array_and_axis(draw):
    a = draw(one_array(min_dims=1))
    axis = draw(st.one_of(
        st.none(),
        st.integers(-a.ndim, a.ndim - 1),
        st.lists(st.integers(0, a.ndim - 1), unique=True, min_size=1).map(tuple),
    ))
    return a, axis


@SETTINGS
@given(array_and_axis(), st.booleans())
def test_sum_and_mean_over_axes(pair, keepdims):
    a, axis = pair
    check_gradients(lambda x: x.sum(axis=axis, keepdims=keepdims), a)
    check_gradients(lambda x: x.mean(axis=axis, keepdims=keepdims), a)
    assert Tensor(a).sum(axis=axis, keepdims=keepdims).shape == np.sum(a, axis=axis, keepdims=keepdims).shape


@SETTINGS
@given(one_array(min_dims=1), st.data())
def test_reshape_and_transpose(a, data):
    check_gradients(lambda x: x.reshape(-1), a)
    check_gradients(lambda x: x.reshape(1, *a.shape, 1), a)
    check_gradients(lambda x: x.T, a)
    axes = data.draw(st.permutations(range(a.ndim)))
    check_gradients(lambda x: transpose(x, axes), a)
    np.testing.assert_array_equal(Tensor(a).transpose(*axes).data, np.transpose(a, axes))


@SETTINGS
@given(one_array(min_dims=1), st.data())
def test_getitem_slices_and_repeated_indices(a, data):
    n = a.shape[0]
    check_gradients(lambda x: x[0], a)
    check_gradients(lambda x: x[::-1], a)
    check_gradients(lambda x: x[..., :1], a)
    index = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6))
    check_gradients(lambda x: x[np.array(index)], a)
    mask = a > 0
    check_gradients(lambda x: x[mask] * 1.0, a)


def test_repeated_index_gradients_add_up():
    x = Tensor([1.0, 2.0, 3.0])
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


@SETTINGS
@given(one_array(), one_array())
def test_composite_expression_with_reuse(a, b):
    # x appears several times: its gradient is the sum over every use.
    def f(x, y):
        s = (x * x).sum() + (x.tanh() * 2).sum()
        return s * (y.sigmoid().mean() + 1) + x.exp().mean()
    check_gradients(f, a, b, rtol=1e-4)


def test_float32_stays_float32():
    x = Tensor(np.ones((2, 3), dtype=np.float32))
    y = (x * 2 + 1).tanh().sum()
    assert y.data.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_against_torch_where_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    A, B, c = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    a, b, cc = Tensor(A), Tensor(B), Tensor(c)
    out = (((a @ b) + cc).tanh() * (a @ b).sigmoid()).relu().sum(axis=0).mean() + (cc ** 2).sum().log()
    out.backward()
    ta, tb, tc = (torch.tensor(v, requires_grad=True) for v in (A, B, c))
    tout = (((ta @ tb) + tc).tanh() * (ta @ tb).sigmoid()).relu().sum(dim=0).mean() + (tc ** 2).sum().log()
    tout.backward()
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-12)
    for mine, theirs in ((a, ta), (b, tb), (cc, tc)):
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 4), st.sampled_from([(), (3,), (2, 3)]), st.data())
def test_linear_layer_op(n_in, n_out, batch, data):
    from ad_magic.engine import linear
    x, W, b = data.draw(arrays_for([batch + (n_in,), (n_in, n_out), (n_out,)]))
    check_gradients(lambda x, W, b: linear(x, W, b), x, W, b)
    np.testing.assert_allclose(linear(Tensor(x), Tensor(W), Tensor(b)).data, x @ W + b)


def test_linear_rejects_mismatched_shapes():
    from ad_magic.engine import linear
    with pytest.raises(ValueError,
                       match=r"linear: expected x of shape \(\.\.\., n_in\).*got \(2, 3\), \(4, 5\) and \(5,\)"):
        linear(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5))), Tensor(np.ones(5)))
