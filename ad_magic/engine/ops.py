"""The operations, each declared once: the op registry.

Every operation is one `Op`: its forward function, its formula (``out = a / b``) and,
for each input, one vector-Jacobian product — the rule that turns ∂L/∂out into
∂L/∂input — with its text. Elementwise operations declare the *local derivative*
∂out/∂input instead (``1/b``, ``-a/b²``) and the chain rule ∂L/∂input = ∂L/∂out · local,
summed over broadcast axes, is applied for them. Everything else is derived from these
declarations: the backward rules, the broadcast errors, the steps' `rule`, `terms` and
`ChainTerm.factor`, forward replay, and the table in docs/ops.md (`ops_table()`).
The chain rule for one input of one node, as plain code, is `input_gradient` (for mul:
∂L/∂a = unbroadcast(∂L/∂out · b, a.shape)). Every declared derivative is written with
operations NumPy arrays and Tensors share, so the same rule runs on Tensors, recorded,
for second derivatives (`functional.grad(..., create_graph=True)`). `backward()` runs a
fast path for arrays that one executor writes from each declaration when the op is
registered (`op.backward_source` shows it), the same code for every op, unrolled over
its inputs; a test proves it equal to `input_gradient` for every op.

Adding an operation is one entry: ``cube = elementwise("cube", "out = a³", lambda a: a**3,
("3a²", lambda out, a: 3 * a * a))``; ``cube(x)`` then records, differentiates,
replays and explains itself like the built-in ones.
"""

from __future__ import annotations

import linecache
import math
import numbers
import operator
import re

import numpy as np

from .non_finite import explained  # log, div, pow, exp: a NaN or inf is explained in one sentence
from .tensor import BORROWED, OWNED, Tensor, accumulate, compact, constant_tensor, float_array, grad_mode

__all__ = [
    "Op", "OPS", "elementwise", "structural", "unbroadcast", "ops_table",
    "add", "sub", "mul", "div", "neg", "power", "exp", "log", "tanh", "sigmoid", "relu",
    "matmul", "linear", "tensor_sum", "mean", "reshape", "transpose", "getitem", "scatter_add",
    "input_gradient", "shape_of", "values_of", "broadcast_to",
]

_ndarray = np.ndarray
_new = Tensor.__new__
_F32 = np.dtype(np.float32)
_LETTERS = ("a", "b", "c")

OPS: dict = {}
_BUILT_IN: frozenset = frozenset()  # the names declared in this module (set at its end), never replaced
"""Every registered operation by name."""

# Local derivatives that are constants: the chain rule passes ∂L/∂out through (1) or
# negates it (-1) without multiplying.
ONE, MINUS_ONE = "1", "-1"


class _Operand:
    """A local derivative that is one of the op's own values (for mul, ∂out/∂a = b):
    the chain rule then multiplies by that value with no function call."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index

    def __call__(self, out, *inputs):
        return out if self.index is None else inputs[self.index]

    def __repr__(self):
        return "out" if self.index is None else "ab"[self.index]


A, B, OUT = _Operand(0), _Operand(1), _Operand(None)


def unbroadcast(grad, shape):
    """Sum `grad` back to `shape`: the gradient of NumPy broadcasting.

    Broadcasting copies an input along new leading axes and along axes of length 1;
    the chain rule adds up the gradient over every copy. `grad` may be an array or a
    Tensor (then the sum is recorded, so it can be differentiated again).
    """
    return _unbroadcast(grad, shape)[0]


def _unbroadcast(grad, shape):
    """(unbroadcast(grad, shape), whether the result is a new array rather than a view of grad)."""
    gshape = shape_of(grad)
    if gshape == shape:
        return grad, False
    extra = len(gshape) - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and gshape[extra + i] != 1
    )
    if isinstance(grad, Tensor):
        return (grad.sum(axis=axes, keepdims=True) if axes else grad).reshape(shape), bool(axes)
    if not axes:
        return np.reshape(grad, shape), False
    return np.reshape(np.sum(grad, axis=axes, keepdims=True), shape), True


# Derivatives are written once, with operations that NumPy arrays and Tensors both have
# (operators, .sum, .reshape, .transpose, .T, @), so one declaration serves the fast
# first-order backward (on arrays) and the recorded one (on Tensors, for grad of grad).
# The few steps the two spell differently are these helpers.

def shape_of(x) -> tuple:
    """The shape of an array, a number (``()``) or a Tensor."""
    return x.shape if isinstance(x, Tensor) else np.shape(x)


def values_of(x):
    """The values of a Tensor (its data), or x itself: for a decision on values (a mask)."""
    return x._data if isinstance(x, Tensor) else x


def broadcast_to(x, shape):
    """x repeated along the axes broadcasting adds, to `shape` (the opposite of unbroadcast).
    On a Tensor it is an add of zeros of that shape, recorded like any op."""
    if isinstance(x, Tensor):
        return x if x.shape == tuple(shape) else x + np.zeros(shape, x.dtype)
    return np.broadcast_to(x, shape)


def _select(mask, x, fill):
    """x where `mask` (a boolean array of values, a constant), else `fill`."""
    if isinstance(x, Tensor):
        keep = mask.astype(x.dtype)
        return x * keep + fill * (1 - keep)
    return np.where(mask, x, fill)


def _log(x):
    return x.log() if isinstance(x, Tensor) else np.log(x)


# --------------------------------------------------------------------------- recording

def _node(data, a, b, rest, op, args, record):
    """The output tensor of an operation, linked to its inputs when a graph is recorded."""
    out = Tensor.__new__(Tensor)
    out._data = data
    out._grad = None
    out._gstate = BORROWED
    out.name = None
    out._mark = 0
    if grad_mode.enabled:  # recorded even when no input needs a gradient: forward() replays it
        out._a, out._b, out._rest, out._op, out._function, out._args = a, b, rest, op, op.name, args
        out.requires_grad = bool(record)
    else:  # no_grad(): a constant, outside any graph
        out._a = out._b = out._rest = out._op = out._function = out._args = None
        out.requires_grad = False
    return out


def _constant(value, like, op):
    """A Python number or array used in an operation, as a constant input.

    A number stays an immutable Python float, which mixes with the other operand's data
    as NumPy does (it takes that float type); zero becomes a NumPy scalar, so that
    derivatives such as 1/b give inf as NumPy does rather than a ZeroDivisionError. Other
    numbers become NumPy scalars; an array becomes a constant Tensor of this node only,
    holding a copy: writing into the caller's array later (``X[:] = …``) changes neither
    the recorded value nor its gradients (replay a new batch through a Tensor's data).
    """
    kind = type(value)
    if kind is int:
        kind, value = float, float(value)
    if kind is float and value:
        return value
    if kind is float or (isinstance(value, (numbers.Real, np.bool_)) and not isinstance(value, _ndarray)):
        return np.float32(value) if like.dtype is _F32 else np.float64(value)
    if isinstance(value, (_ndarray, list, tuple)):
        return constant_tensor(compact(float_array(value, op, copy=True)))
    raise TypeError(
        f"{op}: unsupported operand of type {type(value).__name__}; expected a Tensor, a number or a NumPy array"
    )


def _data(x):
    return x._data if isinstance(x, Tensor) else x


def _numpy(x):
    """x as a NumPy array or scalar (Python numbers and lists become arrays)."""
    return x if isinstance(x, (_ndarray, np.generic)) else np.asarray(x)


def _broadcast_error(name, datas):
    """The ValueError for inputs whose shapes do not broadcast together: one sentence."""
    shapes = [str(np.shape(d)) for d in datas]
    return ValueError(f"{name}: cannot broadcast shapes {', '.join(shapes[:-1])} and {shapes[-1]} together")


def _needs(x):
    return isinstance(x, Tensor) and x.requires_grad


# --------------------------------------------------------------------------- the Op

class Op:
    """One operation: forward, one vector-Jacobian product per input, and their texts.

    * `name`, `formula` (``out = a / b``), `inputs` (letters a, b, c).
    * `derivatives`: per input, the text of ∂out/∂input (elementwise ops) or of the
      product that gives ∂L/∂input (the others, e.g. ``∂L/∂out @ bᵀ``).
    * `locals`: per input, ∂out/∂input as ``f(out, a, b, …)`` (elementwise ops; ONE or
      MINUS_ONE for constants), or None.
    * `vjps`: per input, ``f(g, out, a, b, …, args)`` giving ∂L/∂input from g = ∂L/∂out
      (structural ops), or None.
    * `backward(node)`, `terms` and `backward_source`: the chain rule the one executor
      (`_executor`) wrote and compiled from these declarations when the op was
      registered: the node's rule, each input's contribution alone (`input_grad`), and
      their Python source.
    """

    __slots__ = ("name", "formula", "forward", "inputs", "derivatives", "locals", "vjps",
                 "broadcast", "params", "prepare", "terms", "backward", "backward_source", "__dict__")

    def __init__(self, name, formula, forward, derivatives, *, locals=None, vjps=None,
                 broadcast=False, params=False, prepare=None, doc=None):
        if name in _BUILT_IN:
            raise ValueError(f"an operation named {name!r} is already registered (it is built in): choose another name")
        # Any other name may be declared again (re-running a notebook cell): the newest
        # declaration is the op from now on; nodes recorded before keep the op that made them.
        self.name, self.formula, self.forward = name, formula, forward
        self.derivatives = tuple(derivatives)
        self.inputs = _LETTERS[: len(self.derivatives)] if len(self.derivatives) <= 3 else tuple(
            f"x{i}" for i in range(len(self.derivatives)))
        self.locals = None if locals is None else tuple(locals)
        self.vjps = None if vjps is None else tuple(vjps)
        self.broadcast, self.params, self.prepare = broadcast, params, prepare
        self.backward_source, self.backward, self.terms = _executor(self)
        self.__doc__ = doc or f"{formula}.   " + ",  ".join(
            f"∂L/∂{x} = {self.expression(i)}" for i, x in enumerate(self.inputs))
        OPS[name] = self

    @property
    def elementwise(self) -> bool:
        return self.locals is not None

    def expression(self, i) -> str:
        """How ∂L/∂input_i is computed, as text."""
        if self.locals is not None:
            text = self.derivatives[i]
            return f"∂L/∂out · ({text})" if " " in text or text.startswith("-") else f"∂L/∂out · {text}"
        return self.derivatives[i]

    def __repr__(self):
        return f"<op {self.name}: {self.formula}>"

    # -- applying it --------------------------------------------------------------
    def __call__(self, *inputs, **params):
        """Apply the operation to Tensors (or numbers and arrays: constants), recording it."""
        n = len(self.derivatives)
        if len(inputs) != n and not (self.params and len(inputs) > n):
            raise TypeError(f"{self.name}: expected {n} operand(s), got {len(inputs)}")
        operands, extra = inputs[:n], inputs[n:]
        like = next((t for t in operands if isinstance(t, Tensor)), None)
        if like is None:
            kinds = " and ".join(type(t).__name__ for t in operands)
            raise TypeError(f"{self.name}: at least one operand must be a Tensor, got {kinds}")
        operands = [t if isinstance(t, Tensor) else _constant(t, like._data, self.name) for t in operands]
        datas = [_data(t) for t in operands]
        args = self.prepare(*datas, *extra, **params) if self.prepare is not None else None
        data = self.compute(datas, args)
        a = operands[0]
        b = operands[1] if n > 1 else None
        rest = tuple(operands[2:]) if n > 2 else None
        return _node(data, a, b, rest, self, args, any(_needs(t) for t in operands))

    def replay(self, node):
        """The node's data recomputed from its parents' current data (forward replay)."""
        parents = (node._a,) if node._b is None else (node._a, node._b) if node._rest is None else (
            node._a, node._b, *node._rest)
        return self.compute([_data(p) for p in parents], node._args)

    def compute(self, datas, args):
        """The forward function on input arrays; a shape mismatch is one sentence."""
        try:
            return self.forward(*datas, args) if self.params else self.forward(*datas)
        except ValueError:
            if self.broadcast:
                raise _broadcast_error(self.name, datas) from None
            raise

    # -- differentiating it -------------------------------------------------------------
    # `backward` (the node's rule) and `input_grad` are the one chain-rule executor below,
    # built from this declaration when the op is registered.

    def input_grad(self, i, g, out, datas, args):
        """(∂L/∂input_i, whether it is a new array) for g = ∂L/∂out, summed back to the
        input's shape: the term `backward` adds for that input."""
        g, datas = _numpy(g), tuple(_numpy(d) for d in datas)
        return self.terms[i](g, out, datas, args)

    def local(self, i, out, datas):
        """The local derivative ∂out/∂input_i (elementwise ops), broadcast to out's shape; else None.

        It is the value the chain rule multiplies ∂L/∂out by (`ChainTerm.factor`): the same
        declared function, on the same values."""
        if self.locals is None:
            return None
        f = self.locals[i]
        shape = np.shape(out)
        dtype = np.result_type(out)
        if f is ONE:
            return np.ones(shape, dtype)
        if f is MINUS_ONE:
            return -np.ones(shape, dtype)
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(f(out, *datas), dtype=dtype), shape).copy()


# --------------------------------------------------------------------------- the chain rule, plainly

def input_gradient(op, i, g, out, inputs, args=None):
    """∂L/∂input_i of one node, from g = ∂L/∂out: the chain rule, as plain code.

    This is what backward does for each input of each node, read from the op's one
    declaration. An elementwise op multiplies by its local derivative ∂out/∂input and sums
    back over the axes broadcasting added; for ``mul`` (out = a · b) that is

        ∂L/∂a = unbroadcast(g · b, a.shape)        ∂L/∂b = unbroadcast(g · a, b.shape)

    Any other op applies its declared vector-Jacobian product (for ``matmul``, g @ bᵀ).
    `g`, `out` and `inputs` may be NumPy arrays or Tensors: every derivative is written
    with operations both have, so on Tensors each step is recorded and the gradient can
    be differentiated again (``grad(..., create_graph=True)``). `backward()` runs the same
    rule through a fast path the executor below writes for arrays; a test proves the two
    equal for every op.
    """
    if op.vjps is not None:
        return op.vjps[i](g, out, *inputs, args)
    local = op.locals[i]
    if local is ONE:
        term = g
    elif local is MINUS_ONE:
        term = -g
    else:
        term = g * local(out, *inputs)
    return unbroadcast(term, shape_of(inputs[i])) if op.broadcast else term


# --------------------------------------------------------------------------- the chain rule
# One executor runs every op's chain rule: `_executor(op)`, called once when the op is
# registered, reads the declaration and writes the op's backward as Python source, which
# is compiled once (readable in `op.backward_source`). Each input gets one *term*, written
# from its declaration by `_term_source` — ∂L/∂out times the local derivative (passed
# through for 1, negated for -1, times the operand for mul, else the declared function),
# summed back over broadcast axes; or the declared vjp, its shape checked — and the result
# is given to the input's grad by `_GIVE` (who owns the array: `accumulate`). The same
# term, compiled alone, is `Op.input_grad`. So every op of every arity runs code written
# by this one generator, unrolled over its inputs: no dispatch per node, and no second,
# hand-written copy of the chain rule beside it.

_GIVE = """\
old = p{i}._grad
if c.dtype is not d{i}.dtype:
    accumulate(p{i}, c, fresh)
elif old is None:  # the first contribution: kept as it is
    p{i}._grad, p{i}._gstate = c, (OWNED if fresh else BORROWED)
elif type(old) is not _ndarray:  # a scalar: the sum is a new one
    p{i}._grad, p{i}._gstate = old + c, OWNED
else:
    accumulate(p{i}, c, fresh)"""


def _term_source(op, i):
    """The chain rule for input i as Python lines: (c, fresh) = (∂L/∂input_i in the input's
    shape, whether c is a new array), from g = ∂L/∂out, out and the inputs' data d0, d1, …"""
    datas = ", ".join(f"d{j}" for j in range(len(op.inputs)))
    if op.locals is None:
        return [f"c = vjp{i}(g, out, {datas}, args)",
                f"c, fresh = _vjp_result(op, {i}, c, g, out, ({datas},))"]
    local = op.locals[i]
    if local is ONE:
        lines = ["c, fresh = g, False"]
    elif local is MINUS_ONE:
        lines = ["c, fresh = -g, True"]
    elif isinstance(local, _Operand):  # mul's ∂out/∂a = b: a value the node holds already
        lines = [f"c, fresh = g * {'out' if local.index is None else f'd{local.index}'}, True"]
    else:
        lines = [f"c, fresh = _times_local(local{i}(out, {datas}), g, out, ({datas},))"]
    if op.broadcast:  # inputs broadcast together: sum back over the broadcast axes
        lines += [f"if c.shape != d{i}.shape:", f"    c, summed = _unbroadcast(c, d{i}.shape)",
                  "    fresh = fresh or summed"]
    return lines


def _executor(op):
    """Write and compile the op's chain rule: (source, backward, terms). backward(node) adds
    the node's contribution to each input that needs a gradient; terms[i](g, out, datas,
    args) is input i's contribution alone (`Op.input_grad`)."""
    n = len(op.inputs)
    names = [f"p{i}" for i in range(n)]
    datas = ", ".join(f"d{i}" for i in range(n))
    title = " ".join(f"{op.name}: {op.formula}".split())  # one line, whatever the texts hold
    terms = [_term_source(op, i) for i in range(n)]
    uses = set(re.findall(r"\w+", " ".join(line for lines in terms for line in lines)))
    source = [f"def backward(node):  # {title}",
              "    g = node._grad",
              "    if g is None:",
              "        return"]
    source += [f"    {name} = node.{slot}" for name, slot in (("out", "_data"), ("args", "_args")) if name in uses]
    source.append("    p0 = node._a")
    if n > 1:
        source.append("    p1 = node._b")
    if n > 2:
        source.append(f"    {', '.join(names[2:])}, = node._rest")
    source += [f"    d{i} = p{i}._data if isinstance(p{i}, Tensor) else p{i}" for i in range(n)]
    for i in range(n):  # (d is p only for a number kept in the node: it needs no gradient)
        source.append(f"    if d{i} is not p{i} and p{i}.requires_grad:  # ∂L/∂{op.inputs[i]}")
        source += ["        " + line for line in terms[i] + _GIVE.format(i=i).split("\n")]
    for i in range(n):
        source += ["", f"def term{i}(g, out, datas, args):", f"    {datas}, = datas"]
        source += ["    " + line for line in terms[i]] + ["    return c, fresh"]
    text = "\n".join(source) + "\n"
    filename = f"<chain rule of {op.name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)  # tracebacks show it
    namespace = {"op": op, "Tensor": Tensor, "accumulate": accumulate, "OWNED": OWNED, "BORROWED": BORROWED,
                 "_ndarray": _ndarray, "_unbroadcast": _unbroadcast, "_times_local": _times_local,
                 "_vjp_result": _vjp_result}
    for i in range(n):
        namespace[f"local{i}"] = None if op.locals is None else op.locals[i]
        namespace[f"vjp{i}"] = None if op.vjps is None else op.vjps[i]
    exec(compile(text, filename, "exec"), namespace)
    return text, namespace["backward"], tuple(namespace[f"term{i}"] for i in range(n))


def _times_local(f, g, out, datas):
    """(g · f, True) for a declared local derivative's value f: into f when f is a new
    array of the same shape and type nobody else holds."""
    if (type(f) is _ndarray and type(g) is _ndarray and f.base is None and f.shape == g.shape
            and f.dtype == g.dtype and f is not out and all(f is not d for d in datas)):
        return np.multiply(f, g, out=f), True
    return g * f, True


def _vjp_result(op, i, c, g, out, datas):
    """(c, whether it is a new array) for the vjp's result c, whose shape must be input i's."""
    shape = np.shape(datas[i])
    if np.shape(c) != shape:
        raise ValueError(f"{op.name}: the vjp for input {op.inputs[i]} gave shape {np.shape(c)}, expected {shape}")
    fresh = type(c) is _ndarray and c.base is None and c is not g and c is not out and all(c is not d for d in datas)
    return c, fresh


def elementwise(name, formula, forward, *locals, doc=None):
    """Declare an elementwise op from its forward function and, per input, a pair
    (text of ∂out/∂input, ∂out/∂input as a function of out and the inputs).

    Returns the function that applies it (``add(t1, t2)``), with the `Op` as its `op`.
    """
    op = Op(name, formula, forward, [text for text, _ in locals], locals=[f for _, f in locals],
            broadcast=len(locals) > 1, doc=doc)
    if len(locals) == 2:
        op.replay, function = _binary_replay(op), _binary_function(op)
    elif len(locals) == 1:
        op.replay, function = _unary_replay(op), _unary_function(op)
    else:
        return op
    function.__name__ = function.__qualname__ = name
    function.__doc__ = op.__doc__
    function.op = op
    return function


# The elementwise ops are most of a scalar graph, so their recording and replay are
# closures specialised by arity (their chain rule is the executor's, like every op's).

def _binary_function(op):
    forward, name = op.forward, op.name
    mode = grad_mode

    def apply(t1, t2):
        if isinstance(t1, Tensor):
            a = t1._data
            if isinstance(t2, Tensor):
                b = t2._data
                record = t1.requires_grad or t2.requires_grad
            else:
                t2 = b = _constant(t2, a, name)
                if isinstance(b, Tensor):
                    b = b._data
                record = t1.requires_grad
        elif isinstance(t2, Tensor):
            b = t2._data
            t1 = a = _constant(t1, b, name)
            if isinstance(a, Tensor):
                a = a._data
            record = t2.requires_grad
        else:
            raise TypeError(
                f"{name}: at least one operand must be a Tensor, got {type(t1).__name__} and {type(t2).__name__}"
            )
        try:
            data = forward(a, b)
        except ValueError:
            raise _broadcast_error(name, (a, b)) from None
        out = _new(Tensor)
        out._data = data
        out._grad = out.name = out._rest = out._args = None
        out._gstate, out._mark = BORROWED, 0
        if mode.enabled:  # constants too (requires_grad False): a new mini-batch is replayed
            out._a, out._b, out._op, out._function, out.requires_grad = t1, t2, op, name, record
        else:
            out._a = out._b = out._op = out._function = None
            out.requires_grad = False
        return out

    return apply


def _unary_function(op):
    forward, name = op.forward, op.name
    mode = grad_mode

    def apply(t):
        if not isinstance(t, Tensor):
            t = constant_tensor(compact(float_array(t, name, copy=True)))  # the caller's array is theirs
        data = forward(t._data)
        out = _new(Tensor)
        out._data = data
        out._grad = out.name = out._b = out._rest = out._args = None
        out._gstate, out._mark = BORROWED, 0
        if mode.enabled:
            out._a, out._op, out._function, out.requires_grad = t, op, name, t.requires_grad
        else:
            out._a = out._op = out._function = None
            out.requires_grad = False
        return out

    return apply


def _binary_replay(op):
    forward, name = op.forward, op.name

    def replay(node):
        a, b = node._a, node._b
        a = a._data if isinstance(a, Tensor) else a
        b = b._data if isinstance(b, Tensor) else b
        try:
            return forward(a, b)
        except ValueError:
            raise _broadcast_error(name, (a, b)) from None

    return replay


def _unary_replay(op):
    forward = op.forward

    def replay(node):
        return forward(node._a._data)

    return replay


def structural(name, formula, forward, *vjps, params=False, prepare=None, doc=None):
    """Declare an op from its forward function and, per input, a pair (text, vjp) with
    ``vjp(g, out, *inputs, args)`` giving ∂L/∂input from g = ∂L/∂out."""
    return Op(name, formula, forward, [text for text, _ in vjps], vjps=[f for _, f in vjps],
              params=params, prepare=prepare, doc=doc)


# --------------------------------------------------------------------------- elementwise ops
# Local derivatives get out (the op's result) and the inputs. A function that returns a
# new array lets the chain rule multiply into it in place (one array per input).

def _neg_ratio(out, a, b):
    f = out / b  # -a/b² = -out/b, one division
    return np.negative(f, out=f) if type(f) is _ndarray else -f


def _pow_base(out, a, b):
    """b·a^(b-1), with d/da a**0 = 0 even at a = 0 (where 0 · 0**-1 is nan)."""
    exponent_zero = np.asarray(values_of(b)) == 0
    if not np.any(exponent_zero):
        return b * a ** (b - 1)
    keep = ~exponent_zero   # where b = 0 the base is replaced by 1 and the result by 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return b * _select(keep, a, 1.0) ** (b - 1) * keep.astype(np.result_type(values_of(out)))


def _pow_exponent(out, a, b):
    """out·log(a), with log(a) taken as 0 at a = 0 (the limit of out·log(a), out = 0 there)
    and as nan for a < 0 (a negative base has no real power for most exponents)."""
    base = np.asarray(values_of(a))
    positive = base > 0
    if np.all(positive):
        return out * _log(a)
    dtype = np.result_type(values_of(out))
    beyond = np.where(base < 0, np.nan, 0.0).astype(dtype)
    return out * (_log(_select(positive, a, 1.0)) * positive.astype(dtype) + beyond)


def _tanh_local(out, a):
    if type(out) is _ndarray:
        f = np.multiply(out, out)
        if type(f) is _ndarray:     # a 0-d array's product is a NumPy scalar: no in-place
            return np.subtract(1, f, out=f)
        return 1 - f
    return 1 - out * out


def _sigmoid(x):
    if type(x) is not _ndarray or x.ndim == 0:
        # exp(-|x|) never overflows; split by sign for full precision on both tails.
        z = math.exp(-abs(float(x)))
        kind = x.dtype.type if hasattr(x, "dtype") else np.float64   # a Python number: float64
        return kind(1 / (1 + z) if x >= 0 else z / (1 + z))
    # Arrays: 1 / (1 + exp(-x)) in place, one allocation. exp(-x) overflows to inf for
    # x < -709 (float64), giving exactly 0 where the true value is below 1e-308.
    out = np.negative(x)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def _sigmoid_local(out, a):
    if type(out) is _ndarray:
        f = np.subtract(1, out)
        if type(f) is _ndarray:     # a 0-d array's difference is a NumPy scalar: no in-place
            return np.multiply(f, out, out=f)
        return f * out
    return out * (1 - out)


def _relu_local(out, a):
    if isinstance(a, Tensor):  # the 0/1 mask is a constant: its own derivative is zero
        return (a._data > 0).astype(a.dtype)
    if type(a) is _ndarray:
        return np.greater(a, 0, out=np.empty(a.shape, np.result_type(out)))  # the 0/1 mask as floats
    return np.result_type(out).type(a > 0)


add = elementwise("add", "out = a + b", operator.add, ("1", ONE), ("1", ONE))
sub = elementwise("sub", "out = a - b", operator.sub, ("1", ONE), ("-1", MINUS_ONE))
mul = elementwise("mul", "out = a · b", operator.mul, ("b", B), ("a", A))
div = elementwise("div", "out = a / b", explained("div", operator.truediv),
                  ("1/b", lambda out, a, b: 1 / b), ("-a/b²", _neg_ratio))
power = elementwise("pow", "out = a ** b", explained("pow", operator.pow),
                    ("b·a^(b-1)", _pow_base), ("out·log(a)", _pow_exponent))
neg = elementwise("neg", "out = -a", operator.neg, ("-1", MINUS_ONE))
exp = elementwise("exp", "out = exp(a)", explained("exp", np.exp), ("out", OUT))
log = elementwise("log", "out = log(a)", explained("log", np.log), ("1/a", lambda out, a: 1 / a),
                  doc="out = log(a), the natural logarithm.   ∂L/∂a = ∂L/∂out · 1/a")
tanh = elementwise("tanh", "out = tanh(a)", np.tanh, ("1 - out²", _tanh_local))
sigmoid = elementwise("sigmoid", "out = σ(a) = 1/(1 + exp(-a))", _sigmoid, ("out·(1 - out)", _sigmoid_local))
relu = elementwise("relu", "out = max(a, 0)", lambda a: np.maximum(a, 0), ("1 if a > 0 else 0", _relu_local))


# --------------------------------------------------------------------------- matrix products

def _matmul_check(A, B):
    if np.ndim(A) == 0 or np.ndim(B) == 0:
        raise ValueError(
            f"matmul: both operands need at least one dimension, got shapes {np.shape(A)} and {np.shape(B)} "
            "(use * to multiply by a scalar)"
        )
    return None


def _matmul_forward(A, B, args):
    try:
        return np.matmul(A, B)
    except ValueError:
        raise ValueError(
            f"matmul: shapes {np.shape(A)} and {np.shape(B)} do not match (the last axis of the left operand "
            f"must equal the {'only' if np.ndim(B) == 1 else 'second-to-last'} axis of the right one)"
        ) from None


def _with_axis(shape, axis):
    """`shape` with an axis of length 1 inserted at `axis` (negative: from the end)."""
    axis = axis if axis >= 0 else len(shape) + 1 + axis
    return tuple(shape[:axis]) + (1,) + tuple(shape[axis:])


def _swap_last(x):
    """x with its last two axes swapped (the transpose of each matrix in a batch)."""
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return x.transpose(tuple(axes))


def _as_matrices(g, A, B):
    """A 1-D left operand as a row (1, n), a 1-D right one as a column (n, 1), and g to match."""
    A2 = A.reshape(_with_axis(A.shape, 0)) if A.ndim == 1 else A
    B2 = B.reshape(_with_axis(B.shape, -1)) if B.ndim == 1 else B
    if A.ndim == 1:
        g = g.reshape(_with_axis(shape_of(g), -2 if B.ndim > 1 else 0))
    if B.ndim == 1:
        g = g.reshape(_with_axis(shape_of(g), -1))
    return g, A2, B2


def _matmul_vjp_a(g, out, A, B, args):
    g, A2, B2 = _as_matrices(g, A, B)
    return unbroadcast(g @ _swap_last(B2), A2.shape).reshape(A.shape)


def _matmul_vjp_b(g, out, A, B, args):
    g, A2, B2 = _as_matrices(g, A, B)
    if B2.ndim == 2 and A2.ndim > 2:  # batched @ matrix: one big product, no batch sum
        n, k = A2.shape[-1], g.shape[-1]
        return (A2.reshape(-1, n).T @ g.reshape(-1, k)).reshape(B.shape)
    return unbroadcast(_swap_last(A2) @ g, B2.shape).reshape(B.shape)


matmul = structural(
    "matmul", "out = a @ b", _matmul_forward,
    ("∂L/∂out @ bᵀ", _matmul_vjp_a), ("aᵀ @ ∂L/∂out", _matmul_vjp_b),
    params=True, prepare=_matmul_check,
    doc="out = a @ b (vector·vector, matrix·vector, vector·matrix, matrix·matrix, batched).\n\n"
        "∂L/∂a = ∂L/∂out @ bᵀ,  ∂L/∂b = aᵀ @ ∂L/∂out  (1-D operands treated as a row/column).",
)


def _linear_check(x, W, b):
    if np.ndim(W) != 2 or np.shape(b) != (np.shape(W)[1],) or np.ndim(x) == 0 or np.shape(x)[-1] != np.shape(W)[0]:
        raise ValueError(
            "linear: expected x of shape (..., n_in), W of shape (n_in, n_out) and b of shape (n_out,), "
            f"got {np.shape(x)}, {np.shape(W)} and {np.shape(b)}"
        )
    return None


def _linear_forward(x, W, b, args):
    data = np.matmul(x, W)
    if np.result_type(data, b) == data.dtype:
        data += b  # into the fresh product: no second array as large as the output
        return data
    return data + b


linear = structural(
    "linear", "out = a @ b + c", _linear_forward,
    ("∂L/∂out @ bᵀ", lambda g, out, x, W, b, args: g @ W.T),
    ("aᵀ @ ∂L/∂out", lambda g, out, x, W, b, args: x.reshape(-1, W.shape[0]).T @ g.reshape(-1, W.shape[1])),
    ("∂L/∂out summed over rows", lambda g, out, x, W, b, args: g.reshape(-1, W.shape[1]).sum(axis=0)),
    params=True, prepare=_linear_check,
    doc="out = x @ W + b, the affine map of a Linear layer, as one node (as PyTorch's addmm).\n\n"
        "∂L/∂x = ∂L/∂out @ Wᵀ,  ∂L/∂W = xᵀ @ ∂L/∂out,  ∂L/∂b = ∂L/∂out summed over every axis but the last.",
)


# --------------------------------------------------------------------------- reductions and shapes

# NumPy's own error for an axis out of range (a ValueError and an IndexError both).
_AxisError = getattr(np, "exceptions", np).AxisError


def _normalize_axis(op):
    def prepare(a, axis=None, keepdims=False):
        ndim = np.ndim(a)
        if axis is None:
            return None, bool(keepdims)
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        normalized = []
        for ax in axes:
            if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
                raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
            if not -ndim <= ax < ndim:
                raise _AxisError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dimension(s)")
            normalized.append(int(ax) % ndim)
        if len(set(normalized)) != len(normalized):
            raise ValueError(f"{op}: repeated axis in {axis!r}")
        return tuple(normalized), bool(keepdims)
    return prepare


def _expand_back(g, shape, axes, keepdims):
    """g, the gradient of a sum over `axes`, copied back along those axes to `shape`."""
    if axes is None:
        axes = tuple(range(len(shape)))
    if not keepdims:
        g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))
    return broadcast_to(g, shape)


def _count(shape, axes):
    return max(math.prod(shape) if axes is None else math.prod(shape[i] for i in axes), 1)


tensor_sum = structural(
    "sum", "out = a.sum(axis)", lambda a, args: np.sum(a, axis=args[0], keepdims=args[1]),
    ("∂L/∂out copied back along the summed axes",
     lambda g, out, a, args: _expand_back(g, shape_of(a), *args)),
    params=True, prepare=_normalize_axis("sum"),
)

mean = structural(
    "mean", "out = a.mean(axis)", lambda a, args: np.mean(a, axis=args[0], keepdims=args[1]),
    ("∂L/∂out / n copied back along the averaged axes",
     lambda g, out, a, args: _expand_back(g / _count(shape_of(a), args[0]), shape_of(a), *args)),
    params=True, prepare=_normalize_axis("mean"),
)


def _reshape_prepare(a, shape):
    try:
        return tuple(np.shape(np.reshape(a, shape)))
    except (ValueError, TypeError):
        raise ValueError(
            f"reshape: cannot reshape a tensor of shape {np.shape(a)} into shape {tuple(shape)}"
        ) from None


reshape = structural(
    "reshape", "out = a.reshape(shape)", lambda a, shape: np.reshape(a, shape),
    ("∂L/∂out reshaped to a's shape", lambda g, out, a, args: g.reshape(shape_of(a))),
    params=True, prepare=_reshape_prepare,
)


def _transpose_prepare(a, axes=None):
    if axes is None:
        return None
    ndim = np.ndim(a)
    try:
        axes = tuple(int(ax) for ax in axes)
    except (TypeError, ValueError):
        raise TypeError(f"transpose: axes must be integers, got {axes!r}") from None
    if len(axes) != ndim or any(not -ndim <= ax < ndim for ax in axes) or \
            sorted(ax % ndim for ax in axes) != list(range(ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {ndim} axes of shape {np.shape(a)}")
    return tuple(ax % ndim for ax in axes)


def _transpose_vjp(g, out, a, axes):
    return g.T if axes is None else g.transpose(tuple(int(i) for i in np.argsort(axes)))


transpose = structural(
    "transpose", "out = a.transpose(axes)", lambda a, axes: np.transpose(a, axes),
    ("∂L/∂out transposed back", _transpose_vjp),
    params=True, prepare=_transpose_prepare,
)


def _plain_index(index):
    if isinstance(index, Tensor):
        raise IndexError(
            "getitem: a Tensor cannot be an index (Tensors hold floats, so a mask or integer positions would be "
            "guessed); index with a NumPy array instead, e.g. x[mask.data > 0] or x[idx.data.astype(int)]"
        )
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, list):
        return _plain_index(np.asarray(index)) if index else np.asarray(index, dtype=np.intp)
    if isinstance(index, _ndarray):
        if index.dtype.kind == "f":
            raise IndexError(f"getitem: an index array must hold integers or booleans, got dtype {index.dtype}")
        return index.copy()   # kept in the node: the caller's array may change later, the graph's may not
    return index


def _getitem_prepare(a, index):
    index = _plain_index(index)
    try:
        np.empty(np.shape(a), dtype=np.bool_)[index]
    except (IndexError, TypeError, ValueError) as exc:
        raise IndexError(f"getitem: invalid index {index!r} for a tensor of shape {np.shape(a)} ({exc})") from None
    return index


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer)) for p in parts)


def _scatter_forward(a, args):
    shape, index = args
    full = np.zeros(shape, dtype=np.result_type(a))
    if _is_basic_index(index):  # a view: every element appears at most once
        full[index] = a
    else:  # repeated indices must add up
        np.add.at(full, index, a)
    return full


def _scatter_prepare(a, shape, index):
    index = _plain_index(index)
    shape = tuple(int(n) for n in shape)
    try:
        picked = np.empty(shape, dtype=np.bool_)[index].shape
    except (IndexError, TypeError, ValueError) as exc:
        raise IndexError(f"scatter_add: invalid index {index!r} for shape {shape} ({exc})") from None
    if picked != np.shape(a):
        raise ValueError(f"scatter_add: the index picks shape {picked} out of {shape}, but a has shape {np.shape(a)}")
    return shape, index


scatter_add = structural(
    "scatter_add", "out = zeros(shape); out[index] += a", _scatter_forward,
    ("∂L/∂out[index]", lambda g, out, a, args: g[args[1]]),
    params=True, prepare=_scatter_prepare,
    doc="out = zeros of `shape` with a added at `index` (repeats add up): the gradient of getitem, "
        "as an op so that it can be differentiated again.\n\n∂L/∂a = ∂L/∂out[index].",
)


def _getitem_vjp(g, out, a, index):
    if isinstance(g, Tensor):
        return scatter_add(g, shape_of(a), index)
    return _scatter_forward(g, (shape_of(a), index))


getitem = structural(
    "getitem", "out = a[index]", lambda a, index: np.asarray(a)[index],
    ("∂L/∂out added into a's shape at the index (repeats add up)", _getitem_vjp),
    params=True, prepare=_getitem_prepare,
    doc="out = a[index] (slices, integers, integer or boolean arrays).\n\n∂L/∂a = zeros of a's shape with "
        "∂L/∂out added at `index`; an element picked several times gets the sum of its gradients.",
)


_BUILT_IN = frozenset(OPS)


# --------------------------------------------------------------------------- the table

def ops_table() -> str:
    """Every registered operation as a Markdown table (docs/ops.md is this, generated)."""
    lines = ["| op | forward | ∂L/∂input |", "|---|---|---|"]
    for op in OPS.values():
        grads = "; ".join(f"∂L/∂{x} = {op.expression(i)}" for i, x in enumerate(op.inputs))
        lines.append(f"| `{op.name}` | {op.formula} | {grads} |")
    return "\n".join(lines) + "\n"
