"""``%%autodiff`` on a cell whose output is another library's tensor (the practical's
own ``Tensor``, a micrograd ``Value``, a PyTorch tensor): its graph drawn, its own
``backward()`` run once, for real, as the user's own cell would run it, and watched
while it runs (``adapters.observe``): the stepper shows what it did, the table the grads
it left, and what went wrong is said in one sentence each.

Options that need ad_magic's engine (``--descent``, ``--check``) are refused in one
sentence; ``--wrt`` picks the rows of the table.
"""
from __future__ import annotations

import numpy as np
from IPython.core.error import UsageError
from IPython.display import display

from ..adapters import AdapterError, adapt, adapt_names, adaptable
from ..adapters.observe import observable, observe_backward
from ..drawing.names import DisplayNames, complete_names
from ..drawing.render import RenderError
from .report import GradientTable, show_graph, show_message, show_table
from .variables import leaves, namespace_names, resolve_wrt

__all__ = ["run_foreign"]


def _node_of(graph):
    """A namespace value as a node of ``graph`` (the node wrapping the student's object); a
    node of another graph as itself (not in this one); anything else None."""
    def node_of(value):
        try:
            return graph.node(value)
        except (KeyError, TypeError):
            try:
                return value if value is not None and adaptable(value) else None
            except Exception:     # an object that raises when looked at is not a node
                return None
    return node_of


def run_foreign(run, output):
    """Show the graph, gradients and stepper of ``output`` (not an ad_magic Tensor).

    ``run`` is the magic's current use (its args, namespace, cell and output label)."""
    args, magic = run.args, run.magic
    kind = f"{type(output).__module__}.{type(output).__qualname__}"
    for option, given in (("--descent", args.descent), ("--check", getattr(args, "check", False))):
        if given:
            raise UsageError(f"{magic}: {option} works on ad_magic's Tensor only; the output is a {kind}, "
                             "which is drawn and stepped through with its own backward().")
    try:
        node = adapt(output, magic, recording=run.recording)
    except AdapterError as exc:
        raise UsageError(f"{magic}: {exc}") from None
    if node.size != 1:
        raise UsageError(f"{magic}: the output has shape {node.shape}, not a single value; "
                         "reduce it first, or name a scalar output.")
    # The same reading of the namespace as for ad_magic's Tensor (variables.py), through the node
    # wrapping each of the student's objects.
    graph, node_of = node.graph, _node_of(node.graph)
    order = graph.order_from(node)
    graph_ids = {id(n) for n in order}
    named = namespace_names(run.ns, graph_ids, run.cell.bound, node_of=node_of)
    names = {item.tensor: item.label for item in named.values()}
    label = run.cell.output_name or names.get(node) or "output"
    names[node] = label
    if args.wrt is not None:
        rows_of = [item.tensor for item in resolve_wrt(args.wrt, run.ns, graph_ids, named, node_of=node_of)]
    else:
        rows_of = [item.tensor for item in leaves(node, named, order=order)]
        # A one-number leaf bound to no variable is a constant of the code (the 5 of 5 * x):
        # listed only when no leaf has a name. The stepper's cards show its grad.
        if any(n in names for n in rows_of):
            rows_of = [n for n in rows_of if n in names or n.size != 1]
    names = complete_names(node, names)        # one name per node: table, picture, stepper, notes
    adapt_names(node, names)
    widget, observation = None, None
    try:
        if observable(node):
            # Their backward() runs once, for real, watched: the grads are what their code leaves.
            observation = observe_backward(node, restore=False)
            steps = observation.steps
            final = observation.grads
        else:   # PyTorch: its own engine, stepped with hooks
            steps = list(node.backward_steps())
            failed = any(s.error is not None for s in steps)     # then the grads were put back: none to show
            final = {} if failed else {n: n.grad for n in node.graph.order_from(node)}
        if not args.static:
            from ..widgets.stepper import BackwardStepper

            try:
                widget = BackwardStepper(node, names=names, observation=observation)
            except RenderError as exc:
                show_message(f"BackwardStepper not shown: {exc}", warning=True)
    except AdapterError as exc:
        raise UsageError(f"{magic}: {exc}") from None
    wrong = [s for s in steps if not s.ok]
    name = DisplayNames(names)
    rows = [{"label": name(n), "shape": n.shape, "value": np.array(n.data), "grad": final.get(n)} for n in rows_of]
    table = GradientTable(label, rows)
    # One picture: the stepper's graph, or (--static, or no widget) the graph alone.
    show_table(table)
    if observation is not None:
        for problem in observation.problems:
            show_message(problem, warning=True)
    else:
        for step in wrong[:1]:
            show_message(f"Step {step.index} ({step.function}): {step.note}", warning=True)
    if widget is not None:
        display(widget)
    else:
        show_graph(node, names, label)
    if args.export is not None:
        try:
            run._export(widget, node, names)      # the same page as for ad_magic's Tensor
        except AdapterError as exc:
            raise UsageError(f"{magic} --export: {exc}") from None
    run.ns["_autodiff"] = widget
    run.ns["_autodiff_output"] = output
    run.ns["_autodiff_grads"] = table.grads
