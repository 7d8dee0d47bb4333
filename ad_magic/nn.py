"""Neural-network building blocks on top of the engine: Module, Linear, MLP, mse_loss."""

from __future__ import annotations

import numpy as np

from .engine import Tensor, linear

__all__ = ["Module", "Linear", "MLP", "mse_loss"]


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class Module:
    """Base class: a callable with parameters. Subclasses define `forward`."""

    def parameters(self):
        """Every parameter Tensor of this module and its sub-modules, each once, in order."""
        found, seen = [], set()  # `seen` holds containers too: a module referring back to its owner is fine
        stack = [self]
        while stack:  # depth first, in attribute order, without recursion
            value = stack.pop()
            if isinstance(value, Tensor):
                if value.requires_grad and id(value) not in seen:
                    seen.add(id(value))
                    found.append(value)
                continue
            if isinstance(value, Module):
                items = list(vars(value).values())
            elif isinstance(value, (list, tuple)):
                items = list(value)
            elif isinstance(value, dict):
                items = list(value.values())
            else:
                continue
            if id(value) in seen:
                continue
            seen.add(id(value))
            stack.extend(reversed(items))
        return found

    def zero_grad(self):
        """Set every parameter's grad to None."""
        for p in self.parameters():
            p.grad = None

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def __call__(self, x):
        return self.forward(x)


class Linear(Module):
    """y = x @ W + b, with W of shape (n_in, n_out) and b of shape (n_out,).

    The graph shows it as one `linear` node (as PyTorch's addmm), not matmul then add.
    W starts uniform in ±sqrt(6 / n_in) (He initialisation, suited to ReLU), b at zero.
    """

    def __init__(self, n_in, n_out, *, seed=None, dtype=np.float64, name=None):
        for label, n in (("n_in", n_in), ("n_out", n_out)):
            if not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"Linear: {label} must be a positive integer, got {n!r}")
        rng = _rng(seed)
        bound = np.sqrt(6.0 / n_in)
        prefix = f"{name}." if name else ""
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.W = Tensor(rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype), name=f"{prefix}W")
        self.b = Tensor(np.zeros(n_out, dtype=dtype), name=f"{prefix}b")

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)
        if x.ndim == 0 or x.shape[-1] != self.n_in:
            raise ValueError(f"Linear: expected inputs with last axis {self.n_in}, got shape {x.shape}")
        return linear(x, self.W, self.b)

    def __repr__(self):
        return f"Linear({self.n_in}, {self.n_out})"


class MLP(Module):
    """A multilayer perceptron: MLP([n_in, hidden…, n_out]) with ReLU between layers
    (none after the last, so the output is a plain linear regression head)."""

    def __init__(self, sizes, *, seed=None, dtype=np.float64):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: give at least an input and an output size, got {sizes!r}")
        rng = _rng(seed)
        self.sizes = sizes
        self.layers = [
            Linear(n_in, n_out, seed=rng, dtype=dtype, name=f"layer{i}")
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.relu()
        return x

    def __repr__(self):
        return f"MLP({self.sizes})"


def mse_loss(prediction, target):
    """Mean squared error: mean((prediction - target)²).

    The shapes must match exactly: (N, 1) against (N,) would silently broadcast to an
    N×N matrix of differences, so it is an error here.
    """
    if not isinstance(prediction, Tensor):
        raise TypeError(f"mse_loss: prediction must be a Tensor, got {type(prediction).__name__}")
    if not isinstance(target, Tensor):
        target = Tensor(target, requires_grad=False)
    if prediction.shape != target.shape:
        raise ValueError(
            f"mse_loss: prediction has shape {prediction.shape} but target has shape {target.shape}; "
            "reshape one of them so they match"
        )
    diff = prediction - target
    return (diff * diff).mean()
