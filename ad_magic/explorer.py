"""Scrub through gradient descent: :class:`DescentExplorer` (ipywidgets 8).

The explorer runs :func:`ad_magic.optim.descend` — the one descent loop, the one a
script calls — and records, at each iteration, the graph's values and grads. A slider
(and Play) then shows any iteration: the loss curve with that iteration marked, the
parameters and their grads, the loss as a function of one parameter (with the tangent
line, whose slope is the grad) or its contours over two (with the path so far), and the
graph of that iteration.

The graph is laid out once per distinct structure and only restyled per iteration. A
loss whose graph changes between iterations (a branch on a value: ``x * x if x.item() > 0
else -x``, a Huber loss) gets one layout per shape of graph it takes, each laid out the
first time it is shown.

Headless: setting ``.slider.value`` (or ``.iteration``) updates the state synchronously,
and ``svg(k)``, ``figure(k)``, ``png(k)`` and ``table_html(k)`` render any iteration
without a browser.
"""
from __future__ import annotations

import math
import numbers
from collections import OrderedDict

import ipywidgets as widgets
import numpy as np

from . import optim
from .display_names import DisplayNames, normalize_names
from .dot import DEFAULT_MAX_NODES, GraphPlan
from .engine import Tensor, no_grad
from .formatting import escape, format_number, format_value, html_table
from .graph_view import GraphView, graph_html, inline_svg, message_svg
from .plots import DescentPlot
from .render import RenderError

__all__ = ["DescentExplorer"]

PLAY_INTERVAL_MS = 350
SLICE_POINTS = 161
CONTOUR_POINTS = 41
CONTOUR_POINTS_POINTWISE = 25   # when the loss must be evaluated once per grid point
CACHED_LAYOUTS = 8              # layouts kept besides the first (a loss with many graph shapes)

# Keyword arguments of the box itself (layout=...); every other one goes to the optimizer.
_BOX_KEYWORDS = frozenset(widgets.VBox.class_trait_names())


class _Layouts:
    """The graphs seen during a run, one layout per distinct structure.

    ``record(loss)`` returns ``(structure, tensors)``: which structure the graph has and
    its tensors in that structure's node order. The first structure is laid out at once
    (so a missing renderer shows at construction); the others when first shown.
    """

    def __init__(self, names: dict, max_nodes: int):
        self.names, self.max_nodes = names, max_nodes
        self.first = None                  # the GraphView of the first iteration's graph
        self._known = {}                   # signature -> structure number
        self._outputs = []                 # per structure: the first graph's output tensor
        self._views = OrderedDict()        # structure number -> GraphView (1, 2, ...: cached)

    @property
    def count(self) -> int:
        return len(self._outputs)

    def record(self, loss: Tensor) -> tuple:
        if self.first is None:
            self.first = GraphView(loss, names=self.names, max_nodes=self.max_nodes)
            self._known[self.first.signature()] = 0
            self._outputs.append(loss)
            return 0, self.first.nodes
        if loss is self.first.output:      # a replayed Tensor loss: always the same graph
            return 0, self.first.nodes
        plan = GraphPlan(loss, None, self.max_nodes)
        signature = plan.signature()
        structure = self._known.get(signature)
        if structure is None:
            structure = self._known[signature] = len(self._outputs)
            self._outputs.append(loss)
        return structure, plan.tensors

    def view(self, structure: int) -> GraphView:
        if structure == 0:
            return self.first
        view = self._views.get(structure)
        if view is None:
            view = GraphView(self._outputs[structure], names=self.names, max_nodes=self.max_nodes)
            self._views[structure] = view
            if len(self._views) > CACHED_LAYOUTS:
                self._views.popitem(last=False)
        else:
            self._views.move_to_end(structure)
        return view


class DescentExplorer(widgets.VBox):
    """Run gradient descent on ``loss`` and scrub through its iterations.

    ``loss`` is a scalar Tensor computed from ``params`` (its recorded graph is replayed
    with ``loss.forward()`` at every iteration) or a function of no arguments returning
    one (called at every iteration: its graph may change). ``params`` are leaf Tensors,
    updated in place. ``optimizer`` is "sgd", "momentum", "adam", an Optimizer class or
    instance; other keyword arguments go to it (``momentum=``, ``betas=``, ``eps=``),
    except the box's own (``layout=``). Iteration k = 0 … steps records the loss, the
    parameters and their grads, then the optimizer steps (not after the last). A NaN/inf
    loss or update stops the run (see ``stopped``); the parameters keep their last
    finite values. ``descent`` is the run's :class:`~ad_magic.optim.DescentHistory`.
    """

    def __init__(self, loss, params, *, lr=0.1, steps=50, optimizer="sgd", names=None,
                 max_nodes=DEFAULT_MAX_NODES, **opts):
        box = {key: opts.pop(key) for key in list(opts) if key in _BOX_KEYWORDS}
        if isinstance(loss, Tensor):
            self.loss, self.loss_fn = loss, None
        elif callable(loss):
            self.loss, self.loss_fn = None, loss
        else:
            raise TypeError(f"loss must be a scalar Tensor or a function of no arguments returning one, "
                            f"got {type(loss).__name__}.")
        params = [params] if isinstance(params, Tensor) else list(params) if params is not None else []
        if not params:
            raise ValueError("params is empty: pass the list of Tensors gradient descent should update.")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"params[{i}] is a {type(p).__name__}, not a Tensor.")
            if not p.is_leaf or not p.requires_grad:
                raise ValueError(f"params[{i}] must be a leaf Tensor that requires a gradient "
                                 f"(a value you created, not the result of an operation).")
        self.params = params
        self._names = normalize_names(names)
        self._namer = DisplayNames(self._names)
        self.param_names = [self._namer(p) or f"p{i}" for i, p in enumerate(params)]
        self._layouts = _Layouts(self._names, max_nodes)
        self._states = {}          # iteration -> (structure, values, grads), aligned with its layout

        with np.errstate(all="ignore"):
            self.descent = optim.descend(loss, params, optimizer, lr, steps, callback=self._record, **opts)
        self.n_iterations = int(steps)
        self.history = list(self.descent)
        self.losses = list(self.descent.losses)
        self.stopped = self.descent.stopped
        self.stopped_at = self.descent.stopped_at
        self.optimizer = self.descent.optimizer
        self.lr = self.descent.lr
        self.view = self._layouts.first
        self._plot = DescentPlot(self.losses, stopped_at=self.stopped_at,
                                 slice=self._slice_data(), contour=self._contour_data())

        last = len(self.history) - 1
        self.slider = widgets.IntSlider(value=0, min=0, max=last, step=1, description="",
                                        continuous_update=True, layout=widgets.Layout(width="320px"))
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=PLAY_INTERVAL_MS,
                                 description="Play", disabled=last == 0)
        widgets.link((self.play, "value"), (self.slider, "value"))
        self.label = widgets.HTML()
        self.status = widgets.HTML(self._status_html())
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.table = widgets.HTML()
        self.graph = widgets.HTML(layout=widgets.Layout(overflow="auto", max_width="100%"))
        controls = widgets.HBox([self.play, self.slider, self.label],
                                layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        body = widgets.HBox([self.image, self.table],
                            layout=widgets.Layout(align_items="flex-start", flex_flow="row wrap"))
        super().__init__([controls, self.status, body, self.graph], **box)
        self.add_class("ad-descent-explorer")
        self.slider.observe(lambda change: self._show(change["new"]), names="value")
        self._show(0)

    # -- the run: descend() calls this at every iteration, grads set
    def _record(self, k: int, loss: Tensor) -> None:
        structure, tensors = self._layouts.record(loss)
        self._states[k] = (structure, [np.array(t.data) for t in tensors],
                           [None if t.grad is None else np.array(t.grad) for t in tensors])

    @property
    def layouts(self) -> int:
        """How many distinct graph structures the run went through (1 unless the loss
        branches on a value)."""
        return self._layouts.count

    # -- the loss landscape around the path (one or two scalar parameters)
    def _evaluate(self, make_grids, fine: int, coarse: int) -> tuple:
        """The loss over a grid of parameter values: ``(axes, z)``.

        ``make_grids(n)`` gives the axes (n points each) and one grid array per
        parameter. A Tensor loss is replayed point by point (``forward()`` keeps the
        graph's shapes) on the coarse grid. A loss function is first called once with the
        grids as the parameters' data (right when the loss is elementwise in them),
        checked at a few points against single calls; otherwise point by point on the
        coarse grid. The parameters, and a Tensor loss's graph, are restored afterwards.
        """
        params = self.params
        saved = [np.array(p.data) for p in params]

        def at(grids, point):
            for p, g in zip(params, grids):
                p.data = g[point]
            try:
                out = self.loss.forward() if self.loss is not None else self.loss_fn()
                return float(np.asarray(out.data).reshape(-1)[0])
            except Exception:   # e.g. a domain error far from the path: leave a hole
                return math.nan

        def pointwise(n):
            axes, grids = make_grids(n)
            z = np.empty(grids[0].shape)
            for i in np.ndindex(z.shape):
                z[i] = at(grids, i)
            return axes, z
        try:
            if self.loss is not None:
                with np.errstate(all="ignore"):
                    return pointwise(coarse)
            with no_grad(), np.errstate(all="ignore"):
                axes, grids = make_grids(fine)
                shape = grids[0].shape
                try:
                    for p, g in zip(params, grids):
                        p.data = g
                    z = np.asarray(self.loss_fn().data, dtype=float)
                except Exception:
                    z = None
                if z is not None and z.shape == shape:
                    probes = [np.unravel_index(i, shape) for i in (0, z.size // 3, z.size - 1)]
                    if all(np.isclose(z[i], at(grids, i), rtol=1e-9, atol=1e-12, equal_nan=True)
                           for i in probes):
                        return axes, z
                return pointwise(coarse)
        finally:
            for p, data in zip(params, saved):
                p.data = data
            if self.loss is not None:
                self._restore_graph()

    def _restore_graph(self) -> None:
        """The Tensor loss's graph as descend left it: values and grads at the last
        parameters."""
        try:
            with np.errstate(all="ignore"):
                self.loss.forward()
                self.loss.backward()
        except Exception:   # the run itself evaluated these values: nothing new can fail
            pass

    def _scalar_params(self) -> bool:
        return all(p.size == 1 and p.ndim == 0 for p in self.params)

    def _path(self, i) -> np.ndarray:
        return np.array([float(r.values[i]) for r in self.history])

    def _around(self, path) -> tuple:
        """A range of parameter values around the path — leaving out the iterates of a
        diverging run whose loss shot far above the start (they would flatten the rest)."""
        losses = np.array(self.losses)
        with np.errstate(invalid="ignore", over="ignore"):
            sane = (np.abs(losses) <= 1e4 * (abs(losses[0]) + 1)) | (np.arange(len(losses)) == 0)
            finite = path[sane & (np.abs(path) <= 1e100)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
        span = high - low
        pad = 0.3 * span if span > 0 else max(1.0, 0.5 * abs(low))
        return low - pad, high + pad

    def _slice_data(self):
        if len(self.params) != 1 or not self._scalar_params():
            return None
        path = self._path(0)
        span = self._around(path)
        (xs,), ys = self._evaluate(lambda n: ((np.linspace(*span, n),), (np.linspace(*span, n),)),
                                   SLICE_POINTS, SLICE_POINTS // 2)
        return {"xs": xs, "ys": ys, "path_x": path,
                "path_loss": np.array(self.losses),
                "slopes": np.array([float(r.grads[0]) for r in self.history]),
                "name": self.param_names[0]}

    def _contour_data(self):
        if len(self.params) != 2 or not self._scalar_params():
            return None
        px, py = self._path(0), self._path(1)
        x_span, y_span = self._around(px), self._around(py)

        def grids(n):
            xs, ys = np.linspace(*x_span, n), np.linspace(*y_span, n)
            return (xs, ys), np.meshgrid(xs, ys)
        (xs, ys), zs = self._evaluate(grids, CONTOUR_POINTS, CONTOUR_POINTS_POINTWISE)
        return {"xs": xs, "ys": ys, "zs": zs,
                "path": np.column_stack([px, py]), "names": tuple(self.param_names)}

    # -- any iteration
    def _check(self, k) -> int:
        if k is None:
            return self.slider.value
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"iteration must be an integer, got {type(k).__name__}")
        last = len(self.history) - 1
        if not 0 <= k <= last:
            raise ValueError(f"iteration must be between 0 and {last}, got {k}")
        return int(k)

    def graph_view(self, k=None) -> GraphView:
        """The layout that draws iteration ``k``'s graph (one per distinct structure)."""
        state = self._states.get(self._check(k))
        return self._layouts.view(0 if state is None else state[0])

    def svg(self, k=None) -> str:
        """The graph of iteration ``k`` with its values and grads, as inline SVG."""
        k = self._check(k)
        state = self._states.get(k)
        if state is None:   # descend() stopped before handing over this iteration's graph
            return message_svg(f"The graph of iteration {k} was not recorded.")
        structure, values, grads = state
        caption = f"iteration {k} / {self.n_iterations}: loss = {format_number(self.losses[k])}"
        return inline_svg(self._layouts.view(structure).svg(values=values, grads=grads, caption=caption))

    def figure(self, k=None):
        """A new matplotlib Figure of iteration ``k``: the loss curve, and the loss slice
        (one scalar parameter) or contours (two)."""
        return self._plot.figure(self._check(k))

    def png(self, k=None) -> bytes:
        """The figure of iteration ``k`` as PNG bytes (rendered once, then cached)."""
        return self._plot.png(self._check(k))

    def table_html(self, k=None) -> str:
        """The parameters' values and grads at iteration ``k``, as an HTML table."""
        record = self.history[self._check(k)]
        rows = [[name, format_value(v), format_value(g)]
                for name, v, g in zip(self.param_names, record.values, record.grads)]
        return html_table(["parameter", "value", "grad"], rows, css_class="ad-descent-parameters")

    @property
    def iteration(self) -> int:
        return self.slider.value

    @iteration.setter
    def iteration(self, k) -> None:
        self.slider.value = self._check(k)

    def _status_html(self) -> str:
        if self.stopped is None:
            return ""
        return f'<div style="color:#b91c1c"><b>Stopped:</b> {escape(self.stopped)}</div>'

    def _show(self, k: int) -> None:
        mark = " (stopped here)" if k == self.stopped_at else ""
        self.label.value = (f"<b>iteration {k} / {self.n_iterations}</b> &nbsp; "
                            f"loss = {escape(format_number(self.losses[k]))}{mark}")
        self.image.value = self.png(k)
        self.table.value = self.table_html(k)
        try:
            self.graph.value = graph_html(self.svg(k), len(self.graph_view(k).nodes))
        except RenderError as exc:   # a later layout could not be drawn: say so, keep the rest
            self.graph.value = message_svg(f"Graph not drawn: {exc}")
