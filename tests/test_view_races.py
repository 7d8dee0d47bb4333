"""A race in which one optimizer blows up: the others' curves keep their scale, the run
that left is clipped with a marker saying where, its "stopped" label stays inside the
axes, and the explorer's header says where it stopped."""
from __future__ import annotations

import numpy as np

from ad_magic import Tensor
from ad_magic.widgets.plots import RUN_COLOURS, DescentPlot, PlotRun


def bowl_runs(blow_up_at=5, iterations=60):
    runs = []
    for i, rate in enumerate((0.02, 0.05)):
        x = [2.0]
        for _ in range(iterations):
            x.append(x[-1] - rate * 2 * x[-1])
        runs.append(PlotRun(np.array(x) ** 2, name=f"steady{i}", colour=RUN_COLOURS[i]))
    x = [2.0]
    for _ in range(blow_up_at):
        x.append(x[-1] * -40.0)        # each step overshoots forty times
    losses = np.append(np.array(x) ** 2, np.inf)
    runs.append(PlotRun(losses, name="sgd", stopped_at=blow_up_at + 1, colour=RUN_COLOURS[2]))
    return runs


def test_a_run_that_blew_up_is_clipped_and_never_rescales_the_others():
    runs = bowl_runs()
    plot = DescentPlot(runs)
    fig = plot.figure(40)
    ax = fig.axes[0]
    bottom, top = ax.get_ylim()
    steady = np.concatenate([runs[0].losses, runs[1].losses])
    assert top <= 2 * steady.max() + 1e-9            # the scale of the runs that went on (4.0), not 1e16
    assert bottom <= steady.min()
    texts = [t.get_text() for t in ax.texts]
    # where the curve left the frame, on the frame's edge, and what it is
    assert "sgd off the scale at 1" in texts
    marker = [line for line in ax.get_lines() if line.get_marker() == "^"]
    assert len(marker) == 1 and list(marker[0].get_xdata()) == [1] and list(marker[0].get_ydata()) == [1]
    assert marker[0].get_color() == RUN_COLOURS[2]


def test_the_stopped_label_stays_inside_the_axes_on_the_side_away_from_the_y_axis():
    fig = DescentPlot(bowl_runs()).figure(40)
    ax = fig.axes[0]
    stopped = next(t for t in ax.texts if t.get_text() == "stopped")
    assert stopped.get_ha() == "left"             # stopped at 6 of 60: written rightwards, off the y axis
    fig.canvas.draw()
    box, frame = stopped.get_window_extent(), ax.get_window_extent()
    assert box.x0 >= frame.x0 and box.x1 <= frame.x1


def test_a_single_run_keeps_its_own_scale():
    run = bowl_runs()[2]
    run.stopped_at = 6
    ax = DescentPlot([run]).figure(3).axes[0]
    assert ax.get_ylim()[1] > 1e10                # alone, its own curve is the scale
    assert not [t for t in ax.texts if "off the scale" in t.get_text()]


def test_the_race_header_says_where_a_stopped_run_stopped():
    from ad_magic.widgets import DescentExplorer

    x = Tensor(3.0, name="x")
    race = DescentExplorer.compare((x - 1) ** 2, [x], optimizers=["sgd", "adam"],
                                   lr={"sgd": 50.0, "adam": 0.1}, steps=120)
    sgd = race.histories["sgd"]
    assert sgd.stopped
    last = len(sgd.losses) - 1
    race.slider.value = 110
    assert f"sgd stopped at {last}" in race.label.value
    assert "adam " in race.label.value and "/ 120" in race.label.value
