"""Live hyperparameters for the DescentExplorer: a mixin with the sliders and what they do.

Per optimizer: a learning-rate slider on a log scale and, where the optimizer has them,
momentum's β or Adam's β₁ and β₂; for up to four scalar parameters, the start point
typed in; and Reset, back to the values the explorer was made with. Moving one re-runs
``descend`` for what it changed (every optimizer, for the start) and redraws the
explorer. The sliders update on release (``continuous_update=False``): each move is a
whole re-run.

The class using it provides ``runs``, ``params``, ``param_names``, ``start``,
``_initial_start``, ``_descend``, ``_finish``, ``_scalar_params``, ``_plot``,
``_new_plot``, ``_plot_runs``, ``_frame_holds_paths``, ``_last_iteration``,
``_status_html``, ``_show`` and its widgets (``slider``, ``play``, ``status``).
"""
from __future__ import annotations

import math
import numbers
import re

import ipywidgets as widgets
import numpy as np

from ..engine import optim
from ..engine.formatting import escape
from .race import Run

__all__ = ["HyperparameterControls", "LR_DECADES", "MAX_START_INPUTS"]

MAX_START_INPUTS = 4            # scalar parameters up to this many get a typed start point
LR_DECADES = (3, 2)             # the lr slider spans this many decades below and above the given lr


class HyperparameterControls:
    """The live controls of a DescentExplorer (a mixin: see the module's doc)."""

    hyperparameters: dict       # optimizer name -> {"lr", "momentum", "beta1", "beta2": slider}
    start_inputs: list
    reset_button = None
    _holding = False            # True while Reset sets several controls at once

    def _make_controls(self) -> widgets.VBox:
        """A row of sliders per optimizer, the typed start point and Reset."""
        rows = []
        for run in self.runs:
            sliders = run.controls = {}
            exponent = min(max(math.floor(math.log10(run.lr)), -290), 290)   # 10**max must stay finite
            sliders["lr"] = widgets.FloatLogSlider(
                value=run.lr, base=10, min=exponent - LR_DECADES[0], max=exponent + LR_DECADES[1],
                step=0.05, description="lr", readout_format=".2g", continuous_update=False,
                layout=widgets.Layout(width="260px"))
            opt = run.history.optimizer
            if isinstance(opt, optim.Momentum):
                sliders["momentum"] = widgets.FloatSlider(
                    value=opt.momentum, min=0.0, max=0.99, step=0.01, description="β",
                    continuous_update=False, layout=widgets.Layout(width="230px"))
            if isinstance(opt, optim.Adam):
                b1, b2 = opt.betas
                sliders["beta1"] = widgets.FloatSlider(
                    value=b1, min=0.0, max=0.99, step=0.01, description="β₁",
                    continuous_update=False, layout=widgets.Layout(width="230px"))
                sliders["beta2"] = widgets.FloatSlider(
                    value=b2, min=0.5, max=0.9999, step=0.0001, description="β₂", readout_format=".4f",
                    continuous_update=False, layout=widgets.Layout(width="250px"))
            run.initial_controls = {key: slider.value for key, slider in sliders.items()}
            for key, slider in sliders.items():
                slider.add_class(f"ad-hyper-{key}")      # for a page's scripts and tests
                slider.observe(lambda change, run=run: self._hyperparameter_moved(run), names="value")
            self.hyperparameters[run.name] = sliders
            name = widgets.HTML(f"<b>{escape(run.name)}</b>", layout=widgets.Layout(width="90px"))
            row = widgets.HBox([name, *sliders.values()], layout=widgets.Layout(flex_flow="row wrap"))
            row.add_class("ad-optimizer-" + re.sub(r"[^a-z0-9]+", "-", run.name.lower()))
            rows.append(row)
        extra = []
        if self._scalar_params() and len(self.params) <= MAX_START_INPUTS:
            for i, name in enumerate(self.param_names):
                box = widgets.FloatText(value=float(self.start[i]), description=f"{name}₀",
                                        layout=widgets.Layout(width="160px"))
                box.observe(lambda change, i=i: self._start_moved(i, change["new"]), names="value")
                self.start_inputs.append(box)
            extra.append(widgets.HTML("start:"))
            extra += self.start_inputs
        self.reset_button = widgets.Button(description="Reset", layout=widgets.Layout(width="80px"),
                                           tooltip="back to the values this explorer was made with")
        self.reset_button.on_click(lambda button: self.reset())
        rows.append(widgets.HBox([*extra, self.reset_button],
                                 layout=widgets.Layout(align_items="center", flex_flow="row wrap")))
        box = widgets.VBox(rows, layout=widgets.Layout(border="1px solid #e2e8f0", padding="2px 4px"))
        box.add_class("ad-descent-controls")
        return box

    def _hyperparameter_moved(self, run: Run) -> None:
        if self._holding:
            return
        sliders = run.controls
        run.lr = float(sliders["lr"].value)
        if "momentum" in sliders:
            run.opts["momentum"] = float(sliders["momentum"].value)
        if "beta1" in sliders:
            run.opts["betas"] = (float(sliders["beta1"].value), float(sliders["beta2"].value))
        self._rerun([run])

    def _start_moved(self, i: int, value) -> None:
        if self._holding:
            return
        if not (isinstance(value, numbers.Real) and math.isfinite(value)):
            self.status.value = self._status_html(f"The start must be a finite number, got {value!r}.")
            return
        self.start[i] = np.array(float(value), dtype=self.start[i].dtype)
        self._rerun(self.runs)

    def reset(self) -> None:
        """Back to the start point and hyperparameters the explorer was made with."""
        self._holding = True
        try:
            self.start = [a.copy() for a in self._initial_start]
            for run in self.runs:
                run.lr, run.opts = run.initial[0], dict(run.initial[1])
                for key, value in run.initial_controls.items():
                    run.controls[key].value = value
            for box, value in zip(self.start_inputs, self.start):
                box.value = float(value)
        finally:
            self._holding = False
        self._rerun(self.runs)

    def _rerun(self, runs) -> None:
        """Run these optimizers again (from ``self.start``, with their hyperparameters now)
        and redraw: on the same landscape unless the start or a path left it."""
        problem = None
        for run in runs:
            try:
                self._descend(run, replay=True)
            except Exception as exc:   # e.g. a loss function that fails at the new start: say so, keep the rest
                problem = f"{run.name} not re-run: {type(exc).__name__}: {exc}"
                break
        self._finish()
        if self._frame_holds_paths():
            self._plot.set_runs(self._plot_runs())
        else:
            self._plot.close()
            self._plot = self._new_plot()
        last = self._last_iteration()
        k = min(self.slider.value, last)
        self.slider.max = self.play.max = last
        self.play.disabled = last == 0
        self.status.value = self._status_html(problem)
        if self.slider.value != k:
            self.slider.value = k       # shows it
        else:
            self._show(k)
