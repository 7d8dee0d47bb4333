"""Forward mode on the timeline: each node's value and its *tangent*, pass by pass.

:class:`ForwardModeTimeline` is a :class:`~ad_magic.widgets.timeline.Timeline` whose states come
from the engine's forward mode (:func:`ad_magic.engine.functional.tangent_steps`) instead
of ``backward_steps()``. A pass seeds one input's tangent with 1 (every other input's
with 0) and carries, beside each value, how fast it moves with that input: ∂v/∂x, from
its inputs' tangents by the chain rule read forwards (``∂mul₁/∂x = y · ∂x/∂x + x · ∂y/∂x
= 3.0 · 1.0 + 2.0 · 0.0 = 3.0``). The boxes show the tangent where the reverse timeline
shows the grad. A function of n inputs needs n passes — one column of the Jacobian each —
where reverse mode needs one pass per output (one row each); the timeline counts the
passes and says so at the end of each (the cost view).

``BackwardStepper(out, timeline=ForwardModeTimeline(out))`` steps through it, in the
notebook or an exported page, exactly as through the reverse timeline.
"""
from __future__ import annotations

import re

import numpy as np

from ..drawing.dot import CHANGED, DEFAULT_MAX_NODES, GRAD_TEXT
from ..drawing.graph_view import GraphView, grad_text
from ..drawing.names import DisplayNames, normalize_names
from ..engine import OPS, Tensor, topological_order
from ..engine.formatting import format_array, format_number, format_value
from ..engine.functional import tangent_steps
from .timeline import KIND_WORDS, State, Timeline

__all__ = ["ForwardModeTimeline", "MAX_PASSES"]

MAX_PASSES = 6   # one pass per input value up to this many; beyond it, one pass per input tensor


def _formula(t) -> str:
    return OPS[t._function].formula


def _number(x) -> str:
    text = format_number(x)
    return f"({text})" if text.startswith("-") else text


class _Pass:
    """One forward-mode pass: the direction it seeds and how to write it."""

    def __init__(self, number, seeds, symbol):
        self.number, self.seeds, self.symbol = number, seeds, symbol   # seeds: [(leaf, tangent array)]


class ForwardModeTimeline(Timeline):
    """Every state of forward-mode differentiation of ``tensor``, computed once.

    ``inputs`` are the leaves to differentiate with respect to (default: every leaf that
    needs a gradient). With at most `MAX_PASSES` input values there is one pass per value
    (its tangent 1, the others 0: the Jacobian's column for it); with more, one pass per
    input tensor, its tangent all ones (a directional derivative). ``names`` maps tensors
    to display names, as for the reverse timeline.
    """

    def __init__(self, tensor, *, names=None, inputs=None, max_nodes=DEFAULT_MAX_NODES):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"forward mode steps through an ad_magic Tensor's graph, got {type(tensor).__name__}")
        if not tensor.requires_grad:
            raise ValueError("forward mode: the output does not depend on any tensor that needs a gradient")
        leaves = [t for t in topological_order(tensor, only_grad=True) if t.is_leaf]
        if inputs is None:
            inputs = leaves
        inputs = list(inputs)
        for x in inputs:
            if not any(x is leaf for leaf in leaves):
                raise ValueError("forward mode: every input must be a leaf of the output's graph that needs a gradient")
        if not inputs:
            raise ValueError("forward mode: the output's graph has no input to differentiate with respect to")
        self._build_forward_mode(tensor, normalize_names(names), inputs, max_nodes)

    # ------------------------------------------------------------------ building
    def _build_forward_mode(self, tensor, names, inputs, max_nodes):
        self.output = tensor
        self.forward = True
        self.namer = DisplayNames(names, output=tensor)
        self._operands_of = {}
        self.inputs = inputs
        self.view = GraphView(tensor, names=self.namer.names, max_nodes=max_nodes, modules="flat", layout=False)
        nodes = self.view.nodes
        self._position = {id(t): i for i, t in enumerate(nodes)}
        self.values = [np.array(t.data) for t in nodes]
        self.states, self.steps, self._changes = [], [], []
        self.appears = [0] * len(nodes)
        self.grad_changes = [[] for _ in nodes]    # here: (state, tangent or None) per change
        self._received = [[] for _ in nodes]
        self._own = [None] * len(nodes)
        self._formulas = [None] * len(nodes)
        self._non_finite = [None] * len(nodes)
        self._undrawn, self._undrawn_appears, self._box_changed = {}, {}, {}
        self.observation, self.problems = None, []    # no student's backward is watched here
        self._tangent_lines = [[] for _ in nodes]  # (state, text) per pass: the card's tangent lines
        self.passes = self._passes(inputs)
        self.forward_steps = []
        self.jacobian = []                         # per pass: the output's tangent
        for t in nodes:
            if t._function is not None:
                self._formulas[self._position[id(t)]] = self.forward_text(t, _formula(t), t.data)
        for one in self.passes:
            self._pass_states(one)
        self.seed_state = 0
        self.view.lay_out(values=[[v] for v in self.values],
                          grads=[[after for _, after in changes if after is not None] or [None]
                                 for changes in self.grad_changes])

    def _passes(self, inputs):
        total = sum(x.size for x in inputs)
        passes = []
        if total <= MAX_PASSES:
            for x in inputs:
                name = self.namer.ref(x) or "?"
                for j in range(x.size):
                    direction = np.zeros(x.size, x.dtype)
                    direction[j] = 1
                    symbol = name if x.size == 1 else f"{name}[{', '.join(map(str, np.unravel_index(j, x.shape)))}]"
                    seeds = [(y, direction.reshape(x.shape) if y is x else np.zeros(y.shape, y.dtype))
                             for y in inputs]
                    passes.append(_Pass(len(passes) + 1, seeds, symbol))
        else:
            for x in inputs:
                seeds = [(y, np.ones(y.shape, y.dtype) if y is x else np.zeros(y.shape, y.dtype)) for y in inputs]
                passes.append(_Pass(len(passes) + 1, seeds, f"{self.namer.ref(x) or '?'}·𝟙"))
        return passes

    def tangent_symbol(self, t, one) -> str:
        """``∂mul₁/∂x``: the tangent of ``t`` in pass ``one``."""
        return f"∂{self.namer.ref(t) or '?'}/∂{one.symbol}"

    def _pass_states(self, one):
        n_passes = len(self.passes)
        k = len(self.states)
        if one.number > 1:   # a new pass: every tangent of the last one is blank again
            for changes in self.grad_changes:
                if changes and changes[-1][1] is not None:
                    changes.append((k, None))
        seeded = []
        for leaf, tangent in one.seeds:
            p = self._position.get(id(leaf))
            if p is not None:
                self.grad_changes[p].append((k, tangent))
                self._tangent_lines[p].append((k, f"{self.tangent_symbol(leaf, one)} = {format_value(tangent)}"))
            seeded.append(f"{self.tangent_symbol(leaf, one)} = {format_value(tangent)}")
        values = ", ".join(f"{self.namer(x) or '?'} = {format_value(x.data)}" for x in self.inputs)
        lead = "Forward mode. Inputs: " + values + ". " if one.number == 1 else ""
        self.states.append(State("inputs", 0, None, [p for p, _ in self._seeded_positions(one)],
                                 f"{lead}Pass {one.number} of {n_passes}: seed the tangents {', '.join(seeded)}. "
                                 f"Each value will carry its tangent, how fast it moves with {one.symbol}."))
        output_tangent = None
        for step in tangent_steps(self.output, one.seeds):
            node = step.node
            k = len(self.states)
            p = self._position.get(id(node))
            if one.number == 1:
                self.forward_steps.append(step)
                if p is not None:
                    self.appears[p] = k
            equation = self._tangent_equation(step, one)
            if p is not None:
                self.grad_changes[p].append((k, np.array(step.tangent)))
                self._tangent_lines[p].append((k, equation))
            value_text = self.forward_text(node, _formula(node), step.value)
            self.states.append(State("forward", step.index, p, [] if p is None else [p],
                                     f"{node._function}: {value_text};  {equation}",
                                     self._rule_line(node, _formula(node)), node._function))
            if node is self.output:
                output_tangent = np.array(step.tangent)
        if output_tangent is None:
            output_tangent = np.zeros(self.output.shape)
        self.jacobian.append(output_tangent)
        last = self.states[-1]
        symbol = self.tangent_symbol(self.output, one)
        done = f" End of pass {one.number} of {n_passes}: {symbol} = {format_value(output_tangent)}"
        if one.number == n_passes:
            done += ". " + self.cost_text()
        else:
            done += f" (column {one.number} of the Jacobian); the next pass seeds the next input."
        last.caption += done

    def _seeded_positions(self, one):
        for leaf, tangent in one.seeds:
            p = self._position.get(id(leaf))
            if p is not None:
                yield p, tangent

    def _tangent_equation(self, step, one) -> str:
        """``∂mul₁/∂x = y · ∂x/∂x + x · ∂y/∂x = 3.0 · 1.0 + 2.0 · 0.0 = 3.0``."""
        node = step.node
        op = OPS[node._function]
        named, numbers_ = [], []
        scalar = np.size(step.tangent) == 1
        for i, parent, tangent, contribution in step.terms:
            dot = self.tangent_symbol(parent, one)
            if op.elementwise:
                local = self._text(node, op.derivatives[i])
                named.append(dot if local == "1" else f"-{dot}" if local == "-1" else
                             f"{local if ' ' not in local else f'({local})'} · {dot}")
                if scalar:
                    factor = op.local(i, node.data, tuple(q.data for q in node.parents))
                    numbers_.append(f"{_number(factor)} · {_number(tangent)}")
            else:
                named.append(f"{node._function}'s Jacobian · {dot}")
                if scalar:
                    numbers_.append(_number(contribution))
        text = f"{self.tangent_symbol(node, one)} = {' + '.join(named)}"
        if scalar and numbers_:
            text += f" = {' + '.join(numbers_)}"
        return f"{text} = {format_value(step.tangent)}"

    def cost_text(self) -> str:
        """The cost view: n forward passes (columns) against m reverse passes (rows)."""
        n, m = len(self.passes), self.output.size
        columns = np.stack([np.ravel(c) for c in self.jacobian], axis=1)
        return (f"Forward mode took {n} pass{'es' if n != 1 else ''}, one per input direction, each giving one "
                f"column of the Jacobian; reverse mode takes one pass per output ({m} here), each giving one row. "
                f"Jacobian: {format_array(columns).replace(chr(10), ' ')}")

    # ------------------------------------------------------------------ reading states
    def label(self, k) -> str:
        k = self.check(k)
        state = self.states[k]
        n = sum(1 for s in self.states[: k + 1] if s.phase == "inputs")
        if state.phase == "inputs":
            return f"step {k} / {self.last} · pass {n}/{len(self.passes)} · seed"
        return f"step {k} / {self.last} · pass {n}/{len(self.passes)} · forward {state.index}/{len(self.forward_steps)}"

    def grad_label(self, tangent) -> str:
        """A box's tangent line (the reverse timeline's grad line)."""
        return "" if tangent is None else "tangent " + grad_text(tangent).removeprefix("grad ")

    def svg(self, k, *, caption=True) -> str:
        return _GRAD_LINE.sub(r"\1tangent ", super().svg(k, caption=caption))

    def card_lines(self, i) -> list:
        i = self._index(i)
        t = self.view.nodes[i]
        kind = self.view.plan.kinds[i]
        lines = [(f"{self.namer(t) or '?'} — {KIND_WORDS.get(kind, kind)}", 0, None),
                 (f"shape {tuple(t.shape)}" if t.ndim else "shape () (a scalar)", 0, None)]
        appear = self.appears[i]
        if appear:
            lines.append(("value: not computed yet", 0, appear))
        lines.append((f"value = {format_array(self.values[i])}", appear, None))
        if self._formulas[i]:
            lines.append((f"formula: {self._formulas[i]}", appear, None))
        tangents = self._tangent_lines[i]
        for m, (start, text) in enumerate(tangents):
            later = [s for s, _ in tangents[m + 1:]]
            lines.append((f"tangent: {text}", start, later[0] if later else None))
        return lines


_GRAD_LINE = re.compile(rf'((?:fill="{re.escape(GRAD_TEXT)}"|fill="{re.escape(CHANGED)}")[^>]*>)grad ')
