"""Optimizers (SGD, Momentum, Adam) and `descend`, the one gradient-descent loop.

An optimizer holds parameters and updates them in place from their grads (`step()`).
`descend(loss, params, ...)` runs gradient descent headless and returns a
`DescentHistory`; the `DescentExplorer` widget and ``%%autodiff --descent`` use it.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .backprop import topological_order
from .formatting import a_type, format_number
from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "Momentum", "Adam", "OPTIMIZERS", "descend", "DescentHistory", "DescentRecord"]


def _check_lr(lr, who):
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"{who}: lr must be a positive finite number, got {lr!r}")
    return float(lr)


class Optimizer:
    """Holds the parameters; `step()` updates them in place, `zero_grad()` clears grads."""

    def __init__(self, params, lr):
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty list of parameters")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is {a_type(p)}, not a Tensor")
        self.params, self.lr = params, _check_lr(lr, type(self).__name__)

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
            raise ValueError(f"Momentum: momentum must be in [0, 1), got {momentum!r}")
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
            raise ValueError(f"Adam: betas must be a pair (β₁, β₂), got {betas!r}") from None
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas!r}")
        if not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"Adam: eps must be a positive number, got {eps!r}")
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


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
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
    ``history[k]`` is a `DescentRecord`; ``len(history)`` the number of iterations recorded.
    """

    def __init__(self, optimizer, lr):
        self.optimizer, self.lr = optimizer, lr
        self.losses, self.params, self.grads = [], [], []
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
            raise TypeError(f"descend: options {sorted(opts)} cannot be applied to an optimizer instance; "
                            "give them to its constructor")
        return optimizer
    if isinstance(optimizer, type) and issubclass(optimizer, Optimizer):
        cls = optimizer
    elif isinstance(optimizer, str):
        cls = OPTIMIZERS.get(optimizer.strip().lower())
        if cls is None:
            raise ValueError(f"descend: unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    else:
        raise TypeError(f"descend: optimizer must be one of {', '.join(OPTIMIZERS)} or an Optimizer, "
                        f"got {type(optimizer).__name__}")
    try:
        return cls(params, lr=lr, **opts)
    except TypeError as exc:
        raise TypeError(f"descend: {cls.__name__} does not take these options ({exc})") from None


def _check_loss(loss, iteration):
    if not isinstance(loss, Tensor):
        raise TypeError(f"descend: the loss must be a Tensor, got {type(loss).__name__}"
                        + (f" (from the loss function at iteration {iteration})" if iteration is not None else ""))
    if loss.size != 1:
        raise ValueError(f"descend: the loss must be a single value (a scalar Tensor), got shape {loss.shape}; "
                         "reduce it first, e.g. with .sum() or .mean()")
    if not loss.requires_grad:
        raise ValueError("descend: the loss does not depend on any tensor that needs a gradient "
                         "(it was computed from constants only, or inside no_grad())")
    return loss


def descend(loss, params, optimizer="sgd", lr=0.1, steps=50, *, callback=None, **opts) -> DescentHistory:
    """Gradient descent on `loss` over `params`, headless. Returns a `DescentHistory`.

    `loss` is a scalar Tensor, whose recorded graph is replayed with ``forward()`` from
    the parameters' new values at every iteration, or a function of no arguments that
    returns one (called every iteration: use it when the graph itself must change, e.g.
    a branch on a value). `params` are leaf Tensors in that graph. `optimizer` is "sgd",
    "momentum", "adam", an Optimizer class (`opts` go to it: momentum=, betas=, eps=)
    or an Optimizer instance.

    Iteration k = 0 … steps evaluates the loss and its grads, records them, calls
    ``callback(k, loss_tensor)`` if given, then updates the parameters (not after the
    last). A non-finite loss or update stops the run; the parameters then keep their
    last finite values and `stopped` says why, with a hint.
    """
    params = [params] if isinstance(params, Tensor) else list(params) if params is not None else []
    if not params:
        raise ValueError("descend: params is empty; pass the leaf Tensors gradient descent should update")
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"descend: params[{i}] is {a_type(p)}, not a Tensor")
        if not p.is_leaf or not p.requires_grad:
            raise ValueError(f"descend: params[{i}] must be a leaf Tensor that requires a gradient "
                             "(a value you created, not the result of an operation)")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"descend: steps must be a whole number of at least 1, got {steps!r}")
    lr = _check_lr(lr, "descend")
    replay = isinstance(loss, Tensor)
    if replay:
        _check_loss(loss, None)
        in_graph = {id(t) for t in topological_order(loss, only_grad=True)}
        missing = [i for i, p in enumerate(params) if id(p) not in in_graph]
        if missing:
            raise ValueError(f"descend: params[{missing[0]}] is not in the loss's graph, so the loss "
                             "does not depend on it")
    elif not callable(loss):
        raise TypeError(f"descend: loss must be a scalar Tensor or a function returning one, "
                        f"got {type(loss).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"descend: callback must be a function of (iteration, loss), got {type(callback).__name__}")
    optim = _make_optimizer(optimizer, params, lr, opts)
    history = DescentHistory(optim, getattr(optim, "lr", lr))

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
                current = loss.forward() if k else loss
            else:
                current = _check_loss(loss(), k)
            for p in params:
                p.grad = None
            current.backward()
            if k == 0 and all(p.grad is None for p in params):
                raise ValueError("descend: the loss does not depend on any of params")
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
            optim.step()
            bad = [i for i, p in enumerate(params) if not np.all(np.isfinite(p.data))]
            if bad:
                for p, data in zip(params, saved):  # keep the last finite values
                    p.data = data
                if replay:
                    loss.forward()
                stop(k, f"the update after iteration {k} made params[{bad[0]}] non-finite")
                break
    return history
