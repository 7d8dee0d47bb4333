"""A Tensor whose op closures return the inputs' grads instead of adding them: `grad_fn(grad)`
returns a tuple in the order of `parents` (a list), and backward() accumulates them."""
import numpy as np

STYLE = "NumPy Tensor: grad_fn(grad) returns the grads, parents list"


class Tensor:
    def __init__(self, data, parents=(), grad_fn=None, op=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self.parents = list(parents)
        self.grad_fn = grad_fn
        self.op = op

    def __sub__(self, other):
        return Tensor(self.data - other.data, [self, other], lambda g: (g, -g), "sub")

    def __truediv__(self, other):
        a, b = self.data, other.data
        return Tensor(a / b, [self, other], lambda g: (g / b, -g * a / b ** 2), "div")

    def __mul__(self, other):
        a, b = self.data, other.data
        return Tensor(a * b, [self, other], lambda g: (g * b, g * a), "mul")

    def log(self):
        a = self.data
        return Tensor(np.log(a), [self], lambda g: (g / a,), "log")

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
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            if node.grad_fn is not None:
                for parent, g in zip(node.parents, node.grad_fn(node.grad)):
                    parent.grad = parent.grad + g


def build():
    a, b, c = Tensor(5.0), Tensor(2.0), Tensor(0.5)
    out = ((a - b) / c).log() * b
    return out, {"a": a, "b": b, "c": c}
