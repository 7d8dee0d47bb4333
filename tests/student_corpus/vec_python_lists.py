"""Vectors as plain Python lists of floats: `elems`, grads in `gs` (a list), inputs in
`kids`, rule `back`, op `tag`; elementwise mul/add, dot, sum."""
STYLE = "plain Python lists of floats: elems, gs list grad, kids, back, tag; sum to scalar"


class Vec:
    def __init__(self, elems, kids=(), tag=""):
        self.elems = [float(e) for e in elems]
        self.kids = kids
        self.tag = tag
        self.gs = [0.0] * len(self.elems)
        self.back = lambda: None

    def __mul__(self, o):
        out = Vec([a * b for a, b in zip(self.elems, o.elems)], (self, o), "mul")

        def back():
            for i in range(len(out.elems)):
                self.gs[i] += o.elems[i] * out.gs[i]
                o.gs[i] += self.elems[i] * out.gs[i]
        out.back = back
        return out

    def __add__(self, o):
        out = Vec([a + b for a, b in zip(self.elems, o.elems)], (self, o), "add")

        def back():
            for i in range(len(out.elems)):
                self.gs[i] += out.gs[i]
                o.gs[i] += out.gs[i]
        out.back = back
        return out

    def sum(self):
        out = Vec([sum(self.elems)], (self,), "sum")

        def back():
            for i in range(len(self.elems)):
                self.gs[i] += out.gs[0]
        out.back = back
        return out

    def backprop(self):
        topo, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for k in v.kids:
                    visit(k)
                topo.append(v)
        visit(self)
        self.gs = [1.0]
        for v in reversed(topo):
            v.back()


def backward(out, inputs):
    out.backprop()


def build():
    a, b = Vec([1.0, 2.0, -1.0]), Vec([0.5, -0.5, 3.0])
    out = (a * b + a).sum()
    return out, {"a": a, "b": b}
