"""``%%autodiff`` on a cell whose output is another library's tensor (the practical's
own ``Tensor``, a micrograd ``Value``, a PyTorch tensor): its graph drawn, its own
``_backward`` rules run and stepped through, and the leaves' gradients in a table.

Options that need ad_magic's engine (``--descent``, ``--check``) are refused in one
sentence; ``--wrt`` picks the rows of the table.
"""
from __future__ import annotations

import numpy as np
from IPython.core.error import UsageError
from IPython.display import display

from ..adapters import AdapterError, adapt, adapt_names
from ..drawing.names import DisplayNames, complete_names
from ..drawing.render import RenderError
from .report import GradientTable, show_graph, show_message, show_table

__all__ = ["run_foreign"]


def _names(ns, graph, preferred):
    """{node: variable name} for the graph's objects bound in the user namespace."""
    found = {}
    public = sorted(n for n in ns if isinstance(n, str) and not n.startswith("_"))
    for name in [n for n in preferred if not n.startswith("_")] + public:
        try:
            node = graph.node(ns.get(name))
        except (KeyError, TypeError):
            continue
        found.setdefault(node, name)
    return found


def run_foreign(run, output):
    """Show the graph, gradients and stepper of ``output`` (not an ad_magic Tensor).

    ``run`` is the magic's current use (its args, namespace, cell and output label)."""
    args, magic = run.args, run.magic
    kind = f"{type(output).__module__}.{type(output).__qualname__}"
    for option, given in (("--descent", args.descent), ("--check", getattr(args, "check", False))):
        if given:
            raise UsageError(f"{magic}: {option} works on ad_magic's Tensor only; the output is a {kind}, "
                             "which is drawn and stepped through with its own _backward rules.")
    try:
        node = adapt(output, magic, recording=run.recording)
    except AdapterError as exc:
        raise UsageError(f"{magic}: {exc}") from None
    if node.size != 1:
        raise UsageError(f"{magic}: the output has shape {node.shape}, not a single value; "
                         "reduce it first, or name a scalar output.")
    names = _names(run.ns, node.graph, run.cell.bound)
    label = run.cell.output_name or names.get(node) or "output"
    names[node] = label
    if args.wrt is not None:
        wanted = [w.strip() for w in args.wrt.split(",") if w.strip()]
        by_name = {v: k for k, v in names.items()}
        unknown = [w for w in wanted if w not in by_name]
        if unknown:
            raise UsageError(f"{magic}: --wrt {unknown[0]!r} is not a variable holding a node of the output's graph.")
        rows_of = [by_name[w] for w in wanted]
    else:
        rows_of = [n for n in node.graph.order_from(node) if n.is_leaf]
        # A one-number leaf bound to no variable is a constant of the code (the 5 of 5 * x):
        # listed only when no leaf has a name. The stepper's cards show its grad.
        if any(n in names for n in rows_of):
            rows_of = [n for n in rows_of if n in names or n.size != 1]
    names = complete_names(node, names)        # one name per node: table, picture, stepper, notes
    adapt_names(node, names)
    widget, steps = None, None
    try:
        # The magic runs backward, as it does on ad_magic's Tensor: the grads keep the result
        # (a rule that raises puts every grad back); the stepper then only looks.
        steps = list(node.backward_steps())
        failed = any(s.error is not None for s in steps)     # then the grads were put back: none to show
        final = {} if failed else {n: n.grad for n in node.graph.order_from(node)}
        if not args.static:
            from ..widgets.stepper import BackwardStepper

            try:
                widget = BackwardStepper(node, names=names)    # runs the graph's own rules, step by step
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
