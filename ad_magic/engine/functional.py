"""Derivatives as functions: `grad` (reverse mode, shaped like ``torch.autograd.grad``),
`hessian`, and `jvp` (forward mode, shaped like ``torch.func.jvp``).

All three read the op registry's one declaration per op (`ops.py`):

* `grad` runs the chain rule backwards over the recorded graph, keeping every gradient
  to itself (no tensor's ``.grad`` changes). With ``create_graph=True`` it runs the plain
  rule, `ops.input_gradient`, on Tensors, so each gradient is itself a recorded graph and
  can be differentiated again: grad of grad, Hessian-vector products, a Hessian.
* `jvp` runs forward: each node gets a *tangent* beside its value (the pair is a dual
  number, value + ε·tangent with ε² = 0), from its inputs' tangents — for an elementwise
  op, the local derivative times the input's tangent; for the others, the transpose of
  their declared vector-Jacobian product. One forward pass gives one column of the
  Jacobian (J·v), where one backward pass gives one row (vᵀ·J).
"""

from __future__ import annotations

import numpy as np

from .backprop import CustomOp, topological_order
from .ops import input_gradient
from .tensor import Tensor, constant_tensor, describe, enable_grad, float_array

__all__ = ["grad", "hessian", "gradient_and_hessian", "jvp", "tangent_steps", "TangentStep"]


def _as_tuple(value, what):
    """A Tensor or a sequence of Tensors as a tuple, and whether it was a single Tensor."""
    if isinstance(value, Tensor):
        return (value,), True
    if isinstance(value, (list, tuple)):
        for i, t in enumerate(value):
            if not isinstance(t, Tensor):
                raise TypeError(f"grad: {what}[{i}] is {describe(t)}, not a Tensor")
        if not value:
            raise ValueError(f"grad: {what} is empty")
        return tuple(value), False
    raise TypeError(f"grad: {what} must be a Tensor or a sequence of Tensors, got {describe(value)}")


def _graph_order(roots):
    """Every tensor that needs a gradient in the graphs of `roots`, parents before children.

    The concatenation of each root's order, each tensor kept at its first place: a tensor
    first met in an earlier root's order has all its parents before it there."""
    seen, order = set(), []
    for root in roots:
        for node in topological_order(root, only_grad=True):
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
    return order


def _inputs_of(node):
    """The node's inputs as stored: Tensors, or numbers kept in the node (constants)."""
    a, b, rest = node._a, node._b, node._rest
    if b is None:
        return (a,)
    return (a, b) if rest is None else (a, b, *rest)


def _seeds(outputs, grad_outputs, create_graph):
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray, int, float)) and len(outputs) == 1:
        grad_outputs = (grad_outputs,)
    grad_outputs = tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs; give one per output")
    seeds = []
    for i, (out, seed) in enumerate(zip(outputs, grad_outputs)):
        shape, dtype = out.shape, out.dtype
        if seed is None:
            if out.size != 1:
                raise ValueError(f"grad: outputs[{i}] has shape {shape}, not a single value; pass grad_outputs "
                                 "(∂L/∂output for each output, of its shape) or reduce it first, e.g. with .sum()")
            seed = np.ones(shape, dtype)
        elif isinstance(seed, Tensor):
            if seed.shape != shape:
                raise ValueError(f"grad: grad_outputs[{i}] has shape {seed.shape} but outputs[{i}] has shape {shape}")
            if create_graph:   # used as it is: a seed that depends on other tensors is differentiated too
                seeds.append(seed)
                continue
            seed = np.array(seed._data)
        else:
            seed = float_array(seed, "grad(grad_outputs=…)", copy=True)
            if seed.shape != shape:
                raise ValueError(f"grad: grad_outputs[{i}] has shape {seed.shape} but outputs[{i}] has shape {shape}")
        seed = seed.astype(dtype, copy=False)
        seeds.append(constant_tensor(seed[()] if seed.ndim == 0 else seed) if create_graph else seed)
    return seeds


def grad(outputs, inputs, grad_outputs=None, create_graph=False):
    """The gradients of `outputs` with respect to `inputs`, as a tuple of Tensors.

    Shaped like ``torch.autograd.grad``: `outputs` and `inputs` are Tensors or sequences
    of Tensors; `grad_outputs` gives ∂L/∂output for each output (needed for an output of
    more than one value; ones by default). The result has one Tensor per input, of its
    shape: Σ over outputs of ∂L/∂output · ∂output/∂input — zeros for an input the outputs
    do not depend on. No tensor's ``.grad`` changes.

    Without `create_graph` the gradients are constants (values only). With
    ``create_graph=True`` they are recorded, as functions of the graph's tensors, so they
    can be differentiated again::

        x = Tensor(2.0); y = x ** 3
        (dy,) = grad(y, x, create_graph=True)     # 3x² = 12, recorded
        (d2y,) = grad(dy, x)                      # 6x = 12
    """
    outputs, _ = _as_tuple(outputs, "outputs")
    inputs, _ = _as_tuple(inputs, "inputs")
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise ValueError(f"grad: inputs[{i}] does not require a gradient (requires_grad=False), "
                             "so nothing is differentiated with respect to it")
    for i, out in enumerate(outputs):
        if not out.requires_grad:
            raise ValueError(
                f"grad: outputs[{i}] does not depend on any tensor that needs a gradient: it was computed from "
                "constants, inside no_grad(), or from a gradient that grad() returned without create_graph=True "
                "(pass create_graph=True to the first grad() to differentiate its result again)")
    seeds = _seeds(outputs, grad_outputs, create_graph)
    grads = {}
    for out, seed in zip(outputs, seeds):
        old = grads.get(id(out))
        grads[id(out)] = seed if old is None else old + seed
    order = _graph_order(outputs)
    if create_graph:
        with enable_grad():
            _run(order, grads, _recorded_term)
    else:
        _run(order, grads, _value_term)
    results = []
    for x in inputs:
        g = grads.get(id(x))
        if not create_graph:
            g = np.zeros(x.shape, x.dtype) if g is None else np.array(g, dtype=x.dtype)
            results.append(constant_tensor(g[()] if g.ndim == 0 else g))
            continue
        with enable_grad():
            if g is None:
                g = np.zeros(x.shape, x.dtype)
            if not (isinstance(g, Tensor) and g.requires_grad):
                # A gradient that does not depend on x (a constant) is recorded as one that does, with
                # derivative zero, so that differentiating it again gives zeros rather than an error.
                g = g + 0.0 * x
            results.append(g)
    return tuple(results)


def _value_term(op, i, g, node, inputs):
    """∂L/∂input_i as an array: the fast path backward() runs (proved equal to the plain rule)."""
    datas = tuple(p._data if isinstance(p, Tensor) else p for p in inputs)
    c, _ = op.input_grad(i, g, node._data, datas, node._args)
    return c


def _recorded_term(op, i, g, node, inputs):
    """∂L/∂input_i as a recorded Tensor: the plain rule on Tensors."""
    try:
        return input_gradient(op, i, g, node, inputs, node._args)
    except TypeError as exc:   # a derivative written with functions that take arrays only (np.cos(a))
        raise TypeError(f"grad: the derivative of {op.name!r} for input {op.inputs[i]} cannot be recorded ({exc}); "
                        "write it with operators and Tensor methods (a * b, a.exp(), …) so that it works on "
                        "Tensors as well as arrays") from None


def _run(order, grads, term):
    """The chain rule backwards over `order`: each node's gradient, once complete, goes to its inputs."""
    for node in reversed(order):
        g = grads.get(id(node))
        op = node._op
        if g is None or op is None:
            continue
        if op.__class__ is CustomOp:
            raise ValueError(f"grad: node {node._function!r} was made by a hand-written rule (its _backward was "
                             "assigned), which writes into .grad; differentiate it with backward() instead")
        for i, parent in enumerate(_inputs_of(node)):
            if not isinstance(parent, Tensor) or not parent.requires_grad:
                continue
            c = term(op, i, g, node, _inputs_of(node))
            old = grads.get(id(parent))
            grads[id(parent)] = c if old is None else old + c


def hessian(output, inputs):
    """The Hessian of a scalar `output` with respect to `inputs` (a Tensor or a list of
    Tensors), as a NumPy matrix over their values flattened and concatenated: entry
    (j, k) is ∂²output / ∂θ_j ∂θ_k. One recorded gradient, then one grad() per entry of
    it (a row each): meant for small inputs."""
    return gradient_and_hessian(output, inputs)[1]


def gradient_and_hessian(output, inputs):
    """(∇output, Hessian) over `inputs`' values flattened and concatenated, as NumPy arrays."""
    inputs, _ = _as_tuple(inputs, "inputs")
    first = grad(output, inputs, create_graph=True)
    n = sum(x.size for x in inputs)
    rows = np.zeros((n, n))
    j = 0
    for g in first:
        flat = g.reshape(-1)
        for k in range(g.size):
            row = grad(flat[k], inputs)
            rows[j] = np.concatenate([r.data.reshape(-1) for r in row])
            j += 1
    return np.concatenate([g.data.reshape(-1) for g in first]), rows


# --------------------------------------------------------------------------- forward mode

class TangentStep:
    """One node of a forward-mode pass: its `value`, its `tangent` (∂node/∂t along the
    direction the inputs' tangents give), and the `terms` that made it: per input that has
    a tangent, (its operand index, the input, its tangent, the contribution J_input · tangent)."""

    __slots__ = ("index", "node", "value", "tangent", "terms")

    def __init__(self, index, node, tangent, terms):
        self.index, self.node, self.tangent, self.terms = index, node, tangent, terms
        self.value = node.data

    def __repr__(self):
        return f"TangentStep({self.index}, {self.node._function!r})"


def _tangent_term(op, i, node, inputs, tangent):
    """J_i · tangent: how input i's tangent moves the node's value."""
    datas = tuple(p._data if isinstance(p, Tensor) else p for p in inputs)
    out = node._data
    if op.elementwise:  # the local derivative times the input's tangent, in out's shape
        return np.broadcast_to(op.local(i, out, datas) * tangent, np.shape(out))
    # A vjp is linear in ∂L/∂out: u ↦ Jᵀu. Its transpose is J: J·t = ∂/∂u ⟨Jᵀu, t⟩, one grad().
    u = Tensor(np.zeros(np.shape(out), out.dtype))
    with enable_grad():
        pairing = (input_gradient(op, i, u, out, datas, node._args) * tangent).sum()
    (column,) = grad(pairing, u)
    return column._data


def tangent_steps(outputs, tangents):
    """Forward mode over the graphs of `outputs`: yields a `TangentStep` per computed node
    that needs a gradient, parents first. `tangents` maps each input Tensor (by identity,
    as a list of (tensor, tangent array) pairs) to its tangent; other leaves have none (0)."""
    outputs, _ = _as_tuple(outputs, "outputs")
    known = {id(t): np.asarray(v) for t, v in tangents}
    index = 0
    for node in _graph_order(outputs):
        op = node._op
        if op is None:
            continue
        if op.__class__ is CustomOp:
            raise ValueError(f"jvp: node {node._function!r} was made by a hand-written rule (its _backward was "
                             "assigned), which has no forward-mode rule")
        inputs = _inputs_of(node)
        terms, total = [], None
        for i, p in enumerate(inputs):
            t = known.get(id(p)) if isinstance(p, Tensor) else None
            if t is None:
                continue
            c = _tangent_term(op, i, node, inputs, t)
            terms.append((i, p, t, c))
            total = c if total is None else total + c
        if total is None:
            continue
        known[id(node)] = total = np.asarray(total, dtype=node.dtype)
        index += 1
        yield TangentStep(index, node, total, tuple(terms))


def jvp(f, primals, tangents):
    """Forward mode, shaped like ``torch.func.jvp``: ``(f(*primals), J·tangents)``.

    `primals` and `tangents` are tuples (of Tensors, arrays or numbers) of the same
    shapes; f is called on new leaf Tensors holding the primals' values and returns a
    Tensor or a tuple of Tensors. The second result is the directional derivative of
    each output along `tangents`, as constant Tensors, found in one forward pass over
    the graph f recorded (each node's value and tangent: a dual number).
    """
    if not callable(f):
        raise TypeError(f"jvp: f must be a function, got {describe(f)}")
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (of Tensors or arrays), as in torch.func.jvp")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: got {len(primals)} primals but {len(tangents)} tangents; give one tangent per primal")
    leaves, pairs = [], []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        value = float_array(p, f"jvp: primals[{i}]", copy=True)
        direction = float_array(t, f"jvp: tangents[{i}]", copy=True)
        if direction.shape != value.shape:
            raise ValueError(f"jvp: tangents[{i}] has shape {direction.shape} but primals[{i}] has shape "
                             f"{value.shape}")
        leaf = Tensor(value)
        leaves.append(leaf)
        pairs.append((leaf, direction.astype(value.dtype)))
    with enable_grad():
        result = f(*leaves)
    single = isinstance(result, Tensor)
    outputs = (result,) if single else tuple(result) if isinstance(result, (tuple, list)) else None
    if outputs is None or not all(isinstance(o, Tensor) for o in outputs):
        raise TypeError(f"jvp: f must return a Tensor or a tuple of Tensors, got {describe(result)}")
    known = {id(leaf): t for leaf, t in pairs}
    needed = [o for o in outputs if o.requires_grad]
    if needed:
        for step in tangent_steps(needed, pairs):
            known[id(step.node)] = step.tangent
    out_tangents = []
    for o in outputs:
        t = known.get(id(o))
        t = np.zeros(o.shape, o.dtype) if t is None else np.array(t, dtype=o.dtype)
        out_tangents.append(constant_tensor(t[()] if t.ndim == 0 else t))
    return (outputs[0], out_tangents[0]) if single else (tuple(outputs), tuple(out_tangents))
