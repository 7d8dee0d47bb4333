"""A scalar Value whose `prev` is a property making a fresh generator each time, whose
inputs may be plain numbers (`x * 3` keeps the 3 itself, not a Value), with `op`, and a
leaf rule `lambda: None`; the data may be a NumPy scalar."""
import numpy as np

STYLE = "scalar Value: prev a generator, plain numbers among the inputs"


class Value:
    def __init__(self, data, inputs=(), op=""):
        self.data = np.float64(data)
        self.grad = 0.0
        self._inputs = list(inputs)
        self.op = op
        self._backward = lambda: None

    @property
    def prev(self):
        return (i for i in self._inputs)

    @staticmethod
    def _value(x):
        return x.data if isinstance(x, Value) else x

    def __mul__(self, other):
        out = Value(self.data * Value._value(other), (self, other), "*")

        def _backward():
            self.grad += Value._value(other) * out.grad
            if isinstance(other, Value):
                other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __add__(self, other):
        out = Value(self.data + Value._value(other), (self, other), "+")

        def _backward():
            self.grad += out.grad
            if isinstance(other, Value):
                other.grad += out.grad
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
                stack.extend((p, False) for p in node.prev if isinstance(p, Value))
        for node in order:
            node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            node._backward()


def build():
    x, y = Value(2.0), Value(-1.0)
    out = (x * 3 + y) * x + 0.5
    return out, {"x": x, "y": y}
