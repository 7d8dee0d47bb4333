"""Every notebooks/*.ipynb runs top to bottom on a fresh kernel without an error.

The kernel is this interpreter (sys.executable) through a kernelspec named python3 in a
private JUPYTER_PATH, so it is the test venv's Python whatever else is installed.
Notebooks are executed in memory: the files in the repo are never rewritten.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_PER_CELL = 300  # seconds; one whole notebook gets pytest's timeout below


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("nbkernel")
    spec_dir = base / "jupyter-path" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)",
        "language": "python",
    }))
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR",
                                            "IPYTHONDIR", "MPLBACKEND", "MPLCONFIGDIR")}
    os.environ["JUPYTER_PATH"] = str(base / "jupyter-path")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(base / "runtime")
    os.environ["IPYTHONDIR"] = str(base / "ipython")
    os.environ["MPLCONFIGDIR"] = str(base / "mpl")
    os.environ.pop("MPLBACKEND", None)  # the inline backend of the kernel decides
    try:
        yield base
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if NOTEBOOKS:
    params = [pytest.param(p, id=p.name) for p in NOTEBOOKS]
else:
    params = [pytest.param(None, id="none", marks=pytest.mark.skip(
        reason="notebooks/ has no .ipynb yet"))]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", params)
def test_notebook_runs_clean(path, kernel_env):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager

    argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    assert Path(argv0) == Path(sys.executable), f"python3 kernel resolves to {argv0}"

    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=TIMEOUT_PER_CELL, allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError with the traceback on the first error
    errors = [o for c in nb.cells if c.cell_type == "code"
              and "raises-exception" not in c.get("metadata", {}).get("tags", [])
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
