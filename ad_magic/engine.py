"""The engine: `Tensor`, its operations with their derivatives, and backpropagation.

Reading guide (the order a learner meets things):

1. `Tensor` holds a NumPy array `data`, its `grad`, the tensors it was computed
   from (`_parents`) and the name of the function that made it (`_function`).
2. Each operation computes its output, then names the rule that applies the chain
   rule to its inputs' grads. The forward formula and its derivative sit side by side.
3. `backward()` orders the graph so that children come before parents, clears the
   grads, seeds the output's grad with ones and runs each node's `_backward` in order.
   It is `backward_steps()` run to the end: one mechanism, which the widgets step through.

This module never imports anything from Jupyter: it runs headless in scripts and tests.

Implementation notes (why the code looks the way it does):

* The backward rules are module-level functions that receive the output node, rather
  than closures stored on every node: a closure referring to its own output puts every
  node in a reference cycle, so a large graph could only be freed by the slow cyclic
  garbage collector. `Tensor._backward` still gives the familiar callable: it binds the
  rule to its node on access, so ``out._backward()`` works as in the practical.
* Internally a 0-d result is kept as the NumPy scalar NumPy itself returns (32 bytes
  instead of a 104-byte 0-d array). The public `data` and `grad` properties always hand
  out `numpy.ndarray` objects.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import types
from collections import deque
from sys import getrefcount

import numpy as np

__all__ = [
    "Tensor",
    "add",
    "mul",
    "no_grad",
    "is_grad_enabled",
    "trace_graph",
    "topological_order",
    "unbroadcast",
    "BackwardStep",
    "ChainTerm",
]

_ndarray = np.ndarray


class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    """True unless inside a `no_grad()` block."""
    return _GradMode.enabled


@contextlib.contextmanager
def no_grad():
    """Context manager (and decorator): operations inside it record no graph.

    Use it for evaluation and for parameter updates, as in PyTorch.
    """
    previous = _GradMode.enabled
    _GradMode.enabled = False
    try:
        yield
    finally:
        _GradMode.enabled = previous


# --------------------------------------------------------------------------- data

def _float_array(value, where: str, copy: bool):
    """`value` as a float ndarray (float32 kept, every other real type -> float64)."""
    if isinstance(value, Tensor):
        value = value._data
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{where}: expected numbers, got the string {value!r}")
    try:
        array = np.array(value, copy=copy) if copy else np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{where}: cannot make a numeric array from {_describe(value)} ({exc})") from None
    kind = array.dtype.kind
    if kind == "f":
        if array.dtype not in (np.float32, np.float64):
            array = array.astype(np.float64)
        return array
    if kind in "biu":
        return array.astype(np.float64)
    if kind == "c":
        raise TypeError(f"{where}: complex data is not supported (got dtype {array.dtype})")
    raise TypeError(f"{where}: expected numbers, got {_describe(value)} (dtype {array.dtype})")


def _compact(array):
    """A 0-d array as the NumPy scalar of its type (see the module notes), else the array."""
    return array[()] if array.ndim == 0 else array


def _describe(value) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def unbroadcast(grad, shape):
    """Sum `grad` back to `shape`: the gradient of NumPy broadcasting.

    Broadcasting copies an input along new leading axes and along axes of length 1;
    the chain rule adds up the gradient over every copy.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _accumulate(tensor, grad):
    """tensor.grad += grad, where a grad of None means 'zero so far'.

    The first contribution is stored as it is (no zero array to allocate and add to).
    A later one is added in place only when nothing else can see the stored array —
    NumPy's own rule for reusing temporaries: a plain, writable array whose only
    references are this tensor's slot and this function (a grad shared with another
    node, or held by the user, has more). Otherwise a new array is made.
    """
    old = tensor._grad
    if old is None:
        tensor._grad = grad
    elif (
        type(old) is _ndarray
        and old.base is None
        and old.shape == np.shape(grad)
        and old.flags.writeable
        and getrefcount(old) <= 3  # tensor._grad, `old`, and getrefcount's own argument
        and np.result_type(old, grad) == old.dtype
    ):
        old += grad
    else:
        tensor._grad = old + grad


# ------------------------------------------------------------------------- Tensor

class Tensor:
    """A NumPy array that remembers how it was computed, so it can be differentiated.

    ``Tensor(data)`` accepts a Python number, a (nested) list or a NumPy array; the
    data is copied and stored as floats (float32 stays float32, anything else becomes
    float64). Every tensor you create is a variable whose gradient backward() computes;
    pass ``requires_grad=False`` for a constant.
    """

    __slots__ = ("_data", "_grad", "_prev", "_function", "_rule", "name", "requires_grad", "_args", "_mark")

    # Let NumPy defer to Tensor's reflected operators: array * tensor -> Tensor.
    __array_ufunc__ = None

    def __init__(self, data, name=None, requires_grad=True):
        self._data = _compact(_float_array(data, "Tensor", copy=True))
        self._grad = None
        self._prev = ()
        self._function = None
        self._rule = None
        self._args = None
        self._mark = 0
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Tensor: name must be a string, got {type(name).__name__}")
        self.name = name
        self.requires_grad = bool(requires_grad)

    # -- the practical's attributes -------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The values, as a NumPy array."""
        d = self._data
        return d if type(d) is _ndarray else np.asarray(d)

    @data.setter
    def data(self, value):
        self._data = _compact(_float_array(value, "Tensor.data", copy=False))

    @property
    def grad(self):
        """∂(output)/∂(this tensor) after backward(), as an array of data's shape; None before."""
        g = self._grad
        return g if g is None or type(g) is _ndarray else np.asarray(g)

    @grad.setter
    def grad(self, value):
        if value is None:
            self._grad = None
            return
        value = _float_array(value, "Tensor.grad", copy=False)
        if value.shape != self._data.shape:
            raise ValueError(
                f"Tensor.grad: shape {value.shape} does not match the tensor's shape {self._data.shape}"
            )
        self._grad = _compact(value)

    @property
    def _parents(self) -> set:
        """The set of tensors this one was computed from (empty for a leaf)."""
        return set(self._prev)

    @_parents.setter
    def _parents(self, parents):
        self._prev = tuple(parents)

    @property
    def parents(self) -> tuple:
        """The tensors this one was computed from, in operand order (empty for a leaf).

        Unlike the practical's `_parents` (a set), this keeps order and repeats:
        ``x * x`` has parents ``(x, x)``.
        """
        return self._prev

    def _repr_svg_(self) -> str:
        """Jupyter's picture of a tensor: the graph that produced it. Never raises."""
        from .graph import repr_svg  # rendering sits above the engine: imported on use

        return repr_svg(self)

    @property
    def _backward(self):
        """Apply the chain rule: add this node's contribution to its parents' grads.

        Built-in operations bind their derivative rule to the node; you may also assign a
        function of no arguments here to define your own operation.
        """
        rule = self._rule
        return None if rule is None else types.MethodType(rule, self)

    @_backward.setter
    def _backward(self, function):
        if function is None:
            self._rule = None
        elif callable(function):
            self._rule = _custom_rule(function)
        else:
            raise TypeError(f"Tensor._backward must be callable or None, got {type(function).__name__}")

    # -- shape and conversion ------------------------------------------------------
    @property
    def shape(self):
        return self._data.shape

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def size(self):
        return self._data.size

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._function is None

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self._data.size != 1:
            raise ValueError(f"item: only a one-element tensor has a single value, this one has shape {self.shape}")
        return float(self._data.reshape(-1)[0]) if self._data.ndim else float(self._data)

    def __float__(self):
        return self.item()

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared, not copied)."""
        return self.data

    def detach(self) -> "Tensor":
        """A new leaf holding the same data, outside any graph."""
        out = Tensor.__new__(Tensor)
        out._data, out._grad, out._prev, out._function, out._rule = self._data, None, (), None, None
        out.name, out.requires_grad, out._args, out._mark = self.name, False, None, 0
        return out

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __repr__(self):
        try:
            return _tensor_repr(self)
        except Exception as exc:  # a repr never raises
            return f"<Tensor (repr failed: {type(exc).__name__})>"

    # -- operators ------------------------------------------------------------------
    def __add__(self, other): return add(self, other)
    def __radd__(self, other): return add(other, self)
    def __sub__(self, other): return sub(self, other)
    def __rsub__(self, other): return sub(other, self)
    def __mul__(self, other): return mul(self, other)
    def __rmul__(self, other): return mul(other, self)
    def __truediv__(self, other): return div(self, other)
    def __rtruediv__(self, other): return div(other, self)
    def __pow__(self, other): return power(self, other)
    def __rpow__(self, other): return power(other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __neg__(self): return neg(self)
    def __pos__(self): return self
    def __getitem__(self, index): return getitem(self, index)

    # -- methods --------------------------------------------------------------------
    def exp(self): return exp(self)
    def log(self): return log(self)
    def tanh(self): return tanh(self)
    def sigmoid(self): return sigmoid(self)
    def relu(self): return relu(self)
    def sum(self, axis=None, keepdims=False): return tensor_sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return mean(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    @property
    def T(self):
        return transpose(self, None)

    # -- backpropagation --------------------------------------------------------------
    def backward(self, grad=None):
        """Compute ∂self/∂t for every tensor t in the graph that produced self.

        Every grad in the graph is reset first, so calling backward() twice gives the
        same grads (PyTorch instead accumulates into .grad until you zero it).
        A non-scalar output needs `grad`, the gradient of some scalar w.r.t. it.
        """
        deque(self.backward_steps(grad), maxlen=0)

    def backward_steps(self, grad=None):
        """Run backpropagation one node at a time: yields a `BackwardStep` after each
        node's `_backward` has run, in the order backward() runs them.

        Before the first step every grad in the graph is cleared and the output's grad
        is seeded with ones (or `grad`). A grad not reached yet reads None (zero so far).
        """
        seed = _seed_gradient(self, grad)
        return _run_backward(self, seed)


def _custom_rule(function):
    """Wrap a user-supplied no-argument `_backward` so the engine can call it like a rule."""
    def rule(node):
        for parent in node._prev:  # user code writes `parent.grad += ...`: give it zeros
            if parent.requires_grad and parent._grad is None:
                parent._grad = np.zeros_like(parent._data)
        function()
    rule.__name__ = getattr(function, "__name__", "custom_backward")
    return rule


def _tensor_repr(t: Tensor) -> str:
    def fmt(array):
        array = np.asarray(array)
        if array.ndim == 0:
            return repr(float(array))
        return np.array2string(array, precision=4, threshold=20, edgeitems=2, separator=", ").replace("\n", "")

    parts = [fmt(t._data)]
    if t.name:
        parts.append(f"name={t.name!r}")
    if t._data.ndim:
        parts.append(f"shape={t._data.shape}")
    if t._data.dtype != np.float64:
        parts.append(f"dtype={t._data.dtype}")
    if t._function is not None:
        parts.append(f"fn={t._function!r}")
    if t._grad is not None:
        parts.append(f"grad={fmt(t._grad)}")
    elif not t.requires_grad:
        parts.append("requires_grad=False")
    return f"Tensor({', '.join(parts)})"


# ------------------------------------------------------------- building the graph

def _constant(value, like, op):
    """Wrap a Python number or array used in an operation as a constant Tensor.

    Constants appear in the graph (so `x * 4` shows the 4) but need no gradient.
    The tensor for a Python number may be shared by several operations (see _CONSTANTS).
    A Python number takes the other operand's float type, as NumPy does.
    """
    kind = type(value)
    if kind is float or kind is int or (isinstance(value, numbers.Real) and not isinstance(value, np.ndarray)):
        scalar_type = _scalar_type(like)
        key = (scalar_type, value)
        t = _CONSTANTS.get(key)
        if t is not None:
            return t
        data = scalar_type(value)
    elif isinstance(value, (np.ndarray, list, tuple)):
        data = _compact(_float_array(value, op, copy=False))
    else:
        raise TypeError(
            f"{op}: unsupported operand of type {type(value).__name__}; "
            "expected a Tensor, a number or a NumPy array"
        )
    t = Tensor.__new__(Tensor)
    t._data, t._grad, t._prev, t._function, t._rule = data, None, (), None, None
    t.name, t.requires_grad, t._args, t._mark = None, False, None, 0
    if kind is float or kind is int:
        if len(_CONSTANTS) >= 4096:
            _CONSTANTS.clear()
        if value != 0:  # 0.0 == -0.0 as a key: keep the sign by not sharing zeros
            _CONSTANTS[key] = t
    return t


# Python numbers used in operations become constant tensors. One tensor per value is
# shared by every operation that uses it (`y * 1.0001` in a loop makes no new constant),
# which halves the memory of long scalar chains. The cache is small and bounded.
_CONSTANTS = {}


def _scalar_type(like):
    """np.float32 next to float32 data, else np.float64 (a Python number adapts, as in NumPy)."""
    if like is None:
        return np.float64
    data = like._data
    kind = type(data)
    if kind is np.float64 or kind is np.float32:
        return kind
    return np.float32 if data.dtype == np.float32 else np.float64


def _operands(t1, t2, op):
    if not isinstance(t1, Tensor):
        t1 = _constant(t1, t2, op)
    if not isinstance(t2, Tensor):
        t2 = _constant(t2, t1, op)
    return t1, t2


def _operand(t, op):
    return t if isinstance(t, Tensor) else _constant(t, None, op)


def _node(data, prev, function, rule, args=None):
    """The output tensor of an operation, linked to its inputs when a graph is recorded.

    `args` keeps an operation's settings (axes, shape, index) for its rule and display.
    """
    out = Tensor.__new__(Tensor)
    out._data = data
    out._grad = None
    out.name = None
    out._args = args
    out._mark = 0
    for p in prev:
        if p.requires_grad:
            break
    else:  # no input needs a gradient: a constant
        out._prev, out._function, out._rule, out.requires_grad = (), None, None, False
        return out
    if _GradMode.enabled:
        out._prev, out._function, out._rule, out.requires_grad = prev, function, rule, True
    else:
        out._prev, out._function, out._rule, out.requires_grad = (), None, None, False
    return out


def _broadcast_error(op, a, b):
    return ValueError(f"{op}: cannot broadcast shapes {a.shape} and {b.shape} together")


# ------------------------------------------------------------------ the operations
# Each operation computes its output, then hands `_node` the rule that backpropagates
# through it. Each rule reads the output's grad g = ∂L/∂out and adds ∂L/∂input to every
# input that needs a gradient. Broadcast inputs get their share summed by `unbroadcast`.

def add(t1, t2):
    """out = a + b.   ∂out/∂a = 1,  ∂out/∂b = 1."""
    a, b = _operands(t1, t2, "add")
    try:
        data = a._data + b._data
    except ValueError:
        raise _broadcast_error("add", a, b) from None
    return _node(data, (a, b), "add", _add_backward)


def _add_backward(out):
    a, b = out._prev
    g = out._grad
    if a.requires_grad:
        _accumulate(a, unbroadcast(g, a._data.shape))
    if b.requires_grad:
        _accumulate(b, unbroadcast(g, b._data.shape))


def sub(t1, t2):
    """out = a - b.   ∂out/∂a = 1,  ∂out/∂b = -1."""
    a, b = _operands(t1, t2, "sub")
    try:
        data = a._data - b._data
    except ValueError:
        raise _broadcast_error("sub", a, b) from None
    return _node(data, (a, b), "sub", _sub_backward)


def _sub_backward(out):
    a, b = out._prev
    g = out._grad
    if a.requires_grad:
        _accumulate(a, unbroadcast(g, a._data.shape))
    if b.requires_grad:
        _accumulate(b, unbroadcast(-g, b._data.shape))


def mul(t1, t2):
    """out = a * b.   ∂out/∂a = b,  ∂out/∂b = a."""
    a, b = _operands(t1, t2, "mul")
    try:
        data = a._data * b._data
    except ValueError:
        raise _broadcast_error("mul", a, b) from None
    return _node(data, (a, b), "mul", _mul_backward)


def _mul_backward(out):
    a, b = out._prev
    g = out._grad
    if a is b and a.requires_grad:  # x * x: ∂out/∂x = 2x, one product instead of two and a sum
        local = g * a._data
        local *= 2
        _accumulate(a, unbroadcast(local, a._data.shape))
        return
    if a.requires_grad:
        _accumulate(a, unbroadcast(g * b._data, a._data.shape))
    if b.requires_grad:
        _accumulate(b, unbroadcast(g * a._data, b._data.shape))


def div(t1, t2):
    """out = a / b.   ∂out/∂a = 1/b,  ∂out/∂b = -a/b² = -out/b."""
    a, b = _operands(t1, t2, "div")
    try:
        data = a._data / b._data
    except ValueError:
        raise _broadcast_error("div", a, b) from None
    return _node(data, (a, b), "div", _div_backward)


def _div_backward(out):
    a, b = out._prev
    ga = out._grad / b._data
    if a.requires_grad:
        _accumulate(a, unbroadcast(ga, a._data.shape))
    if b.requires_grad:
        gb = ga * out._data
        gb = np.negative(gb, out=gb) if type(gb) is _ndarray else -gb
        _accumulate(b, unbroadcast(gb, b._data.shape))


def neg(t):
    """out = -a.   ∂out/∂a = -1."""
    a = _operand(t, "neg")
    return _node(-a._data, (a,), "neg", _neg_backward)


def _neg_backward(out):
    (a,) = out._prev
    _accumulate(a, -out._grad)


def power(t1, t2):
    """out = a ** b.   ∂out/∂a = b·a^(b-1),  ∂out/∂b = out·log(a)."""
    a, b = _operands(t1, t2, "pow")
    try:
        data = a._data ** b._data
    except ValueError:
        raise _broadcast_error("pow", a, b) from None
    return _node(data, (a, b), "pow", _pow_backward)


def _pow_backward(out):
    a, b = out._prev
    g = out._grad
    if a.requires_grad:
        c = b._data
        if np.any(c == 0):  # d/da a**0 = 0, even at a = 0 where 0 * 0**-1 is nan
            with np.errstate(divide="ignore", invalid="ignore"):
                local = np.where(c == 0, 0.0, c * a._data ** (c - 1))
        else:
            local = c * a._data ** (c - 1)
        _accumulate(a, unbroadcast(g * local, a._data.shape))
    if b.requires_grad:
        _accumulate(b, unbroadcast(g * out._data * _log_base(a._data), b._data.shape))


def _log_base(x):
    """log(x) where x > 0, else 0: the limit of out·log(a) at a = 0 (out = 0 there)."""
    x = np.asarray(x)
    result = np.zeros(x.shape, dtype=x.dtype)
    np.log(x, out=result, where=x > 0)
    result[x < 0] = np.nan  # a negative base has no real power for most exponents
    return result if result.ndim else result[()]


def exp(t):
    """out = exp(a).   ∂out/∂a = exp(a) = out."""
    a = _operand(t, "exp")
    return _node(np.exp(a._data), (a,), "exp", _exp_backward)


def _exp_backward(out):
    (a,) = out._prev
    _accumulate(a, out._grad * out._data)


def log(t):
    """out = log(a) (natural log).   ∂out/∂a = 1/a."""
    a = _operand(t, "log")
    return _node(np.log(a._data), (a,), "log", _log_backward)


def _log_backward(out):
    (a,) = out._prev
    _accumulate(a, out._grad / a._data)


def tanh(t):
    """out = tanh(a).   ∂out/∂a = 1 - tanh(a)² = 1 - out²."""
    a = _operand(t, "tanh")
    return _node(np.tanh(a._data), (a,), "tanh", _tanh_backward)


def _tanh_backward(out):
    (a,) = out._prev
    y = out._data
    if type(y) is _ndarray:
        local = np.multiply(y, y)
        np.subtract(1, local, out=local)
        np.multiply(local, out._grad, out=local)
        _accumulate(a, local)
    else:
        _accumulate(a, out._grad * (1 - y * y))


def sigmoid(t):
    """out = σ(a) = 1 / (1 + exp(-a)).   ∂out/∂a = σ(a)·(1 - σ(a)) = out·(1 - out)."""
    a = _operand(t, "sigmoid")
    return _node(_sigmoid(a._data), (a,), "sigmoid", _sigmoid_backward)


def _sigmoid(x):
    if type(x) is not _ndarray or x.ndim == 0:
        # exp(-|x|) never overflows; split by sign for full precision on both tails.
        z = math.exp(-abs(float(x)))
        return x.dtype.type(1 / (1 + z) if x >= 0 else z / (1 + z))
    # Arrays: 1 / (1 + exp(-x)) in place, one allocation. exp(-x) overflows to inf for
    # x < -709 (float64), giving exactly 0 where the true value is below 1e-308.
    out = np.negative(x)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def _sigmoid_backward(out):
    (a,) = out._prev
    y = out._data
    if type(y) is _ndarray:
        local = np.subtract(1, y)
        np.multiply(local, y, out=local)
        np.multiply(local, out._grad, out=local)
        _accumulate(a, local)
    else:
        _accumulate(a, out._grad * y * (1 - y))


def relu(t):
    """out = max(a, 0).   ∂out/∂a = 1 where a > 0, else 0."""
    a = _operand(t, "relu")
    return _node(np.maximum(a._data, 0), (a,), "relu", _relu_backward)


def _relu_backward(out):
    (a,) = out._prev
    g, x = out._grad, a._data
    if type(x) is _ndarray and type(g) is _ndarray and g.shape == x.shape:
        local = np.greater(x, 0, out=np.empty_like(g))  # the 0/1 mask, in g's float type
        local *= g  # one array: the mask, then multiplied in place
        _accumulate(a, local)
    else:
        _accumulate(a, g * (x > 0))


def matmul(t1, t2):
    """out = a @ b (vector·vector, matrix·vector, vector·matrix, matrix·matrix, batched).

    ∂L/∂a = ∂L/∂out @ bᵀ,  ∂L/∂b = aᵀ @ ∂L/∂out  (1-D operands treated as a row/column).
    """
    a, b = _operands(t1, t2, "matmul")
    if a._data.ndim == 0 or b._data.ndim == 0:
        raise ValueError(
            f"matmul: both operands need at least one dimension, got shapes {a.shape} and {b.shape} "
            "(use * to multiply by a scalar)"
        )
    try:
        data = np.matmul(a._data, b._data)
    except ValueError:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not match "
            f"(the last axis of the left operand must equal the "
            f"{'only' if b.ndim == 1 else 'second-to-last'} axis of the right one)"
        ) from None
    return _node(data, (a, b), "matmul", _matmul_backward)


def _matmul_backward(out):
    a, b = out._prev
    A, B, g = a._data, b._data, np.asarray(out._grad)
    # Treat a 1-D left operand as a row (1, n) and a 1-D right one as a column (n, 1).
    A2 = A[None, :] if A.ndim == 1 else A
    B2 = B[:, None] if B.ndim == 1 else B
    if A.ndim == 1:
        g = np.expand_dims(g, -2 if B.ndim > 1 else 0)
    if B.ndim == 1:
        g = np.expand_dims(g, -1)
    if a.requires_grad:
        ga = unbroadcast(np.matmul(g, np.swapaxes(B2, -1, -2)), A2.shape)
        _accumulate(a, ga.reshape(A.shape))
    if b.requires_grad:
        if B2.ndim == 2 and A2.ndim > 2:  # batched @ matrix: one big product, no batch sum
            n, k = A2.shape[-1], g.shape[-1]
            gb = A2.reshape(-1, n).T @ g.reshape(-1, k)
        else:
            gb = unbroadcast(np.matmul(np.swapaxes(A2, -1, -2), g), B2.shape)
        _accumulate(b, gb.reshape(B.shape))


def linear(t, W, b):
    """out = x @ W + b, the affine map of a Linear layer, as one node.

    ∂L/∂x = ∂L/∂out @ Wᵀ,  ∂L/∂W = xᵀ @ ∂L/∂out,  ∂L/∂b = ∂L/∂out summed over every
    axis but the last. One node instead of matmul + add: the bias is added in place to
    the fresh product, which saves an array as large as the layer's output.
    """
    x = _operand(t, "linear")
    W = _operand(W, "linear")
    b = _operand(b, "linear")
    if W.ndim != 2 or b.shape != (W.shape[1],) or x.ndim == 0 or x.shape[-1] != W.shape[0]:
        raise ValueError(
            f"linear: expected x of shape (..., n_in), W of shape (n_in, n_out) and b of shape (n_out,), "
            f"got {x.shape}, {W.shape} and {b.shape}"
        )
    data = np.matmul(x._data, W._data)
    if np.result_type(data, b._data) == data.dtype:
        data += b._data
    else:
        data = data + b._data
    return _node(data, (x, W, b), "linear", _linear_backward)


def _linear_backward(out):
    x, W, b = out._prev
    g = np.asarray(out._grad)
    n_in, n_out = W._data.shape
    if x.requires_grad:
        _accumulate(x, g @ W._data.T)
    rows = g.reshape(-1, n_out)
    if W.requires_grad:
        _accumulate(W, np.asarray(x._data).reshape(-1, n_in).T @ rows)
    if b.requires_grad:
        _accumulate(b, rows.sum(axis=0))


def _normalize_axis(axis, ndim, op):
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    normalized = []
    for ax in axes:
        if not isinstance(ax, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dimension(s)")
        normalized.append(int(ax) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(normalized)


def tensor_sum(t, axis=None, keepdims=False):
    """out = a.sum(axis).   ∂L/∂a = ∂L/∂out copied back along the summed axes."""
    a = _operand(t, "sum")
    axes = _normalize_axis(axis, a._data.ndim, "sum")
    data = np.sum(a._data, axis=axes, keepdims=keepdims)
    return _node(data, (a,), "sum", _sum_backward, (axes, keepdims))


def mean(t, axis=None, keepdims=False):
    """out = a.mean(axis).   ∂L/∂a = ∂L/∂out / n copied back along the averaged axes."""
    a = _operand(t, "mean")
    axes = _normalize_axis(axis, a._data.ndim, "mean")
    data = np.mean(a._data, axis=axes, keepdims=keepdims)
    return _node(data, (a,), "mean", _mean_backward, (axes, keepdims))




def _expand_back(g, a_shape, axes, keepdims):
    g = np.asarray(g)
    if axes is None:
        axes = tuple(range(len(a_shape)))
    if not keepdims:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, a_shape)


def _sum_backward(out):
    (a,) = out._prev
    axes, keepdims = out._args
    _accumulate(a, _expand_back(out._grad, a._data.shape, axes, keepdims))


def _mean_backward(out):
    (a,) = out._prev
    axes, keepdims = out._args
    shape = a._data.shape
    count = math.prod(shape) if axes is None else math.prod(shape[i] for i in axes)
    _accumulate(a, _expand_back(np.asarray(out._grad) / max(count, 1), shape, axes, keepdims))


def reshape(t, shape):
    """out = a.reshape(shape).   ∂L/∂a = ∂L/∂out reshaped back to a's shape."""
    a = _operand(t, "reshape")
    try:
        data = np.reshape(a._data, shape)
    except (ValueError, TypeError):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} into shape {tuple(shape)}") from None
    return _node(data, (a,), "reshape", _reshape_backward, tuple(np.shape(data)))


def _reshape_backward(out):
    (a,) = out._prev
    _accumulate(a, np.reshape(out._grad, a._data.shape))


def transpose(t, axes=None):
    """out = a.transpose(axes) (reversed axes by default).   ∂L/∂a = ∂L/∂out transposed back."""
    a = _operand(t, "transpose")
    if axes is not None:
        axes = tuple(int(ax) for ax in axes)
        if sorted(ax % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)) or len(axes) != a.ndim:
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of shape {a.shape}")
    return _node(np.transpose(a._data, axes), (a,), "transpose", _transpose_backward, axes)


def _transpose_backward(out):
    (a,) = out._prev
    axes = out._args
    inverse = None if axes is None else tuple(np.argsort([ax % a.ndim for ax in axes]))
    _accumulate(a, np.transpose(out._grad, inverse))


def getitem(t, index):
    """out = a[index] (slices, integers, integer or boolean arrays).

    ∂L/∂a = zeros of a's shape with ∂L/∂out added at `index`; an element picked
    several times gets the sum of its gradients.
    """
    a = _operand(t, "getitem")
    index = _plain_index(index)
    try:
        data = a._data[index]
    except (IndexError, TypeError, ValueError) as exc:
        raise IndexError(f"getitem: invalid index {index!r} for a tensor of shape {a.shape} ({exc})") from None
    return _node(data, (a,), "getitem", _getitem_backward, index)


def _plain_index(index):
    if isinstance(index, Tensor):
        return index._data.astype(np.intp)
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    return index


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer)) for p in parts)


def _getitem_backward(out):
    (a,) = out._prev
    index = out._args
    full = np.zeros(a._data.shape, dtype=a._data.dtype)
    if _is_basic_index(index):  # a view: every element appears at most once
        full[index] = out._grad
    else:  # repeated indices must add up
        np.add.at(full, index, out._grad)
    _accumulate(a, full)


# ------------------------------------------------------------------ backpropagation

_search = itertools.count(1)  # each graph search marks the nodes it meets with its own number


def topological_order(root, only_grad=False):
    """Every tensor `root` depends on, parents before children, `root` last.

    Iterative depth-first search (no recursion: a chain of 10⁶ nodes is fine) that
    visits inputs in operand order, so the order is deterministic. A node is written
    out when it comes back to the top of the stack after all its inputs.
    With only_grad=True, tensors that need no gradient (constants) are left out.
    Visited nodes are marked in a slot of their own rather than kept in sets, which
    saves time and, on a million-node graph, a hundred megabytes.
    """
    search = next(_search)
    expanded, done = 2 * search, 2 * search + 1
    order = []
    stack = [root]
    push, pop, append = stack.append, stack.pop, order.append
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
        prev = node._prev
        for i in range(len(prev) - 1, -1, -1):
            parent = prev[i]
            if parent._mark < expanded and (parent.requires_grad or not only_grad):
                push(parent)
    return order


def trace_graph(root):
    """(nodes, edges): every Tensor reachable from `root` through `_parents`, and every
    (parent, child) pair. Iterative, so deep graphs do not recurse."""
    nodes = set(topological_order(root))
    edges = {(parent, child) for child in nodes for parent in child._prev}
    return nodes, edges


def _seed_gradient(root, grad):
    if not isinstance(root, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {type(root).__name__}")
    if not root.requires_grad:
        raise ValueError(
            "backward: this tensor does not depend on any tensor that needs a gradient "
            "(it was computed from constants only, or inside no_grad())"
        )
    shape, dtype = root._data.shape, root._data.dtype
    if grad is None:
        if root._data.size != 1:
            raise ValueError(
                f"backward: the output has shape {shape}, not a single value; "
                "pass grad=… (an array of that shape) or reduce it first, e.g. with .sum()"
            )
        return _compact(np.ones(shape, dtype=dtype))
    if isinstance(grad, Tensor):
        grad = grad._data
    grad = _float_array(grad, "backward(grad=…)", copy=True)
    if grad.shape != shape:
        raise ValueError(f"backward: grad has shape {grad.shape} but the output has shape {shape}")
    return _compact(grad.astype(dtype, copy=False))


def _run_backward(root, seed):
    order = topological_order(root, only_grad=True)
    for node in order:
        node._grad = None
    root._grad = seed
    index = 0
    for i in range(len(order) - 1, -1, -1):
        node = order[i]
        rule = node._rule
        if rule is None:
            continue
        if node._grad is None:  # a custom rule that added nothing: zero
            node._grad = np.zeros_like(node._data)
        rule(node)
        index += 1
        yield BackwardStep(index, node)
    for node in order:  # leaves of custom ops that contributed nothing
        if node._grad is None:
            node._grad = np.zeros_like(node._data)


# --------------------------------------------------------------- describing a step

class ChainTerm:
    """One application of the chain rule in a backward step.

    `parent` received ``∂L/∂parent += expression``. For elementwise rules `factor_text`
    is the local derivative ∂out/∂parent in terms of the operands a, b and out, and
    `factor` its value (broadcast to out's shape); for the others `factor` is None.
    """

    __slots__ = ("parent", "operand", "factor_text", "expression", "_factor")

    def __init__(self, parent, operand, factor_text, expression, factor):
        self.parent, self.operand, self.factor_text = parent, operand, factor_text
        self.expression, self._factor = expression, factor

    @property
    def factor(self):
        f = self._factor
        return None if f is None else np.asarray(f())

    def __repr__(self):
        return f"ChainTerm({self.operand}: ∂L/∂{self.operand} += {self.expression})"


# ∂out/∂operand for the elementwise operations, as text and as a function of the node.
_ELEMENTWISE = {
    "add": (("1", lambda a, b, o: np.ones_like(o)), ("1", lambda a, b, o: np.ones_like(o))),
    "sub": (("1", lambda a, b, o: np.ones_like(o)), ("-1", lambda a, b, o: -np.ones_like(o))),
    "mul": (("b", lambda a, b, o: b + 0 * o), ("a", lambda a, b, o: a + 0 * o)),
    "div": (("1/b", lambda a, b, o: 1 / b + 0 * o), ("-a/b²", lambda a, b, o: -a / b ** 2 + 0 * o)),
    "pow": (("b·a^(b-1)", lambda a, b, o: b * a ** (b - 1) + 0 * o),
            ("out·log(a)", lambda a, b, o: o * _log_base(a))),
    "neg": (("-1", lambda a, b, o: -np.ones_like(o)),),
    "exp": (("out", lambda a, b, o: o),),
    "log": (("1/a", lambda a, b, o: 1 / a),),
    "tanh": (("1 - out²", lambda a, b, o: 1 - o * o),),
    "sigmoid": (("out·(1 - out)", lambda a, b, o: o * (1 - o)),),
    "relu": (("1 if a > 0 else 0", lambda a, b, o: (a > 0).astype(o.dtype)),),
}

_FORMULA = {
    "add": "out = a + b", "sub": "out = a - b", "mul": "out = a · b", "div": "out = a / b",
    "pow": "out = a ** b", "neg": "out = -a", "exp": "out = exp(a)", "log": "out = log(a)",
    "tanh": "out = tanh(a)", "sigmoid": "out = σ(a) = 1/(1 + exp(-a))", "relu": "out = max(a, 0)",
    "matmul": "out = a @ b", "sum": "out = a.sum(axis)", "mean": "out = a.mean(axis)",
    "reshape": "out = a.reshape(shape)", "transpose": "out = a.transpose(axes)",
    "getitem": "out = a[index]", "linear": "out = a @ b + c",
}

_STRUCTURAL = {
    "matmul": ("∂L/∂out @ bᵀ", "aᵀ @ ∂L/∂out"),
    "linear": ("∂L/∂out @ bᵀ", "aᵀ @ ∂L/∂out", "∂L/∂out summed over rows"),
    "sum": ("∂L/∂out copied back along the summed axes",),
    "mean": ("∂L/∂out / n copied back along the averaged axes",),
    "reshape": ("∂L/∂out reshaped to a's shape",),
    "transpose": ("∂L/∂out transposed back",),
    "getitem": ("∂L/∂out added into a's shape at the index (repeats add up)",),
}

_LETTERS = "abc"


class BackwardStep:
    """One step of backpropagation: `node`'s `_backward` has just run.

    * `index`: 1 for the first `_backward` call, 2 for the next, …
    * `node`: the tensor whose rule ran; `function` its operation.
    * `parents`: the tensors whose grads this step changed (in operand order).
    * `rule`: the forward formula and its local derivatives, as text.
    * `terms`: one `ChainTerm` per changed parent (∂L/∂a += ∂L/∂out · …).
    """

    __slots__ = ("index", "node")

    def __init__(self, index, node):
        self.index, self.node = index, node

    @property
    def function(self):
        return self.node._function

    @property
    def parents(self):
        seen = []
        for p in self.node._prev:
            if p.requires_grad and not any(p is q for q in seen):
                seen.append(p)
        return tuple(seen)

    @property
    def terms(self):
        node = self.node
        function = node._function
        terms = []
        for i, parent in enumerate(node._prev):
            if not parent.requires_grad:
                continue
            letter = _LETTERS[i] if i < len(_LETTERS) else f"x{i}"
            if function in _ELEMENTWISE and i < len(_ELEMENTWISE[function]):
                text, fn = _ELEMENTWISE[function][i]
                expression = f"∂L/∂out · {text}"
                if parent._data.shape != node._data.shape:
                    expression += " (summed over broadcast axes)"
                factor = _bind_factor(fn, node)
            elif function in _STRUCTURAL and i < len(_STRUCTURAL[function]):
                text, expression, factor = None, _STRUCTURAL[function][i], None
            else:
                text, expression, factor = None, f"custom rule of {function!r}", None
            terms.append(ChainTerm(parent, letter, text, expression, factor))
        return tuple(terms)

    @property
    def rule(self):
        node = self.node
        formula = _FORMULA.get(node._function, f"out = {node._function}(…)")
        parts = [formula]
        for term in self.terms:
            parts.append(f"∂L/∂{term.operand} += {term.expression}")
        return ";  ".join(parts)

    def __repr__(self):
        try:
            return f"BackwardStep({self.index}, {self.node._function!r}: {self.rule})"
        except Exception as exc:
            return f"<BackwardStep {self.index} (repr failed: {type(exc).__name__})>"


def _bind_factor(fn, node):
    prev = node._prev
    a = prev[0]._data if prev else None
    b = prev[1]._data if len(prev) > 1 else None
    o = np.asarray(node._data)
    return lambda: fn(np.asarray(a) if a is not None else None, np.asarray(b) if b is not None else None, o)
