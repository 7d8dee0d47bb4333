"""The graphs a descent goes through, laid out once per distinct structure.

A loss whose graph is replayed keeps one structure; a loss function may build another
graph at some iterations (a branch on a value: ``x * x if x.item() > 0 else -x``, a Huber
loss). :class:`GraphLayouts` records, at each iteration, which structure the graph has
and its values and grads (:meth:`GraphLayouts.record`: what a DescentRuns keeps per
iteration), and draws any recorded state with that structure's layout, only restyled
(:meth:`GraphLayouts.svg`). The first structure is laid out at once (so a missing
renderer shows when the first iteration is recorded); the others when first shown,
the last few kept.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..drawing.dot import GraphPlan
from ..drawing.graph_view import GraphView

__all__ = ["GraphLayouts", "CACHED_LAYOUTS"]

CACHED_LAYOUTS = 8              # layouts kept besides the first (a loss with many graph shapes)


class GraphLayouts:
    """The graphs seen during the runs of one loss, one layout per distinct structure.

    ``record(k, loss)`` returns the state of ``loss``'s graph: ``(structure, values,
    grads)``, copies of its tensors' data and grads in that structure's node order.
    ``view(structure)`` is the :class:`~ad_magic.drawing.graph_view.GraphView` that draws it,
    ``svg(state, caption)`` the drawing. ``names`` and ``max_nodes`` are GraphView's.
    """

    def __init__(self, names: dict, max_nodes: int):
        self.names, self.max_nodes = names, max_nodes
        self.first = None                  # the GraphView of the first iteration's graph
        self._known = {}                   # signature -> structure number
        self._outputs = []                 # per structure: the first graph's output tensor
        self._views = OrderedDict()        # structure number -> GraphView (1, 2, ...: cached)
        self._collapsed = {}               # ("collapsed", structure) -> its modules-collapsed GraphView

    @property
    def count(self) -> int:
        """How many distinct structures were recorded."""
        return len(self._outputs)

    def _structure(self, loss) -> tuple:
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

    def record(self, k: int, loss) -> tuple:
        """The state of ``loss``'s graph now (``k``, the iteration, is for the caller's
        bookkeeping): ``(structure, values, grads)``."""
        structure, tensors = self._structure(loss)
        return (structure, [np.array(t.data) for t in tensors],
                [None if t.grad is None else np.array(t.grad) for t in tensors])

    def view(self, structure: int) -> GraphView:
        """The layout of a structure (0 is the first graph's)."""
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

    def svg(self, state, caption=None) -> str:
        """A recorded state drawn with its structure's layout, as SVG text."""
        structure, values, grads = state
        return self.view(structure).svg(values=values, grads=grads, caption=caption)

    def collapsed_svg(self, state, caption=None):
        """The same state with the graph's modules collapsed (its other view: a click on a
        module's box in the explorer shows it), or None: no module box, or some already
        collapsed (the values of the nodes a collapsed box hides are not recorded)."""
        structure, values, grads = state
        view = self.view(structure)
        if not view.plan.calls or view.plan.collapsed:
            return None
        key = ("collapsed", structure)
        other = self._collapsed.get(key)
        if other is None:
            other = GraphView(view.output, names=self.names, max_nodes=self.max_nodes, modules="collapsed")
            if not other.plan.collapsed:
                other = False        # nothing collapses: no other view
            self._collapsed[key] = other
        if other is False:
            return None
        at = {id(t): i for i, t in enumerate(view.nodes)}
        picks = [at.get(id(t)) for t in other.nodes]
        if None in picks:
            return None
        return other.svg(values=[values[i] for i in picks], grads=[grads[i] for i in picks], caption=caption)
