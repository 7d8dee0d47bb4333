"""The magic's options as IPython reads its own: quoted values, comma lists with spaces,
an output name that is not a name, --export's file name — each checked before the cell
runs — and --descent on data the user changed between cells."""
from __future__ import annotations

import os

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from ad_magic.magic.magics import _split_options
from ad_magic.widgets import DescentExplorer


@pytest.fixture
def ip(magic_shell):
    return magic_shell("from ad_magic import Tensor\nimport numpy as np")


def run(ip, source):
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, "\n".join(o.data.get("text/plain", "") for o in captured.outputs)


def run_ok(ip, source):
    result, texts = run(ip, source)
    assert result.success, repr(result.error_in_exec)
    return texts


def usage_error(ip, source) -> str:
    result, _ = run(ip, source)
    assert isinstance(result.error_in_exec, UsageError), repr(result.error_in_exec)
    text = str(result.error_in_exec)
    assert "\n" not in text
    return text


QUADRATIC = "ran = True\nx = Tensor(3.0)\nloss = (x - 1) ** 2\n"


# ------------------------------------------------------------------ quoted values

def test_export_to_a_quoted_path_with_spaces_writes_the_page(ip, tmp_path):
    folder = tmp_path / "my slides"
    folder.mkdir()
    run_ok(ip, f'%%autodiff --export "{folder}/t.html"\nx = Tensor(2.0)\nloss = x * x\n')
    assert (folder / "t.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(os.listdir(folder)) == ["t.html"]


def test_the_line_magic_exports_to_a_quoted_path_with_spaces_too(ip, tmp_path):
    folder = tmp_path / "my slides"
    folder.mkdir()
    ip.run_cell("t = Tensor(3.0)")
    run_ok(ip, f"%autodiff --export '{folder}/line page.html' t * t + 1")
    assert (folder / "line page.html").exists()
    assert float(ip.user_ns["t"].grad) == 6.0


def test_a_quoted_optimizer_list_with_spaces_races_them(ip):
    run_ok(ip, f'%%autodiff --descent --optimizer "sgd, adam" --steps 5\n{QUADRATIC}')
    assert list(ip.user_ns["_autodiff"].histories) == ["sgd", "adam"]


def test_an_unclosed_quote_is_a_usage_error_before_the_cell_runs(ip):
    text = usage_error(ip, f'%%autodiff --export "/tmp/t.html\n{QUADRATIC}')
    assert "No closing quotation" in text and "close every quote" in text
    assert "ran" not in ip.user_ns


def test_the_line_magics_options_are_split_shell_style_and_its_expression_kept_as_written():
    options, expression = _split_options('--export "a b/c.html" --lr 0.5 x * "s p"')
    assert options == ["--export", "a b/c.html", "--lr", "0.5"]
    assert expression == 'x * "s p"'


# ------------------------------------------------------------------ names and lists

@pytest.mark.parametrize("line, message", [
    ("--descent --optimizer sgd ,adam", "the output name ',adam' is not a Python variable name"),
    ("1loss", "the output name '1loss' is not a Python variable name"),
    ("lambda", "the output name 'lambda' is not a Python variable name"),
    ("--descent --optimizer sgd, adam", "--optimizer 'sgd,' has an empty name"),
    ("--wrt x, loss", "--wrt 'x,' has an empty name"),
    ("--descent --optimizer adma", "unknown optimizer 'adma'; choose one of sgd, momentum, adam, newton "
                                   "(did you mean 'adam'?)"),
    ("--descent --lr fast", "invalid float value: 'fast'"),
    ("--descent --lr nan", "--lr must be a positive finite number, got nan"),
    ("--export out.txt", "out.txt ends in .txt, but the page is HTML: give a file name ending in .html"),
    ("--export notes", "notes has no extension, but the page is HTML"),
])
def test_option_mistakes_are_found_before_the_cell_runs(ip, line, message):
    text = usage_error(ip, f"%%autodiff {line}\n{QUADRATIC}")
    assert message in text, text
    assert "ran" not in ip.user_ns


def test_a_split_comma_list_says_how_to_write_it(ip):
    text = usage_error(ip, f"%%autodiff --descent --optimizer sgd ,adam\n{QUADRATIC}")
    assert 'quoted: --optimizer "sgd, adam"' in text


def test_an_unquoted_path_with_spaces_says_to_quote_it(ip, tmp_path):
    text = usage_error(ip, f"%%autodiff --export {tmp_path}/my slides/t.html\n{QUADRATIC}")
    assert "the output name 'slides/t.html' is not a Python variable name" in text
    assert 'quoted: --export "my slides/t.html"' in text
    assert "ran" not in ip.user_ns


def test_export_into_a_txt_file_writes_nothing(ip, tmp_path):
    usage_error(ip, f"%%autodiff --export {tmp_path}/out.txt\n{QUADRATIC}")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("given, folder", [("nowhere/t.html", "nowhere"), ("~/nowhere/t.html", "~/nowhere")])
def test_a_missing_export_folder_is_named_as_the_user_gave_it(ip, tmp_path, monkeypatch, given, folder):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    text = usage_error(ip, f"%%autodiff --export {given}\n{QUADRATIC}")
    assert f"the folder {folder} does not exist; create it first." in text
    text = usage_error(ip, f'%%autodiff --export "my {given}"\n{QUADRATIC}')
    assert f"the folder my {folder} does not exist" in text


def test_the_line_magics_mistakes_are_usage_errors_too(ip, tmp_path):
    ip.run_cell("t = Tensor(3.0)")
    assert "ends in .txt" in usage_error(ip, f"%autodiff --export {tmp_path}/o.txt t * t")
    assert "No closing quotation" in usage_error(ip, "%autodiff --export 'o.html t * t")


# ------------------------------------------------------------------ --descent and the user's data

def test_descent_on_a_loss_from_an_earlier_cell_starts_from_the_data_set_since(ip):
    run_ok(ip, "%%autodiff --descent --lr 0.1 --steps 3\nx = Tensor(3.0)\nloss = (x - 1) ** 2\n")
    run_ok(ip, "x.data = 5.0\nfrom ad_magic.optim import descend\nh = descend(loss, [x], lr=0.1, steps=2)")
    h = ip.user_ns["h"]
    assert h.losses[0] == 16.0 and float(h.grads[0][0]) == 8.0


def test_descent_uses_a_constant_changed_in_an_earlier_cell(ip):
    run_ok(ip, "x = Tensor(0.0)\nc = Tensor(1.0, requires_grad=False)\nscaled = c * 2")
    run_ok(ip, "c.data = 3.0")
    # the cell reuses `scaled`, computed from c before c changed: descent replays it too
    run_ok(ip, "%%autodiff --descent --lr 0.25 --steps 40\nloss = (x - scaled) ** 2\n")
    e = ip.user_ns["_autodiff"]
    assert e.losses[0] == 36.0 and ip.user_ns["x"].item() == pytest.approx(6.0)


def test_running_the_same_descent_cell_twice_gives_the_same_run(ip):
    cell = f"%%autodiff --descent --optimizer momentum,adam --lr 0.05 --steps 8\n{QUADRATIC}"
    run_ok(ip, cell)
    first = {name: list(h.losses) for name, h in ip.user_ns["_autodiff"].histories.items()}
    run_ok(ip, cell)
    second = {name: list(h.losses) for name, h in ip.user_ns["_autodiff"].histories.items()}
    assert first == second


def test_a_race_in_the_magic_leaves_the_first_optimizers_last_state(ip):
    run_ok(ip, f"%%autodiff --descent --optimizer adam,sgd --lr 0.05 --steps 6\n{QUADRATIC}")
    e, x = ip.user_ns["_autodiff"], ip.user_ns["x"]
    assert isinstance(e, DescentExplorer)
    adam = e.histories["adam"]
    assert x.item() == float(adam.params[-1][0]) and float(x.grad) == float(adam.grads[-1][0])
    assert ip.user_ns["loss"].item() == adam.losses[-1]
    assert np.isclose(ip.user_ns["_autodiff_grads"]["x"], float(adam.grads[-1][0]))
