"""The shipped notebooks: each runs top to bottom on a fresh kernel without an error, is
committed without outputs, is linted, and is the whole list of what notebooks/ ships.

They run once per session on copies (conftest's ``executed_notebook``): running them never
writes the files in the repository. Other notebooks in notebooks/ are a user's scratch work
and are neither run nor linted.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SHIPPED_NOTEBOOKS

pytestmark = pytest.mark.notebooks


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", SHIPPED_NOTEBOOKS)
def test_notebook_runs_clean(name, executed_notebook):
    nb = executed_notebook(name)     # raises CellExecutionError with the traceback on the first error
    errors = [o for c in nb.cells if c.cell_type == "code"
              and "raises-exception" not in c.get("metadata", {}).get("tags", [])
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "the run showed nothing"


@pytest.mark.parametrize("name", SHIPPED_NOTEBOOKS)
def test_the_committed_notebook_carries_no_outputs(name):
    """Outputs belong to whoever runs the notebook: committed, every code cell is blank."""
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    ran = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
           and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not ran, f"{name}: code cells {ran} carry outputs or an execution count; clear them before committing"


def test_the_list_of_shipped_notebooks_is_what_git_tracks():
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files to compare with")
    tracked = subprocess.run(["git", "ls-files", "notebooks/*.ipynb"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    if tracked.returncode:
        pytest.skip(f"git ls-files failed: {tracked.stderr.strip()}")
    names = sorted(line.split("/", 1)[1] for line in tracked.stdout.split())
    assert names == sorted(SHIPPED_NOTEBOOKS)


def test_the_shipped_notebooks_pass_ruff():
    """`ruff check .` leaves notebooks/ out (a user's scratch notebooks are theirs); the
    shipped ones are checked here, with the rules of pyproject.toml."""
    pytest.importorskip("ruff")
    paths = [str(ROOT / "notebooks" / name) for name in SHIPPED_NOTEBOOKS]
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format=concise", *paths], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_ruff_check_dot_leaves_the_notebooks_folder_out():
    """`dev.py test` runs `ruff check .`: a scratch notebook a user writes in notebooks/
    (where `dev.py lab` opens) is not the project's code."""
    pytest.importorskip("ruff")
    files = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-files", "."], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert files.returncode == 0, files.stderr
    listed = [line for line in files.stdout.splitlines() if line.strip()]
    assert any(line.endswith("dev.py") for line in listed), listed[:5]
    assert not [line for line in listed if "/notebooks/" in line or line.endswith(".ipynb")]
