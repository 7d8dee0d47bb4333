"""Helpers for the real-browser test: an isolated JupyterLab on 127.0.0.1 driven by
Debian's Chromium through Playwright (sync API).

The session's one server and browser are the fixtures ``lab_server`` and ``chromium`` of
tests/conftest.py: a browser test takes them (a test that starts Playwright itself would
collide with the session's instance) and opens its own context and notebook.

What this guards against: no downloaded browser,
no network beyond 127.0.0.1 (every other request is aborted and recorded), a kernel
websocket before any cell runs, teardown that kills only the processes we started
(by PID), and an outer watchdog in case Playwright's own timeouts do not fire.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# How long a browser test waits for something that will happen (a cell run, a kernel
# shut down, a widget redrawn): waits end on the event, so a generous limit costs nothing
# on an idle machine and keeps a loaded one from failing.
LONG_MS = 180_000
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("AD_MAGIC_CHROMIUM", "/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Stops Chromium's own DNS look-ups of Google hosts: only 127.0.0.1 resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


# ------------------------------------------------------------------ requirements
def require_browser_stack() -> None:
    """Skip (or, with CI set, fail) when Chromium, Playwright or JupyterLab is missing."""
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium; "
                       "`python3 dev.py test` does it when run as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package is not installed (pip install -e '.[test]')")
    try:
        import ipykernel  # noqa: F401
        import jupyterlab  # noqa: F401
    except ImportError:
        missing.append("jupyterlab/ipykernel are not installed (pip install -e '.[test]')")
    if not missing:
        return
    reason = "browser test cannot run: " + "; ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(reason + " [CI is set, so this is a failure, not a skip]", pytrace=False)
    pytest.skip(reason)


# ------------------------------------------------------------------- processes
def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, starttime) for every process we can see."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        # fields after comm: state ppid ... starttime is field 22 overall (index 19 here)
        table[int(entry)] = (int(rest[1]), rest[19])
    return table


def descendants(pid: int) -> dict[int, str]:
    """All live descendants of pid: {pid: starttime} (starttime guards against PID reuse)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for p, (pp, _) in table.items():
        children.setdefault(pp, []).append(p)
    out, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        if p in out or p not in table:
            continue
        out[p] = table[p][1]
        todo.extend(children.get(p, []))
    return out


def kill_recorded(pids: dict[int, str]) -> list[int]:
    """SIGKILL the recorded processes still alive (same start time => same process)."""
    killed = []
    table = _proc_table()
    for pid, start in pids.items():
        if pid in table and table[pid][1] == start:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------- server
class LabServer:
    """JupyterLab on 127.0.0.1, a free port, a random token, every dir isolated.

    The python3 kernel is this interpreter (sys.executable), through a kernelspec in
    a private JUPYTER_PATH that shadows any other python3 spec.
    """

    def __init__(self, root_dir: Path, base: Path):
        self.root_dir = Path(root_dir)
        self.base = Path(base)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base / "jupyter-server.log"
        self._pids: dict[int, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        b = self.base
        dirs = {
            "HOME": b / "home",
            "JUPYTER_CONFIG_DIR": b / "config",
            "JUPYTER_DATA_DIR": b / "data",
            "JUPYTER_RUNTIME_DIR": b / "runtime",
            "IPYTHONDIR": b / "ipython",
            "JUPYTERLAB_SETTINGS_DIR": b / "lab-settings",
            "JUPYTERLAB_WORKSPACES_DIR": b / "lab-workspaces",
            "JUPYTER_PATH": b / "jupyter-path",
        }
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        settings = dirs["JUPYTERLAB_SETTINGS_DIR"]
        _write_json(settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
                    {"fetchNews": "false", "checkForUpdates": False})
        # Every cell stays attached to the DOM, so locators see all of them.
        _write_json(settings / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings",
                    {"windowingMode": "none"})
        _write_json(dirs["JUPYTER_PATH"] / "kernels/python3/kernel.json", {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (test)",
            "language": "python",
        })
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
        env.update({k: str(v) for k, v in dirs.items()})
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        # Matplotlib must not pick an interactive backend or write to a real HOME.
        env["MPLCONFIGDIR"] = str(b / "mpl")
        return env

    def start(self, timeout: float = 90) -> LabServer:
        cmd = [
            sys.executable, "-m", "jupyterlab",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.open_browser=False",
            "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            # window.jupyterapp: run-all and read the notebook model without menus.
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",   # the same for Notebook 7 (/notebooks/...)
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        env = self.env()
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root_dir, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self._req("/api/status"), timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{self.log_tail()}")

    def _req(self, path: str, method: str = "GET") -> urllib.request.Request:
        return urllib.request.Request(self.url + path, method=method,
                                      headers={"Authorization": f"token {self.token}"})

    def record_children(self) -> None:
        """Note the server's descendants (kernels live in their own process groups)."""
        if self.proc is not None and self.proc.poll() is None:
            self._pids.update(descendants(self.proc.pid))

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.record_children()
        if self.proc.poll() is None:
            try:
                urllib.request.urlopen(self._req("/api/shutdown", "POST"), timeout=5).close()
            except (urllib.error.URLError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        kill_recorded(self._pids)
        self._log.close()
        self.proc = None

    def kill_now(self) -> None:
        """Watchdog path: kill the server and its recorded children at once."""
        if self.proc is None:
            return
        self.record_children()
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        kill_recorded(self._pids)

    def shutdown_kernel(self, kernel_id: str) -> None:
        """Shut a kernel down through the server's REST API (as the Kernel menu does)."""
        req = self._req(f"/api/kernels/{urllib.parse.quote(kernel_id)}", "DELETE")
        urllib.request.urlopen(req, timeout=30).close()

    def kernel_ids(self) -> list[str]:
        with urllib.request.urlopen(self._req("/api/kernels"), timeout=10) as r:
            return [k["id"] for k in json.loads(r.read())]

    def notebook7_url(self, relpath: str) -> str:
        """The same notebook in Notebook 7's own page."""
        return f"{self.url}/notebooks/{urllib.parse.quote(relpath)}?token={self.token}"

    def notebook_url(self, relpath: str) -> str:
        """A fresh, unique workspace per page: Lab would otherwise restore the tabs
        (and kernels) of the previous test's page."""
        ws = "e2e-" + secrets.token_hex(6)
        return (f"{self.url}/lab/workspaces/{ws}/tree/{urllib.parse.quote(relpath)}"
                f"?token={self.token}")


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A v4 notebook of code cells, with python3 kernelspec metadata (no kernel picker)."""
    nb = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {"cell_type": "code", "id": f"cell{i}", "metadata": {}, "execution_count": None,
             "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))
    return path


# ---------------------------------------------------------------------- browser
class NetworkGuard:
    """Abort every request whose host is not 127.0.0.1 and remember it."""

    def __init__(self):
        self.blocked: list[str] = []

    def install(self, context) -> None:
        context.route("**/*", self._handle)

    def _handle(self, route) -> None:
        url = route.request.url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


class Watchdog:
    """Outer timeout: after `seconds`, kill the server tree and the browser processes
    that descend from this test process, so any blocked Playwright call raises."""

    def __init__(self, seconds: float, server: LabServer):
        self.fired = False
        self._server = server
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        print("\n[e2e] watchdog fired: killing the server and browser", file=sys.stderr)
        self._server.kill_now()
        for pid, start in descendants(os.getpid()).items():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmdline = fh.read()
            except OSError:
                continue
            if b"chrom" in cmdline or b"playwright" in cmdline:
                kill_recorded({pid: start})

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


def launch_browser(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                              timeout=60_000)


def open_notebook(page, server: LabServer, relpath: str, timeout_ms: int = LONG_MS, *,
                  notebook7: bool = False) -> None:
    """Open a notebook (in JupyterLab, or with ``notebook7`` in Notebook 7) and wait until
    its kernel is connected and idle.

    Shift+Enter / run-all before the kernel websocket exists does nothing, and Lab's
    status reads "idle" before a kernel exists: wait for the websocket first.
    """
    url = server.notebook7_url(relpath) if notebook7 else server.notebook_url(relpath)
    with page.expect_websocket(lambda ws: "/api/kernels/" in ws.url, timeout=timeout_ms):
        page.goto(url, timeout=timeout_ms)
    if not notebook7:
        # attached, not visible: in a narrow window Lab moves the indicator into the toolbar's overflow
        page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', state="attached",
                               timeout=timeout_ms)
    page.wait_for_function(
        """(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                   const k = w && w.context && w.context.path === path && w.sessionContext
                             && w.sessionContext.session && w.sessionContext.session.kernel;
                   return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }""",
        arg=relpath, timeout=timeout_ms)


_NB_STATE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    const src = c.sharedModel.getSource();
    const outputs = c.outputs.toJSON();
    const errors = outputs.filter(o => o.output_type === 'error')
                          .map(o => o.ename + ': ' + o.evalue);
    out.push({index: i, source: src, count: c.executionCount, errors});
  }
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return {cells: out, kernel: k ? k.status : 'none'};
}"""


def notebook_state(page) -> dict:
    return page.evaluate(_NB_STATE_JS)


def run_all_cells(page, timeout_s: float = 180, nudge_after_s: float = 15) -> dict:
    """Run every cell (Lab's own run-all command) and wait until all code cells have an
    execution count and the kernel is idle. Fails on the first error output.

    If nothing at all has started after `nudge_after_s` (the command was swallowed
    because the kernel was not attached yet), run-all is issued once more."""
    run = "() => window.jupyterapp.commands.execute('notebook:run-all-cells')"
    page.evaluate(run)
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    idle_since = None
    nudged = False
    while True:
        st = notebook_state(page)
        errs = [(c["index"], e) for c in st["cells"] for e in c["errors"]]
        if errs:
            raise AssertionError(f"cell errors in the browser: {errs}")
        code = [c for c in st["cells"] if c["source"].strip()]
        todo = [c for c in code if c["count"] is None]
        if not todo and st["kernel"] == "idle":
            if idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 0.5:
                return st
        else:
            idle_since = None
        if (not nudged and len(todo) == len(code) and st["kernel"] == "idle"
                and time.monotonic() - t0 > nudge_after_s):
            print(f"[e2e] run-all started nothing in {nudge_after_s} s: issuing it again")
            nudged = True
            page.evaluate(run)
        if time.monotonic() > deadline:
            raise AssertionError(f"cells did not finish within {timeout_s} s: "
                                 f"kernel={st['kernel']}, pending={[c['index'] for c in todo]}")
        time.sleep(0.2)


def run_cell(page, index: int, timeout_ms: int = LONG_MS) -> None:
    """Run one cell (Lab's run-cell command) and wait until it has run: its execution count
    changed and the kernel is idle."""
    before = notebook_state(page)["cells"][index]["count"]
    page.evaluate("""(i) => { const w = window.jupyterapp.shell.currentWidget;
                             w.content.activeCellIndex = i;
                             return window.jupyterapp.commands.execute('notebook:run-cell'); }""", index)
    page.wait_for_function("""([i, before]) => { const w = window.jupyterapp.shell.currentWidget;
                                 const c = w.content.model.cells.get(i);
                                 const k = w.sessionContext.session.kernel;
                                 return c.executionCount !== before && k.status === 'idle'; }""",
                           arg=[index, before], timeout=timeout_ms)


def next_frames(page, frames: int = 2) -> None:
    """Wait until the page has drawn ``frames`` more animation frames: whatever a widget
    scheduled for its next frame (fitting its picture) has run, however busy the machine."""
    page.evaluate("""(n) => new Promise((done) => {
                       const tick = () => (n-- <= 0 ? done() : requestAnimationFrame(tick));
                       requestAnimationFrame(tick); })""", frames)


def cell_locator(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def drag_slider(page, slider_root, fraction: float | None = None) -> float:
    """A real mouse drag of the noUiSlider handle to `fraction` of the track (default:
    towards the far end from where the handle is). Returns the fraction used."""
    handle = slider_root.locator(".noUi-handle").first
    track = slider_root.locator(".noUi-target").first
    handle.scroll_into_view_if_needed()
    hb, tb = handle.bounding_box(), track.bounding_box()
    assert hb and tb, "slider not laid out"
    if fraction is None:
        now = (hb["x"] + hb["width"] / 2 - tb["x"]) / max(tb["width"], 1)
        fraction = 0.1 if now > 0.5 else 0.9
    y = hb["y"] + hb["height"] / 2
    page.mouse.move(hb["x"] + hb["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(tb["x"] + fraction * tb["width"], y, steps=12)
    page.mouse.up()
    return fraction


_SNAPSHOT_JS = """async (root) => {
  const decode = (src) => {
    const i = src.indexOf(','); const meta = src.slice(0, i); const body = src.slice(i + 1);
    if (meta.includes(';base64')) {
      const bin = atob(body);
      return new TextDecoder().decode(Uint8Array.from(bin, ch => ch.charCodeAt(0)));
    }
    return decodeURIComponent(body);
  };
  const svgs = [], images = [];
  for (const el of root.querySelectorAll('svg, img')) {
    if (el.tagName.toLowerCase() === 'svg') {
      if (el.parentElement && el.parentElement.closest('svg')) continue;
      svgs.push(el.outerHTML);
    } else {
      const src = el.getAttribute('src') || '';
      if (src.startsWith('data:image/svg+xml')) svgs.push(decode(src));
      else if (src.startsWith('blob:')) {
        try {
          const blob = await (await fetch(src)).blob();
          if ((blob.type || '').includes('svg')) svgs.push(await blob.text());
          else images.push(src + ':' + blob.size);
        } catch (e) { images.push(src); }
      } else images.push(src.slice(0, 64) + ':' + src.length + ':' + src.slice(-64));
    }
  }
  const readouts = Array.from(root.querySelectorAll('.widget-readout'))
                        .map(e => e.value !== undefined && e.value !== '' ? e.value : e.textContent);
  return {svgs, images, text: root.innerText, readouts};
}"""


def snapshot(locator) -> dict:
    """What a widget shows: its SVGs (inline, data-URI or blob <img>), other images,
    visible text and slider readouts."""
    return locator.evaluate(_SNAPSHOT_JS)


def wait_for_change(locator, before: dict, timeout_s: float = LONG_MS / 1000,
                    key=lambda s: (s["svgs"], s["images"], s["text"])) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        now = snapshot(locator)
        if key(now) != key(before):
            # let a burst of updates settle
            time.sleep(0.4)
            return snapshot(locator)
        if time.monotonic() > deadline:
            return now
        time.sleep(0.2)


_HIGHLIGHT_CLASSES = {"ad-current", "current", "highlight", "highlighted", "active"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def highlighted_nodes(svg_text: str, fills: tuple = ()) -> list[str]:
    """Titles (or text) of the SVG groups marked as highlighted: a class ad-current
    (or current/highlight/highlighted/active), a data-current attribute, or a Graphviz
    node group (<g class="node">) whose shape is filled with one of `fills`."""
    try:
        root = ET.fromstring(svg_text)
    except ET.ParseError:
        return []
    fills = {f.lower() for f in fills}
    found = []
    for el in root.iter():
        if _local(el.tag) != "g" and not el.get("class"):
            continue
        classes = set((el.get("class") or "").split())
        hit = bool(classes & _HIGHLIGHT_CLASSES) or el.get("data-current") not in (None, "false")
        if not hit and fills and "node" in classes:
            hit = any((sub.get("fill") or "").lower() in fills for sub in el.iter()
                      if _local(sub.tag) in ("rect", "ellipse", "polygon", "path", "circle"))
        if hit:
            title = next((sub.text.strip() for sub in el.iter()
                          if _local(sub.tag) == "title" and sub.text), None)
            found.append(title or " ".join(t.strip() for t in el.itertext() if t.strip()))
    return found


def save_screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def make_base_dir(prefix: str = "ad_magic-e2e-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ the timeline widget
_TIMELINE_STATE_JS = """(el) => ({
  step: Number(el.dataset.step),
  label: el.querySelector('.ad-label').textContent,
  caption: el.querySelector('.ad-caption').textContent,
  current: Array.from(el.querySelectorAll('svg g.ad-current > title')).map(t => t.textContent),
  svg: el.querySelector('.ad-viewport svg').outerHTML,
  card: el.querySelector('.ad-card').hidden ? null : el.querySelector('.ad-card').innerText,
})"""


def timeline_state(locator) -> dict:
    """What an ad_magic timeline (widget or exported page) shows: its step, label,
    caption, the highlighted nodes' DOT names, its SVG and the open card's text."""
    return locator.evaluate(_TIMELINE_STATE_JS)


def drag_range(page, range_locator, fraction: float) -> None:
    """A real mouse drag of a native <input type="range"> thumb to `fraction` of its track."""
    range_locator.scroll_into_view_if_needed()
    box = range_locator.bounding_box()
    assert box, "range input not laid out"
    now = range_locator.evaluate("(r) => (r.value - r.min) / Math.max(1, r.max - r.min)")
    thumb = 8  # half of Chromium's thumb: its centre runs from 8 px to width - 8 px
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + thumb + now * (box["width"] - 2 * thumb), y)
    page.mouse.down()
    page.mouse.move(box["x"] + thumb + fraction * (box["width"] - 2 * thumb), y, steps=10)
    page.mouse.up()
