"""Watching a graph being built: :func:`recording`.

Some graphs cannot be read from their output alone: the edges are kept on the consumers
(a node lists the nodes that *use* it), the rules are kept centrally (a tape, a
``Function`` object), or ``backward()`` erased the graph when it finished. While code
runs inside ``with recording(namespace) as seen:``, every call of the watched code (the
methods of the classes defined in ``namespace``, its functions, and the code of
``files``, e.g. a notebook cell) that *returns a new object of one of those classes* is
recorded: which call made it, from which inputs (the arguments that are objects of those
classes, also inside a tuple or list), the object's fields right after it was made (its
rule and its inputs, by reference), and the function the call defined that uses the
object (its rule, wherever the code then kept it: on a tape, in a dict). :func:`ad_magic.adapters.adapt` takes the
recording (``adapt(out, recording=seen)``) and reads from it what the objects no longer
say. ``%%autodiff`` records its cell this way.

The first call that returns an object made it (``x - y`` returning ``x + (-y)``: the
``+`` made it, from ``x`` and ``-y``); a call that returns one of its own arguments made
nothing. Watching uses ``sys.monitoring`` on Python 3.12+
(events of unwatched code are switched off after their first call) and ``sys.setprofile``
before (every call raises an event; the unwatched ones return at once). Only the thread
that entered the block is watched; a profiler set before is called as before and put back.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import sys
import sysconfig
import threading
import types

from .structure import fields_of, graph_class

__all__ = ["recording", "Recording", "Made", "Replay"]

_LIBRARIES = ("ad_magic", "numpy", "IPython", "ipykernel", "ipywidgets", "torch", "builtins", "matplotlib")


@dataclasses.dataclass(frozen=True)
class Made:
    """How one object was made: by ``call`` (a qualified name, ``Tensor.__mul__``), on
    ``owner`` (the class or object the call was made on when it is not a node:
    ``Mul`` of ``Mul.apply``), from ``inputs`` (in argument order), with ``fields`` (the
    object's fields right after, by reference)."""

    node: object
    inputs: tuple
    call: str
    owner: str | None
    fields: dict
    rule: object = None     # a function the call defined that uses the object (its rule, kept on a tape)


class Recording:
    """What a :func:`recording` block saw: ``made(obj)`` is the :class:`Made` record of
    ``obj`` (None when no watched call returned it). The recording keeps every object it
    recorded alive, so it is meant for the length of one cell."""

    def __init__(self, modules, files):
        self.modules, self.files = frozenset(modules), frozenset(files)
        self.active = bool(self.modules)
        self._made = {}
        self._replays = {}        # id(node) -> [Replay], innermost first
        self._positions, self._positions_of = {}, 0     # position of each made object, for len(_made) objects

    def made(self, obj):
        record = self._made.get(id(obj))
        return record if record is not None and record.node is obj else None

    def position(self, obj):
        """When ``obj`` was made among the objects the recording saw being made (0 first), or
        None: the order the cell built them in, which a set of parents forgets."""
        if self._positions_of != len(self._made):
            self._positions = {key: i for i, key in enumerate(self._made)}
            self._positions_of = len(self._made)
        i = self._positions.get(id(obj))
        return i if i is not None and self._made[id(obj)].node is obj else None

    def nodes(self):
        """Every object seen: those made by a watched call, and their inputs."""
        seen = {}
        for made in self._made.values():
            for obj in (made.node, *made.inputs):
                seen.setdefault(id(obj), obj)
        return list(seen.values())

    def __len__(self):
        return len(self._made)

    def __repr__(self):
        return f"<Recording: {len(self._made)} objects made by watched calls>"

    # -- what the tracer calls
    def _is_node(self, value) -> bool:
        # an instance of a watched class (functions, classes and modules are instances of builtins)
        return type(value).__module__ in self.modules

    def replays(self, obj) -> list:
        """Every watched call seen returning ``obj``, as a :class:`Replay`, outermost first
        (``x * y`` calling a helper that builds the node: ``__mul__``, then the helper)."""
        made = self.made(obj)
        return list(reversed(self._replays.get(id(obj), ()))) if made is not None else []

    def returned(self, frame, value):
        if value is None or not self._is_node(value):
            return
        known = self._made.get(id(value))
        if known is not None and known.node is not value:
            known = None
        code = frame.f_code
        count = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & inspect.CO_VARARGS)
        try:
            local = frame.f_locals
        except Exception:
            return
        inputs, owner = [], None
        for index, name in enumerate(code.co_varnames[:count]):
            arg = local.get(name)
            items = arg if isinstance(arg, (tuple, list)) else (arg,)
            for item in items:
                if item is value:
                    return            # handed back what it was given (a helper lifting a number): not made here
                if self._is_node(item):
                    inputs.append(item)
            if index == 0 and arg is not None and not self._is_node(arg):
                if isinstance(arg, type):
                    owner = arg.__name__
                elif hasattr(arg, "__dict__") and not inspect.ismodule(arg):
                    owner = type(arg).__name__
        replay = Replay.of(code, frame.f_globals, local, tuple(inputs))
        if known is not None:         # an outer call handing on what an inner one made
            if replay is not None:
                self._replays.setdefault(id(value), []).append(replay)
            return
        self._made[id(value)] = Made(value, tuple(inputs), code.co_qualname if hasattr(code, "co_qualname")
                                     else code.co_name, owner, dict(fields_of(value)), _rule_of(value, local))
        self._replays[id(value)] = [replay] if replay is not None else []


@dataclasses.dataclass(frozen=True)
class Replay:
    """A watched call that returned a node, as it can be run again: its code, globals and
    closure, and its arguments as they were when it returned (by reference). Calling it
    (:meth:`run`) runs the student's forward operation once more on the same objects:
    ``numeric.py`` does so in a forked copy of the process, with one input's data
    perturbed, to measure the derivative of an op ad_magic's registry does not know."""

    code: object
    globals: dict
    positional: tuple         # the values of the positional parameters, in order
    varargs: tuple
    keywords: dict            # keyword-only parameters and **kwargs
    free: tuple               # the closure's values, in co_freevars order
    inputs: tuple             # the node arguments (as in Made.inputs)

    @classmethod
    def of(cls, code, globals_, local, inputs):
        if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
            return None
        names = code.co_varnames
        n, k = code.co_argcount, code.co_kwonlyargcount
        try:
            positional = tuple(local[name] for name in names[:n])
            keywords = {name: local[name] for name in names[n:n + k]}
            at = n + k
            varargs = ()
            if code.co_flags & inspect.CO_VARARGS:
                varargs = tuple(local[names[at]])
                at += 1
            if code.co_flags & inspect.CO_VARKEYWORDS:
                keywords.update(local[names[at]])
            free = tuple(local[name] for name in code.co_freevars)
        except (KeyError, TypeError):     # a parameter deleted, or a closure cell still empty
            return None
        return cls(code, globals_, positional, varargs, keywords, free, inputs)

    @property
    def name(self) -> str:
        return getattr(self.code, "co_qualname", self.code.co_name)

    def run(self):
        """Call it again (on the objects as they are now); returns what it returns."""
        function = types.FunctionType(self.code, self.globals, self.code.co_name, None,
                                      tuple(types.CellType(v) for v in self.free) or None)
        return function(*self.positional, *self.varargs, **self.keywords)


def _rule_of(value, local):
    """A function the call defined whose closure holds ``value``: the rule it made for it,
    wherever it was then kept (a tape, a dict, the node itself)."""
    for candidate in local.values():
        if inspect.isfunction(candidate) and candidate.__closure__:
            for cell in candidate.__closure__:
                try:
                    held = cell.cell_contents
                except ValueError:
                    continue
                if held is value:
                    return candidate
    return None


def _library_file(path) -> bool:
    if not path or path.startswith("<"):
        return False
    path = os.path.abspath(path)
    roots = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.prefix, sys.base_prefix}
    return any(r and path.startswith(os.path.abspath(r) + os.sep) for r in roots)


def _user_module(name) -> bool:
    if not isinstance(name, str) or name.split(".")[0] in _LIBRARIES:
        return False
    module = sys.modules.get(name)
    return not _library_file(getattr(module, "__file__", None))


def _watched(namespace, files, expect_classes):
    """(the modules whose objects are nodes, the files whose code is watched)."""
    modules, watched = set(), {f for f in files if f}
    own = (namespace or {}).get("__name__")
    for value in list((namespace or {}).values()):
        if isinstance(value, type) and (value.__module__ == own or _user_module(value.__module__)) \
                and graph_class(value):
            modules.add(value.__module__)
            for member in vars(value).values():
                function = getattr(member, "__func__", member)
                function = getattr(function, "fget", function)
                code = getattr(function, "__code__", None)
                if code is not None:
                    watched.add(code.co_filename)
        elif inspect.isfunction(value) and _user_module(value.__module__):
            watched.add(value.__code__.co_filename)
        elif inspect.ismodule(value) and _user_module(value.__name__) and getattr(value, "__file__", None):
            modules.add(value.__name__)          # `import myops`: its functions and classes
            watched.add(value.__file__)
    if expect_classes and isinstance(own, str):
        modules.add(own)          # classes the watched code defines as it runs
    return modules, watched


@contextlib.contextmanager
def recording(namespace=None, *, files=(), expect_classes=False):
    """Record, while the block runs, which watched call made which object from which
    inputs (see the module doc). ``namespace``: the user's variables (a notebook's
    ``globals()``), whose classes and functions are watched; ``files``: more code to
    watch (a cell's file name); ``expect_classes``: that code defines the classes itself.
    Yields a :class:`Recording`. Only classes that may make a graph are watched (with
    arithmetic operators, a forward or backward, or dataclasses); with none, it watches
    nothing and costs nothing."""
    modules, watched = _watched(namespace, files, expect_classes)
    seen = Recording(modules, watched)
    if not seen.active:
        yield seen
        return
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        with _monitored(monitoring, seen):
            yield seen
    else:
        with _profiled(seen):
            yield seen


@contextlib.contextmanager
def _profiled(seen):
    files, returned = seen.files, seen.returned
    previous = sys.getprofile()

    def profile(frame, event, arg):
        if event == "return" and frame.f_code.co_filename in files:
            returned(frame, arg)
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(previous)


@contextlib.contextmanager
def _monitored(monitoring, seen):     # Python 3.12+
    tool = next((i for i in range(6) if monitoring.get_tool(i) is None), None)
    if tool is None:                  # every tool id taken (debuggers, coverage…): fall back
        with _profiled(seen):
            yield
        return
    files, returned, event = seen.files, seen.returned, monitoring.events.PY_RETURN
    recording_thread = threading.get_ident()   # monitoring sees every thread, setprofile one

    def on_return(code, offset, value):
        if code.co_filename not in files:
            return monitoring.DISABLE
        if threading.get_ident() != recording_thread:    # not DISABLE: that is for every thread
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_code is not code:
            frame = frame.f_back
        if frame is not None:
            returned(frame, value)
        return None

    monitoring.use_tool_id(tool, "ad_magic.recording")
    try:
        monitoring.register_callback(tool, event, on_return)
        monitoring.restart_events()
        monitoring.set_events(tool, event)
        yield
    finally:
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, event, None)
        monitoring.free_tool_id(tool)
