"""Each result keeps `links`: `(input, local derivative)` pairs, numbers computed in the
forward pass; no rule, no op name. backward() multiplies each local derivative by the
node's grad `g`."""
import math

STYLE = "(node, local_grad) pairs in links, no rule, no op name"


class Scalar:
    def __init__(self, num, links=()):
        self.num = num
        self.links = tuple(links)
        self.g = 0.0

    def __mul__(self, other):
        return Scalar(self.num * other.num, ((self, other.num), (other, self.num)))

    def __truediv__(self, other):
        a, b = self.num, other.num
        return Scalar(a / b, ((self, 1 / b), (other, -a / b ** 2)))

    def tanh(self):
        t = math.tanh(self.num)
        return Scalar(t, ((self, 1 - t * t),))

    def backward(self):
        order, seen = [], set()

        def visit(n):
            if id(n) not in seen:
                seen.add(id(n))
                for p, _ in n.links:
                    visit(p)
                order.append(n)
        visit(self)
        for n in order:
            n.g = 0.0
        self.g = 1.0
        for n in reversed(order):
            for p, local in n.links:
                p.g += local * n.g


def build():
    a, b = Scalar(1.2), Scalar(0.4)
    out = (a / b).tanh() * a
    return out, {"a": a, "b": b}
