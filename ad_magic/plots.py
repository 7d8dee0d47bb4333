"""Pictures of gradient descent, as matplotlib Figures.

Every function here builds a ``matplotlib.figure.Figure`` directly (the Agg backend
objects, never ``pyplot``): no global figure list, so nothing leaks and a notebook never
shows a plot twice. Render one with :func:`figure_png`.

- :func:`loss_curve` — the loss per iteration, with the current iteration marked.
- :func:`loss_slice` — for one scalar parameter θ: the loss L(θ) around the path taken,
  the current point and its tangent line, whose slope is the gradient ∂L/∂θ.
- :func:`loss_contour` — for two scalar parameters: contours of the loss and the path
  of the iterates so far.
- :class:`DescentPlot` — the DescentExplorer's picture (loss curve beside the slice or
  the contour). It draws the static parts once and moves only the markers per
  iteration, caching the PNG of each iteration it has rendered.
"""
from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["loss_curve", "loss_slice", "loss_contour", "figure_png", "DescentPlot"]

CURRENT = "#dc2626"
PATH = "#2563eb"
CURVE = "#334155"
STOP = "#b91c1c"
PANEL_SIZE = (4.4, 3.1)     # inches per panel
DPI = 80


def _new_figure(panels: int = 1) -> tuple:
    fig = Figure(figsize=(PANEL_SIZE[0] * panels, PANEL_SIZE[1]), dpi=DPI)
    FigureCanvasAgg(fig)
    # Fixed margins rather than a layout engine: the same room for tick labels every
    # time, and no layout pass (a constrained layout costs ~0.3 s per new figure).
    width = PANEL_SIZE[0] * panels
    left, right, gap = 0.8, 0.15, 0.9          # inches
    axis = (width - left - right - gap * (panels - 1)) / panels
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=0.16, top=0.9,
                        wspace=gap / axis)
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    return fig, axes


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi or fig.dpi)
    return buffer.getvalue()


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


# --------------------------------------------------------------------------- panels
# Each _draw_* draws the static part of a panel and returns a function set(k) that moves
# the iteration-dependent artists: one mechanism for fresh figures and the cached one.

def _draw_loss_curve(ax, losses, *, stopped_at=None, title="loss"):
    shown = _plottable(losses)
    its = np.arange(len(shown))
    ax.plot(its, shown, color=CURVE, lw=1.5)
    finite = _finite(shown)
    low = float(finite.min()) if finite.size else 0.0
    if low > 1e-100 and float(finite.max()) > 100 * low:   # decades apart: log scale
        ax.set_yscale("log")
        ax.set_ylim(low / 2, float(finite.max()) * 2)
    else:
        ax.set_ylim(*_limits(finite))
    ax.set_xlim(-0.5, max(len(losses) - 0.5, 0.5))
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if stopped_at is not None:
        ax.axvline(stopped_at, color=STOP, ls="--", lw=1)
        ax.annotate("stopped", (stopped_at, 1), xycoords=("data", "axes fraction"),
                    xytext=(-3, -12), textcoords="offset points", ha="right", color=STOP, fontsize=8)
    cursor = ax.axvline(0, color=CURRENT, lw=0.8, alpha=0.5)
    (dot,) = ax.plot([], [], "o", color=CURRENT, ms=6, zorder=5)

    def set_iteration(k):
        cursor.set_xdata([k, k])
        value = shown[k] if 0 <= k < len(shown) else np.nan
        dot.set_data([k] if np.isfinite(value) else [], [value] if np.isfinite(value) else [])
    return set_iteration, (cursor, dot)


def _draw_slice(ax, xs, ys, *, path_x, path_loss, slopes, name="θ"):
    xs, ys = _plottable(xs), _plottable(ys)
    path_x, path_loss = _plottable(path_x), _plottable(path_loss)
    slopes = _plottable(slopes)
    ax.plot(xs, ys, color=CURVE, lw=1.5, label=f"loss({name})")
    xlim = _limits(xs, pad=0)
    ax.set_xlim(*xlim)
    with np.errstate(invalid="ignore"):   # iterates off the chart do not stretch it
        inside = (path_x >= xlim[0]) & (path_x <= xlim[1])
    ax.set_ylim(*_limits(np.concatenate([ys, path_loss[inside]])))
    ax.set_xlabel(name)
    ax.set_ylabel("loss")
    ax.set_title(f"loss as a function of {name}", fontsize=10)
    ax.grid(True, alpha=0.3)
    (trail,) = ax.plot([], [], "o-", color=PATH, ms=3, lw=0.8, alpha=0.6, label="path")
    (tangent,) = ax.plot([], [], "-", color=CURRENT, lw=1.2, label="tangent (slope = grad)")
    (dot,) = ax.plot([], [], "o", color=CURRENT, ms=7, zorder=5)
    ax.legend(loc="upper center", fontsize=7, framealpha=0.7)
    half = 0.18 * (xlim[1] - xlim[0])

    def set_iteration(k):
        k = min(k, len(path_x) - 1)
        trail.set_data(path_x[: k + 1], path_loss[: k + 1])
        x, y, g = path_x[k], path_loss[k], slopes[k]
        if np.isfinite(x) and np.isfinite(y):
            dot.set_data([x], [y])
            if np.isfinite(g):
                tx = np.array([x - half, x + half])
                tangent.set_data(tx, y + g * (tx - x))
            else:
                tangent.set_data([], [])
        else:
            dot.set_data([], [])
            tangent.set_data([], [])
    return set_iteration, (trail, tangent, dot)


def _draw_contour(ax, xs, ys, zs, *, path, names=("θ₁", "θ₂")):
    xs, ys, zs = _plottable(xs), _plottable(ys), _plottable(zs)
    path = _plottable(path).reshape(-1, 2)
    z = np.ma.masked_invalid(zs)
    levels = 14
    if z.count() and z.min() > 1e-100 and z.max() > 100 * z.min():   # decades apart: log-spaced levels
        levels = np.geomspace(float(z.min()), float(z.max()), 14)
    grid_ok = np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))
    if grid_ok and z.count() > 1 and z.max() > z.min():
        ax.contourf(xs, ys, z, levels=levels, cmap="Blues_r", alpha=0.55)
        ax.contour(xs, ys, z, levels=levels, colors=CURVE, linewidths=0.5, alpha=0.6)
    ax.set_xlim(*_limits(xs, pad=0))
    ax.set_ylim(*_limits(ys, pad=0))
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title("loss contours and the path", fontsize=10)
    (trail,) = ax.plot([], [], "o-", color=PATH, ms=3, lw=1.0)
    (dot,) = ax.plot([], [], "o", color=CURRENT, ms=7, zorder=5)
    ax.plot(path[:1, 0], path[:1, 1], "s", color=PATH, ms=5)   # the start

    def set_iteration(k):
        k = min(k, len(path) - 1)
        trail.set_data(path[: k + 1, 0], path[: k + 1, 1])
        dot.set_data(path[k : k + 1, 0], path[k : k + 1, 1])
    return set_iteration, (trail, dot)


# --------------------------------------------------------------------------- figures

def loss_curve(losses: Sequence[float], k: int | None = None, *, stopped_at=None) -> Figure:
    """The loss per iteration; iteration ``k`` (default: the last) is marked, and a run
    stopped by a non-finite loss shows where it stopped."""
    fig, (ax,) = _new_figure(1)
    set_iteration, _ = _draw_loss_curve(ax, losses, stopped_at=stopped_at)
    set_iteration(len(losses) - 1 if k is None else k)
    return fig


def loss_slice(xs, ys, *, path_x, path_loss, slopes, k: int | None = None, name="θ") -> Figure:
    """L(θ) for one scalar parameter θ: the curve ``ys`` over ``xs``, the iterates
    ``path_x`` (with losses ``path_loss``) up to ``k`` and, at iterate ``k``, the tangent
    line L(θₖ) + gₖ·(θ − θₖ) whose slope gₖ = ∂L/∂θ is the gradient descent follows."""
    fig, (ax,) = _new_figure(1)
    set_iteration, _ = _draw_slice(ax, xs, ys, path_x=path_x, path_loss=path_loss, slopes=slopes, name=name)
    set_iteration(len(path_x) - 1 if k is None else k)
    return fig


def loss_contour(xs, ys, zs, *, path, k: int | None = None, names=("θ₁", "θ₂")) -> Figure:
    """Contours of the loss over two scalar parameters (``zs[i, j]`` is the loss at
    ``(xs[j], ys[i])``) and the path of the iterates ``path`` (shape (n, 2)) up to ``k``."""
    fig, (ax,) = _new_figure(1)
    set_iteration, _ = _draw_contour(ax, xs, ys, zs, path=path, names=names)
    set_iteration(len(path) - 1 if k is None else k)
    return fig


class DescentPlot:
    """The picture of a gradient-descent run at any iteration: the loss curve, beside
    the loss slice (one scalar parameter) or contour (two), when given.

    ``slice`` is a dict with ``xs, ys, path_x, path_loss, slopes, name`` (see
    :func:`loss_slice`); ``contour`` a dict with ``xs, ys, zs, path, names`` (see
    :func:`loss_contour`). ``figure(k)`` builds a new Figure; ``png(k)`` reuses one figure
    whose background is drawn once, moving only the markers, and caches recent PNGs.
    """

    def __init__(self, losses, *, stopped_at=None, slice=None, contour=None, cache_size=64):
        self.losses = np.asarray(losses, dtype=float)
        self.stopped_at = stopped_at
        self.slice = slice
        self.contour = contour
        self._cache = OrderedDict()
        self._cache_size = cache_size
        self._live = None          # (figure, set_iteration) reused by png()

    @property
    def panels(self) -> int:
        return 1 + (self.slice is not None or self.contour is not None)

    def _build(self) -> tuple:
        """A new figure, a function drawing iteration k on it, and the artists it moves."""
        fig, axes = _new_figure(self.panels)
        panels = [_draw_loss_curve(axes[0], self.losses, stopped_at=self.stopped_at)]
        if self.slice is not None:
            s = self.slice
            panels.append(_draw_slice(axes[1], s["xs"], s["ys"], path_x=s["path_x"],
                                      path_loss=s["path_loss"], slopes=s["slopes"],
                                      name=s.get("name", "θ")))
        elif self.contour is not None:
            c = self.contour
            panels.append(_draw_contour(axes[1], c["xs"], c["ys"], c["zs"], path=c["path"],
                                        names=c.get("names", ("θ₁", "θ₂"))))

        def set_iteration(k):
            for setter, _ in panels:
                setter(k)
        return fig, set_iteration, [a for _, artists in panels for a in artists]

    def figure(self, k: int) -> Figure:
        """A new Figure showing iteration ``k``."""
        fig, set_iteration, _ = self._build()
        set_iteration(k)
        return fig

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
            fig, set_iteration, moving = self._build()
            for artist in moving:
                artist.set_animated(True)          # left out of the background
            canvas = fig.canvas
            canvas.draw()
            self._live = (fig, set_iteration, moving, canvas.copy_from_bbox(fig.bbox))
        fig, set_iteration, moving, background = self._live
        canvas = fig.canvas
        canvas.restore_region(background)
        set_iteration(k)
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
