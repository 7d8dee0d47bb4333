"""The adapter for students' classes: how a node of someone else's graph is read,
whatever its fields are called.

:class:`StudentAdapter` reads each class once into a :class:`~.structure.Reading` — by
what its fields hold (``structure.py``) — and follows it for every node; edges kept on
the consumers are turned around, and what a recording (``watching.py``) saw being built
fills in what the objects no longer hold (an erased graph, inputs kept nowhere). The
common spellings below are the fast path and the tie-breaker, tried first, in order; the
first one the object has (and that is not a method) is used. The README's "Your own
Tensor" section prints the same lists.

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
from .base import Adapter, AdapterError, ForeignNode, numeric
from .structure import CONSTANT, AsMade, entries, family_of, fields_of, follow, graph_class, read_class

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


def readable(obj) -> bool:
    """A node by its structure: an object of a user's class holding numbers, and its
    inputs, a rule, an op or a grad (see ``structure.py``)."""
    if obj is None or isinstance(obj, (numbers.Number, np.generic, np.ndarray, str, bytes, list, tuple, dict, set,
                                       type)) or type(obj).__module__ in ("builtins", "numpy"):
        return False
    family = family_of(type(obj))
    try:
        reading = read_class(obj, lambda v: isinstance(v, family) or looks_like(v), SPELLINGS)
    except Exception:
        return False
    if reading is None:
        return False
    if any(path is not None for path in (reading.parents, reading.rule, reading.op, reading.local)):
        return True
    # numbers and a grad only: a node of a class with operators or a backward (a leaf, or an
    # output whose edges are kept elsewhere), not a settings object holding two numbers
    return reading.grad is not None and graph_class(type(obj))


def not_a_node(obj, what: str) -> str:
    """One sentence: which class could not be read, what was found, what was missing."""
    cls = type(obj).__name__
    has = _attributes(obj)
    listed = ", ".join(has[:20]) + (", …" if len(has) > 20 else "") if has else "no attributes"
    family = family_of(type(obj))
    try:
        reading = read_class(obj, lambda v: isinstance(v, family) or looks_like(v), SPELLINGS)
    except Exception:
        reading = None
    if reading is None:
        found = (f"no field of it holds numbers (its data; the spellings {'/'.join(DATA[:4])}/… included, or a "
                 "property returning an object that holds them)")
    else:
        found = (f"it holds numbers in {reading.spelled('data')}, but no field holding other {cls} objects (its "
                 "inputs, also one level down, in a list, as weak references or (node, number) pairs), no rule, "
                 "no op and no grad")
    return f"{what} cannot read a {cls} as a node of a computation graph: {found}; this {cls} has {listed}."


def lone_output(adapter, root) -> str | None:
    """The sentence for an output that was computed (it names an op, or holds a context)
    but whose inputs were found nowhere: never drawn as a silent lone node."""
    if root.parents or not isinstance(adapter, StudentAdapter):
        return None
    shown = adapter.claimed_op(root)
    cls = type(root.source).__name__
    fields = ", ".join(n for n, _ in fields_of(root.source)[:12]) or "no fields"
    if shown is None:
        empty = [n for n, v in fields_of(root.source) if isinstance(v, (list, set, dict)) and not v]
        if adapter.recording is None and empty and not adapter.has_backward(root):
            # no rule, no op, no inputs: a leaf, or an output whose consumers' lists hold the edges
            return (f"ad_magic cannot tell where this {cls}'s inputs are: it has no rule, no op and nothing in "
                    f"{', '.join(empty)}; if {empty[0]} lists the nodes that use it, name the inputs "
                    "(adapt(out, inputs=[x, y])) or run the code under %%autodiff, which watches the graph being "
                    "built.")
        return None          # a leaf: nothing says it was computed
    return (f"ad_magic cannot find the inputs of this {cls}: its op is {shown!r}, but none of its fields "
            f"({fields}) holds other {cls} objects, also one level down, and nothing recorded them; keep each "
            "result's inputs on it (e.g. in a tuple), or run the code under %%autodiff, which watches the graph "
            "being built.")


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
    """The op a rule's name tells: its own name without 'backward', else (also when its own
    name is no op, ``bw``) the function it was defined in (``Tensor.__mul__.<locals>._backward``
    -> ``mul``)."""
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(qualname, str):
        qualname = getattr(getattr(fn, "__func__", None), "__qualname__", None)
        if not isinstance(qualname, str):
            return None
    parts = qualname.split(".")
    own = _clean(parts[-1].strip("<>"))
    if own not in _RULE_NAMES and "lambda" not in own and (
            "<locals>" not in parts or canonical_op(own, 2) or canonical_op(own, 1)):
        return own
    # a rule named for nothing the registry knows (``bw``, ``go``): the function it was made in tells
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

SPELLINGS = {"data": DATA, "parents": PARENTS, "holders": HOLDERS, "grad": GRAD, "rules": RULES, "op": OP,
             "names": NAMES, "requires": REQUIRES, "canonical": canonical_op}


class _Rule:
    """A node's rule, however it is kept: ``call(grad)`` runs it and returns what it
    returned (its inputs' grads, when it returns them instead of adding them)."""

    def __init__(self, name, call, source=None):
        self.name, self.call, self.source = name, call, source


class StudentAdapter(Adapter):
    """Reads a class's nodes by their structure (``structure.py``), the contract's
    spellings first (see the module doc); each class's :class:`~.structure.Reading` is
    resolved once. ``recording`` (:func:`~.watching.recording`) says which call made
    which node from which inputs, for what the objects no longer say; ``inputs`` are
    nodes the caller named (the leaves), from which edges kept on the consumers are found.

    ``kind`` names the style in messages: "practical" (``_parents``), "micrograd"
    (``_prev``) or the class's own name."""


    def __init__(self, root=None, *, recording=None, inputs=()):
        self.recording = recording
        self.readings = {}              # class -> its Reading, resolved once
        self.views = {}                 # id(node) -> its fields as made (a graph erased since)
        self.inverse = None             # id(node) -> [(input, extra)]: edges kept on the consumers, turned around
        self.consumers = None           # the path of the field listing a node's consumers, when turned around
        self.classes = set()
        self.family = family_of(type(root)) if root is not None else ()
        self.like = None
        self.kind = "student"
        if root is None:
            return
        self.classes.add(type(root))
        made = recording.made(root) if recording is not None else None
        if made is not None and self._stored(root) is None:
            erased = AsMade(root, made.fields)        # the graph as it was made (backward() erased it)
            if self._stored(erased):
                self.views[id(root)] = erased
                self.readings.pop(type(root), None)
        reading = self.reading(root)
        if reading is None:
            raise AdapterError(not_a_node(root, "ad_magic"))
        self.like = reading
        spelled = reading.parents[0] if reading.parents else None
        self.kind = {"_parents": "practical", "_prev": "micrograd"}.get(spelled) or type(root).__name__
        if self._stored(self.view(root)) is None:
            self._turn_around(root, list(inputs) + (recording.nodes() if recording is not None else []))

    # -- structure, resolved once per class
    def is_node(self, value) -> bool:
        if value is None or isinstance(value, (str, bytes, bool, numbers.Number, np.generic, np.ndarray, type)):
            return False
        cls = type(value)
        if cls in self.classes:
            return True
        if any(issubclass(cls, k) for k in self.family) or looks_like(value):
            self.classes.add(cls)
            return True
        return False

    def reading(self, obj):
        cls = type(obj)
        if cls not in self.readings:
            self.readings[cls] = read_class(self.view(obj), self.is_node, SPELLINGS, like=self.like)
        return self.readings[cls]

    def read_as_made(self) -> bool:
        return bool(self.views)

    def grad_field(self, obj):
        return self.reading(obj).grad

    def view(self, obj):
        """The object whose structure is read: the node, or its fields as they were when it
        was made (when its graph has been erased since)."""
        return self.views.get(id(obj), obj)

    def _stored(self, obj):
        """The inputs stored on ``obj`` (entries), or None when it stores none."""
        reading = self.reading(obj) if not isinstance(obj, AsMade) else read_class(obj, self.is_node, SPELLINGS)
        if reading is None or reading.parents is None:
            return None
        value = follow(obj, reading.parents)
        if hasattr(value, "__next__"):
            return [()] if value is not None else None     # a generator: not used up to look
        return entries(value, self.is_node, itself=obj.made_node if isinstance(obj, AsMade) else obj)

    def _turn_around(self, root, starts):
        """Edges kept on the consumers: from the named inputs (and the recorded nodes),
        follow the field that holds the nodes using each one until the output is reached,
        and record each node's inputs as the nodes that list it."""
        starts = [s for s in {id(s): s for s in starts}.values() if s is not root and self.is_node(s)]
        paths = []
        for start in starts:
            for name, value in fields_of(start):
                if (name,) not in paths and entries(value, self.is_node, itself=start):
                    paths.append((name,))
        for path in paths:
            inverse, seen, queue = {}, {id(s) for s in starts}, list(starts)
            while queue:
                node = queue.pop()
                for used_by, extra in entries(follow(node, path), self.is_node, itself=node) or ():
                    if used_by is CONSTANT:
                        continue
                    inverse.setdefault(id(used_by), []).append((node, extra))
                    if id(used_by) not in seen:
                        seen.add(id(used_by))
                        queue.append(used_by)
            if id(root) in inverse:
                self.inverse = inverse
                self.consumers = path
                return

    # -- structure
    def node(self, graph, obj):
        cls = type(obj).__name__
        reading = self.reading(obj)
        if reading is None:
            raise AdapterError(not_a_node(obj, "ad_magic"))
        numeric(follow(obj, reading.data), f"{cls}.{reading.spelled('data')}")     # one clear sentence, now
        name = follow(obj, reading.name) if reading.name else _field(obj, NAMES)[1]
        requires = follow(obj, reading.requires) if reading.requires else _field(obj, REQUIRES)[1]
        requires = bool(requires) if isinstance(requires, (bool, np.bool_)) else True
        return ForeignNode(graph, obj, None, name if isinstance(name, str) and name else None, requires)

    def operands_of(self, node):
        """The node's inputs in stored order: nodes (to wrap) and constants (numbers, arrays)."""
        obj = node.source
        cls = type(obj).__name__
        node.ordered = True
        if self.inverse is not None:
            found = self.inverse.get(id(obj), ())
            made = self.recording.made(obj) if self.recording is not None else None
            order = {id(p): i for i, p in enumerate(made.inputs)} if made is not None else None
            node.ordered = order is not None
            if order is not None:
                found = sorted(found, key=lambda e: order.get(id(e[0]), len(order)))
            return tuple(p for p, _ in found)
        reading = self.reading(obj)
        view = self.view(obj)
        where = reading.spelled("parents") if reading.parents else None
        parents = follow(view, reading.parents) if reading.parents else None
        if parents is not None and not isinstance(view, AsMade) and hasattr(parents, "__next__"):
            items = tuple(parents)    # a one-shot iterator (a generator): read it, and leave an equal one
            try:
                setattr(follow(obj, reading.parents[:-1]), reading.parents[-1], iter(items))
            except Exception:     # a property making a new generator each time: nothing was used up
                pass
            parents = items
        if isinstance(parents, (set, frozenset, dict)) or type(parents).__name__ in ("dict_keys", "WeakSet"):
            node.ordered = False
        if isinstance(parents, (list, tuple, set, frozenset)) and any(p is None for p in parents):
            # left out, and said at this node's step (never silently)
            node.remark = "; ".join(filter(None, (node.remark, f"{cls}.{where} holds None, which is neither a "
                                                                 "node nor a number: it is left out")))
        found = entries(parents, self.is_node) if parents is not None else None
        made = self.recording.made(obj) if self.recording is not None and not found else None
        if made is not None and not isinstance(view, AsMade):
            erased = AsMade(obj, made.fields)           # its inputs as made (backward() erased them since)
            kept = entries(follow(erased, reading.parents), self.is_node) if reading.parents else None
            if kept:
                self.views[id(obj)] = erased
                return self.operands_of(node)
            if reading.parents is None and made.inputs:
                return made.inputs             # kept nowhere on the node: the recorded call's inputs
        if not found:
            if isinstance(parents, (list, tuple, set, frozenset)) and parents:
                odd = next((p for p in parents if p is not None and not _is_number(p)
                            and self._entry(p) is None), None)
                if odd is not None:
                    raise AdapterError(f"{cls}.{where} holds {short_repr(odd)} ({type(odd).__name__}), which is "
                                       "neither a node (it holds no numbers with inputs, grad or rule) nor a number.")
            if parents is not None and not found and not _empty(parents) and found is None:
                raise AdapterError(f"{cls}.{where} is {short_repr(parents)} ({type(parents).__name__}), which is "
                                   "not a set, list or tuple of nodes.")
            return ()
        return tuple(numeric(p, f"a number in {cls}.{where}") if n_is is CONSTANT else n_is
                     for n_is, p in ((e[0], e[1]) for e in found))

    def _entry(self, item):
        found = entries((item,), self.is_node)
        return found[0] if found else None

    def label_of(self, node, n_operands):
        """(what the op node shows, the registry's name or None, constants from the label)."""
        claimed = self.claimed_op(node)
        rule = self._rule(node)
        inferred = _op_text(rule.source) if rule is not None and rule.source is not None else None
        if claimed is None:
            claimed = inferred
        made = self.recording.made(node.source) if self.recording is not None else None
        if claimed is None and made is not None:
            claimed = next((t for t in (made.owner, made.call.rsplit(".", 1)[-1])
                            if t and canonical_op(t, n_operands)), made.call.rsplit(".", 1)[-1])
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

    def claimed_op(self, node):
        """The op the node names itself (an op field, or its holders'), or None."""
        obj = self.view(node.source)
        reading = self.reading(node.source)
        text = None
        for path in (reading.op,) + tuple((n,) for n in OP):
            value = follow(obj, path) if path else None
            if not (inspect.ismethod(value) and getattr(value, "__self__", None) is node.source):
                text = _op_text(value)
            if text:
                break
        for name in (HOLDERS if not text else ()):
            try:
                value = getattr(obj, name)
            except Exception:
                continue
            text = self._holder_text(value)
            if text:
                break
        if not text and reading.rule and len(reading.rule) > 1:     # the rule's holders: ctx, ctx.op
            for depth in range(len(reading.rule) - 1, 0, -1):
                text = self._holder_text(follow(obj, reading.rule[:depth]))
                if text:
                    break
        return text or None

    @staticmethod
    def _holder_text(value):
        if value is None or isinstance(value, (str, bool)) or _is_number(value):
            return _op_text(value) if isinstance(value, str) else None
        text = _op_text(value)
        if not text and not isinstance(value, type):
            inner = _field(value, OP + ("name", "_name"))[1]      # node.op, grad_fn.name …
            text = inner.strip() if isinstance(inner, str) and inner.strip() else _op_text(inner)
        return text

    def hidden_constants(self, node):
        """Numbers the node's rule closes over (the 2 of ``x ** 2`` when only x is stored as
        a parent), then those written in its code, as candidate constant operands."""
        rule = self._rule(node)
        fn = getattr(rule.source, "__func__", rule.source) if rule is not None else None
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
        reading = self.reading(obj)
        return numeric(follow(obj, reading.data), f"{type(obj).__name__}.{reading.spelled('data')}")

    def grad(self, node):
        reading = self.reading(node.source)
        g = follow(node.source, reading.grad) if reading.grad else None
        if g is None:
            return None
        if self.is_node(g):                        # a grad kept as a node of the same class
            g = follow(g, self.reading(g).data)
        try:
            array = np.asarray(g, dtype=np.float64)
        except Exception:
            return None
        if isinstance(g, (list, tuple)) and array.size == 1 and np.ndim(follow(node.source, reading.data)) == 0:
            array = array.reshape(())              # a one-element box holding a scalar's grad ([0.0])
        return array

    def _upstream(self, node):
        reading = self.reading(node.source)
        return follow(node.source, reading.grad) if reading.grad else None

    def set_grad(self, node, value):
        obj = node.source
        reading = self.reading(obj)
        name = reading.grad[-1] if reading.grad else "grad"
        owner = follow(obj, reading.grad[:-1]) if reading.grad else obj
        raw = follow(obj, reading.data)
        value = np.asarray(value, dtype=np.float64)
        if isinstance(raw, numbers.Real) and not isinstance(raw, (np.generic, np.ndarray)) and value.size == 1:
            written = float(value.reshape(-1)[0])      # a Python number's Value keeps a float grad
        else:   # NumPy data (a scalar too): an array, as np.zeros_like(data) would give
            dtype = np.result_type(raw.dtype, np.float32) if isinstance(raw, (np.ndarray, np.generic)) \
                else np.dtype(np.float64)
            written = np.array(value, dtype=dtype if dtype.kind == "f" else np.float64)
        names = [name] + [n for n in GRAD if n != name and _field(owner, (n,))[0] is not None]
        for attempt in names:
            try:
                setattr(owner, attempt, written)
                return
            except AttributeError:      # a read-only property: its stored spelling (e.g. _grad) may take it
                continue
        box = follow(obj, reading.grad) if reading.grad else None
        if isinstance(box, list) and len(box) == value.size:     # a frozen node's mutable box: written into
            box[:] = [float(v) for v in value.reshape(-1)]
            return
        raise AdapterError(f"{type(obj).__name__}.{name} cannot be set (a read-only property?); stepping writes the "
                           "grads it computes there.")

    # -- rules
    def _rule(self, node):
        """The node's rule as a :class:`_Rule`, or None (a leaf, or no rule anywhere)."""
        obj = node.source
        cls = type(obj).__name__
        view = self.view(obj)
        reading = self.reading(obj)
        if reading.rule is not None:
            fn = follow(view, reading.rule)
            if callable(fn) and not isinstance(fn, type):
                context = follow(view, reading.rule_context) if reading.rule_context else None
                return _Rule(reading.spelled("rule"), _caller(obj, reading.spelled("rule"), fn, context), fn)
        pairs = self._pairs(node)
        if pairs:
            extras = [e for _, e in pairs]
            if all(callable(e) or _is_number(e) for e in extras):
                def from_pairs(grad):
                    # each input's own local rule, or its local derivative times the node's grad,
                    # added into that input's grad (whatever order the inputs are read in)
                    upstream = np.asarray(grad, dtype=np.float64)
                    for parent, extra in pairs:
                        g = extra(upstream) if callable(extra) else np.asarray(extra, dtype=np.float64) * upstream
                        self._add_into(node.graph.node(parent), numeric(g, f"the grad of an input of {cls}"))
                source = next((e for e in extras if callable(e)), None)
                return _Rule("the rule kept with each input" if source is not None
                             else "the local derivatives kept with the inputs", from_pairs, source)
        if reading.local is not None:
            local = follow(view, reading.local)
            stored = entries(follow(view, reading.parents), self.is_node) if reading.parents else None
            inputs = [e[0] for e in stored or () if e[0] is not CONSTANT]
            if local is not None and len(local) and len(local) == len(inputs):
                def from_local(grad):
                    upstream = np.asarray(grad, dtype=np.float64)
                    for parent, number in zip(inputs, local):
                        self._add_into(node.graph.node(parent), np.asarray(number, dtype=np.float64) * upstream)
                return _Rule(reading.spelled("local"), from_local)
        name, fn = _rule_field(view)                 # the contract's holders (grad_fn.backward …)
        if fn is not None:
            return _Rule(name, _caller(obj, name, fn), fn)
        made = self.recording.made(obj) if self.recording is not None else None
        if made is not None and made.rule is not None:   # kept elsewhere (a tape): the one its call defined
            return _Rule(getattr(made.rule, "__qualname__", "its rule"), _caller(obj, "its rule", made.rule),
                         made.rule)
        return None

    def _pairs(self, node):
        """(input, extra) for inputs stored with a local rule or a local derivative."""
        obj = node.source
        if self.inverse is not None:
            found = self.inverse.get(id(obj), ())
        else:
            reading = self.reading(obj)
            value = follow(self.view(obj), reading.parents) if reading.parents else None
            found = entries(value, self.is_node, itself=obj) if value is not None and not hasattr(
                value, "__next__") else None
        found = [e for e in (found or ()) if e[0] is not CONSTANT]
        return found if found and all(e[1] is not None for e in found) else None

    def has_backward(self, node):
        return self._rule(node) is not None

    def rule_name(self, node):
        rule = self._rule(node)
        return rule.name if rule is not None else "_backward"

    def run_backward(self, node):
        """Run the node's rule: with no argument, or with the node's grad when it takes
        one; grads it returns (instead of adding them) are added into the parents'."""
        rule = self._rule(node)
        parents = node.parents
        before = [self.grad(p) for p in parents]
        returned = rule.call(self._upstream(node))
        if returned is None or returned is node.source:
            return
        after = [self.grad(p) for p in parents]
        if any(not _same(a, b) for a, b in zip(before, after)):
            return                               # it added into the grads itself; what it returns is not for us
        self._add_returned(node, rule.name, returned)

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
            if g is not None:
                self._add_into(parent, numeric(g, f"a grad returned by {cls}.{name}"))

    def _add_into(self, parent, g):
        old = self.grad(parent)
        total = g if old is None else old + g
        if np.shape(total) != np.shape(parent.data) and np.size(total) != np.size(parent.data):
            axes = tuple(range(np.ndim(total) - np.ndim(parent.data)))
            total = np.sum(total, axis=axes) if axes else total
        self.set_grad(parent, total)


def _caller(obj, name, fn, context=None):
    """Call ``fn`` as the library would: with nothing, the node's grad, or (its context,
    the grad) — read from its signature when it is first called."""
    def call(grad):
        takes = _arguments(fn)
        if takes == 2 and context is not None:
            return fn(context, grad)
        if takes > 1:
            raise TypeError(f"{type(obj).__name__}.{name} takes {takes} arguments; ad_magic calls a rule with "
                            "none, or with the node's grad")
        return fn(grad) if takes == 1 else fn()
    return call


def _empty(value) -> bool:
    try:
        return len(value) == 0
    except TypeError:
        return False


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
