"""The words around the pictures: the descent header follows live changes, learning
rates read in three digits, the explorer says the iteration once, articles are right,
and a refused index is one sentence at the user's line."""
from __future__ import annotations

import re

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from ad_magic import Tensor
from ad_magic.engine.formatting import a_type, format_number, with_article
from ad_magic.landscapes import rosenbrock
from ad_magic.widgets.explorer import DescentExplorer
from ad_magic.widgets.race import format_lr

SLIDER_LR = 10 ** -1.55        # what a log slider gives: 0.028183829312644536


@pytest.fixture
def ip(magic_shell):
    return magic_shell("from ad_magic import Tensor\nfrom ad_magic.landscapes import rosenbrock")


def _run(ip, source):
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, captured


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html).replace("&gt;", ">").replace("&lt;", "<")


# --------------------------------------------------------------------------- problem 5

def test_the_race_header_follows_a_live_learning_rate_change():
    x, y = rosenbrock.tensors()
    e = DescentExplorer.compare(rosenbrock(x, y), [x, y], optimizers=["sgd", "adam"], lr=0.001, steps=30)
    before = _plain(e.header.value)
    assert "sgd: loss" in before and "(lr=0.001)" in before and "stopped" not in before
    e.hyperparameters["sgd"]["lr"].value = SLIDER_LR       # sgd now blows up
    after = _plain(e.header.value)
    assert e.histories["sgd"].stopped is not None
    assert f"sgd: stopped at iteration {e.histories['sgd'].stopped_at} (lr=0.0282)" in after, after
    assert "(lr=0.001)" in after                               # adam's own rate did not move
    assert "sgd: loss" not in after
    assert "sgd stopped" in e.status.value                     # the panel below says why
    # the widget's text form (a terminal, nbconvert to text) is the header as it is now
    bundle = e._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "sgd: stopped at iteration" in data["text/plain"] and "lr=0.0282" in data["text/plain"]


def test_a_single_run_s_header_follows_its_slider_too():
    x = Tensor(3.0)
    e = DescentExplorer((x - 1) ** 2, [x], lr=0.1, steps=20, names={"x": x})
    assert "Gradient descent (sgd, lr=0.1), 20 iterations" in _plain(e.header.value)
    e.hyperparameters["sgd"]["lr"].value = 10 ** 0.3        # 1.995...: each step overshoots further
    header = _plain(e.header.value)
    final = e.losses[-1]
    assert final > 1e10
    assert f"Gradient descent (sgd, lr=2), 20 iterations: loss 4.0 → {format_number(final)}" in header, header
    assert f"x = {format_number(float(x.data))}" in header


def test_the_hint_gives_a_learning_rate_a_learner_can_read():
    x, y = rosenbrock.tensors()
    e = DescentExplorer(rosenbrock(x, y), [x, y], lr=SLIDER_LR, steps=30)
    assert e.stopped is not None
    assert "e.g. lr=0.00282" in e.stopped and "0.0028183" not in e.stopped, e.stopped
    assert format_lr(0.000281838) == "0.000282" and format_lr(0.1) == "0.1" and format_lr(1e-5) == "0.00001"


def test_the_magic_s_race_shows_its_summary_only_in_the_widget(ip):
    result, captured = _run(ip, "%%autodiff --descent --optimizer sgd,adam --lr 0.001 --steps 20\n"
                                "x = Tensor(-1.5)\ny = Tensor(2.0)\nloss = rosenbrock(x, y)\n")
    assert result.success, result.error_in_exec
    # one output: the explorer, whose header moves with its sliders (no frozen copy above it)
    assert len(captured.outputs) == 1
    e = ip.user_ns["_autodiff"]
    assert captured.outputs[0].data["text/plain"].startswith("Race of sgd, adam from the same start")
    e.hyperparameters["sgd"]["lr"].value = SLIDER_LR
    assert "sgd: stopped at iteration" in _plain(e.header.value)


def test_a_static_descent_writes_the_summary_as_text(ip):
    result, captured = _run(ip, "%%autodiff --descent --static --lr 0.1 --steps 10\nx = Tensor(3.0)\n"
                                "loss = (x - 1) ** 2\n")
    assert result.success
    texts = [o.data.get("text/plain", "") for o in captured.outputs]
    assert texts[0].startswith("Gradient descent (sgd, lr=0.1), 10 iterations: loss 4.0 → ")


# --------------------------------------------------------------------------- problem 8

@pytest.mark.parametrize("word, expected", [
    ("int", "an int"), ("float", "a float"), ("ndarray", "an ndarray"), ("object", "an object"),
    ("list", "a list"), ("uint8", "a uint8"), ("MLP", "an MLP"), ("Tensor", "a Tensor"),
    ("str", "a str"), ("NoneType", "a NoneType"), ("hour", "an hour"), ("ellipsis", "an ellipsis"),
])
def test_articles_are_right_for_any_type_name(word, expected):
    assert with_article(word) == expected


def test_the_magic_says_an_int(ip):
    with pytest.raises(UsageError, match=r"the output 'n' is an int, not a Tensor\.$"):
        ip.run_cell_magic("autodiff", "n", "n = 3\n")
    with pytest.raises(UsageError, match=r"'n' is an int, not a Tensor\.$"):
        ip.run_cell_magic("autodiff", "--wrt n", "n = 3\nx = Tensor(1.0)\nloss = x * n\n")
    assert a_type(np.zeros(2)) == "an ndarray"


def test_the_explorer_says_the_iteration_once():
    x = Tensor(3.0)
    e = DescentExplorer((x - 1) ** 2, [x], lr=0.1, steps=10, names={"x": x})
    e.slider.value = 4
    assert "iteration 4 / 10" in e.label.value
    assert "iteration 4 / 10" not in e.graph.value
    assert "iteration 4 / 10" in e.svg(4)          # a picture alone (--static, save) keeps its caption
    race = DescentExplorer.compare((x - 1) ** 2, [x], optimizers=["sgd", "adam"], lr=0.1, steps=10)
    race.slider.value = 4
    page = race.label.value + race.graph.value + race.header.value
    assert page.count("iteration 4 / 10") == 1


def test_a_tensor_as_an_index_is_one_sentence_at_the_user_s_line(ip):
    result, captured = _run(ip, "x = Tensor([1.0, 2.0, 3.0])\ni = Tensor(1.0)\ny = x[i]\n")
    assert isinstance(result.error_in_exec, IndexError)
    out = captured.stdout
    assert "----> 3 y = x[i]" in out
    assert "ops.py" not in out                     # the engine's inner frames are not shown
    assert out.count("File ") <= 1                 # at most the Tensor's own boundary
    assert re.search(r"IndexError: getitem: a Tensor cannot be an index", out)


def test_in_the_magic_a_refused_input_ends_the_traceback_at_the_user_s_line(ip):
    result, captured = _run(ip, "%%autodiff\nx = Tensor([1.0, 2.0, 3.0])\ni = Tensor([0.0, 1.0])\n"
                                "loss = x[i].sum()\n")
    assert isinstance(result.error_in_exec, IndexError)
    out = captured.stdout
    assert "----> 4 loss = x[i].sum()" in out
    assert "ad_magic" not in out.split("----> 4 loss = x[i].sum()")[1].split("IndexError:")[0]
    result, captured = _run(ip, "%%autodiff\nx = Tensor([1.0, 2.0, 3.0])\nloss = (x + Tensor([1.0, 2.0])).sum()\n")
    assert isinstance(result.error_in_exec, ValueError)
    assert "tensor.py" not in captured.stdout and "ops.py" not in captured.stdout
    assert "add: cannot broadcast shapes (3,) and (2,) together" in captured.stdout


def test_a_user_function_s_frames_stay_in_the_traceback(ip):
    ip.run_cell("def pick(t, i):\n    return t[i]\n")
    result, captured = _run(ip, "%%autodiff\nx = Tensor([1.0, 2.0])\nloss = pick(x, Tensor(0.0))\n")
    assert isinstance(result.error_in_exec, IndexError)
    assert "return t[i]" in captured.stdout and "pick(x, Tensor(0.0))" in captured.stdout
