"""The practical's questions in the graders teachers already use: otter-grader and nbgrader.

- :func:`write_otter` writes one OK-format test file per question (``tests/B3.py``, …),
  each a doctest calling :func:`ad_magic.practical.check` on the notebook's globals, worth
  the question's points. ``otter generate`` in that folder makes the autograder zip that
  ``otter run`` (locally, no Docker) or Gradescope runs; a student can also run
  ``otter.Notebook(tests_dir=…).check("B3")``.
- :func:`write_nbgrader` writes an nbgrader course folder: ``nbgrader_config.py`` and
  ``source/tp04/tp04.ipynb``, the student notebook with, after each part's check cell, one
  locked autograder cell per question (worth its points) asserting that it passes. Then
  ``nbgrader generate_assignment tp04`` and, once the notebooks are collected,
  ``nbgrader autograde tp04``.

Either way a question is scored exactly as ``practical.check`` scores it (a question whose
failure follows from another's scores 0 too, and says which).
"""
from __future__ import annotations

import json
import pprint
from pathlib import Path

from .questions import QUESTIONS

__all__ = ["write_otter", "write_nbgrader", "student_notebook", "ASSIGNMENT"]

ASSIGNMENT = "tp04"
_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "tp04_student.ipynb"


def student_notebook() -> Path:
    """The student notebook of a source checkout (``notebooks/tp04_student.ipynb``)."""
    if not _NOTEBOOK.is_file():
        raise FileNotFoundError(f"the student notebook is not at {_NOTEBOOK} (it ships with ad_magic's sources, not "
                                "its wheel): pass notebook= the path of your copy.")
    return _NOTEBOOK


def _doctest(key) -> str:
    return (">>> from ad_magic import practical\n"
            f">>> print(practical.check({key!r}, globals())[{key!r}])\n"
            f"{key}: passed\n")


def write_otter(folder) -> list:
    """Write otter-grader's OK-format test files for every question into ``folder/tests``;
    returns their paths. Each file is named after its question and worth its points."""
    tests = Path(folder) / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    written = []
    for key, q in QUESTIONS.items():
        spec = {"name": key, "points": q.points,
                "suites": [{"cases": [{"code": _doctest(key), "hidden": False, "locked": False}],
                            "scored": True, "setup": "", "teardown": "", "type": "doctest"}]}
        path = tests / f"{key}.py"
        path.write_text(f"# {key}: {q.title}\nOK_FORMAT = True\n\ntest = {pprint.pformat(spec, width=100)}\n",
                        encoding="utf-8")
        written.append(path)
    return written


def _cell(source, metadata=None, kind="code"):
    cell = {"cell_type": kind, "metadata": metadata or {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _grade_cell(key, points):
    source = (f"# {key}: {QUESTIONS[key].title}\n"
              "from ad_magic import practical\n\n"
              f"_result = practical.check({key!r}, globals())[{key!r}]\n"
              "assert _result.passed, str(_result)")
    nbgrader = {"grade": True, "grade_id": key, "locked": True, "points": points, "schema_version": 3,
                "solution": False, "task": False}
    return {**_cell(source, {"nbgrader": nbgrader}), "id": f"grade-{key}"}


def write_nbgrader(folder, notebook=None) -> Path:
    """Write an nbgrader course folder into ``folder``: ``nbgrader_config.py`` and
    ``source/tp04/tp04.ipynb`` (the student notebook, ``notebook`` or the one of this
    checkout, with a locked autograder cell per question after its part's check cell);
    returns the source notebook's path."""
    folder = Path(folder)
    source = json.loads(Path(notebook or student_notebook()).read_text(encoding="utf-8"))
    cells = []
    for cell in source["cells"]:
        cell = dict(cell)
        if cell.get("cell_type") == "code":
            cell.update(outputs=[], execution_count=None)
        cells.append(cell)
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell.get("cell_type") == "code" and text.startswith("practical.check("):
            part = text.split('"')[1]
            cells.extend(_grade_cell(key, q.points) for key, q in QUESTIONS.items() if q.part == part)
    source["cells"] = cells
    path = folder / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(source, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821  (nbgrader defines it)\n"
        f"c.CourseDirectory.course_id = {ASSIGNMENT!r}\n"
        "c.CourseDirectory.db_url = 'sqlite:///gradebook.db'\n"
        "# Student code runs once per question in a forked process with its own time limit;\n"
        "# give a whole cell of checks time to finish.\n"
        "c.ExecutePreprocessor.timeout = 300\n", encoding="utf-8")
    return path
