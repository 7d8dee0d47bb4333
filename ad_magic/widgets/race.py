"""The runs of a DescentExplorer: one per optimizer of a race.

A :class:`Run` is one optimizer's descent as the explorer keeps it — its name, what it
is (a name, an Optimizer class or instance), its hyperparameters now and as first given
(for Reset), its :class:`~ad_magic.optim.DescentHistory` and the graph's state at each
iteration. :func:`make_runs` checks a race's list (known names, each once, a learning
rate for each) and routes keyword options (``momentum=``, ``betas=``, ``eps=``) to the
optimizers that take them. :func:`summary_lines` says how the runs went, in words: the
explorer's header (redrawn after every live change) and the magic's text.
"""
from __future__ import annotations

import inspect
import math

import numpy as np

from ..engine import optim
from ..engine.formatting import format_array, format_number

__all__ = ["Run", "make_runs", "optimizer_name", "format_lr", "LR_READOUT", "summary_lines", "parameter_summary"]


def optimizer_name(spec) -> str:
    """The name a run is known by: "sgd", "momentum", "adam", or a class's name."""
    if isinstance(spec, str):
        return spec.strip().lower()
    cls = spec if isinstance(spec, type) else type(spec)
    for name, known in optim.OPTIMIZERS.items():
        if cls is known:
            return name
    return getattr(cls, "__name__", repr(spec)).lower()


def optimizer_class(spec):
    if isinstance(spec, str):
        return optim.OPTIMIZERS.get(spec.strip().lower())
    if isinstance(spec, type):
        return spec
    return None                      # an instance: it takes no options


def takes(cls, option: str) -> bool:
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return option in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class Run:
    """One optimizer's descent in the explorer, as data: what it is (``spec``), its
    hyperparameters (``lr``, ``opts``: now, and ``initial``: as first given, for Reset),
    its :class:`~ad_magic.optim.DescentHistory` and whatever was recorded of the graph
    at each iteration (``states``). The widgets that change it live in
    :class:`ad_magic.widgets.hyperparameters.HyperparameterControls`."""

    def __init__(self, name, spec, lr, opts):
        self.name, self.spec, self.lr, self.opts = name, spec, lr, dict(opts)
        self.initial = (lr, dict(opts))
        self.history = None
        self.states = {}             # iteration -> what was recorded (the explorer: structure, values, grads)

    def __repr__(self):
        ran = "not run" if self.history is None else f"{len(self.history) - 1} steps"
        return f"Run({self.name!r}, lr={self.lr!r}, {ran})"

    @property
    def live(self) -> bool:
        """Can it run again with other hyperparameters (not a given Optimizer instance)?"""
        return not isinstance(self.spec, optim.Optimizer)


def make_runs(optimizer, optimizers, lr, opts) -> list:
    """The runs of an explorer: ``[Run(optimizer)]`` alone, or one per entry of
    ``optimizers`` (names, Optimizer classes or instances; each once). ``lr`` is one
    number or a dict by name; each keyword option goes to the optimizers that take it."""
    if optimizers is None:
        return [Run(optimizer_name(optimizer), optimizer, lr, opts)]
    if isinstance(optimizers, (str, optim.Optimizer)) or isinstance(optimizers, type):
        optimizers = [optimizers]
    specs = list(optimizers)
    if not specs:
        raise optim.DescentInputError("optimizers is empty: name at least one, e.g. ['sgd', 'adam'].")
    optim.optimizer_classes(specs, "optimizers")   # known names, classes or instances, each once
    names = [optimizer_name(spec) for spec in specs]
    if isinstance(lr, dict):
        lrs = {str(k).strip().lower(): v for k, v in lr.items()}
        unknown = sorted(set(lrs) - set(names))
        if unknown:
            raise optim.DescentInputError(f"lr names {unknown[0]!r}, which is not in the race ({', '.join(names)}).")
        missing = [n for n in names if n not in lrs]
        if missing:
            raise optim.DescentInputError(f"lr has no learning rate for {missing[0]!r}; give one per optimizer "
                                          "or a single number for all.")
    else:
        lrs = dict.fromkeys(names, lr)
    classes = [optimizer_class(spec) for spec in specs]
    for option in opts:
        if not any(cls is not None and takes(cls, option) for cls in classes):
            raise optim.DescentInputError(f"no optimizer in the race ({', '.join(names)}) takes the option "
                                          f"{option}=.")
    return [Run(name, spec, lrs[name],
                 {k: v for k, v in opts.items() if cls is not None and takes(cls, k)})
            for name, spec, cls in zip(names, specs, classes)]


# ------------------------------------------------------------------ how the runs went, in words

# The lr slider's readout (a d3-format spec, run in the browser: 3 significant digits, trailing
# zeros dropped, JavaScript's toPrecision) writes what format_lr writes.
LR_READOUT = ".3"


def format_lr(lr) -> str:
    """A learning rate as a learner reads it, and as the lr slider's readout shows it:
    three significant digits, trailing zeros dropped (``0.000282``, ``0.1``, ``1.78``,
    ``0.00001``; ``3.16e-7`` and ``1.5e+3`` out of 10⁻⁶…10³), not the slider's ``0.000281838``."""
    lr = float(lr)
    mantissa, exponent = f"{lr:.2e}".split("e")
    exponent = int(exponent)
    if lr == 0 or -7 < exponent < 3 or not math.isfinite(lr):
        return np.format_float_positional(lr, precision=3, unique=False, fractional=False, trim="-")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent:+d}"


def parameter_summary(named, small=4, listed=6) -> str:
    """Where the parameters ended, from ``(name, data)`` pairs: the values of the small
    ones, the names of the rest."""
    shown, rest = [], []
    for name, data in named:
        data = np.asarray(data)
        if data.size <= small:
            shown.append(f"{name} = {' '.join(format_array(data).split())}")
        else:
            rest.append(name)
    if rest:
        shown.append(f"updated in place: {', '.join(rest) if len(rest) <= listed else f'{len(rest)} tensors'}")
    return "; ".join(shown)


def summary_lines(runs, named) -> list:
    """How the runs went, now: ``[(text, stopped)]``, one line for a single run, a head
    line and one line per optimizer for a race. ``named`` pairs each parameter's name
    with its data now (the first run's last values)."""
    if len(runs) == 1:
        run = runs[0]
        h = run.history
        last = len(h.losses) - 1
        how = f"{run.name}, lr={format_lr(run.lr)}"
        head = (f"Gradient descent ({how}) stopped at iteration {last}" if h.stopped
                else f"Gradient descent ({how}), {last} iterations")
        where = parameter_summary(named)
        text = f"{head}: loss {format_number(h.losses[0])} → {format_number(h.losses[-1])}" + (
            f"; {where}." if where else ".")
        return [(text, bool(h.stopped))] + _note_lines(run)
    lines = [(f"Race of {', '.join(r.name for r in runs)} from the same start; the parameters end at "
              f"{runs[0].name}'s values.", False)]
    for run in runs:
        h = run.history
        last = len(h.losses) - 1
        if h.stopped:
            lines.append((f"{run.name}: stopped at iteration {last} (lr={format_lr(run.lr)})", True))
        else:
            lines.append((f"{run.name}: loss {format_number(h.losses[0])} → {format_number(h.losses[-1])} "
                          f"in {last} iterations (lr={format_lr(run.lr)})", False))
        lines += _note_lines(run)
    return lines


def _note_lines(run) -> list:
    """What the optimizer said about its steps (Newton: a Hessian that is not positive
    definite), once per run: the first note, and at which iterations it was said."""
    notes = getattr(run.history, "notes", [])
    if not notes:
        return []
    at = ", ".join(str(k) for k, _ in notes[:8]) + (", …" if len(notes) > 8 else "")
    return [(f"{run.name}, iteration{'s' if len(notes) > 1 else ''} {at}: {notes[0][1]}.", True)]
