"""The rule kept one object further: each result has a `history` holding `last_fn` (an
op object, `Mul(a, b)` keeping the numbers it needs, with `backward(d_out)` returning the
inputs' derivatives) and `inputs`; the scalar's value in `v`, its grad in `derivative`."""
import math

STYLE = "history.last_fn.backward(d) returns grads, history.inputs"


class History:
    def __init__(self, last_fn, inputs):
        self.last_fn = last_fn
        self.inputs = inputs


class Add:
    def backward(self, d_out):
        return d_out, d_out


class Mul:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def backward(self, d_out):
        return d_out * self.b, d_out * self.a


class Exp:
    def __init__(self, out):
        self.out = out

    def backward(self, d_out):
        return (d_out * self.out,)


class Scalar:
    def __init__(self, v, history=None):
        self.v = float(v)
        self.derivative = None
        self.history = history

    def __add__(self, other):
        return Scalar(self.v + other.v, History(Add(), (self, other)))

    def __mul__(self, other):
        return Scalar(self.v * other.v, History(Mul(self.v, other.v), (self, other)))

    def exp(self):
        e = math.exp(self.v)
        return Scalar(e, History(Exp(e), (self,)))

    def backward(self):
        order, seen = [], set()

        def visit(s):
            if id(s) not in seen:
                seen.add(id(s))
                if s.history is not None:
                    for i in s.history.inputs:
                        visit(i)
                order.append(s)
        visit(self)
        for s in order:
            s.derivative = 0.0
        self.derivative = 1.0
        for s in reversed(order):
            if s.history is not None:
                for i, d in zip(s.history.inputs, s.history.last_fn.backward(s.derivative)):
                    i.derivative += d


def build():
    x, y = Scalar(0.2), Scalar(-1.1)
    out = (x * y).exp() * x + y
    return out, {"x": x, "y": y}
