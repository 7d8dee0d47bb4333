"""What a student sees: the layout chosen for the graph's shape, and module boxes that
lay out as fast collapsed as expanded (headless: the DOT and the SVG's size)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ad_magic import Tensor
from ad_magic.drawing import frame
from ad_magic.drawing.dot import GraphPlan, build_dot, reading_cost
from ad_magic.drawing.graph_view import GraphView
from ad_magic.nn import Linear, Module


def long_chain(steps=20):
    y = Tensor(1.0, name="y")
    for _ in range(steps):
        y = y * 1.0001 + 0.001
    return y


class Recurrent(Module):
    """One input weight and one hidden weight, applied at every step (a tiny RNN)."""

    def __init__(self, steps):
        self.wx, self.wh, self.steps = Linear(1, 1, seed=0), Linear(1, 1, seed=1), steps

    def parameters(self):
        return self.wx.parameters() + self.wh.parameters()

    def forward(self, xs):
        h = Tensor(np.zeros((1, 1)), requires_grad=False)
        for t in range(self.steps):
            h = (self.wx(xs[t:t + 1]) + self.wh(h)).tanh()
        return h


def recurrent_loss(steps):
    xs = np.linspace(-1, 1, steps).reshape(steps, 1)
    return ((Recurrent(steps)(xs) - 0.5) ** 2).sum()


def test_a_long_chain_folds_into_rows_read_like_text(renderer):
    view = GraphView(long_chain())
    width, height = frame.svg_size(view.skeleton())
    assert view.rankdir == "fold"
    # Seven rows of six ops (was a 2,500 px staircase, a 4,625 pt column top to bottom).
    assert width < 1200 and height < 900, (width, height)
    rows = view.plan.fold_rows()
    assert len(rows) == 7 and [name[0] for name in rows[0][:4]] == ["v", "f", "v", "f"]
    # each row on one line: the centres of its values share one y
    ys = {}
    for g in re.finditer(r'<title>(v\d+)</title>\s*<(?:path|polygon)[^>]*?(?:points|d)="[^"]*?,(-?[\d.]+)',
                         view.skeleton()):
        ys[g.group(1)] = float(g.group(2))
    for row in rows:
        heights = {round(ys[name]) for name in row if name in ys and name != "v0"}
        assert len(heights) <= 1, (row, heights)


def test_a_long_chain_forced_left_to_right_is_one_straight_row(renderer):
    view = GraphView(long_chain(), rankdir="LR")
    width, height = frame.svg_size(view.skeleton())
    # one row of boxes (was a 1,024 pt staircase: each op drifted half a node)
    assert height < 150 and width > 10 * height, (width, height)


def test_a_loop_whose_weights_feed_every_step_does_not_fold():
    x, w = Tensor(0.5, name="x"), Tensor(0.3, name="w")
    h = x
    for _ in range(12):
        h = (h * w + x).tanh()
    assert GraphPlan(h, None, 300).fold_rows() is None          # their edges would cross every row
    assert GraphPlan(long_chain(3), None, 300).fold_rows() is None   # too short to fold
    assert GraphPlan(small_mlp_loss(), None, 300).fold_rows() is None   # module boxes
    with pytest.raises(ValueError, match="folds a long chain"):
        build_dot(GraphPlan(h, None, 300), show_grad=True, rankdir="fold")


def test_the_chains_own_edges_pull_harder_than_its_constants():
    source = build_dot(GraphPlan(long_chain(3), None, 300), show_grad=True).source
    # the value feeding each op and each op's result: weighted; a constant's edge: not
    assert re.search(r"v\d+ -> f\d+ \[weight=4\]", source)
    assert re.search(r"f\d+ -> v\d+ \[weight=4\]", source)
    assert not re.search(r"c[\d_]+ -> f\d+ \[[^]]*weight", source)


def test_a_big_graph_weighs_its_edges_only_when_it_is_a_chain():
    # a 1,000-value MLP loss laid out with weighted edges took dot five times as long
    rng = np.random.default_rng(0)
    w1, w2 = Tensor(rng.normal(size=(8, 2)), name="W1"), Tensor(rng.normal(size=(1, 8)), name="W2")
    loss = None
    for x in rng.normal(size=(40, 2)):
        out = ((w2 @ (w1 @ x).relu()) - 1.0) ** 2
        loss = out if loss is None else loss + out
    big = GraphPlan(loss, None, 2000)
    assert len(big.tensors) >= 200 and big.fold_rows() is None
    assert "weight=" not in build_dot(big, show_grad=True).source
    chain = GraphPlan(long_chain(120), None, 2000)
    assert len(chain.tensors) >= 200 and chain.fold_rows() is not None
    assert re.search(r"f\d+ -> v\d+ \[weight=4\]", build_dot(chain, show_grad=True).source)


def test_reading_cost_prefers_a_row_to_a_tall_column_and_a_tall_model_to_a_long_row():
    assert reading_cost(7569, 90) < reading_cost(164, 4399)      # the 20-step chain
    assert reading_cost(845, 1262) < reading_cost(3109, 303)     # MLP([1, 8, 8, 1])'s loss
    assert reading_cost(600, 100) == 1.0                        # fits: one viewport at full size


def test_collapsed_boxes_are_held_in_their_own_cluster_and_edges_carry_xlabels():
    plan = GraphPlan(recurrent_loss(10), None, 300, "collapsed")
    assert len(plan.collapsed) == 20 and plan.long_edges() > 400
    source = build_dot(plan, show_grad=True).source
    boxes = re.findall(r"subgraph cluster_box(\d+) \{", source)
    assert len(boxes) == 20
    for i in boxes:     # each holds the box and its output value
        body = source.split(f"subgraph cluster_box{i} {{", 1)[1].split("}", 1)[0]
        assert f"\tf{i} [" in body and f"\tv{i} [" in body
    # shapes on edges are xlabels (placed after the layout), never labels (a node per rank crossed)
    assert "xlabel=" in source and not re.search(r"-> \w+ \[label=", source)
    # a small graph keeps labels (dot keeps them clear of the edges)
    small = build_dot(GraphPlan(recurrent_loss(2), None, 300, "collapsed"), show_grad=True).source
    assert "xlabel=" not in small and re.search(r"-> \w+ \[label=", small)


@pytest.mark.parametrize("modules", ["expanded", "collapsed"])
def test_a_recurrent_module_lays_out_either_way(renderer, modules):
    view = GraphView(recurrent_loss(6), modules=modules)
    assert view.rankdir in ("LR", "TB")
    assert len(view.plan.collapsed) == (12 if modules == "collapsed" else 0)
    # every value and op is found again in the SVG, a collapsed module's box included
    assert view.skeleton().count('class="node ad-') == sum(
        1 for i in range(len(view.nodes)) if not view.plan.drawn_per_use(i)) + sum(
        1 for ops in view.plan.operands if ops)
    assert view.skeleton().count('class="node ad-op ad-module"') == len(view.plan.collapsed)


# ------------------------------------------------------------------ module boxes opened and closed by hand
def small_mlp_loss():
    from ad_magic.nn import MLP, mse_loss

    X = np.linspace(-1, 1, 4).reshape(4, 1)
    return mse_loss(MLP([1, 3, 1], seed=0)(X), np.sin(X))


def _call(plan, name):
    return next(k for k, call in enumerate(plan.calls) if call.name and call.name.endswith(name))


def test_a_toggled_module_closes_when_open_and_opens_when_closed():
    loss = small_mlp_loss()
    expanded = GraphPlan(loss, None, 300, "expanded")
    first = _call(expanded, "[0]")
    closed = GraphPlan(loss, None, 300, "expanded", toggled=[first])
    assert closed.collapsed == {first} and closed.toggled == (first,)
    assert [closed.box_calls[i] for i, b in enumerate(closed.boxes) if b] == [first]
    collapsed = GraphPlan(loss, None, 300, "collapsed")
    assert first in collapsed.collapsed
    opened = GraphPlan(loss, None, 300, "collapsed", toggled=[first])
    assert first not in opened.collapsed and opened.collapsed == collapsed.collapsed - {first}
    # the whole model closes into one box; calls out of range are ignored
    whole = GraphPlan(loss, None, 300, "expanded", toggled=[0, 99])
    assert whole.collapsed == {0} and whole.calls[0].name is None


def test_the_skeleton_makes_module_boxes_clickable_and_the_picture_lights_a_modules_step(renderer):
    loss = small_mlp_loss()
    view = GraphView(loss, modules="collapsed")
    skeleton = view.skeleton()
    boxes = re.findall(r'class="node ad-op ad-module" data-f="(\d+)" data-call="(\d+)"', skeleton)
    assert len(boxes) == len(view.plan.collapsed) == 2
    assert all(view.plan.box_calls[int(i)] == int(k) for i, k in boxes)
    assert re.search(r'class="cluster ad-module-box" data-call="0"', skeleton)   # the MLP, open
    i = int(boxes[0][0])
    plain, lit = view.svg(), view.svg(highlight=i)
    box = re.compile(rf"<title>f{i}</title>.*?</g>", re.S)
    assert "#fecaca" not in box.search(plain).group() and "#fecaca" in box.search(lit).group()


def test_the_stepper_opens_a_module_clicked_and_the_button_forgets_the_clicks(renderer):
    from ad_magic.widgets.stepper import BackwardStepper

    stepper = BackwardStepper(small_mlp_loss(), forward=True, modules="expanded")
    assert stepper.data["modules"]["collapsed"] == 0 and stepper.data["modules"]["toggled"] == []
    first = _call(stepper.view.plan, "[0]")
    stepper.toggled = [first]                      # what a click on layers[0]'s box sends
    assert stepper.view.plan.collapsed == {first}
    assert stepper.data["modules"]["toggled"] == [first]
    assert f'data-call="{first}"' in stepper.data["svg"]
    # at the module's forward step its box is the step's node
    k = next(k for k, s in enumerate(stepper.timeline.states) if s.function and "Linear" in s.function)
    node = stepper.data["highlight"][k]
    assert stepper.data["modules"]["box"][node] == first
    stepper.modules = "collapsed"
    assert stepper.toggled == [] and stepper.data["modules"]["toggled"] == []
    assert len(stepper.view.plan.collapsed) == 2


def test_a_plain_picture_holds_its_modules_as_asked_and_the_other_way(renderer, monkeypatch):
    from graphviz.backend import dot_command

    from ad_magic import draw_computation_graph
    from ad_magic.drawing import repr_mimebundle

    monkeypatch.setattr(dot_command, "DOT_BINARY", renderer)   # the graphviz package's own display

    loss = small_mlp_loss()
    for asked, boxes in (("collapsed", 2), ("expanded", 0)):
        picture = draw_computation_graph(loss, modules=asked)
        assert picture.source.count("id=module_f") == boxes       # the static picture: as asked
        other = picture.other_view
        assert other is not None and other.source.count("id=module_f") == 2 - boxes
        html = picture._repr_mimebundle_()["text/html"]
        assert html.count("<svg ") == 2 and 'data-modules="other"' in html and "onclick" in html
    # a tensor's own picture: one more layout only when it has module boxes
    assert repr_mimebundle(loss)["text/html"].count("<svg ") == 2
    assert repr_mimebundle(long_chain(3))["text/html"].count("<svg ") == 1
    assert draw_computation_graph(long_chain(3)).other_view is None


def test_the_explorers_graph_holds_its_modules_collapsed_too(renderer):
    from ad_magic.nn import MLP, mse_loss
    from ad_magic.widgets import DescentExplorer

    net = MLP([1, 3, 1], seed=0)
    X = np.linspace(-1, 1, 4).reshape(4, 1)
    explorer = DescentExplorer(mse_loss(net(X), np.sin(X)), net.parameters(), lr=0.1, steps=5)
    explorer.slider.value = 3
    html = explorer.graph.value
    assert html.count("<svg ") == 2 and html.count("id=\"module_f") == 2 and "onclick" in html
    # the collapsed picture shows iteration 3's numbers: the loss node's value is the same
    loss = f"{explorer.losses[3]:.4g}"[:5]
    shown, other = html.split('data-modules="other"')
    assert loss in shown and loss in other
    w = Tensor(0.5, name="w")
    plain = DescentExplorer((w * 3 - 2) ** 2, [w], lr=0.1, steps=3)
    assert plain.graph.value.count("<svg ") == 1
