"""The ``ad-magic`` command: ``ad-magic grade PATH... --out DIR`` (also ``python -m ad_magic grade``).

It grades notebooks and ``.py`` files (or folders of them) with :func:`ad_magic.practical.grade.grade`
and, with ``--export-otter DIR`` / ``--export-nbgrader DIR``, writes the practical's checks
as otter-grader tests or nbgrader autograder cells.
"""
from __future__ import annotations

import argparse
import sys

from .grade import CELL_TIMEOUT, QUESTION_TIMEOUT, SUBMISSION_TIMEOUT, grade

__all__ = ["main", "parser"]

BAR_WIDTH = 30


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ad-magic", description="Tools for the practical TP04 (automatic "
                                                               "differentiation from scratch).")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    g = commands.add_parser(
        "grade", help="grade a folder of submissions",
        description="Grade notebooks (.ipynb) and Python files (.py, nbconvert scripts included), or folders of "
                    "them, each in a process of its own. Writes DIR/grades.csv, DIR/results/<name>.json "
                    "(Gradescope's format), DIR/feedback/<name>.html and DIR/report.html.")
    g.add_argument("paths", nargs="*", metavar="PATH", help="a submission, or a folder searched recursively")
    g.add_argument("--out", metavar="DIR", help="the folder to write the grades into")
    g.add_argument("--timeout", type=float, default=SUBMISSION_TIMEOUT, metavar="SECONDS",
                   help=f"limit for one whole submission (default {SUBMISSION_TIMEOUT:g})")
    g.add_argument("--question-timeout", type=float, default=QUESTION_TIMEOUT, metavar="SECONDS",
                   help=f"limit per question and per statement defining something (default {QUESTION_TIMEOUT:g}; less "
                        "when the questions would not all fit in the submission's limit: an equal share of it)")
    g.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, metavar="SECONDS",
                   help=f"limit per statement that only demonstrates, e.g. a print or a drawing (default "
                        f"{CELL_TIMEOUT:g}); its errors cost no points")
    g.add_argument("--jobs", type=int, default=1, metavar="N", help="submissions graded at a time (default 1)")
    g.add_argument("--export-otter", metavar="DIR", help="write the checks as otter-grader tests into DIR")
    g.add_argument("--export-nbgrader", metavar="DIR", help="write the checks as nbgrader autograder cells into DIR")
    return top


def _progress(stream):
    def show(done, total, name):
        filled = BAR_WIDTH * done // total
        stream.write(f"\rgrading [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {name[:40]:<40}")
        if done == total:
            stream.write("\n")
        stream.flush()
    return show


def _export(kind, folder):
    try:
        from . import exports
    except ImportError:
        raise ValueError(f"--export-{kind} needs ad_magic.practical.exports, which this version of ad_magic "
                         "does not have.") from None
    try:
        getattr(exports, f"write_{kind}")(folder)
    except OSError as error:       # a folder that cannot be written, a notebook not found
        raise ValueError(f"--export-{kind} {folder}: {error}") from None


def main(argv=None) -> int:
    """Run ``ad-magic`` with ``argv`` (default: the command line); returns the exit code."""
    top = parser()
    args = top.parse_args(argv)
    if args.command != "grade":
        top.print_help(sys.stderr)
        return 2
    if not args.paths and not (args.export_otter or args.export_nbgrader):
        top.error("grade needs at least one PATH (a notebook, a .py file or a folder of them)")
    if args.paths and not args.out:
        top.error("grade needs --out DIR, the folder to write the grades into")
    try:
        for kind, folder in (("otter", args.export_otter), ("nbgrader", args.export_nbgrader)):
            if folder:
                _export(kind, folder)
                print(f"wrote the {kind} checks into {folder}", file=sys.stderr)
        if args.paths:
            grades = grade(args.paths, args.out, timeout=args.timeout, question_timeout=args.question_timeout,
                           cell_timeout=args.cell_timeout, jobs=args.jobs, progress=_progress(sys.stderr))
            stopped = sum(g.problem is not None for g in grades)
            print(f"graded {len(grades)} submission{'s' * (len(grades) != 1)}"
                  + (f" ({stopped} stopped early: see report.html)" if stopped else "")
                  + f"; wrote {args.out}/grades.csv, results/, feedback/ and report.html", file=sys.stderr)
    except ValueError as error:
        print(f"ad-magic grade: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
