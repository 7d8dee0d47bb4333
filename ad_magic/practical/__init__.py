"""Checking the practical, question by question: ``practical.check(part, globals())``.

The practical (TP04) asks each student to write their own ``Tensor``, ``add``, ``mul``,
``trace_graph``, ``backward()``, a descent loop and, in Part D, ``matvec`` and ``relu``.
:func:`check` finds those names in the student's namespace, runs the practical's own
questions against them and returns a :class:`Report`: truthy when every question passes,
shown as ✓/✗ per question (HTML in a notebook, text elsewhere), with one sentence naming
what is wrong and a hint for each ✗.

Each question runs in a forked copy of the kernel's process (on Linux; a worker thread
elsewhere) with a time limit: the copy sees the notebook's classes as they are, whatever
the student's code changes dies with it, and once the limit has passed the copy is asked
which line it is running (SIGUSR1) and killed — so even a loop that catches
``BaseException`` is stopped, and no thread is left spinning. A fork costs a few
milliseconds per question. Hints
name what was seen: a RecursionError names the function that called itself; code that
deletes or replaces builtins is reported, and the builtins are put back.

The practical is the layer above the widgets: it may import the engine, drawing, the
adapters and the widgets (today it needs only the engine's formatting), never the magic.
The questions themselves are in :mod:`ad_magic.practical.questions`.
"""
from __future__ import annotations

import builtins
import io
import json
import os
import select
import signal
import sys
import textwrap
import threading
import time
import types
import warnings

from ..engine.formatting import escape, html_table, text_table
from .questions import DEEP_CHAIN, PARTS, Wrong, where  # noqa: F401  (DEEP_CHAIN: the tests' size)

__all__ = ["check", "Report", "Result", "QuestionTimeout", "PARTS", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 10.0      # seconds per question
WRAP = 88                   # characters per line of a report's explanation
PASS, FAIL, MISSING, TODO = "pass", "fail", "missing", "todo"
MARK = {PASS: "✓", FAIL: "✗", MISSING: "✗", TODO: "…"}


class QuestionTimeout(BaseException):
    """Raised inside the student's code when a question's time is up (a BaseException,
    so an ``except Exception`` in their loop does not swallow it)."""


class Result:
    """One question's outcome: ``status`` is pass, fail, missing (a name is not defined)
    or todo (the code raises NotImplementedError); ``message`` and ``hint`` explain a ✗."""

    __slots__ = ("part", "key", "title", "status", "message", "hint")

    def __init__(self, part, key, title, status, message="", hint=""):
        self.part, self.key, self.title = part, key, title
        self.status, self.message, self.hint = status, message, hint

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def __repr__(self):
        return f"Result({self.key} {MARK[self.status]} {self.title}{': ' + self.message if self.message else ''})"


class Report:
    """The results of one part: truthy when all pass; text by ``str()``, HTML in a notebook."""

    def __init__(self, part, results):
        self.part, self.results = part, list(results)
        self.notes = []            # things seen outside any one question (e.g. builtins deleted)

    def __bool__(self):
        return bool(self.results) and all(r.passed for r in self.results)

    def __len__(self):
        return len(self.results)

    def __iter__(self):
        return iter(self.results)

    def __getitem__(self, key):
        for r in self.results:
            if r.key == key:
                return r
        raise KeyError(f"part {self.part} has no question {key!r}")

    @property
    def failed(self) -> list:
        return [r for r in self.results if not r.passed]

    def summary(self) -> str:
        n, ok = len(self.results), sum(r.passed for r in self.results)
        todo = sum(r.status == TODO for r in self.results)
        missing = sum(r.status == MISSING for r in self.results)
        text = f"Part {self.part}: {ok} of {n} passed"
        extra = [f"{todo} not implemented yet"] * bool(todo) + [f"{missing} missing a name"] * bool(missing)
        text = text + (f" ({', '.join(extra)})" if extra else "") + ("." if not self else " — well done!")
        return " ".join([text] + [f"Note: {n}." for n in self.notes])

    def _rows(self):
        rows = []
        for r in self.results:
            what = ("not implemented yet: " if r.status == TODO else "") + r.message
            lines = textwrap.wrap(what, WRAP) + textwrap.wrap(f"hint: {r.hint}", WRAP, subsequent_indent="      ") \
                if r.hint else textwrap.wrap(what, WRAP)
            rows.append([r.key, MARK[r.status], r.title, "\n".join(lines)])
        return rows

    def __str__(self):
        return self.summary() + "\n" + text_table(["", "", "question", "what is wrong"], self._rows())

    def __repr__(self):
        return str(self)

    def _repr_html_(self):
        try:
            colour = "#065f46" if self else "#b91c1c"
            return (f'<div><b style="color:{colour}">{escape(self.summary())}</b>'
                    + html_table(["", "", "question", "what is wrong"], self._rows(), css_class="ad-practical-check",
                                 monospace=False) + "</div>")
        except Exception as exc:   # a repr never raises
            return f"<pre>{escape(f'report not shown: {type(exc).__name__}: {exc}')}</pre>"


# --------------------------------------------------------------------------- running

def _result(q, exc, timeout, where_stopped=None):
    """The question's Result from what its code raised (None: it passed)."""
    if exc is None:
        return Result(q.part, q.key, q.title, PASS)
    if isinstance(exc, Wrong):
        return Result(q.part, q.key, q.title, FAIL, exc.message, exc.hint)
    if isinstance(exc, NotImplementedError):
        return Result(q.part, q.key, q.title, TODO, f"your code raises NotImplementedError{where(exc)}",
                      "fill in the ### YOUR CODE HERE ### blank")
    if isinstance(exc, QuestionTimeout):
        if where_stopped:
            return Result(q.part, q.key, q.title, FAIL,
                          f"stopped after {timeout:g} s: your code was still running {where_stopped}",
                          "look for a while loop whose condition never becomes false, or a graph walk that "
                          "revisits nodes (keep a set of visited ones)")
        return Result(q.part, q.key, q.title, FAIL, f"stopped after {timeout:g} s: your code did not finish",
                      "look for a while loop whose condition never becomes false, or a graph walk that "
                      "revisits nodes (keep a set of visited ones)")
    if isinstance(exc, RecursionError):
        caller = _recursing(exc)
        if caller is not None:
            name, line = caller
            return Result(q.part, q.key, q.title, FAIL,
                          f"RecursionError: your function {name} (line {line}) calls itself once per node, and "
                          "Python stops at about 1,000 nested calls",
                          q.on_recursion or "use a loop with an explicit stack (a list you push and pop) instead "
                                            "of a function that calls itself")
        return Result(q.part, q.key, q.title, FAIL, f"RecursionError{where(exc)}: maximum recursion depth exceeded",
                      "a function calls itself without end; run the question's code in a cell to see the traceback")
    if isinstance(exc, KeyboardInterrupt):
        return Result(q.part, q.key, q.title, FAIL, "interrupted", "run the check again")
    hint = q.on_error or "run the question's code in a cell to see the full traceback"
    if isinstance(exc, TypeError) and "unhashable" in str(exc):
        hint = ("a class that defines __eq__ loses Python's default __hash__, so its tensors cannot go in a "
                "set: add __hash__ = object.__hash__ to the class (or do not define __eq__)")
    if isinstance(exc, SystemExit):
        return Result(q.part, q.key, q.title, FAIL, f"your code called exit(){where(exc)}",
                      "remove the call to exit() or sys.exit(): it would stop the notebook's kernel")
    return Result(q.part, q.key, q.title, FAIL, f"your code raised {type(exc).__name__}: {exc}{where(exc)}", hint)


def _recursing(exc):
    """(function, line) of the student's function that appears most often in the traceback
    of a RecursionError (the one calling itself), or None."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _ours(f.filename)]
    counts = {}
    for f in frames:
        counts[(f.name, f.lineno)] = counts.get((f.name, f.lineno), 0) + 1
    if not counts:
        return None
    (name, line), n = max(counts.items(), key=lambda item: item[1])
    return (name, line) if n >= 20 else None


def _ours(filename) -> bool:
    import os

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # ad_magic/
    return os.path.abspath(filename).startswith(here + os.sep)


# Builtins as Python started them: code that deletes or replaces one is reported, and it is put back.
_BUILTINS = dict(vars(builtins))


def _builtins_changed():
    """Names of builtin functions and types that are missing or replaced (and put them back)."""
    current = builtins.__dict__
    changed = []
    for name, value in _BUILTINS.items():
        if not isinstance(value, (types.BuiltinFunctionType, type)) or name in _SWAPPED:
            continue       # exit, quit, input…: site, IPython and ipykernel replace those themselves
        if current.get(name, _MISSING) is not value:
            changed.append((name, name in current))
    current.update({name: _BUILTINS[name] for name, _ in changed})
    return changed


_MISSING = object()
_SWAPPED = {"input", "raw_input", "breakpoint", "help", "exit", "quit", "display", "get_ipython"}


def _builtins_result(q, changed):
    deleted = [n for n, present in changed if not present]
    replaced = [n for n, present in changed if present]
    parts = []
    if deleted:
        parts.append(f"deleted the builtin{'s' if len(deleted) > 1 else ''} {', '.join(deleted[:5])}")
    if replaced:
        parts.append(f"replaced the builtin{'s' if len(replaced) > 1 else ''} {', '.join(replaced[:5])}")
    return Result(q.part, q.key, q.title, FAIL, f"your code {' and '.join(parts)} (ad_magic put them back)",
                  "never del or assign names of the builtins module; give your own functions their own names")


def _answer(q, ns, timeout):
    """Run question ``q`` here and now: its Result (builtins checked before and after)."""
    try:
        q.function(ns)
        exc = None
    except BaseException as error:     # the student's error is the question's answer
        exc = error
    changed = _builtins_changed()
    if changed:
        return _builtins_result(q, changed)
    return _result(q, exc, timeout)


def _in_a_thread(q, ns, timeout):
    """Where ``fork`` is missing: run in a worker thread that raises QuestionTimeout into
    the student's code at its next line once the time is up. A loop that swallows even
    that (``except BaseException``) cannot be stopped in a thread: it is reported, and the
    thread keeps its own copy of nothing else."""
    box = {}
    deadline = time.monotonic() + timeout
    count = [0]

    def tracer(frame, event, arg):
        count[0] += 1
        if count[0] % 200 == 0 and time.monotonic() > deadline:
            raise QuestionTimeout()
        return tracer

    def work():
        sys.settrace(tracer)           # this thread only
        try:
            box["result"] = _answer(q, ns, timeout)
        finally:
            sys.settrace(None)

    worker = threading.Thread(target=work, name="practical-check", daemon=True)
    worker.start()
    worker.join(timeout + 5.0)
    if worker.is_alive():
        return _result(q, QuestionTimeout(), timeout)
    return box.get("result") or _result(q, QuestionTimeout(), timeout)


def _forkable() -> bool:
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def _in_a_process(q, ns, timeout):
    """Run the question in a forked copy of this process (it sees the notebook's classes
    as they are, and whatever it changes dies with it). Once the time is up the copy is
    asked where it is (SIGUSR1), then killed: nothing keeps running, whatever the
    student's code catches. Its printed output is passed on."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # fork in a process with threads (3.12+)
        pid = os.fork()
    if pid == 0:                                                # the copy: never returns
        code = 0
        try:
            os.close(read)
            out = io.StringIO()
            sys.stdout = sys.stderr = out

            def where_now(signum, frame):
                text = _student_line(frame)
                os.write(write, json.dumps({"where": text, "printed": out.getvalue()[-4000:]}).encode())
                os._exit(3)
            signal.signal(signal.SIGUSR1, where_now)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            result = _answer(q, ns, timeout)
            fields = {"status": result.status, "message": result.message, "hint": result.hint,
                      "printed": out.getvalue()[-4000:]}
            os.write(write, json.dumps(fields).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    chunks = []
    try:
        deadline = time.monotonic() + timeout
        asked = False
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read], [], [], max(left, 0) if not asked else 1.0)
            if ready:
                chunk = os.read(read, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                continue
            if asked:
                break
            asked = True
            try:
                os.kill(pid, signal.SIGUSR1)                    # where are you? (then it exits)
            except ProcessLookupError:
                break
    finally:
        os.close(read)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    try:
        fields = json.loads(b"".join(chunks).decode() or "null")
    except ValueError:
        fields = None
    if fields and fields.get("printed"):
        sys.stdout.write(fields["printed"])
    if not fields:
        return Result(q.part, q.key, q.title, FAIL, "the check of this question stopped without an answer "
                      "(its process ended abruptly)", "run the question's code in a cell to see what happens")
    if "where" in fields:
        return _result(q, QuestionTimeout(), timeout, fields["where"])
    return Result(q.part, q.key, q.title, fields["status"], fields["message"], fields["hint"])


def _student_line(frame):
    """"line N of f" of the innermost frame of the student's code, or None."""
    while frame is not None and _ours(frame.f_code.co_filename):
        frame = frame.f_back
    inner = frame
    while frame is not None:
        if not _ours(frame.f_code.co_filename) and "site-packages" not in frame.f_code.co_filename:
            return f"line {frame.f_lineno} of {frame.f_code.co_name}"
        frame = frame.f_back
    return None if inner is None else f"line {inner.f_lineno} of {inner.f_code.co_name}"


def _run(q, ns, timeout):
    missing = [n for n in q.needs if n not in ns]
    if missing:
        quoted = [f"`{n}`" for n in missing]
        names = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        return Result(q.part, q.key, q.title, MISSING,
                      f"{names} {'is' if len(missing) == 1 else 'are'} not defined",
                      "write it in its cell above and run that cell (Shift + Enter)")
    if _forkable():
        return _in_a_process(q, ns, timeout)
    return _in_a_thread(q, ns, timeout)


def check(part, namespace, *, timeout: float = DEFAULT_TIMEOUT) -> Report:
    """Check one part of the practical ("A", "B", "C" or "D") against the student's code
    in ``namespace`` (pass ``globals()``); returns a Report (truthy when all pass)."""
    key = str(part).strip().upper() if isinstance(part, str) else part
    if key not in PARTS:
        raise ValueError(f"unknown part {part!r}: the practical has parts {', '.join(PARTS)}.")
    if not hasattr(namespace, "__contains__") or not hasattr(namespace, "__getitem__"):
        raise TypeError(f"check needs the namespace holding your code (pass globals()), got "
                        f"{type(namespace).__name__}.")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    changed = _builtins_changed()        # the notebook deleted or replaced builtins before the check
    results = [_run(q, namespace, timeout) for q in PARTS[key]]
    report = Report(key, results)
    if changed:
        report.notes.append(_builtins_result(PARTS[key][0], changed).message.replace("your code", "your notebook"))
    return report
