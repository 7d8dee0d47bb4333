"""Scalar values with `_prev` but no op field at all: the op is only in the name of the
method that made each closure (`Val.__mul__.<locals>._backward`)."""
import math

STYLE = "scalar Value: _prev set, no op field (op from the closure)"


class Val:
    def __init__(self, data, parents=()):
        self.data = data
        self.grad = 0.0
        self._prev = set(parents)
        self._backward = lambda: None

    def __add__(self, other):
        other = other if isinstance(other, Val) else Val(other)
        out = Val(self.data + other.data, (self, other))

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Val) else Val(other)
        out = Val(self.data * other.data, (self, other))

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Val(t, (self,))

        def _backward():
            self.grad += (1 - t * t) * out.grad
        out._backward = _backward
        return out

    def log(self):
        out = Val(math.log(self.data), (self,))

        def _backward():
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def backward(self):
        topo, seen = [], set()

        def build(v):
            if v not in seen:
                seen.add(v)
                for p in v._prev:
                    build(p)
                topo.append(v)
        build(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()


def build():
    w, x, b = Val(0.7), Val(2.0), Val(-0.3)
    out = (w * x + b).tanh() + (x * x).log()
    return out, {"w": w, "x": x, "b": b}
