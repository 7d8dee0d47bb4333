"""DescentExplorer, driven headless by setting its slider."""
from __future__ import annotations

import gc
import math
import xml.etree.ElementTree as ET

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from ad_magic import Tensor
from ad_magic.explorer import DescentExplorer
from ad_magic.formatting import format_number
from ad_magic.optim import Adam, Momentum

SVG_NS = "{http://www.w3.org/2000/svg}"


# --------------------------------------------------------------------------- helpers

def node_texts(svg: str) -> dict:
    """{DOT node name (v0, f1): its text lines} of a GraphView SVG (which must parse)."""
    root = ET.fromstring(svg)
    return {g.find(f"{SVG_NS}title").text: [t.text or "" for t in g.iter(f"{SVG_NS}text")]
            for g in root.iter(f"{SVG_NS}g") if g.get("class") == "node"}


def shown_value(svg: str, name: str) -> str:
    """The 'data …' line of the value node labelled ``name``."""
    for lines in node_texts(svg).values():
        if lines and lines[0] == name:
            return lines[1]
    raise AssertionError(f"no node named {name} in the SVG")


# --------------------------------------------------------------------------- descent

def quadratic():
    x = Tensor(3.0, name="x")
    return x, (lambda: (x - 1.0) ** 2 + 0.5)


def test_descent_on_a_quadratic_reaches_its_minimum():
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=100)
    assert len(e.history) == 101 and len(e.losses) == 101
    assert e.stopped is None and e.stopped_at is None
    assert abs(float(x.data) - 1.0) < 1e-6
    assert abs(e.losses[-1] - 0.5) < 1e-9
    assert all(b <= a for a, b in zip(e.losses, e.losses[1:]))
    first = e.history[0]
    assert float(first.values[0]) == 3.0 and float(first.grads[0]) == pytest.approx(4.0)
    # each record: grad = 2(x - 1) at that iteration's x
    for r in e.history:
        assert float(r.grads[0]) == pytest.approx(2 * (float(r.values[0]) - 1))


@pytest.mark.parametrize("optimizer", ["momentum", "adam", Momentum, Adam])
def test_momentum_and_adam(optimizer):
    a, b = Tensor(2.0, name="a"), Tensor(-1.0, name="b")
    e = DescentExplorer(lambda: (a - 1.0) ** 2 + (b + 2.0) ** 2, [a, b], lr=0.1, steps=300,
                        optimizer=optimizer)
    assert e.stopped is None
    assert abs(float(a.data) - 1.0) < 1e-2 and abs(float(b.data) + 2.0) < 1e-2


def test_optimizer_instance_is_used():
    x, loss_fn = quadratic()
    opt = Momentum([x], lr=0.05, momentum=0.5)
    e = DescentExplorer(loss_fn, [x], steps=80, optimizer=opt)
    assert e.optimizer is opt
    assert abs(float(x.data) - 1.0) < 1e-3


def test_divergence_stops_with_a_hint_and_finite_params():
    x = Tensor(3.0, name="x")
    e = DescentExplorer(lambda: x ** 2, [x], lr=10, steps=400)
    assert e.stopped is not None
    assert "inf" in e.stopped and "smaller learning rate" in e.stopped and "lr=1" in e.stopped
    assert e.stopped_at == len(e.history) - 1 < 400
    assert not math.isfinite(e.losses[-1])
    assert all(math.isfinite(v) for v in e.losses[:-1])
    assert np.isfinite(x.data).all()
    e.iteration = e.stopped_at
    assert "stopped" in e.label.value
    assert e.png(e.stopped_at).startswith(b"\x89PNG")


def test_non_finite_update_is_reverted():
    x = Tensor(3.0, name="x")
    e = DescentExplorer(lambda: 2.0 * x, [x], lr=1.7e308, steps=5)
    assert e.stopped_at == 0 and "non-finite" in e.stopped and "smaller learning rate" in e.stopped
    assert float(x.data) == 3.0


def test_nan_loss_stops():
    x = Tensor(1.0, name="x")
    e = DescentExplorer(lambda: x.log(), [x], lr=2.0, steps=10)
    assert e.stopped is not None and "nan" in e.stopped
    assert math.isnan(e.losses[-1])


def test_one_parameter_figure_has_the_slice_with_a_tangent():
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=20)
    after = float(x.data)
    fig = e.figure(5)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert float(x.data) == after        # evaluating the landscape restored the parameter
    lines = {line.get_label(): line for line in fig.axes[1].get_lines()}
    tangent = lines["tangent (slope = grad)"]
    tx, ty = tangent.get_data()
    slope = (ty[1] - ty[0]) / (tx[1] - tx[0])
    assert slope == pytest.approx(float(e.history[5].grads[0]))
    xs, ys = lines["loss(x)"].get_data()
    assert np.allclose(ys, (xs - 1) ** 2 + 0.5)


def test_two_parameter_figure_has_contours_and_the_path():
    a, b = Tensor(2.0, name="a"), Tensor(-1.0, name="b")
    e = DescentExplorer(lambda: (a - 1.0) ** 2 + 3.0 * (b + 2.0) ** 2, [a, b], lr=0.1, steps=30)
    fig = e.figure(10)
    assert len(fig.axes) == 2
    assert any(isinstance(c, ContourSet) for c in fig.axes[1].collections)
    paths = [line for line in fig.axes[1].get_lines() if len(line.get_xdata()) == 11]
    assert paths, "the path up to iteration 10 is drawn"


def test_contours_for_a_non_vectorizable_loss():
    X = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=False)
    a, b = Tensor(0.5, name="a"), Tensor(0.5, name="b")

    def loss_fn():   # a matmul: evaluating on a grid at once would be wrong
        e1, e2 = Tensor([1.0, 0.0], requires_grad=False), Tensor([0.0, 1.0], requires_grad=False)
        w = e1 * a + e2 * b
        return ((X @ w - Tensor([1.0, 2.0], requires_grad=False)) ** 2).mean()
    e = DescentExplorer(loss_fn, [a, b], lr=0.01, steps=5)
    contour = e._plot.contour
    i, j = 7, 20
    a.data, b.data = contour["xs"][j], contour["ys"][i]
    expected = float(loss_fn().data)
    assert contour["zs"][i, j] == pytest.approx(expected)


def test_elementwise_landscape_takes_one_call():
    x = Tensor(3.0, name="x")
    calls = [0]

    def loss_fn():
        calls[0] += 1
        return (x - 1.0) ** 2
    DescentExplorer(loss_fn, [x], lr=0.1, steps=10)
    assert calls[0] <= 11 + 1 + 3      # the run, one call on the whole grid, 3 spot checks


def test_vector_parameter_has_only_the_loss_curve():
    w = Tensor([1.0, -1.0, 2.0], name="w")
    e = DescentExplorer(lambda: (w * w).sum(), [w], lr=0.1, steps=10)
    assert len(e.figure().axes) == 1
    assert "(3,)" in e.table_html(3)


def test_slider_moves_update_label_image_table_and_graph():
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=50)
    before = (e.label.value, e.image.value, e.table.value, e.graph.value)
    assert "iteration 0 / 50" in before[0]
    e.slider.value = 7
    after = (e.label.value, e.image.value, e.table.value, e.graph.value)
    assert "iteration 7 / 50" in after[0] and e.iteration == 7
    assert all(b != a for b, a in zip(before, after))
    assert e.graph.value.startswith("<svg")
    e.play.value = 9
    assert e.iteration == 9
    assert "ad-descent-explorer" in e._dom_classes


def test_graph_keeps_one_layout_and_shows_each_iteration():
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=10)
    assert e.layouts == 1 and all(e.graph_view(k) is e.view for k in range(11))
    svg3, svg8 = e.svg(3), e.svg(8)
    assert svg3 != svg8
    assert shown_value(svg3, "x") == f"data {format_number(e.history[3].values[0], 9)}"


def test_graph_relayouts_when_the_structure_changes():
    x = Tensor(2.0, name="x")
    calls = [0]

    def loss_fn():
        calls[0] += 1
        return x * x if calls[0] % 2 else (x * x + 0.0 * x)
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=6)
    assert e.layouts == 2
    for k in range(len(e.history)):
        ET.fromstring(e.svg(k))


BRANCHING = {
    # the graph depends on the value: x * x for x > 0, -x otherwise
    "sign branch": (lambda x: x * x if x.item() > 0 else -x, 1.5, 0.8),
    # Huber: quadratic near 0, linear (through abs written as a branch) beyond 1
    "huber": (lambda d: 0.5 * d * d if abs(d.item()) < 1 else (d if d.item() > 0 else -d) - 0.5, 3.0, 0.7),
}


@pytest.mark.parametrize("case", BRANCHING)
def test_slider_shows_every_iteration_of_a_loss_whose_graph_changes(case):
    f, start, lr = BRANCHING[case]
    x = Tensor(start, name="x")
    e = DescentExplorer(lambda: f(x), [x], lr=lr, steps=12)
    assert e.layouts >= 2, "the run should take both branches"
    seen = set()
    for k in list(range(len(e.history))) + [0, len(e.history) - 1, 3]:
        e.slider.value = k                 # used to raise TypeError: 'NoneType' ... not subscriptable
        assert f"iteration {k} / 12" in e.label.value
        assert shown_value(e.graph.value, "x") == f"data {format_number(e.history[k].values[0], 9)}"
        seen.add(id(e.graph_view(k)))
    assert len(seen) == e.layouts


def test_a_tensor_loss_is_replayed_and_left_at_the_last_parameters():
    x = Tensor(3.0, name="x")
    loss = (x - 1.0) ** 2 + 0.5
    e = DescentExplorer(loss, x, lr=0.1, steps=60)
    assert e.loss is loss and e.loss_fn is None
    assert e.layouts == 1 and e.view.output is loss
    assert abs(float(x.data) - 1.0) < 1e-4
    assert e.losses[-1] == pytest.approx(0.5)
    for k in (0, 7, 60):   # each iteration's graph shows that iteration's values
        svg = e.svg(k)
        assert shown_value(svg, "x") == f"data {format_number(e.history[k].values[0], 9)}"
    # the landscape was drawn by moving x; afterwards the graph is back at the last iterate
    assert float(loss.data) == pytest.approx((float(x.data) - 1.0) ** 2 + 0.5)
    assert float(x.grad) == pytest.approx(2 * (float(x.data) - 1.0))
    xs, ys = e._plot.slice["xs"], e._plot.slice["ys"]
    assert np.allclose(ys, (xs - 1.0) ** 2 + 0.5)


def test_a_tensor_loss_of_two_parameters_has_its_contours():
    a, b = Tensor(2.0, name="a"), Tensor(-1.0, name="b")
    loss = (a - 1.0) ** 2 + 3.0 * (b + 2.0) ** 2
    e = DescentExplorer(loss, [a, b], lr=0.1, steps=20)
    contour = e._plot.contour
    i, j = 5, 17
    expected = (contour["xs"][j] - 1.0) ** 2 + 3.0 * (contour["ys"][i] + 2.0) ** 2
    assert contour["zs"].shape == (25, 25) and contour["zs"][i, j] == pytest.approx(expected)
    assert float(loss.data) == pytest.approx((float(a.data) - 1) ** 2 + 3 * (float(b.data) + 2) ** 2)


def test_the_run_is_optim_descend_with_a_callback(monkeypatch):
    from ad_magic import optim
    calls = []
    real = optim.descend

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)
    monkeypatch.setattr(optim, "descend", spy)
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=5, optimizer="momentum", momentum=0.5)
    assert len(calls) == 1 and callable(calls[0]["callback"]) and calls[0]["momentum"] == 0.5
    assert e.optimizer.momentum == 0.5
    assert [r.loss for r in e.history] == e.losses == list(e.descent.losses)
    assert e.stopped is e.descent.stopped and len(e.descent) == 6


def test_box_keywords_go_to_the_box():
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], steps=2, layout={"width": "500px"})
    assert e.layout.width == "500px"


def test_no_figure_leaks():
    x, loss_fn = quadratic()
    a, b = Tensor(1.0), Tensor(2.0)
    e1 = DescentExplorer(loss_fn, [x], lr=0.1, steps=30)
    e2 = DescentExplorer(lambda: a * a + b * b, [a, b], lr=0.1, steps=30)

    def live():
        gc.collect()
        return sum(isinstance(o, Figure) for o in gc.get_objects())
    for e in (e1, e2):
        e.slider.value = 1
    start = live()
    for k in range(30):
        e1.slider.value = k
        e2.slider.value = k
        e1.figure(k)
        e2.png(k)
    assert live() <= start
    assert plt.get_fignums() == []


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(loss_fn=42), TypeError, "loss must be a scalar Tensor or a function"),
    (dict(loss_fn=lambda: 3.0), TypeError, "must be a Tensor, got float"),
    (dict(loss_fn="vector"), ValueError, r"shape \(3,\)"),
    (dict(params=[]), ValueError, "params is empty"),
    (dict(params=[1.0]), TypeError, "params\\[0\\]"),
    (dict(params="nonleaf"), ValueError, "leaf"),
    (dict(steps=0), ValueError, "steps"),
    (dict(lr=0), ValueError, "lr"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(lr=float("nan")), ValueError, "lr"),
    (dict(lr=float("inf")), ValueError, "lr"),
    (dict(optimizer="rmsprop"), ValueError, "unknown optimizer"),
    (dict(loss_fn="unrelated"), ValueError, "does not depend"),
    (dict(optimizer=3), TypeError, "optimizer"),
])
def test_descent_bad_inputs(kwargs, error, pattern):
    x = Tensor(1.0, name="x")
    args = dict(loss_fn=lambda: x * x, params=[x])
    args.update(kwargs)
    if args["loss_fn"] == "vector":
        args["loss_fn"] = lambda: x * Tensor([1.0, 2.0, 3.0])
    if args["loss_fn"] == "unrelated":
        other = Tensor(2.0)
        args["loss_fn"] = lambda: other * other
    if args["params"] == "nonleaf":
        args["params"] = [x * 2.0]
    with pytest.raises(error, match=pattern):
        DescentExplorer(args.pop("loss_fn"), args.pop("params"), **args)


def test_a_layout_that_cannot_be_drawn_later_is_a_message_not_a_crash(monkeypatch, tmp_path):
    f, start, lr = BRANCHING["sign branch"]
    x = Tensor(start, name="x")
    e = DescentExplorer(lambda: f(x), [x], lr=lr, steps=6)
    other = next(k for k in range(len(e.history)) if e._states[k][0] != 0)   # first laid out when shown
    monkeypatch.setenv("AD_MAGIC_DOT", str(tmp_path / "missing-dot"))
    e.slider.value = other
    assert f"iteration {other} / 6" in e.label.value
    texts = [t.text for t in ET.fromstring(e.graph.value).iter(f"{SVG_NS}text")]
    assert len(texts) == 1 and texts[0].startswith("Graph not drawn:") and "missing-dot" in texts[0]


def test_a_tensor_loss_that_ignores_a_parameter_is_refused_before_anything_changes():
    x, other = Tensor(1.0, name="x"), Tensor(2.0, name="other")
    loss = other * other
    with pytest.raises(ValueError, match="not in the loss's graph"):
        DescentExplorer(loss, [x, other])
    assert float(x.data) == 1.0 and float(other.data) == 2.0
