"""What one step of backpropagation or forward replay did, in words and numbers.

A `BackwardStep` is yielded after a node's rule has run; its `rule` and `terms` come
from the node's entry in the op registry (`ops.py`), so what a step *shows* is what the
engine *computed*: ``ChainTerm.factor`` is the same local derivative the chain rule
multiplied by.
"""

from __future__ import annotations

import numpy as np

from .formatting import format_value

__all__ = ["BackwardStep", "ChainTerm", "ForwardStep"]


class ChainTerm:
    """One application of the chain rule in a backward step.

    `parent` received ``∂L/∂parent += expression``. For elementwise rules `factor_text`
    is the local derivative ∂out/∂parent in terms of the operands a, b and out, and
    `factor` its value (broadcast to out's shape); for the others `factor` is None.
    """

    __slots__ = ("parent", "operand", "factor_text", "expression", "_factor")

    def __init__(self, parent, operand, factor_text, expression, factor):
        self.parent, self.operand, self.factor_text = parent, operand, factor_text
        self.expression, self._factor = expression, factor

    @property
    def factor(self):
        f = self._factor
        return None if f is None else f()

    def __repr__(self):
        return f"ChainTerm({self.operand}: ∂L/∂{self.operand} += {self.expression})"


def _datas(node):
    return tuple(p._data for p in node.parents)


class _Step:
    """A step of a pass over the graph: its number (1, 2, …) and the node it was about."""

    __slots__ = ("index", "node")

    def __init__(self, index, node):
        self.index, self.node = index, node

    @property
    def function(self):
        """The name of the node's operation."""
        return self.node._function

    @property
    def op(self):
        """The node's operation: an entry of the op registry, or a hand-written rule."""
        return self.node._op


class BackwardStep(_Step):
    """One step of backpropagation: `node`'s `_backward` has just run.

    * `index`: 1 for the first `_backward` call, 2 for the next, …
    * `node`: the tensor whose rule ran; `function` its operation's name, `op` the
      operation itself (an entry of the op registry, or the hand-written rule).
    * `parents`: the tensors whose grads this step changed (in operand order).
    * `rule`: the forward formula and how each input's grad is computed, as text.
    * `terms`: one `ChainTerm` per changed parent (∂L/∂a += ∂L/∂out · …).

    The step protocol: every step the timeline shows — the engine's, and those observed in
    a student's own ``backward()`` (``ad_magic.adapters.observe``) — has these fields too.
    The engine's steps are the chain rule itself, so they keep the defaults:

    * `ok` (True), `note` (None: what went wrong, one sentence), `remark` (None: something
      worth saying that is not a mistake), `error` and `where` (None: the exception a
      rule raised and the line it came from);
    * `changes` (None: the parents' grads are read when the step is reached; else
      ``{node: (before, after)}`` recorded when the step happened);
    * `upstream` (None: read the node's grad; else the grad its rule was given);
    * `caption` (None: the timeline writes the chain rule out from `terms`; else the
      step's own text, for what a student's backward did outside a rule: the seed,
      the zeroing).
    """

    __slots__ = ()
    ok = True
    note = None
    remark = None
    error = None
    where = None
    changes = None
    upstream = None
    caption = None

    @property
    def parents(self):
        seen = []
        for p in self.node.parents:
            if p.requires_grad and not any(p is q for q in seen):
                seen.append(p)
        return tuple(seen)

    @property
    def terms(self):
        node = self.node
        op = node._op
        parents = node.parents
        registered = getattr(op, "formula", None) is not None
        terms = []
        for i, parent in enumerate(parents):
            if not parent.requires_grad:
                continue
            if not registered:
                letter = "abc"[i] if i < 3 else f"x{i}"
                terms.append(ChainTerm(parent, letter, None, f"custom rule of {node._function!r}", None))
                continue
            letter = op.inputs[i]
            expression = op.expression(i)
            if op.elementwise:
                if np.shape(parent._data) != np.shape(node._data):
                    expression += " (summed over broadcast axes)"
                factor = _factor(op, i, node)
                text = op.derivatives[i]
            else:
                factor = text = None
            terms.append(ChainTerm(parent, letter, text, expression, factor))
        return tuple(terms)

    @property
    def rule(self):
        node = self.node
        formula = getattr(node._op, "formula", None) or f"out = {node._function}(…)"
        return ";  ".join([formula] + [f"∂L/∂{t.operand} += {t.expression}" for t in self.terms])

    def __repr__(self):
        try:
            return f"BackwardStep({self.index}, {self.node._function!r}: {self.rule})"
        except Exception as exc:
            return f"<BackwardStep {self.index} (repr failed: {type(exc).__name__})>"


def _factor(op, i, node):
    out, datas = node._data, _datas(node)  # bound now: the values this step used
    return lambda: op.local(i, out, datas)


class ForwardStep(_Step):
    """One step of forward replay: `node` has just been recomputed from its parents.

    * `index`: 1 for the first node recomputed, 2 for the next, …
    * `node`, `function` (its operation's name), `op`, `formula` (``out = a · b``),
      `inputs` (its parents, in operand order) and `value` (its new data).
    """

    __slots__ = ("value",)

    def __init__(self, index, node):
        super().__init__(index, node)
        self.value = node.data

    @property
    def formula(self):
        return self.node._op.formula

    @property
    def inputs(self):
        return self.node.parents

    def __repr__(self):
        try:
            return f"ForwardStep({self.index}, {self.function!r} = {format_value(self.value)})"
        except Exception as exc:
            return f"<ForwardStep {self.index} (repr failed: {type(exc).__name__})>"

