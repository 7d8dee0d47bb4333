"""The loss over a grid of parameter values, around the paths gradient descent took.

NumPy only: the loss is given as functions of parameter values, so this module knows
nothing of Tensors, widgets or plots. A DescentExplorer frames its runs' paths with
:func:`frame`, asks :func:`frame_holds` after a re-run whether the landscape already
drawn still holds them, and samples the loss over the frame with :func:`sample`:

- one parameter: ``(xs,), ys`` — the loss slice L(θ) over ``SLICE_POINTS`` values;
- two parameters: ``(xs, ys), zs`` — ``zs[i, j]`` is the loss at ``(xs[j], ys[i])``
  (``np.meshgrid``'s order, which matplotlib's contour takes), over
  ``CONTOUR_POINTS`` values per axis.

A path is a pair ``(points, losses)``: ``points[k]`` the parameters at iteration k (one
column per parameter), ``losses[k]`` the loss there.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["SLICE_POINTS", "CONTOUR_POINTS", "CONTOUR_POINTS_POINTWISE", "frame", "frame_holds", "sample",
           "grid_size"]

SLICE_POINTS = 161
CONTOUR_POINTS = 41
CONTOUR_POINTS_POINTWISE = 25   # when the loss must be evaluated once per grid point
PAD = 0.15                      # room on each side of what a frame holds, as a fraction of its span
EDGE = 0.05                     # a start in the outer 5% of the frame asks for a new one
DIVERGED = 1e4                  # iterates whose loss exceeds this many times the start's are not framed


def _sane(losses) -> np.ndarray:
    """The iterates worth framing: not those of a diverging run whose loss shot far
    above the start (they would flatten the rest)."""
    losses = np.asarray(losses, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        return (np.abs(losses) <= DIVERGED * (abs(losses[0]) + 1)) | (np.arange(len(losses)) == 0)


def _coordinates(points, i) -> np.ndarray:
    return np.asarray(points, dtype=float).reshape(len(points), -1)[:, i]


def _around(i, start, paths, minima) -> tuple:
    """A range of parameter i's values holding every path, the start and the minima,
    with room on both sides (the start never sits on the edge)."""
    values = [float(start[i])]
    values += [float(m[i]) for m in minima if len(m) > i]
    for points, losses in paths:
        path = _coordinates(points, i)
        with np.errstate(invalid="ignore"):
            values += list(path[_sane(losses) & (np.abs(path) <= 1e100)])
    finite = np.array([v for v in values if math.isfinite(v)])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    span = high - low
    pad = PAD * span if span > 0 else max(1.0, 0.5 * abs(low))
    return low - pad, high + pad


def frame(start, paths, minima=()) -> tuple:
    """``((low, high), ...)``, one range per parameter of ``start`` (a sequence of
    floats): it holds the start well inside, every path but the iterates of a diverging
    run, and the ``minima`` (points)."""
    return tuple(_around(i, start, paths, minima) for i in range(len(start)))


def frame_holds(bounds, start, paths) -> bool:
    """Does the frame ``bounds`` still hold the start well inside (not in its outer 5%)
    and every path (all but the iterates of a diverging run)?"""
    for i, (low, high) in enumerate(bounds):
        margin = EDGE * (high - low)
        if not low + margin <= float(start[i]) <= high - margin:
            return False
        for points, losses in paths:
            path = _coordinates(points, i)[_sane(losses)]
            with np.errstate(invalid="ignore"):
                if np.any((path < low) | (path > high)):
                    return False
    return True


def grid_size(dimensions: int, pointwise: bool) -> int:
    """Points per axis: fewer when the loss is evaluated once per point."""
    if dimensions == 1:
        return SLICE_POINTS // 2 if pointwise else SLICE_POINTS
    if dimensions == 2:
        return CONTOUR_POINTS_POINTWISE if pointwise else CONTOUR_POINTS
    raise ValueError(f"a landscape is drawn over one or two parameters, not {dimensions}")


def _grids(bounds, n) -> tuple:
    axes = tuple(np.linspace(low, high, n) for low, high in bounds)
    return axes, (axes if len(axes) == 1 else tuple(np.meshgrid(*axes)))


def sample(bounds, loss_at, loss_on_grid=None) -> tuple:
    """The loss over the frame ``bounds`` (one or two ranges): ``(axes, z)``.

    ``loss_at(values)`` is the loss (a float; NaN where it cannot be evaluated) at one
    point, given one value per parameter. ``loss_on_grid(grids)``, if given, is the loss
    evaluated once with each parameter set to its whole grid (an array of the grids'
    shape, or None when it cannot be): right only when the loss is elementwise in the
    parameters, so it is checked at three points against ``loss_at`` and used only if
    they agree; otherwise the loss is evaluated point by point, on a coarser grid.
    """
    dimensions = len(bounds)
    if loss_on_grid is not None:
        axes, grids = _grids(bounds, grid_size(dimensions, pointwise=False))
        shape = grids[0].shape
        try:
            z = loss_on_grid(grids)
            z = None if z is None else np.asarray(z, dtype=float)
        except Exception:   # a loss that is not elementwise in its parameters (a matmul, a reshape)
            z = None
        if z is not None and z.shape == shape:
            probes = [np.unravel_index(i, shape) for i in (0, z.size // 3, z.size - 1)]
            if all(np.isclose(z[i], loss_at([g[i] for g in grids]), rtol=1e-9, atol=1e-12, equal_nan=True)
                   for i in probes):
                return axes, z
    axes, grids = _grids(bounds, grid_size(dimensions, pointwise=True))
    z = np.empty(grids[0].shape)
    for i in np.ndindex(z.shape):
        z[i] = loss_at([g[i] for g in grids])
    return axes, z
