"""Drawing: the computation graph on screen, as Graphviz DOT and SVG.

It imports the engine (and the ``graphviz`` package, and a ``dot`` to run), nothing above
it — no adapters, widgets, IPython or ipywidgets. It draws nodes (:mod:`.nodes`): a
Tensor, or another library's node that the adapters layer, above it, wraps and
registers. Importing it registers its renderers with the engine, so a tensor that ends a
notebook cell shows its graph (``Tensor._repr_svg_``, ``_repr_mimebundle_``).

- :func:`draw_computation_graph` (:mod:`.dot`) returns a ``graphviz.Digraph`` (inputs on
  the left) showing every value's name, data and grad, and every op.
- :class:`GraphView` (:mod:`.graph_view`) lays the graph out once (one run of ``dot``)
  and then re-styles the SVG by node, so nodes never jump while a widget steps through
  backprop or gradient descent.
- :mod:`.render` finds a ``dot`` (system or graphviz-pure) and runs it; :mod:`.names`
  gives every tensor one clash-free display name.
"""
from __future__ import annotations

from ..engine.tensor import set_display
from .dot import DEFAULT_MAX_NODES, GraphPlan, draw_computation_graph, fitted_svg, lay_out, other_modules
from .graph_view import GraphView, graph_html, message_svg
from .nodes import as_node, node_names
from .render import RenderError

__all__ = ["DEFAULT_MAX_NODES", "draw_computation_graph", "GraphView", "repr_svg", "repr_mimebundle"]

REPR_TIMEOUT = 20.0          # seconds a notebook repr may spend in dot


def _laid_out_svg(tensor, names=None, other: bool = False):
    """The graph of ``tensor`` laid out in its best orientation, at its natural size; with
    ``other``, ``(svg, svg with its modules the other way or None)``."""
    tensor = as_node(tensor, "draw_computation_graph")
    names = node_names(tensor, names)
    plan = GraphPlan(tensor, names, DEFAULT_MAX_NODES)
    svg = lay_out(plan, timeout=REPR_TIMEOUT)[1]
    if not other:
        return svg
    flipped = other_modules(plan, names)
    try:
        return svg, None if flipped is None else lay_out(flipped, timeout=REPR_TIMEOUT)[1]
    except RenderError:
        return svg, None


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


def repr_mimebundle(tensor, names=None) -> dict:
    """What Jupyter shows for a tensor, from one layout: the graph in HTML fitted to the
    output with zoom buttons, the same graph as an SVG picture (for nbconvert, GitHub),
    and the plain-text repr; ``names`` ({tensor: name}) as in draw_computation_graph (the
    magic's extension passes the notebook's variable names). Never raises."""
    bundle = {"text/plain": repr(tensor)}
    try:
        svg, other = _laid_out_svg(tensor, names, other=True)
    except RenderError as exc:
        bundle["image/svg+xml"] = message_svg(f"Graph not drawn: {exc}")
        return bundle
    except Exception as exc:
        bundle["image/svg+xml"] = message_svg(f"Graph not drawn: {type(exc).__name__}: {exc}")
        return bundle
    bundle["image/svg+xml"] = fitted_svg(svg)
    bundle["text/html"] = graph_html(svg, other=other)   # a click on a module's box shows the other
    return bundle


set_display(svg=repr_svg, mimebundle=repr_mimebundle)
