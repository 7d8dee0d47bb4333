"""A Tensor whose data is a plain Python list (converted only inside the ops), with
`parents`, `operation` and a `gradient` that starts as None."""
import numpy as np

STYLE = "list data, parents, operation, gradient"


class Tensor:
    def __init__(self, data, parents=(), operation=None):
        self.data = np.asarray(data, dtype=float).tolist()   # a list, or a float for one number
        self.gradient = None
        self.parents = tuple(parents)
        self.operation = operation
        self._backward = lambda: None

    def __add__(self, other):
        out = Tensor(np.add(self.data, other.data), (self, other), "add")

        def _backward():
            self.gradient = np.asarray(self.gradient) + out.gradient
            other.gradient = np.asarray(other.gradient) + out.gradient
        out._backward = _backward
        return out

    def __mul__(self, other):
        out = Tensor(np.multiply(self.data, other.data), (self, other), "mul")

        def _backward():
            self.gradient = np.asarray(self.gradient) + out.gradient * np.asarray(other.data)
            other.gradient = np.asarray(other.gradient) + out.gradient * np.asarray(self.data)
        out._backward = _backward
        return out

    def total(self):
        out = Tensor(float(np.sum(self.data)), (self,), "sum")

        def _backward():
            self.gradient = np.asarray(self.gradient) + np.ones(len(self.data)) * out.gradient
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
                stack.extend((p, False) for p in node.parents)
        for node in order:
            node.gradient = np.zeros(np.shape(node.data))
        self.gradient = np.ones(np.shape(self.data))
        for node in reversed(order):
            node._backward()


def build():
    a, b = Tensor([1.0, 2.0, -1.0]), Tensor([0.5, -0.5, 2.0])
    out = (a * b + a).total()
    return out, {"a": a, "b": b}
