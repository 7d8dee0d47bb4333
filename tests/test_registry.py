"""The op registry: every operation is declared once, and what a backward step *shows*
(its terms' local factors) is exactly what it *adds* to each parent's grad — for every
registered op, over random shapes that broadcast. Also: every op against central
differences, the docs table generated from the registry, and adding an op in one entry."""

import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ad_magic import Tensor
from ad_magic.engine import OPS, elementwise, linear, matmul, ops_table, unbroadcast
from ad_magic.engine.ops import ONE, getitem, mean, reshape, scatter_add, structural, tensor_sum, transpose

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROOT = Path(__file__).resolve().parents[1]

floats = st.floats(-2, 2, allow_nan=False, allow_infinity=False, width=64)
positive = st.floats(0.5, 2, width=64)


@st.composite
def pair(draw, elements=floats, second=None):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    a = draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=elements))
    b = draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=second if second is not None else elements))
    return a, b


@st.composite
def single(draw, elements=floats, min_dims=0):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=3))
    return draw(hnp.arrays(np.float64, shape, elements=elements))


def away_from_zero(x):
    return np.where(np.abs(x) < 0.2, 0.5, x)


@st.composite
def matmul_case(draw):
    n, k, m = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    left = draw(st.sampled_from([(k,), (n, k), (2, n, k)]))
    right = draw(st.sampled_from([(k,), (k, m)]))
    return (draw(hnp.arrays(np.float64, left, elements=floats)),
            draw(hnp.arrays(np.float64, right, elements=floats))), {}


@st.composite
def linear_case(draw):
    n, i, o = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return tuple(draw(hnp.arrays(np.float64, s, elements=floats)) for s in ((n, i), (i, o), (o,))), {}


@st.composite
def reduce_case(draw):
    a = draw(single(min_dims=1))
    axis = draw(st.sampled_from([None] + list(range(-a.ndim, a.ndim))))
    return (a,), {"axis": axis, "keepdims": draw(st.booleans())}


@st.composite
def reshape_case(draw):
    a = draw(single())
    return (a,), {"shape": draw(st.sampled_from([(-1,), (1, a.size), (a.size, 1)]))}


@st.composite
def transpose_case(draw):
    a = draw(single(min_dims=1))
    return (a,), {"axes": draw(st.permutations(range(a.ndim))) if draw(st.booleans()) else None}


@st.composite
def getitem_case(draw):
    a = draw(single(min_dims=1))
    n = a.shape[0]
    index = draw(st.sampled_from([0, slice(0, n), np.array([0, 0, n - 1]), np.arange(n) % 2 == 0]))
    return (a,), {"index": index}


@st.composite
def scatter_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3))
    n = shape[0]
    index = draw(st.sampled_from([0, slice(0, n), np.array([0, 0, n - 1]), np.arange(n) % 2 == 0]))
    picked = np.empty(shape)[index].shape
    return (draw(hnp.arrays(np.float64, picked, elements=floats)),), {"shape": shape, "index": index}


def _args(strategy):
    return strategy.map(lambda arrays: (tuple(arrays) if isinstance(arrays, tuple) else (arrays,), {}))


# One case per registered op: (strategy of (inputs, params), how to call it).
CASES = {
    "add": (_args(pair()), lambda a, b: a + b),
    "sub": (_args(pair()), lambda a, b: a - b),
    "mul": (_args(pair()), lambda a, b: a * b),
    "div": (_args(pair(second=positive)), lambda a, b: a / b),
    "pow": (_args(pair(elements=positive)), lambda a, b: a ** b),
    "neg": (_args(single()), lambda a: -a),
    "exp": (_args(single()), lambda a: a.exp()),
    "log": (_args(single(elements=positive)), lambda a: a.log()),
    "tanh": (_args(single()), lambda a: a.tanh()),
    "sigmoid": (_args(single()), lambda a: a.sigmoid()),
    "relu": (_args(single().map(away_from_zero)), lambda a: a.relu()),
    "matmul": (matmul_case(), lambda a, b: matmul(a, b)),
    "linear": (linear_case(), lambda x, W, b: linear(x, W, b)),
    "sum": (reduce_case(), lambda a, axis, keepdims: tensor_sum(a, axis, keepdims)),
    "mean": (reduce_case(), lambda a, axis, keepdims: mean(a, axis, keepdims)),
    "reshape": (reshape_case(), lambda a, shape: reshape(a, shape)),
    "transpose": (transpose_case(), lambda a, axes: transpose(a, axes)),
    "getitem": (getitem_case(), lambda a, index: getitem(a, index)),
    "scatter_add": (scatter_case(), lambda a, shape, index: scatter_add(a, shape, index)),
}
BUILT_IN = set(CASES)


def test_every_registered_op_has_a_case():
    assert BUILT_IN <= set(OPS)
    assert set(OPS) - BUILT_IN <= {"cube", "fma", "bad", "broken"}  # the ops declared by the tests below


def _run(name, data):
    inputs, params = data
    leaves = [Tensor(x) for x in inputs]
    out = CASES[name][1](*leaves, **params)
    assert out._function == name
    w = np.random.default_rng(0).standard_normal(out.shape)
    steps = list(out.backward_steps(w))
    return leaves, out, w, steps


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_step_shows_what_it_adds(name):
    @SETTINGS
    @given(CASES[name][0])
    def check(data):
        leaves, out, w, steps = _run(name, data)
        assert len(steps) == 1 and steps[0].node is out
        step = steps[0]
        op = OPS[name]
        assert step.rule.startswith(op.formula)
        for i, term in enumerate(step.terms):
            assert term.parent is leaves[i]
            assert term.expression.startswith(op.expression(i))
        if not op.elementwise:
            assert all(term.factor is None for term in step.terms)
            return
        # What the step shows: ∂L/∂out · factor, summed over broadcast axes, per parent.
        for leaf in leaves:
            shown = sum(unbroadcast(w * term.factor, leaf.shape) for term in step.terms if term.parent is leaf)
            np.testing.assert_allclose(leaf.grad, shown, rtol=1e-12, atol=1e-12)
            assert leaf.grad.dtype == leaf.dtype and leaf.grad.shape == leaf.shape

    check()


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
def test_a_step_on_a_reused_input_shows_both_terms(name):
    x = Tensor(np.array([0.7, 1.3, 2.0]))
    out = CASES[name][1](x, x)
    w = np.array([1.0, -2.0, 0.5])
    (step,) = list(out.backward_steps(w))
    assert [t.parent for t in step.terms] == [x, x]
    np.testing.assert_allclose(x.grad, sum(w * t.factor for t in step.terms), rtol=1e-12)


def central_difference(call, inputs, params, i, w, eps=1e-6):
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    x = arrays[i]
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        keep = x[idx]
        x[idx] = keep + eps
        plus = (np.asarray(call(*[Tensor(a) for a in arrays], **params).data) * w).sum()
        x[idx] = keep - eps
        minus = (np.asarray(call(*[Tensor(a) for a in arrays], **params).data) * w).sum()
        x[idx] = keep
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_op_against_central_differences(name):
    @SETTINGS
    @given(CASES[name][0])
    def check(data):
        leaves, out, w, _ = _run(name, data)
        inputs, params = data
        for i, leaf in enumerate(leaves):
            numeric = central_difference(CASES[name][1], inputs, params, i, w)
            np.testing.assert_allclose(leaf.grad, numeric, rtol=1e-5, atol=1e-6)

    check()


def test_pow_at_zero_shows_the_factor_it_uses():
    """0 ** 0: the grad is 0, and the displayed factor is 0 too (one formula, not two)."""
    a, b = Tensor(0.0), Tensor(0.0)
    (step,) = list((a ** b).backward_steps())
    assert [float(t.factor) for t in step.terms] == [0.0, 0.0]
    assert a.grad == 0.0 and b.grad == 0.0
    assert np.isfinite(a.grad) and np.isfinite(b.grad)


def test_docs_table_is_generated_from_the_registry():
    doc = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8")
    assert ops_table() in doc, "docs/ops.md is stale: regenerate its table with ad_magic.engine.ops.ops_table()"
    for op in OPS.values():
        if op.name in BUILT_IN:
            assert f"`{op.name}`" in doc and op.formula in doc


def test_adding_an_op_is_one_entry():
    try:
        cube = elementwise("cube", "out = a³", lambda a: a * a * a, ("3a²", lambda out, a: 3 * a * a))
        x = Tensor([1.0, -2.0])
        y = cube(x)
        assert y._function == "cube"
        np.testing.assert_allclose(y.data, [1.0, -8.0])
        (step,) = list(y.sum().backward_steps())[1:]
        np.testing.assert_allclose(x.grad, [3.0, 12.0])
        assert step.rule == "out = a³;  ∂L/∂a += ∂L/∂out · 3a²"
        np.testing.assert_allclose(step.terms[0].factor, [3.0, 12.0])
        x.data = np.array([2.0, 0.5])
        assert y.sum().forward().item() == pytest.approx(8.125)
    finally:
        OPS.pop("cube", None)


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="'add' is already registered"):
        elementwise("add", "out = a + b", np.add, ("1", lambda o, a, b: 1), ("1", lambda o, a, b: 1))


def test_every_op_runs_the_one_executor():
    """One chain-rule executor: every op's backward and input_grad are the code `_executor`
    wrote from that op's declaration, not a rule written beside it."""
    from ad_magic.engine import ops

    for op in OPS.values():
        source, _, _ = ops._executor(op)
        assert op.backward_source == source
        filename = f"<chain rule of {op.name}>"
        assert op.backward.__code__.co_filename == filename, op.name
        assert len(op.terms) == len(op.inputs)
        assert all(term.__code__.co_filename == filename for term in op.terms), op.name
        backward, *terms = source.split("\n\ndef term")
        for i, term in enumerate(terms):  # backward runs each input's term as input_grad does, unrolled
            for line in ops._term_source(op, i):
                assert line.strip() in term and line.strip() in backward, (op.name, line)


def test_a_three_input_elementwise_op_runs_the_same_executor():
    """An arity no built-in elementwise op has: broadcasting, a reused input, a number kept
    in the node, and steps whose factors are what was added."""
    try:
        fma = elementwise("fma", "out = a · b + c", lambda a, b, c: a * b + c,
                          ("b", lambda out, a, b, c: b), ("a", lambda out, a, b, c: a), ("1", ONE))
        x, y = Tensor([[1.0, 2.0], [3.0, 4.0]]), Tensor([0.5, -1.0])
        out = fma(x, y, x)
        w = np.array([[1.0, 2.0], [3.0, 4.0]])
        (step,) = list(out.backward_steps(w))
        np.testing.assert_allclose(x.grad, w * y.data + w)
        np.testing.assert_allclose(y.grad, (w * x.data).sum(axis=0))
        for leaf in (x, y):
            shown = sum(unbroadcast(w * t.factor, leaf.shape) for t in step.terms if t.parent is leaf)
            np.testing.assert_allclose(leaf.grad, shown)
        z = fma(y, 2, 1.5)   # numbers kept in the node: only y needs a grad
        z.sum().backward()
        np.testing.assert_allclose(y.grad, [2.0, 2.0])
        assert fma.backward.__code__.co_filename == "<chain rule of fma>"
        with pytest.raises(ValueError, match=r"^fma: cannot broadcast shapes \(2, 2\), \(3,\) and \(2, 2\) together$"):
            fma(x, Tensor([1.0, 2.0, 3.0]), x)
    finally:
        OPS.pop("fma", None)


def test_a_vjp_of_the_wrong_shape_is_one_sentence():
    try:
        bad = structural("bad", "out = 2a", lambda a: 2 * a, ("2 ∂L/∂out", lambda g, out, a, args: np.ones(3)))
        x = Tensor([1.0, 2.0])
        with pytest.raises(ValueError, match=r"bad: the vjp for input a gave shape \(3,\), expected \(2,\)"):
            bad(x).sum().backward()
    finally:
        OPS.pop("bad", None)


def test_the_chain_rule_shows_in_a_traceback():
    def broken(g, out, a, args):
        raise RuntimeError("broken vjp")

    try:
        op = structural("broken", "out = a", lambda a: a * 1.0, ("?", broken))
        x = Tensor([1.0])
        with pytest.raises(RuntimeError) as info:
            op(x).sum().backward()
        text = "".join(traceback.format_exception(info.value))
        assert "<chain rule of broken>" in text and "c = vjp0(g, out, d0, args)" in text
    finally:
        OPS.pop("broken", None)
