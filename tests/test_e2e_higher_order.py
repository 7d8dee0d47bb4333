"""The two timelines beyond reverse mode in a real browser: forward mode (``--mode
forward``) and the graph of the gradient (``--order 2``), each exported as the stepper's
self-contained page, opened from file:// in Debian's Chromium with every other request
aborted; dragging the range input restyles the graph, and the boxes show what the mode
carries (tangents in forward mode).

Skips when Chromium or Playwright is missing (as tests/test_e2e_browser.py), except with CI set.
"""
from __future__ import annotations

import pytest

try:  # tests/ may or may not become a package
    from . import e2e_support as e2e
except ImportError:
    import e2e_support as e2e

from ad_magic import Tensor
from ad_magic.engine.functional import grad
from ad_magic.widgets.forward_mode import ForwardModeTimeline
from ad_magic.widgets.stepper import BackwardStepper

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def browser(chromium):
    """The session's one Chromium (tests/conftest.py): a second Playwright would collide with it."""
    return chromium


def step_through(browser, path):
    """Open the page, drag to the end: (state at step 0, state at the end, page errors, requests)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    requests, errors = [], []

    def guard(route):
        if route.request.url == path.as_uri():
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()
    context.route("**/*", guard)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(path.as_uri())
        timeline = page.locator(".ad-timeline")
        timeline.wait_for(state="visible")
        before = e2e.timeline_state(timeline)
        e2e.drag_range(page, timeline.locator(".ad-range"), 1.0)
        after = e2e.timeline_state(timeline)
    finally:
        context.close()
    return before, after, errors, requests


def test_forward_mode_steps_in_the_browser(browser, tmp_path):
    x, y = Tensor(2.0, name="x"), Tensor(3.0, name="y")
    out = x * y + x.exp()
    stepper = BackwardStepper(out, timeline=ForwardModeTimeline(out, names={out: "L"}))
    before, after, errors, requests = step_through(browser, stepper.save_html(tmp_path / "forward.html"))
    assert errors == [] and requests == []
    assert before["step"] == 0 and after["step"] == stepper.n_steps
    assert after["svg"] != before["svg"]
    assert "tangent 2.0" in after["svg"] and ">grad " not in after["svg"]
    assert "pass 2/2" in after["label"] and "Forward mode took 2 passes" in after["caption"]


def test_the_graph_of_the_gradient_steps_in_the_browser(browser, tmp_path):
    x = Tensor(1.5, name="x")
    (first,) = grad(x ** 3, x, create_graph=True)
    stepper = BackwardStepper(first, names={first: "∂y/∂x"}, forward=True)
    before, after, errors, requests = step_through(browser, stepper.save_html(tmp_path / "order2.html"))
    assert errors == [] and requests == []
    assert after["step"] == stepper.n_steps and after["svg"] != before["svg"]
    assert "grad 9.0" in after["svg"]          # x's grad at the end: d²(x³)/dx² = 6x = 9
