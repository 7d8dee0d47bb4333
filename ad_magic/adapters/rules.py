"""The chain rule an adapted node should follow, from ad_magic's op registry: the operand
order of a node whose parents are a set (the arrangement whose forward gives its data),
each parent's expected contribution at a step, compared with what the closure did, and
the other readings of a node that give its value (:func:`readings`), tried before a rule
is called wrong."""
from __future__ import annotations

import itertools

import numpy as np

from ..engine import OPS
from ..engine.formatting import format_value
from .base import ForeignNode, label

__all__ = ["arrange", "expected", "measured", "readings"]

_SYMMETRIC = {"add", "mul"}


class _Expected:
    """What the chain rule says each parent should receive at one step."""

    numeric = False      # True: the op's derivative was measured from the student's forward (numeric.py)
    doer = None          # who did the step, in findings (default: "mul's _backward")
    rtol = 1e-6

    def __init__(self, node, upstream, operands, contributions, locals_):
        self.node, self.upstream, self.operands = node, upstream, operands
        self.contributions, self.locals = contributions, locals_
        self.pieces = {}          # parent -> each operand's contribution (x * x: two)
        self._verdict = {}
        self._changes, self._before = {}, {}

    def bind(self, changes, before):
        """The step's own record: {node: (old, new)} for changed grads, and every old grad."""
        self._changes, self._before = changes, before

    def change(self, parent):
        """(old, new) grad of ``parent`` around this step (equal when it did not change)."""
        if parent in self._changes:
            return self._changes[parent]
        old = self._before.get(id(parent))
        return old, old

    def agrees(self, parent) -> bool:
        if self.operands is None:
            return True
        verdict = self._verdict.get(parent)
        if verdict is None:
            verdict = self._verdict[parent] = self._compare(parent)
        return verdict

    def _compare(self, parent):
        want = self.contributions.get(parent)
        if want is None:
            return True
        old, new = self.change(parent)
        if old is None or new is None or new.shape != np.shape(parent.data):
            return False
        if not self.numeric:
            return np.allclose(new - old, want, rtol=1e-6, atol=1e-9, equal_nan=True)
        known = np.isfinite(want)           # NaN: a kink there (any subgradient is accepted)
        want, got = want[known], (new - old)[known]
        atol = 0.1 * self.rtol * max(1.0, float(np.max(np.abs(want), initial=0.0)))
        return np.allclose(got, want, rtol=self.rtol, atol=atol)

    def explain(self, parent, old, new) -> str:
        want = self.contributions[parent]
        who = label(parent)
        fn = self.node._function
        did = self.doer or f"{fn}'s _backward"
        after = did.rstrip(",")
        if new is None:
            return f"after {after}, the grad of {who} is None; add into it (+=) instead."
        if new.shape != np.shape(parent.data):
            return (f"after {after}, the grad of {who} has shape {new.shape} but its data has shape "
                    f"{np.shape(parent.data)}" + ("; is it transposed?" if new.shape[::-1] == np.shape(parent.data)
                                                  else "."))
        got = new - old if old is not None and old.shape == new.shape else new
        text = (f"{did} added {format_value(got)} to the grad of {who}, "
                f"but the chain rule gives {format_value(want)}")
        if self.numeric:
            text += f" (with the derivative of your forward {fn}, measured numerically)"
        pieces = [want] + self.pieces.get(parent, [])
        if old is not None and np.any(old != 0) and any(np.allclose(new, c) for c in pieces):
            return text + ": it overwrote the grad (=) instead of adding to it (+=)."
        return text + "."


def expected(node, upstream, kind=None, operands=None):
    """The chain rule's contribution to each parent, for ops the registry knows (the
    node's own op, or ``kind`` with ``operands`` in operand order)."""
    kind = node.kind if kind is None else kind
    op = OPS.get(kind) if kind else None
    if op is None or upstream is None or not node.parents:
        return None
    if operands is None:
        operands = node.operands if kind == node.kind and _fits(op, node, node.operands) else arrange(
            op, node, node.operands)
    if operands is None:
        return _Expected(node, upstream, None, {}, None)
    datas = [p.data if isinstance(p, ForeignNode) else p for p in operands]
    out = node.data
    args = op.prepare(*datas) if op.prepare is not None and op.params else None
    contributions, locals_, pieces = {}, [], {}
    with np.errstate(all="ignore"):
        for i, p in enumerate(operands):
            if op.elementwise:
                locals_.append(op.local(i, out, tuple(datas)))
            if not isinstance(p, ForeignNode):
                continue
            try:
                c, _ = op.input_grad(i, upstream, out, tuple(datas), args)
            except Exception:
                return _Expected(node, upstream, None, {}, None)
            c = np.asarray(c, dtype=np.float64)
            contributions[p] = c if p not in contributions else contributions[p] + c
            pieces.setdefault(p, []).append(c)
    expected = _Expected(node, upstream, operands, contributions, locals_ or None)
    expected.pieces = pieces
    return expected


def measured(node, upstream):
    """The chain rule for an op the registry does not know, from the derivative of the
    student's own forward measured numerically (``numeric.py``): an ``_Expected`` whose
    contributions are ``upstream · J``, or None (nothing measured; the graph's
    :meth:`~.graph.ForeignGraph.unmeasured` says why)."""
    if upstream is None or not node.parents:
        return None
    rule = getattr(node.graph, "measured_rule", None)
    found = rule(node) if rule is not None else None
    if not isinstance(found, dict):
        return None
    try:
        up = np.broadcast_to(np.asarray(upstream, dtype=np.float64), node.shape).reshape(-1)
    except ValueError:
        return None          # a grad of the wrong shape: the step says so, with no chain rule to compare
    contributions, rtol = {}, 1e-6
    for parent, (jacobian, tolerance) in found.items():
        with np.errstate(invalid="ignore"):     # NaN columns: kinks, where any subgradient is accepted
            contributions[parent] = np.where(np.isnan(jacobian).any(axis=0), np.nan,
                                             up @ np.nan_to_num(jacobian)).reshape(parent.shape)
        rtol = max(rtol, tolerance)
    rule = _Expected(node, upstream, tuple(node.parents), contributions, None)
    rule.numeric, rule.rtol = True, rtol
    return rule


# Ops whose values can coincide with another's for particular numbers (a + 0 = a - 0,
# a · 1 = a / 1 = a ** 1, 2 + 2 = 2 · 2): a rule is judged against these too before it is
# called wrong.
ALTERNATIVES = ("add", "sub", "mul", "div", "pow")


def readings(node):
    """Every other way to read the node that gives its value: (op, operands in order) for
    the inferred op, the node's own op and the ops whose values can coincide, over every
    order of its inputs, each one used as both operands, and constants its rule closes over."""
    kinds = [k for k in dict.fromkeys([node.inferred, node.kind, *ALTERNATIVES]) if k in OPS]
    stored = tuple(node.stored)
    extra = node.graph.adapter.hidden_constants(node)
    seen = {(node.kind, tuple(id(o) for o in node.operands))}
    for kind in kinds:
        op = OPS[kind]
        n = len(op.inputs)
        bases = [stored] if len(stored) == n else []
        if len(stored) + 1 == n:
            bases += [stored + (c,) for c in extra]
            bases += [stored + (p,) for p in stored if isinstance(p, ForeignNode)]
        for base in bases:
            for order in itertools.permutations(base):
                key = (kind, tuple(id(o) for o in order))
                if key in seen:
                    continue
                seen.add(key)
                if _computes(op, order, node.data):
                    yield kind, order


def _fits(op, node, operands) -> bool:
    if len(operands) != len(op.inputs):
        return False
    return _computes(op, operands, node.data)


def _computes(op, operands, out) -> bool:
    datas = [p.data if isinstance(p, ForeignNode) else p for p in operands]
    try:
        with np.errstate(all="ignore"):
            value = op.compute(datas, op.prepare(*datas) if op.prepare is not None and op.params else None)
    except Exception:
        return False
    return bool(np.shape(value) == np.shape(out) and np.allclose(value, out, rtol=1e-6, atol=1e-9, equal_nan=True))


def arrange(op, node, operands):
    """The node's operands (parents and constants) in operand order: the arrangement whose
    forward gives the node's data. A stored order (a tuple or list) is tried first and
    trusted when it fits; a set has no order, so every order is tried and two that fit
    with different rules (a - b with a == b) give None; ``x * x`` has one parent."""
    n = len(op.inputs)
    operands = list(operands)
    candidates = []
    if len(operands) == n:
        seen, candidates = set(), []
        for c in itertools.permutations(operands):       # the stored order first
            key = tuple(id(p) for p in c)
            if key not in seen:
                seen.add(key)
                candidates.append(c)
    elif len(operands) == 1 and n == 2:
        candidates = [(operands[0], operands[0])]
    out = node.data
    if candidates and node.ordered and _computes(op, candidates[0], out):
        return candidates[0]
    matches = [c for c in candidates if _computes(op, c, out)]
    if not matches:
        return None
    if len(matches) > 1 and op.name not in _SYMMETRIC:
        distinct = {tuple(id(p) for p in c) for c in matches}
        if len(distinct) > 1:
            return None      # two orders fit with different rules
    return matches[0]
