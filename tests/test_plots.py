"""The descent plots: plain matplotlib Figures, no pyplot state, robust to diverging runs."""
from __future__ import annotations

import gc

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from ad_magic.plots import DescentPlot, figure_png, loss_contour, loss_curve, loss_slice

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
    plot = DescentPlot(losses, slice=dict(xs=xs, ys=(xs - 1) ** 2, path_x=path, path_loss=losses,
                                          slopes=slopes, name="x"))
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
    plot = DescentPlot(losses, slice=dict(xs=xs, ys=(xs - 1) ** 2, path_x=path, path_loss=losses,
                                          slopes=slopes, name="x"))
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
    plot = DescentPlot(losses, stopped_at=len(losses) - 1)
    assert plot.png(k).startswith(PNG)
