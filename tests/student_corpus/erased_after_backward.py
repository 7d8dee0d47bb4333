"""A micrograd-like Scalar whose backward() erases the graph when it is done (to free
memory): every node's `_inputs` becomes an empty set and its `_backward` a no-op. The
cell ran backward() already, so only a recording of the graph being built can draw it."""

STYLE = "graph erased by backward() (needs the recording); x in `x`"


class Scalar:
    def __init__(self, x, inputs=(), op=""):
        self.x = x
        self.grad = 0.0
        self._inputs = set(inputs)
        self._op = op
        self._backward = lambda: None

    def __add__(self, other):
        out = Scalar(self.x + other.x, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        out = Scalar(self.x * other.x, (self, other), "*")

        def _backward():
            self.grad += other.x * out.grad
            other.grad += self.x * out.grad
        out._backward = _backward
        return out

    def __pow__(self, k):
        out = Scalar(self.x ** k, (self,), f"**{k}")

        def _backward():
            self.grad += k * self.x ** (k - 1) * out.grad
        out._backward = _backward
        return out

    def backward(self):
        topo, seen = [], set()

        def build(v):
            if v not in seen:
                seen.add(v)
                for child in v._inputs:
                    build(child)
                topo.append(v)
        build(self)
        for v in topo:
            v.grad = 0.0
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()
        for v in topo:            # free the graph
            v._inputs = set()
            v._backward = lambda: None


def build():
    a, b = Scalar(1.5), Scalar(-2.0)
    out = (a * b + a ** 2) * b
    out.backward()
    return out, {"a": a, "b": b}
