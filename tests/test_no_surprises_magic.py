"""What a user meets in the magic: --export on any graph writes the page or says why
before the cell runs (read-only folders, broken or looping links), options after
``%autodiff``'s expression are applied, a mistyped option gets a did-you-mean, and a
descent checks each input once and draws its landscape without touching the graph."""
from __future__ import annotations

import collections
import os
import sys

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output


@pytest.fixture
def ip(magic_shell):
    return magic_shell("from ad_magic import Tensor\nimport numpy as np")


def run(ip, source):
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, "\n".join(o.data.get("text/plain", "") for o in captured.outputs)


def usage_error(ip, source) -> str:
    result, _ = run(ip, source)
    assert isinstance(result.error_in_exec, UsageError), repr(result.error_in_exec)
    text = str(result.error_in_exec)
    assert "\n" not in text
    return text


QUADRATIC = "ran = True\nx = Tensor(3.0)\nloss = (x - 1) ** 2\n"


# ------------------------------------------------------------------ --export on other libraries' graphs

MICROGRAD_LIKE = '''
class Value:
    def __init__(self, data, children=(), op=""):
        self.data, self.grad, self._prev, self._op = data, 0.0, set(children), op
        self._backward = lambda: None
    def __mul__(self, other):
        out = Value(self.data * other.data, (self, other), "*")
        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out
'''


def test_export_on_a_micrograd_style_result_writes_the_page(ip, tmp_path):
    ip.run_cell(MICROGRAD_LIKE)
    page = tmp_path / "v.html"
    result, texts = run(ip, f"%%autodiff --export {page}\na = Value(2.0)\nb = Value(3.0)\nloss = a * b\n")
    assert result.success, repr(result.error_in_exec)
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "Timeline written to" in texts


def test_export_on_a_torch_result_writes_the_page(ip, tmp_path):
    pytest.importorskip("torch")
    page = tmp_path / "t.html"
    result, _ = run(ip, f"%%autodiff --static --export {page}\nimport torch\n"
                        "w = torch.tensor(2.0, requires_grad=True)\nloss = w * w * 3\n")
    assert result.success, repr(result.error_in_exec)
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# ------------------------------------------------------------------ --export checked before the cell runs

def _read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    return folder / "t.html", "is read-only"


def _broken_link(tmp_path):
    link = tmp_path / "broken.html"
    link.symlink_to(tmp_path / "missing" / "t.html")
    return link, "is a symbolic link to"


def _looping_link(tmp_path):
    link = tmp_path / "loop.html"
    link.symlink_to(link)
    return link, "loops back on itself"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and symbolic links")
@pytest.mark.parametrize("make", [_read_only, _broken_link, _looping_link])
def test_an_export_path_that_cannot_be_written_is_refused_before_the_cell_runs(ip, tmp_path, make):
    path, says = make(tmp_path)
    try:
        text = usage_error(ip, f"%%autodiff --export {path}\n{QUADRATIC}")
    finally:
        os.chmod(tmp_path / "ro", 0o755) if (tmp_path / "ro").exists() else None
    assert says in text and text.startswith("%%autodiff --export:")
    assert "ran" not in ip.user_ns


# ------------------------------------------------------------------ options after %autodiff's expression

def test_options_after_the_line_magics_expression_are_applied(ip):
    ip.run_cell("x = Tensor(3.0)\nloss = (x - 1) ** 2")
    result, _ = run(ip, "%autodiff loss --descent --lr 0.1 --steps 40")
    assert result.success, repr(result.error_in_exec)
    assert float(ip.user_ns["x"].data) == pytest.approx(1.0, abs=1e-3)
    assert type(ip.user_ns["_autodiff"]).__name__ == "DescentExplorer"


def test_options_before_and_after_the_expression_mix(ip):
    ip.run_cell("x = Tensor(3.0)")
    result, _ = run(ip, "%autodiff --static x * x + 1 --check")
    assert result.success, repr(result.error_in_exec)
    assert ip.user_ns["_autodiff"] is None     # --static: no widget


def test_a_mistyped_option_after_the_expression_says_did_you_mean(ip):
    ip.run_cell("x = Tensor(3.0)")
    text = usage_error(ip, "%autodiff x * x --descent --setps 3")
    assert "did you mean --steps?" in text


# ------------------------------------------------------------------ wording (issue 24, item 9)

@pytest.mark.parametrize("line, message", [
    ("--lr 0.1", "--lr only applies with --descent"),
    ("--lr 0.1 --steps 3", "--lr and --steps only apply with --descent"),
    ("--descent --setps 3", "did you mean --steps?"),
    ("--descnet", "did you mean --descent?"),
])
def test_option_mistakes_read_well(ip, line, message):
    text = usage_error(ip, f"%%autodiff {line}\n{QUADRATIC}")
    assert message in text, text
    assert "ran" not in ip.user_ns


# ------------------------------------------------------------------ one check of each input


def test_a_race_checks_each_input_once_and_draws_without_touching_the_graph(ip, monkeypatch):
    """%%autodiff --descent --optimizer sgd,adam: check_descent once; forward() on the
    user's graph only for the descents themselves (51 per run) and one settle; the
    contour is sampled on a detached copy."""
    from ad_magic.engine import backprop, optim

    counts = collections.Counter()
    real_check, real_forward = optim.check_descent, backprop.run_forward

    def check(*args, **kwargs):
        counts["check_descent"] += 1
        return real_check(*args, **kwargs)

    def forward(root, **kwargs):
        counts[id(root)] += 1
        return real_forward(root, **kwargs)

    monkeypatch.setattr(optim, "check_descent", check)
    monkeypatch.setattr(backprop, "run_forward", forward)
    result, _ = run(ip, "%%autodiff --descent --optimizer sgd,adam --steps 50\n"
                        "x = Tensor(3.0)\ny = Tensor(2.0)\nloss = (x - 1) ** 2 + 2 * (y + 0.5) ** 2\n")
    assert result.success, repr(result.error_in_exec)
    loss = ip.user_ns["_autodiff_output"]
    assert counts["check_descent"] == 1
    assert counts[id(loss)] == 2 * 51 + 1
    assert sum(v for k, v in counts.items() if k not in ("check_descent", id(loss))) > 0   # the copy's replays


def test_the_landscape_is_sampled_on_a_copy_of_the_graph():
    import numpy as np

    from ad_magic import Tensor
    from ad_magic.widgets.descent_runs import DescentRuns

    x, y = Tensor(3.0), Tensor(2.0)
    loss = (x - 1) ** 2 + 2 * (y + 0.5) ** 2
    runs = DescentRuns(loss, [x, y], steps=3)
    runs.run()
    nodes = backprop_nodes(loss)
    before = [(np.array(t.data), None if t._grad is None else np.array(t.grad)) for t in nodes]
    axes, z = runs.sample([(-5.0, 5.0), (-5.0, 5.0)])
    assert np.isfinite(z).all()
    after = [(np.array(t.data), None if t._grad is None else np.array(t.grad)) for t in nodes]
    for (d0, g0), (d1, g1) in zip(before, after):
        np.testing.assert_array_equal(d0, d1)
        assert (g0 is None and g1 is None) or np.array_equal(g0, g1)


def backprop_nodes(loss):
    from ad_magic.engine import topological_order
    return topological_order(loss)


def test_a_detached_copy_shares_nothing_and_replays_like_the_original():
    import numpy as np

    from ad_magic import Tensor
    from ad_magic.engine.backprop import detached_copy

    w = Tensor([1.0, 2.0])
    X = Tensor([[1.0, 0.0], [0.0, 3.0]], requires_grad=False)
    loss = ((X @ w).tanh() * 2.0 + w[0]).sum()
    copy, copies = detached_copy(loss)
    assert copy is not loss and all(id(c) not in copies for c in copies.values())
    copies[id(w)].data = np.array([0.5, -1.0])
    copy.forward()
    assert loss.item() == pytest.approx(float((np.tanh(np.array([1.0, 6.0])) * 2 + 1).sum()))
    w2 = Tensor([0.5, -1.0])
    expected = ((X @ w2).tanh() * 2.0 + w2[0]).sum().item()
    assert copy.item() == pytest.approx(expected)
