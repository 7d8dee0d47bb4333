"""Optimizers: update parameters from their grads. SGD, Momentum, Adam."""

from __future__ import annotations

import numbers

import numpy as np

from .engine import Tensor

__all__ = ["Optimizer", "SGD", "Momentum", "Adam"]


class Optimizer:
    """Holds the parameters; `step()` updates them in place, `zero_grad()` clears grads."""

    def __init__(self, params, lr):
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty list of parameters")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a Tensor")
        if not isinstance(lr, numbers.Real) or not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be a positive number, got {lr!r}")
        self.params, self.lr = params, float(lr)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        for i, p in enumerate(self.params):
            if p._grad is not None:
                p._data = self._update(i, p._data, np.asarray(p._grad))

    def _update(self, i, value, grad):
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
        if not 0 <= momentum < 1:
            raise ValueError(f"Momentum: momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.velocity = [None] * len(self.params)

    def _update(self, i, value, grad):
        v = self.velocity[i]
        v = grad.copy() if v is None else self.momentum * v + grad
        self.velocity[i] = v
        value -= self.lr * v
        return value


class Adam(Optimizer):
    """Adam: m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;  p ← p - lr · m̂ / (√v̂ + ε),
    with the bias corrections m̂ = m / (1-β₁ᵗ), v̂ = v / (1-β₂ᵗ)."""

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas!r}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)
        self.m = [None] * len(self.params)
        self.v = [None] * len(self.params)
        self.t = 0

    def step(self):
        self.t += 1
        super().step()

    def _update(self, i, value, grad):
        b1, b2 = self.betas
        m = (1 - b1) * grad if self.m[i] is None else b1 * self.m[i] + (1 - b1) * grad
        v = (1 - b2) * grad * grad if self.v[i] is None else b2 * self.v[i] + (1 - b2) * grad * grad
        self.m[i], self.v[i] = m, v
        m_hat = m / (1 - b1 ** self.t)
        v_hat = v / (1 - b2 ** self.t)
        value -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return value
