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
    GraphPlan,
    draw_computation_graph,
    fitted_svg,
    lay_out,
)
from .graph_view import GraphView, graph_html, message_svg
from .render import RenderError, find_dot, render_svg  # noqa: F401

__all__ = ["DEFAULT_MAX_NODES", "draw_computation_graph", "GraphView", "repr_svg", "repr_mimebundle"]

REPR_TIMEOUT = 20.0          # seconds a notebook repr may spend in dot


def _laid_out_svg(tensor) -> str:
    """The graph of ``tensor`` laid out in its best orientation, at its natural size."""
    from .adapters import adapt, adapt_names

    tensor = adapt(tensor, "draw_computation_graph")
    plan = GraphPlan(tensor, adapt_names(tensor, None), DEFAULT_MAX_NODES)
    return lay_out(plan, timeout=REPR_TIMEOUT)[1]


def repr_svg(tensor) -> str:
    """Jupyter's picture of a tensor (``Tensor._repr_svg_``): the graph that produced it,
    sized to fit a notebook output (never below a readable scale). Never raises: a
    failure is drawn as a one-line message."""
    try:
        return fitted_svg(_laid_out_svg(tensor))
    except RenderError as exc:
        return message_svg(f"Graph not drawn: {exc}")
    except Exception as exc:
        return message_svg(f"Graph not drawn: {type(exc).__name__}: {exc}")


def repr_mimebundle(tensor) -> dict:
    """What Jupyter shows for a tensor, from one layout: the graph in HTML fitted to the
    output with zoom buttons, the same graph as an SVG picture (for nbconvert, GitHub),
    and the plain-text repr. Never raises."""
    bundle = {"text/plain": repr(tensor)}
    try:
        svg = _laid_out_svg(tensor)
    except RenderError as exc:
        bundle["image/svg+xml"] = message_svg(f"Graph not drawn: {exc}")
        return bundle
    except Exception as exc:
        bundle["image/svg+xml"] = message_svg(f"Graph not drawn: {type(exc).__name__}: {exc}")
        return bundle
    bundle["image/svg+xml"] = fitted_svg(svg)
    bundle["text/html"] = graph_html(svg)
    return bundle
