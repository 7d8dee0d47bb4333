"""NumPy tensor where constants are nodes too, made with requires_grad=False; backward zeroes
every grad in place with `*= 0` before the sweep and skips nodes that do not require grad."""
import numpy as np

STYLE = "NumPy: constants are nodes with requires_grad=False; grads zeroed in place with *= 0; _inputs, _grad_fn"


class T:
    def __init__(self, data, requires_grad=True, _inputs=(), _op=None):
        self.data = np.asarray(data, dtype=float)
        self.requires_grad = requires_grad
        self._inputs = _inputs
        self._op = _op
        self.grad = np.zeros_like(self.data)
        self._grad_fn = None

    @staticmethod
    def const(v):
        return T(v, requires_grad=False)

    def __add__(self, o):
        out = T(self.data + o.data, self.requires_grad or o.requires_grad, (self, o), "add")

        def fn():
            if self.requires_grad:
                self.grad += out.grad
            if o.requires_grad:
                o.grad += out.grad
        out._grad_fn = fn
        return out

    def __mul__(self, o):
        out = T(self.data * o.data, self.requires_grad or o.requires_grad, (self, o), "mul")

        def fn():
            if self.requires_grad:
                self.grad += o.data * out.grad
            if o.requires_grad:
                o.grad += self.data * out.grad
        out._grad_fn = fn
        return out

    def __pow__(self, k):
        out = T(self.data ** k, self.requires_grad, (self,), "pow")

        def fn():
            self.grad += k * self.data ** (k - 1) * out.grad
        out._grad_fn = fn
        return out

    def mean(self):
        out = T(self.data.mean(), self.requires_grad, (self,), "mean")

        def fn():
            self.grad += np.ones_like(self.data) * out.grad / self.data.size
        out._grad_fn = fn
        return out

    def backward(self):
        order, seen = [], set()

        def dfs(t):
            if id(t) not in seen:
                seen.add(id(t))
                for i in t._inputs:
                    dfs(i)
                order.append(t)
        dfs(self)
        for t in order:
            t.grad *= 0
        self.grad += 1.0
        for t in reversed(order):
            if t._grad_fn is not None and t.requires_grad:
                t._grad_fn()


def build():
    x = T([1.0, -2.0, 0.5])
    w = T([0.3, 0.3, -1.0])
    two = T.const(2.0)
    target = T.const([1.0, 0.0, 1.0])
    err = x * w + target * T.const(-1.0)
    out = (err ** 2 * two).mean()
    return out, {"x": x, "w": w}
