"""A practical-style Tensor before question A3: `_parents` a tuple and no `_function` at
all; the ops are module functions (`mul.<locals>._backward`); a matrix-vector product."""
import numpy as np

STYLE = "practical Tensor: _parents tuple, no op field, matvec"


class Tensor:
    def __init__(self, data, _parents=()):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = tuple(_parents)
        self._backward = lambda: None

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
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()


def add(a, b):
    out = Tensor(a.data + b.data, (a, b))

    def _backward():
        a.grad += out.grad
        b.grad += out.grad
    out._backward = _backward
    return out


def mul(a, b):
    out = Tensor(a.data * b.data, (a, b))

    def _backward():
        a.grad += out.grad * b.data
        b.grad += out.grad * a.data
    out._backward = _backward
    return out


def matvec(W, v):
    out = Tensor(W.data @ v.data, (W, v))

    def _backward():
        W.grad += np.outer(out.grad, v.data)
        v.grad += W.data.T @ out.grad
    out._backward = _backward
    return out


def total(t):
    out = Tensor(np.sum(t.data), (t,))

    def _backward():
        t.grad += np.ones_like(t.data) * out.grad
    out._backward = _backward
    return out


def build():
    W = Tensor([[1.0, -0.5, 2.0], [0.5, 1.5, -1.0]])
    v = Tensor([0.2, -1.0, 0.7])
    b = Tensor([0.1, -0.1])
    h = add(matvec(W, v), b)
    out = total(mul(h, h))
    return out, {"W": W, "v": v, "b": b}
