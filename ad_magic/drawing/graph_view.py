"""A computation graph laid out once and re-styled per step: :class:`GraphView`.

:class:`GraphView` runs ``dot`` once on the plan of :mod:`ad_magic.drawing.dot` (with room
reserved for the widest number), then re-styles the SVG by node — highlight the node
whose ``_backward`` runs, show or blank grads, mark the grads that just changed, show
another iteration's values — without a new layout, so nodes never jump while a widget
steps through backprop or gradient descent. Graphviz gives each node a
``<g class="node">`` whose ``<title>`` is its DOT name (``v3``, ``f3``): that is how the
view finds each tensor's node in the SVG again.

For a browser that restyles the picture itself (the stepper's timeline),
:meth:`GraphView.skeleton` gives the same layout with classes and empty text slots.

Also here: the one-line SVG shown instead of a traceback (:func:`message_svg`). How a
widget puts such an SVG inline in HTML (:func:`inline_svg`, :func:`graph_html`) is in
:mod:`ad_magic.drawing.frame` (imported here for the widgets).
"""
from __future__ import annotations

import html
import re

import numpy as np

from ..engine import Tensor
from ..engine.formatting import escape
from .dot import (
    CHANGED,
    DEFAULT_MAX_NODES,
    FONT_SIZE,
    GRAD_TEXT,
    HIGHLIGHT,
    KIND_PENWIDTH,
    KIND_STYLE,
    SVG_FONT,
    TEXT,
    GraphPlan,
    lay_out,
    scalar_text,
    summary_text,
    value_lines,
)
from .frame import graph_html, inline_svg
from .names import normalize_names
from .nodes import as_node

__all__ = ["GraphView", "inline_svg", "graph_html", "message_svg"]

_NODE_GROUP = re.compile(r'(<g id="[^"]*" class="node">\s*<title>([^<]*)</title>\s*)(.*?)(</g>)', re.S)
# The outline of a box: a polygon, or a path when its corners are rounded.
_OUTLINE = re.compile(r'<(?:polygon\b[^>]*?\bpoints|path\b[^>]*?\bd)="([^"]*)"')
_POINT = re.compile(r'(-?[\d.]+(?:e-?\d+)?),(-?[\d.]+(?:e-?\d+)?)')
_ELLIPSE = re.compile(r'<ellipse\b[^>]*?\bcx="([-\d.e]+)" cy="([-\d.e]+)" rx="([-\d.e]+)" ry="([-\d.e]+)"')
_TEXT_Y = re.compile(r'<text\b[^>]*?\by="([-\d.e]+)"')
_SVG_SIZE = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"\s+viewBox="([-\d.]+) ([-\d.]+) ([\d.]+) ([\d.]+)"')


def data_texts(data, const: bool) -> list:
    """The data lines of a value node drawn with ``data`` (restyle's fast path)."""
    if type(data) is np.ndarray and data.ndim == 0 or isinstance(data, float):
        number = scalar_text(data)
        return [number if const else "data " + number]
    return value_lines(np.asarray(data), const)


def grad_text(grad) -> str:
    if type(grad) is np.ndarray and grad.ndim == 0 or isinstance(grad, float):
        return "grad " + scalar_text(grad)
    grad = np.asarray(grad)
    return "grad " + (scalar_text(grad) if grad.ndim == 0 else summary_text(grad))


class _ValueSlot:
    """One value node of the laid-out SVG, pre-formatted so a restyle only joins strings.

    Its text lines were laid out as [name] + data lines + [grad placeholder]; the name
    never changes, so its ``<text>`` element is built (and escaped) once here.
    """

    __slots__ = ("name", "data_heads", "grad_head", "grad_marked", "const", "plain", "lit", "marked", "head",
                 "box", "width", "kind", "data_room", "grad_room")

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
            self.name = f'{heads[0]} font-weight="bold" fill="{TEXT}">{escape(lines[0][1])}</text>\n'
        self.data_heads = [h + f' fill="{TEXT}">' for h, role in zip(heads, roles) if role == "data"]
        self.data_room = [len(text) for role, text in lines if role == "data"]
        self.grad_room = len(lines[-1][1]) if roles[-1] == "grad" else 0
        self.grad_head = self.grad_marked = None
        if roles[-1] == "grad":
            self.grad_head = f'{heads[-1]} fill="{GRAD_TEXT}">'
            self.grad_marked = f'{heads[-1]} font-weight="bold" fill="{CHANGED}">'

        def draw(fill, stroke, width):  # the node's start, box and name: all but numbers
            return f'{head}<rect fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}{box}{self.name}'
        self.plain = draw(*KIND_STYLE[kind], KIND_PENWIDTH[kind])
        self.lit = draw(*HIGHLIGHT, 3)
        self.marked = draw(KIND_STYLE[kind][0], CHANGED, 2.5)
        self.head, self.box, self.width, self.kind = head, box, x1 - x0, kind

    def squeezed(self, head: str) -> str:
        """``head`` of a text wider than the room it was laid out with: squeezed into the box."""
        return head.replace("<text ", f'<text textLength="{max(self.width - 8, 1):.1f}" '
                            'lengthAdjust="spacingAndGlyphs" ', 1)

    def skeleton(self, i: int) -> str:
        """The node for a browser to restyle: classes instead of state, empty texts."""
        fill, stroke = KIND_STYLE[self.kind]
        dash = ' stroke-dasharray="4,2"' if self.const else ""
        head = self.head.replace('class="node"', f'class="node ad-{self.kind}" data-v="{i}" '
                                 f'data-w="{self.width:.1f}"', 1)
        texts = "".join(h.replace("<text ", '<text class="ad-data" ', 1) + "</text>\n" for h in self.data_heads)
        if self.grad_head is not None:
            texts += self.grad_head.replace("<text ", '<text class="ad-grad" ', 1) + "</text>\n"
        return (f'{head}<rect class="ad-box" fill="{fill}" stroke="{stroke}" '
                f'stroke-width="{KIND_PENWIDTH[self.kind]}"{dash}{self.box}'
                f'{self.name.replace("<text ", """<text class="ad-name" """, 1)}{texts}</g>')


class _OpSlot:
    """One op node of the laid-out SVG, drawn plain or highlighted (both prebuilt)."""

    __slots__ = ("plain", "lit", "skeleton_text")

    def __init__(self, head: str, ellipse: tuple, text_y: str, label: str):
        cx, cy, rx, ry = ellipse
        text = (f'<text text-anchor="middle" x="{cx}" y="{text_y}" font-family="{SVG_FONT}"'
                f' font-size="{FONT_SIZE:.2f}" fill="{TEXT}">{label}</text>\n')

        def draw(fill, stroke, width):
            return (f'{head}<ellipse fill="{fill}" stroke="{stroke}" stroke-width="{width}"'
                    f' cx="{cx}" cy="{cy}" rx="{rx}" ry="{ry}"/>\n{text}</g>')
        self.plain = draw(*KIND_STYLE["op"], KIND_PENWIDTH["op"])
        self.lit = draw(*HIGHLIGHT, 3)
        fill, stroke = KIND_STYLE["op"]
        self.skeleton_text = (f'{head}<ellipse class="ad-box" fill="{fill}" stroke="{stroke}" '
                              f'stroke-width="{KIND_PENWIDTH["op"]}" cx="{cx}" cy="{cy}" rx="{rx}" ry="{ry}"/>\n'
                              f'{text}</g>')

    def skeleton(self, i: int) -> str:
        return self.skeleton_text.replace('class="node"', f'class="node ad-op" data-f="{i}"', 1)


_SHAPE = re.compile(r'<(polygon|path) fill="([^"]*)" stroke="([^"]*)"')
_CLUSTER = re.compile(r'<g id="([^"]*)" class="cluster">(\s*<title>cluster_m(\d+)</title>)')


class _ModuleSlot:
    """A collapsed module's box (a double-bordered box computing its output), drawn as dot
    drew it or highlighted at its step; in the skeleton, clickable to open the module."""

    __slots__ = ("plain", "lit", "head", "body", "call")

    def __init__(self, head: str, body: str, call: int):
        fill, stroke = HIGHLIGHT
        self.head, self.body, self.call = head, body, call
        self.plain = f"{head}{body}</g>"
        lit = _SHAPE.sub(lambda m: f'<{m.group(1)} fill="{fill if m.group(2) != "none" else "none"}" '
                         f'stroke="{stroke}"', body)
        self.lit = f"{head}{lit}</g>"

    def skeleton(self, i: int) -> str:
        head = self.head.replace('class="node"', f'class="node ad-op ad-module" data-f="{i}" '
                                 f'data-call="{self.call}"', 1)
        body = _SHAPE.sub(lambda m: f'<{m.group(1)} class="ad-box" fill="{m.group(2)}" stroke="{m.group(3)}"',
                          self.body)
        return f"{head}{body}</g>"


def _tag_clusters(svg: str) -> str:
    """Each open module's box (dot's cluster ``cluster_mK``) tagged with its call K, so a
    browser can highlight it at its steps and open or close it on a click."""
    return _CLUSTER.sub(lambda m: f'<g id="{m.group(1)}" class="cluster ad-module-box" '
                        f'data-call="{m.group(3)}">{m.group(2)}', svg)


class GraphView:
    """A computation graph laid out once and re-styled cheaply.

    ``nodes`` lists the drawn value tensors in topological order (operands first,
    output last); ``svg()`` draws them with any values, grads, highlight and marks,
    always in the same positions. ``align()`` maps another graph of the same structure
    (the next gradient-descent iteration) onto these nodes, so one layout serves all.

    ``modules`` boxes the nodes of each module call (see :class:`~ad_magic.drawing.dot.GraphPlan`;
    ``toggled``: the calls opened or closed by hand), ``rankdir`` picks the orientation
    (``"auto"``: see :func:`~ad_magic.drawing.dot.lay_out`).
    With ``layout=False`` the layout waits for :meth:`lay_out`, which can be told every
    value the view will show, so each box is as wide as its widest text.
    """

    def __init__(self, tensor, *, names=None, max_nodes=DEFAULT_MAX_NODES, modules="auto", rankdir="auto",
                 layout=True, toggled=()):
        tensor = as_node(tensor, "GraphView")     # another library's graph: through its adapter
        names = normalize_names(names, tensor)
        self._plan = GraphPlan(tensor, names, max_nodes, modules, toggled)
        self.output = tensor
        self.nodes = list(self._plan.tensors)
        self.truncated = self._plan.truncated
        self._rankdir = rankdir
        self._signature = None
        self.source = None
        self.rankdir = None
        if layout:
            self.lay_out()

    @property
    def plan(self):
        """The GraphPlan this view was laid out from: which tensors are drawn, their kinds."""
        return self._plan

    # -- layout, once
    def lay_out(self, values=None, grads=None) -> None:
        """Lay the graph out (once): each value node gets room for the widest text it will
        show. ``values[i]`` / ``grads[i]`` list what node ``i`` will show (default: its
        data and grad now); a grad line always has room, as wide as the data while the
        node has no grad. A text wider than its room later is squeezed into it."""
        if self.source is not None:
            raise RuntimeError("GraphView.lay_out: this view is laid out already")
        plan = self._plan
        room = []
        for i, t in enumerate(self.nodes):
            candidates_v = values[i] if values is not None else [t.data]
            candidates_g = grads[i] if grads is not None else [t.grad]
            best = None
            for v in candidates_v or [t.data]:
                for g in candidates_g or [None]:
                    lines = plan.node_lines(i, v, g, show_grad=True, placeholder=True)
                    best = lines if best is None else [max(a, b, key=lambda line: len(line[1]))
                                                       for a, b in zip(best, lines)]
            room.append(best)
        self._room = room
        dot, svg, self.rankdir = lay_out(plan, show_grad=True, room=room, rankdir=self._rankdir)
        self.source = dot.source
        self._parse(svg)

    def _laid_out(self) -> None:
        if self.source is None:
            self.lay_out()

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
                    expected = self._room[i]
                    if points and len(text_ys) == len(expected):
                        slot = ("v", i, _ValueSlot(head, points.group(1), text_ys, expected, plan.kinds[i]))
                elif plan.box_calls[i] is not None:
                    slot = ("f", i, _ModuleSlot(head, body, plan.box_calls[i]))
                else:
                    ellipse = _ELLIPSE.search(body)
                    if ellipse and len(text_ys) == 1:
                        label = escape(str(plan.tensors[i]._function))
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
            name = getattr(tensor, "name", None) or "(unnamed)"
            raise KeyError(f"tensor {name} is not drawn in this graph") from None

    def signature(self) -> tuple:
        """The structure this layout draws (ops, shapes, wiring in topological order)."""
        if self._signature is None:
            self._signature = self._plan.signature()
        return self._signature

    def align(self, other):
        """``other``'s tensors aligned with ``nodes`` when its graph has the same structure
        (same ops, shapes and wiring in topological order), else None."""
        if other is self.output:
            return list(self.nodes)
        if not isinstance(other, Tensor):
            return None
        plan = GraphPlan(other, None, self._plan.max_nodes, self._plan.modules, self._plan.toggled)
        return list(plan.tensors) if plan.signature() == self.signature() else None

    def _position(self, item) -> int:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -len(self.nodes) <= item < len(self.nodes):
                raise IndexError(f"node index {item} out of range for {len(self.nodes)} nodes")
            return int(item) % len(self.nodes)
        return self.index(item)

    # -- restyle, many times
    def svg(self, *, values=None, grads=None, highlight=None, changed=(), caption=None,
            caption_chars=None) -> str:
        """The laid-out graph drawn with the given state (no new layout).

        ``values`` / ``grads`` are sequences aligned with ``nodes`` (default: each
        node's current ``data`` / ``grad``; a None grad is drawn blank). ``highlight``
        (index or tensor) marks the value node whose ``_backward`` runs and its op.
        ``changed`` (indices or tensors) marks grads that were just updated.
        ``caption`` is a line of text shown under the picture; ``caption_chars`` reserves
        room for a caption of that many characters, so pictures of captions of different
        lengths all have the same size. A None value is drawn blank (not computed yet).
        """
        self._laid_out()
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
            if values[i] is not None:
                for text_head, text, room in zip(slot.data_heads, data_texts(values[i], slot.const),
                                                 slot.data_room):
                    out.append(f"{text_head if len(text) <= room else slot.squeezed(text_head)}{text}</text>\n")
            grad = grads[i]
            if slot.grad_head is not None and grad is not None:
                head = slot.grad_marked if i in marked else slot.grad_head
                text = grad_text(grad)
                out.append(f"{head if len(text) <= slot.grad_room else slot.squeezed(head)}{text}</text>\n")
            out.append("</g>")
        if caption is not None:
            out[0], caption_group = self._caption(out[0], str(caption), caption_chars)
            out.append(caption_group)
        out.append(self._end)
        return "".join(out)

    def skeleton(self) -> str:
        """The laid-out graph for a browser to restyle: each value node is a
        ``<g class="node ad-KIND" data-v="i">`` holding a ``rect.ad-box``, its name and empty
        ``text.ad-data`` / ``text.ad-grad`` lines; each op a ``<g class="node ad-op" data-f="i">``.
        Highlight and marks are left to CSS classes (``ad-current``, ``ad-changed``)."""
        self._laid_out()
        out = []
        slots = iter(self._slots)
        for piece in self._pieces:
            if piece is None:
                _, i, slot = next(slots)
                out.append(slot.skeleton(i))
            else:
                out.append(piece)
        out.append(self._end)
        return inline_svg(_tag_clusters("".join(out)))

    def _repr_svg_(self) -> str:
        try:
            return self.svg()
        except Exception as exc:   # a repr never raises
            return message_svg(f"Graph not drawn: {type(exc).__name__}: {exc}")

    # -- caption under the picture
    CAPTION_HEIGHT = 22.0

    def _caption(self, head: str, text: str, chars=None):
        """``head`` (the SVG start tag) grown to make room, and the caption's SVG."""
        if self._size is None:
            return head, ""
        width, height, vx, vy, vw, vh = (float(g) for g in self._size.groups())
        scale = width / vw if vw else 1.0
        needed = max(vw, 16 + 0.56 * FONT_SIZE * max(len(text), chars or 0))
        grown = (f'<svg width="{needed * scale:.0f}pt" height="{height + self.CAPTION_HEIGHT * scale:.0f}pt"\n'
                 f' viewBox="{vx:.2f} {vy:.2f} {needed:.2f} {vh + self.CAPTION_HEIGHT:.2f}"')
        head = head[: self._size.start()] + grown + head[self._size.end():]
        y = vy + vh + 2
        group = (f'<g class="caption"><rect x="{vx + 2:.2f}" y="{y:.2f}" width="{needed - 4:.2f}" '
                 f'height="{self.CAPTION_HEIGHT - 4:.2f}" rx="3" fill="#f8fafc" stroke="#cbd5e1"/>'
                 f'<text x="{vx + 8:.2f}" y="{y + 13:.2f}" font-family="{SVG_FONT}" '
                 f'font-size="{FONT_SIZE:.2f}" fill="{TEXT}">{escape(text)}</text></g>\n')
        return head, group


def message_svg(message: str) -> str:
    """A one-line SVG saying what went wrong (shown instead of a traceback)."""
    text = escape(message)
    width = 16 + 0.56 * 12 * len(message)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}pt" height="28pt" '
            f'viewBox="0 0 {width:.0f} 28"><rect x="0.5" y="0.5" width="{width - 1:.0f}" height="27" '
            f'fill="#fef2f2" stroke="#dc2626"/><text x="8" y="18" font-family="{SVG_FONT}" '
            f'font-size="12" fill="#7f1d1d">{text}</text></svg>')
