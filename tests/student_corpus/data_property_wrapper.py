"""`.data` is a property returning a wrapper (`Storage`, holding the array in `array`);
the inputs are in `made_from`. Matrix-vector product, ReLU and sum, with NumPy arrays."""
import numpy as np

STYLE = ".data a property returning a Storage wrapper; made_from; matmul"


class Storage:
    def __init__(self, array):
        self.array = np.asarray(array, dtype=float)

    def __repr__(self):
        return f"Storage({self.array!r})"


class Tensor:
    def __init__(self, array, made_from=(), _op=""):
        self._storage = Storage(array)
        self.grad = None
        self.made_from = tuple(made_from)
        self._op = _op
        self._backward = lambda: None

    @property
    def data(self):
        return self._storage

    def __matmul__(self, other):
        a, b = self.data.array, other.data.array
        out = Tensor(a @ b, (self, other), "@")

        def _backward():
            self.grad += np.outer(out.grad, b)
            other.grad += a.T @ out.grad
        out._backward = _backward
        return out

    def relu(self):
        a = self.data.array
        out = Tensor(np.maximum(a, 0), (self,), "relu")

        def _backward():
            self.grad += (a > 0) * out.grad
        out._backward = _backward
        return out

    def sum(self):
        a = self.data.array
        out = Tensor(a.sum(), (self,), "sum")

        def _backward():
            self.grad += np.ones_like(a) * out.grad
        out._backward = _backward
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p in node.made_from)
        for node in order:
            node.grad = np.zeros_like(node.data.array)
        self.grad = np.ones_like(self.data.array)
        for node in reversed(order):
            node._backward()


def build():
    W, v = Tensor([[1.0, -2.0], [0.5, 1.5]]), Tensor([1.0, 0.5])
    out = (W @ v).relu().sum()
    return out, {"W": W, "v": v}
