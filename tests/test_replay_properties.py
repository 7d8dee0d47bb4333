"""Replay is a rebuild: random graphs made of every op in the registry, random leaves'
data changed afterwards (parameters and constants, assigned or written in place), then
``forward()`` + ``backward()`` must give what building the graph again from the new data
gives — and what PyTorch gives for the same program.

A graph is a program: each instruction applies one registered op (through a small
builder that keeps values broadcastable to one shape) to values made earlier. The same
program is built three times: once and replayed, once anew from the new data, and in
PyTorch (float64).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ad_magic import Tensor, topological_order
from ad_magic.engine.ops import OPS
from ad_magic.engine.ops import linear as ad_linear
from ad_magic.engine.ops import scatter_add as ad_scatter_add

SHAPE = (2, 3)                                  # every value broadcasts to it
LEAF_SHAPES = [(2, 3), (3,), (), (2, 1)]
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Engine:
    """The few operations that are spelt differently in ad_magic and PyTorch."""

    def leaf(self, data, requires_grad):
        return Tensor(np.array(data, dtype=np.float64), requires_grad=requires_grad)

    def const(self, array):
        return array                             # a NumPy array in an op: a constant

    def linear(self, x, W, b):
        return ad_linear(x, W, b)

    def sum(self, t, axis, keepdims):
        return t.sum(axis=axis, keepdims=keepdims)

    def mean(self, t, axis, keepdims):
        return t.mean(axis=axis, keepdims=keepdims)

    def scatter_add(self, t, shape, index):
        return ad_scatter_add(t, shape, index)


class Torch(Engine):
    def __init__(self, torch):
        self.torch = torch

    def leaf(self, data, requires_grad):
        return self.torch.tensor(np.array(data, dtype=np.float64), requires_grad=requires_grad)

    def const(self, array):
        return self.torch.tensor(array, dtype=self.torch.float64)

    def linear(self, x, W, b):
        return x @ W + b

    def sum(self, t, axis, keepdims):
        return t.sum() if axis is None else t.sum(dim=axis, keepdim=keepdims)

    def mean(self, t, axis, keepdims):
        return t.mean() if axis is None else t.mean(dim=axis, keepdim=keepdims)

    def scatter_add(self, t, shape, index):
        full = self.torch.zeros(shape, dtype=self.torch.float64)
        return full.index_put((self.torch.as_tensor(index),), t, accumulate=True)


def full(E, v):
    """v broadcast to SHAPE (an add with a constant), for ops that need that exact shape."""
    return v if tuple(v.shape) == SHAPE else v + E.const(np.zeros(SHAPE))


def gram(E, v):
    w = full(E, v)
    return w.T @ w                               # (3, 3)


# op name -> builders, each f(E, a, b) -> a value that broadcasts to SHAPE. Every
# registered op must be here (test_every_registered_op_is_in_the_random_graphs).
BUILDERS = {
    "add": [lambda E, a, b: a + b, lambda E, a, b: 1.5 + a],
    "sub": [lambda E, a, b: a - b, lambda E, a, b: 1.0 - a],
    "mul": [lambda E, a, b: a * b, lambda E, a, b: a * a, lambda E, a, b: a * E.const(np.array([0.5, -1.0, 2.0]))],
    "div": [lambda E, a, b: a / (b * b + 1.0), lambda E, a, b: 1.0 / (a * a + 0.5)],
    "pow": [lambda E, a, b: a ** 2, lambda E, a, b: (a * a + 0.5) ** b.sigmoid(), lambda E, a, b: 2.0 ** a.tanh()],
    "neg": [lambda E, a, b: -a],
    "exp": [lambda E, a, b: a.tanh().exp()],
    "log": [lambda E, a, b: (a * a + 0.5).log()],
    "tanh": [lambda E, a, b: a.tanh()],
    "sigmoid": [lambda E, a, b: a.sigmoid()],
    "relu": [lambda E, a, b: a.relu()],
    "matmul": [lambda E, a, b: (full(E, a) @ gram(E, b)) * 0.1, lambda E, a, b: full(E, a) @ full(E, b)[0]],
    "linear": [lambda E, a, b: E.linear(full(E, a), gram(E, b) * 0.1, full(E, b)[1])],
    "sum": [lambda E, a, b: E.sum(full(E, a), 0, True), lambda E, a, b: E.sum(full(E, a), 1, True),
            lambda E, a, b: E.sum(a, None, False)],
    "mean": [lambda E, a, b: E.mean(full(E, a), 0, True), lambda E, a, b: E.mean(full(E, a), 1, True),
             lambda E, a, b: E.mean(a, None, False)],
    "reshape": [lambda E, a, b: full(E, a).reshape(3, 2).reshape(2, 3)],
    "transpose": [lambda E, a, b: full(E, a).T.reshape(2, 3)],
    "getitem": [lambda E, a, b: full(E, a)[:, [2, 0, 2]], lambda E, a, b: full(E, a)[[1, 0]],
                lambda E, a, b: full(E, a)[1]],
    "scatter_add": [lambda E, a, b: E.scatter_add(full(E, a)[[1, 0, 1]], SHAPE, np.array([0, 1, 0]))],
}
# matmul's second form gives shape (2,), which does not broadcast to SHAPE: make it a column
BUILDERS["matmul"][1] = lambda E, a, b: (full(E, a) @ full(E, b)[0]).reshape(2, 1)

values = st.floats(-2, 2, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def programs(draw):
    """(leaves: [(data, requires_grad)], instructions: [(op, form, i, j)], changes: {leaf: (data, in_place)})."""
    n_leaves = draw(st.integers(2, 4))
    leaves = []
    for k in range(n_leaves):
        shape = draw(st.sampled_from(LEAF_SHAPES))
        data = draw(hnp.arrays(np.float64, shape, elements=values))
        leaves.append((data, True if k == 0 else draw(st.booleans())))
    instructions = []
    for step in range(draw(st.integers(1, 7))):
        op = draw(st.sampled_from(sorted(BUILDERS)))
        form = draw(st.integers(0, len(BUILDERS[op]) - 1))
        n = n_leaves + step
        # lean towards recent values, so the graphs grow deep as well as wide
        i = draw(st.one_of(st.just(n - 1), st.integers(0, n - 1)))
        j = draw(st.integers(0, n - 1))
        instructions.append((op, form, i, j))
    changes = {}
    for k, (data, _) in enumerate(leaves):
        if draw(st.booleans()):
            new = draw(hnp.arrays(np.float64, data.shape, elements=values))
            changes[k] = (new, data.ndim > 0 and draw(st.booleans()))
    return leaves, instructions, changes


def build(E, leaves, instructions):
    """The program in engine E: (its leaves, every value made, the scalar loss)."""
    made = [E.leaf(data, requires_grad) for data, requires_grad in leaves]
    pool = list(made)
    for op, form, i, j in instructions:
        pool.append(BUILDERS[op][form](E, pool[i], pool[j]))
    return made, pool, E.sum(pool[-1], None, False) + E.sum(pool[len(leaves) - 1], None, False) * 0.5


def new_leaves(leaves, changes):
    return [(changes[k][0] if k in changes else data, rg) for k, (data, rg) in enumerate(leaves)]


def replayed_and_rebuilt(program):
    """Build, change the leaves' data, replay; and build anew from the new data."""
    leaves, instructions, changes = program
    E = Engine()
    with np.errstate(all="ignore"):
        made, pool, loss = build(E, leaves, instructions)
        assume(loss.requires_grad and np.isfinite(loss.item()))
        loss.backward()                           # grads of the old data, which replay must clear
        for k, (new, in_place) in changes.items():
            if in_place:
                made[k].data[...] = new
            else:
                made[k].data = new
        loss.forward().backward()
        fresh, fresh_pool, fresh_loss = build(E, new_leaves(leaves, changes), instructions)
        assume(np.isfinite(fresh_loss.item()))
        fresh_loss.backward()
    return (made, pool, loss), (fresh, fresh_pool, fresh_loss)


def assert_same(ours, theirs, what):
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                               rtol=1e-9, atol=1e-12, err_msg=what)


@SETTINGS
@given(programs())
def test_replay_after_changing_leaves_equals_a_rebuild(program):
    (made, pool, loss), (fresh, fresh_pool, fresh_loss) = replayed_and_rebuilt(program)
    assert loss.item() == fresh_loss.item()
    in_graph = {id(t) for t in topological_order(loss)}    # (a value the loss does not use is not replayed)
    for k, (value, fresh_value) in enumerate(zip(pool, fresh_pool)):
        if id(value) in in_graph:
            assert_same(value.data, fresh_value.data, f"value {k}")
    for k, (leaf, fresh_leaf) in enumerate(zip(made, fresh)):
        if fresh_leaf.grad is None:
            assert leaf.grad is None, f"leaf {k}"
        else:
            assert_same(leaf.grad, fresh_leaf.grad, f"grad of leaf {k}")


@SETTINGS
@given(programs())
def test_replay_after_changing_leaves_equals_pytorch(program):
    torch = pytest.importorskip("torch", reason="PyTorch (pip install torch==2.13.0) is the reference here")
    (made, _, loss), _ = replayed_and_rebuilt(program)
    leaves, instructions, changes = program
    theirs, _, their_loss = build(Torch(torch), new_leaves(leaves, changes), instructions)
    their_loss.backward()
    assert_same(loss.item(), their_loss.item(), "loss")
    for k, (leaf, their_leaf) in enumerate(zip(made, theirs)):
        if their_leaf.grad is None:
            assert leaf.grad is None, f"leaf {k}: PyTorch has no grad"
        else:
            assert leaf.grad is not None, f"leaf {k}: no grad, PyTorch has one"
            assert_same(leaf.grad, their_leaf.grad.numpy(), f"grad of leaf {k}")


def test_every_registered_op_is_in_the_random_graphs():
    assert set(BUILDERS) == set(OPS), "add a builder for each new op, so replay is tested on it"


def test_the_random_graphs_do_replay_constant_only_values():
    """A guard on the generator: the case the bug lived in is among the programs."""
    leaves = [(np.array([1.0, 2.0, 3.0]), True), (np.array(0.5), False)]
    instructions = [("exp", 0, 1, 1), ("mul", 0, 0, 2)]      # exp(tanh(constant)) * parameter
    made, pool, loss = build(Engine(), leaves, instructions)
    made[1].data = -1.5
    loss.forward()
    _, _, fresh_loss = build(Engine(), new_leaves(leaves, {1: (np.array(-1.5), False)}), instructions)
    assert not pool[2].requires_grad and pool[2].item() == pytest.approx(np.exp(np.tanh(-1.5)))
    assert loss.item() == fresh_loss.item()
