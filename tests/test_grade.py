"""``ad-magic grade``: a folder of submissions graded each in its own process, into
grades.csv, Gradescope's results, feedback pages and a class report — the same bytes on
every run, and an endless loop costing a row's points, never the other rows."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from grading_fixtures import ENDLESS_BACKWARD, ENDLESS_DEMO, filled_notebook, script
from practical_solutions.mistakes import MISTAKES

from ad_magic.practical import PARTS
from ad_magic.practical.cli import main
from ad_magic.practical.grade import find_submissions, grade
from ad_magic.practical.gradebook import SubmissionGrade, feedback_html, gradescope_json, result_fields, write_csv
from ad_magic.practical.submission import (
    StableHashes,
    SubmissionTimeout,
    plan_statements,
    question_limit,
    run_limited,
)

ROOT = Path(__file__).resolve().parents[1]
KEYS = [q.key for questions in PARTS.values() for q in questions]
OVERWRITE = next(m for m in MISTAKES if m[0] == "grads overwritten instead of accumulated")
# Limits for submissions that never loop: generous, so that a machine shared with other work
# never stops a question that would have finished (a stop would change the grade).
AMPLE = {"timeout": 600, "question_timeout": 60, "cell_timeout": 30}

# Gradescope's results.json, as its autograder documentation describes it (the fields we write).
GRADESCOPE_SCHEMA = {
    "type": "object", "required": ["score", "tests"],
    "properties": {
        "score": {"type": "number"}, "output": {"type": "string"},
        "tests": {"type": "array", "items": {
            "type": "object", "required": ["name", "score", "max_score", "output"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "score": {"type": "number"},
                           "max_score": {"type": "number"}, "output": {"type": "string"}}}},
    },
    "additionalProperties": False,
}


def _rows(out):
    with open(out / "grades.csv", newline="", encoding="utf-8") as file:
        return {row["submission"]: row for row in csv.DictReader(file)}


def _outputs(out) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A correct notebook, a correct .py, and the notebook with mul's rule overwriting grads, graded once."""
    folder = tmp_path_factory.mktemp("submissions")
    filled_notebook(folder / "alice.ipynb")
    script(folder / "bob.py")
    filled_notebook(folder / "carol.ipynb", replace=OVERWRITE[1:3])
    out = tmp_path_factory.mktemp("graded")
    grades = grade([folder], out, jobs=2, **AMPLE)
    return SimpleNamespace(folder=folder, out=out, grades=grades)


def test_a_correct_notebook_and_a_correct_script_get_full_marks(graded):
    rows = _rows(graded.out)
    assert list(rows) == ["alice", "bob", "carol"]
    assert list(rows["alice"]) == ["submission", *KEYS, "total", "max"]
    for name in ("alice", "bob"):
        assert rows[name]["total"] == rows[name]["max"] == str(len(KEYS)), rows[name]
        assert all(rows[name][k] == "1" for k in KEYS)
    assert all(g.problem is None for g in graded.grades)


def test_a_mistake_loses_points_in_its_part_and_its_feedback_shows_the_hint_and_the_graph(graded):
    row = _rows(graded.out)["carol"]
    assert row[OVERWRITE[4]] == "0" and int(row["total"]) < len(KEYS)
    assert all(row[k] == "1" for k in KEYS if k.startswith("A"))
    page = (graded.out / "feedback" / "carol.html").read_text(encoding="utf-8")
    carol = next(g for g in graded.grades if g.name == "carol")
    for r in carol.results:         # a failure another one explains says so instead of a hint of its own
        if r["cause"]:
            assert f"follows from {r['cause']}: fix that one first" in page
    hint = next(r["hint"] for r in carol.results if r["key"] == OVERWRITE[4])
    assert OVERWRITE[5] in hint
    assert "hint: " + hint.replace("'", "&#x27;") in page
    assert "your graph of y = x·x + 5·x − 1" in page and page.count("<svg") == 1     # Part B's picture only
    rows = {row[0]: row for row in carol.pictures["B"]["rows"]}
    assert rows["x.grad"][2:] == ["9.0", False] and rows["y.data"][1:] == ["13.0", "13.0", True]
    assert '<tr class="fail"><td class="mark">✗</td><td class="key">x.grad</td>' in page
    assert "<svg" not in (graded.out / "feedback" / "alice.html").read_text(encoding="utf-8")


def test_the_results_are_gradescope_s_format(graded):
    jsonschema = pytest.importorskip("jsonschema")
    for name in ("alice", "bob", "carol"):
        data = json.loads((graded.out / "results" / f"{name}.json").read_text(encoding="utf-8"))
        jsonschema.validate(data, GRADESCOPE_SCHEMA)
        assert [t["name"].split()[0] for t in data["tests"]] == KEYS
        assert data["score"] == sum(t["score"] for t in data["tests"]) == float(_rows(graded.out)[name]["total"])


def test_the_report_plots_the_pass_rate_and_counts_the_hints(graded):
    report = (graded.out / "report.html").read_text(encoding="utf-8")
    assert "<svg" in report and "passed (% of submissions)" in report
    assert "Misconceptions" in report and OVERWRITE[5] in report and "carol" in report
    assert "Submissions that timed out or crashed</h2>\n<p>None.</p>" in report


def test_grading_the_same_files_again_writes_the_same_bytes(graded, tmp_path):
    again = tmp_path / "again"
    grade([graded.folder / "carol.ipynb", graded.folder / "bob.py", graded.folder / "alice.ipynb"], again, jobs=1,
          **AMPLE)
    first, second = _outputs(graded.out), _outputs(again)
    assert list(first) == list(second)
    for name in first:
        assert first[name] == second[name], name


def test_an_nbconvert_script_with_get_ipython_lines_gets_full_marks(tmp_path):
    nbconvert = pytest.importorskip("nbconvert")
    text, _ = nbconvert.PythonExporter().from_filename(str(filled_notebook(tmp_path / "nb.ipynb")))
    assert "get_ipython().run_line_magic('load_ext', 'ad_magic')" in text
    assert "get_ipython().run_cell_magic('autodiff'" in text
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "dave.py").write_text(text, encoding="utf-8")
    grades = grade([tmp_path / "in"], tmp_path / "out", **AMPLE)
    assert grades[0].total == grades[0].max == len(KEYS), grades[0].results
    assert not any("get_ipython" in note for note in grades[0].notes), grades[0].notes


def test_endless_loops_in_a_demo_and_in_backward_cost_that_row_only(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    filled_notebook(folder / "erin.ipynb", replace=("backward", ENDLESS_BACKWARD), after=("tensor", ENDLESS_DEMO))
    script(folder / "frank.py")
    grades = {g.name: g for g in grade([folder], tmp_path / "out", timeout=25, question_timeout=1,
                                       cell_timeout=0.5, jobs=2)}
    erin, frank = grades["erin"], grades["frank"]
    # frank's row is complete: on a machine busy with other work a question of his may still
    # meet the 0.5 s this test gives each, and then only that
    assert frank.problem is None and [r["key"] for r in frank.results] == KEYS
    assert all(r["status"] == "pass" or r["message"].startswith("stopped after") for r in frank.results)
    earned = {r["key"]: r for r in erin.results}
    assert list(earned) == KEYS
    assert all(earned[k]["status"] == "pass" for k in KEYS if k.startswith("A")), erin.results
    stopped = earned["B3"]["message"]       # by its own limit, or (on a busy machine) by the submission's
    assert re.match(r"stopped after [\d.]+ s: your code was still running line \d+ of backward", stopped) \
        or stopped.startswith("not graded: the submission was stopped at its limit of 25 s"), stopped
    assert "cell 3 (line 2) was stopped after 0.5 s (a demonstration: no points lost)" in erin.notes, erin.notes
    assert _rows(tmp_path / "out")["erin"]["total"] == f"{erin.total:g}" and erin.total < erin.max
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    listed = report.split("timed out or crashed")[1].split("<h2>Misconceptions")[0]
    assert "<td>erin</td>" in listed
    assert ("<td>frank</td>" in listed) == (frank.total < frank.max)


def test_a_submission_that_silences_the_limit_is_killed_at_its_own_limit_and_keeps_its_row(tmp_path):
    stubborn = ("def stubborn():\n    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                "    while True:\n        pass\n\n\nstubborn()\n")
    script(tmp_path / "gina.py", after=("tensor", stubborn))
    [gina] = grade([tmp_path / "gina.py"], tmp_path / "out", timeout=8)
    assert gina.problem.startswith("the submission was stopped at its limit of 8 s, while running the script")
    assert gina.total == 0 and len(gina.results) == len(KEYS)
    assert all(r["message"] == f"not graded: {gina.problem}" for r in gina.results)
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "gina" in report.split("Submissions that timed out or crashed")[1]


def _processes_under(folder) -> list:
    """Processes whose working directory is in ``folder`` (each submission's runs in a temporary one)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(str(folder)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_nothing_a_submission_started_outlives_its_grading(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))     # where each submission's process runs
    forks = "import os\nif os.fork() == 0:\n    os.setpgid(0, 0)\n    while True:\n        pass\n"
    script(tmp_path / "nia.py", replace=("backward", ENDLESS_BACKWARD), after=("tensor", forks))
    [g] = grade([tmp_path / "nia.py"], tmp_path / "out", timeout=4)
    assert g.problem is not None and g.problem.startswith("the submission was stopped at its limit of 4 s")
    assert _processes_under(tmp_path) == []
    assert sum(r["status"] == "pass" for r in g.results) >= 1       # what it reached before is kept


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_grading_server_stopped_early_ends_the_submissions_it_was_running(tmp_path):
    script(tmp_path / "submission.py", replace=("backward", ENDLESS_BACKWARD))
    server = subprocess.Popen([sys.executable, "-m", "ad_magic.practical.submission"], cwd=tmp_path,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    request = {"id": 0, "work": str(tmp_path), "file": "submission.py", "timeout": 300, "budget": 300,
               "question_timeout": 60, "cell_timeout": 1}
    server.stdin.write(b'{"jobs": 1}\n' + json.dumps(request).encode() + b"\n")
    server.stdin.close()
    try:
        # the server and its copy of the submission: then, most often within a second, the
        # copy's question copies (their backward loops); on a loaded machine the copy may
        # still be running the script when the server is stopped, which must end it all the same
        deadline = time.monotonic() + 180     # a condition, not a time: a loaded machine may take long
        seen = 0
        while time.monotonic() < deadline and seen < 3:
            seen = max(seen, len(_processes_under(tmp_path)))
            time.sleep(0.05)
        assert seen >= 2, f"the server never forked a copy of the submission ({seen} process(es) seen)"
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()
    deadline = time.monotonic() + 60
    while _processes_under(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_under(tmp_path) == []


def test_a_file_that_is_not_a_notebook_gets_its_row_with_the_reason(tmp_path):
    (tmp_path / "max.ipynb").write_text("{ not json", encoding="utf-8")
    [g] = grade([tmp_path / "max.ipynb"], tmp_path / "out")
    assert g.problem == ("grading failed while reading the file: ValueError: the file ends in .ipynb but is not "
                         "a notebook (its JSON does not parse)")
    assert g.total == 0 and len(g.results) == len(KEYS)


def test_python_dash_m_ad_magic_grade_runs(tmp_path):
    script(tmp_path / "ivy.py")
    done = subprocess.run([sys.executable, "-m", "ad_magic", "grade", str(tmp_path / "ivy.py"), "--out",
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1/1" in done.stderr and "graded 1 submission" in done.stderr
    assert _rows(tmp_path / "out")["ivy"]["total"] == str(len(KEYS))


def test_the_console_entry_point_grades_and_says_what_is_wrong(tmp_path, capsys):
    script(tmp_path / "jo.py")
    assert main(["grade", str(tmp_path / "jo.py"), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    assert "grading [" in capsys.readouterr().err
    assert (tmp_path / "out" / "feedback" / "jo.html").exists()
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"ad-magic": "ad_magic.practical.cli:main"}
    assert main(["grade", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"ad-magic grade: {tmp_path / 'nowhere'} does not exist."
    with pytest.raises(SystemExit):
        main(["grade", str(tmp_path / "jo.py")])
    assert "needs --out DIR" in capsys.readouterr().err


def test_the_export_flags_call_the_exports_or_say_they_are_missing(tmp_path, capsys, monkeypatch):
    import ad_magic.practical as practical

    calls = []
    fake = SimpleNamespace(write_otter=lambda d: calls.append(("otter", d)),
                           write_nbgrader=lambda d: calls.append(("nbgrader", d)))
    monkeypatch.setitem(sys.modules, "ad_magic.practical.exports", fake)
    monkeypatch.setattr(practical, "exports", fake, raising=False)
    assert main(["grade", "--export-otter", str(tmp_path / "o"), "--export-nbgrader", str(tmp_path / "n")]) == 0
    assert calls == [("otter", str(tmp_path / "o")), ("nbgrader", str(tmp_path / "n"))]
    capsys.readouterr()

    def unwritable(folder):
        raise PermissionError(13, "Permission denied", folder)
    monkeypatch.setattr(fake, "write_otter", unwritable)
    assert main(["grade", "--export-otter", "/nowhere"]) == 2
    assert capsys.readouterr().err == ("ad-magic grade: --export-otter /nowhere: [Errno 13] Permission denied: "
                                       "'/nowhere'\n")
    monkeypatch.setitem(sys.modules, "ad_magic.practical.exports", None)     # the module absent
    monkeypatch.delattr(practical, "exports")
    assert main(["grade", "--export-otter", str(tmp_path / "o")]) == 2
    assert "needs ad_magic.practical.exports" in capsys.readouterr().err


# ---------------------------------------------------------------- without a process per submission

def test_statements_that_define_run_as_code_the_rest_as_demonstrations():
    cells = [("cell 1", "%load_ext ad_magic\nimport numpy as np\nEPS = 1e-6"),
             ("cell 2", "class Tensor:\n    pass\n\nTensor.backward = lambda self: None\nx = Tensor()\nprint(x)"),
             ("cell 3", "practical.check(\"A\", globals())"),
             ("cell 4", "%%autodiff y\nx = Tensor(2.0)\ny = x * x"),
             ("cell 5", "def f(:\n    pass")]
    plan, notes = plan_statements(cells)
    assert [(label, line, kind) for label, line, kind, _ in plan] == [
        ("cell 1", 1, "demo"), ("cell 1", 2, "imports"), ("cell 1", 3, "defines"),
        ("cell 2", 1, "defines"), ("cell 2", 4, "defines"), ("cell 2", 5, "demo"), ("cell 2", 6, "demo"),
        ("cell 3", 1, "skip"), ("cell 4", 1, "demo")]
    assert notes == ["cell 5 was not run: SyntaxError on line 1: invalid syntax"]


def test_the_limit_stops_a_loop_that_swallows_every_exception():
    loop = compile("while True:\n    try:\n        pass\n    except BaseException:\n        pass\n",
                   "<submission cell 1>", "exec")
    assert isinstance(run_limited(loop, {}, 0.2), SubmissionTimeout)
    assert run_limited(compile("y = 1 + 1", "<submission cell 2>", "exec"), {}, 0.2) is None
    assert sys.gettrace() is None or "coverage" in type(sys.gettrace()).__module__


def test_a_student_class_s_objects_are_hashed_in_the_order_they_are_first_hashed():
    ns = {"__name__": "__main__"}
    exec("class Node:\n    pass\n\nclass Keyed:\n    def __hash__(self):\n        return 7\n", ns)
    hashes = StableHashes()
    hashes.adopt(ns)
    kept = ns["Node"]()
    assert hash(kept) == 0 and hash(ns["Keyed"]()) == 7 and hash(object()) != 0
    hashes.restart()
    nodes = [ns["Node"]() for _ in range(50)]
    assert [hash(n) for n in reversed(nodes)] == list(range(50)) and hash(kept) == 0
    order = [nodes.index(n) for n in set(nodes)]
    del nodes
    assert set(hashes.serials.values()) == {0}         # a dead object's number is dropped with it
    hashes.restart()
    again = [ns["Node"]() for _ in range(50)]
    assert [again.index(n) for n in set(reversed(again))] == order


def test_each_question_s_limit_depends_on_the_settings_only():
    assert question_limit(117, 25, 5) == 2.9 and question_limit(1000, 25, 5) == 5
    assert question_limit(10, 30, 5) == 0.5 and question_limit(float("inf"), 30, 5) == 5


def test_points_and_causes_are_read_once_and_shown():
    results = [SimpleNamespace(part="B", key="B3", title="nine", status="fail", message="x.grad is 4.5",
                               hint="seed with ones", points=2),
               SimpleNamespace(part="B", key="B4", title="twice", status="fail",
                               message="<Tensor object at 0x7f00dead> is wrong", hint="reset", cause="B3"),
               SimpleNamespace(part="B", key="B5", title="reused", status="pass", message="", hint="")]
    fields = [result_fields(r) for r in results]
    assert [f["points"] for f in fields] == [2.0, 1.0, 1.0] and [f["cause"] for f in fields] == [None, "B3", None]
    assert fields[1]["message"] == "<Tensor object> is wrong"
    g = SubmissionGrade("kim", "kim", fields)
    assert (g.total, g.max) == (1.0, 4.0)
    assert write_csv([g], ["B3", "B4", "B5"]) == "submission,B3,B4,B5,total,max\nkim,0,0,1,1,4\n"
    page = feedback_html(g)
    assert "follows from B3: fix that one first" in page and "hint: reset" not in page and "hint: seed" in page
    tests = json.loads(gradescope_json(g))["tests"]
    assert tests[0]["max_score"] == 2.0 and tests[1]["output"].endswith("follows from B3: fix that one first")


def test_two_files_that_would_get_one_name_are_one_clear_error(tmp_path):
    script(tmp_path / "lee.py")
    filled_notebook(tmp_path / "lee.ipynb")
    with pytest.raises(ValueError, match=r"would both be graded as 'lee'"):
        find_submissions([tmp_path])
    (tmp_path / "lee.ipynb").unlink()
    (tmp_path / "sub").mkdir()
    script(tmp_path / "sub" / "lee.py")
    assert [(s.name, s.stem) for s in find_submissions([tmp_path])] == [("lee", "lee"), ("sub/lee", "sub__lee")]
