"""``--mode forward`` and ``--order 2``: the timelines the magic's stepper shows beyond
reverse mode.

- ``--mode forward``: :class:`~ad_magic.widgets.forward_mode.ForwardModeTimeline` over the
  cell's output, one pass per input (the leaves listed in the gradient table).
- ``--order 2``: the gradient of the output with respect to its one scalar input,
  recorded (``grad(..., create_graph=True)``), stepped through like any output: its
  forward pass computes the first derivative node by node, its backward pass the second.
"""
from __future__ import annotations

from IPython.core.error import UsageError

from ..drawing.names import bracketed
from ..engine.functional import grad
from ..widgets.forward_mode import ForwardModeTimeline
from ..widgets.timeline import Timeline

__all__ = ["second_order_output", "timeline_for"]


def second_order_output(run, output, names):
    """(∂output/∂x as a recorded Tensor, the names with it) for ``--order 2``."""
    targets = run.targets
    if len(targets) != 1 or targets[0].tensor.size != 1:
        listed = ", ".join(f"{t.label} {tuple(t.tensor.shape)}" for t in targets) or "none"
        raise UsageError(f"{run.magic}: --order 2 differentiates the output twice with respect to one scalar "
                         f"input; name it with --wrt (inputs here: {listed}).")
    x = targets[0]
    (first,) = grad(output, x.tensor, create_graph=True)
    names = dict(names)
    names[first] = f"∂{bracketed(run.output_label)}/∂{bracketed(x.label)}"
    return first, names


def timeline_for(run, shown, names):
    """The timeline the stepper shows for these options."""
    if run.args.mode == "forward":
        inputs = [t.tensor for t in run.targets if t.tensor.is_leaf and t.tensor.requires_grad]
        if not inputs:
            raise UsageError(f"{run.magic}: --mode forward seeds the tangents of leaf tensors, and none is listed "
                             "(--wrt names values computed from other tensors).")
        return ForwardModeTimeline(shown, names=names, inputs=inputs)
    return Timeline(shown, names=names, forward=True)
