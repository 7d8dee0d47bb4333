"""A tensor whose `backward(grad=None)` seeds ones when called without a grad and
otherwise accumulates what it is given; per-node rule `on_backward(g)` returns a list
of grads for `links`; op in `label_op`."""
import numpy as np

STYLE = "backward(grad=None) optional seed; links, on_backward(g) returns list, label_op"


class Tensor:
    def __init__(self, data, links=(), label_op=None):
        self.data = np.array(data, dtype=float)
        self.links = list(links)
        self.label_op = label_op
        self.grad = np.zeros_like(self.data)
        self.on_backward = None

    def __add__(self, o):
        out = Tensor(self.data + o.data, [self, o], "add")
        out.on_backward = lambda g: [g, g]
        return out

    def __mul__(self, o):
        out = Tensor(self.data * o.data, [self, o], "mul")
        out.on_backward = lambda g: [g * o.data, g * self.data]
        return out

    def tanh(self):
        t = np.tanh(self.data)
        out = Tensor(t, [self], "tanh")
        out.on_backward = lambda g: [g * (1 - t ** 2)]
        return out

    def sum(self):
        out = Tensor(self.data.sum(), [self], "sum")
        out.on_backward = lambda g: [g * np.ones_like(self.data)]
        return out

    def backward(self, grad=None):
        order, seen = [], set()

        def visit(t):
            if id(t) not in seen:
                seen.add(id(t))
                for p in t.links:
                    visit(p)
                order.append(t)
        visit(self)
        for t in order:
            t.grad = np.zeros_like(t.data)
        self.grad = np.ones_like(self.data) if grad is None else np.asarray(grad, float)
        for t in reversed(order):
            if t.on_backward:
                for p, g in zip(t.links, t.on_backward(t.grad)):
                    p.grad = p.grad + g


def build():
    w, x = Tensor([0.5, -0.25]), Tensor([1.0, 2.0])
    out = ((w * x + w).tanh() * x).sum()
    return out, {"w": w, "x": x}
