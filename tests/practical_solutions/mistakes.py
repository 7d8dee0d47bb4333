"""Realistic wrong implementations of the practical, each the reference solution with one
section rewritten: (name, section, code, part, question that must fail, words of its hint)."""

MISTAKES = [
    ("grads overwritten instead of accumulated", "rules", '''
def add(t1, t2):
    out = Tensor(t1.data + t2.data, _parents=(t1, t2), _function="add")
    def _backward():
        t1.grad = out.grad
        t2.grad = out.grad
    out._backward = _backward
    return out

def mul(t1, t2):
    out = Tensor(t1.data * t2.data, _parents=(t1, t2), _function="mul")
    def _backward():
        t1.grad = out.grad * t2.data
        t2.grad = out.grad * t1.data
    out._backward = _backward
    return out
''', "B", "B1", "+="),
    ("grads not reset before backward", "backward", '''
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
        stack.extend((p, False) for p in node._parents if p not in visited)
    return order

def backward(self):
    order = topological_order(self)
    for node in order:
        if node.grad is None:
            node.grad = np.zeros_like(node.data)
    self.grad = np.ones_like(self.data)
    for node in reversed(order):
        node._backward()

Tensor.backward = backward
''', "B", "B4", "not only those that are None"),
    ("mul's rule uses its own operand", "rules", '''
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
        t1.grad += out.grad * t1.data
        t2.grad += out.grad * t2.data
    out._backward = _backward
    return out
''', "B", "B1", "∂L/∂a = ∂L/∂out · b"),
    ("topological order not reversed", "backward", '''
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
        stack.extend((p, False) for p in node._parents if p not in visited)
    return order

def backward(self):
    order = topological_order(self)
    for node in order:
        node.grad = np.zeros_like(node.data)
    self.grad = np.ones_like(self.data)
    for node in order:
        node._backward()

Tensor.backward = backward
''', "B", "B5", "run it reversed"),
    ("recursive topological sort", "backward", '''
def topological_order(tensor):
    order, visited = [], set()
    def visit(node):
        if node not in visited:
            visited.add(node)
            for p in node._parents:
                visit(p)
            order.append(node)
    visit(tensor)
    return order

def backward(self):
    order = topological_order(self)
    for node in order:
        node.grad = np.zeros_like(node.data)
    self.grad = np.ones_like(self.data)
    for node in reversed(order):
        node._backward()

Tensor.backward = backward
''', "B", "B9", "explicit stack"),
    ("trace_graph misses the edges of shared nodes", "trace_graph", '''
def trace_graph(tensor):
    nodes, edges = set(), set()
    stack = [tensor]
    nodes.add(tensor)
    while stack:
        node = stack.pop()
        for parent in node._parents:
            if parent not in nodes:
                nodes.add(parent)
                edges.add((parent, node))
                stack.append(parent)
    return nodes, edges
''', "A", "A5", "already visited"),
    ("trace_graph reverses the edges", "trace_graph", '''
def trace_graph(tensor):
    nodes, edges = set(), set()
    stack = [tensor]
    while stack:
        node = stack.pop()
        if node in nodes:
            continue
        nodes.add(node)
        for parent in node._parents:
            edges.add((node, parent))
            stack.append(parent)
    return nodes, edges
''', "A", "A5", "(parent, child)"),
    ("_parents as a list with duplicates", "tensor", '''
class Tensor:
    def __init__(self, data, _parents=(), _function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = list(_parents)
        self._function = _function
        self._backward = lambda: None
    def __repr__(self):
        return f"Tensor(data={self.data})"
    def __add__(self, other):
        return add(self, other if isinstance(other, Tensor) else Tensor(other))
    def __radd__(self, other):
        return add(Tensor(other), self)
    def __mul__(self, other):
        return mul(self, other if isinstance(other, Tensor) else Tensor(other))
    def __rmul__(self, other):
        return mul(Tensor(other), self)
''', "A", "A1", "set(_parents)"),
    ("no __repr__", "tensor", '''
class Tensor:
    def __init__(self, data, _parents=(), _function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = set(_parents)
        self._function = _function
        self._backward = lambda: None
    def __add__(self, other):
        return add(self, other if isinstance(other, Tensor) else Tensor(other))
    def __radd__(self, other):
        return add(Tensor(other), self)
    def __mul__(self, other):
        return mul(self, other if isinstance(other, Tensor) else Tensor(other))
    def __rmul__(self, other):
        return mul(Tensor(other), self)
''', "A", "A2", "define __repr__"),
    ("integer data", "tensor", '''
class Tensor:
    def __init__(self, data, _parents=(), _function=None):
        self.data = np.asarray(data)
        self.grad = None
        self._parents = set(_parents)
        self._function = _function
        self._backward = lambda: None
    def __repr__(self):
        return f"Tensor({self.data})"
    def __add__(self, other):
        return add(self, other if isinstance(other, Tensor) else Tensor(other))
    def __radd__(self, other):
        return add(Tensor(other), self)
    def __mul__(self, other):
        return mul(self, other if isinstance(other, Tensor) else Tensor(other))
    def __rmul__(self, other):
        return mul(Tensor(other), self)
''', "A", "A1", "dtype=float"),
    ("no reflected operators", "tensor", '''
class Tensor:
    def __init__(self, data, _parents=(), _function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = set(_parents)
        self._function = _function
        self._backward = lambda: None
    def __repr__(self):
        return f"Tensor({self.data})"
    def __add__(self, other):
        return add(self, other if isinstance(other, Tensor) else Tensor(other))
    def __mul__(self, other):
        return mul(self, other if isinstance(other, Tensor) else Tensor(other))
''', "A", "A4", "__rmul__"),
    ("trace_graph loops forever", "trace_graph", '''
def trace_graph(tensor):
    nodes, edges = set(), set()
    stack = [tensor]
    while stack:
        node = stack[-1]
        nodes.add(node)
        for parent in node._parents:
            edges.add((parent, node))
    return nodes, edges
''', "A", "A5", "loop"),
    ("ReLU's gradient on the wrong side", "matvec", '''
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
        t.grad += out.grad * (t.data < 0)
    out._backward = _backward
    return out
''', "D", "D3", "wrong side"),
    ("matvec's gradient transposed", "matvec", '''
def matvec(W, v):
    out = Tensor(W.data @ v.data, _parents=(W, v), _function="matvec")
    def _backward():
        W.grad = W.grad + np.outer(v.data, out.grad)
        v.grad += W.data.T @ out.grad
    out._backward = _backward
    return out

def relu(t):
    out = Tensor(np.maximum(t.data, 0), _parents=(t,), _function="relu")
    def _backward():
        t.grad += out.grad * (t.data > 0)
    out._backward = _backward
    return out
''', "D", "D2", "transpose"),
    ("descent steps along the gradient", "descent", '''
def gradient_descent(f, x, lr=0.1, steps=100):
    losses = []
    for _ in range(steps):
        loss = f(x)
        loss.backward()
        x.data = x.data + lr * x.grad
        losses.append(float(loss.data))
    return losses
''', "C", "C2", "against the gradient"),
    ("descent rebinds x instead of updating it", "descent", '''
def gradient_descent(f, x, lr=0.1, steps=100):
    losses = []
    for _ in range(steps):
        loss = f(x)
        loss.backward()
        x = Tensor(x.data - lr * x.grad)
        losses.append(float(loss.data))
    return losses
''', "C", "C2", "rebinding"),
]

# A Tensor that compares elementwise (__eq__) is no longer hashable: no sets of tensors.
UNHASHABLE = ("__eq__ without __hash__", "tensor", '''
class Tensor:
    def __init__(self, data, _parents=(), _function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = set(_parents)
        self._function = _function
        self._backward = lambda: None
    def __repr__(self):
        return f"Tensor({self.data})"
    def __eq__(self, other):
        return self.data == other.data
''', "A", "A3", "__hash__ = object.__hash__")
MISTAKES.append(UNHASHABLE)


_BACKWARD = """
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
        stack.extend((p, False) for p in node._parents if p not in visited)
    return order

def backward(self):
    order = topological_order(self)
{zeroing}{seed}    for node in reversed(order):
        node._backward()

Tensor.backward = backward
"""
_ZERO = "    for node in order:\n        node.grad = np.zeros_like(node.data)\n"
_SEED = "    self.grad = np.ones_like(self.data)\n"

_OWN_OP = """
def {name}(t):
    out = Tensor({forward}, _parents=(t,), _function="{name}")
    def _backward():
        t.grad += {rule}
    out._backward = _backward
    return out

def power(self, n):
    out = Tensor(self.data ** n, _parents=(self,), _function="pow")
    def _backward():
        self.grad += {pow_rule}
    out._backward = _backward
    return out

Tensor.__pow__ = power
"""


def _own(name="tanh", forward="np.tanh(t.data)", rule="out.grad * (1 - out.data ** 2)",
         pow_rule="out.grad * n * self.data ** (n - 1)"):
    return _OWN_OP.format(name=name, forward=forward, rule=rule, pow_rule=pow_rule)


_MATVEC = """
def matvec(W, v):
    out = Tensor(W.data @ v.data, _parents=(W, v), _function="matvec")
    def _backward():
        W.grad += np.outer(out.grad, v.data)
        v.grad += {v_rule}
    out._backward = _backward
    return out

def relu(t):
    out = Tensor(np.maximum(t.data, 0), _parents=(t,), _function="relu")
    def _backward():
        t.grad += out.grad * {relu_mask}
    out._backward = _backward
    return out
"""

MISTAKES += [
    ("missing seed", "backward", _BACKWARD.format(zeroing=_ZERO, seed=""), "B", "B3", "np.ones_like(self.data)"),
    ("grads never initialised", "backward", _BACKWARD.format(zeroing="", seed=_SEED), "B", "B4",
     "a grad is None until something sets it"),
    ("breadth-first backward", "backward", """
from collections import deque

def backward(self):
    order, seen, queue = [], {self}, deque([self])
    while queue:
        node = queue.popleft()
        order.append(node)
        for parent in node._parents:
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    for node in order:
        node.grad = np.zeros_like(node.data)
    self.grad = np.ones_like(self.data)
    for node in order:
        node._backward()

Tensor.backward = backward
""", "B", "B5", "breadth first"),
    ("tanh's rule uses the input", "own_op", _own(rule="out.grad * (1 - t.data ** 2)"), "B", "B10", "1 − tanh²"),
    ("sigmoid's rule forgets 1 − σ", "own_op",
     _own() + _own("sigmoid", "1 / (1 + np.exp(-t.data))", "out.grad * out.data"),
     "B", "B10", "σ(x)·(1 − σ(x))"),
    ("pow's rule keeps the exponent", "own_op", _own(pow_rule="out.grad * n * self.data ** n"), "B", "B10",
     "n·xⁿ⁻¹"),
    ("relu passes the gradient at 0", "matvec", _MATVEC.format(v_rule="W.data.T @ out.grad",
                                                               relu_mask="(t.data >= 0)"), "D", "D3",
     "not >= 0"),
    ("matvec's v-side rule not transposed", "matvec", _MATVEC.format(v_rule="W.data @ out.grad",
                                                                     relu_mask="(t.data > 0)"), "D", "D2",
     "∂L/∂v = Wᵀ ∂L/∂out"),
    ("an MLP that does not learn", "mlp", """
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
            p = Tensor(p.data - lr * p.grad)
        losses.append(loss.data.item())
    return losses
""", "D", "D7", "in place"),
]
