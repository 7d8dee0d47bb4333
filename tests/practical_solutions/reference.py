# ruff: noqa: F811, I001  (notebook cells: Part B redefines add and mul with their rules)
# The practical's reference solution, one section per blank of notebooks/tp04_student.ipynb.
# A section starts with "# %% <blank id>"; tests fill each blank cell of the notebook with its
# section, and the mistakes in mistakes.py are this solution with one section rewritten.
# %% imports
import numpy as np

# %% tensor
class Tensor:
    def __init__(self, data, _parents=(), _function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = set(_parents)
        self._function = _function
        self._backward = lambda: None

    def __repr__(self):
        return f"Tensor(data={self.data}, grad={self.grad}, function={self._function})"

    def __add__(self, other):
        return add(self, other if isinstance(other, Tensor) else Tensor(other))

    def __radd__(self, other):
        return add(Tensor(other), self)

    def __mul__(self, other):
        return mul(self, other if isinstance(other, Tensor) else Tensor(other))

    def __rmul__(self, other):
        return mul(Tensor(other), self)

# %% graph_ops
def add(t1, t2):
    return Tensor(t1.data + t2.data, _parents=(t1, t2), _function="add")


def mul(t1, t2):
    return Tensor(t1.data * t2.data, _parents=(t1, t2), _function="mul")

# %% trace_graph
def trace_graph(tensor):
    nodes, edges = set(), set()
    stack = [tensor]
    while stack:
        node = stack.pop()
        if node in nodes:
            continue
        nodes.add(node)
        for parent in node._parents:
            edges.add((parent, node))
            stack.append(parent)
    return nodes, edges

# %% rules
def add(t1, t2):
    out = Tensor(t1.data + t2.data, _parents=(t1, t2), _function="add")

    def _backward():
        t1.grad += out.grad
        t2.grad += out.grad
    out._backward = _backward
    return out


def mul(t1, t2):
    out = Tensor(t1.data * t2.data, _parents=(t1, t2), _function="mul")

    def _backward():
        t1.grad += out.grad * t2.data
        t2.grad += out.grad * t1.data
    out._backward = _backward
    return out

# %% backward
def topological_order(tensor):
    order, visited = [], set()
    stack = [(tensor, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for parent in node._parents:
            if parent not in visited:
                stack.append((parent, False))
    return order


def backward(self):
    order = topological_order(self)
    for node in order:
        node.grad = np.zeros_like(node.data)
    self.grad = np.ones_like(self.data)
    for node in reversed(order):
        node._backward()


Tensor.backward = backward

# %% own_op
def tanh(t):
    out = Tensor(np.tanh(t.data), _parents=(t,), _function="tanh")

    def _backward():
        t.grad += out.grad * (1 - out.data ** 2)
    out._backward = _backward
    return out


def power(self, n):
    out = Tensor(self.data ** n, _parents=(self,), _function="pow")

    def _backward():
        self.grad += out.grad * n * self.data ** (n - 1)
    out._backward = _backward
    return out


Tensor.__pow__ = power

# %% descent
def gradient_descent(f, x, lr=0.1, steps=100):
    losses = []
    for _ in range(steps):
        loss = f(x)
        loss.backward()
        x.data = x.data - lr * x.grad
        losses.append(float(loss.data))
    return losses

# %% my_function
def my_function(x):
    return add(mul(add(x, Tensor(-2.0)), add(x, Tensor(-2.0))), tanh(x))


my_start, my_lr, my_steps = -1.0, 0.1, 50

# %% matvec
def matvec(W, v):
    out = Tensor(W.data @ v.data, _parents=(W, v), _function="matvec")

    def _backward():
        W.grad += np.outer(out.grad, v.data)
        v.grad += W.data.T @ out.grad
    out._backward = _backward
    return out


def relu(t):
    out = Tensor(np.maximum(t.data, 0), _parents=(t,), _function="relu")

    def _backward():
        t.grad += out.grad * (t.data > 0)
    out._backward = _backward
    return out

# %% mlp
def mlp(x, W1, b1, W2, b2):
    return add(matvec(W2, relu(add(matvec(W1, x), b1))), b2)


def regression_loss(params, X, Y):
    total = None
    for x, y in zip(X, Y):
        error = add(mlp(Tensor(x), *params), Tensor(-y))
        square = mul(error, error)
        total = square if total is None else add(total, square)
    return mul(total, Tensor([1.0 / len(X)]))


def train(params, X, Y, lr=0.1, steps=100):
    losses = []
    for _ in range(steps):
        loss = regression_loss(params, X, Y)
        loss.backward()
        for p in params:
            p.data = p.data - lr * p.grad
        losses.append(loss.data.item())
    return losses
