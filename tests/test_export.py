"""The timeline outside the notebook: save_html, save_frames, %%autodiff --export, and the
magic's one picture."""
from __future__ import annotations

import json
import os
import re
import stat
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from ad_magic import Tensor
from ad_magic.widgets.stepper import BackwardStepper

SVG = "image/svg+xml"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def stepper():
    x, y = Tensor(2.0, name="x"), Tensor(3.0, name="y")
    h = x * y
    return BackwardStepper((h + x).tanh(), names={h: "h"}, forward=True)


def page_data(text: str) -> dict:
    match = re.search(r'<script type="application/json" id="ad-timeline-data">(.*?)</script>', text, re.S)
    assert match, "no timeline data in the page"
    return json.loads(match.group(1))


# ------------------------------------------------------------------ save_html

def test_save_html_writes_one_self_contained_page(stepper, tmp_path):
    path = stepper.save_html(tmp_path / "timeline.html")
    assert path == tmp_path / "timeline.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # nothing is fetched: no src/href to anything, a policy that forbids it anyway
    assert not re.search(r'\b(src|href)\s*=', text.split('<script type="application/json"')[0])
    assert not re.search(r"https?://(?!www\.w3\.org/)", text)
    assert "default-src 'none'" in text
    assert 'type: "range"' in text or "type=\"range\"" in text      # the native range input (made by the script)
    assert "mount(document.getElementById(\"ad-timeline\")" in text
    data = page_data(text)
    assert data["captions"] == [s.caption for s in stepper.timeline.states]
    assert len(data["cards"]) == len(stepper.view.nodes)
    ET.fromstring(data["svg"])
    # the fallback picture for a page without scripts
    assert "<noscript><svg" in text


def test_save_html_escapes_what_could_close_the_script(tmp_path):
    x = Tensor(1.0, name="</script><b>x")
    s = BackwardStepper(x * 2.0, forward=True)
    text = s.save_html(tmp_path / "t.html").read_text(encoding="utf-8")
    data_part = text.split('id="ad-timeline-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data_part
    assert page_data(text)["cards"][0][0][0].startswith("</script><b>x")


def test_save_html_to_a_missing_folder_is_one_sentence(stepper, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^save_html: the folder .*nowhere does not exist; create it first\.$"):
        stepper.save_html(tmp_path / "nowhere" / "t.html")


def test_save_html_to_a_folder_is_one_sentence(stepper, tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; give a file name"):
        stepper.save_html(tmp_path)


def test_save_html_to_a_path_that_cannot_be_written_is_one_sentence(stepper, tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Path, "write_text", refuse)   # (as root, chmod would not stop the write)
    with pytest.raises(PermissionError, match=r"^save_html: cannot write .*t\.html: permission denied\.$"):
        stepper.save_html(tmp_path / "t.html")


def test_a_leaf_has_nothing_to_export(tmp_path):
    s = BackwardStepper(Tensor(4.0, name="x"), forward=True)
    with pytest.raises(ValueError, match="^save_html: x is a leaf tensor, so its timeline has nothing to step"):
        s.save_html(tmp_path / "t.html")
    with pytest.raises(ValueError, match="^save_frames: x is a leaf tensor"):
        s.save_frames(tmp_path / "frames")
    assert not (tmp_path / "t.html").exists()


# ------------------------------------------------------------------ save_frames

def test_svg_frames_one_per_step_all_one_size(stepper, tmp_path):
    paths = stepper.save_frames(tmp_path / "frames", format="svg")
    assert [p.name for p in paths] == [f"step-{k:03d}.svg" for k in range(stepper.n_steps + 1)]
    sizes = set()
    for k, p in enumerate(paths):
        text = p.read_text(encoding="utf-8")
        root = ET.fromstring(text)
        sizes.add((root.get("width"), root.get("height")))
        assert f"step {k} / {stepper.n_steps}" in text
    assert len(sizes) == 1


def png_size(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_png_frames_through_dot_keep_one_layout(stepper, tmp_path):
    paths = stepper.save_frames(tmp_path / "png", format="PNG")
    assert len(paths) == stepper.n_steps + 1 and all(p.suffix == ".png" for p in paths)
    blobs = [p.read_bytes() for p in paths]
    assert len({png_size(b) for b in blobs}) == 1
    assert len(set(blobs)) == len(blobs)             # every step draws something different


def test_unknown_frame_format_is_one_sentence(stepper, tmp_path):
    with pytest.raises(ValueError, match=r"^save_frames: unknown format 'gif'; choose 'svg' or 'png'\.$"):
        stepper.save_frames(tmp_path, format="gif")


def test_frames_into_a_missing_parent_folder_are_refused(stepper, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        stepper.save_frames(tmp_path / "a" / "b")


# ------------------------------------------------------------------ the magic

@pytest.fixture
def ip(magic_shell):
    return magic_shell("from ad_magic import Tensor")


def run(ip, source):
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, [o.data for o in captured.outputs]


def test_the_magic_shows_one_picture_and_one_caption(ip):
    result, outputs = run(ip, "%%autodiff\nx = Tensor(2.0)\nloss = x * x + 5 * x - 1\n")
    assert result.success
    svgs = [o for o in outputs if SVG in o]
    widgets = [o for o in outputs if WIDGET in o]
    assert len(svgs) == 1 and len(widgets) == 1 and svgs[0] is widgets[0]   # the widget's own fallback
    stepper = ip.user_ns["_autodiff"]
    assert stepper.timeline.forward                                           # forward, then backward
    assert 'class="caption"' not in svgs[0][SVG]                              # the caption is the widget's
    assert svgs[0]["text/plain"].startswith("<BackwardStepper")


def test_static_still_shows_the_picture(ip):
    result, outputs = run(ip, "%%autodiff --static\nx = Tensor(2.0)\nloss = x * x\n")
    assert result.success
    assert len([o for o in outputs if SVG in o]) == 1 and not [o for o in outputs if WIDGET in o]


def test_export_writes_the_page(ip, tmp_path):
    path = tmp_path / "loss.html"
    result, outputs = run(ip, f"%%autodiff --export {path}\nx = Tensor(2.0)\nloss = x * x + 5 * x - 1\n")
    assert result.success, result.error_in_exec
    data = page_data(path.read_text(encoding="utf-8"))
    assert data["captions"] == [s.caption for s in ip.user_ns["_autodiff"].timeline.states]
    assert any(f"Timeline written to {path}" in o.get("text/plain", "") for o in outputs)


def test_export_with_static_writes_the_page_too(ip, tmp_path):
    path = tmp_path / "s.html"
    result, _ = run(ip, f"%%autodiff --static --export {path}\nx = Tensor(2.0)\nloss = x * 3.0\n")
    assert result.success and path.exists()


def test_line_magic_export(ip, tmp_path):
    path = tmp_path / "line.html"
    ip.run_cell("t = Tensor(3.0)")
    result, _ = run(ip, f"%autodiff --export {path} t * t + 1")
    assert result.success, result.error_in_exec
    data = page_data(path.read_text(encoding="utf-8"))
    assert data["phases"][:2] == ["inputs", "forward"] and data["last"] == ip.user_ns["_autodiff"].n_steps


@pytest.mark.parametrize("line, message", [
    ("--export {missing}/x.html", "the folder .* does not exist"),
    ("--export {tmp}", "is a folder"),
    ("--descent --export {tmp}/x.html", "does not apply with --descent"),
])
def test_export_mistakes_are_usage_errors_before_the_cell_runs(ip, tmp_path, line, message):
    line = line.format(missing=tmp_path / "missing", tmp=tmp_path)
    result, _ = run(ip, f"%%autodiff {line}\nran = True\nx = Tensor(2.0)\nloss = x * x\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert re.search(message, str(result.error_in_exec))
    assert "ran" not in ip.user_ns


def test_export_of_a_leaf_is_a_usage_error(ip, tmp_path):
    result, _ = run(ip, f"%%autodiff x --export {tmp_path}/x.html\nx = Tensor(2.0)\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "x is a leaf tensor, so its timeline has nothing to step through" in str(result.error_in_exec)


# ------------------------------------------------------------------ whole files or nothing

def half_then_full_disk(monkeypatch, method, after=0):
    """Make Path.<method> write half its content and then fail as a full disk does
    (after `after` writes that succeed)."""
    import errno
    real = getattr(Path, method)
    calls = []

    def write(self, content, *args, **kwargs):
        calls.append(self)
        if len(calls) <= after:
            return real(self, content, *args, **kwargs)
        real(self, content[: len(content) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, method, write)
    return calls


def test_a_failed_save_html_keeps_the_previous_page_whole(stepper, tmp_path, monkeypatch):
    path = stepper.save_html(tmp_path / "t.html")
    good = path.read_bytes()
    calls = half_then_full_disk(monkeypatch, "write_text")
    with pytest.raises(OSError, match=r"^save_html: cannot write .*t\.html: No space left on device\.$"):
        stepper.save_html(path)
    assert calls and calls[0] != path                   # the half-written file was not the page
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.html"]   # no temporary file left


def test_a_rename_that_fails_keeps_the_previous_page_and_leaves_no_temporary_file(stepper, tmp_path, monkeypatch):
    path = stepper.save_html(tmp_path / "t.html")
    good = path.read_bytes()

    def refuse(src, dst):
        raise OSError(18, "Invalid cross-device link")
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="save_html: cannot write"):
        stepper.save_html(path)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["t.html"]


def test_an_interrupted_save_html_leaves_no_temporary_file(stepper, tmp_path, monkeypatch):
    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(Path, "write_text", interrupt)
    with pytest.raises(KeyboardInterrupt):
        stepper.save_html(tmp_path / "t.html")
    assert os.listdir(tmp_path) == []


def test_a_rewritten_page_keeps_its_permissions_and_a_new_one_gets_the_usual_ones(stepper, tmp_path):
    path = stepper.save_html(tmp_path / "t.html")
    usual = tmp_path / "usual.txt"
    usual.write_text("a file made the usual way")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(usual.stat().st_mode)  # not a temporary's 0600
    path.chmod(0o640)
    stepper.save_html(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_failed_save_frames_keeps_the_previous_frames_whole(stepper, tmp_path, monkeypatch):
    folder = tmp_path / "frames"
    paths = stepper.save_frames(folder, format="svg")
    good = {p.name: p.read_bytes() for p in paths}
    half_then_full_disk(monkeypatch, "write_text", after=2)
    with pytest.raises(OSError, match=r"^save_frames: cannot write .*step-002\.svg: No space left on device\.$"):
        stepper.save_frames(folder, format="svg")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == good


def test_frames_of_a_longer_earlier_export_are_removed(stepper, tmp_path):
    folder = tmp_path / "frames"
    long = stepper.save_frames(folder, format="svg")
    (folder / "notes.txt").write_text("mine")
    x = Tensor(2.0, name="x")
    short = BackwardStepper(x * x, forward=True).save_frames(folder, format="svg")
    assert len(short) < len(long)
    assert sorted(p.name for p in folder.iterdir()) == sorted([p.name for p in short] + ["notes.txt"])


@pytest.mark.parametrize("name, found", [("t.txt", "ends in .txt"), ("t", "has no extension")])
def test_save_html_into_a_file_that_is_not_a_page_is_refused(stepper, tmp_path, name, found):
    with pytest.raises(ValueError, match=rf"^save_html: .*{name} {found}, but the page is HTML: give a file name "
                                         r"ending in \.html or \.htm"):
        stepper.save_html(tmp_path / name)
    assert os.listdir(tmp_path) == []
    assert stepper.save_html(tmp_path / "T.HTM").exists()


def test_a_missing_folder_is_named_as_given(stepper, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"^save_html: the folder ~/away does not exist; create it first\.$"):
        stepper.save_html("~/away/t.html")
    with pytest.raises(FileNotFoundError, match=r"^save_frames: the folder ~/away does not exist"):
        stepper.save_frames("~/away/frames")
    assert stepper.save_html("~/t.html") == tmp_path / "t.html"


def test_a_page_behind_a_symbolic_link_is_rewritten_and_the_link_kept(stepper, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    real = stepper.save_html(site / "page.html")
    link = tmp_path / "link.html"
    link.symlink_to(real)
    real.write_text("old page")
    stepper.save_html(link)
    assert link.is_symlink() and real.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(os.listdir(site)) == ["page.html"]


def test_the_page_runs_the_widget_s_script_with_play_s_interval_from_the_payload():
    from ad_magic.widgets.export import page_html
    from ad_magic.widgets.timeline import PLAY_INTERVAL_MS

    x = Tensor(2.0, name="x")
    s = BackwardStepper(x * x + x)
    page = page_html(s.timeline)
    data = json.loads(re.search(r'id="ad-timeline-data">(.*?)</script>', page, re.S).group(1))
    assert data["play_interval_ms"] == PLAY_INTERVAL_MS
    assert s._esm in page             # the widget's own module, inlined whole
