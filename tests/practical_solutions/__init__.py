"""The practical's reference solution and known mistakes, as test fixtures."""
import linecache
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sections() -> dict:
    """{blank id: code} of reference.py, in the notebook's order."""
    text = (HERE / "reference.py").read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"^# %% (\w+)\n(.*?)(?=^# %% |\Z)", text, re.S | re.M)}


def namespace(replace=None) -> dict:
    """A namespace holding the reference solution run section by section, with
    ``replace = (section, code)`` run instead of that section."""
    ns = {"__name__": "student"}
    for key, code in sections().items():
        if replace is not None and key == replace[0]:
            code = replace[1]
        exec(compile(code, cell(key, code), "exec"), ns)
    return ns


def cell(name, code) -> str:
    """A file name for ``code`` that tracebacks can read lines from, as IPython gives each
    notebook cell (so a message quotes the student's line, as it does in a notebook)."""
    filename = f"<cell {name}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    return filename
