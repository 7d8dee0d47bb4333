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
(:class:`ad_magic.widgets.training.TrainingView`).

The graph is laid out once per distinct structure and only restyled per iteration. A
loss whose graph changes between iterations (a branch on a value: ``x * x if x.item() > 0
else -x``, a Huber loss) gets one layout per shape of graph it takes, each laid out the
first time it is shown.

Headless: setting ``.slider.value`` (or ``.iteration``), a hyperparameter slider or a
start box updates the state synchronously, and ``svg(k)``, ``figure(k)``, ``png(k)`` and
``table_html(k)`` render any iteration without a browser.

The explorer is the box that puts four parts together, each with its own interface:

- running the descents — :class:`ad_magic.widgets.descent_runs.DescentRuns` (``optim.descend``
  for each run, its checks, and the one owner of the parameters' and graph's state);
- sampling the loss landscape — :mod:`ad_magic.engine.landscape_grid` (NumPy only);
- the picture — :class:`ad_magic.widgets.descent_picture.DescentPicture` (and the graphs,
  :class:`ad_magic.widgets.graph_layouts.GraphLayouts`);
- the controls — :class:`ad_magic.widgets.hyperparameters.HyperparameterControls` (widgets
  that report changes through callbacks).
"""
from __future__ import annotations

import base64
import numbers

import ipywidgets as widgets

from ..drawing.dot import DEFAULT_MAX_NODES
from ..drawing.graph_view import GraphView, graph_html, inline_svg, message_svg
from ..drawing.names import DisplayNames, normalize_names
from ..drawing.render import RenderError
from ..engine import Tensor
from ..engine.formatting import escape, format_number, format_value, html_table
from ..engine.landscape_grid import CONTOUR_POINTS, CONTOUR_POINTS_POINTWISE, SLICE_POINTS  # noqa: F401
from .descent_picture import DescentPicture
from .descent_runs import DescentRuns
from .graph_layouts import GraphLayouts
from .hyperparameters import MAX_START_INPUTS, HyperparameterControls
from .plots import figure_png
from .race import Run, summary_lines

__all__ = ["DescentExplorer"]

PLAY_INTERVAL_MS = 350
# On every button of the iteration player (ipywidgets' Play gives its buttons no title of their own).
PLAY_TOOLTIP = "▶ play the iterations (❚❚ pauses) · ■ stop: back to iteration 0 · ↻ loop: start over at the end"

# Keyword arguments of the box itself (layout=...); every other one goes to the optimizer.
_BOX_KEYWORDS = frozenset(widgets.VBox.class_trait_names())


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


class DescentExplorer(widgets.VBox):
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
    raises, every tensor of the loss's graph is put back as it was. ``descent``,
    ``history``, ``losses``, ``stopped``, ``optimizer`` and ``lr`` are the first
    optimizer's; ``histories`` has them all.
    """

    def __init__(self, loss, params=None, *, lr=0.1, steps=50, optimizer="sgd", optimizers=None,
                 names=None, max_nodes=DEFAULT_MAX_NODES, minima=(), view=None, data=None,
                 controls=True, **opts):
        from ..engine.landscapes import Landscape, landscape_of
        from ..engine.nn import Module, parameter_list

        box = {key: opts.pop(key) for key in list(opts) if key in _BOX_KEYWORDS}
        if isinstance(loss, Landscape):
            if params is None:
                params = list(loss.tensors())
            minima = minima or loss.minima
            loss = loss(*params)
        self.model = params if isinstance(params, Module) else None
        params = parameter_list(params, "DescentExplorer")   # a Module's parameters, a Tensor, a list
        self._names = normalize_names(names, loss if isinstance(loss, Tensor) else None)
        self._layouts = GraphLayouts(self._names, max_nodes)
        # descend's own checks, for every optimizer, before anything moves
        self.descents = DescentRuns(loss, params, optimizer=optimizer, optimizers=optimizers, lr=lr,
                                    steps=steps, opts=opts, record=self._layouts.record)
        params = self.descents.params
        self.loss, self.loss_fn = (loss, None) if isinstance(loss, Tensor) else (None, loss)
        self.n_iterations = self.descents.steps
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
        self._namer = DisplayNames(self._names)
        self.param_names = [self._namer(p) or f"p{i}" for i, p in enumerate(params)]

        with self.descents.undo_on_error():    # an error or an interrupt: every tensor as it was
            self.descents.run()
            self._build(controls, view is not None, box)

    def _build(self, controls, has_view, box) -> None:
        """The picture and the widgets, showing iteration 0."""
        params = self.params
        self.view = self._layouts.first
        self.picture = DescentPicture(self.runs, self.descents.start, names=self.param_names,
                                      minima=self.minima, sample=self.descents.sample)

        last = self._last_iteration()
        self.slider = widgets.IntSlider(value=0, min=0, max=last, step=1, description="",
                                        continuous_update=True, layout=widgets.Layout(width="320px"))
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=PLAY_INTERVAL_MS,
                                 description="Play", disabled=last == 0, tooltip=PLAY_TOOLTIP)
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
        pictures = [self.image] + ([self.view_box] if has_view else [])
        body = widgets.HBox(pictures + [self.table],
                            layout=widgets.Layout(align_items="flex-start", flex_flow="row wrap"))
        children = [controls_row, self.header]     # the header right above the sliders that change it
        self.controls = None
        if controls and all(r.live for r in self.runs):
            typed = self.descents.scalar and len(params) <= MAX_START_INPUTS
            self.controls = HyperparameterControls(
                [(run.name, run.history.optimizer) for run in self.runs],
                self.descents.start_point() if typed else None, self.param_names,
                on_hyperparameters=self._hyperparameters_changed, on_start=self._start_changed,
                on_reset=self.reset, on_problem=self._problem)
            children.append(self.controls)
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

    # -- the runs (DescentRuns) and what the controls change
    runs = property(lambda self: self.descents.runs, doc="The runs (race.Run), one per optimizer, in race order.")
    start = property(lambda self: self.descents.start, doc="Where every run starts: one array per parameter.")

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

    @property
    def hyperparameters(self) -> dict:
        """Optimizer name -> {"lr", "momentum", "beta1", "beta2": its slider} ({} without controls)."""
        return {} if self.controls is None else self.controls.sliders

    @property
    def start_inputs(self) -> list:
        """The typed start point's boxes ([] without them)."""
        return [] if self.controls is None else self.controls.start_inputs

    @property
    def reset_button(self):
        """Reset (None without controls)."""
        return None if self.controls is None else self.controls.reset_button

    def _hyperparameters_changed(self, name, lr, opts) -> None:
        self._rerun([self.descents.set_hyperparameters(name, lr, opts)])

    def _start_changed(self, values) -> None:
        self.descents.set_start(values)
        self._rerun(self.runs)

    def _problem(self, text) -> None:
        self.status.value = self._status_html(text)

    def reset(self) -> None:
        """Back to the start point and hyperparameters the explorer was made with."""
        self.descents.reset()
        if self.controls is not None:
            self.controls.restore()
        self._rerun(self.runs)

    def _rerun(self, runs) -> None:
        """Run these optimizers again (from ``start``, with their hyperparameters now)
        and redraw: on the same landscape unless the start or a path left it."""
        problem = self.descents.rerun(runs)
        self.picture.update(self.runs, self.descents.start)
        last = self._last_iteration()
        k = min(self.slider.value, last)
        self.slider.max = self.play.max = last
        self.play.disabled = last == 0
        self.status.value = self._status_html(problem)
        if self.slider.value != k:
            self.slider.value = k       # shows it
        else:
            self._show(k)

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
        return self.descents.run_named(name)

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

    def _collapsed_svg(self, k):
        run = self._run(None)
        state = run.states.get(min(k, len(run.history) - 1))
        return None if state is None else inline_svg(self._layouts.collapsed_svg(state) or "") or None

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
        who = f"{run.name}, " if len(self.runs) > 1 else ""
        text = f"{who}iteration {j} / {self.n_iterations}: loss = {format_number(run.history.losses[j])}"
        if not caption:
            text = f"{run.name} stopped at iteration {j}: its graph then" if j < k else None
        return inline_svg(self._layouts.svg(state, caption=text))

    def figure(self, k=None):
        """A new matplotlib Figure of iteration ``k``: the loss curve(s), and the loss
        slice (one scalar parameter) or contours (two)."""
        return self.picture.figure(self._check(k))

    def png(self, k=None) -> bytes:
        """The figure of iteration ``k`` as PNG bytes (rendered once, then cached)."""
        return self.picture.png(self._check(k))

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
        """How the runs went, now: ``[(text, stopped)]`` (see :func:`ad_magic.widgets.race.summary_lines`),
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
            # a run that stopped before k says where, not the loss it stopped with
            losses = " · ".join(f"{escape(r.name)} stopped at {len(r.history) - 1}" if len(r.history) - 1 < k else
                                f"{escape(r.name)} {escape(format_number(self.record(k, r.name).loss))}"
                                for r in self.runs)
            self.label.value = f"<b>iteration {k} / {self.n_iterations}</b> &nbsp; loss: {losses}"
        self.image.value = self.png(k)
        self.table.value = self.table_html(k)
        if self.view_fn is not None:
            self.view_box.value = self.view_html(k)
        try:   # with the graph's modules collapsed too: a click on a module's box shows them
            self.graph.value = graph_html(self.svg(k, caption=False), len(self.graph_view(k).nodes),
                                          other=self._collapsed_svg(k))
        except RenderError as exc:   # a later layout could not be drawn: say so, keep the rest
            self.graph.value = message_svg(f"Graph not drawn: {exc}")
