"""A practical Tensor whose rules assign (=) instead of adding (+=): a common mistake. The
graph uses x twice at different depths, so every valid order gives the same (wrong) grad;
stepping must reproduce the class's own result and flag the overwrite."""
import numpy as np

STYLE = "practical Tensor: rules assign (=) instead of +=  (a mistake, flagged)"
MISTAKE = "overwrote the grad"


class Tensor:
    def __init__(self, data, _parents=(), _function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = set(_parents)
        self._function = _function
        self._backward = lambda: None

    def __mul__(self, other):
        out = Tensor(self.data * other.data, (self, other), "mul")

        def _backward():
            self.grad = out.grad * other.data
            other.grad = out.grad * self.data
        out._backward = _backward
        return out

    def __add__(self, other):
        out = Tensor(self.data + other.data, (self, other), "add")

        def _backward():
            self.grad = out.grad
            other.grad = out.grad
        out._backward = _backward
        return out

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


def build():
    x, w = Tensor(3.0), Tensor(2.0)
    a = x * w
    out = a * x
    return out, {"x": x, "w": w}
