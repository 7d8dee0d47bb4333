"""The %%autodiff / %autodiff magics, headless through IPython's InteractiveShell.

Each test runs cells the way a notebook would (``ip.run_cell``) and looks at what a
learner would see: the MIME bundles displayed, the namespace afterwards, the error shown.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

from ad_magic import Tensor, topological_order
from ad_magic.engine.formatting import format_number
from ad_magic.magic.magics import MAX_STEPS, AutodiffMagics, CellSyntaxError, GradientTable
from ad_magic.widgets import BackwardStepper, DescentExplorer


def get_ipython():
    """The test suite's one InteractiveShell (started on first use)."""
    globalipapp.start_ipython()
    return globalipapp.get_ipython()


SVG = "image/svg+xml"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def ip(magic_shell):
    return magic_shell("from ad_magic import Tensor\nimport numpy as np")


class Ran:
    """What one cell showed: its result, displayed bundles, stdout and stderr."""

    def __init__(self, result, captured):
        self.result = result
        self.outputs = [o.data for o in captured.outputs]
        self.stdout, self.stderr = captured.stdout, captured.stderr

    def with_mime(self, mime):
        return [o[mime] for o in self.outputs if mime in o]

    @property
    def texts(self):
        return "\n".join(o.get("text/plain", "") for o in self.outputs)

    @property
    def error(self):
        return self.result.error_in_exec


def run(ip, source):
    with capture_output() as captured:
        result = ip.run_cell(source)
    return Ran(result, captured)


def run_ok(ip, source):
    ran = run(ip, source)
    assert ran.result.success, f"cell failed: {ran.error!r}\n{ran.stdout}\n{ran.stderr}"
    return ran


def usage_error(ip, source):
    ran = run(ip, source)
    assert isinstance(ran.error, UsageError), f"expected a UsageError, got {ran.error!r}"
    assert "Traceback" not in ran.stdout + ran.stderr
    return str(ran.error)


def svg_texts(svg):
    """The text lines drawn in an SVG (node labels)."""
    return [html.unescape(t).strip() for t in re.findall(r">([^<>]+)</text>", svg)]


# --------------------------------------------------------------------- the extension

def test_load_registers_and_unload_removes_the_magics():
    shell = get_ipython()
    shell.run_line_magic("unload_ext", "ad_magic")   # a clean start whatever ran before
    assert shell.find_cell_magic("autodiff") is None
    shell.run_line_magic("load_ext", "ad_magic")
    assert shell.find_cell_magic("autodiff") is not None
    assert shell.find_line_magic("autodiff") is not None
    assert isinstance(shell.magics_manager.registry.get("AutodiffMagics"), AutodiffMagics)
    shell.run_line_magic("unload_ext", "ad_magic")
    assert shell.find_cell_magic("autodiff") is None
    assert shell.find_line_magic("autodiff") is None
    assert "AutodiffMagics" not in shell.magics_manager.registry
    with capture_output():
        result = shell.run_cell("%%autodiff\nx = 1\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "not found" in str(result.error_in_exec)


def test_loading_twice_is_harmless():
    import ad_magic

    shell = get_ipython()
    shell.run_line_magic("load_ext", "ad_magic")
    shell.run_line_magic("load_ext", "ad_magic")       # IPython: "already loaded"
    ad_magic.load_ipython_extension(shell)             # and directly, twice
    ad_magic.load_ipython_extension(shell)
    ran = run_ok(shell, "%%autodiff\nfrom ad_magic import Tensor\nx = Tensor(2.0)\nx * x\n")
    assert float(shell.user_ns["x"].grad) == 4.0
    assert len(ran.with_mime(SVG)) == 1, "one graph, not one per registration"
    shell.run_line_magic("unload_ext", "ad_magic")
    assert shell.find_cell_magic("autodiff") is None
    assert shell.find_line_magic("autodiff") is None


def test_the_magics_module_keeps_its_public_names():
    import ad_magic.magic.cell
    import ad_magic.magic.magics
    import ad_magic.magic.report

    assert GradientTable is ad_magic.magic.report.GradientTable
    assert CellSyntaxError is ad_magic.magic.cell.CellSyntaxError
    for name in ("AutodiffMagics", "GradientTable", "load_ipython_extension", "unload_ipython_extension"):
        assert name in ad_magic.magic.magics.__all__, name


def test_importing_the_package_stays_light():
    """`import ad_magic` (the engine) neither imports IPython nor the magics."""
    import subprocess
    import sys

    code = ("import sys, ad_magic; x = ad_magic.Tensor(2.0); (x * x).backward(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'IPython' or m == 'ad_magic.magic.magics'))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]", out.stdout


# ------------------------------------------------------------- the practical's examples

def test_practical_part_a_graph_of_x2_plus_4x_plus_2(ip):
    ran = run_ok(ip, "%%autodiff\nx = Tensor(3.0)\nloss = x * x + 4 * x + 2\n")
    svgs = ran.with_mime(SVG)
    assert len(svgs) == 1
    labels = svg_texts(svgs[0])
    assert "x" in labels and "loss" in labels, labels            # the user's names
    assert f"data {format_number(3)}" in labels and f"data {format_number(23)}" in labels, labels
    assert f"grad {format_number(10)}" in labels, labels          # dloss/dx = 2x + 4 at 3
    assert labels.count("mul") == 2 and labels.count("add") == 2
    assert float(ip.user_ns["x"].grad) == pytest.approx(2 * 3 + 4)


@pytest.mark.parametrize("x0", [-2.0, 0.0, 1.5, 3.0])
def test_gradient_of_x2_plus_4x_plus_2_is_2x_plus_4(ip, x0):
    run_ok(ip, f"%%autodiff\nx = Tensor({x0})\nloss = x ** 2 + 4 * x + 2\n")
    assert ip.user_ns["_autodiff_grads"]["x"] == pytest.approx(2 * x0 + 4)


def test_practical_part_b_check_is_9(ip):
    """d(x·x + 5x − 1)/dx at x = 2 is 9; the output is the cell's last expression."""
    ran = run_ok(ip, "%%autodiff\nx = Tensor(2.0)\nx * x + 5 * x - 1\n")
    assert float(ip.user_ns["x"].grad) == 9.0
    assert ip.user_ns["_autodiff_grads"] == {"x": pytest.approx(9.0)}
    table = ran.with_mime("text/html")
    assert len(table) == 1 and "<td" in table[0]
    row = [line for line in ran.texts.splitlines() if line.startswith("x ")]
    assert row and row[0].split()[-1] == format_number(9), ran.texts
    out = ip.user_ns["_autodiff_output"]
    assert isinstance(out, Tensor) and float(out.data) == 2 * 2 + 5 * 2 - 1
    # unnamed output: labelled with its expression
    assert "x * x + 5 * x - 1" in svg_texts(ran.with_mime(SVG)[0])


# ------------------------------------------------------------------ what is displayed

def test_default_shows_graph_table_and_stepper(ip):
    ran = run_ok(ip, "%%autodiff\nx = Tensor(2.0)\ny = Tensor(-1.0)\nloss = x * y + y.exp()\n")
    assert len(ran.with_mime(SVG)) == 1
    assert len(ran.with_mime(WIDGET)) == 1
    stepper = ip.user_ns["_autodiff"]
    assert isinstance(stepper, BackwardStepper)
    assert ran.with_mime(WIDGET)[0]["model_id"] == stepper.model_id
    assert stepper.output is ip.user_ns["loss"]
    assert stepper.n_steps > 0
    table = ran.with_mime("text/html")[0]
    assert ">x<" in table and ">y<" in table
    grads = ip.user_ns["_autodiff_grads"]
    assert grads["x"] == pytest.approx(-1.0)
    assert grads["y"] == pytest.approx(2.0 + np.exp(-1.0))


def test_static_shows_svg_and_no_widget(ip):
    ran = run_ok(ip, "%%autodiff --static\nx = Tensor(2.0)\nloss = x * x\n")
    assert len(ran.with_mime(SVG)) == 1
    assert ran.with_mime(WIDGET) == []
    assert ip.user_ns["_autodiff"] is None
    assert ip.user_ns["_autodiff_output"] is ip.user_ns["loss"]
    assert float(ip.user_ns["x"].grad) == 4.0


def pictures(ran) -> int:
    """How many graphs a cell displayed: an SVG image, a widget (the stepper and the
    explorer draw the graph inside; a widget's static fallback is the same picture), or
    an SVG inline in HTML. Plots (PNG) are not graphs."""
    count = 0
    for bundle in ran.outputs:
        if SVG in bundle or WIDGET in bundle:
            count += 1
        else:
            count += bundle.get("text/html", "").count("<svg")
    return count


_QUADRATIC = "x = Tensor(2.0)\ny = Tensor(-1.0)\nloss = (x - 1) ** 2 + 2 * (y + 0.5) ** 2\n"


@pytest.mark.parametrize("line", [
    "%%autodiff", "%%autodiff --static", "%%autodiff --check", "%%autodiff --wrt x",
    "%%autodiff --descent --steps 5", "%%autodiff --descent --steps 5 --static",
    "%%autodiff --descent --steps 5 --check",
    "%%autodiff --descent --steps 5 --optimizer sgd,momentum,adam",
    "%%autodiff --descent --steps 5 --optimizer sgd,adam --static",
    "%%autodiff --export {tmp}/steps.html", "%%autodiff --static --export {tmp}/steps.html",
])
def test_one_picture_per_cell(ip, line, tmp_path):
    ran = run_ok(ip, line.format(tmp=tmp_path) + "\n" + _QUADRATIC)
    assert pictures(ran) == 1, [sorted(o) for o in ran.outputs]


@pytest.mark.parametrize("source", ["%autodiff x * x + 1", "%autodiff --static x * x + 1",
                                    "%autodiff --descent --steps 3 x * x + 1"])
def test_one_picture_per_line_magic(ip, source):
    run_ok(ip, "x = Tensor(2.0)")
    ran = run_ok(ip, source)
    assert pictures(ran) == 1, [sorted(o) for o in ran.outputs]


@pytest.mark.parametrize("options", ["", "--static", "--wrt x"])
def test_one_picture_for_a_student_s_tensor(ip, options):
    from practical_solutions import namespace

    ip.user_ns.update(namespace())
    ran = run_ok(ip, f"%%autodiff y {options}\nx = Tensor(2.0)\ny = x * x + 5 * x + -1\n")
    assert pictures(ran) == 1, [sorted(o) for o in ran.outputs]
    table = ran.outputs[0]["text/plain"]
    # The constants 5 and -1 of the code are not rows of the table (the stepper shows them).
    assert "(5.0)" not in table and "(-1.0)" not in table and re.search(r"^x\s", table, re.M)


def test_one_picture_for_a_wrong_student_rule(ip):
    from practical_solutions import namespace
    from practical_solutions.mistakes import MISTAKES

    section, code = next((m[1], m[2]) for m in MISTAKES if m[0] == "mul's rule uses its own operand")
    ip.user_ns.update(namespace((section, code)))
    ran = run_ok(ip, "%%autodiff y\nx = Tensor(2.0)\ny = x * x + 5 * x + -1\n")
    assert pictures(ran) == 1
    assert "but the chain rule gives" in ran.texts


def test_one_picture_for_a_micrograd_value(ip):
    pytest.importorskip("micrograd")
    run_ok(ip, "from micrograd.engine import Value")
    ran = run_ok(ip, "%%autodiff\na = Value(2.0)\nb = Value(-3.0)\n(a * b + a).relu() + a ** 2\n")
    assert pictures(ran) == 1


def test_one_picture_for_a_torch_tensor(ip):
    pytest.importorskip("torch")
    run_ok(ip, "import torch")
    ran = run_ok(ip, "%%autodiff\nx = torch.tensor(2.0, requires_grad=True)\nloss = x * x + 3 * x\n")
    assert pictures(ran) == 1


def test_cell_variables_stay_like_a_normal_cell(ip):
    run_ok(ip, "%%autodiff\nx = Tensor(2.0)\nh = x * 3\nn = 7\nloss = h + 1\n")
    ns = ip.user_ns
    assert ns["n"] == 7
    assert isinstance(ns["h"], Tensor) and float(ns["h"].data) == 6.0
    assert float(ns["h"].grad) == 1.0 and float(ns["x"].grad) == 3.0
    assert ns["_autodiff_output"] is ns["loss"]


def test_nodes_are_labelled_with_names_bound_in_the_cell(ip):
    run_ok(ip, "old_alias = None")
    ran = run_ok(ip, "%%autodiff\nx = Tensor(2.0)\nhidden = x * x\nloss = hidden + x\n")
    labels = svg_texts(ran.with_mime(SVG)[0])
    assert {"x", "hidden", "loss"} <= set(labels)
    # a tensor bound to an older name too is labelled with the name from this cell
    ip.user_ns["an_old_name"] = ip.user_ns["x"]
    ran = run_ok(ip, "%%autodiff\nloss = x * 2\n")
    labels = svg_texts(ran.with_mime(SVG)[0])
    assert "an_old_name" in labels and "x" not in labels   # x not bound in this cell
    ran = run_ok(ip, "%%autodiff\nx = an_old_name\nloss = x * 2\n")
    labels = svg_texts(ran.with_mime(SVG)[0])
    assert "x" in labels and "an_old_name" not in labels


def test_name_chooses_the_output(ip):
    ran = run_ok(ip, "%%autodiff z\nx = Tensor(2.0)\nz = x * 5\nloss = z * z\nloss\n")
    assert ip.user_ns["_autodiff_output"] is ip.user_ns["z"]
    assert float(ip.user_ns["x"].grad) == 5.0
    assert "grad ∂z/∂tensor" in ran.texts


def test_output_falls_back_to_loss_when_the_last_expression_is_not_a_tensor(ip):
    run_ok(ip, "%%autodiff\nx = Tensor(2.0)\nloss = x * x * x\nprint('done')\n")
    assert ip.user_ns["_autodiff_output"] is ip.user_ns["loss"]
    assert float(ip.user_ns["x"].grad) == 12.0


def test_wrt_limits_the_table(ip):
    ran = run_ok(ip, "%%autodiff --wrt y\nx = Tensor(2.0)\ny = Tensor(3.0)\nloss = x * y\n")
    assert ip.user_ns["_autodiff_grads"] == {"y": pytest.approx(2.0)}
    rows = [line.split()[0] for line in ran.texts.splitlines()[2:] if line.strip()]
    assert "y" in rows and "x" not in rows


def test_wrt_accepts_several_names_and_intermediates(ip):
    run_ok(ip, "%%autodiff --wrt x,h\nx = Tensor(2.0)\nh = x * x\nloss = 3 * h\n")
    assert ip.user_ns["_autodiff_grads"] == {"x": pytest.approx(12.0), "h": pytest.approx(3.0)}


def test_wrt_quoted_with_spaces(ip):
    run_ok(ip, "%%autodiff --wrt 'x, y'\nx = Tensor(2.0)\ny = Tensor(3.0)\nz = Tensor(1.0)\nx * y * z\n")
    assert ip.user_ns["_autodiff_grads"] == {"x": pytest.approx(3.0), "y": pytest.approx(2.0)}


def test_arrays_and_unnamed_leaves(ip):
    ran = run_ok(ip, "%%autodiff\nw = Tensor([1.0, -2.0, 3.0])\nloss = (w * Tensor([2.0, 2.0, 2.0])).sum()\n")
    grads = ip.user_ns["_autodiff_grads"]
    np.testing.assert_allclose(grads["w"], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(grads["leaf₁"], [1.0, -2.0, 3.0])     # named as in the picture and stepper
    assert "(3,)" in ran.texts


# -------------------------------------------------------------------------- --check

def _rel_errors(text):
    return [(float(m.group(1)), m.group(2)) for m in re.finditer(r"(\d\.\de[-+]\d+) (ok|MISMATCH)", text)]


def test_check_shows_tiny_relative_errors(ip):
    ran = run_ok(ip, "%%autodiff --check\nx = Tensor(2.0)\nw = Tensor([0.5, -1.0])\n"
                     "loss = (w * x).tanh().sum() + x.log() * x\n")
    errors = _rel_errors(ran.texts)
    assert len(errors) == 2, ran.texts
    assert all(e < 1e-6 and mark == "ok" for e, mark in errors), errors
    assert "finite differences" in ran.texts and "finite differences" in ran.with_mime("text/html")[0]


def test_check_leaves_the_namespace_as_the_cell_left_it(ip):
    run_ok(ip, "%%autodiff --check\nx = Tensor(2.0)\nh = x * x\nloss = h + 5 * x - 1\n")
    ns = ip.user_ns
    assert float(ns["x"].data) == 2.0 and float(ns["x"].grad) == 9.0
    assert ns["_autodiff_output"] is ns["loss"]
    assert ns["loss"]._function is not None and float(ns["loss"].grad) == 1.0
    assert any(t is ns["h"] for t in topological_order(ns["loss"])) and float(ns["h"].grad) == 1.0


def test_check_finds_a_wrong_derivative(ip):
    """A hand-written op whose _backward is wrong (3x instead of 2x): --check says so."""
    ip.run_cell(
        "def bad_square(t):\n"
        "    out = Tensor(t.data ** 2)\n"
        "    out._parents = {t}\n"
        "    out._function = 'bad_square'\n"
        "    def _backward():\n"
        "        t.grad = t.grad + 3 * t.data * out.grad\n"
        "    out._backward = _backward\n"
        "    return out\n"
    )
    ran = run_ok(ip, "%%autodiff --check\nx = Tensor(2.0)\nloss = bad_square(x)\n")
    errors = _rel_errors(ran.texts)
    assert errors and errors[0][1] == "MISMATCH" and errors[0][0] == pytest.approx(1 / 3, rel=0.02)


def test_check_marks_leaves_it_cannot_nudge(ip):
    ran = run_ok(ip, "%%autodiff --check\nx = Tensor(2.0)\nloss = x * Tensor(3.0)\n")
    assert "cannot be nudged" in ran.texts
    assert len(_rel_errors(ran.texts)) == 1


def test_check_says_when_a_rerun_makes_the_tensor_anew(ip):
    """A walrus (or for/with) binding is made anew by each re-run: nudging the first
    run's tensor would change nothing, so the row says so instead of a false MISMATCH."""
    ran = run_ok(ip, "%%autodiff --check\nx = Tensor(1.0)\nloss = ((y := Tensor(2.0)) - 5) ** 2 + x * x\n")
    assert "made anew when the cell re-runs" in ran.texts
    assert [mark for _, mark in _rel_errors(ran.texts)] == ["ok"]
    assert ip.user_ns["_autodiff_grads"]["y"] == pytest.approx(-6.0)


def test_rerun_output_is_silent(ip):
    ran = run_ok(ip, "%%autodiff --check\nx = Tensor([1.0, 2.0, 3.0])\nprint('hello')\nloss = (x * x).sum()\n")
    assert ran.stdout.count("hello") == 1


# ------------------------------------------------------------------------- --descent

def test_descent_reaches_the_minimum_of_a_quadratic(ip):
    ran = run_ok(ip, "%%autodiff --descent --lr 0.1 --steps 60\nx = Tensor(3.0)\nloss = (x - 2) ** 2\n")
    ns = ip.user_ns
    explorer = ns["_autodiff"]
    assert isinstance(explorer, DescentExplorer)
    assert len(explorer.history) == 61
    assert float(ns["x"].data) == pytest.approx(2.0, abs=1e-4)          # the minimiser
    assert explorer.params[0] is ns["x"]                                  # not re-created
    assert float(ns["loss"].data) == pytest.approx((float(ns["x"].data) - 2) ** 2)
    assert ns["_autodiff_output"] is ns["loss"]
    assert explorer.losses[0] == pytest.approx(1.0)
    assert explorer.losses[-1] < 1e-8
    assert len(ran.with_mime(WIDGET)) == 1
    assert "Gradient descent (sgd, lr=0.1)" in ran.texts


def test_descent_graph_is_labelled_with_the_cells_names(ip):
    run_ok(ip, "%%autodiff --descent --steps 5\nx = Tensor(3.0)\nd = x - 2\nloss = d * d\n")
    ns = ip.user_ns
    labels = svg_texts(ns["_autodiff"].svg(3))
    assert {"x", "d", "loss"} <= set(labels), labels
    # the labels were lent for the layout only: no tensor keeps a name it was not given
    assert ns["x"].name is None and ns["loss"].name is None and ns["d"].name is None


def test_descent_two_parameters_with_each_optimizer(ip):
    for optimizer in ("sgd", "momentum", "adam"):
        run_ok(ip, f"%%autodiff loss --descent --optimizer {optimizer} --lr 0.05 --steps 300\n"
                   "a = Tensor(0.0)\nb = Tensor(0.0)\nloss = (a - 1) ** 2 + 2 * (b + 3) ** 2\n")
        assert float(ip.user_ns["a"].data) == pytest.approx(1.0, abs=1e-2), optimizer
        assert float(ip.user_ns["b"].data) == pytest.approx(-3.0, abs=1e-2), optimizer
        assert type(ip.user_ns["_autodiff"].optimizer).__name__.lower() == optimizer


def test_descent_keeps_parameters_defined_in_an_earlier_cell(ip):
    run_ok(ip, "w = Tensor([1.5, -0.5])")
    w = ip.user_ns["w"]
    run_ok(ip, "%%autodiff --descent --steps 100\nloss = ((w - 1.0) ** 2).sum()\n")
    assert ip.user_ns["w"] is w
    np.testing.assert_allclose(w.data, [1.0, 1.0], atol=1e-6)


def test_descent_wrt_a_module(ip):
    run_ok(ip, "from ad_magic.nn import Linear, mse_loss\n"
               "X = Tensor(np.linspace(-1, 1, 8).reshape(8, 1), requires_grad=False)\n"
               "Y = Tensor(3 * np.linspace(-1, 1, 8).reshape(8, 1) + 0.5, requires_grad=False)\n")
    run_ok(ip, "%%autodiff --descent --wrt model --steps 200 --lr 0.3\n"
               "model = Linear(1, 1, seed=0)\nloss = mse_loss(model(X), Y)\n")
    model = ip.user_ns["model"]
    assert ip.user_ns["_autodiff"].params == [model.W, model.b]
    assert float(model.W.data[0, 0]) == pytest.approx(3.0, abs=1e-3)
    assert float(model.b.data[0]) == pytest.approx(0.5, abs=1e-3)


def test_descent_on_parameters_bound_anywhere_at_top_level(ip):
    """Leaves bound by tuple assignments and inside if/try blocks are parameters too."""
    run_ok(ip, "%%autodiff --descent --steps 200 --lr 0.1\n"
               "a, b = Tensor(0.0), Tensor(0.0)\n"
               "if True:\n"
               "    c = Tensor(5.0)\n"
               "try:\n"
               "    a = Tensor(-7.0)\n"
               "except Exception:\n"
               "    b = Tensor(-7.0)\n"
               "loss = (a - 1) ** 2 + (b - 2) ** 2 + (c + 1) ** 2\n")
    ns = ip.user_ns
    assert [float(ns[n].data) for n in "abc"] == pytest.approx([1.0, 2.0, -1.0], abs=1e-6)


def test_descent_with_check_checks_the_starting_point(ip):
    ran = run_ok(ip, "%%autodiff --descent --check --steps 40\nx = Tensor(3.0)\nloss = (x - 2) ** 4 + x\n")
    errors = _rel_errors(ran.texts)
    assert len(errors) == 1 and errors[0][0] < 1e-6 and errors[0][1] == "ok"
    row = [line for line in ran.texts.splitlines() if line.startswith("x ")][0]
    assert row.split()[:4] == ["x", "scalar", *map(format_number, (3, 5))], row   # 4(x-2)³ + 1 at x = 3
    assert float(row.split()[4]) == pytest.approx(5.0), row                       # finite differences
    assert isinstance(ip.user_ns["_autodiff"], DescentExplorer)
    assert float(ip.user_ns["x"].data) < 3.0


def test_descent_static_shows_pictures_not_the_widget(ip):
    ran = run_ok(ip, "%%autodiff --descent --static --steps 5\nx = Tensor(3.0)\nloss = (x - 2) ** 2\n")
    assert ran.with_mime(WIDGET) == []
    assert len(ran.with_mime(SVG)) == 1
    assert len(ran.with_mime("image/png")) == 1
    assert isinstance(ip.user_ns["_autodiff"], DescentExplorer)


def test_descent_runs_the_cell_once(ip):
    ran = run_ok(ip, "%%autodiff --descent --steps 10\nx = Tensor(3.0)\nprint('running')\nloss = (x - 2) ** 2\n")
    assert ran.stdout.count("running") == 1
    assert float(ip.user_ns["x"].data) < 2.2
    assert ip.user_ns["_autodiff"].params[0] is ip.user_ns["x"]


def test_descent_side_effects_happen_once(ip, tmp_path):
    """An append, a random draw and a file write in the cell happen once, not once per
    iteration; the loss keeps the one random target the cell drew."""
    log = tmp_path / "log.txt"
    run_ok(ip, "calls = []\nrng = np.random.default_rng(0)")
    run_ok(ip, "%%autodiff --descent --steps 200 --lr 0.1\n"
               "calls.append(1)\n"
               "target = float(rng.normal())\n"
               f"with open({str(log)!r}, 'a') as log_file:\n"
               "    log_file.write('ran\\n')\n"
               "x = Tensor(3.0)\n"
               "loss = (x - target) ** 2\n")
    ns = ip.user_ns
    assert len(ns["calls"]) == 1
    assert log.read_text() == "ran\n"
    assert float(ns["target"]) == pytest.approx(np.random.default_rng(0).normal())
    assert float(ns["x"].data) == pytest.approx(ns["target"], abs=1e-6)


def test_descent_on_a_walrus_binding(ip):
    run_ok(ip, "%%autodiff --descent --steps 100\nloss = ((y := Tensor(2.0)) - 5) ** 2\n")
    ns = ip.user_ns
    assert ns["_autodiff"].params == [ns["y"]]
    assert float(ns["y"].data) == pytest.approx(5.0, abs=1e-6)


def test_descent_on_for_and_with_targets(ip):
    run_ok(ip, "%%autodiff --descent --steps 100\n"
               "import contextlib\n"
               "for w in [Tensor(1.0)]:\n"
               "    pass\n"
               "with contextlib.nullcontext(Tensor(1.0)) as v:\n"
               "    loss = (w - 3) ** 2 + (v + 2) ** 2\n")
    ns = ip.user_ns
    assert float(ns["w"].data) == pytest.approx(3.0, abs=1e-6)
    assert float(ns["v"].data) == pytest.approx(-2.0, abs=1e-6)


def test_descent_augmented_assignments_run_once(ip):
    # x += 1 is part of the recorded graph: descent moves the leaf behind it.
    run_ok(ip, "%%autodiff --descent --steps 100\nx0 = Tensor(3.0)\nx = x0\nx += 1\nloss = (x - 2) ** 2\n")
    ns = ip.user_ns
    assert float(ns["x0"].data) == pytest.approx(1.0, abs=1e-6)
    assert float(ns["x"].data) == pytest.approx(2.0, abs=1e-6)     # x0 + 1, replayed
    # an in-place update of an earlier cell's parameter happens once, not per iteration
    run_ok(ip, "w = Tensor(0.0)")
    run_ok(ip, "%%autodiff --descent --steps 100\nw.data += 1\nloss = (w - 5) ** 2\n")
    assert ip.user_ns["_autodiff"].losses[0] == pytest.approx(16.0)
    assert float(ip.user_ns["w"].data) == pytest.approx(5.0, abs=1e-6)


def test_descent_leaves_the_cells_tensors_at_the_final_values(ip):
    run_ok(ip, "%%autodiff --descent --steps 40\nx = Tensor(3.0)\nd = x - 2\nloss = d * d\nvalue = float(loss.data)\n")
    ns = ip.user_ns
    x, d, loss = ns["x"], ns["d"], ns["loss"]
    assert [t for t in topological_order(loss) if t is d], "the first run's tensors, replayed"
    assert float(d.data) == pytest.approx(float(x.data) - 2)
    assert float(loss.data) == pytest.approx(float(d.data) ** 2)
    assert float(x.grad) == pytest.approx(2 * (float(x.data) - 2))
    assert ns["_autodiff_output"] is loss
    assert ns["value"] == 1.0        # a Python number computed by the cell is from its one run


def test_descent_control_flow_is_fixed_by_the_first_run(ip):
    """An `if` on a value is decided once, when the cell runs (as the help says)."""
    run_ok(ip, "%%autodiff --descent --lr 0.2 --steps 30\n"
               "x = Tensor(3.0)\n"
               "if float(x.data) < 2.5: raise ValueError('x went below 2.5')\n"
               "loss = (x - 2) ** 2\n")
    assert float(ip.user_ns["x"].data) == pytest.approx(2.0, abs=1e-4)
    assert "fixed by that first run" in ip.find_cell_magic("autodiff").__doc__


@pytest.mark.parametrize("where", ["in a run", "drawing the landscape"])
def test_descent_interrupted_puts_the_graph_back(ip, monkeypatch, where):
    # The explorer owns the graph's state: interrupted anywhere (here, midway through a
    # run, or while it draws the loss away from the path), it puts every tensor back.
    from ad_magic.engine import landscape_grid, optim
    real_descend = optim.run_descent      # the loop the explorer runs once its inputs are checked

    def descend(*args, **kwargs):
        record = kwargs["callback"]

        def callback(k, loss):
            record(k, loss)
            if k == 3:
                raise KeyboardInterrupt
        return real_descend(*args, **{**kwargs, "callback": callback})

    def sample(bounds, loss_at, loss_on_grid=None):
        loss_at([v + 100.0 for v, _ in bounds])
        raise KeyboardInterrupt

    if where == "in a run":
        monkeypatch.setattr(optim, "run_descent", descend)
    else:
        monkeypatch.setattr(landscape_grid, "sample", sample)
    ran = run(ip, "%%autodiff --descent\nx = Tensor(3.0)\nd = x - 2\nloss = d * d\n")
    assert isinstance(ran.error, KeyboardInterrupt)
    ns = ip.user_ns
    assert float(ns["x"].data) == 3.0 and float(ns["d"].data) == 1.0 and float(ns["loss"].data) == 1.0
    assert ns["x"].grad is None and ns["d"].grad is None and ns["loss"].grad is None
    assert ns["loss"]._function is not None


def test_descent_refuses_a_graph_it_cannot_replay(ip):
    ip.run_cell(
        "def square(t):\n"
        "    out = Tensor(t.data ** 2)\n"
        "    out._parents = {t}\n"
        "    out._function = 'square'\n"
        "    def _backward():\n"
        "        t.grad = t.grad + 2 * t.data * out.grad\n"
        "    out._backward = _backward\n"
        "    return out\n"
    )
    text = usage_error(ip, "%%autodiff --descent\nx = Tensor(2.0)\nloss = square(x)\n")
    assert "cannot replay" in text and "'square'" in text, text
    assert float(ip.user_ns["x"].data) == 2.0


def test_descent_stops_on_nan_and_keeps_finite_values(ip):
    ran = run_ok(ip, "%%autodiff --descent --lr 1.0 --steps 50\nx = Tensor(3.0)\nloss = x ** 4\n")
    explorer = ip.user_ns["_autodiff"]
    assert explorer.stopped is not None
    assert explorer.stopped in ran.texts and "smaller learning rate" in ran.texts
    assert f"stopped at iteration {len(explorer.history) - 1}" in ran.texts
    assert np.isfinite(ip.user_ns["x"].data)
    assert len(explorer.history) < 51


def test_line_magic_descent(ip):
    run_ok(ip, "t = Tensor(-1.0)")
    run_ok(ip, "%autodiff --descent --steps 80 (t - 0.5) ** 2")
    assert float(ip.user_ns["t"].data) == pytest.approx(0.5, abs=1e-6)


def test_without_a_renderer_the_magic_says_so_instead_of_failing(ip, monkeypatch):
    monkeypatch.setenv("AD_MAGIC_DOT", "/nonexistent/dot")
    ran = run_ok(ip, "%%autodiff\nx = Tensor(2.0)\nloss = x * x\n")
    assert ran.with_mime(SVG) == [] and ran.with_mime(WIDGET) == []
    assert "Graph not drawn" in ran.texts and "BackwardStepper not shown" in ran.texts
    assert ip.user_ns["_autodiff_grads"] == {"x": pytest.approx(4.0)}      # the table still
    ran = run_ok(ip, "%%autodiff --descent\nx = Tensor(3.0)\nloss = (x - 2) ** 2\n")
    assert "Gradient descent not shown" in ran.texts
    assert float(ip.user_ns["x"].data) == 3.0


# ------------------------------------------------------------------------ line magic

def test_line_magic_expression(ip):
    run_ok(ip, "x = Tensor(3.0)")
    ran = run_ok(ip, "%autodiff x*x + 1")
    assert float(ip.user_ns["x"].grad) == 6.0
    assert float(ip.user_ns["_autodiff_output"].data) == 10.0
    assert len(ran.with_mime(SVG)) == 1 and len(ran.with_mime(WIDGET)) == 1
    assert "x*x + 1" in svg_texts(ran.with_mime(SVG)[0])


def test_line_magic_options_and_expressions_that_look_like_options(ip):
    run_ok(ip, "x = Tensor(3.0)\nh = Tensor(2.0)")
    ran = run_ok(ip, "%autodiff --static --check --wrt x -h * x + {'k': x}['k']")
    assert ran.with_mime(WIDGET) == []
    assert ip.user_ns["_autodiff_grads"] == {"x": pytest.approx(-2.0 + 1.0)}
    assert _rel_errors(ran.texts)[0][1] == "ok"


# ------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("cell, message", [
    ("%%autodiff --frobnicate\nx = Tensor(1.0)\nx * x\n", "unrecognized arguments: --frobnicate"),
    ("%%autodiff\nn = 3\n", "no Tensor output"),
    ("%%autodiff\nv = Tensor([1.0, 2.0])\nv * v\n", "reduce it with .sum()"),
    ("%%autodiff --descent\nv = Tensor([1.0, 2.0])\nloss = v * v\n", "the loss 'loss' has shape (2,)"),
    ("%%autodiff --wrt nope\nx = Tensor(1.0)\nx * x\n", "no variable named 'nope'"),
    ("%%autodiff --wrt n\nn = 3\nx = Tensor(1.0)\nx * x\n", "'n' is an int, not a Tensor"),
    ("%%autodiff --wrt z\nz = Tensor(1.0)\nx = Tensor(1.0)\nx * x\n", "does not depend on 'z'"),
    ("%%autodiff --wrt x.data\nx = Tensor(1.0)\nx * x\n", "'x.data' is not a variable name"),
    ("%%autodiff --wrt c\nc = Tensor(1.0, requires_grad=False)\nx = Tensor(1.0)\nx * c\n",
     "'c' has requires_grad=False"),
    ("%%autodiff --descent --wrt h\nx = Tensor(1.0)\nh = x * 2\nh * h\n", "'h' is computed from other tensors"),
    ("%%autodiff --descent --steps 0\nx = Tensor(1.0)\nx * x\n", "--steps must be a whole number of at least 1"),
    ("%%autodiff --descent --steps -3\nx = Tensor(1.0)\nx * x\n", "--steps must be a whole number of at least 1"),
    ("%%autodiff --descent --steps 10000000\nx = Tensor(1.0)\nx * x\n", f"the limit of {MAX_STEPS} iterations"),
    ("%autodiff --descent --steps 10001 x * x", "the limit of 10000 iterations"),
    ("%%autodiff --descent --lr nan\nx = Tensor(1.0)\nx * x\n", "--lr must be a positive finite number, got nan"),
    ("%%autodiff --descent --lr inf\nx = Tensor(1.0)\nx * x\n", "--lr must be a positive finite number, got inf"),
    ("%%autodiff --descent --lr 0\nx = Tensor(1.0)\nx * x\n", "--lr must be a positive finite number"),
    ("%%autodiff --descent --lr -0.5\nx = Tensor(1.0)\nx * x\n", "--lr must be a positive finite number"),
    ("%%autodiff --descent --lr fast\nx = Tensor(1.0)\nx * x\n", "invalid float value: 'fast'"),
    ("%%autodiff --descent --optimizer rmsprop\nx = Tensor(1.0)\nx * x\n", "unknown optimizer 'rmsprop'"),
    ("%%autodiff --lr 0.1\nx = Tensor(1.0)\nx * x\n", "--lr only applies with --descent"),
    ("%%autodiff out\nx = Tensor(1.0)\nx * x\n", "did not define 'out'"),
    ("%%autodiff n\nn = 3\nx = Tensor(1.0)\n", "'n' is an int, not a Tensor"),
    ("%%autodiff --descent\nloss = Tensor(2.0) * Tensor(3.0)\n", "no parameters to descend on"),
    ("%%autodiff\nloss = Tensor(2.0, requires_grad=False) * 3\n",
     "does not depend on any tensor that needs a gradient"),
    ("%autodiff --check", "give an expression"),
    ("%autodiff 3 + 4", "the expression is an int, not a Tensor"),
])
def test_mistakes_are_usage_errors(ip, cell, message):
    text = usage_error(ip, cell)
    assert message in text, text
    assert text.count("\n") == 0


def test_loss_from_an_earlier_cell_is_not_the_output(ip):
    run_ok(ip, "loss = Tensor(1.0) * Tensor(2.0)")
    assert "no Tensor output" in usage_error(ip, "%%autodiff\nx = Tensor(5.0)\n")


def test_check_refuses_huge_tensors(ip):
    text = usage_error(ip, "%%autodiff --check\nw = Tensor(np.zeros(3000))\nloss = (w * w).sum()\n")
    assert "3000 elements" in text and "--wrt" in text


def test_option_errors_stop_before_running_the_cell(ip):
    usage_error(ip, "%%autodiff --descent --steps 0\nran = True\nx = Tensor(1.0)\nx * x\n")
    assert "ran" not in ip.user_ns
    usage_error(ip, f"%%autodiff --descent --steps {MAX_STEPS + 1}\nran = True\nx = Tensor(1.0)\nx * x\n")
    assert "ran" not in ip.user_ns


def test_a_module_whose_parameters_raise_does_not_break_the_magic(ip):
    """The magic scans the namespace for Modules (to label their parameters); one whose
    parameters() raises is skipped, not a failure of every cell."""
    run_ok(ip, "from ad_magic.nn import Module, Linear\n"
               "class Looping(Module):\n"
               "    def parameters(self):\n"
               "        raise RecursionError('maximum recursion depth exceeded')\n"
               "looping = Looping()\n"
               "model = Linear(1, 1, seed=0)\n")
    ran = run_ok(ip, "%%autodiff\nx = Tensor(2.0)\nloss = (model(x.reshape(1, 1)) * x).sum()\n")
    assert float(ip.user_ns["x"].grad) != 0
    assert "model.W" in ip.user_ns["_autodiff_grads"], "the other Module is still found"
    assert len(ran.with_mime(SVG)) == 1
    run_ok(ip, "%%autodiff --descent --steps 5\nx = Tensor(2.0)\nloss = (x - 1) ** 2\n")
    text = usage_error(ip, "%%autodiff --wrt looping\nx = Tensor(2.0)\nloss = x * x\n")
    assert "looping.parameters() raised" in text


def test_error_in_user_code_shows_the_normal_traceback(ip):
    ran = run(ip, "%%autodiff\nx = Tensor(2.0)\ny = x * 2\nundefined_function(y)\n")
    assert isinstance(ran.error, NameError)
    assert "undefined_function(y)" in ran.stdout
    assert "----> 4 undefined_function(y)" in ran.stdout     # line 4 of the cell
    assert "magics.py" not in ran.stdout
    assert float(ip.user_ns["y"].data) == 4.0                # what ran before stays


def test_error_in_a_function_the_cell_calls(ip):
    run_ok(ip, "def f(t):\n    return t.log() + missing\n")
    ran = run(ip, "%%autodiff\nx = Tensor(2.0)\nf(x)\n")
    assert isinstance(ran.error, NameError)
    assert "return t.log() + missing" in ran.stdout and "----> 3 f(x)" in ran.stdout


def test_syntax_error_in_the_cell(ip):
    ran = run(ip, "%%autodiff\nx = Tensor(2.0)\nloss = (x * 2\n")
    assert isinstance(ran.error, CellSyntaxError)
    assert "SyntaxError" in ran.stdout and "loss = (x * 2" in ran.stdout
    assert "magics.py" not in ran.stdout
    assert "x" not in ip.user_ns or not isinstance(ip.user_ns.get("x"), Tensor)


def test_error_in_the_line_magic_expression(ip):
    run_ok(ip, "x = Tensor(2.0)")
    ran = run(ip, "%autodiff x * nothing_here")
    assert isinstance(ran.error, NameError) and "x * nothing_here" in ran.stdout


# ---------------------------------------------------------------------------- help

def test_help_documents_every_option(ip):
    cell_doc = ip.find_cell_magic("autodiff").__doc__
    line_doc = ip.find_line_magic("autodiff").__doc__
    for option in ("--wrt", "--check", "--static", "--descent", "--lr", "--steps", "--optimizer"):
        assert option in cell_doc and option in line_doc, option
    assert "%%autodiff [--wrt x,y]" in cell_doc and "NAME" in cell_doc
    assert "sgd|momentum|adam" in cell_doc
    assert "EXPR" in line_doc
    ran = run_ok(ip, "%%autodiff?")
    assert "%%autodiff [--wrt x,y]" in ran.stdout + ran.texts


def test_help_reads_as_plain_text(ip):
    """%%autodiff? is read in a pager: no reST markup (``::``, double backquotes)."""
    for doc in (ip.find_cell_magic("autodiff").__doc__, ip.find_line_magic("autodiff").__doc__):
        assert "::" not in doc and "``" not in doc, doc
    assert ip.find_cell_magic("autodiff").__doc__.startswith("Usage: %%autodiff [--wrt x,y]")
    assert ip.find_line_magic("autodiff").__doc__.startswith("Usage: %autodiff [--wrt x,y]")


def test_cell_and_line_magics_share_their_options(ip):
    """Declared once: the same options, with the same help, in both forms."""
    def options(function):
        return {a.option_strings[0]: (a.help, a.default, a.type) for a in function.parser._actions
                if a.option_strings}

    cell, line = options(AutodiffMagics.autodiff_cell), options(AutodiffMagics.autodiff_line)
    assert cell == line
    assert set(cell) == {"--wrt", "--check", "--static", "--export", "--descent", "--lr", "--steps", "--optimizer",
                         "--mode", "--order"}
    assert f"at most {MAX_STEPS}" in cell["--steps"][0]
