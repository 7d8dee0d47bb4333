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


@pytest.fixture
def magic_shell():
    """``magic_shell(setup="")``: IPython's test shell with a fresh namespace, ``%load_ext
    ad_magic`` and the cell ``setup`` run; the extension is unloaded and the namespace reset
    afterwards, so no test sees another's variables."""
    shell = None

    def make(setup=""):
        nonlocal shell
        globalipapp.start_ipython()
        shell = globalipapp.get_ipython()
        shell.reset(new_session=False)
        shell.run_line_magic("load_ext", "ad_magic")
        if setup:
            shell.run_cell(setup)
        return shell

    yield make
    if shell is not None:
        shell.run_line_magic("unload_ext", "ad_magic")
        shell.reset(new_session=False)
