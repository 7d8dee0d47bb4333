"""The picture of a DescentExplorer: loss curves beside the loss landscape.

:class:`DescentPicture` turns the runs of a race (:class:`~ad_magic.widgets.race.Run`, data
only) into a :class:`~ad_magic.widgets.plots.DescentPlot`: one loss curve per run and, for one
or two scalar parameters, the loss slice or its contours with every path, framed by
:func:`ad_magic.engine.landscape_grid.frame` and sampled by the ``sample`` function it is
given (the explorer's :meth:`ad_magic.widgets.descent_runs.DescentRuns.sample`). After a re-run,
:meth:`DescentPicture.update` keeps the landscape drawn when it still holds the start
and every path, and samples a new one around them otherwise.
"""
from __future__ import annotations

import numpy as np

from ..engine import landscape_grid
from .plots import RUN_COLOURS, DescentPlot, PlotRun

__all__ = ["DescentPicture"]


def _scalars(values) -> list:
    return [float(np.asarray(v).reshape(-1)[0]) for v in values]


class DescentPicture:
    """The figure of every run at any iteration.

    ``runs`` are :class:`~ad_magic.widgets.race.Run` objects whose ``history`` is set; ``start``
    one array per parameter (where every run starts); ``names`` the parameters' names;
    ``minima`` points marked on the contour; ``sample(bounds) -> (axes, z)`` the loss
    over a frame. The landscape is drawn when the parameters are one or two scalars.
    ``plot`` is the :class:`~ad_magic.widgets.plots.DescentPlot`; ``bounds`` its landscape's
    frame (None without one).
    """

    def __init__(self, runs, start, *, names, sample, minima=()):
        self.names = list(names)
        self.minima = tuple(minima)
        self._sample = sample
        self.runs, self.start = list(runs), list(start)
        self.bounds = None
        self.plot = self._new_plot()

    @property
    def landscape(self) -> bool:
        """Is the loss drawn over the parameters (one or two scalars)?"""
        return 1 <= len(self.start) <= 2 and all(np.ndim(s) == 0 for s in self.start)

    def _paths(self) -> list:
        return [(np.array([_scalars(values) for values in run.history.params]).reshape(len(run.history), -1),
                 np.array(run.history.losses, dtype=float)) for run in self.runs]

    def _plot_runs(self) -> list:
        race = len(self.runs) > 1
        plotted = []
        for i, run in enumerate(self.runs):
            h = run.history
            path = np.array([_scalars(values) for values in h.params]) if self.landscape else None
            slopes = (np.array([_scalars(g)[0] for g in h.grads]) if self.landscape and len(self.start) == 1
                      else None)
            label = run.name if h.stopped is None else f"{run.name} (stopped at {h.stopped_at})"
            plotted.append(PlotRun(h.losses, name=label if race else None, path=path, slopes=slopes,
                                   stopped_at=h.stopped_at,
                                   colour=RUN_COLOURS[i % len(RUN_COLOURS)] if race else None))
        return plotted

    def _new_plot(self) -> DescentPlot:
        slice_ = contour = None
        self.bounds = None
        if self.landscape:
            self.bounds = landscape_grid.frame(_scalars(self.start), self._paths(), self.minima)
            axes, z = self._sample(self.bounds)
            if len(axes) == 1:
                slice_ = {"xs": axes[0], "ys": z, "name": self.names[0]}
            else:
                contour = {"xs": axes[0], "ys": axes[1], "zs": z, "names": tuple(self.names)}
        return DescentPlot(self._plot_runs(), slice=slice_, contour=contour, minima=self.minima)

    def update(self, runs, start) -> None:
        """Show these runs (as many as before) from this start: on the same landscape
        unless the start or a path left it."""
        self.runs, self.start = list(runs), list(start)
        if self.bounds is None or landscape_grid.frame_holds(self.bounds, _scalars(self.start), self._paths()):
            self.plot.set_runs(self._plot_runs())
        else:
            self.plot.close()
            self.plot = self._new_plot()

    def figure(self, k: int):
        """A new matplotlib Figure of iteration ``k``."""
        return self.plot.figure(k)

    def png(self, k: int) -> bytes:
        """PNG bytes of iteration ``k`` (cached by the plot)."""
        return self.plot.png(k)

    def close(self) -> None:
        self.plot.close()
