"""Scalar values that keep their inputs in a list named `_children` and their op in `op`,
with a `name`; relu and integer powers."""

STYLE = "scalar Value: _children list, op, name"


class Scalar:
    def __init__(self, data, _children=None, op="", name=None):
        self.data = data
        self.grad = 0
        self._children = list(_children or [])
        self.op = op
        self.name = name
        self._backward = lambda: None

    def __add__(self, other):
        other = other if isinstance(other, Scalar) else Scalar(other)
        out = Scalar(self.data + other.data, [self, other], "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __radd__(self, other):
        return self + other

    def __mul__(self, other):
        other = other if isinstance(other, Scalar) else Scalar(other)
        out = Scalar(self.data * other.data, [self, other], "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __rmul__(self, other):
        return self * other

    def __pow__(self, n):
        out = Scalar(self.data ** n, [self], f"**{n}")

        def _backward():
            self.grad += n * self.data ** (n - 1) * out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Scalar(max(self.data, 0), [self], "relu")

        def _backward():
            self.grad += (self.data > 0) * out.grad
        out._backward = _backward
        return out

    def backward(self):
        topo, visited = [], set()

        def visit(node):
            if id(node) in visited:
                return
            visited.add(id(node))
            for child in node._children:
                visit(child)
            topo.append(node)
        visit(self)
        for node in topo:
            node.grad = 0
        self.grad = 1
        for node in topo[::-1]:
            node._backward()


def build():
    x, y = Scalar(3.0, name="x"), Scalar(-2.0, name="y")
    z = (x * y + 4 * x).relu() + x ** 3 + y ** 2
    return z, {"x": x, "y": y}
