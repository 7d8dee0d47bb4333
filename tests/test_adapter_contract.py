"""The adapter contract (ad_magic/adapters/contract.py): every documented spelling of
parents, op, data, grad and rule is read; an object that fits none is one sentence; the
student's graph is left as it was; cycles and relabelled ops are reported honestly."""
from __future__ import annotations

import enum
import sys

import numpy as np
import pytest

from ad_magic import draw_computation_graph
from ad_magic.adapters import AdapterError, ForeignNode, adapt
from ad_magic.adapters.contract import DATA, GRAD, HOLDERS, NAMES, OP, PARENTS, RULES, canonical_op
from ad_magic.widgets.stepper import BackwardStepper


def make_class(parents="_parents", op="_function", data="data", grad="grad", rule="_backward", name="Node",
               store=tuple, grad_start=None, extra=None):
    """A minimal autodiff class using the given spellings (op=None: no op field; ``extra``:
    more attributes every node gets)."""

    def __init__(self, value, inputs=(), op_name=None):
        for key, default in (extra or {}).items():
            setattr(self, key, default())
        setattr(self, data, value)
        setattr(self, grad, grad_start)
        setattr(self, parents, store(inputs))
        if op is not None:
            setattr(self, op, op_name)
        setattr(self, rule, lambda: None)

    def __mul__(self, other):
        out = cls(getattr(self, data) * getattr(other, data), (self, other), "mul")

        def _backward():
            setattr(self, grad, getattr(self, grad) + getattr(out, grad) * getattr(other, data))
            setattr(other, grad, getattr(other, grad) + getattr(out, grad) * getattr(self, data))
        setattr(out, rule, _backward)
        return out

    def __add__(self, other):
        out = cls(getattr(self, data) + getattr(other, data), (self, other), "add")

        def _backward():
            setattr(self, grad, getattr(self, grad) + getattr(out, grad))
            setattr(other, grad, getattr(other, grad) + getattr(out, grad))
        setattr(out, rule, _backward)
        return out

    cls = type(name, (), {"__init__": __init__, "__mul__": __mul__, "__add__": __add__})
    return cls


def nine(cls, value=2.0):
    x = cls(value)
    like = (lambda c: np.full(np.shape(value), c)) if np.ndim(value) else (lambda c: c)
    y = x * x + cls(like(5.0)) * x + cls(like(-1.0))
    return x, y


def check_nine(cls, value=2.0, wanted=9.0):
    x, y = nine(cls, value)
    node = adapt(y)
    computed = [n for n in node.graph.order if n.parents]
    assert len(computed) == 4 and all(n.kind in ("add", "mul") for n in computed), [n._function for n in computed]
    source = draw_computation_graph(y).source
    assert source.count("shape=ellipse") == 4 and source.count("->") >= 8
    stepper = BackwardStepper(y, names={x: "x"})
    assert all(s.ok for s in stepper.steps), [s.note for s in stepper.steps]
    assert np.allclose(stepper.grads_at(stepper.n_steps, x), wanted)
    return x, y, stepper


# --------------------------------------------------------------------------- spellings

@pytest.mark.parametrize("parents", PARENTS)
def test_every_parents_spelling_is_read(parents):
    check_nine(make_class(parents=parents))


@pytest.mark.parametrize("op", OP)
def test_every_op_spelling_is_read(op):
    check_nine(make_class(op=op))


@pytest.mark.parametrize("data", DATA)
def test_every_data_spelling_is_read(data):
    check_nine(make_class(data=data))


@pytest.mark.parametrize("grad", GRAD)
def test_every_grad_spelling_is_read_and_written(grad):
    check_nine(make_class(grad=grad))


@pytest.mark.parametrize("rule", [r for r in RULES])
def test_every_rule_spelling_is_run(rule):
    check_nine(make_class(rule=rule, op="_op"))


@pytest.mark.parametrize("store", [tuple, list, set, frozenset, lambda xs: dict.fromkeys(xs),
                                   lambda xs: (x for x in xs)], ids=["tuple", "list", "set", "frozenset", "dict",
                                                                     "generator"])
def test_parents_in_any_container(store):
    check_nine(make_class(store=store))


@pytest.mark.parametrize("kind", ["float", "int", "numpy scalar", "0-d", "vector", "matrix", "list"])
@pytest.mark.parametrize("style", ["practical", "micrograd"])
def test_data_of_every_kind_in_every_style(kind, style):
    value = {"float": 2.0, "int": 2, "numpy scalar": np.float64(2.0), "0-d": np.array(2.0),
             "vector": np.array([2.0, -1.0]), "matrix": np.array([[2.0, 1.0], [0.5, -3.0]]), "list": None}[kind]
    spell = {"practical": dict(parents="_parents", op="_function"), "micrograd": dict(parents="_prev", op="_op")}
    cls = make_class(**spell[style], grad_start=0.0)
    if kind == "list":
        # data kept as a list: the class converts only when it computes
        x = cls([2.0, -1.0])
        five = cls([5.0, 5.0])
        out = cls(list(np.multiply(x.data, five.data)), (x, five), "mul")

        def _backward():
            x.grad = np.asarray(x.grad) + np.asarray(out.grad) * np.asarray(five.data)
            five.grad = np.asarray(five.grad) + np.asarray(out.grad) * np.asarray(x.data)
        out._backward = _backward
        stepper = BackwardStepper(out, grad=np.ones(2))
        assert np.allclose(stepper.grads_at(stepper.n_steps, x), [5.0, 5.0]) and all(s.ok for s in stepper.steps)
        return
    wanted = 2 * np.asarray(value, dtype=float) + 5
    if np.size(value) == 1:
        check_nine(cls, value, wanted)
    else:
        x, y = nine(cls, value)
        stepper = BackwardStepper(y, grad=np.ones(np.shape(value)))
        assert np.allclose(stepper.grads_at(stepper.n_steps, x), wanted)
        assert all(s.ok for s in stepper.steps), [s.note for s in stepper.steps]


def test_a_scalar_value_keeps_float_grads_and_an_array_keeps_arrays():
    Value = make_class(parents="_prev", op="_op", grad_start=0.0)
    x, y = nine(Value)
    adapt(y).backward()
    assert type(x.grad) is float and x.grad == 9.0
    Tensor = make_class()
    x, y = nine(Tensor, np.array(2.0))
    adapt(y).backward()
    assert float(x.grad) == 9.0
    node = adapt(y)
    leaf = node.graph.node(x)
    with node.graph.preserved():
        node.graph.adapter.set_grad(leaf, np.zeros(()))
        assert isinstance(x.grad, np.ndarray) and x.grad.shape == ()      # 0-d data: a 0-d array grad
    assert float(x.grad) == 9.0


@pytest.mark.parametrize("qualname, op", [
    ("Tensor.__mul__.<locals>._backward", "mul"), ("Value.__radd__.<locals>._backward", "add"),
    ("Value.tanh.<locals>._backward", "tanh"), ("mul.<locals>._backward", "mul"), ("Value._mul_backward", "mul"),
    ("Tensor.__truediv__.<locals>.backward_fn", "div"), ("relu.<locals>.grad_fn", "relu"),
    ("Value.exp.<locals>._backward", "exp"), ("Tensor.__matmul__.<locals>._backward", "matmul"),
])
def test_the_op_is_inferred_from_the_rule_s_name(qualname, op):
    from ad_magic.adapters.contract import _name_of_callable

    def rule():
        pass
    rule.__qualname__ = qualname
    assert canonical_op(_name_of_callable(rule)) == op


@pytest.mark.parametrize("text, op", [("+", "add"), ("*", "mul"), ("**2", "pow"), ("ReLU", "relu"),
                                      ("MulBackward0", "mul"), ("__rsub__", "sub"), ("@", "matmul"),
                                      ("tanh", "tanh"), ("cube", None)])
def test_op_names_map_to_the_registry(text, op):
    assert canonical_op(text) == op


def test_a_computed_node_with_no_op_anywhere_is_drawn_as_a_question_mark_with_its_edges():
    Node = make_class(op=None)
    a, b = Node(2.0), Node(3.0)
    out = Node(6.0, (a, b))

    def _backward():            # a module-level name that tells no op
        a.grad += b.data
        b.grad += a.data
    _backward.__qualname__ = "_backward"
    out._backward = _backward
    a.grad = b.grad = 0.0
    node = adapt(out)
    assert node._function == "?" and len(node.parents) == 2
    source = draw_computation_graph(out).source
    assert "label=<?>" in source and source.count("->") == 3
    stepper = BackwardStepper(out)
    assert stepper.n_steps == 1 and "your rule for '?'" in stepper.rule_text(1)


def test_nothing_fits_is_one_sentence_naming_class_spellings_and_attributes():
    class Tensor:
        def __init__(self):
            self.numbers = [1.0]
            self.history = ()

    with pytest.raises(AdapterError) as info:
        BackwardStepper(Tensor())
    text = str(info.value)
    assert text.startswith("BackwardStepper cannot read a Tensor as a node of a computation graph: it holds "
                           "numbers in numbers, but no field holding other Tensor objects (its inputs")
    assert text.endswith("this Tensor has history, numbers.") and "\n" not in text
    assert "wrap a value in Tensor" not in text


def test_plain_python_values_keep_the_engine_s_sentence():
    with pytest.raises(TypeError, match=r"wrap a value in Tensor\(\.\.\.\) first\.$"):
        adapt(3.0, "BackwardStepper")


# --------------------------------------------------------------------------- never changed by looking

def broken_halfway():
    Tensor = make_class()
    x, y = nine(Tensor, np.array(2.0))
    adapt(y).backward()
    assert float(x.grad) == 9.0
    # a rule that takes an argument the stepper does not have, deep in the graph
    square = next(n.source for n in adapt(y).graph.order if n.parents and n.parents[0] is n.parents[-1])

    def needs_two(grad, other):
        raise AssertionError("never called")
    square._backward = needs_two
    return x, y


def test_a_pass_that_fails_halfway_leaves_every_grad_as_it_was():
    x, y = broken_halfway()
    before = {k: id(v) for k, v in vars(x).items()}
    stepper = BackwardStepper(y)
    assert not stepper.steps[-1].ok and "takes 2 arguments" in stepper.steps[-1].note
    assert float(x.grad) == 9.0 and {k: id(v) for k, v in vars(x).items()} == before
    with pytest.raises(TypeError, match="takes 2 arguments"):
        adapt(y).backward()
    assert float(x.grad) == 9.0


def test_a_rule_that_takes_the_grad_as_argument_is_called_with_it():
    Tensor = make_class()
    a, b = Tensor(np.array(3.0)), Tensor(np.array(4.0))
    out = Tensor(a.data * b.data, (a, b), "mul")

    def _backward(grad):
        a.grad += grad * b.data
        b.grad += grad * a.data
    out._backward = _backward
    stepper = BackwardStepper(out)
    assert stepper.steps[0].ok and float(stepper.grads_at(1, a)) == 4.0 and a.grad is None


def test_drawing_and_stepping_change_no_field():
    Tensor = make_class()
    x, y = nine(Tensor, np.array(2.0))
    nodes = [n.source for n in adapt(y).graph.order]
    snapshot = [dict(vars(n)) for n in nodes]
    draw_computation_graph(y)
    stepper = BackwardStepper(y, forward=True)
    stepper.card_text(x)
    for obj, before in zip(nodes, snapshot):
        assert vars(obj).keys() == before.keys() and all(vars(obj)[k] is v for k, v in before.items())


def test_abandoning_the_steps_halfway_puts_the_grads_back():
    Tensor = make_class()
    x, y = nine(Tensor, np.array(2.0))
    x.grad = np.array(42.0)
    steps = adapt(y).backward_steps()
    next(steps)
    assert float(x.grad) == 0.0          # running: zeroed
    steps.close()
    assert float(x.grad) == 42.0


# --------------------------------------------------------------------------- node lookup

def test_card_text_grads_at_and_values_at_take_the_student_s_objects():
    Tensor = make_class()
    x, y = nine(Tensor, np.array(2.0))
    stepper = BackwardStepper(y, names={x: "x"})
    node = stepper.output if isinstance(stepper.output, ForeignNode) else adapt(y).graph.node(x)
    last = stepper.n_steps
    wrapped = stepper.view.nodes[stepper.timeline._index(x)]
    assert stepper.card_text(x, last) == stepper.card_text(wrapped, last)
    assert stepper.card_text(x, last).startswith("x — input (leaf)")
    assert float(stepper.grads_at(last, x)) == 9.0 and float(stepper.values_at(last, x)) == 2.0
    stepper.step = last
    assert float(stepper.grads_at(x)) == 9.0          # the current step
    assert stepper.grads_at(0, x) is None
    assert node is not None
    with pytest.raises(IndexError, match="not one of the 7 drawn nodes"):
        stepper.card_text(Tensor(1.0))


# --------------------------------------------------------------------------- cycles

def test_a_cycle_is_one_error_naming_two_nodes_on_it():
    Tensor = make_class(name="Tensor")
    a, b = Tensor(1.0), Tensor(2.0)
    c = a + b
    a._parents = (c,)            # a is computed from c, which is computed from a
    a._function = "add"
    for call in (adapt, draw_computation_graph, BackwardStepper):
        with pytest.raises(AdapterError) as info:
            call(c)
        text = str(info.value)
        assert text.startswith("this graph has a cycle: the Tensor (data ") and "\n" not in text
        assert "data 1.0" in text and "data 3.0" in text


def test_a_node_that_is_its_own_parent_is_a_cycle():
    Tensor = make_class()
    a = Tensor(1.0)
    a._parents = (a,)
    with pytest.raises(AdapterError, match=r"^this graph has a cycle: the Node \(data 1\.0\) is a parent of the Node"):
        adapt(a)


# --------------------------------------------------------------------------- relabelled ops

def relabelled(label, a_value, b_value, maker="__add__"):
    """An add node that says it is ``label``: its closure adds, as add's rule does."""
    Tensor = make_class(op="_op")
    a, b = Tensor(np.array(a_value)), Tensor(np.array(b_value))
    out = Tensor(a.data + b.data, (a, b), label)

    def _backward():
        a.grad = a.grad + out.grad
        b.grad = b.grad + out.grad
    _backward.__qualname__ = f"Tensor.{maker}.<locals>._backward" if maker else "_backward"
    out._backward = _backward
    return a, b, out


def test_a_relabelled_op_whose_value_fits_by_coincidence_is_not_called_a_mistake():
    a, b, out = relabelled("-", 1.0, 0.0, maker=None)     # a + 0 == a - 0: the label fits the value too
    step = adapt(out).backward_steps()
    step = next(step)
    assert step.ok and step.note is None
    assert "labelled '-', but this rule did add's chain rule" in step.remark
    stepper = BackwardStepper(out)
    caption = stepper.caption_text(1)
    assert "✗" not in caption and "(note: labelled '-', but this rule did add's" in caption


def test_a_relabelled_op_is_stepped_as_what_its_value_and_rule_show():
    a, b, out = relabelled("-", 1.0, 2.0)                  # 3 is not 1 - 2: the closure was written in __add__
    node = adapt(out)
    assert node._function == "-" and node.kind == "add" and "labelled '-'" in node.remark
    steps = list(node.backward_steps())
    assert steps[0].ok and steps[0].rule.startswith("out = a + b")


def test_a_wrong_rule_is_still_a_mistake_when_values_are_one():
    Tensor = make_class(op="_op")
    a, b = Tensor(np.array(3.0)), Tensor(np.array(1.0))
    out = Tensor(a.data * b.data, (a, b), "*")

    def _backward():                    # uses its own operand: wrong for every op that gives 3 here
        a.grad = a.grad + out.grad * a.data
        b.grad = b.grad + out.grad * b.data
    out._backward = _backward
    step = next(adapt(out).backward_steps())
    assert not step.ok and "but the chain rule gives" in step.note


def test_names_in_names_and_holders_are_documented_lists():
    assert NAMES[:2] == ("name", "label") and "grad_fn" in HOLDERS and "_ctx" in HOLDERS


def test_parents_kept_with_their_local_rules_as_pairs():
    class Var:
        def __init__(self, value, parents=()):
            self.value, self.parents, self.grad = value, list(parents), None

        def __mul__(self, other):
            return Var(self.value * other.value, [(self, lambda g: g * other.value), (other, lambda g: g * self.value)])

        def __add__(self, other):
            return Var(self.value + other.value, [(self, lambda g: g), (other, lambda g: g)])

    x, w = Var(3.0), Var(-2.0)
    out = x * w + x
    node = adapt(out)
    assert [n.kind for n in node.graph.order if n.parents] == ["mul", "add"]
    stepper = BackwardStepper(out, names={x: "x"})
    assert all(s.ok for s in stepper.steps) and float(stepper.grads_at(stepper.n_steps, x)) == -1.0
    assert x.grad is None


Ops = enum.Enum("Ops", "ADD MUL")


@pytest.mark.parametrize("op_value", ["mul", np.multiply, type("Mul", (), {}), type("MulBackward0", (), {})(), Ops.MUL],
                         ids=["string", "ufunc", "class", "object", "enum"])
def test_an_op_given_as_a_function_class_enum_or_object_is_named(op_value):
    Node = make_class(op="op")
    x, y = nine(Node)
    for n in adapt(y).graph.order:
        if n.kind == "mul":
            n.source.op = op_value
    assert [n.kind for n in adapt(y).graph.order if n.parents].count("mul") == 2


def test_a_class_keeping_its_consumers_in_children_is_read_by_its_parents():
    class Var:
        def __init__(self, data, parents=()):
            self.data, self.grad, self.parents, self.children = data, 0.0, list(parents), []
            for p in parents:
                p.children.append(self)          # the consumers, kept too
            self._backward = lambda: None

        def __mul__(self, other):
            out = Var(self.data * other.data, (self, other))

            def _backward():
                self.grad += other.data * out.grad
                other.grad += self.data * out.grad
            out._backward = _backward
            return out

    x, w = Var(3.0), Var(2.0)
    out = x * w
    node = adapt(out)
    assert [p.source for p in node.parents] == [x, w] and node.kind == "mul"
    assert float(BackwardStepper(out).grads_at(1, x)) == 2.0


def test_an_empty_spelling_does_not_hide_the_one_holding_the_inputs():
    Node = make_class(parents="children", extra={"parents": list})    # `parents` on every node, always empty
    x, y, stepper = check_nine(Node)
    assert x.parents == [] and adapt(y).parents


def test_a_grad_fn_record_holding_inputs_a_rule_and_a_name():
    class GradFn:
        def __init__(self, inputs, backward_fn, name):
            self.inputs, self.backward_fn, self.name = inputs, backward_fn, name

    class T:
        def __init__(self, data):
            self.data, self.grad, self._grad_fn, self.requires_grad = np.asarray(data, float), None, None, True

        def __truediv__(self, other):
            out = T(self.data / other.data)
            a, b = self.data, other.data
            out._grad_fn = GradFn([self, other], lambda g: [g / b, -g * a / b ** 2], "DivBackward")
            return out

    x, y = T(3.0), T(4.0)
    out = x / y
    node = adapt(out)
    assert node._function == "DivBackward" and node.kind == "div" and [p.source for p in node.parents] == [x, y]
    stepper = BackwardStepper(out)
    assert stepper.steps[0].ok and np.isclose(float(stepper.grads_at(1, y)), -3 / 16)


def test_args_and_a_backward_fn_taking_the_grad():
    Node = make_class(parents="args", rule="backward_fn", op=None)
    check_nine(Node)


def test_the_readme_documents_every_spelling():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("The contract's spellings: the fast path"):]
    table = table[:table.index("An object is read as a node")]
    for names in (DATA, PARENTS, HOLDERS, OP, GRAD, RULES, NAMES):
        for name in names:
            assert f"`{name}`" in table, name


def test_a_single_parent_kept_as_itself_even_when_the_class_is_iterable():
    class Vec:
        def __init__(self, data, prev=None, op=None):
            self.data, self.grad, self._prev, self._op = np.asarray(data, float), None, prev, op
            self._backward = lambda: None

        def __iter__(self):                     # iterating a Vec gives its numbers, not its parents
            return iter(self.data)

        def __len__(self):
            return len(self.data)

        def exp(self):
            out = Vec(np.exp(self.data), self, "exp")

            def _backward():
                self.grad += out.grad * out.data
            out._backward = _backward
            return out

    x = Vec([0.0, 1.0])
    out = x.exp()
    node = adapt(out)
    assert node.parents[0].source is x and node.kind == "exp"
    stepper = BackwardStepper(out, grad=np.ones(2))
    assert stepper.steps[0].ok and np.allclose(stepper.grads_at(1, x), np.exp([0.0, 1.0]))


def test_a_callable_function_object_in_grad_fn_is_a_holder_not_a_rule():
    class Mul:
        def __call__(self, a, b):               # the forward, called by the op
            self.parents = (a, b)
            out = T(a.data * b.data)
            out.grad_fn = self
            return out

        def backward(self, grad):
            a, b = self.parents
            return grad * b.data, grad * a.data

    class T:
        def __init__(self, data):
            self.data, self.grad, self.grad_fn = float(data), 0.0, None

    x, y = T(3.0), T(-2.0)
    out = Mul()(x, y)
    node = adapt(out)
    assert node.kind == "mul" and [p.source for p in node.parents] == [x, y]
    stepper = BackwardStepper(out)
    assert stepper.steps[0].ok and float(stepper.grads_at(1, x)) == -2.0 and x.grad == 0.0


def test_a_constant_kept_only_in_the_rule_is_found_for_the_check():
    class V:
        def __init__(self, data, prev=(), op=""):
            self.data, self.grad, self._prev, self._op = data, 0.0, tuple(prev), op
            self._backward = lambda: None

        def __pow__(self, k):
            out = V(self.data ** k, (self,), "**")      # the exponent is not in the label, nor a parent

            def _backward():
                self.grad += k * self.data ** (k - 1) * out.grad
            out._backward = _backward
            return out

        def scale(self, c):
            out = V(self.data * c, (self,), "*")

            def _backward():
                self.grad += c * out.grad
            out._backward = _backward
            return out

    x = V(3.0)
    out = (x ** 3).scale(0.5)
    node = adapt(out)
    assert [n.kind for n in node.graph.order if n.parents] == ["pow", "mul"]
    stepper = BackwardStepper(out)
    assert all(s.ok for s in stepper.steps) and float(stepper.grads_at(2, x)) == 13.5
    # the constants the rules keep are written in, as numbers, where the registry has letters
    assert "3.0·leaf₁^(3.0-1)" in stepper.rule_text(2)
    assert stepper.rule_text(1).endswith("· 0.5")


def test_no_false_mistake_when_one_parent_read_as_both_operands_fits_by_coincidence():
    Node = make_class(op="_op")
    x = Node(np.array(3.0))
    out = Node(x.data ** 3, (x,), "**")            # 27 = x ** x at x = 3: a coincidence

    def _backward():
        x.grad = x.grad + 3 * x.data ** 2 * out.grad
    out._backward = _backward
    step = next(adapt(out).backward_steps())
    assert step.ok, step.note
    wrong = Node(x.data ** 3, (x,), "**")

    def _wrong_backward():
        x.grad = x.grad + 2 * x.data * wrong.grad   # the derivative of x ** 2: wrong on every reading
    wrong._backward = _wrong_backward
    step = next(adapt(wrong).backward_steps())
    assert not step.ok and "but the chain rule gives" in step.note


# --------------------------------------------------------------------------- read by structure

def _consumers_class():
    class Var:
        def __init__(self, value):
            self.value, self.users, self.adjoint = value, [], None

        def __mul__(self, other):
            z = Var(self.value * other.value)
            self.users.append((other.value, z))
            other.users.append((self.value, z))
            return z
    return Var


def test_edges_kept_on_the_consumers_are_turned_around_from_the_named_inputs():
    Var = _consumers_class()
    x, y = Var(3.0), Var(-2.0)
    out = x * y * x
    node = adapt(out, inputs=[x, y])
    assert len(node.graph.order) == 4 and [n.kind for n in node.graph.order if n.parents] == [None, None]
    stepper = BackwardStepper(node, names={x: "x", y: "y"})
    assert float(stepper.grads_at(stepper.n_steps, x)) == 2 * 3.0 * -2.0      # d(x²y)/dx = 2xy
    assert float(stepper.grads_at(stepper.n_steps, y)) == 9.0


def test_an_output_whose_inputs_cannot_be_found_is_one_sentence_not_a_lone_node():
    Var = _consumers_class()
    x, y = Var(3.0), Var(-2.0)
    with pytest.raises(AdapterError, match=r"^ad_magic cannot tell where this Var's inputs are: it has no rule, no "
                                           r"op and nothing in users; if users lists the nodes that use it, name "
                                           r"the inputs \(adapt\(out, inputs=\[x, y\]\)\)"):
        adapt(x * y)

    class Op:
        def __init__(self, name):
            self.name = name

    class T:
        def __init__(self, v, op=None):
            self.v, self.g, self.op = v, 0.0, op

        def __mul__(self, other):
            return T(self.v * other.v, Op("mul"))        # the inputs are kept nowhere
    with pytest.raises(AdapterError, match=r"^ad_magic cannot find the inputs of this T: its op is 'mul', but none "
                                           r"of its fields \(v, g, op\) holds other T objects"):
        adapt(T(2.0) * T(3.0))


def test_a_reading_is_resolved_once_per_class_into_a_record():
    import dataclasses

    from ad_magic.adapters.contract import StudentAdapter

    Tensor = make_class(parents="fils", data="valeur", grad="derivee", rule="retro", op="symbole")
    x, y = nine(Tensor)
    adapter = StudentAdapter(y)
    reading = adapter.reading(y)
    assert (reading.data, reading.parents, reading.grad, reading.rule, reading.op) == (
        ("valeur",), ("fils",), ("derivee",), ("retro",), ("symbole",))
    assert adapter.reading(x) is reading and list(adapter.readings) == [Tensor]
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.data = ("other",)


def test_the_data_behind_a_property_returning_a_wrapper():
    class Box:
        def __init__(self, numbers):
            self.numbers = np.asarray(numbers, dtype=float)

    Tensor = make_class(data="_box")
    Tensor.data = property(lambda self: Box(self._box))
    x, y = nine(Tensor)
    node = adapt(y)
    assert node.graph.adapter.reading(y).data == ("data", "numbers")
    assert float(node.data) == 2.0 * 2.0 + 5.0 * 2.0 - 1.0


def test_inputs_one_level_down_and_a_rule_two_levels_down_taking_the_context():
    class Mul:
        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.inputs
            return grad * b.amount, grad * a.amount

    class Context:
        def __init__(self, op, inputs):
            self.op, self.inputs, self.outputs = op, inputs, []

    class T:
        def __init__(self, amount):
            self.amount, self.grad, self.ctx = amount, None, None

        def __mul__(self, other):
            out = T(self.amount * other.amount)
            out.ctx = Context(Mul, (self, other))
            out.ctx.outputs.append(out)          # pointing back at the output: not its input
            return out

    a, b = T(3.0), T(5.0)
    out = a * b
    node = adapt(out)
    reading = node.graph.adapter.reading(out)
    assert reading.parents == ("ctx", "inputs") and reading.rule == ("ctx", "op", "backward")
    assert node.kind == "mul" and [p.source for p in node.parents] == [a, b]
    stepper = BackwardStepper(out)
    assert stepper.steps[0].ok and float(stepper.grads_at(1, a)) == 5.0


def test_weak_references_and_node_number_pairs_are_inputs():
    import weakref

    class S:
        def __init__(self, q, links=()):
            self.q, self.links, self.adj = q, [(weakref.ref(n), d) for n, d in links], None

        def __mul__(self, other):
            return S(self.q * other.q, [(self, other.q), (other, self.q)])

    from ad_magic.adapters.structure import entries

    a, b = S(2.0), S(7.0)
    out = a * b
    assert entries([(weakref.ref(a), 7.0)], lambda v: isinstance(v, S)) is None      # a weakref in a pair: no
    out.links = [(r(), d) for r, d in out.links]
    node = adapt(out)
    assert [p.source for p in node.parents] == [a, b]
    assert float(BackwardStepper(out).grads_at(1, b)) == 2.0


def test_a_graph_erased_after_backward_is_read_from_the_recording():
    from ad_magic.adapters import recording

    Tensor = make_class(parents="_inputs")
    with recording({"__name__": Tensor.__module__, "Tensor": Tensor}) as seen:
        x, y = nine(Tensor)
    built = [n.source for n in adapt(y).graph.order]
    for obj in built:             # what a backward() that frees the graph leaves behind
        obj._inputs, obj._backward = (), (lambda: None)
    with pytest.raises(AdapterError, match=r"^ad_magic cannot find the inputs of this Node: its op is 'add'"):
        adapt(y)
    node = adapt(y, recording=seen)
    assert [n.source for n in node.graph.order] == built
    stepper = BackwardStepper(node, names={x: "x"})
    assert all(s.ok for s in stepper.steps) and float(stepper.grads_at(stepper.n_steps, x)) == 9.0
    assert x._inputs == () and y._inputs == ()         # looking put the erased fields back as they were


def test_the_recording_sees_which_call_made_which_node_from_which_inputs():
    from ad_magic.adapters import recording

    Tensor = make_class()
    with recording({"__name__": Tensor.__module__, "Tensor": Tensor}) as seen:
        a, b = Tensor(2.0), Tensor(3.0)
        c = a * b
        d = c + a
    assert seen.made(a) is None and seen.made(b) is None         # made by the constructor, not by an op
    assert seen.made(c).inputs == (a, b) and seen.made(c).call.endswith("__mul__")
    assert seen.made(d).inputs == (c, a) and seen.made(d).fields["_parents"] == (c, a)
    assert {id(o) for o in seen.nodes()} == {id(o) for o in (a, b, c, d)}
    assert sys.getprofile() is None


def test_the_recording_sees_the_recording_thread_only():
    # sys.monitoring (3.12+) sees every thread, sys.setprofile only the one that set it
    import threading

    from ad_magic.adapters import recording

    Tensor = make_class()
    made = {}

    def elsewhere():
        made["other"] = Tensor(2.0) * Tensor(3.0)
    with recording({"__name__": Tensor.__module__, "Tensor": Tensor}) as seen:
        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
        here = Tensor(4.0) * Tensor(5.0)
    assert seen.made(made["other"]) is None and seen.made(here) is not None


def test_a_recording_with_no_class_to_watch_watches_nothing():
    from ad_magic import Tensor
    from ad_magic.adapters import recording

    with recording({"__name__": "__main__", "Tensor": Tensor}) as seen:
        assert sys.getprofile() is None
        Tensor(1.0) * 2
    assert not seen.active and len(seen) == 0


def test_a_profiler_set_before_recording_is_called_and_put_back_also_when_the_block_raises():
    from ad_magic.adapters import recording

    Tensor = make_class()
    calls = []

    def profiler(frame, event, arg):
        calls.append(event)

    sys.setprofile(profiler)
    try:
        with pytest.raises(ZeroDivisionError):
            with recording({"__name__": Tensor.__module__, "Tensor": Tensor}) as seen:
                out = Tensor(2.0) * Tensor(3.0)
                raise ZeroDivisionError("the user's own error")
        assert sys.getprofile() is profiler
    finally:
        sys.setprofile(None)
    assert seen.made(out) is not None and "return" in calls


def test_a_helper_handing_back_its_argument_made_nothing():
    from ad_magic.adapters import recording

    Tensor = make_class()

    def lift(self, other):
        return other if isinstance(other, Tensor) else Tensor(other)
    with recording({"__name__": Tensor.__module__, "Tensor": Tensor, "lift": lift}) as seen:
        a = Tensor(1.0)
        b = lift(a, Tensor(2.0))
        c = lift(a, 3.0)
    assert seen.made(b) is None
    assert seen.made(c).inputs == (a,) and seen.made(c).fields["_parents"] == ()    # a leaf, as its fields say
    assert adapt(c, recording=seen).parents == ()


def test_inputs_in_a_named_tuple_record_or_an_object_array():
    import collections

    Ctx = collections.namedtuple("Ctx", ["op", "parents", "rule"])

    class T:
        def __init__(self, amount, ctx=None):
            self.amount, self.grad, self.ctx = amount, 0.0, ctx

        def __mul__(self, other):
            out = T(self.amount * other.amount)

            def rule():
                self.grad += other.amount * out.grad
                other.grad += self.amount * out.grad
            out.ctx = Ctx("mul", (self, other), rule)
            return out

    a, b = T(3.0), T(4.0)
    out = a * b
    node = adapt(out)
    assert node.graph.adapter.reading(out).parents == ("ctx", "parents") and node.kind == "mul"
    assert float(BackwardStepper(out).grads_at(1, a)) == 4.0

    Node = make_class(parents="inputs", store=lambda xs: np.array(list(xs) + [None], dtype=object)[:-1])
    check_nine(Node)


def test_a_user_module_in_the_namespace_is_watched(tmp_path, monkeypatch):
    import importlib

    from ad_magic.adapters import recording

    (tmp_path / "myops.py").write_text(
        "class Num:\n"
        "    def __init__(self, v):\n"
        "        self.v, self.grad = v, 0.0\n"
        "def mul(a, b):\n"
        "    out = Num(a.v * b.v)\n"
        "    def rule():\n"
        "        a.grad += b.v * out.grad\n"
        "        b.grad += a.v * out.grad\n"
        "    return out\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    myops = importlib.import_module("myops")
    with recording({"__name__": "__main__", "myops": myops}) as seen:
        x, y = myops.Num(2.0), myops.Num(5.0)
        out = myops.mul(x, y)
    made = seen.made(out)
    assert made.inputs == (x, y) and made.call == "mul" and made.rule is not None
    stepper = BackwardStepper(adapt(out, recording=seen), names={x: "x"})
    assert float(stepper.grads_at(1, x)) == 5.0 and stepper.steps[0].ok


def test_a_registry_shared_by_the_graph_is_not_read_as_a_node_s_inputs():
    from ad_magic.adapters import recording

    class Graph:
        def __init__(self):
            self.edges, self.rules = {}, {}

    graph = Graph()

    class Node:
        def __init__(self, value):
            self.value, self.grad, self.graph = value, 0.0, graph
            graph.edges[self] = []

        def __mul__(self, other):
            out = Node(self.value * other.value)
            graph.edges[out] = [self, other]

            def rule():
                self.grad += other.value * out.grad
                other.grad += self.value * out.grad
            graph.rules[out] = rule
            return out

    with recording({"__name__": Node.__module__, "Node": Node}) as seen:
        x, y = Node(2.0), Node(3.0)
        out = x * y * x
    node = adapt(out, recording=seen)
    assert node.graph.adapter.reading(out).parents is None        # graph.edges lists every node, itself too
    assert node.parents[1].source is x and [p.source for p in node.parents[0].parents] == [x, y]
    stepper = BackwardStepper(node, names={x: "x", y: "y"})
    assert float(stepper.grads_at(stepper.n_steps, x)) == 12.0 and float(stepper.grads_at(stepper.n_steps, y)) == 4.0


def test_an_object_holding_two_numbers_is_not_taken_for_a_node():
    from ad_magic.adapters import adaptable

    class Settings:
        def __init__(self):
            self.lr, self.momentum = 0.1, 0.0

    class Leaf:
        def __init__(self, v):
            self.v, self.g = v, None

        def __mul__(self, other):
            return Leaf(self.v * other.v)

    assert not adaptable(Settings()) and adaptable(Leaf(2.0))


def test_consumers_kept_as_edge_records_of_a_class_whose_eq_makes_it_unhashable():
    class Edge:
        def __init__(self, to, weight):
            self.to, self.weight = to, weight

    class V:
        def __init__(self, v):
            self.v, self.out_edges, self.grad = v, [], None

        def __eq__(self, other):          # elementwise, as NumPy does: V is no longer hashable
            return V(float(self.v == other.v))

        def __mul__(self, other):
            z = V(self.v * other.v)
            self.out_edges.append(Edge(z, other.v))
            other.out_edges.append(Edge(z, self.v))
            return z

    x, y = V(3.0), V(5.0)
    out = x * y
    node = adapt(out, inputs=[x, y, x])
    assert {id(p.source) for p in node.parents} == {id(x), id(y)}
    stepper = BackwardStepper(node, names={"x": x})        # keyed by name: x cannot be a dict key
    assert float(stepper.grads_at(1, x)) == 5.0 and float(stepper.grads_at(1, y)) == 3.0


def test_a_rule_taking_the_context_kept_beside_it_in_the_history():
    class Context:
        def __init__(self):
            self.saved_values = ()

        def save_for_backward(self, *values):
            self.saved_values = values

    class History:
        def __init__(self, last_fn, ctx, inputs):
            self.last_fn, self.ctx, self.inputs = last_fn, ctx, inputs

    class Mul:
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, d_output):
            a, b = ctx.saved_values
            return d_output * b, d_output * a

        @classmethod
        def apply(cls, *scalars):
            ctx = Context()
            return Scalar(cls.forward(ctx, *(s.data for s in scalars)), History(cls, ctx, scalars))

    class Scalar:
        def __init__(self, data, history=None):
            self.data, self.derivative, self.history = data, None, history

        def __mul__(self, other):
            return Mul.apply(self, other)

    a, b = Scalar(3.0), Scalar(4.0)
    out = a * b
    node = adapt(out)
    reading = node.graph.adapter.reading(out)
    assert reading.rule == ("history", "last_fn", "backward") and reading.rule_context == ("history", "ctx")
    stepper = BackwardStepper(out)
    assert node.kind == "mul" and stepper.steps[0].ok and float(stepper.grads_at(1, a)) == 4.0
