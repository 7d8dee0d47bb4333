"""micrograd rewritten on NumPy arrays: `_prev`, `_op`, data an ndarray (vectors and 0-d
after a sum), grad `np.zeros_like`, elementwise ops and a sum."""
import numpy as np

STYLE = "NumPy micrograd: _prev, _op, ndarray data (vectors, 0-d)"


class Value:
    def __init__(self, data, _children=(), _op=""):
        self.data = np.array(data, dtype=float)
        self.grad = np.zeros_like(self.data)
        self._prev = set(_children)
        self._op = _op
        self._backward = lambda: None

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Value(np.maximum(self.data, 0), (self,), "ReLU")

        def _backward():
            self.grad += (self.data > 0) * out.grad
        out._backward = _backward
        return out

    def exp(self):
        out = Value(np.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def sum(self):
        out = Value(self.data.sum(), (self,), "sum")

        def _backward():
            self.grad += np.ones_like(self.data) * out.grad
        out._backward = _backward
        return out

    def backward(self):
        topo, visited = [], set()

        def build(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build(child)
                topo.append(v)
        build(self)
        for v in topo:
            v.grad = np.zeros_like(v.data)
        self.grad = np.ones_like(self.data)
        for v in reversed(topo):
            v._backward()


def build():
    x = Value([1.0, -2.0, 0.5])
    w = Value([0.3, 0.1, -1.2])
    shift, scale = Value([0.2, 0.2, 0.2]), Value([0.1, 0.1, 0.1])
    out = ((x * w + shift).relu() + (x * scale).exp()).sum()
    return out, {"x": x, "w": w}
