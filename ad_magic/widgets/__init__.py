"""The timeline and widgets: watching backprop and gradient descent happen.

It imports the engine, drawing and the adapters, and the notebook's widget packages
(ipywidgets 8, anywidget, matplotlib), nothing of the practical or the magic above it.

- :class:`BackwardStepper` (:mod:`.stepper`, an anywidget whose front end is
  ``static/timeline.js``) steps through ``tensor.backward_steps()`` — the same generator
  ``backward()`` runs — (with ``forward=True``, after ``tensor.forward_steps()``) with a
  slider, Previous/Next and a Play button, restyling one layout of the graph per step in
  the browser and writing out the chain rule with the actual numbers; its states come
  from :class:`.timeline.Timeline`, and :mod:`.export` saves them as a page or frames.
- :class:`DescentExplorer` (:mod:`.explorer`, with :mod:`.hyperparameters`,
  :mod:`.race` and :mod:`.plots`) runs :func:`ad_magic.optim.descend` and lets you scrub
  through its iterations: the loss curve, the parameters and their grads, the loss slice
  (one parameter) or contours (two), and the graph of that iteration; ``TrainingView``
  (:mod:`.training`) follows a model's training. It is four parts: :mod:`.descent_runs`
  (the runs, through ``descend`` and its checks; the one owner of the graph's state),
  :mod:`.hyperparameters` (the controls, a component with callbacks),
  :mod:`.descent_picture` (the matplotlib picture) and :mod:`.graph_layouts` (the graph
  of an iteration, laid out once).

Both work headless: setting ``.slider.value`` updates their state synchronously, and any
step can be rendered to SVG (and, for descent, to a matplotlib Figure or PNG) without a
browser.
"""
from __future__ import annotations

from ..engine.optim import DescentRecord
from .explorer import DescentExplorer
from .stepper import BackwardStepper

__all__ = ["BackwardStepper", "DescentExplorer", "DescentRecord"]
