"""Reading a class's nodes by what their fields hold, not by what the fields are called.

:func:`read_class` looks at one object of a class once and returns a frozen
:class:`Reading`: the path to its numbers (``("valeur",)``, or ``("data", "array")`` when
``data`` is a property returning a wrapper), to its inputs (an attribute, or one level
down: ``("op", "parents")``, ``("ctx", "inputs")``, ``("creator", "inputs")``), to its
grad, its rule, its op, the local derivatives it keeps as numbers, its name.

* **inputs**: an attribute (or an attribute of an object it holds) holding nodes of the
  same family (the class, or a class sharing a base with it), a container of them, weak
  references to them, or ``(node, number)`` / ``(node, rule)`` pairs. The node itself is
  never its own input (``creator.outputs`` points back at it). The contract's spellings
  (``contract.py``) are tried first, as a fast path and to break ties.
* **data**: the contract's spellings when they hold numbers (or a wrapper holding them),
  else the first numeric field that is not the grad.
* **grad**: the contract's spellings, else the other numeric field, the one that is None
  or zero before backward (a node's data is not).
* **rule**: a callable the node holds (a closure, lambda, bound method), else a method
  ``backward`` of an object it holds, or of an object or class held one level further
  (``history.last_fn.backward(g)``, ``ctx.op.backward(ctx, g)``); else local derivatives
  kept as numbers (``(node, number)`` pairs, or a sequence of numbers as long as the inputs).

Edges kept on the consumers (a node listing the nodes that *use* it) are turned around in
``contract.py``, which sees the whole graph; this module reads one object at a time.
"""
from __future__ import annotations

import ast
import collections
import dataclasses
import functools
import inspect
import numbers
import textwrap
import weakref

import numpy as np

__all__ = ["Reading", "AsMade", "read_class", "follow", "fields_of", "entries", "is_number", "holds_numbers",
           "family_of", "graph_class", "CONSTANT", "BACKWARD_WORDS"]

# Marks a constant among stored inputs (the 3 of ``x * 3``): compared by identity, since a
# student's node may define ``==`` and ``!=`` elementwise.
CONSTANT = type("Constant", (), {"__repr__": lambda self: "CONSTANT"})()

# How a rule held one level down is recognised: the method every autograd calls backward.
BACKWARD_WORDS = ("backward", "backprop", "vjp", "grad_fn", "derivative")


@dataclasses.dataclass(frozen=True)
class Reading:
    """Where a class keeps each part of a node, as attribute paths (None: not kept)."""

    cls: type
    data: tuple
    parents: tuple | None = None
    grad: tuple | None = None
    rule: tuple | None = None
    rule_context: tuple | None = None    # the object a two-argument rule gets first (ctx.op.backward(ctx, g))
    local: tuple | None = None           # local derivatives kept as numbers beside the inputs
    op: tuple | None = None
    name: tuple | None = None
    requires: tuple | None = None

    def spelled(self, part: str) -> str | None:
        path = getattr(self, part)
        return ".".join(path) if path else None


class AsMade:
    """A node seen through the fields it had when it was made (a recording's
    ``Made.fields``): its graph as built, after ``backward()`` erased it."""

    __slots__ = ("made_node", "made_fields")

    def __init__(self, node, fields):
        self.made_node, self.made_fields = node, dict(fields)

    def __getattr__(self, name):
        fields = object.__getattribute__(self, "made_fields")
        if name in fields:
            return fields[name]
        return getattr(object.__getattribute__(self, "made_node"), name)


def _real(obj):
    return obj.made_node if isinstance(obj, AsMade) else obj


# --------------------------------------------------------------------------- values

def is_number(value) -> bool:
    return isinstance(value, (numbers.Number, np.generic, np.ndarray)) and not isinstance(value, (bool, np.bool_))


def holds_numbers(value) -> bool:
    """A number or an array of numbers (nested lists of numbers too)."""
    if is_number(value):
        return not isinstance(value, np.ndarray) or value.dtype.kind in "biuf"
    if isinstance(value, list) and value:
        try:
            return np.asarray(value).dtype.kind in "biuf"
        except Exception:
            return False
    return False


def _plain(value) -> bool:
    """Values that never hold nodes or rules: numbers, strings, bools, None, types, modules."""
    if isinstance(value, np.ndarray):
        return value.dtype != object
    return value is None or isinstance(value, (str, bytes, bool, numbers.Number, np.generic, type,
                                               range)) or inspect.ismodule(value)


def fields_of(obj) -> list:
    """(name, value) of the object's own fields, in the order they were set: its
    ``__dict__``, then its slots. Class attributes and methods are not fields."""
    if isinstance(obj, AsMade):
        return list(obj.made_fields.items())
    if _named_tuple(obj):
        return list(zip(obj._fields, obj))
    out, seen = [], set()
    try:
        items = list(vars(obj).items())
    except TypeError:
        items = []
    for name, value in items:
        if isinstance(name, str) and not (name.startswith("__") and name.endswith("__")):
            out.append((name, value))
            seen.add(name)
    for klass in reversed(type(obj).__mro__):
        slots = getattr(klass, "__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in seen or name in ("__dict__", "__weakref__"):
                continue
            try:
                out.append((name, object.__getattribute__(obj, name)))
                seen.add(name)
            except Exception:
                continue
    return out


def _named_tuple(value) -> bool:
    return isinstance(value, tuple) and isinstance(getattr(type(value), "_fields", None), tuple)


def follow(obj, path):
    """The value at ``path`` (a tuple of attribute names) from ``obj``; None when absent."""
    value = obj
    for name in path:
        try:
            value = getattr(value, name)
        except Exception:
            return None
    return value


# What a class of a graph's nodes, or of its operations, defines (a dataclass node may define nothing).
_GRAPH_METHODS = frozenset({"__add__", "__radd__", "__sub__", "__mul__", "__rmul__", "__truediv__", "__pow__",
                            "__matmul__", "__neg__", "backward", "forward", "apply", "__call__",
                            "__dataclass_fields__"})


def graph_class(cls) -> bool:
    """A class that may make a graph's nodes: one with arithmetic operators, a forward or
    backward, or a dataclass (not a plain settings holder)."""
    return any(name in _GRAPH_METHODS for klass in cls.__mro__[:-1] for name in vars(klass))


def family_of(cls) -> tuple:
    """The classes a node of ``cls`` is read the same way as: itself and every class it
    shares a base with (not ``object``)."""
    return tuple(k for k in cls.__mro__ if k is not object) or (cls,)


def _unwrap_item(item, is_node):
    """(node, extra) for one stored input: a node, a weak reference to one, a (node,
    number) or (node, rule) pair in either order, a {"tensor": node, …} record or an object
    with one node field (Dependency(tensor, grad_fn)); (CONSTANT, value) for a number."""
    if is_node(item):
        return item, None
    if isinstance(item, weakref.ref):
        target = item()
        return (target, None) if target is not None and is_node(target) else (None, None)
    if isinstance(item, tuple) and len(item) == 2:
        first, second = item
        for node, extra in ((first, second), (second, first)):
            if is_node(node) and (is_number(extra) or callable(extra) or extra is None):
                return node, extra
        return None, None
    if isinstance(item, dict):
        found = [v for v in item.values() if is_node(v)]
        if len(found) == 1:
            extra = next((v for v in item.values() if callable(v) and not is_node(v)), None)
            return found[0], extra
        return None, None
    if _plain(item) or callable(item) and not hasattr(item, "__dict__"):
        return None, None
    found = [(n, v) for n, v in fields_of(item) if is_node(v)]
    if len(found) == 1:          # an edge record: Edge(node, weight), Dependency(tensor, grad_fn)
        others = [v for n, v in fields_of(item) if not is_node(v)]
        extra = next((v for v in others if callable(v) and not isinstance(v, type)), None)
        numbers_ = [v for v in others if is_number(v)]
        if extra is None and len(numbers_) == 1:
            extra = numbers_[0]
        return found[0][1], extra
    return None, None


_CONTAINERS = (list, tuple, set, frozenset, collections.deque, weakref.WeakSet, type({}.keys()), type({}.values()))


def entries(value, is_node, *, itself=None):
    """The stored inputs in ``value``: a list of ``(node, extra)`` and ``(CONSTANT, value)``
    entries, or None when it holds no node other than ``itself`` (a creator's ``outputs``
    pointing back at the node is not its inputs). One-shot iterators are not read here
    (reading would use them up)."""
    if value is None or isinstance(value, (str, bytes)) or _named_tuple(value):
        return None              # a named tuple is a record (read as a holder), not a list of inputs
    if isinstance(value, np.ndarray) and value.dtype == object:
        value = list(value.ravel())          # an object array of nodes
    if not isinstance(value, (_CONTAINERS, dict)):
        node, extra = _unwrap_item(value, is_node)
        return None if node is None or node is itself else [(node, extra)]
    if isinstance(value, dict):
        keys = list(value.keys())
        if keys and all(is_node(k) for k in keys):
            items = [(k, value[k] if is_number(value[k]) or callable(value[k]) else None) for k in keys]
            return items if any(k is not itself for k, _ in items) else None
        value = list(value.values())
    out = []
    for item in list(value):
        node, extra = _unwrap_item(item, is_node)
        if node is not None:
            out.append((node, extra))
        elif is_number(item):
            out.append((CONSTANT, item))
        elif item is None:
            continue
        else:
            return None              # something else: not a container of inputs
    return out if any(e[0] is not CONSTANT and e[0] is not itself for e in out) else None


def _holders(obj, is_node):
    """(name, value) of the fields that hold an object which is not a node, a number, a
    container or a function: a context, a creator, a history, an op record."""
    for name, value in fields_of(obj):
        if _named_tuple(value):
            yield name, value
            continue
        if _plain(value) or is_node(value) or isinstance(value, (_CONTAINERS, dict, weakref.ref)):
            continue
        if inspect.isfunction(value) or inspect.ismethod(value) or inspect.isbuiltin(value) \
                or isinstance(value, functools.partial):
            continue
        yield name, value


def _is_rule(value) -> bool:
    """A function, lambda, bound method or partial: something written to be called as a rule."""
    return (inspect.isfunction(value) or inspect.ismethod(value) or inspect.isbuiltin(value)
            or isinstance(value, functools.partial))


def _backward_method(holder):
    """The name of ``holder``'s method that gives its inputs' grads (``backward``…), or None."""
    for word in BACKWARD_WORDS:
        try:
            method = getattr(holder, word)
        except Exception:
            continue
        if callable(method) and not isinstance(method, type):
            return word
    return None


# --------------------------------------------------------------------------- one class, once

def _first(obj, spellings, accept):
    for name in spellings:
        try:
            value = getattr(obj, name)
        except Exception:
            continue
        if (inspect.ismethod(value) or inspect.isbuiltin(value)) and getattr(value, "__self__", None) is _real(obj):
            continue
        if accept(value):
            return (name,), value
    return None, None


def _data_path(obj, spellings):
    path, value = _first(obj, spellings, lambda v: v is not None)
    if path is not None:
        if holds_numbers(value):
            return path
        inner = [n for n, v in fields_of(value) if holds_numbers(v)] if not _plain(value) else []
        if len(inner) == 1:                       # a property returning a wrapper that holds the numbers
            return path + (inner[0],)
    return None


_ZERO_CALLS = ("zeros", "zeros_like")
_STARTS_AT_ZERO = weakref.WeakKeyDictionary()


def _starts_at_zero(cls) -> frozenset:
    """Fields the class's ``__init__`` (its own or a base's) sets to None, a literal number
    or ``zeros(…)`` / ``zeros_like(…)``: where a grad starts, never the data, which comes
    from the arguments. Read from the source once per class; empty when there is none."""
    try:
        return _STARTS_AT_ZERO[cls]
    except (KeyError, TypeError):
        pass
    found, other = set(), set()     # fields only ever set to zero; fields set to anything else
    for klass in cls.__mro__[:-1]:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        except (OSError, TypeError, SyntaxError, IndentationError):
            continue
        for node in ast.walk(tree):
            pairs = [(t, node.value) for t in node.targets] if isinstance(node, ast.Assign) else \
                [(node.target, node.value)] if isinstance(node, ast.AnnAssign) and node.value is not None else []
            for target, value in pairs:
                for name, zero in _assigned(target, value):
                    (found if zero else other).add(name)
    found = frozenset(found - other)
    try:
        _STARTS_AT_ZERO[cls] = found
    except TypeError:
        pass
    return found


def _assigned(target, value) -> list:
    """[(field of self, whether it is set to zero)] for one assignment."""
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        return [pair for t, v in zip(target.elts, value.elts) for pair in _assigned(t, v)]
    if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"):
        return []
    if isinstance(value, ast.UnaryOp):
        value = value.operand
    zero = isinstance(value, ast.Constant) and (value.value is None or (
        isinstance(value.value, (int, float)) and not isinstance(value.value, bool) and value.value == 0))
    if isinstance(value, ast.Call):
        name = value.func.attr if isinstance(value.func, ast.Attribute) else getattr(value.func, "id", "")
        zero = name in _ZERO_CALLS
    return [(target.attr, zero)]


def read_class(obj, is_node, spellings, *, grad_hint=None, like=None) -> Reading | None:
    """The :class:`Reading` of ``type(obj)``, resolved on ``obj`` (the output, or the first
    node of the class met); None when no field holds numbers. ``spellings`` are the
    contract's lists (fast path and tie-breaker); ``like`` is the reading of the output's
    class, whose paths a class met later (a leaf) falls back on."""
    cls = type(_real(obj))
    own = fields_of(obj)
    itself = _real(obj)
    # -- data: the contract's spelling holding numbers (or a wrapper of them), else structure
    data = _data_path(obj, spellings["data"])
    spelled, value = _first(obj, spellings["data"], lambda v: v is not None)
    if data is None and spelled is not None and (_plain(value) or isinstance(value, (list, tuple, dict))):
        data = spelled       # data spelled as data, holding no numbers: the node says so in one sentence
    numeric = [(n, v) for n, v in own if holds_numbers(v) or v is None]
    gradish = {n for n, v in numeric if v is None or (is_number(v) and not np.any(v))}
    gradish |= {n for n, _ in numeric} & _starts_at_zero(cls)   # also once backward has filled it
    if data is None:
        filled = [n for n, v in numeric if v is not None and n not in gradish]
        filled = filled or [n for n, v in numeric if v is not None]
        kinds = dict(numeric)
        filled.sort(key=lambda n: isinstance(kinds[n], list))    # a list of numbers may be local derivatives
        if filled:
            data = (filled[0],)
        else:                                     # a property holding the data, or a wrapper of it
            props = [n for n, k in inspect.getmembers(cls) if isinstance(k, property)]
            data = next((p for p in (_data_path(obj, (n,)) for n in props) if p is not None), None)
    if data is None:
        return None
    # -- grad
    grad, _ = _first(obj, spellings["grad"], lambda v: v is None or holds_numbers(v) or is_node(v))
    if grad is not None and grad[0] == data[0]:
        grad = None
    if grad is None:
        rest = [n for n, v in numeric if n != data[0] and not isinstance(v, (int, np.integer))]
        rest = sorted(rest, key=lambda n: n not in gradish)
        grad = (rest[0],) if rest else (grad_hint if grad_hint is not None else None)
    # -- parents: an attribute holding other nodes, or one level down
    candidates = []
    fast = list(spellings["parents"])
    for name, value in own:
        if (name,) in (data, grad) or hasattr(value, "__next__"):
            continue
        found = entries(value, is_node, itself=itself)
        if found:
            candidates.append(((name,), found))
    for name in fast:       # a parents spelling the class defines as a property
        if not any(c[0] == (name,) for c in candidates) and not any(n == name for n, _ in own):
            value = follow(obj, (name,))
            if value is not None and not hasattr(value, "__next__") and not inspect.ismethod(value):
                found = entries(value, is_node, itself=itself)
                if found:
                    candidates.append(((name,), found))
    if not candidates:
        for holder, value in _holders(obj, is_node):
            for name, inner in fields_of(value):
                found = entries(inner, is_node, itself=itself)
                # a holder listing the node itself among others is a registry shared by the
                # whole graph (graph.nodes, graph.edges), not this node's inputs
                if found and not any(e[0] is itself for e in found):
                    candidates.append(((holder, name), found))
    rank = {name: i for i, name in enumerate(fast)}
    holder_rank = {name: i for i, name in enumerate(spellings["holders"])}
    candidates.sort(key=lambda c: (rank.get(c[0][0], len(rank)) if len(c[0]) == 1
                                   else len(rank) + holder_rank.get(c[0][0], len(holder_rank))))
    parents, found = (candidates[0] if candidates else (None, None))
    if parents is None:
        # a leaf, or an output whose inputs are kept elsewhere: an empty container spelled as
        # parents, else the output's class's path when this object has it
        empty, _ = _first(obj, fast, lambda v: v is not None)
        parents = empty
        if parents is None and like is not None and like.parents and follow(obj, like.parents[:1]) is not None:
            parents = like.parents
    # -- rule: a callable the node holds, else a holder's backward, else numbers
    rule, context, local = None, None, None
    path, _ = _first(obj, spellings["rules"], _is_rule)
    if path is not None:
        rule = path
    if rule is None:      # a function the node holds (not a builtin: rules are written by the student),
        held = [n for n, v in own if _is_rule(v) and not inspect.isbuiltin(v) and n not in spellings["op"]]
        held.sort(key=lambda n: not any(w in n.lower() for w in BACKWARD_WORDS + ("back", "retro", "grad")))
        if held:          # one named as a backward rule first
            rule = (held[0],)
    if rule is None and found and all(callable(e[1]) for e in found if e[0] is not CONSTANT):
        rule = None     # (node, rule) pairs: contract.py runs each pair's rule
    elif rule is None:
        holders = list(_holders(obj, is_node))
        if parents is not None and len(parents) == 2:
            holders.sort(key=lambda h: h[0] != parents[0])      # the holder of the inputs first
        for name, value in holders:
            word = _backward_method(value) if not isinstance(value, type) else None
            if word is None and not isinstance(value, type):     # a function the holder keeps as a field
                held = [n for n, v in fields_of(value) if _is_rule(v) and not inspect.isbuiltin(v)]
                word = held[0] if held else None
            if word is not None:
                rule, context = (name, word), (name,)
                break
            for inner_name, inner in fields_of(value):
                if is_node(inner) or _plain(inner) and not isinstance(inner, type):
                    continue
                word = _backward_method(inner)
                if word is not None:
                    # the context a two-argument rule gets: an object kept beside the op in the
                    # holder (history.ctx beside history.last_fn), else the holder itself
                    beside = [n for n, v in _holders(value, is_node) if n != inner_name and not isinstance(v, type)]
                    rule = (name, inner_name, word)
                    context = (name, beside[0]) if beside else (name,)
                    break
            if rule is not None:
                break
    if rule is None and found and not any(e[0] is not CONSTANT and e[1] is not None for e in found):
        n_inputs = sum(1 for e in found if e[0] is not CONSTANT)
        taken = {data[0], (grad or ("",))[0], (parents or ("",))[0]}
        places = [((p,), v) for p, v in own if p not in taken]
        if parents is not None and len(parents) == 2:       # beside the inputs in their holder
            places += [((parents[0], n), v) for n, v in fields_of(follow(obj, parents[:1])) if n != parents[1]]
        for place, value in places:
            if isinstance(value, (list, tuple, np.ndarray)) and len(value) == n_inputs and all(
                    is_number(v) for v in value):
                local = place
                break
    if rule is None and local is None and like is not None and like.rule is not None \
            and follow(obj, like.rule[:1]) is not None:
        rule, context = like.rule, like.rule_context
    # -- op: the contract's spellings, else a string field naming an op
    op, _ = _first(obj, spellings["op"], lambda v: v is not None and not isinstance(v, bool))
    if op is None:
        for name, value in own:
            if isinstance(value, str) and spellings["canonical"](value) is not None:
                op = (name,)
                break
    name_path, _ = _first(obj, spellings["names"], lambda v: isinstance(v, str))
    requires, _ = _first(obj, spellings["requires"], lambda v: isinstance(v, (bool, np.bool_)))
    return Reading(cls, data, parents, grad, rule, context, local, op, name_path, requires)
