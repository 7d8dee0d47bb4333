"""The corpus of student-style classes (tests/student_corpus): each one adapted, drawn with
its edges and op nodes, stepped through every position (backward, and forward then
backward), exported, and shown with the grads of the class's own backward()."""
from __future__ import annotations

import numpy as np
import pytest
from IPython.utils.capture import capture_output
from student_corpus import MODULES, STAGES, fields, load, own_backward, own_grads, run


def test_the_corpus_has_at_least_twelve_styles():
    assert len(MODULES) >= 12
    styles = {load(m).STYLE for m in MODULES}
    assert len(styles) == len(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_each_class_passes_end_to_end(name, tmp_path):
    results = run(load(name), tmp_path)
    failed = {stage: detail for stage, (ok, detail) in results.items() if not ok}
    assert not failed, failed
    assert list(results) == list(STAGES)


@pytest.mark.parametrize("name", ["value_set", "tensor_practical", "tensor_grad_argument", "value_numpy"])
def test_own_backward_then_stepping_leaves_the_own_grads(name):
    module = load(name)
    out, inputs = module.build()
    out.backward()
    before = {k: np.array(v.grad, dtype=float) for k, v in inputs.items()}
    identity = {k: fields(v) for k, v in inputs.items()}
    from ad_magic.widgets.stepper import BackwardStepper

    stepper = BackwardStepper(out, forward=True)
    assert stepper.n_steps > 2
    assert {k: fields(v) for k, v in inputs.items()} == identity
    for k, v in inputs.items():
        assert np.array_equal(np.asarray(v.grad, dtype=float), before[k])


@pytest.fixture
def ip(magic_shell):
    return magic_shell()


@pytest.mark.parametrize("name, cell, wanted", [
    ("value_set", "a = Value(2.0)\nb = Value(-3.0)\nout = (a * b + a).tanh() + a ** 2\n", ["a", "b"]),
    ("value_numpy", "x = Value([1.0, -2.0])\nw = Value([0.5, 0.25])\nout = (x * w).relu().sum()\n", ["x", "w"]),
    ("tensor_no_function", "W = Tensor([[1.0, 2.0], [0.5, -1.0]])\nv = Tensor([1.0, -1.0])\n"
                           "out = total(matvec(W, v))\n", ["W", "v"]),
])
def test_the_magic_on_corpus_classes(ip, name, cell, wanted):
    module = load(name)
    ip.user_ns.update({k: getattr(module, k) for k in dir(module) if not k.startswith("_")})
    with capture_output() as cap:
        result = ip.run_cell("%%autodiff out\n" + cell)
    assert result.success, result.error_in_exec
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in cap.outputs)
    grads = ip.user_ns["_autodiff_grads"]
    ns = {}
    exec(cell, {k: getattr(module, k) for k in dir(module) if not k.startswith("_")}, ns)
    ns["out"].backward()
    for var in wanted:
        assert np.allclose(np.asarray(grads[var], dtype=float), np.asarray(ns[var].grad, dtype=float)), var


def test_own_grads_are_what_the_class_computes():
    grads = own_grads(load("tensor_grad_argument"))
    assert float(grads["x"]) == 9.0                  # d(x·x + 5x − 1)/dx at 2


@pytest.mark.parametrize("name, cell, wanted", [
    ("erased_after_backward", "a = Scalar(1.5)\nb = Scalar(-2.0)\nout = (a * b + a ** 2) * b\nout.backward()\n",
     ["a", "b"]),
    ("var_consumers_pull", "x = Var(0.5)\ny = Var(4.2)\nout = (x * y).exp() + x * x\n", ["x", "y"]),
    ("function_ctx_central", "w = Tensor(0.5)\nx = Tensor(2.0)\nout = (w * x).sigmoid() - x\n", ["w", "x"]),
])
def test_the_magic_draws_what_it_saw_being_built(ip, name, cell, wanted):
    """A graph erased by backward(), edges kept on the consumers, rules kept centrally:
    the magic watches the cell build it, then draws and steps it."""
    module = load(name)
    ip.user_ns.update({k: getattr(module, k) for k in dir(module) if not k.startswith("_")})
    with capture_output() as cap:
        result = ip.run_cell("%%autodiff out\n" + cell)
    assert result.success, result.error_in_exec
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in cap.outputs)
    stepper = ip.user_ns["_autodiff"]
    assert stepper.n_steps >= 3
    ns = {k: getattr(module, k) for k in dir(module) if not k.startswith("_")}
    exec(cell, ns)
    own_backward(module, ns["out"], {k: ns[k] for k in wanted})
    got, want = ip.user_ns["_autodiff_grads"], own_grads_of(module, ns, wanted)
    for var in wanted:
        assert np.allclose(np.asarray(got[var], dtype=float), want[var]), (var, got[var], want[var])


def own_grads_of(module, ns, wanted):
    from ad_magic.adapters.contract import StudentAdapter
    from ad_magic.adapters.structure import follow

    adapter = StudentAdapter(ns[wanted[0]])
    return {v: np.asarray(follow(ns[v], adapter.reading(ns[v]).grad), dtype=float) for v in wanted}


def test_a_class_defined_in_the_cell_is_watched_too(ip):
    cell = '''
class Nombre:
    def __init__(self, valeur, usages=None):
        self.valeur, self.usages, self.d = valeur, [], None
    def __mul__(self, autre):
        z = Nombre(self.valeur * autre.valeur)
        self.usages.append((autre.valeur, z))
        autre.usages.append((self.valeur, z))
        return z
    def __add__(self, autre):
        z = Nombre(self.valeur + autre.valeur)
        self.usages.append((1.0, z))
        autre.usages.append((1.0, z))
        return z
a = Nombre(3.0)
b = Nombre(-2.0)
out = a * b + a
'''
    with capture_output():
        result = ip.run_cell("%%autodiff out\n" + cell)
    assert result.success, result.error_in_exec
    grads = ip.user_ns["_autodiff_grads"]
    assert float(grads["a"]) == -1.0 and float(grads["b"]) == 3.0     # d(ab + a)/da = b + 1, d/db = a


def test_a_class_from_an_earlier_cell_whose_backward_erased_the_graph(ip):
    definition = '''
class Scalaire:
    def __init__(self, x, entrees=()):
        self.x, self.grad, self.entrees, self.retro = x, 0.0, tuple(entrees), None
    def __mul__(self, autre):
        out = Scalaire(self.x * autre.x, (self, autre))
        def retro():
            self.grad += autre.x * out.grad
            autre.grad += self.x * out.grad
        out.retro = retro
        return out
    def backward(self):
        ordre, vus = [], set()
        def visiter(v):
            if id(v) not in vus:
                vus.add(id(v))
                for e in v.entrees:
                    visiter(e)
                ordre.append(v)
        visiter(self)
        self.grad = 1.0
        for v in reversed(ordre):
            if v.retro is not None:
                v.retro()
        for v in ordre:
            v.entrees, v.retro = (), None
'''
    assert ip.run_cell(definition).success
    with capture_output():
        result = ip.run_cell("%%autodiff out\na = Scalaire(3.0)\nb = Scalaire(-2.0)\nout = a * b * a\nout.backward()\n")
    assert result.success, result.error_in_exec
    grads = ip.user_ns["_autodiff_grads"]
    assert float(grads["a"]) == 2 * 3.0 * -2.0 and float(grads["b"]) == 9.0
    assert ip.user_ns["_autodiff"].n_steps == 2


def test_a_settings_class_in_the_namespace_does_not_turn_recording_on():
    from ad_magic.adapters import recording

    class Settings:
        def __init__(self, lr):
            self.lr = lr

    with recording({"__name__": Settings.__module__, "Settings": Settings}) as seen:
        Settings(0.1)
    assert not seen.active
