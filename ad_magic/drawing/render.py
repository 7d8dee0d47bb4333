"""DOT source in, SVG out: the one boundary between ad_magic and a Graphviz executable.

Which ``dot`` runs, in order of preference:

1. the path in the environment variable ``AD_MAGIC_DOT`` (forces a renderer; tests use it);
2. the system ``dot`` when it is on PATH (a real Graphviz install);
3. the static executable shipped by the PyPI package ``graphviz-pure``, found through
   ``importlib.metadata`` because a Jupyter kernel's PATH often lacks the venv's ``bin/``.

We call the executable ourselves (``dot -Tsvg`` on stdin, with a timeout) so every
failure becomes a :class:`RenderError` carrying one clear sentence: no traceback from
a subprocess ever reaches a learner.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import shutil
import subprocess

__all__ = ["RenderError", "find_dot", "render_svg", "INSTALL_HINT"]

INSTALL_HINT = (
    "pip install graphviz-pure (a static dot, no system install needed) "
    "or install Graphviz from https://graphviz.org/download/"
)


class RenderError(RuntimeError):
    """Graphviz could not turn the DOT source into SVG; the message says why."""


def find_dot() -> str | None:
    """Path of the ``dot`` executable to use, or None when there is none.

    The lookup is cached per (``AD_MAGIC_DOT``, ``PATH``), so changing either
    (as tests do) is seen on the next call.
    """
    return _find_dot(os.environ.get("AD_MAGIC_DOT") or None, os.environ.get("PATH", ""))


@functools.lru_cache(maxsize=8)
def _find_dot(forced: str | None, path: str) -> str | None:
    if forced:
        # A forced renderer is used as given, even when it does not exist: the
        # failure then shows up as a clear RenderError instead of a silent fallback.
        return shutil.which(forced, path=path) or forced
    system = shutil.which("dot", path=path)
    if system:
        return system
    bundled = _graphviz_pure_executable()
    if bundled:
        _point_graphviz_package_at(bundled)
    return bundled


def _graphviz_pure_executable() -> str | None:
    """The static ``graphviz-pure`` executable installed with the package, if any."""
    try:
        dist = importlib.metadata.distribution("graphviz-pure")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name in ("graphviz-pure", "graphviz-pure.exe"):
            path = os.path.realpath(str(file.locate()))
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    return None


def _point_graphviz_package_at(executable: str) -> None:
    """Let ``graphviz.Digraph.pipe()`` and its Jupyter repr use our executable.

    Only the module global in ``graphviz.backend.dot_command`` is read at call time
    (``graphviz.DOT_BINARY`` is a copy). We only replace the package's default
    (plain ``dot``), never a choice the user made.
    """
    try:
        from graphviz.backend import dot_command
    except ImportError:  # pragma: no cover - graphviz is a dependency
        return
    if str(dot_command.DOT_BINARY) == "dot":
        dot_command.DOT_BINARY = executable


def render_svg(source: str, *, timeout: float = 30.0) -> str:
    """Lay out DOT ``source`` and return the SVG text.

    Raises :class:`RenderError` when no renderer exists, it cannot be started,
    it takes longer than ``timeout`` seconds, or it rejects the source (the
    message then quotes Graphviz's own error, which names the line).
    """
    exe = find_dot()
    if exe is None:
        raise RenderError(f"No Graphviz renderer found to draw the graph: {INSTALL_HINT}.")
    try:
        proc = subprocess.run(
            [exe, "-Tsvg"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise RenderError(
            f"Graphviz ({exe}) took longer than {timeout:g} s to lay out the graph; "
            "draw fewer nodes (lower max_nodes) or pass a larger timeout."
        ) from None
    except OSError as exc:
        raise RenderError(
            f"Cannot run the Graphviz renderer {exe} ({exc.strerror or exc}); {INSTALL_HINT}."
        ) from None
    if proc.returncode != 0:
        message = _first_lines(proc.stderr.decode("utf-8", "replace")) or f"exit code {proc.returncode}"
        raise RenderError(f"Graphviz ({exe}) could not draw the graph: {message}")
    return proc.stdout.decode("utf-8", "replace")


def _first_lines(text: str, limit: int = 3) -> str:
    """Dot's stderr, trimmed to its first few non-empty lines, on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:limit])
