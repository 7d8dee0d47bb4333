"""ad_magic.magic.variables: which variables hold a graph's tensors, and putting them back."""
from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from ad_magic import Tensor, topological_order
from ad_magic.magic.variables import SavedVariables, leaves, namespace_names, resolve_wrt
from ad_magic.nn import Linear, Module


class Looping(Module):
    def parameters(self):
        raise RecursionError("maximum recursion depth exceeded")


class BadClass:
    @property
    def __class__(self):
        raise RuntimeError("no class today")


def _graph():
    x, y = Tensor(2.0), Tensor(3.0)
    h = x * y
    return x, y, h, h + x


def test_names_prefer_the_cells_own_and_skip_private_ones():
    x, y, h, out = _graph()
    ns = {"alias": x, "x": x, "h": h, "_": y, "_autodiff_output": out}
    named = namespace_names(ns, {id(t) for t in topological_order(out)}, preferred=["x", "h"])
    assert {n.label for n in named.values()} == {"x", "h"}
    assert named[id(x)].variable == "x"


def test_a_misbehaving_object_is_skipped_not_fatal():
    x, y, h, out = _graph()
    model = Linear(1, 1, seed=0)
    ns = {"looping": Looping(), "weird": BadClass(), 3: "not a name", "x": x, "model": model}
    ids = {id(t) for t in topological_order(out)} | {id(model.W)}
    named = namespace_names(ns, ids, preferred=[])
    assert named[id(x)].label == "x"
    assert named[id(model.W)].label == "model.W"


def test_wrt_names_tensors_and_modules():
    x, y, h, out = _graph()
    ids = {id(t) for t in topological_order(out)}
    ns = {"x": x, "h": h, "n": 3, "looping": Looping()}
    assert [n.label for n in resolve_wrt("x, h", ns, ids, {})] == ["x", "h"]
    for spec, message in [("nope", "no variable named 'nope'"), ("n", "'n' is an int"),
                          ("looping", "looping.parameters() raised"), ("x.data", "not a variable name")]:
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            resolve_wrt(spec, ns, ids, {})


def test_leaves_are_labelled_or_numbered():
    x, y, h, out = _graph()
    named = namespace_names({"x": x}, {id(t) for t in topological_order(out)}, preferred=[])
    rows = leaves(out, named)
    assert sorted(n.label for n in rows) == ["(unnamed leaf 1)", "x"]
    assert next(n for n in rows if n.label == "x").variable == "x"
    assert next(n for n in rows if n.label != "x").tensor is y


def test_saved_variables_put_bindings_back():
    ns = {"a": 1}
    saved = SavedVariables(ns, {"a", "b"})
    ns.update(a=2, b=3)
    saved.restore()
    assert ns == {"a": 1}
