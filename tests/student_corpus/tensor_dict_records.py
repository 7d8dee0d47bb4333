"""A Tensor whose values live in `_values` (read through a `values` property) and whose
inputs are `dependency` records `{"tensor": t, "grad_func": f}`; backward(grad) recurses
into each input with `f(grad)`."""
import numpy as np

STYLE = "Tensor with _values and dependency = [{'tensor', 'grad_func'}] dicts"


class Tensor:
    def __init__(self, values, requires_grad=False, dependency=None):
        self._values = np.asarray(values, dtype=float)
        self.requires_grad = requires_grad
        self.dependency = dependency or []
        self.grad = None

    @property
    def values(self):
        return self._values

    def backward(self, grad=None):
        grad = np.ones_like(self._values) if grad is None else grad
        self.grad = grad if self.grad is None else self.grad + grad
        for dep in self.dependency:
            dep["tensor"].backward(dep["grad_func"](grad))

    def __add__(self, other):
        deps = [{"tensor": self, "grad_func": lambda g: g}, {"tensor": other, "grad_func": lambda g: g}]
        return Tensor(self._values + other._values, True, deps)

    def __mul__(self, other):
        a, b = self._values, other._values
        deps = [{"tensor": self, "grad_func": lambda g: g * b}, {"tensor": other, "grad_func": lambda g: g * a}]
        return Tensor(a * b, True, deps)

    def exp(self):
        e = np.exp(self._values)
        return Tensor(e, True, [{"tensor": self, "grad_func": lambda g: g * e}])


def build():
    x, y = Tensor(0.3, True), Tensor(-0.7, True)
    out = (x * y).exp() + x
    return out, {"x": x, "y": y}
