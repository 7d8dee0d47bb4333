"""Checking the practical, question by question: ``practical.check(part, globals())``.

The practical (TP04) asks each student to write their own ``Tensor``, ``add``, ``mul``,
``trace_graph``, ``backward()``, an operation of their choice, a descent loop (also on a
function of their own) and, in Part D, ``matvec``, ``relu`` and a 2-layer MLP regression.
:func:`check` finds those names in the student's namespace, runs the practical's own
questions against them and returns a :class:`Report`: truthy when every question passes,
shown as ✓/✗ per question (HTML in a notebook, text elsewhere), with one sentence naming
what is wrong and a hint for each ✗. A part, one question (``"B3"``) or the whole
practical (``"all"``) can be checked; the questions a failure may follow from run too, so
that one mistake is reported once, where it is, and every failure it explains says
"follows from B3" (``Result.cause``). ``Result.points`` is what a question is worth.

Each question runs in a forked copy of the kernel's process (on Linux; a worker thread
elsewhere) with a time limit: the copy sees the notebook's classes as they are, whatever
the student's code changes dies with it, and once the limit has passed the copy is asked
which line it is running (SIGUSR1) and killed — so even a loop that catches
``BaseException`` is stopped, and no thread is left spinning. The copy leads its own
process group and adopts the orphans of what it starts; once its answer (one line on a
pipe) is in, the copy and everything below it are killed. A fork costs a few
milliseconds per question. Hints name what was seen: a RecursionError names the function
that called itself; code that deletes or replaces builtins is reported, and the builtins
are put back; ``os._exit`` and crashes are named, never with a hint that would end the
kernel.

The practical is the layer above the widgets: it may import the engine, drawing, the
adapters and the widgets (it uses the engine's formatting, and the adapters' observation
of a ``backward()`` for the seed, zeroing and order questions), never the magic.
The questions themselves are in :mod:`ad_magic.practical.questions`; their otter-grader
and nbgrader forms in :mod:`ad_magic.practical.exports`.
"""
from __future__ import annotations

import ast
import builtins
import dis
import faulthandler
import inspect
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
from .questions import DEEP_CHAIN, PARTS, QUESTIONS, Wrong, none_operands, where  # noqa: F401  (DEEP_CHAIN: the tests' size)

__all__ = ["check", "Report", "Result", "QuestionTimeout", "PARTS", "QUESTIONS", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 10.0      # seconds per question
WRAP = 88                   # characters per line of a report's explanation
PASS, FAIL, MISSING, TODO = "pass", "fail", "missing", "todo"
MARK = {PASS: "✓", FAIL: "✗", MISSING: "✗", TODO: "…"}


class QuestionTimeout(BaseException):
    """Raised inside the student's code when a question's time is up (a BaseException,
    so an ``except Exception`` in their loop does not swallow it)."""


class Result:
    """One question's outcome: ``status`` is pass, fail, missing (a name is not defined)
    or todo (the code raises NotImplementedError); ``message`` and ``hint`` explain a ✗.

    ``points`` is what the question is worth (earned only when it passes: ``score``);
    ``cause`` is the key of the question whose failure explains this one (``"B3"``: a
    missing seed also spoils every later gradient), or None when the mistake is here. A
    failure with a cause carries no hint of its own: the hint is given once, at the cause."""

    __slots__ = ("part", "key", "title", "status", "message", "hint", "points", "cause")

    def __init__(self, part, key, title, status, message="", hint="", points=1, cause=None):
        self.part, self.key, self.title = part, key, title
        self.status, self.message, self.hint = status, message, hint
        self.points, self.cause = points, cause

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def score(self):
        """The points earned: all of them when the question passes, else 0."""
        return self.points if self.passed else 0

    def explanation(self) -> str:
        """What is wrong, in one paragraph: the message, then the hint or what it follows from."""
        what = ("not implemented yet: " if self.status == TODO else "") + self.message
        if self.cause:
            return f"{what} (follows from {self.cause}: fix that first)" if what else \
                f"follows from {self.cause}: fix that first"
        return f"{what}; hint: {self.hint}" if self.hint else what

    def __str__(self):
        """``B3: passed``, or ``B3: failed: <explanation>`` (what an otter or nbgrader test prints)."""
        if self.passed:
            return f"{self.key}: passed"
        return f"{self.key}: {'not done' if self.status in (TODO, MISSING) else 'failed'}: {self.explanation()}"

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
        following = sum(bool(r.cause) for r in self.results if not r.passed)
        label = f"Part {self.part}" if self.part in PARTS else "The practical" if self.part == "ALL" else self.part
        text = f"{label}: {ok} of {n} passed"
        extra = ([f"{todo} not implemented yet"] * bool(todo) + [f"{missing} missing a name"] * bool(missing)
                 + [f"{following} following from an earlier mistake"] * bool(following))
        text = text + (f" ({', '.join(extra)})" if extra else "") + ("." if not self else " — well done!")
        return " ".join([text] + [f"Note: {n}." for n in self.notes])

    @property
    def score(self):
        return sum(r.score for r in self.results)

    @property
    def points(self):
        return sum(r.points for r in self.results)

    def _rows(self):
        rows = []
        for r in self.results:
            what = ("not implemented yet: " if r.status == TODO else "") + r.message
            if r.cause:
                lines = textwrap.wrap(what, WRAP) + [f"follows from {r.cause}: fix that first"]
            elif r.hint:
                lines = textwrap.wrap(what, WRAP) + textwrap.wrap(f"hint: {r.hint}", WRAP, subsequent_indent="      ")
            else:
                lines = textwrap.wrap(what, WRAP)
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
    def result(status, message="", hint=""):
        return Result(q.part, q.key, q.title, status, message, hint, q.points)
    if exc is None:
        return result(PASS)
    if isinstance(exc, Wrong):
        return result(FAIL, exc.message, exc.hint)
    if isinstance(exc, NotImplementedError):
        return result(TODO, f"your code raises NotImplementedError{where(exc)}",
                      "fill in the ### YOUR CODE HERE ### blank")
    if isinstance(exc, QuestionTimeout):
        hint = ("look for a while loop whose condition never becomes false, or a graph walk that revisits nodes "
                "(keep a set of visited ones)")
        if where_stopped:
            return result(FAIL, f"stopped after {timeout:g} s: your code was still running {where_stopped}", hint)
        return result(FAIL, f"stopped after {timeout:g} s: your code did not finish", hint)
    if isinstance(exc, RecursionError):
        caller = _recursing(exc)
        if caller is not None:
            name, line = caller
            return result(FAIL, f"RecursionError: your function {name} (line {line}) calls itself once per node, and "
                          "Python stops at about 1,000 nested calls",
                          q.on_recursion or "use a loop with an explicit stack (a list you push and pop) instead "
                                            "of a function that calls itself")
        return result(FAIL, f"RecursionError{where(exc)}: maximum recursion depth exceeded",
                      "a function calls itself without end: look for a call that does not bring it closer to a "
                      "case that returns")
    if isinstance(exc, KeyboardInterrupt):
        return result(FAIL, "interrupted", "run the check again")
    if isinstance(exc, SystemExit):
        return result(FAIL, f"your code called exit(){where(exc)}",
                      "remove the call to exit() or sys.exit(): it would stop the notebook's kernel")
    hint = q.on_error or ("print the values that line uses to find the one that is not what you expect"
                          if where(exc) else "run the question's code in a cell to see the full traceback")
    if isinstance(exc, TypeError) and "unhashable" in str(exc):
        hint = ("a class that defines __eq__ loses Python's default __hash__, so its tensors cannot go in a "
                "set: add __hash__ = object.__hash__ to the class (or do not define __eq__)")
    elif isinstance(exc, TypeError) and "NoneType" in str(exc):
        seen = none_operands(exc)
        if seen:
            hint = (f"{seen} was None there: a grad is None until something sets it, so backward() must set "
                    "every node's grad to zero (np.zeros_like(node.data)) before it runs the rules, and the "
                    "output's grad to ones")
    return result(FAIL, f"your code raised {type(exc).__name__}: {exc}{where(exc)}", hint)


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
                  "never del or assign names of the builtins module; give your own functions their own names",
                  q.points)


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


_REAL_EXIT = os._exit
_PR_SET_CHILD_SUBREAPER = 36       # prctl option (Linux): orphans of the copy's children stay its descendants


def _send(fd, fields):
    """One message from the question's copy to the checker: a line of JSON."""
    data = (json.dumps(fields) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _linger():
    """The copy, once it has answered, waits to be killed: alive, it keeps whatever the
    student's code started as its descendants, so the checker finds and ends them all."""
    while True:
        try:
            signal.pause()
        except BaseException:
            pass


def _become_reaper():
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except Exception:       # not Linux, or no libc: the process group still catches most
        pass


def _in_a_process(q, ns, timeout):
    """Run the question in a forked copy of this process (it sees the notebook's classes
    as they are, and whatever it changes dies with it). The copy leads its own process
    group and adopts what its children leave behind, so everything the student's code
    starts is found and killed with it. Its answer is one line on a pipe: the checker
    stops waiting as soon as that line is in (a helper process that inherited the pipe
    does not hold it up). Once the time is up the copy is asked where it is (SIGUSR1),
    then killed. Its printed output is passed on."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # fork in a process with threads (3.12+)
        pid = os.fork()
    if pid == 0:                                                # the copy: never returns
        copy = os.getpid()
        try:
            os.setpgid(0, 0)
            _become_reaper()
            faulthandler.disable()      # a crash of the student's code is reported as a finding, not dumped
            os.close(read)
            out = io.StringIO()
            sys.stdout = sys.stderr = out

            def where_now(signum, frame):
                _send(write, {"where": _student_line(frame), "printed": out.getvalue()[-4000:]})
                _linger()

            def exiting(status=0):                              # the student's os._exit
                if os.getpid() != copy:                         # a helper process the student forked
                    _REAL_EXIT(status)
                import traceback

                frames = [f for f in traceback.extract_stack()[:-1] if not _ours(f.filename)]
                line = f" (in {frames[-1].name}, line {frames[-1].lineno})" if frames else ""
                _send(write, {"exited": status if isinstance(status, int) else str(status), "line": line,
                              "printed": out.getvalue()[-4000:]})
                _linger()
            signal.signal(signal.SIGUSR1, where_now)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os._exit = exiting
            result = _answer(q, ns, timeout)
            if os.getpid() == copy:                             # (not in a helper that returned here)
                _send(write, {"status": result.status, "message": result.message, "hint": result.hint,
                              "printed": out.getvalue()[-4000:]})
        except BaseException as exc:                            # the checker's own failure: say so at once
            try:
                _send(write, {"status": FAIL, "message": f"the check of this question failed: "
                              f"{type(exc).__name__}: {exc}", "hint": ""})
            except BaseException:
                pass
        finally:
            if os.getpid() != copy:
                _REAL_EXIT(0)
            _linger()
    try:
        os.setpgid(pid, pid)        # also here: whichever of the two runs first
    except OSError:
        pass
    os.close(write)
    fields, exited, buffer, asked = None, False, b"", None
    try:
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if asked is None and now >= deadline:
                asked = now
                try:
                    os.kill(pid, signal.SIGUSR1)                # where are you? (then it waits to be killed)
                except ProcessLookupError:
                    pass
            if asked is not None and now > asked + 1.0:
                break
            ready, _, _ = select.select([read], [], [], 0.05)
            if not ready and not exited and has_exited(pid):
                exited = True                                   # it ended: what it wrote is in the pipe now
                ready, _, _ = select.select([read], [], [], 0)
            if ready:
                chunk = os.read(read, 1 << 16)
                buffer += chunk
                if b"\n" in buffer:
                    try:
                        fields = json.loads(buffer.split(b"\n", 1)[0].decode())
                    except ValueError:
                        fields = None
                    break
                if chunk:
                    continue
                exited = exited or _ending(pid)
                break                                           # end of file: nobody can write any more
            if exited:
                break
    finally:
        os.close(read)
        ended_itself = exited
        _end_process_tree(pid)          # it is not reaped yet: its pid cannot belong to another process
        status = reap(pid)
    if fields and fields.get("printed"):
        sys.stdout.write(fields["printed"])
    if not fields and asked is not None:
        return _result(q, QuestionTimeout(), timeout)           # its code kept it from saying where it was
    if not fields and not ended_itself:
        return Result(q.part, q.key, q.title, FAIL, "your code cut the check off from its answer (it closed or "
                      "took over the pipe the answer comes back on)", "leave file descriptors you did not open "
                      "alone (os.close, os.dup2)", q.points)
    if not fields:
        return _abrupt(q, status)
    if "exited" in fields:
        return Result(q.part, q.key, q.title, FAIL,
                      f"your code called os._exit({fields['exited']}){fields.get('line', '')}, which ends Python at "
                      "once", "os._exit stops the whole process without any clean-up: in the notebook it would end "
                      "the kernel and lose every variable; return from your function, or raise an exception, instead",
                      q.points)
    if "where" in fields:
        return _result(q, QuestionTimeout(), timeout, fields["where"])
    return Result(q.part, q.key, q.title, fields["status"], fields["message"], fields["hint"], q.points)


def has_exited(pid) -> bool:
    """True once the child ``pid`` has ended, without reaping it: until it is reaped its pid
    cannot be given to another process, so ending what it started (by its pid, process
    group or session) cannot hit a stranger that got the same number. (Without
    ``os.waitid``: reaped, and only then is the pid free.)"""
    if hasattr(os, "waitid"):
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    done, status = os.waitpid(pid, os.WNOHANG)     # pragma: no cover - not Linux
    if done:
        _REAPED[pid] = status
    return bool(done)


_REAPED = {}     # where waitid is missing: the status of a child reaped by has_exited


def reap(pid) -> int:
    """Wait for the child ``pid`` and return its wait status (also one has_exited reaped)."""
    if pid in _REAPED:                              # pragma: no cover - not Linux
        return _REAPED.pop(pid)
    return os.waitpid(pid, 0)[1]


def _ending(pid, patience=1.0) -> bool:
    """Whether ``pid`` ends within ``patience`` seconds (its pipe closed as it died: the
    exit follows a moment later); False: it is alive and closed the pipe."""
    end = time.monotonic() + patience
    while True:
        if has_exited(pid):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.01)


def _abrupt(q, status):
    """The Result of a copy that died without an answer: what ended it, in words."""
    if status is not None and os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        why = {"SIGSEGV": "a crash inside compiled code (a segmentation fault)",
               "SIGKILL": "killed from outside, most often because it ran out of memory",
               "SIGABRT": "an abort inside compiled code"}.get(name, "a signal it did not handle")
        return Result(q.part, q.key, q.title, FAIL, f"the process running your code was ended by {name}: {why}",
                      "this would end the notebook's kernel too: look in the code this question runs for ctypes, "
                      "os.kill, or arrays far larger than the practical needs", q.points)
    code = os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else "unknown"
    return Result(q.part, q.key, q.title, FAIL, f"the process running your code ended before it answered (exit "
                  f"status {code})", "something in your code ends the Python process (os._exit, os.abort, "
                  "os.kill of its own process): in the notebook it would end the kernel; remove it", q.points)


def _descendants(pid):
    """Process ids below ``pid`` (its children, theirs, …), read from /proc."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = []
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids.extend(int(k) for k in f.read().split())
        except OSError:
            continue
        for kid in kids:
            if kid not in found:
                found.append(kid)
                todo.append(kid)
    return found


def _end_process_tree(pid):
    """Stop, then kill, the question's copy and everything it started (its process group
    and every descendant, also one that started a session of its own)."""
    frozen = set()
    for _ in range(5):                 # freeze first, so nothing forks between the look and the kill
        found = {pid, *_descendants(pid)} - frozen
        if not found:
            break
        for p in found:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        frozen |= found
    for p in frozen:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _loop_line(frame):
    """The line of the outermost loop of ``frame``'s function around what it is running, or
    None when it runs no loop: the same line on every run, wherever in the loop the stop
    landed. The loop is found in the bytecode (a backward jump spans it); with the source at
    hand, its ``for``/``while`` line is named, else the line where its body starts."""
    at, start, end = frame.f_lasti, None, None
    for ins in dis.get_instructions(frame.f_code):
        target = ins.argval
        if ((ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs) and isinstance(target, int)
                and target < ins.offset and target <= at <= ins.offset and (start is None or target < start)):
            start, end = target, ins.offset
    if start is None:
        return None
    starts = list(dis.findlinestarts(frame.f_code))
    lines = [line for offset, line in starts if offset <= start and line is not None]
    body = lines[-1] if lines else frame.f_lineno
    spanned = {line for offset, line in starts if start <= offset <= end and line is not None} | {body}
    try:
        source, first = inspect.getsourcelines(frame.f_code)
        tree = ast.parse(textwrap.dedent("".join(source)))
    except (OSError, TypeError, SyntaxError, ValueError):
        return body
    first = max(first, 1)
    loops = [first + n.lineno - 1 for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While, ast.AsyncFor))
             and first + n.lineno - 1 <= min(spanned) <= first + (n.end_lineno or n.lineno) - 1]
    return min(loops) if loops else body


def _student_line(frame):
    """"line N of f" where the student's code was stopped: the start of the outermost loop
    it was running (so the same line on every run), else its innermost frame's line; None
    when no frame is the student's."""
    while frame is not None and _ours(frame.f_code.co_filename):     # the stop's own frames
        frame = frame.f_back
    frames = []          # the student's frames the question called, innermost first (not its callers)
    while frame is not None and not _ours(frame.f_code.co_filename):
        if "site-packages" not in frame.f_code.co_filename:
            frames.append(frame)
        frame = frame.f_back
    for f in reversed(frames):          # outermost first
        line = _loop_line(f)
        if line is not None:
            return f"line {line} of {f.f_code.co_name}"
    return f"line {frames[0].f_lineno} of {frames[0].f_code.co_name}" if frames else None


def _run(q, ns, timeout):
    missing = [n for n in q.needs if n not in ns]
    if missing:
        quoted = [f"`{n}`" for n in missing]
        names = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        return Result(q.part, q.key, q.title, MISSING,
                      f"{names} {'is' if len(missing) == 1 else 'are'} not defined",
                      "write it in its cell above and run that cell (Shift + Enter)", q.points)
    if _forkable():
        return _in_a_process(q, ns, timeout)
    return _in_a_thread(q, ns, timeout)


def _with_causes(results):
    """Mark each failure that an earlier failed question explains (``cause``: the first
    question, following ``after`` back, whose own failure has no cause); it then says only
    that. A question not written yet, or missing a name, keeps its own message."""
    by_key = {r.key: r for r in results}
    for r in results:
        if r.status != FAIL:         # passed, or not written yet (then there is nothing to follow)
            continue
        for before in QUESTIONS[r.key].after:
            earlier = by_key.get(before)
            if earlier is not None and not earlier.passed and earlier.status != MISSING:
                # What this question saw is a symptom, and its numbers may hang on the order of a set
                # in the student's code: only the cause is reported, so the report reads the same every run.
                r.cause = earlier.cause or earlier.key
                r.message, r.hint = "", ""
                break
    return results


def _needed(keys):
    """``keys`` and every question they rely on (``after``), in the practical's order."""
    wanted, todo = set(), list(keys)
    while todo:
        key = todo.pop()
        if key not in wanted:
            wanted.add(key)
            todo.extend(QUESTIONS[key].after)
    return [k for k in QUESTIONS if k in wanted]


def check(part, namespace, *, timeout: float = DEFAULT_TIMEOUT) -> Report:
    """Check one part of the practical ("A", "B", "C" or "D"), one question ("B3") or the
    whole practical ("all") against the student's code in ``namespace`` (pass
    ``globals()``); returns a Report (truthy when all pass). The questions a failure may follow from are run too, also
    from earlier parts, so that a mistake is reported once, where it is."""
    key = str(part).strip().upper() if isinstance(part, str) else part
    if key not in PARTS and key not in QUESTIONS and key != "ALL":
        raise ValueError(f"unknown part {part!r}: the practical has parts {', '.join(PARTS)} "
                         f"(or name one question, e.g. 'B3', or 'all').")
    if not hasattr(namespace, "__contains__") or not hasattr(namespace, "__getitem__"):
        raise TypeError(f"check needs the namespace holding your code (pass globals()), got "
                        f"{type(namespace).__name__}.")
    if isinstance(timeout, bool) or not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    changed = _builtins_changed()        # the notebook deleted or replaced builtins before the check
    shown = list(QUESTIONS) if key == "ALL" else [q.key for q in PARTS[key]] if key in PARTS else [key]
    results = _with_causes([_run(QUESTIONS[k], namespace, timeout) for k in _needed(shown)])
    report = Report(key, [r for r in results if r.key in shown])
    if changed:
        first = QUESTIONS[shown[0]]
        report.notes.append(_builtins_result(first, changed).message.replace("your code", "your notebook"))
    return report
