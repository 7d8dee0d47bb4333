"""The practical's shape: `_parents` a set, `_function` a name, grad starting as None,
0-d NumPy data; add, mul, tanh and sigmoid as functions."""
import numpy as np

STYLE = "practical Tensor: _parents set, _function, grad None, tanh/sigmoid"


class Tensor:
    def __init__(self, data, _parents=(), _function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = set(_parents)
        self._function = _function
        self._backward = lambda: None

    def __add__(self, other):
        return add(self, other if isinstance(other, Tensor) else Tensor(other))

    def __mul__(self, other):
        return mul(self, other if isinstance(other, Tensor) else Tensor(other))

    def backward(self):
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif node not in visited:
                visited.add(node)
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents)
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()


def add(t1, t2):
    out = Tensor(t1.data + t2.data, (t1, t2), "add")

    def _backward():
        t1.grad += out.grad
        t2.grad += out.grad
    out._backward = _backward
    return out


def mul(t1, t2):
    out = Tensor(t1.data * t2.data, (t1, t2), "mul")

    def _backward():
        t1.grad += out.grad * t2.data
        t2.grad += out.grad * t1.data
    out._backward = _backward
    return out


def tanh(t):
    out = Tensor(np.tanh(t.data), (t,), "tanh")

    def _backward():
        t.grad += out.grad * (1 - out.data ** 2)
    out._backward = _backward
    return out


def sigmoid(t):
    out = Tensor(1 / (1 + np.exp(-t.data)), (t,), "sigmoid")

    def _backward():
        t.grad += out.grad * out.data * (1 - out.data)
    out._backward = _backward
    return out


def build():
    x, w, b = Tensor(0.8), Tensor(-1.5), Tensor(0.25)
    h = tanh(x * w + b)
    out = sigmoid(h * h + x)
    return out, {"x": x, "w": w, "b": b}
