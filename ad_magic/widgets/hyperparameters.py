"""Live hyperparameters for the DescentExplorer: :class:`HyperparameterControls`, a box of widgets.

Per optimizer: a learning-rate slider on a log scale (its readout writes a learning
rate as the explorer's header does, :func:`ad_magic.widgets.race.format_lr`) and, where
the optimizer has them, momentum's β or Adam's β₁ and β₂; for up to four scalar
parameters, the start point typed in; and Reset. The sliders update on release (``continuous_update=False``): each
move is a whole re-run.

The controls know nothing of the runs: they are made from the optimizers (their names
and the Optimizer objects a first run used, whose ``lr``, ``momentum`` and ``betas`` the
sliders start at) and the start point, and say what the learner changed through four
callbacks, the interface with the explorer:

- ``on_hyperparameters(name, lr, opts)`` — a slider of optimizer ``name`` was released:
  its learning rate and options now (``{"momentum": β}``, ``{"betas": (β₁, β₂)}`` or
  ``{}``);
- ``on_start(values)`` — the start point was typed: one float per parameter;
- ``on_reset()`` — Reset was pressed (the owner puts its values back and calls
  :meth:`HyperparameterControls.restore`);
- ``on_problem(text)`` — what was typed cannot be used, in one sentence.
"""
from __future__ import annotations

import math
import numbers
import re

import ipywidgets as widgets

from ..engine import optim
from ..engine.formatting import escape
from .race import LR_READOUT

__all__ = ["HyperparameterControls", "LR_DECADES", "MAX_START_INPUTS"]

MAX_START_INPUTS = 4            # scalar parameters up to this many get a typed start point
LR_DECADES = (3, 2)             # the lr slider spans this many decades below and above the given lr


def _sliders(optimizer) -> dict:
    """The sliders for one Optimizer object, at its values: "lr", and "momentum" or
    "beta1"/"beta2" where it has them."""
    sliders = {}
    lr = float(optimizer.lr)
    exponent = min(max(math.floor(math.log10(lr)), -290), 290)   # 10**max must stay finite
    sliders["lr"] = widgets.FloatLogSlider(
        value=lr, base=10, min=exponent - LR_DECADES[0], max=exponent + LR_DECADES[1],
        step=0.05, description="lr", readout_format=LR_READOUT, continuous_update=False,
        layout=widgets.Layout(width="260px"))
    if isinstance(optimizer, optim.Momentum):
        sliders["momentum"] = widgets.FloatSlider(
            value=optimizer.momentum, min=0.0, max=0.99, step=0.01, description="β",
            continuous_update=False, layout=widgets.Layout(width="230px"))
    if isinstance(optimizer, optim.Adam):
        b1, b2 = optimizer.betas
        sliders["beta1"] = widgets.FloatSlider(
            value=b1, min=0.0, max=0.99, step=0.01, description="β₁",
            continuous_update=False, layout=widgets.Layout(width="230px"))
        sliders["beta2"] = widgets.FloatSlider(
            value=b2, min=0.5, max=0.9999, step=0.0001, description="β₂", readout_format=".4f",
            continuous_update=False, layout=widgets.Layout(width="250px"))
    return sliders


def _ignore(*args) -> None:
    return None


class HyperparameterControls(widgets.VBox):
    """A row of sliders per optimizer, the typed start point and Reset (see the module's doc).

    ``optimizers`` is a list of ``(name, Optimizer)`` pairs; ``start`` the scalar
    parameters' start values (None, or more than ``MAX_START_INPUTS``: no typed start)
    and ``names`` their names. ``sliders[name]`` maps "lr", "momentum", "beta1",
    "beta2" to optimizer ``name``'s sliders; ``start_inputs`` are the start boxes;
    ``reset_button`` is Reset. Keyword arguments other than the callbacks go to the box.
    """

    def __init__(self, optimizers, start=None, names=(), *, on_hyperparameters=_ignore, on_start=_ignore,
                 on_reset=_ignore, on_problem=_ignore, **box):
        self.on_hyperparameters, self.on_start = on_hyperparameters, on_start
        self.on_reset, self.on_problem = on_reset, on_problem
        self._holding = False               # True while restore() sets several controls at once
        self.sliders = {}
        rows = []
        for name, optimizer in optimizers:
            sliders = self.sliders[name] = _sliders(optimizer)
            for key, slider in sliders.items():
                slider.add_class(f"ad-hyper-{key}")      # for a page's scripts and tests
                slider.observe(lambda change, name=name: self._slider_moved(name), names="value")
            label = widgets.HTML(f"<b>{escape(name)}</b>", layout=widgets.Layout(width="90px"))
            row = widgets.HBox([label, *sliders.values()], layout=widgets.Layout(flex_flow="row wrap"))
            row.add_class("ad-optimizer-" + re.sub(r"[^a-z0-9]+", "-", name.lower()))
            rows.append(row)
        self.start_inputs = []
        extra = []
        if start is not None and len(start) <= MAX_START_INPUTS:
            for value, name in zip(start, names):
                entry = widgets.FloatText(value=float(value), description=f"{name}₀",
                                          layout=widgets.Layout(width="160px"))
                entry.observe(lambda change: self._start_moved(), names="value")
                self.start_inputs.append(entry)
            extra = [widgets.HTML("start:"), *self.start_inputs]
        self.reset_button = widgets.Button(description="Reset", layout=widgets.Layout(width="80px"),
                                           tooltip="back to the values this explorer was made with")
        self.reset_button.on_click(lambda button: self.on_reset())
        rows.append(widgets.HBox([*extra, self.reset_button],
                                 layout=widgets.Layout(align_items="center", flex_flow="row wrap")))
        self._initial = ({name: {key: s.value for key, s in sliders.items()} for name, sliders in self.sliders.items()},
                         [entry.value for entry in self.start_inputs])
        box.setdefault("layout", widgets.Layout(border="1px solid #e2e8f0", padding="2px 4px"))
        super().__init__(rows, **box)
        self.add_class("ad-descent-controls")

    def values(self, name) -> tuple:
        """Optimizer ``name``'s ``(lr, opts)`` as its sliders say now."""
        sliders = self.sliders[name]
        opts = {}
        if "momentum" in sliders:
            opts["momentum"] = float(sliders["momentum"].value)
        if "beta1" in sliders:
            opts["betas"] = (float(sliders["beta1"].value), float(sliders["beta2"].value))
        return float(sliders["lr"].value), opts

    @property
    def start(self) -> list:
        """The start point as typed (floats), or [] without start boxes."""
        return [entry.value for entry in self.start_inputs]

    def _slider_moved(self, name) -> None:
        if not self._holding:
            self.on_hyperparameters(name, *self.values(name))

    def _start_moved(self) -> None:
        if self._holding:
            return
        values = self.start
        bad = next((v for v in values if not (isinstance(v, numbers.Real) and math.isfinite(v))), None)
        if bad is not None:
            self.on_problem(f"The start must be a finite number, got {bad!r}.")
            return
        self.on_start([float(v) for v in values])

    def restore(self) -> None:
        """Every slider and start box back to the value it was made with, calling no callback."""
        sliders, start = self._initial
        self._holding = True
        try:
            for name, values in sliders.items():
                for key, value in values.items():
                    self.sliders[name][key].value = value
            for entry, value in zip(self.start_inputs, start):
                entry.value = value
        finally:
            self._holding = False
