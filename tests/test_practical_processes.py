"""What the student's code does to the process that checks it: helpers it starts are
killed with the check, os._exit and crashes are named for what they are (never with a hint
that would crash the notebook), and the same code gets the same report in every process,
whatever PYTHONHASHSEED."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from practical_solutions import namespace, sections

from ad_magic import practical

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked runner is Linux's")
ROOT = Path(__file__).resolve().parents[1]


def _alive(pid) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _gone(pids, patience=10.0) -> bool:
    end = time.monotonic() + patience         # a killed process may take a moment to be reaped
    while time.monotonic() < end:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@linux
@pytest.mark.timeout(40)      # waiting for the question's time limit (120 s) would fail here
def test_helpers_the_student_starts_are_killed_and_a_passing_answer_is_not_held_up(tmp_path):
    pids = tmp_path / "pids"
    forking = sections()["trace_graph"].replace("def trace_graph(tensor):\n", f'''def trace_graph(tensor):
    import os, subprocess, time
    child = os.fork()
    if child == 0:                      # a helper holding every file the question had open
        time.sleep(300)
        os._exit(0)
    loner = subprocess.Popen(["sleep", "300"], start_new_session=True)
    with open({str(pids)!r}, "w") as f:
        f.write(f"{{child}} {{loner.pid}}")
''')
    result = practical.check("A5", namespace(("trace_graph", forking)), timeout=120.0)["A5"]
    assert result.passed, result
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2
    assert _gone(started), [p for p in started if _alive(p)]


@linux
def test_os_exit_is_named_with_its_line_and_no_hint_that_would_end_the_kernel():
    leaving = sections()["trace_graph"].replace("def trace_graph(tensor):\n",
                                                "def trace_graph(tensor):\n    import os\n    os._exit(3)\n")
    result = practical.check("A5", namespace(("trace_graph", leaving)))["A5"]
    assert result.status == "fail"
    assert result.message == "your code called os._exit(3) (in trace_graph, line 3), which ends Python at once"
    assert "kernel" in result.hint and "in a cell" not in result.hint and "run " not in result.hint


@linux
def test_a_crash_is_named_by_its_signal_and_no_hint_that_would_end_the_kernel():
    crashing = sections()["trace_graph"].replace(
        "def trace_graph(tensor):\n",
        "def trace_graph(tensor):\n    import os, signal\n    os.kill(os.getpid(), signal.SIGSEGV)\n")
    result = practical.check("A5", namespace(("trace_graph", crashing)))["A5"]
    assert result.status == "fail"
    assert result.message == ("the process running your code was ended by SIGSEGV: a crash inside compiled code "
                              "(a segmentation fault)")
    assert "in a cell" not in result.hint and "run " not in result.hint


def test_losses_returned_as_tensors_are_accepted():
    tensors = sections()["descent"].replace("losses.append(float(loss.data))", "losses.append(loss)")
    assert tensors != sections()["descent"]
    report = practical.check("C", namespace(("descent", tensors)))
    assert report, str(report)


def test_losses_of_another_kind_say_what_was_expected():
    words = sections()["descent"].replace("losses.append(float(loss.data))", "losses.append('low')")
    result = practical.check("C1", namespace(("descent", words)))["C1"]
    assert result.message == "the loss of step 1 is 'low' (str), expected a number"
    assert result.hint == "append a float: losses.append(float(loss.data))"
    assert "TypeError" not in result.message


_GRADE = """
import sys
sys.path.insert(0, {tests!r})
from practical_solutions import namespace
from practical_solutions.mistakes import MISTAKES
from ad_magic import practical

names = {names!r}
chosen = [next(m for m in MISTAKES if m[0] == name) for name in names]
texts = [str(practical.check("all", namespace()))]
texts += [str(practical.check("all", namespace(m[1:3]), timeout=3.0)) for m in chosen]
print("\\x00".join(texts))
"""


@linux
@pytest.mark.timeout(300)
def test_the_same_code_gets_the_same_report_whatever_pythonhashseed():
    names = ["breadth-first backward", "grads overwritten instead of accumulated", "missing seed"]
    script = _GRADE.format(tests=str(ROOT / "tests"), names=names)
    reports = set()
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]
        reports.add(done.stdout)
    assert len(reports) == 1
    texts = reports.pop().split("\x00")
    assert len(texts) == 4 and "well done" in texts[0]
    assert "a's _backward ran before b1's" in texts[1] and "follows from B1" in texts[2]
    assert "follows from B3" in texts[3]


@linux
def test_code_that_ignores_the_where_are_you_signal_is_still_stopped_at_the_limit():
    deaf = sections()["trace_graph"].replace(
        "def trace_graph(tensor):\n",
        "def trace_graph(tensor):\n    import signal\n    signal.signal(signal.SIGUSR1, signal.SIG_IGN)\n"
        "    while True:\n        pass\n")
    result = practical.check("A5", namespace(("trace_graph", deaf)), timeout=0.5)["A5"]
    assert result.message == "stopped after 0.5 s: your code did not finish"
    assert "while loop" in result.hint


@linux
def test_code_that_closes_the_checker_s_pipe_is_told_so():
    closing = sections()["trace_graph"].replace("def trace_graph(tensor):\n",
                                                "def trace_graph(tensor):\n    import os\n    os.closerange(3, 4096)\n")
    result = practical.check("A5", namespace(("trace_graph", closing)))["A5"]
    assert result.message.startswith("your code cut the check off from its answer")
    assert "os.close" in result.hint
