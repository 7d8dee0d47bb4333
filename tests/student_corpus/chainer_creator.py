"""Chainer-style: a Variable knows its `creator` (a Function object, called to apply it),
which holds `inputs` and weak references to its `outputs`, and a `generation`; backward()
runs the creators by generation, calling `backward(gy)`, which returns the inputs' grads,
and sets a grad the first time (`x.grad = gx`) then adds to it."""
import weakref

import numpy as np

STYLE = "creator.inputs, creator.outputs as weakrefs, generation, Function objects"


class Variable:
    def __init__(self, data):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self.creator = None
        self.generation = 0

    def set_creator(self, function):
        self.creator = function
        self.generation = function.generation + 1

    def __add__(self, other):
        return Add()(self, other)

    def __mul__(self, other):
        return Mul()(self, other)

    def backward(self):
        self.grad = np.ones_like(self.data)
        functions, seen = [], set()

        def add(f):
            if f not in seen:
                seen.add(f)
                functions.append(f)
                functions.sort(key=lambda g: g.generation)
        add(self.creator)
        while functions:
            f = functions.pop()
            gy = f.outputs[0]().grad
            gxs = f.backward(gy)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for x, gx in zip(f.inputs, gxs):
                x.grad = gx if x.grad is None else x.grad + gx
                if x.creator is not None:
                    add(x.creator)


class Function:
    def __call__(self, *inputs):
        y = Variable(self.forward(*(x.data for x in inputs)))
        self.generation = max(x.generation for x in inputs)
        y.set_creator(self)
        self.inputs = inputs
        self.outputs = [weakref.ref(y)]
        return y


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return gy * b.data, gy * a.data


class Exp(Function):
    def forward(self, a):
        return np.exp(a)

    def backward(self, gy):
        return gy * np.exp(self.inputs[0].data)


def exp(x):
    return Exp()(x)


def build():
    x, y = Variable(0.5), Variable(2.0)
    a = x * y
    out = exp(a) * y + a
    return out, {"x": x, "y": y}
