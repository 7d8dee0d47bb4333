"""A global tape: each operation appends `(output, backward)` to `TAPE.entries`, and the
nodes hold nothing but their number `v` and `grad`; backward() replays the tape in
reverse. Nothing on a node says where it came from: only watching the graph being built
(which call made which node from which inputs, and the rule it defined) can draw it."""
import math

STYLE = "global tape of (output, closure); nodes hold only v and grad"


class Tape:
    def __init__(self):
        self.entries = []


TAPE = Tape()


class Num:
    def __init__(self, v):
        self.v = v
        self.grad = 0.0

    def __mul__(self, other):
        out = Num(self.v * other.v)

        def backward():
            self.grad += other.v * out.grad
            other.grad += self.v * out.grad
        TAPE.entries.append((out, backward))
        return out

    def __add__(self, other):
        out = Num(self.v + other.v)

        def backward():
            self.grad += out.grad
            other.grad += out.grad
        TAPE.entries.append((out, backward))
        return out

    def sigmoid(self):
        s = 1 / (1 + math.exp(-self.v))
        out = Num(s)

        def backward():
            self.grad += s * (1 - s) * out.grad
        TAPE.entries.append((out, backward))
        return out


def backward(out, inputs):
    for node, _ in TAPE.entries:
        node.grad = 0.0
    for node in inputs.values():
        node.grad = 0.0
    out.grad = 1.0
    for _, rule in reversed(TAPE.entries):
        rule()


def build():
    TAPE.entries.clear()
    x, w, b = Num(1.5), Num(-0.5), Num(0.25)
    out = (x * w + b).sigmoid() * x
    return out, {"x": x, "w": w, "b": b}
