"""The adapter contract: how a node of someone else's graph is read, whatever it is called.

A student's ``Tensor``, a micrograd-style ``Value`` or a NumPy micrograd are read through
one list of common spellings per field, tried in order; the first one the object has
(and that is not a method) is used. The README's "Your own Tensor" section prints the
same lists.

* data: :data:`DATA` — a Python number, a NumPy scalar, a 0-d array, a vector, a
  matrix or a nested list;
* parents: :data:`PARENTS` (per class, the first spelling holding something on the first
  node met, the output) — a set, list, tuple, dict's keys, generator or any iterable
  of nodes; plain numbers (and arrays) among them are constants of the operation, and a
  ``(node, anything)`` pair counts as its node. Without one of those, the parents of an
  object held in :data:`HOLDERS` (``grad_fn``, ``_ctx``, …) under :data:`HOLDER_PARENTS`;
* op name: :data:`OP` (a string; a function or object gives its name), then the holders,
  then the name of the rule itself (``Tensor.__mul__.<locals>._backward`` -> ``mul``,
  ``Value._tanh_backward`` -> ``tanh``); a computed node with none of these is drawn as
  ``?``, edges and all;
* grad: :data:`GRAD` (None, a number or an array); written back in the data's own kind
  (a float when the data is a Python number, else an array like ``np.zeros_like(data)``);
* rule: :data:`RULES` — a callable taking nothing (it adds into its parents' grads) or
  one argument (the node's grad); else the local rules kept beside the parents
  (``depends_on = [Dependency(tensor, grad_fn)]``, ``[(node, fn), …]``: each gives its
  input's grad from the node's); else a holder's ``backward(grad)`` method. If it
  *returns* the parents' grads instead of adding them (a tuple in parents' order, or one
  value for one parent), they are added for it;
* name: :data:`NAMES`; requires_grad: :data:`REQUIRES` (default True).

An object is read as a node when it has a data spelling and at least one of the others.
"""
from __future__ import annotations

import functools
import inspect
import numbers
import re

import numpy as np

from ..engine.formatting import short_repr
from .base import AdapterError, ForeignNode, numeric

__all__ = ["StudentAdapter", "looks_like", "not_a_node", "DATA", "PARENTS", "HOLDERS", "HOLDER_PARENTS", "OP",
           "GRAD", "RULES", "NAMES", "REQUIRES", "canonical_op"]

DATA = ("data", "_data", "value", "_value", "val", "values", "_values")
PARENTS = ("_parents", "_prev", "prev", "parents", "_children", "children", "_inputs", "inputs", "_previous",
           "previous", "_operands", "operands", "args", "_src", "src", "_sources", "sources", "_predecessors",
           "predecessors", "_deps", "deps", "depends_on", "dependency", "dependencies")
HOLDERS = ("grad_fn", "_grad_fn", "_ctx", "ctx", "creator", "_creator", "node", "_node")
HOLDER_PARENTS = ("parents", "_parents", "inputs", "_inputs", "prev", "_prev", "children", "_children", "tensors",
                  "args")
OP = ("_function", "_op", "op", "_operation", "operation", "_op_name", "op_name", "_opname", "opname", "function",
      "_fn", "fn")
GRAD = ("grad", "_grad", "gradient", "_gradient")
RULES = ("_backward", "_backward_fn", "backward_fn", "_backward_function", "backward_function", "_grad_fn", "grad_fn",
         "_grad_func", "grad_func", "_gradient_fn", "gradient_fn", "_backprop", "backprop", "_back")
NAMES = ("name", "label", "_name", "_label")
REQUIRES = ("requires_grad", "_requires_grad")

# The names code gives operations (symbols, words, method names), mapped to ad_magic's op registry.
ALIASES = {
    "+": "add", "add": "add", "plus": "add", "radd": "add", "iadd": "add", "sum2": "add",
    "-": "sub", "sub": "sub", "minus": "sub", "subtract": "sub", "rsub": "sub", "isub": "sub",
    "*": "mul", "mul": "mul", "times": "mul", "multiply": "mul", "rmul": "mul", "imul": "mul", "·": "mul",
    "/": "div", "div": "div", "truediv": "div", "rtruediv": "div", "divide": "div", "itruediv": "div",
    "**": "pow", "^": "pow", "pow": "pow", "power": "pow", "rpow": "pow",
    "neg": "neg", "negate": "neg", "negative": "neg",
    "exp": "exp", "log": "log", "ln": "log", "tanh": "tanh", "sigmoid": "sigmoid", "sigm": "sigmoid", "σ": "sigmoid",
    "relu": "relu",
    "@": "matmul", "matmul": "matmul", "rmatmul": "matmul", "matvec": "matmul", "mv": "matmul", "mm": "matmul",
    "dot": "matmul",
    "addition": "add", "multiplication": "mul", "product": "mul", "subtraction": "sub", "difference": "sub",
    "division": "div", "quotient": "div", "negation": "neg", "exponential": "exp", "logarithm": "log",
    "sig": "sigmoid", "matrix_vector": "matmul", "matrix_product": "matmul",
    "sum": "sum", "mean": "mean", "linear": "linear", "transpose": "transpose", "reshape": "reshape",
    "view": "reshape", "getitem": "getitem", "index": "getitem",
}
_BACKWARD_WORDS = re.compile(r"(backward|backprop|grad_fn|gradfn|_bwd|bwd|_grad|closure)", re.I)
_RULE_NAMES = {"", "lambda", "<lambda>", "backward", "backprop", "grad", "fn", "rule", "step", "b", "func", "f"}


# --------------------------------------------------------------------------- reading fields

def _field(obj, names):
    """(name, value) of the first spelling in ``names`` that ``obj`` has and that is not a
    method of its class; (None, None) when none fits."""
    for name in names:
        try:
            value = getattr(obj, name)
        except Exception:        # absent, or a property that raises: not this spelling
            continue
        if (inspect.ismethod(value) or inspect.isbuiltin(value)) and getattr(value, "__self__", None) is obj:
            continue             # `def parents(self)`, `def grad(self)`: a method, not a field
        return name, value
    return None, None


def _rule_field(obj):
    """(name, callable) of the node's own backward rule: a closure, lambda, bound method
    (also one the class defines, e.g. an op subclass's ``_backward``), or None."""
    for name in RULES:
        try:
            value = getattr(obj, name)
        except Exception:
            continue
        if _is_function(value):    # a callable object in grad_fn (a Function with __call__) is a holder
            return name, value
    records = _records(obj)
    if records:                   # parents kept with their own local rules: Dependency(tensor, grad_fn), (node, fn)
        def from_records(grad):
            return tuple(fn(np.asarray(grad)) for fn in records)
        # named as the first local rule, so its name tells the op (Tensor.__mul__.<locals>.<lambda> -> mul)
        from_records.__qualname__ = getattr(records[0], "__qualname__", "grad_fn")
        return "grad_fn of each input", from_records
    for name in HOLDERS:          # a context object (grad_fn, _ctx, node) whose rule gives the inputs' grads
        try:
            holder = getattr(obj, name)
        except Exception:
            continue
        if holder is None or isinstance(holder, (type, str, bytes)) or _is_number(holder) \
                or inspect.isfunction(holder) or inspect.ismethod(holder):
            continue
        for inner in RULES + ("backward",):
            try:
                rule = getattr(holder, inner)
            except Exception:
                continue
            if callable(rule) and not isinstance(rule, type):
                return f"{name}.{inner}", rule
    return None, None


def _is_function(value) -> bool:
    """A function, lambda, bound method or partial: something written to be called as a rule."""
    return (inspect.isfunction(value) or inspect.ismethod(value) or inspect.isbuiltin(value)
            or isinstance(value, functools.partial))


def _records(obj):
    """The local rules kept beside the parents (``depends_on = [Dependency(tensor, grad_fn)]``
    or ``_parents = [(node, fn)]``), in order, or None."""
    name, parents = _field(obj, PARENTS)
    if name is None or not isinstance(parents, (list, tuple)) or not parents:
        return None
    rules = []
    for p in parents:
        if isinstance(p, dict):
            fn = p.get("grad_fn", p.get("grad_func"))
        else:
            fn = getattr(p, "grad_fn", None) or getattr(p, "grad_func", None)
        if fn is None and isinstance(p, tuple) and len(p) == 2:
            fn = p[1]
        if not callable(fn):
            return None
        rules.append(fn)
    return rules


def _is_number(value) -> bool:
    return (isinstance(value, (numbers.Number, np.generic, np.ndarray))
            and not isinstance(value, bool))


def looks_like(obj) -> bool:
    """A node of a graph: a data spelling and at least one of parents, holder, grad, rule, op."""
    if obj is None or isinstance(obj, (numbers.Number, np.generic, np.ndarray, str, bytes, list, tuple, dict, set)):
        return False
    try:
        if _field(obj, DATA)[0] is None:
            return False
        return any(_field(obj, names)[0] is not None for names in (PARENTS, HOLDERS, GRAD, OP, RULES)) \
            or _rule_field(obj)[0] is not None
    except Exception:
        return False


def _attributes(obj) -> list:
    names = set()
    try:
        names.update(k for k in vars(obj) if isinstance(k, str))
    except TypeError:
        pass
    for klass in type(obj).__mro__:
        names.update(getattr(klass, "__slots__", ()) if not isinstance(getattr(klass, "__slots__", ()), str)
                     else (klass.__slots__,))
    return sorted(n for n in names if not (n.startswith("__") and n.endswith("__")))


def not_a_node(obj, what: str) -> str:
    """One sentence: which class could not be read, what was looked for, what it has."""
    cls = type(obj).__name__
    has = _attributes(obj)
    listed = ", ".join(has[:20]) + (", …" if len(has) > 20 else "") if has else "no attributes"
    data = _field(obj, DATA)[0]
    need = "" if data is None else f" (it has {data}, but none of the others)"
    return (f"{what} cannot read a {cls} as a node of a computation graph{need}: it looks for its data in "
            f"{'/'.join(DATA)} and for its parents in {'/'.join(PARENTS)} (or a grad_fn/_ctx holding "
            f"them), its grad in {'/'.join(GRAD)}, its op in {'/'.join(OP[:4])}/… and its rule in "
            f"{'/'.join(RULES[:3])}/…; this {cls} has {listed}.")


# --------------------------------------------------------------------------- op names

def _clean(name: str) -> str:
    text = name.strip().lower()
    text = _BACKWARD_WORDS.sub("", text)
    text = re.sub(r"\d+$", "", text)           # MulBackward0
    return text.strip("_ .()")


def canonical_op(text, n_operands=2):
    """The op registry's name for an op called ``text`` (``'+'``, ``'__mul__'``,
    ``'MulBackward0'``, ``'**2'``, ``'ReLU'`` …), or None when ad_magic does not know it."""
    if not isinstance(text, str):
        return None
    raw = text.strip()
    if (raw.startswith("**") and raw[2:].strip()) or (raw.startswith("^") and raw[1:].strip()):
        return "pow"
    if raw == "-" and n_operands == 1:
        return "neg"
    if raw in ALIASES:
        return ALIASES[raw]
    cleaned = _clean(raw)
    if cleaned == "sub" and n_operands == 1:
        return "neg"
    return ALIASES.get(cleaned)


def _name_of_callable(fn):
    """The op a rule's name tells: its own name without 'backward', else the function it
    was defined in (``Tensor.__mul__.<locals>._backward`` -> ``mul``)."""
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(qualname, str):
        qualname = getattr(getattr(fn, "__func__", None), "__qualname__", None)
        if not isinstance(qualname, str):
            return None
    parts = qualname.split(".")
    own = _clean(parts[-1].strip("<>"))
    if own not in _RULE_NAMES and "lambda" not in own:
        return own
    if "<locals>" in parts:
        last = len(parts) - 1 - parts[::-1].index("<locals>")     # the innermost enclosing function
        enclosing = _clean(parts[last - 1].strip("<>")) if last > 0 else ""
        if enclosing and enclosing not in _RULE_NAMES:
            return enclosing
    return None


def _op_text(value, *, objects=True):
    """An op name from a field's value: a string as it is; a function by its name (or the
    function it was defined in); a class, enum member or ufunc by its name; another object
    by its class's name — those only when they name a known op."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if _is_number(value):
        return None
    if inspect.isfunction(value) or inspect.ismethod(value) or inspect.isbuiltin(value):
        return _name_of_callable(value)
    if not objects:
        return None
    for name in (getattr(value, "__name__", None), getattr(value, "name", None), type(value).__name__):
        if isinstance(name, str) and canonical_op(name) is not None:
            return name
    return None


# --------------------------------------------------------------------------- the adapter

class StudentAdapter:
    """Reads any class that follows one of the contract's spellings (see the module doc).

    ``kind`` names the style in messages: "practical" (``_parents``), "micrograd"
    (``_prev``) or the class's own name."""

    unordered = True            # refined per node: a set of parents has no operand order

    def __init__(self, root=None):
        spelling = _field(root, PARENTS)[0] if root is not None else None
        self.kind = {"_parents": "practical", "_prev": "micrograd"}.get(spelling) or (
            type(root).__name__ if root is not None else "student")
        self.classes = {type(root)}     # a parent of a class already in the graph is a node, however bare
        self.spellings = {}             # class -> the parents' spelling chosen for it

    # -- structure
    def node(self, graph, obj):
        cls = type(obj).__name__
        data_name, data = _field(obj, DATA)
        if data_name is None:
            raise AdapterError(not_a_node(obj, "ad_magic"))
        numeric(data, f"{cls}.{data_name}")          # one clear sentence, now
        name = _field(obj, NAMES)[1]
        req_name, requires = _field(obj, REQUIRES)
        requires = True if req_name is None or not isinstance(requires, (bool, np.bool_)) else bool(requires)
        node = ForeignNode(graph, obj, None, name if isinstance(name, str) and name else None, requires)
        return node

    def operands_of(self, node):
        """The node's inputs in stored order: nodes (to wrap) and constants (numbers, arrays)."""
        obj = node.source
        cls = type(obj).__name__
        where, parents = self._parents_field(obj)
        owner, attribute = obj, where
        if where is None:
            for holder_name in HOLDERS:
                try:
                    holder = getattr(obj, holder_name)
                except Exception:
                    continue
                if holder is None or isinstance(holder, (str, bytes)) or callable(holder) and not hasattr(
                        holder, "__dict__"):
                    continue
                inner, value = _field(holder, HOLDER_PARENTS)
                if inner is not None:
                    where, parents = f"{holder_name}.{inner}", value
                    owner, attribute = holder, inner
                    break
        node.ordered = True
        if where is None or parents is None:
            return ()
        if looks_like(parents) or type(parents) in self.classes:
            parents = (parents,)                 # one parent kept as itself, not in a collection
        if isinstance(parents, (str, bytes)) or _is_number(parents) or not hasattr(parents, "__iter__"):
            raise AdapterError(f"{cls}.{where} is {short_repr(parents)} ({type(parents).__name__}), which is not a "
                               "set, list or tuple of nodes.")
        if isinstance(parents, (set, frozenset)) or type(parents).__name__ in ("dict_keys", "WeakSet"):
            node.ordered = False
        if isinstance(parents, dict):
            parents = parents.keys()
            node.ordered = False
        if iter(parents) is parents:      # a one-shot iterator (a generator): read it, and leave an equal one
            items = tuple(parents)
            try:
                setattr(owner, attribute, iter(items))
            except Exception:     # a property making a new generator each time: nothing was used up
                pass
            parents = items
        else:
            parents = tuple(parents)
        operands = []
        for p in parents:
            if isinstance(p, tuple) and p and looks_like(p[0]):
                p = p[0]                          # (node, its local rule) pairs
            elif isinstance(p, dict) and looks_like(p.get("tensor")):
                p = p["tensor"]                   # {"tensor": t, "grad_func": f} records
            elif not looks_like(p) and hasattr(p, "tensor") and looks_like(p.tensor):
                p = p.tensor                      # Dependency(tensor, grad_fn) records
            if looks_like(p) or (type(p) in self.classes and _field(p, DATA)[0] is not None):
                self.classes.add(type(p))
                operands.append(p)
            elif _is_number(p) or isinstance(p, list):
                operands.append(numeric(p, f"a number in {cls}.{where}"))
            elif p is None:               # left out, and said at this node's step (never silently)
                node.remark = "; ".join(filter(None, (node.remark, f"{cls}.{where} holds None, which is neither a "
                                                                     "node nor a number: it is left out")))
            else:
                raise AdapterError(f"{cls}.{where} holds {short_repr(p)} ({type(p).__name__}), which is neither a node "
                                   f"(it has no {'/'.join(DATA[:3])} with parents, grad or rule) nor a number.")
        return tuple(operands)

    def _parents_field(self, obj):
        """(spelling, value) of the parents, chosen once per class: the first spelling that
        holds something on the first node of the class met (the output, which nobody
        consumes yet: a class keeping both ``parents`` and its consumers in ``children``
        is read by its parents), else the first one it has."""
        cls = type(obj)
        chosen = self.spellings.get(cls)
        if chosen is not None:
            return (chosen, getattr(obj, chosen, None)) if hasattr(obj, chosen) else _field(obj, PARENTS)
        present = []
        for name in PARENTS:
            found, value = _field(obj, (name,))
            if found is None:
                continue
            if hasattr(value, "__next__"):
                return found, value           # a one-shot generator: not looked into twice
            present.append((found, value))
            try:
                if value is not None and len(value) > 0:
                    self.spellings[cls] = found
                    return found, value
            except TypeError:
                self.spellings[cls] = found
                return found, value
        return present[0] if present else (None, None)

    def label_of(self, node, n_operands):
        """(what the op node shows, the registry's name or None, constants from the label)."""
        obj = node.source
        text = None
        for names in (OP, HOLDERS):
            for name in names:
                try:
                    value = getattr(obj, name)
                except Exception:
                    continue
                if inspect.ismethod(value) and getattr(value, "__self__", None) is obj:
                    continue
                text = _op_text(value)
                if not text and names is HOLDERS and value is not None and not isinstance(value, (str, type)):
                    inner = _field(value, OP + ("name", "_name"))[1]      # node.op, grad_fn.name …
                    text = inner.strip() if isinstance(inner, str) and inner.strip() else None
                if text:
                    break
            if text:
                break
        claimed = text
        rule = _rule_field(obj)[1]
        inferred = _op_text(rule) if rule is not None else None
        if claimed is None:
            claimed = inferred
        if claimed is None:
            return "?", None, (), inferred
        kind = canonical_op(claimed, n_operands)
        constants = ()
        exponent = claimed.strip().lstrip("*^").strip()
        if kind == "pow" and exponent and n_operands == 1:
            try:
                constants = (np.float64(float(exponent)),)
            except ValueError:
                kind = None
        return claimed, kind, constants, (canonical_op(inferred, n_operands) if inferred else None)

    def hidden_constants(self, node):
        """Numbers the node's rule closes over (the 2 of ``x ** 2`` when only x is stored as
        a parent), then those written in its code, as candidate constant operands."""
        rule = _rule_field(node.source)[1]
        fn = getattr(rule, "__func__", rule)
        found = []
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:       # an empty cell
                continue
            if _is_number(value) and np.size(value) == 1:
                found.append(np.asarray(value, dtype=np.float64))
        code = getattr(fn, "__code__", None)        # then the numbers written in it (3 * x ** 2)
        for value in getattr(code, "co_consts", ()):
            if _is_number(value) and not isinstance(value, complex):
                found.append(np.asarray(value, dtype=np.float64))
        return found

    # -- values
    def data(self, node):
        obj = node.source
        name, value = _field(obj, DATA)
        return numeric(value, f"{type(obj).__name__}.{name or 'data'}")

    def grad(self, node):
        name, g = _field(node.source, GRAD)
        if g is None:
            return None
        if looks_like(g):                        # a grad kept as a node of the same class
            g = _field(g, DATA)[1]
        try:
            array = np.asarray(g, dtype=np.float64)
        except Exception:
            return None
        return array

    def set_grad(self, node, value):
        obj = node.source
        name = _field(obj, GRAD)[0] or "grad"
        raw = _field(obj, DATA)[1]
        value = np.asarray(value, dtype=np.float64)
        if isinstance(raw, numbers.Real) and not isinstance(raw, (np.generic, np.ndarray)) and value.size == 1:
            written = float(value.reshape(-1)[0])      # a Python number's Value keeps a float grad
        else:   # NumPy data (a scalar too): an array, as np.zeros_like(data) would give
            dtype = np.result_type(raw.dtype, np.float32) if isinstance(raw, (np.ndarray, np.generic)) \
                else np.dtype(np.float64)
            written = np.array(value, dtype=dtype if dtype.kind == "f" else np.float64)
        names = [name] + [n for n in GRAD if n != name and _field(obj, (n,))[0] is not None]
        for attempt in names:
            try:
                setattr(obj, attempt, written)
                return
            except AttributeError:      # a read-only property: its stored spelling (e.g. _grad) may take it
                continue
        raise AdapterError(f"{type(obj).__name__}.{name} cannot be set (a read-only property?); stepping writes the "
                           "grads it computes there.")

    # -- rules
    def has_backward(self, node):
        return _rule_field(node.source)[1] is not None

    def rule_name(self, node):
        return _rule_field(node.source)[0] or "_backward"

    def run_backward(self, node):
        """Run the node's rule: with no argument, or with the node's grad when it takes
        one; grads it returns (instead of adding them) are added into the parents'."""
        name, rule = _rule_field(node.source)
        takes = _arguments(rule)
        parents = node.parents
        before = [self.grad(p) for p in parents]
        if takes == 0:
            returned = rule()
        elif takes == 1:
            returned = rule(_field(node.source, GRAD)[1])
        else:
            raise TypeError(f"{type(node.source).__name__}.{name} takes {takes} arguments; ad_magic calls a rule with "
                            "none, or with the node's grad")
        if returned is None or returned is node.source:
            return
        after = [self.grad(p) for p in parents]
        if any(not _same(a, b) for a, b in zip(before, after)):
            return                               # it added into the grads itself; what it returns is not for us
        self._add_returned(node, name, returned)

    def _add_returned(self, node, name, returned):
        cls = type(node.source).__name__
        operands = node.operands
        if not isinstance(returned, (tuple, list)):
            returned = (returned,)
        nodes = [o for o in operands if isinstance(o, ForeignNode)]
        if len(returned) == len(operands):
            pairs = [(o, g) for o, g in zip(operands, returned) if isinstance(o, ForeignNode)]
        elif len(returned) == len(nodes):
            pairs = list(zip(nodes, returned))
        else:
            raise ValueError(f"{cls}.{name} returned {len(returned)} value(s) for {len(operands)} input(s)")
        if len({id(o) for o in nodes}) > 1 and not node.ordered:
            raise ValueError(f"{cls}.{name} returns its inputs' grads, but its parents are a set, which has no order: "
                             "keep them in a tuple or list to match the returned grads")
        for parent, g in pairs:
            if g is None:
                continue
            g = numeric(g, f"a grad returned by {cls}.{name}")
            old = self.grad(parent)
            total = g if old is None else old + g
            if np.shape(total) != np.shape(parent.data) and np.size(total) != np.size(parent.data):
                axes = tuple(range(np.ndim(total) - np.ndim(parent.data)))
                total = np.sum(total, axis=axes) if axes else total
            self.set_grad(parent, total)


def _arguments(rule) -> int:
    """How many arguments ``rule`` needs (0 when its signature cannot be read)."""
    try:
        signature = inspect.signature(rule)
    except (TypeError, ValueError):
        return 0
    needed = [p for p in signature.parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    return len(needed)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
