"""Function objects in the style of a small autograd: each result keeps a context `_ctx`
(an instance of the op's class, `Mul`, `Add`, `Exp`) holding its `parents` and a
`backward(grad)` that returns their grads; the tensor itself has neither parents nor rule."""
import numpy as np

STYLE = "Tensor with _ctx (op class with .parents and .backward(grad))"


class Function:
    def __init__(self, *parents):
        self.parents = parents

    @classmethod
    def apply(cls, *parents):
        ctx = cls(*parents)
        out = Tensor(ctx.forward(*[p.data for p in parents]))
        out._ctx = ctx
        return out


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad


class Mul(Function):
    def forward(self, a, b):
        self.saved = (a, b)
        return a * b

    def backward(self, grad):
        a, b = self.saved
        return grad * b, grad * a


class Exp(Function):
    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, grad):
        return (grad * self.out,)


class Tensor:
    def __init__(self, data):
        self.data = np.asarray(data, dtype=np.float64)
        self.grad = None
        self._ctx = None

    def __add__(self, other):
        return Add.apply(self, other)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def exp(self):
        return Exp.apply(self)

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                if node._ctx is not None:
                    stack.extend((p, False) for p in node._ctx.parents)
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            if node._ctx is not None:
                for p, g in zip(node._ctx.parents, node._ctx.backward(node.grad)):
                    p.grad = p.grad + g


def build():
    x, y, c = Tensor(0.5), Tensor(-1.2), Tensor(2.0)
    out = Mul.apply(Add.apply(Mul.apply(x, y).exp(), x), c)
    return out, {"x": x, "y": y, "c": c}
