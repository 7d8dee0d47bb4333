"""Widgets to watch backprop happen (ipywidgets 8, standard controls only).

- :class:`BackwardStepper` (:mod:`ad_magic.stepper`) steps through
  ``tensor.backward_steps()`` — the same generator ``backward()`` runs — with a slider
  and a Play button, restyling one layout of the graph per step and writing out the
  chain rule with the actual numbers.
- :class:`DescentExplorer` (:mod:`ad_magic.explorer`) runs
  :func:`ad_magic.optim.descend` and lets you scrub through its iterations: the loss
  curve, the parameters and their grads, the loss slice (one parameter) or contours
  (two), and the graph of that iteration.

Both work headless: setting ``.slider.value`` updates their state synchronously, and any
step can be rendered to SVG (and, for descent, to a matplotlib Figure or PNG) without a
browser. This module keeps the names in one place; the code lives in those two modules.
"""
from __future__ import annotations

from .explorer import CONTOUR_POINTS, CONTOUR_POINTS_POINTWISE, SLICE_POINTS, DescentExplorer  # noqa: F401
from .graph_view import FIT_WIDTH_NODES  # noqa: F401
from .optim import DescentRecord
from .stepper import PLAY_INTERVAL_MS, SVG_CAPTION_CHARS, BackwardStepper  # noqa: F401

__all__ = ["BackwardStepper", "DescentExplorer", "DescentRecord"]
