"""Edges kept on the consumers: each Var lists, in `children`, the nodes that use it with
the local derivative, as `(weight, consumer)` pairs; the output knows nothing of its
inputs. A grad is pulled on demand: `x.grad()` sums `weight * consumer.grad()`, once the
output's `grad_value` has been set to 1."""
import math

STYLE = "edges on the consumers: children = [(weight, consumer)], grads pulled"


class Var:
    def __init__(self, value):
        self.value = value
        self.children = []
        self.grad_value = None

    def __mul__(self, other):
        z = Var(self.value * other.value)
        self.children.append((other.value, z))
        other.children.append((self.value, z))
        return z

    def __add__(self, other):
        z = Var(self.value + other.value)
        self.children.append((1.0, z))
        other.children.append((1.0, z))
        return z

    def exp(self):
        z = Var(math.exp(self.value))
        self.children.append((z.value, z))
        return z

    def grad(self):
        if self.grad_value is None:
            self.grad_value = sum(weight * var.grad() for weight, var in self.children)
        return self.grad_value


def backward(out, inputs):
    out.grad_value = 1.0
    for var in inputs.values():
        var.grad()


def build():
    x, y = Var(0.5), Var(4.2)
    out = (x * y).exp() + x * x
    return out, {"x": x, "y": y}
