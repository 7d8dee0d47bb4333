"""The practical in otter-grader and nbgrader: the files ad_magic writes are what those
tools read, and where they are installed (``pip install 'ad_magic[grading]'``) their own
grading — ``otter run`` (no Docker) and ``nbgrader autograde`` — scores a class of two
exactly as ``practical.check`` does."""
from __future__ import annotations

import doctest
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from practical_solutions import namespace, sections
from practical_solutions.mistakes import MISTAKES

from ad_magic import practical
from ad_magic.practical import exports

SEEDLESS = next(m for m in MISTAKES if m[0] == "missing seed")


def _run_doctest(code, ns) -> tuple:
    test = doctest.DocTestParser().get_doctest(code, ns, "question", None, 0)
    out = []
    runner = doctest.DocTestRunner(verbose=False)
    runner.run(test, out=out.append, clear_globs=False)
    return runner.summarize(verbose=False).failed, "".join(out)


def _otter_spec(path):
    scope = {}
    exec(path.read_text(encoding="utf-8"), scope)
    assert scope["OK_FORMAT"] is True
    return scope["test"]


def test_one_ok_format_test_per_question_worth_its_points(tmp_path):
    written = exports.write_otter(tmp_path)
    assert [p.name for p in written] == [f"{key}.py" for key in practical.QUESTIONS]
    for path, (key, q) in zip(written, practical.QUESTIONS.items()):
        spec = _otter_spec(path)
        assert spec["name"] == key and spec["points"] == q.points
        assert [case["hidden"] for suite in spec["suites"] for case in suite["cases"]] == [False]


def test_the_otter_doctest_passes_on_the_solution_and_shows_the_cause_otherwise(tmp_path):
    exports.write_otter(tmp_path)
    code = _otter_spec(tmp_path / "tests" / "B6.py")["suites"][0]["cases"][0]["code"]
    assert _run_doctest(code, namespace())[0] == 0
    failed, text = _run_doctest(code, namespace(SEEDLESS[1:3]))
    assert failed == 1 and "B6: failed: follows from B3: fix that first" in text
    code = _otter_spec(tmp_path / "tests" / "B3.py")["suites"][0]["cases"][0]["code"]
    failed, text = _run_doctest(code, namespace(SEEDLESS[1:3]))
    assert failed == 1 and "the output's grad is never seeded; hint: " in text


def _grade_cells(nb):
    return [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]


def test_the_nbgrader_notebook_has_a_locked_grade_cell_per_question_after_its_part_s_check(tmp_path):
    path = exports.write_nbgrader(tmp_path)
    assert path == tmp_path / "source" / "tp04" / "tp04.ipynb"
    assert "course_id = 'tp04'" in (tmp_path / "nbgrader_config.py").read_text()
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = _grade_cells(nb)
    assert [c["metadata"]["nbgrader"]["grade_id"] for c in cells] == list(practical.QUESTIONS)
    assert all(c["metadata"]["nbgrader"]["locked"] and c["metadata"]["nbgrader"]["points"] == 1 for c in cells)
    assert len({c["id"] for c in nb["cells"]}) == len(nb["cells"])
    sources = ["".join(c["source"]) for c in nb["cells"]]
    for part in "ABCD":
        at = sources.index(f'practical.check("{part}", globals())')
        keys = [q.key for q in practical.PARTS[part]]
        assert [c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"][at + 1: at + 1 + len(keys)]
                if "nbgrader" in c["metadata"]] == keys
    ns = namespace()
    for cell in cells:
        exec(cell["source"], ns)             # the solution passes every grade cell
    seedless = namespace(SEEDLESS[1:3])
    with pytest.raises(AssertionError, match="B3: failed: y.grad was 0.0"):
        exec(next(c for c in cells if c["id"] == "grade-B3")["source"], seedless)


def test_without_a_source_checkout_the_notebook_is_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "_NOTEBOOK", tmp_path / "absent.ipynb")
    with pytest.raises(FileNotFoundError, match="pass notebook= the path of your copy"):
        exports.write_nbgrader(tmp_path)


# -- the tools themselves ------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _filled(source, target, mistake=None):
    """The notebook at ``source`` with every blank filled from the solution (one section from
    ``mistake``), as a student hands it in."""
    solution = sections()
    if mistake is not None:
        solution[mistake[1]] = mistake[2]
    nb = json.loads(Path(source).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        blank = cell.get("metadata", {}).get("practical_blank")
        if blank:
            cell["source"] = solution[blank]
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(json.dumps(nb), encoding="utf-8")


def _tool_env():
    bin_dir = str(Path(sys.executable).parent)     # nbgrader runs alembic from PATH
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}


def _run(args, cwd):
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=_tool_env(), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done


def _expected():
    return {"good": practical.check("all", namespace()).score,
            "seedless": practical.check("all", namespace(SEEDLESS[1:3])).score}


@pytest.mark.skipif(importlib.util.find_spec("otter") is None and not os.environ.get("CI"),   # CI installs it
                    reason="otter-grader is not installed (pip install 'ad_magic[grading]')")
@pytest.mark.timeout(1200)
@pytest.mark.tools
def test_otter_s_own_local_grading_scores_as_check_does(tmp_path):
    exports.write_otter(tmp_path)
    _run(["otter", "generate"], tmp_path)
    expected = _expected()
    assert expected["good"] == len(practical.QUESTIONS) > expected["seedless"]
    for name in expected:
        _filled(exports.student_notebook(), tmp_path / f"{name}.ipynb", SEEDLESS if name == "seedless" else None)
        out = tmp_path / f"out-{name}"
        out.mkdir()
        _run(["otter", "run", "-a", "autograder.zip", "-o", str(out), f"{name}.ipynb"], tmp_path)
        tests = json.loads((out / "results.json").read_text())["tests"]
        scores = {t["name"]: t["score"] for t in tests if t.get("max_score")}
        assert sorted(scores) == sorted(practical.QUESTIONS)
        assert sum(scores.values()) == expected[name], (name, scores)


@pytest.mark.skipif(importlib.util.find_spec("nbgrader") is None and not os.environ.get("CI"),
                    reason="nbgrader is not installed (pip install 'ad_magic[grading]')")
@pytest.mark.timeout(1200)
@pytest.mark.tools
def test_nbgrader_autograde_scores_as_check_does(tmp_path):
    exports.write_nbgrader(tmp_path)
    _run(["nbgrader", "generate_assignment", "tp04", "--force"], tmp_path)
    expected = _expected()
    release = tmp_path / "release" / "tp04" / "tp04.ipynb"
    for name in expected:
        _filled(release, tmp_path / "submitted" / name / "tp04" / "tp04.ipynb",
                SEEDLESS if name == "seedless" else None)
    _run(["nbgrader", "autograde", "tp04", "--create"], tmp_path)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gradebook:
        for name, score in expected.items():
            submission = gradebook.find_submission("tp04", name)
            assert (submission.score, submission.max_score) == (score, len(practical.QUESTIONS)), name
