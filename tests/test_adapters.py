"""Graphs built by other code — the practical's own Tensor, micrograd's Value — drawn,
laid out and stepped through ad_magic's renderer and stepper, through ad_magic.adapters."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from practical_solutions import namespace, sections
from practical_solutions.mistakes import MISTAKES

import ad_magic
from ad_magic import GraphView, draw_computation_graph, drawing
from ad_magic.adapters import AdapterError, ForeignNode, adapt, adaptable
from ad_magic.widgets.stepper import BackwardStepper

PACKAGE = Path(ad_magic.__file__).parent


@pytest.fixture()
def ns():
    return namespace()


def nine(ns):
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    x = T(2.0)
    y = add(add(mul(x, x), mul(T(5.0), x)), T(-1.0))
    return x, y


def mistaken(name):
    section, code = next(m[1:3] for m in MISTAKES if m[0] == name)
    return namespace((section, code))


# --------------------------------------------------------------------------- drawing

def test_the_practical_s_graph_is_drawn_with_the_user_s_names(ns):
    x, y = nine(ns)
    source = draw_computation_graph(y, names={x: "x", y: "y"}).source
    assert source.count("label=<mul>") == 2 and source.count("label=<add>") == 2
    assert "<b>x</b>" in source and "<b>y</b>" in source and "data 2.0" in source and "data 13.0" in source
    assert source.count("shape=ellipse") == 4
    # x · x: the one parent of a set is drawn as both operands, as ad_magic draws its own x * x
    node = adapt(y)
    square = next(n for n in node.graph.order if n._function == "mul" and n.parents[0] is n.parents[1])
    assert square.parents[0].source is x


def test_repr_svg_draws_the_practical_s_tensor(ns):
    x, y = nine(ns)
    svg = drawing.repr_svg(y)
    assert svg.lstrip().startswith(("<?xml", "<svg", "<!--")) and "mul" in svg and "Graph not drawn" not in svg


def test_graph_view_lays_out_once_and_restyles(ns):
    x, y = nine(ns)
    view = GraphView(y, names={x: "x"})
    assert len(view.nodes) == 7 and all(isinstance(n, ForeignNode) for n in view.nodes)
    grads = [np.asarray(float(i)) for i in range(7)]
    svg = view.svg(grads=grads, highlight=view.nodes[-1])
    assert "grad 6.0" in svg and view.index(view.nodes[0]) == 0


def test_labels_of_the_student_s_objects_are_escaped(ns):
    x, y = nine(ns)
    y._function = '<img src=x onerror="alert(1)">'
    x.name = "<script>"
    source = draw_computation_graph(y).source
    assert "<script>" not in source and "<img" not in source
    assert "&#60;script&#62;" in source


def test_parents_may_be_a_list_or_a_tuple(ns):
    T = ns["Tensor"]

    class Listed(T):
        def __init__(self, data, _parents=(), _function=None):
            super().__init__(data, _parents, _function)
            self._parents = list(_parents)

    a, b = Listed(1.0), Listed(2.0)
    c = Listed(a.data + b.data, [a, b], "add")
    d = Listed(c.data * c.data, (c, c), "mul")
    node = adapt(d)
    assert [p.source for p in node.parents] == [c, c]
    assert [p.source for p in node.parents[0].parents] == [a, b]


def test_a_deep_chain_is_adapted_without_recursion(ns):
    T, add = ns["Tensor"], ns["add"]
    x = T(0.5)
    y, one = x, T(1.0)
    for _ in range(5000):
        y = add(y, one)
    node = adapt(y)
    assert len(node.graph.order) == 5002
    node.backward()
    assert float(x.grad) == 1.0 and float(one.grad) == 5000.0


# --------------------------------------------------------------------------- stepping

def test_stepping_runs_the_student_s_own_rules_in_order(ns):
    x, y = nine(ns)
    node = adapt(y)
    steps = list(node.backward_steps())
    assert [s.function for s in steps][:2] == ["add", "add"] and sorted(s.function for s in steps[2:]) == ["mul"] * 2
    assert all(s.ok and s.note is None for s in steps)
    assert float(x.grad) == 9.0                    # the student's own object holds the result
    assert isinstance(x.grad, np.ndarray)
    assert [s.index for s in steps] == [1, 2, 3, 4]
    square = next(s for s in steps if s.node.parents[0] is s.node.parents[1])
    assert square.rule == "out = a · b;  ∂L/∂a += ∂L/∂out · b;  ∂L/∂b += ∂L/∂out · a"
    assert [t.parent.source for t in square.terms] == [x, x]


def test_the_stepper_steps_through_the_student_s_graph(ns):
    x, y = nine(ns)
    stepper = BackwardStepper(y, names={x: "x", y: "y"})
    assert stepper.n_steps == 6          # the student's backward: zeroing, seed, then the four rules
    assert stepper.caption_text(0).startswith("Before your backward(): ∂L/∂y is None")
    assert stepper.caption_text(1).startswith("zeroing: your backward set 7 grad(s) to zero")   # y too
    assert stepper.caption_text(2) == "seed: your backward set the output's grad to 1.0 (the seed)"
    captions = [stepper.caption_text(k) for k in range(3, 7)]
    assert any("so ∂L/∂x = " in c and c.endswith("= 9.0") or "= 9.0;" in c for c in captions), captions
    assert stepper.problems == []
    stepper.step = 6
    assert "grad 9.0" in stepper.svg()
    assert stepper.grads_at(0).count(None) == 7    # before their backward: every grad None


def test_a_wrong_rule_is_flagged_at_the_step_where_it_goes_wrong():
    ns = mistaken("mul's rule uses its own operand")
    x, y = nine(ns)
    steps = list(adapt(y).backward_steps())
    wrong = [s for s in steps if not s.ok]
    # x · x comes out right by chance (both operands are x); 5 · x does not
    assert len(wrong) == 1 and wrong[0].function == "mul" and wrong[0].node.parents[0] is not wrong[0].node.parents[1]
    assert all(s.ok for s in steps[: wrong[0].index - 1])
    note = wrong[0].note
    assert "mul's _backward added" in note and "but the chain rule gives" in note
    stepper = BackwardStepper(y, names={x: "x"})     # the student's own backward, watched: the same verdict
    observed, = [s for s in stepper.steps if not s.ok]
    assert observed.function == "mul" and " ✗ mul's _backward added" in stepper.caption_text(observed.index)
    # 5 · x with mul's rule using its own operand: the constant 5 receives 5 · 1 instead of x · 1
    # (a set has no order: whichever operand is judged first is named; the stepper calls
    # the unnamed constant leaf₁ in every text, its note too)
    step = observed
    x_node = step.node.graph.node(x)
    constant = stepper.timeline.namer(next(n for n in step.node.parents if n.is_leaf and n is not x_node))
    assert constant in ("leaf₁", "leaf₂")
    assert observed.note in (
        f"mul's _backward added 5.0 to the grad of {constant}, but the chain rule gives 2.0.",
        "mul's _backward added 2.0 to the grad of x, but the chain rule gives 5.0.")


def test_overwriting_a_grad_is_named_at_its_step():
    ns = mistaken("grads overwritten instead of accumulated")
    x, y = nine(ns)
    notes = [s.note for s in adapt(y).backward_steps() if not s.ok]
    assert notes and any("overwrote the grad (=) instead of adding to it (+=)" in n for n in notes), notes
    stepper = BackwardStepper(y, names={x: "x"})             # the notes use the names given
    assert any("to the grad of x" in s.note for s in stepper.steps if not s.ok)


def test_a_rule_that_raises_becomes_a_step_with_the_exception_and_its_line(ns):
    T, mul = ns["Tensor"], ns["mul"]
    exec(compile("def broken(a):\n    out = Tensor(a.data * 2, (a,), 'double')\n"
                 "    def _backward():\n        a.grad += out.grad * 2 + undefined_name\n"
                 "    out._backward = _backward\n    return out\n", "<student cell>", "exec"), ns)
    x = T(3.0)
    z = mul(ns["broken"](x), T(4.0))
    steps = list(adapt(z).backward_steps())
    assert len(steps) == 2 and steps[0].ok
    failed = steps[1]
    assert isinstance(failed.error, NameError) and not failed.ok
    assert failed.note.startswith("your _backward raised NameError: name 'undefined_name' is not defined")
    assert failed.where == "in _backward, line 4"
    stepper = BackwardStepper(z)
    assert stepper.n_steps == 4          # zeroing, seed, mul, and double's rule raising
    assert stepper.caption_text(4).startswith("double: your _backward raised NameError")
    assert stepper.problems == ["your backward raised NameError: name 'undefined_name' is not defined (in _backward, "
                                "line 4)."]


def test_a_rule_that_touches_another_node_s_grad_is_flagged(ns):
    T, add = ns["Tensor"], ns["add"]
    a, b = T(1.0), T(2.0)
    c = add(a, b)
    bystander = T(7.0)
    d = add(c, bystander)
    rule = c._backward

    def meddling():
        rule()
        bystander.grad += 1.0
    c._backward = meddling
    notes = [s.note for s in adapt(d).backward_steps() if not s.ok]
    assert len(notes) == 1 and "which is not one of its inputs" in notes[0]


def test_unknown_ops_are_stepped_without_a_verdict(ns):
    T = ns["Tensor"]
    a = T(2.0)
    out = T(a.data ** 3, (a,), "cube")

    def _backward():
        a.grad += out.grad * 3 * a.data ** 2
    out._backward = _backward
    steps = list(adapt(out).backward_steps())
    assert len(steps) == 1 and steps[0].ok and steps[0].rule == "out = cube(…);  ∂L/∂a += your rule for 'cube'"
    assert float(a.grad) == 12.0


def test_part_a_graphs_have_no_rules_to_step(ns):
    exec(sections()["graph_ops"], ns)      # Part A's add and mul: no _backward yet
    x, y = nine(ns)
    for n in adapt(y).graph.order:
        if hasattr(n.source, "_backward"):
            del n.source._backward
    with pytest.raises(AdapterError, match=r"^no node of this graph has a backward rule yet \(practical; looked for "
                                           r"_backward/_backward_fn/") as refused:
        BackwardStepper(y)
    assert str(refused.value).endswith("a function of yours runs the whole backward pass, pass it: "
                                       "BackwardStepper(out, backward=my_backward).")
    assert "mul" in draw_computation_graph(y).source     # drawing still works


# --------------------------------------------------------------------------- bad input

class Odd:
    def __init__(self, data, parents=(), function=None):
        self.data, self._parents, self._function, self.grad = data, parents, function, None


def test_data_that_is_not_numeric_is_one_sentence():
    with pytest.raises(TypeError, match=r"^Odd\.data is 'abc' \(str\), not numbers; store a number or a NumPy "
                                        r"array there\.$"):
        adapt(Odd("abc"))
    with pytest.raises(TypeError, match=r"^Odd\.data is None \(NoneType\), not numbers"):
        draw_computation_graph(Odd(1.0, {Odd(None)}, "neg"))


def test_parents_that_are_not_iterable_is_one_sentence():
    with pytest.raises(TypeError, match=r"^Odd\._parents is 5 \(int\), which is not a set, list or tuple of "
                                        r"nodes\.$"):
        adapt(Odd(1.0, 5, "add"))
    with pytest.raises(TypeError, match=r"^Odd\._parents holds 'x' \(str\), which is neither a node"):
        adapt(Odd(1.0, ["x"], "add"))


def test_an_op_field_that_is_not_a_name_is_drawn_as_an_unknown_op():
    a = Odd(1.0)
    node = adapt(Odd(2.0, (a,), 42))          # 42 names no op, and no rule tells one: "?", still computed
    assert node._function == "?" and node.kind is None and node.parents[0].source is a
    source = draw_computation_graph(node).source
    assert "label=<?>" in source and "->" in source


def test_anything_else_keeps_the_engine_s_sentence():
    with pytest.raises(TypeError, match=r"^BackwardStepper needs a Tensor \(the result of a computation\), got "
                                        r"dict; wrap a value in Tensor\(\.\.\.\) first\.$"):
        BackwardStepper({})
    assert not adaptable(3.0) and adaptable(Odd(1.0))


def test_a_node_repr_never_raises(ns):
    x, y = nine(ns)
    node = adapt(y)
    assert repr(node).startswith("<practical node")
    y.data = "broken later"
    assert "repr failed" in repr(node)


# --------------------------------------------------------------------------- micrograd

@pytest.fixture()
def micrograd():
    return pytest.importorskip("micrograd.engine")


def micro_graph(micrograd):
    Value = micrograd.Value
    a, b, c = Value(2.0), Value(-3.0), Value(10.0)
    e = (a * b + c).relu() * a + a ** 2 - b / c
    return a, b, c, e


def test_micrograd_values_are_drawn_with_their_own_op_symbols(micrograd):
    a, b, c, e = micro_graph(micrograd)
    source = draw_computation_graph(e, names={a: "a", b: "b", c: "c", e: "e"}).source
    for op in ("label=<ReLU>", "label=<**2>", "label=<**-1>", "label=<*>", "label=<+>"):
        assert op in source
    assert "<b>a</b>" in source and "data -3.0" in source


def test_micrograd_stepping_gives_micrograd_s_own_gradients(micrograd):
    a, b, c, e = micro_graph(micrograd)
    e.backward()
    expected = (a.grad, b.grad, c.grad)
    for v in adapt(e).graph.order:
        v.source.grad = 0.0                   # as new: micrograd's backward adds to what is there
    stepper = BackwardStepper(e, names={a: "a", b: "b", c: "c"})
    assert (a.grad, b.grad, c.grad) == (0.0, 0.0, 0.0)       # looking leaves the grads as they were
    last = stepper.n_steps
    assert [float(stepper.grads_at(last, v)) for v in (a, b, c)] == pytest.approx(expected)
    assert stepper.problems == []
    assert all(s.ok for s in stepper.steps), [s.note for s in stepper.steps]
    assert isinstance(a.grad, float)            # micrograd keeps floats
    rules = [s for s in stepper.steps if s.caption is None]
    assert stepper.steps[0].kind == "seed" and len(rules) == len([n for n in adapt(e).graph.order if n.parents])
    a.grad = 123.0                            # not zeroed first: micrograd's own backward adds to it
    again = BackwardStepper(e, names={a: "a", b: "b", c: "c"})
    assert float(again.grads_at(again.n_steps, a)) == pytest.approx(123.0 + expected[0])
    assert again.problems and "the chain rule gives" in again.problems[0]
    pow_step = next(s for s in stepper.steps if s.function == "**2")
    assert pow_step.rule.startswith("out = a ** b;  ∂L/∂a += ∂L/∂out · b·a^(b-1)")


def test_a_wrong_micrograd_rule_is_flagged(micrograd):
    Value = micrograd.Value
    a, b = Value(2.0), Value(3.0)
    out = a * b

    def wrong():
        a.grad += b.data * out.grad
        b.grad += b.data * out.grad      # should be a.data
    out._backward = wrong
    steps = list(adapt(out).backward_steps())
    assert not steps[0].ok and "the chain rule gives 2.0" in steps[0].note


# --------------------------------------------------------------------------- the magic

@pytest.fixture
def ip(magic_shell):
    return magic_shell()


def test_the_magic_draws_and_steps_the_student_s_tensor(ip):
    ip.user_ns.update(namespace())
    with capture_output() as cap:
        result = ip.run_cell("%%autodiff y\nx = Tensor(2.0)\ny = x * x + 5 * x + -1\n")
    assert result.success, result.error_in_exec
    kinds = [sorted(o.data) for o in cap.outputs]
    assert ["image/svg+xml", "text/plain"] not in kinds      # one picture: the stepper's own
    assert sum("application/vnd.jupyter.widget-view+json" in k for k in kinds) == 1
    assert float(ip.user_ns["_autodiff_grads"]["x"]) == 9.0
    assert float(ip.user_ns["x"].grad) == 9.0
    assert isinstance(ip.user_ns["_autodiff"], BackwardStepper)


def test_the_magic_names_the_first_wrong_step(ip):
    ip.user_ns.update(mistaken("mul's rule uses its own operand"))
    with capture_output() as cap:
        result = ip.run_cell("%%autodiff y\nx = Tensor(2.0)\ny = x * x + 5 * x + -1\n")
    assert result.success
    messages = [o.data["text/plain"] for o in cap.outputs if "_backward added" in o.data.get("text/plain", "")]
    assert len(messages) == 1 and "mul's _backward added" in messages[0]


@pytest.mark.parametrize("option", ["--descent", "--check"])
def test_the_magic_refuses_engine_only_options_in_one_sentence(ip, option):
    ip.user_ns.update(namespace())
    with pytest.raises(UsageError, match=rf"^%%autodiff: {option} works on ad_magic's Tensor only; the output is a "
                                         r"student\.Tensor, which is drawn and stepped"):
        ip.run_cell_magic("autodiff", f"{option} y", "x = Tensor(2.0)\ny = x * x\n")


def test_the_magic_turns_an_adapter_error_into_a_usage_error(ip):
    ip.user_ns["Odd"] = Odd
    with pytest.raises(UsageError, match=r"^%%autodiff: Odd\._parents is 5 \(int\), which is not a set"):
        ip.run_cell_magic("autodiff", "", "Odd(1.0, 5, 'add')\n")


def test_the_magic_steps_a_micrograd_value(ip, micrograd):
    ip.user_ns["Value"] = micrograd.Value
    with capture_output():
        result = ip.run_cell("%%autodiff\na = Value(2.0)\nb = Value(-3.0)\n(a * b + a).relu() + a ** 2\n")
    assert result.success, result.error_in_exec
    grads = ip.user_ns["_autodiff_grads"]
    assert float(grads["a"]) == 4.0 and float(grads["b"]) == 0.0


# --------------------------------------------------------------------------- PyTorch

def torch_graph():
    torch = pytest.importorskip("torch")
    x = torch.tensor(2.0, requires_grad=True, dtype=torch.float64)
    W = torch.tensor([[1.0, 2.0, 0.5], [-1.0, 0.5, -3.0]], requires_grad=True, dtype=torch.float64)
    v = torch.tensor([1.0, 2.0, -1.0], requires_grad=True, dtype=torch.float64)
    y = x * x + 5 * x - 1
    z = (torch.relu(W @ v) * 2).sum() + y.tanh()
    return torch, x, W, v, y, z


def test_a_torch_graph_is_drawn_with_its_autograd_nodes_and_values():
    torch, x, W, v, y, z = torch_graph()
    source = draw_computation_graph(z, names={x: "x", W: "W", v: "v", y: "y", z: "z"}).source
    for op in ("MvBackward0", "ReluBackward0", "SumBackward0", "TanhBackward0", "SubBackward0"):
        assert f"label=<{op}>" in source
    assert "<b>y</b><br/>data 13.0" in source      # a named non-leaf tensor is its grad_fn's node
    assert "<b>W</b>" in source and "data &#91;&#91;1.0, 2.0" in source   # W (2, 3): six entries, shown whole
    assert "nan" not in source                      # every value here is saved or recomputed


def test_stepping_a_torch_graph_shows_what_each_node_produced():
    torch, x, W, v, y, z = torch_graph()
    z.backward(retain_graph=True)
    expected = {"x": x.grad.clone(), "W": W.grad.clone(), "v": v.grad.clone()}
    x.grad = W.grad = v.grad = None
    stepper = BackwardStepper(z, names={x: "x", W: "W", v: "v", y: "y"})
    assert [s.function for s in stepper.steps][0] == "AddBackward0" and stepper.n_steps == 10
    last = stepper.timeline.last                    # PyTorch's own grads, starting from zero
    for t, name in ((x, "x"), (W, "W"), (v, "v")):
        assert np.allclose(stepper.grads_at(last, t), expected[name].numpy())
    assert x.grad is None and W.grad is None and v.grad is None   # looking changed nothing
    mv = next(s for s in stepper.steps if s.function == "MvBackward0")
    assert mv.rule == "out = MvBackward0(…);  ∂L/∂a += PyTorch's MvBackward0;  ∂L/∂b += PyTorch's MvBackward0"
    w_node = next(n for n in stepper.view.nodes if n.source is W)
    assert np.allclose(mv.changes[w_node][1], expected["W"].numpy())
    assert "∂L/∂W += PyTorch's MvBackward0 → [[" in stepper.caption_text(mv.index)
    assert "grad 9.0" not in stepper.svg(0) and all(s.ok for s in stepper.steps)


def test_stepping_a_torch_graph_twice_gives_the_same_grads():
    torch, x, W, v, y, z = torch_graph()
    node = adapt(z)
    node.backward()
    first = W.grad.clone()
    node.backward()
    assert torch.equal(W.grad, first)


def test_a_freed_torch_graph_is_one_sentence():
    torch, x, W, v, y, z = torch_graph()
    z.backward()
    with pytest.raises(AdapterError, match=r"^this PyTorch graph was already backpropagated and its buffers freed"):
        BackwardStepper(z)


def test_a_torch_constant_is_one_sentence():
    torch = pytest.importorskip("torch")
    with pytest.raises(AdapterError, match=r"^this PyTorch tensor does not require a gradient"):
        adapt(torch.tensor(3.0))


# --------------------------------------------------------------------------- layering

ENGINE_PRIVATE = re.compile(r"\.(_data|_grad|_a|_b|_rest|_op|_args|_mark|_gstate)\b")


CHECKED = sorted(p.name for p in (PACKAGE / "adapters").glob("*.py")) + ["../practical/__init__.py",
                                                                        "../practical/questions.py"]


@pytest.mark.parametrize("module", CHECKED)
def test_adapters_and_the_checker_use_the_engine_s_public_attributes_only(module):
    source = (PACKAGE / "adapters" / module).read_text()
    uses = [(n, line.strip()) for n, line in enumerate(source.splitlines(), 1)
            if ENGINE_PRIVATE.search(line)]
    assert uses == [], f"{module} reaches into the engine's internals: {uses}"


def test_adapters_never_import_torch_unless_given_a_torch_tensor():
    import subprocess
    import sys

    code = ("import sys, ad_magic.adapters, ad_magic.practical, ad_magic.drawing.dot, ad_magic.widgets.stepper; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_forward_replay_of_an_adapted_graph_is_one_sentence(ns):
    x, y = nine(ns)
    with pytest.raises(TypeError, match=r"^forward replay needs ad_magic's Tensor; this practical graph records no "
                                        r"forward rules to replay: run the code that built it again instead\.$"):
        adapt(y).forward()


def test_matvec_and_relu_rules_are_checked_against_the_registry():
    for mistake, wrong in ((None, []), ("ReLU's gradient on the wrong side", ["relu"])):
        ns = namespace() if mistake is None else mistaken(mistake)
        T = ns["Tensor"]
        W = T(np.array([[1.0, 2.0, 0.5], [-1.0, 0.5, -3.0]]))
        v = T(np.array([1.0, 2.0, -1.0]))
        h = ns["relu"](ns["matvec"](W, v))
        steps = list(adapt(h).backward_steps(np.ones(2)))
        assert [s.function for s in steps] == ["relu", "matvec"]
        assert steps[1].rule == "out = a @ b;  ∂L/∂a += ∂L/∂out @ bᵀ;  ∂L/∂b += aᵀ @ ∂L/∂out"
        assert [s.function for s in steps if not s.ok] == wrong


def test_a_seed_of_the_wrong_shape_is_one_sentence(ns):
    T = ns["Tensor"]
    h = ns["relu"](T(np.array([1.0, -2.0])))
    with pytest.raises(ValueError, match=r"^backward_steps: grad has shape \(3,\) but the output has shape \(2,\)$"):
        adapt(h).backward_steps(np.ones(3))
    with pytest.raises(ValueError, match=r"^backward_steps: the output has shape \(2,\), not a single value"):
        adapt(h).backward_steps()


def test_the_line_magic_and_wrt_work_on_the_student_s_tensor(ip):
    ip.user_ns.update(namespace())
    ip.run_cell("x = Tensor(3.0)\nw = Tensor(2.0)\n")
    with capture_output():
        ip.run_line_magic("autodiff", "--wrt w --static x * w + w")
    assert list(ip.user_ns["_autodiff_grads"]) == ["w"] and float(ip.user_ns["_autodiff_grads"]["w"]) == 4.0
    assert ip.user_ns["_autodiff"] is None and float(ip.user_ns["x"].grad) == 2.0    # --static: no widget
    # --wrt is read as for ad_magic's Tensor: the same sentences
    with pytest.raises(UsageError, match=r"^--wrt: there is no variable named 'q'\.$"):
        ip.run_line_magic("autodiff", "--wrt q x * w")
    ip.run_cell("q = Tensor(1.0)\nv = 3.0\n")
    with pytest.raises(UsageError, match=r"^--wrt: the output does not depend on 'q'\.$"):
        ip.run_line_magic("autodiff", "--wrt q x * w")
    with pytest.raises(UsageError, match=r"^--wrt: 'v' is a float, not a Tensor\.$"):
        ip.run_line_magic("autodiff", "--wrt v x * w")


def test_the_magic_on_a_rule_that_raises_names_it_and_leaves_the_grads(ip, micrograd):
    ip.user_ns["Value"] = micrograd.Value
    ip.run_cell("a = Value(2.0)\nb = Value(3.0)\nc = a * b\na.grad = 7.0\n"
                "def bad():\n    raise RuntimeError('boom')\nc._backward = bad\n")
    with capture_output() as cap:
        result = ip.run_cell("%%autodiff c\nc = c\n")
    assert result.success
    messages = [o.data.get("text/plain", "") for o in cap.outputs]
    assert any(m.startswith("your backward raised RuntimeError: boom (in bad, line ") for m in messages), messages
    # their backward ran once, for real: it seeded c and raised in c's rule, before touching a and b
    assert ip.user_ns["a"].grad == 7.0 and ip.user_ns["c"].grad == 1.0
    assert ip.user_ns["_autodiff_grads"] == {"a": 7.0, "b": 0.0}


def test_a_namedtuple_node_is_refused_in_one_sentence_that_says_why():
    from typing import NamedTuple

    class Node(NamedTuple):
        val: np.ndarray
        srcs: tuple

    node = Node(np.array(2.0), (Node(np.array(1.0), ()),))
    with pytest.raises(AdapterError, match=r"^this: Node is a NamedTuple, whose fields cannot be set, and ad_magic "
                                           r"writes the grads"):
        adapt(node)
