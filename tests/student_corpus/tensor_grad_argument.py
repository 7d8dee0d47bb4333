"""A Tensor whose rules take the output's grad as an argument (`_backward(grad)`) and whose
backward() passes it; grad starts as None and the first contribution is stored."""
import numpy as np

STYLE = "NumPy Tensor: _backward(grad) takes an argument, _parents, _op"


class Tensor:
    def __init__(self, data, _parents=(), _op=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = tuple(_parents)
        self._op = _op
        self._backward = lambda grad: None

    def _add_grad(self, g):
        self.grad = g if self.grad is None else self.grad + g

    def __add__(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other)
        out = Tensor(self.data + other.data, (self, other), "+")

        def _backward(grad):
            self._add_grad(grad)
            other._add_grad(grad)
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other)
        out = Tensor(self.data * other.data, (self, other), "*")

        def _backward(grad):
            self._add_grad(grad * other.data)
            other._add_grad(grad * self.data)
        out._backward = _backward
        return out

    def __sub__(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other)
        out = Tensor(self.data - other.data, (self, other), "-")

        def _backward(grad):
            self._add_grad(grad)
            other._add_grad(-grad)
        out._backward = _backward
        return out

    def backward(self):
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in visited:
                visited.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents)
        for node in order:
            node.grad = None
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            if node.grad is not None:
                node._backward(node.grad)


def build():
    x = Tensor(2.0)
    out = x * x + x * 5.0 - 1.0
    return out, {"x": x}
