"""micrograd's names on matrices: `_prev`, `_op`, data a 2-D/1-D ndarray; `@`, broadcasting
add with the grad summed back, relu and a mean."""
import numpy as np

STYLE = "NumPy micrograd: _prev, _op, matrices, @, broadcast add, mean"


class Tensor:
    def __init__(self, data, _children=(), _op=""):
        self.data = np.array(data, dtype=float)
        self.grad = np.zeros_like(self.data)
        self._prev = set(_children)
        self._op = _op
        self._backward = lambda: None

    def __matmul__(self, other):
        out = Tensor(self.data @ other.data, (self, other), "@")

        def _backward():
            self.grad += out.grad @ other.data.T
            other.grad += self.data.T @ out.grad
        out._backward = _backward
        return out

    def __add__(self, other):
        out = Tensor(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad.sum(axis=0) if self.data.ndim < out.data.ndim else out.grad
            other.grad += out.grad.sum(axis=0) if other.data.ndim < out.data.ndim else out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Tensor(np.maximum(self.data, 0), (self,), "ReLU")

        def _backward():
            self.grad += (self.data > 0) * out.grad
        out._backward = _backward
        return out

    def mean(self):
        out = Tensor(self.data.mean(), (self,), "mean")

        def _backward():
            self.grad += np.full_like(self.data, 1 / self.data.size) * out.grad
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
    X = Tensor([[1.0, 2.0], [-1.0, 0.5], [0.3, -2.0]])
    W = Tensor([[0.5, -1.0, 0.2], [1.5, 0.3, -0.7]])
    b = Tensor([0.1, -0.2, 0.3])
    out = (X @ W + b).relu().mean()
    return out, {"X": X, "W": W, "b": b}
