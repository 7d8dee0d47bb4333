"""`Tensor`: a NumPy array that remembers how it was computed.

A tensor holds its values (`data`), its gradient (`grad`, None until backward() reaches
it), the tensors it was computed from (`_parents`, in operand order as `parents`) and
the name of the operation that made it (`_function`, None for a leaf). Operations live
in `ops.py` (each declared once, with its derivatives); `backprop.py` runs the chain
rule over the recorded graph and replays it forwards.

This module never imports anything from Jupyter: it runs headless in scripts and tests.

Implementation notes (why the code looks the way it does):

* A node keeps its first two inputs in the slots `_a` and `_b` (and any more in
  `_rest`) instead of a tuple: one object per node instead of two for the cyclic garbage
  collector to track, which is most of the time spent building a large scalar graph.
* A Python number used in an operation (`x * 4`) is kept as it is (immutable) in its
  node. It becomes a constant `Tensor` of that node only when someone looks at the
  graph (`parents`, `_parents`, `trace_graph`), so nothing mutable is shared between
  graphs and a long scalar chain makes no extra objects.
* Internally a computed 0-d value is the NumPy scalar NumPy itself returns (32 bytes
  instead of a 104-byte 0-d array). The public `data` and `grad` always hand out
  `numpy.ndarray` objects.
* Each node's grad is its own: the engine tracks whether the array it holds may be
  seen elsewhere (see `backprop.py`), and copies before handing a shared one out.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

__all__ = ["Tensor", "no_grad", "enable_grad", "is_grad_enabled"]

_ndarray = np.ndarray

# Tensor's operators call the op registry (ops.py) and its methods call backprop.py; both
# build on this module, so this module imports neither: the engine's __init__ binds them
# here (`bind_engine`) once both are loaded, before any Tensor can be made by a user.
_ops = _backprop = None


def bind_engine(ops, backprop) -> None:
    """Give Tensor's operators and methods the op registry and backprop (called once by
    ``ad_magic.engine``, which imports tensor.py, ops.py and backprop.py in that order)."""
    global _ops, _backprop
    _ops, _backprop = ops, backprop


# How a notebook shows a tensor: the drawing layer, above the engine, registers its
# renderers here when it is imported (`ad_magic` imports it); without them a tensor's
# picture is None and Jupyter shows its text repr.
_display: dict = {}


def set_display(svg=None, mimebundle=None) -> None:
    """Register the functions of one tensor that draw ``Tensor._repr_svg_`` (an SVG
    string) and ``Tensor._repr_mimebundle_`` (a dict of MIME type to data)."""
    _display["svg"], _display["mimebundle"] = svg, mimebundle


# The states of a node's grad array (slot `_gstate`):
BORROWED = 0  # may be another node's array or a read-only view: never written, copied before it is handed out
OWNED = 1     # made by the engine for this node alone: backprop may add into it in place
EXPOSED = 2   # this node's own, but a caller may hold it: never written by the engine again


# --------------------------------------------------------------------------- grad mode

class _GradMode(threading.local):
    """Whether operations record a graph, per thread (another thread's no_grad() block
    never turns recording off here).

    Each open block is an entry of `blocks`; the innermost one that is still open
    decides. A block removes its own entry when it closes, so blocks that close out of
    order (two generators, each inside its own no_grad()) still leave recording on.
    """

    enabled = True

    def __init__(self):
        self.blocks = []

    def open(self, enabled):
        token = object()
        self.blocks.append((token, enabled))
        self.enabled = enabled
        return token

    def close(self, token):
        self.blocks[:] = [block for block in self.blocks if block[0] is not token]
        self.enabled = self.blocks[-1][1] if self.blocks else True


grad_mode = _GradMode()
"""Whether this thread records graphs (``no_grad()`` blocks); the ops read ``grad_mode.enabled``."""


def is_grad_enabled() -> bool:
    """True unless this thread is inside a `no_grad()` block."""
    return grad_mode.enabled


@contextlib.contextmanager
def _grad_enabled(enabled: bool):
    token = grad_mode.open(enabled)
    try:
        yield
    finally:
        grad_mode.close(token)


def no_grad():
    """Context manager (and decorator): operations inside it record no graph.

    Use it for evaluation and for parameter updates, as in PyTorch. It applies to the
    current thread only.
    """
    return _grad_enabled(False)


def enable_grad():
    """Context manager: operations inside it record a graph, even within `no_grad()`."""
    return _grad_enabled(True)


# --------------------------------------------------------------------------- data

def float_array(value, where: str, copy: bool):
    """`value` as a float ndarray (float32 kept, every other real type -> float64)."""
    if isinstance(value, Tensor):
        value = value._data
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{where}: expected numbers, got the string {value!r}")
    try:
        array = np.array(value, copy=True) if copy else np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{where}: cannot make a numeric array from {describe(value)} ({exc})") from None
    kind = array.dtype.kind
    if kind == "f":
        if array.dtype not in (np.float32, np.float64):
            array = array.astype(np.float64)
        return array
    if kind in "biu":
        return array.astype(np.float64)
    if kind == "c":
        raise TypeError(f"{where}: complex data is not supported (got dtype {array.dtype})")
    raise TypeError(f"{where}: expected numbers, got {describe(value)} (dtype {array.dtype})")


def compact(array):
    """A 0-d array as the NumPy scalar of its type (see the module notes), else the array."""
    return array[()] if array.ndim == 0 else array


def describe(value) -> str:
    """A short description of a value for an error message: its type and repr."""
    try:
        text = repr(value)
    except Exception:
        text = "?"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def accumulate(tensor, contribution, fresh):
    """tensor.grad += contribution, where a grad of None means 'zero so far'.

    `fresh` says the contribution is a new array nobody else holds, so it may become
    this tensor's grad as it is; otherwise it is kept as BORROWED. A grad is cast to
    its tensor's dtype (a float32 leaf gets a float32 grad, as in PyTorch).
    """
    dtype = tensor._data.dtype
    if contribution.dtype != dtype:
        contribution = contribution.astype(dtype)
        fresh = True
    old = tensor._grad
    if old is None:
        tensor._grad = contribution
        tensor._gstate = OWNED if fresh else BORROWED
    elif tensor._gstate == OWNED and type(old) is _ndarray:
        old += contribution
    else:
        tensor._grad = old + contribution
        tensor._gstate = OWNED


# ------------------------------------------------------------------------- Tensor

class Tensor:
    """A NumPy array that remembers how it was computed, so it can be differentiated.

    ``Tensor(data)`` accepts a Python number, a (nested) list or a NumPy array; the
    data is copied and stored as floats (float32 stays float32, anything else becomes
    float64). Every tensor you create is a variable whose gradient backward() computes;
    pass ``requires_grad=False`` for a constant.
    """

    __slots__ = ("_data", "_grad", "_gstate", "_a", "_b", "_rest", "_function", "_op", "_args",
                 "name", "requires_grad", "_mark", "_landscape", "_scope")
    # _landscape: set only on a tensor a loss landscape returned (landscapes.landscape_of
    # reads it with a default); _scope: the module calls that made the node (nn.Module.__call__),
    # set only on nodes a module call made. Unset everywhere else, at no cost.

    # -- NumPy functions on tensors --------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        """``np.array(t)``, ``np.asarray(t)``: the values (outside the graph), as ``t.data``."""
        if copy is False:
            return np.asarray(self._data, dtype=dtype)
        return np.array(self._data, dtype=dtype, copy=True)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """``array * t``, ``np.exp(t)``: NumPy's arithmetic on a tensor is the tensor's own
        operation, recorded in the graph; any other use of a ufunc is refused in one sentence."""
        op = _UFUNC_OPS.get(ufunc.__name__)
        if op is None or method != "__call__" or kwargs:
            call = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
            raise TypeError(f"{call} cannot record a graph for a Tensor: use the Tensor's own operations "
                            "(t + u, t.exp(), W @ x, t.sum()), or t.data for its values outside the graph")
        return getattr(_ops, op)(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        """``np.dot(W, x)`` (vectors and matrices) is ``W @ x``, and ``np.sum(t, axis)`` and
        ``np.mean`` are ``t.sum(axis)`` and ``t.mean``, recorded; NumPy's other functions
        (``np.stack``, ``np.concatenate``, …) are refused in one sentence rather than
        returning an array of one-element tensors."""
        name = getattr(func, "__name__", "function")
        if name in ("shape", "ndim", "size") and len(args) == 1 and not kwargs:
            return func(self._data)
        if name in ("sum", "mean") and args and args[0] is self and len(args) <= 2 and set(kwargs) <= {
                "axis", "keepdims"}:
            return getattr(self, name)(*args[1:], **kwargs)          # np.sum(t, axis=0) is t.sum(axis=0)
        if name in ("dot", "matmul") and len(args) == 2 and not kwargs and all(
                np.ndim(a._data if isinstance(a, Tensor) else a) <= 2 for a in args):
            return _ops.matmul(*args)
        raise TypeError(f"np.{name} cannot record a graph for Tensors: use the Tensor's own operations "
                        "(W @ x, t.sum(), t.reshape(…)), or t.data for the values outside the graph")

    def __init__(self, data, name=None, requires_grad=True):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Tensor: name must be a string, got {type(name).__name__}")
        _leaf(self, compact(float_array(data, "Tensor", copy=True)), name, bool(requires_grad))

    # -- the practical's attributes -------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The values, as a NumPy array: shared with the tensor, except for a 0-d tensor,
        whose single value is handed out as a new 0-d array (assign ``t.data = …`` to change it;
        the tensor keeps a copy of what is assigned, so the engine never writes into the
        caller's array)."""
        d = self._data
        return d if type(d) is _ndarray else np.asarray(d)

    @data.setter
    def data(self, value):
        self._data = compact(float_array(value, "Tensor.data", copy=True))

    @property
    def grad(self):
        """∂(output)/∂(this tensor) after backward(), as an array of data's shape; None before.

        The array is this tensor's own: writing into it changes no other tensor's grad.
        """
        g = self._grad
        if g is None:
            return None
        if type(g) is not _ndarray:
            return np.asarray(g)
        if self._gstate == BORROWED:
            g = self._grad = np.array(g)  # shared with another node or read-only: a copy of our own
        self._gstate = EXPOSED
        return g

    @grad.setter
    def grad(self, value):
        if value is None:
            self._grad = None
            return
        array = float_array(value, "Tensor.grad", copy=False)
        if array.shape != np.shape(self._data):
            raise ValueError(
                f"Tensor.grad: shape {array.shape} does not match the tensor's shape {np.shape(self._data)}"
            )
        if array.dtype != self._data.dtype:
            array = array.astype(self._data.dtype)
        self._grad = compact(array)
        self._gstate = EXPOSED  # the caller may hold it

    @property
    def parents(self) -> tuple:
        """The tensors this one was computed from, in operand order (empty for a leaf).

        Unlike the practical's `_parents` (a set), this keeps order and repeats:
        ``x * x`` has parents ``(x, x)``; ``x * 4`` has ``(x, <constant 4>)``.
        """
        a = self._a
        if a is None:
            return ()
        b = self._b
        dtype = self._data.dtype
        if not isinstance(a, Tensor):
            a = self._a = constant_tensor(dtype.type(a))
        if b is None:
            return (a,)
        if not isinstance(b, Tensor):
            b = self._b = constant_tensor(dtype.type(b))
        rest = self._rest
        if rest is None:
            return (a, b)
        if not all(isinstance(p, Tensor) for p in rest):
            rest = self._rest = tuple(p if isinstance(p, Tensor) else constant_tensor(dtype.type(p)) for p in rest)
        return (a, b, *rest)

    @property
    def _prev(self) -> tuple:
        """Same as `parents` (the name micrograd uses)."""
        return self.parents

    @property
    def _parents(self) -> set:
        """The set of tensors this one was computed from (empty for a leaf)."""
        return set(self.parents)

    @_parents.setter
    def _parents(self, parents):
        try:
            parents = tuple(parents)
        except TypeError:
            raise TypeError(
                f"Tensor._parents must be an iterable of Tensors (a set, list or tuple), "
                f"got {type(parents).__name__}"
            ) from None
        for p in parents:
            if not isinstance(p, Tensor):
                raise TypeError(f"Tensor._parents: every parent must be a Tensor, got {describe(p)}")
        self._a = parents[0] if parents else None
        self._b = parents[1] if len(parents) > 1 else None
        self._rest = parents[2:] if len(parents) > 2 else None

    @property
    def _backward(self):
        """Apply the chain rule: add this node's contribution to its parents' grads.

        Built-in operations derive it from their entry in the op registry; you may also
        assign a function of no arguments here to define your own operation.
        """
        op = self._op
        return None if op is None else (lambda: op.backward(self))

    @_backward.setter
    def _backward(self, function):
        if function is None:
            self._op = None
        elif callable(function):
            self._op = _backprop.CustomOp(function, self._function)
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
        """The data as a NumPy array, shared with the tensor (writing into it changes the
        tensor), except for a 0-d tensor: its one value comes as a new 0-d array each time."""
        return self.data

    def detach(self) -> Tensor:
        """A new leaf holding the same data, outside any graph."""
        return _leaf(Tensor.__new__(Tensor), self._data, self.name, False)

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor (it holds one value: use .item())")
        return (_ops.getitem(self, i) for i in range(len(self._data)))

    def __bool__(self):
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use (t > 0).all()-style "
                "tests on t.data instead"
            )
        return bool(self.item())

    def __repr__(self):
        try:
            return _tensor_repr(self)
        except Exception as exc:  # a repr never raises
            return f"<Tensor (repr failed: {type(exc).__name__})>"

    def _repr_svg_(self) -> str:
        """Jupyter's picture of a tensor: the graph that produced it (drawn by the renderer
        the drawing layer registers, see `set_display`; None without one). Never raises."""
        show = _display.get("svg")
        if show is None:
            return None
        try:
            return show(self)
        except Exception:  # a repr never raises
            return None

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Jupyter's display of a tensor, from one layout: the graph fitted to the output
        with zoom buttons (HTML), the same as an SVG picture, and the text repr (only the
        text without a renderer registered by the drawing layer, see `set_display`)."""
        show = _display.get("mimebundle")
        if show is None:
            return {"text/plain": repr(self)}
        try:
            return show(self)
        except Exception:  # a repr never raises
            return {"text/plain": repr(self)}

    # -- operators ------------------------------------------------------------------
    def __add__(self, other): return _ops.add(self, other)
    def __radd__(self, other): return _ops.add(other, self)
    def __sub__(self, other): return _ops.sub(self, other)
    def __rsub__(self, other): return _ops.sub(other, self)
    def __mul__(self, other): return _ops.mul(self, other)
    def __rmul__(self, other): return _ops.mul(other, self)
    def __truediv__(self, other): return _ops.div(self, other)
    def __rtruediv__(self, other): return _ops.div(other, self)
    def __pow__(self, other): return _ops.power(self, other)
    def __rpow__(self, other): return _ops.power(other, self)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __neg__(self): return _ops.neg(self)
    def __pos__(self): return self

    def __getitem__(self, index):
        try:
            return _ops.getitem(self, index)
        except IndexError as exc:   # a bad index is the caller's: raised here, the sentence alone
            raise IndexError(str(exc)) from None

    # -- methods --------------------------------------------------------------------
    def exp(self): return _ops.exp(self)
    def log(self): return _ops.log(self)
    def tanh(self): return _ops.tanh(self)
    def sigmoid(self): return _ops.sigmoid(self)
    def relu(self): return _ops.relu(self)
    def sum(self, axis=None, keepdims=False): return _ops.tensor_sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops.mean(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    @property
    def T(self):
        return _ops.transpose(self, None)

    # -- backpropagation and replay ----------------------------------------------------
    def backward(self, grad=None):
        """Compute ∂self/∂t for every tensor t in the graph that produced self.

        Every grad in the graph is reset first, so calling backward() twice gives the
        same grads (PyTorch instead accumulates into .grad until you zero it).
        A non-scalar output needs `grad`, the gradient of some scalar w.r.t. it.
        """
        for _ in _backprop.run_backward(self, grad, steps=False):
            pass

    def backward_steps(self, grad=None):
        """Run backpropagation one node at a time: yields a `BackwardStep` after each
        node's `_backward` has run, in the order backward() runs them.

        Before the first step every grad in the graph is cleared and the output's grad
        is seeded with ones (or `grad`). A grad not reached yet reads None (zero so far).
        """
        return _backprop.run_backward(self, grad)

    def forward(self):
        """Re-evaluate the graph that produced this tensor from its leaves' current data.

        Every node is recomputed in place, parents before children, with the operation
        that made it, and its grad is cleared (it belonged to the old values). Values
        computed from constants only (``requires_grad=False`` leaves, such as a batch of
        data) are recomputed too, so the result is what rebuilding the graph from the
        leaves' data would give. Returns this tensor. A leaf whose new data no longer
        fits the graph's shapes is a ValueError, and then nothing is changed.
        """
        for _ in _backprop.run_forward(self, steps=False):
            pass
        return self

    def forward_steps(self):
        """Replay the graph one node at a time: yields a `ForwardStep` (the node and its
        new value) after each node is recomputed, in the order forward() runs them."""
        return _backprop.run_forward(self)


# NumPy's ufuncs that are a Tensor operation (the name of the function in ops.py).
_UFUNC_OPS = {"add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "div", "divide": "div",
              "power": "power", "matmul": "matmul", "negative": "neg", "exp": "exp", "log": "log",
              "tanh": "tanh"}


def _tensor_repr(t: Tensor) -> str:
    def fmt(array):
        array = np.asarray(array)
        if array.ndim == 0:
            return repr(float(array))
        return np.array2string(array, precision=4, threshold=20, edgeitems=2, separator=", ").replace("\n", "")

    parts = [fmt(t._data)]
    if t.name:
        parts.append(f"name={t.name!r}")
    if np.ndim(t._data):
        parts.append(f"shape={np.shape(t._data)}")
    if t._data.dtype != np.float64:
        parts.append(f"dtype={t._data.dtype}")
    if t._function is not None:
        parts.append(f"fn={t._function!r}")
    if t._grad is not None:
        parts.append(f"grad={fmt(t._grad)}")
    elif not t.requires_grad:
        parts.append("requires_grad=False")
    return f"Tensor({', '.join(parts)})"


def constant_tensor(value) -> Tensor:
    """A constant leaf (no gradient) holding `value`, a NumPy scalar or array."""
    return _leaf(Tensor.__new__(Tensor), value, None, False)


def _leaf(t: Tensor, data, name, requires_grad: bool) -> Tensor:
    """``t`` with every slot of a leaf set: ``data`` (kept as given), no grad, no inputs.
    The one place a leaf's slots are listed; an op's output sets the same slots with its
    inputs (``ops._node`` and the registry's per-arity functions, kept inline for speed)."""
    t._data, t._grad, t._gstate = data, None, BORROWED
    t._a = t._b = t._rest = t._function = t._op = t._args = None
    t.name, t.requires_grad, t._mark = name, requires_grad, 0
    return t
