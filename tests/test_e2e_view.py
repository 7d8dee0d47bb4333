"""What a student sees, in a real browser at 1,000 x 800: at every step of a timeline the
current node (``.ad-current``) and the Next button are on screen together — a long chain,
an MLP's loss and the practical's x·x + 5x − 1, in the exported page and in JupyterLab.
Module boxes open and close on click. Screenshots of the three at a late step are saved.

Every wait is on a condition in the page (a step number, boxes inside the viewport),
never a fixed time. Select with ``-m e2e``.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

try:  # tests/ may or may not become a package
    from . import e2e_support as e2e
except ImportError:
    import e2e_support as e2e

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

VIEWPORT = {"width": 1000, "height": 800}
TEST_TIMEOUT = 540
# Screenshots of the three timelines at a late step (also kept under test-artifacts/).
SHOTS = Path(os.environ.get("AD_MAGIC_VIEW_SHOTS", e2e.ARTIFACTS))

CHAIN = textwrap.dedent('''\
    y = Tensor(1.0)
    for _ in range(20):
        y = y * 1.0001 + 0.001
''')
MLP_LOSS = textwrap.dedent('''\
    net = MLP([1, 8, 8, 1], seed=0)
    X = np.linspace(-1, 1, 8).reshape(8, 1)
    Y = np.sin(X)
    loss = mse_loss(net(X), Y)
''')
POLY = textwrap.dedent('''\
    x = Tensor(2.0)
    y = x * x + 5 * x - 1
''')
GRAPHS = {"chain": (CHAIN, "y"), "mlp": (MLP_LOSS, "loss"), "poly": (POLY, "y")}

# Where the current node(s) and the Next button are, and whether they are on screen: inside
# the window, inside every scrolling box around them (the notebook's panel) and, for a node,
# inside the graph's viewport.
_ON_SCREEN_JS = """(el) => {
  const box = (r) => ({left: r.left, top: r.top, right: r.right, bottom: r.bottom});
  let visible = {left: 0, top: 0, right: window.innerWidth, bottom: window.innerHeight};
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    if (/(auto|scroll|hidden)/.test(getComputedStyle(p).overflowY)) {
      const r = p.getBoundingClientRect();
      visible = {left: Math.max(visible.left, r.left), top: Math.max(visible.top, r.top),
                 right: Math.min(visible.right, r.right), bottom: Math.min(visible.bottom, r.bottom)};
    }
  }
  const viewport = box(el.querySelector('.ad-viewport').getBoundingClientRect());
  const within = (r, v) => r.left >= v.left - 1 && r.top >= v.top - 1 && r.right <= v.right + 1
                           && r.bottom <= v.bottom + 1;
  const next = box(el.querySelector('.ad-next').getBoundingClientRect());
  const lit = Array.from(el.querySelectorAll('svg g.ad-current')).map(g => box(g.getBoundingClientRect()));
  const top = el.getBoundingClientRect().top;
  return {step: Number(el.dataset.step), next, lit, viewport, visible, pictureAt: viewport.top - top,
          nextShown: within(next, visible),
          litShown: lit.length > 0 && lit.every(r => within(r, viewport) && within(r, visible))};
}"""


def _where(timeline) -> dict:
    return timeline.evaluate(_ON_SCREEN_JS)


def walk_every_step(page, timeline, *, shot: Path | None = None, shot_at: float = 0.8) -> int:
    """Click Next through every step; at each, wait until the current node and Next are on
    screen. Returns how many steps had a current node. Screenshot at ``shot_at`` of the way."""
    timeline.scroll_into_view_if_needed()
    timeline.evaluate("(el) => el.scrollIntoView({block: 'start'})")
    last = int(timeline.locator(".ad-range").get_attribute("max"))
    handle = timeline.element_handle()
    lit_steps = 0
    picture_at = set()
    for k in range(1, last + 1):
        timeline.locator(".ad-next").click()
        page.wait_for_function("([el, k]) => Number(el.dataset.step) === k", arg=[handle, k], timeout=15_000)
        has_current = timeline.evaluate("(el) => el.querySelectorAll('svg g.ad-current').length > 0")
        condition = ("(el) => { const w = (" + _ON_SCREEN_JS + ")(el); return w.nextShown"
                     + (" && w.litShown; }" if has_current else "; }"))
        try:
            page.wait_for_function(condition, arg=handle, timeout=10_000)
        except Exception:
            raise AssertionError(f"step {k}: current node or Next not on screen: {_where(timeline)}") from None
        lit_steps += has_current
        picture_at.add(round(_where(timeline)["pictureAt"]))
        if shot is not None and k == int(last * shot_at):
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
    # the caption area keeps one height: the picture starts at the same place at every step
    assert len(picture_at) == 1, f"the picture moved while stepping: {sorted(picture_at)}"
    return lit_steps


_CARD_AND_CURRENT_JS = """(el) => {
  const card = el.querySelector('.ad-card').getBoundingClientRect();
  const lit = Array.from(el.querySelectorAll('svg g.ad-current')).map(g => g.getBoundingClientRect());
  const cover = (a, b) => Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
                          * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
  return {covered: lit.reduce((sum, r) => sum + cover(card, r), 0), lit: lit.length,
          hidden: el.querySelector('.ad-card').hidden};
}"""


def _timeline_of(name):
    import numpy as np

    from ad_magic import Tensor
    from ad_magic.nn import MLP, mse_loss
    from ad_magic.widgets.stepper import BackwardStepper

    source, output = GRAPHS[name]
    space = {"Tensor": Tensor, "MLP": MLP, "mse_loss": mse_loss, "np": np}
    exec(source, space)
    return BackwardStepper(space[output], forward=True)


@pytest.fixture
def browser(chromium):
    """The session's one Chromium (tests/conftest.py)."""
    return chromium


@pytest.mark.parametrize("name", list(GRAPHS))
def test_exported_page_keeps_the_current_node_and_next_on_screen(browser, tmp_path, name):
    path = _timeline_of(name).save_html(tmp_path / f"{name}.html")
    context = browser.new_context(viewport=VIEWPORT)
    context.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri() else route.abort())
    errors = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(path.as_uri())
        timeline = page.locator(".ad-timeline")
        timeline.wait_for(state="visible")
        page.wait_for_function("(el) => el.dataset.scale !== undefined", arg=timeline.element_handle())
        lit = walk_every_step(page, timeline, shot=e2e.ARTIFACTS / f"view-page-{name}.png")
        assert lit >= int(timeline.locator(".ad-range").get_attribute("max")) - 2
        # A card clicked open beside a node next to the current one covers neither.
        current = timeline.evaluate("(el) => Number(el.querySelector('svg g.ad-current').dataset.v "
                                    "?? el.querySelector('svg g.ad-current').dataset.f)")
        neighbour = timeline.locator(f'svg g[data-v="{max(0, current - 1)}"]')
        if neighbour.count():
            neighbour.click()
            timeline.locator(".ad-card").wait_for(state="visible")
            placed = timeline.evaluate(_CARD_AND_CURRENT_JS)
            assert placed["lit"] and placed["covered"] == 0, placed
            timeline.locator(".ad-card-close").click()
        # The viewport is no taller than the window under the controls, and Fit shows it all.
        where = _where(timeline)
        assert where["viewport"]["bottom"] <= VIEWPORT["height"] + 1, where
        timeline.locator(".ad-zoom-fit").click()
        page.wait_for_function("""(el) => { const s = el.querySelector('.ad-viewport svg').getBoundingClientRect();
                                            const v = el.querySelector('.ad-viewport');
                                            return s.width <= v.clientWidth + 1 && s.height <= v.clientHeight + 1; }""",
                               arg=timeline.element_handle(), timeout=5_000)
    finally:
        context.close()
    assert errors == []


# ------------------------------------------------------------------ in JupyterLab
@pytest.fixture
def lab(lab_server):
    """The session's one Lab server (tests/conftest.py), with this test's notebook added."""
    cells = ["%load_ext ad_magic\nimport numpy as np\nfrom ad_magic import Tensor\n"
             "from ad_magic.nn import MLP, mse_loss\n"]
    cells += [f"%%autodiff {output}\n{source}" for source, output in GRAPHS.values()]
    e2e.write_notebook(lab_server.root_dir / "view.ipynb", cells)
    return lab_server


def test_lab_keeps_the_current_node_and_next_on_screen_at_every_step(lab, browser):
    guard = e2e.NetworkGuard()
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    guard.install(context)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    with e2e.Watchdog(TEST_TIMEOUT, lab) as dog:
        try:
            e2e.open_notebook(page, lab, "view.ipynb")
            e2e.run_all_cells(page)
            timelines = page.locator(".jp-OutputArea .ad-timeline")
            timelines.nth(len(GRAPHS) - 1).wait_for(state="visible")
            assert timelines.count() == len(GRAPHS)
            for n, name in enumerate(GRAPHS):
                timeline = timelines.nth(n)
                page.wait_for_function("(el) => el.dataset.scale !== undefined", arg=timeline.element_handle())
                lit = walk_every_step(page, timeline, shot=SHOTS / f"view_{name}.png")
                assert lit >= int(timeline.locator(".ad-range").get_attribute("max")) - 2, name
            # A click on a module's title closes it into one box; a click on that box opens it.
            mlp = timelines.nth(list(GRAPHS).index("mlp"))
            assert mlp.locator("svg g.ad-module").count() == 0
            mlp.locator("svg g.ad-module-box > text", has_text="layers[0]").first.click()
            mlp.locator("svg g.ad-module").first.wait_for(state="visible", timeout=30_000)
            assert mlp.locator("svg g.ad-module").count() == 1
            assert "layers[0]" in mlp.locator("svg g.ad-module").text_content()
            mlp.locator("svg g.ad-module").click()
            boxes = ("(el) => [el.querySelectorAll('svg g.ad-module').length, "
                     "el.querySelectorAll('svg g.ad-module-box').length]")
            try:
                # the widget mounts a new timeline element: found again at every poll
                page.wait_for_function(f"""(n) => ({boxes})(
                    document.querySelectorAll('.jp-OutputArea .ad-timeline')[n])[0] === 0""",
                                       arg=list(GRAPHS).index("mlp"), timeout=30_000)
            except Exception:
                raise AssertionError(f"the module did not open again: {mlp.evaluate(boxes)}") from None
            assert mlp.evaluate(boxes) == [0, 4]       # the MLP and its three layers, open
        finally:
            lab.record_children()
            context.close()
    assert not dog.fired, f"watchdog fired after {TEST_TIMEOUT} s"
    assert not guard.blocked and errors == [], (guard.blocked, errors)


def test_a_plain_pictures_module_boxes_open_and_close_on_click(browser, tmp_path):
    """draw_computation_graph's HTML holds the graph as asked (modules collapsed) and the
    same graph with its modules open: a click on a collapsed box shows the open one, a
    click on an open module's title the collapsed one again. No kernel, no network."""
    import numpy as np

    from ad_magic import draw_computation_graph
    from ad_magic.nn import MLP, mse_loss

    X = np.linspace(-1, 1, 4).reshape(4, 1)
    picture = draw_computation_graph(mse_loss(MLP([1, 3, 1], seed=0)(X), np.sin(X)), modules="collapsed")
    path = tmp_path / "picture.html"
    path.write_text("<!DOCTYPE html><html><body>" + picture._repr_mimebundle_()["text/html"] + "</body></html>")
    context = browser.new_context(viewport=VIEWPORT)
    context.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri() else route.abort())
    page = context.new_page()
    shown = "() => document.querySelector('svg[data-shown]').dataset.modules"
    try:
        page.goto(path.as_uri())
        assert page.evaluate(shown) == "asked"
        page.locator('svg[data-shown] g[id^="module_"]').first.click()
        assert page.evaluate(shown) == "other"
        assert page.locator('svg[data-shown] g[id^="module_"]').count() == 0     # every module open
        page.locator("svg[data-shown] g.cluster > text", has_text="layers[0]").first.click()
        assert page.evaluate(shown) == "asked"
        page.locator(".ad-graph-fit").click()      # the zoom buttons act on the picture shown
        fitted = page.evaluate("""() => { const s = document.querySelector('svg[data-shown]');
                                          return [s.style.width, s.getBoundingClientRect().height]; }""")
        assert fitted[0] == "100%" and fitted[1] <= 0.8 * VIEWPORT["height"] + 1, fitted   # width and height
    finally:
        context.close()
