"""DescentExplorer, driven headless by setting its slider."""
from __future__ import annotations

import gc
import math
import re
import xml.etree.ElementTree as ET

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from ad_magic import Tensor
from ad_magic.engine.formatting import format_number
from ad_magic.optim import Adam, Momentum
from ad_magic.widgets.explorer import DescentExplorer

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
    contour = e.picture.plot.contour
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
    assert "[0.512, -0.512, 1.024]" in e.table_html(3)   # a small vector, whole


def test_slider_moves_update_label_image_table_and_graph():
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=50)
    before = (e.label.value, e.image.value, e.table.value, e.graph.value)
    assert "iteration 0 / 50" in before[0]
    e.slider.value = 7
    after = (e.label.value, e.image.value, e.table.value, e.graph.value)
    assert "iteration 7 / 50" in after[0] and e.iteration == 7
    assert all(b != a for b, a in zip(before, after))
    assert e.graph.value.startswith('<div class="ad-graph"') and "<svg" in e.graph.value
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
    xs, ys = e.picture.plot.slice["xs"], e.picture.plot.slice["ys"]
    assert np.allclose(ys, (xs - 1.0) ** 2 + 0.5)


def test_a_tensor_loss_of_two_parameters_has_its_contours():
    a, b = Tensor(2.0, name="a"), Tensor(-1.0, name="b")
    loss = (a - 1.0) ** 2 + 3.0 * (b + 2.0) ** 2
    e = DescentExplorer(loss, [a, b], lr=0.1, steps=20)
    contour = e.picture.plot.contour
    i, j = 5, 17
    expected = (contour["xs"][j] - 1.0) ** 2 + 3.0 * (contour["ys"][i] + 2.0) ** 2
    assert contour["zs"].shape == (25, 25) and contour["zs"][i, j] == pytest.approx(expected)
    assert float(loss.data) == pytest.approx((float(a.data) - 1) ** 2 + 3 * (float(b.data) + 2) ** 2)


def test_the_run_is_optim_descends_loop_with_a_callback(monkeypatch):
    from ad_magic.engine import optim
    calls = []
    real = optim.run_descent

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)
    monkeypatch.setattr(optim, "run_descent", spy)
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=5, optimizer="momentum", momentum=0.5)
    assert len(calls) == 1 and callable(calls[0][1]["callback"]) and calls[0][0][2].momentum == 0.5
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
    other = next(k for k in range(len(e.history)) if e.runs[0].states[k][0] != 0)   # first laid out when shown
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


# --------------------------------------------------------------------------- races

def bowl():
    """Two parameters on (a - 1)² + 10 (b + 0.5)², as a Tensor loss."""
    a, b = Tensor(-1.5, name="a"), Tensor(1.0, name="b")
    return a, b, (a - 1.0) ** 2 + 10.0 * (b + 0.5) ** 2


def alone(optimizer, lr, start=(-1.5, 1.0), steps=40, **opts):
    """The same descent run by itself."""
    from ad_magic.optim import descend
    a, b = Tensor(start[0]), Tensor(start[1])
    return descend((a - 1.0) ** 2 + 10.0 * (b + 0.5) ** 2, [a, b], optimizer, lr=lr, steps=steps, **opts)


def same_run(h1, h2):
    return (len(h1) == len(h2) and np.allclose(h1.losses, h2.losses, rtol=1e-12, atol=0)
            and all(np.allclose(p, q) for p, q in zip(h1.params, h2.params)))


@pytest.mark.parametrize("as_function", [False, True])
def test_a_race_starts_every_optimizer_at_the_same_point_and_each_matches_descend_alone(as_function):
    a, b, loss = bowl()
    lrs = {"sgd": 0.04, "momentum": 0.02, "adam": 0.1}
    e = DescentExplorer.compare((lambda: (a - 1.0) ** 2 + 10.0 * (b + 0.5) ** 2) if as_function else loss,
                                [a, b], optimizers=["sgd", "momentum", "adam"], lr=lrs, steps=40)
    assert list(e.histories) == ["sgd", "momentum", "adam"]
    for name, history in e.histories.items():
        assert [float(v) for v in history.params[0]] == [-1.5, 1.0], name
        assert same_run(history, alone(name, lrs[name])), name
        assert history.lr == lrs[name]
    # the parameters (and the replayed graph) end at the first optimizer's last values
    assert [float(a.data), float(b.data)] == [float(v) for v in e.histories["sgd"].params[-1]]
    if not as_function:
        assert float(loss.data) == pytest.approx(e.histories["sgd"].losses[-1])
    assert e.descent is e.histories["sgd"] and e.losses == e.histories["sgd"].losses


def test_a_race_draws_one_picture_with_every_path_and_a_table_per_optimizer():
    a, b, loss = bowl()
    e = DescentExplorer.compare(loss, [a, b], optimizers=("sgd", "adam"), lr=0.05, steps=30, minima=[(1, -0.5)])
    fig = e.figure(12)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]     # under the axes, for both panels
    assert legend[:2] == ["sgd", "adam"] and "minimum" in legend
    trails = [line for line in fig.axes[1].get_lines() if line.get_label() in ("sgd", "adam")]
    assert [len(t.get_xdata()) for t in trails] == [13, 13]
    assert np.allclose(trails[1].get_xydata()[-1], [float(v) for v in e.histories["adam"].params[12]])
    e.slider.value = 12
    table = e.table.value
    assert table.count("<tr>") == 3 and "sgd" in table and "adam" in table and "∂L/∂a" in table
    assert format_number(e.histories["adam"].losses[12]) in table
    assert "sgd" in e.label.value and "adam" in e.label.value
    e.graph_of.value = "adam"
    assert shown_value(e.graph.value, "a") == f"data {format_number(e.histories['adam'].params[12][0], 9)}"


def test_a_diverging_optimizer_stops_with_the_reason_while_the_others_go_on():
    a, b, loss = bowl()
    e = DescentExplorer.compare(loss, [a, b], optimizers=["sgd", "adam"], lr={"sgd": 1.0, "adam": 0.05}, steps=200)
    sgd, adam = e.histories["sgd"], e.histories["adam"]
    assert sgd.stopped is not None and "smaller learning rate" in sgd.stopped
    assert adam.stopped is None and len(adam) == 201 and len(sgd) < 200
    assert "sgd stopped" in e.status.value and "smaller learning rate" in e.status.value
    e.slider.value = 200
    assert e.slider.max == 200 and f"{sgd.stopped_at} (stopped)" in e.table.value
    legend = [t.get_text() for t in e.figure(200).legends[0].get_texts()]
    assert f"sgd (stopped at {sgd.stopped_at})" in legend
    assert np.isfinite(a.data) and np.isfinite(b.data)


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(optimizers=["sgd", "rmsprop"]), ValueError, "unknown optimizer 'rmsprop'; choose one of sgd, momentum, adam"),
    (dict(optimizers=["adam", "sgd", "Adam"]), ValueError, "'Adam' is listed twice"),
    (dict(optimizers=[]), ValueError, "optimizers is empty"),
    (dict(optimizers=["sgd", 3]), TypeError, "got int"),
    (dict(optimizers=["sgd", "adam"], lr={"sgd": 0.1}), ValueError, "no learning rate for 'adam'"),
    (dict(optimizers=["sgd", "adam"], lr={"sgd": 0.1, "adam": 0.1, "nag": 1}), ValueError, "'nag'"),
    (dict(optimizers=["sgd", "adam"], momentum=0.5), TypeError, "takes the option momentum="),
])
def test_race_bad_inputs(kwargs, error, pattern):
    a, b, loss = bowl()
    with pytest.raises(error, match=pattern):
        DescentExplorer(loss, [a, b], steps=5, **kwargs)
    assert [float(a.data), float(b.data)] == [-1.5, 1.0]


def test_race_options_go_to_the_optimizers_that_take_them():
    a, b, loss = bowl()
    e = DescentExplorer.compare(loss, [a, b], lr=0.02, steps=10, momentum=0.5, betas=(0.8, 0.99))
    assert e.histories["momentum"].optimizer.momentum == 0.5
    assert e.histories["adam"].optimizer.betas == (0.8, 0.99)
    assert same_run(e.histories["momentum"], alone("momentum", 0.02, steps=10, momentum=0.5))


def test_a_landscape_races_from_its_start_with_its_minima_marked():
    from ad_magic.landscapes import himmelblau
    e = DescentExplorer.compare(himmelblau, optimizers=["sgd", "adam"], lr=0.01, steps=30)
    assert [p.name for p in e.params] == ["x", "y"] and e.minima == himmelblau.minima
    for history in e.histories.values():
        assert tuple(float(v) for v in history.params[0]) == himmelblau.start
    stars = [line for line in e.figure(5).axes[1].get_lines() if line.get_marker() == "*"]
    assert len(stars) == 4
    xs, ys = e.picture.plot.contour["xs"], e.picture.plot.contour["ys"]
    assert all(xs[0] < m[0] < xs[-1] and ys[0] < m[1] < ys[-1] for m in himmelblau.minima)


# --------------------------------------------------------------------------- live hyperparameters

def test_the_lr_slider_reruns_that_optimizer_with_the_new_rate_and_redraws():
    a, b, loss = bowl()
    e = DescentExplorer.compare(loss, [a, b], optimizers=["sgd", "adam"], lr=0.02, steps=40)
    adam_before = e.histories["adam"]
    e.slider.value = 20
    picture = e.image.value
    slider = e.hyperparameters["sgd"]["lr"]
    assert slider.value == 0.02 and slider.min < -1 < slider.max   # a log slider around 0.02
    slider.value = 0.05
    assert e.histories["sgd"].lr == 0.05
    assert same_run(e.histories["sgd"], alone("sgd", 0.05))
    assert e.histories["adam"] is adam_before                     # the other run is kept as it was
    assert e.image.value != picture and e.slider.value == 20
    sgd_trail = [line for line in e.figure(20).axes[1].get_lines() if line.get_label() == "sgd"][0]
    assert np.allclose(sgd_trail.get_xydata()[-1], [float(v) for v in alone("sgd", 0.05).params[20]])
    assert [float(a.data), float(b.data)] == [float(v) for v in e.histories["sgd"].params[-1]]


def test_momentum_and_adam_beta_sliders_rerun_with_the_new_betas():
    a, b, loss = bowl()
    e = DescentExplorer.compare(loss, [a, b], lr=0.02, steps=40)
    assert set(e.hyperparameters["sgd"]) == {"lr"}
    assert set(e.hyperparameters["momentum"]) == {"lr", "momentum"}
    assert set(e.hyperparameters["adam"]) == {"lr", "beta1", "beta2"}
    e.hyperparameters["momentum"]["momentum"].value = 0.5
    assert e.histories["momentum"].optimizer.momentum == 0.5
    assert same_run(e.histories["momentum"], alone("momentum", 0.02, momentum=0.5))
    e.hyperparameters["adam"]["beta1"].value = 0.7
    e.hyperparameters["adam"]["beta2"].value = 0.95
    assert e.histories["adam"].optimizer.betas == (0.7, 0.95)
    assert same_run(e.histories["adam"], alone("adam", 0.02, betas=(0.7, 0.95)))


def test_a_typed_start_reruns_every_optimizer_from_it_and_reset_goes_back():
    a, b, loss = bowl()
    e = DescentExplorer.compare(loss, [a, b], optimizers=["sgd", "momentum"], lr=0.02, steps=40)
    frame = e.picture.plot.contour["xs"].copy()
    assert [box.value for box in e.start_inputs] == [-1.5, 1.0]
    e.start_inputs[1].value = 0.5                  # inside the frame: the same landscape
    assert np.array_equal(e.picture.plot.contour["xs"], frame)
    for name, history in e.histories.items():
        assert [float(v) for v in history.params[0]] == [-1.5, 0.5]
        assert same_run(history, alone(name, 0.02, start=(-1.5, 0.5)))
    e.start_inputs[0].value = 9.0                  # outside: the landscape is redrawn around it
    xs = e.picture.plot.contour["xs"]
    assert xs[0] < 9.0 < xs[-1] and not 9.0 > xs[-1] - 0.05 * (xs[-1] - xs[0])
    e.hyperparameters["sgd"]["lr"].value = 0.05
    e.reset_button.click()
    assert [box.value for box in e.start_inputs] == [-1.5, 1.0]
    assert e.hyperparameters["sgd"]["lr"].value == 0.02
    for name, history in e.histories.items():
        assert same_run(history, alone(name, 0.02)), name


def test_a_single_optimizer_has_live_sliders_too():
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=20, optimizer="momentum", momentum=0.9)
    assert e.hyperparameters["momentum"]["momentum"].value == 0.9
    e.hyperparameters["momentum"]["momentum"].value = 0.3
    assert e.optimizer.momentum == 0.3 and e.descent.params[0][0] == 3.0
    e.start_inputs[0].value = 2.0
    assert float(e.history[0].values[0]) == 2.0
    assert "iteration 0 / 20" in e.label.value


def test_no_live_sliders_for_an_optimizer_instance_or_when_asked():
    x, loss_fn = quadratic()
    e = DescentExplorer(loss_fn, [x], steps=5, optimizer=Momentum([x], lr=0.05))
    assert e.hyperparameters == {} and e.reset_button is None
    x, loss_fn = quadratic()
    assert DescentExplorer(loss_fn, [x], steps=5, controls=False).hyperparameters == {}


# --------------------------------------------------------------------------- view= and the training view

def test_a_view_function_draws_each_iteration():
    x, loss_fn = quadratic()
    seen = []

    def view(record):
        seen.append(record.iteration)
        return f"<svg xmlns='http://www.w3.org/2000/svg'><text>x={float(record.values[0]):.3f}</text></svg>"
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=10, view=view)
    body = next(c for c in e.children if e.image in getattr(c, "children", ()))
    assert body.children.index(e.view_box) == body.children.index(e.image) + 1   # beside the loss
    e.slider.value = 4
    assert seen[-1] == 4 and f"x={float(e.history[4].values[0]):.3f}" in e.view_box.value


def test_a_view_that_raises_shows_its_error_and_the_explorer_keeps_working():
    x, loss_fn = quadratic()

    def view(record):
        if record.iteration == 3:
            raise ZeroDivisionError("no picture <here>")
        return None
    e = DescentExplorer(loss_fn, [x], lr=0.1, steps=10, view=view)
    e.slider.value = 3
    assert "ZeroDivisionError" in e.view_box.value and "no picture &lt;here&gt;" in e.view_box.value
    assert "iteration 3 / 10" in e.label.value and '<div class="ad-graph"' in e.graph.value
    e.slider.value = 4
    assert e.view_box.value == "" and "iteration 4 / 10" in e.label.value


def test_a_view_may_return_a_figure_png_bytes_or_text():
    from ad_magic.widgets.explorer import _picture_html
    from ad_magic.widgets.plots import figure_png, loss_curve
    fig = loss_curve([3.0, 2.0, 1.0])
    assert _picture_html(fig).startswith('<img src="data:image/png;base64,')
    assert _picture_html(figure_png(fig)).startswith('<img src="data:image/png;base64,')
    assert _picture_html("a < b") == "<pre>a &lt; b</pre>"
    with pytest.raises(TypeError, match="not a PNG"):
        _picture_html(b"GIF89a")
    with pytest.raises(TypeError, match="view must be a function"):
        DescentExplorer(lambda: Tensor(1.0) * Tensor(2.0), [Tensor(1.0)], view="fit")


def regression(n=24):
    from ad_magic.nn import MLP, mse_loss
    X = np.linspace(-2, 2, n).reshape(-1, 1)
    Y = np.sin(X)
    net = MLP([1, 8, 1], seed=0)
    return net, X, Y, mse_loss(net(Tensor(X, requires_grad=False)), Tensor(Y, requires_grad=False))


def test_the_training_view_draws_the_fit_at_each_iteration_without_pyplot():
    net, X, Y, loss = regression()
    e = DescentExplorer(loss, net, data=(X, Y), optimizer="adam", lr=0.05, steps=30)
    assert e.params == net.parameters() and e.view_fn.kind == "fit"
    assert e.view_box.value.startswith('<img src="data:image/png;base64,')
    e.slider.value = 30
    assert e.view_box.value.startswith('<img src="data:image/png;base64,')
    # the curve drawn at iteration k is the model with iteration k's parameters
    fig = e.view_fn.figure(e.history[7])
    curve = [line for line in fig.axes[0].get_lines() if line.get_label() == "model"][0]
    saved = [p.data for p in net.parameters()]
    for p, v in zip(net.parameters(), e.history[7].values):
        p.data = v
    expected = net(Tensor(curve.get_xdata().reshape(-1, 1), requires_grad=False)).data.reshape(-1)
    for p, v in zip(net.parameters(), saved):
        p.data = v
    assert np.allclose(curve.get_ydata(), expected)
    assert "iteration 7" in fig.axes[0].get_title()
    assert all(np.array_equal(p.data, v) for p, v in zip(net.parameters(), e.history[-1].values))
    assert plt.get_fignums() == []


def test_the_training_view_draws_a_decision_surface_for_two_inputs():
    from ad_magic.nn import MLP, mse_loss
    from ad_magic.widgets.training import TrainingView
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    Y = (X[:, :1] * X[:, 1:] > 0).astype(float)
    net = MLP([2, 8, 1], seed=1)
    loss = mse_loss(net(Tensor(X, requires_grad=False)), Tensor(Y, requires_grad=False))
    e = DescentExplorer(loss, net, data=(X, Y), optimizer="adam", lr=0.05, steps=10)
    assert e.view_fn.kind == "surface" and e.view_box.value.startswith("<img")
    assert any(isinstance(c, ContourSet) for c in e.view_fn.figure(e.history[5]).axes[0].collections)
    with pytest.raises(ValueError, match="1-D inputs .* or 2-D inputs"):
        TrainingView(net, np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="one target per example"):
        TrainingView(net, np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="pass the model"):
        DescentExplorer(loss, net.parameters(), data=(X, Y))
    assert plt.get_fignums() == []


# --------------------------------------------------------------------------- %%autodiff --optimizer a,b,c

@pytest.fixture
def ip(magic_shell):
    return magic_shell("from ad_magic import Tensor\nfrom ad_magic.landscapes import rosenbrock")


def run_cell(ip, source):
    from IPython.utils.capture import capture_output
    with capture_output() as captured:
        result = ip.run_cell(source)
    texts = "\n".join(o.data.get("text/plain", "") for o in captured.outputs)
    return result, texts


RACE_CELL = "%%autodiff --descent --optimizer {} --lr {} --steps 40\nx = Tensor(-1.5)\ny = Tensor(2.0)\n" \
            "loss = rosenbrock(x, y)\n"


def test_the_magic_races_a_comma_list_of_optimizers(ip):
    result, texts = run_cell(ip, RACE_CELL.format("sgd,momentum,adam", 0.001))
    assert result.success, result.error_in_exec
    e = ip.user_ns["_autodiff"]
    assert isinstance(e, DescentExplorer) and list(e.histories) == ["sgd", "momentum", "adam"]
    for name, history in e.histories.items():
        assert [float(v) for v in history.params[0]] == [-1.5, 2.0] and history.lr == 0.001
        assert len(history) == 41, name
    assert "Race of sgd, momentum, adam" in texts and "adam: loss" in texts
    x, y = ip.user_ns["x"], ip.user_ns["y"]
    assert [float(x.data), float(y.data)] == [float(v) for v in e.histories["sgd"].params[-1]]
    assert set(e.hyperparameters) == {"sgd", "momentum", "adam"}


def test_a_race_in_the_magic_goes_on_when_one_optimizer_diverges(ip):
    result, texts = run_cell(ip, RACE_CELL.format("adam,sgd", 0.01))
    assert result.success, result.error_in_exec
    e = ip.user_ns["_autodiff"]
    assert e.histories["sgd"].stopped is not None and e.histories["adam"].stopped is None
    assert "sgd: stopped at iteration" in texts and "smaller learning rate" in texts
    assert np.isfinite(ip.user_ns["x"].data)


@pytest.mark.parametrize("value, message", [
    ("sgd,rmsprop", "--optimizer: unknown optimizer 'rmsprop'; choose one of sgd, momentum, adam, newton."),
    ("adam,sgd,adam", "--optimizer: optimizer 'adam' is listed twice; list each optimizer once."),
    ("sgd,,adam", "has an empty name"),
])
def test_the_magics_optimizer_list_refuses_bad_names(ip, value, message):
    from IPython.core.error import UsageError
    with pytest.raises(UsageError, match=re.escape(message)):
        ip.run_cell_magic("autodiff", f"--descent --optimizer {value}", "x = Tensor(1.0)\nloss = x * x\n")
    assert ip.user_ns.get("x") is None


def test_a_path_leaving_the_frame_redraws_the_landscape_around_it():
    a, b, loss = bowl()
    e = DescentExplorer.compare(loss, [a, b], optimizers=["sgd", "adam"], lr=0.001, steps=40)
    xs = e.picture.plot.contour["xs"]
    assert xs[-1] < 0                             # tiny steps: the frame hugs the start
    e.hyperparameters["sgd"]["lr"].value = 0.04   # now sgd reaches the minimum at a = 1
    xs = e.picture.plot.contour["xs"]
    assert xs[0] < -1.5 < 1.0 < xs[-1]
    path = np.array([[float(v) for v in p] for p in e.histories["sgd"].params])
    assert (path[:, 0] >= xs[0]).all() and (path[:, 0] <= xs[-1]).all()


def test_a_landscapes_output_marks_its_minima_in_the_magic_too(ip):
    from ad_magic.landscapes import himmelblau, landscape_of
    x, y = himmelblau.tensors()
    assert landscape_of(himmelblau(x, y)) is himmelblau and landscape_of(x * y) is None
    result, _ = run_cell(ip, RACE_CELL.format("sgd,adam", 0.001))
    assert result.success
    e = ip.user_ns["_autodiff"]
    assert e.minima == ((1.0, 1.0),)
    stars = [line for line in e.figure(3).axes[1].get_lines() if line.get_label() == "minimum"]
    assert stars and tuple(stars[0].get_xydata()[0]) == (1.0, 1.0)


def test_a_rerun_that_fails_says_so_and_keeps_the_last_good_runs():
    x = Tensor(1.0, name="x")

    def loss_fn():
        if x.item() > 5:
            raise RuntimeError("too far <out>")
        return (x - 2.0) ** 2
    e = DescentExplorer.compare(loss_fn, [x], optimizers=["sgd", "momentum"], lr=0.1, steps=10)
    kept = dict(e.histories)
    e.slider.value = 5
    e.start_inputs[0].value = 6.0
    assert "sgd not re-run: RuntimeError: too far &lt;out&gt;" in e.status.value
    assert e.histories == kept and "iteration 5 / 10" in e.label.value
    assert shown_value(e.svg(5), "x") == f"data {format_number(kept['sgd'].params[5][0], 9)}"
    e.start_inputs[0].value = 3.0
    assert e.status.value == "" and float(e.histories["momentum"].params[0][0]) == 3.0


@pytest.mark.parametrize("name", ["rosenbrock", "beale", "himmelblau", "ill_conditioned", "saddle"])
def test_every_landscape_race_frames_its_start_inside_and_its_minima(name):
    from ad_magic.landscapes import LANDSCAPES
    landscape = LANDSCAPES[name]
    e = DescentExplorer.compare(landscape, lr=landscape.lr, steps=30, controls=False)
    xs, ys = e.picture.plot.contour["xs"], e.picture.plot.contour["ys"]
    for axis, start in ((xs, landscape.start[0]), (ys, landscape.start[1])):
        margin = 0.05 * (axis[-1] - axis[0])
        assert axis[0] + margin <= start <= axis[-1] - margin
    assert all(xs[0] <= mx <= xs[-1] and ys[0] <= my <= ys[-1] for mx, my in landscape.minima)
    assert e.png(30).startswith(b"\x89PNG")


def test_a_static_race_in_the_magic_shows_pictures(ip):
    result, texts = run_cell(ip, RACE_CELL.format("momentum,adam", 0.001).replace("--steps 40", "--steps 5 --static"))
    assert result.success and "DescentExplorer(" not in texts     # no widget shown
    assert "<loss curve, iteration 5>" in texts and "Race of momentum, adam" in texts


def test_the_training_view_follows_a_live_rerun():
    net, X, Y, loss = regression()
    e = DescentExplorer(loss, net, data=(X, Y), optimizer="adam", lr=0.05, steps=20)
    e.slider.value = 20
    before = e.view_box.value
    e.hyperparameters["adam"]["lr"].value = 0.005
    assert e.descent.lr == 0.005 and e.view_box.value != before
    fig = e.view_fn.figure(e.history[20])
    assert "iteration 20" in fig.axes[0].get_title()
    assert format_number(e.history[20].loss) in fig.axes[0].get_title()
