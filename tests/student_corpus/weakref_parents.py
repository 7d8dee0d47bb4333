"""Inputs kept as weak references (`ancestors = [weakref.ref(p), ...]`, so the graph does
not keep its inputs alive); the value in `v`, the grad (an adjoint) in `adj`, the op as a
symbol in `how`, and a `pullback(g)` that returns the inputs' grads (the pullbacks that
use their inputs' values are what keeps the intermediate nodes alive)."""
import math
import weakref

STYLE = "weak-reference inputs, pullback(g) returns grads, v/adj/how"


class Node:
    def __init__(self, v, ancestors=(), how=""):
        self.v = v
        self.adj = None
        self.ancestors = [weakref.ref(a) for a in ancestors]
        self.how = how
        self.pullback = None

    def __mul__(self, other):
        out = Node(self.v * other.v, (self, other), "*")
        out.pullback = lambda g: (g * other.v, g * self.v)
        return out

    def __add__(self, other):
        out = Node(self.v + other.v, (self, other), "+")
        out.pullback = lambda g: (g, g)
        return out

    def exp(self):
        out = Node(math.exp(self.v), (self,), "exp")
        out.pullback = lambda g: (g * math.exp(self.v),)
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((r(), False) for r in node.ancestors)
        for node in order:
            node.adj = 0.0
        self.adj = 1.0
        for node in reversed(order):
            if node.pullback is not None:
                for a, g in zip(node.ancestors, node.pullback(node.adj)):
                    a().adj += g


def build():
    p, q = Node(0.3), Node(-0.7)
    out = (p * q).exp() * (p + q)     # each rule that uses an input keeps it alive
    return out, {"p": p, "q": q}
