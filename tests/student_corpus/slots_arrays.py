"""`__slots__` with short names and NumPy vectors: `v` the array, `ins` the inputs (a
list), `g` the grad, `bw` a no-argument closure, `kind` the op as a symbol."""
import numpy as np

STYLE = "__slots__ (v, ins, g, bw, kind), NumPy vectors, relu and sum"


class V:
    __slots__ = ("v", "ins", "g", "bw", "kind", "__weakref__")

    def __init__(self, v, ins=(), kind=""):
        self.v = np.asarray(v, dtype=float)
        self.ins = list(ins)
        self.g = None
        self.bw = None
        self.kind = kind

    def __mul__(self, other):
        out = V(self.v * other.v, (self, other), "*")

        def bw():
            self.g += other.v * out.g
            other.g += self.v * out.g
        out.bw = bw
        return out

    def __add__(self, other):
        out = V(self.v + other.v, (self, other), "+")

        def bw():
            self.g += out.g
            other.g += out.g
        out.bw = bw
        return out

    def relu(self):
        out = V(np.maximum(self.v, 0.0), (self,), "relu")

        def bw():
            self.g += (self.v > 0) * out.g
        out.bw = bw
        return out

    def sum(self):
        out = V(self.v.sum(), (self,), "sum")

        def bw():
            self.g += np.ones_like(self.v) * out.g
        out.bw = bw
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
                stack.extend((i, False) for i in n.ins)
        for n in order:
            n.g = np.zeros_like(n.v)
        self.g = np.ones_like(self.v)
        for n in reversed(order):
            if n.bw is not None:
                n.bw()


def build():
    a, b, c = V([1.0, -2.0, 0.5]), V([0.5, 0.5, -1.0]), V([0.1, 0.2, 0.3])
    out = (a * b + c).relu().sum()
    return out, {"a": a, "b": b, "c": c}
