"""__slots__ with private slots behind properties: `value` and `grad` are properties
(grad has a setter) over _v/_g; inputs in _in, rule in _bw, op in _sym."""
STYLE = "__slots__ + properties: value/grad properties over _v/_g; _in, _bw, _sym"


class Scalar:
    __slots__ = ("_v", "_g", "_in", "_bw", "_sym")

    def __init__(self, v, ins=(), sym=""):
        self._v = float(v)
        self._g = 0.0
        self._in = ins
        self._sym = sym
        self._bw = None

    @property
    def value(self):
        return self._v

    @property
    def grad(self):
        return self._g

    @grad.setter
    def grad(self, g):
        self._g = g

    def __mul__(self, o):
        out = Scalar(self._v * o._v, (self, o), "*")

        def bw():
            self.grad += o.value * out.grad
            o.grad += self.value * out.grad
        out._bw = bw
        return out

    def __sub__(self, o):
        out = Scalar(self._v - o._v, (self, o), "-")

        def bw():
            self.grad += out.grad
            o.grad -= out.grad
        out._bw = bw
        return out

    def relu(self):
        out = Scalar(max(0.0, self._v), (self,), "relu")

        def bw():
            self.grad += (self._v > 0) * out.grad
        out._bw = bw
        return out

    def backward(self):
        topo, seen = [], set()

        def visit(n):
            if id(n) not in seen:
                seen.add(id(n))
                for i in n._in:
                    visit(i)
                topo.append(n)
        visit(self)
        self.grad = 1.0
        for n in reversed(topo):
            if n._bw:
                n._bw()


def build():
    a, b, c = Scalar(2.0), Scalar(0.5), Scalar(-1.0)
    out = (a * b - c).relu() * a
    return out, {"a": a, "b": b, "c": c}
