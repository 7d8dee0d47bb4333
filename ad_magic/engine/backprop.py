"""Running the recorded graph: backpropagation, forward replay, and the graph search.

`backward()` orders the graph so that children come before parents, clears the grads,
seeds the output's grad with ones and runs each node's rule in order; it is
`backward_steps()` run to the end — one mechanism, which the widgets step through.
`forward()` is its mirror: it recomputes every node from its parents, parents first.

Grad arrays belong to one node each. The engine adds into a grad in place only when it
made that array for that node alone (state OWNED); a grad passed through unchanged
(``add`` hands ∂L/∂out to both inputs) is BORROWED and copied before anyone else can
write to it; a grad handed out through `Tensor.grad` is EXPOSED and never written by
the engine again. No rule here depends on reference counts.
"""

from __future__ import annotations

import itertools

import numpy as np

from .tensor import BORROWED, OWNED, Tensor, compact, describe, float_array

__all__ = ["topological_order", "trace_graph", "run_backward", "run_forward", "replay_order", "detached_copy",
           "CustomOp"]

_ndarray = np.ndarray
_search = itertools.count(1)  # each graph search marks the nodes it meets with its own number


def _parents_of(node):
    """The node's inputs as stored: Tensors, or NumPy scalars for Python numbers."""
    a = node._a
    if a is None:
        return ()
    b = node._b
    if b is None:
        return (a,)
    rest = node._rest
    return (a, b) if rest is None else (a, b, *rest)


def topological_order(root, only_grad=False):
    """Every tensor `root` depends on, parents before children, `root` last.

    Iterative depth-first search (no recursion: a chain of 10⁶ nodes is fine) that
    visits inputs in operand order, so the order is deterministic. A node is written
    out when it comes back to the top of the stack after all its inputs.
    With only_grad=True, tensors that need no gradient (constants) are left out.
    Visited nodes are marked in a slot of their own rather than kept in sets, which
    saves time and, on a million-node graph, a hundred megabytes.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"expected a Tensor, got {describe(root)}")
    return _order(root, _GRAD if only_grad else _DISPLAY)


# What _order visits: the tensors that need a gradient (backward), every Tensor (forward
# replay: a constant's data may have changed too), or every input as a Tensor (display:
# a number kept in a node becomes a constant Tensor, so it can be drawn).
_GRAD, _TENSORS, _DISPLAY = 0, 1, 2


def _order(root, which):
    search = next(_search)
    expanded, done = 2 * search, 2 * search + 1
    order = []
    stack = [root]
    push, pop, append = stack.append, stack.pop, order.append
    only_grad = which == _GRAD
    while stack:
        node = stack[-1]
        mark = node._mark
        if mark == expanded or mark == done:
            pop()
            if mark == expanded:
                node._mark = done
                append(node)
            continue
        node._mark = expanded
        a = node._a
        if a is None:
            continue
        if which == _DISPLAY:
            for parent in reversed(node.parents):  # constants become Tensors here, for display
                if parent._mark < expanded:
                    push(parent)
                elif parent._mark == expanded:
                    raise _cycle(parent, node)
            continue
        # Numbers kept in a node are not Tensors: they are skipped (they cannot change).
        rest = node._rest
        if rest is not None:
            for parent in reversed(rest):
                if parent.__class__ is not Tensor and not isinstance(parent, Tensor):
                    continue
                if parent._mark < expanded:
                    if parent.requires_grad or not only_grad:
                        push(parent)
                elif parent._mark == expanded:
                    raise _cycle(parent, node)
        # A parent marked `expanded` (not yet done) lies on the path from the root to this
        # node: reaching it again is a cycle. The test costs nothing on the usual path.
        b = node._b
        if b is not None and isinstance(b, Tensor):
            if b._mark < expanded:
                if b.requires_grad or not only_grad:
                    push(b)
            elif b._mark == expanded:
                raise _cycle(b, node)
        if isinstance(a, Tensor):
            if a._mark < expanded:
                if a.requires_grad or not only_grad:
                    push(a)
            elif a._mark == expanded:
                raise _cycle(a, node)
    return order


def _cycle(parent, node):
    """The ValueError for a graph that loops back: `parent` is an input of `node`, which
    `parent` itself depends on (an edited `_parents` can do this)."""
    return ValueError(
        f"this graph has a cycle: {_node_text(parent)} is a parent of {_node_text(node)}, which is itself one of "
        f"the inputs {_node_text(parent)} was computed from; a computation graph cannot loop back (check what "
        "was assigned to _parents)"
    )


def _node_text(node):
    what = repr(node.name) if node.name else (f"the {node._function!r} node" if node._function else "a leaf")
    try:
        value = f" (value {float(node._data):g})" if np.size(node._data) == 1 else f" (shape {np.shape(node._data)})"
    except (TypeError, ValueError):
        value = ""
    return what + value


def trace_graph(root):
    """(nodes, edges): every Tensor reachable from `root` through `_parents`, and every
    (parent, child) pair. Iterative, so deep graphs do not recurse."""
    nodes = set(topological_order(root))
    edges = {(parent, child) for child in nodes for parent in child.parents}
    return nodes, edges


# --------------------------------------------------------------------------- backward

class CustomOp:
    """A rule written by hand, the practical's way: ``out._backward = function``.

    The function takes no arguments and adds into its parents' grads itself
    (``a.grad += …`` or ``a.grad = a.grad + …``, both fine). Before it runs, every parent
    without a grad yet gets zeros of its shape, so ``+=`` works on the first use; a
    parent that needs no gradient gets its grad taken back afterwards.
    """

    __slots__ = ("function", "_name")

    def __init__(self, function, name=None):
        self.function, self._name = function, name

    @property
    def name(self):
        return self._name or getattr(self.function, "__name__", "custom")

    formula = None
    locals = None
    vjps = None
    elementwise = False

    def backward(self, node):
        parents = node.parents
        for p in parents:
            if p._grad is None:
                p._grad = np.zeros(np.shape(p._data), dtype=p._data.dtype)
                p._gstate = OWNED
        try:
            self.function()
        finally:
            for p in parents:
                if not p.requires_grad:
                    p._grad = None

    def __repr__(self):
        return f"<custom op {self.name}>"


def _seed_gradient(root, grad):
    if not isinstance(root, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {describe(root)}")
    if not root.requires_grad:
        raise ValueError(
            "backward: this tensor does not depend on any tensor that needs a gradient "
            "(it was computed from constants only, or inside no_grad())"
        )
    shape, dtype = np.shape(root._data), root._data.dtype
    if grad is None:
        if root._data.size != 1:
            raise ValueError(
                f"backward: the output has shape {shape}, not a single value; "
                "pass grad=… (an array of that shape) or reduce it first, e.g. with .sum()"
            )
        return compact(np.ones(shape, dtype=dtype))
    grad = float_array(grad, "backward(grad=…)", copy=True)
    if grad.shape != shape:
        raise ValueError(f"backward: grad has shape {grad.shape} but the output has shape {shape}")
    return compact(grad.astype(dtype, copy=False))


def run_backward(root, grad=None, *, steps=True):
    """backward_steps(): checks its input at once, then yields one BackwardStep per rule run.

    backward() runs the same loop with ``steps=False``: it yields each node whose rule
    ran, without building a BackwardStep for it.
    """
    seed = _seed_gradient(root, grad)
    nodes = _backward_nodes(root, seed)
    if not steps:
        return nodes
    from .steps import BackwardStep

    return (BackwardStep(index, node) for index, node in enumerate(nodes, 1))


def _backward_nodes(root, seed):
    order = topological_order(root, only_grad=True)
    for node in order:
        node._grad = None
    root._grad = seed
    root._gstate = OWNED
    for i in range(len(order) - 1, -1, -1):
        node = order[i]
        op = node._op
        if op is None:
            continue
        if node._grad is None:  # a custom rule that added nothing: zero
            node._grad = np.zeros(np.shape(node._data), dtype=node._data.dtype)
            node._gstate = OWNED
        op.backward(node)
        yield node
    for node in order:  # leaves of custom ops that contributed nothing
        if node._grad is None:
            node._grad = np.zeros(np.shape(node._data), dtype=node._data.dtype)
            node._gstate = OWNED


# --------------------------------------------------------------------------- forward

def run_forward(root, *, steps=True):
    """forward_steps(): recompute each node from its parents' current data, yielding a
    ForwardStep after each; forward() runs the same loop with ``steps=False``.

    Every node is replayed, those computed from constants only too (requires_grad=False):
    a constant's data changes as much as a parameter's (a new mini-batch), and a replay
    that kept their old values would mix old and new data. A number kept in a node is
    immutable and stays as it is.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"forward: expected a Tensor, got {describe(root)}")
    order = _order(root, _TENSORS)
    nodes = _forward_nodes(_replayed(order), order)
    if not steps:
        return nodes
    from .steps import ForwardStep

    return (ForwardStep(index, node) for index, node in enumerate(nodes, 1))


def replay_order(root):
    """Every Tensor of `root`'s graph, parents first, after checking that each computed
    one can be replayed (a ValueError naming the first that cannot)."""
    order = _order(root, _TENSORS)
    _replayed(order)
    return order


def detached_copy(root):
    """A copy of `root`'s recorded graph that shares no Tensor and no array with it:
    ``(the copy of root, {id(tensor): its copy})``. Replaying the copy (set its leaves'
    data, call ``forward()``) never changes the original graph, so a picture can sample
    the loss anywhere without moving the user's tensors. Checked like `replay_order`."""
    order = replay_order(root)
    copies = {}
    for t in order:
        c = Tensor.__new__(Tensor)
        c._data = t._data.copy() if type(t._data) is _ndarray else t._data
        c._grad, c._gstate, c._mark = None, BORROWED, 0
        c.name, c.requires_grad = t.name, t.requires_grad
        c._function, c._op, c._args = t._function, t._op, t._args
        c._a, c._b, c._rest = (None if p is None else copies.get(id(p), p) for p in (t._a, t._b, None))
        if t._rest is not None:
            c._rest = tuple(copies.get(id(p), p) if isinstance(p, Tensor) else p for p in t._rest)
        copies[id(t)] = c
    return copies[id(root)], copies


def _replayed(order):
    """The computed nodes of `order` (the ones forward() recomputes), each checked."""
    computed = []
    for node in order:
        if node._a is None:
            continue
        op = node._op
        if op is None or op.__class__ is CustomOp:
            raise ValueError(
                f"forward: node {node._function!r} was made by a hand-written operation (its _backward was "
                "assigned), which has no forward rule to replay; rebuild the graph by running the code again"
            )
        computed.append(node)
    return computed


def _forward_nodes(computed, order):
    old_data = []  # to put everything back if a leaf's new data no longer fits
    try:
        for node in computed:
            old = node._data
            data = node._op.replay(node)
            if data.shape != old.shape:
                raise ValueError(
                    f"forward: {node._function} would change shape from {old.shape} to {data.shape} "
                    f"({_shapes(_parents_of(node))}); a leaf's data changed shape, so rebuild the graph instead"
                )
            if data.dtype is not old.dtype and data.dtype != old.dtype:
                data = data.astype(old.dtype)
            old_data.append(old)
            node._data = data
            yield node
    except Exception as exc:  # (closing the generator early keeps what was replayed so far)
        for node, old in zip(computed, old_data):
            node._data = old
        if isinstance(exc, (ValueError, IndexError)) and not str(exc).startswith("forward:"):
            node = computed[len(old_data)]
            raise ValueError(f"forward: {node._function} can no longer be computed from its inputs' new data "
                             f"({_shapes(_parents_of(node))}): {exc}") from None
        raise
    for node in order:  # every grad belonged to the old values
        node._grad = None


def _shapes(parents):
    return "input shapes " + ", ".join(str(np.shape(p._data if isinstance(p, Tensor) else p)) for p in parents)
