"""A NumPy Tensor with `requires_grad` flags: constants made from numbers do not require a
grad and their rules skip them; grad starts as zeros; `_prev` a list and `op` a string."""
import numpy as np

STYLE = "NumPy Tensor: requires_grad flags, grad zeros, _prev list, op"


class Tensor:
    def __init__(self, data, requires_grad=False, _prev=(), op=None):
        self.data = np.array(data, dtype=np.float64)
        self.requires_grad = requires_grad
        self.grad = np.zeros_like(self.data)
        self._prev = list(_prev)
        self.op = op
        self._backward = lambda: None

    @staticmethod
    def lift(x):
        return x if isinstance(x, Tensor) else Tensor(x)

    def _result(self, data, parents, op):
        return Tensor(data, any(p.requires_grad for p in parents), parents, op)

    def __add__(self, other):
        other = Tensor.lift(other)
        out = self._result(self.data + other.data, [self, other], "add")

        def _backward():
            if self.requires_grad:
                self.grad += out.grad
            if other.requires_grad:
                other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = Tensor.lift(other)
        out = self._result(self.data * other.data, [self, other], "mul")

        def _backward():
            if self.requires_grad:
                self.grad += out.grad * other.data
            if other.requires_grad:
                other.grad += out.grad * self.data
        out._backward = _backward
        return out

    def __rmul__(self, other):
        return Tensor.lift(other) * self

    def __neg__(self):
        out = self._result(-self.data, [self], "neg")

        def _backward():
            self.grad -= out.grad
        out._backward = _backward
        return out

    def exp(self):
        out = self._result(np.exp(self.data), [self], "exp")

        def _backward():
            self.grad += out.grad * out.data
        out._backward = _backward
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._prev)
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()


def build():
    x = Tensor(1.2, requires_grad=True)
    y = Tensor(-0.4, requires_grad=True)
    out = (-(x * y)).exp() * 3.0 + x * 2.0
    return out, {"x": x, "y": y}
