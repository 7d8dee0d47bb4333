#!/usr/bin/env python3
"""ad_magic's commands. Everything goes into ./.venv; nothing is installed globally.

    python3 dev.py lab                 set up .venv and start JupyterLab on notebooks/ (127.0.0.1)
    python3 dev.py test [pytest args]  set up .venv (+ Debian's chromium), run `ruff check .`, `lint-imports` and pytest
                                       (on every core with pytest-xdist); pytest's own options pass through
    python3 dev.py test --quick [...]  the same without the browser, notebook and wheel tests (a minute or two)
    python3 dev.py bench [args]        set up .venv with the benchmark peers and run benchmarks/run.py
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
# The kernel `dev.py lab` installs. The notebooks' metadata says the same, so Lab opens them unchanged.
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


def say(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def setup(extra: str) -> None:
    """`python3 -m venv .venv` when it is missing or broken, then `pip install -e '.[extra]'` (the extras
    are in pyproject.toml), skipped while .venv/.installed-EXTRA is newer than pyproject.toml."""
    marker = VENV / f".installed-{extra}"
    if PY.exists() and marker.exists() and marker.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime:
        return
    if not PY.exists() or subprocess.call([str(PY), "-c", "import pip"], stderr=subprocess.DEVNULL) != 0:
        say(f"creating .venv with {sys.executable} (Python {sys.version.split()[0]})")
        if subprocess.call([sys.executable, "-m", "venv", "--clear", "--upgrade-deps", str(VENV)]) != 0:
            sys.exit("[dev] error: `python3 -m venv .venv` failed. On Debian/Ubuntu install Python's venv "
                     "module first (apt-get install python3-venv), then run this again.")
    say(f"pip install -e '.[{extra}]'")
    if subprocess.call([str(PY), "-m", "pip", "install", "-e", f".[{extra}]"], cwd=ROOT) != 0:
        sys.exit(f"[dev] error: pip install -e '.[{extra}]' failed (see above)")
    marker.touch()


def ensure_chromium() -> None:
    """The browser test drives Debian's chromium: apt-get it when it is missing and we are root."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not CHROMIUM.exists() and os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing Debian's chromium for the browser test (apt-get update + install, about a minute)")
        if subprocess.call(["apt-get", "-qq", "update"], env=env, stdin=subprocess.DEVNULL) == 0:
            subprocess.call(["apt-get", "-qq", "install", "-y", "--no-install-recommends", "chromium"], env=env,
                            stdin=subprocess.DEVNULL)
    if not CHROMIUM.exists():
        say(f"no {CHROMIUM} (as root: apt-get install chromium): the browser test will skip (fail with CI set)")


def run(cmd: list, up: urllib.request.Request | None = None, banner: str = "", **kw) -> int:
    """Run a foreground child and return its exit code; with `up`, print `banner` once `up` answers.
    Ctrl+C reaches the child too (same process group) and it stops cleanly; SIGTERM is passed on."""
    proc = subprocess.Popen([str(c) for c in cmd], **kw)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    deadline = time.monotonic() + 120
    while True:
        try:
            if up is None:
                return proc.wait()
            if proc.poll() is not None:
                sys.exit(f"[dev] error: the server exited (code {proc.returncode}) before answering; see its log above")
            try:
                urllib.request.urlopen(up, timeout=2).close()
                print(banner, flush=True)
                up = None
            except OSError:
                if time.monotonic() > deadline:
                    proc.terminate()
                    sys.exit(f"[dev] error: no answer from {up.full_url} within 120 s; see the server's log above")
                time.sleep(0.2)
        except KeyboardInterrupt:
            up = None  # the child got the Ctrl+C too: wait for it to stop


# `dev.py test --quick`: leaves out what needs a browser, a kernel per notebook or a fresh venv.
QUICK = "not e2e and not notebooks and not wheel and not tools"


def pytest_args(args: list[str]) -> list[str]:
    """pytest's arguments for `dev.py test ARGS`: ``--quick`` becomes a marker expression
    (joined to the caller's own ``-m``), and unless the caller chose otherwise the tests run
    on every core with pytest-xdist, file by file, the notebook tests in one worker
    (``--dist loadgroup``: tests/conftest.py)."""
    args = list(args)
    if "--quick" in args:
        args.remove("--quick")
        if "-m" in args[:-1]:
            i = args.index("-m")
            args[i + 1] = f"({args[i + 1]}) and {QUICK}"
        else:
            args += ["-m", QUICK]
    chosen = any(a in ("-n", "--numprocesses", "--dist", "no:xdist") or a.startswith(("-n", "--numprocesses="))
                 for a in args)
    if not chosen:
        args = ["-n", "auto", "--dist", "loadgroup", *args]
    return args


def cmd_test(args: list[str]) -> int:
    setup("test")
    quick = "--quick" in args
    args = pytest_args(args)
    if not quick:
        ensure_chromium()
    say("ruff check .")
    lint = subprocess.call([BIN / "ruff", "check", "--output-format=concise", "."], cwd=ROOT)
    say("lint-imports (the layer contracts in pyproject.toml)")
    layers = subprocess.call([BIN / "lint-imports", "--no-logo", "--no-cache"], cwd=ROOT)
    say(shlex.join(["python", "-m", "pytest", *args]))
    rc = run([PY, "-m", "pytest", *args], cwd=ROOT)
    if (lint or layers) and not rc:
        found = " and ".join(name for name, code in (("`ruff check .`", lint), ("`lint-imports`", layers)) if code)
        say(f"the tests passed but {found} found problems (listed before the tests)")
    return rc or lint or layers


def cmd_bench(args: list[str]) -> int:
    setup("bench")
    return run([PY, ROOT / "benchmarks" / "run.py", *args], cwd=ROOT)


def cmd_lab(args: list[str]) -> int:
    setup("lab")
    env, share = dict(os.environ), VENV / "share" / "jupyter"
    kernels = VENV / "kernel" / "share" / "jupyter"  # first on JUPYTER_PATH: beats a python3 in ~/.local or /usr
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(kernels), env.get("JUPYTER_PATH")]))
    if not (kernels / "kernels" / "python3" / "kernel.json").exists():  # runs this venv's Python, by full path
        subprocess.check_call([PY, "-m", "ipykernel", "install", "--prefix", VENV / "kernel", "--name", KERNEL["name"],
                               "--display-name", KERNEL["display_name"]], env=env, stdout=subprocess.DEVNULL)
    env["PATH"], env["VIRTUAL_ENV"] = str(BIN) + os.pathsep + env.get("PATH", ""), str(VENV)
    (share / "lab" / "settings").mkdir(parents=True, exist_ok=True)  # no "Jupyter news?" question
    (share / "lab" / "settings" / "overrides.json").write_text(json.dumps(LAB_OVERRIDES, indent=1) + "\n")
    # This venv's own notary signs the shipped notebooks, so the server trusts them.
    notary = [f"--NotebookNotary.db_file={share / 'nbsignatures.db'}",
              f"--NotebookNotary.secret_file={share / 'notebook_secret'}"]
    nbs = [p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    if nbs:
        subprocess.check_call([BIN / "jupyter", "trust", *notary, *nbs], env=env, stdout=subprocess.DEVNULL)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token, url = secrets.token_hex(16), f"http://127.0.0.1:{port}"
    cmd = [BIN / "jupyter", "lab", f"--ServerApp.root_dir={NOTEBOOKS}", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           "--ServerApp.open_browser=False", "--ServerApp.answer_yes=True",  # one Ctrl+C stops it
           "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *notary,
           *(["--allow-root"] if os.name == "posix" and os.geteuid() == 0 else []), *args]
    up = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
    bar = "=" * 76
    banner = (f"\n{bar}\n  JupyterLab on notebooks/ is up; open this URL in your browser:\n\n"
              f"  {url}/lab?token={token}\n\n  (Ctrl+C to stop)\n{bar}\n")
    rc = run(cmd, up, banner, cwd=NOTEBOOKS, env=env)
    return 0 if rc in (0, 130, -signal.SIGINT, -signal.SIGTERM) else rc


COMMANDS = {"lab": cmd_lab, "test": cmd_test, "bench": cmd_bench}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__.strip())
        sys.exit(0 if sys.argv[1:2] in (["-h"], ["--help"], ["help"]) else 2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
