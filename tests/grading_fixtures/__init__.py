"""Submissions for ``ad-magic grade``'s tests, written from the reference solution in
tests/practical_solutions: the student's notebook with every blank filled, the same as a
``.py`` file, and the same with one section rewritten or a cell added."""
from __future__ import annotations

import json
from pathlib import Path

from practical_solutions import sections

ROOT = Path(__file__).resolve().parents[2]
STUDENT_NOTEBOOK = ROOT / "notebooks" / "tp04_student.ipynb"

# A demonstration that never ends, and a backward() that never ends.
ENDLESS_DEMO = "steps = 0\nwhile True:\n    steps += 1\n"
ENDLESS_BACKWARD = '''
def backward(self):
    while True:
        try:
            pass
        except BaseException:
            pass


Tensor.backward = backward
'''


def filled_notebook(path, replace=None, after=None) -> Path:
    """tp04_student.ipynb with each blank filled from the reference solution, ``replace =
    (section, code)`` put in that section's blank instead, and ``after = (section, code)``
    a code cell added after that section's blank."""
    notebook = json.loads(STUDENT_NOTEBOOK.read_text(encoding="utf-8"))
    solution = sections()
    cells = []
    for cell in notebook["cells"]:
        blank = cell.get("metadata", {}).get("practical_blank")
        if blank is not None:
            code = replace[1] if replace and replace[0] == blank else solution[blank]
            cell = dict(cell, source=code.strip("\n"), outputs=[], execution_count=None)
        cells.append(cell)
        if blank is not None and after and after[0] == blank:
            cells.append({"cell_type": "code", "metadata": {}, "source": after[1], "outputs": [],
                          "execution_count": None})
    path = Path(path)
    path.write_text(json.dumps(dict(notebook, cells=cells), indent=1), encoding="utf-8")
    return path


def script(path, replace=None, after=None) -> Path:
    """The reference solution as one ``.py`` file, with ``replace`` / ``after`` as above."""
    parts = []
    for key, code in sections().items():
        parts.append(replace[1] if replace and replace[0] == key else code)
        if after and after[0] == key:
            parts.append(after[1])
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
