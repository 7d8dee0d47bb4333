"""Tensors that keep each input with its own local rule: `depends_on` is a list of
`Dependency(tensor, grad_fn)` records, grad_fn maps the output's grad to that input's;
backward(grad) walks the graph recursively, and grad is kept as a Tensor."""
from typing import Callable, NamedTuple

import numpy as np

STYLE = "Tensor with depends_on = [Dependency(tensor, grad_fn)], grad a Tensor"


class Dependency(NamedTuple):
    tensor: "Tensor"
    grad_fn: Callable


class Tensor:
    def __init__(self, data, requires_grad=False, depends_on=None):
        self.data = np.asarray(data, dtype=float)
        self.requires_grad = requires_grad
        self.depends_on = depends_on or []
        self.grad = None

    def zero_grad(self):
        self.grad = Tensor(np.zeros_like(self.data))

    def backward(self, grad=None):
        if grad is None:
            grad = Tensor(np.ones_like(self.data))
        if self.grad is None:
            self.zero_grad()
        self.grad.data = self.grad.data + grad.data
        for dependency in self.depends_on:
            dependency.tensor.backward(Tensor(dependency.grad_fn(grad.data)))

    def __add__(self, other):
        deps = [Dependency(self, lambda g: g), Dependency(other, lambda g: g)]
        return Tensor(self.data + other.data, self.requires_grad or other.requires_grad, deps)

    def __mul__(self, other):
        a, b = self.data, other.data
        deps = [Dependency(self, lambda g: g * b), Dependency(other, lambda g: g * a)]
        return Tensor(a * b, self.requires_grad or other.requires_grad, deps)

    def tanh(self):
        out = np.tanh(self.data)
        return Tensor(out, self.requires_grad, [Dependency(self, lambda g: g * (1 - out ** 2))])


def build():
    x = Tensor(0.5, requires_grad=True)
    w = Tensor(-1.5, requires_grad=True)
    out = (x * w + x).tanh()
    return out, {"x": x, "w": w}
