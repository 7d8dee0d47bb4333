"""ad_magic.drawing.render: finding a dot executable and turning DOT into SVG, with clear errors."""
import os
import shutil
import sys
import xml.etree.ElementTree as ET

import pytest

from ad_magic.drawing import render
from ad_magic.drawing.render import RenderError, find_dot, render_svg

SVG = "{http://www.w3.org/2000/svg}"
SYSTEM_DOT = shutil.which("dot")
PURE_DOT = render._graphviz_pure_executable()
SIMPLE = 'digraph { rankdir=LR; a [label="x"]; b [label="y"]; a -> b }'
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="uses a shell-script stand-in for dot")


@pytest.fixture
def no_system_dot(monkeypatch, tmp_path):
    """A PATH without any dot on it, as in a kernel on a machine without Graphviz."""
    monkeypatch.delenv("AD_MAGIC_DOT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    from graphviz.backend import dot_command
    monkeypatch.setattr(dot_command, "DOT_BINARY", dot_command.DOT_BINARY)  # restored after


def fake_dot(tmp_path, script):
    path = tmp_path / "fake-dot"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


def test_renders_valid_svg_with_each_renderer(renderer):
    root = ET.fromstring(render_svg(SIMPLE))
    assert root.tag == SVG + "svg"
    titles = [g.find(SVG + "title").text for g in root.iter(SVG + "g") if g.get("class") == "node"]
    assert titles == ["a", "b"]


def test_system_dot_is_preferred_when_on_path(monkeypatch):
    if SYSTEM_DOT is None:
        pytest.skip("no system dot")
    monkeypatch.delenv("AD_MAGIC_DOT", raising=False)
    assert find_dot() == SYSTEM_DOT


def test_without_system_dot_graphviz_pure_is_found_outside_path(no_system_dot):
    if PURE_DOT is None:
        pytest.skip("graphviz-pure is not installed")
    assert shutil.which("graphviz-pure") is None  # not on PATH: found through metadata
    assert find_dot() == PURE_DOT
    assert os.path.basename(PURE_DOT).startswith("graphviz-pure")
    ET.fromstring(render_svg(SIMPLE))


def test_without_system_dot_the_graphviz_package_renders_too(no_system_dot):
    if PURE_DOT is None:
        pytest.skip("graphviz-pure is not installed")
    import graphviz

    find_dot()
    digraph = graphviz.Digraph()
    digraph.edge("a", "b")
    root = ET.fromstring(digraph.pipe(format="svg", encoding="utf-8"))
    assert root.tag == SVG + "svg"
    assert "image/svg+xml" in digraph._repr_mimebundle_()


def test_no_renderer_at_all_says_how_to_get_one(no_system_dot, monkeypatch):
    monkeypatch.setattr(render, "_graphviz_pure_executable", lambda: None)
    assert find_dot() is None
    with pytest.raises(RenderError, match="pip install graphviz-pure"):
        render_svg(SIMPLE)


def test_forced_path_is_used_and_a_missing_one_is_a_clear_error(monkeypatch, tmp_path):
    missing = str(tmp_path / "no-such-dot")
    monkeypatch.setenv("AD_MAGIC_DOT", missing)
    assert find_dot() == missing
    with pytest.raises(RenderError) as info:
        render_svg(SIMPLE)
    assert missing in str(info.value) and "pip install graphviz-pure" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_dot_syntax_error_is_passed_on_with_its_line(renderer):
    with pytest.raises(RenderError) as info:
        render_svg("digraph {\n a -> b\n a -> ;\n}")
    message = str(info.value)
    assert "could not draw the graph" in message
    assert "syntax error" in message and "line 3" in message


@posix_only
def test_dot_stderr_reaches_the_message(monkeypatch, tmp_path):
    monkeypatch.setenv("AD_MAGIC_DOT", fake_dot(tmp_path, 'echo "Error: something broke at line 7" >&2; exit 3'))
    with pytest.raises(RenderError, match="something broke at line 7"):
        render_svg(SIMPLE)


@posix_only
def test_timeout_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AD_MAGIC_DOT", fake_dot(tmp_path, "sleep 10"))
    with pytest.raises(RenderError, match=r"longer than 0\.3 s.*max_nodes"):
        render_svg(SIMPLE, timeout=0.3)


@posix_only
def test_source_goes_to_stdin_and_stdout_comes_back(monkeypatch, tmp_path):
    # A stand-in renderer that echoes its input proves the boundary: -Tsvg, stdin, UTF-8.
    monkeypatch.setenv("AD_MAGIC_DOT", fake_dot(tmp_path, '[ "$1" = "-Tsvg" ] && cat'))
    assert render_svg("digraph { a [label=\"σ\"] }") == "digraph { a [label=\"σ\"] }"


def test_lookup_follows_environment_changes(monkeypatch, tmp_path):
    first = fake_dot(tmp_path, "cat")
    monkeypatch.setenv("AD_MAGIC_DOT", first)
    assert find_dot() == first
    monkeypatch.setenv("AD_MAGIC_DOT", str(tmp_path / "other"))
    assert find_dot() == str(tmp_path / "other")
