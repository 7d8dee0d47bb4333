"""Watching a student's own ``backward()`` run: :func:`observe_backward`.

Replaying a student's ``_backward`` rules in ad_magic's order, with ad_magic's seed and
zeroing, shows the right answer even when their ``backward()`` forgets the seed, walks
the graph in the wrong order or loops forever. Here their own ``backward()`` runs, as
their cell would run it, under a tracer (``sys.settrace`` before Python 3.12,
``sys.monitoring`` from 3.12), and every call of their code is watched:

* before a call of the student's code and when it returns, the grad field of every node
  is compared with what it was (identity first, then the values: ``p.grad += …`` on an
  array changes it in place, so a copy of each array is kept). What changed between two
  such moments was done by the student's function running then;
* a call of a node's own rule (its ``_backward`` closure: the code object and the values
  it closes over, or a bound method of the node) names that node; what the rule changed
  is one step, judged against the chain rule (:class:`~ad_magic.adapters.steps.ForeignStep`);
* what ``backward()`` itself changed (the zeroing, the seed ``out.grad = 1``, or grads it
  computed inline) is a step too (:class:`ObservedStep`);
* a backward that runs past ``timeout`` seconds is stopped (the tracer raises
  :class:`StopObserving`, a ``BaseException``, into their code on its next line outside a
  ``try`` block); one that raises is shown up to the raise.

Every field of the student's objects is put back afterwards (``restore=False`` leaves
what their code did: ``%%autodiff`` runs their backward once, for real). The findings are
one sentence each (:attr:`Observation.problems`), in an order that depends only on the
graph and on what the code did, never on where objects happen to sit in memory.
"""
from __future__ import annotations

import contextlib
import dis
import inspect
import linecache
import numbers
import operator
import os
import sys
import sysconfig
import time

import numpy as np

from ..drawing.nodes import as_node
from ..engine.formatting import format_value
from .base import AdapterError, ForeignNode, label
from .contract import GRAD, HOLDERS, RULES
from .rules import expected
from .steps import ForeignStep, where

__all__ = ["observe_backward", "observable", "Observation", "ObservedStep", "StopObserving"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES_PER_NODE = 20      # rule calls per node after which a backward is stopped as a runaway loop
STOPPED_NOTE = "this rule was running when the time limit stopped your backward: what it did so far is shown."


class StopObserving(BaseException):
    """Raised into the student's code when its backward runs past the time limit (a
    ``BaseException``, so an ``except Exception`` in their loop does not swallow it)."""


def _library_dirs() -> tuple:
    dirs = {_PACKAGE_DIR, os.path.dirname(np.__file__)}
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        paths = sysconfig.get_paths(vars=scheme_vars) if scheme_vars else sysconfig.get_paths()
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            if paths.get(key):
                dirs.add(os.path.abspath(paths[key]))
    return tuple(sorted(d.rstrip(os.sep) + os.sep for d in dirs))


_LIBRARY = _library_dirs()


def _is_student_code(code, cache={}) -> bool:   # noqa: B006 (a cache per code object, by design)
    """Code outside ad_magic, NumPy, the standard library and installed packages: a
    notebook cell, a student's module."""
    found = cache.get(code)
    if found is None:
        name = code.co_filename
        if name.startswith("<frozen") or name.startswith("<__array_function__"):
            found = False
        elif name.startswith("<"):
            found = True           # a notebook cell, exec'd text
        else:
            path = os.path.abspath(name)
            found = not path.startswith(_LIBRARY)
        cache[code] = found
    return found


def _protected(code, cache={}) -> tuple:  # noqa: B006
    """The bytecode ranges of ``code`` inside a ``try`` (3.11+), where an exception raised
    into the frame could be caught by the student's own handler."""
    found = cache.get(code)
    if found is None:
        try:
            found = tuple((e.start, e.end) for e in dis.Bytecode(code).exception_entries)
        except Exception:       # before 3.11: no table to read; raise anywhere
            found = ()
        cache[code] = found
    return found


# ------------------------------------------------------------------ what a step is

class ObservedStep:
    """Something the student's ``backward()`` did outside a node's own rule: the zeroing,
    the seed, grads computed inline, the error it raised, the loop that was stopped.

    It has the fields of every step (:class:`ad_magic.engine.steps.BackwardStep`'s
    protocol): ``index``, ``node`` (the node it is about, or None), ``function`` (what
    did it), ``op`` (None), ``parents`` (the nodes whose grad it changed), ``terms`` (none),
    ``rule``, ``changes`` (``{node: (before, after)}``), ``upstream``, ``ok``, ``note``,
    ``remark``, ``error``, ``where`` and ``caption`` (its text, in the graph's names).
    """

    op = None
    terms = ()
    remark = None
    upstream = None

    def __init__(self, index, kind, node, changes, caption, *, function, note=None, error=None, where=None):
        self.index, self.kind, self.node = index, kind, node
        self.changes = changes
        self.parents = tuple(changes)
        self.function = function
        self.caption = caption
        self.note, self.error, self.where = note, error, where
        self.ok = note is None

    @property
    def rule(self) -> str:
        return f"{self.function}: {self.caption}"

    def __repr__(self):
        return f"ObservedStep({self.index}, {self.kind}: {self.caption[:60]!r})"


class Observation:
    """What the student's backward did, step by step.

    * ``steps``: :class:`~ad_magic.adapters.steps.ForeignStep` for each call of a node's
      own rule, :class:`ObservedStep` for the rest (seed, zeroing, error, stop), in the
      order their code did them;
    * ``problems``: one sentence per cause found (empty when it agrees with the chain rule
      at every step and in its result);
    * ``grads``: ``{node: grad}`` as their code left it (None where it left None);
      :meth:`grad` takes the student's own object;
    * ``order``: the nodes whose rules ran, in order;
    * ``error``: ``(exception, "in f, line N — code")`` when it raised, else None;
    * ``timed_out``: True when it was stopped at the time limit;
    * ``before``: ``{node: grad}`` before it ran; ``root``: the output's node.
    """

    def __init__(self, root, steps, grads, before, order, error, timed_out, problems, seconds):
        self.root, self.steps, self.grads, self.before = root, steps, grads, before
        self.order, self.error, self.timed_out = order, error, timed_out
        self.problems, self.seconds = problems, seconds

    def grad(self, obj):
        """The grad the student's code left on ``obj`` (their object, or its node)."""
        return self.grads[self.root.graph.node(obj)]

    def __repr__(self):
        return (f"<Observation: {len(self.steps)} steps, {len(self.problems)} problem(s)"
                + (", timed out" if self.timed_out else "") + ">")


# ------------------------------------------------------------------ watching the grads

_MISSING = object()


def _grad_name(obj) -> str:
    for name in GRAD:
        try:
            value = getattr(obj, name)
        except Exception:
            continue
        if inspect.ismethod(value):
            continue
        return name
    return GRAD[0]


class _Grads:
    """The grad field of every node, as last seen: the object itself (identity), the raw
    bytes of an array (its value, to see in-place changes) and a float copy."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.objects = [n.source for n in nodes]
        self.fields = [_grad_name(o) for o in self.objects]
        names = set(self.fields)
        self.getter = operator.attrgetter(names.pop()) if len(names) == 1 else None
        self.position = {id(o): i for i, o in enumerate(self.objects)}
        self.parents = [[self.position[id(p.source)] for p in n.parents if id(p.source) in self.position]
                        for n in nodes]
        self.raw = [self._read(i) for i in range(len(nodes))]
        self.signature = [self._signature(r) for r in self.raw]
        self.values = [self._value(i, r) for i, r in enumerate(self.raw)]

    def _read_all(self):
        if self.getter is not None:
            try:
                return list(map(self.getter, self.objects))
            except Exception:     # a property that raises on one node: one by one
                pass
        return [self._read(i) for i in range(len(self.objects))]

    def _read(self, i):
        try:
            return getattr(self.objects[i], self.fields[i], None)
        except Exception:
            return None

    @staticmethod
    def _signature(raw):
        if isinstance(raw, np.ndarray):
            return raw.shape, raw.dtype.str, raw.tobytes()
        if raw is None or isinstance(raw, (numbers.Number, np.generic)):
            return raw           # immutable: identity says it all
        return _MISSING          # another object (a grad kept as a node): compared by value

    def _value(self, i, raw):
        if raw is None:
            return None
        if isinstance(raw, (np.ndarray, numbers.Number, np.generic)):
            try:
                return np.array(raw, dtype=np.float64)
            except Exception:
                return None
        try:
            value = self.nodes[i].grad          # the adapter's reading (a grad kept as a node)
            return None if value is None else np.array(value, dtype=np.float64)
        except Exception:
            return None

    def changed(self, candidates=(), everywhere=True):
        """[(i, before, after)] for every grad that changed since the last look: any node
        whose field holds another object, and, among ``candidates``, an array changed in
        place. The new state is remembered."""
        raw = self.raw
        if everywhere:
            current = self._read_all()
            same = list(map(operator.is_, current, raw))
            look = set() if all(same) else {i for i, s in enumerate(same) if not s}
        else:
            current = {i: self._read(i) for i in candidates}
            look = {i for i, value in current.items() if value is not raw[i]}
        for i in candidates:
            if i not in look and self.signature[i] is not current[i]:
                look.add(i)
        found = []
        for i in sorted(look):
            new = current[i]
            signature = self._signature(new)
            old_signature = self.signature[i]
            raw[i] = new
            if signature is not _MISSING and old_signature is not _MISSING:
                if _same_signature(signature, old_signature):
                    self.signature[i] = signature
                    continue
            value = self._value(i, new)
            self.signature[i] = signature
            before = self.values[i]
            if _same_value(before, value):
                continue
            self.values[i] = value
            found.append((i, before, value))
        return found


def _same_signature(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return a == b
    if isinstance(a, tuple) or isinstance(b, tuple):
        return False
    if a is None or b is None:
        return a is b
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


def _same_value(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


# ------------------------------------------------------------------ the tracer

class _Call:
    __slots__ = ("frame", "code", "parent", "rule_of", "depth", "returned")

    def __init__(self, frame, parent, rule_of):
        self.frame, self.code, self.parent, self.rule_of = frame, frame.f_code, parent, rule_of
        self.returned = False      # a rule that returns its inputs' grads (the caller adds them)
        self.depth = 0 if parent is None else parent.depth + 1

    def owner(self):
        """The nearest call, this one or a caller, that is a node's own rule."""
        call = self
        while call is not None:
            if call.rule_of is not None:
                return call
            call = call.parent
        return self


class _Watcher:
    """The state shared by both tracers: the student's calls, and what changed when."""

    def __init__(self, grads, rules, deadline, files=()):
        self.grads, self.rules, self.deadline = grads, rules, deadline
        self.files = frozenset(files)   # the files of the nodes' classes and rules: theirs, wherever installed
        self.rule_calls = 0
        self.stopped_in = None      # the call running when the time limit stopped the code
        # a backward that keeps running rules (a walk that never marks a node done) is stopped
        # here too, before its steps fill the memory: no correct backward runs this many
        self.most_rule_calls = RULES_PER_NODE * len(grads.nodes) + 1000
        self.runaway = False
        self.stack = []             # the student's calls running now, outermost first
        self.batches = []           # (call, [(i, before, after)])
        self.raised_in = None       # the innermost student call an exception started in
        self.stopped_at = None      # (code, line) where the time limit stopped the code
        self.late = None            # the time after which any traced line is stopped

    # -- where changes come from
    def _candidates(self, call):
        """Nodes the running call can reach directly (its arguments, locals and the values
        it closes over) and their parents: those whose arrays may have changed in place."""
        position = self.grads.position
        found = set()
        try:
            values = list(call.frame.f_locals.values())
        except Exception:
            return found
        for value in values:
            i = position.get(id(value))
            if i is not None:
                found.add(i)
                found.update(self.grads.parents[i])
        return found

    def look(self, everywhere):
        """Before a call starts or when one ends: what the running call changed. Every
        node's field is compared by identity when ``everywhere`` (around the calls that
        backward() itself makes); inside deeper calls (a rule, a helper of a helper) only
        the nodes the call can reach directly, and their parents, are compared: a whole
        scan per call would make a thousand-node backward take seconds."""
        if not self.stack:
            return
        call = self.stack[-1]
        changes = self.grads.changed(self._candidates(call), everywhere=everywhere)
        if changes:
            self.batches.append((call, changes))

    def look_everywhere(self):
        """At the end: every array compared (an in-place change no candidate showed)."""
        changes = self.grads.changed(range(len(self.grads.nodes)), everywhere=True)
        if changes:
            call = self.stack[-1] if self.stack else self.outermost
            self.batches.append((call, changes))

    # -- events
    def watches(self, code) -> bool:
        return code.co_filename in self.files or _is_student_code(code)

    def enter(self, frame):
        self.look(everywhere=bool(self.stack) and self.stack[-1].depth == 0)
        call = _Call(frame, self.stack[-1] if self.stack else None, self._rule_of(frame))
        if not self.stack:
            self.outermost = call
        self.stack.append(call)
        if call.rule_of is not None:
            self.batches.append((call, []))     # a rule that changes nothing is still a step
            self.rule_calls += 1
            if self.rule_calls > self.most_rule_calls:
                self.runaway = True
                self.stopped_at = (frame.f_code, frame.f_lineno)
                self.stopped_in = call
                raise StopObserving(f"{self.rule_calls} rule calls")
        self.check_time(frame, entering=True)

    def leave(self, frame, value=None):
        if self.stack and self.stack[-1].frame is frame:
            call = self.stack[-1]
            call.returned = value is not None
            self.look(everywhere=call.depth == 0 or (call.depth == 1 and call.rule_of is None))
            self.stack.pop()

    def exception(self, frame, exc):
        """An exception passes through a student's frame: the first frame it is seen in
        is where it was raised (a new exception replaces an old one that was caught)."""
        if self.raised_in is not None and self.raised_in[2] is exc:
            return
        call = self.stack[-1] if self.stack and self.stack[-1].frame is frame else None
        if call is not None:
            self.raised_in = (call, frame.f_lineno, exc)

    def check_time(self, frame, entering=False):
        now = time.monotonic()
        if now < self.deadline:
            return
        if self.late is None:
            self.late = now + 0.5
        if not entering and now < self.late:
            offset = frame.f_lasti
            if any(start <= offset < end for start, end in _protected(frame.f_code)):
                return            # inside their try: it could swallow the stop; the next line
        self.stopped_at = (frame.f_code, frame.f_lineno)
        self.stopped_in = self.stack[-1] if self.stack else None
        raise StopObserving(f"stopped after {self.deadline - self.started:.3g} s")

    def _rule_of(self, frame):
        """The node whose own rule this call is, or None."""
        code = frame.f_code
        candidates = self.rules.get(code)
        if not candidates:
            return None
        local = frame.f_locals
        if code.co_freevars:
            candidates = self.rules.get((code, id(local.get(code.co_freevars[0], _MISSING))), ())
        elif code.co_argcount:
            candidates = self.rules.get((code, id(local.get(code.co_varnames[0], _MISSING))), candidates)
        if len(candidates) > 1 and not code.co_freevars and candidates[0][2] is None:
            return None           # one plain function shared by several nodes: which one ran is unknown
        for i, fn, bound in candidates:
            if bound is not None:
                if code.co_argcount and local.get(code.co_varnames[0]) is bound:
                    return i
                continue
            cells = getattr(fn, "__closure__", None) or ()
            if all(local.get(name, _MISSING) is _cell(cell) for name, cell in zip(code.co_freevars, cells)):
                return i
        return None


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return _MISSING


def _rule_owners(obj):
    """Where a node's rule may be: the node itself, then an object it holds (``_ctx``,
    ``grad_fn``, ``node``: a context whose ``backward`` is the rule)."""
    yield obj, RULES
    for name in HOLDERS:
        try:
            holder = getattr(obj, name)
        except Exception:
            continue
        if holder is not None and not isinstance(holder, (type, str, bytes, numbers.Number)) \
                and not callable(getattr(holder, "__code__", None)) and hasattr(holder, "__dict__"):
            yield holder, RULES + ("backward",)


def _rules(nodes) -> dict:
    """{code object: [(node position, function, bound self)]} of every node's own rule."""
    found = {}
    for i, node in enumerate(nodes):
        for owner, names in _rule_owners(node.source):
            if _add_rule(found, i, owner, names):
                break
    return found


def _add_rule(found, i, obj, names) -> bool:
    """Index the first rule spelling of ``obj`` as node ``i``'s: by its code object, and by
    its code with the first value it closes over (or the object it is bound to)."""
    for name in names:
        try:
            rule = getattr(obj, name)
        except Exception:
            continue
        fn = getattr(rule, "__func__", rule)
        code = getattr(fn, "__code__", None)
        if code is None or not callable(rule):
            continue
        bound = getattr(rule, "__self__", None) if inspect.ismethod(rule) else None
        found.setdefault(code, []).append((i, fn, bound))
        cells = getattr(fn, "__closure__", None)
        first = _cell(cells[0]) if cells else bound
        if first is not None:
            found.setdefault((code, id(first)), []).append((i, fn, bound))
        return True
    return False


def _files(nodes, rules, call, backward) -> set:
    """The files the graph's code lives in (its classes, their backward, the rules), whose
    calls are watched even when installed as a package (micrograd from PyPI)."""
    files = set()
    for code in rules:
        if not isinstance(code, tuple):
            files.add(code.co_filename)
    for cls in {type(n.source) for n in nodes}:
        for klass in cls.__mro__[:-1]:
            try:
                files.add(inspect.getfile(klass))
            except (TypeError, OSError):
                continue
    for fn in (backward, getattr(call, "__func__", call)):
        code = getattr(getattr(fn, "__func__", fn), "__code__", None)
        if code is not None:
            files.add(code.co_filename)
    return {f for f in files if not os.path.abspath(f).startswith(_PACKAGE_DIR + os.sep)}


@contextlib.contextmanager
def _traced(watcher):
    """Run the block with ``watcher`` told of every call, return and line of the
    student's code (3.12+: sys.monitoring; before: sys.settrace), restored after."""
    if sys.version_info >= (3, 12):
        with _monitored(watcher):
            yield
        return

    def local(frame, event, arg):
        if event == "line":
            watcher.check_time(frame)
        elif event == "return":
            watcher.leave(frame, arg)
        elif event == "exception":
            watcher.exception(frame, arg[1])
        return local

    def tracer(frame, event, arg):
        if event != "call" or not watcher.watches(frame.f_code):
            return None
        watcher.enter(frame)
        return local

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        yield
    finally:
        sys.settrace(previous)


@contextlib.contextmanager
def _monitored(watcher):   # pragma: no cover - Python 3.12+ only; the machines here run 3.11
    monitoring = sys.monitoring
    events = monitoring.events
    tool = next((t for t in (monitoring.DEBUGGER_ID, monitoring.PROFILER_ID, 3, 4)
                 if monitoring.get_tool(t) is None), None)
    if tool is None:
        raise RuntimeError("every sys.monitoring tool id is taken; cannot watch the backward")
    monitoring.use_tool_id(tool, "ad_magic.observe")
    lines_on = set()

    def start(code, offset):
        if not watcher.watches(code):
            return monitoring.DISABLE
        frame = sys._getframe(1)
        if code not in lines_on:
            lines_on.add(code)
            monitoring.set_local_events(tool, code, events.LINE)
        watcher.enter(frame)

    def finish(code, offset, value):
        if not watcher.watches(code):
            return monitoring.DISABLE
        watcher.leave(sys._getframe(1), value)

    def unwind(code, offset, exc):
        if watcher.watches(code):
            frame = sys._getframe(1)
            watcher.exception(frame, exc)
            watcher.leave(frame)

    def line(code, number):
        watcher.check_time(sys._getframe(1))

    callbacks = {events.PY_START: start, events.PY_RESUME: start, events.PY_RETURN: finish,
                 events.PY_YIELD: finish, events.PY_UNWIND: unwind, events.LINE: line}
    for event, callback in callbacks.items():
        monitoring.register_callback(tool, event, callback)
    monitoring.set_events(tool, events.PY_START | events.PY_RESUME | events.PY_RETURN | events.PY_YIELD
                          | events.PY_UNWIND)
    try:
        yield
    finally:
        monitoring.set_events(tool, 0)
        for code in lines_on:
            monitoring.set_local_events(tool, code, 0)
        for event in callbacks:
            monitoring.register_callback(tool, event, None)
        monitoring.free_tool_id(tool)
        # what this tool disabled (code that was not the student's) must not stay disabled for
        # the next observation, whose student code may be elsewhere (restart_events is global:
        # another tool's disabled events come back too, and are disabled again at their next call)
        monitoring.restart_events()


# ------------------------------------------------------------------ observing

def observable(node, backward=None) -> bool:
    """True when there is a backward of the student's own to watch: ``node`` is of another
    class whose rules are theirs, and it has a ``backward()`` method (or ``backward`` is
    given). False for ad_magic's Tensor, for libraries whose rules need no checking
    (PyTorch: stepped with its own autograd hooks), and for a class with rules but no
    backward() yet (its rules are then run in ad_magic's order)."""
    if not isinstance(node, ForeignNode) or not getattr(node.graph.adapter, "checks_rules", True):
        return False
    if backward is not None:
        return True
    try:
        method = getattr(node.source, "backward", None)
    except Exception:         # a property that raises: no backward to call
        return False
    return inspect.ismethod(method) or inspect.isfunction(method)


def _backward_callable(root, backward, grad):
    """What to call, and how: the output's own ``backward`` method, or ``backward`` given
    (called with the output when it takes one argument)."""
    source = root.source
    if backward is None:
        method = getattr(source, "backward", None)
        if method is None or not callable(method):
            raise AdapterError(f"{type(source).__name__} has no backward() method to watch; pass the function "
                               "that runs your backward pass: backward=my_backward.")
        if grad is None or not _takes_an_argument(method):
            return method          # their backward seeds itself (a non-scalar output too)
        return lambda: method(grad)
    if not callable(backward):
        raise TypeError(f"backward must be a function, got {type(backward).__name__}")
    try:
        required = [p for p in inspect.signature(backward).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        required = []
    if len(required) >= 1:
        return lambda: backward(source)
    return backward


def _takes_an_argument(function) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)


def observe_backward(out, backward=None, timeout=10.0, *, grad=None, restore=True) -> Observation:
    """Run the student's own backward of ``out`` (``out.backward()``, or ``backward()`` /
    ``backward(out)`` when given) under a tracer and return what it did, step by step.

    ``timeout`` (seconds) stops a backward that is still running then. With ``restore``
    (the default) every field of every node is put back afterwards; ``restore=False``
    leaves what the student's code did, as running their own cell would."""
    root = as_node(out, "observe_backward")     # the adapter registered by this package
    if not isinstance(root, ForeignNode):
        raise TypeError("observe_backward watches another class's backward(); ad_magic's own Tensor is stepped "
                        "with its backward_steps().")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    graph = root.graph
    nodes = list(graph.order_from(root))
    computed = [n for n in nodes if n.parents]
    if backward is None and computed and not any(graph.adapter.has_backward(n) for n in computed):
        raise AdapterError(f"no node of this graph has a backward rule yet ({graph.adapter.kind}; looked for "
                           f"{'/'.join(RULES)}): give each operation's output a _backward closure first.")
    call = _backward_callable(root, backward, grad)
    saved = graph.preserved() if restore else contextlib.nullcontext()
    with saved:
        grads = _Grads(nodes)
        before = list(grads.values)
        started = time.monotonic()
        rules = _rules(nodes)
        watcher = _Watcher(grads, rules, started + float(timeout), _files(nodes, rules, call, backward))
        watcher.started = started
        watcher.outermost = None
        error = None
        timed_out = False
        with _traced(watcher):
            try:
                call()
            except StopObserving:
                timed_out = True
            except RecursionError as exc:
                error = exc
            except Exception as exc:       # the student's own error: shown up to the raise
                error = exc
        seconds = time.monotonic() - started
        watcher.stack.clear()
        watcher.look_everywhere()
        after = list(grads.values)
    return _assemble(root, nodes, watcher, before, after, error, timed_out, seconds)


# ------------------------------------------------------------------ from changes to steps

def _assemble(root, nodes, watcher, before, after, error, timed_out, seconds):
    state = list(before)
    position = {id(n): j for j, n in enumerate(nodes)}
    steps, order = [], []
    pending = []              # consecutive batches of the same owner: one step
    owner = None

    raised = watcher.raised_in[0].owner() if error is not None and watcher.raised_in else None
    failed = raised if raised is not None and raised.rule_of is not None else None

    def inputs_of(call):
        return {id(p) for p in nodes[call.rule_of].parents}

    stopped_in = watcher.stopped_in.owner() if timed_out and watcher.stopped_in is not None else None

    def flush():
        nonlocal pending, owner
        if owner is not None and not (owner is stopped_in and not pending):   # cut off before it did anything
            _steps_of(owner, pending, nodes, state, steps, order, root, position,
                      error=error if owner is failed else None,
                      note=STOPPED_NOTE if owner is stopped_in else None)
        pending, owner = [], None

    for call, changes in watcher.batches:
        mine = call.owner() if call is not None else None
        key = mine if mine is not None and mine.rule_of is not None else None
        if key is None and owner is not None and owner.returned and changes and all(
                id(nodes[j]) in inputs_of(owner) for j, _, _ in changes):
            key = owner       # the grads a rule returned, added into its inputs by the code that called it
        if key is not None and key is owner:
            pending.extend(changes)
            continue
        flush()
        if key is None:
            _steps_of(None, changes, nodes, state, steps, order, root, position)
        else:
            owner, pending = key, list(changes)
    flush()
    where_text = None
    if error is not None:
        where_text = where(error)
        if failed is None:
            text = f"your backward raised {type(error).__name__}: {error}" + (f" ({where_text})" if where_text else "")
            steps.append(ObservedStep(len(steps) + 1, "error", None, {}, text, function="backward", note=text,
                                      error=error, where=where_text))
    stopped = None
    if timed_out:
        stopped = _line_text(*watcher.stopped_at) if watcher.stopped_at else None
        steps.append(ObservedStep(len(steps) + 1, "stopped", None, {},
                                  f"stopped after {seconds:.2g} s" + (f", {stopped}" if stopped else ""),
                                  function="backward", note="it did not finish"))
    grads = {n: after[i] for i, n in enumerate(nodes)}
    if timed_out and watcher.runaway:
        stopped = f"its rules had run {watcher.rule_calls} times for {len(nodes)} nodes, {stopped}"
    problems = _problems(root, nodes, steps, before, after, error, where_text, timed_out, stopped,
                         seconds)
    return Observation(root, steps, grads, {n: before[i] for i, n in enumerate(nodes)}, order,
                       None if error is None else (error, where_text), timed_out, problems, seconds)


def _steps_of(owner, changes, nodes, state, steps, order, root, position, error=None, note=None):
    """Turn one owner's changes into steps: a node's rule is one ForeignStep; what
    backward() itself did is split into the zeroing, the seed, and the rest."""
    if owner is not None:
        i = owner.rule_of
        node = nodes[i]
        if not changes and not node.parents and error is None:
            return               # a leaf's `lambda: None`
        upstream = state[i]
        touched = {j for j, _, _ in changes} | {position[id(p)] for p in node.parents if id(p) in position} | {i}
        before_d = {id(nodes[j]): state[j] for j in touched}
        for j, _, new in changes:
            if state[j] is None and new is not None:
                before_d[id(nodes[j])] = np.zeros_like(new)    # None: no contribution yet (zero so far)
            state[j] = new
        after_d = {id(nodes[j]): state[j] for j in touched}
        step = ForeignStep(len(steps) + 1, node, before_d, after_d, upstream, error=error, note=note,
                           watched=[nodes[j] for j in sorted(touched)])
        steps.append(step)
        order.append(node)
        return
    zeros, seed, rest = {}, {}, {}
    first = {}
    for j, old, new in changes:
        first.setdefault(j, old)
        state[j] = new
    for j, old in first.items():
        new = state[j]
        if _same_value(old, new):
            continue
        node = nodes[j]
        if node is root and new is not None and np.all(new == 1):
            seed[node] = (old, new)
        elif new is not None and not np.any(new):
            zeros[node] = (old, new)
        else:
            rest[node] = (old, new)
    if zeros:
        last = steps[-1] if steps else None
        if isinstance(last, ObservedStep) and last.kind == "zero" and not (set(zeros) & set(last.changes)):
            steps.pop()          # one zeroing, even when each grad is set by a call of its own (a property)
            zeros = {**last.changes, **zeros}
        shown = ", ".join(label(n) for n in list(zeros)[:3]) + (", …" if len(zeros) > 3 else "")
        steps.append(ObservedStep(len(steps) + 1, "zero", None, zeros,
                                  f"your backward set {len(zeros)} grad(s) to zero ({shown})", function="zeroing"))
    if seed:
        (old, new), = seed.values()
        steps.append(ObservedStep(len(steps) + 1, "seed", root, seed,
                                  f"your backward set the output's grad to {format_value(new)} (the seed)",
                                  function="seed"))
    if rest:
        shown = "; ".join(f"{label(n)}: {format_value(o)} → {format_value(v)}" for n, (o, v) in list(rest.items())[:3])
        steps.append(ObservedStep(len(steps) + 1, "other", None, rest,
                                  f"your code outside the nodes' rules changed {len(rest)} grad(s): {shown}",
                                  function="backward"))


def _line_text(code, line) -> str:
    text = linecache.getline(code.co_filename, line).strip()
    return f"in {code.co_name}, line {line}" + (f" — {text}" if text else "")


# ------------------------------------------------------------------ what went wrong

def _stable_key(node, depth):
    """A key that depends on the graph only (never on memory addresses)."""
    try:
        value = format_value(node.data)
    except Exception:
        value = ""
    return (depth.get(node, 0), node.graph.display.get(node) or node.name or "", node._function or "", value)


def _depths(root, nodes) -> dict:
    """Each node's longest distance from the output (the output 0)."""
    depth = {root: 0}
    for node in reversed(nodes):
        d = depth.get(node)
        if d is None:
            continue
        for p in node.parents:
            if depth.get(p, -1) < d + 1:
                depth[p] = d + 1
    return depth


def _chain_rule(root, nodes, seed):
    """Every grad as the chain rule gives it (registry ops only), or None when a node's
    op is unknown to the registry."""
    grads = {n: np.zeros(n.shape) for n in nodes}
    grads[root] = np.broadcast_to(seed, root.shape).astype(np.float64)
    for node in reversed(nodes):
        if not node.parents:
            continue
        rule = expected(node, grads[node])
        if rule is None or rule.operands is None:
            return None
        for parent, contribution in rule.contributions.items():
            if parent in grads:
                grads[parent] = grads[parent] + contribution
    return grads


def _problems(root, nodes, steps, before, after, error, where_text, timed_out, stopped, seconds):
    problems = []
    depth = _depths(root, nodes)
    position = {n: i for i, n in enumerate(nodes)}
    rule_steps = [s for s in steps if isinstance(s, ForeignStep) and s.error is None and s.note != STOPPED_NOTE]
    # 1. the seed: the output's grad when its own rule ran (or when the first rule ran)
    first_root = next((s for s in rule_steps if s.node is root), None)
    if root.parents and rule_steps:
        upstream = first_root.upstream if first_root is not None else None
        if first_root is not None and (upstream is None or not np.any(upstream)):
            problems.append(f"the output's grad was {format_value(upstream) if upstream is not None else None} "
                            f"when its own rule ran: your backward never seeds it with 1 (out.grad = 1) before "
                            "running the rules, so no gradient flows.")
    # 2. the order: a rule that ran before the rules of all its node's consumers
    consumers = {}
    for node in nodes:
        for p in set(node.parents):
            consumers.setdefault(p, []).append(node)
    ran_at = {}
    for k, s in enumerate(rule_steps):
        ran_at.setdefault(s.node, k)
    early = []
    for node, k in ran_at.items():
        for consumer in consumers.get(node, ()):
            if ran_at.get(consumer, -1) > k:
                early.append((_stable_key(node, depth), _stable_key(consumer, depth), node, consumer))
    if early:
        early.sort(key=lambda e: (e[0], e[1]))
        _, _, node, consumer = early[0]
        problems.append(f"the rule of {_who(node)} ran before the rule of {_who(consumer)}, which uses it: "
                        f"{_who(node)}'s grad was not complete yet; run the rules in reverse topological order "
                        "(every node after all the nodes that use it).")
    # 3. overwriting instead of adding, and other steps that disagree with the chain rule
    overwrote = [s for s in rule_steps if not s.ok and s.note and "overwrote" in s.note]
    if overwrote:
        s = min(overwrote, key=lambda s: _stable_key(s.node, depth))
        problems.append(s.note)    # no step number: their order may follow a set's, which varies
    wrong = [s for s in rule_steps if not s.ok and s not in overwrote]
    if wrong:
        s = min(wrong, key=lambda s: _stable_key(s.node, depth))
        problems.append(s.note)    # no step number: their order may follow a set's, which varies
    # 4. the error and its line; 5. the loop
    if error is not None:
        hint = ""
        if isinstance(error, RecursionError):
            hint = ": a recursive walk of the graph goes deeper than Python allows; walk it with a loop and a stack"
        elif "NoneType" in str(error):
            hint = ": a grad was still None; give every grad a starting value (zero) before adding into it"
        problems.append(f"your backward raised {type(error).__name__}: {error}"
                        + (f" ({where_text})" if where_text else "") + hint + ".")
    if timed_out:
        problems.append(f"your backward was still running after {seconds:.2g} s and was stopped"
                        + (f" ({stopped})" if stopped else "") + ": a loop that does not end?")
    # 6. the result
    if error is None and not timed_out and not problems:     # a wrong result no cause above explains
        truth = _chain_rule(root, nodes, 1.0) if root.size == 1 else None
        if truth is not None:
            for node in sorted((n for n in nodes if n.is_leaf and n.requires_grad),
                               key=lambda n: _stable_key(n, depth)):
                got = after[position[node]]
                want = truth[node]
                if got is None or got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=1e-9):
                    problems.append(f"in the end {_who(node)}'s grad is "
                                    f"{format_value(got) if got is not None else None}, but the chain rule "
                                    f"gives {format_value(want)}.")
                    break
    return problems


def _who(node) -> str:
    """A node in a finding: its name, else its op and value (two results of one op differ)."""
    if node.graph.display.get(node) or node.name or not node._function:
        return label(node)
    return f"the {node._function} result {format_value(node.data)}"
