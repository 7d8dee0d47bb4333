"""The computation graph on screen.

Two ways to draw the graph that produced a tensor:

- :func:`draw_computation_graph` returns a ``graphviz.Digraph`` (left to right, inputs on
  the left) showing every value's name, data and grad, and every op. A tensor that ends
  a notebook cell shows this drawing: ``Tensor._repr_svg_`` imports :func:`repr_svg`
  from here when Jupyter asks for it (the engine itself imports nothing of rendering).
- :class:`GraphView` lays the graph out once (one run of ``dot``) and then re-styles the
  SVG by node — highlight the node whose ``_backward`` runs, show or blank grads, mark
  the grads that just changed, show another iteration's values — without a new layout,
  so nodes never jump while a widget steps through backprop or gradient descent.

Reading the picture: blue rounded boxes are leaves (the inputs you differentiate with
respect to), small dashed grey boxes are constants, the amber box with a thick border is
the output, white boxes are intermediate values, and purple ellipses are ops. Edges
leaving an array carry its shape.

Labels are plain ASCII on purpose (``grad``, not ``dL/dx``): the static ``dot`` of
``graphviz-pure`` sizes other characters as a space. Every piece of user text is escaped
twice over — once for DOT's HTML-like labels, and Graphviz escapes it again in the SVG —
so a name such as ``<script>`` prints literally and never reaches the page as markup.
"""
from __future__ import annotations

import html
import re
from collections import deque
from typing import Optional

import graphviz
import numpy as np

from .engine import Tensor, topological_order
from .render import RenderError, find_dot, render_svg

__all__ = ["DEFAULT_MAX_NODES", "draw_computation_graph", "GraphView"]

DEFAULT_MAX_NODES = 300
REPR_TIMEOUT = 20.0          # seconds a notebook repr may spend in dot
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

def _fmt(value: float, width: int) -> str:
    """A number in at most ``width`` characters, with as many significant digits as fit."""
    for digits in (4, 3, 2, 1):
        text = f"{value:.{digits}g}"
        if len(text) <= width:
            return text
    return f"{value:.0e}"


def _summary(array: np.ndarray) -> str:
    """``mean m [min, max]`` of an array, each number in STAT_CHARS characters."""
    if array.size == 0:
        return "empty"
    try:
        with np.errstate(all="ignore"):
            mean, low, high = float(array.mean()), float(array.min()), float(array.max())
    except (TypeError, ValueError):
        return "?"
    return f"mean {_fmt(mean, STAT_CHARS)} [{_fmt(low, STAT_CHARS)}, {_fmt(high, STAT_CHARS)}]"


def _scalar(array: np.ndarray) -> str:
    try:
        return _fmt(float(array), SCALAR_CHARS)
    except (TypeError, ValueError):
        return "?"


_ZEROS_SCALAR = "0" * SCALAR_CHARS
_ZEROS_SUMMARY = f"mean {'0' * STAT_CHARS} [{'0' * STAT_CHARS}, {'0' * STAT_CHARS}]"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _printable(text: str) -> str:
    """Control characters as visible escapes (``\\n``): a label stays on one line and
    the SVG stays valid XML."""
    return _CONTROL.sub(lambda m: _CONTROL_NAMES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def _escape(text: str) -> str:
    """Text made safe for SVG/HTML: it prints literally and is never markup."""
    return html.escape(_printable(text), quote=True)


_LABEL_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;_+-*/=()!?#%@^~`$")
_LABEL_TABLE = {c: (ch if ch in _LABEL_SAFE else f"&#{c};") for c, ch in ((c, chr(c)) for c in range(128))}
_LABEL_TABLE[ord("\\")] = "\\\\"
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _label_escape(text: str) -> str:
    """Text made safe for a DOT HTML-like label: every character that is not plainly
    safe becomes a numeric character reference (some dots choke even on a lone ``]``).
    Dot reads backslash escapes after those references (``\\N`` is the node's name),
    so a backslash is doubled instead."""
    text = _printable(text).translate(_LABEL_TABLE)
    return _NON_ASCII.sub(lambda m: f"&#{ord(m.group())};", text)


def _short(name: str) -> str:
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 3] + "..."


def _value_lines(array: np.ndarray, const: bool, *, placeholder: bool) -> list:
    """The data lines of a value node: one for a scalar, shape + summary for an array."""
    if array.ndim == 0:
        number = _ZEROS_SCALAR if placeholder and not const else _scalar(array)
        return [number if const else f"data {number}"]
    summary = _ZEROS_SUMMARY if placeholder and not const else _summary(array)
    return [f"shape {tuple(array.shape)}", f"data {summary}"]


def _data_texts(data, const: bool) -> list:
    """The data lines of a value node drawn with ``data`` (restyle's fast path)."""
    if type(data) is np.ndarray and data.ndim == 0 or isinstance(data, float):
        number = _scalar(data)
        return [number if const else "data " + number]
    return _value_lines(np.asarray(data), const, placeholder=False)


def _grad_text(grad) -> str:
    if type(grad) is np.ndarray and grad.ndim == 0 or isinstance(grad, float):
        return "grad " + _scalar(grad)
    grad = np.asarray(grad)
    return "grad " + (_scalar(grad) if grad.ndim == 0 else _summary(grad))


def _grad_line(grad, shape_ndim: int, *, placeholder: bool) -> str:
    if placeholder:
        return "grad " + (_ZEROS_SCALAR if shape_ndim == 0 else _ZEROS_SUMMARY)
    if grad is None:
        return ""
    grad = np.asarray(grad)
    return "grad " + (_scalar(grad) if grad.ndim == 0 else _summary(grad))


# --------------------------------------------------------------------------- the plan

class _Plan:
    """Which tensors are drawn, in which order, of which kind, under which DOT names."""

    def __init__(self, output: Tensor, names: Optional[dict], max_nodes: int):
        if max_nodes < 1:
            raise ValueError(f"max_nodes must be at least 1, got {max_nodes}")
        everything = topological_order(output)
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
            name = by_id.get(id(t)) or getattr(t, "name", None)
            self.names.append(_short(_printable(str(name))) if name is not None and str(name).strip() else None)
            if t is output:
                kind = "output"
            elif t._function is not None:
                kind = "value"
            elif getattr(t, "requires_grad", True):
                kind = "leaf"
            else:
                kind = "const"
            self.kinds.append(kind)
        # parents[i]: for each operand of tensor i (in order, repeats kept), its index
        # among the drawn tensors, or -1 when it was left out.
        self.parents = [
            tuple(self.index.get(id(p), -1) for p in t._prev) if t._function is not None else ()
            for t in order
        ]

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
            (t._function, tuple(np.shape(t.data)), kind == "const", parents, len(t._prev))
            for t, kind, parents in zip(self.tensors, self.kinds, self.parents)
        ) + (self.truncated,)


def _nearest(output: Tensor, limit: int) -> set:
    """Ids of the ``limit`` tensors nearest the output (breadth first, operands in order)."""
    seen = {id(output)}
    queue = deque([output])
    while queue and len(seen) < limit:
        t = queue.popleft()
        for p in t._prev:
            if id(p) not in seen:
                seen.add(id(p))
                queue.append(p)
                if len(seen) >= limit:
                    break
    return seen


def _node_lines(plan: _Plan, i: int, data, grad, *, show_grad: bool, placeholder: bool) -> list:
    """(role, text) lines of value node i; roles: name, data, grad."""
    kind = plan.kinds[i]
    lines = []
    if plan.names[i]:
        lines.append(("name", plan.names[i]))
    data = np.asarray(data)
    lines.extend(("data", text) for text in _value_lines(data, kind == "const", placeholder=placeholder))
    if show_grad and kind != "const":
        text = _grad_line(grad, data.ndim, placeholder=placeholder)
        if text:
            lines.append(("grad", text))
    return lines


def _html_label(lines: list) -> str:
    parts = []
    for role, text in lines:
        text = _label_escape(text)
        if role == "name":
            parts.append(f"<b>{text}</b>")
        elif role == "grad":
            parts.append(f'<font color="{GRAD_TEXT}">{text}</font>')
        else:
            parts.append(text)
    return "<" + "<br/>".join(parts) + ">"


def _build_dot(plan: _Plan, *, show_grad: bool, placeholder: bool) -> graphviz.Digraph:
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
    for i, t in enumerate(plan.tensors):
        kind = plan.kinds[i]
        if _drawn_per_use(plan, i):
            continue  # drawn beside each op that uses it, below
        fill, border = KIND_STYLE[kind]
        lines = _node_lines(plan, i, t.data, t.grad, show_grad=show_grad, placeholder=placeholder)
        attrs = {"shape": "box", "fillcolor": fill, "color": border,
                 "penwidth": f"{KIND_PENWIDTH[kind]:g}"}
        if kind == "leaf":
            attrs["style"] = "filled,rounded"
        elif kind == "const":
            attrs.update(style="filled,dashed", fontsize="9", margin="0.06,0.03", height="0.3")
        dot.node(f"v{i}", _html_label(lines), **attrs)
        if t._function is None:
            continue
        fill, border = KIND_STYLE["op"]
        dot.node(f"f{i}", f"<{_label_escape(str(t._function))}>", shape="ellipse", fillcolor=fill, color=border,
                 height="0.3", margin="0.04,0.02")
        fed_by_more = False
        for k, (p, j) in enumerate(zip(t._prev, plan.parents[i])):
            if j >= 0:
                label = str(tuple(np.shape(p.data))) if np.ndim(p.data) else None
                source = f"v{j}"
                if _drawn_per_use(plan, j):
                    source = f"c{j}_{i}_{k}"
                    lines = _node_lines(plan, j, p.data, None, show_grad=False, placeholder=False)
                    fill, border = KIND_STYLE["const"]
                    dot.node(source, _html_label(lines), shape="box", fillcolor=fill, color=border,
                             penwidth=f"{KIND_PENWIDTH['const']:g}", style="filled,dashed", fontsize="9",
                             margin="0.06,0.03", height="0.3")
                dot.edge(source, f"f{i}", label=label)
            elif not fed_by_more:
                dot.edge("more", f"f{i}", style="dashed")
                fed_by_more = True
        dot.edge(f"f{i}", f"v{i}")
    return dot


def _drawn_per_use(plan: _Plan, i: int) -> bool:
    """An unnamed constant (a number such as the 2 in ``x ** 2``) is drawn once per use,
    next to its op. The engine shares one constant tensor between all uses of a number;
    drawn once, it would pull edges across the whole picture (and slow dot down)."""
    return plan.kinds[i] == "const" and plan.names[i] is None


def draw_computation_graph(tensor, *, names=None, max_nodes=DEFAULT_MAX_NODES, show_grad=True):
    """The graph that produced ``tensor`` as a ``graphviz.Digraph``, inputs on the left.

    ``names`` maps tensors to display names (the ``%%autodiff`` magic passes the user's
    variable names); otherwise a tensor's own ``name`` is shown. Value nodes show data
    (a number, or shape and ``mean [min, max]`` for arrays) and, when ``show_grad`` and
    after ``backward()``, the grad. Above ``max_nodes`` tensors only the ones nearest
    the output are drawn, fed by one node saying how many were left out.
    """
    find_dot()  # without a system dot, points the graphviz package's own rendering at ours
    return _build_dot(_Plan(tensor, names, max_nodes), show_grad=show_grad, placeholder=False)


# --------------------------------------------------------------------------- GraphView

_NODE_GROUP = re.compile(r'(<g id="[^"]*" class="node">\s*<title>([^<]*)</title>\s*)(.*?)(</g>)', re.S)
# The outline of a box: a polygon, or a path when its corners are rounded.
_OUTLINE = re.compile(r'<(?:polygon\b[^>]*?\bpoints|path\b[^>]*?\bd)="([^"]*)"')
_POINT = re.compile(r'(-?[\d.]+(?:e-?\d+)?),(-?[\d.]+(?:e-?\d+)?)')
_ELLIPSE = re.compile(r'<ellipse\b[^>]*?\bcx="([-\d.e]+)" cy="([-\d.e]+)" rx="([-\d.e]+)" ry="([-\d.e]+)"')
_TEXT_Y = re.compile(r'<text\b[^>]*?\by="([-\d.e]+)"')
_SVG_SIZE = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"\s+viewBox="([-\d.]+) ([-\d.]+) ([\d.]+) ([\d.]+)"')


class _ValueSlot:
    """One value node of the laid-out SVG, pre-formatted so a restyle only joins strings.

    Its text lines were laid out as [name] + data lines + [grad placeholder]; the name
    never changes, so its ``<text>`` element is built (and escaped) once here.
    """

    __slots__ = ("name", "data_heads", "grad_head", "grad_marked", "const", "plain", "lit", "marked")

    def __init__(self, head: str, points: str, text_ys: list, lines: list, kind: str):
        pairs = _POINT.findall(points)
        xs = [float(x) for x, _ in pairs]
        ys = [float(y) for _, y in pairs]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        self.const = kind == "const"
        dash = ' stroke-dasharray="4,2"' if self.const else ""
        box = (f' x="{x0:.2f}" y="{y0:.2f}" width="{x1 - x0:.2f}" height="{y1 - y0:.2f}"'
               f' rx="{5 if kind == "leaf" else 0}"/>\n')
        size = 9.0 if self.const else FONT_SIZE
        heads = [f'<text text-anchor="middle" x="{(x0 + x1) / 2:.2f}" y="{y}" font-family="{SVG_FONT}"'
                 f' font-size="{size:.2f}"' for y in text_ys]
        roles = [role for role, _ in lines]
        self.name = ""
        if roles[0] == "name":
            self.name = f'{heads[0]} font-weight="bold" fill="{TEXT}">{_escape(lines[0][1])}</text>\n'
        self.data_heads = [h + f' fill="{TEXT}">' for h, role in zip(heads, roles) if role == "data"]
        self.grad_head = self.grad_marked = None
        if roles[-1] == "grad":
            self.grad_head = f'{heads[-1]} fill="{GRAD_TEXT}">'
            self.grad_marked = f'{heads[-1]} font-weight="bold" fill="{CHANGED}">'

        def draw(fill, stroke, width):  # the node's start, box and name: all but numbers
            return f'{head}<rect fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}{box}{self.name}'
        self.plain = draw(*KIND_STYLE[kind], KIND_PENWIDTH[kind])
        self.lit = draw(*HIGHLIGHT, 3)
        self.marked = draw(KIND_STYLE[kind][0], CHANGED, 2.5)


class _OpSlot:
    """One op node of the laid-out SVG, drawn plain or highlighted (both prebuilt)."""

    __slots__ = ("plain", "lit")

    def __init__(self, head: str, ellipse: tuple, text_y: str, label: str):
        cx, cy, rx, ry = ellipse
        text = (f'<text text-anchor="middle" x="{cx}" y="{text_y}" font-family="{SVG_FONT}"'
                f' font-size="{FONT_SIZE:.2f}" fill="{TEXT}">{label}</text>\n')

        def draw(fill, stroke, width):
            return (f'{head}<ellipse fill="{fill}" stroke="{stroke}" stroke-width="{width}"'
                    f' cx="{cx}" cy="{cy}" rx="{rx}" ry="{ry}"/>\n{text}</g>')
        self.plain = draw(*KIND_STYLE["op"], KIND_PENWIDTH["op"])
        self.lit = draw(*HIGHLIGHT, 3)


class GraphView:
    """A computation graph laid out once and re-styled cheaply.

    ``nodes`` lists the drawn value tensors in topological order (operands first,
    output last); ``svg()`` draws them with any values, grads, highlight and marks,
    always in the same positions. ``align()`` maps another graph of the same structure
    (the next gradient-descent iteration) onto these nodes, so one layout serves all.
    """

    def __init__(self, tensor, *, names=None, max_nodes=DEFAULT_MAX_NODES):
        self._plan = _Plan(tensor, names, max_nodes)
        self.output = tensor
        self.nodes = list(self._plan.tensors)
        self.truncated = self._plan.truncated
        self.source = _build_dot(self._plan, show_grad=True, placeholder=True).source
        self._signature = None
        self._parse(render_svg(self.source))

    # -- layout, once
    def _parse(self, svg: str) -> None:
        plan = self._plan
        self._pieces = []         # fixed strings; None marks where a node is drawn
        self._slots = []          # ('v' | 'f', index, slot) per None in _pieces
        position = 0
        for match in _NODE_GROUP.finditer(svg):
            head, title, body, _ = match.groups()
            title = html.unescape(title)
            slot = None
            if title[:1] in "vf" and title[1:].isdigit() and int(title[1:]) < len(plan.tensors):
                i = int(title[1:])
                text_ys = _TEXT_Y.findall(body)
                if title[0] == "v":
                    points = _OUTLINE.search(body)
                    expected = _node_lines(plan, i, plan.tensors[i].data, None,
                                           show_grad=True, placeholder=True)
                    if points and len(text_ys) == len(expected):
                        slot = ("v", i, _ValueSlot(head, points.group(1), text_ys, expected,
                                                   plan.kinds[i]))
                else:
                    ellipse = _ELLIPSE.search(body)
                    if ellipse and len(text_ys) == 1:
                        label = _escape(str(plan.tensors[i]._function))
                        slot = ("f", i, _OpSlot(head, ellipse.groups(), text_ys[0], label))
            if slot is None:
                continue   # drawn as dot drew it (e.g. the "not shown" node)
            self._pieces.append(svg[position:match.start()])
            self._pieces.append(None)
            self._slots.append(slot)
            position = match.end()
        tail = svg[position:]
        end = tail.rfind("</svg>")
        self._pieces.append(tail[:end] if end >= 0 else tail)
        self._end = tail[end:] if end >= 0 else ""
        self._size = _SVG_SIZE.search(self._pieces[0])

    # -- mapping tensors to positions
    def index(self, tensor) -> int:
        """Position of ``tensor`` in ``nodes``; KeyError when it is not drawn."""
        try:
            return self._plan.index[id(tensor)]
        except KeyError:
            raise KeyError(f"tensor {getattr(tensor, 'name', None) or '(unnamed)'} is not drawn in this graph") from None

    def align(self, other):
        """``other``'s tensors aligned with ``nodes`` when its graph has the same structure
        (same ops, shapes and wiring in topological order), else None."""
        if other is self.output:
            return list(self.nodes)
        if self._signature is None:
            self._signature = self._plan.signature()
        plan = _Plan(other, None, self._plan.max_nodes)
        return list(plan.tensors) if plan.signature() == self._signature else None

    def _position(self, item) -> int:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -len(self.nodes) <= item < len(self.nodes):
                raise IndexError(f"node index {item} out of range for {len(self.nodes)} nodes")
            return int(item) % len(self.nodes)
        return self.index(item)

    # -- restyle, many times
    def svg(self, *, values=None, grads=None, highlight=None, changed=(), caption=None) -> str:
        """The laid-out graph drawn with the given state (no new layout).

        ``values`` / ``grads`` are sequences aligned with ``nodes`` (default: each
        node's current ``data`` / ``grad``; a None grad is drawn blank). ``highlight``
        (index or tensor) marks the value node whose ``_backward`` runs and its op.
        ``changed`` (indices or tensors) marks grads that were just updated.
        ``caption`` is a line of text shown under the picture.
        """
        n = len(self.nodes)
        if values is None:
            values = [t.data for t in self.nodes]
        if grads is None:
            grads = [t.grad for t in self.nodes]
        if len(values) != n or len(grads) != n:
            raise ValueError(f"values and grads must have one entry per node ({n}), "
                             f"got {len(values)} and {len(grads)}")
        lit = -1 if highlight is None else self._position(highlight)
        marked = {self._position(c) for c in changed}
        out = []
        slots = iter(self._slots)
        for piece in self._pieces:
            if piece is not None:
                out.append(piece)
                continue
            role, i, slot = next(slots)
            if role == "f":
                out.append(slot.lit if i == lit else slot.plain)
                continue
            out.append(slot.lit if i == lit else slot.marked if i in marked else slot.plain)
            # Numbers, shapes and summaries are made of safe characters: no escaping needed.
            for text_head, text in zip(slot.data_heads, _data_texts(values[i], slot.const)):
                out.append(f"{text_head}{text}</text>\n")
            grad = grads[i]
            if slot.grad_head is not None and grad is not None:
                out.append(f"{slot.grad_marked if i in marked else slot.grad_head}{_grad_text(grad)}</text>\n")
            out.append("</g>")
        if caption is not None:
            out[0], caption_group = self._caption(out[0], str(caption))
            out.append(caption_group)
        out.append(self._end)
        return "".join(out)

    def _repr_svg_(self) -> str:
        try:
            return self.svg()
        except Exception as exc:   # a repr never raises
            return _message_svg(f"Graph not drawn: {type(exc).__name__}: {exc}")

    # -- caption under the picture
    CAPTION_HEIGHT = 22.0

    def _caption(self, head: str, text: str):
        """``head`` (the SVG start tag) grown to make room, and the caption's SVG."""
        if self._size is None:
            return head, ""
        width, height, vx, vy, vw, vh = (float(g) for g in self._size.groups())
        scale = width / vw if vw else 1.0
        needed = max(vw, 16 + 0.56 * FONT_SIZE * len(text))
        grown = (f'<svg width="{needed * scale:.0f}pt" height="{height + self.CAPTION_HEIGHT * scale:.0f}pt"\n'
                 f' viewBox="{vx:.2f} {vy:.2f} {needed:.2f} {vh + self.CAPTION_HEIGHT:.2f}"')
        head = head[: self._size.start()] + grown + head[self._size.end():]
        y = vy + vh + 2
        group = (f'<g class="caption"><rect x="{vx + 2:.2f}" y="{y:.2f}" width="{needed - 4:.2f}" '
                 f'height="{self.CAPTION_HEIGHT - 4:.2f}" rx="3" fill="#f8fafc" stroke="#cbd5e1"/>'
                 f'<text x="{vx + 8:.2f}" y="{y + 13:.2f}" font-family="{SVG_FONT}" '
                 f'font-size="{FONT_SIZE:.2f}" fill="{TEXT}">{_escape(text)}</text></g>\n')
        return head, group


def _message_svg(message: str) -> str:
    """A one-line SVG saying what went wrong (shown instead of a traceback)."""
    text = _escape(message)
    width = 16 + 0.56 * 12 * len(message)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}pt" height="28pt" '
            f'viewBox="0 0 {width:.0f} 28"><rect x="0.5" y="0.5" width="{width - 1:.0f}" height="27" '
            f'fill="#fef2f2" stroke="#dc2626"/><text x="8" y="18" font-family="{SVG_FONT}" '
            f'font-size="12" fill="#7f1d1d">{text}</text></svg>')


def repr_svg(tensor) -> str:
    """Jupyter's picture of a tensor (``Tensor._repr_svg_``): the graph that produced it.
    Never raises."""
    try:
        return render_svg(draw_computation_graph(tensor).source, timeout=REPR_TIMEOUT)
    except RenderError as exc:
        return _message_svg(f"Graph not drawn: {exc}")
    except Exception as exc:
        return _message_svg(f"Graph not drawn: {type(exc).__name__}: {exc}")

