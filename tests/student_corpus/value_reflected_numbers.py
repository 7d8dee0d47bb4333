"""Scalar Value with __radd__, __rsub__, __rtruediv__, __rmul__ against Python numbers; the number
is not wrapped as a node: it lives only in the closure, and the op is named 'rsub', 'rdiv', etc."""

STYLE = "scalar Value: __radd__/__rsub__/__rtruediv__ with bare numbers kept only in closures; op 'rsub'/'rdiv'"


class Value:
    def __init__(self, data, prev=(), op=""):
        self.data = data
        self.grad = 0.0
        self._prev = prev
        self._op = op
        self._backward = lambda: None

    def __add__(self, other):
        if isinstance(other, Value):
            out = Value(self.data + other.data, (self, other), "+")

            def _backward():
                self.grad += out.grad
                other.grad += out.grad
        else:
            out = Value(self.data + other, (self,), "+c")

            def _backward():
                self.grad += out.grad
        out._backward = _backward
        return out

    __radd__ = __add__

    def __mul__(self, other):
        if isinstance(other, Value):
            out = Value(self.data * other.data, (self, other), "*")

            def _backward():
                self.grad += other.data * out.grad
                other.grad += self.data * out.grad
        else:
            out = Value(self.data * other, (self,), "*c")

            def _backward():
                self.grad += other * out.grad
        out._backward = _backward
        return out

    __rmul__ = __mul__

    def __rsub__(self, other):
        out = Value(other - self.data, (self,), "rsub")

        def _backward():
            self.grad -= out.grad
        out._backward = _backward
        return out

    def __rtruediv__(self, other):
        out = Value(other / self.data, (self,), "rdiv")

        def _backward():
            self.grad += -other / self.data ** 2 * out.grad
        out._backward = _backward
        return out

    def backward(self):
        topo, seen = [], set()

        def visit(v):
            if v not in seen:
                seen.add(v)
                for p in v._prev:
                    visit(p)
                topo.append(v)
        visit(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()


def build():
    x, y = Value(2.0), Value(-0.5)
    a = 3.0 - x * y
    b = 1.0 / (x + 4.0)
    out = 2.0 * a + b * y + 1.5
    return out, {"x": x, "y": y}
