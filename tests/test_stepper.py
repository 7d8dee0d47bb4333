"""BackwardStepper, driven headless by setting its slider."""
from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from ad_magic import Tensor
from ad_magic.drawing.dot import CHANGED, HIGHLIGHT
from ad_magic.widgets.stepper import BackwardStepper

SVG_NS = "{http://www.w3.org/2000/svg}"


# --------------------------------------------------------------------------- helpers

def node_groups(svg: str) -> dict:
    """{DOT node name (v3, f3): its <g class="node"> element} of a GraphView SVG."""
    root = ET.fromstring(svg)
    groups = {}
    for g in root.iter(f"{SVG_NS}g"):
        if g.get("class") == "node":
            groups[g.find(f"{SVG_NS}title").text] = g
    return groups


def highlighted(svg: str) -> set:
    """Names of the nodes GraphView drew with its highlight fill."""
    return {name for name, g in node_groups(svg).items()
            if any(el.get("fill") == HIGHLIGHT[0] for el in g
                   if el.tag in (f"{SVG_NS}rect", f"{SVG_NS}ellipse"))}


def marked_changed(svg: str) -> set:
    """Value nodes whose border GraphView drew in its 'just changed' colour."""
    return {name for name, g in node_groups(svg).items()
            if any(el.get("stroke") == CHANGED for el in g if el.tag == f"{SVG_NS}rect")}


def grad_texts(svg: str) -> dict:
    """{value node name: its 'grad …' line} for nodes showing a grad."""
    out = {}
    for name, g in node_groups(svg).items():
        for t in g.iter(f"{SVG_NS}text"):
            if (t.text or "").startswith("grad "):
                out[name] = t.text
    return out


def reference_grads(tensor, nodes):
    """Grads of `nodes` after each step, by snapshotting everything (the naive way)."""
    snapshots = []
    for _ in tensor.backward_steps():
        snapshots.append([None if t.grad is None else np.array(t.grad) for t in nodes])
    return snapshots


def same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return np.allclose(a, b)


@pytest.fixture
def xy():
    x, y = Tensor(2.0, name="x"), Tensor(3.0, name="y")
    return x, y


# --------------------------------------------------------------------------- stepper

def test_step_zero_has_only_the_output_grad(xy):
    x, y = xy
    out = x * y + x
    s = BackwardStepper(out)
    grads = s.grads_at(0)
    position = s.view.index(out)
    assert np.allclose(grads[position], 1.0)
    assert all(g is None for i, g in enumerate(grads) if i != position)
    svg = s.svg(0)
    assert list(grad_texts(svg)) == [f"v{position}"]
    assert highlighted(svg) == set()
    assert "Seed" in s.caption_text(0)


def test_each_step_highlights_its_node_and_marks_changed_grads():
    a, b, c = Tensor(1.5, name="a"), Tensor(-2.0, name="b"), Tensor(0.5, name="c")
    out = ((a * b).tanh() + b * c).exp() / (a + 1)
    s = BackwardStepper(out)
    assert s.n_steps == len(s.steps) > 4
    for k in range(1, s.n_steps + 1):
        step = s.steps[k - 1]
        i = s.view.index(step.node)
        svg = s.svg(k)
        assert highlighted(svg) == {f"v{i}", f"f{i}"}
        assert marked_changed(svg) == {f"v{s.view.index(p)}" for p in step.parents}


def test_final_step_grads_equal_backward_grads():
    rng = np.random.default_rng(0)
    W = Tensor(rng.normal(size=(3, 2)), name="W")
    v = Tensor(rng.normal(size=2), name="v")
    loss = ((W @ v).tanh() * v.sum()).mean() + (W * W).sum() * 0.1
    s = BackwardStepper(loss)
    after_stepper = {id(t): np.array(t.grad) for t in s.view.nodes if t.grad is not None}
    loss.backward()
    final = s.grads_at(s.n_steps)
    for t, g in zip(s.view.nodes, final):
        if t.requires_grad:
            assert np.allclose(g, t.grad)
            assert np.allclose(after_stepper[id(t)], t.grad)   # construction ran backward to the end


def test_grads_are_blank_until_reached():
    x = Tensor(0.7, name="x")
    h = x.sigmoid()
    out = (h * 2.0 + 1.0).log()
    s = BackwardStepper(out)
    nodes = s.view.nodes
    first_change = {}
    for k, step in enumerate(s.steps, start=1):
        for p in step.parents:
            first_change.setdefault(id(p), k)
    for k in range(s.n_steps + 1):
        grads = s.grads_at(k)
        shown = grad_texts(s.svg(k))
        for i, t in enumerate(nodes):
            if not t.requires_grad:
                continue
            reached = t is out or first_change[id(t)] <= k
            assert (grads[i] is not None) == reached
            assert (f"v{i}" in shown) == reached


def test_reuse_shows_the_grad_summing():
    x = Tensor(3.0, name="x")
    out = x * x + x
    s = BackwardStepper(out)
    text = " ".join(s.caption_text(k) for k in range(1, s.n_steps + 1))
    # d/dx (x² + x) = 2x + 1 = 7, built from 1 (the + x) and 3 + 3 (x * x)
    assert "∂L/∂x = 1.0 + 3.0 + 3.0 = 7.0" in text
    assert np.allclose(x.grad, 7.0)


def test_reuse_across_steps_shows_previous_plus_new():
    x = Tensor(2.0, name="x")
    a = x * 4.0
    out = a + x.exp()
    s = BackwardStepper(out)
    last = s.caption_text(s.n_steps)
    assert "∂L/∂x = " in last and " + " in last
    assert f"= {np.exp(2.0) + 4.0:.4g}" in last


def test_caption_numbers_for_a_product(xy):
    x, y = xy
    s = BackwardStepper(x * y)
    assert s.n_steps == 1
    text = s.caption_text(1)
    # the unnamed output is L itself
    assert "∂L/∂x += ∂L/∂L · y = 1.0 · 3.0 = 3.0" in text
    assert "∂L/∂y += ∂L/∂L · x = 1.0 · 2.0 = 2.0" in text


def test_caption_names_intermediate_values_after_their_op_not_by_rule_letters():
    x = Tensor(2.0, name="x")
    h = x * 3.0
    s = BackwardStepper(h.tanh())
    assert "∂L/∂mul₁ += ∂L/∂L · (1 - L²)" in s.caption_text(1)
    assert "∂L/∂x += ∂L/∂mul₁ · 3.0" in s.caption_text(2)


def test_caption_uses_the_names_dict_in_either_direction():
    p, q = Tensor(2.0), Tensor(5.0)
    out = p * q
    for names in ({p: "p", q: "q", out: "L"}, {"p": p, "q": q, "L": out}):
        s = BackwardStepper(out, names=names)
        assert "∂L/∂p += ∂L/∂L · q = 1.0 · 5.0 = 5.0" in s.caption_text(1)


def test_array_captions_show_shapes_not_arrays():
    W = Tensor(np.arange(16.0).reshape(8, 2), name="W")
    v = Tensor([1.0, -1.0], name="v")
    s = BackwardStepper((W @ v).sum())
    text = s.caption_text(s.n_steps)
    assert "(8, 2)" in text and "@" in text
    assert "[[" not in text


def test_recording_keeps_only_changes():
    x = Tensor(0.3, name="x")
    y = x
    for i in range(30):   # a chain; distinct constants (one shared constant slows dot's layout)
        y = (y * (1.1 + i / 100) + (0.2 + i / 1000)).tanh()
    y = y + x
    s = BackwardStepper(y)
    assert s.recorded_changes == sum(len(step.parents) for step in s.steps)
    assert s.recorded_changes < s.n_steps * len(s.view.nodes) / 10


def test_any_order_of_moves_matches_a_full_replay():
    a, b = Tensor(1.2, name="a"), Tensor(-0.4, name="b")
    h = a * b + a
    out = (h.tanh() * h + b * b).sigmoid()
    s = BackwardStepper(out)
    reference = [[None] * len(s.view.nodes)]
    reference[0][s.view.index(out)] = np.array(1.0)
    reference += reference_grads(out, s.view.nodes)
    rng = random.Random(1)
    for k in [rng.randint(0, s.n_steps) for _ in range(40)] + [0, s.n_steps, 1, 0]:
        s.step = k
        assert all(same(g, r) for g, r in zip(s.grads_at(), reference[k]))


def test_slider_play_and_buttons_drive_the_view():
    x = Tensor(1.0, name="x")
    out = (x * 3.0).exp() + x
    s = BackwardStepper(out)
    n = s.n_steps
    html_before, label_before = s.graph.value, s.label.value
    assert f"step 0 / {n}" in label_before
    s.slider.value = 2
    assert s.step == 2 and f"step 2 / {n}" in s.label.value
    assert s.graph.value != html_before and s.graph.value.startswith('<div class="ad-graph"')
    assert s.caption.value and s.steps[1].function in s.caption.value
    s.play.value = 1                     # Play is linked to the slider
    assert s.slider.value == 1
    s.next.click()
    assert s.step == 2
    s.previous.click()
    s.previous.click()
    assert s.step == 0 and s.previous.disabled
    s.step = n
    assert s.next.disabled
    assert "ad-backward-stepper" in s._dom_classes


def test_svg_is_inline_ready_and_escapes_names():
    x = Tensor(1.0, name="<script>alert(1)</script>")
    s = BackwardStepper(x * 2.0)
    svg = s.svg(1)
    assert svg.startswith("<svg") and "<?xml" not in svg and "DOCTYPE" not in svg
    ET.fromstring(svg)
    assert "<script" not in svg
    assert "<script" not in s.caption.value


def test_leaf_has_only_step_zero():
    x = Tensor(4.0, name="x")
    s = BackwardStepper(x)
    assert s.n_steps == 0 and s.slider.max == 0
    assert np.allclose(x.grad, 1.0)
    assert s.svg(0).startswith("<svg")


def test_non_scalar_output_needs_grad():
    v = Tensor([1.0, 2.0, 3.0], name="v")
    with pytest.raises(ValueError, match="grad"):
        BackwardStepper(v * 2.0)
    s = BackwardStepper(v * 2.0, grad=np.array([1.0, 0.0, -1.0]))
    assert np.allclose(v.grad, [2.0, 0.0, -2.0])
    assert np.allclose(s.grads_at(s.n_steps)[s.view.index(v)], [2.0, 0.0, -2.0])


def test_bad_inputs():
    with pytest.raises(TypeError, match="Tensor"):
        BackwardStepper(3.0)
    s = BackwardStepper(Tensor(1.0) * 2.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        s.step = 5
    with pytest.raises(TypeError):
        s.svg("1")


def test_truncated_graph_still_steps():
    x = Tensor(0.5, name="x")
    y = x
    for _ in range(40):
        y = y * 0.9 + 0.1
    s = BackwardStepper(y, max_nodes=12)
    assert s.view.truncated
    for k in (0, 1, s.n_steps // 2, s.n_steps):
        s.step = k
        ET.fromstring(s.graph.value)
    assert np.allclose(s.grads_at(s.n_steps)[s.view.index(y)], 1.0)


def test_caption_factor_is_the_engines_own(monkeypatch):
    # The stepper shows ChainTerm.factor as the engine gives it; it never recomputes the
    # local derivative. A factor the engine reports differently shows up in the caption.
    x, y = Tensor(2.0, name="x"), Tensor(3.0, name="y")
    out = x * y
    term_class = type(next(iter(out.backward_steps())).terms[0])
    monkeypatch.setattr(term_class, "factor", property(lambda term: np.array(42.0)))
    s = BackwardStepper(out)
    assert "∂L/∂x += ∂L/∂L · y = 1.0 · 42.0 = 42.0" in s.caption_text(1)


def test_numbers_read_the_same_in_caption_and_graph():
    x = Tensor(0.123456789, name="x")
    s = BackwardStepper(x * 1.5)
    caption = s.caption_text(1)
    assert "= 1.0 · 1.5 = 1.5" in caption                    # the factor, the grad of x
    assert "data 0.1235" in s.svg(1) and "grad 1.5" in s.svg(1)


def test_a_name_with_control_characters_is_shown_escaped_in_the_caption():
    x = Tensor(2.0, name="a\nb<i>")
    s = BackwardStepper(x * 3.0)
    s.step = 1
    assert "a\\nb&lt;i&gt;" in s.caption.value and "<i>" not in s.caption.value


def test_local_derivatives_are_bracketed_once():
    x, c = Tensor(0.5, name="x"), Tensor(2.0, name="c")
    out = ((x * 3.0).tanh() - x / c).sigmoid()
    s = BackwardStepper(out)
    text = " ".join(s.caption_text(k) for k in range(1, s.n_steps + 1))
    assert "(1 - " in text and "(-x/c²)" in text and "(-1)" in text
    assert "((" not in text


# --------------------------------------------------------------------------- the widget

def test_the_widget_carries_every_state_and_its_front_end():
    x = Tensor(2.0, name="x")
    s = BackwardStepper(x * 3.0 + x, forward=True)
    assert "export default" in s._esm and "function mount" in s._esm
    assert ".ad-current" in s._css
    data = s.data
    assert data["last"] == s.n_steps and len(data["captions"]) == s.n_steps + 1
    ET.fromstring(data["svg"])
    s.step = 3                              # Python moves the browser: the synced position
    assert s.position == 3
    with pytest.raises(Exception, match="between 0 and"):
        s.position = 99                     # a position the timeline does not have


def test_the_widget_bundle_has_its_own_static_fallback():
    x = Tensor(2.0, name="x")
    s = BackwardStepper(x * x, forward=True)
    data, _ = s._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == s.model_id
    svg = data["image/svg+xml"]
    ET.fromstring(svg)
    assert grad_texts(svg)                  # the final state: every grad shown
    assert data["text/plain"] == f"<BackwardStepper: {s.n_steps} steps>"


def test_card_text_follows_the_current_step():
    x = Tensor(3.0, name="x")
    s = BackwardStepper(x * x, forward=True)
    assert "grad: not reached yet" in s.card_text(x)
    s.step = s.n_steps
    assert "sum: ∂L/∂x = 3.0 + 3.0 = 6.0" in s.card_text(x)


def test_a_long_name_is_cut_on_a_whole_token_and_shown_whole_in_its_card():
    x = Tensor(2.0, name="model.layers[0].attention.query.weight")
    s = BackwardStepper(x * 2.0, forward=True)
    drawn = s.view._plan.names[s.view.index(x)]
    assert drawn == "model.layers[0].attention…"
    assert s.card_text(x, 0).startswith("model.layers[0].attention.query.weight — input (leaf)")


# ------------------------------------------------------------- a student's wrong rule

def _student_nine(mistake):
    from practical_solutions import namespace
    from practical_solutions.mistakes import MISTAKES

    ns = namespace(next((m[1], m[2]) for m in MISTAKES if m[0] == mistake))
    T, add, mul = ns["Tensor"], ns["add"], ns["mul"]
    x = T(2.0)
    return x, add(add(mul(x, x), mul(T(5.0), x)), T(-1.0))


_REPEATED = re.compile(r"= (\(?-?\d[\d.e+-]*\)?) = \1(?![\d.])")    # "= 2.0 = 2.0"


@pytest.mark.parametrize("mistake", ["grads overwritten instead of accumulated", "mul's rule uses its own operand"])
def test_a_wrong_student_rule_shows_each_term_s_numbers_and_what_the_grad_should_be(mistake):
    x, y = _student_nine(mistake)
    s = BackwardStepper(y, names={x: "x", y: "y"})
    captions = [s.caption_text(k) for k in range(s.n_steps + 1)]
    assert not [c for c in captions if _REPEATED.search(c)], captions
    wrong = [c for c in captions if "✗" in c]
    assert wrong, captions
    for caption in wrong:
        clauses = re.findall(r"∂L/∂\S+ \+= [^;]*", caption.split(" ✗ ")[0])
        assert clauses
        for clause in clauses:     # the chain rule's numbers behind every term: upstream · local = value
            assert re.search(r"= \(?-?[\d.]+\)? · \(?-?[\d.]+\)? = -?[\d.]+", clause), clause
        assert ", but it is " in caption and " should be " in caption


def test_the_overwritten_grad_says_what_it_should_be_and_what_it_is():
    x, y = _student_nine("grads overwritten instead of accumulated")
    s = BackwardStepper(y, names={x: "x", y: "y"})
    tl = s.timeline
    i_x = next(i for i, t in enumerate(tl.view.nodes) if tl.namer(t) == "x")
    checked = 0
    for k in range(1, s.n_steps + 1):
        text = s.caption_text(k)
        for addends, total, actual in re.findall(r"∂L/∂x should be (?:(.*?) = )?(\S+), but it is (\S+?)[ ;]", text):
            if addends:
                terms = [float(a.strip("()")) for a in addends.split(" + ")]
                assert sum(terms) == pytest.approx(float(total)), text
            assert float(actual) == pytest.approx(float(tl.grads_at(tl.seed_state + k)[i_x]))
            assert float(actual) != pytest.approx(float(total))
            checked += 1
    assert checked >= 1
    card = tl.card_text(i_x, tl.last)
    assert re.search(r"; the rule added \(?-?[\d.]+\)? ✗", card), card
    assert "used 3 times; sum: ∂L/∂x = " in card and "+ -" not in card, card


# --------------------------------------------------------------------------- the front end's inputs

def test_play_s_interval_is_kept_once_in_python_and_sent_with_the_payload():
    from ad_magic.widgets.timeline import PLAY_INTERVAL_MS

    s = BackwardStepper(Tensor(2.0, name="x") * 3.0)
    assert s.data["play_interval_ms"] == PLAY_INTERVAL_MS == s.play.interval
    # the browser reads it from the payload: no interval of its own
    js = s._esm
    assert "data.play_interval_ms" in js and not re.search(r"\b700\b", js)


def test_the_front_end_is_read_from_its_files_and_reads_no_kernel():
    from ad_magic.widgets.stepper import STATIC

    s = BackwardStepper(Tensor(2.0) * 3.0)
    # given to anywidget as paths: it reads the files (and reloads them with ANYWIDGET_HMR=1)
    assert s._esm == str(BackwardStepper._esm) == (STATIC / "timeline.js").read_text(encoding="utf-8")
    assert s._css == str(BackwardStepper._css) == (STATIC / "timeline.css").read_text(encoding="utf-8")
    # only what anywidget's model offers: get/set/save_changes/send/on/off
    assert "widget_manager" not in s._esm and "kernel." not in s._esm


def test_python_answers_the_browser_s_heard_question():
    s = BackwardStepper(Tensor(2.0) * 3.0)
    sent = []
    s.send = lambda content, buffers=None: sent.append(content)
    s._handle_custom_msg({"kind": "heard?", "id": "view:7"}, [])
    s._handle_custom_msg({"kind": "something else"}, [])
    s._handle_custom_msg("not a dict", [])
    assert sent == [{"kind": "heard", "id": "view:7"}]
