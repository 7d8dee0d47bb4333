"""Small autodiff classes in the practical's shape, each with one mistake students make in
backward() (and one without): what observing their own backward must show and name.

``build(cls)`` returns ``(out, x)`` for out = x·x + 5x − 1 at x = 3 (the chain rule gives
11.0; at 3 no other op of the same inputs gives x·x's value, so a wrong rule cannot pass for
another op's right one); ``build_uneven(cls)`` a graph where one value is used at two depths (out = c + a,
c = b·b, b = a·a, a = x·x), which a breadth-first walk gets wrong whatever the set order.
"""
import numpy as np


class Tensor:
    def __init__(self, data, parents=(), function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = tuple(parents)
        self._function = function
        self._backward = lambda: None

    @classmethod
    def wrap(cls, other):
        return other if isinstance(other, Tensor) else cls(other)

    def __add__(self, other):
        other = self.wrap(other)
        out = type(self)(self.data + other.data, (self, other), "add")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self.wrap(other)
        out = type(self)(self.data * other.data, (self, other), "mul")

        def _backward():
            self.grad += out.grad * other.data
            other.grad += out.grad * self.data
        out._backward = _backward
        return out

    def __sub__(self, other):
        other = self.wrap(other)
        out = type(self)(self.data - other.data, (self, other), "sub")

        def _backward():
            self.grad += out.grad
            other.grad -= out.grad
        out._backward = _backward
        return out

    def __rmul__(self, other):
        return self.wrap(other) * self

    def topological(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif node not in seen:
                seen.add(node)
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents)
        return order

    def backward(self):
        order = self.topological()
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()


class NoSeed(Tensor):
    def backward(self):
        order = self.topological()
        for node in order:
            node.grad = np.zeros_like(node.data)
        for node in reversed(order):
            node._backward()


class BreadthFirst(Tensor):
    def backward(self):
        for node in self.topological():
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        queue, seen = [self], {self}
        while queue:
            node = queue.pop(0)
            node._backward()
            for p in node._parents:
                if p not in seen:
                    seen.add(p)
                    queue.append(p)


class SetBreadthFirst(BreadthFirst):
    """The practical's own shape: parents in a set, walked in whatever order the set gives."""

    def __init__(self, data, parents=(), function=None):
        super().__init__(data, parents, function)
        self._parents = set(self._parents)


class Overwrite(Tensor):
    def __mul__(self, other):
        other = self.wrap(other)
        out = type(self)(self.data * other.data, (self, other), "mul")

        def _backward():
            self.grad = out.grad * other.data
            other.grad = out.grad * self.data
        out._backward = _backward
        return out


class NeverInitialised(Tensor):
    def backward(self):
        self.grad = np.ones_like(self.data)
        for node in reversed(self.topological()):
            node._backward()


class Endless(Tensor):
    def backward(self):
        order, stack = [], [self]
        while stack:                      # forgets to pop: never ends
            node = stack[-1]
            if all(p in order for p in node._parents):
                if node not in order:
                    order.append(node)
            else:
                stack.extend(p for p in node._parents if p not in order)
        self.grad = np.ones_like(self.data)


class RulesForever(Tensor):
    def backward(self):
        order = self.topological()
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        while True:                       # meant to stop when nothing changes: never checks
            for node in reversed(order):
                node._backward()


class Recursive(Tensor):
    def backward(self):
        order, seen = [], set()

        def visit(node):
            if node not in seen:
                seen.add(node)
                for p in node._parents:
                    visit(p)
                order.append(node)
        visit(self)
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()


class RuleRaises(Tensor):
    def __mul__(self, other):
        other = self.wrap(other)
        out = type(self)(self.data * other.data, (self, other), "mul")

        def _backward():
            self.grad += out.grad * other.value       # a typo: Tensor has no .value
            other.grad += out.grad * self.data
        out._backward = _backward
        return out


BUGS = (NoSeed, BreadthFirst, Overwrite, NeverInitialised, Endless, RulesForever, Recursive, RuleRaises)


def build(cls):
    x = cls(3.0)
    return x * x + 5 * x - 1, x


def build_uneven(cls):
    x = cls(0.5)
    a = x * x
    b = a * a
    c = b * b
    return c + a, x


def chain(cls, n):
    x = cls(1.0)
    out = x
    for _ in range(n):
        out = out * 1.0
    return out, x
