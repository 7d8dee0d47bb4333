"""The package as users install it: the built wheel, in a fresh venv, outside the checkout.

An editable install (what `dev.py` and CI use) reads the checkout, so a module or a static
file left out of the wheel goes unnoticed there. This test builds the wheel with
`pip wheel --no-deps`, checks that every module and front-end file under ad_magic/ is in it,
installs it into a new venv and, from a folder outside the checkout, imports the package,
loads the extension, runs an `%%autodiff` cell, steps a timeline and writes `save_html`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_SUFFIXES = (".py", ".js", ".css")
COPY_IGNORE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
               ".ruff_cache", "test-artifacts", "node_modules")

USE_INSTALLED = textwrap.dedent('''
    import sys
    from pathlib import Path

    import ad_magic
    where = Path(ad_magic.__file__).resolve()
    assert Path(sys.prefix).resolve() in where.parents, f"ad_magic imported from {where}, not the wheel"

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from ad_magic import Tensor
    from ad_magic.widgets import BackwardStepper

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ad_magic")
    ip.run_cell("from ad_magic import Tensor", store_history=False).raise_error()
    with capture_output() as shown:
        ip.run_cell_magic("autodiff", "", "x = Tensor(2.0)\\nloss = x * x + 5 * x - 1\\n")
    assert ip.user_ns["x"].grad == 9.0, ip.user_ns["x"].grad
    assert shown.outputs, "the %%autodiff cell displayed nothing"

    x = Tensor([1.0, -2.0, 3.0])
    out = (x.tanh() * x).sum()
    stepper = BackwardStepper(out, names={x: "x"}, forward=True)
    for k in range(stepper.n_steps + 1):
        stepper.step = k
        assert "<svg" in stepper.svg()
    page = stepper.save_html(Path(sys.argv[1]) / "timeline.html")
    text = page.read_text(encoding="utf-8")
    assert "<script" in text and "timeline" in text, text[:200]
    print("WHEEL-OK", where)
''')


def _package_files() -> set:
    """Every module and front-end file of ad_magic/ in the checkout, as wheel paths."""
    files = set()
    for path in (ROOT / "ad_magic").rglob("*"):
        if path.suffix in PACKAGE_SUFFIXES and "__pycache__" not in path.parts:
            files.add(path.relative_to(ROOT).as_posix())
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the checkout: setuptools keeps a build/ folder in the source tree,
    and a stale one would hand the wheel files the current configuration leaves out."""
    source, out = tmp_path_factory.mktemp("source") / "ad_magic", tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--wheel-dir", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    wheels = list(out.glob("ad_magic-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_every_module_and_static_file(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = sorted(_package_files() - names)
    assert not missing, f"the wheel leaves out {len(missing)} file(s) of ad_magic/: {missing}"
    assert any(n.endswith("timeline.js") for n in names) and any(n.endswith("timeline.css") for n in names)


def test_the_installed_wheel_imports_draws_steps_and_exports(wheel, tmp_path):
    """A fresh venv whose only ad_magic is the wheel. Its dependencies come from this
    environment's site-packages through a .pth line (so no network), which does not run
    the editable install's finder: the checkout cannot leak in."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    fresh = subprocess.run([str(env_dir / "bin" / "python"), "-c", ask], capture_output=True, text=True,
                           check=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(fresh, "_test_dependencies.pth").write_text(ours + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
                              "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    if install.returncode != 0 and "no such option: --python" in install.stderr:
        pytest.fail("pip is too old for --python; dev.py's venv has a current pip")
    assert install.returncode == 0, install.stdout + install.stderr

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    script = outside / "use_it.py"
    script.write_text(USE_INSTALLED)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["MPLBACKEND"] = "Agg"
    run = subprocess.run([str(env_dir / "bin" / "python"), str(script), str(outside)], cwd=outside, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "WHEEL-OK" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    assert (outside / "timeline.html").stat().st_size > 1000
