"""Every notebook in notebooks/, run in one JupyterLab session in Debian's Chromium at
1,000 px of output width, and every graph it displays looked at: the output node lies
inside the visible output area (no scroll container inside the output clips it) and no
two node boxes overlap. The exported timeline page is checked the same way.

Screenshots of every output that holds a graph are kept in test-artifacts/screenshots/
(CI keeps that folder as an artefact). The student's notebook runs with its blanks
filled from the reference solution (tests/practical_solutions), as a student who has
done the practical sees it.
"""
from __future__ import annotations

import re
import shutil

import pytest
from conftest import SHIPPED_NOTEBOOKS

try:  # tests/ may or may not become a package
    from . import e2e_support as e2e
except ImportError:
    import e2e_support as e2e

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SCREENSHOTS = e2e.ARTIFACTS / "screenshots"
OUTPUT_WIDTH = 1000       # px of output area the graphs must fit
TEST_TIMEOUT = 780        # seconds, the watchdog's outer limit
OUTPUT_FILL = "#fef3c7"   # the output node's fill (ad_magic.drawing.dot.KIND_STYLE["output"])

# For one output area: every graph in it (inline <svg> or an <img> of SVG), each node's box
# in page pixels, which node is the output, and the rectangle the output area shows
# (the area's box cut by every scroll container inside it).
_GRAPHS_JS = """async (area) => {
  const decode = (src) => {
    const i = src.indexOf(','); const meta = src.slice(0, i); const body = src.slice(i + 1);
    if (meta.includes(';base64')) {
      const bin = atob(body);
      return new TextDecoder().decode(Uint8Array.from(bin, ch => ch.charCodeAt(0)));
    }
    return decodeURIComponent(body);
  };
  const rect = (r) => ({l: r.left, t: r.top, r: r.right, b: r.bottom});
  function visible(el) {
    let box = rect(area.getBoundingClientRect());
    for (let p = el.parentElement; p && p !== area; p = p.parentElement) {
      const cs = getComputedStyle(p);
      if (/(auto|scroll|hidden|clip)/.test(cs.overflowX + " " + cs.overflowY)) {
        const q = p.getBoundingClientRect();
        box = {l: Math.max(box.l, q.left), t: Math.max(box.t, q.top),
               r: Math.min(box.r, q.left + p.clientWidth), b: Math.min(box.b, q.top + p.clientHeight)};
      }
    }
    return box;
  }
  const isOutput = (g) => g.classList.contains("ad-output") || Array.from(g.querySelectorAll(
      "polygon, path, rect, ellipse")).some(s => (s.getAttribute("fill") || "").toLowerCase() === "%(fill)s");
  function measure(svg, offset) {
    const nodes = [];
    for (const g of svg.querySelectorAll("g.node")) {
      const shape = g.querySelector("polygon, path, rect, ellipse");
      if (!shape) continue;
      const r = rect(shape.getBoundingClientRect());
      const title = g.querySelector("title");
      nodes.push({name: title ? title.textContent : "", output: isOutput(g),
                  l: r.l + offset.x, t: r.t + offset.y, r: r.r + offset.x, b: r.b + offset.y});
    }
    return nodes;
  }
  const graphs = [];
  for (const svg of area.querySelectorAll("svg")) {
    if (!svg.querySelector("g.node") || (svg.parentElement && svg.parentElement.closest("svg"))) continue;
    if (svg.getClientRects().length === 0) continue;   // a picture's other version (modules the other way), hidden
    graphs.push({kind: "inline", nodes: measure(svg, {x: 0, y: 0}), visible: visible(svg),
                 width: svg.getBoundingClientRect().width});
  }
  for (const img of area.querySelectorAll("img")) {
    const src = img.getAttribute("src") || "";
    if (!src.startsWith("data:image/svg+xml")) continue;
    const text = decode(src);
    if (!text.includes('class="node"')) continue;
    const box = img.getBoundingClientRect();
    const holder = document.createElement("div");
    holder.style.cssText = "position:fixed;left:0;top:0;visibility:hidden";
    holder.innerHTML = text.slice(text.indexOf("<svg"));
    const svg = holder.querySelector("svg");
    svg.style.width = box.width + "px";
    svg.style.height = box.height + "px";
    document.body.append(holder);
    const nodes = measure(svg, {x: box.left, y: box.top});
    holder.remove();
    graphs.push({kind: "img", nodes, visible: visible(img), width: box.width});
  }
  return graphs;
}""".replace("%(fill)s", OUTPUT_FILL)


def _overlaps(nodes, tolerance=1.0):
    """Pairs of node boxes that overlap by more than ``tolerance`` px both ways."""
    found = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            dx = min(a["r"], b["r"]) - max(a["l"], b["l"])
            dy = min(a["b"], b["b"]) - max(a["t"], b["t"])
            if dx > tolerance and dy > tolerance:
                found.append((a["name"], b["name"], round(dx, 1), round(dy, 1)))
    return found


def check_graphs(graphs, where: str) -> list:
    """Problems with the graphs of one output: the output node clipped, boxes overlapping."""
    problems = []
    for k, graph in enumerate(graphs):
        outputs = [n for n in graph["nodes"] if n["output"]]
        seen = graph["visible"]
        for n in outputs:
            inside = (n["l"] >= seen["l"] - 1 and n["r"] <= seen["r"] + 1
                      and n["t"] >= seen["t"] - 1 and n["b"] <= seen["b"] + 1)
            if not inside:
                problems.append(f"{where} graph {k} ({graph['kind']}): the output node {n['name']} at "
                                f"x {n['l']:.0f}..{n['r']:.0f} is outside the visible "
                                f"x {seen['l']:.0f}..{seen['r']:.0f}, y {seen['t']:.0f}..{seen['b']:.0f}")
        overlapping = _overlaps(graph["nodes"])
        if overlapping:
            problems.append(f"{where} graph {k} ({graph['kind']}): node boxes overlap: {overlapping[:5]}")
    return problems


def _fit_output_width(page, width: int) -> int:
    """Resize the window so that the notebook's output areas are ``width`` px wide."""
    measure = "() => { const o = document.querySelector('.jp-OutputArea-output'); return o ? o.clientWidth : 0; }"
    now = page.evaluate(measure)
    if now and now != width:
        size = page.viewport_size
        page.set_viewport_size({"width": size["width"] + width - now, "height": size["height"]})
        page.wait_for_function(f"() => {{ const w = ({measure})(); return w && w !== {now}; }}",
                               timeout=e2e.LONG_MS)
        e2e.next_frames(page)
        now = page.evaluate(measure)
    return now


def _look_at_notebook(page, lab, name: str) -> tuple:
    e2e.open_notebook(page, lab, name)
    e2e.run_all_cells(page, timeout_s=400)
    width = _fit_output_width(page, OUTPUT_WIDTH)
    assert abs(width - OUTPUT_WIDTH) <= 4, f"{name}: outputs are {width} px wide"
    problems, graphs_seen, zoomed = [], 0, 0
    cells = page.locator(".jp-Notebook .jp-Cell")
    stem = name.rsplit(".", 1)[0]
    for index in range(cells.count()):
        area = cells.nth(index).locator(".jp-OutputArea")
        if not area.count():
            continue
        area = area.first
        if not area.locator("svg g.node, img[src^='data:image/svg+xml']").count():
            continue
        area.scroll_into_view_if_needed()
        e2e.next_frames(page)        # the timeline fits itself on the next frame
        graphs = area.evaluate(_GRAPHS_JS)
        if not graphs:
            continue
        graphs_seen += len(graphs)
        problems += check_graphs(graphs, f"{name} cell {index}")
        area.screenshot(path=str(SCREENSHOTS / f"{stem}-cell{index:02d}.png"))
        frame = area.locator(".ad-graph")
        if frame.count():
            zoomed += 1
            problems += _zoom_buttons_work(frame.first, f"{name} cell {index}")
    if zoomed == 0:
        problems.append(f"{name}: no graph with zoom buttons")
    return graphs_seen, problems


def _zoom_buttons_work(frame, where: str) -> list:
    """+ enlarges the picture, Fit shows it whole in the width it gets."""
    width = "(el) => el.querySelector('.ad-graph-viewport svg').getBoundingClientRect().width"
    room = "(el) => el.querySelector('.ad-graph-viewport').clientWidth"
    before = frame.evaluate(width)
    frame.locator(".ad-graph-in").click()
    bigger = frame.evaluate(width)
    frame.locator(".ad-graph-fit").click()
    fitted = frame.evaluate(width)
    problems = []
    if not bigger > before * 1.2:
        problems.append(f"{where}: + did not enlarge the graph ({before:.0f} -> {bigger:.0f} px)")
    if not fitted <= frame.evaluate(room) + 1:
        problems.append(f"{where}: Fit left the graph {fitted:.0f} px wide in {frame.evaluate(room)} px")
    return problems


@pytest.fixture
def lab(lab_server):
    """The session's one Lab server (tests/conftest.py): copies of the shipped notebooks, the
    student's with its blanks filled."""
    return lab_server


def test_every_notebook_graph_fits_at_1000_px_and_no_boxes_overlap(lab, chromium):
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    guard = e2e.NetworkGuard()
    report, problems = {}, []
    with e2e.Watchdog(TEST_TIMEOUT, lab) as dog:
        browser = chromium
        # Tall, so that a tall output's screenshot is not cut by the notebook's own scrolling.
        context = browser.new_context(viewport={"width": 1400, "height": 2400})
        context.set_default_timeout(e2e.LONG_MS)
        guard.install(context)
        page = context.new_page()
        try:
            for name in SHIPPED_NOTEBOOKS:
                seen, found = _look_at_notebook(page, lab, name)
                report[name] = seen
                problems += found
                # Leave the page, then stop its kernel (closing the tab would ask first).
                page.goto("about:blank")
                for kernel in lab.kernel_ids():
                    lab.shutdown_kernel(kernel)
        finally:
            lab.record_children()
            context.close()
    assert not dog.fired, f"watchdog fired after {TEST_TIMEOUT} s"
    assert not guard.blocked, f"requests to hosts other than 127.0.0.1: {guard.blocked}"
    print("graphs looked at per notebook:", report)
    assert all(report.values()), f"a notebook showed no graph: {report}"
    assert not problems, "\n".join(problems)


def test_the_exported_matvec_page_fits_at_1000_px(tmp_path, chromium):
    """The exported timeline of Part D's matrix-vector product, opened from file:// in
    a window whose timeline is 1,000 px wide: the output node is in view at every step."""
    import numpy as np

    from ad_magic import Tensor
    from ad_magic.widgets.stepper import BackwardStepper

    W = Tensor(np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]]), name="W")
    v = Tensor(np.array([1.0, 2.0, -1.0]), name="v")
    h = (W @ v).relu()
    s = h.sum()
    path = BackwardStepper(s, names={h: "h", s: "s"}, forward=True).save_html(tmp_path / "matvec.html")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # body margin 24 px each side: a 1,048 px window gives the timeline 1,000 px
    context = chromium.new_context(viewport={"width": OUTPUT_WIDTH + 48, "height": 900})
    blocked = []
    context.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri()
                  else (blocked.append(route.request.url), route.abort()))
    page = context.new_page()
    try:
        page.goto(path.as_uri())
        timeline = page.locator(".ad-timeline")
        timeline.wait_for(state="visible")
        e2e.next_frames(page)
        width = timeline.evaluate("(el) => el.getBoundingClientRect().width")
        assert abs(width - OUTPUT_WIDTH) <= 2, width
        problems = []
        last = int(timeline.locator(".ad-range").get_attribute("max"))
        for k in (0, last // 2, last):
            timeline.locator(".ad-range").fill(str(k))
            page.wait_for_function("([el, k]) => Number(el.dataset.step) === k",
                                   arg=[timeline.element_handle(), k])
            e2e.next_frames(page)
            problems += check_graphs(timeline.evaluate(_GRAPHS_JS), f"exported page step {k}")
        page.screenshot(path=str(SCREENSHOTS / "exported-matvec.png"), full_page=True)
    finally:
        context.close()
    assert blocked == []
    assert not problems, "\n".join(problems)


def test_overlap_and_visibility_checks_can_fail():
    """The checks themselves: a clipped output node and two overlapping boxes are found."""
    box = {"l": 0, "t": 0, "r": 100, "b": 100}
    graph = {"kind": "inline", "visible": box, "width": 100, "nodes": [
        {"name": "v0", "output": False, "l": 0, "t": 0, "r": 50, "b": 20},
        {"name": "v1", "output": False, "l": 40, "t": 10, "r": 90, "b": 30},
        {"name": "v2", "output": True, "l": 80, "t": 50, "r": 140, "b": 70},
    ]}
    problems = check_graphs([graph], "made up")
    assert any(re.search(r"output node v2 .* outside", p) for p in problems), problems
    assert any("overlap" in p and "'v0', 'v1'" in p for p in problems), problems
    graph["nodes"] = graph["nodes"][:1] + [dict(graph["nodes"][2], l=60, r=99)]
    assert check_graphs([graph], "made up") == []


MODULE_CELLS = [
    "%load_ext ad_magic\nimport numpy as np\nfrom ad_magic import Tensor\n"
    "from ad_magic.nn import MLP, mse_loss\nfrom ad_magic.widgets import BackwardStepper\n",
    "rng = np.random.default_rng(0)\nX = rng.uniform(-2, 2, (4, 1))\nnet = MLP([1, 3, 1], seed=1)\n"
    "loss = mse_loss(net(X), np.sin(X))\nBackwardStepper(loss, names={loss: 'loss'}, forward=True, "
    "modules='expanded')\n",
]


def test_the_stepper_s_module_button_collapses_the_model_in_the_browser(lab, chromium):
    """Part D's model in the stepper: its modules boxed; the Collapse button redraws it
    with each Linear as one box, and the output node stays in view."""
    e2e.write_notebook(lab.root_dir / "_e2e_modules.ipynb", MODULE_CELLS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    guard = e2e.NetworkGuard()
    with e2e.Watchdog(300, lab) as dog:
        context = chromium.new_context(viewport={"width": 1400, "height": 1600})
        context.set_default_timeout(e2e.LONG_MS)
        guard.install(context)
        page = context.new_page()
        try:
            e2e.open_notebook(page, lab, "_e2e_modules.ipynb")
            e2e.run_all_cells(page)
            _fit_output_width(page, OUTPUT_WIDTH)
            timeline = page.locator(".ad-backward-stepper .ad-timeline").first
            timeline.wait_for(state="visible")
            svg = "(el) => el.querySelector('.ad-viewport svg').outerHTML"
            before = timeline.evaluate(svg)
            assert "cluster" in before and "layers[0]: Linear(1→3)" in before
            button = timeline.locator(".ad-modules")
            assert button.inner_text() == "Collapse modules"
            button.click()
            page.wait_for_function("(el) => { const b = el.querySelector('.ad-modules');"
                                   " return b && b.textContent === 'Expand modules'; }",
                                   arg=page.locator(".ad-backward-stepper").first.element_handle())
            timeline = page.locator(".ad-backward-stepper .ad-timeline").first
            after = timeline.evaluate(svg)
            # the layers' `linear` ops are gone: each layer is one box now
            assert ">linear<" in before and ">linear<" not in after and "layers[1]: Linear(3→1)" in after
            area = e2e.cell_locator(page, 1).locator(".jp-OutputArea").first
            e2e.next_frames(page)
            problems = check_graphs(area.evaluate(_GRAPHS_JS), "the collapsed stepper")
            area.screenshot(path=str(SCREENSHOTS / "modules-collapsed-stepper.png"))
        finally:
            lab.record_children()
            context.close()
    assert not dog.fired and not guard.blocked
    assert not problems, "\n".join(problems)
