"""Fixtures shared by the rendering tests."""
import shutil

import pytest

from ad_magic import render


@pytest.fixture(params=["system dot", "graphviz-pure"])
def renderer(request, monkeypatch):
    """Each available renderer in turn, forced through AD_MAGIC_DOT."""
    exe = shutil.which("dot") if request.param == "system dot" else render._graphviz_pure_executable()
    if exe is None:
        pytest.skip(f"{request.param} is not installed")
    monkeypatch.setenv("AD_MAGIC_DOT", exe)
    return exe
