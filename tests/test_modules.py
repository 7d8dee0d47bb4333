"""A model drawn by its modules: Module.__call__ records which nodes each call made, the
drawing boxes them per call (labelled, collapsible to one box), and a collapsed module is
stepped through as one step."""
from __future__ import annotations

import html
import re
import threading

import numpy as np
import pytest

from ad_magic import Tensor, draw_computation_graph
from ad_magic.drawing.dot import COLLAPSE_ABOVE, GraphPlan
from ad_magic.drawing.render import find_dot
from ad_magic.engine import topological_order
from ad_magic.nn import MLP, Linear, Module, module_scope, mse_loss
from ad_magic.widgets.timeline import Timeline

needs_dot = pytest.mark.skipif(find_dot() is None, reason="no dot renderer")


def part_d_loss():
    """The solved practical's last cell: MLP([1, 3, 1]) on 4 points."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (128, 1))
    Y = np.sin(X) + 0.1 * rng.standard_normal(X.shape)
    net = MLP([1, 3, 1], seed=1)
    loss = mse_loss(net(X[:4]), Y[:4])
    loss.backward()
    return net, loss


class Squash(Module):
    """A module of several ops and a parameter of its own (no sub-module)."""

    def __init__(self):
        self.a = Tensor(0.5, name="a")

    def forward(self, x):
        return (x * self.a).tanh() * 2 + 1


def test_a_call_stamps_the_nodes_it_made_outermost_first():
    net, loss = part_d_loss()
    by_function = {}
    for t in topological_order(loss):
        by_function.setdefault(t._function, []).append(module_scope(t))
    first, second = by_function["linear"]
    assert [c.module for c in first] == [net, net.layers[0]]
    assert [c.name for c in first] == [None, "layers[0]"] and [c.name for c in second] == [None, "layers[1]"]
    assert first[0] is second[0]                      # one MLP call holds both layers
    assert [c.module for c in by_function["relu"][0]] == [net]
    assert by_function["mean"] == [()] and by_function["sub"] == [()]   # the loss is not a module
    assert all(module_scope(p) == () for p in net.parameters())        # parameters are not made by a call


def test_an_input_made_before_the_call_stays_outside_it():
    x = Tensor([[1.0, 2.0]], name="x")
    h = x * 3                      # made before the call, passed in
    layer = Linear(2, 1, seed=0)
    y = layer(h)
    assert module_scope(h) == ()
    assert [c.module for c in module_scope(y)] == [layer]


def test_calls_in_threads_and_repeated_calls_are_kept_apart():
    layer = Linear(2, 2, seed=0)
    outputs = [None] * 8

    def run(k):
        x = Tensor(np.full((1, 2), float(k)))
        outputs[k] = layer(layer(x).relu())
    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = set()
    for out in outputs:
        inner = out.parents[0].parents[0]          # the first call's linear, under the relu
        assert len(module_scope(out)) == 1 and len(module_scope(inner)) == 1
        assert module_scope(out)[0] is not module_scope(inner)[0]      # the same module, two calls
        calls.update(id(module_scope(t)[0]) for t in (out, inner))
    assert len(calls) == 16


def test_the_dot_boxes_each_call_and_names_it():
    _, loss = part_d_loss()
    source = html.unescape(draw_computation_graph(loss).source)
    assert re.search(r"subgraph cluster_m0 \{\s*[^\n]*label=<MLP\(1→3→1\)>", source)
    assert "label=<layers[0]: Linear(1→3)>" in source and "label=<layers[1]: Linear(3→1)>" in source
    flat = draw_computation_graph(loss, modules="flat").source
    assert "cluster" not in flat
    collapsed = html.unescape(draw_computation_graph(loss, modules="collapsed").source)
    assert "<b>layers[0]: Linear(1→3)</b>" in collapsed and "peripheries=2" in collapsed
    with pytest.raises(ValueError, match="modules must be one of"):
        draw_computation_graph(loss, modules="folded")


def test_a_collapsed_module_is_one_box_fed_by_its_inputs_and_parameters():
    squash = Squash()
    x = Tensor(1.5, name="x")
    y = squash(x) * x
    expanded = GraphPlan(y, None, 300, "expanded")
    collapsed = GraphPlan(y, None, 300, "collapsed")
    assert len(expanded.tensors) == 9 and len(collapsed.tensors) == 4     # x, a, the module's output, y
    box = collapsed.boxes.index("Squash")
    assert {t.name for t in collapsed.operands[box]} == {"x", "a"}
    assert expanded.cluster[expanded.index[id(squash.a)]] == 0               # the parameter sits in its box
    assert collapsed.signature() != expanded.signature()


def test_auto_collapses_innermost_modules_first_above_the_threshold():
    class Deep(Module):
        def __init__(self):
            self.blocks = [Squash() for _ in range(6)]

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x
    deep = Deep()
    y = deep(Tensor(0.3, name="x"))
    expanded = GraphPlan(y, None, 300, "expanded")
    auto = GraphPlan(y, None, 300, "auto")
    assert sum(1 for t in expanded.tensors if t._function is not None or t.requires_grad) > COLLAPSE_ABOVE
    assert len(auto.collapsed) == 6 and all(auto.calls[k].module in deep.blocks for k in auto.collapsed)
    assert len(auto.tensors) < len(expanded.tensors)
    _, small = part_d_loss()
    assert GraphPlan(small, None, 300, "auto").collapsed == set()          # Part D's model stays open


def test_stepping_a_collapsed_module_is_one_step_with_its_parameters_grads():
    squash = Squash()
    x = Tensor(1.5, name="x")
    y = squash(x) * x
    tl = Timeline(y, forward=True, modules="collapsed")
    view = tl.view
    box = view.plan.boxes.index("Squash")
    forward = [s for s in tl.states if s.phase == "forward"]
    backward = [s for s in tl.states if s.phase == "backward"]
    assert len(forward) == 2 and len(backward) == 2          # the module's 4 ops: one state each way
    step = backward[1]
    assert step.highlight == box and step.function == "Squash"
    assert set(step.changed) == {view.index(x), view.index(squash.a)}
    assert "∂L/∂a → " in step.caption and "one step" in step.caption
    final = tl.grads_at(tl.last)
    y.backward()
    assert float(final[view.index(squash.a)]) == pytest.approx(float(squash.a.grad))
    assert float(final[view.index(x)]) == pytest.approx(float(x.grad))
    # the card of x still lists what each use added
    assert "used 2 times" in tl.card_text(x, tl.last)


@needs_dot
def test_the_collapsed_timeline_draws_the_module_box():
    squash = Squash()
    x = Tensor(1.5, name="x")
    tl = Timeline(squash(x) * x, modules="collapsed")
    svg = html.unescape(tl.view.skeleton())
    assert "Squash" in svg and 'class="node ad-output"' in svg


@needs_dot
def test_the_stepper_collapses_and_expands_its_modules():
    from ad_magic.widgets.stepper import BackwardStepper

    squash = Squash()
    x = Tensor(1.5, name="x")
    s = BackwardStepper(squash(x) * x, forward=True, modules="expanded")
    assert {k: s.data["modules"][k] for k in ("calls", "collapsed")} == {"calls": 1, "collapsed": 0}
    expanded_states = s.n_steps
    s.step = s.n_steps
    s.modules = "collapsed"                 # what the widget's button asks for
    assert {k: s.data["modules"][k] for k in ("calls", "collapsed")} == {"calls": 1, "collapsed": 1}
    assert s.n_steps < expanded_states and s.step == s.n_steps
    assert "Squash" in html.unescape(s.data["svg"])
    s.modules = "expanded"
    assert s.n_steps == expanded_states


def test_a_torch_model_is_drawn_by_its_modules_once_tracked():
    torch = pytest.importorskip("torch")
    from ad_magic.adapters import adapt
    from ad_magic.adapters.torch import track_modules

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    X = torch.randn(4, 1)
    untracked = ((model(X) - X) ** 2).mean()
    assert "cluster" not in draw_computation_graph(untracked).source     # nothing recorded yet
    handles = track_modules(model)
    loss = ((model(X) - X) ** 2).mean()
    source = html.unescape(draw_computation_graph(loss).source)
    for title in ("label=<Sequential>", "label=<0: Linear(1→3)>", "label=<1: ReLU>", "label=<2: Linear(3→1)>"):
        assert title in source
    plan = GraphPlan(adapt(loss, "test"), None, 300, "collapsed")
    assert [b for b in plan.boxes if b] == ["0: Linear(1→3)", "1: ReLU", "2: Linear(3→1)"]
    weight = next(i for i, t in enumerate(plan.tensors) if getattr(t, "source", None) is model[0].weight)
    assert plan.cluster[weight] == 0                   # a parameter sits in its model's box
    for handle in handles:
        handle.remove()
    with pytest.raises(TypeError, match="track_modules needs a torch.nn.Module"):
        track_modules(X)


@needs_dot
def test_a_stepper_lays_its_graph_out_once(monkeypatch):
    from ad_magic.drawing import dot
    from ad_magic.widgets.stepper import BackwardStepper

    calls = []
    real = dot.render_svg
    monkeypatch.setattr(dot, "render_svg", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = Tensor(2.0, name="x")
    BackwardStepper(x * 3, forward=True)       # a short row: left to right fits, one layout
    assert len(calls) == 1
