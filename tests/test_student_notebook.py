"""notebooks/tp04_student.ipynb executed twice on a fresh kernel: as shipped (every check
says "not implemented yet" and nothing else fails) and with each blank filled from the
reference solution in tests/practical_solutions (every check passes, nothing fails)."""
from __future__ import annotations

import pytest
from conftest import ROOT
from practical_solutions import sections

NOTEBOOK = ROOT / "notebooks" / "tp04_student.ipynb"
NAME = NOTEBOOK.name

nbformat = pytest.importorskip("nbformat")
pytestmark = pytest.mark.notebooks


def _text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        elif "data" in o:
            parts.append(o["data"].get("text/plain", ""))
            parts.append(o["data"].get("text/html", ""))
    return "\n".join(parts)


def _check_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("practical.check(")]


def _errors(cell):
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def test_the_notebook_has_a_blank_per_solution_section_and_a_check_per_part():
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    blanks = [c.metadata["practical_blank"] for c in nb.cells if "practical_blank" in c.get("metadata", {})]
    assert blanks == [k for k in sections() if k != "imports"]
    for c in nb.cells:
        if "practical_blank" in c.get("metadata", {}):
            assert "### YOUR CODE HERE ###" in c.source and "raise NotImplementedError" in c.source
    assert [c.source for c in _check_cells(nb)] == [f'practical.check("{p}", globals())' for p in "ABCD"]


@pytest.mark.timeout(600)
def test_as_shipped_every_check_says_not_implemented_yet(executed_notebook):
    nb = executed_notebook(NAME)
    for cell in _check_cells(nb):
        text = _text(cell)
        assert not _errors(cell), cell.source
        assert "not implemented yet" in text and "well done" not in text, text
        assert "✓" not in text
    for cell in nb.cells:
        for error in _errors(cell):   # only the drawing cells, tagged raises-exception, may fail, and only so
            assert "raises-exception" in cell.metadata.get("tags", [])
            assert error["ename"] == "NotImplementedError", (cell.source, error["ename"], error["evalue"])


@pytest.mark.timeout(600)
def test_filled_from_the_solution_every_check_passes(executed_notebook):
    nb = executed_notebook(NAME, filled=True)
    assert not [(c.source, _errors(c)) for c in nb.cells if _errors(c)]
    for part, cell in zip("ABCD", _check_cells(nb)):
        text = _text(cell)
        assert f"Part {part}:" in text and "well done" in text and "✗" not in text, text
    by_source = {c.source.splitlines()[0]: c for c in nb.cells if c.cell_type == "code" and c.source}
    stepper = next(c for c in nb.cells if c.source.endswith('BackwardStepper(y, names={x: "x", y: "y"})'))
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in stepper.outputs)
    magic = by_source["%%autodiff y"]
    assert "9.0" in _text(magic) and any("image/svg+xml" in o.get("data", {}) for o in magic.outputs)
    drawing = by_source["x = Tensor(3.0)"]
    assert "7 nodes, 7 edges; f = 23.0" in _text(drawing)
    assert any("image/svg+xml" in o.get("data", {}) for o in drawing.outputs)
