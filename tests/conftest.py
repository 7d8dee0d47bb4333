"""Fixtures shared by the tests: each renderer in turn, IPython's shell with the magic
loaded, the shipped notebooks run once per session, and one JupyterLab server and one
Chromium for every browser test."""
import contextlib
import copy
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from IPython.testing import globalipapp

from ad_magic.drawing import render

# The property tests' defaults (each test sets its own max_examples): no deadline, since a
# loaded machine runs an example slower and a timing is not what they test; a failure prints
# the blob that replays it (@reproduce_failure).
settings.register_profile("ad_magic", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ad_magic"))


@pytest.fixture(params=["system dot", "graphviz-pure"])
def renderer(request, monkeypatch):
    """Each available renderer in turn, forced through AD_MAGIC_DOT."""
    exe = shutil.which("dot") if request.param == "system dot" else render._graphviz_pure_executable()
    if exe is None:
        pytest.skip(f"{request.param} is not installed")
    monkeypatch.setenv("AD_MAGIC_DOT", exe)
    return exe


def pytest_terminal_summary(terminalreporter):
    """Say why the 'system dot' variants were skipped, so that the skips do not look like a fault."""
    if shutil.which("dot") or render._graphviz_pure_executable() is None:
        return
    n = sum("system dot" in str(rep.longrepr) for rep in terminalreporter.stats.get("skipped", []))
    if n:
        terminalreporter.write_line(
            f"graphviz-pure's static dot rendered the graphs; the {n} 'system dot' variants were skipped "
            "because no system Graphviz is installed (that is fine)")


def clear_shell(shell) -> None:
    """IPython's ``reset`` (every namespace, the output history and the display hook's
    ``_``, ``__``, ``___`` emptied) without the ``gc.collect()`` its output-cache flush
    runs: with NumPy, torch and matplotlib loaded a full collection costs about a second,
    twice per magic test, and nothing here needs cyclic garbage gone at once."""
    hook = shell.displayhook
    full, hook.do_full_cache = hook.do_full_cache, 0   # reset() skips hook.flush() ...
    try:
        shell.reset(new_session=False)
    finally:
        hook.do_full_cache = full
    hook._ = hook.__ = hook.___ = ""                      # ... whose other work is this line


@pytest.fixture
def magic_shell():
    """``magic_shell(setup="")``: IPython's test shell (one per process, started on first use)
    with a fresh namespace, ``%load_ext ad_magic`` and the cell ``setup`` run; the extension
    is unloaded and the shell cleared afterwards, so no test sees another's variables."""
    shell = None

    def make(setup=""):
        nonlocal shell
        globalipapp.start_ipython()
        shell = globalipapp.get_ipython()
        clear_shell(shell)
        shell.run_line_magic("load_ext", "ad_magic")
        if setup:
            shell.run_cell(setup)
        return shell

    yield make
    if shell is not None:
        shell.run_line_magic("unload_ext", "ad_magic")
        clear_shell(shell)


# ------------------------------------------------------------------ the shipped notebooks
ROOT = Path(__file__).resolve().parents[1]
# The notebooks the repository ships (tests/test_notebooks.py checks this list against git).
# Any other notebook in notebooks/ is a user's own scratch work: never run, linted or judged.
SHIPPED_NOTEBOOKS = ("higher_order.ipynb", "magic_gallery.ipynb", "tp04_autodiff.ipynb", "tp04_student.ipynb")
NOTEBOOK_CELL_TIMEOUT = 300   # seconds per cell


def student_filled(nb: dict) -> dict:
    """The student's notebook (as JSON) with every blank filled from the reference solution."""
    from practical_solutions import sections

    nb = copy.deepcopy(nb)
    solution = sections()
    for cell in nb["cells"]:
        blank = cell.get("metadata", {}).get("practical_blank")
        if blank:
            cell["source"] = solution[blank]
    return nb


def kernel_spec_dir(base: Path) -> Path:
    """A private JUPYTER_PATH whose python3 kernel is this interpreter, whatever else is installed."""
    spec = base / "jupyter-path" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)", "language": "python"}))
    return base / "jupyter-path"


@pytest.fixture(scope="session")
def executed_notebook(tmp_path_factory):
    """``executed_notebook(name, filled=False)``: a shipped notebook run top to bottom on a
    fresh kernel (this interpreter), as an nbformat node; with ``filled`` the student's
    blanks are filled from the reference solution first. Each is run once per session, on
    a copy in a temp folder (its own working directory): the files in notebooks/ are never
    written. A cell that fails stops the run (CellExecutionError), except cells tagged
    ``raises-exception``. Each caller gets its own deep copy."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    base = tmp_path_factory.mktemp("notebooks")
    env = {"JUPYTER_PATH": str(kernel_spec_dir(base)), "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
           "IPYTHONDIR": str(base / "ipython"), "MPLCONFIGDIR": str(base / "mpl")}
    done: dict = {}

    def run(name: str, filled: bool = False):
        assert name in SHIPPED_NOTEBOOKS, f"{name} is not a shipped notebook"
        if (name, filled) not in done:
            nb = json.loads((ROOT / "notebooks" / name).read_text())
            work = base / ("filled" if filled else "shipped")
            work.mkdir(exist_ok=True)
            (work / name).write_text(json.dumps(student_filled(nb) if filled else nb))
            nb = nbformat.read(str(work / name), as_version=4)
            client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=NOTEBOOK_CELL_TIMEOUT,
                                             allow_errors=False, resources={"metadata": {"path": str(work)}})
            with _environment(env):
                client.execute()
            done[name, filled] = nb
        return copy.deepcopy(done[name, filled])

    return run


@contextlib.contextmanager
def _environment(values: dict):
    """os.environ with ``values`` set (and MPLBACKEND unset: the kernel's inline backend
    decides) for the duration of a kernel's start, put back afterwards."""
    names = [*values, "MPLBACKEND"]
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(values)
    os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------ the browser tests
@pytest.fixture(scope="session")
def lab_server():
    """One isolated JupyterLab for every browser test of the session, serving a temp folder
    with copies of the shipped notebooks (the student's with its blanks filled): Lab
    autosaves, and the repository's notebooks are never written. Tests add their own
    notebooks to ``lab_server.root_dir``."""
    import e2e_support as e2e

    e2e.require_browser_stack()
    base = e2e.make_base_dir()
    root = base / "root"
    root.mkdir(parents=True)
    for name in SHIPPED_NOTEBOOKS:
        nb = json.loads((ROOT / "notebooks" / name).read_text())
        (root / name).write_text(json.dumps(student_filled(nb) if name == "tp04_student.ipynb" else nb))
    server = e2e.LabServer(root, base / "jupyter")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        e2e.ARTIFACTS.mkdir(exist_ok=True)
        (e2e.ARTIFACTS / "jupyter-server.log").write_text(server.log_tail(400))
        e2e.remove_tree(base)


@pytest.fixture(scope="session")
def chromium():
    """One Debian Chromium (through Playwright) for every browser test of the session; each
    test opens its own context (a fresh profile) in it."""
    import e2e_support as e2e

    e2e.require_browser_stack()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = e2e.launch_browser(pw)
        try:
            yield browser
        finally:
            browser.close()


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``) tests go to a worker file by file, so a
    module's fixtures (the benchmarks' runs, a shell) are set up once, not once per worker,
    and the notebook tests share one worker's runs. The browser test files spread over the
    workers like the others: they mostly wait (on a kernel, on the page), so two run side by
    side, each worker starting its own Lab server and Chromium once (session fixtures)."""
    for item in items:
        if item.get_closest_marker("notebooks"):
            group = "notebooks"
        else:
            group = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
