"""A timeline outside the notebook: one self-contained page, or one picture per step.

- :func:`save_html` writes one HTML file holding the laid-out SVG, the stylesheet, the
  script (the widget's own ``static/timeline.js``) and every state as JSON: a native
  ``<input type="range">``, Previous/Next, Play, ←/→, node cards and the legend, with no
  network access (a Content-Security-Policy forbids any).
- :func:`save_frames` writes ``step-000.svg`` … (or ``.png``) for slides. PNG frames are
  drawn by the same ``dot`` that laid the graph out (``graphviz-pure``'s static one, or
  the system's): the layout is computed once (``-Tjson``), and every frame is drawn at
  those positions (``-Kneato -n2 -Tpng``), so nothing moves between frames.

Mistakes are one sentence each: a folder that does not exist, a page whose name does not
end in .html, a path that cannot be written, an unknown format, a timeline with nothing to
step (a leaf). Every file is written whole or not at all: to a temporary file in the same
folder, then renamed into place (``os.replace``), so a failure keeps the previous export.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
import subprocess
from pathlib import Path

from ..drawing.dot import CHANGED, FONT, FONT_SIZE, GRAD_TEXT, HIGHLIGHT, KIND_PENWIDTH, KIND_STYLE, TEXT, label_escape
from ..drawing.graph_view import data_texts, grad_text
from ..drawing.render import RenderError, find_dot
from ..engine.formatting import escape
from .timeline import CAPTION_CHARS

__all__ = ["save_html", "save_frames", "page_html", "check_target", "FRAME_FORMATS"]

FRAME_FORMATS = ("svg", "png")
PAGE_SUFFIXES = (".html", ".htm")
_FRAME_NAME = re.compile(r"step-[0-9]+")
RENDER_TIMEOUT = 60.0


def _static(name: str) -> str:
    return (Path(__file__).parent / "static" / name).read_text(encoding="utf-8")


def _require_steps(timeline, what: str) -> None:
    if not timeline.steps and not timeline.forward_steps:
        name = timeline.namer(timeline.output) or "the output"
        raise ValueError(f"{what}: {name} is a leaf tensor, so its timeline has nothing to step through; "
                         "export the result of a computation instead.")


def check_target(path, what: str, suffixes=PAGE_SUFFIXES) -> Path:
    """``path`` as a file to write, or one sentence saying why it cannot be written.

    The sentence names the path and its folder as they were given (not expanded or
    resolved). With ``suffixes``, the file name must end in one of them (a page written
    into ``notes.txt`` would open as text)."""
    given = os.fspath(path)
    path = Path(given).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{what}: {given} is a folder; give a file name such as "
                                f"{os.path.join(given, 'timeline' + suffixes[0] if suffixes else 'timeline')}.")
    if suffixes and path.suffix.lower() not in suffixes:
        expected = " or ".join(suffixes)
        found = f"ends in {path.suffix}" if path.suffix else "has no extension"
        raise ValueError(f"{what}: {given} {found}, but the page is HTML: give a file name ending in {expected}, "
                         f"e.g. {path.stem or 'timeline'}{suffixes[0]}.")
    folder = os.path.dirname(given) or "."
    if not path.parent.exists():
        raise FileNotFoundError(f"{what}: the folder {folder} does not exist; create it first.")
    if not path.parent.is_dir():
        raise NotADirectoryError(f"{what}: {folder} is a file, not a folder.")
    if path.is_symlink():           # the page is written where the link points: that must work too
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OSError(f"{what}: {given} is a symbolic link that loops back on itself; give another "
                              "file name.") from None
            if not _target(path).parent.is_dir():
                raise FileNotFoundError(f"{what}: {given} is a symbolic link to {os.readlink(path)}, whose "
                                        "folder does not exist; give another file name.") from None
        folder = str(_target(path).parent)
    real_folder = _target(path).parent
    mode = os.stat(real_folder).st_mode
    if not os.access(real_folder, os.W_OK | os.X_OK) or not mode & 0o222:
        raise PermissionError(f"{what}: the folder {folder} is read-only; give a file name in a folder you "
                              "can write to.")
    return path


def _temporary(path: Path) -> Path:
    """A new empty file beside ``path`` (same folder, so that os.replace is atomic),
    hidden, with a name no other writer uses."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary


def _discard(temporary) -> None:
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def _target(path: Path) -> Path:
    """The file that writing ``path`` replaces: the one a symbolic link points to (the
    link stays a link), else ``path`` itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _write_temporary(path: Path, content, what: str) -> Path:
    """``content`` written in full to a temporary file beside ``path``'s target; returns it.

    Nothing is left behind if writing fails (a full disk, a quota, an interrupt).
    The temporary file gets the permissions the target has now, if it exists."""
    temporary = None
    try:
        temporary = _temporary(_target(path))
        if isinstance(content, bytes):
            temporary.write_bytes(content)
        else:
            temporary.write_text(content, encoding="utf-8")
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)            # on disk before it replaces the good file
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))   # (os.stat follows a link)
        return temporary
    except BaseException as exc:
        if temporary is not None:
            _discard(temporary)
        if isinstance(exc, PermissionError):
            raise PermissionError(f"{what}: cannot write {path}: permission denied.") from None
        if isinstance(exc, OSError):
            raise OSError(f"{what}: cannot write {path}: {exc.strerror or exc}.") from None
        raise


def _replace(temporary: Path, path: Path, what: str) -> None:
    try:
        os.replace(temporary, _target(path))
    except BaseException as exc:
        _discard(temporary)
        if isinstance(exc, OSError):
            raise OSError(f"{what}: cannot write {path}: {exc.strerror or exc}.") from None
        raise


def _write(path: Path, content, what: str) -> None:
    """Write ``content`` to ``path`` atomically: in full to a temporary file in the same
    folder, then renamed over ``path``. A failed write leaves the previous file as it was."""
    _replace(_write_temporary(path, content, what), path, what)


# ------------------------------------------------------------------ one page

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ margin: 16px 24px; background: #ffffff; }}
h1 {{ font: bold 18px Helvetica, Arial, sans-serif; color: #111827; margin: 0 0 8px; }}
{css}
</style>
</head>
<body>
<h1>{title}</h1>
<div id="ad-timeline"></div>
<noscript>{fallback}</noscript>
<script type="application/json" id="ad-timeline-data">{data}</script>
<script type="module">
{js}
mount(document.getElementById("ad-timeline"),
      JSON.parse(document.getElementById("ad-timeline-data").textContent), null);
</script>
</body>
</html>
"""


def page_html(timeline, title: str | None = None) -> str:
    """The self-contained page of ``timeline`` (what :func:`save_html` writes)."""
    if title is None:
        name = timeline.namer(timeline.output) or "the output"
        title = f"{'Forward and backward' if timeline.forward else 'Backward'} pass of {name}"
    data = json.dumps(timeline.payload(), ensure_ascii=False, separators=(",", ":"))
    # Inside <script>, "</" could close it and "<!--" open a comment: no "<" at all (JSON
    # has "<" only inside strings, where \u003c reads the same).
    data = data.replace("<", "\\u003c")
    return _PAGE.format(title=escape(title), css=_static("timeline.css"), js=_static("timeline.js"),
                        data=data, fallback=timeline.svg(timeline.last, caption=False))


def save_html(timeline, path, title: str | None = None) -> Path:
    """Write ``timeline`` as one self-contained HTML file at ``path`` (ending in .html or
    .htm); returns the path. The page is written to a temporary file in the same folder
    and renamed into place, so a failed write (a full disk) leaves an earlier page whole."""
    _require_steps(timeline, "save_html")
    path = check_target(path, "save_html")
    _write(path, page_html(timeline, title), "save_html")
    return path


# ------------------------------------------------------------------ one picture per step

def save_frames(timeline, folder, format="png") -> list:
    """One picture per state of ``timeline`` in ``folder`` (made if missing, inside an
    existing folder): ``step-000.svg`` …, or ``.png``. Returns the paths written.

    Every frame is drawn into a temporary file first and the frames are renamed into
    place at the end, so a failure (a full disk, dot failing) leaves the folder's earlier
    frames as they were. Frames of an earlier export in the same format that this one
    does not replace (it had more steps) are removed: the folder holds one export."""
    fmt = str(format).lower().lstrip(".")
    if fmt not in FRAME_FORMATS:
        raise ValueError(f"save_frames: unknown format {format!r}; choose 'svg' or 'png'.")
    _require_steps(timeline, "save_frames")
    given = os.fspath(folder)
    folder = Path(given).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"save_frames: {given} is a file, not a folder.")
    if not folder.exists():
        if not folder.parent.is_dir():
            parent = os.path.dirname(given.rstrip("/" + os.sep)) or "."
            raise FileNotFoundError(f"save_frames: the folder {parent} does not exist; create it first.")
        try:
            folder.mkdir()
        except PermissionError:
            raise PermissionError(f"save_frames: cannot create {folder}: permission denied.") from None
    digits = max(3, len(str(timeline.last)))
    paths = [folder / f"step-{k:0{digits}d}.{fmt}" for k in range(timeline.n_states)]
    frames = _PngFrames(timeline) if fmt == "png" else None
    written = []    # every frame goes to a temporary file first: a failure leaves the old frames whole
    try:
        for k, path in enumerate(paths):
            if frames is None:
                content = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + timeline.svg(k) + "\n"
            else:
                content = frames.png(k)
            written.append(_write_temporary(path, content, "save_frames"))
    except BaseException:
        for temporary in written:
            _discard(temporary)
        raise
    for i, (temporary, path) in enumerate(zip(written, paths)):
        try:
            _replace(temporary, path, "save_frames")
        except BaseException:
            for rest in written[i + 1:]:
                _discard(rest)
            raise
    # Frames of an earlier, longer export into this folder would read as steps of this one.
    mine = {p.name for p in paths}
    for old in folder.glob(f"step-*.{fmt}"):
        if old.name not in mine and _FRAME_NAME.fullmatch(old.name[: -len(fmt) - 1]):
            with contextlib.suppress(OSError):
                old.unlink()
    return paths


def _quote(value) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class _PngFrames:
    """PNG frames through ``dot``: one layout, then each state drawn at its positions."""

    def __init__(self, timeline):
        self.timeline = timeline
        self.exe = find_dot()
        layout = json.loads(self._run(["-Tjson"], timeline.view.source).decode("utf-8"))
        self.bb = [float(v) for v in layout["bb"].split(",")]
        self.objects = {o["name"]: o for o in layout.get("objects", []) if "pos" in o}
        names = {o["_gvid"]: o["name"] for o in layout.get("objects", [])}
        self.edges = [(names[e["tail"]], names[e["head"]], e) for e in layout.get("edges", [])]

    def _run(self, args, source: str) -> bytes:
        try:
            done = subprocess.run([self.exe, *args], input=source.encode("utf-8"), capture_output=True,
                                  timeout=RENDER_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RenderError(f"dot took more than {RENDER_TIMEOUT:g} s to draw a frame") from None
        if done.returncode != 0:
            raise RenderError(f"dot could not draw a frame: {done.stderr.decode('utf-8', 'replace').strip()}")
        return done.stdout

    def _value_label(self, i, value, grad, lines) -> str:
        plan = self.timeline.view.plan
        parts = []
        if plan.names[i]:
            parts.append(f"<b>{label_escape(plan.names[i])}</b>")
        data = [" "] * len([r for r, _ in lines if r == "data"]) if value is None else \
            data_texts(value, plan.kinds[i] == "const")
        parts.extend(label_escape(t) for t in data)
        if any(r == "grad" for r, _ in lines):
            text = " " if grad is None else grad_text(grad)
            parts.append(f'<font color="{GRAD_TEXT}">{label_escape(text)}</font>')
        return "<" + "<br/>".join(parts) + ">"

    def source(self, k: int) -> str:
        tl = self.timeline
        plan = tl.view.plan
        state = tl.states[k]
        values, grads = tl.values_at(k), tl.grads_at(k)
        changed = set(state.changed)
        x0, y0, x1, y1 = self.bb
        caption_h = 30.0
        # Room for the longest caption, as in the SVG frames: every frame has one size.
        caption_w = max(x1 - x0, 16 + 0.56 * FONT_SIZE * CAPTION_CHARS)
        out = ["digraph frame {",
               f'graph [bgcolor="white", bb="{x0},{y0 - caption_h},{x0 + caption_w},{y1}", splines=true, '
               'pad="0.1"];',
               f'node [fontname="{FONT}", fontsize="{FONT_SIZE:g}", fontcolor="{TEXT}", fixedsize=true, '
               'style=filled];',
               f'edge [fontname="{FONT}", fontsize="9"];']
        for name, o in self.objects.items():
            attrs = {"pos": f"{o['pos']}!", "width": o["width"], "height": o["height"],
                     "shape": o.get("shape", "box"), "style": o.get("style", "filled"),
                     "fillcolor": o.get("fillcolor", "white"), "color": o.get("color", "black"),
                     "penwidth": o.get("penwidth", "1")}
            label = None
            if name[:1] in "vf" and name[1:].isdigit() and int(name[1:]) < len(plan.tensors):
                i = int(name[1:])
                kind = plan.kinds[i] if name[0] == "v" else "op"
                attrs["fillcolor"], attrs["color"] = KIND_STYLE[kind]
                attrs["penwidth"] = KIND_PENWIDTH[kind]
                if i == state.highlight:
                    attrs["fillcolor"], attrs["color"] = HIGHLIGHT
                    attrs["penwidth"] = 3
                elif name[0] == "v" and i in changed:
                    attrs["color"], attrs["penwidth"] = CHANGED, 2.5
                if name[0] == "v":
                    lines = plan.node_lines(i, plan.tensors[i].data, None, show_grad=True, placeholder=True)
                    label = self._value_label(i, values[i], grads[i], lines)
                if kind == "const":
                    attrs["fontsize"] = "9"
            if label is None:   # dot's JSON gives a label's HTML without its brackets
                label = f"<{o.get('label', '')}>"
            body = ", ".join(f"{key}={_quote(v)}" for key, v in attrs.items())
            out.append(f"{_quote(name)} [{body}, label={label}];")
        for tail, head, e in self.edges:
            attrs = {"pos": e["pos"], "color": e.get("color", "#64748b")}
            if e.get("label"):
                attrs.update(label=e["label"], lp=e.get("lp", ""), fontcolor=e.get("fontcolor", "#64748b"))
            elif e.get("xlabel"):    # an array's shape: an xlabel, drawn where dot placed it
                attrs.update(label=e["xlabel"], lp=e.get("xlp", ""), fontcolor=e.get("fontcolor", "#64748b"))
            if e.get("style"):
                attrs["style"] = e["style"]
            body = ", ".join(f"{key}={_quote(v)}" for key, v in attrs.items() if v != "")
            out.append(f"{_quote(tail)} -> {_quote(head)} [{body}, arrowsize=0.7];")
        text = f"step {k} / {tl.last}: {state.caption}"
        if len(text) > CAPTION_CHARS:
            text = text[: CAPTION_CHARS - 1] + "…"
        out.append(f'caption [shape=box, style=filled, fillcolor="#f8fafc", color="#cbd5e1", '
                   f'pos="{x0 + caption_w / 2},{y0 - caption_h / 2}!", width="{(caption_w - 4) / 72:.4f}", '
                   f'height="{(caption_h - 8) / 72:.4f}", labeljust=l, label=<{label_escape(text)}>];')
        out.append("}")
        return "\n".join(out)

    def png(self, k: int) -> bytes:
        return self._run(["-Kneato", "-n2", "-Tpng"], self.source(k))
