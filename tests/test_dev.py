"""dev.py (the README's set-up commands), pyproject.toml's extras and the notebooks' metadata."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHIPPED_NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dev(monkeypatch, tmp_path):
    """dev.py as a module, its .venv moved to a temp dir and every subprocess call recorded."""
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    venv = tmp_path / ".venv"
    monkeypatch.setattr(mod, "VENV", venv)
    monkeypatch.setattr(mod, "BIN", venv / "bin")
    monkeypatch.setattr(mod, "PY", venv / "bin" / "python")
    mod.calls = []

    def call(cmd, **kw):
        mod.calls.append([str(c) for c in cmd])
        if "venv" in cmd:
            venv.mkdir()
        return 0

    monkeypatch.setattr(mod.subprocess, "call", call)
    return mod


def test_usage_without_a_command():
    out = subprocess.run([sys.executable, str(ROOT / "dev.py")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "python3 dev.py lab" in out.stdout and "python3 dev.py test" in out.stdout
    ok = subprocess.run([sys.executable, str(ROOT / "dev.py"), "--help"], capture_output=True, timeout=60)
    assert ok.returncode == 0


def test_setup_creates_the_venv_and_installs_the_extra(dev):
    dev.setup("test")
    assert dev.calls[0][1:] == ["-m", "venv", "--clear", "--upgrade-deps", str(dev.VENV)]
    assert dev.calls[1] == [str(dev.PY), "-m", "pip", "install", "-e", ".[test]"]
    assert (dev.VENV / ".installed-test").exists()


def test_setup_is_a_no_op_while_pyproject_is_unchanged(dev):
    dev.PY.parent.mkdir(parents=True)
    dev.PY.touch()
    (dev.VENV / ".installed-lab").touch()
    dev.setup("lab")
    assert dev.calls == []
    dev.setup("bench")  # another extra is installed on its own
    assert dev.calls == [[str(dev.PY), "-c", "import pip"], [str(dev.PY), "-m", "pip", "install", "-e", ".[bench]"]]


def test_setup_stops_with_a_hint_when_venv_fails(dev, monkeypatch):
    monkeypatch.setattr(dev.subprocess, "call", lambda cmd, **kw: 1)
    with pytest.raises(SystemExit, match="python3-venv"):
        dev.setup("test")


def test_test_command_propagates_pytest_exit_code_and_fails_on_lint(dev, monkeypatch):
    """ruff and lint-imports both run; a failure of either fails the run (pytest's code first)."""
    monkeypatch.setattr(dev, "setup", lambda extra: None)
    monkeypatch.setattr(dev, "ensure_chromium", lambda: None)
    cases = [(0, 0, 0, 0), (0, 0, 5, 5), (0, 0, 1, 1), (1, 0, 0, 1), (1, 0, 2, 2), (0, 1, 0, 1), (0, 1, 3, 3)]
    for lint, layers, pytest_rc, want in cases:
        calls = []

        def call(cmd, lint=lint, layers=layers, calls=calls, **kw):
            calls.append(Path(str(cmd[0])).name)
            return {"ruff": lint, "lint-imports": layers}[calls[-1]]

        monkeypatch.setattr(dev.subprocess, "call", call)
        monkeypatch.setattr(dev, "run", lambda cmd, rc=pytest_rc, **kw: rc)
        assert dev.cmd_test(["-k", "x"]) == want, (lint, layers, pytest_rc)
        assert calls == ["ruff", "lint-imports"]


@pytest.mark.parametrize("name", SHIPPED_NOTEBOOKS)
def test_notebook_metadata_matches_the_kernel_dev_py_installs(name, dev):
    """Otherwise JupyterLab marks every notebook changed as soon as it opens. (That they are
    committed without outputs: tests/test_notebooks.py.)"""
    nb = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"] == dev.KERNEL
    assert nb["metadata"]["language_info"]["name"] == "python"


def test_extras():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "ad_magic[e2e,grading]" in extras["test"]     # the browser tests, otter-grader and nbgrader
    assert any(r.startswith("ruff") for r in extras["test"])
    assert any(r.startswith("import-linter") for r in extras["test"])   # dev.py test runs lint-imports
    assert "torch==2.13.0" in extras["bench"]  # a bare `torch` would pull a multi-GB CUDA build


def test_test_runs_on_every_core_unless_told_otherwise(dev):
    assert dev.pytest_args(["-k", "magic"]) == ["-n", "auto", "--dist", "loadgroup", "-k", "magic"]
    for own in (["-n", "0"], ["-n4"], ["--numprocesses=2"], ["-p", "no:xdist"]):
        assert dev.pytest_args(own) == own


def test_quick_leaves_out_the_browser_notebook_and_wheel_tests(dev, monkeypatch):
    assert dev.pytest_args(["--quick", "-k", "grad"])[-4:] == ["-k", "grad", "-m", dev.QUICK]
    assert dev.pytest_args(["--quick", "-m", "not slow", "-n", "0"]) == [
        "-m", f"(not slow) and {dev.QUICK}", "-n", "0"]
    assert all(m in dev.QUICK for m in ("not e2e", "not notebooks", "not wheel", "not tools"))
    # and it does not install a browser
    monkeypatch.setattr(dev, "setup", lambda extra: None)
    monkeypatch.setattr(dev, "ensure_chromium", lambda: pytest.fail("--quick installs no browser"))
    ran = []
    monkeypatch.setattr(dev, "run", lambda cmd, **kw: ran.append([str(c) for c in cmd]) or 0)
    assert dev.cmd_test(["--quick"]) == 0
    assert ran[0][-2:] == ["-m", dev.QUICK] and "--quick" not in ran[0]


def test_every_marker_quick_mode_names_is_registered():
    tomllib = pytest.importorskip("tomllib")
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    names = {m.split(":")[0].split("(")[0] for m in markers}
    assert {"e2e", "notebooks", "wheel"} <= names
