"""One name per tensor in every text of a view: captions, rule lines, cards, notes, the
table and the picture; generated names never clash with the user's, and the registry's
letters (a, b, out) are never shown in place of a tensor."""
from __future__ import annotations

import re

import numpy as np
import pytest
from IPython.utils.capture import capture_output
from practical_solutions import namespace
from practical_solutions.mistakes import MISTAKES

from ad_magic import Tensor
from ad_magic.drawing.names import DisplayNames, bracketed, complete_names
from ad_magic.widgets.stepper import BackwardStepper
from ad_magic.widgets.timeline import Timeline

CELL_AB = "a = Tensor(-2.0)\nb = Tensor(3.0)\na * b + a.tanh()\n"
_SYMBOL = r"∂[Lℒ]/∂"


# --------------------------------------------------------------------------- the checker

def _name_pattern(name: str) -> str:
    return re.escape(bracketed(name))


def _constant(t) -> bool:
    return t.is_leaf and not t.requires_grad and t.size == 1


def check_one_name_per_tensor(tl: Timeline, users: dict = ()):
    """Every caption, rule line and card of every state of ``tl`` calls each tensor by its
    one name. ``users`` maps the user's variable names to their tensors."""
    namer = tl.namer
    nodes = tl.view.nodes
    names = [namer(t) for t in nodes]
    assert None not in names, names
    named = [n for t, n in zip(nodes, names) if not _constant(t)]
    assert len(set(named)) == len(named), f"two tensors share a name: {named}"
    for variable, tensor in dict(users).items():
        owners = [t for t, n in zip(nodes, names) if n == variable]
        assert all(t is tensor or getattr(t, "source", None) is tensor for t in owners), \
            f"{variable!r} names another tensor than the user's {variable}"
    # the picture writes the same name in each box (a constant is drawn by its value)
    drawn = tl.view.plan.names
    for i, t in enumerate(nodes):
        if not _constant(t):
            assert drawn[i] == names[i], f"the picture calls {names[i]!r} {drawn[i]!r}"
    position = {id(t): i for i, t in enumerate(nodes)}
    children = {i: [] for i in range(len(nodes))}
    for j, t in enumerate(nodes):
        for p in t.parents:
            if id(p) in position:
                children[position[id(p)]].append(j)

    def ref(i):
        return _name_pattern(names[i])

    def only_names_of(text, allowed, where):
        """No tensor's name but the allowed ones, and no registry letter, in ``text``."""
        rest = text.replace("(a scalar)", "")
        rest = re.sub(r"(?<![\w])'[^']*'", "", rest)            # a quoted function name
        rest = re.sub(r"^\S+: ", "", rest)                       # the caption's op prefix
        rest = re.sub(r"(?m)^from \S+ →", "from →", rest)          # a card's "from <op> → <name>"
        for i in sorted(allowed, key=lambda i: -len(names[i])):
            for form in (bracketed(names[i]), names[i]):
                rest = re.sub(rf"(?<![\w.]){re.escape(form)}(?![\w])", "§", rest)
        words = set(re.findall(r"[^\W\d][\w]*(?:\.\w+)*", rest))
        strays = [n for i, n in enumerate(names) if i not in allowed and not _constant(nodes[i])
                  and re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", rest)]
        assert not strays, f"{where}: names {strays} of other tensors in {text!r}"
        letters = words & {"a", "b", "c", "out", "unnamed"}
        assert not letters, f"{where}: registry letters {letters} in {text!r}"

    loss = namer.loss
    output = position[id(tl.output)]
    for k, state in enumerate(tl.states):
        where = f"state {k} ({state.phase})"
        i = state.highlight
        if i is None:
            # a step of the student's backward outside any rule (the zeroing) names the grads it changed
            allowed = set(range(len(nodes))) if state.phase == "inputs" else {output, *(state.changed or ())}
        else:
            allowed = {i, output} | {position[id(p)] for p in nodes[i].parents if id(p) in position}
        for text in (state.caption, state.rule):
            only_names_of(text, allowed, where)
        if state.phase == "forward" and i is not None:
            assert state.caption.startswith(f"{nodes[i]._function}: {names[i]} = "), (where, state.caption)
            assert state.rule.startswith(f"{names[i]} = "), (where, state.rule)
        if state.phase == "backward":
            for symbol in re.findall(rf"(?:^|: |; ){_SYMBOL}([^;:]+?) \+=", state.caption + ";  " + state.rule):
                assert symbol in {bracketed(names[j]) for j in allowed - {i}}, (where, symbol, state.caption)
    for i in range(len(nodes)):
        # its inputs, and the nodes it feeds with their other inputs (∂L/∂x += ∂L/∂mul₁ · y)
        allowed = {i, output} | {position[id(p)] for p in nodes[i].parents if id(p) in position}
        for j in children[i]:
            allowed |= {j} | {position[id(p)] for p in nodes[j].parents if id(p) in position}
        for k in range(tl.n_states):
            card = tl.card_text(i, k)
            where = f"card of {names[i]} at state {k}"
            assert card.split(" — ")[0] == names[i], (where, card)
            only_names_of(card, allowed, where)
            for line in card.splitlines():
                if line.startswith("from "):     # what this tensor received: its own grad
                    assert re.search(rf": {_SYMBOL}{ref(i)} \+= ", line), (where, line)
                if line.startswith("upstream grad"):
                    assert line.startswith(f"upstream grad ∂{loss}/∂{bracketed(names[i])} = "), (where, line)
                if line.startswith("local derivative"):
                    assert line.startswith(f"local derivative ∂{bracketed(names[i])}/∂"), (where, line)
                if line.startswith("used "):
                    assert re.search(rf"sum: {_SYMBOL}{ref(i)} = ", line), (where, line)


# --------------------------------------------------------------------------- a and b

def _ab():
    a, b = Tensor(-2.0), Tensor(3.0)
    return a, b, a * b + a.tanh()


def test_without_names_no_generic_letter_and_no_unnamed_card():
    a, b, out = _ab()
    tl = Timeline(out, forward=True)
    check_one_name_per_tensor(tl)
    texts = " ".join([s.caption for s in tl.states] + [s.rule for s in tl.states]
                     + [tl.card_text(i, tl.last) for i in range(len(tl.view.nodes))])
    assert "unnamed" not in texts and "∂L/∂out" not in texts
    assert [tl.namer(t) for t in (a, b, out)] == ["leaf₁", "leaf₂", "L"]


def test_with_names_a_and_b_the_intermediates_are_named_after_their_ops():
    a, b, out = _ab()
    tl = Timeline(out, names={"a": a, "b": b}, forward=True)
    check_one_name_per_tensor(tl, {"a": a, "b": b})
    captions = [s.caption for s in tl.states]
    assert "add: L = mul₁ + tanh₁ = (-6.0) + (-0.964) = -6.964" in captions
    assert captions[tl.seed_state].startswith("Seed: ∂L/∂L = 1.0")
    assert "mul: ∂L/∂a += ∂L/∂mul₁ · b = 1.0 · 3.0 = 3.0, so ∂L/∂a = 0.07065 + 3.0 = 3.071; " \
           "∂L/∂b += ∂L/∂mul₁ · a = 1.0 · (-2.0) = -2.0" in captions


def test_an_expression_as_the_output_s_name_is_bracketed():
    a, b, out = _ab()
    tl = Timeline(out, names={"a": a, "b": b, "a * b + a.tanh()": out}, forward=True)
    check_one_name_per_tensor(tl, {"a": a, "b": b})
    assert tl.states[tl.seed_state].caption.startswith("Seed: ∂L/∂(a * b + a.tanh()) = 1.0")
    card = tl.card_text(tl.view.index(out), tl.last)
    assert "local derivative ∂(a * b + a.tanh())/∂mul₁ = 1 = 1.0" in card


@pytest.fixture
def ip(magic_shell):
    return magic_shell()


def _magic(ip, source):
    with capture_output() as captured:
        result = ip.run_cell(source)
    assert result.success, result.error_in_exec
    return captured


def test_the_magic_on_a_cell_whose_variables_are_a_and_b(ip):
    ip.run_cell("from ad_magic import Tensor")
    captured = _magic(ip, "%%autodiff\n" + CELL_AB)
    tl = ip.user_ns["_autodiff"].timeline
    a, b = ip.user_ns["a"], ip.user_ns["b"]
    check_one_name_per_tensor(tl, {"a": a, "b": b})
    # The picture's boxes carry the same names as the texts.
    svg = tl.svg(tl.last)
    assert "mul₁" in svg and "tanh₁" in svg
    table = captured.outputs[0].data["text/plain"]
    assert re.search(r"^a\s", table, re.M) and re.search(r"^b\s", table, re.M)


def test_the_magic_names_unnamed_leaves_in_the_table_as_in_the_stepper(ip):
    ip.run_cell("from ad_magic import Tensor")
    _magic(ip, "%%autodiff\nw = Tensor([1.0, -2.0])\nloss = (w * Tensor([2.0, 3.0])).sum()\n")
    tl = ip.user_ns["_autodiff"].timeline
    check_one_name_per_tensor(tl, {"w": ip.user_ns["w"]})
    assert set(ip.user_ns["_autodiff_grads"]) == {"w", "leaf₁"}
    assert "leaf₁" in {tl.namer(t) for t in tl.view.nodes}


@pytest.mark.parametrize("mistake", [None] + [m[0] for m in MISTAKES if m[1] == "rules"])
def test_a_student_s_tensor_right_or_wrong_has_one_name_per_node(ip, mistake):
    ns = namespace(None if mistake is None else next((m[1], m[2]) for m in MISTAKES if m[0] == mistake))
    ip.user_ns.update(ns)
    _magic(ip, "%%autodiff y\na = Tensor(2.0)\nb = Tensor(3.0)\ny = a * a + 5 * b + -1\n")
    tl = ip.user_ns["_autodiff"].timeline
    check_one_name_per_tensor(tl, {"a": ip.user_ns["a"], "b": ip.user_ns["b"]})
    notes = [s.note for s in tl.steps if s.note]
    for note in notes:      # the step's own sentence uses the view's names too
        assert "the leaf" not in note and "result" not in note, note


def test_a_micrograd_value_has_one_name_per_node(ip):
    pytest.importorskip("micrograd")
    ip.run_cell("from micrograd.engine import Value")
    _magic(ip, "%%autodiff\na = Value(2.0)\nb = Value(-3.0)\n(a * b + a).relu() + a ** 2\n")
    tl = ip.user_ns["_autodiff"].timeline
    check_one_name_per_tensor(tl, {"a": ip.user_ns["a"], "b": ip.user_ns["b"]})
    # micrograd keeps the exponent of a ** 2 outside its graph: it is written as a number
    assert any(s.rule.startswith("pow₁ = a ** 2.0") for s in tl.states), [s.rule for s in tl.states]


def test_a_torch_tensor_has_one_name_per_node(ip):
    pytest.importorskip("torch")
    ip.run_cell("import torch")
    _magic(ip, "%%autodiff\na = torch.tensor(-2.0, requires_grad=True)\nb = torch.tensor(3.0, requires_grad=True)\n"
               "loss = (a * b + a.tanh()) * 2\n")
    tl = ip.user_ns["_autodiff"].timeline
    check_one_name_per_tensor(tl, {"a": ip.user_ns["a"], "b": ip.user_ns["b"]})
    assert {"mul₁", "tanh₁", "add₁"} <= {tl.namer(t) for t in tl.view.nodes}   # not MulBackward0₁


# --------------------------------------------------------------------------- the naming itself

def test_generated_names_skip_names_the_user_took():
    x = Tensor(1.0)
    h = x * 2.0
    k = h * 3.0
    names = complete_names(k, {x: "mul₁"})
    assert names[x] == "mul₁" and names[h] == "mul₂" and names[k] == "L"


def test_two_tensors_given_one_name_are_told_apart():
    p, q = Tensor(1.0, name="W"), Tensor(2.0, name="W")
    names = complete_names(p * q)
    assert sorted([names[p], names[q]]) == ["W", "W₂"]


def test_the_loss_symbol_changes_when_another_tensor_is_called_L():
    L, y = Tensor(1.0), Tensor(2.0)
    out = L * y
    tl = Timeline(out, names={"L": L, "y": y, "out": out})
    assert tl.namer.loss == "ℒ"
    assert "∂ℒ/∂L += ∂ℒ/∂out · y = 1.0 · 2.0 = 2.0" in tl.states[-1].caption
    check_one_name_per_tensor(tl, {"L": L, "y": y})


def test_mean_s_count_is_a_number_not_the_letter_n():
    n = Tensor([1.0, 2.0, 3.0, 4.0])
    tl = Timeline(n.mean(), names={"n": n})
    rule = tl.states[-1].rule
    assert rule == "L = n.mean(axis);  ∂L/∂n += ∂L/∂L / 4.0 copied back along the averaged axes", rule


def test_constants_read_as_their_value_and_expressions_are_bracketed():
    x = Tensor(2.0)
    namer = DisplayNames({x: "x + 1"}, output=x * 5.0)
    five = (x * 5.0).parents[1]
    assert namer(five) == "5.0" and namer.ref(x) == "(x + 1)" and namer.grad(x) == "∂L/∂(x + 1)"
    assert bracketed("model.W") == "model.W" and bracketed("parameters()[0]") == "parameters()[0]"
    assert bracketed("-1.0") == "(-1.0)" and bracketed("mul₁") == "mul₁"


def test_a_stepper_s_texts_name_each_tensor_once_on_a_bigger_graph():
    x = Tensor(np.array([0.5, -1.0]))
    W = Tensor(np.array([[1.0, 2.0], [3.0, -1.0]]))
    h = (W @ x).tanh()
    loss = ((h - 1.0) ** 2).mean() + (x * x).sum()
    s = BackwardStepper(loss, names={"x": x, "W": W}, forward=True)
    check_one_name_per_tensor(s.timeline, {"x": x, "W": W})


def test_a_hand_written_rule_named_like_a_letter_keeps_its_name_and_the_grad_is_written_once():
    x = Tensor(2.0)
    y = x * 3.0
    z = Tensor(y.data * 2)
    z._parents = {y}
    z._function = "a"            # a function named like the registry's letter

    def rule():
        y.grad = (y.grad if y.grad is not None else 0) + 2 * z.grad
    z._backward = rule
    tl = Timeline(z, names={"x": x})
    step = next(s for s in tl.states if s.phase == "backward" and s.function == "a")
    assert "custom rule of 'a'" in step.caption and "'mul₁'" not in step.caption
    assert "∂L/∂mul₁ += custom rule of 'a', so ∂L/∂mul₁ = 2.0" in step.caption, step.caption
    check_one_name_per_tensor(tl, {"x": x})
