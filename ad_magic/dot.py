"""The computation graph as DOT: what is drawn, how each node is labelled and styled.

:func:`draw_computation_graph` returns a ``graphviz.Digraph`` (left to right, inputs on
the left) showing every value's name, data and grad, and every op. :class:`GraphPlan`
decides which tensors are drawn, of which kind and under which DOT names; the restyled
view (:mod:`ad_magic.graph_view`) lays out the same plan once and finds its nodes again
in the SVG by those names.

Reading the picture: blue rounded boxes are leaves (the inputs you differentiate with
respect to), small dashed grey boxes are constants, the amber box with a thick border is
the output, white boxes are intermediate values, and purple ellipses are ops. Edges
leaving an array carry its shape.

Labels are plain ASCII on purpose (``grad``, not ``dL/dx``): the static ``dot`` of
``graphviz-pure`` sizes other characters as a space. Every piece of user text is escaped
for DOT's HTML-like labels by :func:`label_escape` (and Graphviz escapes it again in the
SVG), so a name such as ``<script>`` prints literally and never reaches the page as markup.
"""
from __future__ import annotations

import re
from collections import deque

import graphviz
import numpy as np

from .adapters import ForeignNode, adapt, adapt_names
from .engine import Tensor, topological_order
from .formatting import format_number, format_value, printable
from .render import find_dot

__all__ = ["DEFAULT_MAX_NODES", "draw_computation_graph", "GraphPlan"]

DEFAULT_MAX_NODES = 300
LARGE_GRAPH = 200            # from this many value nodes on, bound dot's network simplex
LONG_EDGES = 4000            # above this many virtual nodes (edge length in ranks), straight edges
MAX_NAME_CHARS = 32

FONT = "Helvetica"
SVG_FONT = "Helvetica,Arial,sans-serif"
FONT_SIZE = 11.0

# Light fills with dark text: nodes read the same on light and dark notebook themes.
# Edges are a mid grey, visible on both backgrounds.
TEXT = "#111827"
GRAD_TEXT = "#065f46"
CHANGED = "#c2410c"
EDGE = "#64748b"
KIND_STYLE = {              # fill, border
    "leaf": ("#dbeafe", "#1d4ed8"),
    "const": ("#f1f5f9", "#94a3b8"),
    "value": ("#f8fafc", "#475569"),
    "output": ("#fef3c7", "#b45309"),
    "op": ("#ede9fe", "#6d28d9"),
    "more": ("#fff7ed", "#c2410c"),
}
HIGHLIGHT = ("#fecaca", "#dc2626")
KIND_PENWIDTH = {"leaf": 1.2, "const": 1.0, "value": 1.2, "output": 2.5, "op": 1.2, "more": 1.5}

# Numbers are printed in at most this many characters, so the layout can reserve room
# for any value: a placeholder of that many zeros (the widest digits) is laid out.
SCALAR_CHARS = 9
STAT_CHARS = 8


# --------------------------------------------------------------------------- text

_ZEROS_SCALAR = "0" * SCALAR_CHARS
_ZEROS_SUMMARY = f"mean {'0' * STAT_CHARS} [{'0' * STAT_CHARS}, {'0' * STAT_CHARS}]"

_LABEL_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;_+-*/=()!?#%@^~`$")
_LABEL_TABLE = {c: (ch if ch in _LABEL_SAFE else f"&#{c};") for c, ch in ((c, chr(c)) for c in range(128))}
_LABEL_TABLE[ord("\\")] = "\\\\"
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def label_escape(text: str) -> str:
    """Text made safe for a DOT HTML-like label: every character that is not plainly
    safe becomes a numeric character reference (some dots choke even on a lone ``]``).
    Dot reads backslash escapes after those references (``\\N`` is the node's name),
    so a backslash is doubled instead."""
    text = printable(text).translate(_LABEL_TABLE)
    return _NON_ASCII.sub(lambda m: f"&#{ord(m.group())};", text)


_TOKEN_END = re.compile(r"[\s.,_:;(\[]")


def short_name(name: str) -> str:
    """A display name of at most MAX_NAME_CHARS characters: a longer one is cut after a
    whole token (``layer0.weight…``, not ``layer0.wei…``) and ``…`` marks the cut (the
    node card shows the whole name)."""
    if len(name) <= MAX_NAME_CHARS:
        return name
    head = name[: MAX_NAME_CHARS - 1]
    cuts = [m.start() for m in _TOKEN_END.finditer(head) if m.start() >= MAX_NAME_CHARS // 2]
    return (head[: cuts[-1]] if cuts else head).rstrip() + "…"


def scalar_text(value) -> str:
    """A number as a node shows it: at most SCALAR_CHARS characters."""
    return format_number(value, SCALAR_CHARS)


def summary_text(array) -> str:
    """An array's ``mean m [min, max]`` (or ``all v``, ``empty``) as a node shows it."""
    return format_value(array, STAT_CHARS, shape=False)


def value_lines(array: np.ndarray, const: bool, *, placeholder: bool) -> list:
    """The data lines of a value node: one for a scalar, shape + summary for an array.
    With ``placeholder``, the widest text any value could need (the layout's room)."""
    if array.ndim == 0:
        number = _ZEROS_SCALAR if placeholder and not const else scalar_text(array)
        return [number if const else f"data {number}"]
    summary = _ZEROS_SUMMARY if placeholder and not const else summary_text(array)
    return [f"shape {tuple(array.shape)}", f"data {summary}"]


def grad_line(grad, ndim: int, *, placeholder: bool) -> str:
    """The grad line of a value node ("" before backward reached it)."""
    if placeholder:
        return "grad " + (_ZEROS_SCALAR if ndim == 0 else _ZEROS_SUMMARY)
    if grad is None:
        return ""
    grad = np.asarray(grad)
    return "grad " + (scalar_text(grad) if grad.ndim == 0 else summary_text(grad))


# --------------------------------------------------------------------------- the plan

def check_tensor(tensor, what: str) -> None:
    """A TypeError, in one sentence naming the type, for anything but a Tensor."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what} needs a Tensor (the result of a computation), got {type(tensor).__name__}; "
                        f"wrap a value in Tensor(...) first.")


class GraphPlan:
    """Which tensors are drawn, in which order, of which kind, under which DOT names.

    ``tensors`` are the drawn tensors in topological order (operands first, output
    last); tensor ``i`` is the DOT node ``v{i}`` and its op ``f{i}``. ``kinds[i]`` is
    leaf, const, value or output; ``names[i]`` its display name or None;
    ``parents[i]`` the position of each of its operands (repeats kept, -1 when not drawn).
    """

    def __init__(self, output: Tensor, names: dict | None, max_nodes: int):
        if max_nodes < 1:
            raise ValueError(f"max_nodes must be at least 1, got {max_nodes}")
        everything = output.graph.order_from(output) if isinstance(output, ForeignNode) else topological_order(output)
        order = everything
        if len(everything) > max_nodes:
            keep = _nearest(output, max_nodes)
            order = [t for t in everything if id(t) in keep]
        self.output = output
        self.max_nodes = max_nodes
        self.tensors = order
        self.index = {id(t): i for i, t in enumerate(order)}
        self.truncated = len(everything) - len(order)
        by_id = {id(t): n for t, n in (names or {}).items()}
        self.names = []
        self.kinds = []
        for t in order:
            name = by_id.get(id(t)) or t.name
            self.names.append(short_name(printable(name)) if name is not None and str(name).strip() else None)
            if t is output:
                kind = "output"
            elif t._function is not None:
                kind = "value"
            elif t.requires_grad:
                kind = "leaf"
            else:
                kind = "const"
            self.kinds.append(kind)
        self.parents = [
            tuple(self.index.get(id(p), -1) for p in t.parents) if t._function is not None else ()
            for t in order
        ]

    def drawn_per_use(self, i: int) -> bool:
        """An unnamed constant (a number such as the 2 in ``x ** 2``) is drawn once per use,
        next to its op. The engine shares one constant tensor between all uses of a number;
        drawn once, it would pull edges across the whole picture (and slow dot down)."""
        return self.kinds[i] == "const" and self.names[i] is None

    def long_edges(self) -> int:
        """Roughly how many virtual nodes dot adds to route edges across ranks.

        Ops and their values sit at their longest-path rank; a leaf sits just before
        its first consumer, so only its edges to later consumers are long.
        """
        rank = [0] * len(self.tensors)
        consumers = [[] for _ in self.tensors]
        for i, parents in enumerate(self.parents):
            if parents:
                op_rank = 1 + max((rank[j] for j in parents if j >= 0), default=0)
                rank[i] = op_rank + 1
                for j in parents:
                    if j >= 0:
                        consumers[j].append(op_rank)
        total = 0
        for i, ranks in enumerate(consumers):
            if ranks:
                start = rank[i] if self.parents[i] else min(ranks) - 1
                total += sum(r - start - 1 for r in ranks)
        return total

    def signature(self) -> tuple:
        """What must match for another graph to reuse this layout."""
        return tuple(
            (t._function, tuple(t.shape), kind == "const", parents, len(t.parents))
            for t, kind, parents in zip(self.tensors, self.kinds, self.parents)
        ) + (self.truncated,)

    def node_lines(self, i: int, data, grad, *, show_grad: bool, placeholder: bool) -> list:
        """(role, text) lines of value node i; roles: name, data, grad."""
        kind = self.kinds[i]
        lines = []
        if self.names[i]:
            lines.append(("name", self.names[i]))
        data = np.asarray(data)
        lines.extend(("data", text) for text in value_lines(data, kind == "const", placeholder=placeholder))
        if show_grad and kind != "const":
            text = grad_line(grad, data.ndim, placeholder=placeholder)
            if text:
                lines.append(("grad", text))
        return lines


def _nearest(output: Tensor, limit: int) -> set:
    """Ids of the ``limit`` tensors nearest the output (breadth first, operands in order)."""
    seen = {id(output)}
    queue = deque([output])
    while queue and len(seen) < limit:
        t = queue.popleft()
        for p in t.parents:
            if id(p) not in seen:
                seen.add(id(p))
                queue.append(p)
                if len(seen) >= limit:
                    break
    return seen


# --------------------------------------------------------------------------- DOT

def _html_label(lines: list) -> str:
    parts = []
    for role, text in lines:
        text = label_escape(text)
        if role == "name":
            parts.append(f"<b>{text}</b>")
        elif role == "grad":
            parts.append(f'<font color="{GRAD_TEXT}">{text}</font>')
        else:
            parts.append(text)
    return "<" + "<br/>".join(parts) + ">"


_CONST_ATTRS = {"style": "filled,dashed", "fontsize": "9", "margin": "0.06,0.03", "height": "0.3"}


def build_dot(plan: GraphPlan, *, show_grad: bool, placeholder: bool) -> graphviz.Digraph:
    """The Digraph of ``plan``; with ``placeholder``, every number is laid out as the
    widest text it could become (the restyled view's layout)."""
    graph_attr = {
        "rankdir": "LR", "bgcolor": "transparent", "nodesep": "0.25", "ranksep": "0.35",
        "fontname": FONT,
    }
    if len(plan.tensors) >= LARGE_GRAPH:
        # Most of dot's time on big graphs goes to the network simplex; bound it.
        graph_attr.update(nslimit="0.2", nslimit1="0.2")
    if plan.long_edges() > LONG_EDGES:
        # Edges spanning many ranks make thousands of virtual nodes, and routing splines
        # around them takes seconds: straight lines keep the layout time bounded.
        graph_attr["splines"] = "line"
    dot = graphviz.Digraph(
        "computation_graph",
        graph_attr=graph_attr,
        node_attr={"fontname": FONT, "fontsize": f"{FONT_SIZE:g}", "fontcolor": TEXT,
                   "style": "filled", "margin": "0.12,0.06"},
        edge_attr={"color": EDGE, "fontcolor": EDGE, "fontname": FONT, "fontsize": "9",
                   "arrowsize": "0.7"},
    )
    if plan.truncated:
        fill, border = KIND_STYLE["more"]
        dot.node("more", f"... {plan.truncated} earlier nodes not shown (max_nodes={plan.max_nodes})",
                 shape="note", fillcolor=fill, color=border, penwidth="1.5")
    const_fill, const_border = KIND_STYLE["const"]
    for i, t in enumerate(plan.tensors):
        kind = plan.kinds[i]
        if plan.drawn_per_use(i):
            continue  # drawn beside each op that uses it, below
        fill, border = KIND_STYLE[kind]
        lines = plan.node_lines(i, t.data, t.grad, show_grad=show_grad, placeholder=placeholder)
        attrs = {"shape": "box", "fillcolor": fill, "color": border,
                 "penwidth": f"{KIND_PENWIDTH[kind]:g}"}
        if kind == "leaf":
            attrs["style"] = "filled,rounded"
        elif kind == "const":
            attrs.update(_CONST_ATTRS)
        dot.node(f"v{i}", _html_label(lines), **attrs)
        if t._function is None:
            continue
        fill, border = KIND_STYLE["op"]
        dot.node(f"f{i}", f"<{label_escape(str(t._function))}>", shape="ellipse", fillcolor=fill,
                 color=border, height="0.3", margin="0.04,0.02")
        fed_by_more = False
        for k, (p, j) in enumerate(zip(t.parents, plan.parents[i])):
            if j >= 0:
                label = str(tuple(p.shape)) if p.ndim else None
                source = f"v{j}"
                if plan.drawn_per_use(j):
                    source = f"c{j}_{i}_{k}"
                    lines = plan.node_lines(j, p.data, None, show_grad=False, placeholder=False)
                    dot.node(source, _html_label(lines), shape="box", fillcolor=const_fill, color=const_border,
                             penwidth=f"{KIND_PENWIDTH['const']:g}", **_CONST_ATTRS)
                dot.edge(source, f"f{i}", label=label)
            elif not fed_by_more:
                dot.edge("more", f"f{i}", style="dashed")
                fed_by_more = True
        dot.edge(f"f{i}", f"v{i}")
    return dot


def draw_computation_graph(tensor, *, names=None, max_nodes=DEFAULT_MAX_NODES, show_grad=True):
    """The graph that produced ``tensor`` as a ``graphviz.Digraph``, inputs on the left.

    ``names`` maps tensors to display names (the ``%%autodiff`` magic passes the user's
    variable names); otherwise a tensor's own ``name`` is shown. Value nodes show data
    (a number, or shape and ``mean [min, max]`` for arrays) and, when ``show_grad`` and
    after ``backward()``, the grad. Above ``max_nodes`` tensors only the ones nearest
    the output are drawn, fed by one node saying how many were left out. Anything but
    a Tensor is a TypeError. Graphs built by other code (the practical's own Tensor, micrograd,
    PyTorch) are drawn through :func:`ad_magic.adapters.adapt`.
    """
    tensor = adapt(tensor, "draw_computation_graph")
    names = adapt_names(tensor, names)
    find_dot()  # without a system dot, points the graphviz package's own rendering at ours
    return build_dot(GraphPlan(tensor, names, max_nodes), show_grad=show_grad, placeholder=False)
