"""ad_magic.drawing: the computation graph drawn, escaped, truncated, and restyled in place."""
import html
import re
import shutil
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ad_magic import drawing
from ad_magic.drawing import DEFAULT_MAX_NODES, GraphView, dot, draw_computation_graph, frame, graph_view, render
from ad_magic.drawing.render import render_svg
from ad_magic.engine import Tensor, topological_order
from ad_magic.engine.formatting import format_number, printable

SVG = "{http://www.w3.org/2000/svg}"
SYSTEM_DOT = shutil.which("dot")
PURE_DOT = render._graphviz_pure_executable()
needs_renderer = pytest.mark.skipif(SYSTEM_DOT is None and PURE_DOT is None, reason="no dot renderer")


def quadratic():
    """The practical's example, x^2 + 4x + 2 at x = 3, after backward."""
    x = Tensor(3.0, name="x")
    y = x * x + 4 * x + 2
    y.backward()
    return x, y


def svg_nodes(svg):
    """{DOT name: <g> element} of the node groups in an SVG string (which must parse)."""
    root = ET.fromstring(svg)
    return {g.find(SVG + "title").text: g for g in root.iter(SVG + "g") if g.get("class") == "node"}


def texts(group):
    return [t.text or "" for t in group.iter(SVG + "text")]


def position(group):
    """Where a node sits: its box or ellipse geometry, whatever element draws it."""
    shape = group.find(SVG + "rect")
    if shape is not None:
        return tuple(shape.get(k) for k in ("x", "y", "width", "height"))
    shape = group.find(SVG + "ellipse")
    if shape is not None:
        return tuple(shape.get(k) for k in ("cx", "cy", "rx", "ry"))
    shape = group.find(SVG + "polygon")
    return (shape.get("points"),) if shape is not None else (group.find(SVG + "path").get("d"),)


def fill(group):
    shape = group.find(SVG + "rect")
    if shape is None:
        shape = group.find(SVG + "ellipse")
    return shape.get("fill"), shape.get("stroke")


def chain(n):
    """n tanh ops in a row after a leaf: n + 1 value tensors."""
    x = Tensor(0.5, name="x")
    out = x
    for _ in range(n):
        out = out.tanh()
    return x, out


# --------------------------------------------------------------------------- DOT

def test_digraph_left_to_right_with_one_node_per_tensor_and_op():
    x, y = quadratic()
    dot = draw_computation_graph(y)
    source = dot.source
    assert isinstance(dot, graphviz.Digraph)
    assert "rankdir=LR" in source
    tensors = topological_order(y)
    value_nodes = re.findall(r"^\s*(v\d+) \[", source, re.M)
    constant_nodes = re.findall(r"^\s*(c\d+_\d+_\d+) \[", source, re.M)
    op_nodes = re.findall(r"^\s*(f\d+) \[", source, re.M)
    assert len(tensors) == 7                           # x, 4, 2 and four results
    assert len(value_nodes) == 5 and len(constant_nodes) == 2   # a constant is drawn at its use
    assert len(op_nodes) == sum(t._function is not None for t in tensors) == 4
    # x * x: both operands drawn as two edges from the one x node.
    assert source.count("v0 -> f1") == 2


def test_same_graph_gives_same_dot():
    assert draw_computation_graph(quadratic()[1]).source == draw_computation_graph(quadratic()[1]).source


def test_leaf_alone_is_one_node():
    source = draw_computation_graph(Tensor(5.0, name="w")).source
    assert re.findall(r"^\s*(\w+) \[", source, re.M) == ["graph", "node", "edge", "v0"]


def test_labels_show_name_data_and_grad_once_computed():
    x = Tensor(3.0, name="x")
    y = x * x
    before = draw_computation_graph(y).source
    assert "<b>x</b>" in before and "data 3.0" in before and "data 9.0" in before
    assert "grad" not in before
    y.backward()
    after = draw_computation_graph(y).source
    assert "grad 6.0" in after and "grad 1.0" in after
    assert "grad" not in draw_computation_graph(y, show_grad=False).source


def test_names_mapping_overrides_tensor_names():
    x, y = quadratic()
    source = draw_computation_graph(y, names={x: "input", y: "loss"}).source
    assert "<b>input</b>" in source and "<b>loss</b>" in source and "<b>x</b>" not in source


def test_arrays_show_shape_and_summary_and_edges_carry_shapes():
    W = Tensor(np.arange(12.0).reshape(3, 4), name="W")
    out = (W @ np.ones(4)).sum()
    out.backward()
    source = html.unescape(draw_computation_graph(out).source)
    assert "shape (3, 4)" in source
    assert "data mean 5.5 [0.0, 11.0]" in source     # numbers as everywhere in ad_magic
    assert "grad all 1.0" in source                  # a constant array says so
    assert 'label="(3, 4)"' in source and 'label="(4,)"' in source


def test_constants_show_their_value_and_no_grad():
    x = Tensor(2.0, name="x")
    y = x * 7
    y.backward()
    source = draw_computation_graph(y).source
    constant = re.search(r"^\s*c1_2_1 \[(.*)\]$", source, re.M).group(1)
    assert "label=<7.0>" in constant and "dashed" in constant
    assert "grad" not in constant


def test_a_shared_constant_is_drawn_once_per_use():
    # One constant tensor used by every op (as an engine may share one per number): the
    # picture draws it at each use, so no edge has to cross the whole graph.
    x = Tensor(0.3, name="x")
    shared = Tensor(1.1, requires_grad=False)
    y = x
    for _ in range(5):
        y = (y * shared).tanh()
    source = draw_computation_graph(y).source
    copies = re.findall(r"^\s*(c\d+_\d+_\d+) \[label=<1.1>", source, re.M)
    assert len(copies) == len(set(copies)) == 5
    assert all(source.count(f"{c} -> f") == 1 for c in copies)
    view = GraphView(y)
    assert shared in view.nodes and len(svg_nodes(view.svg())) > 5


def test_kinds_are_told_apart_by_style():
    x, y = quadratic()
    source = draw_computation_graph(y).source
    attrs = dict(re.findall(r"^\s*([vfc][\d_]+) \[(.*)\]$", source, re.M))
    fillcolor = {name: re.search(r'fillcolor="([^"]+)"', a).group(1) for name, a in attrs.items()}
    leaf, constant, output = fillcolor["v0"], fillcolor["c2_3_0"], fillcolor["v6"]
    op, middle = fillcolor["f1"], fillcolor["v1"]
    assert len({leaf, constant, output, op, middle}) == 5
    for colour in (leaf, constant, output, op, middle):   # filled, light: dark text reads on it
        assert colour.startswith("#") and int(colour[1:3], 16) > 0xC0


NASTY = ['<script>alert("x")</script>', "a\nb", "{x|y}", "back\\slash", "it's & \"so\"", "]]>", "<!--"]


@pytest.mark.parametrize("name", NASTY)
def test_names_are_escaped_in_dot(name):
    x = Tensor(1.0, name=name)
    source = draw_computation_graph(x * 2).source
    label = re.search(r"v0 \[label=<(.*)> ", source).group(1)
    assert "<script" not in label and "\n" not in label
    inner = re.fullmatch(r"<b>(.*)</b><br/>data 1.0", label).group(1)
    assert not set(inner) & set("<>\"'\n")
    # dot reads backslash escapes in HTML labels too: they arrive doubled
    assert html.unescape(inner) == name.replace("\\", "\\\\").replace("\n", "\\\\n")


@needs_renderer
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F) | st.sampled_from("<>&\"'{}|\\\nσ∂"),
                    min_size=1, max_size=20))
def test_any_name_renders_literally_and_never_as_markup(name):
    x = Tensor(2.0, name=name)
    y = x * 3
    y.backward()
    expected = dot.short_name(printable(name)) if name.strip() else None
    for svg in (render_svg(draw_computation_graph(y).source), GraphView(y).svg(caption=name)):
        assert "<script" not in svg.lower()
        nodes = svg_nodes(svg)                     # parses as XML
        assert set(nodes) == {"v0", "c1_2_1", "v2", "f2"}   # the constant drawn at its use
        shown = texts(nodes["v0"])
        if expected is None:
            assert shown == ["data 2.0", "grad 3.0"]
        else:
            # dot may write runs of spaces as no-break spaces
            assert shown[0].replace("\xa0", " ").split() == expected.split()


# --------------------------------------------------------------------------- SVG

def test_svg_has_one_node_per_tensor_and_op(renderer):
    x, y = quadratic()
    nodes = svg_nodes(render_svg(draw_computation_graph(y).source))
    assert sorted(nodes) == sorted(["v0", "v1", "v3", "v4", "v6", "c2_3_0", "c5_6_1", "f1", "f3", "f4", "f6"])
    assert texts(nodes["v0"]) == ["x", "data 3.0", "grad 10.0"]
    assert texts(nodes["f1"]) == ["mul"]


def test_digraph_displays_in_jupyter_without_system_dot(monkeypatch, tmp_path):
    if PURE_DOT is None:
        pytest.skip("graphviz-pure is not installed")
    from graphviz.backend import dot_command
    monkeypatch.setattr(dot_command, "DOT_BINARY", dot_command.DOT_BINARY)  # restored after
    monkeypatch.delenv("AD_MAGIC_DOT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    bundle = draw_computation_graph(quadratic()[1])._repr_mimebundle_()
    assert len(svg_nodes(bundle["image/svg+xml"])) == 11


def test_tensor_repr_svg_draws_its_graph(renderer):
    x, y = quadratic()
    nodes = svg_nodes(y._repr_svg_())
    assert len(nodes) == 11
    assert texts(nodes["v6"]) == ["data 23.0", "grad 1.0"]
    assert not repr(y).startswith("<")    # __repr__ stays plain text


def test_repr_svg_never_raises_with_a_broken_renderer(monkeypatch, tmp_path):
    monkeypatch.setenv("AD_MAGIC_DOT", str(tmp_path / "missing-dot"))
    svg = quadratic()[1]._repr_svg_()
    root = ET.fromstring(svg)
    message = " ".join(t.text for t in root.iter(SVG + "text"))
    assert "pip install graphviz-pure" in message and "Traceback" not in svg


def test_repr_svg_never_raises_on_unexpected_errors(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("bad <data> & more")
    monkeypatch.setattr(drawing, "_laid_out_svg", broken)
    svg = quadratic()[1]._repr_svg_()
    root = ET.fromstring(svg)
    assert [t.text for t in root.iter(SVG + "text")] == ["Graph not drawn: ValueError: bad <data> & more"]


# --------------------------------------------------------------------------- GraphView

def test_view_nodes_in_topological_order_and_index(renderer):
    x, y = quadratic()
    view = GraphView(y)
    assert view.nodes == topological_order(y)
    assert view.nodes[-1] is y and view.index(x) == 0 and view.index(y) == 6
    assert view.truncated == 0
    with pytest.raises(KeyError):
        view.index(Tensor(1.0))
    # every node of the layout is restyled by the view except the two constants,
    # which never change and are drawn at their use as dot drew them
    assert len(view._slots) == 9


def test_view_lays_out_once(monkeypatch):
    calls = []
    real = dot.render_svg
    monkeypatch.setattr(dot, "render_svg", lambda *a, **k: calls.append(1) or real(*a, **k))
    if SYSTEM_DOT is None and PURE_DOT is None:
        pytest.skip("no dot renderer")
    x, y = quadratic()
    view = GraphView(y)
    for k in range(len(view.nodes)):
        view.svg(highlight=k, changed=[k], grads=[None] * len(view.nodes), caption=f"step {k}")
    assert len(calls) == 1


def test_restyle_changes_style_and_text_but_not_positions(renderer):
    x, y = quadratic()
    view = GraphView(y)
    n = len(view.nodes)
    plain = svg_nodes(view.svg())
    grads = [None] * n
    grads[0] = np.array(-123456.789)
    styled = svg_nodes(view.svg(grads=grads, highlight=3, changed=[x], caption="step 2"))
    assert {k: position(g) for k, g in plain.items()} == {k: position(g) for k, g in styled.items()}
    # highlighted: the value node whose _backward runs (index 3: 4*x) and its op node
    assert fill(styled["v3"]) == dot.HIGHLIGHT and fill(styled["f3"]) == dot.HIGHLIGHT
    assert fill(plain["v3"]) != dot.HIGHLIGHT and fill(styled["f1"]) != dot.HIGHLIGHT
    # a None grad is blank; the changed grad is marked
    assert texts(styled["v1"]) == ["data 9.0"] and texts(plain["v1"]) == ["data 9.0", "grad 1.0"]
    grad_text = [t for t in styled["v0"].iter(SVG + "text")][-1]
    assert grad_text.text == "grad -1.235e5" and grad_text.get("fill") == dot.CHANGED
    assert fill(styled["v0"])[1] == dot.CHANGED


def test_caption_is_shown_below_and_escaped(renderer):
    view = GraphView(quadratic()[1])
    root = ET.fromstring(view.svg(caption="grad x += grad out * <b>"))
    caption = [g for g in root.iter(SVG + "g") if g.get("class") == "caption"]
    assert [t.text for t in caption[0].iter(SVG + "text")] == ["grad x += grad out * <b>"]
    plain = ET.fromstring(view.svg())
    assert float(root.get("viewBox").split()[3]) > float(plain.get("viewBox").split()[3])


def test_numbers_in_nodes_are_bounded():
    @given(st.floats(allow_nan=True, allow_infinity=True))
    @settings(max_examples=60, deadline=None)
    def check(v):
        assert len(dot.scalar_text(v)) <= dot.SCALAR_CHARS
        assert len(dot.grad_line(np.array(v))) <= len("grad ") + dot.SCALAR_CHARS
        whole = dot.summary_text(np.array([v, -v, 1e-300]))       # three entries: shown whole
        assert whole.startswith("[") and len(whole) <= 3 * (dot.ENTRY_CHARS + 2)
        summary = dot.summary_text(np.full(10, v))                  # ten: a summary
        assert len(summary) <= len("mean [, ]") + 3 * dot.STAT_CHARS
    check()


def test_boxes_are_sized_by_their_text_and_a_longer_text_is_squeezed(renderer):
    # The room a box gets is its own text's, not the widest number's: 3.0 makes a small box.
    w = Tensor(3.0, name="w")
    out = w * w
    out.backward()
    view = GraphView(out)
    box = view._slots[0][2]
    assert box.data_room == [len("data 3.0")]
    wide = svg_nodes(view.svg(values=[np.array(-1.234567e-7), out.data], grads=[None, None]))
    text = [t for t in wide["v0"].iter(SVG + "text") if t.text and t.text.startswith("data")][0]
    assert text.get("textLength") and text.get("lengthAdjust") == "spacingAndGlyphs"
    fits = svg_nodes(view.svg())
    text = [t for t in fits["v0"].iter(SVG + "text") if t.text and t.text.startswith("data")][0]
    assert text.get("textLength") is None


def test_a_view_reserves_room_for_every_value_it_will_show(renderer):
    w = Tensor(3.0, name="w")
    out = w * w
    view = GraphView(out, layout=False)
    view.lay_out(values=[[w.data, np.array(-1.234567e-7)], [out.data]], grads=[[None], [None]])
    assert view._slots[0][2].data_room == [len("data " + dot.scalar_text(-1.234567e-7))]
    with pytest.raises(RuntimeError, match="laid out already"):
        view.lay_out()


def test_align_maps_another_iteration_and_values_follow(renderer):
    def loss(w_value):
        w = Tensor(w_value, name="w")
        out = (w * w - 2.0).tanh()
        out.backward()
        return w, out

    w1, first = loss(1.0)
    w2, second = loss(-3.5)
    view = GraphView(first)
    aligned = view.align(second)
    assert aligned is not None and aligned[0] is w2 and aligned[-1] is second
    nodes = svg_nodes(view.svg(values=[t.data for t in aligned], grads=[t.grad for t in aligned]))
    assert texts(nodes["v0"])[:2] == ["w", "data -3.5"]
    assert texts(nodes["v0"])[2] == f"grad {format_number(w2.grad, dot.SCALAR_CHARS)}"


def test_align_refuses_a_different_structure():
    if SYSTEM_DOT is None and PURE_DOT is None:
        pytest.skip("no dot renderer")
    x, y = quadratic()
    view = GraphView(y)
    z = Tensor(3.0)
    assert view.align(z * z + 4 * z - 2) is None                   # add vs sub
    v = Tensor(np.ones(2))
    assert view.align(((v * v + 4 * v + 2)).sum()) is None          # shapes and ops differ
    assert view.align(z * z + 4 * z + 2) is not None
    a, b = Tensor(1.0), Tensor(2.0)
    wired = GraphView(a * b + a)
    assert wired.align(a * b + b) is None                           # same ops, other wiring
    c, d = Tensor(5.0), Tensor(6.0)
    assert [t.item() for t in wired.align(c * d + c)[:2]] == [5.0, 6.0]


def test_svg_rejects_misaligned_values():
    if SYSTEM_DOT is None and PURE_DOT is None:
        pytest.skip("no dot renderer")
    view = GraphView(quadratic()[1])
    with pytest.raises(ValueError, match="one entry per node"):
        view.svg(grads=[None])


def test_view_repr_svg_is_its_svg():
    if SYSTEM_DOT is None and PURE_DOT is None:
        pytest.skip("no dot renderer")
    view = GraphView(quadratic()[1])
    assert view._repr_svg_() == view.svg()


# --------------------------------------------------------------------------- big graphs

def test_big_graph_is_truncated_near_the_output_and_says_so(renderer):
    x, out = chain(120)
    view = GraphView(out, max_nodes=50)
    assert len(view.nodes) == 50 and view.truncated == 71
    assert view.nodes[-1] is out and x not in view.nodes
    nodes = svg_nodes(view.svg())
    assert texts(nodes["more"]) == ["... 71 earlier nodes not shown (max_nodes=50)"]
    assert 'more -> f0' in view.source


def test_default_limit_and_very_deep_graph_do_not_recurse():
    x, out = chain(20_000)
    source = draw_computation_graph(out).source
    assert f"{20_001 - DEFAULT_MAX_NODES} earlier nodes not shown (max_nodes={DEFAULT_MAX_NODES})" in source
    assert len(re.findall(r"^\s*v\d+ \[", source, re.M)) == DEFAULT_MAX_NODES


def test_large_layout_bounds_the_network_simplex():
    assert "nslimit" not in draw_computation_graph(chain(20)[1]).source
    source = draw_computation_graph(chain(400)[1], max_nodes=1000).source
    assert "nslimit=" in source and "nslimit1=" in source


# --------------------------------------------------------------------------- misuse

@pytest.mark.parametrize("value", [np.ones(3), 2.5, [1.0, 2.0], None])
def test_anything_but_a_tensor_is_one_clear_type_error(value):
    name = type(value).__name__
    sentence = rf"^draw_computation_graph needs a Tensor .*got {name}; wrap a value in Tensor\(\.\.\.\) first\.$"
    with pytest.raises(TypeError, match=sentence):
        draw_computation_graph(value)
    with pytest.raises(TypeError, match=rf"^GraphView needs a Tensor .*got {name};"):
        GraphView(value)
    svg = drawing.repr_svg(value)                    # a repr never raises
    message = [t.text for t in ET.fromstring(svg).iter(SVG + "text")]
    assert message == [f"Graph not drawn: TypeError: draw_computation_graph needs a Tensor (the result of "
                       f"a computation), got {name}; wrap a value in Tensor(...) first."]


def test_op_names_are_escaped_in_dot_and_in_the_view():
    x = Tensor(2.0, name="x")
    y = x * 3.0
    y._function = '<img src=x onerror="alert(1)">'   # a practical's hand-made op name
    source = draw_computation_graph(y).source
    assert "<img" not in source and "&#60;img" in source
    if SYSTEM_DOT is None and PURE_DOT is None:
        return
    for svg in (render_svg(source), GraphView(y).svg()):
        assert "<img" not in svg
        assert texts(svg_nodes(svg)["f2"]) == ['<img src=x onerror="alert(1)">']


def test_view_align_refuses_anything_but_a_tensor():
    if SYSTEM_DOT is None and PURE_DOT is None:
        pytest.skip("no dot renderer")
    view = GraphView(quadratic()[1])
    assert view.align(np.ones(3)) is None and view.align(None) is None


def test_graph_module_keeps_its_names():
    from ad_magic.drawing import (  # noqa: F401
        DEFAULT_MAX_NODES,
        GraphView,
        draw_computation_graph,
        repr_mimebundle,
        repr_svg,
    )
    assert drawing.GraphView is graph_view.GraphView and drawing.draw_computation_graph is dot.draw_computation_graph


def test_static_labels_are_centred_on_their_node(renderer):
    # dot starts each HTML-label line where its own (narrow) metrics say; a browser's wider
    # font then ran off the right edge: every line is centred on its box instead.
    x = Tensor(np.array([1.0, -2.0, 3.0]), name="x")
    y = (x * 2).sum()
    y.backward()
    svg = drawing.repr_svg(y)
    assert 'text-anchor="start"' not in svg
    root = ET.fromstring(svg)
    for g in root.iter(SVG + "g"):
        if g.get("class") != "node":
            continue
        shape = next(e for e in g if e.tag in (SVG + "polygon", SVG + "path", SVG + "ellipse"))
        if shape.tag == SVG + "ellipse":
            centre = float(shape.get("cx"))
        else:
            xs = [float(a) for a, _ in re.findall(r"(-?[\d.]+),(-?[\d.]+)", shape.get("points") or shape.get("d"))]
            centre = (min(xs) + max(xs)) / 2
        for text in g.iter(SVG + "text"):
            assert abs(float(text.get("x")) - centre) < 0.05, (text.text, text.get("x"), centre)


def test_orientation_follows_the_graph_shape(renderer):
    # A short chain stays left to right; Part D's model (deep and narrow once laid out)
    # stands up, and fitted it is no wider than a 1,000 px output.
    x = Tensor(2.0, name="x")
    chain = ((x * 3).tanh() + 1).exp()
    assert "rankdir=LR" in draw_computation_graph(chain).source
    from ad_magic.nn import MLP, mse_loss
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (128, 1))
    loss = mse_loss(MLP([1, 3, 1], seed=1)(X[:4]), np.sin(X[:4]))
    loss.backward()
    source = draw_computation_graph(loss).source
    assert "rankdir=TB" in source
    width, _ = frame.svg_size(drawing.repr_svg(loss))
    assert width * 4 / 3 <= 940          # was 2,641 px, with the loss node out of view
    assert "rankdir=LR" in draw_computation_graph(loss, rankdir="LR").source
    with pytest.raises(ValueError, match="rankdir must be one of"):
        draw_computation_graph(loss, rankdir="RL")


def test_repr_bundle_has_the_fitted_frame_with_zoom_buttons(renderer):
    x = Tensor(np.arange(3.0), name="x")
    y = (x * x).sum()
    bundle = y._repr_mimebundle_()
    assert bundle["text/plain"] == repr(y)
    page = bundle["text/html"]
    assert page.startswith('<div class="ad-graph"') and "width:100%" in page
    assert all(f'class="{c}"' in page for c in ("ad-graph-out", "ad-graph-fit", "ad-graph-in"))
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml") or "<svg" in bundle["image/svg+xml"]


def test_a_wide_graph_is_fitted_down_to_the_floor_and_says_it_scrolls(renderer, monkeypatch):
    monkeypatch.setattr(dot, "FOLD_ABOVE", 10**9)     # a chain this long would fold into rows
    x = Tensor(1.0, name="x")
    y = x
    for _ in range(60):
        y = (y * 1.01).tanh()
    svg = drawing.repr_svg(y)
    width, _ = frame.svg_size(svg)
    natural, _ = frame.svg_size(drawing._laid_out_svg(y))
    assert natural > 2 * frame.FIT_WIDTH_PT and width == pytest.approx(natural * frame.MIN_SCALE, abs=1)
    assert "scroll sideways" in frame.graph_html(drawing._laid_out_svg(y))
    assert "scroll sideways" not in frame.graph_html(drawing._laid_out_svg(x * 2))
