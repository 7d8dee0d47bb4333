"""A scalar Value with `__slots__` whose rules are bound methods (`_mul_backward`) kept in
`_backward`, inputs in `_prev` (a tuple) and op in `_op`; floats throughout."""

STYLE = "slotted Value: bound-method rules, _prev tuple"


class Value:
    __slots__ = ("data", "grad", "_prev", "_op", "_backward")

    def __init__(self, data, _prev=(), _op=""):
        self.data = float(data)
        self.grad = 0.0
        self._prev = tuple(_prev)
        self._op = _op
        self._backward = self._leaf_backward

    def _leaf_backward(self):
        pass

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")
        out._backward = out._mul_backward
        return out

    def _mul_backward(self):
        a, b = self._prev
        a.grad += b.data * self.grad
        b.grad += a.data * self.grad

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")
        out._backward = out._add_backward
        return out

    def _add_backward(self):
        for p in self._prev:
            p.grad += self.grad

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p in node._prev)
        for node in order:
            node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            node._backward()


def build():
    a, b = Value(1.5), Value(-2.0)
    c = a * b + a
    out = c * c + b
    return out, {"a": a, "b": b}
