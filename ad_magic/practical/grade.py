"""Grading a folder of submissions: :func:`grade` (what ``ad-magic grade`` runs).

Student code never runs in this process. It starts one grading server
(:mod:`ad_magic.practical.submission`: it imports what a submission needs once, then
forks a copy per submission, ``jobs`` at a time, each in a session of its own), with
``PYTHONHASHSEED=0``, address-space randomization off and the same small environment
whatever the shell, and reads back what each copy reported, one JSON line per finding as
soon as it was known. A copy still running at the submission's overall limit is killed
with everything it started: the parts reached are scored, the others get 0 with the
reason. Results are sorted by submission, so the order in which they finish changes nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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
from .submission import end_session

__all__ = ["grade", "find_submissions", "grade_submission", "write_outputs", "Submission", "SUFFIXES",
           "SUBMISSION_TIMEOUT", "QUESTION_TIMEOUT", "CELL_TIMEOUT"]

SUFFIXES = (".ipynb", ".py")
SUBMISSION_TIMEOUT = 120.0    # seconds for one whole submission
QUESTION_TIMEOUT = 5.0        # seconds per question and per statement that defines something (at most)
CELL_TIMEOUT = 2.0            # seconds per statement that only demonstrates (a print, a drawing)
STARTUP = 3.0                 # seconds of a submission's limit kept for what its other limits leave out
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


# The server is started by a small launcher that turns address-space randomization off for
# the process it becomes (Linux; elsewhere it just starts it): the same file is then run at
# the same addresses, a second guard (after StableHashes) for code whose behaviour depends
# on them.
_LAUNCHER = """\
import ctypes, os, sys
try:
    libc = ctypes.CDLL(None)
    libc.personality(libc.personality(0xFFFFFFFF) | 0x0040000)  # ADDR_NO_RANDOMIZE
except (OSError, AttributeError):
    pass
os.execv(sys.executable, [sys.executable, "-m", "ad_magic.practical.submission"])
"""
_PASSED_ON = ("PATH", "HOME", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP", "AD_MAGIC_DOT")


def _child_environment() -> dict:
    """The same small environment for every submission, whatever the shell grading it has."""
    env = {k: os.environ[k] for k in _PASSED_ON if k in os.environ}
    env.update(PYTHONHASHSEED="0", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8",
               LC_ALL="C.UTF-8", LANG="C.UTF-8", PYTHONNOUSERSITE="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])     # the ad_magic being run, whatever the cwd
    return env


def _run(submissions, timeout, question_timeout, cell_timeout, jobs, progress):
    """Grade ``submissions`` through one grading server, ``jobs`` at a time: their grades,
    in the order given."""
    limits = {"timeout": float(timeout), "question_timeout": float(question_timeout),
              "cell_timeout": float(cell_timeout), "budget": max(1.0, timeout - STARTUP)}
    grades = [None] * len(submissions)
    with tempfile.TemporaryDirectory(prefix="ad-magic-grade-") as root:
        requests = []
        for n, submission in enumerate(submissions):
            work = Path(root) / f"{n:05d}"
            work.mkdir()
            # a copy under a fixed name: the process sees the same file wherever it was collected
            file = f"submission{submission.path.suffix}"
            shutil.copyfile(submission.path, work / file)
            requests.append({"id": n, "work": str(work), "file": file, **limits})
        server = subprocess.Popen([sys.executable, "-c", _LAUNCHER], cwd=root, env=_child_environment(),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            server.stdin.write(json.dumps({"jobs": jobs}).encode() + b"\n")
            server.stdin.writelines(json.dumps(r).encode() + b"\n" for r in requests)
            server.stdin.close()
            done = 0
            for line in server.stdout:
                answer = json.loads(line)
                n = answer["id"]
                grades[n] = _assemble(submissions[n], answer["output"], answer["timed_out"], answer["returncode"],
                                      timeout)
                done += 1
                if progress is not None:
                    progress(done, len(submissions), submissions[n].name)
        finally:                            # also when this process is interrupted: the server ends its copies
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            server.stdout.close()
            end_session(server.pid)
            server.wait()
    for n, g in enumerate(grades):         # the server itself failed: said for each one it did not grade
        if g is None:
            grades[n] = _assemble(submissions[n], json.dumps({"event": "crash", "text": "the grading server "
                                  f"stopped (exit code {server.returncode})"}), False, server.returncode, timeout)
    return grades


def grade_submission(submission, *, timeout=SUBMISSION_TIMEOUT, question_timeout=QUESTION_TIMEOUT,
                     cell_timeout=CELL_TIMEOUT) -> SubmissionGrade:
    """Grade one submission in a process of its own within ``timeout`` seconds."""
    return _run([submission], timeout, question_timeout, cell_timeout, 1, None)[0]


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
    grades = _run(submissions, timeout, question_timeout, cell_timeout, jobs, progress)
    write_outputs(grades, out)
    return grades
