"""Inputs kept one level down, in an op record: each result's `last_op` is an `Op` with
`name`, `parents` and a `backward` closure taking the output's grad and adding into the
parents' `grad`s; the value is in `value`."""
import numpy as np

STYLE = "last_op = Op(name, parents, backward): parents one level down"


class Op:
    def __init__(self, name, parents, backward):
        self.name, self.parents, self.backward = name, parents, backward


class Tensor:
    def __init__(self, value):
        self.value = np.asarray(value, dtype=float)
        self.grad = None
        self.last_op = None

    def __mul__(self, other):
        out = Tensor(self.value * other.value)

        def backward(g):
            self.grad = self.grad + g * other.value
            other.grad = other.grad + g * self.value
        out.last_op = Op("mul", (self, other), backward)
        return out

    def __sub__(self, other):
        out = Tensor(self.value - other.value)

        def backward(g):
            self.grad = self.grad + g
            other.grad = other.grad - g
        out.last_op = Op("sub", (self, other), backward)
        return out

    def tanh(self):
        t = np.tanh(self.value)
        out = Tensor(t)

        def backward(g):
            self.grad = self.grad + g * (1 - t * t)
        out.last_op = Op("tanh", (self,), backward)
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            n, done = stack.pop()
            if done:
                order.append(n)
            elif id(n) not in seen:
                seen.add(id(n))
                stack.append((n, True))
                if n.last_op is not None:
                    stack.extend((p, False) for p in n.last_op.parents)
        for n in order:
            n.grad = np.zeros_like(n.value)
        self.grad = np.ones_like(self.value)
        for n in reversed(order):
            if n.last_op is not None:
                n.last_op.backward(n.grad)


def build():
    x, w, b = Tensor(0.7), Tensor(-1.3), Tensor(0.2)
    out = (x * w - b).tanh() * x
    return out, {"x": x, "w": w, "b": b}
