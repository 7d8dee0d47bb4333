"""What a user meets in the pictures and the stepper: ``names=`` read one way by every
entry point, every grad of a big graph answered (drawn or not), and a student's ``None``
parent said rather than dropped."""

import numpy as np
import pytest

from ad_magic import Tensor, draw_computation_graph
from ad_magic.drawing.graph_view import GraphView
from ad_magic.widgets import BackwardStepper
from ad_magic.widgets.explorer import DescentExplorer
from ad_magic.widgets.timeline import Timeline


def _loss():
    x = Tensor(2.0)
    y = Tensor(-1.0)
    return x, y, (x - 1) ** 2 + (y * x) ** 2


# Every entry point that takes names=, and how to read what it drew as text.
ENTRY_POINTS = {
    "draw_computation_graph": lambda out, names: draw_computation_graph(out, names=names).source,
    "GraphView": lambda out, names: GraphView(out, names=names).svg(),
    "Timeline": lambda out, names: Timeline(out, names=names, forward=True).svg(0),
    "BackwardStepper": lambda out, names: BackwardStepper(out, names=names).svg(0),
    "DescentExplorer": lambda out, names: _explorer_text(out, names),
}


def _explorer_text(loss, names):
    from ad_magic.engine import topological_order
    params = [t for t in topological_order(loss) if t.is_leaf and t.requires_grad]
    explorer = DescentExplorer(loss, params, steps=2, names=names)
    return " ".join(explorer.param_names) + explorer.svg(0)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("direction", ["tensor to name", "name to tensor"])
def test_names_keyed_either_way_are_drawn_by_every_entry_point(entry, direction):
    x, y, loss = _loss()
    names = {x: "speed", y: "angle"} if direction == "tensor to name" else {"speed": x, "angle": y}
    drawn = ENTRY_POINTS[entry](loss, names)
    assert "speed" in drawn and "angle" in drawn


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("names, kind", [(["x"], "list"), ("x", "str"), ((("x", 1),), "tuple")])
def test_names_that_are_not_a_dict_are_refused_in_one_sentence_by_every_entry_point(entry, names, kind):
    x, y, loss = _loss()
    with pytest.raises(TypeError, match=rf"^names must be a dict mapping tensors to names .*, got {kind}$"):
        ENTRY_POINTS[entry](loss, names)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_a_names_entry_with_no_tensor_is_refused(entry):
    x, y, loss = _loss()
    with pytest.raises(TypeError, match=r"^names: the entry 'speed': 5\.0 has a tensor on neither side"):
        ENTRY_POINTS[entry](loss, {"speed": 5.0})


def test_every_names_entry_point_reads_names_through_normalize_names(monkeypatch):
    """The contract: one function reads names=, so the entry points cannot drift apart."""
    from ad_magic.drawing import dot, graph_view, names
    from ad_magic.widgets import explorer, timeline

    calls = []
    real = names.normalize_names

    def spy(value, node=None):
        calls.append(value)
        return real(value, node)

    for module in (dot, graph_view, timeline, explorer):
        monkeypatch.setattr(module, "normalize_names", spy)
    x, y, loss = _loss()
    marker = {"speed": x}
    for entry in ENTRY_POINTS.values():
        calls.clear()
        entry(loss, marker)
        assert any(c is marker for c in calls)


# --------------------------------------------------------------------------- big graphs


def test_grads_at_answers_for_a_node_outside_the_drawn_window():
    x = Tensor(1.0, name="x")
    y = x
    for _ in range(400):
        y = y * 1.01 + 0.001
    stepper = BackwardStepper(y, max_nodes=60)
    assert x not in stepper.timeline.view.nodes
    last = stepper.timeline.last
    assert stepper.grads_at(last, x) == pytest.approx(1.01 ** 400)
    assert stepper.grads_at(0, x) is None                     # not reached yet
    middle = y.parents[0].parents[0]                           # drawn: the usual answer
    assert stepper.grads_at(last, middle) == pytest.approx(1.01)
    outside = Tensor(3.0)
    with pytest.raises((KeyError, IndexError)):
        stepper.grads_at(last, outside)


def test_values_at_answers_for_a_node_outside_the_drawn_window_from_its_forward_step():
    x = Tensor(1.0, name="x")
    y = x
    for _ in range(100):
        y = y + 1.0
    stepper = BackwardStepper(y, forward=True, max_nodes=20)
    first = y
    while first.parents and first.parents[0] is not x:
        first = first.parents[0]
    assert first not in stepper.timeline.view.nodes
    shown = [stepper.values_at(k, first) for k in range(stepper.timeline.last + 1)]
    assert shown[0] is None and shown[1] == 2.0 and shown[-1] == 2.0
    assert stepper.values_at(0, x) == 1.0


def test_an_undrawn_grad_appears_at_the_step_that_writes_it():
    x = Tensor(1.0, name="x")
    y = x
    for _ in range(100):
        y = y * 2.0
    stepper = BackwardStepper(y, max_nodes=20)
    timeline = stepper.timeline
    seen = [stepper.grads_at(k, x) for k in range(timeline.last + 1)]
    assert seen[-1] == 2.0 ** 100 and seen[-2] is None


# --------------------------------------------------------------------------- a student's None parent


class _Value:
    def __init__(self, data, children=(), op=""):
        self.data, self.grad, self._prev, self._op = data, 0.0, tuple(children), op
        self._backward = lambda: None

    def __mul__(self, other):
        out = _Value(self.data * other.data, (self, other, None), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out


def test_a_none_parent_in_a_students_graph_is_said_at_its_step():
    a, b = _Value(2.0), _Value(3.0)
    stepper = BackwardStepper(a * b, forward=True)
    captions = [stepper.caption_text(k) for k in range(stepper.timeline.last + 1)]
    assert any("_prev holds None, which is neither a node nor a number: it is left out" in c for c in captions)
    np.testing.assert_allclose(stepper.grads_at(stepper.timeline.last, a), 3.0)
