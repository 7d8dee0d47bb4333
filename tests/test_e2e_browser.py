"""End to end in a real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven by
Playwright, a slider moved with the mouse, and the SVG it drives read back.

Skips when Chromium, Playwright or JupyterLab is missing — except with CI set, where
a missing piece is a failure. Select with `-m e2e`, leave out with `-m "not e2e"`.
"""
from __future__ import annotations

import re
import shutil
import textwrap

import pytest

try:  # tests/ may or may not become a package
    from . import e2e_support as e2e
except ImportError:
    import e2e_support as e2e

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

NOTEBOOKS = e2e.ROOT / "notebooks"
PRACTICAL = "tp04_autodiff.ipynb"
TEST_TIMEOUT = 300  # seconds, the watchdog's outer limit for one test


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lab():
    """One isolated Lab server for the module, serving a temp copy of notebooks/
    (Lab autosaves: the repo's notebooks are never written)."""
    e2e.require_browser_stack()
    base = e2e.make_base_dir()
    root = base / "root"
    if NOTEBOOKS.is_dir():
        shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    root.mkdir(parents=True, exist_ok=True)
    server = e2e.LabServer(root, base / "jupyter")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        log = server.log_tail(200)
        e2e.ARTIFACTS.mkdir(exist_ok=True)
        (e2e.ARTIFACTS / "jupyter-server.log").write_text(log)
        e2e.remove_tree(base)


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = e2e.launch_browser(pw)
        try:
            yield b
        finally:
            b.close()


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
HAVE_WIDGETS = (e2e.ROOT / "ad_magic" / "widgets.py").exists()

FALLBACK_CELLS = [
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


def _highlight_fills() -> tuple:
    """The fill GraphView uses for the node whose _backward runs (if it says)."""
    try:
        from ad_magic.graph import HIGHLIGHT
        return (HIGHLIGHT[0],)
    except Exception:
        return ()


@pytest.mark.skipif(not HAVE_WIDGETS, reason="ad_magic/widgets.py does not exist yet")
def test_lab_backward_stepper_and_descent(lab, page):
    """The practical in Lab: run every cell, drag a BackwardStepper's slider (the SVG
    changes and its highlighted node moves), drag a DescentExplorer's slider (the shown
    iteration changes)."""
    if (lab.root_dir / PRACTICAL).exists():
        nb = PRACTICAL
    else:
        nb = "_e2e_autodiff.ipynb"
        e2e.write_notebook(lab.root_dir / nb, FALLBACK_CELLS)
    e2e.open_notebook(page, lab, nb)
    e2e.run_all_cells(page, timeout_s=240)
    page.locator(".widget-slider .noUi-handle").first.wait_for(state="visible")

    # BackwardStepper --------------------------------------------------------
    stepper = _widget_roots(page, ".jp-OutputArea", "ad-backward-stepper",
                            ("BackwardStepper", "%%autodiff"))
    assert stepper is not None, "no BackwardStepper with a slider found in the notebook"
    slider = stepper.locator(".widget-slider").first
    slider.scroll_into_view_if_needed()
    before = e2e.snapshot(stepper)
    assert before["svgs"], "the BackwardStepper shows no SVG (inline or <img>)"
    e2e.drag_slider(page, slider)
    after = e2e.wait_for_change(stepper, before)
    e2e.save_screenshot(page, "e2e-backward-stepper.png")
    assert after["svgs"] != before["svgs"], "the stepper's SVG did not change after the drag"
    assert after["readouts"] != before["readouts"], "the stepper's slider readout did not move"
    step = re.compile(r"step\s+(\d+)", re.I)
    st_b, st_a = step.findall(before["text"]), step.findall(after["text"])
    print(f"step shown: {st_b} -> {st_a}")
    assert st_a and st_a != st_b, f"the stepper's 'step N' label went {st_b} -> {st_a}"
    fills = _highlight_fills()
    hl_before = [h for s in before["svgs"] for h in e2e.highlighted_nodes(s, fills)]
    hl_after = [h for s in after["svgs"] for h in e2e.highlighted_nodes(s, fills)]
    print(f"highlighted node: {hl_before} -> {hl_after}")
    assert hl_after, ("no highlighted node in the stepper's SVG after the drag (looked for "
                      f"class ad-current/highlight or a node filled with {fills})")
    assert hl_before != hl_after, f"the highlighted node stayed {hl_after}"

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
