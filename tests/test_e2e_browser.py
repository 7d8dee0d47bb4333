"""End to end in a real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven by
Playwright, a slider moved with the mouse, and the SVG it drives read back.

Skips when Chromium, Playwright or JupyterLab is missing — except with CI set, where
a missing piece is a failure. Select with `-m e2e`, leave out with `-m "not e2e"`.
"""
from __future__ import annotations

import re
import textwrap

import pytest

try:  # tests/ may or may not become a package
    from . import e2e_support as e2e
except ImportError:
    import e2e_support as e2e

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

TEST_TIMEOUT = 300  # seconds, the watchdog's outer limit for one test


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def lab(lab_server):
    """The session's one Lab server (tests/conftest.py), serving a temp copy of the shipped
    notebooks (Lab autosaves: the repo's notebooks are never written)."""
    return lab_server


@pytest.fixture
def browser(chromium):
    return chromium


@pytest.fixture
def page(request, lab, browser):
    guard = e2e.NetworkGuard()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    guard.install(context)
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    with e2e.Watchdog(TEST_TIMEOUT, lab) as dog:
        try:
            yield pg
            assert not guard.blocked, f"requests to hosts other than 127.0.0.1: {guard.blocked}"
        except BaseException:
            raise
        finally:
            try:
                if not pg.is_closed():
                    e2e.save_screenshot(pg, f"{request.node.name}-last.png")
            except Exception:
                pass
            lab.record_children()
            if console:
                print("browser console errors:\n  " + "\n  ".join(console[:30]))
            context.close()
    assert not dog.fired, f"watchdog fired after {TEST_TIMEOUT} s"


# ------------------------------------------------------------------- tests
TIMELINE_CELLS = [
    "%load_ext ad_magic\nfrom ad_magic import Tensor\n",
    textwrap.dedent('''\
        %%autodiff
        x = Tensor(2.0)
        y = Tensor(3.0)
        h = x * y
        loss = h * x + y
    '''),
    "print('Python sees step', _autodiff.step)\n",
]


def _step_with_buttons_and_keys(timeline):
    """Next/Previous and ←/→ move the timeline; the highlighted node follows."""
    start = e2e.timeline_state(timeline)
    assert start["step"] == 0 and start["current"] == [], start
    assert "Inputs: x = 2.0, y = 3.0" in start["caption"]
    timeline.locator(".ad-next").click()
    one = e2e.timeline_state(timeline)
    assert one["step"] == 1 and "h = x · y = 2.0 · 3.0 = 6.0" in one["caption"]
    assert one["current"] and one["svg"] != start["svg"]
    timeline.locator(".ad-next").click()
    two = e2e.timeline_state(timeline)
    assert two["step"] == 2 and two["current"] and two["current"] != one["current"]
    timeline.locator(".ad-prev").click()
    assert e2e.timeline_state(timeline)["current"] == one["current"]
    timeline.locator(".ad-caption").click()          # focus the widget, then the keyboard
    timeline.press("ArrowRight")
    timeline.press("ArrowRight")
    three = e2e.timeline_state(timeline)
    assert three["step"] == 3 and three["current"] != two["current"], three
    timeline.press("ArrowLeft")
    assert e2e.timeline_state(timeline)["step"] == 2
    # the highlight is the one the e2e helper reads from any SVG (class ad-current)
    assert sorted(e2e.highlighted_nodes(two["svg"])) == sorted(two["current"])
    return two


def _open_card(timeline, dot_name: str, expect: str) -> str:
    timeline.locator(f'svg g.node:has(> title:text-is("{dot_name}"))').click()
    card = timeline.locator(".ad-card")
    card.wait_for(state="visible")
    text = card.inner_text()
    assert expect in text, text
    card.locator(".ad-card-close").click()
    return text


def _run_timeline(page, lab, name, *, notebook7):
    e2e.write_notebook(lab.root_dir / name, TIMELINE_CELLS)
    e2e.open_notebook(page, lab, name, notebook7=notebook7)
    e2e.run_all_cells(page)
    timeline = page.locator(".ad-backward-stepper .ad-timeline")
    timeline.wait_for(state="visible")
    graphs = page.locator(".jp-OutputArea svg:has(g.node), .jp-OutputArea img[src^='data:image/svg']")
    assert graphs.count() == 1, "one picture in the output, not two"
    assert page.locator(".jp-OutputArea .ad-caption").count() == 1, "one caption"
    _step_with_buttons_and_keys(timeline)
    card = _open_card(timeline, "v0", "input (leaf)")
    assert "value = 2.0" in card
    # While the kernel runs, the widget tells Python where it is.
    e2e.run_cell(page, 2)       # waits until the cell has run and the kernel is idle, however long
    told = e2e.cell_locator(page, 2).locator(".jp-OutputArea-output")
    told.filter(has_text="Python sees step 2").wait_for()

    # Shut the kernel down: the slider, the buttons and the cards still work, and the
    # widget sends nothing more (no failed sync message in the console).
    failed_sends = []
    page.on("console", lambda m: failed_sends.append(m.text) if "send" in m.text.lower() else None)
    kernel = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")
    lab.shutdown_kernel(kernel)
    page.wait_for_function("(id) => { const s = window.jupyterapp.shell.currentWidget.sessionContext;"
                           " return !s.session || !s.session.kernel || s.session.kernel.status === 'dead'"
                           " || s.session.kernel.id !== id; }", arg=kernel, timeout=e2e.LONG_MS)
    assert kernel not in lab.kernel_ids()
    before = e2e.timeline_state(timeline)
    e2e.drag_range(page, timeline.locator(".ad-range"), 1.0)
    after = e2e.timeline_state(timeline)
    assert after["step"] > before["step"] and after["svg"] != before["svg"], (before["label"], after["label"])
    assert "backward 3/3" in after["label"] and after["current"], after
    timeline.locator(".ad-prev").click()           # the backward step before: another node's rule
    previous = e2e.timeline_state(timeline)
    assert previous["step"] == after["step"] - 1 and previous["current"] != after["current"]
    card = _open_card(timeline, "v0", "grad")
    assert "used 2 times" in card or "from " in card, card
    assert failed_sends == [], failed_sends
    e2e.save_screenshot(page, f"e2e-timeline-{'notebook7' if notebook7 else 'lab'}.png")


def test_lab_timeline_steps_in_the_browser_and_survives_the_kernel(lab, page):
    """JupyterLab: step with the buttons and the keys, open a card, shut the kernel
    down, drag the slider: the picture still changes."""
    _run_timeline(page, lab, "_e2e_timeline_lab.ipynb", notebook7=False)


def test_notebook7_timeline_steps_in_the_browser_and_survives_the_kernel(lab, page):
    """The same in Notebook 7."""
    _run_timeline(page, lab, "_e2e_timeline_nb7.ipynb", notebook7=True)


def test_exported_page_works_from_file_with_no_network(browser, tmp_path):
    """save_html's page from file://, every request aborted: drag its range input and the
    SVG changes; a click opens a card."""
    from ad_magic import Tensor
    from ad_magic.widgets.stepper import BackwardStepper

    x, y = Tensor(2.0, name="x"), Tensor(3.0, name="y")
    h = x * y
    path = BackwardStepper(h * x + y, names={h: "h"}, forward=True).save_html(tmp_path / "timeline.html")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    requests = []

    def guard(route):
        url = route.request.url
        if url == path.as_uri():
            route.continue_()
        else:
            requests.append(url)
            route.abort()
    context.route("**/*", guard)
    errors = []
    pg = context.new_page()
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        pg.goto(path.as_uri())
        timeline = pg.locator(".ad-timeline")
        timeline.wait_for(state="visible")
        before = e2e.timeline_state(timeline)
        assert before["step"] == 0
        e2e.drag_range(pg, timeline.locator(".ad-range"), 0.85)
        after = e2e.timeline_state(timeline)
        assert after["step"] > 0 and after["svg"] != before["svg"] and after["current"]
        _open_card(timeline, "v0", "x — input (leaf)")
        # hovering a node shows its card too; zoom and the whole-graph fit
        timeline.locator('svg g.node:has(> title:text-is("v1"))').hover()
        timeline.locator(".ad-card").wait_for(state="visible")
        assert "y — input (leaf)" in timeline.locator(".ad-card").inner_text()
        scale = float(timeline.get_attribute("data-scale"))
        timeline.locator(".ad-zoom-in").click()
        assert float(timeline.get_attribute("data-scale")) > scale
        timeline.locator(".ad-zoom-fit").click()
        assert float(timeline.get_attribute("data-scale")) <= 1.0
        # Play runs to the end by itself (one step per 0.7 s), from the start when at the end
        timeline.locator(".ad-range").fill("0")
        timeline.locator(".ad-play").click()
        pg.wait_for_function("(el) => Number(el.dataset.step) >= 2", arg=timeline.element_handle(),
                             timeout=e2e.LONG_MS)
        timeline.locator(".ad-play").click()           # pause
        paused = e2e.timeline_state(timeline)["step"]
        pg.wait_for_timeout(900)
        assert e2e.timeline_state(timeline)["step"] == paused
        e2e.save_screenshot(pg, "e2e-exported-page.png")
    finally:
        context.close()
    assert requests == [] and errors == []


ROUNDTRIP_CELLS = [
    "import ipywidgets as W\n",
    textwrap.dedent('''\
        slider = W.IntSlider(value=0, min=0, max=10, description="step")
        view = W.HTML()
        def render(change=None):
            v = slider.value
            nodes = "".join(
                f'<g class="node{" ad-current" if i == v else ""}"><title>n{i}</title>'
                f'<rect x="{i * 18}" y="10" width="15" height="15" '
                f'fill="{"orange" if i == v else "white"}" stroke="black"/></g>'
                for i in range(11))
            view.value = (f'<svg xmlns="http://www.w3.org/2000/svg" width="220" height="50">'
                          f'{nodes}<text x="0" y="45">step {v}</text></svg>')
        slider.observe(render, "value")
        render()
        W.VBox([slider, view])
    '''),
]


def test_lab_widget_roundtrip(lab, page, tmp_path):
    """Harness check with plain ipywidgets: drag an IntSlider in Lab, and the inline
    SVG drawn by the kernel (observe -> HTML) changes, highlight included."""
    e2e.write_notebook(lab.root_dir / "_e2e_roundtrip.ipynb", ROUNDTRIP_CELLS)
    e2e.open_notebook(page, lab, "_e2e_roundtrip.ipynb")
    e2e.run_all_cells(page)
    out = e2e.cell_locator(page, 1).locator(".jp-OutputArea")
    slider = out.locator(".widget-slider").first
    slider.locator(".noUi-handle").wait_for(state="visible")
    view = out.locator(".widget-html").first
    page.wait_for_function("(el) => el.querySelector('svg') !== null", arg=view.element_handle())
    before = e2e.snapshot(view)
    assert "step 0" in before["text"]
    assert e2e.highlighted_nodes(before["svgs"][0]) == ["n0"]

    e2e.drag_slider(page, slider, 0.72)
    after = e2e.wait_for_change(view, before)
    assert after["svgs"] != before["svgs"], "the SVG did not change after the drag"
    m = re.search(r"step (\d+)", after["text"])
    assert m and int(m.group(1)) > 0, after["text"]
    assert e2e.highlighted_nodes(after["svgs"][0]) == [f"n{m.group(1)}"]
    readout = e2e.snapshot(slider)["readouts"]
    assert readout == [m.group(1)], (readout, after["text"])
    e2e.save_screenshot(page, "e2e-roundtrip.png")


# --- the real widgets ----------------------------------------------------
# Part B's quadratic and a descent: the practical's widgets (tests/test_e2e_notebooks.py runs
# the whole practical in the browser).
STEPPER_AND_DESCENT_CELLS = [
    "%load_ext ad_magic\nfrom ad_magic import Tensor\n",
    textwrap.dedent('''\
        %%autodiff loss
        x = Tensor(2.0)
        loss = x * x + 4 * x + 2
    '''),
    textwrap.dedent('''\
        %%autodiff loss --descent --lr 0.1 --steps 20
        w = Tensor([1.5, -0.5])
        loss = ((w - 1.0) ** 2).sum()
    '''),
]


def _widget_roots(page, out_css: str, marker: str, source_words: tuple[str, ...]):
    """Locate a widget: first by its DOM class marker (e.g. .ad-backward-stepper),
    else by the first cell whose source mentions one of source_words and which shows a
    slider."""
    marked = page.locator(f"{out_css} .{marker}")
    if marked.count():
        return marked.first
    st = e2e.notebook_state(page)
    for c in st["cells"]:
        if any(w in c["source"] for w in source_words):
            out = e2e.cell_locator(page, c["index"]).locator(".jp-OutputArea")
            if out.locator(".widget-slider").count():
                return out
    return None


def test_lab_backward_stepper_and_descent(lab, page):
    """The practical's widgets in Lab: run every cell, drag a BackwardStepper's slider (the SVG
    changes and its highlighted node moves), drag a DescentExplorer's slider (the shown
    iteration changes)."""
    nb = "_e2e_autodiff.ipynb"
    e2e.write_notebook(lab.root_dir / nb, STEPPER_AND_DESCENT_CELLS)
    e2e.open_notebook(page, lab, nb)
    e2e.run_all_cells(page, timeout_s=240)
    page.locator(".widget-slider .noUi-handle").first.wait_for(state="visible")

    # BackwardStepper: the timeline, stepped in the browser ----------------------
    stepper = page.locator(".jp-OutputArea .ad-backward-stepper .ad-timeline").first
    assert stepper.count(), "no BackwardStepper found in the notebook"
    stepper.scroll_into_view_if_needed()
    before = e2e.timeline_state(stepper)
    e2e.drag_range(page, stepper.locator(".ad-range"), 0.9)
    after = e2e.timeline_state(stepper)
    e2e.save_screenshot(page, "e2e-backward-stepper.png")
    print(f"step shown: {before['label']} -> {after['label']}; highlighted {before['current']} -> "
          f"{after['current']}")
    assert after["svg"] != before["svg"], "the stepper's SVG did not change after the drag"
    assert after["step"] > before["step"], f"the stepper went {before['label']} -> {after['label']}"
    assert after["current"], "no highlighted node in the stepper's SVG after the drag"
    assert before["current"] != after["current"], f"the highlighted node stayed {after['current']}"

    # DescentExplorer --------------------------------------------------------
    explorer = _widget_roots(page, ".jp-OutputArea", "ad-descent-explorer",
                             ("DescentExplorer", "--descent"))
    assert explorer is not None, "no DescentExplorer with a slider found in the notebook"
    slider = explorer.locator(".widget-slider").first
    slider.scroll_into_view_if_needed()
    before = e2e.snapshot(explorer)

    def shown(s):  # what the explorer shows besides its slider's own readout
        text = s["text"]
        for r in s["readouts"]:
            text = text.replace(r, "", 1)
        return (s["svgs"], s["images"], text)

    e2e.drag_slider(page, slider)
    after = e2e.wait_for_change(explorer, before, key=shown)
    e2e.save_screenshot(page, "e2e-descent-explorer.png")
    assert after["readouts"] != before["readouts"], "the explorer's slider readout did not move"
    assert shown(after) != shown(before), "the DescentExplorer's view did not change"
    pat = re.compile(r"iter(?:ation)?\s*[:=#]?\s*(\d+)", re.I)
    it_b, it_a = pat.findall(before["text"]), pat.findall(after["text"])
    print(f"iteration shown: {it_b} -> {it_a}")
    assert it_a and it_b != it_a, f"the shown 'iteration N' went {it_b} -> {it_a}"


# --- what a re-render leaves behind --------------------------------------------
# Installed before Lab's own scripts: counts what the timeline's module (anywidget loads
# it from a blob: URL, so its frames are known by their stack) adds and has not removed:
# event listeners (by target: the window, any other), observed ResizeObserver targets,
# intervals and pending animation frames. A listener added with a signal counts as removed
# when the signal aborts. Listeners on AbortSignals themselves are left out: they live and
# die with their controller.
LISTENER_COUNTER_JS = """(() => {
  const fromTimeline = () => /blob:/.test(new Error().stack || "");
  const live = [];
  const add = EventTarget.prototype.addEventListener, remove = EventTarget.prototype.removeEventListener;
  const capture = (o) => typeof o === "boolean" ? o : !!(o && o.capture);
  const drop = (rec) => { const i = live.indexOf(rec); if (i >= 0) live.splice(i, 1); };
  const find = (target, type, fn, c) => live.find(r => r.target === target && r.type === type && r.fn === fn
                                                        && r.c === c);
  EventTarget.prototype.addEventListener = function (type, fn, options) {
    if (fn && !(this instanceof AbortSignal) && fromTimeline()) {
      const c = capture(options);
      const signal = options && typeof options === "object" ? options.signal : null;
      if (!(signal && signal.aborted) && !find(this, type, fn, c)) {
        const rec = {target: this, type, fn, c};
        live.push(rec);
        if (signal) add.call(signal, "abort", () => drop(rec), {once: true});
      }
    }
    return add.call(this, type, fn, options);
  };
  EventTarget.prototype.removeEventListener = function (type, fn, options) {
    const c = capture(options);
    const rec = find(this, type, fn, c);
    if (rec) drop(rec);
    return remove.call(this, type, fn, options);
  };
  const observed = new Map();   // observer -> Set of targets
  const Native = window.ResizeObserver;
  window.ResizeObserver = class extends Native {
    constructor(cb) { super(cb); if (fromTimeline()) observed.set(this, new Set()); }
    observe(t, o) { if (observed.has(this)) observed.get(this).add(t); return super.observe(t, o); }
    unobserve(t) { if (observed.has(this)) observed.get(this).delete(t); return super.unobserve(t); }
    disconnect() { if (observed.has(this)) observed.get(this).clear(); return super.disconnect(); }
  };
  const intervals = new Set(), frames = new Set();
  const setI = window.setInterval, clearI = window.clearInterval;
  window.setInterval = function (...a) {
    const id = setI.apply(this, a);
    if (fromTimeline()) intervals.add(id);
    return id;
  };
  window.clearInterval = function (id) { intervals.delete(id); return clearI.call(this, id); };
  const raf = window.requestAnimationFrame, caf = window.cancelAnimationFrame;
  window.requestAnimationFrame = function (cb) {
    if (!fromTimeline()) return raf.call(this, cb);
    const id = raf.call(this, (t) => { frames.delete(id); cb(t); });
    frames.add(id);
    return id;
  };
  window.cancelAnimationFrame = function (id) { frames.delete(id); return caf.call(this, id); };
  window.__adLive = () => ({
    window: live.filter(r => r.target === window).length,
    listeners: live.length,
    observed: Array.from(observed.values()).reduce((n, s) => n + s.size, 0),
    intervals: intervals.size,
    frames: frames.size,
  });
})();"""

# The handlers views registered on the model (anywidget's model.on passes the view as
# context), counted on the Backbone model behind every stepper view in the notebook (Lab's
# output area -> widget renderer -> view -> model), plus how many views. Handlers without
# a context are left out: ipywidgets 8.1's DOMWidgetView adds one (msg:custom, for focus
# and blur) per view and never removes it, whatever the widget does.
MODEL_HANDLERS_JS = """() => {
  const models = new Set();
  for (const cell of window.jupyterapp.shell.currentWidget.content.widgets) {
    for (const child of (cell.outputArea ? cell.outputArea.widgets : [])) {
      for (const w of child.widgets || []) {
        for (const v of w.widgets || []) {
          if (v._view && v._view.el.querySelector('.ad-timeline')) models.add(v._view.model);
        }
      }
    }
  }
  let handlers = 0;
  for (const m of models) {
    for (const list of Object.values(m._events || {})) handlers += list.filter(e => e.ctx !== m).length;
  }
  return {models: models.size, handlers,
          timelines: document.querySelectorAll('.ad-backward-stepper .ad-timeline').length};
}"""

RERENDER_CELLS = [
    "from ad_magic import Tensor\nfrom ad_magic.widgets import BackwardStepper\n"
    "x = Tensor(2.0, name='x')\nstepper = BackwardStepper(x * x + 3 * x, forward=True)\n",
    "stepper\n",
    # a new payload (one more key, which the browser ignores): the view mounts the timeline again
    "stepper.data = {**stepper.data, 'version': stepper.data.get('version', 0) + 1}\n",
]
RENDERS = 20


def _settled_counts(page) -> dict:
    page.locator(".ad-backward-stepper .ad-timeline").first.wait_for(state="visible")
    e2e.next_frames(page)               # the first frame (fit) has run
    return {**page.evaluate("() => window.__adLive()"), **page.evaluate(MODEL_HANDLERS_JS)}


def test_rerendering_the_stepper_20_times_leaves_no_listener_behind(lab, page):
    """Lab: display the same stepper again (re-run its cell) 20 times, Play running in the
    view being replaced, and give it a new payload (a remount) 20 times: the live window
    listeners, all listeners, ResizeObserver targets, intervals, animation frames and the
    model's handlers stay what one view has."""
    page.add_init_script(LISTENER_COUNTER_JS)
    e2e.write_notebook(lab.root_dir / "_e2e_rerender.ipynb", RERENDER_CELLS)
    e2e.open_notebook(page, lab, "_e2e_rerender.ipynb")
    e2e.run_cell(page, 0)
    e2e.run_cell(page, 1)
    one = _settled_counts(page)
    print("one view:", one)
    assert one["timelines"] == 1 and one["models"] == 1
    # the counter sees the timeline's own listeners, observer and model handlers
    assert one["window"] >= 3 and one["listeners"] > one["window"] and one["observed"] == 1, one
    assert one["handlers"] >= 2, one

    for _ in range(RENDERS):
        page.locator(".ad-backward-stepper .ad-play").click()     # an interval running
        e2e.run_cell(page, 1)                                        # the view replaced by a new one
    again = _settled_counts(page)
    print(f"after {RENDERS} renders:", again)
    page.locator(".ad-backward-stepper .ad-play").click()
    page.evaluate("() => { document.querySelector('.ad-backward-stepper .ad-timeline').dataset.old = '1'; }")
    for _ in range(RENDERS):
        e2e.run_cell(page, 2)                                        # a new payload: mounted again
    remounted = _settled_counts(page)
    assert page.locator(".ad-backward-stepper .ad-timeline[data-old]").count() == 0, "not mounted again"
    print(f"after {RENDERS} remounts:", remounted)
    e2e.save_screenshot(page, "e2e-rerendered-stepper.png")
    assert again == one, f"after {RENDERS} renders {again}, with one view {one}"
    assert remounted == one, f"after {RENDERS} remounts {remounted}, with one view {one}"
    # and the last view still works
    timeline = page.locator(".ad-backward-stepper .ad-timeline")
    timeline.locator(".ad-next").click()
    assert e2e.timeline_state(timeline)["step"] == 1
