#!/usr/bin/env python3
"""ad_magic's two commands (plus one for benchmarks).

    python3 dev.py lab                 set up .venv and start JupyterLab on notebooks/
    python3 dev.py test [pytest args]  set up .venv (+ Chromium) and run the test suite
    python3 dev.py bench [args]        set up .venv with the benchmark peers and run them

Needs only Python 3 (standard library). Everything goes into ./.venv; nothing is
registered globally. Re-runs are fast: each extra is reinstalled only when
pyproject.toml (or the Python) changes.
"""
from __future__ import annotations

import hashlib
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
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
IS_WIN = os.name == "nt"
VBIN = VENV / ("Scripts" if IS_WIN else "bin")
VPY = VBIN / ("python.exe" if IS_WIN else "python")
CHROMIUM = "/usr/bin/chromium"
# The CPU wheel of torch: a bare `torch` would pull a multi-GB CUDA build.
TORCH_PIN = "torch==2.13.0"


def say(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def die(msg: str, code: int = 1) -> NoReturn:
    print(f"[dev] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def run_quiet(cmd: list[str], what: str, log: Path) -> None:
    """Run cmd with its output in `log`; on failure show the tail and exit."""
    t0 = time.monotonic()
    say(f"{what} ...")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        print("\n".join("    " + line for line in tail), file=sys.stderr)
        die(f"{what} failed (exit {rc}); full log: {log}")
    say(f"{what}: done in {time.monotonic() - t0:.0f} s")


def run_fg(cmd: list[str], **kw) -> int:
    """Run a long foreground child (pytest, jupyter) and return its exit code.

    Ctrl+C reaches the child too (same process group): let it shut down cleanly
    (pytest tears down its servers, Jupyter stops its kernels) instead of killing it.
    SIGTERM sent to dev.py is passed on.
    """
    proc = subprocess.Popen(cmd, **kw)

    def forward(signum, _frame):
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    old = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, old)


# --------------------------------------------------------------------------- venv
def _venv_works() -> bool:
    if not VPY.exists():
        return False
    try:
        out = subprocess.run(
            [str(VPY), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "%d.%d" % sys.version_info[:2]


def ensure_venv() -> None:
    if _venv_works():
        return
    if VENV.exists():
        say(f"{VENV} is broken or made by another Python: recreating it")
        shutil.rmtree(VENV)
    t0 = time.monotonic()
    say(f"creating {VENV.relative_to(ROOT)} with {sys.executable} (Python {sys.version.split()[0]})")
    rc = subprocess.call([sys.executable, "-m", "venv", str(VENV)])
    if rc != 0 or not VPY.exists():
        die("`python3 -m venv` failed; on Debian/Ubuntu install the venv module "
            "(apt-get install python3-venv) and retry")
    run_quiet([str(VPY), "-m", "pip", "install", "-q", "--upgrade", "pip"],
              "upgrading pip", VENV / "dev-logs" / "pip-upgrade.log")
    say(f"venv ready in {time.monotonic() - t0:.0f} s")


def _stamp(extra: str, more: list[str]) -> str:
    h = hashlib.sha256()
    h.update((ROOT / "pyproject.toml").read_bytes())
    h.update(json.dumps([extra, more, sys.version, str(VPY)]).encode())
    return h.hexdigest()


def _editable_ok() -> bool:
    """The venv imports ad_magic from this checkout as a regular package (an editable
    install made while ad_magic/__init__.py was missing maps it as a namespace, and one
    made in another checkout points there)."""
    code = ("import importlib.util as u, sys; s = u.find_spec('ad_magic'); "
            "sys.exit(0 if s and s.origin and s.origin == sys.argv[1] else 1)")
    want = str(ROOT / "ad_magic" / "__init__.py")
    try:
        return subprocess.run([str(VPY), "-c", code, want], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_installed(extra: str, more: list[str] = ()) -> None:
    """pip install -e '.[extra]' (+ more) unless the stamp says it is already done."""
    more = list(more)
    ensure_venv()
    stamp_file = VENV / f".ad_magic-stamp-{extra}"
    want = _stamp(extra, more)
    if stamp_file.exists() and stamp_file.read_text().strip() == want and _editable_ok():
        say(f".venv already has .[{extra}]{' + ' + ' '.join(more) if more else ''} "
            "(pyproject.toml unchanged)")
        return
    cmd = [str(VPY), "-m", "pip", "install", "-q", "--progress-bar", "off",
           "-e", f".[{extra}]", *more]
    run_quiet(cmd, f"pip install -e '.[{extra}]'{' ' + ' '.join(more) if more else ''}",
              VENV / "dev-logs" / f"pip-{extra}.log")
    stamp_file.write_text(want + "\n")


# ----------------------------------------------------------------------- chromium
def ensure_chromium() -> None:
    """The browser test drives Debian's Chromium; install it when we can."""
    if os.path.exists(CHROMIUM):
        say(f"Chromium found at {CHROMIUM}")
        return
    ci = bool(os.environ.get("CI"))
    reasons = []
    if IS_WIN or not hasattr(os, "geteuid") or os.geteuid() != 0:
        reasons.append("not running as root")
    if not os.path.exists("/etc/debian_version"):
        reasons.append("not a Debian-based system")
    if shutil.which("apt-get") is None:
        reasons.append("apt-get not found")
    if reasons:
        say(f"Chromium is not at {CHROMIUM} and cannot be installed here "
            f"({', '.join(reasons)}): the browser test will "
            + ("FAIL (CI is set)" if ci else "be skipped")
            + ". Install Debian's `chromium` package to run it.")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = VENV / "dev-logs" / "apt-chromium.log"
    t0 = time.monotonic()
    say("installing Debian's chromium with apt-get (about 30-60 s) ...")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.call(["apt-get", "update", "-q"], stdout=fh, stderr=subprocess.STDOUT, env=env)
        if rc == 0:
            rc = subprocess.call(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                                  "chromium"], stdout=fh, stderr=subprocess.STDOUT, env=env)
    if rc != 0 or not os.path.exists(CHROMIUM):
        tail = log.read_text(errors="replace").splitlines()[-20:]
        print("\n".join("    " + line for line in tail), file=sys.stderr)
        say(f"apt-get could not install chromium (exit {rc}, log {log}): the browser test will "
            + ("FAIL (CI is set)" if ci else "be skipped"))
        return
    say(f"chromium installed in {time.monotonic() - t0:.0f} s")


# --------------------------------------------------------------------------- cmds
def cmd_test(args: list[str]) -> int:
    ensure_installed("test")
    ensure_chromium()
    cmd = [str(VPY), "-m", "pytest", *args]
    say("running: python -m pytest " + shlex.join(args))
    rc = run_fg(cmd, cwd=ROOT)
    if rc == 5:
        say("pytest collected no tests: treating that as a failure")
        return 1
    return rc


def cmd_bench(args: list[str]) -> int:
    ensure_installed("bench", [TORCH_PIN])
    script = ROOT / "benchmarks" / "run.py"
    if not script.exists():
        die(f"{script.relative_to(ROOT)} does not exist yet")
    say("running: python benchmarks/run.py " + shlex.join(args))
    return run_fg([str(VPY), str(script), *args], cwd=ROOT)


def _free_port(start: int = 8888, tries: int = 50) -> int:
    for port in range(start, start + tries):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_env() -> dict[str, str]:
    """Environment for a Jupyter server whose `python3` kernel is this venv's Python.

    A kernelspec named python3 in ~/.local/share/jupyter or /usr/share/jupyter could
    otherwise shadow the venv's own; JUPYTER_PATH is searched first, so a spec kept
    inside .venv (nothing global) wins.
    """
    kdir = VENV / "share" / "ad_magic-jupyter"
    spec_dir = kdir / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [str(VPY), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ad_magic .venv)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join(
        [str(kdir)] + ([env["JUPYTER_PATH"]] if env.get("JUPYTER_PATH") else []))
    env["PATH"] = str(VBIN) + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(VENV)
    return env


def cmd_lab(args: list[str]) -> int:
    ensure_installed("lab")
    env = lab_env()
    check = subprocess.run(
        [str(VPY), "-c",
         "from jupyter_client.kernelspec import KernelSpecManager as K;"
         "import json; s=K().get_kernel_spec('python3'); print(s.argv[0])"],
        capture_output=True, text=True, env=env)
    kpy = check.stdout.strip()
    if check.returncode != 0 or Path(kpy) != VPY:
        die(f"the python3 kernel would not run this venv's Python (got {kpy!r}): {check.stderr}")
    say(f"kernel python3 -> {kpy}")
    nb_dir = ROOT / "notebooks"
    nb_dir.mkdir(exist_ok=True)
    port = _free_port()
    token = secrets.token_hex(16)
    cmd = [
        str(VBIN / "jupyter"), "lab",
        f"--ServerApp.root_dir={nb_dir}",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False",
        "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    cmd += args
    url = f"http://127.0.0.1:{port}/lab?token={token}"
    bar = "=" * min(100, len(url) + 4)
    print(f"\n{bar}\n  JupyterLab on {nb_dir.relative_to(ROOT)}/ — open this URL in your browser:\n"
          f"  {url}\n  (Ctrl+C to stop)\n{bar}\n", flush=True)
    rc = run_fg(cmd, cwd=nb_dir, env=env)
    return 0 if rc in (0, -signal.SIGINT, 130) else rc


COMMANDS = {"lab": cmd_lab, "test": cmd_test, "bench": cmd_bench}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help", "help") else 2
    if sys.version_info < (3, 9):
        die("Python 3.9 or newer is needed")
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
