"""The computation graph on screen.

Two ways to draw the graph that produced a tensor:

- :func:`draw_computation_graph` (in :mod:`ad_magic.dot`) returns a ``graphviz.Digraph``
  (left to right, inputs on the left) showing every value's name, data and grad, and
  every op. A tensor that ends a notebook cell shows this drawing: ``Tensor._repr_svg_``
  imports :func:`repr_svg` from here when Jupyter asks for it (the engine itself imports
  nothing of rendering).
- :class:`GraphView` (in :mod:`ad_magic.graph_view`) lays the graph out once (one run of
  ``dot``) and then re-styles the SVG by node, so nodes never jump while a widget steps
  through backprop or gradient descent.

This module keeps the names in one place; the code lives in those two modules.
"""
from __future__ import annotations

from .dot import (  # noqa: F401  (the names this module has always offered)
    CHANGED,
    DEFAULT_MAX_NODES,
    EDGE,
    FONT,
    FONT_SIZE,
    GRAD_TEXT,
    HIGHLIGHT,
    KIND_PENWIDTH,
    KIND_STYLE,
    LARGE_GRAPH,
    LONG_EDGES,
    MAX_NAME_CHARS,
    SCALAR_CHARS,
    STAT_CHARS,
    SVG_FONT,
    TEXT,
    draw_computation_graph,
)
from .graph_view import GraphView, message_svg
from .render import RenderError, find_dot, render_svg  # noqa: F401

__all__ = ["DEFAULT_MAX_NODES", "draw_computation_graph", "GraphView", "repr_svg"]

REPR_TIMEOUT = 20.0          # seconds a notebook repr may spend in dot


def repr_svg(tensor) -> str:
    """Jupyter's picture of a tensor (``Tensor._repr_svg_``): the graph that produced it.
    Never raises: a failure is drawn as a one-line message."""
    try:
        return render_svg(draw_computation_graph(tensor).source, timeout=REPR_TIMEOUT)
    except RenderError as exc:
        return message_svg(f"Graph not drawn: {exc}")
    except Exception as exc:
        return message_svg(f"Graph not drawn: {type(exc).__name__}: {exc}")
