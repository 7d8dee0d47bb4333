"""The tracer under :func:`~ad_magic.adapters.observe.observe_backward`: which code is the
student's, what the grad field of every node holds (:class:`GradFields`), and
:func:`traced`, which tells a :class:`Watcher` of every call, return and line of the
student's code (``sys.settrace`` before Python 3.12, ``sys.monitoring`` from 3.12) and
raises :class:`StopObserving` into it at the time limit.

What changed between two moments (a call of the student's code starting, one ending)
was done by the student's function running then. Around the calls ``backward()`` makes
itself, every node's field is compared by identity; inside deeper calls only the nodes
the call reaches directly and their parents (an array changed in place is found by
comparing its bytes with a copy); at the end, every array.
"""
from __future__ import annotations

import collections
import contextlib
import dis
import inspect
import linecache
import numbers
import operator
import os
import re
import sys
import sysconfig
import threading
import time

import numpy as np

from .contract import GRAD, HOLDERS, RULES
from .structure import follow

__all__ = ["StopObserving", "GradFields", "Watcher", "traced", "rules_of", "watched_files", "same_value",
           "RULES_PER_NODE"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES_PER_NODE = 20      # rule calls per node after which a backward is stopped as a runaway loop


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


# ------------------------------------------------------------------ watching the grads

_MISSING = object()
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_ASSIGNED = re.compile(r"\b([A-Za-z_][A-Za-z_0-9]*)\.([A-Za-z_][A-Za-z_0-9]*)\s*(?:[-+*/@]|//)?=(?!=)")


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


class GradFields:
    """The grad field of every node, as last seen: the object itself (identity), the raw
    bytes of an array (its value, to see in-place changes) and a float copy."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.objects = [n.source for n in nodes]
        self.fields = [self._field(n) for n in nodes]
        names = set(self.fields)
        self.getter = operator.attrgetter(names.pop()) if len(names) == 1 else None
        self.position = {id(o): i for i, o in enumerate(self.objects)}
        self.parents = [[self.position[id(p.source)] for p in n.parents if id(p.source) in self.position]
                        for n in nodes]
        self.raw = [self._read(i) for i in range(len(nodes))]
        self.signature = [self._signature(r) for r in self.raw]
        self.values = [self._value(i, r) for i, r in enumerate(self.raw)]

    @staticmethod
    def _field(node) -> str:
        """The dotted path of ``node``'s grad field: the adapter's reading of its class, else
        the first grad spelling the object has."""
        try:
            path = node.graph.adapter.grad_field(node.source)
        except Exception:
            path = None
        return ".".join(path) if path else _grad_name(node.source)

    def _read_all(self):
        if self.getter is not None:
            try:
                return list(map(self.getter, self.objects))
            except Exception:     # a property that raises on one node: one by one
                pass
        return [self._read(i) for i in range(len(self.objects))]

    def _read(self, i):
        try:
            return operator.attrgetter(self.fields[i])(self.objects[i])
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
            if same_value(before, value):
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


def same_value(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


# ------------------------------------------------------------------ the tracer

class _Call:
    __slots__ = ("frame", "code", "parent", "rule_of", "depth", "returned", "line", "in_rule", "recent")

    def __init__(self, frame, parent, rule_of):
        self.frame, self.code, self.parent, self.rule_of = frame, frame.f_code, parent, rule_of
        self.returned = False      # a rule that returns its inputs' grads (the caller adds them)
        self.line = None           # the line running now (outside the nodes' rules)
        self.recent = []           # the nodes the last lines named, the latest first
        self.in_rule = rule_of is not None or (parent is not None and parent.in_rule)
        self.depth = 0 if parent is None else parent.depth + 1

    def owner(self):
        """The nearest call, this one or a caller, that is a node's own rule."""
        call = self
        while call is not None:
            if call.rule_of is not None:
                return call
            call = call.parent
        return self


class Watcher:
    """The state shared by both tracers: the student's calls, and what changed when."""

    def __init__(self, grads, rules, timeout, files=()):
        self.grads, self.rules = grads, rules
        self.started = time.monotonic()
        self.deadline = self.started + float(timeout)
        self.outermost = None       # the first call of the student's code: their backward
        self.files = frozenset(files)   # the files of the nodes' classes and rules: theirs, wherever installed
        self.rule_calls = 0
        self.stopped_in = None      # the call running when the time limit stopped the code
        # a backward that keeps running rules (a walk that never marks a node done) is stopped
        # here too, before its steps fill the memory: no correct backward runs this many
        self.most_rule_calls = RULES_PER_NODE * len(grads.nodes) + 1000
        self.runaway = False
        self.stack = []             # the student's calls running now, outermost first
        self.batches = []           # (call, [(i, before, after)])
        self.named = {}             # batch index -> the nodes named on the line that made its changes
        self.unchanged = {}         # batch index -> grads that line assigned without changing their value
        self._line_names = {}       # (code, line) -> the local names the line's text uses
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

    def line(self, frame):
        """A line of the student's code is about to run. Outside the nodes' rules (a
        ``backward()`` that computes the grads itself, a loop over local derivatives kept
        as numbers) what the line before it changed is looked for among the nodes that
        line names and their parents, and kept with those names: the chain-rule terms it
        computed are then judged one by one (``observe.py``)."""
        self.check_time(frame)
        if not self.stack or self.stack[-1].frame is not frame:
            return
        call = self.stack[-1]
        if call.in_rule:
            return
        previous, call.line = call.line, frame.f_lineno
        if previous is None:
            return
        own, written = self._named(frame, previous)
        named = self._with_caller(call, self._with_recent(call, own))
        if own:
            call.recent.insert(0, own)
            del call.recent[3:]
        if not named:
            return
        candidates = set(named)
        for i in named:
            candidates.update(self.grads.parents[i])
        changes = self.grads.changed(candidates, everywhere=False)
        changed = {j for j, _, _ in changes}
        # a line that wrote an input's grad but left its value as it was (+= 0 · …) still ran
        # that term: the order of the terms is judged from it too
        ran = [j for j in written if j not in changed and any(j in self.grads.parents[c] for c in own)]
        if changes or ran:
            self.named[len(self.batches)] = named
            if ran:
                self.unchanged[len(self.batches)] = ran
            self.batches.append((call, changes))
            self.rule_calls += 1          # terms computed inline count as rules run: a runaway is stopped too
            if self.rule_calls > self.most_rule_calls and not self._protected_now(frame):
                self.runaway = True
                self.stopped_at = (frame.f_code, frame.f_lineno)
                self.stopped_in = call
                raise StopObserving(f"{self.rule_calls} rule calls")

    @staticmethod
    def _protected_now(frame) -> bool:
        """The frame is inside one of its ``try`` blocks, where a raise could be swallowed."""
        offset = frame.f_lasti
        return any(start <= offset < end for start, end in _protected(frame.f_code))

    @staticmethod
    def _with_recent(call, named):
        """``named``, then the nodes the call's last lines named (a loop's header names the
        node whose terms its body adds: ``for a, g in zip(n.args, n.op.vjp(…)):``)."""
        for earlier in call.recent:
            named = named + [i for i in earlier if i not in named]
        return named

    def _with_caller(self, call, named):
        """``named`` (the nodes a line of ``call`` names), then those named by the line that
        called it: a helper, a property setter or a rule nobody recognised, called from
        ``p.grad += local * node.grad`` or ``node.op.backward(node.grad)``, changes the
        grads on that line's behalf."""
        caller = call.parent
        if caller is not None and not caller.in_rule and caller.line is not None:
            more, _ = self._named(caller.frame, caller.line)
            named = named + [i for i in more if i not in named]
        return named

    def _named(self, frame, line):
        """(positions of the nodes held by the local names that ``line`` of the frame's
        code uses, in the order the line names them (every local when its text cannot be
        read); positions of those whose grad field the line assigns to)."""
        code = frame.f_code
        found = self._line_names.get((code, line), _MISSING)
        if found is _MISSING:
            text = linecache.getline(code.co_filename, line)
            local_names = set(code.co_varnames) | set(code.co_cellvars) | set(code.co_freevars)
            names = tuple(dict.fromkeys(n for n in _NAME.findall(text) if n in local_names)) if text else None
            targets = tuple((m.group(1), m.group(2)) for m in _ASSIGNED.finditer(text)) if text else ()
            found = self._line_names[(code, line)] = (names, targets)
        names, targets = found
        try:
            local = frame.f_locals
            values = list(local.values()) if names is None else [local.get(n) for n in names]
            assigned = [(local.get(n), field) for n, field in targets]
        except Exception:
            return [], []
        position, named = self.grads.position, []
        for value in values:
            i = position.get(id(value))
            if i is not None and i not in named:
                named.append(i)
        written = []
        for value, field in assigned:
            i = position.get(id(value))
            if i is not None and self.grads.fields[i].rsplit(".", 1)[-1] == field and i not in written:
                written.append(i)
        return named, written

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
            count = len(self.batches)
            self.look(everywhere=call.depth == 0 or (call.depth == 1 and call.rule_of is None))
            if len(self.batches) > count and not call.in_rule and call.line is not None:
                own = self._named(frame, call.line)[0]          # what its last line changed
                named = self._with_caller(call, self._with_recent(call, own))
                if named:
                    self.named[count] = named
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
        if not entering and now < self.late and self._protected_now(frame):
            return                # inside their try: it could swallow the stop; the next line
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


def rules_of(nodes) -> dict:
    """{code object: [(node position, function, bound self)]} of every node's own rule:
    the callable the reading of its class found on the node (``_bw``, ``back``), else the
    first rule spelling the node, or an object it holds, has."""
    found = {}
    paths = [_rule_path(node) for node in nodes]
    holders = [follow(node.source, path[:-1]) if path and len(path) > 1 else None
               for node, path in zip(nodes, paths)]
    holders = [None if isinstance(h, type) else h for h in holders]     # a class is every node's
    uses = collections.Counter(id(h) for h in holders if h is not None)
    if len(uses) < 2:
        uses.clear()        # one holder in sight (a lone output): cannot tell its own from a shared one
    for i, node in enumerate(nodes):
        path = paths[i]
        # a callable the node holds, or a method of an object it holds alone (its op record);
        # an object every node shares (a tape) has the whole backward, not this node's rule
        if path and len(path) == 1 and _add_rule(found, i, node.source, path):
            continue
        if path and holders[i] is not None and uses.get(id(holders[i])) == 1 \
                and _add_rule(found, i, holders[i], path[-1:]):
            continue
        for owner, names in _rule_owners(node.source):
            if _add_rule(found, i, owner, names):
                break
    return found


def _rule_path(node):
    """The attribute path of the node's rule in its class's reading, or None."""
    try:
        reading = node.graph.adapter.reading(node.source)
    except Exception:          # an adapter without readings (PyTorch), or one that cannot read it
        return None
    return getattr(reading, "rule", None)


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


def watched_files(nodes, rules, call, backward) -> set:
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
def traced(watcher):
    """Run the block with ``watcher`` told of every call, return and line of the
    student's code (3.12+: sys.monitoring; before: sys.settrace), restored after."""
    if sys.version_info >= (3, 12):
        with _monitored(watcher):
            yield
        return

    def local(frame, event, arg):
        if event == "line":
            watcher.line(frame)
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
    # sys.monitoring sees every thread (sys.settrace only the one that set it): callbacks from
    # another thread are ignored (never DISABLEd: that would switch the code off for this
    # thread too), so its calls are not steps and the time limit stops this thread alone
    monitoring = sys.monitoring
    events = monitoring.events
    tool = next((t for t in (monitoring.DEBUGGER_ID, monitoring.PROFILER_ID, 3, 4)
                 if monitoring.get_tool(t) is None), None)
    if tool is None:
        raise RuntimeError("every sys.monitoring tool id is taken; cannot watch the backward")
    observing = threading.get_ident()
    lines_on = set()

    def start(code, offset):
        if not watcher.watches(code):
            return monitoring.DISABLE
        if threading.get_ident() != observing:
            return None
        frame = sys._getframe(1)
        if code not in lines_on:
            lines_on.add(code)
            monitoring.set_local_events(tool, code, events.LINE)
        watcher.enter(frame)
        return None

    def finish(code, offset, value):
        if not watcher.watches(code):
            return monitoring.DISABLE
        if threading.get_ident() == observing:
            watcher.leave(sys._getframe(1), value)
        return None

    def unwind(code, offset, exc):
        if threading.get_ident() == observing and watcher.watches(code):
            frame = sys._getframe(1)
            watcher.exception(frame, exc)
            watcher.leave(frame)

    def line(code, number):
        if threading.get_ident() == observing:
            watcher.line(sys._getframe(1))

    callbacks = {events.PY_START: start, events.PY_RESUME: start, events.PY_RETURN: finish,
                 events.PY_YIELD: finish, events.PY_UNWIND: unwind, events.LINE: line}
    monitoring.use_tool_id(tool, "ad_magic.observe")
    try:
        for event, callback in callbacks.items():
            monitoring.register_callback(tool, event, callback)
        monitoring.set_events(tool, events.PY_START | events.PY_RESUME | events.PY_RETURN
                              | events.PY_YIELD | events.PY_UNWIND)
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
