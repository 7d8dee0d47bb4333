"""Neural-network building blocks on top of the engine: Module, Linear, MLP, mse_loss.

Calling a module records which nodes the call made, so a drawing can show the model by
its modules (a labelled box per call, collapsible to one box such as ``Linear(1→3)``):
after ``forward`` returns, :meth:`Module.__call__` walks back from the outputs to the
call's own inputs and stamps each node it made with the call, as the tuple
:func:`module_scope` reads (outermost call first). Only the nodes a call made are touched,
by the thread running that call, so nested calls (an MLP calling its Linear layers),
threads and re-entrant calls need no flag and no shared state: an inner call stamps its
nodes first, and the enclosing call then puts itself in front.
"""

from __future__ import annotations

import numpy as np

from .ops import linear
from .tensor import Tensor

__all__ = ["Module", "Linear", "MLP", "mse_loss", "ModuleCall", "module_scope", "parameter_list"]


class ModuleCall:
    """One call of a module: ``module`` and the ``name`` it has in the module that called
    it, written as the user reaches it (``layers[0]``; None for a call from outside any
    module). The nodes the call made carry it in their scope; it holds no tensor, so it
    keeps no graph alive."""

    __slots__ = ("module", "name")

    def __init__(self, module, name=None):
        self.module, self.name = module, name

    def __repr__(self):
        return f"ModuleCall({self.name or '-'}: {self.module!r})"


def module_scope(tensor) -> tuple:
    """The module calls that made ``tensor``, outermost first (``()`` for a node made
    outside any module, a leaf or a parameter)."""
    return getattr(tensor, "_scope", None) or ()


def _tensors_in(value, found):
    """The Tensors in ``value`` (a Tensor, or lists, tuples and dicts of them)."""
    if type(value) is Tensor:     # the usual output: one tensor
        found.append(value)
        return found
    if type(value) is tuple and all(type(v) is Tensor for v in value):   # the usual arguments
        found.extend(value)
        return found
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return found


def _child_name(parent, child) -> str | None:
    """How ``child`` is reached from ``parent`` in Python (``head``, ``layers[0]``,
    ``heads['query']``), the path its parameters' names start with; or None."""
    for attribute, value in vars(parent).items():
        if value is child:
            return attribute
        if isinstance(value, (list, tuple)):
            for k, item in enumerate(value):
                if item is child:
                    return f"{attribute}[{k}]"
        elif isinstance(value, dict):
            for key, item in value.items():
                if item is child:
                    return f"{attribute}[{key!r}]"
    return None


def record_call(module, inputs, outputs) -> None:
    """Stamp every node made by this call of ``module`` (reachable from ``outputs``
    without passing through ``inputs``) with the call, in front of the calls already
    stamped on it by inner modules.

    A node the forward reads that existed before the call without being passed in (a
    tensor computed earlier and kept on the module) is counted as the call's own: pass
    such a tensor as an argument to keep it outside the module's box.

    It runs on every forward of every module, so it reads the engine's slots directly: a
    node's inputs are ``_a``, ``_b`` and ``_rest`` (a number kept in a node is no tensor and
    is skipped, never turned into a constant Tensor here), and a node already stamped with
    this call is recognised by its scope, without a set of the nodes seen.
    """
    call = ModuleCall(module)
    stop = {id(t) for t in _tensors_in(inputs, [])}
    stack = _tensors_in(outputs, [])
    while stack:
        t = stack.pop()
        if t._function is None or id(t) in stop:
            continue
        scope = getattr(t, "_scope", None) or ()
        if scope:
            if scope[0] is call:
                continue
            if scope[0].name is None:
                scope[0].name = _child_name(module, scope[0].module)
        t._scope = (call,) + scope
        a, b, rest = t._a, t._b, t._rest
        if isinstance(a, Tensor):
            stack.append(a)
        if isinstance(b, Tensor):
            stack.append(b)
        if rest:
            stack.extend(r for r in rest if isinstance(r, Tensor))


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def parameter_list(params, who="descend") -> list:
    """`params` as the list of Tensors it stands for: the one reading of a ``params``
    argument (optimizers, `descend`, `check_descent`, the explorer, the magic).

    A `Module` stands for its `parameters()`, a Tensor for itself, None for nothing, and a
    list, tuple or other iterable for its items in order (a Module among them for its
    parameters). Anything else is a TypeError naming `who`. The items are not checked
    further here: each caller says what it needs of them.
    """
    if isinstance(params, Module):
        return params.parameters()
    if isinstance(params, Tensor):
        return [params]
    if params is None:
        return []
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{who}: params must be a Tensor, a list of Tensors or an nn.Module, "
                        f"got {type(params).__name__}")
    found = []
    for item in params:
        if isinstance(item, Module):
            found.extend(item.parameters())
        else:
            found.append(item)
    return found


class Module:
    """Base class: a callable with parameters. Subclasses define `forward`."""

    def parameters(self):
        """Every parameter Tensor of this module and its sub-modules, each once, in order."""
        found, seen = [], set()  # `seen` holds containers too: a module referring back to its owner is fine
        stack = [self]
        while stack:  # depth first, in attribute order, without recursion
            value = stack.pop()
            if isinstance(value, Tensor):
                if value.requires_grad and id(value) not in seen:
                    seen.add(id(value))
                    found.append(value)
                continue
            if isinstance(value, Module):
                items = list(vars(value).values())
            elif isinstance(value, (list, tuple)):
                items = list(value)
            elif isinstance(value, dict):
                items = list(value.values())
            else:
                continue
            if id(value) in seen:
                continue
            seen.add(id(value))
            stack.extend(reversed(items))
        return found

    def zero_grad(self):
        """Set every parameter's grad to None."""
        for p in self.parameters():
            p.grad = None

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def __call__(self, *args, **kwargs):
        """``forward(*args, **kwargs)``, with the nodes it made recorded as this call's
        (see :func:`record_call`), so a drawing can box them as the module."""
        out = self.forward(*args, **kwargs)
        record_call(self, (args, kwargs) if kwargs else args, out)
        return out

    def label(self) -> str:
        """How a drawing names this module's box: its class, and its sizes when known."""
        return type(self).__name__


class Linear(Module):
    """y = x @ W + b, with W of shape (n_in, n_out) and b of shape (n_out,).

    The graph shows it as one `linear` node (as PyTorch's addmm), not matmul then add.
    W starts uniform in ±sqrt(6 / n_in) (He initialisation, suited to ReLU), b at zero.
    """

    def __init__(self, n_in, n_out, *, seed=None, dtype=np.float64, name=None):
        for label, n in (("n_in", n_in), ("n_out", n_out)):
            if not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"Linear: {label} must be a positive integer, got {n!r}")
        rng = _rng(seed)
        bound = np.sqrt(6.0 / n_in)
        prefix = f"{name}." if name else ""
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.W = Tensor(rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype), name=f"{prefix}W")
        self.b = Tensor(np.zeros(n_out, dtype=dtype), name=f"{prefix}b")

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)
        if x.ndim == 0 or x.shape[-1] != self.n_in:
            raise ValueError(f"Linear: expected inputs with last axis {self.n_in}, got shape {x.shape}")
        return linear(x, self.W, self.b)

    def __repr__(self):
        return f"Linear({self.n_in}, {self.n_out})"

    def label(self) -> str:
        return f"Linear({self.n_in}→{self.n_out})"


class MLP(Module):
    """A multilayer perceptron: MLP([n_in, hidden…, n_out]) with ReLU between layers
    (none after the last, so the output is a plain linear regression head)."""

    def __init__(self, sizes, *, seed=None, dtype=np.float64):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: give at least an input and an output size, got {sizes!r}")
        rng = _rng(seed)
        self.sizes = sizes
        self.layers = [
            Linear(n_in, n_out, seed=rng, dtype=dtype, name=f"layers[{i}]")   # W is net.layers[0].W
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.relu()
        return x

    def __repr__(self):
        return f"MLP({self.sizes})"

    def label(self) -> str:
        return f"MLP({'→'.join(str(n) for n in self.sizes)})"


def mse_loss(prediction, target):
    """Mean squared error: mean((prediction - target)²).

    The shapes must match exactly: (N, 1) against (N,) would silently broadcast to an
    N×N matrix of differences, so it is an error here.
    """
    if not isinstance(prediction, Tensor):
        raise TypeError(f"mse_loss: prediction must be a Tensor, got {type(prediction).__name__}")
    if not isinstance(target, Tensor):
        target = Tensor(target, requires_grad=False)
    if prediction.shape != target.shape:
        raise ValueError(
            f"mse_loss: prediction has shape {prediction.shape} but target has shape {target.shape}; "
            "reshape one of them so they match"
        )
    diff = prediction - target
    return (diff * diff).mean()
