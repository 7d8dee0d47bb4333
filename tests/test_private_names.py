"""No private name crosses a module boundary, read from the source's own imports and attributes.

The rule, checked over every module of ad_magic/ (parsed with `ast`, nothing hand-listed):
- no module imports a `_private` name from another module (`from .graph_view import _grad_text`);
- no module reads a `_private` attribute that only another layer (subpackage) defines
  (`timeline._changes` read by the magic). Inside one layer its modules share their objects'
  fields (the engine's Tensor slots `_data`, `_grad`, … are the engine's).
The exception is the practical's node protocol: a Tensor of the practical holds `_parents`,
`_function` and `_backward` (Parts A and B of `notebooks/tp04_student.ipynb`), so every layer may read those names on
any node, ours or a student's.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRACTICAL_PROTOCOL = {"_parents", "_function", "_backward"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _modules(package_dir: Path) -> dict:
    """{dotted module name: path} for every .py file under package_dir."""
    out = {}
    for path in package_dir.rglob("*.py"):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _layer(module: str, modules: dict) -> str:
    """The package a module belongs to (a package's __init__ belongs to the package itself)."""
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def _source_module(module: str, node: ast.ImportFrom, modules: dict) -> str:
    if node.level == 0:
        return node.module or ""
    base = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def _defined_private_names(tree: ast.AST) -> set:
    """Private names a module defines: functions, classes, assigned names and attributes, slots."""
    names = set()
    # names bound to imported modules (`import os`): `os._exit = …` patches the standard
    # library's function, it does not define a private name of this module
    imported = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Name):
                    names.add(t.id)
                elif isinstance(t, ast.Attribute) and not (isinstance(t.value, ast.Name) and t.value.id in imported):
                    names.add(t.attr)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
            names |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return {n for n in names if _private(n)}


def crossings(package_dir: Path) -> list:
    """Every private name that crosses a boundary, as 'module: what' sentences."""
    modules = _modules(package_dir)
    trees = {m: ast.parse(p.read_text(encoding="utf-8"), str(p)) for m, p in modules.items()}
    definers = defaultdict(set)
    for m, tree in trees.items():
        for name in _defined_private_names(tree):
            definers[name].add(m)
    found = []
    for m, tree in sorted(trees.items()):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _source_module(m, node, modules)
                if source in modules and source != m:
                    found += [f"{m} imports {a.name} from {source}" for a in node.names
                              if _private(a.name) and f"{source}.{a.name}" not in modules]
            elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in PRACTICAL_PROTOCOL:
                owners = definers.get(node.attr, set())
                if owners and not any(_layer(o, modules) == _layer(m, modules) for o in owners):
                    found.append(f"{m} reads .{node.attr}, private to {', '.join(sorted(owners))}")
    return sorted(set(found))


def test_no_private_name_crosses_a_module_boundary():
    found = crossings(ROOT / "ad_magic")
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_check_finds_a_private_import_and_a_private_attribute_of_another_layer(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "texts.py").write_text("def _helper():\n    return 1\n\nclass Box:\n    def __init__(self):\n"
                                          "        self._hidden = 2\n        self._parents = ()\n")
    (pkg / "low" / "same_layer.py").write_text("from .texts import Box\n\nprint(Box()._hidden)\n")
    (pkg / "low" / "patch.py").write_text("import os\n\nos._exit = print\n")     # the stdlib's name, patched
    (pkg / "high" / "__init__.py").write_text("")
    (pkg / "high" / "exits.py").write_text("import os\n\nos._exit(0)\n")
    (pkg / "high" / "user.py").write_text("from ..low.texts import Box, _helper\n\n"
                                          "print(Box()._hidden, Box()._parents, _helper())\n")
    assert crossings(pkg) == ["pkg.high.user imports _helper from pkg.low.texts",
                              "pkg.high.user reads ._hidden, private to pkg.low.texts"]
