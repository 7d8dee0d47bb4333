"""The names a picture writes are the names the user's code uses: a module's box is labelled
with the path the user reaches it by (``layers[0]``, as in ``net.layers[0].W``), NumPy arrays
of the cell carry their variable names (``X``, not ``const₁``), and a tensor shown at the end
of a cell is drawn with its variable's name and its inputs' names."""
import html
import re

import numpy as np
from IPython.utils.capture import capture_output
from practical_solutions import namespace

from ad_magic import Tensor, draw_computation_graph
from ad_magic.engine.nn import Linear, Module, module_scope
from ad_magic.magic.variables import NamedPictures


def texts(svg):
    return {html.unescape(t).strip() for t in re.findall(r">([^<>]+)</text>", svg)}


def static_picture(ip, cell):
    with capture_output() as captured:
        result = ip.run_cell("%%autodiff --static\n" + cell)
    assert result.success, result.error_in_exec
    return next(o.data["image/svg+xml"] for o in captured.outputs if "image/svg+xml" in o.data)


class Heads(Module):
    def __init__(self):
        self.heads = {"query": Linear(2, 1, seed=0), "key": Linear(2, 1, seed=1)}

    def forward(self, x):
        return self.heads["query"](x) * self.heads["key"](x)


def test_a_module_box_is_labelled_with_the_path_its_parameters_are_reached_by(magic_shell):
    from ad_magic.nn import MLP

    net = MLP([1, 3, 1], seed=0)
    assert net.layers[0].W.name == "layers[0].W"          # what net.layers[0].W is called ...
    loss = (net(np.ones((2, 1))) ** 2).mean()
    source = html.unescape(draw_computation_graph(loss, modules="expanded").source)
    assert "layers[0]: Linear(1→3)" in source and "layers.0" not in source   # ... and its box
    heads = Heads()
    out = heads(Tensor(np.ones((1, 2))))
    assert sorted(c.name for c in module_scope(out.parents[0])[1:]) == ["heads['query']"]
    # in the magic: the box and the parameters inside it read alike
    ip = magic_shell("from ad_magic import Tensor\nimport numpy as np\nfrom ad_magic.nn import MLP, mse_loss")
    shown = texts(static_picture(ip, "X = np.linspace(-1, 1, 4).reshape(-1, 1)\nnet = MLP([1, 2, 1], seed=0)\n"
                                     "loss = mse_loss(net(X), np.sin(X))"))
    assert {"layers[0]: Linear(1→2)", "net.layers[0].W", "net.layers[1].b"} <= shown, shown


def test_arrays_of_the_cell_carry_their_variable_names(magic_shell):
    ip = magic_shell("from ad_magic import Tensor\nimport numpy as np")
    shown = texts(static_picture(ip, "X = np.linspace(-1, 1, 4).reshape(-1, 1)\nY = np.sin(X)\n"
                                     "w = Tensor(np.ones((1, 1)))\nloss = ((X @ w - Y) ** 2).mean()"))
    assert {"X", "Y", "w", "loss"} <= shown and not any(t.startswith("const") for t in shown), shown
    # an array of ints goes into the graph as a float copy: still found, by its values
    shown = texts(static_picture(ip, "A = np.array([[1, 2], [3, 4]])\nv = Tensor([1.0, -1.0])\n"
                                     "loss = (A @ v).sum()"))
    assert "A" in shown and "const₁" not in shown, shown
    # two variables holding equal arrays of ints: which one the cell used is unknown, so neither
    shown = texts(static_picture(ip, "B = np.array([1, 2])\nC = np.array([1, 2])\nv = Tensor([1.0, -1.0])\n"
                                     "loss = (B * v).sum()"))
    assert "const₁" in shown and not {"B", "C"} & shown, shown


def test_a_tensor_at_the_end_of_a_cell_is_drawn_with_the_notebook_s_names(magic_shell):
    ip = magic_shell("from ad_magic import Tensor\nimport numpy as np")
    ip.run_cell("x = Tensor(2.0)\nf = x * x + 3")
    data, _ = ip.display_formatter.format(ip.user_ns["f"])
    assert {"f", "x"} <= texts(data["image/svg+xml"]), texts(data["image/svg+xml"])
    assert "text/html" in data and data["text/plain"] == repr(ip.user_ns["f"])
    ip.run_line_magic("unload_ext", "ad_magic")            # the formatter goes with the extension
    assert not isinstance(ip.display_formatter.mimebundle_formatter.type_printers.get(Tensor), NamedPictures)
    data, _ = ip.display_formatter.format(ip.user_ns["f"])
    assert "f" not in texts(data["image/svg+xml"])
    ip.run_line_magic("load_ext", "ad_magic")


def test_a_student_s_constants_are_numbered_in_reading_order(magic_shell):
    """The practical's Tensor keeps its parents in a set, which forgets their order; the magic
    saw the cell make them, so 5 is leaf₁ and −1 is leaf₂, on every run."""
    ip = magic_shell("")
    ip.user_ns.update(namespace())
    for _ in range(3):
        with capture_output():
            assert ip.run_cell("%%autodiff y\na = Tensor(2.0)\nb = Tensor(3.0)\ny = a * a + 5 * b + -1\n").success
        tl = ip.user_ns["_autodiff"].timeline
        shown = [(tl.namer(t), float(t.data)) for t in tl.view.nodes]
        assert ("leaf₁", 5.0) in shown and ("leaf₂", -1.0) in shown, shown
        assert [(n, v) for n, v in shown if n.startswith("mul")] == [("mul₁", 4.0), ("mul₂", 15.0)], shown
