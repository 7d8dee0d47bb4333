"""Forward mode and the second derivative on the timeline: `ForwardModeTimeline` (each
node's value and tangent, pass by pass, the cost view), the stepper over it, and the
magic's ``--mode forward`` and ``--order 2``."""
from __future__ import annotations

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from ad_magic import Tensor
from ad_magic.widgets import BackwardStepper
from ad_magic.widgets.forward_mode import MAX_PASSES, ForwardModeTimeline


def example():
    x, y = Tensor(2.0, name="x"), Tensor(3.0, name="y")
    return x, y, x * y + x.exp()


def test_each_pass_seeds_one_input_and_steps_every_value_with_its_tangent():
    x, y, out = example()
    timeline = ForwardModeTimeline(out, names={out: "L"})
    captions = [s.caption for s in timeline.states]
    assert len(timeline.passes) == 2 and timeline.last == 7
    assert captions[0].startswith("Forward mode. Inputs: x = 2.0, y = 3.0. Pass 1 of 2: seed the tangents "
                                  "∂x/∂x = 1.0, ∂y/∂x = 0.0.")
    assert captions[1] == ("mul: mul₁ = x · y = 2.0 · 3.0 = 6.0;  "
                           "∂mul₁/∂x = y · ∂x/∂x + x · ∂y/∂x = 3.0 · 1.0 + 2.0 · 0.0 = 3.0")
    assert "∂exp₁/∂x = exp₁ · ∂x/∂x = 7.389 · 1.0 = 7.389" in captions[2]
    assert "End of pass 1 of 2: ∂L/∂x = 10.39 (column 1 of the Jacobian)" in captions[3]
    assert captions[4].startswith("Pass 2 of 2: seed the tangents ∂x/∂y = 0.0, ∂y/∂y = 1.0.")
    assert "∂mul₁/∂y = y · ∂x/∂y + x · ∂y/∂y = 3.0 · 0.0 + 2.0 · 1.0 = 2.0" in captions[5]
    # the tangents are the derivatives: the Jacobian's columns equal backward()'s row
    out.backward()
    np.testing.assert_allclose(np.ravel(timeline.jacobian), [x.grad, y.grad])
    assert "Forward mode took 2 passes" in captions[-1] and "one pass per output (1 here)" in captions[-1]
    assert timeline.label(5) == "step 5 / 7 · pass 2/2 · forward 1/3"


def test_the_boxes_show_tangents_blank_again_at_each_new_pass():
    x, y, out = example()
    timeline = ForwardModeTimeline(out)
    mul = timeline.view.index(out._a)
    assert timeline.grads_at(0, mul) is None
    assert float(timeline.grads_at(1, mul)) == 3.0
    assert timeline.grads_at(4, mul) is None          # pass 2 seeded: not reached yet
    assert float(timeline.grads_at(5, mul)) == 2.0
    svg = timeline.svg(1)
    assert "tangent 3.0" in svg and ">grad " not in svg
    payload = timeline.payload()
    assert [3, "tangent 10.39"] in payload["grads"][timeline.view.index(out)]
    assert "tangent: ∂mul₁/∂y" in timeline.card_text(mul, 5)


def test_a_stepper_steps_through_the_forward_mode_timeline():
    x, y, out = example()
    timeline = ForwardModeTimeline(out)
    stepper = BackwardStepper(out, timeline=timeline)
    assert stepper.timeline is timeline and stepper.n_steps == 7
    stepper.next.click()
    assert stepper.caption_text().startswith("mul: mul₁ = x · y")


def test_many_input_values_take_one_pass_per_input_tensor():
    w = Tensor(np.arange(MAX_PASSES + 1.0), name="w")
    out = (w * w).sum()
    timeline = ForwardModeTimeline(out)
    assert len(timeline.passes) == 1
    assert float(timeline.jacobian[0]) == pytest.approx(2 * np.arange(MAX_PASSES + 1.0).sum())


def test_an_array_input_of_few_values_gets_one_pass_per_value():
    w = Tensor([1.0, -2.0], name="w")
    out = (w * w * w).sum()
    timeline = ForwardModeTimeline(out)
    assert [p.symbol for p in timeline.passes] == ["w[0]", "w[1]"]
    np.testing.assert_allclose(np.ravel(timeline.jacobian), [3.0, 12.0])


# --------------------------------------------------------------------------- the magic

@pytest.fixture
def ip(magic_shell):
    return magic_shell("from ad_magic import Tensor")


def run(ip, source):
    with capture_output():
        result = ip.run_cell(source)
    return result


def test_mode_forward_shows_the_forward_mode_stepper(ip):
    result = run(ip, "%%autodiff --mode forward\nx = Tensor(2.0)\ny = Tensor(3.0)\nx * y + x.exp()")
    assert result.success, repr(result.error_in_exec)
    stepper = ip.user_ns["_autodiff"]
    assert isinstance(stepper.timeline, ForwardModeTimeline)
    assert [p.symbol for p in stepper.timeline.passes] == ["x", "y"]
    result = run(ip, "%%autodiff --mode reverse\nx = Tensor(2.0)\nx * x")
    assert type(ip.user_ns["_autodiff"].timeline).__name__ == "Timeline"


def test_order_2_steps_through_the_graph_of_the_gradient(ip):
    result = run(ip, "%%autodiff --order 2\nx = Tensor(2.0)\nx ** 3")
    assert result.success, repr(result.error_in_exec)
    stepper = ip.user_ns["_autodiff"]
    first = stepper.output
    assert first.item() == pytest.approx(12.0)            # d(x³)/dx = 3x²
    x = ip.user_ns["x"]
    assert x.grad == pytest.approx(12.0)                   # the stepper's backward: d(3x²)/dx = 6x
    assert stepper.timeline.namer(first) == "∂(x ** 3)/∂x"
    assert stepper.caption_text(stepper.n_steps)


@pytest.mark.parametrize("options, message", [
    ("--mode sideways", "unknown --mode 'sideways'; choose reverse or forward."),
    ("--mode forwrd", "(did you mean 'forward'?)"),
    ("--order 3", "--order must be 1 or 2, got 3."),
    ("--mode forward --order 2", "--mode forward and --order 2 are two different timelines; use one of them."),
    ("--mode forward --static", "--mode forward chooses what the stepper shows; it does not apply with --static."),
    ("--order 2 --descent", "--order 2 chooses what the stepper shows; it does not apply with --descent."),
])
def test_bad_modes_are_one_sentence_before_the_cell_runs(ip, options, message):
    result = run(ip, f"%%autodiff {options}\nran = True\nx = Tensor(2.0)\nx * x")
    assert isinstance(result.error_in_exec, UsageError), repr(result.error_in_exec)
    assert message in str(result.error_in_exec) and "\n" not in str(result.error_in_exec)
    assert "ran" not in ip.user_ns


def test_order_2_needs_one_scalar_input(ip):
    result = run(ip, "%%autodiff --order 2\nx = Tensor(2.0)\ny = Tensor(1.0)\nx * y")
    assert isinstance(result.error_in_exec, UsageError)
    assert "--order 2 differentiates the output twice with respect to one scalar input; name it with --wrt" \
        in str(result.error_in_exec)
    result = run(ip, "%%autodiff --order 2 --wrt y\nx = Tensor(2.0)\ny = Tensor(1.0)\nx * y * y")
    assert result.success and ip.user_ns["y"].grad == pytest.approx(4.0)
