"""The descent and training plots: plain matplotlib Figures, no pyplot state, robust to
diverging runs; races drawn one colour per run, contours log-spaced and labelled."""
from __future__ import annotations

import gc

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from ad_magic.widgets.plots import (
    LANDSCAPE,
    MIN_CONTRAST,
    PATH,
    RUN_COLOURS,
    DescentPlot,
    FitPlot,
    PlotRun,
    SurfacePlot,
    contour_levels,
    contrast,
    figure_png,
    loss_contour,
    loss_curve,
    loss_slice,
    outline,
)

PNG = b"\x89PNG\r\n\x1a\n"


def one_param_run(n=20, lr=0.1):
    x = [3.0]
    for _ in range(n):
        x.append(x[-1] - lr * 2 * (x[-1] - 1))
    x = np.array(x)
    return x, (x - 1) ** 2, 2 * (x - 1)


def test_loss_curve_marks_the_current_iteration():
    losses = [4.0, 2.0, 1.0, 0.5, 0.25]
    fig = loss_curve(losses, 2)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    dots = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    assert [tuple(map(float, d.get_xydata()[0])) for d in dots if len(d.get_xdata())] == [(2.0, 1.0)]
    assert plt.get_fignums() == []


def test_loss_curve_survives_non_finite_and_huge_losses():
    fig = loss_curve([5.0, 1e50, 1e200, float("inf")], 3, stopped_at=3)
    assert figure_png(fig).startswith(PNG)
    fig = loss_curve([float("nan")], 0)
    assert figure_png(fig).startswith(PNG)


def test_loss_slice_draws_curve_path_and_tangent():
    path, losses, slopes = one_param_run()
    xs = np.linspace(0, 4, 50)
    fig = loss_slice(xs, (xs - 1) ** 2, path_x=path, path_loss=losses, slopes=slopes, k=4, name="w")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) >= {"loss(w)", "path", "tangent (slope = grad)"}
    assert len(lines["path"].get_xdata()) == 5
    tx, ty = lines["tangent (slope = grad)"].get_data()
    assert (ty[1] - ty[0]) / (tx[1] - tx[0]) == pytest.approx(slopes[4])
    assert ax.get_xlabel() == "w"


def test_loss_contour_draws_contours_and_path():
    xs, ys = np.linspace(-2, 2, 21), np.linspace(-1, 3, 25)
    gx, gy = np.meshgrid(xs, ys)
    zs = gx ** 2 + (gy - 1) ** 2
    path = np.array([[1.5, 2.5], [1.0, 2.0], [0.5, 1.5], [0.2, 1.2]])
    fig = loss_contour(xs, ys, zs, path=path, k=2, names=("a", "b"))
    ax = fig.axes[0]
    assert any(isinstance(c, ContourSet) for c in ax.collections)
    trail = [line for line in ax.get_lines() if len(line.get_xdata()) == 3]
    assert trail and np.allclose(trail[0].get_xydata(), path[:3])


def test_descent_plot_panels_and_png_cache():
    path, losses, slopes = one_param_run()
    xs = np.linspace(0, 4, 50)
    run = PlotRun(losses, path=path.reshape(-1, 1), slopes=slopes)
    plot = DescentPlot([run], slice=dict(xs=xs, ys=(xs - 1) ** 2, name="x"))
    assert plot.panels == 2 and len(plot.figure(3).axes) == 2
    first = plot.png(3)
    assert first.startswith(PNG)
    assert plot.png(3) is first               # cached
    assert plot.png(4) != first               # the marker moved
    assert DescentPlot(losses).panels == 1


def test_blitted_png_matches_a_fresh_drawing():
    """The fast path (cached background + moving artists) shows the same picture as a
    figure drawn from scratch for that iteration."""
    path, losses, slopes = one_param_run()
    xs = np.linspace(0, 4, 50)
    run = PlotRun(losses, path=path.reshape(-1, 1), slopes=slopes)
    plot = DescentPlot([run], slice=dict(xs=xs, ys=(xs - 1) ** 2, name="x"))
    plot.png(0)
    import io

    from PIL import Image
    fast = np.asarray(Image.open(io.BytesIO(plot.png(7))).convert("RGB"), dtype=int)
    fig = plot.figure(7)
    slow = np.asarray(Image.open(io.BytesIO(figure_png(fig))).convert("RGB"), dtype=int)
    assert fast.shape == slow.shape
    assert np.mean(np.abs(fast - slow) > 40) < 0.002


def test_no_pyplot_figures_and_no_growth():
    path, losses, slopes = one_param_run()
    plot = DescentPlot(losses)

    def live():
        gc.collect()
        return sum(isinstance(o, Figure) for o in gc.get_objects())
    plot.png(0)
    start = live()
    for k in range(len(losses)):
        plot.png(k)
        plot.figure(k)
    assert live() <= start
    assert plt.get_fignums() == []


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(-1e6, 1e6)), min_size=1, max_size=30),
       st.data())
def test_any_losses_draw(losses, data):
    k = data.draw(st.integers(0, len(losses) - 1))
    plot = DescentPlot([PlotRun(losses, stopped_at=len(losses) - 1)])
    assert plot.png(k).startswith(PNG)


# --------------------------------------------------------------------------- races

def race_runs(stop_second=False):
    """Three runs on the bowl (x - 1)² + 10 (y + 0.5)², as three optimizers would leave them."""
    runs = []
    for i, rate in enumerate((0.02, 0.05, 0.09)):
        p = [np.array([-1.5, 1.0])]
        for _ in range(30):
            x, y = p[-1]
            p.append(p[-1] - rate * np.array([2 * (x - 1), 20 * (y + 0.5)]))
        path = np.array(p)
        losses = (path[:, 0] - 1) ** 2 + 10 * (path[:, 1] + 0.5) ** 2
        stopped = None
        if stop_second and i == 1:
            path, losses, stopped = path[:8], np.append(losses[:7], np.inf), 7
        runs.append(PlotRun(losses, name=f"run{i}", path=path, stopped_at=stopped, colour=RUN_COLOURS[i]))
    return runs


def bowl_grid():
    xs, ys = np.linspace(-2, 2, 41), np.linspace(-1.5, 1.5, 41)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, (gx - 1) ** 2 + 10 * (gy + 0.5) ** 2


def test_a_race_draws_one_coloured_path_and_loss_curve_per_run_with_a_legend():
    xs, ys, zs = bowl_grid()
    plot = DescentPlot(race_runs(), contour=dict(xs=xs, ys=ys, zs=zs, names=("x", "y")), minima=[(1.0, -0.5)])
    fig = plot.figure(10)
    loss_ax, contour_ax = fig.axes
    # One legend for both panels, under them: it covers no path, no minimum, no curve's end.
    assert contour_ax.get_legend() is None and loss_ax.get_legend() is None
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["run0", "run1", "run2", "start", "minimum"]
    trails = [line for line in contour_ax.get_lines() if line.get_label() in ("run0", "run1", "run2")]
    assert [line.get_color() for line in trails] == list(RUN_COLOURS[:3])
    assert all(len(line.get_xdata()) == 11 for line in trails)
    star = [line for line in contour_ax.get_lines() if line.get_label() == "minimum"]
    assert star and tuple(star[0].get_xydata()[0]) == (1.0, -0.5)
    assert plt.get_fignums() == []


def test_a_stopped_run_ends_while_the_others_go_on():
    xs, ys, zs = bowl_grid()
    runs = race_runs(stop_second=True)
    plot = DescentPlot(runs, contour=dict(xs=xs, ys=ys, zs=zs, names=("x", "y")))
    fig = plot.figure(25)
    trails = {line.get_label(): line for line in fig.axes[1].get_lines()
              if line.get_label() in ("run0", "run1", "run2")}
    assert len(trails["run1"].get_xdata()) == 8 and len(trails["run0"].get_xdata()) == 26
    assert any(t.get_text() == "stopped" for t in fig.axes[0].texts)
    assert plot.png(25).startswith(PNG)


def test_set_runs_redraws_on_the_same_landscape():
    xs, ys, zs = bowl_grid()
    plot = DescentPlot(race_runs(), contour=dict(xs=xs, ys=ys, zs=zs))
    before = plot.png(5)
    moved = race_runs()
    moved[0] = PlotRun(moved[0].losses, name="run0", path=moved[0].path * 0.5, colour=RUN_COLOURS[0])
    plot.set_runs(moved)
    after = plot.png(5)
    assert after != before and plot.png(5) is after
    with pytest.raises(ValueError, match="expected 3 runs"):
        plot.set_runs(moved[:2])


def test_contour_levels_are_log_spaced_when_values_span_decades():
    xs, ys = np.linspace(-2, 2, 41), np.linspace(-1, 3, 41)
    gx, gy = np.meshgrid(xs, ys)
    rosenbrock = (1 - gx) ** 2 + 100 * (gy - gx ** 2) ** 2
    levels = contour_levels(rosenbrock)
    gaps = np.diff(levels[1:])
    assert levels[0] == pytest.approx(rosenbrock.min()) and levels[-1] == pytest.approx(rosenbrock.max())
    assert gaps[-1] > 50 * gaps[0]                       # geometric: fine near the valley floor
    bowl = gx ** 2 + gy ** 2
    assert np.allclose(np.diff(contour_levels(bowl)), np.diff(contour_levels(bowl))[0])   # even
    assert contour_levels(np.ones((3, 3))).size == 0


def test_contours_are_labelled_and_the_start_is_inside_the_frame():
    xs, ys, zs = bowl_grid()
    fig = loss_contour(xs, ys, zs, path=np.array([[-1.5, 1.0], [-1.0, 0.5]]), names=("x", "y"))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert len(labels) >= 3 and all(label for label in labels)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    start = [line for line in ax.get_lines() if line.get_label() == "start"][0].get_xydata()[0]
    assert x0 < start[0] < x1 and y0 < start[1] < y1


def test_names_are_drawn_as_written_not_as_mathtext():
    xs, ys, zs = bowl_grid()
    fig = loss_contour(xs, ys, zs, path=np.zeros((2, 2)), names=("$a$", "b"))
    assert figure_png(fig).startswith(PNG)
    assert fig.axes[0].get_xlabel() == r"\$a\$"


# --------------------------------------------------------------------------- training

def test_fit_plot_draws_the_curve_over_the_points_without_pyplot():
    x = np.linspace(-2, 2, 30)
    grid = np.linspace(-2, 2, 100)
    plot = FitPlot(x, np.sin(x), grid)
    first = plot.png(np.zeros(100), "iteration 0")
    fig = plot.figure(np.sin(grid), "iteration 9")
    curve = [line for line in fig.axes[0].get_lines() if line.get_label() == "model"][0]
    assert np.allclose(curve.get_ydata(), np.sin(grid))
    assert first.startswith(PNG) and plot.png(np.sin(grid), "iteration 9") != first
    assert plt.get_fignums() == []


def test_surface_plot_draws_a_decision_surface_without_pyplot():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(float)
    gx, gy = np.meshgrid(np.linspace(-3, 3, 30), np.linspace(-3, 3, 30))
    plot = SurfacePlot(X, y, gx, gy)
    first = plot.png(1 / (1 + np.exp(-(gx + gy))), "iteration 1")
    fig = plot.figure(1 / (1 + np.exp(-(gx - gy))), "iteration 2")
    assert sum(isinstance(c, ContourSet) for c in fig.axes[0].collections) == 2   # surface + boundary
    assert len(fig.axes[0].collections) == 3                                       # + the points, once
    assert first.startswith(PNG) and plot.png(np.zeros_like(gx), "flat") != first
    assert plt.get_fignums() == []


# --------------------------------------------------------------- readable on every band

def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("make", ["race", "single contour", "slice"])
def test_the_legend_lies_outside_every_axes(make):
    xs, ys, zs = bowl_grid()
    if make == "race":
        plot = DescentPlot(race_runs(), contour=dict(xs=xs, ys=ys, zs=zs), minima=[(1.0, -0.5)])
    elif make == "single contour":
        first = race_runs()[0]
        plot = DescentPlot([PlotRun(first.losses, path=first.path)], contour=dict(xs=xs, ys=ys, zs=zs),
                           minima=[(1.0, -0.5)])
    else:
        x, losses, slopes = one_param_run()
        grid = np.linspace(0, 3.5, 50)
        plot = DescentPlot([PlotRun(losses, path=x.reshape(-1, 1), slopes=slopes)],
                           slice=dict(xs=grid, ys=(grid - 1) ** 2, name="x"))
    fig = plot.figure(10)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert all(not _overlaps(box, ax.get_window_extent(renderer)) for ax in fig.axes)
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.x1    # inside the picture
    assert all(ax.get_legend() is None for ax in fig.axes)


@pytest.mark.parametrize("colour", [PATH, *RUN_COLOURS])
def test_every_path_colour_stands_out_on_every_band_of_the_landscape(colour):
    bands = [LANDSCAPE(i)[:3] for i in range(LANDSCAPE.N)]
    edge = outline(colour)
    # the line itself, or the outline drawn around it, has a contrast of 3:1 with every band
    assert min(max(contrast(colour, band), contrast(edge, band)) for band in bands) >= MIN_CONTRAST


def test_paths_are_drawn_outlined_and_under_the_minimum_and_the_current_points():
    xs, ys, zs = bowl_grid()
    fig = DescentPlot(race_runs(), contour=dict(xs=xs, ys=ys, zs=zs), minima=[(1.0, -0.5)]).figure(10)
    ax = fig.axes[1]
    trails = [line for line in ax.get_lines() if line.get_label() in ("run0", "run1", "run2")]
    star = next(line for line in ax.get_lines() if line.get_label() == "minimum")
    assert all(line.get_path_effects() and line.get_linewidth() >= 1.5 for line in trails)
    assert all(star.get_zorder() > line.get_zorder() for line in trails)
    dots = [line for line in ax.get_lines() if line.get_marker() == "o" and line.get_linestyle() == "None"]
    assert dots and all(d.get_zorder() > star.get_zorder() for d in dots)


def test_a_re_run_that_stops_renames_its_legend_entry():
    xs, ys, zs = bowl_grid()
    plot = DescentPlot(race_runs(), contour=dict(xs=xs, ys=ys, zs=zs))
    plot.png(5)
    stopped = race_runs(stop_second=True)
    stopped[1] = PlotRun(stopped[1].losses, name="run1 (stopped at 7)", path=stopped[1].path, stopped_at=7,
                         colour=RUN_COLOURS[1])
    plot.set_runs(stopped)
    plot.png(5)
    fig = plot._live[0]
    assert [t.get_text() for t in fig.legends[0].get_texts()][:3] == ["run0", "run1 (stopped at 7)", "run2"]
