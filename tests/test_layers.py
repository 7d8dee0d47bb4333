"""The layout by layer: the import graph of ad_magic has no circle, and the contracts hold.

The layer contracts themselves are in pyproject.toml (``[tool.importlinter]``) and run by
``python3 dev.py test`` (``lint-imports``); these tests read the same import graph (grimp,
which import-linter installs).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")

ROOT = Path(__file__).resolve().parents[1]


def cycles(graph) -> list:
    """Every import circle among the modules of ``graph`` (its strongly connected
    components of more than one module, or a module importing itself), each as a sorted
    list of module names."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in modules}
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in modules:              # Tarjan's algorithm, iteratively (no recursion limit)
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if i < len(targets):
                work.append((node, i + 1))
                child = targets[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_the_cycle_finder_finds_a_circle():
    """The finder itself can fail: a three-module circle and a self-import are reported."""
    graph = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c", "p.d", "p.e"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.c", imported="p.d")
    graph.add_import(importer="p.e", imported="p.e")
    assert sorted(cycles(graph)) == [["p.a", "p.b", "p.c"], ["p.e"]]


def test_the_import_graph_of_ad_magic_has_no_circle():
    graph = grimp.build_graph("ad_magic", cache_dir=None)
    assert len(graph.modules) > 30
    assert cycles(graph) == [], f"import circles among ad_magic's modules: {cycles(graph)}"


def test_the_layer_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("lint-imports is not installed (pip install -e .[test])")
    out = subprocess.run([str(lint), "--no-logo", "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 kept, 0 broken" in out.stdout


def test_the_engine_runs_without_the_layers_above_it():
    """Importing the engine (with ``ad_magic``'s own imports: drawing and the adapters)
    loads nothing of Jupyter, widgets or plotting, nor the layers above; and a
    tensor without a registered display answers with text, never an error."""
    code = ("import sys\n"
            "import ad_magic.engine.tensor as t\n"
            "from ad_magic.engine import Tensor\n"
            "t._display.clear()\n"
            "x = Tensor(2.0) * 3\n"
            "assert x._repr_svg_() is None, 'svg without a renderer'\n"
            "assert x._repr_mimebundle_() == {'text/plain': repr(x)}\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('IPython', 'ipywidgets', 'anywidget', 'matplotlib', 'traitlets') or "
            "m.split('.')[:2] in (['ad_magic', 'widgets'], ['ad_magic', 'practical'], ['ad_magic', 'magic']))\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_tensor_shows_its_graph_once_ad_magic_is_imported():
    from ad_magic import Tensor

    x = Tensor(2.0, name="x")
    bundle = (x * x)._repr_mimebundle_()
    assert bundle["text/plain"].startswith("Tensor(") and "<svg" in bundle["image/svg+xml"]


def test_public_paths_are_the_engine_s_modules():
    import ad_magic.engine
    import ad_magic.landscapes
    import ad_magic.nn
    import ad_magic.optim
    from ad_magic.optim import descend

    assert ad_magic.nn is ad_magic.engine.nn and ad_magic.optim is ad_magic.engine.optim
    assert ad_magic.landscapes is ad_magic.engine.landscapes and descend is ad_magic.engine.optim.descend
