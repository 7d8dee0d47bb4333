"""Checking the practical, question by question: ``practical.check(part, globals())``.

The practical (TP04) asks each student to write their own ``Tensor``, ``add``, ``mul``,
``trace_graph``, ``backward()``, a descent loop and, in Part D, ``matvec`` and ``relu``.
:func:`check` finds those names in the student's namespace, runs the practical's own
questions against them and returns a :class:`Report`: truthy when every question passes,
shown as ✓/✗ per question (HTML in a notebook, text elsewhere), with one sentence naming
what is wrong and a hint for each ✗.

Each question runs in a worker thread of its own with a time limit. The thread traces
only itself (``sys.settrace`` called inside it applies to that thread alone) and, once
the limit has passed, raises :class:`QuestionTimeout` into the student's code at its next
line: an endless loop stops cleanly and nothing process-wide (the recursion limit, signal
handlers, other threads) is touched. A subprocess would isolate more but cannot see
classes defined in a notebook without pickling them, and ``fork`` in a kernel with live
threads can deadlock. Deep recursion ends in Python's own ``RecursionError``, reported
with a hint.
"""
from __future__ import annotations

import sys
import textwrap
import threading
import time

from .formatting import escape, html_table, text_table
from .practical_questions import DEEP_CHAIN, PARTS, Wrong, where  # noqa: F401  (DEEP_CHAIN: the tests' size)

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
        return text + (f" ({', '.join(extra)})" if extra else "") + ("." if not self else " — well done!")

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

def _limited(function, timeout):
    """Run ``function()`` in a worker thread that raises QuestionTimeout into itself once
    ``timeout`` seconds have passed; returns (value, exception)."""
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
            box["value"] = function()
        except BaseException as exc:   # the student's error (or the time limit) is the question's answer
            box["error"] = exc
        finally:
            sys.settrace(None)

    worker = threading.Thread(target=work, name="practical-check", daemon=True)
    worker.start()
    worker.join(timeout + 5.0)
    if worker.is_alive():              # the student's code swallowed the stop: leave it, say so
        return None, QuestionTimeout()
    return box.get("value"), box.get("error")


def _run(q, ns, timeout):
    missing = [n for n in q.needs if n not in ns]
    if missing:
        quoted = [f"`{n}`" for n in missing]
        names = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        return Result(q.part, q.key, q.title, MISSING,
                      f"{names} {'is' if len(missing) == 1 else 'are'} not defined",
                      "write it in its cell above and run that cell (Shift + Enter)")
    _, exc = _limited(lambda: q.function(ns), timeout)
    if exc is None:
        return Result(q.part, q.key, q.title, PASS)
    if isinstance(exc, Wrong):
        return Result(q.part, q.key, q.title, FAIL, exc.message, exc.hint)
    if isinstance(exc, NotImplementedError):
        return Result(q.part, q.key, q.title, TODO, f"your code raises NotImplementedError{where(exc)}",
                      "fill in the ### YOUR CODE HERE ### blank")
    if isinstance(exc, QuestionTimeout):
        return Result(q.part, q.key, q.title, FAIL, f"stopped after {timeout:g} s: your code seems to loop forever",
                      "look for a while loop whose condition never becomes false, or a graph walk that "
                      "revisits nodes (keep a set of visited ones)")
    if isinstance(exc, RecursionError):
        return Result(q.part, q.key, q.title, FAIL, f"RecursionError{where(exc)}: maximum recursion depth exceeded",
                      q.on_error or "a function calls itself without end, or for every node of a deep graph; "
                                    "use a loop with an explicit stack")
    hint = q.on_error or "run the question's code in a cell to see the full traceback"
    if isinstance(exc, TypeError) and "unhashable" in str(exc):
        hint = ("a class that defines __eq__ loses Python's default __hash__, so its tensors cannot go in a "
                "set: add __hash__ = object.__hash__ to the class (or do not define __eq__)")
    return Result(q.part, q.key, q.title, FAIL, f"your code raised {type(exc).__name__}: {exc}{where(exc)}", hint)


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
    return Report(key, [_run(q, namespace, timeout) for q in PARTS[key]])
