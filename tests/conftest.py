"""Fixtures shared by the tests: each renderer in turn, and IPython's shell with the magic loaded."""
import shutil

import pytest
from IPython.testing import globalipapp

from ad_magic.drawing import render


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
