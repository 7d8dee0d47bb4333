"""Rules kept centrally: a `Function` subclass per op with static `forward(ctx, ...)` and
`backward(ctx, grad)`; each result holds a `Context` in `ctx` with the Function class, its
`inputs`, its `outputs` (pointing back at the result) and what forward saved. The tensor
keeps its numbers in `array`."""
import numpy as np

STYLE = "central Function: ctx.function.backward(ctx, g), ctx.inputs/outputs"


class Context:
    def __init__(self, function, inputs):
        self.function = function
        self.inputs = inputs
        self.outputs = []
        self.saved = ()


class Function:
    @classmethod
    def apply(cls, *inputs):
        ctx = Context(cls, inputs)
        out = Tensor(cls.forward(ctx, *(t.array for t in inputs)))
        out.ctx = ctx
        ctx.outputs.append(out)
        return out


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.saved = (a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        return grad * b, grad * a


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        s = 1 / (1 + np.exp(-a))
        ctx.saved = (s,)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved
        return (grad * s * (1 - s),)


class Tensor:
    def __init__(self, array):
        self.array = np.asarray(array, dtype=float)
        self.grad = None
        self.ctx = None

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def sigmoid(self):
        return Sigmoid.apply(self)

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                if node.ctx is not None:
                    stack.extend((t, False) for t in node.ctx.inputs)
        for node in order:
            node.grad = np.zeros_like(node.array)
        self.grad = np.ones_like(self.array)
        for node in reversed(order):
            if node.ctx is not None:
                grads = node.ctx.function.backward(node.ctx, node.grad)
                for t, g in zip(node.ctx.inputs, grads):
                    t.grad = t.grad + g


def build():
    w, x, t = Tensor([0.5, -1.0]), Tensor([2.0, 1.5]), Tensor([1.0, 0.0])
    out = (w * x).sigmoid() - t
    out = out * out
    return out, {"w": w, "x": x, "t": t}


SEED = np.ones(2)
