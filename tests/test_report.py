"""ad_magic.magic.report: the gradient table and the descent summary, as text and HTML."""
from __future__ import annotations

import numpy as np

from ad_magic import Tensor
from ad_magic.engine.formatting import format_number
from ad_magic.magic.report import GradientTable, grad_of


def _row(label, value, grad, **extra):
    value = np.asarray(value, dtype=float)
    return {"label": label, "shape": value.shape, "value": value, "grad": np.asarray(grad, dtype=float), **extra}


def test_text_table_has_one_aligned_row_per_tensor():
    table = GradientTable("loss", [_row("x", 2.0, 9.0), _row("weights", [1.0, -2.0], [0.5, 0.25])])
    lines = repr(table).splitlines()
    assert lines[0].split() == ["tensor", "shape", "value", "grad", "∂loss/∂tensor"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["x", "scalar", format_number(2.0), format_number(9.0)]
    assert lines[3].startswith("weights") and "(2,)" in lines[3]
    assert format_number(0.25) in lines[3]
    assert lines[0].index("shape") == lines[2].index("scalar")      # columns aligned
    assert table.grads["x"] == 9.0


def test_html_table_escapes_labels():
    table = GradientTable("a<b", [_row("<script>x</script>", 1.0, 2.0)])
    html = table._repr_html_()
    assert html.startswith("<table") and 'class="ad-magic-gradients"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "∂(a&lt;b)/∂tensor" in html       # a label that is not a name is bracketed


def test_checked_table_shows_errors_and_notes():
    rows = [_row("x", 2.0, 9.0, numeric=np.array(9.0), rel_error=1.2e-10, passed=True),
            _row("y", 1.0, 3.0, numeric=np.array(2.0), rel_error=0.33, passed=False),
            _row("c", 1.0, 0.0, note="not bound to a variable: cannot be nudged")]
    text = repr(GradientTable("loss", rows, checked=True))
    assert "finite differences" in text and "rel. error" in text
    assert "1.2e-10 ok" in text and "3.3e-01 MISMATCH" in text
    assert "cannot be nudged" in text


def test_grad_of_copies_and_fills_zeros():
    x = Tensor([1.0, 2.0])
    assert np.array_equal(grad_of(x), [0.0, 0.0])
    (x * x).sum().backward()
    g = grad_of(x)
    g[0] = 99.0
    assert np.array_equal(x.grad, [2.0, 4.0])
