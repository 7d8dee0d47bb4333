"""Each submission graded inside a process of its own, forked from a grading server
(``python -m ad_magic.practical.submission``) that has imported what submissions need once.

The grading process (:mod:`ad_magic.practical.grade`) starts the server and never runs a
student's code itself; neither does the server: each submission runs in a copy of it.
There the submission — a notebook, or a ``.py`` file, nbconvert's scripts with their
``get_ipython()`` lines included — is read statement by statement, in order:

- statements that *define* things (``def``, ``class``, assignments of the practical's
  names or of a class's attributes, constants) run with the per-question limit: they are
  the code being graded; imports too, with at least IMPORT_TIMEOUT;
- every other statement *demonstrates* (prints, draws, ``%%autodiff`` cells, loops over
  examples): it runs with a short limit, and whatever it raises costs no points;
- calls of ``practical.check`` in the notebook are skipped: grading runs it itself.

Then ``practical.check`` runs part by part on the namespace (each question in a forked
copy with its own limit), and for each part with a wrong answer the part's example is
built with the student's code and drawn, so the feedback shows the graph and grads their
code produced. Each finding is written as one JSON line to the grading process as soon as
it is known, so a submission stopped at its overall limit keeps what it reached.
"""
from __future__ import annotations

import ast
import io
import json
import math
import os
import select
import signal
import sys
import time
import weakref

import numpy as np

from ..engine.formatting import format_value
from . import PARTS, check, has_exited, reap
from .gradebook import result_fields

__all__ = ["read_cells", "plan_statements", "Limit", "SubmissionTimeout", "QuietShell", "StableHashes",
           "question_limit", "run_one", "serve", "end_session", "main"]

PRINTED_LIMIT = 64_000        # characters of the submission's printed output kept (the rest is dropped)
PICTURE_NODES = 40            # a part's example drawn only up to this many nodes
STUDENT_FILE = "<submission"  # prefix of the file name every compiled piece of the submission gets


class SubmissionTimeout(BaseException):
    """Raised into the submission's code when its limit has passed (a BaseException, so
    an ``except Exception`` in a loop does not swallow it)."""


# --------------------------------------------------------------------------- reading

def read_cells(path) -> list:
    """The submission's code as ``[(label, source)]``: a notebook's code cells ("cell 3",
    counting code cells from 1), or a ``.py`` file as one piece ("the script")."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if not path.endswith(".ipynb"):
        return [("the script", text)]
    try:
        notebook = json.loads(text)
        cells = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]
    except (ValueError, AttributeError):
        raise ValueError("the file ends in .ipynb but is not a notebook (its JSON does not parse)") from None
    pieces = []
    for n, cell in enumerate(cells, 1):
        source = cell.get("source", "")
        pieces.append((f"cell {n}", "".join(source) if isinstance(source, list) else str(source)))
    return pieces


def _practical_names() -> set:
    return {name for questions in PARTS.values() for q in questions for name in q.needs}


def _is_check_call(node) -> bool:
    """``practical.check(...)`` or ``check(...)`` as a statement of its own."""
    call = node.value if isinstance(node, ast.Expr) else None
    if not isinstance(call, ast.Call):
        return False
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr == "check") or (isinstance(f, ast.Name) and f.id == "check")


def _calls_nothing(node) -> bool:
    return not any(isinstance(n, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom)) for n in ast.walk(node))


def _kind(node, names) -> str:
    """"imports", "defines", "demo" or "skip" for one top-level statement (see the module's
    docstring); an import defines names too, but may take long on a busy machine."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "imports"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return "defines"
    if _is_check_call(node):
        return "skip"
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            for n in ast.walk(target):
                if isinstance(n, ast.Name) and n.id in names:
                    return "defines"                    # add = ..., Tensor = ...
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                    and target.value.id in names:
                return "defines"                        # Tensor.backward = backward
        if node.value is not None and _calls_nothing(node.value):
            return "defines"                            # EPS = 1e-6, a lambda, a table of constants
    return "demo"


def _python(label, source) -> str:
    """The piece as plain Python: a notebook cell's magics become ``get_ipython()`` calls,
    as IPython itself turns them."""
    if label == "the script":
        return source
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def plan_statements(cells) -> tuple:
    """``([(label, line, kind, code)], notes)``: each top-level statement compiled on its
    own (line numbers as in its cell), with its kind; a cell that does not parse is a note."""
    names = _practical_names()
    plan, notes = [], []
    for label, source in cells:
        try:
            tree = ast.parse(_python(label, source))
        except SyntaxError as error:
            notes.append(f"{label} was not run: SyntaxError on line {error.lineno}: {error.msg}")
            continue
        for node in tree.body:
            code = compile(ast.Module(body=[node], type_ignores=[]), f"{STUDENT_FILE} {label}>", "exec")
            plan.append((label, node.lineno, _kind(node, names), code))
    return plan, notes


# --------------------------------------------------------------------------- limits

def _student(frame) -> bool:
    return frame.f_code.co_filename.startswith(STUDENT_FILE)


class Limit:
    """``with Limit(seconds):`` stops the submission's code run inside it once ``seconds``
    have passed: a timer signal raises :class:`SubmissionTimeout`, and from then on every
    line of the submission's code raises it again, so a loop that catches even
    BaseException is stopped as soon as it reaches a line outside its ``try``. The main
    thread only (signals); nothing is left running afterwards."""

    def __init__(self, seconds: float):
        self.seconds, self.active, self.expired = float(seconds), False, False
        self._armed = []

    def __enter__(self):
        self._previous = signal.signal(signal.SIGALRM, self._alarm)
        self.active = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds, 0.05)    # then every 50 ms until left
        return self

    def __exit__(self, *exc):
        self.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.settrace(None)
        for frame in self._armed:
            frame.f_trace = None
        self._armed.clear()
        signal.signal(signal.SIGALRM, self._previous)
        return False

    def _alarm(self, signum, frame):
        if not self.active:
            return
        if not self.expired:
            self.expired = True
            sys.settrace(self._trace)          # frames the submission starts from now on
            while frame is not None:           # and the ones it is running
                if _student(frame):
                    frame.f_trace = self._trace
                    self._armed.append(frame)
                frame = frame.f_back
        raise SubmissionTimeout()

    def _trace(self, frame, event, arg):
        if not _student(frame):
            return None
        if self.active and self.expired:
            raise SubmissionTimeout()
        return self._trace


def run_limited(code, ns, seconds):
    """Run ``code`` in ``ns`` within ``seconds``: None, or the exception it ended with."""
    try:
        with Limit(seconds):
            exec(code, ns)
    except BaseException as error:        # the submission's error is a finding, never ours
        return error
    return None


def _where(error) -> str:
    """"line N" of the deepest frame of the submission's code in ``error``'s traceback."""
    tb, line = error.__traceback__, None
    while tb is not None:
        if _student(tb.tb_frame):
            line = tb.tb_lineno
        tb = tb.tb_next
    return "" if line is None else f" on line {line}"


# --------------------------------------------------------------------------- IPython, quietly

class QuietShell:
    """What ``get_ipython()`` returns while a submission is graded: line magics, shell
    commands and anything else asked of IPython do nothing (no ``!pip install``, no
    ``%load_ext``), and the cell magics that only wrap Python (``%%autodiff``, ``%%time``,
    ``%%capture``) run their cell as plain Python, so the names it sets exist."""

    RUN_BODY = ("autodiff", "time", "timeit", "capture", "prun")

    def __init__(self, ns):
        self._ns = ns

    def run_line_magic(self, name, line, *args, **kwargs):
        return None

    def run_cell_magic(self, name, line, cell):
        if name in self.RUN_BODY:
            exec(compile(cell, f"{STUDENT_FILE} %%{name} cell>", "exec"), self._ns)

    def system(self, command):
        return None

    def getoutput(self, command, *args, **kwargs):
        return []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


class StableHashes:
    """Hashes for the submission's own classes that do not depend on where objects live.

    A class that keeps Python's default ``__hash__`` hashes its objects by address, so a
    set of them (the practical's ``_parents``) is walked in an order that changes from run
    to run, and so may a student's grads. :meth:`adopt` gives such classes a hash that
    numbers their objects in the order they are first hashed (kept while the object lives,
    so equal objects stay equal and nothing else about the class changes); :meth:`restart`
    numbers from 0 again, so each part is checked from the same numbering whatever the
    demonstrations before it did. Classes whose objects take no weak reference keep theirs."""

    def __init__(self):
        self.serials, self.next, self.adopted = {}, 0, set()

    def adopt(self, ns):
        def stable_hash(obj):
            return self.serial(obj)

        for value in list(ns.values()):
            if isinstance(value, type) and value.__module__ == "__main__" and value not in self.adopted \
                    and value.__hash__ is object.__hash__ and value.__weakrefoffset__:
                value.__hash__ = stable_hash
                self.adopted.add(value)

    def serial(self, obj) -> int:
        key = id(obj)
        serial = self.serials.get(key)
        if serial is None:
            serial = self.serials[key] = self.next
            self.next += 1
            weakref.finalize(obj, self.serials.pop, key, None)    # its address may be used again
        return serial

    def restart(self):
        self.next = 0


class _Printed(io.TextIOBase):
    """The submission's printed output, kept up to PRINTED_LIMIT characters."""

    def __init__(self):
        self.parts, self.size = [], 0

    def writable(self):
        return True

    def write(self, text):
        if self.size < PRINTED_LIMIT:
            self.parts.append(str(text)[: PRINTED_LIMIT - self.size])
            self.size += len(self.parts[-1])
        return len(text)


# --------------------------------------------------------------------------- the part's picture

class _Snapshot:
    """A copy of one node of the student's graph, shaped as the practical's Tensor, with
    its parents in a fixed order (the student's ``_parents`` is a set of objects hashed by
    address, whose order changes from run to run): the same graph is drawn the same way."""

    def __init__(self, data, grad, parents, function):
        self.data, self.grad, self._parents, self._function = data, grad, tuple(parents), function
        self._backward = _nothing


def _nothing():
    return None


def _array(value):
    try:
        return None if value is None else np.array(value, dtype=np.float64)
    except Exception:
        return None


def snapshot(root, limit=PICTURE_NODES):
    """``(copy of root, {id(original): copy})``, parents ordered by what they hold; None
    for a graph that is not a DAG of practical-shaped nodes or has more than ``limit`` nodes."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > limit or not hasattr(node, "data"):
            return None
        stack.append((node, True))
        try:
            parents = list(getattr(node, "_parents", ()) or ())
        except TypeError:
            return None
        stack.extend((p, False) for p in parents if id(p) not in seen)
    signature, copies = {}, {}
    for node in order:                       # parents first
        parents = [p for p in (getattr(node, "_parents", ()) or ()) if id(p) in signature]
        parents.sort(key=lambda p: signature[id(p)])
        data, grad = _array(node.data), _array(getattr(node, "grad", None))
        signature[id(node)] = (str(getattr(node, "_function", None)), repr(data), repr(grad),
                               tuple(signature[id(p)] for p in parents))
        copies[id(node)] = _Snapshot(data, grad, [copies[id(p)] for p in parents], getattr(node, "_function", None))
    return copies[id(root)], copies


class Example:
    """A part's example as the practical's notebook writes it: ``source`` builds ``out``
    with the student's names (and runs their ``backward()``), ``reference`` does the same
    with ad_magic's own engine; ``names`` are the tensors the picture and the table show."""

    def __init__(self, formula, source, names, note, reference=None):
        self.formula, self.source, self.names, self.note = formula, source, names, note
        self.reference = source if reference is None else reference


_LAYER = ("W = Tensor([[1.0, 2.0, 0.5], [-1.0, 0.5, -3.0]])\nv = Tensor([1.0, 2.0, -1.0])\n"
          "out = relu(matvec(W, v))\n")
EXAMPLES = {
    "A": Example("f = x·x + 4·x + 2 at x = 3",
                 "x = Tensor(3.0)\nout = add(add(mul(x, x), mul(Tensor(4.0), x)), Tensor(2.0))\n",
                 {"x": "x", "out": "f"}, "built with your add and mul: two muls feeding two adds"),
    "B": Example("y = x·x + 5·x − 1 at x = 2",
                 "x = Tensor(2.0)\nout = add(add(mul(x, x), mul(Tensor(5.0), x)), Tensor(-1.0))\nout.backward()\n",
                 {"x": "x", "out": "y"}, "after your backward(): x.grad is 2 + 2 from x·x and 5 from 5·x"),
    "D": Example("h = relu(W @ v)", _LAYER + "out.backward()\n", {"W": "W", "v": "v", "out": "h"},
                 "after your backward(): W @ v = [4.5, 3] is positive, so the ReLU passes both rows",
                 _LAYER + "out.backward(np.ones(out.data.shape))\n"),
}


def _expected(example) -> dict:
    """The example's named tensors as ad_magic's engine computes them."""
    from .. import engine

    ns = {"np": np, "Tensor": engine.Tensor, "add": engine.add, "mul": engine.mul,
          "matvec": engine.matmul, "relu": engine.relu}
    exec(compile(example.reference, "<the practical's example>", "exec"), ns)
    return {k: ns[k] for k in example.names}


def _comparison(example, local, expected) -> list:
    """``[[what, yours, expected, same]]`` for each named tensor's data and grad."""
    rows = []
    for key, label in example.names.items():
        for field in ("data", "grad"):
            want = _array(getattr(expected[key], field))
            if want is None:
                continue
            got = _array(getattr(local[key], field, None))
            same = got is not None and got.shape == want.shape and bool(np.allclose(got, want))
            rows.append([f"{label}.{field}", "None" if got is None else format_value(got), format_value(want), same])
    return rows


def picture(part, ns, seconds):
    """``{"caption", "svg", "rows"}`` for the part's example built with the student's code
    (within ``seconds``): the graph it built, drawn, and its named tensors beside ad_magic's;
    ``{"caption"}`` alone when building it failed; None when the part has no example."""
    example = EXAMPLES.get(part)
    if example is None:
        return None
    local = dict(ns)
    error = run_limited(compile(example.source, f"{STUDENT_FILE} example>", "exec"), local, seconds)
    if error is not None:
        what = (f"it was stopped after {seconds:g} s" if isinstance(error, SubmissionTimeout)
                else f"{type(error).__name__}: {error}")
        return {"caption": f"{example.formula}, built with your code, did not finish: {what}"}
    rows = _comparison(example, local, _expected(example))
    shot = snapshot(local["out"])
    caption = f"your graph of {example.formula}, {example.note}"
    if shot is None:
        return {"caption": caption, "rows": rows}
    root, copies = shot
    labels = {copies[id(local[k])]: v for k, v in example.names.items() if id(local[k]) in copies}
    try:                          # a copy of at most PICTURE_NODES nodes: no limit needed
        from ..drawing import draw_computation_graph

        svg = draw_computation_graph(root, names=labels, rankdir="LR", modules="flat").pipe(format="svg")
    except Exception:             # no renderer, or a value the drawing cannot show: no picture
        return {"caption": caption, "rows": rows}
    text = svg.decode("utf-8")
    return {"caption": caption, "svg": text[text.find("<svg"):], "rows": rows}


# --------------------------------------------------------------------------- the process

DEMO_SHARE = 0.15     # of the submission's time, at most, for statements that only demonstrate
SHORTEST = 0.5        # seconds: a question's limit is never cut below this
IMPORT_TIMEOUT = 30.0  # seconds an import may take at least (matplotlib, the widgets: slow on a busy machine)
STOPPING = 1.0        # seconds a stopped question may take beyond its limit (asked where it was, then killed)
EXAMPLE_TIMEOUT = 2.0  # seconds for building a part's example for its picture


def question_limit(budget, questions, question_timeout) -> float:
    """Each question's limit: ``question_timeout``, or less when that many questions (and
    examples to draw) could not all run out their limits (and be stopped) in ``budget``'s
    share for them — then an equal share less STOPPING (in tenths of a second, never below
    SHORTEST). It depends on the
    settings alone, not on how long anything took, so a loop is stopped after the same
    time on every run."""
    if not math.isfinite(budget):
        return question_timeout
    share = math.floor(10 * (budget * (1 - DEMO_SHARE) / max(questions, 1) - STOPPING)) / 10
    return max(SHORTEST, min(question_timeout, share))


def grade_here(path, question_timeout, cell_timeout, emit, budget=math.inf):
    """Run the submission at ``path`` in this process and ``emit`` each finding (a dict),
    within about ``budget`` seconds in all: the statements defining things and the
    questions get :func:`question_limit` each; demonstrations ``cell_timeout`` each, and
    once as many of them have been stopped as DEMO_SHARE of the budget holds, or they have
    used that share, the remaining ones are not run."""
    limit = question_limit(budget, sum(len(qs) for qs in PARTS.values()) + len(EXAMPLES), question_timeout)
    cells = read_cells(path)
    plan, notes = plan_statements(cells)
    for note in notes:
        emit({"event": "note", "text": note})
    ns = {"__name__": "__main__", "__builtins__": __builtins__}
    ns["get_ipython"] = lambda: shell
    ns["display"] = lambda *args, **kwargs: None
    shell = QuietShell(ns)
    hashes = StableHashes()
    demo_time = DEMO_SHARE * budget
    stops_left = max(1, math.floor(demo_time / cell_timeout)) if math.isfinite(demo_time) else math.inf
    last, skipped = None, []
    for label, line, kind, code in plan:
        if kind == "skip":
            continue
        if kind == "demo" and (stops_left <= 0 or demo_time <= 0):
            skipped.append(label)
            continue
        if label != last:
            emit({"event": "stage", "where": label})
            last = label
        seconds = cell_timeout if kind == "demo" else max(limit, IMPORT_TIMEOUT) if kind == "imports" else limit
        started = time.monotonic()
        error = run_limited(code, ns, seconds)
        if kind != "demo":
            hashes.adopt(ns)
        if kind == "demo":
            demo_time -= time.monotonic() - started
            stops_left -= isinstance(error, SubmissionTimeout)
        if error is None:
            continue
        where = f"{label}, line {line}" if label == "the script" else f"{label} (line {line})"
        if isinstance(error, SubmissionTimeout):
            text = f"{where} was stopped after {seconds:g} s"
        else:
            text = f"{where} raised {type(error).__name__}: {error}{_where(error)}"
        emit({"event": "note", "text": text + (" (a demonstration: no points lost)" if kind == "demo" else "")})
    if skipped:
        names = sorted(set(skipped), key=skipped.index)
        emit({"event": "note", "text": f"the demonstrations in {', '.join(names)} were not run: the time for "
                                       "demonstrations was used up"})
    for part in PARTS:
        emit({"event": "stage", "where": f"part {part}"})
        hashes.restart()
        report = check(part, ns, timeout=limit)
        fields = [result_fields(r) for r in report]
        emit({"event": "part", "part": part, "results": fields, "notes": list(report.notes)})
        if any(f["status"] not in ("pass", "missing") and not f["cause"] for f in fields):
            hashes.restart()                   # a mistake of this part's own: show what the code built
            shown = picture(part, ns, min(limit, EXAMPLE_TIMEOUT))
            if shown is not None:
                emit({"event": "picture", "part": part, **shown})
    emit({"event": "done"})


def run_one(path, question_timeout, cell_timeout, budget, channel_fd) -> int:
    """Grade the submission at ``path`` in this process, writing findings to ``channel_fd``
    only: the submission reads nothing and prints nowhere (its output is kept, capped)."""
    channel = os.fdopen(channel_fd, "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdout = sys.stderr = _Printed()
    sys.stdin = io.StringIO()
    me = os.getpid()

    def emit(record):
        if os.getpid() != me:           # a copy the submission forked that came back into this code
            os._exit(0)
        channel.write(json.dumps(record, sort_keys=True) + "\n")
        channel.flush()

    try:
        grade_here(path, question_timeout, cell_timeout, emit, budget)
    except BaseException as error:    # our own failure: said once, as a finding
        emit({"event": "crash", "text": f"{type(error).__name__}: {error}"})
        return 1
    return 0


def end_session(session):
    """SIGKILL every process of ``session``: a submission's process leads one, and what it
    forks stays in it, even in process groups of their own (the practical's question
    copies lead theirs). Read from /proc (Linux); elsewhere the process group only."""
    for _ in range(20):                  # again while something was still forking
        found = False
        try:
            entries = [e for e in os.listdir("/proc") if e.isdigit()]
        except OSError:
            entries = []
        for entry in entries:
            try:
                with open(f"/proc/{entry}/stat", "rb") as file:
                    stat = file.read()
                state, _, _, sid = stat[stat.rfind(b")") + 2:].split()[:4]     # state ppid pgrp session
                if int(sid) == session and state not in (b"Z", b"X"):         # (not one already dead)
                    os.kill(int(entry), signal.SIGKILL)
                    found = True
            except (OSError, ValueError, IndexError):
                continue
        try:
            os.killpg(session, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if not found:
            return
        time.sleep(0.02)


class _Running:
    """One submission being graded by a forked copy of the server."""

    def __init__(self, request, pid, read):
        self.request, self.pid, self.read = request, pid, read
        self.deadline = time.monotonic() + request["timeout"]
        self.chunks, self.eof, self.ended, self.timed_out, self.returncode = [], False, None, False, None

    def end(self, exited=False):
        """The copy has exited, or its time is up: end whatever it started (it is not
        reaped before: its pid, which names its session, cannot be another process's
        yet), then reap it."""
        self.timed_out = not exited
        end_session(self.pid)
        self.returncode = os.waitstatus_to_exitcode(reap(self.pid))
        self.ended = time.monotonic()

    def finished(self) -> bool:
        # its output is complete at end of file, or (something it started escaped and still
        # holds the pipe) a while after it was ended
        return self.ended is not None and (self.eof or time.monotonic() > self.ended + 5.0)


def _start(request):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # the copy: never returns
        code = 1
        try:
            os.close(read)
            os.setsid()                              # a session of its own: ended with all it starts
            os.chdir(request["work"])
            code = run_one(request["file"], request["question_timeout"], request["cell_timeout"],
                           request["budget"], write)
        finally:
            os._exit(code)
    os.close(write)
    return _Running(request, pid, read)


def serve(requests, jobs, answer):
    """Grade each request (a dict: ``work`` folder, ``file`` in it, the limits) in a forked
    copy of this process, ``jobs`` at a time, and ``answer`` each as it finishes: its
    findings, whether it ran out of time, its exit code. One thread: the copies are forked
    from a process that runs nothing else, and has imported everything a submission needs."""
    pending, running = list(requests), {}
    try:
        _serve_all(pending, running, jobs, answer)
    finally:                                    # stopped early (SIGTERM): nothing of a copy lives on
        for job in running.values():
            if job.ended is None:
                end_session(job.pid)


def _serve_all(pending, running, jobs, answer):
    while pending or running:
        while pending and len(running) < jobs:
            job = _start(pending.pop(0))
            running[job.read] = job
        now = time.monotonic()
        for job in list(running.values()):
            if job.ended is None:
                if has_exited(job.pid):
                    job.end(exited=True)
                elif now >= job.deadline:
                    job.end()
            if job.finished():
                del running[job.read]
                os.close(job.read)
                answer({"id": job.request["id"], "output": b"".join(job.chunks).decode("utf-8", "replace"),
                        "timed_out": job.timed_out, "returncode": job.returncode})
        waiting = [fd for fd, job in running.items() if not job.eof]
        if not waiting:
            time.sleep(0.05)
            continue
        for fd in select.select(waiting, [], [], 0.05)[0]:
            data = os.read(fd, 1 << 16)
            if data:
                running[fd].chunks.append(data)
            else:
                running[fd].eof = True


def _stop(signum, frame):
    raise SystemExit(1)


def main(argv=None) -> int:
    """``python -m ad_magic.practical.submission``: the grading server ``ad-magic grade``
    starts. It reads one JSON line ``{"jobs": N}`` and then a request per line from stdin,
    and writes an answer per line to stdout as each submission finishes."""
    import ad_magic.widgets  # noqa: F401  (what the practical's notebook imports, once for every copy)

    from ..drawing import render

    render.find_dot()
    signal.signal(signal.SIGTERM, _stop)
    lines = iter(sys.stdin.buffer.readline, b"")
    jobs = json.loads(next(lines))["jobs"]
    requests = [json.loads(line) for line in lines]
    out = sys.stdout

    def answer(record):
        out.write(json.dumps(record, sort_keys=True) + "\n")
        out.flush()

    serve(requests, jobs, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
