"""Grading a folder of submissions: :func:`grade` (what ``ad-magic grade`` runs).

Each submission is graded in a process of its own (:mod:`ad_magic.practical.submission`),
never in this one, with ``PYTHONHASHSEED=0`` and nothing of this run in its environment
that could change its answers. The grading process only reads what that process reports,
one JSON line per finding as soon as it is known, and kills the process (and whatever it
started) at the submission's overall limit: the parts reached are scored, the others get 0
with the reason. ``jobs`` submissions run at a time; results are sorted by submission, so
the order in which they finish changes nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from . import PARTS
from .gradebook import (
    SubmissionGrade,
    feedback_html,
    gradescope_json,
    report_html,
    result_fields,
    without_addresses,
    write_csv,
)

__all__ = ["grade", "find_submissions", "grade_submission", "write_outputs", "Submission", "SUFFIXES",
           "SUBMISSION_TIMEOUT", "QUESTION_TIMEOUT", "CELL_TIMEOUT"]

SUFFIXES = (".ipynb", ".py")
SUBMISSION_TIMEOUT = 120.0    # seconds for one whole submission
QUESTION_TIMEOUT = 5.0        # seconds per question and per statement that defines something (at most)
CELL_TIMEOUT = 2.0            # seconds per statement that only demonstrates (a print, a drawing)
STARTUP = 3.0                 # seconds of a submission's limit kept for starting its process and drawing
_SKIPPED_FOLDERS = {".ipynb_checkpoints", "__pycache__", ".git"}


class Submission:
    """A file to grade: ``name`` (its path under the folder given, without suffix),
    ``stem`` (the name as one file name, for results/ and feedback/) and ``path``."""

    def __init__(self, name, path):
        self.name, self.path = name, Path(path)
        self.stem = name.replace("/", "__")

    def __repr__(self):
        return f"Submission({self.name!r})"


def find_submissions(paths) -> list:
    """The submissions in ``paths`` (files, or folders searched recursively), sorted by
    name. A path that does not exist, a file that is neither a notebook nor a ``.py``,
    or two files that would get the same name is a ValueError in one sentence."""
    found = {}
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise ValueError(f"{given} does not exist.")
        if root.is_file():
            if root.suffix not in SUFFIXES:
                raise ValueError(f"{given} is neither a notebook (.ipynb) nor a Python file (.py).")
            files = [(root.stem, root)]
        else:
            files = sorted((p.relative_to(root).with_suffix("").as_posix(), p) for p in root.rglob("*")
                           if p.suffix in SUFFIXES and p.is_file()
                           and not _SKIPPED_FOLDERS.intersection(p.relative_to(root).parts))
        for name, path in files:
            if name in found and found[name].resolve() != path.resolve():
                raise ValueError(f"{found[name]} and {path} would both be graded as {name!r}: "
                                 "keep one of them, or put them in folders of their own.")
            found[name] = path
    return [Submission(name, found[name]) for name in sorted(found)]


# Started by a small launcher that turns address-space randomization off for the process
# it becomes (Linux; elsewhere it just starts it): a student's code that walks a set of its
# own tensors meets them in the order of their addresses, and the same file must be graded
# the same way every time.
_LAUNCHER = """\
import ctypes, os, sys
try:
    libc = ctypes.CDLL(None)
    libc.personality(libc.personality(0xFFFFFFFF) | 0x0040000)  # ADDR_NO_RANDOMIZE
except (OSError, AttributeError):
    pass
os.execv(sys.executable, [sys.executable, "-m", "ad_magic.practical.submission", *sys.argv[1:]])
"""
_PASSED_ON = ("PATH", "HOME", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP", "AD_MAGIC_DOT")


def _child_environment() -> dict:
    """The same small environment for every submission, whatever the shell grading it has."""
    env = {k: os.environ[k] for k in _PASSED_ON if k in os.environ}
    env.update(PYTHONHASHSEED="0", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8",
               LC_ALL="C.UTF-8", LANG="C.UTF-8", PYTHONNOUSERSITE="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])     # the ad_magic being run, whatever the cwd
    return env


def _end_session(session):
    """SIGKILL every process of ``session``: the submission's process leads it, and what it
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


def _read_lines(stream, into):
    try:
        for line in stream:
            into.append(line)
    except (OSError, ValueError):        # closed after waiting long enough for the end
        pass


def grade_submission(submission, *, timeout=SUBMISSION_TIMEOUT, question_timeout=QUESTION_TIMEOUT,
                     cell_timeout=CELL_TIMEOUT) -> SubmissionGrade:
    """Grade one submission in a process of its own within ``timeout`` seconds."""
    command = [sys.executable, "-c", _LAUNCHER, f"submission{submission.path.suffix}",
               "--question-timeout", repr(float(question_timeout)), "--cell-timeout", repr(float(cell_timeout)),
               "--budget", repr(max(1.0, timeout - STARTUP))]
    with tempfile.TemporaryDirectory(prefix="ad-magic-grade-") as work:
        # a copy under a fixed name: the process sees the same file wherever it was collected
        shutil.copyfile(submission.path, Path(work) / f"submission{submission.path.suffix}")
        process = subprocess.Popen(command, cwd=work, env=_child_environment(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        lines = []
        reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), name="grade-reader", daemon=True)
        reader.start()
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _end_session(process.pid)        # what it left running, which may hold its output open
            process.wait()
            reader.join(10)
            process.stdout.close()
    output = b"".join(list(lines)).decode("utf-8", "replace")
    return _assemble(submission, output, timed_out, process.returncode, timeout)


def _assemble(submission, output, timed_out, returncode, timeout) -> SubmissionGrade:
    """The grade from the findings the submission's process reported."""
    results, notes, pictures, stage, done, crash = {}, [], {}, "reading the file", False, None
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue                                 # a line cut by the kill
        event = record.get("event")
        if event == "stage":
            where = record["where"]
            stage = f"checking {where}" if where.startswith("part ") else f"running {where}"
        elif event == "note":
            notes.append(without_addresses(record["text"]))
        elif event == "part":
            results[record["part"]] = record["results"]
            notes.extend(without_addresses(n) for n in record.get("notes", []))
        elif event == "picture":
            pictures[record["part"]] = {"caption": without_addresses(record["caption"]), "svg": record.get("svg", ""),
                                        "rows": record.get("rows", [])}
        elif event == "crash":
            crash = without_addresses(record["text"])
        elif event == "done":
            done = True
    problem = None
    if timed_out:
        problem = f"the submission was stopped at its limit of {timeout:g} s, while {stage}"
    elif crash is not None:
        problem = f"grading failed while {stage}: {crash}"
    elif not done:
        problem = f"the submission's process ended before it finished (exit code {returncode}), while {stage}"
    rows = []
    for part, questions in PARTS.items():
        if part in results:
            rows.extend(results[part])
            continue
        for q in questions:
            fields = result_fields(q)
            fields.update(status="fail", hint="", cause=None,
                          message=f"not graded: {problem or 'the submission was not run'}")
            rows.append(fields)
    return SubmissionGrade(submission.name, submission.stem, rows, notes, pictures, problem)


def question_keys(grades) -> list:
    """The questions' keys in the practical's order (then any other key a grade holds)."""
    keys = [q.key for questions in PARTS.values() for q in questions]
    for g in grades:
        keys.extend(r["key"] for r in g.results if r["key"] not in keys)
    return keys


def _write(path, text):
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_outputs(grades, out) -> dict:
    """Write grades.csv, results/*.json, feedback/*.html and report.html into ``out``;
    returns {what: path}."""
    out = Path(out)
    keys = question_keys(grades)
    written = {"grades": out / "grades.csv", "report": out / "report.html"}
    _write(written["grades"], write_csv(grades, keys))
    for g in grades:
        _write(out / "results" / f"{g.stem}.json", gradescope_json(g))
        _write(out / "feedback" / f"{g.stem}.html", feedback_html(g))
    _write(written["report"], report_html(grades, keys))
    return written


def grade(paths, out, *, timeout=SUBMISSION_TIMEOUT, question_timeout=QUESTION_TIMEOUT, cell_timeout=CELL_TIMEOUT,
          jobs=1, progress=None) -> list:
    """Grade every submission in ``paths`` into the folder ``out`` (see :func:`write_outputs`),
    ``jobs`` at a time; ``progress(done, total, name)`` is called as each one finishes.
    Returns the grades, sorted by submission."""
    for what, value in (("timeout", timeout), ("question_timeout", question_timeout),
                        ("cell_timeout", cell_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{what} must be a positive number of seconds, got {value!r}.")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of at least 1, got {jobs!r}.")
    submissions = find_submissions(paths)
    if not submissions:
        raise ValueError(f"no notebook (.ipynb) or Python file (.py) found in {', '.join(map(str, paths))}.")
    grades = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(grade_submission, s, timeout=timeout, question_timeout=question_timeout,
                               cell_timeout=cell_timeout): s for s in submissions}
        for n, finished in enumerate(as_completed(running), 1):
            grades.append(finished.result())
            if progress is not None:
                progress(n, len(submissions), running[finished].name)
    grades.sort(key=lambda g: g.name)
    write_outputs(grades, out)
    return grades
