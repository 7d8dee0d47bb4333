"""The computation graph as DOT: what is drawn, how each node is labelled and styled.

:func:`draw_computation_graph` returns a ``graphviz.Digraph`` (left to right, inputs on
the left) showing every value's name, data and grad, and every op. :class:`GraphPlan`
decides which tensors are drawn, of which kind and under which DOT names; the restyled
view (:mod:`ad_magic.drawing.graph_view`) lays out the same plan once and finds its nodes again
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
from collections import Counter, deque

import graphviz
import numpy as np

from ..engine import Tensor
from ..engine.formatting import WHOLE_ARRAY, format_number, format_value, printable, whole_array
from ..engine.nn import module_scope
from .frame import FIT_WIDTH_PT, fit_scale, fitted_svg, graph_html, svg_size
from .names import normalize_names
from .nodes import as_node, graph_order
from .render import RenderError, find_dot, render_svg

__all__ = ["DEFAULT_MAX_NODES", "draw_computation_graph", "GraphPlan", "lay_out", "fitted_svg", "fit_scale"]

DEFAULT_MAX_NODES = 300
LARGE_GRAPH = 200            # from this many value nodes on, bound dot's network simplex
LONG_EDGES = 4000            # above this many virtual nodes (edge length in ranks), straight edges
MAX_NAME_CHARS = 32
XLABELS_ABOVE = 400          # virtual nodes of long edges (GraphPlan.long_edges) above which shapes are xlabels
MAIN_EDGE_WEIGHT = "4"       # dot's weight of an edge between drawn values and ops (a constant's: 1)

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

# Numbers are printed in at most this many characters (a vector's entries in fewer).
SCALAR_CHARS = 9
STAT_CHARS = 8
ENTRY_CHARS = 7

# --------------------------------------------------------------------------- text

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
    """An array as a node shows it: whole up to WHOLE_ARRAY entries (``[1.0, -2.0, 3.0]``),
    else ``mean m [min, max]`` (or ``all v``, ``empty``)."""
    array = np.asarray(array)
    if 0 < array.size <= WHOLE_ARRAY:
        return whole_array(array, ENTRY_CHARS)
    return format_value(array, STAT_CHARS, shape=False)


def shows_whole(array) -> bool:
    """Whether a node shows every entry of ``array`` (a number, a small array)."""
    return np.ndim(array) == 0 or np.size(array) <= WHOLE_ARRAY


def value_lines(array: np.ndarray, const: bool) -> list:
    """The data lines of a value node: one line for a number or a small array
    (``data [1.0, -2.0, 3.0]``), shape and summary for a larger array."""
    if array.ndim == 0:
        number = scalar_text(array)
        return [number if const else f"data {number}"]
    if shows_whole(array):
        text = summary_text(array)
        return [text if const else f"data {text}"]
    return [f"shape {tuple(array.shape)}", f"data {summary_text(array)}"]


def grad_line(grad, ndim: int | None = None) -> str:
    """The grad line of a value node ("" before backward reached it)."""
    if grad is None:
        return ""
    grad = np.asarray(grad)
    return "grad " + (scalar_text(grad) if grad.ndim == 0 else summary_text(grad))


# --------------------------------------------------------------------------- the plan

MODULE_VIEWS = ("auto", "expanded", "collapsed", "flat")
# "auto" collapses modules, innermost first, while the drawing has more value nodes than
# this. Measured by laying out chains of a 4-op module with a parameter, expanded, in the
# best orientation, fitted to a 1,000 px output: 11 value nodes are shown at 89 % of
# their size, 16 at 62 %, 21 at 47 % (below MIN_SCALE, the readable floor: it would
# scroll) and 31 at 32 %; collapsed, all of them fit at 100 %. Part D's MLP([1, 3, 1])
# (10 value nodes, shown at 74 %) stays open.
COLLAPSE_ABOVE = 16


def module_label(module) -> str:
    """The name a module's box shows: ``Linear(1→3)`` (the module's own ``label()``;
    for another library's module its class and, when known, its sizes)."""
    label = getattr(module, "label", None)
    if callable(label):
        try:
            return str(label())
        except Exception:   # a label never breaks a drawing
            pass
    n_in = getattr(module, "in_features", None)
    n_out = getattr(module, "out_features", None)
    name = type(module).__name__
    return f"{name}({n_in}→{n_out})" if n_in is not None and n_out is not None else name


def call_title(call) -> str:
    """A module call's title: ``layers[0]: Linear(1→3)``, or the label alone at the top."""
    label = module_label(call.module)
    return f"{call.name}: {label}" if call.name else label


class GraphPlan:
    """Which tensors are drawn, in which order, of which kind, under which DOT names.

    ``tensors`` are the drawn tensors in topological order (operands first, output
    last); tensor ``i`` is the DOT node ``v{i}`` and its op ``f{i}``. ``kinds[i]`` is
    leaf, const, value or output; ``names[i]`` its display name or None;
    ``operands[i]`` the tensors its op takes and ``parents[i]`` their positions (repeats
    kept, -1 when not drawn).

    Nodes made by a module call (:func:`ad_magic.nn.module_scope`) are drawn inside a
    labelled box per call (``calls``; ``cluster[i]`` is the index of the innermost open box
    holding node i, or None). A *collapsed* call is drawn as one box: only its output is
    drawn, computed by an op named after the module (``boxes[i]``: ``Linear(1→3)``) from
    the call's inputs and parameters. ``modules`` picks which calls collapse:
    ``"expanded"`` none, ``"collapsed"`` the innermost ones, ``"flat"`` no boxes at all,
    ``"auto"`` innermost first while more than COLLAPSE_ABOVE values are drawn.
    ``toggled`` lists calls (indices into ``calls``) opened or closed by hand, on top of
    that choice: a collapsed one is drawn open, an open one (with one output) as one box —
    what a click on a module's box does. ``box_calls[i]`` is the call a collapsed box
    computing node i stands for (else None).
    """

    def __init__(self, output: Tensor, names: dict | None, max_nodes: int, modules: str = "auto",
                 toggled=()):
        if max_nodes < 1:
            raise ValueError(f"max_nodes must be at least 1, got {max_nodes}")
        if modules not in MODULE_VIEWS:
            raise ValueError(f"modules must be one of {', '.join(MODULE_VIEWS)}; got {modules!r}")
        everything = graph_order(output)
        order = everything
        if len(everything) > max_nodes:
            keep = _nearest(output, max_nodes)
            order = [t for t in everything if id(t) in keep]
        self.output = output
        self.max_nodes = max_nodes
        self.modules = modules
        self.truncated = len(everything) - len(order)
        self.toggled = tuple(sorted({int(k) for k in toggled}))
        self._scope_calls(order, modules)
        order = [t for t in order if id(t) not in self._hidden]
        self.tensors = order
        self.index = {id(t): i for i, t in enumerate(order)}
        by_id = {id(t): n for t, n in normalize_names(names).items()}
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
        self.boxes = [None] * len(order)
        self.box_calls = [None] * len(order)
        self.operands = []
        for i, t in enumerate(order):
            call = self._box_of.get(id(t))
            if call is not None:
                self.boxes[i] = call_title(call)
                self.box_calls[i] = self._call_index[id(call)]
                self.operands.append(self._box_inputs[id(call)])
            else:
                self.operands.append(tuple(t.parents) if t._function is not None else ())
        self.parents = [tuple(self.index.get(id(p), -1) for p in ops) for ops in self.operands]
        consumers = {}
        for node, operands in zip(order, self.operands):
            for p in operands:
                consumers.setdefault(id(p), []).append(node)
        self.cluster = [self._cluster_of(t, consumers.get(id(t), ())) for t in order]

    # -- module calls
    def _scope_calls(self, order, modules) -> None:
        """Find the module calls, decide which collapse, and which nodes that hides."""
        self.calls = []                  # each drawn call once, outer before inner
        self.call_parent = []            # index of the enclosing call, or None
        self.collapsed = set()           # indices of collapsed calls
        self._call_index = {}
        self._hidden, self._box_of, self._box_inputs = set(), {}, {}
        self.in_box = {}                 # id(tensor) -> the collapsed call it is made in
        self._scopes = {}
        if modules == "flat":
            return
        for t in order:
            scope = module_scope(t)
            if not scope:
                continue
            self._scopes[id(t)] = scope
            for depth, call in enumerate(scope):
                if id(call) not in self._call_index:
                    self._call_index[id(call)] = len(self.calls)
                    self.calls.append(call)
                    self.call_parent.append(self._call_index[id(scope[depth - 1])] if depth else None)
        if not self.calls:
            return
        members = [[] for _ in self.calls]
        for t in order:
            for call in self._scopes.get(id(t), ()):
                members[self._call_index[id(call)]].append(t)
        consumers = {}
        for t in order:
            for p in (t.parents if t._function is not None else ()):
                consumers.setdefault(id(p), []).append(t)
        outputs = []
        for inside in members:
            ids = {id(t) for t in inside}
            outputs.append([t for t in inside if t is self.output
                            or any(id(c) not in ids for c in consumers.get(id(t), ()))])
        # A call with one output can be drawn as one box.
        collapsible = [len(outs) == 1 for outs in outputs]
        depth = [0] * len(self.calls)
        for k, parent in enumerate(self.call_parent):
            depth[k] = 0 if parent is None else depth[parent] + 1
        children = [[] for _ in self.calls]
        for k, parent in enumerate(self.call_parent):
            if parent is not None:
                children[parent].append(k)

        def hidden_by(chosen):
            hidden = set()
            for k in chosen:
                hidden.update(id(t) for t in members[k] if t is not outputs[k][0])
            return hidden

        chosen = set()
        if modules == "collapsed":
            chosen = {k for k in range(len(self.calls)) if not children[k] and collapsible[k]}
        elif modules == "auto":
            value_nodes = sum(1 for t in order if t._function is not None or t.requires_grad)
            for level in sorted(set(depth), reverse=True):
                if value_nodes - len(hidden_by(chosen)) <= COLLAPSE_ABOVE:
                    break
                level_calls = {k for k in range(len(self.calls)) if depth[k] == level and collapsible[k]}
                chosen = {k for k in chosen if depth[k] < level} | level_calls
        for k in self.toggled:       # opened or closed by hand
            if 0 <= k < len(self.calls):
                if k in chosen:
                    chosen.discard(k)        # opened: the modules inside it stay as chosen
                elif collapsible[k]:
                    chosen.add(k)
        # An enclosing collapsed call hides its inner calls: keep the outermost.
        self.collapsed = {k for k in chosen if not self._inside(k, chosen)}
        self._hidden = hidden_by(self.collapsed)
        self.in_box = {id(t): k for k in self.collapsed for t in members[k]}
        # A number only a box's ops use (the 2 of x ** 2 inside it) goes with them.
        for t in order:
            if t._function is None and not t.requires_grad and t.ndim == 0 and id(t) in consumers and \
                    all(id(c) in self.in_box for c in consumers[id(t)]):
                self._hidden.add(id(t))
        for k in self.collapsed:
            inside = {id(t) for t in members[k]}
            inputs, seen = [], set()
            for t in members[k]:
                for p in t.parents:
                    if id(p) in inside or id(p) in seen:
                        continue
                    seen.add(id(p))
                    if p._function is None and not p.requires_grad and p.ndim == 0:
                        continue      # a number inside the module (the 2 of x ** 2): not an input
                    inputs.append(p)
            out = outputs[k][0]
            self._box_of[id(out)] = self.calls[k]
            self._box_inputs[id(self.calls[k])] = tuple(inputs)

    def box_of(self, tensor):
        """``(call index, title)`` of the collapsed module box ``tensor`` was made in, or None."""
        k = self.in_box.get(id(tensor))
        return None if k is None else (k, call_title(self.calls[k]))

    def _inside(self, k, chosen) -> bool:
        parent = self.call_parent[k]
        while parent is not None:
            if parent in chosen:
                return True
            parent = self.call_parent[parent]
        return False

    def _open_cluster(self, scope, boxed=None):
        """The innermost open box of ``scope`` (None outside every box)."""
        cluster = None
        for call in scope:
            k = self._call_index.get(id(call))
            if k is None or k in self.collapsed or call is boxed:
                break
            cluster = k
        return cluster

    def _cluster_of(self, t, consumers):
        if not self.calls:
            return None
        if t._function is not None:
            return self._open_cluster(self._scopes.get(id(t), ()), self._box_of.get(id(t)))
        if not t.requires_grad:
            return None
        # A parameter sits in the innermost open box of the calls using it whose module owns it.
        scopes = [self._scopes.get(id(c), ()) for c in consumers]
        if not scopes:
            return None
        common = []
        for calls in zip(*scopes):
            if any(c is not calls[0] for c in calls):
                break
            common.append(calls[0])
        while common and not _owns(common[-1].module, t):
            common.pop()
        return self._open_cluster(common)

    def drawn_per_use(self, i: int) -> bool:
        """An unnamed constant (a number such as the 2 in ``x ** 2``) is drawn once per use,
        next to its op. The engine shares one constant tensor between all uses of a number;
        drawn once, it would pull edges across the whole picture (and slow dot down)."""
        return self.kinds[i] == "const" and self.names[i] is None

    def fold_rows(self, ops_per_row: int | None = None):
        """The rows of a folded drawing: per row, the DOT names of its values and ops in
        reading order (``v0``, ``f1``, ``v1``, …), or None when the graph does not fold —
        module boxes, a truncated graph, fewer than FOLD_ABOVE ops, or values used far
        from where they are made (their edges would cross every row). A row holds
        ``ops_per_row`` ops (default FOLD_OPS); numbers drawn beside their op stay
        off the rows, above them."""
        if self.calls or self.truncated:
            return None
        ops = sum(1 for operands in self.operands if operands)
        if ops < FOLD_ABOVE or self.long_edges() > ops:
            return None      # short, or values used far from where they are made (a loop's weights)
        per_row = ops_per_row or FOLD_OPS
        rank = [0] * len(self.tensors)
        for i, parents in enumerate(self.parents):
            if parents:
                rank[i] = 2 + max((rank[j] for j in parents if j >= 0), default=0)
        span = 2 * per_row
        rows = {}
        for i in range(len(self.tensors)):
            if self.drawn_per_use(i):
                continue
            row = rows.setdefault(max(rank[i] - 1, 0) // span, [])
            if self.operands[i]:         # an op in its value's row: the step's two nodes side by side
                row.append((rank[i] - 1, f"f{i}"))
            row.append((rank[i], f"v{i}"))
        return [[name for _, name in sorted(rows[r])] for r in sorted(rows)]

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

    def estimated_rankdir(self) -> str:
        """The orientation :func:`lay_out` would choose, estimated from the graph's ranks
        without laying it out (for big graphs, where a second layout costs seconds):
        ranks run along the width left to right, the widest rank along it top to bottom."""
        rank = [0] * len(self.tensors)
        for i, parents in enumerate(self.parents):
            if parents:
                rank[i] = 2 + max((rank[j] for j in parents if j >= 0), default=0)
        ranks = max(rank, default=0) + 1
        breadth = max(Counter(rank).values(), default=1)
        wide = _readability(ranks * 112.0, breadth * 58.0)
        tall = _readability(breadth * 138.0, ranks * 55.0)
        return "TB" if wide < KEEP_LR and tall > 1.1 * wide else "LR"

    def signature(self) -> tuple:
        """What must match for another graph to reuse this layout."""
        return tuple(
            (t._function, tuple(t.shape), kind == "const", parents, len(operands), box, cluster)
            for t, kind, parents, operands, box, cluster in zip(self.tensors, self.kinds, self.parents,
                                                               self.operands, self.boxes, self.cluster)
        ) + (self.truncated,)

    def node_lines(self, i: int, data, grad, *, show_grad: bool, placeholder: bool = False) -> list:
        """(role, text) lines of value node i; roles: name, data, grad. With
        ``placeholder`` (the lines a layout reserves room for), a node that can get a
        grad always has a grad line (as wide as its data while it has no grad)."""
        kind = self.kinds[i]
        lines = []
        if self.names[i]:
            lines.append(("name", self.names[i]))
        data = np.asarray(data)
        lines.extend(("data", text) for text in value_lines(data, kind == "const"))
        if show_grad and kind != "const":
            text = grad_line(grad)
            if not text and placeholder:
                text = "grad " + (scalar_text(data) if data.ndim == 0 else summary_text(data))
            if text:
                lines.append(("grad", text))
        return lines


def _owns(module, tensor) -> bool:
    tensor = getattr(tensor, "source", tensor)     # another library's node: its own tensor
    try:
        return any(p is tensor for p in module.parameters())
    except Exception:
        return False


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


def _margin(lines: list, horizontal: float = 0.12, vertical: float = 0.06) -> str:
    """A node's margin (inches), wider for longer lines: dot measures text with its own
    font metrics (narrow, Times-like, for graphviz-pure's static dot), and a browser's
    sans-serif is wider (Helvetica by about a tenth, DejaVu Sans, where Helvetica and Arial
    are missing, by a quarter; bold more), so each line gets that room, centred."""
    extra = max((len(text) * (0.33 if role == "name" else 0.22) for role, text in lines), default=0.0)
    return f"{horizontal + extra * 0.6 * FONT_SIZE / 2 / 72:.3f},{vertical:g}"


_CONST_ATTRS = {"style": "filled,dashed", "fontsize": "9", "margin": "0.06,0.03", "height": "0.3"}
CLUSTER_STYLE = {"style": "rounded,dashed", "color": "#7c3aed", "fontcolor": "#5b21b6", "fontsize": "10",
                 "labeljust": "l", "margin": "8"}


class ComputationGraph(graphviz.Digraph):
    """The Digraph :func:`draw_computation_graph` returns: a ``graphviz.Digraph`` whose
    Jupyter picture has its node labels centred (see :func:`centred_labels`) and, in
    HTML, the fit-and-zoom frame every ad_magic graph has. ``other_view`` is the same
    graph with its modules the other way (collapsed or expanded), or None: in HTML a
    click on a module's box shows that one."""

    other_view = None

    def _repr_image_svg_xml(self) -> str:
        return centred_labels(super()._repr_image_svg_xml())

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        bundle = super()._repr_mimebundle_(include, exclude, **kwargs)
        svg = bundle.get("image/svg+xml")
        if svg and (not include or "text/html" in include) and "text/html" not in (exclude or ()):
            other = None
            if self.other_view is not None:
                try:
                    other = self.other_view._repr_image_svg_xml()
                except Exception:    # the other view is a bonus: the picture still shows
                    other = None
            bundle["text/html"] = graph_html(svg, other=other)
        return bundle


def build_dot(plan: GraphPlan, *, show_grad: bool, room=None, rankdir: str = "LR") -> graphviz.Digraph:
    """The Digraph of ``plan``. ``room`` (per drawn tensor: the (role, text) lines to lay
    out, or None) makes room for texts other than the current ones (the restyled view
    lays out the widest text each node will show). ``rankdir`` is LR (inputs on the
    left), TB (inputs on top) or ``"fold"``: left to right in rows read like text, each
    row under the last (see :meth:`GraphPlan.fold_rows`). Each open module call is a
    labelled cluster."""
    rows = None
    if rankdir == "fold":
        rows = plan.fold_rows()
        if rows is None:
            raise ValueError("rankdir='fold' folds a long chain of ops; this graph has module boxes, few ops or "
                             "values used far from where they are made: use 'LR' or 'TB'")
        rankdir = "TB"
    if rankdir not in ("LR", "TB"):
        raise ValueError(f"rankdir must be 'LR', 'TB' or 'fold', got {rankdir!r}")
    graph_attr = {
        "rankdir": rankdir, "bgcolor": "transparent", "nodesep": "0.25", "ranksep": "0.35",
        "fontname": FONT,
    }
    # Heavier main edges keep a chain straight; on a big graph that is not a chain (an
    # MLP's loss: many edges across) they make dot's network simplex several times slower
    # (1,000 values: 0.8 s → 4 s), so there they are left out.
    weighted = len(plan.tensors) < LARGE_GRAPH or plan.fold_rows() is not None
    if len(plan.tensors) >= LARGE_GRAPH:
        # Most of dot's time on big graphs goes to the network simplex; bound it.
        graph_attr.update(nslimit="0.2", nslimit1="0.2")
    if plan.long_edges() > LONG_EDGES:
        # Edges spanning many ranks make thousands of virtual nodes, and routing splines
        # around them takes seconds: straight lines keep the layout time bounded.
        graph_attr["splines"] = "line"
    dot = ComputationGraph(
        "computation_graph",
        graph_attr=graph_attr,
        node_attr={"fontname": FONT, "fontsize": f"{FONT_SIZE:g}", "fontcolor": TEXT,
                   "style": "filled", "margin": "0.12,0.06"},
        edge_attr={"color": EDGE, "fontcolor": EDGE, "fontname": FONT, "fontsize": "9",
                   "arrowsize": "0.7"},
    )
    clusters = {}

    def body(k):   # the graph a node of cluster k is declared in
        if k is None:
            return dot
        if k not in clusters:
            sub = graphviz.Digraph(f"cluster_m{k}")
            sub.attr(label=f"<{label_escape(call_title(plan.calls[k]))}>", **CLUSTER_STYLE)
            clusters[k] = sub
        return clusters[k]

    edges = []
    uses = Counter(j for parents in plan.parents for j in parents)
    # With many long edges (a weight shared by every step of a loop), shapes are xlabels,
    # placed after the layout: a label is a node of its own in every rank its edge
    # crosses, and slowed dot down twentyfold. Otherwise a label, which dot keeps clear of
    # the edges.
    label_key = "xlabel" if plan.long_edges() > XLABELS_ABOVE else "label"
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
        lines = room[i] if room is not None and room[i] is not None else \
            plan.node_lines(i, t.data, t.grad, show_grad=show_grad)
        attrs = {"shape": "box", "fillcolor": fill, "color": border,
                 "penwidth": f"{KIND_PENWIDTH[kind]:g}", "margin": _margin(lines)}
        if kind == "leaf":
            attrs["style"] = "filled,rounded"
        elif kind == "const":
            attrs.update(_CONST_ATTRS, margin=_margin(lines, 0.06, 0.03))
        graph = body(plan.cluster[i])
        boxed = plan.boxes[i] is not None and bool(plan.operands[i])
        if boxed:
            # A collapsed module's box, its output and its numbers are held together by an
            # invisible cluster: without it, dot orders them with every other node of the
            # enclosing box and the long edges of shared weights (a recurrent module's
            # weights feed every step), which takes many times longer than expanded.
            enclosing, graph = graph, graphviz.Digraph(f"cluster_box{i}")
            graph.attr(peripheries="0", label="", margin="0")
        graph.node(f"v{i}", _html_label(lines), **attrs)
        if not plan.operands[i]:
            continue
        fill, border = KIND_STYLE["op"]
        if boxed:   # a collapsed module: one box computes its output
            # id: a picture's click handler finds the box (frame.graph_html) to open the module
            graph.node(f"f{i}", f"<<b>{label_escape(plan.boxes[i])}</b>>", shape="box", style="filled,rounded",
                       fillcolor=fill, color=border, penwidth="2", peripheries="2",
                       margin=_margin([("name", plan.boxes[i])]), id=f"module_f{i}")
        else:
            graph.node(f"f{i}", f"<{label_escape(str(t._function))}>", shape="ellipse", fillcolor=fill,
                       color=border, height="0.3", margin="0.04,0.02")
        fed_by_more = False
        labelled = set()
        for k, (p, j) in enumerate(zip(plan.operands[i], plan.parents[i])):
            if j >= 0:
                # one shape per pair of nodes: x * x draws two edges, labelled once
                label = str(tuple(p.shape)) if p.ndim and j not in labelled else None
                labelled.add(j)
                source = f"v{j}"
                if plan.drawn_per_use(j):
                    source = f"c{j}_{i}_{k}"
                    lines = plan.node_lines(j, p.data, None, show_grad=False)
                    graph.node(source, _html_label(lines), shape="box", fillcolor=const_fill, color=const_border,
                               penwidth=f"{KIND_PENWIDTH['const']:g}",
                               **dict(_CONST_ATTRS, margin=_margin(lines, 0.06, 0.03)))
                attrs = {label_key: label} if label else {}
                if source == f"v{j}" and uses[j] == 1 and weighted:
                    # A value used once pulls its op in line: a chain stays a straight line
                    # instead of drifting half a node per op (a staircase). A value used by
                    # many ops (a weight reused in a loop) must not pull them all to itself.
                    attrs["weight"] = MAIN_EDGE_WEIGHT
                edges.append((source, f"f{i}", attrs))
            elif not fed_by_more:
                edges.append(("more", f"f{i}", {"style": "dashed"}))
                fed_by_more = True
        edges.append((f"f{i}", f"v{i}", {"weight": MAIN_EDGE_WEIGHT} if weighted else {}))
        if boxed:
            enclosing.subgraph(graph)
    # Inner boxes go into their enclosing box before it goes into the graph.
    for k in list(clusters):
        parent = plan.call_parent[k]
        while parent is not None:
            body(parent)
            parent = plan.call_parent[parent]
    for k in sorted(clusters, key=lambda k: -_depth(plan, k)):
        body(plan.call_parent[k]).subgraph(clusters[k])
    if rows is not None:
        # each row on one rank, its edges flat (read left to right); a row two ranks under
        # the last, the numbers of its ops in between
        row_of = {}
        for r, names in enumerate(rows):
            row = graphviz.Digraph()
            row.attr(rank="same")
            for name in names:
                row.node(name)
                row_of[name] = r
            dot.subgraph(row)
        for k, (tail, head, attrs) in enumerate(edges):
            if tail in row_of and head in row_of and row_of[head] > row_of[tail]:
                edges[k] = (tail, head, {**attrs, "weight": "0", "constraint": "false"})
        # rows start under each other (an invisible edge pulls each row's first node under
        # the last row's), two ranks apart: the numbers of a row's ops sit in between
        for above, below in zip(rows, rows[1:]):
            edges.append((above[0], below[0], {"style": "invis", "weight": "100", "minlen": "2"}))
    for tail, head, attrs in edges:
        dot.edge(tail, head, **attrs)
    return dot


def _depth(plan, k) -> int:
    depth = 0
    while plan.call_parent[k] is not None:
        k = plan.call_parent[k]
        depth += 1
    return depth


# --------------------------------------------------------------------------- fitting

FIT_HEIGHT_PT = 900.0    # taller than this, a picture reads worse than a wider one
FOLD_ABOVE = 12          # a graph of more ops than this, one row left to right, may fold into rows
FOLD_OPS = 6             # ops per row of a folded drawing (about 700 pt at full size)
VIEW_HEIGHT_PT = 420.0   # the height a stepper's viewport usually gets under its controls (560 px)
KEEP_LR = 0.8            # left to right stays while it is shown at 80 % or more
RANKDIRS = ("auto", "LR", "TB", "fold")


def _readability(width: float, height: float) -> float:
    """How large the picture is shown when fitted in the room (bigger reads better)."""
    if width <= 0 or height <= 0:
        return 1.0
    return min(1.0, FIT_WIDTH_PT / width, FIT_HEIGHT_PT / height)


def reading_cost(width: float, height: float) -> float:
    """How hard a picture of ``width`` x ``height`` points is to read in a viewport of
    FIT_WIDTH_PT x VIEW_HEIGHT_PT: shown at its fitted scale (the width fitted, never
    below MIN_SCALE), the number of viewports it spans (scrolling one way or both),
    divided by the square root of that scale (small print reads slower). A long chain
    is a row one viewport high (a few viewports sideways) rather than a column many
    viewports tall; a deep narrow model stands up at a larger scale than its row."""
    if width <= 0 or height <= 0:
        return 1.0
    scale = fit_scale(width, height)
    screens = max(1.0, width * scale / FIT_WIDTH_PT) * max(1.0, height * scale / VIEW_HEIGHT_PT)
    return screens / scale ** 0.5


def lay_out(plan: GraphPlan, *, show_grad: bool = True, room=None, rankdir: str = "auto",
            timeout: float = 30.0) -> tuple:
    """Lay ``plan`` out: ``(digraph, svg, rankdir)``.

    With ``rankdir="auto"`` the graph is laid out left to right (inputs on the left, as
    in the practical) and, when fitting that into FIT_WIDTH_PT x FIT_HEIGHT_PT would
    shrink it below KEEP_LR, top to bottom too; the orientation easier to read in a
    stepper's viewport wins (:func:`reading_cost`; left to right unless top to bottom is
    clearly better): a short chain stays a row, a deep, narrow graph such as an MLP's
    stands up, and a long chain folds into rows read like text (``"fold"``, see
    :meth:`GraphPlan.fold_rows`) rather than one row many viewports wide or a column
    thousands of pixels tall.
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}; got {rankdir!r}")
    if rankdir == "auto" and len(plan.tensors) >= LARGE_GRAPH:
        rankdir = plan.estimated_rankdir()     # one layout, not two, for a big graph
    first = rankdir if rankdir in ("TB", "fold") else "LR"
    dot = build_dot(plan, show_grad=show_grad, room=room, rankdir=first)
    svg = centred_labels(render_svg(dot.source, timeout=timeout))
    if rankdir != "auto":
        return dot, svg, first
    width, height = svg_size(svg)
    wide = _readability(width, height)
    if wide >= KEEP_LR:
        return dot, svg, "LR"
    best = (reading_cost(width, height) / 1.1, dot, svg, "LR")     # left to right unless clearly worse
    for other in ("TB", "fold") if plan.fold_rows() is not None else ("TB",):
        drawn = build_dot(plan, show_grad=show_grad, room=room, rankdir=other)
        drawn_svg = centred_labels(render_svg(drawn.source, timeout=timeout))
        cost = reading_cost(*svg_size(drawn_svg))
        if cost < best[0]:
            best = (cost, drawn, drawn_svg, other)
    return best[1:]


_NODE_GROUP = re.compile(r'(<g id="[^"]*" class="node">.*?</g>)', re.S)
_STARTED_TEXT = re.compile(r'text-anchor="start" x="(-?[\d.]+)"')
_X_NUMBERS = re.compile(r'\b(?:points|d)="([^"]*)"|\bcx="(-?[\d.]+)"')
_PAIR = re.compile(r'(-?[\d.]+),(-?[\d.]+)')


def centred_labels(svg: str) -> str:
    """Dot's SVG with every node's text lines centred on the node (dot starts them where
    its own font metrics say; a browser's wider font then runs off the right edge)."""
    def centre(match):
        group = match.group(1)
        if 'text-anchor="start"' not in group:
            return group
        shape = _X_NUMBERS.search(group)
        if shape is None:
            return group
        if shape.group(2) is not None:
            cx = float(shape.group(2))
        else:
            xs = [float(x) for x, _ in _PAIR.findall(shape.group(1))]
            if not xs:
                return group
            cx = (min(xs) + max(xs)) / 2
        return _STARTED_TEXT.sub(f'text-anchor="middle" x="{cx:.2f}"', group)
    return _NODE_GROUP.sub(centre, svg)


def draw_computation_graph(tensor, *, names=None, max_nodes=DEFAULT_MAX_NODES, show_grad=True,
                           rankdir="auto", modules="auto"):
    """The graph that produced ``tensor`` as a ``graphviz.Digraph``, inputs on the left
    (or on top: ``rankdir="auto"`` stands a graph up, or folds a long chain into rows,
    when that reads better, see :func:`lay_out`; ``"LR"``, ``"TB"`` or ``"fold"`` force
    one), sized to fit a notebook output of 1,000 px (``size``), never below a readable
    scale. Its HTML also holds the graph with its modules the other way (collapsed or
    expanded, ``other_view``): a click on a module's box shows it.

    ``names`` maps tensors to display names (the ``%%autodiff`` magic passes the user's
    variable names); otherwise a tensor's own ``name`` is shown. Value nodes show data
    (a number, or shape and ``mean [min, max]`` for arrays) and, when ``show_grad`` and
    after ``backward()``, the grad. Above ``max_nodes`` tensors only the ones nearest
    the output are drawn, fed by one node saying how many were left out. Anything but
    a Tensor is a TypeError. Graphs built by other code (the practical's own Tensor, micrograd,
    PyTorch) are drawn through :func:`ad_magic.adapters.adapt`. Nodes made by an
    ``nn.Module`` are boxed by module (``modules``: see :class:`GraphPlan`).
    """
    tensor = as_node(tensor, "draw_computation_graph")
    names = normalize_names(names, tensor)
    find_dot()  # without a system dot, points the graphviz package's own rendering at ours
    plan = GraphPlan(tensor, names, max_nodes, modules)
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}; got {rankdir!r}")
    try:
        dot, svg, _ = lay_out(plan, show_grad=show_grad, rankdir=rankdir)
    except RenderError:   # no renderer: the DOT source is still the answer
        return build_dot(plan, show_grad=show_grad, rankdir="TB" if rankdir == "TB" else "LR")
    _fit_size(dot, svg)
    other = other_modules(plan, names)
    if other is not None:
        try:
            other_dot, other_svg, _ = lay_out(other, show_grad=show_grad, rankdir=rankdir)
            _fit_size(other_dot, other_svg)
            dot.other_view = other_dot
        except RenderError:
            pass
    return dot


def _fit_size(dot, svg) -> None:
    width, height = svg_size(svg)
    scale = fit_scale(width, height)
    if scale < 1.0:
        dot.graph_attr["size"] = f"{width * scale / 72:.2f},{height * scale / 72:.2f}"


def other_modules(plan: GraphPlan, names=None):
    """The plan of the same graph with its modules the other way — expanded when any is
    collapsed, else collapsed — for a picture whose module boxes open on a click; None
    when it has no module box, or both ways draw the same."""
    if not plan.calls:
        return None
    other = GraphPlan(plan.output, names, plan.max_nodes, "expanded" if plan.collapsed else "collapsed")
    return other if other.collapsed != plan.collapsed else None
