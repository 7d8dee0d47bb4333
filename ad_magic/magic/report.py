"""What the magic shows besides the widgets: the gradient table, the messages
(the descent's summary among them) and the graph picture.

Every display sends both a text and an HTML form, so a terminal or nbconvert to text
keeps a readable copy. Numbers and tables are written by :mod:`ad_magic.engine.formatting`,
as everywhere else in the package.
"""
from __future__ import annotations

import base64

import numpy as np
from IPython.display import display

from ..drawing.render import RenderError
from ..engine.formatting import escape, format_array, html_table, text_table

__all__ = ["GradientTable", "grad_of", "show_table", "show_message", "show_graph",
           "show_descent_pictures"]


class GradientTable:
    """The gradients the magic computed: one row per leaf (or ``--wrt`` tensor).

    Each row: ``label``, ``shape``, ``value``, ``grad`` (backprop) and, after
    ``--check``, ``numeric`` (central differences) and ``rel_error``
    (max |backprop − numeric| / max(|backprop|, |numeric|)), or a ``note`` saying
    why a row could not be checked. Shows as HTML in a notebook, as text elsewhere.
    """

    def __init__(self, output_label, rows, *, checked=False):
        self.output_label, self.rows, self.checked = output_label, rows, checked

    @property
    def grads(self):
        """{label: gradient array}."""
        return {row["label"]: row["grad"] for row in self.rows}

    def _columns(self):
        out = self.output_label if self.output_label.isidentifier() else f"({self.output_label})"
        head = ["tensor", "shape", "value", f"grad ∂{out}/∂tensor"]
        if self.checked:
            head += ["finite differences", "rel. error"]
        body = []
        for row in self.rows:
            cells = [row["label"], str(row["shape"]) if row["shape"] else "scalar",
                     format_array(row["value"]), format_array(row["grad"])]
            if self.checked:
                if row.get("numeric") is None:
                    cells += ["—", row.get("note", "not checked")]
                else:
                    mark = "ok" if row["passed"] else "MISMATCH"
                    # An error is read by its order of magnitude: one digit, always scientific.
                    cells += [format_array(row["numeric"]), f"{row['rel_error']:.1e} {mark}"]
            body.append(cells)
        return head, body

    def __repr__(self):
        return text_table(*self._columns())

    def _repr_html_(self):
        return html_table(*self._columns(), css_class="ad-magic-gradients")


# ------------------------------------------------------------------ displaying

def show_table(table):
    # Both forms, whatever the frontend's active formatters (a terminal keeps only text).
    display({"text/plain": repr(table), "text/html": table._repr_html_()}, raw=True)


def show_message(text, *, warning=False):
    color = "#b45309" if warning else "#334155"
    display({"text/plain": text, "text/html": f'<p style="color:{color}">{escape(text)}</p>'}, raw=True)


def _show_svg(svg, caption):
    display({"image/svg+xml": svg, "text/plain": caption}, raw=True)


def show_graph(output, names, label):
    """The computation graph of `output`, labelled with `names`; a message if it cannot be drawn."""
    from ..drawing import draw_computation_graph
    from ..drawing.render import render_svg

    try:
        svg = render_svg(draw_computation_graph(output, names=names).source)
    except RenderError as exc:
        show_message(f"Graph not drawn: {exc}", warning=True)
        return
    _show_svg(svg, f"<computation graph of {label}>")


def show_descent_pictures(explorer, k):
    """The explorer's graph and loss figure at iteration `k`, as pictures (no widget)."""
    _show_svg(explorer.svg(k), f"<computation graph at iteration {k}>")
    png = base64.b64encode(explorer.png(k)).decode("ascii")
    display({"image/png": png, "text/plain": f"<loss curve, iteration {k}>"}, raw=True)


def grad_of(t):
    """A copy of the tensor's grad, zeros when backward() did not reach it."""
    return np.array(t.grad, copy=True) if t.grad is not None else np.zeros_like(t.data)
