"""The DescentExplorer's parts, each through its own interface: sampling the loss
(landscape_grid), running the descents (DescentRuns), the graphs (GraphLayouts), the
picture (DescentPicture) and the controls (HyperparameterControls); and what a run
(race.Run) holds."""
from __future__ import annotations

import ast
import importlib.util
import math

import ipywidgets as widgets
import numpy as np
import pytest

from ad_magic import Tensor, optim
from ad_magic.engine import landscape_grid as grid
from ad_magic.widgets.descent_picture import DescentPicture
from ad_magic.widgets.descent_runs import DescentRuns
from ad_magic.widgets.graph_layouts import GraphLayouts
from ad_magic.widgets.hyperparameters import MAX_START_INPUTS, HyperparameterControls
from ad_magic.widgets.race import Run

UPPER = {"ipywidgets", "IPython", "matplotlib", "anywidget", "graphviz"}


# --------------------------------------------------------------------------- imports

def module_level(tree):
    """The nodes of a module run when it is imported (not inside functions)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def imported(module: str, seen=None) -> set:
    """The top-level packages ``module`` imports when it is imported, following
    ad_magic's own modules."""
    seen = set() if seen is None else seen
    if module in seen:
        return set()
    seen.add(module)
    spec = importlib.util.find_spec(module)
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    package = module.rpartition(".")[0] if not spec.submodule_search_locations else module
    found = set()
    for node in module_level(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
                names = [target] if node.module else [f"{base}.{alias.name}" for alias in node.names]
                for name in names:
                    if importlib.util.find_spec(name) is not None:
                        found |= imported(name, seen)
            else:
                found.add(node.module.split(".")[0])
    return found


def test_sampling_imports_numpy_only_and_running_imports_no_widget_or_plot():
    assert imported("ad_magic.engine.landscape_grid") <= {"__future__", "math", "numpy"}
    assert not imported("ad_magic.widgets.descent_runs") & UPPER
    assert not imported("ad_magic.widgets.race") & UPPER
    assert "ipywidgets" not in imported("ad_magic.widgets.descent_picture")


def test_the_import_walk_sees_what_a_module_imports():    # so the test above can fail
    assert {"ipywidgets", "matplotlib"} <= imported("ad_magic.widgets.explorer")


# --------------------------------------------------------------------------- landscape_grid

def bowl_at(values):
    x, y = (float(v) for v in values)
    return (x - 1.0) ** 2 + 3.0 * (y + 2.0) ** 2


def test_a_frame_holds_the_start_the_minima_and_the_paths_but_not_a_divergence():
    path = (np.array([[0.0, 0.0], [0.5, -1.0], [0.9, -1.9]]), np.array([13.0, 3.25, 0.04]))
    blown = (np.array([[0.0, 0.0], [50.0, 80.0]]), np.array([13.0, 1e9]))
    bounds = grid.frame([0.0, 0.0], [path, blown], minima=[(1.0, -2.0)])
    (x0, x1), (y0, y1) = bounds
    assert x0 < 0.0 < 1.0 < x1 and y0 < -2.0 < 0.0 < y1
    assert x1 < 50.0 and y1 < 80.0                    # the diverged iterate is left out
    assert grid.frame_holds(bounds, [0.0, 0.0], [path, blown])
    assert not grid.frame_holds(bounds, [x1, 0.0], [path])                  # the start on the edge
    far = (np.array([[0.0, 0.0], [5.0, 0.0]]), np.array([13.0, 40.0]))
    assert not grid.frame_holds(bounds, [0.0, 0.0], [far])                  # a path out of it


def test_a_frame_of_one_point_still_has_room():
    (low, high), = grid.frame([2.0], [(np.array([[2.0]]), np.array([1.0]))])
    assert low < 2.0 < high


def test_an_elementwise_loss_is_sampled_in_one_call_and_checked():
    calls = []

    def on_grid(grids):
        calls.append(grids[0].shape)
        return (grids[0] - 1.0) ** 2 + 3.0 * (grids[1] + 2.0) ** 2
    (xs, ys), zs = grid.sample(((-1.0, 2.0), (-3.0, 1.0)), bowl_at, on_grid)
    assert calls == [(grid.CONTOUR_POINTS,) * 2] and zs.shape == (grid.CONTOUR_POINTS,) * 2
    assert xs[0] == -1.0 and xs[-1] == 2.0 and ys[0] == -3.0 and ys[-1] == 1.0
    assert zs[7, 30] == pytest.approx(bowl_at((xs[30], ys[7])))


@pytest.mark.parametrize("on_grid", [
    lambda grids: np.zeros_like(grids[0]),              # not elementwise: the probes disagree
    lambda grids: np.zeros(3),                          # the wrong shape
    lambda grids: 1 / 0,                                # raises
    None,                                               # a replayed graph: point by point
])
def test_a_loss_that_is_not_elementwise_is_sampled_point_by_point(on_grid):
    (xs, ys), zs = grid.sample(((-1.0, 2.0), (-3.0, 1.0)), bowl_at, on_grid)
    n = grid.CONTOUR_POINTS_POINTWISE
    assert zs.shape == (n, n) and len(xs) == len(ys) == n
    assert zs[3, 20] == pytest.approx(bowl_at((xs[20], ys[3])))


def test_a_slice_and_holes_where_the_loss_fails():
    def at(values):
        x = float(values[0])
        return math.nan if x < 0 else math.sqrt(x)
    (xs,), ys = grid.sample(((-1.0, 4.0),), at)
    assert len(xs) == grid.SLICE_POINTS // 2
    assert np.isnan(ys[xs < 0]).all() and np.allclose(ys[xs >= 0], np.sqrt(xs[xs >= 0]))
    with pytest.raises(ValueError, match="one or two parameters, not 3"):
        grid.grid_size(3, pointwise=True)


# --------------------------------------------------------------------------- DescentRuns

def bowl():
    a, b = Tensor(-1.5, name="a"), Tensor(1.0, name="b")
    d = a - 1.0
    return a, b, d * d + 10.0 * (b + 0.5) ** 2


def graph_state(loss):
    from ad_magic import topological_order
    return [(np.array(t.data).tolist(), None if t.grad is None else np.array(t.grad).tolist())
            for t in topological_order(loss)]


def test_descent_runs_use_descends_own_checks_once(monkeypatch):
    checked, optimizers = [], []
    real, real_optimizer = optim.check_descent, optim.check_optimizer

    def spy(*args, **kwargs):
        checked.append(args[2])
        return real(*args, **kwargs)

    def spy_optimizer(spec, *args, **kwargs):
        optimizers.append(spec)
        return real_optimizer(spec, *args, **kwargs)
    monkeypatch.setattr(optim, "check_descent", spy)
    monkeypatch.setattr(optim, "check_optimizer", spy_optimizer)
    a, b, loss = bowl()
    runs = DescentRuns(loss, [a, b], optimizers=["sgd", "adam"], lr=0.01, steps=3)
    assert checked == ["sgd"] and optimizers == ["adam"]   # the loss and params once, each optimizer once
    runs.run()
    assert checked == ["sgd"]                    # descend's loop runs without checking them again
    assert optimizers[1:] == ["sgd", "adam"]     # each run's optimizer made with its live lr and options


@pytest.mark.parametrize("bad", [dict(steps=0), dict(lr=-1.0), dict(optimizer="rmsprop"),
                                 dict(params=[]), dict(loss=42)])
def test_a_bad_input_is_descends_own_sentence_and_changes_nothing(bad):
    a, b, loss = bowl()
    args = dict(loss=loss, params=[a, b], optimizer="sgd", lr=0.1, steps=5)
    args.update(bad)
    with pytest.raises((ValueError, TypeError)) as expected:
        optim.descend(**args)
    before = graph_state(loss)
    with pytest.raises(type(expected.value)) as got:
        DescentRuns(args["loss"], args["params"], optimizer=args["optimizer"], lr=args["lr"], steps=args["steps"])
    assert str(got.value) == str(expected.value)
    assert graph_state(loss) == before


def test_after_the_runs_and_after_sampling_the_graph_is_at_the_first_runs_last_iteration():
    a, b, loss = bowl()
    runs = DescentRuns(loss, [a, b], optimizers=["momentum", "sgd"], lr=0.02, steps=6)
    runs.run()
    first = runs.runs[0].history
    assert [float(a.data), float(b.data)] == [float(v) for v in first.params[-1]]
    assert [float(a.grad), float(b.grad)] == [float(g) for g in first.grads[-1]]
    settled = graph_state(loss)
    assert float(loss.data) == first.losses[-1]
    (xs, ys), zs = runs.sample(((-2.0, 2.0), (-1.0, 1.5)))
    assert zs[4, 9] == pytest.approx((xs[9] - 1.0) ** 2 + 10.0 * (ys[4] + 0.5) ** 2)
    assert graph_state(loss) == settled          # sampling moved the parameters, settle put them back


def test_sampling_a_loss_function_tries_whole_grids_and_leaves_the_grads():
    a, b = Tensor(-1.5), Tensor(1.0)
    calls = []

    def loss_fn():
        calls.append(np.shape(a.data))
        return (a - 1.0) ** 2 + 10.0 * (b + 0.5) ** 2
    runs = DescentRuns(loss_fn, [a, b], lr=0.02, steps=4)
    runs.run()
    grads = [float(a.grad), float(b.grad)]
    calls.clear()
    (xs, ys), zs = runs.sample(((-2.0, 2.0), (-1.0, 1.5)))
    assert calls[0] == (grid.CONTOUR_POINTS,) * 2 and len(calls) == 4      # one grid call, three probes
    assert [float(a.grad), float(b.grad)] == grads and float(a.data) == float(runs.runs[0].history.params[-1][0])


def test_an_error_inside_undo_on_error_puts_every_tensor_of_the_graph_back():
    a, b, loss = bowl()
    loss.backward()
    before = graph_state(loss)
    runs = DescentRuns(loss, [a, b], lr=0.05, steps=5)
    with pytest.raises(KeyboardInterrupt):
        with runs.undo_on_error():
            runs.run()
            assert graph_state(loss) != before
            raise KeyboardInterrupt
    assert graph_state(loss) == before            # data and grads, intermediate nodes too


def test_a_run_that_raises_puts_everything_back_and_a_rerun_that_raises_says_so():
    a, b = Tensor(-1.5), Tensor(1.0)
    fail = [False]

    def loss_fn():
        if fail[0] and float(a.data) > 5:
            raise RuntimeError("too far")
        return (a - 1.0) ** 2 + (b + 0.5) ** 2
    runs = DescentRuns(loss_fn, [a, b], optimizers=["sgd", "adam"], lr=0.1, steps=5)
    runs.run()
    kept = runs.runs[0].history
    fail[0] = True
    runs.set_start([6.0, 1.0])
    assert runs.rerun() == "sgd not re-run: RuntimeError: too far"
    assert runs.runs[0].history is kept and float(a.data) == float(kept.params[-1][0])
    runs.reset()
    assert runs.rerun() is None and float(runs.runs[1].history.params[0][0]) == -1.5


def test_changed_hyperparameters_are_the_next_runs():
    a, b, loss = bowl()
    runs = DescentRuns(loss, [a, b], optimizers=["sgd", "momentum"], lr=0.02, steps=5)
    runs.run()
    run = runs.set_hyperparameters("momentum", 0.01, {"momentum": 0.5})
    assert run is runs.runs[1]
    assert runs.rerun([run]) is None
    assert run.history.optimizer.momentum == 0.5 and run.history.lr == 0.01
    runs.reset()
    assert run.lr == 0.02 and run.opts == {}
    with pytest.raises(KeyError, match="no optimizer 'adam' in this explorer; it has sgd, momentum"):
        runs.run_named("adam")
    with pytest.raises(ValueError, match="needs 2 values"):
        runs.set_start([1.0])


def test_a_run_holds_data_not_widgets():
    from ad_magic.widgets.explorer import DescentExplorer
    a, b, loss = bowl()
    e = DescentExplorer.compare(loss, [a, b], optimizers=["sgd", "adam"], lr=0.02, steps=4)
    assert e.hyperparameters["adam"]["beta1"] is e.controls.sliders["adam"]["beta1"]

    def widgets_in(value):
        if isinstance(value, widgets.Widget):
            return True
        if isinstance(value, dict):
            return any(widgets_in(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return any(widgets_in(v) for v in value)
        return False
    for run in e.runs:
        assert isinstance(run, Run) and not any(widgets_in(v) for v in vars(run).values())
    assert repr(e.runs[0]) == "Run('sgd', lr=0.02, 4 steps)"


# --------------------------------------------------------------------------- GraphLayouts

def test_graph_layouts_record_one_structure_per_shape_of_graph():
    x = Tensor(2.0, name="x")
    layouts = GraphLayouts({}, max_nodes=50)
    square = x * x
    structure, values, grads = layouts.record(0, square)
    assert structure == 0 and layouts.count == 1 and layouts.view(0) is layouts.first
    assert any(np.array_equal(v, 4.0) for v in values)
    assert layouts.record(1, square)[0] == 0                      # the same tensor: the same graph
    assert layouts.record(2, x * x)[0] == 0                       # the same shape of graph
    other = layouts.record(3, -x)
    assert other[0] == 1 and layouts.count == 2
    assert "<svg" in layouts.svg(other) and layouts.view(1) is not layouts.first


# --------------------------------------------------------------------------- DescentPicture

def histories_of(loss, params, names):
    runs = []
    for name in names:
        run = Run(name, name, 0.05, {})
        start = [np.array(p.data) for p in params]
        run.history = optim.descend(loss, params, name, lr=0.05, steps=8)
        for p, v in zip(params, start):
            p.data = v
        runs.append(run)
    return runs


def test_the_picture_samples_its_landscape_once_and_again_only_when_the_paths_leave_it():
    a, b, loss = bowl()
    runs = histories_of(loss, [a, b], ["sgd", "adam"])
    asked = []

    def sample(bounds):
        asked.append(bounds)
        return grid.sample(bounds, bowl_at_ab)
    start = [np.array(-1.5), np.array(1.0)]
    picture = DescentPicture(runs, start, names=["a", "b"], sample=sample, minima=[(1.0, -0.5)])
    assert len(asked) == 1 and picture.bounds == asked[0]
    (x0, x1), (y0, y1) = picture.bounds
    assert x0 < -1.5 < 1.0 < x1 and y0 < -0.5 < 1.0 < y1
    assert picture.plot.contour["zs"].shape == (grid.CONTOUR_POINTS_POINTWISE,) * 2
    assert picture.png(3).startswith(b"\x89PNG") and len(picture.figure(3).axes) == 2
    picture.update(runs, start)                                     # the same paths: the same landscape
    assert len(asked) == 1
    picture.update(runs, [np.array(30.0), np.array(1.0)])           # a start far away: a new one
    assert len(asked) == 2 and picture.bounds[0][1] > 30.0


def bowl_at_ab(values):
    a, b = (float(v) for v in values)
    return (a - 1.0) ** 2 + 10.0 * (b + 0.5) ** 2


def test_the_picture_of_a_vector_parameter_is_the_loss_curve_only():
    w = Tensor([1.0, -1.0])
    runs = histories_of((w * w).sum(), [w], ["sgd"])

    def sample(bounds):
        raise AssertionError("no landscape for a vector parameter")
    picture = DescentPicture(runs, [np.array([1.0, -1.0])], names=["w"], sample=sample)
    assert picture.bounds is None and not picture.landscape and len(picture.figure(0).axes) == 1


# --------------------------------------------------------------------------- HyperparameterControls

def make_controls(start=(1.0, 2.0)):
    x = Tensor(0.0)
    said = []
    controls = HyperparameterControls(
        [("sgd", optim.SGD([x], lr=0.02)), ("momentum", optim.Momentum([x], lr=0.1, momentum=0.8)),
         ("adam", optim.Adam([x], lr=0.001, betas=(0.9, 0.99)))],
        start, ["a", "b"][:len(start)] if start else (),
        on_hyperparameters=lambda *args: said.append(("hyper", *args)),
        on_start=lambda values: said.append(("start", values)),
        on_reset=lambda: said.append(("reset",)),
        on_problem=lambda text: said.append(("problem", text)))
    return controls, said


def test_the_controls_say_what_moved_through_their_callbacks():
    controls, said = make_controls()
    assert isinstance(controls, widgets.VBox) and "ad-descent-controls" in controls._dom_classes
    assert {k: set(v) for k, v in controls.sliders.items()} == {
        "sgd": {"lr"}, "momentum": {"lr", "momentum"}, "adam": {"lr", "beta1", "beta2"}}
    assert controls.sliders["momentum"]["momentum"].value == 0.8
    controls.sliders["sgd"]["lr"].value = 0.05
    controls.sliders["momentum"]["momentum"].value = 0.5
    controls.sliders["adam"]["beta2"].value = 0.95
    assert said == [("hyper", "sgd", 0.05, {}), ("hyper", "momentum", 0.1, {"momentum": 0.5}),
                    ("hyper", "adam", pytest.approx(0.001), {"betas": (0.9, 0.95)})]
    said.clear()
    controls.start_inputs[1].value = -3.0
    assert said == [("start", [1.0, -3.0])]
    said.clear()
    controls.reset_button.click()
    assert said == [("reset",)]


def test_a_start_that_is_not_finite_is_a_problem_not_a_run():
    controls, said = make_controls()
    controls.start_inputs[0].value = float("nan")
    assert said == [("problem", "The start must be a finite number, got nan.")]


def test_restore_puts_every_control_back_and_calls_nothing():
    controls, said = make_controls()
    controls.sliders["sgd"]["lr"].value = 0.3
    controls.start_inputs[0].value = 7.0
    said.clear()
    controls.restore()
    assert said == [] and controls.sliders["sgd"]["lr"].value == 0.02 and controls.start == [1.0, 2.0]
    assert controls.values("adam") == (pytest.approx(0.001), {"betas": (0.9, 0.99)})


@pytest.mark.parametrize("start", [None, tuple(range(MAX_START_INPUTS + 1))])
def test_no_start_boxes_without_a_start_or_for_many_parameters(start):
    x = Tensor(0.0)
    controls = HyperparameterControls([("sgd", optim.SGD([x], lr=0.1))], start,
                                      [f"p{i}" for i in range(len(start or ()))])
    assert controls.start_inputs == [] and controls.start == [] and controls.reset_button is not None
