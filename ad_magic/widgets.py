"""Widgets to watch backprop happen (ipywidgets 8, standard controls only).

- :class:`BackwardStepper` steps through ``tensor.backward_steps()`` — the same
  generator ``backward()`` runs — with a slider and a Play button. The graph is laid out
  once; each step only restyles it: the node whose ``_backward`` runs is highlighted,
  the grads it just changed are marked, grads not reached yet are blank, and a caption
  writes out the chain rule with the actual numbers.
- :class:`DescentExplorer` runs gradient descent and lets you scrub through its
  iterations: the loss curve, the parameters and their grads, the loss as a function
  of one parameter (with the tangent line) or the contours for two, and the graph of
  that iteration.

Only standard ipywidgets are used (Play linked to the slider with ``widgets.link``, not
``jslink``), so they work in JupyterLab, Notebook 7, VS Code and Colab. Both work
headless: setting ``.slider.value`` updates their state synchronously, and any step can
be rendered to SVG (and, for descent, to a matplotlib Figure or PNG) without a browser.
"""
from __future__ import annotations

import html
import math
import numbers
import re
from typing import Optional

import ipywidgets as widgets
import numpy as np

from .engine import Tensor, no_grad, topological_order
from .graph import DEFAULT_MAX_NODES, GraphView
from .optim import SGD, Adam, Momentum, Optimizer
from .plots import DescentPlot

__all__ = ["BackwardStepper", "DescentExplorer", "DescentRecord"]

PLAY_INTERVAL_MS = 700
SVG_CAPTION_CHARS = 140    # a longer caption would widen the picture beyond the graph
_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)


# --------------------------------------------------------------------------- text

def _num(value) -> str:
    """A number as a learner reads it: 3.0, 0.25, 1.235e+05, inf."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e6:
        return f"{value:.1f}"
    return f"{value:.4g}"


def _array_text(array) -> str:
    """A scalar as a number; an array as its shape and ``mean m [min, max]``."""
    array = np.asarray(array)
    if array.size == 1:
        return _num(array.reshape(-1)[0])
    if array.size == 0:
        return f"{tuple(array.shape)} empty"
    with np.errstate(all="ignore"):
        mean, low, high = float(array.mean()), float(array.min()), float(array.max())
    if low == high:
        return f"{tuple(array.shape)} all {_num(low)}"
    return f"{tuple(array.shape)} mean {_num(mean)} [{_num(low)}, {_num(high)}]"


def _inline_svg(svg: str) -> str:
    """The SVG without XML prolog, doctype and comments before ``<svg``: ready to be
    put inline in an HTML page."""
    return _PROLOG.sub("", svg, count=1)


FIT_WIDTH_NODES = 60   # graphs up to this many nodes shrink to the output's width


def _graph_html(svg: str, nodes: int) -> str:
    """The inline SVG for an HTML widget: a small graph shrinks to fit the output's
    width (as Jupyter shows SVG images); a big one keeps its size and scrolls, so its
    labels stay readable."""
    if nodes <= FIT_WIDTH_NODES:
        svg = svg.replace("<svg ", '<svg style="max-width:100%;height:auto" ', 1)
    return svg


def _normalize_names(names) -> dict:
    """{tensor: name} from a dict keyed either way ({tensor: name} or {name: tensor})."""
    if not names:
        return {}
    if not hasattr(names, "items"):
        raise TypeError(f"names must be a dict mapping tensors to names, got {type(names).__name__}")
    out = {}
    for key, value in names.items():
        if isinstance(key, Tensor) and value is not None:
            out[key] = str(value)
        elif isinstance(value, Tensor) and key is not None:
            out.setdefault(value, str(key))
    return out


class _Namer:
    """Display names in captions: the user's names, else tensor.name, else the value of
    a scalar constant, else None (the caption then keeps the rule's letters a/b/out)."""

    def __init__(self, names: dict):
        self._by_id = {id(t): n for t, n in names.items()}

    def __call__(self, t) -> Optional[str]:
        name = self._by_id.get(id(t)) or t.name
        if name:
            return str(name)
        if not t.requires_grad and t._function is None and t._data.size == 1:
            return _num(np.asarray(t._data).reshape(-1)[0])
        return None


_LETTER = re.compile(r"(?<![A-Za-z0-9_])(out|a|b)(?![A-Za-z0-9_])")


def _substitute(text: str, names: dict) -> str:
    """The rule text with its letters a, b, out replaced by the tensors' names (when known)."""
    return _LETTER.sub(lambda m: names.get(m.group(1)) or m.group(1), text)


def _bracket(text: str) -> str:
    """A local derivative in brackets when a product with it would read ambiguously."""
    return f"({text})" if " " in text or text.startswith("-") else text


def _grad_symbol(name: str) -> str:
    return f"∂L/∂{name}"


# --------------------------------------------------------------------------- stepper

class BackwardStepper(widgets.VBox):
    """Step through backpropagation of ``tensor`` one ``_backward`` call at a time.

    Step 0 is the output's grad seeded to 1 (every other grad blank); step k is the
    state after the k-th ``_backward``. Drag the slider, press Play, or use
    Previous/Next. ``names`` maps tensors to display names; ``grad`` seeds a non-scalar
    output (as in ``backward(grad)``). After construction every grad holds its final
    ``backward()`` value: the stepper ran the generator to the end once, recording only
    the grads each step changed.
    """

    def __init__(self, tensor, *, names=None, grad=None, max_nodes=DEFAULT_MAX_NODES, **kwargs):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"BackwardStepper needs a Tensor (the output to backpropagate from), "
                            f"got {type(tensor).__name__}.")
        names = _normalize_names(names)
        generator = tensor.backward_steps(grad)   # the engine's errors (non-scalar, ...) surface here
        self.output = tensor
        self._namer = _Namer(names)
        self.view = GraphView(tensor, names=names, max_nodes=max_nodes)
        self._position = {id(t): i for i, t in enumerate(self.view.nodes)}
        self._values = [np.array(t.data) for t in self.view.nodes]   # values as they were
        self._record(generator)
        n = len(self.steps)

        self.slider = widgets.IntSlider(value=0, min=0, max=n, step=1, description="",
                                        continuous_update=True,
                                        layout=widgets.Layout(width="320px"))
        self.play = widgets.Play(value=0, min=0, max=n, step=1, interval=PLAY_INTERVAL_MS,
                                 description="Play", disabled=n == 0)
        widgets.link((self.play, "value"), (self.slider, "value"))
        self.previous = widgets.Button(description="Previous", icon="step-backward",
                                        layout=widgets.Layout(width="auto"), disabled=True)
        self.next = widgets.Button(description="Next", icon="step-forward",
                                    layout=widgets.Layout(width="auto"), disabled=n == 0)
        self.previous.on_click(lambda _: self._move(-1))
        self.next.on_click(lambda _: self._move(+1))
        self.label = widgets.HTML()
        self.graph = widgets.HTML(layout=widgets.Layout(overflow="auto", max_width="100%"))
        self.caption = widgets.HTML()
        controls = widgets.HBox([self.play, self.previous, self.next, self.slider, self.label],
                                layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        super().__init__([controls, self.caption, self.graph], **kwargs)
        self.add_class("ad-backward-stepper")
        self.slider.observe(self._on_slider, names="value")
        self._show(0)

    # -- recording, once
    def _record(self, generator) -> None:
        """Run backprop to the end, keeping per step only the grads it changed.

        ``_changes[k-1]`` holds ``(position, after, before)`` for each parent step k
        changed: position in ``view.nodes`` (-1 when not drawn), a copy of its grad after
        the step, and its grad before (the previous copy, shared, or None).
        """
        root = self.output
        last = {}            # id(tensor) -> copy of its latest grad
        self.steps = []
        self._changes = []
        self._captions = []
        self._highlight = []
        for step in generator:
            node = step.node
            if id(root) not in last:
                last[id(root)] = np.array(root.grad)
            node_grad = last.get(id(node))
            if node_grad is None:    # a custom rule's node that got no grad: zeros
                node_grad = last[id(node)] = np.array(node.grad)
            changes = []
            for parent in step.parents:
                after = np.array(parent.grad)
                before = last.get(id(parent))
                last[id(parent)] = after
                changes.append((self._position.get(id(parent), -1), after, before))
            self._captions.append(self._describe(step, node_grad, changes))
            self._changes.append(tuple(changes))
            self._highlight.append(self._position.get(id(node)))
            self.steps.append(step)
        self._seed = np.array(root.grad)
        self._seed_position = self._position.get(id(root))
        self._state = None            # grads at step _state_k, aligned with view.nodes
        self._state_k = 0

    def _describe(self, step, node_grad, changes) -> str:
        """The chain rule applied at ``step``, with numbers.

        One clause per term (``∂L/∂x += ∂L/∂out · y = 1.0 · 3.0 = 3.0``); when a grad
        already held contributions (the node is reused) or gets several in this step,
        the clause shows them summing (``so ∂L/∂x = 4.0 + 2.0 = 6.0``).
        """
        node = step.node
        name = self._namer
        letters = {"out": name(node) or ("L" if node is self.output else None)}
        for i, operand in enumerate(node._prev[:2]):
            letters["ab"[i]] = name(operand)
        g = np.asarray(node_grad)
        terms_by_parent = {}
        for term in step.terms:
            terms_by_parent.setdefault(id(term.parent), []).append(term)
        parts = []
        for (_, after, before), parent in zip(changes, step.parents):
            terms = terms_by_parent.get(id(parent), [])
            symbol = _grad_symbol(name(parent) or (letters.get(terms[0].operand) if terms else None)
                                  or (terms[0].operand if terms else "a"))
            scalar = after.size == 1
            contributions = []
            clauses = []
            for term in terms:
                factor = term.factor if term.factor_text is not None else None
                expression = term.expression
                if term.factor_text is not None:   # ∂L/∂out · (local derivative), bracketed
                    expression = expression.replace(term.factor_text, _bracket(term.factor_text), 1)
                expression = _substitute(expression, letters)
                value = None
                if scalar and factor is not None:
                    with np.errstate(all="ignore"):
                        value = float(np.sum(g * factor))
                    if g.size == 1 and np.size(factor) == 1:
                        expression += (f" = {_num(g.reshape(-1)[0])} · "
                                       f"{_num(np.asarray(factor).reshape(-1)[0])}")
                    expression += f" = {_num(value)}"
                contributions.append(value)
                clauses.append(f"{symbol} += {expression}")
            clause = "; ".join(clauses) or f"{symbol} changed"
            with np.errstate(all="ignore"):
                delta = after if before is None else after - before
            if scalar:
                known = None not in contributions and contributions
                if before is not None or len(terms) > 1:
                    addends = ([] if before is None else [before.reshape(-1)[0]])
                    addends += contributions if known else [delta.reshape(-1)[0]]
                    clause += (f", so {symbol} = {' + '.join(_num(a) for a in addends)}"
                               f" = {_num(after.reshape(-1)[0])}")
                elif not known:
                    clause += f" = {_num(after.reshape(-1)[0])}"
            elif before is None:
                clause += f" → {_array_text(after)}"
            else:
                clause += (f"; {symbol}: {_array_text(before)} → {_array_text(after)}"
                           f" (+ {_array_text(delta)})")
            parts.append(clause)
        if not parts:
            parts.append("no input needs a gradient")
        return "; ".join(parts)

    # -- grads at any step, by replay
    @property
    def n_steps(self) -> int:
        """Number of ``_backward`` calls (the slider runs from 0 to n_steps)."""
        return len(self.steps)

    @property
    def recorded_changes(self) -> int:
        """How many grad copies were recorded: one per (step, changed parent)."""
        return sum(len(c) for c in self._changes)

    def _check(self, k) -> int:
        if k is None:
            return self.slider.value
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"step must be an integer, got {type(k).__name__}")
        if not 0 <= k <= self.n_steps:
            raise ValueError(f"step must be between 0 and {self.n_steps}, got {k}")
        return int(k)

    def grads_at(self, k=None) -> list:
        """The grads of ``view.nodes`` after step ``k`` (None where not reached yet).

        Replays the recorded changes from the last reconstructed step, so moving one
        step costs only the grads that step changed.
        """
        k = self._check(k)
        if self._state is None or k < self._state_k - k:   # replaying from 0 is cheaper
            self._state = [None] * len(self.view.nodes)
            if self._seed_position is not None:
                self._state[self._seed_position] = self._seed
            self._state_k = 0
        state = self._state
        while self._state_k < k:
            for position, after, _ in self._changes[self._state_k]:
                if position >= 0:
                    state[position] = after
            self._state_k += 1
        while self._state_k > k:
            self._state_k -= 1
            for position, _, before in reversed(self._changes[self._state_k]):
                if position >= 0:
                    state[position] = before
        return list(state)

    def caption_text(self, k=None) -> str:
        """The chain rule applied at step ``k`` (default: the slider's step), as plain text."""
        k = self._check(k)
        if k == 0:
            seed = _array_text(self._seed)
            out = self._namer(self.output) or "L"
            rest = " Every other grad is blank until backprop reaches it." if self.n_steps else ""
            if self._seed.size == 1:
                return f"Seed: ∂L/∂{out} = {seed} (the output's own gradient).{rest}" if out != "L" \
                    else f"Seed: ∂L/∂L = {seed} (the output's own gradient).{rest}"
            return f"Seed: ∂L/∂{out} = grad {seed}.{rest}"
        step = self.steps[k - 1]
        return f"{step.function}: {self._captions[k - 1]}"

    def rule_text(self, k=None) -> str:
        """The local derivative rule of the node run at step ``k`` (empty at step 0)."""
        k = self._check(k)
        return "" if k == 0 else self.steps[k - 1].rule

    def svg(self, k=None) -> str:
        """The graph at step ``k`` as inline SVG (no XML prolog)."""
        k = self._check(k)
        grads = self.grads_at(k)
        if k == 0:
            highlight, changed = None, ()
        else:
            highlight = self._highlight[k - 1]
            changed = [p for p, _, _ in self._changes[k - 1] if p >= 0]
        caption = f"step {k} / {self.n_steps}: {self.caption_text(k)}"
        if len(caption) > SVG_CAPTION_CHARS:   # the full text is in the caption widget
            caption = caption[: SVG_CAPTION_CHARS - 1] + "…"
        return _inline_svg(self.view.svg(values=self._values, grads=grads, highlight=highlight,
                                         changed=changed, caption=caption))

    # -- the widget
    @property
    def step(self) -> int:
        return self.slider.value

    @step.setter
    def step(self, k) -> None:
        self.slider.value = self._check(k)

    def _move(self, delta: int) -> None:
        self.slider.value = min(max(self.slider.value + delta, 0), self.n_steps)

    def _on_slider(self, change) -> None:
        self._show(change["new"])

    def _show(self, k: int) -> None:
        n = self.n_steps
        self.label.value = f"<b>step {k} / {n}</b>"
        rule = self.rule_text(k)
        rule_html = f'<div style="color:#475569">{html.escape(rule)}</div>' if rule else ""
        self.caption.value = (f'<div style="font-family:monospace;white-space:pre-wrap">'
                               f"{html.escape(self.caption_text(k))}</div>{rule_html}")
        self.graph.value = _graph_html(self.svg(k), len(self.view.nodes))
        self.previous.disabled = k <= 0
        self.next.disabled = k >= n


# --------------------------------------------------------------------------- descent

class DescentRecord:
    """One iteration of gradient descent: the loss and copies of the parameters' values
    and grads (in the order of ``params``) at that iteration, before the update."""

    __slots__ = ("iteration", "loss", "values", "grads")

    def __init__(self, iteration, loss, values, grads):
        self.iteration, self.loss, self.values, self.grads = iteration, loss, values, grads

    def __repr__(self):
        return f"DescentRecord(iteration={self.iteration}, loss={self.loss!r})"


_OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
SLICE_POINTS = 161
CONTOUR_POINTS = 41
CONTOUR_POINTS_POINTWISE = 25   # when loss_fn must be called once per grid point


class DescentExplorer(widgets.VBox):
    """Run gradient descent on ``loss_fn()`` and scrub through its iterations.

    ``loss_fn`` takes no arguments and returns a scalar Tensor computed from ``params``
    (leaf Tensors, updated in place). Iteration k = 0 … steps records the loss, the
    parameters and their grads, then the optimizer steps (not after the last).
    ``optimizer`` is "sgd", "momentum", "adam", an Optimizer class or instance.
    A NaN/inf loss or parameter stops the run (see ``stopped``); parameters keep their
    last finite values.
    """

    def __init__(self, loss_fn, params, *, lr=0.1, steps=50, optimizer="sgd", names=None,
                 max_nodes=DEFAULT_MAX_NODES, **kwargs):
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be a function of no arguments returning the loss, "
                            f"got {type(loss_fn).__name__}.")
        params = [params] if isinstance(params, Tensor) else list(params) if params is not None else []
        if not params:
            raise ValueError("params is empty: pass the list of Tensors gradient descent should update.")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"params[{i}] is a {type(p).__name__}, not a Tensor.")
            if p._function is not None or not p.requires_grad:
                raise ValueError(f"params[{i}] must be a leaf Tensor that requires a gradient "
                                 f"(a value you created, not the result of an operation).")
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ValueError(f"steps must be a whole number of at least 1, got {steps!r}.")
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {lr!r}.")
        self.optimizer = self._make_optimizer(optimizer, params, float(lr))
        self.loss_fn = loss_fn
        self.params = params
        self.lr = float(lr)
        self.n_iterations = int(steps)
        self._names = _normalize_names(names)
        self._namer = _Namer(self._names)
        self.param_names = [self._namer(p) or f"p{i}" for i, p in enumerate(params)]
        self._max_nodes = max_nodes
        self._run()
        self._plot = DescentPlot(self.losses, stopped_at=self.stopped_at,
                                 slice=self._slice_data(), contour=self._contour_data())

        last = len(self.history) - 1
        self.slider = widgets.IntSlider(value=0, min=0, max=last, step=1, description="",
                                        continuous_update=True, layout=widgets.Layout(width="320px"))
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=PLAY_INTERVAL_MS // 2,
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
        super().__init__([controls, self.status, body, self.graph], **kwargs)
        self.add_class("ad-descent-explorer")
        self.slider.observe(lambda change: self._show(change["new"]), names="value")
        self._show(0)

    @staticmethod
    def _make_optimizer(optimizer, params, lr):
        if isinstance(optimizer, Optimizer):
            return optimizer
        if isinstance(optimizer, type) and issubclass(optimizer, Optimizer):
            return optimizer(params, lr=lr)
        if isinstance(optimizer, str):
            cls = _OPTIMIZERS.get(optimizer.lower())
            if cls is None:
                raise ValueError(f"unknown optimizer {optimizer!r}; choose one of "
                                 f"{', '.join(_OPTIMIZERS)}.")
            return cls(params, lr=lr)
        raise TypeError(f"optimizer must be 'sgd', 'momentum', 'adam' or an Optimizer, "
                        f"got {type(optimizer).__name__}.")

    # -- the run, once
    def _loss(self, iteration) -> Tensor:
        loss = self.loss_fn()
        if not isinstance(loss, Tensor):
            raise TypeError(f"loss_fn must return a Tensor, got {type(loss).__name__} "
                            f"at iteration {iteration}.")
        if loss.size != 1:
            raise ValueError(f"loss_fn must return a single value (a scalar Tensor), got shape "
                             f"{loss.shape}; reduce it first, e.g. with .sum() or .mean().")
        return loss

    def _run(self) -> None:
        params = self.params
        self.history = []
        self.losses = []
        self.stopped = None
        self.stopped_at = None
        self.view = None
        self._graph_states = []    # per iteration: (values, grads) aligned with view.nodes, or
        self._relayouts = {}       # iteration -> (loss tensor, {id: (value, grad)}) when not aligned
        self._relayout_view = None
        with np.errstate(all="ignore"):
            for k in range(self.n_iterations + 1):
                for p in params:
                    p.grad = None
                loss = self._loss(k)
                if not loss.requires_grad:
                    raise ValueError("the loss does not depend on params: loss_fn must compute it "
                                     "from the parameter tensors.")
                loss.backward()
                if k == 0 and all(p.grad is None for p in params):
                    raise ValueError("the loss does not depend on any of params: loss_fn must "
                                     "compute it from the parameter tensors.")
                value = float(np.asarray(loss.data).reshape(-1)[0])
                grads = [np.zeros_like(p.data) if p.grad is None else np.array(p.grad) for p in params]
                self.history.append(DescentRecord(k, value, [np.array(p.data) for p in params], grads))
                self.losses.append(value)
                self._record_graph(k, loss)
                if not math.isfinite(value):
                    self._stop(k, f"loss became {value} at iteration {k}")
                    break
                if k == self.n_iterations:
                    break
                saved = [p._data.copy() for p in params]
                self.optimizer.step()
                bad = [n for p, n in zip(params, self.param_names) if not np.all(np.isfinite(p._data))]
                if bad:
                    for p, data in zip(params, saved):   # keep the last finite values
                        p._data = data
                    self._stop(k, f"the update after iteration {k} made {', '.join(bad)} non-finite")
                    break

    def _stop(self, k, what) -> None:
        suggestion = f"{getattr(self.optimizer, 'lr', self.lr) / 10:g}"
        self.stopped_at = k
        self.stopped = (f"{what}; try a smaller learning rate, e.g. lr={suggestion} "
                        f"(--lr {suggestion}).")

    def _record_graph(self, k, loss) -> None:
        if self.view is None:
            self.view = GraphView(loss, names=self._names, max_nodes=self._max_nodes)
            aligned = self.view.nodes
        else:
            aligned = self.view.align(loss)
        if aligned is not None:
            self._graph_states.append(([np.array(t.data) for t in aligned],
                                       [None if t.grad is None else np.array(t.grad) for t in aligned]))
            return
        self._graph_states.append(None)
        snapshot = {id(t): (np.array(t.data), None if t.grad is None else np.array(t.grad))
                    for t in topological_order(loss)}
        self._relayouts[k] = (loss, snapshot)

    # -- the loss landscape around the path (one or two scalar parameters)
    def _evaluate(self, make_grids, fine: int, coarse: int) -> tuple:
        """loss_fn over a grid of parameter values, without a graph: ``(axes, z)``.

        ``make_grids(n)`` gives the axes (n points each) and one grid array per
        parameter. First one call with the grids as the parameters' data (right when
        the loss is elementwise in the parameters), checked at a few points against
        single calls; otherwise point by point on a coarser grid (each point is a full
        call of loss_fn). The parameters are restored afterwards.
        """
        params = self.params
        saved = [p._data for p in params]

        def at(grids, point):
            for p, g in zip(params, grids):
                p.data = g[point]
            try:
                return float(np.asarray(self.loss_fn().data).reshape(-1)[0])
            except Exception:   # e.g. a domain error far from the path: leave a hole
                return math.nan
        try:
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
                axes, grids = make_grids(coarse)
                z = np.empty(grids[0].shape)
                for i in np.ndindex(z.shape):
                    z[i] = at(grids, i)
                return axes, z
        finally:
            for p, data in zip(params, saved):
                p._data = data

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

    def svg(self, k=None) -> str:
        """The graph of iteration ``k`` with its values and grads, as inline SVG."""
        k = self._check(k)
        caption = f"iteration {k} / {self.n_iterations}: loss = {_num(self.losses[k])}"
        state = self._graph_states[k]
        if state is not None:
            values, grads = state
            return _inline_svg(self.view.svg(values=values, grads=grads, caption=caption))
        loss, snapshot = self._relayouts[k]
        if self._relayout_view is None or self._relayout_view[0] != k:
            self._relayout_view = (k, GraphView(loss, names=self._names, max_nodes=self._max_nodes))
        view = self._relayout_view[1]
        values = [snapshot[id(t)][0] for t in view.nodes]
        grads = [snapshot[id(t)][1] for t in view.nodes]
        return _inline_svg(view.svg(values=values, grads=grads, caption=caption))

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
        cell = ' style="padding:2px 12px 2px 0;text-align:left"'
        rows = "".join(
            f"<tr><td{cell}><b>{html.escape(name)}</b></td><td{cell}>{html.escape(_array_text(v))}</td>"
            f"<td{cell}>{html.escape(_array_text(g))}</td></tr>"
            for name, v, g in zip(self.param_names, record.values, record.grads))
        return ('<table style="border-collapse:collapse;font-family:monospace">'
                f"<tr><th{cell}>parameter</th><th{cell}>value</th><th{cell}>grad</th></tr>"
                f"{rows}</table>")

    @property
    def iteration(self) -> int:
        return self.slider.value

    @iteration.setter
    def iteration(self, k) -> None:
        self.slider.value = self._check(k)

    def _status_html(self) -> str:
        if self.stopped is None:
            return ""
        return f'<div style="color:#b91c1c"><b>Stopped:</b> {html.escape(self.stopped)}</div>'

    def _show(self, k: int) -> None:
        mark = " (stopped here)" if k == self.stopped_at else ""
        self.label.value = (f"<b>iteration {k} / {self.n_iterations}</b> &nbsp; "
                             f"loss = {html.escape(_num(self.losses[k]))}{mark}")
        self.image.value = self.png(k)
        self.table.value = self.table_html(k)
        view = self.view if self._graph_states[k] is not None else self._relayout_view[1]
        self.graph.value = _graph_html(self.svg(k), len(view.nodes))
