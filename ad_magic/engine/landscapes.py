"""Loss landscapes to learn gradient descent on: functions of two Tensors with known minima.

Each landscape is a :class:`Landscape`: call it with two Tensors (or numbers, or NumPy
arrays of the same shape: everything it does is elementwise) and it returns their loss.
It also knows its minima, a starting point that shows something, and a frame that holds
both, so a cell, the gallery or a test can use it directly::

    from ad_magic.landscapes import rosenbrock
    x, y = rosenbrock.tensors()            # new leaf Tensors at rosenbrock.start
    loss = rosenbrock(x, y)                # a scalar Tensor named "rosenbrock": replay it with descend()

A DescentExplorer (and so ``%%autodiff --descent``) whose loss is such a tensor marks the
landscape's minima on its contour (:func:`landscape_of`).

- :data:`rosenbrock` — (1 − x)² + 100 (y − x²)²: a long curved valley, minimum (1, 1).
- :data:`beale` — (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²: flat
  plateaus and steep walls, minimum (3, 0.5).
- :data:`himmelblau` — (x² + y − 11)² + (x + y² − 7)²: four minima, all of value 0.
- :func:`ill_conditioned` — ½ (x² + κ y²): a quadratic whose Hessian has condition number
  κ (``condition=``); the minimum is (0, 0). Plain descent zig-zags as κ grows.
- :data:`saddle` — x² + y⁴/4 − y²/2: a saddle point at (0, 0) between two minima
  (0, ±1). Started exactly on y = 0, gradient descent converges to the saddle.
"""
from __future__ import annotations

import numbers

import numpy as np

from .tensor import Tensor

__all__ = ["Landscape", "rosenbrock", "beale", "himmelblau", "ill_conditioned", "saddle", "LANDSCAPES",
           "landscape_of"]


class Landscape:
    """A loss of two parameters with its known minima.

    ``landscape(x, y)`` is the loss (Tensors in, a Tensor out; numbers or arrays in, an
    array out). ``minima`` are the points where it is lowest (each a pair), with value
    ``minimum_value``; ``saddle_points`` are stationary points that are not minima;
    ``start`` is a suggested starting point and ``frame`` ((x_low, x_high),
    (y_low, y_high)) a view holding the start and the minima; ``lr`` a learning rate
    at which plain gradient descent from ``start`` makes progress without blowing up.
    """

    def __init__(self, name, function, *, formula, minima, minimum_value=0.0, start, frame, lr,
                 saddle_points=(), parameters=None):
        self.name, self._function, self.formula = name, function, formula
        self.minima = tuple(tuple(float(v) for v in m) for m in minima)
        self.minimum_value = float(minimum_value)
        self.saddle_points = tuple(tuple(float(v) for v in s) for s in saddle_points)
        self.start = tuple(float(v) for v in start)
        self.frame = tuple(tuple(float(v) for v in f) for f in frame)
        self.lr = float(lr)
        self.parameters = dict(parameters or {})

    def __call__(self, x, y):
        if isinstance(x, Tensor) or isinstance(y, Tensor):
            out = self._function(x, y, **self.parameters)
            if out.name is None:
                out.name = self.name     # so the graph shows what it is
            out._landscape = self        # so the explorer knows which landscape (landscape_of)
            return out
        return np.asarray(self._function(np.asarray(x, dtype=float), np.asarray(y, dtype=float),
                                         **self.parameters), dtype=float)

    def tensors(self, start=None, names=("x", "y")):
        """Two new scalar leaf Tensors at ``start`` (default: the landscape's own)."""
        start = self.start if start is None else start
        try:
            x0, y0 = (float(v) for v in start)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: start must be a pair of numbers (x, y), got {start!r}") from None
        return Tensor(x0, name=names[0]), Tensor(y0, name=names[1])

    def __repr__(self):
        extra = "".join(f", {k}={v:g}" for k, v in self.parameters.items())
        return f"<landscape {self.name}{extra}: {self.formula}>"


def _rosenbrock(x, y):
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def _beale(x, y):
    return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2
            + (2.625 - x + x * y * y * y) ** 2)


def _himmelblau(x, y):
    return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2


def _quadratic(x, y, condition):
    return 0.5 * (x * x + condition * (y * y))


def _saddle(x, y):
    return x * x + 0.25 * y ** 4 - 0.5 * (y * y)


rosenbrock = Landscape(
    "rosenbrock", _rosenbrock, formula="(1 - x)² + 100 (y - x²)²",
    minima=[(1.0, 1.0)], start=(-1.5, 2.0), frame=((-2.0, 2.0), (-1.0, 3.0)), lr=1e-3)

beale = Landscape(
    "beale", _beale, formula="(1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²",
    minima=[(3.0, 0.5)], start=(1.0, 1.5), frame=((-1.0, 4.5), (-1.5, 2.0)), lr=1e-3)

himmelblau = Landscape(
    "himmelblau", _himmelblau, formula="(x² + y - 11)² + (x + y² - 7)²",
    minima=[(3.0, 2.0), (-2.805118086952745, 3.131312518250573),
            (-3.779310253377747, -3.283185991286170), (3.584428340330492, -1.848126526964404)],
    start=(0.0, 0.0), frame=((-5.0, 5.0), (-5.0, 5.0)), lr=0.01)

saddle = Landscape(
    "saddle", _saddle, formula="x² + y⁴/4 - y²/2",
    minima=[(0.0, 1.0), (0.0, -1.0)], minimum_value=-0.25, saddle_points=[(0.0, 0.0)],
    start=(1.5, 0.01), frame=((-2.0, 2.0), (-2.0, 2.0)), lr=0.1)


def ill_conditioned(x=None, y=None, *, condition=10.0):
    """½ (x² + κ y²) with κ = ``condition`` (≥ 1): its Hessian diag(1, κ) has condition
    number κ. ``ill_conditioned(x, y)`` is the loss; ``ill_conditioned(condition=50)`` the
    :class:`Landscape` itself. Its ``lr`` is 1/κ: gradient descent is stable below 2/κ
    (the steep direction), and then crawls along x at a rate of 1/κ per step."""
    if isinstance(condition, bool) or not isinstance(condition, numbers.Real) or not condition >= 1:
        raise ValueError(f"ill_conditioned: condition must be a number of at least 1, got {condition!r}")
    landscape = Landscape(
        "ill_conditioned", _quadratic, formula=f"(x² + {float(condition):g} y²) / 2",
        minima=[(0.0, 0.0)], start=(-4.0, 1.0), frame=((-5.0, 5.0), (-2.0, 2.0)),
        lr=1.0 / condition, parameters={"condition": float(condition)})
    if x is None and y is None:
        return landscape
    return landscape(x, y)


def landscape_of(loss):
    """The landscape that made the Tensor ``loss`` (the very Landscape object, with its
    parameters, e.g. κ of an ill-conditioned quadratic), or None for any other value.

    The tensor itself records it, not its name: two ill-conditioned quadratics share a
    name but not their κ, and a loss a user names "rosenbrock" is not Rosenbrock's."""
    if not isinstance(loss, Tensor):
        return None
    return getattr(loss, "_landscape", None)


LANDSCAPES = {
    "rosenbrock": rosenbrock,
    "beale": beale,
    "himmelblau": himmelblau,
    "ill_conditioned": ill_conditioned(),
    "saddle": saddle,
}
"""Every landscape by name (the ill-conditioned quadratic with κ = 10)."""
