"""Rules are functools.partial objects over module-level functions (no closure), or a
closure made by a factory; data `x`, inputs `sources`-free: kept in `ins`, grad `dx`."""
import functools
import math

STYLE = "rules as functools.partial of module functions; x, ins, dx, kind"


def _mul_back(a, b, out):
    a.dx += b.x * out.dx
    b.dx += a.x * out.dx


def _add_back(a, b, out):
    a.dx += out.dx
    b.dx += out.dx


def _make_sin_back(a, out):
    c = math.cos(a.x)

    def inner():
        a.dx += c * out.dx
    return inner


class Scal:
    def __init__(self, x, ins=(), kind=""):
        self.x = x
        self.ins = ins
        self.kind = kind
        self.dx = 0.0
        self.rule = None

    def __mul__(self, o):
        out = Scal(self.x * o.x, (self, o), "mul")
        out.rule = functools.partial(_mul_back, self, o, out)
        return out

    def __add__(self, o):
        out = Scal(self.x + o.x, (self, o), "add")
        out.rule = functools.partial(_add_back, self, o, out)
        return out

    def sin(self):
        out = Scal(math.sin(self.x), (self,), "sin")
        out.rule = _make_sin_back(self, out)
        return out


def backward(out, inputs):
    topo, seen = [], set()

    def visit(n):
        if id(n) not in seen:
            seen.add(id(n))
            for i in n.ins:
                visit(i)
            topo.append(n)
    visit(out)
    out.dx = 1.0
    for n in reversed(topo):
        if n.rule:
            n.rule()


def build():
    p, q = Scal(0.7), Scal(1.3)
    out = (p * q).sin() * p + q
    return out, {"p": p, "q": q}
