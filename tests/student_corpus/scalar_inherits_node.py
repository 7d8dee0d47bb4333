"""Inheritance: Node keeps the graph (predecessors-free: `deps`, `backfn`, `g`), Scalar(Node)
adds the number `num`; a Constant(Scalar) subclass for literals (requires no grad)."""
import math

STYLE = "Scalar(Node) inheritance, Constant(Scalar) literals; num, deps, g, backfn"


class Node:
    def __init__(self, deps=()):
        self.deps = list(deps)
        self.g = 0.0
        self.backfn = None

    def topo(self):
        out, seen = [], set()

        def visit(n):
            if id(n) not in seen:
                seen.add(id(n))
                for d in n.deps:
                    visit(d)
                out.append(n)
        visit(self)
        return out

    def backward(self):
        order = self.topo()
        for n in order:
            n.g = 0.0
        self.g = 1.0
        for n in reversed(order):
            if n.backfn is not None:
                n.backfn(n.g)


class Scalar(Node):
    def __init__(self, num, deps=(), opname="leaf"):
        super().__init__(deps)
        self.num = float(num)
        self.opname = opname

    @staticmethod
    def wrap(o):
        return o if isinstance(o, Scalar) else Constant(o)

    def __add__(self, o):
        o = Scalar.wrap(o)
        out = Scalar(self.num + o.num, [self, o], "add")

        def backfn(g):
            self.g += g
            o.g += g
        out.backfn = backfn
        return out

    def __mul__(self, o):
        o = Scalar.wrap(o)
        out = Scalar(self.num * o.num, [self, o], "mul")

        def backfn(g):
            self.g += o.num * g
            o.g += self.num * g
        out.backfn = backfn
        return out

    __rmul__ = __mul__

    def log(self):
        out = Scalar(math.log(self.num), [self], "log")

        def backfn(g):
            self.g += g / self.num
        out.backfn = backfn
        return out


class Constant(Scalar):
    pass


def backward(out, inputs):
    out.backward()


def build():
    x, y = Scalar(2.0), Scalar(0.5)
    out = (3 * x * y + 1.0).log() * x
    return out, {"x": x, "y": y}
