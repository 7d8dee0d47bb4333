"""Step through a computation: :class:`BackwardStepper` (an anywidget).

The stepper shows one :class:`~ad_magic.widgets.timeline.Timeline`: with ``forward=True`` the
forward pass (each value appears, parents first, with its formula and numbers), then the
backward pass — the same generator ``backward()`` runs — one ``_backward`` call per step,
the chain rule written out with the actual numbers. The graph is laid out once; each
step only restyles it.

Every state is computed once in Python and sent to the browser with the widget; the
slider, Previous/Next, Play and the ←/→ keys restyle the SVG there (``static/timeline.js``),
with no round trip to the kernel, so the widget keeps working after the kernel is
interrupted or shut down. Clicking or hovering a node opens its card. The widget tells
Python where it is (``.step``) while a kernel listens: one message at a time, the next
once the kernel has answered the last.

It works headless too: setting ``.step`` (or ``.slider.value``, ``.play.value``,
``.next.click()``) updates its state synchronously, and any step renders to SVG
(:meth:`svg`) without a browser. :meth:`save_html` writes the same timeline as one
self-contained page; :meth:`save_frames` one picture per step.
"""
from __future__ import annotations

from pathlib import Path

import anywidget
import numpy as np
import traitlets

from ..drawing.dot import DEFAULT_MAX_NODES, fitted_svg
from ..drawing.graph_view import graph_html
from ..engine.formatting import escape
from .timeline import CAPTION_CHARS, PLAY_INTERVAL_MS, Timeline

__all__ = ["BackwardStepper"]

SVG_CAPTION_CHARS = CAPTION_CHARS
STATIC = Path(__file__).parent / "static"


# ------------------------------------------------------------------ headless controls
# What the browser draws as controls, seen from Python: each reads and moves the
# stepper's position, so a script or a test drives the widget as a learner would.

class _Slider:
    def __init__(self, stepper):
        self._stepper = stepper

    min = 0

    @property
    def max(self) -> int:
        return self._stepper.n_steps

    @property
    def value(self) -> int:
        return self._stepper.step

    @value.setter
    def value(self, k) -> None:
        self._stepper.step = k


class _Play(_Slider):
    interval = PLAY_INTERVAL_MS

    @property
    def disabled(self) -> bool:
        return self._stepper.n_steps == 0


class _Button:
    def __init__(self, stepper, delta):
        self._stepper, self._delta = stepper, delta

    @property
    def disabled(self) -> bool:
        k = self._stepper.step
        return k <= 0 if self._delta < 0 else k >= self._stepper.n_steps

    def click(self) -> None:
        s = self._stepper
        s.step = min(max(s.step + self._delta, 0), s.n_steps)


class _Shown:
    """A piece of what the widget shows at its current step, as HTML (``.value``)."""

    def __init__(self, stepper, render):
        self._stepper, self._render = stepper, render

    @property
    def value(self) -> str:
        return self._render(self._stepper.step)


# ------------------------------------------------------------------ the widget

class BackwardStepper(anywidget.AnyWidget):
    """Step through ``tensor``'s backward pass (with ``forward=True``: its forward pass,
    then its backward pass) one step at a time.

    Without the forward pass, step 0 is the output's grad seeded to 1 (every other grad
    blank) and step k the state after the k-th ``_backward``. With it, step 0 shows the
    inputs, the next steps compute each value in topological order, then come the seed
    and the backward steps. ``names`` maps tensors to display names; ``grad`` seeds a
    non-scalar output (as in ``backward(grad)``). Nodes made by an ``nn.Module`` are boxed
    by module; ``modules="collapsed"`` draws each innermost module as one box, stepped
    through as one step (``"auto"``: only in big models; see :class:`ad_magic.drawing.dot.GraphPlan`).
    Afterwards every grad holds its final ``backward()`` value.

    A tensor of a student's own class is stepped through *their* ``backward()`` (or the
    function given as ``backward``), watched as it runs: its steps are what their code
    did, in its order, seed and zeroing included, and the last step shows the grads it
    left. ``timeout`` (seconds) stops a backward that does not end. ``problems`` lists,
    one sentence each, what disagrees with the chain rule (empty when nothing does):
    a missing seed, a rule run before its node's consumers' rules, a grad overwritten
    instead of added to, the error raised and its line, a loop stopped. Every field of
    their objects is put back afterwards.
    """

    _esm = STATIC / "timeline.js"
    _css = STATIC / "timeline.css"
    data = traitlets.Dict().tag(sync=True)
    position = traitlets.Int(0).tag(sync=True)
    # "collapsed" / "expanded" from the browser's module button (or Python): the timeline
    # is computed again with the module boxes closed or open.
    modules = traitlets.Unicode("auto").tag(sync=True)
    # Module calls opened or closed by a click on their box, on top of ``modules``.
    toggled = traitlets.List(traitlets.Int()).tag(sync=True)

    def __init__(self, tensor, *, names=None, grad=None, forward=False, max_nodes=DEFAULT_MAX_NODES,
                 modules="auto", timeline=None, backward=None, timeout=10.0, observation=None, **kwargs):
        if timeline is None:
            timeline = Timeline(tensor, names=names, grad=grad, forward=forward, max_nodes=max_nodes, modules=modules,
                                backward=backward, timeout=timeout, observation=observation)
            # laid out again with the module boxes toggled: the same observation, not a second run
            self._options = {"names": names, "grad": grad, "forward": forward, "max_nodes": max_nodes,
                             "observation": timeline.observation}
        else:   # a timeline built elsewhere (forward mode's) is stepped as it is, its layout kept
            self._options, modules = None, timeline.view.plan.modules
        self.timeline = timeline
        self.problems = timeline.problems
        self.output = tensor
        self.view = timeline.view
        self.steps = timeline.steps
        super().__init__(data=timeline.payload(), position=0, modules=modules, **kwargs)
        self.add_class("ad-backward-stepper")
        self.on_msg(self._answer_browser)
        self.slider = _Slider(self)
        self.play = _Play(self)
        self.previous = _Button(self, -1)
        self.next = _Button(self, +1)
        self.label = _Shown(self, lambda k: f"<b>{escape(timeline.label(k))}</b>")
        self.caption = _Shown(self, self._caption_html)
        self.graph = _Shown(self, lambda k: graph_html(self.svg(k), len(self.view.nodes)))

    @traitlets.observe("modules", "toggled")
    def _modules_changed(self, change):
        """Lay the timeline out again with the module boxes collapsed or expanded (the
        button: every module, forgetting boxes opened by hand) or one box opened or closed."""
        if self._options is None:
            return       # a timeline given as it is (forward mode's): its layout is kept
        if change["name"] == "modules" and self.toggled:
            self.toggled = []        # lays out again, with the new modules
            return
        plan = self.timeline.view.plan
        if (self.modules, tuple(sorted(set(self.toggled)))) == (plan.modules, plan.toggled):
            return       # laid out so already
        timeline = Timeline(self.output, modules=self.modules, toggled=self.toggled, **self._options)
        self.timeline = timeline
        self.problems = timeline.problems
        self.view = timeline.view
        self.steps = timeline.steps
        self.position = min(self.position, timeline.last)
        self.data = timeline.payload()

    def _answer_browser(self, widget, content, buffers) -> None:
        """Answer the browser's "heard?": it tells the step one message at a time, the next
        once the kernel has answered the last (see ``linkToPython`` in timeline.js)."""
        if isinstance(content, dict) and content.get("kind") == "heard?":
            self.send({"kind": "heard", "id": content.get("id")})

    @traitlets.validate("position")
    def _valid_position(self, proposal):
        return self.timeline.check(proposal["value"])

    # -- the timeline
    @property
    def n_steps(self) -> int:
        """The last step's number (the slider runs from 0 to n_steps)."""
        return self.timeline.last

    @property
    def forward_steps(self) -> list:
        return self.timeline.forward_steps

    @property
    def recorded_changes(self) -> int:
        """How many grad copies were recorded: one per (backward step, changed parent)."""
        return sum(len(c) for c in self.timeline._changes)

    def _at(self, k) -> int:
        return self.step if k is None else self.timeline.check(k)

    def _step_and_node(self, k, node):
        if node is None and k is not None and not isinstance(k, (int, np.integer)):
            k, node = None, k          # grads_at(x): x's grad at the current step
        return self._at(k), node

    def grads_at(self, k=None, node=None):
        """The grads of ``view.nodes`` after step ``k`` (None where not reached yet); with
        ``node`` (a drawn tensor, the student's own object, or a position) its grad only."""
        return self.timeline.grads_at(*self._step_and_node(k, node))

    def values_at(self, k=None, node=None):
        """The values of ``view.nodes`` at step ``k`` (None where not computed yet); with
        ``node``, its value only."""
        return self.timeline.values_at(*self._step_and_node(k, node))

    def caption_text(self, k=None) -> str:
        """What step ``k`` does (default: the current step), as plain text."""
        return self.timeline.states[self._at(k)].caption

    def rule_text(self, k=None) -> str:
        """The rule of the op computed or run at step ``k``, in the user's names."""
        return self.timeline.states[self._at(k)].rule

    def card_text(self, node, k=None) -> str:
        """The card of ``node`` (a drawn tensor or its position) at step ``k``."""
        return self.timeline.card_text(node, self._at(k))

    def svg(self, k=None, *, caption=True) -> str:
        """The graph at step ``k`` as inline SVG (no XML prolog), its caption under it."""
        return self.timeline.svg(self._at(k), caption=caption)

    def _caption_html(self, k) -> str:
        rule = self.rule_text(k)
        rule_html = f'<div style="color:#475569">{escape(rule)}</div>' if rule else ""
        return (f'<div style="font-family:monospace;white-space:pre-wrap">'
                f"{escape(self.caption_text(k))}</div>{rule_html}")

    # -- where the widget is
    @property
    def step(self) -> int:
        return self.position

    @step.setter
    def step(self, k) -> None:
        self.position = self.timeline.check(k)

    # -- pictures for where widgets do not run
    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        try:   # the final state: what GitHub, nbviewer and nbconvert show instead of the widget
            data["image/svg+xml"] = fitted_svg(self.svg(self.n_steps, caption=False))
        except Exception:   # a repr never raises
            pass
        data["text/plain"] = f"<BackwardStepper: {self.n_steps} steps>"
        return data, metadata

    def save_html(self, path) -> Path:
        """Write the timeline as one self-contained HTML page (inline SVG, CSS and
        JavaScript; no network): slider, Previous/Next, Play, node cards, legend."""
        from .export import save_html

        return save_html(self.timeline, path)

    def save_frames(self, folder, format="png") -> list:
        """Write one picture per step into ``folder`` (``step-000.png``, …; ``format``
        "svg" or "png"), for slides. Returns the paths written."""
        from .export import save_frames

        return save_frames(self.timeline, folder, format=format)
