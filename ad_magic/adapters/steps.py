"""What one closure of an adapted graph did: :class:`ForeignStep` (the interface of the
engine's ``BackwardStep`` that the stepper reads; its terms are the engine's ``ChainTerm``),
plus what the closure changed and, for known ops, whether it agrees with the chain rule
(``ok``, ``note``)."""
from __future__ import annotations

import os
import traceback

import numpy as np

from ..engine import OPS, ChainTerm
from .base import ForeignNode, label
from .rules import expected, measured, readings

__all__ = ["ForeignStep", "ForeignTerm", "where"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ForeignTerm(parent, operand, factor_text, expression, factor):  # noqa: N802 (it makes a ChainTerm)
    """One chain-rule term of a step: the engine's ChainTerm, with a value already known."""
    return ChainTerm(parent, operand, factor_text, expression, None if factor is None else (lambda: factor))


class ForeignStep:
    """One closure of a foreign graph has run (the interface of the engine's BackwardStep).

    * ``index``, ``node``, ``function``, ``parents`` (the node's distinct parents),
      ``rule``, ``terms`` as in :class:`ad_magic.engine.steps.BackwardStep`;
    * ``changes``: ``{parent: (before, after)}`` for every grad the closure changed;
    * ``expected``: ``{parent: the chain rule's contribution}`` when the op is known;
    * ``ok``: False when a contribution differs from the chain rule, a grad of a
      non-parent changed, or the closure raised; ``note`` says what, in one sentence;
    * ``error`` / ``where``: the closure's exception and the line it came from;
    * ``upstream``: the node's grad the rule was run with; ``caption`` None (the chain
      rule is written out from ``terms``): the step protocol of ``engine/steps.py``.

    Made by :meth:`ForeignGraph.backward_steps` (the rules run in ad_magic's order) and by
    :func:`~ad_magic.adapters.observe.observe_backward` (a rule seen running in the
    student's own backward, with what it changed).
    """

    caption = None       # the timeline writes the chain rule out from the terms

    def __init__(self, index, node, before, after, upstream, *, error=None, note=None, watched=(), inline=False):
        self.index, self.node, self.error = index, node, error
        self.upstream = upstream
        self.function = node._function
        self.op = OPS.get(node.kind) if node.kind else None
        self.parents = tuple(dict.fromkeys(p for p in node.parents if p.requires_grad))
        self.where = where(error) if error is not None else None
        self.changes = {}
        for n in watched:
            old, new = before.get(id(n)), after.get(id(n))
            if not _same(old, new):
                self.changes[n] = (old, new)
        judged = getattr(node.graph.adapter, "checks_rules", True)   # PyTorch's own rules need no checking
        self.expected = expected(node, upstream) if judged and error is None and note is None else None
        unknown = judged and error is None and note is None and (self.expected is None
                                                                  or self.expected.operands is None)
        if unknown:      # an op the registry does not know: its derivative measured from the student's forward
            self.expected = measured(node, upstream) or self.expected
        if self.expected is not None:
            self.expected.bind(self.changes, before)
            if inline:
                self.expected.doer = f"your backward, computing {self.function}'s terms,"
        self.remark = node.remark     # not a mistake: what the label claims and what the node did differ
        if unknown and (self.expected is None or self.expected.operands is None) and node.parents:
            why = getattr(node.graph, "unmeasured", lambda n: None)(node)
            if why:
                self.remark = "; ".join(filter(None, (self.remark, f"this rule is not checked: {why}")))
        elif unknown and self.expected is not None and self.expected.numeric:
            self.remark = "; ".join(filter(None, (self.remark, (
                f"{self.function} is not in ad_magic's op registry: this rule is checked against the derivative "
                f"of your forward {self.function}, measured numerically"))))
        self.note = note
        if error is not None:
            rule = getattr(node.graph.adapter, "rule_name", None)
            self.note = (f"your {rule(node) if rule else '_backward'} raised {type(error).__name__}: {error}"
                         + (f" ({self.where})" if self.where else ""))
        elif note is None:
            self.note = self._judge()
            if self.note is not None and self.expected is not None and self.expected.operands is not None:
                self._second_opinion(upstream, before)
        if inline:
            self.remark = "; ".join(filter(None, (self.remark, (
                f"your backward computed these terms itself (the node has no rule of its own): judged as "
                f"{self.function}'s rule"))))
        self.terms = self._terms()
        self.ok = self.note is None

    def _second_opinion(self, upstream, before):
        """Before a rule is called wrong: when the node's value can also be read another way
        — another op of the same inputs (a + 0 = a - 0, a · 1 = a / 1, 2 + 2 = 2 · 2), or
        its inputs in another order or with a constant its rule keeps (x ** 3 = 3 ** x at
        x = 3) — and the rule did exactly that reading's chain rule, the rule is not wrong:
        the reading was ambiguous."""
        node = self.node
        if any(n not in self.parents for n in self.changes):
            return                    # it changed a grad that is not its inputs': wrong on any reading
        for kind, operands in readings(node):
            other = expected(node, upstream, kind, operands)
            if other is None or other.operands is None:
                continue
            other.bind(self.changes, before)
            if all(other.agrees(p) for p in self.parents):
                claimed = node._function
                self.note, self.expected, self.op = None, other, OPS[kind]
                if kind != node.kind:
                    self.remark = "; ".join(filter(None, (node.remark, (
                        f"labelled {claimed!r}, but this rule did {kind}'s chain rule, and {kind} of "
                        "these inputs gives the same value here, so the rule is not called wrong; is the "
                        f"label {claimed!r} the op it computes?"))))
                return

    @property
    def rule(self):
        formula = self.op.formula if self.op is not None else f"out = {self.function}(…)"
        return ";  ".join([formula] + [f"∂L/∂{t.operand} += {t.expression}" for t in self.terms])

    def _terms(self):
        op, expected = self.op, self.expected
        if expected is not None and expected.numeric:
            # an op the registry does not know (or whose operands could not be placed): its local
            # derivative is the one measured from the student's forward, in the letters a, b, …
            operands = list(self.node.operands)
            terms = []
            for p in self.parents:
                i = next((k for k, o in enumerate(operands) if o is p), 0)
                letter = "abc"[i] if i < 3 else f"x{i}"
                terms.append(ForeignTerm(p, letter, None, f"∂L/∂out · ∂out/∂{letter} (measured)", None))
            return tuple(terms)
        if op is None or expected is None or expected.operands is None:
            describe = getattr(self.node.graph.adapter, "rule_text", None)
            text = describe(self.node) if describe is not None else f"your rule for {self.function!r}"
            return tuple(ForeignTerm(p, "abc"[i] if i < 3 else f"x{i}", None, text, None)
                         for i, p in enumerate(self.parents))
        terms = []
        for i, operand in enumerate(expected.operands):
            if not isinstance(operand, ForeignNode) or not operand.requires_grad:
                continue
            text = op.derivatives[i] if op.elementwise else None
            # The chain rule's local derivative, also when the student's rule disagrees: the
            # stepper shows the numbers the rule should have used beside what it did.
            factor = expected.locals[i] if op.elementwise else None
            terms.append(ForeignTerm(operand, op.inputs[i], text, op.expression(i), factor))
        return tuple(terms)

    def _judge(self):
        strays = [n for n in self.changes if n not in self.parents]
        if strays:
            who = ", ".join(label(n) for n in strays[:3])
            return (f"this _backward changed the grad of {who}, which is not one of its inputs; "
                    "a rule adds only into its own parents' grads.")
        rule = self.expected
        if rule is None or rule.operands is None:
            return None
        for parent in self.parents:
            if not rule.agrees(parent):
                return rule.explain(parent, *rule.change(parent))
        return None

    def __repr__(self):
        try:
            state = "ok" if self.ok else f"WRONG: {self.note}"
            return f"ForeignStep({self.index}, {self.function!r}: {state})"
        except Exception as exc:
            return f"<ForeignStep {self.index} (repr failed: {type(exc).__name__})>"


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def where(exc) -> str | None:
    """"file, line N: code" of the deepest frame outside ad_magic and NumPy."""
    frames = traceback.extract_tb(exc.__traceback__)
    keep = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)
            and os.sep + "numpy" + os.sep not in f.filename]
    if not keep:
        return None
    f = keep[-1]
    code = f" — {f.line.strip()}" if f.line else ""
    return f"in {f.name}, line {f.lineno}{code}"
