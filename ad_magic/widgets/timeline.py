"""One timeline of a computation: the forward pass, then the backward pass, state by state.

:class:`Timeline` computes every state once, headless, from the engine's own generators:
``tensor.forward_steps()`` (each value appears, parents first, with its formula and the
numbers plugged in: ``h = x · y = 2.0 · 3.0 = 6.0``) and ``tensor.backward_steps()`` (each
``_backward`` call, with the chain rule written out). The graph is laid out once
(:class:`~ad_magic.drawing.graph_view.GraphView`); a state only says what each node shows.

State 0 shows the inputs (with ``forward=False``: the output's seeded grad); the states
after it follow the engine's steps. Besides the caption of each state, every drawn value
has a *node card*: its name, shape and whole value, its formula with numbers, its grad so
far, the local derivative and upstream grad of its own rule, and each contribution it
received (with their sum when it is used several times). A card line has the interval of
states in which it is shown, so the browser (:mod:`ad_magic.widgets.stepper`, the exported page)
and Python (:meth:`Timeline.card_text`) show the same text.

All names are the user's (``names``, else ``tensor.name``); every other tensor gets one
name that cannot clash with them (``mul₁``, ``leaf₁``: :mod:`ad_magic.drawing.names`),
the same in the picture, the captions, the rule lines and the cards. The registry's
letters (``a``, ``b``, ``out``) are never shown: each is replaced by the name of the
tensor it stands for.
"""
from __future__ import annotations

import numbers
import re

import numpy as np

from ..adapters import adapt, adapt_names, node_for, preserved
from ..adapters.observe import observable, observe_backward
from ..drawing.dot import DEFAULT_MAX_NODES
from ..drawing.graph_view import GraphView, data_texts, grad_text, inline_svg
from ..drawing.names import DisplayNames, normalize_names
from ..drawing.nodes import graph_order, is_node
from ..engine import OPS, Tensor, topological_order
from ..engine.formatting import format_array, format_number, format_value
from ..engine.non_finite import explain

__all__ = ["Timeline", "State"]

CAPTION_CHARS = 140      # a picture's caption is cut here (the widget shows it whole)
PLAY_INTERVAL_MS = 700   # Play's pace in the browser: sent with the payload, one step per interval

# The registry's letters: operands a, b, c, the result out, and mean's count n.
_LETTER = re.compile(r"(?<![A-Za-z0-9_])(out|a|b|c|n)(?![A-Za-z0-9_])")
_QUOTED = re.compile(r"((?<![A-Za-z0-9_])'[^']*')")   # 'name', not the apostrophe of a's
_DOUBLE_BRACKETS = re.compile(r"\(\((-[^()]*)\)\)")
KIND_WORDS = {"leaf": "input (leaf)", "const": "constant", "value": "intermediate value", "output": "output"}


def _substitute(text: str, names: dict) -> str:
    """``text`` with the registry's letters replaced by ``names`` (a letter missing
    from ``names`` is left as it is: ``n`` in a text that is not mean's). A quoted name
    (``your rule for 'a'``) is a function's name, left as written."""
    parts = _QUOTED.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = _LETTER.sub(lambda m: names.get(m.group(1)) or m.group(1), parts[i])
    return "".join(parts)


def _bracket(text: str) -> str:
    """A local derivative in brackets when a product with it would read ambiguously."""
    return f"({text})" if " " in text or text.startswith("-") else text


def _number(x) -> str:
    text = format_number(x)
    return f"({text})" if text.startswith("-") else text


def _plus(addends) -> str:
    """``5.0 + (-3.0)``: a sum written out, negative terms bracketed."""
    return " + ".join(_number(a) if np.size(a) == 1 else format_value(a) for a in addends)


def _close(expected, got) -> bool:
    """A grad is what the chain rule says, up to rounding (float32 grads too)."""
    with np.errstate(all="ignore"):
        return bool(np.allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=1e-5,
                                atol=1e-9, equal_nan=True))


def _formula(t) -> str:
    """A node's forward formula from the op registry (``out = a · b``); for an op the
    registry does not know, its name applied to its inputs (``out = softplus(a)``)."""
    op = OPS.get(getattr(t, "kind", None) or t._function)
    return getattr(op, "formula", None) or _unknown_formula(t._function, len(t.parents))


def _unknown_formula(function, n_inputs) -> str:
    inputs = ", ".join("abc"[:n_inputs]) if 1 <= n_inputs <= 3 else "…"
    return f"out = {function}({inputs})"


class State:
    """What one position of the timeline shows.

    ``phase`` is ``inputs``, ``forward``, ``seed`` or ``backward``; ``index`` the number of
    the engine's step within its phase (0 for inputs and seed); ``highlight`` the
    position (in ``view.nodes``) of the node computed or whose rule runs (None at the
    start of a phase); ``changed`` the positions whose grad this step changed;
    ``caption`` the step in words and numbers; ``rule`` the op's rule in the user's names.
    """

    __slots__ = ("phase", "index", "highlight", "changed", "caption", "rule", "function")

    def __init__(self, phase, index, highlight, changed, caption, rule="", function=None):
        self.phase, self.index, self.highlight, self.changed = phase, index, highlight, tuple(changed)
        self.caption, self.rule, self.function = caption, rule, function

    def __repr__(self):
        return f"State({self.phase} {self.index}: {self.caption[:60]!r})"


class _Replayed:
    """A forward step the timeline shows: the node and the value it got."""

    __slots__ = ("node", "value", "formula")

    def __init__(self, node, value, formula):
        self.node, self.value, self.formula = node, value, formula


class Timeline:
    """Every state of stepping through ``tensor``'s forward pass (with ``forward=True``)
    and backward pass, computed once.

    ``names`` maps tensors to display names (either direction); ``grad`` seeds a
    non-scalar output as in ``backward(grad)``. Afterwards every tensor holds its
    forward value and its final ``backward()`` grad.

    A student's class is not stepped by ad_magic: its own ``backward()`` (or ``backward``
    given) is watched as it runs (:func:`~ad_magic.adapters.observe.observe_backward`,
    stopped after ``timeout`` seconds), and the steps are what it did, seed and zeroing
    included; ``problems`` lists what went wrong, in one sentence each (empty for
    ad_magic's Tensor and when their backward agrees with the chain rule). An
    ``observation`` already made is shown as it is.
    """

    def __init__(self, tensor, *, names=None, grad=None, forward=False, max_nodes=DEFAULT_MAX_NODES,
                 modules="auto", backward=None, timeout=10.0, observation=None, toggled=()):
        tensor = adapt(tensor, "BackwardStepper")   # another library's graph: through its adapter
        if backward is not None and not observable(tensor, backward):
            raise TypeError("backward= watches the backward of another class; ad_magic's Tensor (or a PyTorch "
                            "tensor) is stepped through its own backward pass.")
        self._observing = (backward, timeout, observation)
        with preserved(tensor):       # stepping a student's graph leaves every one of its fields as it was
            self._build(tensor, names, grad, forward, max_nodes, modules, toggled)

    def _build(self, tensor, names, grad, forward, max_nodes, modules, toggled=()):
        names = normalize_names(names, tensor)
        backward, timeout, observation = self._observing
        self.observation = None
        if observation is not None or observable(tensor, backward):
            adapt_names(tensor, DisplayNames(names, output=tensor).names)   # the findings use the same names
            self.observation = observation or observe_backward(tensor, backward, timeout, grad=grad)
            steps = self.observation.steps
        else:
            tensor.backward_steps(grad)        # the engine's errors (non-scalar, ...) surface here, first
            steps = None
        self.output = tensor
        self.forward = bool(forward)
        # One name per tensor (the user's, else a generated one), in every text and the picture.
        self.namer = DisplayNames(names, output=tensor)
        names = self.namer.names
        adapt_names(tensor, names)             # an adapted graph's step notes use the same names
        self._operands_of = {}
        self.forward_steps = self._replay() if forward else []
        # Laid out once every state is known, so each box has room for what it will show.
        self.view = GraphView(tensor, names=names, max_nodes=max_nodes, modules=modules, layout=False,
                              toggled=toggled)
        nodes = self.view.nodes
        self._position = {id(t): i for i, t in enumerate(nodes)}
        self.values = [np.array(t.data) for t in nodes]
        self.states = []
        # When each node's value appears (0: from the start), and its grad's changes:
        # (state, grad after) per change.
        self.appears = [0] * len(nodes)
        self.grad_changes = [[] for _ in nodes]
        self._received = [[] for _ in nodes]   # (state, clause text, values, delta) per contribution
        self._own = [None] * len(nodes)        # (state, rule lines) of the node's own backward step
        self._formulas = [None] * len(nodes)   # the forward formula with numbers
        self._non_finite = [None] * len(nodes)  # why the value is NaN or inf, in one sentence
        self._forward_states()
        self._backward_states(tensor.backward_steps(grad) if steps is None else steps)
        if self.observation is not None:
            self.problems = list(self.observation.problems)
        else:   # the rules run in ad_magic's order (a class with no backward() of its own yet)
            self.problems = list(dict.fromkeys(s.note for s in self.steps if not s.ok))
        self.view.lay_out(values=[[v] for v in self.values],
                          grads=[[after for _, after in changes] or [None] for changes in self.grad_changes])

    # ------------------------------------------------------------------ forward
    def _replay(self):
        """The forward pass as the engine replays it (same data: the leaves did not move).
        A graph with a hand-written rule, or another library's graph, cannot be replayed:
        its nodes are shown in topological order with the values they hold."""
        output = self.output
        try:
            with np.errstate(all="ignore"):   # a NaN made here is told at its step, not warned again
                return [_Replayed(s.node, np.array(s.value), s.formula) for s in output.forward_steps()]
        except ValueError:        # a hand-written rule: nothing to replay it with
            order = topological_order(output, only_grad=True)
        except TypeError:         # another library's graph records no forward rules: the values it holds
            order = graph_order(output)
        return [_Replayed(t, np.array(t.data), _formula(t)) for t in order if t._function is not None]

    def _operands(self, node) -> list:
        """The node's operands in the registry's order (a, b, c): its parents, and the
        constants an adapted node keeps outside its graph (micrograd's 2 in ``x**2``)."""
        key = id(node)
        if key not in self._operands_of:
            operands = list(node.parents)
            op = OPS.get(getattr(node, "kind", None) or node._function)
            arranged = getattr(node, "operands", None)    # an adapted node's reading (ad_magic's Tensor: none)
            if op is not None and arranged is not None and len(arranged) == len(op.inputs):
                operands = list(arranged)     # the adapter's reading: parents and constants in operand order
            self._operands_of[key] = operands
        return self._operands_of[key]

    def _letters(self, node) -> dict:
        """The registry's letters of ``node``'s rule, each replaced by the name of what it
        stands for (bracketed where it is an expression); an operand that cannot be placed
        reads ``?``, never a letter that could be taken for one of the user's names."""
        namer = self.namer
        letters = {"out": namer.ref(node) or "?"}
        operands = self._operands(node)
        for letter, operand in zip("abc", operands):
            if is_node(operand):
                letters[letter] = namer.ref(operand) or "?"
            else:
                letters[letter] = _number(operand)
        op = OPS.get(getattr(node, "kind", None) or node._function)
        for letter in getattr(op, "inputs", ())[len(operands):]:
            letters.setdefault(letter, "?")
        if (getattr(node, "kind", None) or node._function) == "mean" and operands and np.size(node.data):
            letters["n"] = format_number(np.size(operands[0].data) / np.size(node.data))   # elements averaged
        return letters

    def _text(self, node, text) -> str:
        """A rule's text (an expression, a derivative) in the names of ``node``'s tensors."""
        text = text.replace("∂L/∂", f"∂{self.namer.loss}/∂")
        return _substitute(text, self._letters(node))

    def _named_formula(self, node, formula) -> str:
        """``mul₁ = x · y``: the registry's formula with names (the result's unbracketed)."""
        head, _, rest = formula.partition(" = ")
        head = _substitute(head, {"out": self.namer(node) or "?"})
        return f"{head} = {self._text(node, rest)}" if rest else head

    def forward_text(self, node, formula, value) -> str:
        """``h = x · y = 2.0 · 3.0 = 6.0``: the formula in names, then in numbers, then the value."""
        parts = formula.split(" = ")
        named = self._named_formula(node, formula)
        operands = self._operands(node)
        if parts[1:] and operands and all(np.size(getattr(p, "data", p)) == 1 for p in operands) \
                and np.size(value) == 1:
            numbers_ = {letter: _number(getattr(p, "data", p)) for letter, p in zip("abc", operands)}
            numbers_["out"] = "?"
            with_numbers = _DOUBLE_BRACKETS.sub(r"(\1)", _substitute(parts[1], numbers_))   # tanh(-2.0)
            if with_numbers != parts[1]:
                return f"{named} = {with_numbers} = {format_number(value)}"
            return f"{named} = {format_number(value)}"
        return f"{named} → {format_value(value)}"

    def _rule_line(self, node, formula, terms=()) -> str:
        """The rule line of a step: the formula and each term's chain rule, in names."""
        parts = [self._named_formula(node, formula)]
        parts += [f"{self.namer.grad(t.parent)} += {self._text(node, t.expression)}" for t in terms]
        return ";  ".join(parts)

    def _forward_states(self):
        nodes = self.view.nodes
        self._undrawn_appears = {}   # id(tensor) -> the state computing a node that is not drawn
        if not self.forward:
            for i, t in enumerate(nodes):
                if t._function is not None:
                    self._formulas[i] = self.forward_text(t, _formula(t), t.data)
                    self._non_finite[i] = self._why_not_finite(t, t.data)
            return
        leaves = [t for t in nodes if t._function is None and t.requires_grad]
        named = [f"{self.namer(t)} = {format_value(t.data)}" for t in leaves if self.namer(t)]
        caption = "Inputs: " + (", ".join(named) if named else f"{len(leaves)} leaves")
        self.states.append(State("inputs", 0, None, (), caption + ". Next: the forward pass computes each "
                                 "value from its inputs, in order."))
        box = None
        for j, step in enumerate(self.forward_steps, start=1):
            node = step.node
            text = self.forward_text(node, step.formula, step.value)
            position = self._position.get(id(node))
            inside = self.view.plan.box_of(node)
            if position is None:
                joins = inside is not None and box is not None and box[0] == inside[0]
                self._undrawn_appears[id(node)] = len(self.states) - 1 if joins else len(self.states)
            if inside is not None:     # a collapsed module: its ops are one state
                k = len(self.states) - 1 if box is not None and box[0] == inside[0] else len(self.states)
                if k == len(self.states):
                    self.states.append(State("forward", j, None, (), "", "", inside[1]))
                    box = (inside[0], [])
                box[1].append(node._function)
                state = self.states[k]
                if position is not None:
                    self.appears[position] = k
                    self._formulas[position] = text
                    state.highlight = position
                state.caption = (f"{inside[1]}: forward through the module ({len(box[1])} ops: "
                                 f"{', '.join(box[1])})"
                                 + (f" → {format_value(step.value)}" if position is not None else ""))
                continue
            box = None
            k = len(self.states)
            if position is not None:
                self.appears[position] = k
                self._formulas[position] = text
            rule = self._rule_line(node, step.formula)
            why = self._why_not_finite(node, step.value)
            if position is not None:
                self._non_finite[position] = why
            caption = f"{node._function}: {text}" + (f" ⚠ {why}" if why else "")
            self.states.append(State("forward", j, position, (), caption, rule, node._function))

    def _why_not_finite(self, node, value):
        """The engine's sentence on a NaN or inf this node made from finite inputs, or None."""
        datas = [getattr(p, "data", p) for p in self._operands(node)]
        try:
            return explain(getattr(node, "kind", None) or node._function, datas, value)
        except (TypeError, ValueError, IndexError):     # operands the registry's op cannot read
            return None

    # ------------------------------------------------------------------ backward
    def _backward_states(self, generator):
        root = self.output
        last = {}            # id(tensor) -> copy of its latest grad
        self._undrawn = {}   # id(tensor) -> [tensor, (backward step, grad after)...] for nodes not drawn
        self.steps = []
        self._changes = []   # per backward step: (position, after, before) per changed parent
        seed_state = len(self.states)
        steps_done = []
        observation = self.observation
        if observation is not None:   # what the grads were before the student's backward ran
            for node, grad in observation.before.items():
                if grad is not None:
                    last[id(node)] = grad
        for step in generator:
            node = step.node
            if observation is None and id(root) not in last:
                last[id(root)] = np.array(root.grad)
            node_grad = step.upstream if step.upstream is not None else last.get(id(node))
            if node_grad is None and node is not None and observation is None:   # a custom rule's node: zeros
                node_grad = last[id(node)] = np.array(node.grad)
            changes = []
            if step.changes is None:      # the engine's steps: the grads as they are now
                recorded = [(parent, np.array(parent.grad)) for parent in step.parents]
            else:                         # recorded when the step happened
                recorded = [(parent, after) for parent, (_, after) in step.changes.items() if after is not None]
                if step.ok:               # a rule that agrees with the chain rule and added 0 (relu below 0)
                    changed = {id(parent) for parent, _ in recorded}
                    for parent in step.parents:
                        if parent is None or id(parent) in changed:
                            continue
                        known = last.get(id(parent))
                        if known is None and observation is None:   # ad_magic's order starts from zeros
                            known = np.zeros(np.shape(parent.data))
                        if known is not None:
                            recorded.append((parent, np.array(known)))
            for parent, after in recorded:
                before = last.get(id(parent))
                last[id(parent)] = after
                position = self._position.get(id(parent), -1)
                changes.append((position, after, before))
                if position < 0:       # not drawn (a big graph's window): its grads are still known
                    self._undrawn.setdefault(id(parent), [parent]).append((len(steps_done) + 1, after))
            targets = [parent for parent, _ in recorded]
            steps_done.append((step, node_grad, changes, targets))
            self.steps.append(step)
            self._changes.append(tuple(changes))
        seed_position = self._position.get(id(root))
        if observation is not None:
            self._seed = None
            shown = []
            for node, grad in observation.before.items():
                position = self._position.get(id(node))
                if grad is not None and position is not None:
                    self.grad_changes[position].append((seed_state, grad))
                    shown.append(position)
            root_grad = observation.before.get(root)
            self.states.append(State("seed", 0, None, shown, (
                f"Before your backward(): {self.namer.grad(root)} is "
                f"{'None' if root_grad is None else format_value(root_grad)}. Each step is what your code did, "
                "in its order: the seed and the zeroing too.")))
        else:
            self._seed = last[id(root)] if id(root) in last else np.array(root.grad)
            if seed_position is not None:
                self.grad_changes[seed_position].append((seed_state, self._seed))
            self.states.append(State("seed", 0, None, [] if seed_position is None else [seed_position],
                                     self._seed_caption()))
        box = None
        state_of_step = {}
        for j, (step, node_grad, changes, targets) in enumerate(steps_done, start=1):
            inside = self.view.plan.box_of(step.node)
            if inside is not None:     # a collapsed module: its backward steps are one state
                self._box_step(j, step, node_grad, changes, inside, box)
                box = inside
                state_of_step[j] = len(self.states) - 1
                continue
            state_of_step[j] = len(self.states)
            box = None
            k = len(self.states)
            if step.caption is not None:     # what a student's backward did outside a rule (seed, zeroing)
                caption, per_parent = self._plain(step, changes)
            else:
                caption, per_parent = self._describe(step, node_grad, changes, targets)
            position = self._position.get(id(step.node))
            for (p, after, _), info in zip(changes, per_parent):
                if p >= 0:
                    self.grad_changes[p].append((k, after))
                    if step.caption is None:     # a contribution of a rule (the zeroing and the seed are not)
                        self._received[p].append((k, info))
            if position is not None and step.caption is None:
                self._own[position] = (k, self._own_rule(step, node_grad))
            if step.caption is not None:
                rule = ""
            else:
                formula = getattr(step.op, "formula", None) or _unknown_formula(step.function,
                                                                                 len(step.node.parents))
                rule = self._rule_line(step.node, formula, step.terms)
            note, remark = step.note, step.remark     # the step protocol (engine/steps.py)
            if step.caption is not None:
                caption = caption if step.ok else f"{caption} ✗"
            elif note and step.error is not None:
                caption = note
            elif note:
                caption = f"{caption} ✗ {note}"
            elif remark:
                caption = f"{caption} (note: {remark})"
            self.states.append(State("backward", j, position, [p for p, _, _ in changes if p >= 0],
                                     f"{step.function}: {caption}", rule, step.function))
        self.seed_state = seed_state
        for changes in self._undrawn.values():    # backward step -> the state that shows it
            changes[1:] = [(state_of_step[j], after) for j, after in changes[1:]]

    def _box_step(self, j, step, node_grad, changes, inside, previous) -> None:
        """One backward step made inside a collapsed module: joined to the module's state
        (one state per module, as long as its steps follow each other), which shows the
        grads of the module's inputs and parameters once they are changed."""
        if previous is None or previous[0] != inside[0]:
            self.states.append(State("backward", j, None, [], "", "", inside[1]))
            self._box_changed = {}
        k = len(self.states) - 1
        state = self.states[k]
        _, per_parent = self._describe(step, node_grad, changes, step.parents)
        for (p, after, _), info in zip(changes, per_parent):
            if p >= 0:
                self.grad_changes[p].append((k, after))
                self._received[p].append((k, info))
                self._box_changed[p] = after
        position = self._position.get(id(step.node))
        if position is not None:
            state.highlight = position
            self._own[position] = (k, self._own_rule(step, node_grad))
        state.changed = tuple(self._box_changed)
        names = [f"∂L/∂{self.namer(self.view.nodes[p]) or self.view.plan.kinds[p]} → {format_value(after)}"
                 for p, after in self._box_changed.items()]
        state.caption = (f"{inside[1]}: backward through the module in one step"
                         + (f"; {'; '.join(names)}" if names else ""))

    def _plain(self, step, changes):
        """A step with its own caption: what each changed grad became."""
        per_parent = []
        parents = [parent for parent, (_, after) in step.changes.items() if after is not None]
        for (_, after, before), parent in zip(changes, parents):
            symbol = self.namer.grad(parent)
            with np.errstate(all="ignore"):
                delta = after if before is None or before.shape != after.shape else after - before
            per_parent.append({"symbol": symbol, "clauses": [f"{symbol} = {format_value(after)}"], "values": None,
                               "delta": delta, "wrong": False, "from": step.function})
        return step.caption, per_parent

    def _seed_caption(self) -> str:
        seed = format_value(self._seed)
        symbol = self.namer.grad(self.output)
        loss = self.namer.loss
        rest = " Every other grad is blank until backprop reaches it." if self.steps else ""
        if self._seed.size == 1:
            who = "" if self.namer(self.output) == loss else f": {loss} is {self.namer(self.output)}"
            return f"Seed: {symbol} = {seed} (the output's own gradient{who}).{rest}"
        return f"Seed: {symbol} = grad {seed}.{rest}"

    def _describe(self, step, node_grad, changes, targets):
        """The chain rule applied at ``step``, with numbers, and per changed parent what it
        received: ``(clause, contributions, delta)``.

        One clause per term (``∂L/∂x += ∂L/∂mul₁ · y = 1.0 · 3.0 = 3.0``); when a grad
        already held contributions (the node is reused) or gets several in this step,
        the clause shows them summing (``so ∂L/∂x = 4.0 + 2.0 = 6.0``). When a rule (a
        student's own ``_backward``) changed a grad by something else than the chain
        rule's numbers, the clause says what the grad should be and what it is.
        """
        node = step.node
        namer = self.namer
        g = np.asarray(node_grad)
        terms_by_parent = {}
        for term in step.terms:
            terms_by_parent.setdefault(id(term.parent), []).append(term)
        parts, per_parent = [], []
        for (_, after, before), parent in zip(changes, targets):
            terms = terms_by_parent.get(id(parent), [])
            symbol = namer.grad(parent)
            scalar = after.size == 1
            contributions, clauses = [], []
            for term in terms:
                factor = term.factor if term.factor_text is not None else None
                expression = term.expression
                text = term.factor_text   # ∂L/∂out · (local derivative), bracketed once
                if text is not None and f"({text})" not in expression:
                    expression = expression.replace(text, _bracket(text), 1)
                expression = self._text(node, expression)
                value = None
                if scalar and factor is not None:
                    with np.errstate(all="ignore"):
                        value = float(np.sum(g * factor))
                    if g.size == 1 and np.size(factor) == 1:
                        expression += f" = {_number(g)} · {_number(factor)}"
                    expression += f" = {format_number(value)}"
                contributions.append(value)
                clauses.append(f"{symbol} += {expression}")
            clause = "; ".join(clauses) or f"{symbol} changed"
            with np.errstate(all="ignore"):
                delta = after if before is None else after - before
            full = clause
            known = scalar and bool(contributions) and None not in contributions
            old = [] if before is None else [before.reshape(-1)[0]]
            # Only a step judged wrong (a student's rule: step.ok False) is compared with the
            # chain rule; the engine's own steps are the chain rule.
            wrong = (known and step.ok is False
                     and not _close(sum(old + contributions), after.reshape(-1)[0]))
            if scalar:
                if wrong:    # the rule did something else than the chain rule
                    should = old + contributions
                    total = f"{_plus(should)} = " if len(should) > 1 else ""
                    full += (f", so {symbol} should be {total}{format_number(sum(should))}"
                             f", but it is {format_number(after)}")
                elif known and (before is not None or len(terms) > 1):
                    full += (f", so {symbol} = {_plus(old + contributions)}"
                             f" = {format_number(after)}")
                elif not known:
                    added = old + [delta.reshape(-1)[0]]
                    sum_text = f"{_plus(added)} = " if len(added) > 1 else ""
                    full += f", so {symbol} = {sum_text}{format_number(after)}"
            elif before is None:
                full += f" → {format_value(after)}"
            else:
                full += (f"; {symbol}: {format_value(before)} → {format_value(after)}"
                         f" (+ {format_value(delta)})")
            parts.append(full)
            values = contributions if known and not wrong else None
            per_parent.append({"symbol": symbol, "clauses": clauses, "values": values, "delta": delta,
                               "wrong": wrong, "from": f"{node._function} → {namer(node) or '?'}"})
        if not parts:
            parts.append("no input needs a gradient" if step.changes is None else "its rule changed no grad")
        return "; ".join(parts), per_parent

    def _own_rule(self, step, node_grad) -> list:
        """A node's own backward step, for its card: upstream grad, local derivatives."""
        node = step.node
        namer = self.namer
        me = namer.ref(node) or "?"
        lines = [f"upstream grad {namer.grad(node)} = {format_value(node_grad)}"]
        for term in step.terms:
            parent = namer.ref(term.parent) or "?"
            if term.factor_text is None:
                lines.append(f"local rule: {namer.grad(term.parent)} += {self._text(node, term.expression)}")
                continue
            local = self._text(node, term.factor_text)
            lines.append(f"local derivative ∂{me}/∂{parent} = {local} = {format_value(term.factor)}")
        return lines

    # ------------------------------------------------------------------ reading states
    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def last(self) -> int:
        """The last state's number (a slider runs from 0 to last)."""
        return len(self.states) - 1

    def check(self, k) -> int:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"step must be an integer, got {type(k).__name__}")
        if not 0 <= k <= self.last:
            raise ValueError(f"step must be between 0 and {self.last}, got {k}")
        return int(k)

    def values_at(self, k, node=None):
        """The values of ``view.nodes`` at state ``k`` (None: not computed yet); with
        ``node`` (a drawn tensor, the student's own object, or a position) its value only."""
        k = self.check(k)
        if node is not None:
            if self._undrawn_changes(node) is not None:    # in the graph, outside the drawn window
                node = node_for(self.output, node)
                shown = self._undrawn_appears.get(id(node), 0) <= k
                return np.array(node.data) if shown else None
            i = self._index(node)
            return self.values[i] if self.appears[i] <= k else None
        return [v if self.appears[i] <= k else None for i, v in enumerate(self.values)]

    def grads_at(self, k, node=None):
        """The grads of ``view.nodes`` at state ``k`` (None where backprop has not reached);
        with ``node`` (a drawn tensor, the student's own object, or a position) its grad only."""
        k = self.check(k)
        if node is not None:
            undrawn = self._undrawn_changes(node)
            if undrawn is not None:
                return self._grad_at_step(undrawn, k)
            return self.grads_at(k)[self._index(node)]
        out = []
        for changes in self.grad_changes:
            grad = None
            for t, after in changes:
                if t > k:
                    break
                grad = after
            out.append(grad)
        return out

    def _undrawn_changes(self, node):
        """A node of the graph outside the drawn window: its (backward step, grad) changes
        (empty when no grad reached it); None for a drawn node or a position."""
        if isinstance(node, numbers.Integral):
            return None
        try:
            node = node_for(self.output, node)
        except (KeyError, TypeError):
            return None
        if id(node) in self._position:
            return None
        changes = self._undrawn.get(id(node))
        if changes is not None and changes[0] is node:
            return changes[1:]
        return [] if any(t is node for t in graph_order(self.output)) else None

    @staticmethod
    def _grad_at_step(changes, k):
        """The grad after the last of ``changes`` (state, grad after) made by state ``k``."""
        grad = None
        for state, after in changes:
            if state > k:
                break
            grad = after
        return grad

    def svg(self, k, *, caption=True) -> str:
        """The graph at state ``k`` as inline SVG; with ``caption``, the caption under it
        (cut to CAPTION_CHARS), room reserved so every state's picture has one size."""
        k = self.check(k)
        state = self.states[k]
        text = None
        if caption:
            text = f"step {k} / {self.last}: {state.caption}"
            if len(text) > CAPTION_CHARS:
                text = text[: CAPTION_CHARS - 1] + "…"
        return inline_svg(self.view.svg(values=self.values_at(k), grads=self.grads_at(k),
                                        highlight=state.highlight, changed=state.changed, caption=text,
                                        caption_chars=CAPTION_CHARS if caption else None))

    def label(self, k) -> str:
        k = self.check(k)
        state = self.states[k]
        if state.phase == "inputs":
            return f"step {k} / {self.last} · inputs"
        if state.phase == "forward":
            return f"step {k} / {self.last} · forward {state.index}/{len(self.forward_steps)}"
        if state.phase == "seed":
            return f"step {k} / {self.last} · backward: seed"
        return f"step {k} / {self.last} · backward {state.index}/{len(self.steps)}"

    # ------------------------------------------------------------------ node cards
    def card_lines(self, i) -> list:
        """The card of node ``i`` (a position or a drawn tensor): ``(text, start, end)`` per
        line, shown in states start ≤ k < end (end None: to the last state)."""
        i = self._index(i)
        t = self.view.nodes[i]
        kind = self.view.plan.kinds[i]
        name = self.namer(t) or "?"
        lines = [(f"{name} — {KIND_WORDS.get(kind, kind)}", 0, None),
                 (f"shape {tuple(t.shape)}" if t.ndim else "shape () (a scalar)", 0, None)]
        appear = self.appears[i]
        if appear:
            lines.append(("value: not computed yet", 0, appear))
        value = format_array(self.values[i])
        lines.append((f"value = {value}" if "\n" not in value else f"value =\n{value}", appear, None))
        if self._formulas[i]:
            lines.append((f"formula: {self._formulas[i]}", appear, None))
        if self._non_finite[i]:
            lines.append((f"⚠ {self._non_finite[i]}", appear, None))
        if kind != "const":
            changes = self.grad_changes[i]
            first = changes[0][0] if changes else None
            lines.append(("grad: not reached yet", 0, first))
            for m, (start, after) in enumerate(changes):
                end = changes[m + 1][0] if m + 1 < len(changes) else None
                word = "grad" if end is None else "grad so far"
                text = format_array(after)
                lines.append((f"{word} = {text}" if "\n" not in text else f"{word} =\n{text}", start, end))
        received = self._received[i]
        for start, info in received:
            clauses = info["clauses"] or [f"{info['symbol']} changed"]
            for n, clause in enumerate(clauses):
                if info["wrong"] and n == len(clauses) - 1:   # a rule that broke the chain rule
                    clause += f"; the rule added {format_value(info['delta'])} ✗"
                elif info["values"] is None and n == len(clauses) - 1:   # an array: what this step added
                    clause += f" (adds {format_value(info['delta'])})"
                lines.append((f"from {info['from']} (step {start}): {clause}", start, None))
        uses = sum(max(1, len(info["clauses"])) for _, info in received)
        if uses > 1:
            symbol = received[0][1]["symbol"]
            total = self.grad_changes[i][-1][1]
            if all(info["values"] is not None for _, info in received):
                text = f"{_plus([v for _, info in received for v in info['values']])} = {format_number(total)}"
            elif len(received) > 1:
                text = f"{_plus([info['delta'] for _, info in received])} = {format_value(total)}"
            else:
                text = format_value(total)
            lines.append((f"used {uses} times; sum: {symbol} = {text}", received[-1][0], None))
        if self._own[i] is not None:
            start, own = self._own[i]
            lines.append((f"its rule runs at step {start}:", 0, start))
            lines.extend((line, start, None) for line in own)
        return lines

    def card_text(self, i, k) -> str:
        """Node ``i``'s card as shown at state ``k``."""
        k = self.check(k)
        return "\n".join(text for text, start, end in self.card_lines(i) if start <= k and (end is None or k < end))

    def _index(self, i) -> int:
        if isinstance(i, Tensor):
            return self.view.index(i)
        if not isinstance(i, numbers.Integral):
            try:   # the student's own object (or its wrapped node)
                return self.view.index(node_for(self.output, i))
            except (KeyError, TypeError):
                raise IndexError(f"{type(i).__name__} object is not one of the {len(self.view.nodes)} drawn "
                                 "nodes of this graph") from None
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < len(self.view.nodes):
            raise IndexError(f"node {i!r} is not one of the {len(self.view.nodes)} drawn nodes")
        return int(i)

    # ------------------------------------------------------------------ for a browser
    def grad_label(self, grad) -> str:
        """A box's grad line in the browser (a timeline of other quantities relabels it)."""
        return grad_text(grad)

    def _modules_payload(self) -> dict:
        """Module boxes: how many calls are drawn and collapsed, the calls opened or closed
        by hand (``toggled``), each call's enclosing call (``parent``) and each node's
        innermost open box (``cluster``): a step's node highlights the boxes around it."""
        plan = self.view.plan
        return {"calls": len(plan.calls), "collapsed": len(plan.collapsed), "toggled": list(plan.toggled),
                "parent": [-1 if p is None else p for p in plan.call_parent],
                "cluster": [-1 if c is None else c for c in plan.cluster],
                "box": [-1 if c is None else c for c in plan.box_calls]}

    def payload(self) -> dict:
        """Everything a browser needs to step through the timeline with no kernel: the
        laid-out SVG (restyled by class), each node's texts per state, the captions, the
        cards and Play's interval in milliseconds (JSON-ready)."""
        nodes = self.view.nodes
        kinds = self.view.plan.kinds
        data_events, grad_events = [], []
        for i in range(len(nodes)):
            texts = data_texts(self.values[i], kinds[i] == "const")
            events = [[0, [""] * len(texts)]] if self.appears[i] else []
            events.append([self.appears[i], texts])
            data_events.append(events)
            grads = [[0, ""]]
            for start, after in self.grad_changes[i]:
                grads.append([start, self.grad_label(after)])
            grad_events.append(grads)
        return {
            "svg": self.view.skeleton(),
            "last": self.last,
            "captions": [s.caption for s in self.states],
            "rules": [s.rule for s in self.states],
            "labels": [self.label(k) for k in range(self.n_states)],
            "phases": [s.phase for s in self.states],
            "highlight": [-1 if s.highlight is None else s.highlight for s in self.states],
            "changed": [list(s.changed) for s in self.states],
            "data": data_events,
            "grads": grad_events,
            "cards": [[[text, start, end] for text, start, end in self.card_lines(i)] for i in range(len(nodes))],
            "truncated": self.view.truncated,
            # module boxes: how many calls are drawn, and whether any is collapsed
            "modules": self._modules_payload(),
            "play_interval_ms": PLAY_INTERVAL_MS,
        }
