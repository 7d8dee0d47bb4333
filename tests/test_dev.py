"""dev.py (the README's set-up commands), pyproject.toml's extras and the notebooks' metadata."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

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


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_metadata_matches_the_kernel_dev_py_installs(path, dev):
    """Otherwise JupyterLab marks every notebook changed as soon as it opens."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"] == dev.KERNEL
    assert nb["metadata"]["language_info"]["name"] == "python"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), "commit notebooks without outputs"


def test_extras():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "ad_magic[e2e]" in extras["test"]
    assert any(r.startswith("ruff") for r in extras["test"])
    assert any(r.startswith("import-linter") for r in extras["test"])   # dev.py test runs lint-imports
    assert "torch==2.13.0" in extras["bench"]  # a bare `torch` would pull a multi-GB CUDA build
