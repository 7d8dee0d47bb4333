"""PyTorch tensors: the ``grad_fn`` graph, stepped with ``torch.autograd.graph`` hooks.

Value nodes are the output tensor, the leaf tensors (``AccumulateGrad.variable``) and one
node per autograd ``Node`` in between (its output). A leaf's or the output's data is the
tensor's own; an intermediate's is the tensor PyTorch saved for the backward pass (the
node's ``_saved_result``, or a consumer's ``_saved_self``/``_saved_other``…), else NaN:
PyTorch keeps no other intermediate values.

Stepping runs PyTorch's own backward once (``retain_graph=True``) with a hook on every
node (``Node.register_hook``) recording the grads it produced for its inputs; each step
then adds one node's grads into its parents', so a step shows exactly what that node of
PyTorch computed. A node's grad, once its last contribution is in, is the one PyTorch
passed on (``Node.register_prehook``): a tensor hook (``w.register_hook(lambda g: 2 * g)``)
shows at that step. Like the practical's ``backward()`` (and unlike PyTorch's), a pass
starts from zero; the leaves' ``.grad`` hold its result afterwards (`backward`), or, when
only looking (`BackwardStepper`, a drawing: :meth:`TorchAdapter.kept`), what they held
before. A graph PyTorch refuses to run (already backpropagated, or changed in place) is
one sentence, and every ``.grad`` is as it was. Our hooks are removed when the pass ends.
This module imports torch only when handed a torch tensor.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..engine.nn import ModuleCall
from .base import Adapter, AdapterError, ForeignNode, numeric

__all__ = ["TorchAdapter", "track_modules"]

_SCOPE_KEY = "ad_magic_scope"


def _torch_tensors(value, found):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return found


def _stamp_call(module, args, kwargs, output) -> None:
    """A forward hook: stamp every autograd node this call of ``module`` made (from its
    outputs back to its inputs) with the call, in the node's own ``metadata``, in front of
    the calls inner modules stamped (as :func:`ad_magic.nn.record_call` does for ours)."""
    call = ModuleCall(module)
    stop = {id(t.grad_fn) for t in _torch_tensors((args, kwargs), []) if t.grad_fn is not None}
    stack = [t.grad_fn for t in _torch_tensors(output, []) if t.grad_fn is not None]
    seen = set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen or id(fn) in stop or not fn.next_functions and hasattr(fn, "variable"):
            continue
        seen.add(id(fn))
        scope = fn.metadata.get(_SCOPE_KEY, ())
        if scope and scope[0].name is None:
            scope[0].name = next((name for name, child in module.named_children() if child is scope[0].module),
                                 None)
        fn.metadata[_SCOPE_KEY] = (call,) + scope
        stack.extend(next_fn for next_fn, _ in fn.next_functions)


def track_modules(model) -> list:
    """Let ad_magic draw ``model`` (a ``torch.nn.Module``) by its modules: a forward hook on
    ``model`` and each of its sub-modules records, on the autograd nodes a call makes,
    which call made them. Only calls made afterwards are recorded. Returns the hooks'
    handles (``handle.remove()`` stops it)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"track_modules needs a torch.nn.Module, got {type(model).__name__}")
    return [m.register_forward_hook(_stamp_call, with_kwargs=True) for m in model.modules()]

_SAVED_FOR_INPUT = {0: ("_saved_self", "_saved_mat1", "_saved_input"),
                    1: ("_saved_other", "_saved_vec", "_saved_mat2", "_saved_weight")}


def _array(t) -> np.ndarray:
    return t.detach().cpu().numpy()


class TorchAdapter(Adapter):
    kind = "torch"
    checks_rules = False        # the rules are PyTorch's own

    def __init__(self):
        self._inputs = {}       # id(node) -> input positions of its parents in next_functions
        self._consumers = {}    # id(autograd Node) -> [(consumer Node, input position)]
        self._grads = {}        # id(node) -> its grad while stepping
        self._record = {}       # id(node) -> grads it produced for each input, from PyTorch's run
        self._shapes = {}       # id(autograd Node) -> its output's shape, seen while stepping
        self._values = {}
        self._accumulators = {}  # id(leaf tensor) -> its AccumulateGrad node
        self._received = {}     # id(node) -> the grad PyTorch passed on to it (after tensor hooks)
        self._pending = {}      # id(node) -> contributions still to come in this pass

    # -- structure
    def scope(self, node) -> tuple:
        """The module calls recorded (by :func:`track_modules`) on this node's autograd node."""
        fn = self._fn(node)
        metadata = getattr(fn, "metadata", None)
        return metadata.get(_SCOPE_KEY, ()) if metadata is not None else ()

    def _fn(self, node):
        src = node.source
        return src.grad_fn if isinstance(src, torch.Tensor) else src

    def node(self, graph, obj):
        if isinstance(obj, torch.Tensor):
            if obj.grad_fn is None and not obj.requires_grad:
                raise AdapterError("this PyTorch tensor does not require a gradient (no grad_fn, requires_grad="
                                   "False): build it from tensors made with requires_grad=True.")
            if not (obj.dtype.is_floating_point or obj.dtype.is_complex):
                raise AdapterError(f"this PyTorch tensor has dtype {obj.dtype}, not a floating-point type.")
            return ForeignNode(graph, obj, obj.grad_fn.name() if obj.grad_fn is not None else None, None)
        return ForeignNode(graph, obj, obj.name(), None)

    def parents_of(self, node):
        fn = self._fn(node)
        if fn is None:
            return ()
        parents, positions = [], []
        for i, (nxt, _) in enumerate(fn.next_functions):
            if nxt is None:
                continue   # a constant, or an input that needs no gradient
            parent = nxt.variable if hasattr(nxt, "variable") else nxt
            if parent is not nxt:
                self._accumulators[id(parent)] = nxt
            parents.append(parent)
            positions.append(i)
            if not hasattr(nxt, "variable"):
                users = self._consumers.setdefault(id(nxt), [])
                if all(c is not fn for c, _ in users):
                    users.append((fn, i))
        self._inputs[id(node)] = positions
        return parents

    def operands_of(self, node):
        return tuple(self.parents_of(node))      # next_functions are in operand order; no constants

    def rule_text(self, node):
        return f"PyTorch's {node._function}"

    def alias(self, obj):
        """A non-leaf tensor is drawn as its grad_fn's node (and gives that node its value)."""
        if isinstance(obj, torch.Tensor) and obj.grad_fn is not None:
            self._values.setdefault(id(obj.grad_fn), numeric(_array(obj), "the tensor's data"))
            return obj.grad_fn
        return obj

    # -- values
    def data(self, node):
        src = node.source
        if isinstance(src, torch.Tensor):
            return numeric(_array(src), "the tensor's data")
        value = self._values.get(id(src))
        if value is None:
            value = self._saved_value(src)
            if value is None:
                return np.full(self._shapes.get(id(src), ()), np.nan)
            self._values[id(src)] = value
        return value

    def built(self, order):
        """Recompute, parents first, the intermediate values PyTorch did not save."""
        for node in order:
            src = node.source
            if isinstance(src, torch.Tensor) or id(src) in self._values or self._saved_value(src) is not None:
                continue
            inputs = [None] * len(src.next_functions)
            for position, parent in zip(self._inputs.get(id(node), ()), node.parents):
                value = parent.data
                inputs[position] = None if np.isnan(value).all() else value
            try:
                with np.errstate(all="ignore"):
                    value = _recompute(src, inputs)
            except Exception:     # a saved attribute freed or missing: the value stays unknown
                value = None
            if value is not None:
                self._values[id(src)] = np.asarray(value, dtype=np.float64)

    def _saved_value(self, fn):
        candidates = [(fn, "_saved_result")]
        for consumer, position in self._consumers.get(id(fn), ()):
            candidates += [(consumer, name) for name in _SAVED_FOR_INPUT.get(position, ())]
        for owner, name in candidates:
            try:
                saved = getattr(owner, name, None)
            except RuntimeError:       # freed by a backward() without retain_graph
                continue
            if isinstance(saved, torch.Tensor):
                return numeric(_array(saved), "a saved tensor")
        return None

    def grad(self, node):
        g = self._grads.get(id(node))
        if g is not None:
            return g
        src = node.source
        if isinstance(src, torch.Tensor) and src.is_leaf and src.grad is not None:
            return _array(src.grad).astype(np.float64)
        return None

    def set_grad(self, node, value):
        self._grads[id(node)] = np.array(value, dtype=np.float64)

    # -- backward: PyTorch's, once, recorded per node
    def has_backward(self, node):
        return self._fn(node) is not None

    def prepare(self, root, order, seed):
        output = root.source
        if not isinstance(output, torch.Tensor):
            raise AdapterError("a PyTorch graph is stepped from its output tensor, not from an inner node.")
        self._record, self._received = {}, {}
        handles = []
        leaves = [node.source for node in order if node.is_leaf and isinstance(node.source, torch.Tensor)]
        saved = [leaf.grad for leaf in leaves]
        try:
            for node in order:
                fn = self._fn(node)
                if fn is not None and node.parents:
                    handles.append(fn.register_hook(self._recorder(id(node), fn)))
                passed_on = fn if fn is not None else self._accumulators.get(id(node.source))
                if passed_on is not None and node is not root:
                    handles.append(passed_on.register_prehook(self._receiver(id(node))))
            for leaf in leaves:
                leaf.grad = None      # a pass starts from zero, like the practical's backward
            try:
                torch.autograd.backward(output, torch.as_tensor(seed, dtype=output.dtype), retain_graph=True)
            except RuntimeError as exc:
                for leaf, grad in zip(leaves, saved):   # refused: every grad as it was
                    leaf.grad = grad
                if "second time" in str(exc) or "freed" in str(exc):
                    raise AdapterError("this PyTorch graph was already backpropagated and its buffers freed; "
                                       "compute it again (or call backward(retain_graph=True)).") from None
                if "inplace operation" in str(exc):
                    raise AdapterError("this PyTorch graph cannot be backpropagated: a tensor it saved was changed "
                                       "in place after it was computed; compute it again.") from None
                raise
        finally:
            for h in handles:
                h.remove()
        self._pending = {}
        for node in order:
            produced = self._record.get(id(node))
            for position, parent in zip(self._inputs.get(id(node), ()), node.parents):
                if produced is not None and position < len(produced) and produced[position] is not None:
                    self._pending[id(parent)] = self._pending.get(id(parent), 0) + 1

    @contextlib.contextmanager
    def kept(self, order):
        """Looking at the graph changes nothing: the ``.grad`` of every tensor it holds (the
        leaves, and the output when it retains its grad), the tensor itself with its values,
        is put back when the block ends."""
        leaves = [node.source for node in order
                  if isinstance(node.source, torch.Tensor) and (node.source.is_leaf or node.source.retains_grad)]
        saved = [(leaf.grad, None if leaf.grad is None else leaf.grad.detach().clone()) for leaf in leaves]
        try:
            yield
        finally:
            for leaf, (grad, values) in zip(leaves, saved):
                if grad is not None:
                    with torch.no_grad():
                        grad.copy_(values)
                leaf.grad = grad

    def _receiver(self, key):
        def receive(grad_outputs):
            if grad_outputs and grad_outputs[0] is not None:
                self._received[key] = _array(grad_outputs[0]).astype(np.float64)
        return receive

    def _recorder(self, key, fn):
        def record(grad_inputs, grad_outputs):
            self._record[key] = [None if g is None else _array(g).astype(np.float64) for g in grad_inputs]
            if grad_outputs and grad_outputs[0] is not None:
                self._shapes[id(fn)] = tuple(grad_outputs[0].shape)
        return record

    def run_backward(self, node):
        produced = self._record.get(id(node))
        if produced is None:
            return                                 # PyTorch did not run it (nothing flowed through)
        for position, parent in zip(self._inputs.get(id(node), ()), node.parents):
            c = produced[position] if position < len(produced) else None
            if c is not None:
                old = self._grads.get(id(parent))
                self._grads[id(parent)] = c.copy() if old is None or old.shape != c.shape else old + c
                left = self._pending[id(parent)] = self._pending.get(id(parent), 1) - 1
                passed_on = self._received.get(id(parent))
                if left == 0 and passed_on is not None and passed_on.shape == self._grads[id(parent)].shape:
                    if not np.allclose(passed_on, self._grads[id(parent)], equal_nan=True):
                        said = f"a hook on this input changed its grad from the sum {self._grads[id(parent)]}"
                        if said not in (node.remark or ""):
                            node.remark = "; ".join(filter(None, (node.remark, said)))
                    self._grads[id(parent)] = passed_on.copy()   # after the tensor's hooks, as PyTorch


def _saved(fn, name):
    value = getattr(fn, name)
    return _array(value).astype(np.float64) if isinstance(value, torch.Tensor) else value


def _recompute(fn, inputs):
    """The output of autograd node ``fn`` from its inputs' values (None: unknown) and what
    it saved, for the common operations; None when it cannot be known."""
    name = fn.name()
    a = inputs[0] if inputs else None
    b = inputs[1] if len(inputs) > 1 else None
    if name in ("MulBackward0", "DivBackward0"):
        # PyTorch saves an operand only when the other one needs a gradient: else use the input's value
        left = _saved(fn, "_saved_self") if name == "MulBackward0" else a
        left = a if left is None else left
        right = _saved(fn, "_saved_other")
        right = b if right is None else right
        if left is None or right is None:
            return None
        return left * right if name == "MulBackward0" else left / right
    if name == "MvBackward0":
        return _saved(fn, "_saved_self") @ _saved(fn, "_saved_vec")
    if name == "MmBackward0":
        return _saved(fn, "_saved_self") @ _saved(fn, "_saved_mat2")
    if name == "PowBackward0":
        return _saved(fn, "_saved_self") ** _saved(fn, "_saved_exponent")
    if name == "MulBackward1" and a is not None:
        return a * _saved(fn, "_saved_other")
    if a is None:
        return None
    if name in ("AddBackward0", "SubBackward0") and b is not None:
        sign = 1 if name == "AddBackward0" else -1
        return a + sign * _saved(fn, "_saved_alpha") * b
    unary = {"NegBackward0": np.negative, "SumBackward0": np.sum, "MeanBackward0": np.mean,
             "ExpBackward0": np.exp, "LogBackward0": np.log, "TanhBackward0": np.tanh,
             "ReluBackward0": lambda x: np.maximum(x, 0), "SigmoidBackward0": lambda x: 1 / (1 + np.exp(-x))}
    if name in unary and len(inputs) == 1:
        return unary[name](a)
    return None
