"""Slider-to-paint time of the timeline in a real browser (Debian's Chromium, Playwright).

    python benchmarks/bench_browser.py [--moves 60] [--sizes 100,1000]

For scalar-MLP graphs of about 100 and 1,000 value nodes, writes the stepper's page
(``BackwardStepper(..., forward=True).save_html``: the same script as the widget), opens
it from ``file://`` and moves the native range input from script: the time from setting
its value (an ``input`` event, as a drag fires) until the frame after it has been painted
(``requestAnimationFrame`` then a task: the restyle, the wait for the next frame, its
style, layout and paint), and the restyle script alone. Single steps (Next) and random
jumps are timed separately; medians and 95th percentiles over ``--moves`` moves.
Targets: under 16 ms at 100 nodes, under 50 ms at 1,000. Skips, saying why, without Chromium or
Playwright. Not part of the test suite (no timing assertions there).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common

CHROMIUM = os.environ.get("AD_MAGIC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

_MOVE_JS = """async (target) => {
  const range = document.querySelector('.ad-range');
  const t0 = performance.now();
  range.value = String(target);
  range.dispatchEvent(new Event('input', {bubbles: true}));
  const restyled = performance.now() - t0;
  await new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)));
  const painted = performance.now() - t0;
  if (Number(document.querySelector('.ad-timeline').dataset.step) !== target) throw new Error('not moved');
  return [painted, restyled];
}"""


def _only(uri):
    """A route handler letting the page itself through and aborting anything else."""
    def handle(route):
        if route.request.url == uri:
            route.continue_()
        else:
            route.abort()
    return handle


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def measure(page, last: int, moves: int, rng: random.Random) -> dict:
    page.evaluate(_MOVE_JS, 0)
    steps, jumps = [], []
    k = 0
    for _ in range(moves):            # Next, Next, …: one step at a time (wrapping round)
        k = k + 1 if k < last else 0
        steps.append(page.evaluate(_MOVE_JS, k))
    for _ in range(moves):            # anywhere to anywhere
        k = rng.randint(0, last)
        jumps.append(page.evaluate(_MOVE_JS, k))
    return {"step": steps, "jump": jumps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=60)
    ap.add_argument("--sizes", default="100,1000")
    args = ap.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        print(f"bench_browser: skipped, no Chromium at {CHROMIUM}")
        return 0
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("bench_browser: skipped, the playwright package is not installed")
        return 0
    from ad_magic.engine import topological_order
    from ad_magic.widgets.stepper import BackwardStepper

    rows = []
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            for n in (int(s) for s in args.sizes.split(",")):
                loss = _common.mlp_graph(n, backward=False)
                nodes = len(topological_order(loss))
                t0 = time.perf_counter()
                stepper = BackwardStepper(loss, forward=True, max_nodes=max(nodes, 300))
                build_s = time.perf_counter() - t0
                path = stepper.save_html(Path(tmp) / f"timeline-{n}.html")
                size_kib = path.stat().st_size / 1024
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.route("**/*", _only(path.as_uri()))
                t0 = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_selector(".ad-timeline svg")
                page.evaluate("() => new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)))")
                load_ms = (time.perf_counter() - t0) * 1000
                times = measure(page, stepper.n_steps, args.moves, rng)
                page.close()
                for kind, label in (("step", "one step (Next)"), ("jump", "random jump")):
                    v = [painted for painted, _ in times[kind]]
                    script = [restyled for _, restyled in times[kind]]
                    rows.append([f"{nodes}", f"{stepper.n_steps + 1}", label, f"{statistics.median(v):.2f}",
                                 f"{percentile(v, 0.95):.2f}", f"{max(v):.2f}", f"{statistics.median(script):.2f}",
                                 f"{load_ms:.0f}", f"{build_s:.2f}", f"{size_kib:.0f}"])
        finally:
            browser.close()
    info = _common.machine_info()
    print(f"Slider-to-paint in Chromium ({info.get('cpu', '?')}, {args.moves} moves of each kind)\n")
    print(_common.md_table(["value nodes", "states", "move", "to paint: median ms", "p95 ms", "max ms",
                            "restyle script: median ms", "page load ms", "Python build s", "page KiB"], rows))
    print("\n'to paint' runs from setting the range input's value to the task after the next animation "
          "frame, so it includes waiting for that frame (up to 16.7 ms at 60 Hz); 'restyle script' is the "
          "input handler alone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
