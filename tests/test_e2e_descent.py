"""End to end in a real browser: a race of optimizers in JupyterLab, its learning-rate
slider dragged with the mouse, and the path it draws read back changed.

Uses tests/e2e_support.py (Debian's Chromium through Playwright, JupyterLab on
127.0.0.1, no other network). Skips when a piece is missing, except with CI set.
"""
from __future__ import annotations

import re
import textwrap

import pytest

try:  # tests/ may or may not become a package
    from . import e2e_support as e2e
except ImportError:
    import e2e_support as e2e

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(360)]

TEST_TIMEOUT = 240  # seconds, the watchdog's outer limit

RACE_CELLS = [
    "%load_ext ad_magic\nfrom ad_magic import Tensor\nfrom ad_magic.landscapes import rosenbrock\n",
    textwrap.dedent('''\
        %%autodiff --descent --optimizer sgd,adam --lr 0.001 --steps 60
        x = Tensor(-1.5)
        y = Tensor(2.0)
        loss = rosenbrock(x, y)
    '''),
]


def sgd_loss(text):
    """The loss the label shows for sgd at the current iteration."""
    found = re.search(r"sgd\s+(\S+)\s+·", text)
    return found and found.group(1)


def test_dragging_the_lr_slider_reruns_the_race_and_the_path_changes(lab_server, chromium):
    server = lab_server
    e2e.write_notebook(server.root_dir / "_e2e_race.ipynb", RACE_CELLS)
    guard = e2e.NetworkGuard()
    with e2e.Watchdog(TEST_TIMEOUT, server) as dog:
        context = chromium.new_context(viewport={"width": 1400, "height": 1100})
        context.set_default_timeout(e2e.LONG_MS)
        guard.install(context)
        page = context.new_page()
        try:
            e2e.open_notebook(page, server, "_e2e_race.ipynb")
            e2e.run_all_cells(page)
            explorer = page.locator(".jp-OutputArea .ad-descent-explorer").first
            explorer.wait_for(state="visible")
            pictures = {"key": lambda s: s["images"]}    # the race's PNG (the graph is inline SVG)

            # go to a late iteration, where the paths have moved away from the start
            iteration = explorer.locator(".widget-slider").first
            before = e2e.snapshot(explorer)
            assert before["images"], "the race shows no picture"
            e2e.drag_slider(page, iteration, 0.95)
            e2e.wait_for_change(explorer, before, **pictures)
            label = explorer.locator(".widget-html").first
            shown = e2e.snapshot(label)["text"]
            assert re.search(r"iteration (\d+)", shown) and sgd_loss(shown), shown

            lr = explorer.locator(".ad-optimizer-sgd .ad-hyper-lr").first
            lr_before = e2e.snapshot(lr)["readouts"]
            before = e2e.snapshot(explorer)
            e2e.drag_slider(page, lr, 0.66)             # 1e-3 -> about 2e-3: a longer path
            after = e2e.wait_for_change(explorer, before, **pictures)
            e2e.save_screenshot(page, "e2e-descent-race.png")
            assert after["images"] != before["images"], "the race's picture did not change"
            readout = e2e.snapshot(lr)["readouts"]
            assert readout != lr_before, "the lr readout did not move"
            # the slider's readout (d3-format in the browser) and the header (Python) agree
            header = e2e.snapshot(explorer.locator(".ad-descent-header").first)["text"]
            assert f"lr={readout[0].strip()}" in header, (readout, header)
            now = e2e.snapshot(label)["text"]
            assert sgd_loss(now) and sgd_loss(now) != sgd_loss(shown), (shown, now)
            errors = [e for c in e2e.notebook_state(page)["cells"] for e in c["errors"]]
            assert not errors, errors
        finally:
            try:
                e2e.save_screenshot(page, "e2e-descent-race-last.png")
            except Exception:
                pass
            server.record_children()
            context.close()
    assert not dog.fired, f"watchdog fired after {TEST_TIMEOUT} s"
    assert not guard.blocked, f"requests to hosts other than 127.0.0.1: {guard.blocked}"
