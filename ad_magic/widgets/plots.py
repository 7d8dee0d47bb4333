"""Pictures of gradient descent and of training, as matplotlib Figures.

Every function here builds a ``matplotlib.figure.Figure`` directly (the Agg backend
objects, never ``pyplot``): no global figure list, so nothing leaks and a notebook never
shows a plot twice. Render one with :func:`figure_png`.

- :func:`loss_curve` — the loss per iteration, with the current iteration marked.
- :func:`loss_slice` — for one scalar parameter θ: the loss L(θ) around the path taken,
  the current point and its tangent line, whose slope is the gradient ∂L/∂θ.
- :func:`loss_contour` — for two scalar parameters: contours of the loss (log-spaced and
  labelled when its values span decades), the minima, the start and the paths so far.
- :class:`DescentPlot` — the DescentExplorer's picture: the loss curves of one or more
  runs (:class:`PlotRun`, one colour each, with a legend) beside the slice or the
  contour. It draws the static parts once and moves only the markers per iteration,
  caching the PNG of each iteration it has rendered; ``set_runs`` swaps in new runs
  (a re-run with other hyperparameters) on the same landscape.
- :class:`FitPlot` and :class:`SurfacePlot` — a model's training picture: the fitted
  curve over 1-D data, or the decision surface over 2-D inputs.
"""
from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap, to_rgb
from matplotlib.figure import Figure

from ..engine.formatting import format_number

__all__ = ["loss_curve", "loss_slice", "loss_contour", "figure_png", "DescentPlot", "PlotRun",
           "contour_levels", "FitPlot", "SurfacePlot", "RUN_COLOURS"]

CURRENT = "#dc2626"
PATH = "#2563eb"
CURVE = "#334155"
STOP = "#b91c1c"
MINIMUM = "#facc15"
# One colour per run of a race, in order (colour-blind friendly: Okabe–Ito, then more).
RUN_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#8c564b")
PANEL_SIZE = (4.4, 3.1)     # inches per panel
DPI = 80
CONTOUR_LEVELS = 14
LEGEND_ROOM = 0.3           # inches under the axes for the legend: it never covers a path or a minimum
LEGEND_FONT = 8
# The loss landscape in light greys, lighter towards the minimum, so a path stands out on
# every band (see _outlined).
LANDSCAPE = ListedColormap([(1 - 0.25 * t,) * 3 for t in np.linspace(0.05, 1.0, 256) ** 0.8],
                           name="ad_magic_landscape")
CONTOUR_LINE = "#64748b"
OUTLINE_DARK = "#1f2937"
MIN_CONTRAST = 3.0          # WCAG's contrast for graphics: a path against any band of the landscape


def _luminance(colour) -> float:
    """Relative luminance (WCAG 2) of a matplotlib colour."""
    rgb = np.array(to_rgb(colour))
    rgb = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(rgb @ np.array([0.2126, 0.7152, 0.0722]))


def contrast(a, b) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""
    low, high = sorted((_luminance(a), _luminance(b)))
    return (high + 0.05) / (low + 0.05)


def outline(colour) -> str:
    """The outline drawn around a path of ``colour``: white when the colour itself stands
    out against every band of the landscape, else dark (light colours: orange, sky blue)."""
    darkest = LANDSCAPE(LANDSCAPE.N - 1)[:3]
    return "white" if contrast(colour, darkest) >= MIN_CONTRAST else OUTLINE_DARK


def _outlined(colour, width) -> list:
    """Path effects: a line of ``width`` over an outline that keeps it visible everywhere."""
    edge = outline(colour)
    return [patheffects.Stroke(linewidth=width + (1.0 if edge == OUTLINE_DARK else 1.6), foreground=edge),
            patheffects.Normal()]


def _new_figure(panels: int = 1, *, legend: bool = False) -> tuple:
    """A figure of ``panels`` axes side by side; with ``legend``, room under them for a
    legend of one row (see :func:`_figure_legend`)."""
    height = PANEL_SIZE[1] + (LEGEND_ROOM if legend else 0.0)
    fig = Figure(figsize=(PANEL_SIZE[0] * panels, height), dpi=DPI)
    FigureCanvasAgg(fig)
    # Fixed margins rather than a layout engine: the same room for tick labels every
    # time, and no layout pass (a constrained layout costs ~0.3 s per new figure).
    width = PANEL_SIZE[0] * panels
    left, right, gap = 0.8, 0.15, 0.9          # inches
    bottom, top = 0.5 + (LEGEND_ROOM if legend else 0.0), 0.31
    axis = (width - left - right - gap * (panels - 1)) / panels
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=gap / axis)
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    return fig, axes


def _figure_legend(fig, panels):
    """One legend for the whole figure, under the axes (outside them: it covers no path,
    no minimum, no curve's end), from the panels' ``legend`` handles, each label once."""
    handles, labels = [], []
    for panel in panels:
        for handle in panel.legend:
            label = handle.get_label()
            if label and not label.startswith("_") and label not in labels:
                handles.append(handle)
                labels.append(label)
    if not handles:
        return None
    return fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
                      fontsize=LEGEND_FONT, frameon=False, handlelength=1.8, columnspacing=1.4)


def _wants_legend(panels) -> bool:
    return any(panel.legend for panel in panels)


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi or fig.dpi)
    return buffer.getvalue()


def _text(label) -> str:
    """A name as matplotlib text: shown as written, never parsed as mathtext."""
    return str(label).replace("$", r"\$")


# Values beyond this are drawn as off the chart (a diverging run reaches 1e300, where
# axis limits and tick computations overflow).
HUGE = 1e100


def _plottable(values) -> np.ndarray:
    """``values`` as floats, with NaN, ±inf and huge values replaced by NaN (not drawn)."""
    array = np.array(values, dtype=float)
    with np.errstate(invalid="ignore"):
        array[~(np.abs(array) <= HUGE)] = np.nan
    return array


def _finite(values) -> np.ndarray:
    array = _plottable(values)
    return array[np.isfinite(array)]


def _limits(values, pad: float = 0.08) -> tuple:
    finite = _finite(values)
    if finite.size == 0:
        return -1.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    span = high - low
    if span <= 0:
        span = max(abs(low), 1.0)
    return low - pad * span, high + pad * span


def contour_levels(zs, n: int = CONTOUR_LEVELS) -> np.ndarray:
    """Contour levels for the values ``zs``: evenly spaced, or — when the values span
    decades above their minimum (a valley with steep walls, like Rosenbrock's) — spaced
    evenly in log(z − min), so the valley floor gets contours too."""
    finite = _finite(zs)
    if finite.size < 2 or finite.max() <= finite.min():
        return np.array([])
    low, high = float(finite.min()), float(finite.max())
    above = finite - low
    positive = above[above > 0]
    floor = float(np.percentile(positive, 2)) if positive.size else 0.0
    if floor > 0 and (high - low) / floor > 1e3:
        return low + np.concatenate([[0.0], np.geomspace(floor, high - low, n - 1)])
    return np.linspace(low, high, n)


class PlotRun:
    """One run of gradient descent as drawn: ``losses`` per iteration, the ``path`` of
    its scalar parameters (an array of shape (iterations, 1 or 2), or None), the
    ``slopes`` ∂L/∂θ per iteration (one parameter), its ``name`` (the legend), where it
    stopped (``stopped_at``) and its colour."""

    def __init__(self, losses, *, name=None, path=None, slopes=None, stopped_at=None, colour=None):
        self.losses = np.asarray(losses, dtype=float).reshape(-1)
        self.name = name
        self.path = None if path is None else _plottable(path).reshape(len(self.losses), -1)
        self.slopes = None if slopes is None else _plottable(slopes).reshape(-1)
        self.stopped_at = stopped_at
        self.colour = colour

    def at(self, k: int) -> int:
        """The iteration shown at slider position ``k``: a run that stopped early stays at its end."""
        return max(0, min(k, len(self.losses) - 1))


def _colours(runs) -> list:
    return [r.colour or (PATH if len(runs) == 1 else RUN_COLOURS[i % len(RUN_COLOURS)])
            for i, r in enumerate(runs)]


def _relabel(lines, runs):
    """Each run's line labelled with its name now (a re-run may have stopped)."""
    for line, run in zip(lines, runs):
        if run.name is not None:
            line.set_label(_text(run.name))


# --------------------------------------------------------------------------- panels
# Each panel draws its static part once; set_runs() gives it new runs (same number),
# set_iteration(k) moves the iteration-dependent artists, listed in .moving.

class _LossPanel:
    def __init__(self, ax, runs, title="loss"):
        self.ax = ax
        colours = _colours(runs)
        self.lines = [ax.plot([], [], color=CURVE if len(runs) == 1 else c, lw=1.5,
                              label=None if r.name is None else _text(r.name))[0]
                      for r, c in zip(runs, colours)]
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        self.cursor = ax.axvline(0, color=CURRENT, lw=0.8, alpha=0.5)
        self.dots = [ax.plot([], [], "o", color=CURRENT if len(runs) == 1 else c, ms=6, zorder=5)[0]
                     for c in colours]
        self.marks = []
        self.legend = self.lines if len(runs) > 1 else []    # the figure's legend names the runs
        self.moving = [self.cursor, *self.dots]
        self.set_runs(runs)

    def set_runs(self, runs):
        ax = self.ax
        self.runs = runs
        _relabel(self.lines, runs)
        self.shown = [_plottable(r.losses) for r in runs]
        for line, shown in zip(self.lines, self.shown):
            line.set_data(np.arange(len(shown)), shown)
        # In a race the axis is the runs' that went on: a run that blew up (stopped) is
        # clipped where it leaves the frame, and never squashes the others' curves.
        kept = [shown for r, shown in zip(runs, self.shown) if r.stopped_at is None]
        finite = _finite(np.concatenate(kept if len(runs) > 1 and kept else self.shown))
        low = float(finite.min()) if finite.size else 0.0
        if finite.size and low > 1e-100 and float(finite.max()) > 100 * low:   # decades apart: log scale
            ax.set_yscale("log")
            ax.set_ylim(low / 2, float(finite.max()) * 2)
        else:
            ax.set_yscale("linear")
            ax.set_ylim(*_limits(finite))
        longest = max(len(s) for s in self.shown)
        ax.set_xlim(-0.5, max(longest - 0.5, 0.5))
        for mark in self.marks:
            mark.remove()
        self.marks = []
        self.left_at = {}
        colours = _colours(runs)
        bottom, top = ax.get_ylim()
        middle = (longest - 1) / 2
        for n, (r, shown) in enumerate(zip(runs, self.shown)):
            colour = STOP if len(runs) == 1 else colours[n]
            leaves = np.flatnonzero(~((shown >= bottom) & (shown <= top)))
            if len(runs) > 1 and r.stopped_at is not None and leaves.size:
                # where its curve leaves the frame: a marker on the frame's edge, and the iteration
                j = int(leaves[0])
                self.left_at[r.name] = j
                up = not (np.isfinite(shown[j]) and shown[j] < bottom)
                edge = 1 if up else 0
                self.marks.append(ax.plot([j], [edge], "^" if up else "v", color=colour, ms=7, clip_on=False,
                                          transform=ax.get_xaxis_transform(), zorder=6)[0])
                self.marks.append(ax.annotate(f"{_text(r.name)} off the scale at {j}", (j, edge),
                                              xycoords=("data", "axes fraction"),
                                              xytext=(8 if j <= middle else -8, -9 if up else 4),
                                              textcoords="offset points", ha="left" if j <= middle else "right",
                                              color=colour, fontsize=8))
            if r.stopped_at is not None:
                self.marks.append(ax.axvline(r.stopped_at, color=colour, ls="--", lw=1))
                # on the side of the line away from the nearer edge: never over the y axis
                row = -21 if r.name in self.left_at else -12     # under the "off the scale" line
                self.marks.append(ax.annotate("stopped", (r.stopped_at, 1), xycoords=("data", "axes fraction"),
                                              xytext=(3, row) if r.stopped_at <= middle else (-3, row),
                                              textcoords="offset points",
                                              ha="left" if r.stopped_at <= middle else "right",
                                              color=colour, fontsize=8))

    def set_iteration(self, k):
        self.cursor.set_xdata([k, k])
        for dot, run, shown in zip(self.dots, self.runs, self.shown):
            j = run.at(k)
            value = shown[j] if len(shown) else np.nan
            dot.set_data([j] if np.isfinite(value) else [], [value] if np.isfinite(value) else [])


class _SlicePanel:
    def __init__(self, ax, runs, xs, ys, name="θ"):
        self.ax = ax
        xs, ys = _plottable(xs), _plottable(ys)
        self.xs, self.ys = xs, ys
        name = _text(name)
        ax.plot(xs, ys, color=CURVE, lw=1.5, label=f"loss({name})")
        self.xlim = _limits(xs, pad=0)
        ax.set_xlim(*self.xlim)
        ax.set_xlabel(name)
        ax.set_ylabel("loss")
        ax.set_title(f"loss as a function of {name}", fontsize=10)
        ax.grid(True, alpha=0.3)
        colours = _colours(runs)
        single = len(runs) == 1
        self.trails = [ax.plot([], [], "o-", color=c, ms=3.2, lw=1.4, path_effects=_outlined(c, 1.4),
                               label="path" if single else _text(r.name))[0] for r, c in zip(runs, colours)]
        self.tangents = [ax.plot([], [], "-", color=CURRENT if single else c, lw=1.4,
                                 label="tangent (slope = grad)" if single else None)[0] for c in colours]
        self.dots = [ax.plot([], [], "o", color=CURRENT if single else c, ms=7, mec="white", mew=0.8,
                             zorder=5)[0] for c in colours]
        self.legend = [ax.get_lines()[0], *self.trails] + ([self.tangents[0]] if single else [])
        self.half = 0.18 * (self.xlim[1] - self.xlim[0])
        self.moving = [*self.trails, *self.tangents, *self.dots]
        self.set_runs(runs)

    def set_runs(self, runs):
        self.runs = runs
        if len(runs) > 1:
            _relabel(self.trails, runs)
        xlim = self.xlim
        path_loss = [_plottable(r.losses) for r in runs]
        with np.errstate(invalid="ignore"):   # iterates off the chart do not stretch it
            inside = [pl[(r.path[:, 0] >= xlim[0]) & (r.path[:, 0] <= xlim[1])] for r, pl in zip(runs, path_loss)]
        self.ax.set_ylim(*_limits(np.concatenate([self.ys, *inside])))

    def set_iteration(self, k):
        for run, trail, tangent, dot in zip(self.runs, self.trails, self.tangents, self.dots):
            j = run.at(k)
            px, losses = run.path[:, 0], _plottable(run.losses)
            trail.set_data(px[: j + 1], losses[: j + 1])
            x, y = px[j], losses[j]
            g = run.slopes[j] if run.slopes is not None else np.nan
            if np.isfinite(x) and np.isfinite(y):
                dot.set_data([x], [y])
                if np.isfinite(g):
                    tx = np.array([x - self.half, x + self.half])
                    tangent.set_data(tx, y + g * (tx - x))
                else:
                    tangent.set_data([], [])
            else:
                dot.set_data([], [])
                tangent.set_data([], [])


class _ContourPanel:
    def __init__(self, ax, runs, xs, ys, zs, names=("θ₁", "θ₂"), minima=()):
        self.ax = ax
        xs, ys, zs = _plottable(xs), _plottable(ys), _plottable(zs)
        z = np.ma.masked_invalid(zs)
        self.levels = levels = contour_levels(zs)
        grid_ok = np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))
        self.labelled = []
        if grid_ok and len(levels) > 1:
            cmap = LANDSCAPE
            norm = BoundaryNorm(levels, ncolors=cmap.N, extend="max")   # one shade per band, log levels too
            ax.contourf(xs, ys, z, levels=levels, cmap=cmap, norm=norm, extend="max")
            lines = ax.contour(xs, ys, z, levels=levels, colors=CONTOUR_LINE, linewidths=0.6, alpha=0.8)
            self.labelled = ax.clabel(lines, lines.levels[1::2], inline=True, fontsize=6, colors=CURVE,
                                      fmt=lambda v: format_number(v, 7))
        self.xlim, self.ylim = _limits(xs, pad=0), _limits(ys, pad=0)
        ax.set_xlim(*self.xlim)
        ax.set_ylim(*self.ylim)
        ax.set_xlabel(_text(names[0]))
        ax.set_ylabel(_text(names[1]))
        ax.set_title("loss contours and the path" if len(runs) == 1 else "loss contours and the paths",
                     fontsize=10)
        # A minimum is drawn over the paths (a path ending on it leaves it visible), under
        # the current points.
        self.minima = [ax.plot([m[0]], [m[1]], "*", color=MINIMUM, mec="#111827", mew=0.9, ms=14, zorder=4,
                               label="minimum" if i == 0 else None)[0] for i, m in enumerate(minima)]
        colours = _colours(runs)
        single = len(runs) == 1
        # Where each path goes over the whole run (the trail draws it up to the slider's iteration).
        self.ghosts = [ax.plot([], [], "-", color=c, lw=1.0, alpha=0.4, zorder=2)[0] for c in colours]
        self.trails = [ax.plot([], [], "o-", color=c, ms=3.2, lw=1.6, zorder=3,
                               path_effects=_outlined(c, 1.6), label="path" if single else _text(r.name))[0]
                       for r, c in zip(runs, colours)]
        self.dots = [ax.plot([], [], "o", color=CURRENT if single else c, ms=8, mec="white", mew=1.0,
                             zorder=6)[0] for c in colours]
        (self.start,) = ax.plot([], [], "s", color=CURVE, ms=7, mec="white", mew=1.0, zorder=5, label="start")
        self.legend = [*self.trails, self.start] + self.minima[:1]
        self.moving = [*self.trails, *self.dots]
        self.set_runs(runs)

    def set_runs(self, runs):
        self.runs = runs
        if len(runs) > 1:
            _relabel(self.trails, runs)
        for ghost, run in zip(self.ghosts, runs):
            ghost.set_data(run.path[:, 0], run.path[:, 1])
        self.start.set_data(runs[0].path[:1, 0], runs[0].path[:1, 1])

    def set_iteration(self, k):
        for run, trail, dot in zip(self.runs, self.trails, self.dots):
            j = run.at(k)
            trail.set_data(run.path[: j + 1, 0], run.path[: j + 1, 1])
            dot.set_data(run.path[j : j + 1, 0], run.path[j : j + 1, 1])


# --------------------------------------------------------------------------- figures

def loss_curve(losses: Sequence[float], k: int | None = None, *, stopped_at=None) -> Figure:
    """The loss per iteration; iteration ``k`` (default: the last) is marked, and a run
    stopped by a non-finite loss shows where it stopped."""
    fig, (ax,) = _new_figure(1)
    panel = _LossPanel(ax, [PlotRun(losses, stopped_at=stopped_at)])
    panel.set_iteration(len(losses) - 1 if k is None else k)
    return fig


def loss_slice(xs, ys, *, path_x, path_loss, slopes, k: int | None = None, name="θ") -> Figure:
    """L(θ) for one scalar parameter θ: the curve ``ys`` over ``xs``, the iterates
    ``path_x`` (with losses ``path_loss``) up to ``k`` and, at iterate ``k``, the tangent
    line L(θₖ) + gₖ·(θ − θₖ) whose slope gₖ = ∂L/∂θ is the gradient descent follows."""
    fig, (ax,) = _new_figure(1, legend=True)
    run = PlotRun(path_loss, path=np.reshape(path_x, (-1, 1)), slopes=slopes)
    panel = _SlicePanel(ax, [run], xs, ys, name=name)
    _figure_legend(fig, [panel])
    panel.set_iteration(len(run.losses) - 1 if k is None else k)
    return fig


def loss_contour(xs, ys, zs, *, path, k: int | None = None, names=("θ₁", "θ₂"), minima=()) -> Figure:
    """Contours of the loss over two scalar parameters (``zs[i, j]`` is the loss at
    ``(xs[j], ys[i])``), the ``minima`` marked, and the path of the iterates ``path``
    (shape (n, 2)) up to ``k``."""
    fig, (ax,) = _new_figure(1, legend=True)
    path = np.reshape(path, (-1, 2))
    run = PlotRun(np.zeros(len(path)), path=path)
    panel = _ContourPanel(ax, [run], xs, ys, zs, names=names, minima=minima)
    _figure_legend(fig, [panel])
    panel.set_iteration(len(path) - 1 if k is None else k)
    return fig


class DescentPlot:
    """The picture of one or more gradient-descent runs at any iteration: their loss
    curves, beside the loss slice (one scalar parameter) or contour (two), when given.

    ``runs`` is a list of :class:`PlotRun` (or one run's losses). ``slice`` is a dict
    with ``xs, ys, name`` (see :func:`loss_slice`), ``contour`` a dict with ``xs, ys, zs,
    names`` (see :func:`loss_contour`); the runs carry the paths. ``figure(k)`` builds a
    new Figure; ``png(k)`` reuses one figure whose background is drawn once, moving only
    the markers, and caches recent PNGs. ``set_runs(runs)`` replaces the runs (as many
    as before) on the same landscape, redrawing the background once.
    """

    def __init__(self, runs, *, slice=None, contour=None, minima=(), cache_size=64):
        if not (isinstance(runs, (list, tuple)) and runs and all(isinstance(r, PlotRun) for r in runs)):
            runs = [PlotRun(runs)]
        self.runs = list(runs)
        self.slice = slice
        self.contour = contour
        self.minima = tuple(minima)
        self._cache = OrderedDict()
        self._cache_size = cache_size
        self._live = None          # (figure, panels, moving, background) reused by png()

    @property
    def losses(self) -> np.ndarray:
        return self.runs[0].losses

    @property
    def _has_legend(self) -> bool:
        """A race names its runs; a slice or a contour names the path, start and minimum."""
        return len(self.runs) > 1 or self.slice is not None or self.contour is not None

    @property
    def panels(self) -> int:
        return 1 + (self.slice is not None or self.contour is not None)

    def _build(self) -> tuple:
        """A new figure and its panels."""
        legend = self._has_legend
        fig, axes = _new_figure(self.panels, legend=legend)
        panels = [_LossPanel(axes[0], self.runs, title="loss" if len(self.runs) == 1 else "loss per optimizer")]
        if self.slice is not None:
            s = self.slice
            panels.append(_SlicePanel(axes[1], self.runs, s["xs"], s["ys"], name=s.get("name", "θ")))
        elif self.contour is not None:
            c = self.contour
            panels.append(_ContourPanel(axes[1], self.runs, c["xs"], c["ys"], c["zs"],
                                        names=c.get("names", ("θ₁", "θ₂")), minima=self.minima))
        if legend:
            _figure_legend(fig, panels)
        return fig, panels

    def figure(self, k: int) -> Figure:
        """A new Figure showing iteration ``k``."""
        fig, panels = self._build()
        for panel in panels:
            panel.set_iteration(k)
        return fig

    def set_runs(self, runs) -> None:
        """Show these runs instead (as many as before; same landscape): the cached PNGs
        go, and the reused figure's background is drawn again on the next ``png``."""
        runs = list(runs)
        if len(runs) != len(self.runs):
            raise ValueError(f"set_runs: expected {len(self.runs)} runs, got {len(runs)}")
        self.runs = runs
        self._cache.clear()
        if self._live is not None:
            fig, panels, moving, _ = self._live
            for panel in panels:
                panel.set_runs(runs)
            for legend in list(fig.legends):    # a run's label says where it stopped: write it anew
                legend.remove()
            if self._has_legend:
                _figure_legend(fig, panels)
            self._live = (fig, panels, moving, None)

    def png(self, k: int) -> bytes:
        """PNG bytes of iteration ``k`` (cached).

        The first call draws the static parts (axes, curves, contours) once and keeps
        the pixels; each iteration then restores them and draws only the moving
        artists (blitting), so a slider move costs a few artists and a PNG encoding.
        """
        data = self._cache.get(k)
        if data is not None:
            self._cache.move_to_end(k)
            return data
        if self._live is None:
            fig, panels = self._build()
            moving = [a for panel in panels for a in panel.moving]
            for artist in moving:
                artist.set_animated(True)          # left out of the background
            self._live = (fig, panels, moving, None)
        fig, panels, moving, background = self._live
        canvas = fig.canvas
        if background is None:
            canvas.draw()
            background = canvas.copy_from_bbox(fig.bbox)
            self._live = (fig, panels, moving, background)
        canvas.restore_region(background)
        for panel in panels:
            panel.set_iteration(k)
        for artist in moving:
            artist.axes.draw_artist(artist)
        data = _encode_png(np.asarray(canvas.buffer_rgba()))
        self._cache[k] = data
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data

    def close(self) -> None:
        """Drop the reused figure and the cached PNGs."""
        self._live = None
        self._cache.clear()


def _encode_png(rgba: np.ndarray) -> bytes:
    """RGBA pixels as PNG bytes, favouring speed over size (fast zlib level)."""
    from PIL import Image  # a matplotlib dependency

    buffer = io.BytesIO()
    Image.fromarray(rgba[..., :3].copy()).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


# --------------------------------------------------------------------------- training

class FitPlot:
    """A model fitted to 1-D data: the points ``(x, y)`` and, per call, the model's
    curve ``prediction`` over ``grid`` (a sorted 1-D array). The points and axes are
    drawn once; ``png(prediction, title)`` moves only the curve."""

    def __init__(self, x, y, grid, *, names=("x", "y")):
        x, y = _plottable(x).reshape(-1), _plottable(y).reshape(-1)
        self.grid = _plottable(grid).reshape(-1)
        fig, (ax,) = _new_figure(1)
        ax.plot(x, y, "o", color=CURVE, ms=3, alpha=0.6, label="data")
        (self.curve,) = ax.plot([], [], "-", color=CURRENT, lw=2, label="model")
        self.curve.set_animated(True)
        self.title = ax.set_title("", fontsize=10)
        self.title.set_animated(True)
        ax.set_xlim(*_limits(np.concatenate([x, self.grid]), pad=0.02))
        ax.set_ylim(*_limits(y, pad=0.25))
        ax.set_xlabel(_text(names[0]))
        ax.set_ylabel(_text(names[1]))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=7, framealpha=0.7)
        self.fig, self.ax = fig, ax
        self._background = None

    def figure(self, prediction, title="") -> Figure:
        """The figure with this prediction drawn (the figure is reused: copy what you keep)."""
        self.curve.set_data(self.grid, _plottable(prediction).reshape(-1))
        self.title.set_text(_text(title))
        return self.fig

    def png(self, prediction, title="") -> bytes:
        canvas = self.fig.canvas
        if self._background is None:
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
        canvas.restore_region(self._background)
        self.figure(prediction, title)
        self.ax.draw_artist(self.curve)
        self.ax.draw_artist(self.title)
        return _encode_png(np.asarray(canvas.buffer_rgba()))


class SurfacePlot:
    """A model over 2-D inputs: the points ``X`` (n × 2) coloured by their target ``y``
    and, per call, the model's output over the grid ``(gx, gy)`` as a filled surface,
    with the decision boundary (the level halfway between the targets' extremes)."""

    def __init__(self, X, y, gx, gy, *, names=("x₁", "x₂")):
        X = _plottable(X).reshape(-1, 2)
        self.y = _plottable(y).reshape(-1)
        self.gx, self.gy = _plottable(gx), _plottable(gy)
        low, high = (float(self.y.min()), float(self.y.max())) if _finite(self.y).size else (0.0, 1.0)
        self.boundary = 0.5 * (low + high)
        self.levels = np.linspace(low, high, 11) if high > low else None
        fig, (ax,) = _new_figure(1)
        self.fig, self.ax = fig, ax
        self.X, self.names = X, names
        self._surface = []
        self._points_drawn = False

    def figure(self, prediction, title="") -> Figure:
        """The figure with this prediction drawn (the figure is reused: copy what you keep)."""
        ax = self.ax
        for artist in self._surface:
            artist.remove()
        z = np.ma.masked_invalid(_plottable(prediction).reshape(self.gx.shape))
        self._surface = []
        if z.count() > 1:
            filled = ax.contourf(self.gx, self.gy, z, levels=self.levels, cmap="coolwarm", alpha=0.45,
                                 extend="both")
            self._surface.append(filled)
            if z.min() < self.boundary < z.max():
                self._surface.append(ax.contour(self.gx, self.gy, z, levels=[self.boundary], colors=CURVE,
                                                linewidths=1.5))
        if not self._points_drawn:
            self._points_drawn = True
            ax.scatter(self.X[:, 0], self.X[:, 1], c=self.y, cmap="coolwarm", edgecolors=CURVE,
                       linewidths=0.5, s=14, zorder=3)
            ax.set_xlim(float(np.nanmin(self.gx)), float(np.nanmax(self.gx)))
            ax.set_ylim(float(np.nanmin(self.gy)), float(np.nanmax(self.gy)))
            ax.set_xlabel(_text(self.names[0]))
            ax.set_ylabel(_text(self.names[1]))
        ax.set_title(_text(title), fontsize=10)
        return self.fig

    def png(self, prediction, title="") -> bytes:
        fig = self.figure(prediction, title)
        fig.canvas.draw()
        return _encode_png(np.asarray(fig.canvas.buffer_rgba()))
