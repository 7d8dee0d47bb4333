"""A Tensor whose graph lives in a separate record: `t.node` is a `Node(op, inputs,
backward_fn)` made by each operation, and `backward_fn(grad)` returns the inputs' grads;
grad is a property (None reads as zeros)."""
import numpy as np

STYLE = "Tensor with node = Node(op, inputs, backward_fn) returning grads, grad property"


class Node:
    def __init__(self, op, inputs, backward_fn):
        self.op, self.inputs, self.backward_fn = op, tuple(inputs), backward_fn


class Tensor:
    def __init__(self, data, requires_grad=True):
        self.data = np.array(data, dtype=np.float64)
        self.requires_grad = requires_grad
        self._grad = None
        self.node = None

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        self._grad = np.zeros_like(self.data) if value is None else value

    def _record(self, data, op, inputs, backward_fn):
        out = Tensor(data)
        out.node = Node(op, inputs, backward_fn)
        return out

    def __mul__(self, other):
        a, b = self.data, other.data
        return self._record(a * b, "mul", (self, other), lambda g: (g * b, g * a))

    def __sub__(self, other):
        return self._record(self.data - other.data, "sub", (self, other), lambda g: (g, -g))

    def sigmoid(self):
        s = 1 / (1 + np.exp(-self.data))
        return self._record(s, "sigmoid", (self,), lambda g: (g * s * (1 - s),))

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            t, done = stack.pop()
            if done:
                order.append(t)
            elif id(t) not in seen:
                seen.add(id(t))
                stack.append((t, True))
                if t.node is not None:
                    stack.extend((p, False) for p in t.node.inputs)
        for t in order:
            t.grad = None
        self.grad = np.ones_like(self.data)
        for t in reversed(order):
            if t.node is not None:
                for p, g in zip(t.node.inputs, t.node.backward_fn(t.grad)):
                    p.grad = p.grad + g


def build():
    x, w, b = Tensor([0.5, -1.0]), Tensor([2.0, 0.25]), Tensor([0.1, 0.1])
    out = (x * w - b).sigmoid()
    return out, {"x": x, "w": w, "b": b}


SEED = np.ones(2)
