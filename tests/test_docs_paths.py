"""Docs are code: every ``ad_magic.…`` path that the README, docs/ or a docstring or comment
of the package names can be imported (a module, then attributes), and every file they name
exists. A module moved without its docs fails here."""
from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ad_magic"
DOTTED = re.compile(r"(?<![\w./-])ad_magic(?:\.[A-Za-z_]\w*)+")
FILE = re.compile(r"(?<![\w./-])[\w./-]*\w\.(?:py|js|css|md|ipynb|png)\b")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _python_texts(path: Path):
    """(line, text) of each docstring and comment of one source file."""
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "lineno", 1), doc
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def named_paths() -> dict[str, list[str]]:
    """Each dotted path named anywhere we document -> where it is named."""
    found: dict[str, list[str]] = {}
    texts = [(str(p.relative_to(ROOT)), p.read_text()) for p in DOCS]
    for path in sorted(PACKAGE.rglob("*.py")):
        texts += [(f"{path.relative_to(ROOT)}:{line}", text) for line, text in _python_texts(path)]
    for where, text in texts:
        for match in DOTTED.finditer(text):
            found.setdefault(match.group(0), []).append(where)
    return found


def resolves(dotted: str) -> bool:
    """Import the longest module prefix of ``dotted``; the rest must be attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_the_scan_finds_the_paths_and_the_check_can_fail():
    paths = named_paths()
    assert len(paths) > 30, sorted(paths)
    assert "ad_magic.adapters.torch.track_modules" in paths      # the README names it
    assert resolves("ad_magic.widgets.race.summary_lines")
    assert not resolves("ad_magic.race.make_runs") and not resolves("ad_magic.optim.no_such_name")


@pytest.mark.parametrize("dotted", sorted(named_paths()))
def test_every_named_ad_magic_path_imports(dotted):
    assert resolves(dotted), f"{dotted} (named in {', '.join(named_paths()[dotted][:3])}) does not exist"


# Files ad_magic writes into a folder the user names (the otter-grader and nbgrader exports,
# the grader's output): the docs name them, the repository does not hold them.
WRITTEN = {"nbgrader_config.py", "source/tp04/tp04.ipynb", "folder/tests/B3.py"}


def test_every_file_the_readme_and_docs_name_exists():
    """Each exists from the repository's root, the doc's folder, or a folder of the package
    (``magics.py`` in a sentence about the magic, ``static/timeline.js`` beside the widgets)."""
    missing = []
    for doc in DOCS:
        for name in set(FILE.findall(doc.read_text())):
            if name.startswith(("http", "www.")) or name.endswith("PATH.html") or name in WRITTEN:
                continue
            ok = (ROOT / name).exists() or (doc.parent / name).exists() or any(PACKAGE.rglob(name))
            if not ok:
                missing.append(f"{doc.name}: {name}")
    assert not missing, missing
