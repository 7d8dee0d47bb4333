"""The descents of a DescentExplorer: every optimizer of a race from one start on one loss.

:class:`DescentRuns` runs :func:`ad_magic.optim.descend` — the one descent loop — once
per :class:`~ad_magic.widgets.race.Run`, checks every run's inputs with
:func:`ad_magic.optim.check_descent` before any of them moves anything, and is the one
owner of the parameters' state (and a Tensor loss's graph) around those runs:

- after the runs, a re-run, or sampling the loss away from the path, each parameter's
  data and grad are those of the first run's last iteration, and a Tensor loss's graph
  is replayed there, grads included (:meth:`DescentRuns.settle`); a Tensor loss is
  sampled on a detached copy of its graph, so drawing never moves the user's graph;
- if a first run raises (an error in a loss function, a graph that cannot be drawn,
  an interrupt), every tensor of a Tensor loss's graph — for a loss function, every
  parameter — gets back its data and grad as they were before; the same holds for
  any block of the caller's inside :meth:`DescentRuns.undo_on_error` (the explorer
  builds its picture and widgets in one).

No widgets, no plots: the explorer's controls change ``start`` and a run's
hyperparameters, then call :meth:`DescentRuns.rerun`.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from ..engine import landscape_grid, optim
from ..engine.backprop import detached_copy, topological_order
from ..engine.tensor import Tensor, no_grad
from .race import Run, make_runs

__all__ = ["DescentRuns", "set_data"]


def set_data(p: Tensor, value) -> None:
    """``p.data = value``, written into p's own array when it can be (as the optimizers
    do), so that a view of ``p.data`` sees it too."""
    data = p.data
    value = np.asarray(value)
    if data.ndim and data.flags.writeable and data.shape == value.shape and data.dtype == value.dtype:
        data[...] = value
    else:
        p.data = np.array(value)


class DescentRuns:
    """Run ``descend`` for each optimizer from the same start, and keep one consistent state.

    ``loss`` is a scalar Tensor (its graph replayed at every iteration) or a function of
    no arguments returning one; ``params`` the leaf Tensors to update. ``optimizer`` /
    ``optimizers``, ``lr`` and ``opts`` are as :func:`ad_magic.widgets.race.make_runs` takes them.
    ``record(k, loss)``, if given, is called at every iteration of a run with the loss
    Tensor, and what it returns is kept in ``run.states[k]`` once the run completes.

    Nothing runs until :meth:`run`. ``start`` (one array per parameter) is where every
    run starts: the parameters' data when this was made.
    """

    def __init__(self, loss, params, *, optimizer="sgd", optimizers=None, lr=0.1, steps=50, opts=None,
                 record=None):
        self.runs = make_runs(optimizer, optimizers, lr, dict(opts or {}))
        # descend's own checks, each input once, before the first run moves anything: the loss,
        # the parameters and steps with the first run, the optimizer of every other run alone.
        first = self.runs[0]
        params, _ = optim.check_descent(loss, params, first.spec, first.lr, steps, **first.opts)
        for run in self.runs[1:]:
            optim.check_optimizer(run.spec, params, run.lr, **run.opts)
        self.loss = loss
        self.params = params
        self.steps = int(steps)
        self.record = record
        self.start = [np.array(p.data) for p in params]
        self.initial_start = [a.copy() for a in self.start]
        self._saved = None              # the state undo_on_error puts back

    @property
    def replayed(self) -> bool:
        """Is the loss a Tensor whose graph is replayed (not a function called anew)?"""
        return isinstance(self.loss, Tensor)

    def run(self) -> None:
        """Run every optimizer, in order, then :meth:`settle`. If one raises, everything
        it could have changed is put back as it was (:meth:`undo_on_error`), and the
        error goes on."""
        with self.undo_on_error():
            for i, run in enumerate(self.runs):
                self._descend(run, replay=i > 0)
            self.settle()

    @contextlib.contextmanager
    def undo_on_error(self):
        """Inside this block, an error (or an interrupt) puts every tensor of a Tensor
        loss's graph — for a loss function, every parameter — back to its data and grad
        as they were when the block began, and goes on. (A block inside another one
        leaves it to the outer one.)"""
        if self._saved is not None:
            yield
            return
        self._saved = [(t, np.array(t.data), None if t.grad is None else np.array(t.grad))
                       for t in (topological_order(self.loss) if self.replayed else self.params)]
        try:
            yield
        except BaseException:
            params = {id(p) for p in self.params}
            for t, data, grad in self._saved:
                if id(t) in params:
                    set_data(t, data)       # in place, as the optimizers wrote it
                else:
                    t.data = data
                t.grad = grad
            raise
        finally:
            self._saved = None

    def rerun(self, runs=None):
        """Run these runs again (default: all), from ``start`` with their hyperparameters
        now, then :meth:`settle`. A run that raises keeps its last history and stops the
        rest: returns the problem in one sentence, or None."""
        problem = None
        for run in self.runs if runs is None else runs:
            try:
                self._descend(run, replay=True)
            except Exception as exc:   # e.g. a loss function that fails at the new start: say so, keep the rest
                problem = f"{run.name} not re-run: {type(exc).__name__}: {exc}"
                break
        self.settle()
        return problem

    def _descend(self, run: Run, *, replay: bool) -> None:
        """``descend`` for one run from ``start`` (descend replays a Tensor loss's graph
        from there, so every run starts from the same loss)."""
        if replay:
            for p, value in zip(self.params, self.start):
                set_data(p, value)
        if isinstance(run.spec, optim.Optimizer) and replay and run.history is not None:
            raise ValueError(f"{run.name}: an Optimizer instance runs once; pass its name or class "
                             "to run it again.")
        states = {}                      # kept only if the run completes
        callback = None
        if self.record is not None:
            def callback(k, loss):
                states[k] = self.record(k, loss)
        optimizer = optim.check_optimizer(run.spec, self.params, run.lr, **run.opts)   # the live lr and options
        with np.errstate(all="ignore"):
            history = optim.run_descent(self.loss, self.params, optimizer, self.steps, callback=callback)
        run.history, run.states, run.lr = history, states, history.lr

    def settle(self) -> None:
        """The one place the state after a descent is set: every parameter's data and
        grad those of the first run's last iteration (a Tensor loss's graph replayed
        there, grads included), whichever run went last."""
        first = self.runs[0].history
        for p, value in zip(self.params, first.params[-1]):
            set_data(p, value)
        if self.replayed:
            try:
                with np.errstate(all="ignore"):
                    self.loss.forward()
                    self.loss.backward()
            except Exception:   # the run itself evaluated these values: nothing new can fail
                pass
        else:
            for p, grad in zip(self.params, first.grads[-1]):
                p.grad = np.array(grad, dtype=p.dtype)

    # -- hyperparameters and the start, as the controls change them
    def run_named(self, name) -> Run:
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(f"no optimizer {name!r} in this explorer; it has {', '.join(r.name for r in self.runs)}")

    def set_hyperparameters(self, name, lr, opts) -> Run:
        """Run ``name`` with this learning rate and these options (added to its own) next time."""
        run = self.run_named(name)
        run.lr = float(lr)
        run.opts.update(opts)
        return run

    def set_start(self, values) -> None:
        """Start every run from these values next time (one per parameter)."""
        if len(values) != len(self.start):
            raise ValueError(f"the start needs {len(self.start)} values, one per parameter, got {len(values)}")
        self.start = [np.array(v, dtype=old.dtype).reshape(old.shape) for v, old in zip(values, self.start)]

    def reset(self) -> None:
        """The start and every run's hyperparameters back to those first given."""
        self.start = [a.copy() for a in self.initial_start]
        for run in self.runs:
            run.lr, run.opts = run.initial[0], dict(run.initial[1])

    # -- the loss away from the paths
    @property
    def scalar(self) -> bool:
        """Are the parameters scalars (their loss can be drawn over one or two of them)?"""
        return all(p.size == 1 and p.ndim == 0 for p in self.params)

    def loss_at(self, values, replica=None) -> float:
        """The loss with the parameters set to ``values``; NaN where it fails (e.g. a
        domain error far from the path). A Tensor loss is replayed on ``replica`` (a
        :func:`~ad_magic.engine.backprop.detached_copy` of its graph and the copies of the
        parameters; a new one when not given), so the user's graph and parameters never
        move; a loss function is called with the parameters set to ``values`` and leaves
        them there: see :meth:`sample`."""
        if self.replayed:
            root, params = replica if replica is not None else self.replica()
        else:
            root, params = None, self.params
        for p, value in zip(params, values):
            p.data = value
        try:
            with np.errstate(all="ignore"):
                if root is not None:
                    out = root.forward()           # forward() keeps the graph's shapes: one point at a time
                else:
                    with no_grad():
                        out = self.loss()
            return float(np.asarray(out.data).reshape(-1)[0])
        except Exception:
            return math.nan

    def replica(self) -> tuple:
        """(a detached copy of the Tensor loss's graph, the copies of the parameters in it)."""
        root, copies = detached_copy(self.loss)
        return root, [copies[id(p)] for p in self.params]

    def _loss_on_grid(self, grids):
        for p, grid in zip(self.params, grids):
            p.data = grid
        with no_grad(), np.errstate(all="ignore"):
            return self.loss().data

    def sample(self, bounds) -> tuple:
        """The loss over the frame ``bounds`` (see :func:`ad_magic.engine.landscape_grid.sample`):
        a Tensor loss is replayed point by point on a detached copy of its graph (the
        user's graph is never touched); a loss function is tried on whole grids first, with
        the parameters set, which are settled again afterwards."""
        if self.replayed:
            replica = self.replica()
            return landscape_grid.sample(bounds, lambda values: self.loss_at(values, replica))
        try:
            return landscape_grid.sample(bounds, self.loss_at, self._loss_on_grid)
        finally:
            self.settle()

    def start_point(self) -> list:
        """The start as floats (scalar parameters)."""
        return [float(np.asarray(a).reshape(-1)[0]) for a in self.start]
