"""The timeline, headless: every state of the forward then backward pass, and node cards."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from ad_magic import Tensor
from ad_magic.widgets.stepper import BackwardStepper
from ad_magic.widgets.timeline import Timeline

SVG_NS = "{http://www.w3.org/2000/svg}"


def data_lines(svg: str) -> dict:
    """{value node name: its 'data …' line} of a restyled SVG ('' when blank)."""
    out = {}
    for g in ET.fromstring(svg).iter(f"{SVG_NS}g"):
        if g.get("class") == "node":
            title = g.find(f"{SVG_NS}title").text
            texts = [t.text or "" for t in g.iter(f"{SVG_NS}text")]
            out[title] = next((t for t in texts if t.startswith("data ")), "")
    return out


def node_texts(svg: str) -> dict:
    """{value node name: the texts it shows, in order} of a restyled SVG."""
    return {g.find(f"{SVG_NS}title").text: [t.text for t in g.iter(f"{SVG_NS}text") if t.text]
            for g in ET.fromstring(svg).iter(f"{SVG_NS}g")
            if g.get("class") == "node" and g.find(f"{SVG_NS}title").text.startswith("v")}


@pytest.fixture
def product():
    x, y = Tensor(2.0, name="x"), Tensor(3.0, name="y")
    h = x * y
    out = h + x
    return x, y, h, out, Timeline(out, names={h: "h", out: "out"}, forward=True)


def test_forward_then_backward_states_in_order(product):
    x, y, h, out, tl = product
    phases = [s.phase for s in tl.states]
    assert phases == ["inputs", "forward", "forward", "seed", "backward", "backward"]
    assert tl.last == 5 and tl.seed_state == 3
    assert [s.caption for s in tl.states[1:3]] == ["mul: h = x · y = 2.0 · 3.0 = 6.0",
                                                    "add: out = h + x = 6.0 + 2.0 = 8.0"]
    assert tl.states[0].caption.startswith("Inputs: x = 2.0, y = 3.0")
    assert tl.states[3].caption.startswith("Seed: ∂L/∂out = 1.0")
    # the forward states highlight the node computed, parents first
    assert [tl.states[k].highlight for k in (1, 2)] == [tl.view.index(h), tl.view.index(out)]


def test_forward_values_appear_in_topological_order(product):
    x, y, h, out, tl = product
    ih, iout, ix = tl.view.index(h), tl.view.index(out), tl.view.index(x)
    seen = [tl.values_at(k) for k in range(tl.n_states)]
    assert seen[0][ix] == 2.0 and seen[0][ih] is None and seen[0][iout] is None
    assert seen[1][ih] == 6.0 and seen[1][iout] is None
    assert all(v is not None for v in seen[2])
    lines = data_lines(tl.svg(0))
    assert lines[f"v{ix}"] == "data 2.0" and lines[f"v{ih}"] == "" and lines[f"v{iout}"] == ""
    assert data_lines(tl.svg(1))[f"v{ih}"] == "data 6.0"
    # no grad anywhere during the forward pass; the seed gives the output its grad
    for k in range(tl.seed_state):
        assert all(g is None for g in tl.grads_at(k))
    assert np.allclose(tl.grads_at(tl.seed_state)[iout], 1.0)


def test_backward_grads_as_backward_computes_them(product):
    x, y, h, out, tl = product
    final = tl.grads_at(tl.last)
    out.backward()
    for t, g in zip(tl.view.nodes, final):
        if t.requires_grad:
            assert np.allclose(g, t.grad)
    assert np.allclose(final[tl.view.index(x)], 4.0)          # 1 from out = h + x, 3 from h = x · y
    assert "so ∂L/∂x = 1.0 + 3.0 = 4.0" in tl.states[-1].caption


def test_without_forward_the_timeline_is_the_backward_pass():
    x = Tensor(3.0, name="x")
    out = x * x + x
    tl = Timeline(out)
    assert [s.phase for s in tl.states] == ["seed"] + ["backward"] * len(tl.steps)
    assert all(v is not None for v in tl.values_at(0))


def test_rule_line_uses_the_users_names():
    x = Tensor(2.0, name="x")
    out = x * 5
    tl = Timeline(out, forward=True)
    rules = [s.rule for s in tl.states if s.phase == "backward"]
    assert rules == ["L = x · 5.0;  ∂L/∂x += ∂L/∂L · 5.0"]     # the unnamed output is L
    assert [s.rule for s in tl.states if s.phase == "forward"] == ["L = x · 5.0"]
    assert tl.states[1].caption == "mul: L = x · 5.0 = 2.0 · 5.0 = 10.0"


def test_forward_caption_of_arrays_gives_shape_and_summary():
    W = Tensor(np.arange(16.0).reshape(8, 2), name="W")
    v = Tensor([1.0, -1.0], name="v")
    h = W @ v
    tl = Timeline(h.sum(), names={h: "h"}, forward=True)
    caption = tl.states[1].caption
    assert caption.startswith("matmul: h = W @ v → (8,) all -1.0") and "[[" not in caption


def test_forward_caption_of_a_small_array_shows_it_whole():
    W = Tensor(np.arange(6.0).reshape(3, 2), name="W")
    v = Tensor([1.0, -1.0], name="v")
    h = W @ v
    tl = Timeline(h.sum(), names={h: "h"}, forward=True)
    assert tl.states[1].caption.startswith("matmul: h = W @ v → [-1.0, -1.0, -1.0]")


def test_negative_numbers_are_bracketed_in_the_forward_formula():
    a, b = Tensor(2.0, name="a"), Tensor(-3.0, name="b")
    tl = Timeline(a * b, forward=True)
    assert "= 2.0 · (-3.0) = -6.0" in tl.states[1].caption


def test_card_of_a_reused_node_lists_each_contribution_and_the_sum():
    x = Tensor(3.0, name="x")
    out = x * x + x
    tl = Timeline(out, names={out: "out"}, forward=True)
    card = tl.card_text(x, tl.last)
    assert card.splitlines()[0] == "x — input (leaf)"
    assert "value = 3.0" in card and "grad = 7.0" in card
    contributions = [line for line in card.splitlines() if line.startswith("from ")]
    assert len(contributions) == 3
    assert any("∂L/∂x += ∂L/∂out · 1 = 1.0 · 1.0 = 1.0" in c for c in contributions)
    assert sum("· x = 1.0 · 3.0 = 3.0" in c for c in contributions) == 2
    assert "used 3 times; sum: ∂L/∂x = 1.0 + 3.0 + 3.0 = 7.0" in card


def test_a_card_follows_the_step():
    x = Tensor(3.0, name="x")
    h = x * x
    out = h + x
    tl = Timeline(out, names={h: "h", out: "out"}, forward=True)
    ih = tl.view.index(h)
    assert "value: not computed yet" in tl.card_text(ih, 0)
    assert "formula: h = x · x = 3.0 · 3.0 = 9.0" in tl.card_text(ih, 1)
    assert "grad: not reached yet" in tl.card_text(x, tl.seed_state)
    first = tl.seed_state + 1                       # out's rule: x gets its first contribution
    assert "grad so far = 1.0" in tl.card_text(x, first)
    assert "sum:" not in tl.card_text(x, first)
    assert "grad = 7.0" in tl.card_text(x, tl.last)
    own = tl.card_text(ih, tl.last)                 # h's own rule: upstream grad, local derivatives
    assert "upstream grad ∂L/∂h = 1.0" in own
    assert "local derivative ∂h/∂x = x = 3.0" in own
    assert "upstream grad" not in tl.card_text(ih, first)


def test_card_of_an_array_shows_the_whole_value():
    W = Tensor(np.arange(8.0).reshape(4, 2), name="W")
    tl = Timeline((W * 2.0).sum(), forward=True)
    card = tl.card_text(W, tl.last)
    assert "shape (4, 2)" in card and "7.0" in card and "6.0" in card


def test_card_of_an_unknown_node_is_refused(product):
    *_, tl = product
    with pytest.raises(IndexError, match="drawn nodes"):
        tl.card_text(99, 0)
    with pytest.raises(ValueError, match="between 0 and 5"):
        tl.card_text(0, 6)


def test_every_state_draws_the_same_size():
    a, b = Tensor(1.5, name="a"), Tensor(-2.0, name="b")
    out = ((a * b).tanh() + b * 3.0).exp() / (a + 1)
    tl = Timeline(out, forward=True)
    sizes = {re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', tl.svg(k)).groups()
             for k in range(tl.n_states)}
    assert len(sizes) == 1


def test_payload_is_json_and_matches_the_python_states():
    W = Tensor(np.arange(6.0).reshape(3, 2), name="W")
    x = Tensor(0.5, name="x")
    h = (W * x + 2.0).tanh()
    tl = Timeline((h * h).sum() + x * 3.0, names={h: "h"}, forward=True)
    data = json.loads(json.dumps(tl.payload()))
    assert data["last"] == tl.last and len(data["captions"]) == tl.n_states
    assert data["captions"] == [s.caption for s in tl.states]
    svg = ET.fromstring(data["svg"])
    groups = [g for g in svg.iter(f"{SVG_NS}g") if "data-v" in g.attrib]
    plan = tl.view._plan
    assert len(groups) == sum(not plan.drawn_per_use(i) for i in range(len(tl.view.nodes))) == 9
    assert all(g.find(f"{SVG_NS}rect").get("class") == "ad-box" for g in groups)
    # the texts the browser shows at each state are the ones Python draws
    for i in range(len(tl.view.nodes)):
        for k in range(tl.n_states):
            shown = node_texts(tl.svg(k)).get(f"v{i}")
            if shown is None:      # a constant drawn beside each op using it
                continue
            texts = [t for t in [e[1] for e in data["data"][i] if e[0] <= k][-1] if t]
            grad = [e[1] for e in data["grads"][i] if e[0] <= k][-1]
            name = [tl.view._plan.names[i]] if tl.view._plan.names[i] else []
            assert shown == name + texts + ([grad] if grad else [])
            card = [text for text, start, end in data["cards"][i] if start <= k and (end is None or k < end)]
            assert "\n".join(card) == tl.card_text(i, k)


def test_names_are_escaped_in_the_browser_svg():
    x = Tensor(1.0, name="<script>alert(1)</script>")
    tl = Timeline(x * 2.0, forward=True)
    assert "<script" not in tl.payload()["svg"]
    ET.fromstring(tl.payload()["svg"])


def test_stepper_with_forward_drives_the_same_timeline():
    x = Tensor(2.0, name="x")
    out = (x * 3.0).exp()
    s = BackwardStepper(out, forward=True)
    assert s.n_steps == s.timeline.last == 2 + 1 + len(s.steps)
    assert s.forward_steps and [f.node for f in s.forward_steps] == [out.parents[0], out]
    s.next.click()
    assert s.step == 1 and "mul" in s.caption.value and "forward 1/2" in s.label.value
    s.slider.value = s.n_steps
    assert s.next.disabled and "backward" in s.label.value
    assert s.position == s.n_steps          # what the browser is told
    with pytest.raises(ValueError, match=f"between 0 and {s.n_steps}"):
        s.step = s.n_steps + 1


def test_a_graph_with_a_hand_written_rule_still_has_a_forward_pass():
    x = Tensor(2.0, name="x")
    y = x * 3.0
    z = Tensor(y.data * 2, name="z")
    z._parents = {y}
    z._function = "double"

    def rule():
        y.grad = (y.grad if y.grad is not None else 0) + 2 * z.grad
    z._backward = rule
    tl = Timeline(z, forward=True)
    assert [s.phase for s in tl.states][:3] == ["inputs", "forward", "forward"]
    assert np.allclose(tl.grads_at(tl.last)[tl.view.index(x)], 6.0)


def test_a_truncated_graph_still_has_every_state():
    x = Tensor(0.5, name="x")
    y = x
    for _ in range(30):
        y = y * 0.9 + 0.1
    tl = Timeline(y, forward=True, max_nodes=12)
    assert tl.view.truncated
    assert tl.n_states == 1 + len(tl.forward_steps) + 1 + len(tl.steps)
    hidden = [s for s in tl.states if s.phase == "forward" and s.highlight is None]
    assert hidden                                  # steps of nodes not drawn: a caption, no highlight
    for k in (0, 5, tl.seed_state, tl.last):
        ET.fromstring(tl.svg(k))
    json.dumps(tl.payload())


def test_backward_only_payload_shows_every_value_from_the_start():
    x = Tensor(2.0, name="x")
    tl = Timeline((x * 3.0).exp())
    data = tl.payload()
    assert all(len(events) == 1 and events[0][0] == 0 for events in data["data"])
    assert data["phases"][0] == "seed"


def test_card_of_a_reused_array_shows_what_each_use_added_and_the_sum():
    W = Tensor(np.arange(4.0).reshape(2, 2), name="W")
    v = Tensor([1.0, -1.0], name="v")
    tl = Timeline(((W @ v) * v).sum(), forward=True)
    card = tl.card_text(v, tl.last)
    assert "(adds [-1.0, -1.0])" in card and "(adds [-2.0, -2.0])" in card
    assert "used 2 times; sum: ∂L/∂v = [-1.0, -1.0] + [-2.0, -2.0] = [-3.0, -3.0]" in card
    assert "grad = [-3.0, -3.0]" in card
