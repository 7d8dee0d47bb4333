"""Scrub through gradient descent: :class:`DescentExplorer` (ipywidgets 8).

The explorer runs :func:`ad_magic.optim.descend` — the one descent loop, the one a
script calls — and records, at each iteration, the graph's values and grads. A slider
(and Play) then shows any iteration: the loss curve with that iteration marked, the
parameters and their grads, the loss as a function of one parameter (with the tangent
line, whose slope is the grad) or its contours over two (with the path so far), and the
graph of that iteration.

A race (``optimizers=[...]``, or :meth:`DescentExplorer.compare`) runs each optimizer
from the same start on the same loss: one picture with every path in its own colour,
one loss curve per optimizer, a table with each optimizer's parameters at the current
iteration, and one slider for all. ``histories`` maps each optimizer's name to its
:class:`~ad_magic.optim.DescentHistory`. A run that diverges stops (with the reason)
while the others go on.

Live hyperparameters: a learning-rate slider (log scale) per optimizer, and momentum β
or Adam's β₁/β₂ where the optimizer has them, the start point typed in, and Reset (back
to the values the explorer was made with). Moving one re-runs ``descend`` for what it
changed and redraws on the same landscape (drawn again, larger, only when the start
or a path leaves it).

``view=`` takes a function of the current :class:`~ad_magic.optim.DescentRecord` that
returns a picture (a matplotlib Figure, PNG bytes, SVG or HTML text, or anything with a
``_repr_png_``/``_repr_svg_``/``_repr_html_``), drawn beside the loss at every
iteration; if it raises, its error is shown in its place. With ``params`` a model (an
``nn.Module``) and ``data=(X, Y)``, that view is the model's fit
(:class:`ad_magic.training.TrainingView`).

The graph is laid out once per distinct structure and only restyled per iteration. A
loss whose graph changes between iterations (a branch on a value: ``x * x if x.item() > 0
else -x``, a Huber loss) gets one layout per shape of graph it takes, each laid out the
first time it is shown.

Headless: setting ``.slider.value`` (or ``.iteration``), a hyperparameter slider or a
start box updates the state synchronously, and ``svg(k)``, ``figure(k)``, ``png(k)`` and
``table_html(k)`` render any iteration without a browser.
"""
from __future__ import annotations

import base64
import contextlib
import math
import numbers
from collections import OrderedDict

import ipywidgets as widgets
import numpy as np

from ..drawing.dot import DEFAULT_MAX_NODES, GraphPlan
from ..drawing.graph_view import GraphView, graph_html, inline_svg, message_svg
from ..drawing.names import DisplayNames, normalize_names
from ..drawing.render import RenderError
from ..engine import Tensor, no_grad, optim
from ..engine.formatting import escape, format_number, format_value, html_table
from .hyperparameters import HyperparameterControls
from .plots import RUN_COLOURS, DescentPlot, PlotRun, figure_png
from .race import Run, make_runs, summary_lines

__all__ = ["DescentExplorer"]

PLAY_INTERVAL_MS = 350
SLICE_POINTS = 161
CONTOUR_POINTS = 41
CONTOUR_POINTS_POINTWISE = 25   # when the loss must be evaluated once per grid point
CACHED_LAYOUTS = 8              # layouts kept besides the first (a loss with many graph shapes)

# Keyword arguments of the box itself (layout=...); every other one goes to the optimizer.
_BOX_KEYWORDS = frozenset(widgets.VBox.class_trait_names())


def _set_data(p: Tensor, value) -> None:
    """``p.data = value``, written into p's own array when it can be (as the optimizers
    do), so that a view of ``p.data`` sees it too."""
    data = p.data
    value = np.asarray(value)
    if data.ndim and data.flags.writeable and data.shape == value.shape and data.dtype == value.dtype:
        data[...] = value
    else:
        p.data = np.array(value)


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


def _picture_html(picture) -> str:
    """What a ``view=`` function returned, as HTML for the view's box."""
    if picture is None:
        return ""
    if hasattr(picture, "savefig"):                      # a matplotlib Figure
        picture = figure_png(picture)
    if isinstance(picture, (bytes, bytearray)):
        if bytes(picture[:8]) != b"\x89PNG\r\n\x1a\n":
            raise TypeError("the view returned bytes that are not a PNG image")
        return f'<img src="data:image/png;base64,{base64.b64encode(bytes(picture)).decode("ascii")}">'
    for method, wrap in (("_repr_html_", None), ("_repr_svg_", None), ("_repr_png_", "png")):
        if not isinstance(picture, str) and hasattr(picture, method):
            result = getattr(picture, method)()
            return _picture_html(result if wrap is None or isinstance(result, (bytes, bytearray))
                                 else base64.b64decode(result))
    if isinstance(picture, str):
        text = picture.strip()
        return inline_svg(text) if text.startswith("<") else f"<pre>{escape(text)}</pre>"
    return f"<pre>{escape(repr(picture))}</pre>"


class DescentExplorer(HyperparameterControls, widgets.VBox):
    """Run gradient descent on ``loss`` and scrub through its iterations.

    ``loss`` is a scalar Tensor computed from ``params`` (its recorded graph is replayed
    with ``loss.forward()`` at every iteration), a function of no arguments returning
    one (called at every iteration: its graph may change), or a
    :class:`~ad_magic.landscapes.Landscape` (then ``params`` may be left out: two new
    Tensors at its start; its minima are marked). ``params`` are leaf Tensors, updated
    in place, or a model (``nn.Module``: its parameters). ``optimizer`` is "sgd",
    "momentum", "adam", an Optimizer class or instance; other keyword arguments go to it
    (``momentum=``, ``betas=``, ``eps=``), except the box's own (``layout=``).

    ``optimizers=[...]`` races several (see :meth:`compare`): ``lr`` is then one number
    for all or a dict by name, and each keyword option goes to the optimizers that take
    it. ``minima`` (points) are marked on the contour; ``view`` draws a picture of the
    current iteration (see the module's doc); ``data=(X, Y)`` with a model as
    ``params`` draws its fit. ``controls=False`` leaves out the live sliders.

    Iteration k = 0 … steps records the loss, the parameters and their grads, then the
    optimizer steps (not after the last). Every run starts from the parameters' data as
    it is when the explorer is made (a Tensor loss is replayed from there: the values
    recorded when it was built do not matter). A NaN/inf loss or update stops that run
    (see ``stopped``). Every input is checked, for every optimizer, before any run moves
    anything (``optim.check_descent``). Afterwards, and after every re-run, each
    parameter's data *and* grad are those of the first optimizer's last iteration (a
    Tensor loss's graph is replayed there too), whichever optimizer ran last; if a run
    raises, the parameters are put back as they were. ``descent``, ``history``,
    ``losses``, ``stopped``, ``optimizer`` and ``lr`` are the first optimizer's;
    ``histories`` has them all.
    """

    def __init__(self, loss, params=None, *, lr=0.1, steps=50, optimizer="sgd", optimizers=None,
                 names=None, max_nodes=DEFAULT_MAX_NODES, minima=(), view=None, data=None,
                 controls=True, **opts):
        from ..engine.landscapes import Landscape, landscape_of
        from ..engine.nn import Module

        box = {key: opts.pop(key) for key in list(opts) if key in _BOX_KEYWORDS}
        if isinstance(loss, Landscape):
            if params is None:
                params = list(loss.tensors())
            minima = minima or loss.minima
            loss = loss(*params)
        if isinstance(loss, Tensor):
            self.loss, self.loss_fn = loss, None
        elif callable(loss):
            self.loss, self.loss_fn = None, loss
        else:
            raise TypeError(f"loss must be a scalar Tensor or a function of no arguments returning one, "
                            f"got {type(loss).__name__}.")
        self.model = params if isinstance(params, Module) else None
        if self.model is not None:
            params = self.model.parameters()
        self.n_iterations = int(steps) if isinstance(steps, numbers.Integral) else steps
        self.runs = make_runs(optimizer, optimizers, lr, opts)
        # descend's own checks, for every run before the first one moves anything
        for run in self.runs:
            params, _ = optim.check_descent(self.loss if self.loss is not None else self.loss_fn, params,
                                            run.spec, run.lr, steps, **run.opts)
        if view is not None and not callable(view):
            raise TypeError(f"view must be a function of the current DescentRecord, got {type(view).__name__}.")
        if data is not None:
            if self.model is None:
                raise ValueError("data= draws a model's fit: pass the model (an nn.Module) as params.")
            if view is not None:
                raise ValueError("give either data= (the model's fit) or view=, not both.")
            from .training import TrainingView
            try:
                X, Y = data
            except (TypeError, ValueError):
                raise ValueError("data must be a pair (X, Y): the inputs and the targets.") from None
            view = TrainingView(self.model, X, Y, params=params)
        known = landscape_of(self.loss)
        if known is not None and not minima and len(params) == 2:
            minima = known.minima        # the loss is a landscape's output: mark its minima
        self.params = params
        self.minima = tuple(tuple(float(v) for v in m) for m in minima)
        self.view_fn = view
        self._names = normalize_names(names)
        self._namer = DisplayNames(self._names)
        self.param_names = [self._namer(p) or f"p{i}" for i, p in enumerate(params)]
        self._layouts = _Layouts(self._names, max_nodes)
        self.start = [np.array(p.data) for p in params]    # where every run starts
        self._initial_start = [a.copy() for a in self.start]

        grads = [None if p.grad is None else np.array(p.grad) for p in params]
        try:
            for i, run in enumerate(self.runs):
                self._descend(run, replay=i > 0)
        except BaseException:   # (an error in a loss function, an interrupt): as they were
            for p, value in zip(params, self.start):
                _set_data(p, value)
            if self.loss is not None:
                with np.errstate(all="ignore"), contextlib.suppress(Exception):   # (the error shown is the run's)
                    self.loss.forward()
            for p, grad in zip(params, grads):
                p.grad = grad
            raise
        self._finish()
        self.view = self._layouts.first
        self._plot = self._new_plot()
        self._holding = False       # True while Reset sets several controls at once

        last = self._last_iteration()
        self.slider = widgets.IntSlider(value=0, min=0, max=last, step=1, description="",
                                        continuous_update=True, layout=widgets.Layout(width="320px"))
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=PLAY_INTERVAL_MS,
                                 description="Play", disabled=last == 0)
        widgets.link((self.play, "value"), (self.slider, "value"))
        self.label = widgets.HTML()
        self.header = widgets.HTML()     # how the runs went: redrawn by _show, so after a live change too
        self.header.add_class("ad-descent-header")
        self.status = widgets.HTML(self._status_html())
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.table = widgets.HTML()
        self.view_box = widgets.HTML(layout=widgets.Layout(max_width="100%"))
        self.graph = widgets.HTML(layout=widgets.Layout(overflow="auto", max_width="100%"))
        self.graph_of = widgets.Dropdown(options=[r.name for r in self.runs], value=self.runs[0].name,
                                         description="graph of", layout=widgets.Layout(width="220px"))
        controls_row = widgets.HBox([self.play, self.slider, self.label],
                                    layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        pictures = [self.image] + ([self.view_box] if view is not None else [])
        body = widgets.HBox(pictures + [self.table],
                            layout=widgets.Layout(align_items="flex-start", flex_flow="row wrap"))
        children = [controls_row, self.header]     # the header right above the sliders that change it
        self.hyperparameters = {}      # optimizer name -> {"lr": slider, "momentum"/"beta1"/"beta2": slider}
        self.start_inputs = []
        self.reset_button = None
        if controls and all(r.live for r in self.runs):
            children.append(self._make_controls())
        children += [self.status, body]
        if len(self.runs) > 1:
            children.append(self.graph_of)
        children.append(self.graph)
        super().__init__(children, **box)
        self.add_class("ad-descent-explorer")
        self.slider.observe(lambda change: self._show(change["new"]), names="value")
        self.graph_of.observe(lambda change: self._show(self.slider.value), names="value")
        self._show(0)

    @classmethod
    def compare(cls, loss, params=None, optimizers=("sgd", "momentum", "adam"), **kwargs):
        """Race ``optimizers`` on ``loss`` from the same start: one explorer, one path and
        one loss curve per optimizer, one slider for all. ``lr`` is one number or a dict
        by optimizer name; ``momentum=``, ``betas=``, ``eps=`` go to the optimizers that
        take them. ``explorer.histories[name]`` is each optimizer's DescentHistory."""
        return cls(loss, params, optimizers=list(optimizers), **kwargs)

    # -- the runs
    def _descend(self, run: Run, *, replay: bool) -> None:
        """Run ``descend`` for one optimizer from ``self.start`` (descend replays a
        Tensor loss's graph from there, so every run starts from the same loss)."""
        if replay:
            for p, value in zip(self.params, self.start):
                _set_data(p, value)
        states = {}                      # kept only if the run completes
        spec = run.spec
        if isinstance(spec, optim.Optimizer):
            if replay and run.history is not None:
                raise ValueError(f"{run.name}: an Optimizer instance runs once; pass its name or class "
                                 "to run it again.")
            # an instance starts from the parameters it was made with: they are self.params
        with np.errstate(all="ignore"):
            history = optim.descend(self.loss if self.loss is not None else self.loss_fn, self.params,
                                    spec, run.lr, self.n_iterations,
                                    callback=lambda k, t: self._record(states, k, t), **run.opts)
        run.history, run.states, run.lr = history, states, history.lr

    def _finish(self) -> None:
        """Leave one consistent state: every parameter's data and grad those of the first
        run's last iteration (and a Tensor loss's graph replayed there, grads included),
        whichever run went last."""
        first = self.runs[0].history
        for p, value in zip(self.params, first.params[-1]):
            _set_data(p, value)
        if self.loss is not None:
            self._restore_graph()
        else:
            for p, grad in zip(self.params, first.grads[-1]):
                p.grad = np.array(grad, dtype=p.dtype)

    def _record(self, states: dict, k: int, loss: Tensor) -> None:
        structure, tensors = self._layouts.record(loss)
        states[k] = (structure, [np.array(t.data) for t in tensors],
                     [None if t.grad is None else np.array(t.grad) for t in tensors])

    @property
    def histories(self) -> dict:
        """Each optimizer's :class:`~ad_magic.optim.DescentHistory`, by name, in race order."""
        return {run.name: run.history for run in self.runs}

    # the first run's, as a one-optimizer explorer has always offered
    descent = property(lambda self: self.runs[0].history, doc="The first optimizer's DescentHistory.")
    history = property(lambda self: self.runs[0].history,
                       doc="The first optimizer's records: history[k] is a DescentRecord.")
    losses = property(lambda self: self.runs[0].history.losses, doc="The first optimizer's losses.")
    stopped = property(lambda self: self.runs[0].history.stopped)
    stopped_at = property(lambda self: self.runs[0].history.stopped_at)
    optimizer = property(lambda self: self.runs[0].history.optimizer)
    lr = property(lambda self: self.runs[0].history.lr)
    _states = property(lambda self: self.runs[0].states)

    @property
    def layouts(self) -> int:
        """How many distinct graph structures the run went through (1 unless the loss
        branches on a value)."""
        return self._layouts.count

    def _last_iteration(self) -> int:
        return max(len(run.history) for run in self.runs) - 1

    def _run(self, name=None) -> Run:
        if name is None:
            name = self.graph_of.value if hasattr(self, "graph_of") else self.runs[0].name
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(f"no optimizer {name!r} in this explorer; it has {', '.join(r.name for r in self.runs)}")

    # -- the loss landscape around the paths (one or two scalar parameters)
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
        """The Tensor loss's graph at the parameters' current values, grads included."""
        try:
            with np.errstate(all="ignore"):
                self.loss.forward()
                self.loss.backward()
        except Exception:   # the run itself evaluated these values: nothing new can fail
            pass

    def _scalar_params(self) -> bool:
        return all(p.size == 1 and p.ndim == 0 for p in self.params)

    def _path(self, run: Run, i) -> np.ndarray:
        return np.array([float(np.asarray(values[i]).reshape(-1)[0]) for values in run.history.params])

    def _sane(self, run: Run) -> np.ndarray:
        """The iterates worth framing: not those of a diverging run whose loss shot far
        above the start (they would flatten the rest)."""
        losses = np.array(run.history.losses)
        with np.errstate(invalid="ignore", over="ignore"):
            return (np.abs(losses) <= 1e4 * (abs(losses[0]) + 1)) | (np.arange(len(losses)) == 0)

    def _around(self, i) -> tuple:
        """A range of parameter i's values holding every run's path, the start and the
        minima, with room on both sides (the start never sits on the edge)."""
        values = [float(np.asarray(self.start[i]).reshape(-1)[0])]
        values += [m[i] for m in self.minima if len(m) > i]
        for run in self.runs:
            path = self._path(run, i)
            with np.errstate(invalid="ignore"):
                values += list(path[self._sane(run) & (np.abs(path) <= 1e100)])
        finite = np.array([v for v in values if math.isfinite(v)])
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
        span = high - low
        pad = 0.15 * span if span > 0 else max(1.0, 0.5 * abs(low))
        return low - pad, high + pad

    def _frame_holds_paths(self) -> bool:
        """Does the landscape drawn still hold the start well inside (not in its outer 5%)
        and every run's path (all but the iterates of a diverging run)?"""
        plot = self._plot
        axes = ([plot.slice["xs"]] if plot.slice is not None else
                [plot.contour["xs"], plot.contour["ys"]] if plot.contour is not None else [])
        for i, axis in enumerate(axes):
            low, high = float(axis[0]), float(axis[-1])
            margin = 0.05 * (high - low)
            if not low + margin <= float(self.start[i]) <= high - margin:
                return False
            for run in self.runs:
                path = self._path(run, i)[self._sane(run)]
                with np.errstate(invalid="ignore"):
                    if np.any((path < low) | (path > high)):
                        return False
        return True

    def _slice_data(self):
        if len(self.params) != 1 or not self._scalar_params():
            return None
        span = self._around(0)
        (xs,), ys = self._evaluate(lambda n: ((np.linspace(*span, n),), (np.linspace(*span, n),)),
                                   SLICE_POINTS, SLICE_POINTS // 2)
        return {"xs": xs, "ys": ys, "name": self.param_names[0]}

    def _contour_data(self):
        if len(self.params) != 2 or not self._scalar_params():
            return None
        x_span, y_span = self._around(0), self._around(1)

        def grids(n):
            xs, ys = np.linspace(*x_span, n), np.linspace(*y_span, n)
            return (xs, ys), np.meshgrid(xs, ys)
        (xs, ys), zs = self._evaluate(grids, CONTOUR_POINTS, CONTOUR_POINTS_POINTWISE)
        return {"xs": xs, "ys": ys, "zs": zs, "names": tuple(self.param_names)}

    def _plot_runs(self) -> list:
        scalar = self._scalar_params() and len(self.params) <= 2
        race = len(self.runs) > 1
        plotted = []
        for i, run in enumerate(self.runs):
            h = run.history
            path = (np.column_stack([self._path(run, j) for j in range(len(self.params))]) if scalar else None)
            slopes = (np.array([float(np.asarray(g[0]).reshape(-1)[0]) for g in h.grads])
                      if scalar and len(self.params) == 1 else None)
            label = run.name if h.stopped is None else f"{run.name} (stopped at {h.stopped_at})"
            plotted.append(PlotRun(h.losses, name=label if race else None, path=path, slopes=slopes,
                                   stopped_at=h.stopped_at,
                                   colour=RUN_COLOURS[i % len(RUN_COLOURS)] if race else None))
        return plotted

    def _new_plot(self) -> DescentPlot:
        return DescentPlot(self._plot_runs(), slice=self._slice_data(), contour=self._contour_data(),
                           minima=self.minima)

    # -- any iteration
    def _check(self, k) -> int:
        if k is None:
            return self.slider.value
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"iteration must be an integer, got {type(k).__name__}")
        last = self._last_iteration()
        if not 0 <= k <= last:
            raise ValueError(f"iteration must be between 0 and {last}, got {k}")
        return int(k)

    def record(self, k=None, optimizer=None):
        """The :class:`~ad_magic.optim.DescentRecord` of iteration ``k`` of ``optimizer``
        (default: the one whose graph is shown); a run that stopped earlier gives its last."""
        run = self._run(optimizer)
        return run.history[min(self._check(k), len(run.history) - 1)]

    def graph_view(self, k=None, optimizer=None) -> GraphView:
        """The layout that draws iteration ``k``'s graph (one per distinct structure)."""
        run = self._run(optimizer)
        state = run.states.get(min(self._check(k), len(run.history) - 1))
        return self._layouts.view(0 if state is None else state[0])

    def svg(self, k=None, optimizer=None, *, caption=True) -> str:
        """The graph of iteration ``k`` with its values and grads, as inline SVG (in a
        race: of ``optimizer``, default the one chosen under "graph of"). The caption
        says which iteration and loss; with ``caption=False`` (the widget, whose slider
        row says it already) only a run that stopped before ``k`` is captioned."""
        k = self._check(k)
        run = self._run(optimizer)
        j = min(k, len(run.history) - 1)
        state = run.states.get(j)
        if state is None:   # descend() stopped before handing over this iteration's graph
            return message_svg(f"The graph of iteration {k} was not recorded.")
        structure, values, grads = state
        who = f"{run.name}, " if len(self.runs) > 1 else ""
        text = f"{who}iteration {j} / {self.n_iterations}: loss = {format_number(run.history.losses[j])}"
        if not caption:
            text = f"{run.name} stopped at iteration {j}: its graph then" if j < k else None
        return inline_svg(self._layouts.view(structure).svg(values=values, grads=grads, caption=text))

    def figure(self, k=None):
        """A new matplotlib Figure of iteration ``k``: the loss curve(s), and the loss
        slice (one scalar parameter) or contours (two)."""
        return self._plot.figure(self._check(k))

    def png(self, k=None) -> bytes:
        """The figure of iteration ``k`` as PNG bytes (rendered once, then cached)."""
        return self._plot.png(self._check(k))

    def table_html(self, k=None) -> str:
        """The parameters' values and grads at iteration ``k`` (in a race, for each
        optimizer, with its loss), as an HTML table."""
        k = self._check(k)
        if len(self.runs) == 1:
            record = self.history[k]
            rows = [[name, format_value(v), format_value(g)]
                    for name, v, g in zip(self.param_names, record.values, record.grads)]
            return html_table(["parameter", "value", "grad"], rows, css_class="ad-descent-parameters")
        header = ["optimizer", "iteration", "loss"]
        for name in self.param_names:
            header += [name, f"∂L/∂{name}"]
        rows = []
        for run in self.runs:
            j = min(k, len(run.history) - 1)
            record = run.history[j]
            row = [run.name, str(j) + (" (stopped)" if j == run.history.stopped_at else ""),
                   format_number(record.loss)]
            for v, g in zip(record.values, record.grads):
                row += [format_value(v), format_value(g)]
            rows.append(row)
        return html_table(header, rows, css_class="ad-descent-parameters")

    @property
    def iteration(self) -> int:
        return self.slider.value

    @iteration.setter
    def iteration(self, k) -> None:
        self.slider.value = self._check(k)

    def summary_lines(self) -> list:
        """How the runs went, now: ``[(text, stopped)]`` (see :func:`ad_magic.race.summary_lines`),
        then why each stopped run stopped."""
        lines = summary_lines(self.runs, list(zip(self.param_names, (p.data for p in self.params))))
        for run in self.runs:
            if run.history.stopped is not None:
                who = f"{run.name} stopped" if len(self.runs) > 1 else "Stopped"
                lines.append((f"{who}: {run.history.stopped}", True))
        return lines

    def _header_html(self) -> str:
        lines = summary_lines(self.runs, list(zip(self.param_names, (p.data for p in self.params))))
        return "<br>".join(f'<span style="color:{"#b91c1c" if stopped else "#334155"}">{escape(text)}</span>'
                           for text, stopped in lines)

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if data is not None:
            try:   # a text frontend (or nbconvert to text) keeps how the runs went
                data["text/plain"] = "\n".join(text for text, _ in self.summary_lines())
            except Exception:   # a repr never raises
                pass
        return bundle

    def _status_html(self, problem=None) -> str:
        lines = []
        for run in self.runs:
            if run.history.stopped is not None:
                who = f"{escape(run.name)} stopped" if len(self.runs) > 1 else "Stopped"
                lines.append(f"<b>{who}:</b> {escape(run.history.stopped)}")
        if problem:
            lines.append(escape(problem))
        if not lines:
            return ""
        return '<div style="color:#b91c1c">' + "<br>".join(lines) + "</div>"

    def view_html(self, k=None) -> str:
        """The ``view=`` picture of iteration ``k``, as HTML (its error, if it raised)."""
        if self.view_fn is None:
            return ""
        try:
            return _picture_html(self.view_fn(self.record(k)))
        except Exception as exc:   # a teacher's view: its mistake must not break the explorer
            return (f'<div class="ad-view-error" style="color:#b91c1c"><b>The view raised</b> '
                    f"{escape(type(exc).__name__)}: {escape(str(exc))}</div>")

    def _show(self, k: int) -> None:
        self.header.value = self._header_html()
        if len(self.runs) == 1:
            mark = " (stopped here)" if k == self.stopped_at else ""
            self.label.value = (f"<b>iteration {k} / {self.n_iterations}</b> &nbsp; "
                                f"loss = {escape(format_number(self.losses[k]))}{mark}")
        else:
            losses = " · ".join(f"{escape(r.name)} {escape(format_number(self.record(k, r.name).loss))}"
                                for r in self.runs)
            self.label.value = f"<b>iteration {k} / {self.n_iterations}</b> &nbsp; loss: {losses}"
        self.image.value = self.png(k)
        self.table.value = self.table_html(k)
        if self.view_fn is not None:
            self.view_box.value = self.view_html(k)
        try:
            self.graph.value = graph_html(self.svg(k, caption=False), len(self.graph_view(k).nodes))
        except RenderError as exc:   # a later layout could not be drawn: say so, keep the rest
            self.graph.value = message_svg(f"Graph not drawn: {exc}")
