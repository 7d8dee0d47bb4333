"""Step through backpropagation: :class:`BackwardStepper` (ipywidgets 8).

The stepper steps through ``tensor.backward_steps()`` — the same generator ``backward()``
runs — with a slider, a Play button and Previous/Next. The graph is laid out once
(:class:`~ad_magic.graph_view.GraphView`); each step only restyles it: the node whose
``_backward`` runs is highlighted, the grads it just changed are marked, grads not
reached yet are blank, and a caption writes out the chain rule with the actual numbers.
The local derivative in a caption is the engine's own (``ChainTerm.factor``), never
recomputed here.

Only standard ipywidgets are used (Play linked to the slider with ``widgets.link``, not
``jslink``), so it works in JupyterLab, Notebook 7, VS Code and Colab. It works headless:
setting ``.slider.value`` (or ``.step``) updates its state synchronously, and any step
can be rendered to SVG without a browser.
"""
from __future__ import annotations

import numbers
import re

import ipywidgets as widgets
import numpy as np

from .adapters import adapt, adapt_names
from .display_names import DisplayNames, normalize_names
from .dot import DEFAULT_MAX_NODES
from .formatting import escape, format_number, format_value
from .graph_view import GraphView, graph_html, inline_svg

__all__ = ["BackwardStepper"]

PLAY_INTERVAL_MS = 700
SVG_CAPTION_CHARS = 140    # a longer caption would widen the picture beyond the graph


# --------------------------------------------------------------------------- caption text

_LETTER = re.compile(r"(?<![A-Za-z0-9_])(out|a|b)(?![A-Za-z0-9_])")


def _substitute(text: str, names: dict) -> str:
    """The rule text with its letters a, b, out replaced by the tensors' names (when known)."""
    return _LETTER.sub(lambda m: names.get(m.group(1)) or m.group(1), text)


def _bracket(text: str) -> str:
    """A local derivative in brackets when a product with it would read ambiguously."""
    return f"({text})" if " " in text or text.startswith("-") else text


def _grad_symbol(name: str) -> str:
    return f"∂L/∂{name}"


# --------------------------------------------------------------------------- the widget

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
        tensor = adapt(tensor, "BackwardStepper")   # another library's graph: through its adapter
        names = normalize_names(adapt_names(tensor, names))
        generator = tensor.backward_steps(grad)   # the engine's errors (non-scalar, ...) surface here
        self.output = tensor
        self._namer = DisplayNames(names)
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
        for i, operand in enumerate(node.parents[:2]):
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
                text = term.factor_text   # ∂L/∂out · (local derivative), bracketed once
                if text is not None and f"({text})" not in expression:
                    expression = expression.replace(text, _bracket(text), 1)
                expression = _substitute(expression, letters)
                value = None
                if scalar and factor is not None:
                    with np.errstate(all="ignore"):
                        value = float(np.sum(g * factor))
                    if g.size == 1 and np.size(factor) == 1:
                        expression += f" = {format_number(g)} · {format_number(factor)}"
                    expression += f" = {format_number(value)}"
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
                    clause += (f", so {symbol} = {' + '.join(format_number(a) for a in addends)}"
                               f" = {format_number(after)}")
                elif not known:
                    clause += f" = {format_number(after)}"
            elif before is None:
                clause += f" → {format_value(after)}"
            else:
                clause += (f"; {symbol}: {format_value(before)} → {format_value(after)}"
                           f" (+ {format_value(delta)})")
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
            seed = format_value(self._seed)
            out = self._namer(self.output) or "L"
            rest = " Every other grad is blank until backprop reaches it." if self.n_steps else ""
            if self._seed.size == 1:
                return f"Seed: ∂L/∂{out} = {seed} (the output's own gradient).{rest}" if out != "L" \
                    else f"Seed: ∂L/∂L = {seed} (the output's own gradient).{rest}"
            return f"Seed: ∂L/∂{out} = grad {seed}.{rest}"
        step = self.steps[k - 1]
        note = getattr(step, "note", None)   # an adapted graph's step whose rule went wrong, or raised
        if note and getattr(step, "error", None) is not None:
            return f"{step.function}: {note}"
        return f"{step.function}: {self._captions[k - 1]}" + (f" ✗ {note}" if note else "")

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
        return inline_svg(self.view.svg(values=self._values, grads=grads, highlight=highlight,
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
        rule_html = f'<div style="color:#475569">{escape(rule)}</div>' if rule else ""
        self.caption.value = (f'<div style="font-family:monospace;white-space:pre-wrap">'
                               f"{escape(self.caption_text(k))}</div>{rule_html}")
        self.graph.value = graph_html(self.svg(k), len(self.view.nodes))
        self.previous.disabled = k <= 0
        self.next.disabled = k >= n
