"""NumPy Tensor with a .T property that makes a transpose node, @ (matmul), elementwise *, and
.sum(); fields arr, from_, g, back, kind."""
import numpy as np

STYLE = "NumPy Tensor: .T property making a transpose node, @, sum; arr, from_, g, back, kind"


class Tensor:
    def __init__(self, arr, from_=(), kind="leaf"):
        self.arr = np.array(arr, dtype=float)
        self.from_ = from_
        self.kind = kind
        self.g = np.zeros_like(self.arr)
        self.back = lambda: None

    @property
    def T(self):
        out = Tensor(self.arr.T, (self,), "transpose")

        def back():
            self.g += out.g.T
        out.back = back
        return out

    def __matmul__(self, o):
        out = Tensor(self.arr @ o.arr, (self, o), "matmul")

        def back():
            self.g += out.g @ o.arr.T
            o.g += self.arr.T @ out.g
        out.back = back
        return out

    def __mul__(self, o):
        out = Tensor(self.arr * o.arr, (self, o), "mul")

        def back():
            self.g += o.arr * out.g
            o.g += self.arr * out.g
        out.back = back
        return out

    def sum(self):
        out = Tensor(self.arr.sum(), (self,), "sum")

        def back():
            self.g += np.ones_like(self.arr) * out.g
        out.back = back
        return out

    def backward(self):
        topo, seen = [], set()

        def build(t):
            if t not in seen:
                seen.add(t)
                for p in t.from_:
                    build(p)
                topo.append(t)
        build(self)
        self.g = np.ones_like(self.arr)
        for t in reversed(topo):
            t.back()


def build():
    A = Tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    B = Tensor([[0.2, -0.3], [1.0, 0.4]])
    C = A @ B.T
    out = (C * A).sum()
    return out, {"A": A, "B": B}
