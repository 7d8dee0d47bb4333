"""Optimizers (SGD, Momentum, Adam) and `descend`, the one gradient-descent loop.

An optimizer holds parameters and updates them in place from their grads (`step()`).
`descend(loss, params, ...)` runs gradient descent headless and returns a
`DescentHistory`; the `DescentExplorer` widget and ``%%autodiff --descent`` use it.
"""

from __future__ import annotations

import difflib
import math
import numbers

import numpy as np

from .backprop import replay_order, topological_order
from .formatting import a_type, format_number
from .functional import gradient_and_hessian
from .nn import parameter_list
from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "Momentum", "Adam", "Newton", "OPTIMIZERS", "descend", "check_descent",
           "check_optimizer", "check_lr", "check_steps", "optimizer_classes", "run_descent", "DescentInputError",
           "DescentHistory", "DescentRecord"]


class DescentInputError(ValueError, TypeError):
    """A mistake in what was given to `descend` or an optimizer (a parameter, the loss,
    ``lr``, ``steps``, the optimizer or its options), found before anything changed. It is
    a ValueError and a TypeError both, so either ``except`` catches it; the magic turns it
    into a UsageError."""


def _label(t) -> str:
    """How an error names a tensor: its name, else its repr (shortened)."""
    if t.name:
        return repr(t.name)
    text = repr(t)
    return text if len(text) <= 60 else text[:57] + "..."


def _refuse_repeats(params, who, item):
    """A tensor listed twice would be updated twice per step: one sentence naming it.
    `item` formats a position, e.g. "params[{}]"."""
    first = {}
    for i, p in enumerate(params):
        j = first.setdefault(id(p), i)
        if j != i:
            raise DescentInputError(f"{who}: the parameter {_label(p)} is listed twice ({item.format(j)} and "
                                    f"{item.format(i)}), so each step would update it twice; list each parameter once")


def check_lr(lr, who="descend", name="lr") -> float:
    """A learning rate as a float: a positive finite number, else one sentence naming
    ``who`` (the caller) and ``name`` (how the caller spells it: ``lr``, ``--lr``)."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
        raise DescentInputError(f"{who}: {name} must be a positive finite number, got {lr!r}")
    return float(lr)


def check_steps(steps, who="descend", name="steps") -> int:
    """A number of iterations: a whole number of at least 1, else one sentence."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise DescentInputError(f"{who}: {name} must be a whole number of at least 1, got {steps!r}")
    return int(steps)


def optimizer_classes(optimizers, who="descend") -> list:
    """The Optimizer class of each entry (a name, any case, or a class; None for an
    instance), each optimizer once: the one check of optimizer names, with a did-you-mean
    for a misspelt one (`descend`, a race's list, the magic's ``--optimizer``)."""
    classes, seen = [], {}
    for spec in optimizers:
        if isinstance(spec, Optimizer):
            cls, key = None, id(spec)
        elif isinstance(spec, type) and issubclass(spec, Optimizer):
            cls = key = spec
        elif isinstance(spec, str):
            cls = key = OPTIMIZERS.get(spec.strip().lower())
            if cls is None:
                close = difflib.get_close_matches(spec.strip().lower(), OPTIMIZERS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DescentInputError(f"{who}: unknown optimizer {spec!r}; choose one of {', '.join(OPTIMIZERS)}"
                                        + hint)
        else:
            raise DescentInputError(f"{who}: optimizer must be one of {', '.join(OPTIMIZERS)} or an Optimizer, "
                                    f"got {type(spec).__name__}")
        if key in seen:
            raise DescentInputError(f"{who}: optimizer {spec!r} is listed twice; list each optimizer once")
        seen[key] = spec
        classes.append(cls)
    return classes


class Optimizer:
    """Holds the parameters; `step()` updates them in place, `zero_grad()` clears grads.

    An optimizer that needs the loss itself, not only the grads (`Newton`: its second
    derivatives), sets ``uses_loss = True``: `descend` then calls ``step(loss)``. After a
    step, ``note`` is None or one sentence about that step worth telling the learner
    (`descend` keeps them in ``DescentHistory.notes``).
    """

    uses_loss = False
    note = None

    def __init__(self, params, lr):
        try:
            params = parameter_list(params, type(self).__name__)
        except TypeError as exc:
            raise DescentInputError(str(exc)) from None
        if not params:
            raise DescentInputError(f"{type(self).__name__}: got an empty list of parameters")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise DescentInputError(f"{type(self).__name__}: parameter {i} is {a_type(p)}, not a Tensor")
        _refuse_repeats(params, type(self).__name__, "parameter {}")
        self.params, self.lr = params, check_lr(lr, type(self).__name__)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        """Update every parameter that has a grad (one without a grad is left as it is)."""
        for i, p in enumerate(self.params):
            grad = p.grad
            if grad is None:
                continue
            data = p.data
            if data.ndim and data.flags.writeable:
                self._update(i, data, grad)  # in place, as PyTorch: views of p.data see the new values
            else:
                p.data = self._update(i, np.array(data), grad)

    def _update(self, i, value, grad):
        """Update ``value`` (parameter i's data) in place and return it."""
        raise NotImplementedError


class SGD(Optimizer):
    """p ← p - lr · ∂L/∂p."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, lr)

    def _update(self, i, value, grad):
        value -= self.lr * grad
        return value


class Momentum(Optimizer):
    """v ← β·v + ∂L/∂p;  p ← p - lr · v   (heavy-ball momentum, as PyTorch's SGD(momentum=β))."""

    def __init__(self, params, lr=0.01, momentum=0.9):
        super().__init__(params, lr)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum < 1:
            raise DescentInputError(f"Momentum: momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.velocity = [None] * len(self.params)

    def _update(self, i, value, grad):
        v = self.velocity[i]
        v = np.array(grad) if v is None else self.momentum * v + grad
        self.velocity[i] = v
        value -= self.lr * v
        return value


class Adam(Optimizer):
    """Adam: m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;  p ← p - lr · m̂ / (√v̂ + ε),
    with the bias corrections m̂ = m / (1-β₁ᵗ), v̂ = v / (1-β₂ᵗ), where t counts the
    updates of that parameter (as PyTorch: a parameter first updated at step 5 starts at t = 1)."""

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise DescentInputError(f"Adam: betas must be a pair (β₁, β₂), got {betas!r}") from None
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise DescentInputError(f"Adam: betas must be in [0, 1), got {betas!r}")
        if not isinstance(eps, numbers.Real) or not eps > 0:
            raise DescentInputError(f"Adam: eps must be a positive number, got {eps!r}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)
        n = len(self.params)
        self.m, self.v, self.t = [None] * n, [None] * n, [0] * n

    def _update(self, i, value, grad):
        b1, b2 = self.betas
        self.t[i] += 1
        t = self.t[i]
        m = (1 - b1) * grad if self.m[i] is None else b1 * self.m[i] + (1 - b1) * grad
        v = (1 - b2) * grad * grad if self.v[i] is None else b2 * self.v[i] + (1 - b2) * grad * grad
        self.m[i], self.v[i] = m, v
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        value -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return value


class Newton(Optimizer):
    """Newton's method: θ ← θ − lr · (H + λI)⁻¹ ∇L, where θ is every parameter's values
    flattened together, H the Hessian of the loss over them and λ = `damping`.

    It models the loss by its second-order Taylor expansion and jumps to that model's
    minimum: on a quadratic, with lr = 1, one step lands on the minimum. The Hessian has
    n² entries and costs one recorded backward pass per row, so it is for small parameter
    counts (at most `MAX_VALUES` values). Where H + λI is not positive definite (a
    non-convex region: the loss curves down along some direction) the model has no
    minimum and the step can go uphill or towards a saddle; the step then says so in
    ``note``, and a larger `damping` makes it more like a gradient step. ``step(loss)``
    needs the loss (its graph is differentiated twice), as `descend` gives it.
    """

    uses_loss = True
    MAX_VALUES = 400

    def __init__(self, params, lr=1.0, damping=0.0):
        super().__init__(params, lr)
        if isinstance(damping, bool) or not isinstance(damping, numbers.Real) or not math.isfinite(damping) \
                or damping < 0:
            raise DescentInputError(f"Newton: damping must be a finite number ≥ 0, got {damping!r}")
        self.damping = float(damping)
        n = sum(p.size for p in self.params)
        if n > self.MAX_VALUES:
            raise DescentInputError(f"Newton: the parameters hold {n} values, so the Hessian would have {n * n} "
                                    f"entries; Newton's method here is for small problems (at most "
                                    f"{self.MAX_VALUES} values)")
        self.smallest_eigenvalue = None

    def step(self, loss=None):
        """One Newton step on `loss` (a scalar Tensor whose graph holds the parameters)."""
        if not isinstance(loss, Tensor):
            raise TypeError("Newton.step needs the loss: call step(loss) with the scalar loss Tensor (Newton's "
                            f"method uses its second derivatives, not only the grads), got {a_type(loss)}")
        gradient, hessian = gradient_and_hessian(loss, self.params)
        system = (hessian + hessian.T) / 2 + self.damping * np.eye(len(gradient))
        smallest = float(np.linalg.eigvalsh(system)[0]) if np.all(np.isfinite(system)) else math.nan
        self.smallest_eigenvalue = smallest
        self.note = None
        if not smallest > 0:
            what = "H + damping·I" if self.damping else "the Hessian"
            self.note = (f"{what} is not positive definite here (smallest eigenvalue {format_number(smallest)}): "
                         "the loss curves down along some direction (a non-convex region), so this Newton step "
                         "may go uphill or towards a saddle point; a larger damping makes it safer")
        try:
            direction = np.linalg.solve(system, gradient)
        except np.linalg.LinAlgError:  # singular: the least-squares step
            direction = np.linalg.lstsq(system, gradient, rcond=None)[0]
        start = 0
        for p in self.params:
            delta = (self.lr * direction[start:start + p.size]).reshape(p.shape).astype(p.dtype)
            start += p.size
            data = p.data
            if data.ndim and data.flags.writeable:
                data -= delta
            else:
                p.data = data - delta


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam, "newton": Newton}
"""The optimizers by the names `descend` and ``--optimizer`` accept."""


# --------------------------------------------------------------------------- descend

class DescentRecord:
    """One iteration of gradient descent: the loss and copies of the parameters' values
    and grads (in the order of ``params``) at that iteration, before the update."""

    __slots__ = ("iteration", "loss", "values", "grads")

    def __init__(self, iteration, loss, values, grads):
        self.iteration, self.loss, self.values, self.grads = iteration, loss, values, grads

    def __repr__(self):
        return f"DescentRecord(iteration={self.iteration}, loss={self.loss!r})"


class DescentHistory:
    """What `descend` did, iteration by iteration (iteration 0 is the start).

    * `losses`: the loss at each iteration (floats).
    * `params`, `grads`: per iteration, copies of each parameter's value and grad.
    * `stopped`: None, or why it stopped early (a non-finite loss or update), with a hint.
    * `stopped_at`: the iteration it stopped at, or None.
    * `optimizer`, `lr`: what updated the parameters.
    * `notes`: ``(iteration, sentence)`` for each update the optimizer had something to
      say about (Newton: a Hessian that is not positive definite there).
    ``history[k]`` is a `DescentRecord`; ``len(history)`` the number of iterations recorded.
    """

    def __init__(self, optimizer, lr):
        self.optimizer, self.lr = optimizer, lr
        self.losses, self.params, self.grads = [], [], []
        self.notes = []
        self.stopped = self.stopped_at = None

    def __len__(self):
        return len(self.losses)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        k = range(len(self))[k]
        return DescentRecord(k, self.losses[k], self.params[k], self.grads[k])

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    @property
    def final_loss(self):
        return self.losses[-1] if self.losses else None

    def __repr__(self):
        end = f"stopped at iteration {self.stopped_at}" if self.stopped else f"{len(self) - 1} steps"
        last = f", final loss {format_number(self.final_loss)}" if self.losses else ""
        return f"DescentHistory({type(self.optimizer).__name__}, lr={self.lr:g}, {end}{last})"


def _make_optimizer(optimizer, params, lr, opts):
    if isinstance(optimizer, Optimizer):
        if opts:
            raise DescentInputError(f"descend: options {sorted(opts)} cannot be applied to an optimizer instance; "
                                    "give them to its constructor")
        _check_instance(optimizer, params)
        return optimizer
    (cls,) = optimizer_classes([optimizer])
    try:
        return cls(params, lr=lr, **opts)
    except DescentInputError:
        raise
    except TypeError as exc:
        raise DescentInputError(f"descend: {cls.__name__} does not take these options ({exc})") from None


def _check_instance(optimizer, params):
    """An optimizer instance must update exactly `params`: over other tensors it would
    leave the parameters (and so the loss) as they are."""
    theirs = getattr(optimizer, "params", None)
    if theirs is None:          # an Optimizer of one's own that keeps its tensors elsewhere
        return
    mine = {id(p) for p in theirs}
    wanted = {id(p) for p in params}
    if mine == wanted:
        return
    name = type(optimizer).__name__
    missing = [i for i, p in enumerate(params) if id(p) not in mine]
    if missing:
        i = missing[0]
        raise DescentInputError(f"descend: the {name} given does not update params[{i}] ({_label(params[i])}): it was "
                                "made for other tensors, so the loss would not move; make it with the same params "
                                f"({name}(params, ...)) or pass its name")
    extra = next(p for p in theirs if id(p) not in wanted)
    raise DescentInputError(f"descend: the {name} given also updates {_label(extra)}, which is not in params; make it "
                            "with the same params, or pass its name")


def _check_loss(loss, iteration):
    if not isinstance(loss, Tensor):
        where = f" (from the loss function at iteration {iteration})" if iteration is not None else ""
        raise DescentInputError(f"descend: the loss must be a Tensor, got {type(loss).__name__}{where}")
    if loss.size != 1:
        raise DescentInputError(f"descend: the loss must be a single value (a scalar Tensor), got shape {loss.shape}; "
                                "reduce it first, e.g. with .sum() or .mean()")
    if not loss.requires_grad:
        raise DescentInputError("descend: the loss does not depend on any tensor that needs a gradient "
                                "(it was computed from constants only, or inside no_grad())")
    return loss


def _check_in_graph(graph, params, from_function=False):
    """Every parameter must be in the loss's graph (a list of its tensors)."""
    in_graph = {id(t) for t in graph}
    missing = [i for i, p in enumerate(params) if id(p) not in in_graph]
    if missing:
        i = missing[0]
        where = "the graph of the loss the function returned at iteration 0" if from_function else "the loss's graph"
        raise DescentInputError(f"descend: params[{i}] is not in {where}, so the loss does not depend on it "
                                f"({_label(params[i])} was not used to compute it)")


def check_descent(loss, params, optimizer="sgd", lr=0.1, steps=50, *, callback=None, **opts):
    """Check `descend`'s inputs, changing nothing: one sentence (ValueError or TypeError)
    for the first mistake. Returns ``(params as a list, the optimizer descend would use)``.

    Checked: the loss (a scalar Tensor that needs a gradient and whose graph can be
    replayed, or a function), the parameters (leaf Tensors that need a gradient, each
    listed once, in the loss's graph), ``steps`` (a whole number of at least 1), ``lr``
    (positive and finite), the optimizer (a known name, an Optimizer class that takes
    ``opts``, or an instance made for exactly these parameters) and ``callback``.
    A loss function is checked when descend first calls it, before anything changes.
    """
    try:
        params = parameter_list(params, "descend")
    except TypeError as exc:
        raise DescentInputError(str(exc)) from None
    if not params:
        raise DescentInputError("descend: params is empty; pass the leaf Tensors gradient descent should update")
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise DescentInputError(f"descend: params[{i}] is {a_type(p)}, not a Tensor")
        if not p.is_leaf or not p.requires_grad:
            raise DescentInputError(f"descend: params[{i}] must be a leaf Tensor that requires a gradient "
                                    "(a value you created, not the result of an operation)")
    _refuse_repeats(params, "descend", "params[{}]")
    check_steps(steps)
    lr = check_lr(lr, "descend")
    if isinstance(loss, Tensor):
        _check_loss(loss, None)
        try:
            graph = replay_order(loss)
        except ValueError as exc:
            reason = str(exc).removeprefix("forward: ")
            raise DescentInputError(f"descend: the loss's graph cannot be replayed ({reason}); "
                                    "pass a function that builds the loss instead") from None
        _check_in_graph(graph, params)
    elif not callable(loss):
        raise DescentInputError(f"descend: loss must be a scalar Tensor or a function returning one, "
                                f"got {type(loss).__name__}")
    if callback is not None and not callable(callback):
        raise DescentInputError(f"descend: callback must be a function of (iteration, loss), "
                                f"got {type(callback).__name__}")
    return params, _make_optimizer(optimizer, params, lr, opts)


def descend(loss, params, optimizer="sgd", lr=0.1, steps=50, *, callback=None, **opts) -> DescentHistory:
    """Gradient descent on `loss` over `params`, headless. Returns a `DescentHistory`.

    `loss` is a scalar Tensor, whose recorded graph is replayed with ``forward()`` from
    the tensors' current data at every iteration, the first included (so it starts where
    the parameters are now, whatever they held when the loss was built), or a function
    of no arguments that returns one (called every iteration: use it when the graph
    itself must change, e.g. a branch on a value). `params` are leaf Tensors in that
    graph, each listed once. `optimizer` is "sgd", "momentum", "adam", an Optimizer class
    (`opts` go to it: momentum=, betas=, eps=) or an Optimizer instance made for these
    parameters (it keeps its state, e.g. Adam's moments, from earlier runs).

    Every input is checked first (`check_descent`): a mistake raises before anything
    changes. Iteration k = 0 … steps evaluates the loss and its grads, records them,
    calls ``callback(k, loss_tensor)`` if given, then updates the parameters (not after
    the last). A non-finite loss or update stops the run and `stopped` says why, with a
    hint. At the end each parameter's data and grad are those of the last iteration
    recorded (its values before a non-finite update were kept), and a Tensor loss's graph
    holds that iteration's values and grads.
    """
    params, optim = check_descent(loss, params, optimizer, lr, steps, callback=callback, **opts)
    return run_descent(loss, params, optim, steps, callback=callback)


def check_optimizer(optimizer, params, lr=0.1, **opts):
    """The optimizer `descend` would use over `params` (a list `check_descent` accepted),
    made from a name, a class and its ``opts``, or an instance checked to update exactly
    those parameters; a DescentInputError for the first mistake. For a race: the loss and
    the parameters are checked once, each optimizer with this."""
    return _make_optimizer(optimizer, params, check_lr(lr, "descend"), opts)


def run_descent(loss, params, optimizer, steps, *, callback=None) -> DescentHistory:
    """The loop of `descend`, for inputs already checked: ``params`` and ``steps`` as
    `check_descent` accepted them, ``optimizer`` an Optimizer over exactly ``params``
    (`check_descent`'s or `check_optimizer`'s). Nothing is checked again."""
    optim = optimizer
    replay = isinstance(loss, Tensor)
    history = DescentHistory(optim, optim.lr)

    def stop(k, what):
        history.stopped_at = k
        if k == 0 and not math.isfinite(history.losses[0]):  # no step was taken: not the learning rate's fault
            history.stopped = f"{what}, before any step: the loss is not finite at the starting point"
        else:
            # three significant digits: a slider's 0.00281838 suggests 0.000282, not 0.000281838
            history.stopped = f"{what}; try a smaller learning rate, e.g. lr={history.lr / 10:.3g}"

    with np.errstate(all="ignore"):
        for k in range(steps + 1):
            if replay:
                current = loss.forward()     # iteration 0 too: the values recorded may be stale
            else:
                current = _check_loss(loss(), k)
                if k == 0:
                    _check_in_graph(topological_order(current, only_grad=True), params, from_function=True)
            for p in params:
                p.grad = None
            current.backward()
            value = current.item()
            history.losses.append(value)
            history.params.append([np.array(p.data) for p in params])
            history.grads.append([np.zeros(p.shape) if p.grad is None else np.array(p.grad) for p in params])
            if callback is not None:
                callback(k, current)
            if not math.isfinite(value):
                stop(k, f"the loss became {value} at iteration {k}")
                break
            if k == steps:
                break
            saved = [p.data.copy() for p in params]
            if optim.uses_loss:
                optim.step(current)
            else:
                optim.step()
            if optim.note:
                history.notes.append((k, optim.note))
            bad = [i for i, p in enumerate(params) if not np.all(np.isfinite(p.data))]
            if bad:
                for p, data in zip(params, saved):  # keep the last finite values
                    p.data = data
                if replay:  # the graph and the grads at those values again (forward() cleared the grads)
                    loss.forward().backward()
                stop(k, f"the update after iteration {k} made params[{bad[0]}] non-finite")
                break
    return history
