"""Scalar values with `_prev` a tuple, word op names ('add', 'mul', 'sub', 'div', 'sigmoid'),
a real `__sub__`/`__truediv__` (not built from + and **), an iterative topological sort."""
import math

STYLE = "scalar Value: _prev tuple, word ops, own sub/div/sigmoid, iterative topo"


class Value:
    def __init__(self, data, prev=(), op=None):
        self.data = float(data)
        self.grad = 0.0
        self._prev = tuple(prev)
        self._op = op
        self._backward = lambda: None

    def _lift(self, other):
        return other if isinstance(other, Value) else Value(other)

    def __add__(self, other):
        other = self._lift(other)
        out = Value(self.data + other.data, (self, other), "add")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __sub__(self, other):
        other = self._lift(other)
        out = Value(self.data - other.data, (self, other), "sub")

        def _backward():
            self.grad += out.grad
            other.grad -= out.grad
        out._backward = _backward
        return out

    def __rsub__(self, other):
        return self._lift(other) - self

    def __mul__(self, other):
        other = self._lift(other)
        out = Value(self.data * other.data, (self, other), "mul")

        def _backward():
            self.grad += out.grad * other.data
            other.grad += out.grad * self.data
        out._backward = _backward
        return out

    __rmul__ = __mul__

    def __truediv__(self, other):
        other = self._lift(other)
        out = Value(self.data / other.data, (self, other), "div")

        def _backward():
            self.grad += out.grad / other.data
            other.grad -= out.grad * self.data / other.data ** 2
        out._backward = _backward
        return out

    def sigmoid(self):
        s = 1.0 / (1.0 + math.exp(-self.data))
        out = Value(s, (self,), "sigmoid")

        def _backward():
            self.grad += out.grad * s * (1 - s)
        out._backward = _backward
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif node not in seen:
                seen.add(node)
                stack.append((node, True))
                stack.extend((p, False) for p in node._prev)
        for node in order:
            node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            node._backward()


def build():
    a, b, c = Value(1.5), Value(-0.5), Value(4.0)
    h = (a * b - c) / (a + 2.0)
    out = (3 - h).sigmoid() * a
    return out, {"a": a, "b": b, "c": c}
