"""A model's training, drawn per iteration: :class:`TrainingView`.

Give it the model (an ``nn.Module``) and its data; called with a
:class:`~ad_magic.optim.DescentRecord` it puts that iteration's parameter values into
the model for a moment, evaluates it (under ``no_grad``) on a grid over the inputs and
draws the result beside the data: the fitted curve for 1-D inputs (a regression like
the practical's Part D), the decision surface for 2-D inputs (a classification). The
DescentExplorer uses it as its ``view=`` (``DescentExplorer(loss, model, data=(X, Y))``).
The figures are matplotlib's objects, never ``pyplot``.
"""
from __future__ import annotations

import numpy as np

from ..engine import Tensor, no_grad
from ..engine.formatting import format_number
from .plots import FitPlot, SurfacePlot

__all__ = ["TrainingView"]

CURVE_POINTS = 200
SURFACE_POINTS = 60


def _array(values, what) -> np.ndarray:
    data = values.data if isinstance(values, Tensor) else values
    try:
        array = np.asarray(data, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"TrainingView: {what} must be numbers (an array or a Tensor), "
                        f"got {type(values).__name__}") from None
    return array


def _span(values, pad) -> tuple:
    low, high = float(np.min(values)), float(np.max(values))
    margin = pad * (high - low) if high > low else 1.0
    return low - margin, high + margin


class TrainingView:
    """The model at an iteration, over its data: ``view(record)`` → PNG bytes.

    ``X`` has one row per example: one column (or a 1-D array) draws the fitted curve
    over the points ``(X, Y)``; two columns draw the model's output over the plane (its
    level halfway between the targets' extremes is the decision boundary) with the
    points coloured by ``Y``. ``params`` are the Tensors a record's ``values`` belong to
    (default: ``model.parameters()``, the order the explorer uses).
    """

    def __init__(self, model, X, Y, *, params=None):
        if not callable(model):
            raise TypeError(f"TrainingView: model must be callable (an nn.Module), got {type(model).__name__}")
        self.model = model
        self.params = list(model.parameters() if params is None else params)
        X, Y = _array(X, "X"), _array(Y, "Y")
        n = X.shape[0] if X.ndim else 0
        if n == 0:
            raise ValueError("TrainingView: X has no examples")
        if Y.size != n:
            raise ValueError(f"TrainingView: Y must have one target per example of X ({n}), got shape {Y.shape}")
        if X.ndim == 1 or (X.ndim == 2 and X.shape[1] == 1):
            self.kind = "fit"
            grid = np.linspace(*_span(X, 0.02), CURVE_POINTS)
            self._inputs = grid.reshape(-1, 1) if X.ndim == 2 else grid
            self._plot = FitPlot(X.reshape(-1), Y.reshape(-1), grid)
        elif X.ndim == 2 and X.shape[1] == 2:
            self.kind = "surface"
            gx, gy = np.meshgrid(np.linspace(*_span(X[:, 0], 0.1), SURFACE_POINTS),
                                 np.linspace(*_span(X[:, 1], 0.1), SURFACE_POINTS))
            self._inputs = np.column_stack([gx.ravel(), gy.ravel()])
            self._plot = SurfacePlot(X, Y.reshape(-1), gx, gy)
            self._grid_shape = gx.shape
        else:
            raise ValueError(f"TrainingView draws 1-D inputs (a fitted curve) or 2-D inputs (a decision "
                             f"surface); X has shape {X.shape}")

    def predict(self, values=None) -> np.ndarray:
        """The model's output on the grid, with its parameters set to ``values`` meanwhile
        (default: as they are); one number per grid point (the class, for several outputs)."""
        saved = [p.data for p in self.params]
        try:
            if values is not None:
                if len(values) != len(self.params):
                    raise ValueError(f"TrainingView: the record has {len(values)} parameter values, "
                                     f"the model {len(self.params)} parameters")
                for p, v in zip(self.params, values):
                    p.data = np.array(v)
            with no_grad(), np.errstate(all="ignore"):
                out = self.model(Tensor(self._inputs, requires_grad=False))
        finally:
            for p, data in zip(self.params, saved):
                p.data = data
        out = np.asarray(out.data if isinstance(out, Tensor) else out, dtype=float)
        points = len(self._inputs)
        if out.size != points:
            out = out.reshape(points, -1).argmax(axis=1).astype(float)
        return out.reshape(-1)

    def figure(self, record=None):
        """The matplotlib Figure at ``record`` (reused between calls)."""
        return self._plot.figure(self._prediction(record), self._title(record))

    def __call__(self, record=None) -> bytes:
        """PNG bytes of the model at ``record`` (a DescentRecord; default: as it is now)."""
        return self._plot.png(self._prediction(record), self._title(record))

    def _prediction(self, record):
        return self.predict(None if record is None else record.values)

    @staticmethod
    def _title(record):
        if record is None:
            return "the model now"
        return f"iteration {record.iteration}: loss = {format_number(record.loss)}"
